#!/usr/bin/env bash
# The same tree gives the same bundle bytes whatever the umask, the modes (short of the
# execute bit), the mtimes, the order files were made in, the time of day, the time zone
# and the locale; SOURCE_DATE_EPOCH sets the mtimes. A golden hash pins the format.
. "$SRCDIR/tests/e2e/lib.sh"
plan 14

# make_tree DIR ORDER: the same content, created in the given order.
make_tree() {
	local d=$1 order=$2 f
	mkdir -p "$d"
	local files=(README src/main.c src/util/helper.h data/values.csv bin/tool docs/a\ b.txt)
	if [ "$order" = reverse ]; then files=(docs/a\ b.txt bin/tool data/values.csv src/util/helper.h src/main.c README); fi
	for f in "${files[@]}"; do
		mkdir -p "$d/$(dirname "$f")"
		printf 'content of %s\n' "$f" > "$d/$f"
	done
	chmod +x "$d/bin/tool"
	mkdir -p "$d/empty"
	ln -s ../README "$d/src/readme-link"
}

(umask 022; make_tree "$T_TMP/a" forward)
(umask 077; make_tree "$T_TMP/b" reverse)
chmod 600 "$T_TMP/b/README"; chmod 700 "$T_TMP/b/bin/tool"; chmod 711 "$T_TMP/b/src"
touch -d '2001-02-03 04:05:06' "$T_TMP/b/README" "$T_TMP/b/src"
touch -h -d '1999-01-01' "$T_TMP/b/src/readme-link"

unset SOURCE_DATE_EPOCH
ha=$("$PILOT" pack "$T_TMP/a")
hb=$("$PILOT" pack "$T_TMP/b")
equals "umask, modes, mtimes and creation order do not matter" "$hb" "$ha"
sleep 1
equals "packing again later gives the same hash" "$("$PILOT" pack "$T_TMP/a")" "$ha"
equals "time zone and locale do not matter" "$(TZ=Asia/Kolkata LC_ALL=C.UTF-8 "$PILOT" pack "$T_TMP/a")" "$ha"
(cd "$T_TMP/a" && "$PILOT" pack -o "$T_TMP/a.tar.gz" >/dev/null)
(cd "$T_TMP" && "$PILOT" pack -o "$T_TMP/b.tar.gz" b >/dev/null)
if cmp -s "$T_TMP/a.tar.gz" "$T_TMP/b.tar.gz"; then ok "the files are byte-identical"; else not_ok "the files are byte-identical"; fi
# The golden hash: a change here changes every bundle's name (and dedup across versions).
equals "the format is pinned" "$ha" "2864fc97e469aca90f82ade6f8f5a661ba7c3e2d868cb268366bba121351e403"

equals "gzip header: no name, no time, OS 3" "$(head -c 10 "$T_TMP/a.tar.gz" | od -An -tx1 | tr -d ' \n')" \
	"1f8b0800000000000003"
listing=$(tar --numeric-owner -tvzf "$T_TMP/a.tar.gz")
equals "owners are 0/0" "$(grep -vc ' 0/0 ' <<< "$listing")" "0"
contains "mtimes are 0" "$listing" "1970-01-01 00:00 README"
contains "executables are 0755" "$listing" "-rwxr-xr-x 0/0"
equals "no other modes" "$(grep -vc -e '^-rw-r--r--' -e '^-rwxr-xr-x' -e '^drwxr-xr-x' -e '^lrwxrwxrwx' <<< "$listing")" "0"

s1=$(SOURCE_DATE_EPOCH=1700000000 "$PILOT" pack "$T_TMP/a")
s2=$(SOURCE_DATE_EPOCH=1700000000 "$PILOT" pack "$T_TMP/b")
equals "SOURCE_DATE_EPOCH: the same hash for both trees" "$s2" "$s1"
lacks "SOURCE_DATE_EPOCH changes the hash" "$s1" "$ha"
SOURCE_DATE_EPOCH=1700000000 "$PILOT" pack -o "$T_TMP/s.tar.gz" "$T_TMP/a" >/dev/null
contains "SOURCE_DATE_EPOCH sets the mtimes" "$(TZ=UTC tar -tvzf "$T_TMP/s.tar.gz")" "2023-11-14 22:13 README"
SOURCE_DATE_EPOCH=soon expect_status 1 "a bad SOURCE_DATE_EPOCH is an error" "$PILOT" pack "$T_TMP/a"
done_testing
