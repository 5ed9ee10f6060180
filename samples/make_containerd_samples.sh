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

# ------------------------------------------------------------- scenario -----
# The scenario of make_samples.sh; with the containerd store the BuildKit result
# is an OCI index with a provenance attestation manifest (buildx 0.13 default).
# shellcheck source=samples/scenario.sh
. "$HERE/scenario.sh"
scenario_base_image
mkdir -p "$OUT.tmp"; rm -rf "$OUT.tmp"; mkdir -p "$OUT.tmp/truth"
TRUTH=$OUT.tmp/truth
scenario_legacy_build
d buildx version > "$TRUTH/buildx-version.txt" 2>&1 || true
scenario_buildkit_build
[ $FULL = 1 ] && scenario_dangling keep-logs
scenario_volumes
scenario_core_containers "$FULL"
if [ $FULL = 1 ]; then
  scenario_log_containers
  # priv: RUNNING --privileged (dockerd 26 only grants the capabilities in its own
  # bounding set; this VM lacks CAP_SYS_RESOURCE, which made 20.10's runc fail).
  # allcaps drops NET_RAW: 26 rejects --cap-drop of an unavailable cap (SYS_RESOURCE).
  d run -d --privileged --name priv base:1.0 sleep 86400
  d run -d --name allcaps --cap-add ALL --cap-drop NET_RAW --pid host \
    --security-opt seccomp=unconfined --restart always base:1.0 sleep 86400
  scenario_other_containers
fi

sleep 3   # let json-file finish compressing rotations, web-1 reach httpd

# ---------------------------------------------------------- ground truth -----
log "recording ground truth"
python3 "$HERE/record_ground_truth.py" api --socket "$SOCK" --out "$TRUTH" \
  --data-root "$DATAROOT" --driver "$DRIVER" --api-version 1.45 \
  --image-store containerd --containerd-root "${CROOT#"$SEIZED"/}" \
  --containerd-root-abs "$CROOT" --containerd-version "$CVER" \
  --containerd-mode "$([ "$MODE" = containerd ] && echo managed || echo system)"
scenario_cli_truth
d buildx du --verbose > "$TRUTH/docker-buildx-du-verbose.txt" 2>&1 || true

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
