#!/usr/bin/env bash
# Machines on demand with the local provisioner (contrib/provisioners/local: each
# machine is a `pilot agent --once` process): 10 runs with max 3 never have more than
# 3 agent processes, all succeed, and every process exits; kill -9 of a provisioned
# agent gets its run retried on another instance and the dead one terminated; a
# provisioner that cannot launch is retried with backoff and `pilot status` says why;
# a server killed and restarted mid-way launches nothing twice and leaves no orphan.
. "$SRCDIR/tests/e2e/lib.sh"
. "$SRCDIR/tests/e2e/lib-cli.sh"

command -v python3 >/dev/null || skip_all "python3 is needed by the local provisioner"

D=$T_TMP/fleet
mkdir -p "$D"
CLI_DIR=$D
# Short leases and ticks; the machines' agents (which inherit this environment) keep
# their jobs through the server's restart (LEASE_GIVE_UP) rather than drop them.
export PILOT_LEASE_TTL=3s PILOT_PROVISION_INTERVAL=200ms PILOT_PROVISION_LIST_INTERVAL=1s \
	PILOT_PROVISION_BACKOFF=300ms PILOT_HEARTBEAT=200ms PILOT_CLAIM_WAIT=2s PILOT_REAP_INTERVAL=200ms \
	PILOT_LEASE_GIVE_UP=30s

cat >"$D/server.yaml" <<EOF
pools:
  - name: local
    labels: {pool: local}
    provisioner: [python3, "$SRCDIR/contrib/provisioners/local", --state, "$D/machines", --pilot, "$PILOT",
                  --, --runtime, host, --allow-host]
    max: 3
    idle_timeout: 2s
    launch_timeout: 30s
    cost_per_hour: 3.6
  - name: broken
    labels: {pool: broken}
    provisioner: [sh, -c, 'cat >/dev/null; echo "\$1" >>"$D/broken.calls"; echo "no capacity in zone x" >&2; exit 3', broken]
    max: 1
  - name: mute
    labels: {pool: mute}
    provisioner: [sh, -c, 'cat >/dev/null; case "\$1" in launch) echo "{\\"instance_id\\": \\"m-\$\$\\"}";; list) echo "{\\"instances\\": []}";; *) echo "{}";; esac', mute]
    max: 1
    launch_timeout: 5m
EOF

# The machines whose agent still runs: distinct agent names (an agent's child between
# its fork and exec shows the same command line).
machines() { pgrep -af -- "agent --once .*--name local-i" | grep -o -- "--name local-i[^ ]*" | sort -u | wc -l; }
machines_at_least() { [ "$(machines)" -ge "$1" ]; }
no_machines() { [ "$(machines)" -eq 0 ]; }

fleet_cleanup() {
	[ -n "${FLEET_KEEP_LOG:-}" ] && cp "$D/server.log" "$FLEET_KEEP_LOG"
	pkill -9 -f -- "--name local-i" 2>/dev/null
	[ -n "$SRV_PID" ] && kill -9 "$SRV_PID" 2>/dev/null
}
at_exit fleet_cleanup

start_fleet_server() {
	: >"$D/server.url"
	"$PILOT" server --data "$D/server" --config "$D/server.yaml" --listen "127.0.0.1:${1:-0}" \
		>"$D/server.url" 2>>"$D/server.log" &
	SRV_PID=$!
	wait_for test -s "$D/server.url"
	SRV_URL=$(head -n 1 "$D/server.url")
}

ADMIN=$("$PILOT" server init --data "$D/server" 2>/dev/null)
printf 'pools:\n  - name: gpu\n    provisoner: [x]\n' >"$D/bad.yaml"
expect_status 1 "a pool with a misspelt key is refused" "$PILOT" server --data "$D/server" --config "$D/bad.yaml" \
	--listen 127.0.0.1:0
contains "saying which" "$ERR" "pools[0]: unknown key 'provisoner' (did you mean 'provisioner'?)"
printf 'pools:\n  - name: gpu\n    provisioner: [x]\n    max: lots\n' >"$D/bad.yaml"
expect_status 1 "a pool with a bad max is refused" "$PILOT" server --data "$D/server" --config "$D/bad.yaml" \
	--listen 127.0.0.1:0
contains "saying why" "$ERR" "pools[0].max: expected a whole number"
start_fleet_server
[ -n "$SRV_URL" ] || { echo "Bail out! the server did not start: $(cat "$D/server.log")"; exit 1; }
printf '%s\n' "$ADMIN" | "$PILOT" login --server "$SRV_URL" --token-stdin 2>/dev/null ||
	{ echo "Bail out! pilot login failed"; exit 1; }

pool_field() {
	"$PILOT" status -o json | python3 -c 'import json,sys
p = [p for p in json.load(sys.stdin)["pools"] if p["name"] == sys.argv[1]][0]
print(eval(sys.argv[2]))' "$1" "$2"
}
live_instances() { pool_field local 'p["running"] + p["launching"] + p["terminating"]'; }
no_instances() { [ "$(live_instances)" -eq 0 ]; }
all_succeeded() {
	local r
	for r in "$@"; do state_is "$r" succeeded || return 1; done
}

