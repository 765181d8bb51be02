#!/usr/bin/env bash
# pilot list / ps and pilot show over both transports: filters, paging (--limit,
# --after, --all), table/json/yaml, -q; run id prefixes (unique, ambiguous with the
# candidates listed, unknown), run-id completion; and the errors a user meets first: an
# unreachable server (URL and cause) and a missing or rejected token (pilot login).
. "$SRCDIR/tests/e2e/lib.sh"
. "$SRCDIR/tests/e2e/lib-cli.sh"

lists() {
	project "$CLI_DIR/ok" 'name: okay
command: echo fine'
	project "$CLI_DIR/bad" 'name: broken
command: echo bad; exit 3'
	local ids=() i
	for i in 1 2 3; do ids+=("$("$PILOT" submit --wait "$CLI_DIR/ok" 2>/dev/null)"); done
	ids+=("$("$PILOT" submit --wait "$CLI_DIR/bad" 2>/dev/null)")
	stop_agent
	ids+=("$("$PILOT" submit "$CLI_DIR/ok")")
	local newest=${ids[4]} failed=${ids[3]}

	expect_status 0 "$(t 'list')" "$PILOT" list
	equals "$(t 'the header')" "$(head -n 1 <<<"$OUT" | tr -s ' ')" "ID NAME STATE ATTEMPT AGENT AGE DURATION"
	equals "$(t 'newest first')" "$(sed -n 2p <<<"$OUT" | awk '{print $1}')" "$newest"
	contains "$(t 'a failed run shows its exit code')" "$(tr -s ' ' <<<"$OUT")" "broken failed (exit 3) 1 agent-$CLI_TRANSPORT"
	contains "$(t 'a queued run has no attempt yet')" "$(grep "$newest" <<<"$OUT" | tr -s ' ')" "okay queued - -"
	expect_status 0 "$(t 'ps -q')" "$PILOT" ps -q
	equals "$(t 'ids only, newest first')" "$(tr '\n' ' ' <<<"$OUT")" "${ids[4]} ${ids[3]} ${ids[2]} ${ids[1]} ${ids[0]} "
	expect_status 0 "$(t '--state')" "$PILOT" list -q --state failed,queued
	equals "$(t 'only those states')" "$(tr '\n' ' ' <<<"$OUT")" "$newest $failed "
	expect_status 0 "$(t '--name')" "$PILOT" list -q --name broken
	equals "$(t 'only that name')" "$OUT" "$failed"
	expect_status 0 "$(t '--since')" "$PILOT" list -q --since 1h --state queued
	equals "$(t 'recent runs')" "$OUT" "$newest"
	expect_status 0 "$(t '--limit 2')" "$PILOT" list -q --limit 2
	equals "$(t 'two runs')" "$(tr '\n' ' ' <<<"$OUT")" "${ids[4]} ${ids[3]} "
	expect_status 0 "$(t '--after pages on')" "$PILOT" list -q --limit 2 --after "${ids[3]}"
	equals "$(t 'the next page')" "$(tr '\n' ' ' <<<"$OUT")" "${ids[2]} ${ids[1]} "
	expect_status 0 "$(t '--all')" "$PILOT" list -q --all
	equals "$(t 'every run')" "$(wc -l <<<"$OUT")" 5
	expect_status 0 "$(t '--output json')" "$PILOT" list --output json --limit 2
	equals "$(t 'json: the runs and the cursor')" "$(python3 -c 'import json,sys; d=json.load(sys.stdin); print(len(d["runs"]), d["runs"][1]["state"], d["runs"][1]["exit_code"], d["next_after"])' <<<"$OUT")" "2 failed 3 ${ids[3]}"
	expect_status 0 "$(t '--output json --all')" "$PILOT" list --output json --all
	equals "$(t 'json --all: every run, no cursor')" "$(python3 -c 'import json,sys; d=json.load(sys.stdin); print(len(d["runs"]), d["next_after"])' <<<"$OUT")" "5 None"
	expect_status 0 "$(t '--output yaml')" "$PILOT" list -o yaml --limit 3
	equals "$(t 'yaml reads back as the json')" "$(python3 -c 'import yaml,sys; d=yaml.safe_load(sys.stdin); print(len(d["runs"]), d["runs"][0]["id"], d["runs"][0]["exit_code"], d["runs"][2]["retry"]["on"], d["next_after"])' <<<"$OUT")" "3 $newest None ['exit_code', 'timeout'] ${ids[2]}"
	expect_status 0 "$(t 'an empty result as yaml')" "$PILOT" list -o yaml --name nothing
	equals "$(t 'is an empty list')" "$(python3 -c 'import yaml,sys; print(yaml.safe_load(sys.stdin))' <<<"$OUT")" "{'runs': [], 'next_after': None}"
	expect_status 2 "$(t 'an unknown state is a usage error')" "$PILOT" list --state finished
	contains "$(t 'naming it')" "$ERR" "finished"
	expect_status 2 "$(t 'an unknown format is a usage error')" "$PILOT" list -o xml
	contains "$(t 'listing the formats')" "$ERR" "expected table, json or yaml"
	expect_status 2 "$(t 'a bad cursor is a usage error')" "$PILOT" list --after 'x;y'

	# Prefixes: the first two runs' ids share one (they start with the time).
	local common=${ids[0]} n=0
	while [ "${ids[0]:0:n+1}" = "${ids[1]:0:n+1}" ]; do n=$((n + 1)); done
	common=${ids[0]:0:n}
	expect_status 0 "$(t 'show by a unique prefix')" "$PILOT" show "${failed:0:14}"
	contains "$(t 'finds the run')" "$OUT" "run        $failed"
	expect_status 1 "$(t 'an ambiguous prefix fails')" "$PILOT" show r
	contains "$(t 'says it is ambiguous')" "$ERR" "run prefix 'r' is ambiguous; it matches:"
	contains "$(t 'lists the candidates with name and state')" "$ERR" "$failed  broken"
	expect_status 1 "$(t 'an unknown run')" "$PILOT" show rzzzzzzzzzzzzzz
	contains "$(t 'is not found')" "$ERR" "run 'rzzzzzzzzzzzzzz' not found"
	expect_status 1 "$(t 'logs of an ambiguous prefix')" "$PILOT" logs "$common"
	contains "$(t 'lists candidates too')" "$ERR" "${ids[0]}"
	expect_status 0 "$(t 'run ids complete')" "$PILOT" __complete logs "${failed:0:14}"
	equals "$(t 'to the run')" "$OUT" "$failed"
	expect_status 0 "$(t 'completion lists recent runs')" "$PILOT" __complete cancel r
	equals "$(t 'all of them here')" "$(wc -l <<<"$OUT")" 5
	expect_status 0 "$(t 'completion of an option value')" "$PILOT" __complete list --after "${newest:0:14}"
	equals "$(t 'completes runs too')" "$OUT" "$newest"
	"$PILOT" cancel "$newest" >/dev/null
}

for_transports lists

# ---- the first errors a user meets ---------------------------------------------------
export XDG_CONFIG_HOME=$T_TMP/errs/config XDG_DATA_HOME=$T_TMP/errs/data
PILOT_HTTP_RETRIES=0 expect_status 1 "an unreachable server fails" "$PILOT" --server http://127.0.0.1:1 list
contains "naming the URL" "$ERR" "cannot reach server 'http://127.0.0.1:1'"
contains "and the cause" "$ERR" "Couldn't connect"
CLI_DIR=$T_TMP/errs
mkdir -p "$CLI_DIR"
CLI_TRANSPORT=http start_server
"$PILOT" logout >/dev/null 2>&1
expect_status 1 "no token: the server refuses" "$PILOT" --server "$SRV_URL" list
contains "and pilot says to log in" "$ERR" "run 'pilot login'"
RTOK=$("$PILOT" token create --data "$CLI_DIR/server" --scope read --name r2 2>/dev/null)
"$PILOT" token revoke --data "$CLI_DIR/server" r2 >/dev/null 2>&1 || true
PILOT_TOKEN=$RTOK expect_status 1 "a revoked token" "$PILOT" --server "$SRV_URL" status
contains "is told to log in" "$ERR" "pilot login"
stop_server
finish
