#!/usr/bin/env bash
# The docker runtime against a real private dockerd: output streams, exit codes, the
# workspace mount, environment, entrypoint handling, and the errors a user meets when
# the engine is absent, refuses, or lacks the image.
. "$SRCDIR/tests/e2e/lib.sh"
. "$SRCDIR/tests/e2e/lib-engines.sh"
: "${RUNTIME_DRIVER:?RUNTIME_DRIVER must point at tests/runtime-driver}"

start_dockerd
import_busybox "$DOCKER_SOCK"
import_busybox "$DOCKER_SOCK" busybox-ep 'ENTRYPOINT ["/bin/echo", "from-entrypoint"]'

plan 41

WS=$T_TMP/ws
mkdir -p "$WS"
drv() { "$RUNTIME_DRIVER" --runtime docker --endpoint "$DOCKER_ENDPOINT" --image busybox --workspace "$WS" "$@"; }

expect_status 0 "describe names the engine" drv --describe
contains "describe: kind and API version" "$OUT" "docker docker 20"
contains "describe: negotiated API" "$OUT" "(API 1.4"

# stdout and stderr stay apart, each in order.
expect_status 0 "a job's two streams" drv --shell 'for i in 1 2 3; do echo out$i; echo err$i >&2; done'
equals "stdout in order" "$OUT" "$(printf 'out1\nout2\nout3')"
equals "stderr in order" "$ERR" "$(printf 'err1\nerr2\nerr3')"

expect_status 0 "many lines" drv seq 1 20000
equals "20000 lines in order" "$(echo "$OUT" | sha256sum)" "$(seq 1 20000 | sha256sum)"

expect_status 0 "exit 0" drv true
expect_status 3 "exit 3 propagates" drv --shell 'echo before; exit 3'
equals "output before the exit" "$OUT" "before"
expect_status 137 "killed by SIGKILL: 137" drv --shell 'echo x; kill -9 $$'
expect_status 1 "exec form: false" drv false

# The workspace is bind-mounted read-write at workdir, which is the working directory.
echo "from the host" >"$WS/input.txt"
expect_status 0 "workspace mounted at /workspace" drv --shell 'pwd; cat input.txt; echo made >out.txt'
equals "pwd and input" "$OUT" "$(printf '/workspace\nfrom the host')"
equals "a file the job wrote is on the host" "$(cat "$WS/out.txt" 2>&1)" "made"
expect_status 0 "custom workdir" drv --workdir /job --shell 'pwd; ls'
contains "custom workdir is the cwd and the mount" "$OUT" "$(printf '/job\ninput.txt')"

# Environment passes through as given, spaces and all.
expect_status 0 "environment" drv --env PILOT_RUN_ID=r123 --env 'MSG=two words' --env 'EMPTY=' \
	--shell 'echo "$PILOT_RUN_ID|$MSG|${EMPTY-unset}"'
equals "env values" "$OUT" "r123|two words|"

# A command replaces the image's entrypoint; none keeps the image's own.
expect_status 0 "image default entrypoint" drv --image busybox-ep
equals "image entrypoint ran" "$OUT" "from-entrypoint"
expect_status 0 "command replaces the entrypoint" drv --image busybox-ep echo mine
equals "our command ran alone" "$OUT" "mine"

# Bytes are carried exactly (a json-file log would mangle invalid UTF-8).
st=0
drv --shell 'printf "\377\376\000\001\n"' >"$T_TMP/bin.out" || st=$?
equals "binary output: exit" "$st" 0
equals "binary bytes intact" "$(od -An -tx1 "$T_TMP/bin.out" | tr -d ' \n')" "fffe00010a"

equals "no container left behind" "$(engine_managed "$DOCKER_SOCK")" ""

# ---- failures ----
expect_status 125 "image missing with pull policy never" drv --image nothere:1.0 --pull never true
contains "names the image and the policy" "$ERR" "image 'nothere:1.0' is not present in docker and the pull policy is 'never'"

expect_status 125 "a pull that fails" drv --image registry.invalid/team/img:2 --pull missing true
contains "the pull failure names the image and the engine's reason" "$ERR" \
	"cannot pull image 'registry.invalid/team/img:2': "
contains "the engine's reason is quoted" "$ERR" "registry.invalid"

expect_status 125 "no engine at the address" "$RUNTIME_DRIVER" --runtime docker --endpoint "unix://$T_TMP/nope.sock" \
	--image busybox --workspace "$WS" true
contains "cannot reach ... no such file" "$ERR" "cannot reach docker at unix://$T_TMP/nope.sock: no such file or directory"

# A socket nobody listens on: connection refused.
python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])' "$T_TMP/dead.sock"
expect_status 125 "a dead socket" "$RUNTIME_DRIVER" --runtime docker --endpoint "unix://$T_TMP/dead.sock" \
	--image busybox --workspace "$WS" true
contains "cannot reach ... connection refused" "$ERR" "cannot reach docker at unix://$T_TMP/dead.sock: connection refused"

# The engine refuses: its message comes through.
expect_status 125 "an unknown network" drv --network no-such-net true
contains "the engine's message" "$ERR" "no-such-net"
# A command that cannot run is the job's failure, with a shell's status (not 125).
expect_status 127 "a command that does not exist: 127" drv no-such-command
contains "the reason is on stderr" "$ERR" "no-such-command"

equals "failed starts leave no container" "$(engine_managed "$DOCKER_SOCK")" ""

done_testing
