#!/usr/bin/env bash
# The host runtime: the same contract as the container runtimes — streams, exit codes,
# timeout, cancel, redaction, metrics, artifacts — for a plain process group, with a
# clean environment and nothing left running after the job.
. "$SRCDIR/tests/e2e/lib.sh"
: "${RUNTIME_DRIVER:?RUNTIME_DRIVER must point at tests/runtime-driver}"

plan 38

WS=$T_TMP/ws
mkdir -p "$WS"
drv() { "$RUNTIME_DRIVER" --runtime host --workspace "$WS" "$@"; }
sha() { sha256sum "$1" | cut -d' ' -f1; }
# A sleep under a name unique to this script, to find processes the jobs leave behind.
MARK=pilot-host-test-sleep-$$
mkdir -p "$T_TMP/bin"
ln -s "$(command -v sleep)" "$T_TMP/bin/$MARK"
SLEEPER="$T_TMP/bin/$MARK"

expect_status 0 "describe" drv --describe
contains "host runtime" "$OUT" "host"

expect_status 0 "two streams" drv --shell 'for i in 1 2 3; do echo out$i; echo err$i >&2; done'
equals "stdout" "$OUT" "$(printf 'out1\nout2\nout3')"
equals "stderr" "$ERR" "$(printf 'err1\nerr2\nerr3')"
expect_status 0 "exit 0" drv true
expect_status 3 "exit 3" drv --shell 'exit 3'
expect_status 137 "killed by SIGKILL: 128+9" drv --shell 'kill -9 $$'
expect_status 143 "killed by SIGTERM: 128+15" drv --shell 'kill -TERM $$'
expect_status 127 "command not found: 127" drv no-such-command-xyz
contains "and why, on stderr" "$ERR" "cannot run 'no-such-command-xyz': command not found in PATH"

# The working directory is the workspace; the environment is built, not inherited.
export PILOT_TOKEN=pt_do_not_leak SOME_VAR=inherited
expect_status 0 "cwd and environment" drv --env A=1 --env 'B=two words' --shell 'pwd; echo "$A|$B|${PILOT_TOKEN-unset}|${SOME_VAR-unset}"; test -n "$PATH" && test -n "$HOME" && echo paths'
equals "cwd is the workspace, env from the job only" "$OUT" "$(printf '%s\n%s\n%s' "$WS" "1|two words|unset|unset" paths)"
unset PILOT_TOKEN SOME_VAR

# Timeout: the whole process group goes, grandchildren included.
expect_status 124 "timeout: 124" drv --timeout 1s --grace 1s --shell "echo started; $SLEEPER 600 & sleep 600"
equals "output before the timeout" "$OUT" "started"
sleep 0.5
equals "nothing of the job is left running" "$(pgrep -f "$MARK" || true)" ""

# A TERM handler gets its grace; ignoring TERM gets SIGKILL after it.
expect_status 124 "timeout with a handler" drv --timeout 1s --grace 20s \
	--shell 'trap "echo cleaning up; exit 0" TERM; echo started; sleep 600 & wait'
equals "the handler ran" "$OUT" "$(printf 'started\ncleaning up')"
expect_status 124 "TERM ignored: killed after the grace" drv --timeout 1s --grace 1s --shell 'trap "" TERM; while :; do sleep 1; done'

# Background processes do not outlive the job (as in a container).
expect_status 0 "a job leaving a background process" drv --shell "$SLEEPER 600 & echo left"
sleep 0.5
equals "the leftover was killed" "$(pgrep -f "$MARK" || true)" ""

# Cancel: SIGINT to pilot → SIGTERM to the job's group → 130; a second one forces.
"$RUNTIME_DRIVER" --runtime host --workspace "$WS" --grace 20s \
	--shell 'trap "echo got TERM; exit 0" TERM; echo running; sleep 600 & wait' >"$T_TMP/c.out" 2>&1 &
pid=$!
for ((i = 0; i < 100; i++)); do grep -q running "$T_TMP/c.out" 2>/dev/null && break; sleep 0.1; done
kill -INT "$pid"
st=0; wait "$pid" || st=$?
equals "cancel: 130" "$st" 130
equals "the job saw SIGTERM" "$(cat "$T_TMP/c.out")" "$(printf 'running\ngot TERM')"

"$RUNTIME_DRIVER" --runtime host --workspace "$WS" --grace 10m \
	--shell "trap '' TERM; echo running; sh -c 'trap \"\" TERM; $SLEEPER 600' & wait" >"$T_TMP/c.out" 2>&1 &
pid=$!
for ((i = 0; i < 100; i++)); do grep -q running "$T_TMP/c.out" 2>/dev/null && break; sleep 0.1; done
kill -INT "$pid"; sleep 0.5; kill -INT "$pid"
st=0; wait "$pid" || st=$?
equals "second cancel forces: 130" "$st" 130
sleep 0.5
equals "forced cancel leaves nothing running" "$(pgrep -f "$MARK" || true)" ""

# Output volume and exactness.
st=0
drv --shell '(yes "err text" | head -c 5242880 >&2) & yes "0123456789 the quick brown fox" | head -c 52428800; wait' \
	>"$T_TMP/big.out" 2>"$T_TMP/big.err" || st=$?
equals "50 MiB: exit 0" "$st" 0
equals "stdout identical" "$(sha "$T_TMP/big.out")" "$(yes "0123456789 the quick brown fox" | head -c 52428800 | sha256sum | cut -d' ' -f1)"
equals "stderr identical" "$(sha "$T_TMP/big.err")" "$(yes "err text" | head -c 5242880 | sha256sum | cut -d' ' -f1)"

# Secrets, metrics, artifacts, as in the containers.
expect_status 0 "secret redacted" drv --secret 'p@ss w0rd' --shell 'printf "p@ss"; sleep 0.2; printf " w0rd!\n"; echo "p@ss w0rd" >&2'
equals "redacted across writes" "$OUT" "***!"
equals "redacted on stderr" "$ERR" "***"

mkdir -p "$WS/.pilot"
expect_status 0 "metrics" drv --metrics-out "$T_TMP/metrics" --metrics-file "$WS/.pilot/metrics.jsonl" \
	--env "PILOT_METRICS=$WS/.pilot/metrics.jsonl" --shell 'echo "METRIC step=1 loss=2.5"; echo "{\"acc\":0.5}" >"$PILOT_METRICS"'
equals "metrics from both sources" "$(cat "$T_TMP/metrics")" "$(printf '%s\n' '{"step":1,"loss":2.5}' '{"acc":0.5}')"

expect_status 0 "artifacts" drv --artifact 'out/**' --artifacts-out "$T_TMP/artifacts" --log "$T_TMP/log" \
	--shell 'mkdir -p out; echo x >out/a; ln -s /etc/shadow out/shadow'
equals "regular files only" "$(cat "$T_TMP/artifacts")" "out/a 2"
contains "the symlink skipped with a notice" "$(cat "$T_TMP/log")" "artifact 'out/shadow' is a symbolic link: skipped"

# Resources the host cannot enforce are said so, not silently dropped.
expect_status 0 "unenforceable resources" drv --cpus 2 --gpus 1 --log "$T_TMP/log2" true
contains "a notice names them" "$(cat "$T_TMP/log2")" "the host runtime does not enforce: cpus, gpus"

done_testing
