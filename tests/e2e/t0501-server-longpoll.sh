#!/usr/bin/env bash
# pilot server's long-polls: a waiting claim gets a run submitted meanwhile, a run out
# of its retry backoff (with the reaper idle for an hour: the due-time wake-up), and a
# run whose agent vanished (the reaper); a log follow wakes on an append; events as
# Server-Sent Events with Last-Event-ID resume and as long-polled JSON; and SIGTERM
# answers a waiting claim with 204. No timing is asserted: a wake-up that never came
# shows up as a long-poll that returned empty.
. "$SRCDIR/tests/e2e/lib.sh"
command -v curl >/dev/null || skip_all "curl is not installed"
plan 33

DATA="$T_TMP/data"
SRV_PID=
URL=

srv_start() {
	: >"$T_TMP/url"
	"$PILOT" server --data "$DATA" --listen "${LISTEN:-127.0.0.1:0}" "$@" >"$T_TMP/url" 2>>"$T_TMP/server.log" &
	SRV_PID=$!
	at_exit "kill -9 $SRV_PID 2>/dev/null"
	local i
	for i in $(seq 200); do
		[ -s "$T_TMP/url" ] && break
		kill -0 "$SRV_PID" 2>/dev/null || break
		sleep 0.05
	done
	URL=$(head -1 "$T_TMP/url")
}

# api METHOD PATH [CURL_ARGS...]: JSON body in $BODY, status in $CODE.
api() {
	local m=$1 p=$2
	shift 2
	CODE=$(curl -s -o "$T_TMP/body" -w '%{http_code}' -X "$m" -H "Authorization: Bearer $TOKEN" "$@" "$URL$p") || CODE=000
	BODY=$(cat "$T_TMP/body")
}

json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# submit NAME [RETRY_JSON]: prints the run id.
submit() {
	local retry=${2:-null}
	api POST /v1/runs -H 'Content-Type: application/json' \
		-d "{\"name\":\"$1\",\"spec_json\":\"{\\\"name\\\":\\\"$1\\\",\\\"command\\\":[\\\"true\\\"]}\",\"requires\":{\"pool\":\"lp\"},\"retry\":$retry}"
	json 'd["id"]' <<<"$BODY"
}

# A claim that waits, in the background: its answer lands in FILE.code and FILE.
claim_bg() {
	local file=$1 wait=$2
	curl -s -o "$file" -w '%{http_code}' -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
		-d '{"agent":"lp-agent","labels":{"pool":"lp"}}' "$URL/v1/claims?wait=$wait" >"$file.code" &
	CLAIM_PID=$!
	# Let it reach the server and park there.
	sleep 0.3
}

TOKEN=$("$PILOT" server init --data "$DATA" 2>/dev/null)
srv_start --reap-interval 1h --lease-ttl 2s

# ---- a waiting claim gets a submitted run ----
claim_bg "$T_TMP/c1" 30s
R1=$(submit lp-one)
wait "$CLAIM_PID"
equals "a waiting claim is answered with the run submitted meanwhile" "$(cat "$T_TMP/c1.code"):$(json 'd["run"]["id"]' <"$T_TMP/c1")" "200:$R1"
A1=$(json 'd["attempt_id"]' <"$T_TMP/c1")
L1=$(json 'd["lease_token"]' <"$T_TMP/c1")

# ---- a log follow wakes on an append ----
curl -s -D "$T_TMP/lh" -o "$T_TMP/log" -H "Authorization: Bearer $TOKEN" "$URL/v1/runs/$R1/logs?offset=0&wait=30s" &
LOG_PID=$!
sleep 0.3
api PUT "/v1/attempts/$A1/logs?offset=0" -H "Pilot-Lease: $L1" --data-binary 'hello'
equals "an append is acknowledged" "$CODE" "200"
wait "$LOG_PID"
equals "the waiting log follow returns the appended bytes" "$(cat "$T_TMP/log")" "hello"
contains "with the next offset" "$(cat "$T_TMP/lh")" "Pilot-Next-Offset: 5"
api PUT "/v1/attempts/$A1/logs?offset=9" -H "Pilot-Lease: $L1" --data-binary 'gap'
equals "a gap: 409" "$CODE" "409"
equals "with the expected offset" "$(json 'd["error"]["expected_offset"]' <<<"$BODY")" "5"
api POST "/v1/attempts/$A1/heartbeat" -H "Pilot-Lease: wrong"
equals "a heartbeat with a wrong lease: 409" "$CODE" "409"

