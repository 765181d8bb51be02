#!/usr/bin/env bash
# Fails when the C sources use a function style.md bans (as git's banned.h does).
cd "$1" || exit 2
hits=$(grep -nE '\b(strcpy|strcat|sprintf|vsprintf|strtok|atoi|atol|atoll|gets)\s*\(' \
	cmd/*.c lib/*/*.c include/pilot/*.h tests/unit/*.c 2>/dev/null | grep -v 'banned-ok')
if [ -n "$hits" ]; then
	echo "banned functions used:"
	echo "$hits"
	exit 1
fi
echo "no banned functions"
