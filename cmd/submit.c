/* pilot submit: queue a project as a run for the agents. Loads the spec (with --param
 * and the environment), packs the project into a bundle, uploads it unless the server
 * (or the local store) already has those bytes, and creates the run. Prints the run id;
 * --wait waits for the run's end and exits with its status, --follow streams its log
 * first. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


#include "project.h"
#include "runs.h"
#include "pilot/config.h"
#include "pilot/spec.h"

struct opts {
	struct opt_list params;
	struct opt_list env;
	const char *name;
	struct opt_list requires;
	const char *idempotency_key;
	bool wait;
	bool follow;
	const char *priority_s;
	struct opt_list after;
	const char *array;
	struct opt_list matrix;
	int64_t throttle;
	bool unless_running;
	const char *max_failures;
};

static const struct pilot_opt options[] = {
	{ OPT_LIST, 'p', "param", "K=V", "override a param of the spec", offsetof(struct opts, params), NULL },
	{ OPT_LIST, 'e', "env", "K=V", "set an environment variable for the job", offsetof(struct opts, env), NULL },
	{ OPT_STRING, 0, "name", "NAME", "the run's name (default: the spec's)", offsetof(struct opts, name), NULL },
	{ OPT_STRING, 0, "priority", "P", "0 to 100, higher runs first (default: the spec's)",
	  offsetof(struct opts, priority_s), NULL },
	{ OPT_LIST, 0, "requires", "K=V", "an agent label the run needs, on top of the spec's",
	  offsetof(struct opts, requires), NULL },
	{ OPT_LIST, 0, "after", "RUN[:STATES]",
	  "wait for RUN to end (succeeded, or one of STATES: failed, canceled, any) before queuing",
	  offsetof(struct opts, after), NULL },
	{ OPT_STRING, 0, "array", "INDEXES[%K]",
	  "submit one run per index (0-99, 1,3,5, 0-30:10), at most K at once; ${index} in the spec",
	  offsetof(struct opts, array), NULL },
	{ OPT_LIST, 0, "matrix", "K=V1,V2,...", "submit one run per combination of params (repeatable: the product)",
	  offsetof(struct opts, matrix), NULL },
	{ OPT_INT, 0, "throttle", "K", "with --array or --matrix: at most K runs of it at once",
	  offsetof(struct opts, throttle), NULL },
	{ OPT_STRING, 0, "max-failures", "N|N%",
	  "with --array, --matrix or a pipeline: once N (or N% of) failed, skip those not running",
	  offsetof(struct opts, max_failures), NULL },
	{ OPT_FLAG, 0, "unless-running", NULL,
	  "skip the run (it ends skipped) when one of the same name and params is queued or running",
	  offsetof(struct opts, unless_running), NULL },
	{ OPT_STRING, 0, "idempotency-key", "KEY", "submit at most once for KEY (a repeat returns the same run)",
	  offsetof(struct opts, idempotency_key), NULL },
	{ OPT_FLAG, 'w', "wait", NULL, "wait for the run to end and exit with its status", offsetof(struct opts, wait),
	  NULL },
	{ OPT_FLAG, 'f', "follow", NULL, "print the run's log as it runs, then exit with its status",
	  offsetof(struct opts, follow), NULL },
	OPT_END_ROW,
};

/* ---- arrays ---- */

/* One element of an array to be: its index and its --param list. */
struct element {
	int64_t index;
	struct opt_list params; /* items owned, strings borrowed or in owned */
	char *owned[64];
	size_t nowned;
};

static void elements_free(struct element *e, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(e[i].params.items);
		for (size_t k = 0; k < e[i].nowned; k++)
			free(e[i].owned[k]);
	}
	free(e);
}

/* --array: the indexes, each with the common --param list. */
static int plan_array(struct opts *o, struct element **out, size_t *n, int *throttle)
{
	_cleanup_free_ int64_t *idx = NULL;
	int r = pilot_array_spec_parse(o->array, &idx, n, throttle);
	if (r < 0)
		return r;
	struct element *e = pilot_xcalloc(*n, sizeof(*e));
	for (size_t i = 0; i < *n; i++) {
		e[i].index = idx[i];
		e[i].params.items = pilot_xcalloc(o->params.n + 1, sizeof(char *));
		if (o->params.n)
			memcpy(e[i].params.items, o->params.items, o->params.n * sizeof(char *));
		e[i].params.n = o->params.n;
	}
	*out = e;
	return 0;
}