# ---- events: JSON long-poll and Server-Sent Events ----
api GET "/v1/events?format=json"
LAST=$(json 'd["last_seq"]' <<<"$BODY")
curl -s -o "$T_TMP/ev" -H "Authorization: Bearer $TOKEN" "$URL/v1/events?format=json&after=$LAST&wait=30s" &
EV_PID=$!
sleep 0.3
api POST "/v1/attempts/$A1/finish" -H "Pilot-Lease: $L1" -H 'Content-Type: application/json' \
	-d '{"state":"succeeded","reason":"exit_code","exit_code":0}'
equals "finish" "$CODE" "200"
wait "$EV_PID"
equals "a waiting event poll gets the finish" "$(json '[e["type"] for e in d["events"]][0]' <"$T_TMP/ev")" "finished"
curl -s -N --max-time 5 -o "$T_TMP/sse" -H "Authorization: Bearer $TOKEN" "$URL/v1/runs/$R1/events"
SSE=$(cat "$T_TMP/sse")
contains "the run's event stream has its events" "$SSE" "event: submitted"
contains "with ids" "$SSE" "id: "
contains "and ends with the run" "$SSE" "event: finished"
FIRST=$(grep -m1 '^id: ' "$T_TMP/sse" | cut -d' ' -f2)
curl -s -N --max-time 5 -o "$T_TMP/sse2" -H "Authorization: Bearer $TOKEN" -H "Last-Event-ID: $FIRST" "$URL/v1/runs/$R1/events"
lacks "Last-Event-ID resumes after that event" "$(cat "$T_TMP/sse2")" "event: submitted"
contains "and still delivers the rest" "$(cat "$T_TMP/sse2")" "event: finished"
curl -s -N --max-time 3 -o "$T_TMP/sse3" -H "Authorization: Bearer $TOKEN" "$URL/v1/events" &
SSE_PID=$!
sleep 0.5
R0=$(submit lp-streamed)
wait "$SSE_PID"
contains "the open stream of every run delivers an event written after it parked" "$(cat "$T_TMP/sse3")" "\"run_id\":\"$R0\""
lacks "and starts now, not with the history" "$(cat "$T_TMP/sse3")" "\"run_id\":\"$R1\""
api POST "/v1/runs/$R0/cancel"
equals "cancel a queued run" "$(json 'd["state"]' <<<"$BODY")" "canceled"

# ---- a claim wakes when a retry backoff ends (the reaper is idle for an hour) ----
R2=$(submit lp-retry '{"max_attempts":2,"on":["exit_code"],"backoff_ms":1000,"max_backoff_ms":1000}')
api POST /v1/claims -H 'Content-Type: application/json' -d '{"agent":"lp-agent","labels":{"pool":"lp"}}'
A2=$(json 'd["attempt_id"]' <<<"$BODY")
L2=$(json 'd["lease_token"]' <<<"$BODY")
api POST "/v1/attempts/$A2/finish" -H "Pilot-Lease: $L2" -H 'Content-Type: application/json' \
	-d '{"state":"failed","reason":"exit_code","exit_code":3}'
equals "a failed attempt with retries left: the run waits" "$(json 'd["state"]' <<<"$BODY")" "waiting"
claim_bg "$T_TMP/c2" 30s
wait "$CLAIM_PID"
equals "a waiting claim gets attempt 2 when the backoff ends" \
	"$(cat "$T_TMP/c2.code"):$(json 'd["run"]["id"]' <"$T_TMP/c2"):$(json 'd["attempt"]' <"$T_TMP/c2")" "200:$R2:2"
