/* pilot metrics RUN: what the job reported as metrics (METRIC lines, $PILOT_METRICS) —
 * a table with the last, min and max value of each numeric metric and a sparkline of
 * its history, or the records themselves as JSON/YAML. */
#include <string.h>

#include "runs.h"
#include "pilot/term.h"

struct opts {
	int64_t attempt;
	const char *output;
	int64_t width;
};

static const struct pilot_opt options[] = {
	{ OPT_INT, 'a', "attempt", "N", "the metrics of attempt N (default: the latest)", offsetof(struct opts, attempt),
	  NULL },
	{ OPT_STRING, 'o', "output", "FORMAT", "table (default), json or yaml (the records)",
	  offsetof(struct opts, output), "table json yaml" },
	{ OPT_INT, 0, "width", "N", "sparkline width in characters (default 30)", offsetof(struct opts, width), NULL },
	OPT_END_ROW,
};

static void print_table(struct pilot_ctx *ctx, const struct pilot_run *r, const struct pilot_metric_list *l, int attempt,
			size_t width)
{
	struct metric_series *s;
	size_t ns;
	metric_series_build(l, attempt, &s, &ns);
	if (!ns) {
		if (ctx->stdout_tty)
			cmd_notef(ctx, "run %s has no metrics%s", r->id, attempt ? "" : " (it has not started)");
		metric_series_free(s, ns);
		return;
	}
	static const char *const h[] = { "METRIC", "LAST", "MIN", "MAX", "COUNT", "HISTORY" };
	struct pilot_table *t = pilot_table_new(ARRAY_SIZE(h), h);
	for (size_t i = 0; i < ns; i++) {
		double lo = s[i].v[0], hi = s[i].v[0];
		for (size_t k = 1; k < s[i].n; k++) {
			lo = s[i].v[k] < lo ? s[i].v[k] : lo;
			hi = s[i].v[k] > hi ? s[i].v[k] : hi;
		}
		char last[32], mn[32], mx[32], cnt[32];
		metric_format(s[i].v[s[i].n - 1], last, sizeof(last));
		metric_format(lo, mn, sizeof(mn));
		metric_format(hi, mx, sizeof(mx));
		snprintf(cnt, sizeof(cnt), "%zu", s[i].n);
		_cleanup_buf_ struct pilot_buf spark = PILOT_BUF_INIT;
		pilot_sparkline(s[i].v, s[i].n, width, &spark);
		const char *cells[] = { s[i].name, last, mn, mx, cnt, pilot_buf_str(&spark) };
		pilot_table_add(t, cells);
	}
	_cleanup_buf_ struct pilot_buf b = PILOT_BUF_INIT;
	pilot_table_render(t, 0, &b);
	pilot_table_free(t);
	fputs(pilot_buf_str(&b), stdout);
	if (ctx->stdout_tty)
		cmd_notef(ctx, "attempt %d, %zu record%s", attempt, l->n, l->n == 1 ? "" : "s");
	metric_series_free(s, ns);
}

static int run(struct pilot_ctx *ctx, void *optsp, int argc, char **argv)
{
	struct opts *o = optsp;
	enum output_format fmt;
	(void)argc;
	int st = output_parse(ctx, o->output, "table", &fmt);
	if (st)
		return st;
	if (o->attempt < 0)
		return cmd_usage_error(ctx, "--attempt must be 1 or more");
	if (o->width < 0 || o->width > 1000)
		return cmd_usage_error(ctx, "--width must be between 1 and 1000");

	_cleanup_api_ struct pilot_api *api = NULL;
	struct pilot_run r = { 0 };
	if ((st = runs_open_run(ctx, argv[0], &api, &r)))
		return st;
	int attempt = o->attempt ? (int)o->attempt : r.attempt_count;
	if (o->attempt > r.attempt_count) {
		cmd_errorf(ctx, "run %s has no attempt %d", r.id, attempt);
		pilot_run_clear(&r);
		return EXIT_FAIL;
	}
	struct pilot_metric_list l = { 0 };
	if (attempt > 0 && pilot_api_get_metrics(api, r.id, attempt, &l) < 0) {
		pilot_run_clear(&r);
		return cmd_fail(ctx, EXIT_FAIL);
	}
	if (fmt != OUTPUT_TEXT)
		output_value(pilot_metric_list_to_json(&l), fmt);
	else
		print_table(ctx, &r, &l, attempt, o->width ? (size_t)o->width : 30);
	pilot_metric_list_clear(&l);
	pilot_run_clear(&r);
	return EXIT_OK;
}

const struct pilot_cmd cmd_metrics = {
	.name = "metrics",
	.summary = "show the metrics a run reported",
	.args = "RUN",
	.description =
		"A job reports metrics by printing lines 'METRIC {\"loss\": 0.3}' or 'METRIC loss=0.3',\n"
		"or by appending JSON objects to the file $PILOT_METRICS. The table shows each\n"
		"numeric metric of the latest attempt (or --attempt N): its last, smallest and\n"
		"largest value, how many values there are and a sparkline of its history (the\n"
		"last --width values). --output json or yaml prints the records as stored.",
	.opts = options,
	.opts_size = sizeof(struct opts),
	.min_args = 1,
	.max_args = 1,
	.flags = CMD_NEEDS_CONFIG,
	.run = run,
	.complete_args = "run",
};
