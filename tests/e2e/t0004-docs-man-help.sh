#!/usr/bin/env bash
# Every command has a man page whose SYNOPSIS is exactly the usage line of --help, and
# pilot(1) documents every command and the exit status table.
. "$SRCDIR/tests/e2e/lib.sh"
cmds=(${PILOT_COMMANDS})
plan $(( ${#cmds[@]} * 2 + 3 ))
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
done_testing
