#!/usr/bin/env bash
# pilot server: init, authentication (401/403), tokens through the API and on the data
# directory, login/whoami/logout, the error shape, bundles (HEAD/PUT/GET, hash mismatch,
# 413 before the body), /metrics accepted by promtool, the access log, a clean stop.
. "$SRCDIR/tests/e2e/lib.sh"
command -v curl >/dev/null || skip_all "curl is not installed"
plan 87

DATA="$T_TMP/data"
SRV_PID=
URL=

srv_start() {
	: >"$T_TMP/url"
	"$PILOT" server --data "$DATA" --listen 127.0.0.1:0 "$@" >"$T_TMP/url" 2>>"$T_TMP/server.log" &
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

srv_stop() {
	kill -TERM "$SRV_PID"
	local st=0
	wait "$SRV_PID" || st=$?
	return $st
}

# http OUT_PREFIX CURL_ARGS...: status in $CODE, body in $BODY, headers in $HDRS.
http() {
	CODE=$(curl -s -o "$T_TMP/body" -D "$T_TMP/hdrs" -w '%{http_code}' "$@") || CODE=000
	BODY=$(cat "$T_TMP/body")
	HDRS=$(cat "$T_TMP/hdrs")
}

# ---- init ----
expect_status 0 "server init creates the data directory" "$PILOT" server init --data "$DATA"
ADMIN=$OUT
if [[ $ADMIN =~ ^pilot_[0-9a-f]{48}$ ]]; then ok "init prints only the token when stdout is not a terminal"; else not_ok "init prints the token" "$ADMIN"; fi
equals "the data directory is private" "$(stat -c %a "$DATA")" "700"
expect_status 1 "init refuses an initialised directory" "$PILOT" server init --data "$DATA"
contains "and says how to make more tokens" "$ERR" "pilot token create --data"

# ---- usage errors ----
expect_status 2 "an unknown setting is a usage error" "$PILOT" server --data "$DATA" --set max_bundel_size=1G
contains "with a suggestion" "$ERR" "max_bundle_size"
expect_status 1 "a bad listen address is refused" "$PILOT" server --data "$DATA" --listen nowhere
contains "naming it" "$ERR" "nowhere"

srv_start --set max_bundle_size=64KiB --set max_json_body=16KiB
case $URL in http://127.0.0.1:*) ok "the server prints its URL ($URL)" ;; *) not_ok "the server prints its URL" "$(cat "$T_TMP/server.log")" ;; esac

expect_status 1 "a second server on the same data directory is refused" "$PILOT" server --data "$DATA" --listen 127.0.0.1:0
contains "saying so" "$ERR" "another pilot server is running"

# ---- open routes and authentication ----
http "$URL/healthz"
equals "/healthz needs no token" "$CODE:$BODY" "200:ok"
http "$URL/v1/status"
equals "no token: 401" "$CODE" "401"
contains "the one error shape" "$BODY" '{"error":{"code":"unauthorized","message":'
contains "with WWW-Authenticate" "$HDRS" "WWW-Authenticate: Bearer"
UNKNOWN=$("$PILOT" server init --data "$T_TMP/other" 2>/dev/null)
http -H "Authorization: Bearer $UNKNOWN" "$URL/v1/status"
equals "a well-formed but unknown token: 401" "$CODE" "401"
TYPO="${ADMIN%?}$([ "${ADMIN: -1}" = 0 ] && echo 1 || echo 0)"
http -H "Authorization: Bearer $TYPO" "$URL/v1/status"
equals "a mistyped token: 401" "$CODE" "401"
contains "caught by the checksum" "$BODY" "checksum"
http -H "Authorization: Bearer $ADMIN" "$URL/v1/status"
equals "the admin token reads the status" "$CODE" "200"

# ---- tokens on the data directory and through the API ----
expect_status 0 "token create --data makes an agent token" "$PILOT" token create --data "$DATA" --scope agent --name a1
AGENT=$OUT
http -H "Authorization: Bearer $AGENT" -H 'Content-Type: application/json' \
	-d '{"name":"nope","spec_json":"{}"}' "$URL/v1/runs"
equals "an agent token cannot submit: 403" "$CODE" "403"
contains "naming the missing scope" "$BODY" "lacks the 'submit' scope"
http -H "Authorization: Bearer $AGENT" "$URL/v1/runs"
equals "nor read runs: 403" "$CODE" "403"
http -H "Authorization: Bearer $AGENT" "$URL/v1/tokens"
equals "nor list tokens: 403" "$CODE" "403"

export PILOT_SERVER="$URL"
expect_status 1 "without a token the CLI gets 401" "$PILOT" whoami
contains "and is told to log in" "$ERR" "run 'pilot login'"
unset PILOT_SERVER
expect_status 0 "login with --token-stdin" sh -c "printf '%s\n' '$ADMIN' | '$PILOT' login --server '$URL' --token-stdin"
equals "the config file is 0600" "$(stat -c %a "$XDG_CONFIG_HOME/pilot/config.yaml")" "600"
expect_status 1 "login refuses a mistyped token before sending it" sh -c "printf '%s\n' '$TYPO' | '$PILOT' login --server '$URL' --token-stdin"
contains "saying why" "$ERR" "checksum"
expect_status 0 "whoami" "$PILOT" whoami
equals "names the token" "$OUT" "admin"
expect_status 0 "token create through the server" "$PILOT" token create --scope submit,read --name alice --expires 1h
ALICE=$OUT
if [[ $ALICE =~ ^pilot_[0-9a-f]{48}$ ]]; then ok "prints only the token"; else not_ok "prints only the token" "$ALICE"; fi
expect_status 0 "token list" "$PILOT" token list
contains "lists alice" "$OUT" "alice"
contains "with her scopes" "$(grep alice <<<"$OUT")" "read submit"
expect_status 1 "a second live token with the same name is refused" "$PILOT" token create --scope read --name alice
expect_status 2 "an unknown scope is a usage error" "$PILOT" token create --scope raed
contains "with a suggestion" "$ERR" "read"

# ---- submit, idempotency, lookups ----
SUB='{"name":"hello","spec_json":"{\"name\":\"hello\",\"command\":[\"true\"]}"}'
http -H "Authorization: Bearer $ALICE" -H 'Idempotency-Key: k1' -H 'Content-Type: application/json' -d "$SUB" "$URL/v1/runs"
equals "submit: 201" "$CODE" "201"
RUN=$(sed -n 's/.*"id":"\(r[0-9a-z]*\)".*/\1/p' <<<"$BODY" | head -1)
contains "the submitter is the token's name" "$BODY" '"submitter":"alice"'
http -H "Authorization: Bearer $ALICE" -H 'Idempotency-Key: k1' -H 'Content-Type: application/json' -d "$SUB" "$URL/v1/runs"
equals "a replay: 200" "$CODE" "200"
contains "with the same run" "$BODY" "\"id\":\"$RUN\""
http -H "Authorization: Bearer $ALICE" -H 'Idempotency-Key: k1' -H 'Content-Type: application/json' \
	-d '{"name":"other","spec_json":"{\"name\":\"other\",\"command\":[\"true\"]}"}' "$URL/v1/runs"
equals "the same key with another payload: 422" "$CODE" "422"
contains "as a conflict" "$BODY" '"code":"conflict"'
http -H "Authorization: Bearer $ALICE" -H 'Content-Type: application/json' \
	-d '{"name":"hello","spec_json":"{\"name\":\"hello\",\"command\":\"true\"}"}' "$URL/v1/runs"
equals "a spec no agent could run (command a string): 422" "$CODE" "422"
contains "naming the field" "$BODY" "command: expected an array, not a string"
http -H "Authorization: Bearer $ALICE" -H 'Content-Type: application/json' -d '{"name":"hello","spec_json":"{}"}' "$URL/v1/runs"
equals "a spec without a name: 422" "$CODE:$(grep -o '"code":"[a-z_]*"' <<<"$BODY")" '422:"code":"invalid"'
http -H "Authorization: Bearer $ALICE" "$URL/v1/runs/${RUN:0:12}"
equals "get by prefix" "$CODE" "200"
http -H "Authorization: Bearer $ALICE" "$URL/v1/runs/rzzzzzzzz"
equals "an unknown run: 404" "$CODE:$(grep -o '"code":"[a-z_]*"' <<<"$BODY")" '404:"code":"not_found"'
http -X DELETE -H "Authorization: Bearer $ALICE" "$URL/v1/runs"
equals "a wrong method: 405" "$CODE" "405"
http -H "Authorization: Bearer $ALICE" -H 'Content-Type: application/json' --data-binary "@-" "$URL/v1/runs" \
	< <(head -c 20000 /dev/zero | tr '\0' ' ')
equals "a JSON body over max_json_body: 413" "$CODE" "413"
http -H "Authorization: Bearer $ALICE" -H 'Content-Type: application/json' -d '{"name":' "$URL/v1/runs"
equals "malformed JSON: 400" "$CODE" "400"

# ---- bundles ----
printf 'bundle bytes\n' >"$T_TMP/b1"
SHA=$(sha256sum "$T_TMP/b1" | cut -d' ' -f1)
http -I -H "Authorization: Bearer $ALICE" "$URL/v1/bundles/$SHA"
equals "HEAD of a missing bundle: 404" "$CODE" "404"
printf 'other bytes\n' >"$T_TMP/b2"
http -X PUT -H "Authorization: Bearer $ALICE" --data-binary "@$T_TMP/b2" "$URL/v1/bundles/$SHA"
equals "a body that does not hash to the name: 422" "$CODE" "422"
http -X PUT -H "Authorization: Bearer $ALICE" --data-binary "@$T_TMP/b1" "$URL/v1/bundles/$SHA"
equals "PUT: 201" "$CODE" "201"
http -X PUT -H "Authorization: Bearer $ALICE" --data-binary "@$T_TMP/b1" "$URL/v1/bundles/$SHA"
equals "PUT again: 200" "$CODE" "200"
http -I -H "Authorization: Bearer $ALICE" "$URL/v1/bundles/$SHA"
equals "HEAD: 200, the upload can be skipped" "$CODE" "200"
http -H "Authorization: Bearer $AGENT" "$URL/v1/bundles/$SHA"
equals "an agent downloads it" "$CODE:$BODY" "200:bundle bytes"
head -c 200000 /dev/urandom >"$T_TMP/big"
BIGSHA=$(sha256sum "$T_TMP/big" | cut -d' ' -f1)
http -X PUT -H "Authorization: Bearer $ALICE" --data-binary "@$T_TMP/big" "$URL/v1/bundles/$BIGSHA"
equals "a bundle over max_bundle_size: 413" "$CODE" "413"
contains "naming the limit" "$BODY" "max_bundle_size"
http -X PUT -H "Authorization: Bearer $ALICE" -H "Transfer-Encoding: chunked" --data-binary "@$T_TMP/big" "$URL/v1/bundles/$BIGSHA"
equals "the same without a Content-Length (chunked): 413 once it is in" "$CODE" "413"

# ---- revocation ----
expect_status 0 "token revoke through the server" "$PILOT" token revoke alice
http -H "Authorization: Bearer $ALICE" "$URL/v1/runs"
equals "a revoked token: 401" "$CODE" "401"
expect_status 1 "revoking an unknown token fails" "$PILOT" token revoke nobody

# ---- metrics ----
http "$URL/metrics"
equals "/metrics needs no token" "$CODE" "200"
printf '%s\n' "$BODY" >"$T_TMP/metrics.txt"
if command -v promtool >/dev/null; then
	check "promtool check metrics accepts /metrics" sh -c "promtool check metrics < '$T_TMP/metrics.txt'"
else
	ok "promtool check metrics accepts /metrics # SKIP promtool not installed"
fi
contains "requests are counted by route pattern" "$BODY" 'pilot_http_requests_total{method="POST",route="/v1/runs",code="201"} 1'
contains "runs by state" "$BODY" 'pilot_runs{state="queued"} 1'
contains "the claim latency histogram" "$BODY" 'pilot_claim_latency_seconds_bucket{le="+Inf"}'

# ---- logout ----
expect_status 0 "logout --keep-server" "$PILOT" logout --keep-server
expect_status 1 "whoami after logout --keep-server: 401" "$PILOT" whoami
contains "with the hint" "$ERR" "pilot login"
expect_status 0 "logout" "$PILOT" logout
contains "says pilot works locally again" "$ERR" "commands use this machine's local store again"
expect_status 0 "whoami after logout: the local store" "$PILOT" whoami
contains "says so" "$OUT" "no server configured"

# ---- stop, access log, check ----
expect_status 1 "server check refuses a running server" "$PILOT" server check --data "$DATA"
contains "saying why" "$ERR" "a pilot server is running on '$DATA': stop it first"
if srv_stop; then ok "SIGTERM: exit 0"; else not_ok "SIGTERM: exit 0" "$(tail -5 "$T_TMP/server.log")"; fi
contains "it says it stopped" "$(cat "$T_TMP/server.log")" "stopped"
contains "a text access log line per request" "$(cat "$T_TMP/server.log")" " GET /healthz 200 "
expect_status 0 "server check on the stopped server" "$PILOT" server check --data "$DATA"
equals "says ok" "$OUT" "ok"

: >"$T_TMP/server.log"
srv_start --log-format json
http "$URL/healthz"
srv_stop || true
line=$(grep '"path":"/healthz"' "$T_TMP/server.log" | head -1)
check "--log-format json writes JSON lines" python3 -c "import json,sys; d=json.loads(sys.argv[1]); assert d['status']==200 and d['route']=='/healthz' and 'ms' in d" "$line"
done_testing
