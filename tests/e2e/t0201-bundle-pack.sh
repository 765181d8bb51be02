#!/usr/bin/env bash
# pilot pack: what goes in (ignore files, built-in rules, .env, symlinks, special files),
# the outputs (hash, -o, -o -, --list, json), the size limit from flag and config, and a
# round trip through pilot unpack.
. "$SRCDIR/tests/e2e/lib.sh"
. "$SRCDIR/tests/e2e/bundle/lib.sh"
plan 62

P="$T_TMP/proj"
mkdir -p "$P/src/lib" "$P/build" "$P/.git" "$P/.pilot" "$P/empty" "$P/data"
echo 'int main;' > "$P/src/main.c"
echo 'lib' > "$P/src/lib/x.c"
echo 'obj' > "$P/build/out.o"
printf '#!/bin/sh\necho hi\n' > "$P/run.sh"; chmod 755 "$P/run.sh"
echo 'ref' > "$P/.git/HEAD"
echo 'state' > "$P/.pilot/state"
echo 'TOKEN=secret' > "$P/.env"
echo 'TOKEN=other' > "$P/src/.env.local"
head -c 300000 /dev/urandom > "$P/data/blob.bin"
printf 'build/\n*.log\n' > "$P/.gitignore"
echo 'log' > "$P/debug.log"
ln -s src/main.c "$P/main-link"

expect_status 0 "pack prints the hash" "$PILOT" pack "$P"
hash=$OUT
if [[ $hash =~ ^[0-9a-f]{64}$ ]]; then ok "the hash is 64 hex digits"; else not_ok "the hash is 64 hex digits" "$hash"; fi
contains "a notice names the .env files" "$ERR" "'.env', 'src/.env.local'"
contains "the notice says how to pack them" "$ERR" "!.env"

expect_status 0 "pack -o writes the bundle" "$PILOT" pack -o "$T_TMP/b.tar.gz" "$P"
equals "-o prints the same hash" "$OUT" "$hash"
equals "the hash is the sha256 of the file" "$(sha256sum "$T_TMP/b.tar.gz" | cut -d' ' -f1)" "$hash"
check "the bundle is valid gzip" gzip -t "$T_TMP/b.tar.gz"
names=$(tar tzf "$T_TMP/b.tar.gz" | tr '\n' ' ')
equals "tar lists what was packed, sorted" "$names" \
	".gitignore data/ data/blob.bin empty/ main-link run.sh src/ src/lib/ src/lib/x.c src/main.c "
ls "$T_TMP" | grep -q pilot-tmp && not_ok "no temporary file is left" || ok "no temporary file is left"

expect_status 0 "--output json" "$PILOT" pack --output json -o "$T_TMP/j.tar.gz" "$P"
echo "$OUT" > "$T_TMP/j.json"
equals "json sha256" "$(json_get "$T_TMP/j.json" 'j["sha256"]')" "$hash"
equals "json size" "$(json_get "$T_TMP/j.json" 'j["size"]')" "$(stat -c %s "$T_TMP/j.tar.gz")"
equals "json counts" "$(json_get "$T_TMP/j.json" '(j["files"], j["dirs"], j["symlinks"], j["path"])')" \
	"(5, 4, 1, '$T_TMP/j.tar.gz')"

expect_status 0 "--list" "$PILOT" pack --list "$P"
contains "--list shows mode, size and path" "$OUT" "0755            18  run.sh"
contains "--list shows symlink targets" "$OUT" "main-link -> src/main.c"
contains "--list shows directories" "$OUT" "empty/"
lacks "--list leaves out ignored files" "$OUT" "build"
contains "--list totals on stderr" "$ERR" "5 files, 4 directories, 1 symlinks"
expect_status 0 "--list --output json" "$PILOT" pack --list --output json "$P"
echo "$OUT" > "$T_TMP/l.json"
equals "json entries" "$(json_get "$T_TMP/l.json" '[e["path"] for e in j["entries"] if e["type"] == "file"]')" \
	"['.gitignore', 'data/blob.bin', 'run.sh', 'src/lib/x.c', 'src/main.c']"
equals "json entry fields" "$(json_get "$T_TMP/l.json" '[e for e in j["entries"] if e["path"] == "main-link"][0]')" \
	"{'path': 'main-link', 'type': 'symlink', 'size': 0, 'mode': '0777', 'target': 'src/main.c'}"

expect_status 0 "--ignore adds patterns" "$PILOT" pack --list --ignore 'data/' --ignore '*.c' --ignore '!main.c' "$P"
lacks "--ignore data/" "$OUT" "blob.bin"
lacks "--ignore *.c" "$OUT" "x.c"
contains "--ignore !main.c re-includes" "$OUT" "src/main.c"

