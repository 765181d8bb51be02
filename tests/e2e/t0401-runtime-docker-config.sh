#!/usr/bin/env bash
# The docker runtime's container settings, read back from the engine while the job runs:
# dropped capabilities, no-new-privileges, limits, labels, the mount, the network, the
# privileged escape hatch, and what the job can and cannot do under them.
. "$SRCDIR/tests/e2e/lib.sh"
. "$SRCDIR/tests/e2e/lib-engines.sh"
: "${RUNTIME_DRIVER:?RUNTIME_DRIVER must point at tests/runtime-driver}"

start_dockerd
import_busybox "$DOCKER_SOCK"

plan 37

WS=$T_TMP/ws
mkdir -p "$WS"
drv() { "$RUNTIME_DRIVER" --runtime docker --endpoint "$DOCKER_ENDPOINT" --image busybox --workspace "$WS" "$@"; }

# inspect_running ARGS...: starts a sleeping job with ARGS, prints its inspect JSON into
# $T_TMP/inspect.json, then cancels it; the job's status lands in $CANCEL_STATUS.
inspect_running() {
	"$RUNTIME_DRIVER" --runtime docker --endpoint "$DOCKER_ENDPOINT" --image busybox --workspace "$WS" \
		--grace 1s "$@" sleep 600 >"$T_TMP/job.out" 2>"$T_TMP/job.err" &
	local pid=$! id
	id=$(wait_for_managed "$DOCKER_SOCK" "$pid") || {
		kill "$pid" 2>/dev/null
		CANCEL_STATUS=0
		wait "$pid" || CANCEL_STATUS=$?
		echo '{}' >"$T_TMP/inspect.json"
		return 1
	}
	engine_api "$DOCKER_SOCK" GET "/containers/$id/json" >"$T_TMP/inspect.json"
	kill -INT "$pid"
	CANCEL_STATUS=0
	wait "$pid" || CANCEL_STATUS=$?
}
hc() { json_get "$1" <"$T_TMP/inspect.json"; }

# ---- defaults ----
inspect_running --run-id r0042 --attempt 2
equals "CapDrop is ALL" "$(hc 'j["HostConfig"]["CapDrop"]')" '["ALL"]'
equals "no-new-privileges" "$(hc 'j["HostConfig"]["SecurityOpt"]')" '["no-new-privileges"]'
equals "not privileged" "$(hc 'j["HostConfig"]["Privileged"]')" "false"
equals "PidsLimit defaults to 4096" "$(hc 'j["HostConfig"]["PidsLimit"]')" "4096"
equals "no memory limit unless asked" "$(hc 'j["HostConfig"]["Memory"]')" "0"
equals "an init process" "$(hc 'j["HostConfig"]["Init"]')" "true"
equals "no TTY" "$(hc 'j["Config"]["Tty"]')" "false"
equals "label pilot.managed" "$(hc 'j["Config"]["Labels"]["pilot.managed"]')" "1"
equals "label pilot.run" "$(hc 'j["Config"]["Labels"]["pilot.run"]')" "r0042"
equals "label pilot.attempt" "$(hc 'j["Config"]["Labels"]["pilot.attempt"]')" "2"
equals "the name says run and attempt" "$(hc 'j["Name"][:15]')" "/pilot-r0042-2-"
equals "workspace bind mount" "$(hc '[[m["Type"], m["Source"], m["Destination"], m["RW"]] for m in j["Mounts"]]')" \
	"[[\"bind\", \"$WS\", \"/workspace\", true]]"
equals "working directory" "$(hc 'j["Config"]["WorkingDir"]')" "/workspace"
equals "engine default network" "$(hc 'j["HostConfig"]["NetworkMode"]')" "default"
equals "a cancel ends it with 130" "$CANCEL_STATUS" 130
equals "and removes it" "$(engine_managed "$DOCKER_SOCK")" ""

# ---- limits asked for ----
inspect_running --memory 64MiB --pids 100 --cpus 0.5 --shm 16MiB --network none --user 65534:65534
equals "Memory" "$(hc 'j["HostConfig"]["Memory"]')" "67108864"
equals "MemorySwap = Memory" "$(hc 'j["HostConfig"]["MemorySwap"]')" "67108864"
equals "PidsLimit" "$(hc 'j["HostConfig"]["PidsLimit"]')" "100"
equals "NanoCpus" "$(hc 'j["HostConfig"]["NanoCpus"]')" "500000000"
equals "ShmSize" "$(hc 'j["HostConfig"]["ShmSize"]')" "16777216"
equals "NetworkMode none" "$(hc 'j["HostConfig"]["NetworkMode"]')" "none"
equals "User" "$(hc 'j["Config"]["User"]')" "65534:65534"

# ---- privileged: the escape hatch, off by default ----
# Where pilot itself runs without every capability (a CI sandbox), runc cannot start a
# privileged container; the request is still checked: the engine got Privileged.
if inspect_running --privileged; then
	equals "privileged when asked" "$(hc 'j["HostConfig"]["Privileged"]')" "true"
	equals "then no CapDrop" "$(hc 'j["HostConfig"]["CapDrop"]')" "None"
	PRIVILEGED_WORKS=1
else
	contains "privileged asked of the engine (it cannot grant it here)" "$(cat "$T_TMP/job.err")" "caps"
	skip_one "privileged containers cannot start in this sandbox"
	PRIVILEGED_WORKS=0
fi

# ---- what the job can do under the defaults ----
expect_status 0 "chown needs a capability that is dropped" drv --shell 'touch /tmp/f; chown 1 /tmp/f 2>&1; echo "rc=$?"'
contains "chown refused" "$OUT" "Operation not permitted"
if [ "$PRIVILEGED_WORKS" = 1 ]; then
	expect_status 0 "privileged job may chown" drv --privileged --shell 'touch /tmp/f; chown 1 /tmp/f; echo "rc=$?"'
	equals "chown allowed" "$OUT" "rc=0"
else
	skip_one "privileged containers cannot start in this sandbox"
	skip_one "privileged containers cannot start in this sandbox"
fi
expect_status 0 "no network with network=none" drv --network none --shell 'ls /sys/class/net'
equals "only loopback" "$OUT" "lo"
expect_status 0 "user option" drv --user 65534 id -u
equals "runs as 65534" "$OUT" "65534"

# The memory limit holds and the OOM kill is reported.
expect_status 137 "over the memory limit: killed" drv --events-out "$T_TMP/ev" --memory 32MiB \
	--shell 'head -c 200000000 /dev/zero | tail >/dev/null'
contains "reported as OOM-killed" "$(cat "$T_TMP/ev")" "oom=1"
# The pids limit holds: forks past it fail inside the job.
drv --pids 20 --shell 'for i in $(seq 1 40); do sleep 5 & done; echo spawned all' >"$T_TMP/pids.out" 2>&1
contains "fork fails past the pids limit" "$(cat "$T_TMP/pids.out")" "can't fork"
lacks "so not all were spawned" "$(cat "$T_TMP/pids.out")" "spawned all"

done_testing
