/* pilot run: run a project here and now. Packs it, records a run in the local store,
 * claims that run for this process, and executes it through the same attempt executor
 * an agent uses, streaming the job's stdout and stderr as they happen. Exits with the
 * job's status (pilot(1)): its code, 124 timeout, 125 pilot failed, 130 canceled. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>


#include "pilot.h"
#include "project.h"
#include "pilot/agent.h"
#include "pilot/api.h"
#include "pilot/config.h"
#include "pilot/runtime.h"
#include "pilot/spec.h"

struct opts {
	struct opt_list params;
	struct opt_list env;
	const char *runtime;
	int64_t timeout_ms;
	bool detach;
	bool timestamps;
	const char *pull;
	const char *network;
	bool keep_workspace;
};

static const struct pilot_opt options[] = {
	{ OPT_LIST, 'p', "param", "K=V", "override a param of the spec", offsetof(struct opts, params), NULL },
	{ OPT_LIST, 'e', "env", "K=V", "set an environment variable for the job", offsetof(struct opts, env), NULL },
	{ OPT_STRING, 0, "runtime", "RUNTIME", "docker, podman or host (default: the spec's, the config's, else the first engine that answers)",
	  offsetof(struct opts, runtime), "docker podman host" },
	{ OPT_DURATION, 0, "timeout", "DUR", "stop the job after this long (overrides the spec)",
	  offsetof(struct opts, timeout_ms), NULL },
	{ OPT_FLAG, 'd', "detach", NULL, "run in the background and print the run id",
	  offsetof(struct opts, detach), NULL },
	{ OPT_FLAG, 0, "timestamps", NULL, "prefix each output line with its time",
	  offsetof(struct opts, timestamps), NULL },
	{ OPT_STRING, 0, "pull", "POLICY", "image pull policy: always, missing, never",
	  offsetof(struct opts, pull), "always missing never" },
	{ OPT_STRING, 0, "network", "NET", "container network (default: the engine's)",
	  offsetof(struct opts, network), NULL },
	{ OPT_FLAG, 0, "keep-workspace", NULL, "leave the job's workspace on disk",
	  offsetof(struct opts, keep_workspace), NULL },
	OPT_END_ROW,
};

static struct pilot_job_control *sig_ctl;
static volatile sig_atomic_t sig_count;

static void on_signal(int sig)
{
	(void)sig;
	sig_count++;
	if (sig_ctl)
		pilot_job_control_cancel(sig_ctl, sig_count > 1);
}

/* Output goes out as it comes; --timestamps needs to know where lines start. */
struct out_state {
	bool timestamps;
	bool at_line_start[3];
};

static void write_fd(int fd, const char *p, size_t n)
{
	/* A reader that went away is not the job's problem: keep running, stop writing. */
	if (pilot_write_all(fd, p, n) < 0 && errno != EPIPE)
		return;
}

static void on_output(int stream, const char *data, size_t len, void *ud)
{
	struct out_state *s = ud;
	int fd = stream == 2 ? STDERR_FILENO : STDOUT_FILENO;
	if (!s->timestamps) {
		write_fd(fd, data, len);
		return;
	}
	while (len) {
		if (s->at_line_start[stream]) {
			char ts[32];
			pilot_format_time(pilot_now_ms(), ts);
			write_fd(fd, ts, strlen(ts));
			write_fd(fd, " ", 1);
			s->at_line_start[stream] = false;
		}
		const char *nl = memchr(data, '\n', len);
		size_t n = nl ? (size_t)(nl - data) + 1 : len;
		write_fd(fd, data, n);
		if (nl)
			s->at_line_start[stream] = true;
		data += n;
		len -= n;
	}
}

static int choose_runtime(struct pilot_ctx *ctx, const struct opts *o, const struct pilot_spec *spec,
			  struct pilot_runtime **rt)
{
	const char *kind = o->runtime;
	if (!kind)
		kind = pilot_spec_runtime_name(spec->runtime);
	if (!kind)
		kind = pilot_config_get(ctx->config, "runtime", NULL);
	if (kind && strcmp(kind, "docker") && strcmp(kind, "podman") && strcmp(kind, "host") && strcmp(kind, "auto"))
		return pilot_error_set(PILOT_EINVALID, "unknown runtime '%s' (expected docker, podman or host)", kind);
	bool automatic = !kind || !strcmp(kind, "auto");
	if (!automatic && strcmp(kind, "host") && !spec->image)
		return pilot_error_set(PILOT_EINVALID, "the spec has no image: runtime '%s' needs one (or use --runtime host)",
				       kind);
	if (automatic && !spec->image) {
		cmd_notef(ctx, "the spec has no image: running on the host, not isolated");
		kind = "host";
		automatic = false;
	}
	/* Falling back to the host, the runtime says so itself (a notice). */
	struct pilot_runtime_opts ro = { .auto_host = true };
	return pilot_runtime_open(automatic ? NULL : kind, &ro, rt);
}

