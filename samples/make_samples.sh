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

# ------------------------------------------------------------- scenario -----
# shellcheck source=samples/scenario.sh
. "$HERE/scenario.sh"
scenario_base_image
mkdir -p "$OUT.tmp"; rm -rf "$OUT.tmp"; mkdir -p "$OUT.tmp/truth"
TRUTH=$OUT.tmp/truth
scenario_legacy_build
if [ $FULL = 1 ]; then
  scenario_buildkit_build
  scenario_dangling
fi
scenario_volumes
scenario_core_containers 1
if [ $FULL = 1 ]; then
  scenario_log_containers
  # priv: --privileged cannot START on this VM (runc "unable to apply caps"),
  # so it is only created. allcaps is the running stand-in.
  d create --privileged --name priv base:1.0 sleep 86400
  d run -d --name allcaps --cap-add ALL --cap-drop SYS_RESOURCE --pid host \
    --security-opt seccomp=unconfined --restart always base:1.0 sleep 86400
  scenario_other_containers
fi

sleep 3   # let json-file finish compressing rotations, web-1 reach httpd

# ---------------------------------------------------------- ground truth -----
# Recorded while the daemon runs, right before the tar.
log "recording ground truth"
python3 "$HERE/record_ground_truth.py" api --socket "$SOCK" --out "$TRUTH" \
  --data-root "$DATAROOT" --driver "$DRIVER"
scenario_cli_truth

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