printf 'build/\n!.env\n' > "$P/.pilotignore"
expect_status 0 ".pilotignore replaces .gitignore" "$PILOT" pack --list "$P"
contains ".pilotignore: *.log no longer ignored" "$OUT" "debug.log"
contains "!.env packs .env" "$OUT" " .env"
lacks "!.env does not pack .env.local" "$OUT" ".env.local"
lacks ".git is never packed" "$OUT" ".git/"
lacks ".pilot is never packed" "$OUT" ".pilot/"
rm "$P/.pilotignore"

ln -s /etc/passwd "$P/src/outside"
expect_status 1 "a symlink leading outside is an error" "$PILOT" pack "$P"
contains "the error names it" "$ERR" "symlink 'src/outside' -> '/etc/passwd' points outside the project"
expect_status 0 "--skip-outside-links leaves it out" "$PILOT" pack --skip-outside-links "$P"
contains "with a notice" "$ERR" "leaving out symlink 'src/outside'"
equals "and the same bundle as without it" "$OUT" "$hash"
rm "$P/src/outside"
mkfifo "$P/fifo"
expect_status 0 "a fifo is left out" "$PILOT" pack "$P"
contains "with a notice" "$ERR" "leaving out 'fifo': a fifo"
equals "the bundle is unchanged" "$OUT" "$hash"
rm "$P/fifo"

expect_status 1 "--max-size refuses a large tree" "$PILOT" pack --max-size 100K "$P"
contains "naming the largest entries" "$ERR" "largest: 'data/' 293 KiB, 'data/blob.bin' 293 KiB"
PILOT_MAX_BUNDLE_SIZE=100K expect_status 1 "max_bundle_size from the environment" "$PILOT" pack "$P"
"$PILOT" config set max_bundle_size 100K
expect_status 1 "max_bundle_size from the config file" "$PILOT" pack "$P"
expect_status 0 "--max-size wins over the config" "$PILOT" pack --max-size 1M "$P"
"$PILOT" config set max_bundle_size lots
expect_status 1 "a bad max_bundle_size is an error" "$PILOT" pack "$P"
contains "naming the setting" "$ERR" "invalid max_bundle_size"
"$PILOT" config unset max_bundle_size

expect_status 0 "-o inside the project" "$PILOT" pack -o "$P/bundle.tar.gz" "$P"
expect_status 0 "packing again" "$PILOT" pack -o "$P/bundle.tar.gz" "$P"
equals "the bundle does not swallow itself" "$OUT" "$hash"
rm "$P/bundle.tar.gz"
"$PILOT" pack -o - "$P" > "$T_TMP/stdout.tar.gz" 2>"$T_TMP/err"
if cmp -s "$T_TMP/stdout.tar.gz" "$T_TMP/b.tar.gz"; then ok "-o - writes the same bytes to stdout"; else not_ok "-o - writes the same bytes to stdout"; fi

expect_status 2 "unknown --output" "$PILOT" pack --output yaml "$P"
expect_status 2 "--list with -o" "$PILOT" pack --list -o x "$P"
expect_status 1 "a missing directory" "$PILOT" pack "$T_TMP/nope"
expect_status 1 "an unwritable output" "$PILOT" pack -o "$T_TMP/nodir/b.tar.gz" "$P"

expect_status 0 "unpack the bundle" "$PILOT" unpack "$T_TMP/b.tar.gz" "$T_TMP/copy"
rm -rf "$P/build" "$P/.git" "$P/.pilot" "$P/.env" "$P/src/.env.local" "$P/debug.log"
equals "the round trip gives the tree back" "$(tree_hash "$T_TMP/copy")" "$(tree_hash "$P")"

# The spec's ignore: list applies, and --ignore comes after it.
S=$T_TMP/spec-ignore
mkdir -p "$S/data" "$S/logs"
printf 'name: s\ncommand: "true"\nignore: [data/, "*.log"]\n' >"$S/pilot.yaml"
echo x >"$S/data/big.bin"; echo y >"$S/logs/a.log"; echo z >"$S/keep.txt"
expect_status 0 "pack reads the spec's ignore list" "$PILOT" pack --list "$S"
lacks "...leaving out what it names" "$OUT" "data/big.bin"
lacks "...globs included" "$OUT" "a.log"
printf 'name: s\ncommand: "${nope}"\n' >"$S/pilot.yaml"
expect_status 1 "a spec that does not load is an error" "$PILOT" pack "$S"
done_testing
