#!/usr/bin/env bash
# pilot unpack refuses every crafted attack (bundle/craft.py: absolute paths, '..',
# symlinks leading outside directly or through other symlinks, writes through symlinks,
# hardlinks to outside or with data, devices, fifos, a path twice with different types,
# limits, a gzip bomb): exit 1, an error naming the entry, a sentinel directory beside
# the target byte-identical afterwards, and the target as it was (absent, or an empty
# directory with its mode), with no temporary directory left behind.
. "$SRCDIR/tests/e2e/lib.sh"
. "$SRCDIR/tests/e2e/bundle/lib.sh"

A="$T_TMP/attacks"
W="$T_TMP/work"
mkdir -p "$A" "$W/sentinel/sub"
echo precious > "$W/sentinel/file"
echo nested > "$W/sentinel/sub/file"
ln -s file "$W/sentinel/link"
python3 "$SRCDIR/tests/e2e/bundle/craft.py" "$A" "$W/sentinel" || { echo "Bail out! craft.py failed"; exit 1; }
n=$(wc -l < "$A/manifest")
plan $((n * 6 + 9))

before=$(tree_hash "$W/sentinel")

# attempt NAME WHY [unpack options]: the target absent, then an empty directory (0700).
attempt() {
	local name=$1 why=$2; shift 2
	rm -rf "$W/out"
	expect_status 1 "$name: refused" "$PILOT" unpack "$@" "$A/$name.tar.gz" "$W/out"
	contains "$name: the error says why" "$ERR" "$why"
	equals "$name: the sentinel is unchanged" "$(tree_hash "$W/sentinel")" "$before"
	local left
	left=$(ls -A "$W" | tr '\n' ' ')
	equals "$name: nothing is left beside it" "$left" "sentinel "
	mkdir -m 0700 "$W/out"
	"$PILOT" unpack "$@" "$A/$name.tar.gz" "$W/out" 2>/dev/null
	equals "$name: an empty target stays empty, with its mode" \
		"$(ls -A "$W/out" | wc -l) $(stat -c %a "$W/out") $(ls -A "$W" | tr '\n' ' ')" "0 700 out sentinel "
	equals "$name: the sentinel is still unchanged" "$(tree_hash "$W/sentinel")" "$before"
	rm -rf "$W/out"
}

while IFS=$'\t' read -r name why; do
	attempt "$name" "$why"
done < "$A/manifest"

attempt bomb "limit max_ratio (1000:1) reached at entry 'zeros'"
rm -rf "$W/out"
expect_status 1 "--max-size bounds the uncompressed size" "$PILOT" unpack --max-size 1M "$A/big.tar.gz" "$W/out"
contains "naming the limit and the entry" "$ERR" "limit max_bytes (1.0 MiB uncompressed) reached at entry 'big'"
equals "the sentinel is unchanged after all of it" "$(tree_hash "$W/sentinel")" "$before"
done_testing
