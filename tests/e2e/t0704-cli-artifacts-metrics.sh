#!/usr/bin/env bash
# pilot artifacts, pilot metrics, pilot show's full form and pilot status over both
# transports: listing (latest copy per path, --all-attempts, --attempt, patterns,
# json/yaml), downloads (exact bytes, atomically placed, never through a symlink planted
# in the target), the metrics table with sparklines and the stored records, show and
# status as JSON and YAML.
. "$SRCDIR/tests/e2e/lib.sh"
. "$SRCDIR/tests/e2e/lib-cli.sh"

files() {
	mkdir -p "$CLI_DIR/art"
	cat >"$CLI_DIR/art/job.sh" <<'EOF'
mkdir -p out/sub
echo "attempt $PILOT_ATTEMPT" > out/a.txt
head -c 100000 /dev/urandom > out/sub/b.bin
sha256sum out/sub/b.bin | cut -d' ' -f1 > out/b.sha
echo model > model.pt
for i in 1 2 3 4 5; do echo "METRIC {\"loss\": 0.$((6 - i)), \"step\": $i}"; done
echo '{"acc": 0.9}' >> "$PILOT_METRICS"
test "$PILOT_ATTEMPT" = 2
EOF
	project "$CLI_DIR/art" 'name: art
command: sh job.sh
artifacts: [out/, "*.pt"]
retry: {max_attempts: 2, backoff: 100ms}'
	expect_status 0 "$(t 'a job with artifacts and metrics, twice')" "$PILOT" submit --wait "$CLI_DIR/art"
	local id=$OUT

	expect_status 0 "$(t 'pilot artifacts')" "$PILOT" artifacts "$id"
	equals "$(t 'the latest copy of each path, with sizes')" "$(awk '{print $1, $2, $3, $4}' <<<"$OUT")" "$(printf 'PATH SIZE ATTEMPT SHA256\nmodel.pt 6 B 2\nout/a.txt 10 B 2\nout/b.sha 65 B 2\nout/sub/b.bin 98 KiB 2')"
	expect_status 0 "$(t '--all-attempts')" "$PILOT" artifacts --all-attempts "$id" 'a.txt'
	equals "$(t 'both copies')" "$(awk 'NR > 1 {print $1, $4}' <<<"$OUT")" "$(printf 'out/a.txt 1\nout/a.txt 2')"
	expect_status 0 "$(t 'a pattern without a slash matches names at any depth')" "$PILOT" artifacts "$id" '*.bin'
	equals "$(t 'the one file')" "$(awk 'NR > 1 {print $1}' <<<"$OUT")" "out/sub/b.bin"
	expect_status 0 "$(t 'a directory pattern')" "$PILOT" artifacts "$id" out/sub/
	equals "$(t 'what is under it')" "$(awk 'NR > 1 {print $1}' <<<"$OUT")" "out/sub/b.bin"
	expect_status 0 "$(t 'artifacts -o json')" "$PILOT" artifacts -o json "$id" 'out/*.txt'
	equals "$(t 'json: path, size, attempt')" "$(python3 -c 'import json,sys; a=json.load(sys.stdin)["artifacts"]; print([(x["path"], x["size"], x["attempt"]) for x in a])' <<<"$OUT")" "[('out/a.txt', 10, 2)]"
	expect_status 0 "$(t 'artifacts -o yaml')" "$PILOT" artifacts -o yaml "$id"
	equals "$(t 'yaml: the same')" "$(python3 -c 'import yaml,sys; a=yaml.safe_load(sys.stdin)["artifacts"]; print(len(a), a[0]["sha256"][:6] != "")' <<<"$OUT")" "4 True"

	expect_status 0 "$(t '--download')" "$PILOT" artifacts "$id" --download "$CLI_DIR/dl"
	equals "$(t 'prints each file written')" "$OUT" "$(printf '%s\n' "$CLI_DIR/dl/model.pt" "$CLI_DIR/dl/out/a.txt" "$CLI_DIR/dl/out/b.sha" "$CLI_DIR/dl/out/sub/b.bin")"
	equals "$(t 'the latest attempt s copy')" "$(cat "$CLI_DIR/dl/out/a.txt")" "attempt 2"
	equals "$(t 'binary bytes intact')" "$(sha256sum <"$CLI_DIR/dl/out/sub/b.bin" | cut -d' ' -f1)" "$(cat "$CLI_DIR/dl/out/b.sha")"
	equals "$(t 'no temporary file left')" "$(find "$CLI_DIR/dl" -name '.pilot-download-*' | wc -l)" 0
	expect_status 0 "$(t '--download --attempt 1 over the same directory')" "$PILOT" artifacts "$id" --attempt 1 --download "$CLI_DIR/dl" a.txt
	equals "$(t 'replaces the file')" "$(cat "$CLI_DIR/dl/out/a.txt")" "attempt 1"

	# A directory planted as a symlink leading outside: refused, nothing written there.
	mkdir -p "$CLI_DIR/trap" "$CLI_DIR/outside"
	ln -s "$CLI_DIR/outside" "$CLI_DIR/trap/out"
	echo precious >"$CLI_DIR/victim"
	ln -s "$CLI_DIR/victim" "$CLI_DIR/trap/model.pt"
	expect_status 1 "$(t 'a symlinked directory in the target is refused')" "$PILOT" artifacts "$id" --download "$CLI_DIR/trap"
	contains "$(t 'naming the path')" "$ERR" "for 'out/a.txt'"
	equals "$(t 'nothing was written outside')" "$(ls -A "$CLI_DIR/outside")" ""
	equals "$(t 'a symlinked file is replaced, not written through')" "$(cat "$CLI_DIR/victim"):$(test -L "$CLI_DIR/trap/model.pt" && echo link || cat "$CLI_DIR/trap/model.pt")" "precious:model"
	expect_status 0 "$(t 'no artifact matches')" "$PILOT" artifacts "$id" --download "$CLI_DIR/none" nothing
	contains "$(t 'says so')" "$ERR" "no artifacts matching the pattern"
	expect_status 1 "$(t 'artifacts of an unknown run')" "$PILOT" artifacts rzzzzzzzzzzzzzz

	expect_status 0 "$(t 'pilot metrics')" "$PILOT" metrics "$id"
	equals "$(t 'the table: last, min, max, count, sparkline')" "$(tr -s ' ' <<<"$OUT")" "$(printf 'METRIC LAST MIN MAX COUNT HISTORY\nloss 0.1 0.1 0.5 5 █▆▄▃▁\nstep 5 1 5 5 ▁▃▅▆█\nacc 0.9 0.9 0.9 1 ▄')"
	expect_status 0 "$(t 'metrics --attempt 1')" "$PILOT" metrics --attempt 1 "$id"
	contains "$(t 'attempt 1 has its own')" "$OUT" "loss"
	expect_status 0 "$(t 'metrics -o json')" "$PILOT" metrics -o json "$id"
	equals "$(t 'the records as stored')" "$(python3 -c 'import json,sys; m=json.load(sys.stdin)["metrics"]; print(len(m), m[0]["attempt"], m[0]["values"])' <<<"$OUT")" "6 2 {'loss': 0.5, 'step': 1}"
	expect_status 1 "$(t 'metrics of a missing attempt')" "$PILOT" metrics --attempt 9 "$id"
	contains "$(t 'says so')" "$ERR" "has no attempt 9"
	expect_status 1 "$(t 'artifacts of a missing attempt: the same')" "$PILOT" artifacts --attempt 9 "$id"
	contains "$(t 'says so')" "$ERR" "has no attempt 9"

	expect_status 0 "$(t 'show -o json')" "$PILOT" show -o json "$id"
	equals "$(t 'json: spec, last metrics, every attempt s artifacts, attempts, events')" "$(python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["spec"]["command"][2], j["metrics"], len(j["artifacts"]), len(j["attempts"]), j["events"][0]["type"])' <<<"$OUT")" "sh job.sh {'loss': 0.1, 'step': 5, 'acc': 0.9} 8 2 submitted"
	expect_status 0 "$(t 'show -o yaml')" "$PILOT" show -o yaml "$id"
	equals "$(t 'yaml reads back the same')" "$(python3 -c 'import yaml,sys; j=yaml.safe_load(sys.stdin); print(j["state"], j["spec"]["artifacts"], j["metrics"]["step"], j["retry"]["on"])' <<<"$OUT")" "succeeded ['out/', '*.pt'] 5 ['exit_code', 'timeout']"
	expect_status 2 "$(t 'show -o xml')" "$PILOT" show -o xml "$id"

	expect_status 0 "$(t 'status -o json')" "$PILOT" status -o json
	equals "$(t 'json: the counts and the transport')" "$(python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["runs"]["succeeded"], j["transport"], j["version"] != "")' <<<"$OUT")" "1 $CLI_TRANSPORT True"
	equals "$(t 'json: the keys pilot-status(1) documents')" "$(python3 -c 'import json,sys; print(" ".join(sorted(json.load(sys.stdin))))' <<<"$OUT")" \
		"agents data_dir now_ms oldest_queued_ms pools runs server transport version"
	expect_status 0 "$(t 'status -o yaml')" "$PILOT" status -o yaml
	equals "$(t 'yaml: the same')" "$(python3 -c 'import yaml,sys; j=yaml.safe_load(sys.stdin); print(j["runs"]["succeeded"], j["agents"]["idle"])' <<<"$OUT")" "1 1"
}

for_transports files
finish
