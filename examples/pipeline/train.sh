#!/bin/sh
# Fit y = w*x + b to prepare's training set by gradient descent, reporting the loss
# of each epoch (METRIC lines) and keeping the model as an artifact.
set -eu
data=needs/prepare/data/train.csv
test -s "$data" || { echo "no training data at $data" >&2; exit 1; }
mkdir -p model
awk -F, -v epochs="$EPOCHS" '{ x[NR] = $1; y[NR] = $2 } END {
	w = 0; b = 0; lr = 0.05
	for (e = 1; e <= epochs; e++) {
		gw = 0; gb = 0; loss = 0
		for (i = 1; i <= NR; i++) {
			d = w * x[i] + b - y[i]
			gw += d * x[i]; gb += d; loss += d * d
		}
		w -= lr * 2 * gw / NR; b -= lr * 2 * gb / NR
		printf "METRIC {\"epoch\": %d, \"loss\": %.5f}\n", e, loss / NR
	}
	printf "w=%.5f\nb=%.5f\n", w, b > "model/model.txt"
}' "$data"
cat model/model.txt