/* --matrix K=V1,V2 ...: every combination (the first --matrix varies slowest), each
 * with the common --param list plus its K=V pairs, indexed from 0. */
static int plan_matrix(struct opts *o, struct element **out, size_t *n)
{
	size_t dims = o->matrix.n, total = 1;
	if (dims > 64)
		return pilot_error_set(PILOT_EINVALID, "--matrix: at most 64 params");
	char **keys = pilot_xcalloc(dims, sizeof(*keys));
	char ***vals = pilot_xcalloc(dims, sizeof(*vals));
	size_t *nvals = pilot_xcalloc(dims, sizeof(*nvals));
	int r = 0;
	for (size_t d = 0; d < dims && r == 0; d++) {
		const char *m = o->matrix.items[d], *eq = strchr(m, '=');
		if (!eq || eq == m || !eq[1]) {
			r = pilot_error_set(PILOT_EINVALID, "--matrix '%s': expected KEY=VALUE,VALUE,...", m);
			break;
		}
		keys[d] = pilot_xstrndup(m, (size_t)(eq - m));
		for (size_t k = 0; k < d; k++)
			if (!strcmp(keys[k], keys[d]))
				r = pilot_error_set(PILOT_EINVALID, "--matrix: param '%s' is given twice", keys[d]);
		for (size_t k = 0; k < o->params.n; k++)
			if (!strncmp(o->params.items[k], keys[d], strlen(keys[d])) && o->params.items[k][strlen(keys[d])] == '=')
				r = pilot_error_set(PILOT_EINVALID, "--matrix: param '%s' is also given with --param", keys[d]);
		_cleanup_free_ char *list = pilot_xstrdup(eq + 1);
		char *save = NULL;
		for (char *v = strtok_r(list, ",", &save); v; v = strtok_r(NULL, ",", &save)) {
			vals[d] = pilot_xrealloc(vals[d], (nvals[d] + 1) * sizeof(char *));
			vals[d][nvals[d]++] = pilot_xstrdup(v);
		}
		if (!nvals[d] && r == 0)
			r = pilot_error_set(PILOT_EINVALID, "--matrix '%s': no values", m);
		total *= nvals[d] ? nvals[d] : 1;
		if (total > PILOT_ARRAY_MAX_ELEMENTS && r == 0)
			r = pilot_error_set(PILOT_EINVALID, "--matrix: more than %d combinations", PILOT_ARRAY_MAX_ELEMENTS);
	}
	struct element *e = NULL;
	if (r == 0) {
		e = pilot_xcalloc(total, sizeof(*e));
		for (size_t i = 0; i < total; i++) {
			e[i].index = (int64_t)i;
			e[i].params.items = pilot_xcalloc(o->params.n + dims + 1, sizeof(char *));
			if (o->params.n)
				memcpy(e[i].params.items, o->params.items, o->params.n * sizeof(char *));
			e[i].params.n = o->params.n;
			size_t rest = i;
			for (size_t d = dims; d-- > 0;) {
				char *pair = pilot_xasprintf("%s=%s", keys[d], vals[d][rest % nvals[d]]);
				rest /= nvals[d];
				e[i].owned[e[i].nowned++] = pair;
			}
			/* Pairs in the order of the flags. */
			for (size_t d = 0; d < dims; d++)
				e[i].params.items[e[i].params.n++] = e[i].owned[dims - 1 - d];
		}
		*out = e;
		*n = total;
	}
	for (size_t d = 0; d < dims; d++) {
		free(keys[d]);
		for (size_t k = 0; k < nvals[d]; k++)
			free(vals[d][k]);
		free(vals[d]);
	}
	free(keys);
	free(vals);
	free(nvals);
	return r;
}

/* "N" or "N%" of n elements (rounded up): at least 1. */
static int parse_max_failures(const char *text, size_t n, int *out)
{
	size_t len = strlen(text);
	int64_t v;
	if (len && text[len - 1] == '%') {
		_cleanup_free_ char *num = pilot_xstrndup(text, len - 1);
		if (pilot_parse_int64(num, 1, 100, &v) < 0)
			return pilot_error_set(PILOT_EINVALID, "--max-failures '%s': expected N, or N%% from 1%% to 100%%", text);
		*out = (int)(((int64_t)n * v + 99) / 100);
		return 0;
	}
	if (pilot_parse_int64(text, 1, PILOT_ARRAY_MAX_ELEMENTS, &v) < 0)
		return pilot_error_set(PILOT_EINVALID, "--max-failures '%s': expected N from 1 to %d, or N%%", text,
				       PILOT_ARRAY_MAX_ELEMENTS);
	*out = (int)v;
	return 0;
}