# --- 10 runs, at most 3 machines.
project "$D/job" 'name: job
runtime: host
requires: {pool: local}
command: sleep 3; echo done'
ids=()
for i in $(seq 10); do ids+=("$("$PILOT" submit "$D/job")"); done
# A sampler of the number of machines, beside the wait.
(while :; do machines >>"$D/samples"; sleep 0.05; done) &
sampler=$!
wait_for all_succeeded "${ids[@]}"
kill "$sampler"
wait "$sampler" 2>/dev/null
most=$(sort -n "$D/samples" | tail -n 1)
check "10 runs through the local pool all succeed" all_succeeded "${ids[@]}"
check "never more than max (3) machines at once (saw $most)" test "$most" -le 3
check "and more than one (saw $most)" test "$most" -ge 2
wait_for no_machines
equals "every machine's agent exits" "$(machines)" 0
wait_for no_instances
equals "no instance is left" "$(live_instances)" 0
equals "one launch per run" "$(pool_field local 'p["launched_total"]')" 10
expect_status 0 "pilot status" "$PILOT" status
contains "shows the pool" "$OUT" "pool      local: 0 running, 0 launching (max 3); 10 launched, cost so far"

# --- kill -9 of a provisioned agent.
rm -f "$D/first"
project "$D/victim" "name: victim
runtime: host
requires: {pool: local}
command: if [ -e '$D/first' ]; then echo second; else touch '$D/first'; exec sleep 120; fi"
r=$("$PILOT" submit "$D/victim")
wait_for test -e "$D/first"
victim=$(pgrep -f -- "--name local-i" | head -n 1)
check "the run's machine is running" test -n "$victim"
kill -9 "$victim"
wait_state "$r" succeeded
equals "its run was retried on another instance" \
	"$(run_field "$r" '" ".join(a["state"] for a in j["attempts"])')" "lost succeeded"
check "the two attempts ran on two agents" test "$(run_field "$r" 'len({a["agent"] for a in j["attempts"]})')" = 2
expect_status 0 "pilot show" "$PILOT" show "$r"
contains "names the instance each attempt ran on" "$OUT" "attempt 2 ran on instance local-"
contains "and its pool" "$OUT" "of pool local"
wait_for no_instances
equals "the dead instance is terminated too" "$(live_instances)" 0
check "its job went with it" sh -c "! pgrep -f 'sleep 12[0]' >/dev/null"
check "the server says so" grep -q "terminated: its agent was lost" "$D/server.log"

# --- a provisioner that cannot launch.
project "$D/nowhere" 'name: nowhere
runtime: host
requires: {pool: broken}
command: echo never'
r=$("$PILOT" submit "$D/nowhere")
launches() { grep -c launch "$D/broken.calls" 2>/dev/null; }
launched_thrice() { [ "$(launches)" -ge 3 ]; }
wait_for launched_thrice
check "a failed launch is tried again, with backoff" test "$(launches)" -ge 3
expect_status 0 "pilot status" "$PILOT" status
contains "says launches fail, and why" "$OUT" "launches failing ("
contains "quoting the provisioner" "$OUT" "no capacity in zone x"
equals "the run still waits" "$(run_field "$r" 'j["state"]')" queued
expect_status 0 "cancel it" "$PILOT" cancel "$r"

# --- the server killed mid-way: no double launch, no orphan.
project "$D/slow" 'name: slow
runtime: host
requires: {pool: local}
command: sleep 2; echo done'
before=$(pool_field local 'p["launched_total"]')
ids=()
for i in $(seq 6); do ids+=("$("$PILOT" submit "$D/slow")"); done
wait_for machines_at_least 3
port=${SRV_URL##*:}
kill -9 "$SRV_PID"
wait "$SRV_PID" 2>/dev/null
for ((k = 0; k < 50; k++)); do
	start_fleet_server "$port"
	[ -n "$SRV_URL" ] && break
	sleep 0.2
done
check "the server is back" test -n "$SRV_URL"
wait_for all_succeeded "${ids[@]}"
check "every run succeeds after the restart" all_succeeded "${ids[@]}"
wait_for no_machines
equals "every machine exits" "$(machines)" 0
wait_for no_instances
equals "no instance is left" "$(live_instances)" 0
equals "one launch per run, none twice" "$(($(pool_field local 'p["launched_total"]') - before))" 6
equals "no machine state left behind" "$(ls "$D/machines" | grep -c '\.json$')" 0

# --- a machine launched whose agent has not registered yet: its agent is starting.
project "$D/mute" 'name: mute
runtime: host
requires: {pool: mute}
command: echo never'
r=$("$PILOT" submit "$D/mute")
starting() { "$PILOT" agents list | grep -q "^mute-i.* starting "; }
wait_for starting
expect_status 0 "pilot agents list" "$PILOT" agents list
contains "shows the machine's agent as starting" "$OUT" "starting"
name=$(awk '/^mute-i/ { print $1 }' <<<"$OUT")
expect_status 0 "pilot agents show" "$PILOT" agents show "$name"
contains "starting, by name" "$OUT" "state    starting"
expect_status 0 "cancel it" "$PILOT" cancel "$r"
kill -TERM "$SRV_PID"
wait "$SRV_PID" 2>/dev/null
SRV_PID=

finish
