#!/usr/bin/env bash
# Pipelines (jobs: and needs: in pilot.yaml) over both transports, run by a real agent
# with room for four jobs: a diamond a -> (b, c) -> d runs each job after the ones it
# needs (by the store's timestamps) and hands their artifacts on under needs/JOB/;
# examples/pipeline trains and evaluates (and fails its quality gate with -p epochs=2); in a
# seven-job graph a failing job skips exactly its descendants while the rest run;
# pilot show draws the tree, pilot list --pipeline lists the runs, retry --failed runs
# only the failed and skipped jobs again (after their needs), cancel stops every job;
# mistakes in needs are reported with file:line:col; pilot run runs one here, -j 2 in
# parallel.
. "$SRCDIR/tests/e2e/lib.sh"
. "$SRCDIR/tests/e2e/lib-cli.sh"

# The pipeline's latest runs as "JOB=STATE ..." in job order (pilot show -o json).
job_states() {
	"$PILOT" show -o json "$1" | python3 -c 'import json,sys
print(" ".join(j["name"] + "=" + j["state"] for j in json.load(sys.stdin)["jobs"]))'
}

# Until none of pipeline $1's latest runs is queued, waiting or running (4 minutes).
wait_settled() {
	local i
	for ((i = 0; i < 2400; i++)); do
		case " $(job_states "$1") " in
		*=queued* | *=waiting* | *=running* | *=canceling* | "  ") sleep 0.1 ;;
		*) return 0 ;;
		esac
	done
	return 1
}

# The run of job $2 in pipeline $1 (its latest).
job_run() {
	"$PILOT" show -o json "$1" | python3 -c 'import json,sys
print([j["run"] for j in json.load(sys.stdin)["jobs"] if j["name"] == sys.argv[1]][0])' "$2"
}

pipelines() {
	project "$CLI_DIR/diamond" 'name: diamond
command: sleep 0.3; echo "from-a" >a.txt
artifacts: ["*.txt"]
jobs:
  d:
    needs: [b, c]
    command: echo "d saw $(cat needs/b/b.txt) and $(cat needs/c/c.txt)"
  b:
    needs: a
    command: sleep 0.3; echo "b:$(cat needs/a/a.txt)" >b.txt
  c:
    needs: a
    command: sleep 0.3; echo "c:$(cat needs/a/a.txt)" >c.txt
  a: {}'
	expect_status 0 "$(t 'pilot validate of the diamond')" "$PILOT" validate "$CLI_DIR/diamond"
	equals "$(t 'lists the jobs in an order they can run in')" "$(tail -n +2 <<<"$OUT")" \
		"  a
  b (needs a)
  c (needs a)
  d (needs b, c)"

	start_agent -c 4
	local p
	p=$("$PILOT" submit "$CLI_DIR/diamond")
	case $p in p*) ok "$(t 'submit prints the pipeline id')" ;; *) not_ok "$(t 'submit prints the pipeline id')" "$p" ;; esac
	wait_settled "$p"
	equals "$(t 'every job succeeded')" "$(job_states "$p")" "a=succeeded b=succeeded c=succeeded d=succeeded"
	local a b c d
	a=$(job_run "$p" a) b=$(job_run "$p" b) c=$(job_run "$p" c) d=$(job_run "$p" d)
	local a_end b_start b_end c_start c_end d_start
	a_end=$(run_field "$a" 'j["finished_ms"]')
	b_start=$(run_field "$b" 'j["started_ms"]') b_end=$(run_field "$b" 'j["finished_ms"]')
	c_start=$(run_field "$c" 'j["started_ms"]') c_end=$(run_field "$c" 'j["finished_ms"]')
	d_start=$(run_field "$d" 'j["started_ms"]')
	if [ "$b_start" -ge "$a_end" ] && [ "$c_start" -ge "$a_end" ]; then ok "$(t 'b and c started after a ended')"; else
		not_ok "$(t 'b and c started after a ended')" "a ended $a_end, b started $b_start, c $c_start"; fi
	if [ "$d_start" -ge "$b_end" ] && [ "$d_start" -ge "$c_end" ]; then ok "$(t 'd started after b and c ended')"; else
		not_ok "$(t 'd started after b and c ended')" "b ended $b_end, c $c_end, d started $d_start"; fi
	contains "$(t 'the artifacts went along, under needs/JOB/')" "$("$PILOT" logs "$d")" "d saw b:from-a and c:from-a"
	equals "$(t 'each run names its pipeline')" "$(run_field "$d" 'j["array"]["id"]')" "$p"
	expect_status 0 "$(t 'pilot show of a job'"'"'s run')" "$PILOT" show "$d"
	contains "$(t 'names its pipeline and job')" "$OUT" "pipeline   $p, job d"
	contains "$(t 'and what it waited for, by name')" "$OUT" "$b (succeeded)  b"
	expect_status 0 "$(t 'pilot show of the pipeline')" "$PILOT" show "$p"
	contains "$(t 'counts its runs')" "$OUT" "runs       4: 4 succeeded"
	contains "$(t 'draws b under a')" "$OUT" "└ b"
	contains "$(t 'and d under them')" "$OUT" "  └ d"
	equals "$(t 'pilot list --pipeline lists its runs')" "$("$PILOT" list --pipeline "$p" -q | sort | tr '\n' ' ')" \
		"$(printf '%s\n' "$a" "$b" "$c" "$d" | sort | tr '\n' ' ')"
	expect_status 0 "$(t 'watch --exit-status of the pipeline')" "$PILOT" watch --exit-status "$p"
	local screen
	screen=$(script -qc "'$PILOT' watch -n 0 $p" /dev/null </dev/null | sed 's/\x1b\[[0-9;?]*[A-Za-z]//g' | tr -d '\r')
	contains "$(t 'watch on a terminal draws the tree: d under b and c')" "$screen" "  └ d  $d  succeeded"

	# examples/pipeline: prepare, train, evaluate, with metrics and artifacts passed on.
	p=$("$PILOT" submit "$SRCDIR/examples/pipeline")
	wait_settled "$p"
	equals "$(t 'examples/pipeline: every job succeeded')" "$(job_states "$p")" \
		"prepare=succeeded train=succeeded evaluate=succeeded"
	expect_status 0 "$(t 'the loss curve of train')" "$PILOT" metrics -o json "$(job_run "$p" train)"
	equals "$(t 'a loss for each of 40 epochs')" "$(python3 -c 'import json,sys; m=json.load(sys.stdin)["metrics"]