/* ${index} is the element's index (unless a param of that name is declared). */
static const char *index_getenv(const char *name, void *ud)
{
	return !strcmp(name, "index") ? ud : getenv(name);
}

/* The spec of one element, as JSON; NULL with the error set. */
static char *element_spec(const char *spec_path, const struct element *e, struct pilot_spec **keep)
{
	char index[24];
	snprintf(index, sizeof(index), "%lld", (long long)e->index);
	struct pilot_spec_vars vars = { .params = e->params.items, .nparams = e->params.n, .getenv = index_getenv,
					.ud = index };
	struct pilot_spec *spec = NULL;
	if (pilot_spec_load_file(spec_path, &vars, &spec) < 0) {
		pilot_error_prefix(pilot_error_code(), "element %lld", (long long)e->index);
		return NULL;
	}
	char *json = pilot_spec_to_json(spec);
	if (keep)
		*keep = spec;
	else
		pilot_spec_free(spec);
	return json;
}

/* Submit req (moved into the array's base) as an array of els; prints the array id. */
static int submit_elements(struct pilot_ctx *ctx, struct pilot_api *api, const char *spec_path, struct element *els,
			   size_t nels, int throttle, int max_failures, bool matrix, struct pilot_submit_request *req)
{
	struct pilot_array_request areq = { .base = *req, .nelements = nels, .throttle = throttle,
					    .max_failures = max_failures };
	struct pilot_array a = { 0 };
	char **specs = pilot_xcalloc(nels, sizeof(*specs)), **params = pilot_xcalloc(nels, sizeof(*params));
	int r = 0;
	*req = (struct pilot_submit_request){ 0 };
	areq.elements = pilot_xcalloc(nels, sizeof(*areq.elements));
	if (matrix)
		areq.base.params_json = params[0] = project_pairs_json(&els[0].params, "--param", false);
	/* A spec that does not use ${index} is the same for every index: two tell. */
	bool shared = false;
	for (size_t i = 0; i < nels && r == 0; i++) {
		areq.elements[i].index = els[i].index;
		if (i > 0 && !shared) {
			if (!(specs[i] = element_spec(spec_path, &els[i], NULL))) {
				r = pilot_error_code();
				break;
			}
			if (!strcmp(specs[i], areq.base.spec_json)) {
				free(specs[i]);
				specs[i] = NULL;
				shared = !matrix;
			}
		}
		areq.elements[i].spec_json = specs[i];
		if (matrix && i > 0)
			areq.elements[i].params_json = params[i] = project_pairs_json(&els[i].params, "--param", false);
	}
	if (r == 0 && (r = pilot_api_submit_array(api, &areq, &a)) >= 0) {
		printf("%s\n", a.id);
		fflush(stdout);
		if (r == 1)
			cmd_notef(ctx, "array %s was submitted before with this idempotency key", a.id);
		else if (ctx->stderr_tty && ctx->stdout_tty)
			cmd_notef(ctx, "submitted array %s: %zu runs of %s; see them with 'pilot list --array %s'", a.id,
				  a.nruns, a.name ? a.name : "", a.id);
	}
	for (size_t i = 0; i < nels; i++) {
		free(specs[i]);
		free(params[i]);
	}
	free(specs);
	free(params);
	pilot_array_clear(&a);
	pilot_array_request_clear(&areq);
	return r;
}

/* ---- what a spec makes of a run ---- */

/* The fields of req a spec gives, the flags on top: req->requires holds the
 * --requires flags on entry (a key both give takes the flag's value). */
static int request_from_spec(const struct pilot_spec *spec, int64_t priority, struct pilot_submit_request *req)
{
	if (project_secrets(spec, &req->secrets) < 0)
		return -1;
	struct pilot_kvs flags_req = req->requires;
	req->requires = (struct pilot_kvs){ 0 };
	for (size_t i = 0; i < spec->nrequires; i++)
		pilot_kvs_set(&req->requires, spec->requires[i].key, spec->requires[i].value);
	for (size_t i = 0; i < flags_req.n; i++)
		pilot_kvs_set(&req->requires, flags_req.items[i].key, flags_req.items[i].value);
	pilot_kvs_clear(&flags_req);
	req->priority = priority >= 0 ? (int)priority : spec->priority;
	req->timeout_ms = spec->timeout_ms;
	req->start_timeout_ms = spec->start_timeout_ms;
	req->concurrency_group = spec->concurrency_group;
	req->concurrency_max = spec->concurrency_max;
	project_retry_policy(spec, &req->retry);
	return 0;
}

