#!/usr/bin/env bash
# Machines on demand as containers (contrib/provisioners/docker) on a private dockerd:
# an image holding pilot (and the libraries it links) is imported, a pool of max 2
# launches one container per run, each runs `pilot agent --once` (host network, host
# runtime inside the container), every run succeeds on an instance of the pool, and
# every container is removed once its agent exits.
. "$SRCDIR/tests/e2e/lib.sh"
. "$SRCDIR/tests/e2e/lib-engines.sh"
. "$SRCDIR/tests/e2e/lib-cli.sh"

command -v docker >/dev/null || skip_all "the docker CLI is not installed"
command -v ldd >/dev/null || skip_all "ldd is not installed"
start_dockerd

# The image: the busybox rootfs, pilot, and every library pilot links at its path.
root=$T_TMP/agent-rootfs
mkdir -p "$root"
tar -C "$root" -xf "$(busybox_rootfs_tar)"
mkdir -p "$root/usr/local/bin"
cp "$PILOT" "$root/usr/local/bin/pilot"
for lib in $(ldd "$PILOT" | grep -o '/[^ ]*'); do
	mkdir -p "$root$(dirname "$lib")"
	cp -L "$lib" "$root$lib"
done
tar -C "$root" -cf "$T_TMP/agent-rootfs.tar" . || bail "cannot pack the agent image"
out=$(engine_api "$DOCKER_SOCK" POST "/images/create?fromSrc=-&repo=pilot-agent&tag=latest" \
	-H 'Content-Type: application/x-tar' --data-binary "@$T_TMP/agent-rootfs.tar") || bail "cannot import: $out"
case $out in *'"error'*) bail "cannot import the agent image: $out" ;; esac

D=$T_TMP/fleet
mkdir -p "$D"
CLI_DIR=$D
export PILOT_PROVISION_INTERVAL=200ms PILOT_PROVISION_LIST_INTERVAL=1s PILOT_HEARTBEAT=200ms PILOT_CLAIM_WAIT=2s
cat >"$D/server.yaml" <<EOF
pools:
  - name: box
    labels: {pool: box}
    provisioner: [python3, "$SRCDIR/contrib/provisioners/docker", --host, "unix://$DOCKER_SOCK", --image, pilot-agent,
                  --network, host, --pilot, /usr/local/bin/pilot, --, --runtime, host, --allow-host]
    max: 2
    idle_timeout: 2s
    launch_timeout: 60s
EOF
ADMIN=$("$PILOT" server init --data "$D/server" 2>/dev/null)
"$PILOT" server --data "$D/server" --config "$D/server.yaml" --listen 127.0.0.1:0 >"$D/server.url" 2>>"$D/server.log" &
SRV_PID=$!
at_exit 'kill -TERM "$SRV_PID" 2>/dev/null; wait "$SRV_PID" 2>/dev/null'
wait_for test -s "$D/server.url"
SRV_URL=$(head -n 1 "$D/server.url")
[ -n "$SRV_URL" ] || bail "the server did not start: $(cat "$D/server.log")"
printf '%s\n' "$ADMIN" | "$PILOT" login --server "$SRV_URL" --token-stdin 2>/dev/null || bail "pilot login failed"

containers() {
	engine_api "$DOCKER_SOCK" GET '/containers/json?all=1&filters=%7B%22label%22%3A%5B%22pilot.pool%3Dbox%22%5D%7D' |
		json_get 'len(j)'
}
no_containers() { [ "$(containers)" = 0 ]; }
all_succeeded() {
	local r
	for r in "$@"; do state_is "$r" succeeded || return 1; done
}

project "$D/job" 'name: boxed
runtime: host
requires: {pool: box}
command: |
  echo "pid 1 is $(tr "\0" " " </proc/1/cmdline)"'
ids=()
for i in 1 2 3; do ids+=("$("$PILOT" submit "$D/job")"); done
wait_for all_succeeded "${ids[@]}"
check "3 runs through the docker pool all succeed" all_succeeded "${ids[@]}"
expect_status 0 "pilot logs" "$PILOT" logs "${ids[0]}"
contains "the job ran in the agent's container" "$OUT" "pid 1 is /usr/local/bin/pilot agent --once"
equals "on an instance of the pool" "$(run_field "${ids[0]}" 'j["attempts"][0]["instance"]["pool"]')" box
wait_for no_containers
equals "every container is removed once its agent exits" "$(containers)" 0
equals "three launched" "$("$PILOT" status -o json | json_get 'j["pools"][0]["launched_total"]')" 3

finish
