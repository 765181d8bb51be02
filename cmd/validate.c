/* pilot validate: load a spec exactly as run and submit will (params, interpolation,
 * every check) and say whether it is fine, reporting every mistake at once with
 * file:line:col, or print its normal form as JSON. */
#include <string.h>

#include <jansson.h>

#include "pilot.h"
#include "pilot/spec.h"

struct opts {
	const char *output;
	struct opt_list params;
};

static const struct pilot_opt options[] = {
	{ OPT_STRING, 'o', "output", "FORMAT", "text (default) or json: the spec's normal form",
	  offsetof(struct opts, output), "text json" },
	{ OPT_LIST, 'p', "param", "K=V", "override a param's default (repeatable)",
	  offsetof(struct opts, params), NULL },
	OPT_END_ROW,
};

static void print_json(json_t *j)
{
	char *text = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(15));
	json_decref(j);
	if (!text)
		abort();
	puts(text);
	free(text);
}

/* A pipeline: its jobs in the order they can run, each with its needs; as JSON
 * {"pipeline", "max_failures", "jobs": [{"needs", "spec"}]}. Frees p. */
static int print_pipeline(const char *path, struct pilot_spec_pipeline *p, bool json)
{
	if (json) {
		json_t *jobs = json_array();
		for (size_t i = 0; i < p->njobs; i++) {
			json_t *needs = json_array();
			for (size_t k = 0; k < p->jobs[i].nneeds; k++)
				json_array_append_new(needs, json_string(p->jobs[i].needs[k]));
			json_array_append_new(jobs, json_pack("{s:o,s:o}", "needs", needs, "spec",
							      pilot_spec_to_json_value(p->jobs[i].spec)));
		}
		print_json(json_pack("{s:s,s:o,s:o}", "pipeline", p->name, "max_failures",
				     p->max_failures ? json_integer(p->max_failures) : json_null(), "jobs", jobs));
	} else {
		printf("%s: ok (pipeline %s, %zu job%s)\n", path, p->name, p->njobs, p->njobs == 1 ? "" : "s");
		for (size_t i = 0; i < p->njobs; i++) {
			printf("  %s", p->jobs[i].spec->name);
			for (size_t k = 0; k < p->jobs[i].nneeds; k++)
				printf("%s%s", k ? ", " : " (needs ", p->jobs[i].needs[k]);
			printf("%s\n", p->jobs[i].nneeds ? ")" : "");
		}
	}
	pilot_spec_pipeline_free(p);
	return EXIT_OK;
}

static int run(struct pilot_ctx *ctx, void *optsp, int argc, char **argv)
{
	struct opts *o = optsp;
	_cleanup_free_ char *path = NULL, *dir = NULL;
	struct pilot_spec *spec = NULL;
	struct pilot_spec_pipeline *pipeline = NULL;
	bool json = false;

	if (o->output && !(json = !strcmp(o->output, "json")) && strcmp(o->output, "text"))
		return cmd_usage_error(ctx, "unknown output format '%s' (expected text or json)", o->output);
	if (pilot_spec_find(argc ? argv[0] : ".", &path, &dir) < 0)
		return cmd_fail(ctx, EXIT_FAIL);

	struct pilot_spec_vars vars = { .params = o->params.items, .nparams = o->params.n };
	if (pilot_spec_load_any_file(path, &vars, &spec, &pipeline) < 0) {
		size_t n = 0;
		const struct pilot_spec_diag *d = pilot_spec_last_diags(&n);
		if (!n)
			return cmd_fail(ctx, EXIT_FAIL);
		/* Compiler style, one mistake per line, so editors can jump to them. */
		for (size_t i = 0; i < n; i++) {
			_cleanup_free_ char *line = pilot_spec_diag_string(&d[i]);
			fprintf(stderr, "%s\n", line);
		}
		if (n > PILOT_SPEC_MAX_DIAGS)
			cmd_errorf(ctx, "'%s' is not valid: more than %d errors", path, PILOT_SPEC_MAX_DIAGS);
		else
			cmd_errorf(ctx, "'%s' is not valid: %zu error%s", path, n, n == 1 ? "" : "s");
		return EXIT_FAIL;
	}
	if (pipeline)
		return print_pipeline(path, pipeline, json);
	if (json) {
		json_t *j = pilot_spec_to_json_value(spec);
		pilot_spec_free(spec);
		if (!j)
			return cmd_fail(ctx, EXIT_FAIL);
		print_json(j);
	} else {
		pilot_spec_free(spec);
		printf("%s: ok\n", path);
	}
	return EXIT_OK;
}

const struct pilot_cmd cmd_validate = {
	.name = "validate",
	.summary = "check a pilot.yaml and report every mistake",
	.args = "[DIR|SPEC]",
	.description =
		"Loads the spec the way 'pilot run' and 'pilot submit' do: params (with --param\n"
		"overrides), ${VAR} interpolation from params and the environment, and every check.\n"
		"Prints \"FILE: ok\" (for a pipeline, its jobs in an order they can run in, with\n"
		"their needs), or with --output json the normal form (for a pipeline {pipeline,\n"
		"max_failures, jobs: [{needs, spec}]}); otherwise lists every\n"
		"mistake as FILE:LINE:COLUMN: KEY: MESSAGE on stderr and exits 1. See pilot.yaml(5).",
	.opts = options,
	.opts_size = sizeof(struct opts),
	.min_args = 0,
	.max_args = 1,
	.run = run,
	.complete_args = "file",
};
