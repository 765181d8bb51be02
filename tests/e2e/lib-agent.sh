# Helpers for the agent's e2e scripts (t06NN): a real `pilot server` on loopback with a
# shortened lease, agents in the background, and waiting. Source it after lib.sh (and
# lib-engines.sh for docker). Everything started here is stopped at exit.
#
#   start_server [ARGS...]   sets SERVER_URL, SERVER_PORT, SERVER_PID, TOKEN, TOKEN_FILE
#   restart_server [ARGS...] kill -9 and start again on the same port and data
#   start_agent NAME ERRFILE [ARGS...]   pilot agent --server ... in the background;
#                            its pid in AGENT_PID (also AGENT_PIDS[NAME])
#   tt ARGS...               tests/agent-testtool against the server
#   wait_for CMD...          up to 60 s until CMD succeeds
#   log_has RUN TEXT         the run's latest log holds TEXT now
#   run_json RUN EXPR        a Python expression on the run's JSON (j)
: "${AGENT_TESTTOOL:?AGENT_TESTTOOL must point at tests/agent-testtool}"

SERVER_DATA=$T_TMP/server
SERVER_PORT=0
declare -A AGENT_PIDS

server_launch() {
	"$PILOT" server --data "$SERVER_DATA" --listen "127.0.0.1:$SERVER_PORT" "$@" \
		>"$T_TMP/server.url" 2>>"$T_TMP/server.log" &
	SERVER_PID=$!
	local i
	for ((i = 0; i < 300; i++)); do
		[ -s "$T_TMP/server.url" ] && break
		kill -0 "$SERVER_PID" 2>/dev/null || { echo "# server log:"; sed 's/^/#   /' "$T_TMP/server.log"; return 1; }
		sleep 0.05
	done
	SERVER_URL=$(head -n 1 "$T_TMP/server.url")
	SERVER_PORT=${SERVER_URL##*:}
	export PILOT_SERVER=$SERVER_URL
}

start_server() {
	TOKEN=$("$PILOT" server init --data "$SERVER_DATA" 2>/dev/null) || { echo "Bail out! server init failed"; exit 1; }
	TOKEN_FILE=$T_TMP/token
	(umask 077 && printf '%s\n' "$TOKEN" >"$TOKEN_FILE")
	export PILOT_TOKEN=$TOKEN
	SERVER_ARGS=("$@")
	server_launch "$@" || { echo "Bail out! the server did not start"; exit 1; }
	at_exit 'kill -9 "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID" 2>/dev/null'
}

restart_server() {
	kill -9 "$SERVER_PID" 2>/dev/null
	wait "$SERVER_PID" 2>/dev/null
	: >"$T_TMP/server.url"
	server_launch "${SERVER_ARGS[@]}" "$@"
}

start_agent() {
	local name=$1 err=$2; shift 2
	"$PILOT" agent --server "$SERVER_URL" --token-file "$TOKEN_FILE" --name "$name" "$@" 2>"$err" &
	AGENT_PID=$!
	AGENT_PIDS[$name]=$AGENT_PID
	at_exit "kill -9 $AGENT_PID 2>/dev/null"
}

tt() { "$AGENT_TESTTOOL" "$@"; }

wait_for() {
	local i
	for ((i = 0; i < 600; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
	return 1
}

log_has() { tt peek "$1" | grep -q -- "$2"; }

run_json() {
	tt get "$1" | python3 -c 'import json,sys
j = json.load(sys.stdin)
v = eval(sys.argv[1])
print(v if not isinstance(v, (dict, list, bool)) and v is not None else json.dumps(v))' "$2"
}

# wait_pid PID: waits for a background process of this shell; its exit status in ST.
wait_pid() {
	ST=0
	wait "$1" || ST=$?
}

project() { # project DIR YAML
	mkdir -p "$1"
	printf '%s\n' "$2" >"$1/pilot.yaml"
}

# The background processes' stderr holds no sanitizer report (ASan/UBSan builds).
no_sanitizer_reports() {
	local hits
	hits=$(grep -l -E 'Sanitizer|runtime error:' "$T_TMP"/*.err "$T_TMP"/server.log 2>/dev/null)
	if [ -z "$hits" ]; then ok "no sanitizer reports from background processes"; else
		not_ok "no sanitizer reports from background processes" "$(grep -h -A20 -E 'Sanitizer|runtime error:' $hits | head -60)"; fi
}
