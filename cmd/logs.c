/* pilot logs RUN: a run's output, byte for byte as the job wrote it (stdout and stderr
 * interleaved as the agent read them), from the latest attempt or a chosen one; -f
 * follows it live across attempts until the run ends. */
#include <string.h>
#include <unistd.h>

#include "runs.h"

struct opts {
	bool follow;
	int64_t attempt;
	const char *tail;
};

static const struct pilot_opt options[] = {
	{ OPT_FLAG, 'f', "follow", NULL, "keep printing until the run ends (newer attempts included)",
	  offsetof(struct opts, follow), NULL },
	{ OPT_INT, 'a', "attempt", "N", "the log of attempt N (default: the latest)", offsetof(struct opts, attempt),
	  NULL },
	{ OPT_STRING, 'n', "tail", "N", "only the last N lines ('all' = everything)", offsetof(struct opts, tail), NULL },
	OPT_END_ROW,
};

static int run(struct pilot_ctx *ctx, void *optsp, int argc, char **argv)
{
	struct opts *o = optsp;
	int64_t tail = -1;
	(void)argc;

	if (o->attempt < 0)
		return cmd_usage_error(ctx, "--attempt must be 1 or more");
	if (o->tail && strcmp(o->tail, "all") && pilot_parse_int64(o->tail, 0, INT64_MAX, &tail) < 0)
		return cmd_usage_error(ctx, "--tail: %s", pilot_error_last());

	_cleanup_api_ struct pilot_api *api = NULL;
	struct pilot_run r = { 0 };
	int st = runs_open_run(ctx, argv[0], &api, &r);
	if (st)
		return st;
	struct follow_opts fo = { .attempt = (int)o->attempt, .follow = o->follow, .out_fd = STDOUT_FILENO };
	if (o->attempt > r.attempt_count) {
		if (r.attempt_count)
			cmd_errorf(ctx, "run %s has no attempt %lld (its attempts are 1 to %d)", r.id, (long long)o->attempt,
				   r.attempt_count);
		else
			cmd_errorf(ctx, "run %s has no attempt %lld (it has not started yet)", r.id, (long long)o->attempt);
		pilot_run_clear(&r);
		return EXIT_FAIL;
	}
	int number = o->attempt ? (int)o->attempt : r.attempt_count;
	if (tail >= 0 && number > 0) {
		int64_t size = 0, end;
		for (size_t i = 0; i < r.nattempts; i++)
			if (r.attempts[i].number == number)
				size = r.attempts[i].log_bytes;
		if (log_tail(api, r.id, number, size, (size_t)tail, NULL, &fo.offset, &end) < 0) {
			pilot_run_clear(&r);
			return cmd_fail(ctx, EXIT_FAIL);
		}
		fo.attempt = number;
	}
	int res = follow_logs(ctx, api, r.id, &fo, NULL);
	pilot_run_clear(&r);
	if (res < 0)
		return cmd_fail(ctx, EXIT_FAIL);
	/* res 1: the reader went away (pilot logs RUN | head): not an error. */
	return EXIT_OK;
}

const struct pilot_cmd cmd_logs = {
	.name = "logs",
	.summary = "print a run's output, or follow it live",
	.args = "RUN",
	.description =
		"Prints the log of the run's latest attempt (or --attempt N) exactly as stored: the\n"
		"job's stdout and stderr bytes, interleaved as the agent read them, with no\n"
		"transformation. -f keeps printing as the job writes, moves on to a newer attempt\n"
		"when one starts (saying so on stderr), survives a server restart by resuming at\n"
		"the byte it stopped at, and ends when the run has ended. RUN is a run id or a\n"
		"unique prefix of one.",
	.opts = options,
	.opts_size = sizeof(struct opts),
	.min_args = 1,
	.max_args = 1,
	.flags = CMD_NEEDS_CONFIG,
	.run = run,
	.complete_args = "run",
};