static int execute(struct pilot_ctx *ctx, const struct opts *o, struct pilot_api *api, struct pilot_runtime *rt,
		   const char *data_dir, const char *run_id, const char *agent, bool foreground)
{
	struct pilot_claim_request creq = { .agent = agent, .run = run_id, .version = NULL };
	pilot_kvs_set(&creq.labels, "pilot.local", "1");
	struct pilot_claim claim = { 0 };
	int r = pilot_api_claim(api, &creq, &claim);
	pilot_claim_request_clear(&creq);
	if (r <= 0) {
		if (r == 0)
			pilot_error_set(PILOT_ECONFLICT, "run %s was taken by someone else", run_id);
		return cmd_fail(ctx, EXIT_PILOT);
	}
	const char *pull_s = o->pull ? o->pull : pilot_config_get(ctx->config, "pull", NULL);
	enum pilot_pull_policy pull = PILOT_PULL_MISSING;
	if (pull_s && pilot_pull_policy_parse(pull_s, &pull) < 0) {
		pilot_claim_clear(&claim);
		return cmd_fail(ctx, EXIT_PILOT);
	}
	struct pilot_job_control *ctl = NULL;
	pilot_job_control_new(&ctl);
	struct out_state out = { .timestamps = o->timestamps, .at_line_start = { true, true, true } };
	_cleanup_free_ char *work = pilot_path_join(data_dir, "work");
	struct pilot_exec_opts eo = {
		.api = api,
		.rt = rt,
		.work_dir = work,
		.pull = pull,
		.network = o->network ? o->network : pilot_config_get(ctx->config, "network", NULL),
		.keep_workspace = o->keep_workspace,
		.on_output = foreground ? on_output : NULL,
		.ud = &out,
		.ctl = ctl,
	};
	if (foreground) {
		sig_ctl = ctl;
		struct sigaction sa = { .sa_handler = on_signal };
		sigemptyset(&sa.sa_mask);
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
	}
	struct pilot_exec_result res;
	pilot_exec_attempt(&eo, &claim, &res);
	sig_ctl = NULL;
	int status = res.exit_status;
	if (res.finish.reason == PILOT_REASON_RUNTIME_ERROR || res.finish.reason == PILOT_REASON_BUNDLE_INVALID) {
		cmd_errorf(ctx, "run %s: %s", run_id, res.message);
		status = EXIT_PILOT;
	} else if (res.outcome != PILOT_EXEC_REPORTED) {
		cmd_errorf(ctx, "run %s: the result could not be recorded", run_id);
		status = EXIT_PILOT;
	} else if (res.finish.reason == PILOT_REASON_TIMEOUT) {
		cmd_errorf(ctx, "run %s: %s", run_id, res.message);
	} else if (foreground && ctx->verbose) {
		cmd_notef(ctx, "run %s %s", run_id, res.finish.state == PILOT_ATTEMPT_SUCCEEDED ? "succeeded" : "ended");
	}
	pilot_job_control_free(ctl);
	pilot_claim_clear(&claim);
	/* This process was the run's only agent: it goes with the run rather than linger
	 * as a lost agent in 'pilot agents' (another pilot run of this host that is still
	 * running stays busy through its own lease). */
	if (pilot_api_agent_leave(api, agent) < 0)
		pilot_error_clear();
	return status;
}

