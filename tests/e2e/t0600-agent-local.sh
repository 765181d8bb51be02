#!/usr/bin/env bash
# pilot agent on the local transport (no server) with the host runtime: --once,
# --idle-timeout, --max-jobs, --shutdown-command, refusals, cancel, drain and the
# second signal, one agent per name, host jobs left by a killed agent, pilot agents.
. "$SRCDIR/tests/e2e/lib.sh"
: "${AGENT_TESTTOOL:?AGENT_TESTTOOL must point at tests/agent-testtool}"

plan 65

tt() { "$AGENT_TESTTOOL" "$@"; }
# wait_for CMD...: up to 30 s until CMD succeeds.
wait_for() {
	local i
	for ((i = 0; i < 300; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
	return 1
}
log_has() { tt peek "$1" | grep -q -- "$2"; }
project() { # project DIR YAML
	mkdir -p "$1"
	printf '%s\n' "$2" >"$1/pilot.yaml"
}
agent() { "$PILOT" agent --runtime host --allow-host "$@"; }
T_ROTATED=0
# start_agent ERRFILE ARGS...: in the background, its pid in $apid.
start_agent() {
	local err=$1; shift
	# Keep the previous agent's stderr for the sanitizer check at the end.
	[ -e "$err" ] && mv "$err" "$err.$((++T_ROTATED))"
	"$PILOT" agent --runtime host --allow-host "$@" 2>"$err" &
	apid=$!
}

# ---- usage and refusals -----------------------------------------------------------
expect_status 1 "host runtime without --allow-host is refused" "$PILOT" agent --runtime host --once
contains "the refusal says how" "$ERR" "--allow-host"
expect_status 1 "an unknown runtime" "$PILOT" agent --runtime lxc --allow-host
contains "names the runtime" "$ERR" "unknown runtime 'lxc'"
expect_status 2 "a negative concurrency" "$PILOT" agent --concurrency -1
expect_status 1 "a bad label" agent --labels gpu --once
contains "names the label" "$ERR" "invalid label 'gpu'"
printf 'pilot_secret\n' >"$T_TMP/token"
chmod 644 "$T_TMP/token"
expect_status 1 "a token file others can read" agent --token-file "$T_TMP/token" --once
contains "says chmod 600" "$ERR" "chmod 600"
expect_status 1 "a bad agent name" agent --name "a/b" --once --idle-timeout 1ms
contains "names the name" "$ERR" "invalid agent name 'a/b'"

expect_status 1 "no container engine and no --allow-host" env DOCKER_HOST="unix://$T_TMP/none.sock" \
	CONTAINER_HOST="unix://$T_TMP/none.sock" "$PILOT" agent --once --shutdown-command "touch '$T_TMP/off0'"
contains "says what to do" "$ERR" "--runtime host --allow-host"
if [ -f "$T_TMP/off0" ]; then ok "the shutdown command runs after a failed start"; else
	not_ok "the shutdown command runs after a failed start"; fi

# ---- nothing to do -----------------------------------------------------------------
expect_status 0 "--once --idle-timeout: nothing came, exit 0" \
	agent --once --idle-timeout 100ms --shutdown-command "touch '$T_TMP/off'"
contains "says why it stopped" "$ERR" "nothing to do"
if [ -f "$T_TMP/off" ]; then ok "the shutdown command ran"; else not_ok "the shutdown command ran"; fi

# ---- one run, --once ----------------------------------------------------------------
project "$T_TMP/p1" 'name: hello
command: echo hello; seq 1 3; mkdir -p out; echo data > out/real.txt; ln -s /etc/passwd out/evil.txt; echo "METRIC loss=0.25"
artifacts: [out/]'
id=$(tt submit "$T_TMP/p1")
expect_status 0 "--once runs the queued run" agent --once --name a1 --shutdown-command "touch '$T_TMP/off2'"
contains "says it started" "$ERR" "run $id attempt 1: started (host)"
contains "says it succeeded" "$ERR" "run $id attempt 1: succeeded"
equals "the run succeeded" "$(tt wait "$id")" "succeeded exit_code 0 1"
equals "the stored log is the output" "$(tt logs "$id")" "$(printf 'hello\n1\n2\n3\nMETRIC loss=0.25')"
equals "only the real file is an artifact (not the symlink)" "$(tt artifacts "$id")" "1 out/real.txt 5"
equals "the metric" "$(tt metrics "$id")" '{"loss":0.25}'
if [ -f "$T_TMP/off2" ]; then ok "the shutdown command ran after the run"; else not_ok "the shutdown command ran after the run"; fi
if [ -z "$(ls -A "$XDG_DATA_HOME/pilot/agent/work/a1" 2>/dev/null)" ]; then ok "the workspace is gone"; else
	not_ok "the workspace is gone" "$(ls -la "$XDG_DATA_HOME/pilot/agent/work/a1")"; fi

# A failing job is still a successful hand-over.
project "$T_TMP/p2" 'name: fails
command: echo bad; exit 3'
id=$(tt submit "$T_TMP/p2")
expect_status 0 "--once: exit 0 whatever the job's exit code" agent --once --name a1
equals "the run failed with exit 3" "$(tt wait "$id")" "failed exit_code 3 1"

# Requires are matched against labels; --max-jobs stops after N.
project "$T_TMP/p3" 'name: gpu
command: echo gpu
requires: {gpu: a100}'
gpu=$(tt submit "$T_TMP/p3")
ids=""
for i in 1 2 3; do ids="$ids $(tt submit "$T_TMP/p1")"; done
expect_status 0 "--max-jobs 2 --concurrency 2" agent --max-jobs 2 --concurrency 2 --name a1
n=0
for i in $ids; do [ "$(tt wait "$i" 0)" = "succeeded exit_code 0 1" ] && n=$((n + 1)); done
equals "two runs ran" "$n" 2
equals "the gpu run waits for a gpu agent" "$(tt wait "$gpu" 0)" "queued - - 0"
expect_status 0 "an agent with the label takes it" agent --labels gpu=a100,zone=x --once --name a2
equals "the gpu run ran" "$(tt wait "$gpu")" "succeeded exit_code 0 1"
expect_status 0 "the last queued run" agent --once --name a1

# ---- pilot agents --------------------------------------------------------------------
expect_status 0 "pilot agents" "$PILOT" agents
equals "stopped agents are not listed" "$OUT" ""
expect_status 0 "pilot agents --all" "$PILOT" agents --all
contains "lists a2 with its labels" "$OUT" "gpu=a100,runtime=host,zone=x"
contains "a2 is offline" "$(echo "$OUT" | grep '^a2 ')" "offline"
expect_status 0 "pilot agents -o json" "$PILOT" agents --all -o json
contains "json has the agents" "$OUT" '"name": "a1"'
expect_status 2 "an unknown output format" "$PILOT" agents -o yaml

# ---- cancel --------------------------------------------------------------------------
project "$T_TMP/p4" 'name: long
command: echo started; sleep 30'
id=$(tt submit "$T_TMP/p4")
PILOT_HEARTBEAT=100ms start_agent "$T_TMP/a.err" --once --name a1
wait_for log_has "$id" started
expect_status 0 "pilot agents shows it busy" "$PILOT" agents
contains "busy" "$(echo "$OUT" | grep '^a1 ')" "busy"
contains "with the run" "$(echo "$OUT" | grep '^a1 ')" "$id"
tt cancel "$id"
st=0; wait "$apid" || st=$?
equals "the agent exits 0 after a cancel" "$st" 0
equals "the run was canceled" "$(tt wait "$id")" "canceled canceled - 1"

# ---- stopping ---------------------------------------------------------------------------
# SIGTERM while idle: no waiting for the claim's long-poll, no shutdown command.
PILOT_CLAIM_WAIT=60s start_agent "$T_TMP/a.err" --name a1 --shutdown-command "touch '$T_TMP/off3'"
wait_for grep -q claiming "$T_TMP/a.err"
sleep 0.3
kill -TERM "$apid"
st=0; wait "$apid" || st=$?
equals "SIGTERM while idle: exit 0" "$st" 0
if [ -f "$T_TMP/off3" ]; then not_ok "no shutdown command after a signal"; else ok "no shutdown command after a signal"; fi

# One agent per name and work directory.
PILOT_CLAIM_WAIT=60s start_agent "$T_TMP/a.err" --name a1
wait_for grep -q claiming "$T_TMP/a.err"
expect_status 1 "a second agent with the same name" agent --name a1 --once
contains "is refused" "$ERR" "another agent named 'a1'"
expect_status 0 "another name is fine" agent --name a3 --once --idle-timeout 1ms
kill -TERM "$apid"; wait "$apid"

# Drain timeout: the running job is canceled and the run ends canceled, naming the agent.
id=$(tt submit "$T_TMP/p4")
PILOT_CANCEL_GRACE=500ms start_agent "$T_TMP/a.err" --name a1 --drain-timeout 300ms
wait_for log_has "$id" started
kill -TERM "$apid"
st=0; wait "$apid" || st=$?
equals "drained: exit 0" "$st" 0
contains "the agent said it drains" "$(cat "$T_TMP/a.err")" "drain timeout"
equals "the run was canceled" "$(tt wait "$id")" "canceled canceled - 1"
contains "the message names the agent" "$(tt get "$id")" "agent 'a1' shut down"

# A job that ignores SIGTERM: the first signal waits, the second kills it at once.
project "$T_TMP/p5" 'name: stubborn
command: trap "" TERM; echo started; sleep 30'
id=$(tt submit "$T_TMP/p5")
start_agent "$T_TMP/a.err" --name a1
wait_for log_has "$id" started
kill -TERM "$apid"
sleep 0.5
if kill -0 "$apid" 2>/dev/null; then ok "the first SIGTERM lets the job run"; else not_ok "the first SIGTERM lets the job run"; fi
kill -TERM "$apid"
st=0; wait "$apid" || st=$?
equals "the second SIGTERM stops it: exit 0" "$st" 0
contains "said it stops now" "$(cat "$T_TMP/a.err")" "stopping now"
equals "the run was canceled" "$(tt wait "$id")" "canceled canceled - 1"

# ---- a killed agent's host job is stopped when the agent comes back -------------------
project "$T_TMP/p6" "name: orphan
command: echo \$\$\$\$ > '$T_TMP/jobpid'; echo started; exec sleep 60"
id=$(tt submit "$T_TMP/p6")
start_agent "$T_TMP/a.err" --name a1
wait_for log_has "$id" started
kill -KILL "$apid"; wait "$apid" 2>/dev/null
jp=$(cat "$T_TMP/jobpid")
if kill -0 "$jp" 2>/dev/null; then ok "the host job outlived the agent"; else not_ok "the host job outlived the agent"; fi
expect_status 0 "the agent restarts" agent --name a1 --once --idle-timeout 1ms
contains "it killed the job" "$ERR" "killed host job $jp"
gone=no
for ((i = 0; i < 50; i++)); do kill -0 "$jp" 2>/dev/null || { gone=yes; break; }; sleep 0.1; done
equals "the orphaned job is gone" "$gone" yes
tt cancel "$id"

hits=$(grep -l -E 'Sanitizer|runtime error:' "$T_TMP"/*.err* 2>/dev/null)
if [ -z "$hits" ]; then ok "no sanitizer reports from background agents"; else
	not_ok "no sanitizer reports from background agents" "$(grep -h -A20 -E 'Sanitizer|runtime error:' $hits | head -60)"; fi
done_testing