/* ---- pipelines ---- */

/* One run per job of p, each made as a run of its spec is, with the flags in flags
 * (requires, after, bundle, params, env) given to every job. Prints the pipeline id. */
static int submit_pipeline(struct pilot_ctx *ctx, struct pilot_api *api, const struct opts *o,
			   const struct pilot_spec_pipeline *p, const struct pilot_submit_request *flags, int64_t priority,
			   int max_failures)
{
	struct pilot_pipeline_request preq = { .name = o->name ? o->name : p->name,
					       .idempotency_key = o->idempotency_key,
					       .max_failures = o->max_failures ? max_failures : p->max_failures };
	struct pilot_array a = { 0 };
	char **specs = pilot_xcalloc(p->njobs, sizeof(*specs));
	int r = 0;
	preq.jobs = pilot_xcalloc(p->njobs, sizeof(*preq.jobs));
	for (size_t i = 0; i < p->njobs && r == 0; i++, preq.njobs++) {
		const struct pilot_spec *spec = p->jobs[i].spec;
		struct pilot_pipeline_job *job = &preq.jobs[i];
		struct pilot_submit_request *req = &job->run;
		for (size_t k = 0; k < flags->requires.n; k++)
			pilot_kvs_set(&req->requires, flags->requires.items[k].key, flags->requires.items[k].value);
		if (flags->nafter) {
			req->after = pilot_xcalloc(flags->nafter, sizeof(*req->after));
			memcpy(req->after, flags->after, flags->nafter * sizeof(*req->after));
			req->nafter = flags->nafter;
		}
		if (spec->skip_duplicate) {
			r = pilot_error_set(PILOT_EINVALID, "job '%s': skip_duplicate does not apply to the jobs of a pipeline",
					    spec->name);
			break;
		}
		if ((r = request_from_spec(spec, priority, req)) < 0)
			break;
		req->name = spec->name;
		req->spec_json = specs[i] = pilot_spec_to_json(spec);
		req->bundle_sha256 = flags->bundle_sha256;
		req->params_json = flags->params_json;
		req->env_json = flags->env_json;
		job->needs = pilot_xcalloc(p->jobs[i].nneeds + 1, sizeof(*job->needs));
		for (size_t k = 0; k < p->jobs[i].nneeds; k++)
			job->needs[job->nneeds++] = p->jobs[i].needs[k];
	}
	if (r == 0 && (r = pilot_api_submit_pipeline(api, &preq, &a)) >= 0) {
		printf("%s\n", a.id);
		fflush(stdout);
		if (r == 1)
			cmd_notef(ctx, "pipeline %s was submitted before with this idempotency key", a.id);
		else if (ctx->stderr_tty && ctx->stdout_tty)
			cmd_notef(ctx, "submitted pipeline %s: %zu jobs of %s; watch it with 'pilot watch %s'", a.id, a.nruns,
				  a.name ? a.name : "", a.id);
	}
	for (size_t i = 0; i < p->njobs; i++)
		free(specs[i]);
	free(specs);
	pilot_array_clear(&a);
	pilot_pipeline_request_clear(&preq);
	return r;
}