static int run(struct pilot_ctx *ctx, void *optsp, int argc, char **argv)
{
	struct opts *o = optsp;
	_cleanup_free_ char *spec_path = NULL, *project = NULL, *data_dir = NULL;
	_cleanup_free_ char *params_json = NULL, *env_json = NULL, *spec_json = NULL, *agent = NULL;
	struct pilot_spec *spec = NULL;
	struct pilot_api *api = NULL;
	struct pilot_runtime *rt = NULL;
	struct pilot_submit_request req = { 0 };
	struct pilot_run run = { 0 };
	int status = EXIT_PILOT;

	if (pilot_spec_find(argc ? argv[0] : ".", &spec_path, &project) < 0)
		return cmd_fail(ctx, EXIT_PILOT);
	struct pilot_spec_vars vars = { .params = o->params.items, .nparams = o->params.n };
	struct pilot_spec_pipeline *pipeline = NULL;
	if (pilot_spec_load_any_file(spec_path, &vars, &spec, &pipeline) < 0)
		return cmd_fail(ctx, EXIT_PILOT);
	if (pipeline) {
		pilot_spec_pipeline_free(pipeline);
		cmd_errorf(ctx, "'%s' is a pipeline (jobs:): running one here is not supported yet; queue it with "
			   "'pilot submit' for an agent", spec_path);
		return EXIT_PILOT;
	}
	if (o->timeout_ms)
		spec->timeout_ms = o->timeout_ms;
	params_json = project_pairs_json(&o->params, "--param", false);
	env_json = project_pairs_json(&o->env, "--env", true);
	if ((o->params.n && !params_json) || (o->env.n && !env_json))
		goto fail;
	if (project_secrets(spec, &req.secrets) < 0)
		goto fail;
	if (choose_runtime(ctx, o, spec, &rt) < 0)
		goto fail;

	const char *dd = pilot_config_get(ctx->config, "data_dir", NULL);
	if (pilot_api_open_local(dd, NULL, &api) < 0)
		goto fail;
	data_dir = dd ? pilot_xstrdup(dd) : (getenv("PILOT_DATA_DIR") ? pilot_xstrdup(getenv("PILOT_DATA_DIR"))
								     : pilot_data_home());
	char sha[65];
	if (project_put_bundle(ctx, api, project, spec, sha) < 0)
		goto fail;

	spec_json = pilot_spec_to_json(spec);
	req.name = spec->name;
	req.spec_json = spec_json;
	req.bundle_sha256 = sha;
	req.params_json = params_json;
	req.env_json = env_json;
	req.priority = spec->priority;
	req.timeout_ms = spec->timeout_ms;
	req.hold = true;
	/* pilot run makes one attempt: a retry policy is for queued runs. The rest of the
	 * spec's policy is recorded as it is, so the run shows what the spec says. */
	project_retry_policy(spec, &req.retry);
	req.retry.max_attempts = 1;
	if (pilot_api_submit(api, &req, &run) < 0)
		goto fail;

	char host[256] = "localhost";
	gethostname(host, sizeof(host) - 1);
	agent = pilot_xasprintf("run@%s", host);
	if (o->detach) {
		/* The child gets its own store connection and engine client. */
		pilot_api_close(api);
		api = NULL;
		pid_t pid = fork();
		if (pid < 0) {
			pilot_error_errno(PILOT_EIO, errno, "cannot fork");
			goto fail;
		}
		if (pid == 0) {
			setsid();
			int null = open("/dev/null", O_RDWR | O_CLOEXEC);
			dup2(null, STDIN_FILENO);
			dup2(null, STDOUT_FILENO);
			dup2(null, STDERR_FILENO);
			struct pilot_api *capi = NULL;
			int st = EXIT_PILOT;
			if (pilot_api_open_local(dd, NULL, &capi) >= 0)
				st = execute(ctx, o, capi, rt, data_dir, run.id, agent, false);
			pilot_api_close(capi);
			_exit(st);
		}
		puts(run.id);
		status = EXIT_OK;
		goto out;
	}
	if (ctx->verbose)
		cmd_notef(ctx, "run %s on %s", run.id, pilot_runtime_describe(rt));
	status = execute(ctx, o, api, rt, data_dir, run.id, agent, true);
	goto out;
fail:
	status = cmd_fail(ctx, EXIT_PILOT);
out:
	pilot_run_clear(&run);
	pilot_submit_request_clear(&req);
	pilot_api_close(api);
	pilot_runtime_close(rt);
	pilot_spec_free(spec);
	return status;
}

const struct pilot_cmd cmd_run = {
	.name = "run",
	.summary = "run a project here and now, in a container",
	.args = "[DIR|SPEC]",
	.description =
		"Packs the project (a directory with pilot.yaml, or a spec file), records a run in\n"
		"the local store (see pilot list, pilot show), and runs it with docker, podman or on\n"
		"the host. The job's stdout and stderr stream to pilot's as they happen. The exit\n"
		"status is the job's own, 124 when it timed out, 125 when pilot could not run it,\n"
		"128+N when a signal N killed it, 130 when it was canceled. The first Ctrl-C\n"
		"cancels the job with a grace period, the second kills it.",
	.opts = options,
	.opts_size = sizeof(struct opts),
	.min_args = 0,
	.max_args = 1,
	.flags = CMD_NEEDS_CONFIG,
	.run = run,
	.complete_args = "file",
};