api POST "/v1/attempts/$(json 'd["attempt_id"]' <"$T_TMP/c2")/finish" -H "Pilot-Lease: $(json 'd["lease_token"]' <"$T_TMP/c2")" \
	-H 'Content-Type: application/json' -d '{"state":"succeeded","reason":"exit_code","exit_code":0}'
equals "attempt 2 succeeds" "$(json 'd["state"]' <<<"$BODY")" "succeeded"

# ---- a claim never goes to an agent that went away while it waited ----
curl -s -o /dev/null -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
	-d '{"agent":"lp-dead","labels":{"pool":"lp"}}' "$URL/v1/claims?wait=60s" &
DEAD_PID=$!
sleep 0.3
kill -9 "$DEAD_PID"
wait "$DEAD_PID" 2>/dev/null
claim_bg "$T_TMP/c5" 30s
R4=$(submit lp-after-dead)
wait "$CLAIM_PID"
equals "the run goes to the live waiting agent, not the one that vanished first" \
	"$(cat "$T_TMP/c5.code"):$(json 'd["run"]["id"]' <"$T_TMP/c5"):$(json 'd["run"]["agent"]' <"$T_TMP/c5")" \
	"200:$R4:lp-agent"
api POST "/v1/attempts/$(json 'd["attempt_id"]' <"$T_TMP/c5")/finish" -H "Pilot-Lease: $(json 'd["lease_token"]' <"$T_TMP/c5")" \
	-H 'Content-Type: application/json' -d '{"state":"succeeded","reason":"exit_code","exit_code":0}'

# ---- SIGTERM answers a waiting claim ----
claim_bg "$T_TMP/c3" 60s
kill -TERM "$SRV_PID"
st=0
wait "$SRV_PID" || st=$?
equals "the server exits 0 with a claim waiting" "$st" "0"
wait "$CLAIM_PID"
equals "the waiting claim got 204" "$(cat "$T_TMP/c3.code")" "204"

# ---- a claim wakes when the reaper requeues a lost attempt ----
srv_start --reap-interval 200ms --lease-ttl 1s
R3=$(submit lp-lost)
api POST /v1/claims -H 'Content-Type: application/json' -d '{"agent":"lp-ghost","labels":{"pool":"lp"}}'
equals "a claim by an agent that will vanish" "$(json 'd["run"]["id"]' <<<"$BODY")" "$R3"
A3=$(json 'd["attempt_id"]' <<<"$BODY")
L3=$(json 'd["lease_token"]' <<<"$BODY")
claim_bg "$T_TMP/c4" 30s
wait "$CLAIM_PID"
equals "a waiting claim gets the run once the lease expired" \
	"$(cat "$T_TMP/c4.code"):$(json 'd["run"]["id"]' <"$T_TMP/c4"):$(json 'd["attempt"]' <"$T_TMP/c4")" "200:$R3:2"
api PUT "/v1/attempts/$A3/logs?offset=0" -H "Pilot-Lease: $L3" --data-binary 'late'
equals "the vanished agent's late write: 409" "$CODE" "409"
contains "superseded" "$BODY" "superseded"
api GET "/v1/runs/$R3/events?format=json"
contains "the run has a 'lost' event" "$BODY" '"type":"lost"'

# ---- wait=0 and an empty wait ----
api POST "/v1/claims?wait=0" -H 'Content-Type: application/json' -d '{"agent":"lp-agent","labels":{"pool":"none"}}'
equals "nothing to claim without waiting: 204" "$CODE" "204"
api POST "/v1/claims?wait=300ms" -H 'Content-Type: application/json' -d '{"agent":"lp-agent","labels":{"pool":"none"}}'
equals "nothing to claim within the wait: 204" "$CODE" "204"
api POST "/v1/claims?wait=soon" -H 'Content-Type: application/json' -d '{"agent":"lp-agent"}'
equals "a bad wait: 400" "$CODE" "400"
api GET "/v1/runs/$R3/logs?attempt=2&wait=300ms"
equals "a log follow with nothing new returns empty after the wait" "$CODE:$BODY" "200:"

kill -TERM "$SRV_PID"
st=0
wait "$SRV_PID" || st=$?
equals "a clean stop" "$st" "0"
done_testing
