# fish completion for pilot, answered by 'pilot __complete' from the command tables.
function __pilot_complete
	set -l words (commandline -opc)[2..-1] (commandline -ct)
	for line in (pilot __complete $words 2>/dev/null)
		switch $line
			case ':file'
				__fish_complete_path (commandline -ct)
			case ':dir'
				__fish_complete_directories (commandline -ct)
			case '*'
				echo $line
		end
	end
end
complete -c pilot -f -a '(__pilot_complete)'
