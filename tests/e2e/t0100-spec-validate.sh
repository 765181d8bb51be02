#!/usr/bin/env bash
# pilot validate and pilot init: a good spec says ok or prints its normal form, a spec
# with several mistakes gets all of them with file:line:col and exit 1, init writes a
# spec that validates (even with every field uncommented) and never overwrites one
# without --force.
. "$SRCDIR/tests/e2e/lib.sh"
plan 50

P="$T_TMP/proj"
mkdir -p "$P"
cat > "$P/pilot.yaml" <<'EOF'
name: hello
image: busybox
command: echo "${greeting} from $PILOT_RUN_ID"
params:
  greeting: hi
resources: {memory: "${MEM:-512MiB}", cpus: 0.5}
timeout: 90s
EOF

expect_status 0 "a valid spec validates" "$PILOT" validate "$P"
equals "it says ok on stdout" "$OUT" "$P/pilot.yaml: ok"
cd "$P"
expect_status 0 "the default path is ." "$PILOT" validate
equals "named relative to ." "$OUT" "pilot.yaml: ok"
expect_status 0 "a file path works too" "$PILOT" validate pilot.yaml
equals "named as given" "$OUT" "pilot.yaml: ok"
cd "$T_TMP"

# jget EXPR: a field of the JSON in $OUT, printed as JSON (python3 is in the test deps).
jget() { python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); print(json.dumps(eval(sys.argv[1])))' "$1" <<< "$OUT" 2>&1; }

expect_status 0 "--output json" "$PILOT" validate -o json --param greeting=hey "$P"
equals "normal form: a string command runs with sh -c" "$(jget 'd["command"]')" '["/bin/sh", "-c", "echo \"hey from $PILOT_RUN_ID\""]'
equals "normal form: the shell flag" "$(jget 'd["shell"]')" "true"
equals "normal form: memory in bytes" "$(jget 'd["resources"]["memory"]')" "536870912"
equals "normal form: cpus" "$(jget 'd["resources"]["cpus"]')" "0.5"
equals "normal form: timeout in seconds" "$(jget 'd["timeout"]')" "90"
equals "normal form: defaults filled in" "$(jget '[d["workdir"], d["priority"], d["retry"]["max_backoff"]]')" '["/workspace", 50, 300]'
equals "normal form: the param override" "$(jget 'd["params"]')" '{"greeting": "hey"}'
MEM=2G expect_status 0 "the environment feeds \${VAR:-default}" "$PILOT" validate --output=json "$P"
equals "memory from the environment" "$(jget 'd["resources"]["memory"]')" "2147483648"

expect_status 1 "an unknown --param is refused" "$PILOT" validate --param greting=x "$P"
contains "with a suggestion" "$ERR" "unknown param 'greting' given with --param (did you mean 'greeting'?)"
expect_status 2 "an unknown output format is a usage error" "$PILOT" validate -o yaml "$P"
contains "naming it" "$ERR" "unknown output format 'yaml'"

# Three different mistakes, all reported, each with file:line:col and the key path.
B="$T_TMP/bad"
mkdir -p "$B"
cat > "$B/pilot.yaml" <<'EOF'
name: bad
imag: busybox
resources:
  memory: 4 gigs
retry: {max_attempts: 0}
EOF
expect_status 1 "a spec with three mistakes fails" "$PILOT" validate "$B"
contains "mistake 1: unknown key with did-you-mean" "$ERR" "$B/pilot.yaml:2:1: unknown key 'imag' (did you mean 'image'?)"
contains "mistake 2: bad size" "$ERR" "$B/pilot.yaml:4:11: resources.memory: invalid size '4 gigs' (expected e.g. 512MiB, 4G)"
contains "mistake 3: out of range" "$ERR" "$B/pilot.yaml:5:23: retry.max_attempts: number '0' out of range (1..100)"
contains "and a summary" "$ERR" "is not valid: 3 errors"
equals "nothing on stdout" "$OUT" ""
equals "one line per mistake plus the summary" "$(printf '%s\n' "$ERR" | wc -l)" "4"

printf 'name: x\ncommand: echo ${UNSET_VAR_XYZ}\n' > "$B/unset.yaml"
expect_status 1 "an unset variable is an error" "$PILOT" validate "$B/unset.yaml"
contains "naming it and where" "$ERR" "unset.yaml:2:10: command: variable 'UNSET_VAR_XYZ' is not set"

expect_status 1 "a directory without pilot.yaml" "$PILOT" validate "$T_TMP"
contains "says what to do" "$ERR" "no pilot.yaml in '$T_TMP' (create one with 'pilot init')"
expect_status 1 "a missing path" "$PILOT" validate "$T_TMP/nope"
contains "says it does not exist" "$ERR" "'$T_TMP/nope' does not exist"

# pilot init
I="$T_TMP/My Project!"
expect_status 0 "init creates the directory and the files" "$PILOT" init "$I"
if [ -f "$I/pilot.yaml" ] && [ -f "$I/.pilotignore" ]; then ok "pilot.yaml and .pilotignore exist"; else not_ok "pilot.yaml and .pilotignore exist" "$(ls -la "$I")"; fi
contains "the name comes from the directory" "$(cat "$I/pilot.yaml")" "name: my-project"
expect_status 0 "the written spec validates" "$PILOT" validate "$I"
sed 's/^#\([a-z]\|  \)/\1/' "$I/pilot.yaml" > "$I/full.yaml"
expect_status 0 "with every field uncommented it still validates" "$PILOT" validate -o json "$I/full.yaml"
equals "and uses them" "$(jget '[d["requires"], d["secrets"], d["resources"]["gpus"], d["retry"]["max_attempts"]]')" \
	'[{"gpu": "a100"}, ["HF_TOKEN"], 1, 3]'
expect_status 1 "init refuses to overwrite" "$PILOT" init "$I"
contains "saying why" "$ERR" "already exists; use --force to overwrite it"
echo "keep me" > "$I/.pilotignore"
expect_status 0 "init --force overwrites pilot.yaml" "$PILOT" init --force --name other --image python:3.12-slim "$I"
contains "with the given name and image" "$(cat "$I/pilot.yaml")" "name: other
"
contains "and image" "$(cat "$I/pilot.yaml")" "image: python:3.12-slim"
equals "an existing .pilotignore is kept" "$(cat "$I/.pilotignore")" "keep me"
expect_status 2 "an invalid --name is a usage error" "$PILOT" init --name "Bad Name" "$T_TMP/other"
expect_status 2 "a bad --image is refused before writing" "$PILOT" init --image "a b" "$T_TMP/badimage"
contains "saying why" "$ERR" "invalid --image 'a b': 'a b' is not a valid image reference"
if [ ! -e "$T_TMP/badimage" ]; then ok "nothing written"; else not_ok "nothing written"; fi

expect_status 0 "examples/hello validates" "$PILOT" validate "$SRCDIR/examples/hello"
done_testing
