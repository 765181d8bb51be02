#!/usr/bin/env bash
# Drive bash's completion function from completions/pilot.bash: commands, options,
# option values and subcommands all come from the command tables.
. "$SRCDIR/tests/e2e/lib.sh"
mkdir -p "$T_TMP/bin"
ln -s "$PILOT" "$T_TMP/bin/pilot"
export PATH="$T_TMP/bin:$PATH"
. "$SRCDIR/completions/pilot.bash"

# complete WORDS...: the candidates for the last word, space-separated and sorted.
complete_words() {
	COMP_WORDS=(pilot "$@")
	COMP_CWORD=$#
	COMPREPLY=()
	_pilot
	printf '%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' ' | sed 's/ $//'
}

cmds=(${PILOT_COMMANDS})
plan $(( ${#cmds[@]} + 5 ))
for c in "${cmds[@]}"; do
	got=$(complete_words "${c:0:3}")
	contains "'${c:0:3}' completes to $c" " $got " " $c "
done
equals "options of version" "$(complete_words version --)" "--help --verbose"
equals "config subcommands" "$(complete_words config s)" "set"
equals "config keys after set" "$(complete_words config set se)" "server"
equals "global options" "$(complete_words --no)" "--no-color"
equals "help completes command names" "$(complete_words help conf)" "config"
done_testing
