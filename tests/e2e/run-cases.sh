# The cases of `pilot run` that every runtime must pass, sourced by t0800 (host),
# t0801 (docker) and t0802 (podman) after they set:
#   RT          the --runtime value
#   RT_IMAGE    "image: busybox" line for the specs, or "" (host)
#   rt_gone     a function: succeeds when no job of this runtime is left running
#   RT_SELF_KILL (optional) the command of a job that kills itself with SIGKILL
# Counts: run_cases_plan test points.
run_cases_plan=24

proj() { # proj DIR: a project with the given pilot.yaml body on stdin
	mkdir -p "$T_TMP/$1"
	{ echo "name: $1"; [ -n "$RT_IMAGE" ] && echo "$RT_IMAGE"; cat; } >"$T_TMP/$1/pilot.yaml"
	echo "$T_TMP/$1"
}

# A run's id: the newest in the store.
last_run() { "$PILOT" list -q --limit 1; }

run_cases() {
	local p st id

	p=$(proj hello <<<'command: sh hello.sh world')
	cp "$SRCDIR/examples/hello/hello.sh" "$p/"
	printf 'env: {GREETING: Hello}\nartifacts: [out/*.txt]\n' >>"$p/pilot.yaml"
	expect_status 0 "$RT: hello exits 0" "$PILOT" run --runtime "$RT" "$p"
	contains "$RT: the job's output streams to stdout" "$OUT" "Hello, world! (run r"
	id=$(last_run)
	contains "$RT: the run is recorded as succeeded" "$("$PILOT" list)" "succeeded"
	contains "$RT: metrics from METRIC lines and \$PILOT_METRICS are recorded" \
		"$("$PILOT" metrics "$id" --output json 2>&1)" '"greeting_length"'
	contains "$RT: the artifact is recorded" "$("$PILOT" artifacts "$id" 2>&1)" "out/greeting.txt"
	equals "$RT: the stored log is the output" "$("$PILOT" logs "$id")" "$OUT"

	p=$(proj streams <<<'command: "echo o1; echo e1 >&2; echo o2; echo e2 >&2; exit 3"')
	expect_status 3 "$RT: the job's exit code 3 is pilot's" "$PILOT" run --runtime "$RT" "$p"
	equals "$RT: stdout holds only stdout, in order" "$OUT" "$(printf 'o1\no2')"
	equals "$RT: stderr holds only stderr, in order" "$ERR" "$(printf 'e1\ne2')"

	p=$(proj killed <<<"command: \"${RT_SELF_KILL:-kill -9 \$\$\$\$}\"")
	expect_status 137 "$RT: a job killed by SIGKILL exits 137" "$PILOT" run --runtime "$RT" "$p"

	# A length no other test's job sleeps: t0800 looks for it among all processes.
	p=$(proj slow <<<'command: "echo started; sleep 2999"')
	expect_status 124 "$RT: a timeout exits 124" "$PILOT" run --runtime "$RT" --timeout 2s "$p"
	contains "$RT: and says it timed out" "$ERR" "timed out after 2.0s"
	contains "$RT: the run failed with reason timeout" "$("$PILOT" list --limit 1)" "timeout"
	if rt_gone; then ok "$RT: nothing is left running after the timeout"; else not_ok "$RT: nothing is left running after the timeout"; fi

	"$PILOT" run --runtime "$RT" "$p" >"$T_TMP/int.out" 2>"$T_TMP/int.err" &
	local pid=$! i
	for ((i = 0; i < 150; i++)); do grep -q started "$T_TMP/int.out" && break; sleep 0.2; done
	kill -INT "$pid"
	st=0
	wait "$pid" || st=$?
	equals "$RT: Ctrl-C cancels with exit 130" "$st" "130"
	contains "$RT: the run is recorded as canceled" "$("$PILOT" list --limit 1)" "canceled"
	if rt_gone; then ok "$RT: nothing is left running after Ctrl-C"; else not_ok "$RT: nothing is left running after Ctrl-C"; fi

	# 50 MB of output, byte for byte, to the terminal side and into the store.
	p=$(proj big <<<'command: "i=0; while [ $i -lt 50 ]; do yes 0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxy | head -c 1048576; i=$((i+1)); done"')
	local want
	want=$(for i in $(seq 50); do yes 0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxy | head -c 1048576; done | sha256sum)
	st=0
	"$PILOT" run --runtime "$RT" "$p" >"$T_TMP/big.out" 2>"$T_TMP/big.err" || st=$?
	equals "$RT: 50 MB of output arrive byte-identical" "$(sha256sum <"$T_TMP/big.out") $st" "$want 0"
	equals "$RT: ...and are stored byte-identical" "$("$PILOT" logs "$(last_run)" | sha256sum)" "$want"

	p=$(proj secret <<<'secrets: [E2E_SECRET]
command: "echo the secret is $E2E_SECRET; printf %s $E2E_SECRET | cut -c1-4; printf %s $E2E_SECRET | cut -c5-"')
	E2E_SECRET=hunter2-swordfish expect_status 0 "$RT: a job with a secret runs" "$PILOT" run --runtime "$RT" "$p"
	lacks "$RT: the secret is not printed" "$OUT" "hunter2-swordfish"
	contains "$RT: it is replaced by ***" "$OUT" "the secret is ***"
	lacks "$RT: nor stored" "$("$PILOT" logs "$(last_run)")" "hunter2-swordfish"

	expect_status 125 "$RT: a missing secret is pilot's failure (125)" "$PILOT" run --runtime "$RT" "$p"
}
