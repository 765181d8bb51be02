# Helpers for the everyday CLI's e2e scripts (t07NN-cli-*): every script runs its checks
# once per transport, "local" (the store in a private data directory, no server) and
# "http" (a real `pilot server` on loopback that the CLI reaches through `pilot login`,
# as a user would). Jobs are run by a real `pilot agent` with the host runtime
# (--allow-host) and a short heartbeat, so cancels land quickly. Source after lib.sh.
#
#   for_transports FUNC      run FUNC once per transport (CLI_TRANSPORT=local|http), each
#                            with its own config and data directories, a server (http)
#                            and an agent; everything is stopped afterwards
#   start_agent [ARGS...]    (re)start the transport's agent; AGENT_PID. Heartbeat every
#                            $AGENT_HEARTBEAT (100ms), giving up after $AGENT_GIVE_UP;
#                            its own cancel grace $AGENT_GRACE (1s); runtime
#                            $AGENT_RUNTIME (host, with --allow-host; or docker, podman)
#   stop_agent               stop it (SIGTERM, then wait)
#   restart_server [SECS]    (http) kill -9 the server, wait SECS (0), start it again on the
#                            same port and data
#   project DIR YAML         write DIR/pilot.yaml
#   wait_for CMD...          up to 60 s until CMD succeeds
#   run_field RUN EXPR       a Python expression on `pilot show -o json RUN` (j)
#   wait_state RUN STATE     until the run is in STATE (60 s)
#   t "DESC"                 "[TRANSPORT] DESC", for test names
#   finish                   print the plan (after the tests) and exit with the result

CLI_TRANSPORTS=${CLI_TRANSPORTS:-local http}
AGENT_PID=
SRV_PID=
SRV_URL=

t() { printf '[%s] %s' "$CLI_TRANSPORT" "$1"; }

project() {
	mkdir -p "$1"
	printf '%s\n' "$2" >"$1/pilot.yaml"
}

