# Helpers shared by the t02NN bundle scripts (sourced after tests/e2e/lib.sh).

# tree_hash DIR: one hash over every path, type, mode, size, link target and content.
tree_hash() {
	(
		cd "$1" || exit 1
		find . -printf '%p %y %m %s %l\n' | LC_ALL=C sort
		find . -type f -exec sha256sum {} + | LC_ALL=C sort
	) | sha256sum | cut -d' ' -f1
}

# json_get FILE EXPR: evaluate a Python expression on the parsed JSON `j`.
json_get() {
	python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}
