#!/bin/sh
# A stand-in for a training script: a loss curve that falls faster with a larger
# learning rate and batch, reported a step at a time on stdout (METRIC lines), and
# a summary of the run kept as an artifact.
set -eu
mkdir -p out
awk -v lr="$LR" -v bs="$BS" -v steps="$STEPS" -v idx="${PILOT_ARRAY_INDEX:--}" 'BEGIN {
	loss = 2.0
	for (step = 1; step <= steps; step++) {
		loss = loss * (1 - lr * sqrt(bs) / 10)
		printf "METRIC {\"step\": %d, \"loss\": %.4f}\n", step, loss
	}
	printf "index=%s lr=%s bs=%s steps=%d final_loss=%.4f\n", idx, lr, bs, steps, loss > "out/summary.txt"
}'
cat out/summary.txt