static int run(struct pilot_ctx *ctx, void *optsp, int argc, char **argv)
{
	struct opts *o = optsp;
	_cleanup_free_ char *spec_path = NULL, *project = NULL, *params_json = NULL, *env_json = NULL;
	_cleanup_free_ char *spec_json = NULL;
	struct pilot_spec *spec = NULL;
	struct pilot_spec_pipeline *pipeline = NULL;
	struct pilot_api *api = NULL;
	struct pilot_submit_request req = { 0 };
	struct pilot_run run = { 0 };
	bool waiting = o->wait || o->follow;
	struct element *els = NULL;
	size_t nels = 0;
	int throttle = 0, max_failures = 0;
	/* Waiting, pilot's own failures have their own status (pilot(1)). */
	int fail_status = waiting ? EXIT_PILOT : EXIT_FAIL;
	int status = fail_status;
	int64_t priority = -1;

	if (o->priority_s && pilot_parse_int64(o->priority_s, 0, 100, &priority) < 0)
		return cmd_usage_error(ctx, "--priority: %s", pilot_error_last());
	if (o->name && !pilot_spec_name_valid(o->name))
		return cmd_usage_error(ctx, "--name '%s': expected [a-z0-9][a-z0-9._-]*, at most 128 characters",
				       o->name);
	for (size_t i = 0; i < o->requires.n; i++)
		if (pilot_kvs_set_pair(&req.requires, o->requires.items[i]) < 0) {
			pilot_submit_request_clear(&req);
			return cmd_usage_error(ctx, "--requires: %s", pilot_error_last());
		}
	if (o->after.n) {
		req.after = pilot_xcalloc(o->after.n, sizeof(*req.after));
		for (; req.nafter < o->after.n; req.nafter++)
			if (pilot_run_need_parse(o->after.items[req.nafter], &req.after[req.nafter]) < 0) {
				pilot_submit_request_clear(&req);
				return cmd_usage_error(ctx, "--after: %s", pilot_error_last());
			}
	}

	bool matrix = o->matrix.n > 0;
	if (o->array || matrix) {
		const char *why = o->array && matrix ? "--array and --matrix cannot be given together"
				  : o->unless_running ? "--unless-running is for a run alone, not an array's runs"
				  : waiting ? "--wait and --follow do not take an array yet: follow it with 'pilot list "
					      "--array ID'"
					    : NULL;
		if (!why && (o->array ? plan_array(o, &els, &nels, &throttle) : plan_matrix(o, &els, &nels)) < 0)
			why = pilot_error_last();
		if (!why && (o->throttle < 0 || o->throttle > PILOT_ARRAY_MAX_ELEMENTS))
			why = "--throttle: expected 1 to 10000 runs at once";
		if (!why && o->throttle && throttle && o->throttle != throttle)
			why = "--throttle says otherwise than the %K of --array";
		if (!why && o->max_failures && parse_max_failures(o->max_failures, nels, &max_failures) < 0)
			why = pilot_error_last();
		if (why) {
			_cleanup_free_ char *msg = pilot_xstrdup(why);
			elements_free(els, nels);
			pilot_submit_request_clear(&req);
			return cmd_usage_error(ctx, "%s", msg);
		}
		if (o->throttle)
			throttle = (int)o->throttle;
	} else if (o->throttle) {
		pilot_submit_request_clear(&req);
		return cmd_usage_error(ctx, "--throttle: only with --array or --matrix");
	}

	if (pilot_spec_find(argc ? argv[0] : ".", &spec_path, &project) < 0)
		goto fail;
	struct pilot_spec_vars vars = { .params = o->params.items, .nparams = o->params.n };
	if (els ? !(spec_json = element_spec(spec_path, &els[0], &spec))
		: pilot_spec_load_any_file(spec_path, &vars, &spec, &pipeline) < 0)
		goto fail;
	if (pipeline || (!els && o->max_failures)) {
		const char *why = !pipeline ? "--max-failures: only with --array, --matrix or a pipeline (jobs:)"
				  : o->unless_running ? "--unless-running is for a run alone, not a pipeline's jobs"
				  : waiting ? "--wait and --follow do not take a pipeline yet: watch it with 'pilot watch ID'"
					    : NULL;
		if (!why && o->max_failures && parse_max_failures(o->max_failures, pipeline->njobs, &max_failures) < 0)
			why = pilot_error_last();
		if (why) {
			_cleanup_free_ char *msg = pilot_xstrdup(why);
			status = cmd_usage_error(ctx, "%s", msg);
			goto out;
		}
	}
	params_json = project_pairs_json(&o->params, "--param", false);
	env_json = project_pairs_json(&o->env, "--env", true);
	if ((o->params.n && !params_json) || (o->env.n && !env_json))
		goto fail;
	/* A pipeline's jobs share the top-level ignore list, so any job's packs the same. */
	const struct pilot_spec *packing = pipeline ? pipeline->jobs[0].spec : spec;
	if (!pipeline && request_from_spec(spec, priority, &req) < 0)
		goto fail;

	if (runs_open_api(ctx, &api, fail_status))
		goto out;
	char sha[65];
	if (project_put_bundle(ctx, api, project, packing, sha) < 0)
		goto fail;
	if (pipeline) {
		req.bundle_sha256 = sha;
		req.params_json = params_json;
		req.env_json = env_json;
		if (submit_pipeline(ctx, api, o, pipeline, &req, priority, max_failures) < 0)
			goto fail;
		status = EXIT_OK;
		goto out;
	}

	if (!spec_json)
		spec_json = pilot_spec_to_json(spec);
	req.name = o->name ? o->name : spec->name;
	req.spec_json = spec_json;
	req.bundle_sha256 = sha;
	req.params_json = params_json;
	req.env_json = env_json;
	/* The runs of an array share a name: skipping duplicates is for a run alone. */
	req.skip_duplicate = !els && (spec->skip_duplicate || o->unless_running);
	req.idempotency_key = o->idempotency_key;
	if (els) {
		if (submit_elements(ctx, api, spec_path, els, nels, throttle, max_failures, matrix, &req) < 0)
			goto fail;
		status = EXIT_OK;
		goto out;
	}
	int r = pilot_api_submit(api, &req, &run);
	if (r < 0)
		goto fail;

	if (o->follow) {
		/* stdout carries the job's log bytes: the id goes to stderr. */
		cmd_notef(ctx, "run %s%s", run.id, r == 1 ? " (submitted before with this idempotency key)" : "");
	} else {
		printf("%s\n", run.id);
		fflush(stdout);
		if (r == 1)
			cmd_notef(ctx, "run %s was submitted before with this idempotency key", run.id);
		else if (ctx->stderr_tty && ctx->stdout_tty && !waiting)
			cmd_notef(ctx, "submitted %s (%s); follow it with 'pilot logs -f %s'", run.id, run.name, run.id);
	}
	if (!waiting) {
		status = EXIT_OK;
		goto out;
	}
	status = follow_to_end(ctx, api, run.id, o->follow);
	goto out;
fail:
	status = cmd_fail(ctx, fail_status);
out:
	elements_free(els, nels);
	pilot_run_clear(&run);
	pilot_submit_request_clear(&req);
	pilot_api_close(api);
	pilot_spec_free(spec);
	pilot_spec_pipeline_free(pipeline);
	return status;
}

