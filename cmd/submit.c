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
	{ OPT_STRING, 0, "idempotency-key", "KEY", "submit at most once for KEY (a repeat returns the same run)",
	  offsetof(struct opts, idempotency_key), NULL },
	{ OPT_FLAG, 'w', "wait", NULL, "wait for the run to end and exit with its status", offsetof(struct opts, wait),
	  NULL },
	{ OPT_FLAG, 'f', "follow", NULL, "print the run's log as it runs, then exit with its status",
	  offsetof(struct opts, follow), NULL },
	OPT_END_ROW,
};

static int run(struct pilot_ctx *ctx, void *optsp, int argc, char **argv)
{
	struct opts *o = optsp;
	_cleanup_free_ char *spec_path = NULL, *project = NULL, *params_json = NULL, *env_json = NULL;
	_cleanup_free_ char *spec_json = NULL;
	struct pilot_spec *spec = NULL;
	struct pilot_api *api = NULL;
	struct pilot_submit_request req = { 0 };
	struct pilot_run run = { 0 };
	bool waiting = o->wait || o->follow;
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

	if (pilot_spec_find(argc ? argv[0] : ".", &spec_path, &project) < 0)
		goto fail;
	struct pilot_spec_vars vars = { .params = o->params.items, .nparams = o->params.n };
	if (pilot_spec_load_file(spec_path, &vars, &spec) < 0)
		goto fail;
	params_json = project_pairs_json(&o->params, "--param", false);
	env_json = project_pairs_json(&o->env, "--env", true);
	if ((o->params.n && !params_json) || (o->env.n && !env_json))
		goto fail;
	if (project_secrets(spec, &req.secrets) < 0)
		goto fail;
	/* The spec's requires, then --requires on top (a repeated key takes the flag's). */
	struct pilot_kvs flags_req = req.requires;
	req.requires = (struct pilot_kvs){ 0 };
	for (size_t i = 0; i < spec->nrequires; i++)
		pilot_kvs_set(&req.requires, spec->requires[i].key, spec->requires[i].value);
	for (size_t i = 0; i < flags_req.n; i++)
		pilot_kvs_set(&req.requires, flags_req.items[i].key, flags_req.items[i].value);
	pilot_kvs_clear(&flags_req);

	if (runs_open_api(ctx, &api, fail_status))
		goto out;
	char sha[65];
	if (project_put_bundle(ctx, api, project, spec, sha) < 0)
		goto fail;

	spec_json = pilot_spec_to_json(spec);
	req.name = o->name ? o->name : spec->name;
	req.spec_json = spec_json;
	req.bundle_sha256 = sha;
	req.params_json = params_json;
	req.env_json = env_json;
	req.priority = priority >= 0 ? (int)priority : spec->priority;
	req.timeout_ms = spec->timeout_ms;
	req.concurrency_group = spec->concurrency_group;
	req.concurrency_max = spec->concurrency_max;
	project_retry_policy(spec, &req.retry);
	req.idempotency_key = o->idempotency_key;
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
	pilot_run_clear(&run);
	pilot_submit_request_clear(&req);
	pilot_api_close(api);
	pilot_spec_free(spec);
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
		"waiting for it. Repeat --after to wait for several runs.",
	.opts = options,
	.opts_size = sizeof(struct opts),
	.min_args = 0,
	.max_args = 1,
	.flags = CMD_NEEDS_CONFIG,
	.run = run,
	.complete_args = "file",
};
