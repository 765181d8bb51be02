# bash completion for pilot. The candidates come from 'pilot __complete', which reads
# the same command and option tables as the parser, so this file never goes stale.
_pilot()
{
	local cur=${COMP_WORDS[COMP_CWORD]}
	local line out
	COMPREPLY=()
	out=$("${COMP_WORDS[0]}" __complete "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null) || return 0
	while IFS= read -r line; do
		case $line in
		:file) mapfile -t -O "${#COMPREPLY[@]}" COMPREPLY < <(compgen -f -- "$cur"); compopt -o filenames 2>/dev/null ;;
		:dir) mapfile -t -O "${#COMPREPLY[@]}" COMPREPLY < <(compgen -d -- "$cur"); compopt -o filenames 2>/dev/null ;;
		'') ;;
		*) COMPREPLY+=("$line") ;;
		esac
	done <<< "$out"
	return 0
}
complete -F _pilot pilot