print(len([x for x in m if "loss" in x["values"]]))' <<<"$OUT")" "40"
	contains "$(t 'evaluate read the model and the test set it was handed')" \
		"$("$PILOT" logs "$(job_run "$p" evaluate)")" "test_rows=40"
	expect_status 0 "$(t 'its report is an artifact')" "$PILOT" artifacts "$(job_run "$p" evaluate)"
	contains "$(t 'report/eval.txt')" "$OUT" "report/eval.txt"
	p=$("$PILOT" submit -p epochs=2 "$SRCDIR/examples/pipeline")
	wait_settled "$p"
	equals "$(t 'two epochs: the quality gate fails, the rest succeeded')" "$(job_states "$p")" \
		"prepare=succeeded train=succeeded evaluate=failed"

	# A failure skips exactly the jobs below it.
	project "$CLI_DIR/graph" "name: graph
command: echo ran
jobs:
  a: {}
  b: {needs: [a], command: 'test -e $CLI_DIR/fixed'}
  c: {needs: [a]}
  d: {needs: [b]}
  e: {needs: [c]}
  f: {needs: [d, e]}
  g: {}"
	p=$("$PILOT" submit "$CLI_DIR/graph")
	wait_settled "$p"
	equals "$(t 'b failed; d and f, below it, were skipped; the rest ran')" "$(job_states "$p")" \
		"a=succeeded b=failed c=succeeded d=skipped e=succeeded f=skipped g=succeeded"
	d=$(job_run "$p" d)
	equals "$(t 'skipped for its need (dependency_failed), never run')" \
		"$(run_field "$d" 'j["reason"] + " " + str(j["attempt_count"])')" "dependency_failed 0"
	expect_status 1 "$(t 'watch --exit-status: the failed job')" "$PILOT" watch --exit-status "$p"
	expect_status 2 "$(t 'retry of a pipeline without --failed')" "$PILOT" retry "$p"
	touch "$CLI_DIR/fixed"
	expect_status 0 "$(t 'retry --failed of the pipeline')" "$PILOT" retry --failed "$p"
	contains "$(t 'runs b, d and f again')" "$ERR" "3 jobs run again"
	wait_settled "$p"
	equals "$(t 'all succeeded this time')" "$(job_states "$p")" \
		"a=succeeded b=succeeded c=succeeded d=succeeded e=succeeded f=succeeded g=succeeded"
	equals "$(t 'the others did not run again')" "$("$PILOT" list --pipeline "$p" -q | wc -l)" "10"
	expect_status 0 "$(t 'retry --failed with nothing failed')" "$PILOT" retry --failed "$p"
	contains "$(t 'says so')" "$ERR" "nothing to retry"

	stop_agent
	p=$("$PILOT" submit "$CLI_DIR/diamond")
	expect_status 0 "$(t 'cancel a pipeline')" "$PILOT" cancel "$p"
	contains "$(t 'every job of it')" "$OUT" "$p  4 of its 4 runs canceled or stopping"
	equals "$(t 'all canceled, none skipped')" "$(job_states "$p")" "a=canceled b=canceled c=canceled d=canceled"
	start_agent -c 4

	project "$CLI_DIR/cycle" 'name: cycle
