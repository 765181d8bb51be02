#!/usr/bin/env bash
# Every command has a man page whose SYNOPSIS is exactly the usage line of --help,
# pilot(1) documents every command and the exit status table, and pilot-api(7) every
# route of the table the client and the server share (method, path, scopes).
. "$SRCDIR/tests/e2e/lib.sh"
: "${API_TOOL:?API_TOOL must point at the api-tool test program}"
cmds=(${PILOT_COMMANDS})
plan $(( ${#cmds[@]} * 2 + 4 ))

# The routes a page documents, one "METHOD /path/{} scope,scope" line each (parameters
# as {}, scopes sorted, "-" for none), read from its headings: lines that start with
# "*METHOD /path*", optionally followed by "(scope, scope or scope)".
man_routes() {
	grep -E '^\*(GET|HEAD|POST|PUT|DELETE) /' "$1" |
		grep -oE '\*(GET|HEAD|POST|PUT|DELETE) /[^*]*\*( \([^)]*\))?' |
		while IFS= read -r m; do
			method=${m#\*}
			method=${method%% *}
			path=${m#\*"$method" }
			path=${path%%\**}
			path=${path%%\?*}
			path=$(sed -E 's/\{[^}]*\}/{}/g' <<< "$path")
			scopes=-
			case "$m" in
			*"(any scope)") scopes=admin,agent,cancel,read,register,submit ;;
			*")") scopes=$(sed -E 's/.*\(([^)]*)\)$/\1/; s/,? or /,/g; s/, */,/g' <<< "$m" | tr ',' '\n' | sort | paste -sd,) ;;
			esac
			echo "$method $path $scopes"
		done | sort -u
}
for c in "${cmds[@]}"; do
	page="$SRCDIR/man/pilot-$c.1.scd"
	if [ -f "$page" ]; then ok "pilot-$c(1) exists"; else not_ok "pilot-$c(1) exists" "missing $page"; continue; fi
	want=$("$PILOT" "$c" --help | sed -n 's/^usage: //p')
	# The first non-blank line after "# SYNOPSIS", with scdoc's markup removed.
	got=$(awk '/^# SYNOPSIS/{f=1;next} f&&NF{print;exit}' "$page" | sed 's/\*//g; s/\\//g')
	equals "pilot-$c(1) SYNOPSIS matches --help" "$got" "$want"
done
listed=$("$PILOT" --help | awk '/^commands:/{f=1;next} f&&/^  [a-z]/{print $1}' | tr '\n' ' ')
equals "the table order is sorted" "$listed" "$(printf '%s\n' $listed | sort | tr '\n' ' ')"
main="$SRCDIR/man/pilot.1.scd"
missing=""
plain=$(sed "s/\*//g" "$main")
for c in "${cmds[@]}"; do grep -qF "pilot-$c(1)" <<< "$plain" || missing="$missing $c"; done
equals "pilot(1) refers to every command" "$missing" ""
contains "pilot(1) has the exit status table" "$(cat "$main")" "125"
# "<" lines: documented but not in the table; ">": in the table, not documented.
equals "pilot-api(7) documents the routes table" \
	"$(diff <(man_routes "$SRCDIR/man/pilot-api.7.scd") <("$API_TOOL" routes | sort))" ""
done_testing
