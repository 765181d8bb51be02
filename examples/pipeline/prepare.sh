#!/bin/sh
# The data: ROWS points of y = 3x + 2 with some noise (the same every time), split
# into a training set and a test set (every fifth row).
set -eu
mkdir -p data
awk -v rows="$ROWS" 'BEGIN {
	srand(7)
	for (i = 0; i < rows; i++) {
		x = rand() * 4 - 2
		y = 3 * x + 2 + (rand() - 0.5) * 0.8
		file = i % 5 == 4 ? "data/test.csv" : "data/train.csv"
		printf "%.5f,%.5f\n", x, y > file
		n[file]++
	}
	printf "METRIC {\"train_rows\": %d, \"test_rows\": %d}\n", n["data/train.csv"], n["data/test.csv"]
}'
wc -l data/train.csv data/test.csv