jobs:
  x: {needs: [y]}
  y: {needs: [x, z]}'
	expect_status 1 "$(t 'validate of needs in a cycle and an unknown job')" "$PILOT" validate "$CLI_DIR/cycle"
	contains "$(t 'names the cycle where it closes')" "$ERR" "pilot.yaml:4:15: jobs.y.needs[0]: the needs make a cycle: x needs y needs x"
	contains "$(t 'and the unknown job')" "$ERR" "pilot.yaml:4:18: jobs.y.needs[1]: unknown job 'z'"
	expect_status 1 "$(t 'submit of it')" "$PILOT" submit "$CLI_DIR/cycle"
	expect_status 2 "$(t 'submit --wait of a pipeline')" "$PILOT" submit --wait "$CLI_DIR/diamond"
	contains "$(t 'is not supported yet')" "$ERR" "do not take a pipeline yet"
	[ "$CLI_TRANSPORT" = local ] && run_here
}

# pilot run of a pipeline (always on this machine): -j 2 runs b and c together (each
# waits to see the other started), every line is prefixed with its job, the exit
# status is the first failed job's, and the runs are recorded as a pipeline.
run_here() {
	local marks=$CLI_DIR/marks
	mkdir -p "$marks"
	project "$CLI_DIR/together" "name: together
runtime: host
command: echo \"made by \$PILOT_JOB\" >out.txt
artifacts: [out.txt]
jobs:
  a: {}
  b:
    needs: a
    command: touch $marks/b; for i in \$(seq 100); do [ -e $marks/c ] && break; sleep 0.05; done; test -e $marks/c && cat needs/a/out.txt
  c:
    needs: a
    command: touch $marks/c; for i in \$(seq 100); do [ -e $marks/b ] && break; sleep 0.05; done; test -e $marks/b && echo c saw b
  d: {needs: [b, c], command: 'echo d last; exit 3'}"
	expect_status 3 "$(t 'pilot run -j 2 of a pipeline: the exit status of the job that failed')" \
		"$PILOT" run -j 2 "$CLI_DIR/together"
	contains "$(t 'b and c ran together; b got a'"'"'s artifact')" "$OUT" "b | made by a"
	contains "$(t 'each line prefixed with its job')" "$OUT" "c | c saw b"
	contains "$(t 'd ran last')" "$OUT" "d | d last"
	contains "$(t 'the failed job is named')" "$ERR" "failed (exit 3)"
	local p
	p=$("$PILOT" list -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["runs"][0]["array"]["id"])')
	equals "$(t 'recorded as a pipeline')" "$(job_states "$p")" "a=succeeded b=succeeded c=succeeded d=failed"
	rm -f "$marks"/*
	expect_status 1 "$(t 'pilot run of it one job at a time')" "$PILOT" run "$CLI_DIR/together"
	contains "$(t 'b could not see c start beside it')" "$ERR" "b  r"
	p=$("$PILOT" list -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["runs"][0]["array"]["id"])')
	equals "$(t 'b failed; d, below it, was skipped')" "$(job_states "$p")" "a=succeeded b=failed c=succeeded d=skipped"
	expect_status 2 "$(t '--jobs for a spec without jobs')" "$PILOT" run -j 2 "$SRCDIR/examples/hello"
	expect_status 2 "$(t '--detach of a pipeline')" "$PILOT" run --detach "$CLI_DIR/together"
}

for_transports pipelines
