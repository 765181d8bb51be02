#!/usr/bin/env bash
# pilot list / ps / show on the local store: an empty store, runs in several states,
# the filters, paging, JSON, prefixes, and the failure paths.
. "$SRCDIR/tests/e2e/lib.sh"
: "${API_TOOL:?API_TOOL must point at the api-tool test program}"
plan 46

expect_status 0 "list on an empty store" "$PILOT" list
equals "prints nothing" "$OUT" ""
expect_status 0 "list --output json on an empty store" "$PILOT" list --output json
contains "an empty runs array" "$OUT" '"runs": []'

a=$("$API_TOOL" submit train)
b=$("$API_TOOL" submit train)
c=$("$API_TOOL" submit eval)
read -r run att tok < <("$API_TOOL" claim box1)
equals "the oldest run is claimed first" "$run" "$a"
"$API_TOOL" log "$att" "$tok" 0 "hello from the job" >/dev/null
"$API_TOOL" finish "$att" "$tok" failed 3
read -r run2 att2 tok2 < <("$API_TOOL" claim box2)
equals "then the next" "$run2" "$b"

expect_status 0 "list" "$PILOT" list
contains "has the header" "$OUT" "ID"
contains "header columns" "$OUT" "NAME"
contains "shows the failed run with its exit code" "$OUT" "failed (exit 3)"
contains "shows the running run" "$OUT" "running"
contains "shows the queued run" "$OUT" "queued"
contains "shows the agent" "$OUT" "box2"
first=$(sed -n 2p <<< "$OUT" | awk '{print $1}')
equals "newest first" "$first" "$c"

expect_status 0 "ps is an alias" "$PILOT" ps -q
equals "-q prints ids only, newest first" "$(tr '\n' ' ' <<< "$OUT")" "$c $b $a "
expect_status 0 "--state" "$PILOT" list -q --state failed
equals "--state failed" "$OUT" "$a"
expect_status 0 "--state with a set" "$PILOT" list -q --state queued,running
equals "--state queued,running" "$(tr '\n' ' ' <<< "$OUT")" "$c $b "
expect_status 0 "--name" "$PILOT" list -q --name eval
equals "--name eval" "$OUT" "$c"
expect_status 0 "--limit" "$PILOT" list -q --limit 2
equals "--limit 2" "$(tr '\n' ' ' <<< "$OUT")" "$c $b "
expect_status 0 "--after pages on" "$PILOT" list -q --limit 2 --after "$b"
equals "the next page" "$OUT" "$a"
expect_status 0 "--output json" "$PILOT" list --output json --limit 2
next=$(python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["next_after"], len(d["runs"]), d["runs"][0]["state"])' <<< "$OUT")
equals "json carries the cursor and the runs" "$next" "$b 2 queued"
expect_status 2 "an unknown state is a usage error" "$PILOT" list --state bogus
contains "naming it" "$ERR" "bogus"
expect_status 2 "an unknown format is a usage error" "$PILOT" list --output xml

expect_status 0 "show a failed run" "$PILOT" show "$a"
contains "state and reason" "$OUT" "failed (exit_code), exit code 3"
contains "the attempt table" "$OUT" "box1"
contains "the events" "$OUT" "claimed"
expect_status 0 "show by a prefix" "$PILOT" show "${a:0:13}"
contains "finds the run" "$OUT" "$a"
expect_status 0 "show --output json" "$PILOT" show -o json "$b"
got=$(python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["state"], d["attempts"][0]["agent"], d["events"][0]["type"])' <<< "$OUT")
equals "json has attempts and events" "$got" "running box2 submitted"
expect_status 1 "show an unknown run" "$PILOT" show rzzzzzzzzzzzzzz
contains "says it is not found" "$ERR" "not found"
expect_status 1 "an ambiguous prefix" "$PILOT" show r
contains "lists candidates" "$ERR" "ambiguous"

expect_status 0 "run ids complete" "$PILOT" __complete show "${c:0:14}"
equals "to the run" "$OUT" "$c"
PILOT_SERVER=http://127.0.0.1:1 expect_status 1 "an unreachable server fails the command" "$PILOT" list
done_testing
