#!/usr/bin/env bash
# A server that takes only enrolled agents (require_registration): an agent with a
# plain agent token is refused with the way out; one with a registration token
# enrolls, keeps the agent token it gets (mode 0600) and runs a job; started again it
# reuses that token (no second enrollment); the token acts only as its agent's name;
# once revoked, the agent enrolls again; the registration token itself reads nothing;
# without a server the flag is refused.
. "$SRCDIR/tests/e2e/lib.sh"
. "$SRCDIR/tests/e2e/lib-cli.sh"

CLI_TRANSPORT=http
CLI_DIR=$T_TMP/http
mkdir -p "$CLI_DIR"
export XDG_CONFIG_HOME=$CLI_DIR/config XDG_DATA_HOME=$CLI_DIR/data
unset PILOT_SERVER PILOT_TOKEN PILOT_DATA_DIR
SERVER_ARGS="--set require_registration=true"
start_server

# pilot token list: ID NAME STATE CREATED EXPIRES LAST-USED AGENT SCOPES, tab-separated.
live_tokens_named() {
	"$PILOT" token list | awk -F'\t' -v n="$1" '$2 == n && $3 == "live"' | wc -l
}

token_agent() {
	"$PILOT" token list | awk -F'\t' -v n="$1" '$2 == n && $3 == "live" { print $7 }'
}

enrolled() {
	PILOT_HEARTBEAT=100ms PILOT_CLAIM_WAIT=2s "$PILOT" agent --server "$SRV_URL" --runtime host --allow-host \
		--name edge-1 --workdir "$CLI_DIR/work" --registration-token-file "$CLI_DIR/join.token" \
		2>>"$CLI_DIR/agent.log" &
	AGENT_PID=$!
}

project "$CLI_DIR/quick" 'name: quick
runtime: host
command: echo quick'

# A plain agent token is refused, saying what to do.
expect_status 1 "an unenrolled agent is refused" timeout 20 env PILOT_CLAIM_WAIT=1s "$PILOT" agent \
	--server "$SRV_URL" --token-file "$CLI_DIR/agent.token" --runtime host --allow-host --name plain --workdir "$CLI_DIR/w0"
contains "saying how to enroll" "$ERR" "takes only enrolled agents: start agent 'plain' with --registration-token-file"

expect_status 0 "pilot token create --scope register" \
	"$PILOT" token create --scope register --name join --expires 1h --output "$CLI_DIR/join.token"
enrolled
wait_for grep -q "enrolled" "$CLI_DIR/agent.log"
contains "the agent enrolled" "$(cat "$CLI_DIR/agent.log")" \
	"agent 'edge-1' enrolled: its token 'agent-edge-1' is kept in '$CLI_DIR/work/tokens/edge-1.token'"
equals "its token is its own, mode 0600" "$(stat -c %a "$CLI_DIR/work/tokens/edge-1.token")" 600
equals "bound to its name" "$(token_agent agent-edge-1)" edge-1
r=$("$PILOT" submit "$CLI_DIR/quick")
wait_state "$r" succeeded
equals "it ran a job" "$(run_field "$r" 'j["attempts"][0]["agent"]')" edge-1
stop_agent

enrolled
wait_for sh -c "[ \$(grep -c claiming '$CLI_DIR/agent.log') -ge 2 ]"
r=$("$PILOT" submit "$CLI_DIR/quick")
wait_state "$r" succeeded
equals "started again, it kept its token" "$(grep -c "enrolled" "$CLI_DIR/agent.log")" 1
equals "one live token of that name" "$(live_tokens_named agent-edge-1)" 1
stop_agent

expect_status 1 "its token cannot act as another agent" timeout 20 "$PILOT" agent --server "$SRV_URL" \
	--token-file "$CLI_DIR/work/tokens/edge-1.token" --runtime host --allow-host --name edge-2 --workdir "$CLI_DIR/w2"
contains "says whose it is" "$ERR" "is agent 'edge-1''s: it cannot act as agent 'edge-2'"

expect_status 0 "revoke the agent's token" "$PILOT" token revoke agent-edge-1
enrolled
wait_for sh -c "[ \$(grep -c 'enrolled' '$CLI_DIR/agent.log') -ge 2 ]"
contains "it enrolls again" "$(cat "$CLI_DIR/agent.log")" "does not take the agent token in '$CLI_DIR/work/tokens/edge-1.token' any more"
r=$("$PILOT" submit "$CLI_DIR/quick")
wait_state "$r" succeeded
equals "and runs jobs" "$(run_field "$r" 'j["state"]')" succeeded
equals "with one live token again" "$(live_tokens_named agent-edge-1)" 1
stop_agent

expect_status 1 "a registration token reads nothing" env PILOT_TOKEN="$(cat "$CLI_DIR/join.token")" "$PILOT" list
contains "it lacks the scope" "$ERR" "lacks the 'read' scope"
expect_status 1 "no enrollment without a server" env -u PILOT_SERVER XDG_CONFIG_HOME="$CLI_DIR/none" "$PILOT" agent \
	--registration-token-file "$CLI_DIR/join.token" --runtime host --allow-host --workdir "$CLI_DIR/w3"
contains "says so" "$ERR" "--registration-token-file needs a server"
expect_status 2 "with --token-file too" "$PILOT" agent --registration-token-file "$CLI_DIR/join.token" \
	--token-file "$CLI_DIR/agent.token"

stop_server
finish