const struct pilot_cmd cmd_submit = {
	.name = "submit",
	.summary = "queue a project as a run for the agents",
	.args = "[DIR|SPEC]",
	.description =
		"Packs the project (a directory with pilot.yaml, or a spec file; default .), uploads\n"
		"the bundle unless the server already has the same bytes, queues a run and prints\n"
		"its id (only the id when stdout is not a terminal). Secrets the spec lists are\n"
		"taken from the environment. With a server configured the run goes there; without\n"
		"one it goes to the local store, for a 'pilot agent' on this machine.\n"
		"--wait waits for the run to end; --follow prints its log as it runs (the id then\n"
		"goes to stderr). Both exit with the run's status: the job's exit code, 124 when\n"
		"it timed out, 125 when pilot could not run it, 128+N when signal N killed it, 130\n"
		"when it was canceled. Interrupting them leaves the run going.\n"
		"--after RUN waits for RUN (an id or a unique prefix) to succeed before the run is\n"
		"queued; RUN:failed, RUN:succeeded,canceled or RUN:any accept other ends. If RUN\n"
		"ends otherwise, this run fails at once (dependency_failed), and so do the runs\n"
		"waiting for it. Repeat --after to wait for several runs.\n"
		"--array 0-99%8 submits one run per index (lists 1,3,5 and steps 0-30:10 too),\n"
		"at most 8 of them queued or running at once; the spec may use ${index}, and the\n"
		"job sees PILOT_ARRAY_INDEX. --matrix lr=0.1,0.01 --matrix bs=32,64 submits one run\n"
		"per combination of params (declared in the spec). Either prints the array's id;\n"
		"--throttle K limits either; --max-failures N (or N%) skips the elements not\n"
		"running (queued or waiting) once N of them have failed.\n"
		"A spec with jobs: (a pipeline) queues one run per job in one go, each waiting for\n"
		"the jobs it needs, and prints the pipeline's id (p...); --max-failures replaces\n"
		"its max_failures, and the other flags apply to every job.\n"
		"--unless-running (or skip_duplicate: true in the spec) ends the run skipped at\n"
		"once, without running it, when a run of the same name and params is queued,\n"
		"waiting or running.",
	.opts = options,
	.opts_size = sizeof(struct opts),
	.min_args = 0,
	.max_args = 1,
	.flags = CMD_NEEDS_CONFIG,
	.run = run,
	.complete_args = "file",
};
