#!/bin/sh
# The model from train on the test set from prepare: the mean squared error, as a
# metric and a report; the job fails when it is above MAX_MSE (a quality gate).
set -eu
model=needs/train/model/model.txt data=needs/prepare/data/test.csv
mkdir -p report
awk -F, -v max="$MAX_MSE" '
	FNR == NR { split($0, kv, "="); m[kv[1]] = kv[2]; next }
	{ d = m["w"] * $1 + m["b"] - $2; se += d * d; n++ }
	END {
		mse = se / n
		printf "METRIC {\"test_mse\": %.5f}\n", mse
		printf "w=%s b=%s test_rows=%d test_mse=%.5f max_mse=%s %s\n", m["w"], m["b"], n, mse, max,
			mse <= max ? "pass" : "FAIL" > "report/eval.txt"
		exit mse <= max ? 0 : 1
	}' "$model" "$data" || { cat report/eval.txt; exit 1; }
cat report/eval.txt