wait_for() {
	local i
	for ((i = 0; i < 600; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
	return 1
}

run_field() {
	"$PILOT" show -o json "$1" | python3 -c 'import json,sys
j = json.load(sys.stdin)
v = eval(sys.argv[1])
print(v if not isinstance(v, (dict, list, bool)) and v is not None else json.dumps(v))' "$2"
}

state_is() { [ "$(run_field "$1" 'j["state"]')" = "$2" ]; }
wait_state() { wait_for state_is "$1" "$2"; }

start_agent() {
	stop_agent
	local srv=() before
	if [ "$CLI_TRANSPORT" = http ]; then srv=(--server "$SRV_URL" --token-file "$CLI_DIR/agent.token"); fi
	local rt=(--runtime "${AGENT_RUNTIME:-host}")
	[ "${AGENT_RUNTIME:-host}" = host ] && rt+=(--allow-host)
	before=$(grep -c claiming "$CLI_DIR/agent.log" 2>/dev/null)
	PILOT_HEARTBEAT=${AGENT_HEARTBEAT:-100ms} PILOT_LEASE_GIVE_UP=${AGENT_GIVE_UP:-} PILOT_CANCEL_GRACE=${AGENT_GRACE:-1s} PILOT_CLAIM_WAIT=2s \
		"$PILOT" agent "${srv[@]}" "${rt[@]}" --name "agent-$CLI_TRANSPORT" "$@" \
		2>>"$CLI_DIR/agent.log" &
	AGENT_PID=$!
	# Up and claiming before anything else happens (a signal sent to the shell's fork
	# before it runs pilot would run this script's exit trap there).
	wait_for sh -c "[ \$(grep -c claiming '$CLI_DIR/agent.log') -gt ${before:-0} ]"
}

stop_agent() {
	if [ -n "$AGENT_PID" ]; then
		kill -TERM "$AGENT_PID" 2>/dev/null
		# A second signal stops a job still running at once.
		sleep 0.2
		kill -TERM "$AGENT_PID" 2>/dev/null
		wait "$AGENT_PID" 2>/dev/null
		AGENT_PID=
	fi
}

start_server() {
	local data=$CLI_DIR/server
	CLI_ADMIN=$("$PILOT" server init --data "$data" 2>/dev/null) || { echo "Bail out! server init failed"; exit 1; }
	"$PILOT" token create --data "$data" --scope agent --name agent >"$CLI_DIR/agent.token" 2>/dev/null
	chmod 600 "$CLI_DIR/agent.token"
	: >"$CLI_DIR/server.url"
	# shellcheck disable=SC2086 # SERVER_ARGS: extra flags, split on spaces
	"$PILOT" server --data "$data" --listen 127.0.0.1:0 ${SERVER_ARGS:-} >"$CLI_DIR/server.url" \
		2>>"$CLI_DIR/server.log" &
	SRV_PID=$!
	local i
	for ((i = 0; i < 300; i++)); do
		[ -s "$CLI_DIR/server.url" ] && break
		kill -0 "$SRV_PID" 2>/dev/null || break
		sleep 0.05
	done
	SRV_URL=$(head -n 1 "$CLI_DIR/server.url")
	[ -n "$SRV_URL" ] || { echo "Bail out! the server did not start: $(cat "$CLI_DIR/server.log")"; exit 1; }
	printf '%s\n' "$CLI_ADMIN" | "$PILOT" login --server "$SRV_URL" --token-stdin 2>/dev/null ||
		{ echo "Bail out! pilot login failed"; exit 1; }
}

restart_server() {
	kill -9 "$SRV_PID" 2>/dev/null
	wait "$SRV_PID" 2>/dev/null
	sleep "${1:-0}"
	local port=${SRV_URL##*:} i k
	for ((i = 0; i < 50; i++)); do
		: >"$CLI_DIR/server.url"
		# shellcheck disable=SC2086
		"$PILOT" server --data "$CLI_DIR/server" --listen "127.0.0.1:$port" ${SERVER_ARGS:-} \
			>"$CLI_DIR/server.url" 2>>"$CLI_DIR/server.log" &
		SRV_PID=$!
		for ((k = 0; k < 200; k++)); do
			[ -s "$CLI_DIR/server.url" ] && return 0
			kill -0 "$SRV_PID" 2>/dev/null || break
			sleep 0.05
		done
		# The port may linger for a moment after the kill.
		wait "$SRV_PID" 2>/dev/null
		sleep 0.2
	done
	return 1
}

stop_server() {
	if [ -n "$SRV_PID" ]; then
		kill -TERM "$SRV_PID" 2>/dev/null
		wait "$SRV_PID" 2>/dev/null
		SRV_PID=
	fi
}

cli_cleanup() {
	[ -n "$AGENT_PID" ] && kill -9 "$AGENT_PID" 2>/dev/null
	[ -n "$SRV_PID" ] && kill -9 "$SRV_PID" 2>/dev/null
	return 0
}
at_exit cli_cleanup

for_transports() {
	local fn=$1
	for CLI_TRANSPORT in $CLI_TRANSPORTS; do
		CLI_DIR=$T_TMP/$CLI_TRANSPORT
		mkdir -p "$CLI_DIR"
		export XDG_CONFIG_HOME=$CLI_DIR/config XDG_DATA_HOME=$CLI_DIR/data
		unset PILOT_SERVER PILOT_TOKEN PILOT_DATA_DIR
		if [ "$CLI_TRANSPORT" = http ]; then start_server; fi
		start_agent
		"$fn"
		stop_agent
		stop_server
		if [ "$T_FAILED" -gt 0 ]; then
			echo "# agent log ($CLI_TRANSPORT):"
			tail -n 20 "$CLI_DIR/agent.log" 2>/dev/null | sed 's/^/#   /'
		fi
	done
}

finish() {
	plan "$T_NUM"
	done_testing
}
