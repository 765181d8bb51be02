#!/usr/bin/env bash
# The podman runtime: the same engine client against a private podman service's
# Docker-compatible socket (runc, explicit ulimits). Core cases: streams, exit codes,
# timeout, cancel, the container's security settings, errors.
. "$SRCDIR/tests/e2e/lib.sh"
. "$SRCDIR/tests/e2e/lib-engines.sh"
: "${RUNTIME_DRIVER:?RUNTIME_DRIVER must point at tests/runtime-driver}"

start_podman
import_busybox "$PODMAN_SOCK"

plan 31

WS=$T_TMP/ws
mkdir -p "$WS"
drv() { "$RUNTIME_DRIVER" --runtime podman --endpoint "$PODMAN_ENDPOINT" --image busybox --workspace "$WS" "$@"; }
sha() { sha256sum "$1" | cut -d' ' -f1; }

expect_status 0 "describe" drv --describe
contains "podman, with its version" "$OUT" "podman podman 4"
# A podman socket named as docker is recognised for what it is (its quirks apply).
expect_status 0 "a podman socket opened as docker" "$RUNTIME_DRIVER" --runtime docker --endpoint "$PODMAN_ENDPOINT" --describe
contains "is reported as podman" "$OUT" "podman podman"

expect_status 0 "two streams" drv --shell 'for i in 1 2 3; do echo out$i; echo err$i >&2; done'
equals "stdout" "$OUT" "$(printf 'out1\nout2\nout3')"
equals "stderr" "$ERR" "$(printf 'err1\nerr2\nerr3')"
expect_status 3 "exit 3" drv --shell 'echo x; exit 3'
# No init process under podman: the job is PID 1, which SIGKILL from inside cannot end,
# so a child is killed instead.
expect_status 137 "a process killed by SIGKILL: 137" drv --shell 'sh -c "kill -9 \$\$"; exit $?'
expect_status 0 "workspace and env" drv --env 'MSG=hi there' --shell 'pwd; echo "$MSG"; echo w >written'
equals "cwd, env" "$OUT" "$(printf '/workspace\nhi there')"
equals "the job wrote into the workspace" "$(cat "$WS/written")" "w"

st=0
drv --shell 'yes "podman output line" | head -c 10485760' >"$T_TMP/big.out" || st=$?
equals "10 MiB: exit 0" "$st" 0
equals "10 MiB identical" "$(sha "$T_TMP/big.out")" "$(yes "podman output line" | head -c 10485760 | sha256sum | cut -d' ' -f1)"

expect_status 124 "timeout: 124" drv --timeout 2s --grace 1s --shell 'echo started; sleep 600'
equals "output before the timeout" "$OUT" "started"
equals "the container is gone" "$(engine_managed "$PODMAN_SOCK")" ""

# The container's settings, read back while it runs; then a cancel.
"$RUNTIME_DRIVER" --runtime podman --endpoint "$PODMAN_ENDPOINT" --image busybox --workspace "$WS" \
	--run-id r77 --memory 64MiB --pids 200 --grace 1s sleep 600 >/dev/null 2>"$T_TMP/c.err" &
pid=$!
id=$(wait_for_managed "$PODMAN_SOCK" "$pid") || id=none
engine_api "$PODMAN_SOCK" GET "/containers/$id/json" >"$T_TMP/inspect.json"
hc() { json_get "$1" <"$T_TMP/inspect.json"; }
# podman lists the default capabilities it dropped rather than "ALL".
equals "every default capability dropped, none added" \
	"$(hc 'all(c in j["HostConfig"]["CapDrop"] for c in ["CHOWN", "DAC_OVERRIDE", "KILL", "NET_RAW", "SETUID", "SYS_CHROOT"]) and not j["HostConfig"]["CapAdd"]')" true
contains "no-new-privileges" "$(hc 'j["HostConfig"]["SecurityOpt"]')" "no-new-privileges"
equals "PidsLimit" "$(hc 'j["HostConfig"]["PidsLimit"]')" "200"
equals "Memory" "$(hc 'j["HostConfig"]["Memory"]')" "67108864"
equals "explicit ulimits" "$(hc 'sorted((u["Name"], u["Soft"], u["Hard"]) for u in j["HostConfig"]["Ulimits"] if u["Name"] in ("RLIMIT_NOFILE", "RLIMIT_NPROC", "nofile", "nproc"))')" \
	"[[\"RLIMIT_NOFILE\", 1024, 20000], [\"RLIMIT_NPROC\", 4096, 4096]]"
equals "label pilot.run" "$(hc 'j["Config"]["Labels"]["pilot.run"]')" "r77"
kill -INT "$pid"
st=0; wait "$pid" || st=$?
equals "cancel: 130" "$st" 130
equals "the canceled container is gone" "$(engine_managed "$PODMAN_SOCK")" ""

expect_status 0 "capabilities really dropped" drv --shell 'touch /tmp/f; chown 1 /tmp/f 2>&1; true'
contains "chown refused" "$OUT" "Operation not permitted"

expect_status 125 "image missing with pull policy never" drv --image nothere:2 --pull never true
contains "a clear error" "$ERR" "image 'nothere:2' is not present in podman and the pull policy is 'never'"
expect_status 125 "no service at the address" "$RUNTIME_DRIVER" --runtime podman --endpoint "unix://$T_TMP/none.sock" \
	--image busybox --workspace "$WS" true
contains "cannot reach podman" "$ERR" "cannot reach podman at unix://$T_TMP/none.sock: no such file or directory"

done_testing
