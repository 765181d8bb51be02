/* pilot run: run a project here and now. Packs it, records a run in the local store,
 * claims that run for this process, and executes it through the same attempt executor
 * an agent uses, streaming the job's stdout and stderr as they happen. Exits with the
 * job's status (pilot(1)): its code, 124 timeout, 125 pilot failed, 130 canceled. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>


#include "pilot.h"
#include "project.h"
#include "runs.h"
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
	int64_t jobs;
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
	{ OPT_INT, 'j', "jobs", "N", "a pipeline: run up to N of its jobs at once (default 1)",
	  offsetof(struct opts, jobs), NULL },
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

/* The runtime spec runs on: *kind "docker", "podman" or "host", or NULL for the first
 * engine that answers (the host when none does). *no_image: the host, for a spec
 * without an image. */
static int runtime_kind(struct pilot_ctx *ctx, const struct opts *o, const struct pilot_spec *spec, const char **out,
			bool *no_image)
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
	*no_image = automatic && !spec->image;
	*out = *no_image ? "host" : automatic ? NULL : kind;
	return 0;
}

static int open_runtime(const char *kind, struct pilot_runtime **rt)
{
	/* Falling back to the host, the runtime says so itself (a notice). */
	struct pilot_runtime_opts ro = { .auto_host = true };
	return pilot_runtime_open(kind, &ro, rt);
}

static int choose_runtime(struct pilot_ctx *ctx, const struct opts *o, const struct pilot_spec *spec,
			  struct pilot_runtime **rt)
{
	const char *kind;
	bool no_image;
	if (runtime_kind(ctx, o, spec, &kind, &no_image) < 0)
		return -1;
	if (no_image)
		cmd_notef(ctx, "the spec has no image: running on the host, not isolated");
	return open_runtime(kind, rt);
}

/* The local store pilot run records in, and its data directory (the config's
 * data_dir, else PILOT_DATA_DIR, else the default). */
static int open_store(struct pilot_ctx *ctx, struct pilot_api **api, char **data_dir)
{
	const char *dd = pilot_config_get(ctx->config, "data_dir", NULL);
	if (pilot_api_open_local(dd, NULL, api) < 0)
		return -1;
	*data_dir = dd ? pilot_xstrdup(dd) : (getenv("PILOT_DATA_DIR") ? pilot_xstrdup(getenv("PILOT_DATA_DIR"))
								      : pilot_data_home());
	return 0;
}

/* Where an attempt's output goes and how it is stopped: foreground (the single run
 * pilot run shows) takes Ctrl-C itself; a pipeline's job is canceled through ctl. */
struct attempt_io {
	void (*on_output)(int stream, const char *data, size_t len, void *ud);
	void *ud;
	struct pilot_job_control *ctl;
	bool foreground;
	bool leave; /* the agent leaves afterwards (the last attempt of this process) */
};

static int execute(struct pilot_ctx *ctx, const struct opts *o, struct pilot_api *api, struct pilot_runtime *rt,
		   const char *data_dir, const char *run_id, const char *agent, const struct attempt_io *io)
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
	_cleanup_free_ char *work = pilot_path_join(data_dir, "work");
	struct pilot_exec_opts eo = {
		.api = api,
		.rt = rt,
		.work_dir = work,
		.pull = pull,
		.network = o->network ? o->network : pilot_config_get(ctx->config, "network", NULL),
		.keep_workspace = o->keep_workspace,
		.on_output = io->on_output,
		.ud = io->ud,
		.ctl = io->ctl,
	};
	bool foreground = io->foreground;
	if (foreground) {
		sig_ctl = io->ctl;
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
	pilot_claim_clear(&claim);
	/* This process was the run's only agent: it goes with the run rather than linger
	 * as a lost agent in 'pilot agents' (another pilot run of this host that is still
	 * running stays busy through its own lease). */
	if (io->leave && pilot_api_agent_leave(api, agent) < 0)
		pilot_error_clear();
	return status;
}

/* One attempt of run_id, its output on pilot's (when foreground), Ctrl-C canceling it. */
static int execute_one(struct pilot_ctx *ctx, const struct opts *o, struct pilot_api *api, struct pilot_runtime *rt,
		       const char *data_dir, const char *run_id, const char *agent, bool foreground)
{
	struct out_state out = { .timestamps = o->timestamps, .at_line_start = { true, true, true } };
	struct attempt_io io = { .on_output = foreground ? on_output : NULL, .ud = &out, .foreground = foreground,
				 .leave = true };
	pilot_job_control_new(&io.ctl);
	int status = execute(ctx, o, api, rt, data_dir, run_id, agent, &io);
	pilot_job_control_free(io.ctl);
	return status;
}

/* ---- pipelines ---------------------------------------------------------------- */

struct pipeline_run;

/* One job of a pipeline pilot run runs: its run, its runtime, and its output held a
 * line at a time, so that jobs running together do not mix within a line. */
struct pjob {
	struct pipeline_run *pr;
	const struct pilot_spec *spec;
	char run_id[PILOT_ID_SIZE];
	struct pilot_runtime *rt;
	bool owns_rt;       /* jobs on the same kind of runtime share the first one's */
	struct pilot_job_control *ctl;
	pthread_t thread;
	enum { PJ_IDLE, PJ_RUNNING, PJ_DONE, PJ_JOINED } phase;
	struct pilot_buf pending[3];
};

struct pipeline_run {
	struct pilot_ctx *ctx;
	const struct opts *o;
	struct pilot_api *api;
	const char *data_dir;
	const char *agent;
	pthread_mutex_t lock; /* phases, and pilot's stdout and stderr */
	pthread_cond_t changed;
	struct pjob *jobs;
	size_t n;
	int width; /* of the longest job name, for the prefixes */
};

/* Complete lines of the job's stream, each as "JOB | line" (with --timestamps, the
 * time first). Called with pr->lock held. */
static void pjob_lines(struct pjob *j, int stream, bool all)
{
	struct pilot_buf *b = &j->pending[stream];
	int fd = stream == 2 ? STDERR_FILENO : STDOUT_FILENO;
	while (b->len) {
		const char *nl = memchr(b->data, '\n', b->len);
		if (!nl && !all)
			return;
		size_t n = nl ? (size_t)(nl - b->data) + 1 : b->len;
		char ts[32] = "";
		if (j->pr->o->timestamps)
			pilot_format_time(pilot_now_ms(), ts);
		_cleanup_free_ char *prefix =
			pilot_xasprintf("%s%s%-*s | ", ts, *ts ? " " : "", j->pr->width, j->spec->name);
		write_fd(fd, prefix, strlen(prefix));
		write_fd(fd, b->data, n);
		if (!nl)
			write_fd(fd, "\n", 1);
		pilot_buf_consume(b, n);
	}
}

static void pjob_output(int stream, const char *data, size_t len, void *ud)
{
	struct pjob *j = ud;
	pthread_mutex_lock(&j->pr->lock);
	pilot_buf_append(&j->pending[stream], data, len);
	pjob_lines(j, stream, false);
	pthread_mutex_unlock(&j->pr->lock);
}

static void *pjob_main(void *arg)
{
	struct pjob *j = arg;
	struct pipeline_run *pr = j->pr;
	struct attempt_io io = { .on_output = pjob_output, .ud = j, .ctl = j->ctl };
	execute(pr->ctx, pr->o, pr->api, j->rt, pr->data_dir, j->run_id, pr->agent, &io);
	pthread_mutex_lock(&pr->lock);
	for (int s = 1; s <= 2; s++)
		pjob_lines(j, s, true);
	j->phase = PJ_DONE;
	pthread_cond_signal(&pr->changed);
	pthread_mutex_unlock(&pr->lock);
	return NULL;
}

/* Start the jobs whose runs are queued (their needs met), up to --jobs at once. */
static int start_queued(struct pipeline_run *pr, const char *pid, size_t *running)
{
	struct pilot_run_filter f = { .array = pid, .states = PILOT_RUN_STATE_BIT(PILOT_RUN_QUEUED), .limit = 1000 };
	struct pilot_run_list l = { 0 };
	size_t most = pr->o->jobs > 0 ? (size_t)pr->o->jobs : 1;
	int r = pilot_api_list_runs(pr->api, &f, &l);
	/* Newest first: the jobs in order are the list backwards. */
	for (size_t i = l.n; r >= 0 && i-- > 0 && *running < most;) {
		struct pjob *j = NULL;
		for (size_t k = 0; k < pr->n && !j; k++)
			if (!strcmp(pr->jobs[k].run_id, l.items[i].id) && pr->jobs[k].phase == PJ_IDLE)
				j = &pr->jobs[k];
		if (!j)
			continue;
		pilot_job_control_new(&j->ctl);
		pthread_mutex_lock(&pr->lock);
		j->phase = PJ_RUNNING;
		pthread_mutex_unlock(&pr->lock);
		if (pthread_create(&j->thread, NULL, pjob_main, j) != 0)
			abort();
		(*running)++;
	}
	pilot_run_list_clear(&l);
	return r;
}

/* Run pipeline pid's jobs here as their needs are met; on Ctrl-C cancel the pipeline:
 * the running jobs stop (at once on a second Ctrl-C), the others end canceled. */
static void drive_pipeline(struct pipeline_run *pr, const char *pid)
{
	sig_atomic_t seen = sig_count;
	bool stopping = false, canceled = false;
	size_t running = 0;
	for (;;) {
		if (sig_count != seen) {
			/* The jobs not started end canceled (not skipped for the ones stopped). */
			if (!canceled && pilot_api_cancel_array(pr->api, pid, NULL, -1, NULL) < 0)
				cmd_errorf(pr->ctx, "pipeline %s: %s", pid, pilot_error_last());
			canceled = true;
			seen = sig_count;
			stopping = true;
			pthread_mutex_lock(&pr->lock);
			for (size_t i = 0; i < pr->n; i++)
				if (pr->jobs[i].phase == PJ_RUNNING)
					pilot_job_control_cancel(pr->jobs[i].ctl, seen > 1);
			pthread_mutex_unlock(&pr->lock);
		}
		for (size_t i = 0; i < pr->n; i++) {
			struct pjob *j = &pr->jobs[i];
			pthread_mutex_lock(&pr->lock);
			bool done = j->phase == PJ_DONE;
			pthread_mutex_unlock(&pr->lock);
			if (!done)
				continue;
			pthread_join(j->thread, NULL);
			pilot_job_control_free(j->ctl);
			j->ctl = NULL;
			j->phase = PJ_JOINED;
			running--;
		}
		size_t before = running;
		if (!stopping && start_queued(pr, pid, &running) < 0) {
			cmd_errorf(pr->ctx, "pipeline %s: %s", pid, pilot_error_last());
			stopping = true;
		}
		/* Nothing running and nothing queued: whatever is left waits for nothing that
		 * can still happen here (every need ended), so the rest has ended too. */
		if (!running && (stopping || before == running))
			break;
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += 100 * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		pthread_mutex_lock(&pr->lock);
		bool any_done = false;
		for (size_t i = 0; i < pr->n; i++)
			any_done |= pr->jobs[i].phase == PJ_DONE;
		if (!any_done)
			pthread_cond_timedwait(&pr->changed, &pr->lock, &until);
		pthread_mutex_unlock(&pr->lock);
	}
	/* Stopped by a failure of the store: what was not started will not be. */
	if (stopping && !canceled && pilot_api_cancel_array(pr->api, pid, NULL, -1, NULL) < 0)
		cmd_errorf(pr->ctx, "pipeline %s: %s", pid, pilot_error_last());
}

/* How the jobs ended, one line each on stderr; the exit status of the first job (in
 * order) that did not succeed, 0 when all did. */
static int pipeline_outcome(struct pilot_ctx *ctx, struct pilot_api *api, const struct pipeline_run *pr,
			    const char *pid)
{
	int status = EXIT_OK;
	for (size_t i = 0; i < pr->n; i++) {
		struct pilot_run r = { 0 };
		char cell[96] = "unknown";
		if (pilot_api_get_run(api, pr->jobs[i].run_id, &r) == 0) {
			run_state_cell(&r, cell, sizeof(cell));
			int st = run_exit_status(&r);
			if (status == EXIT_OK && st != EXIT_OK)
				status = st < 0 ? EXIT_PILOT : st;
		} else if (status == EXIT_OK) {
			status = EXIT_PILOT;
		}
		if (ctx->stderr_tty || status != EXIT_OK || ctx->verbose)
			fprintf(stderr, "pilot: %-*s  %s  %s\n", pr->width, pr->jobs[i].spec->name, pr->jobs[i].run_id, cell);
		pilot_run_clear(&r);
	}
	if (ctx->verbose || ctx->stderr_tty)
		cmd_notef(ctx, "pipeline %s: see it with 'pilot show %s'", pid, pid);
	return status;
}

/* pilot run of a pipeline: every job's run recorded (held for this process) in one
 * go, then run here in an order the needs allow, up to --jobs at once, each job's
 * output lines prefixed with its name. */
static int run_pipeline(struct pilot_ctx *ctx, const struct opts *o, const char *project,
			struct pilot_spec_pipeline *p, const char *params_json, const char *env_json)
{
	struct pipeline_run pr = { .ctx = ctx, .o = o, .n = p->njobs };
	struct pilot_pipeline_request preq = { .name = p->name, .max_failures = p->max_failures };
	struct pilot_array a = { 0 };
	struct pilot_api *api = NULL;
	char **specs = pilot_xcalloc(p->njobs, sizeof(*specs));
	_cleanup_free_ const char **kinds = pilot_xcalloc(p->njobs, sizeof(*kinds));
	_cleanup_free_ bool *no_image = pilot_xcalloc(p->njobs, sizeof(*no_image));
	bool said_host = false;
	_cleanup_free_ char *data_dir = NULL, *agent = NULL;
	int status = EXIT_PILOT;
	pr.jobs = pilot_xcalloc(p->njobs, sizeof(*pr.jobs));
	preq.jobs = pilot_xcalloc(p->njobs, sizeof(*preq.jobs));
	if (o->detach) {
		status = cmd_usage_error(ctx, "--detach does not take a pipeline yet: queue it with 'pilot submit'");
		goto out;
	}
	if (o->jobs < 0 || o->jobs > 1000) {
		status = cmd_usage_error(ctx, "--jobs: expected 1 to 1000 jobs at once");
		goto out;
	}
	for (size_t i = 0; i < p->njobs; i++) {
		struct pilot_spec *spec = p->jobs[i].spec;
		struct pjob *j = &pr.jobs[i];
		struct pilot_submit_request *req = &preq.jobs[i].run;
		j->pr = &pr;
		j->spec = spec;
		for (int s = 0; s < 3; s++)
			pilot_buf_init(&j->pending[s], 0);
		if ((int)strlen(spec->name) > pr.width)
			pr.width = (int)strlen(spec->name);
		if (o->timeout_ms)
			spec->timeout_ms = o->timeout_ms;
		if (project_secrets(spec, &req->secrets) < 0 || runtime_kind(ctx, o, spec, &kinds[i], &no_image[i]) < 0) {
			pilot_error_prefix(pilot_error_code(), "job '%s'", spec->name);
			goto fail;
		}
		for (size_t k = 0; k < i && !j->rt; k++)
			if (kinds[k] == kinds[i] || (kinds[k] && kinds[i] && !strcmp(kinds[k], kinds[i])))
				j->rt = pr.jobs[k].rt;
		if (no_image[i] && !said_host) {
			cmd_notef(ctx, "job '%s' has no image: running on the host, not isolated", spec->name);
			said_host = true;
		}
		if (!j->rt) {
			if (open_runtime(kinds[i], &j->rt) < 0)
				goto fail;
			j->owns_rt = true;
		}
		req->name = spec->name;
		req->spec_json = specs[i] = pilot_spec_to_json(spec);
		req->params_json = params_json;
		req->env_json = env_json;
		req->priority = spec->priority;
		req->timeout_ms = spec->timeout_ms;
		req->hold = true;
		project_retry_policy(spec, &req->retry);
		req->retry.max_attempts = 1; /* as for one run: one attempt */
		preq.jobs[i].needs = pilot_xcalloc(p->jobs[i].nneeds + 1, sizeof(*preq.jobs[i].needs));
		for (size_t k = 0; k < p->jobs[i].nneeds; k++)
			preq.jobs[i].needs[preq.jobs[i].nneeds++] = p->jobs[i].needs[k];
		preq.njobs++;
	}
	if (open_store(ctx, &api, &data_dir) < 0)
		goto fail;
	char sha[65];
	if (project_put_bundle(ctx, api, project, p->jobs[0].spec, sha) < 0)
		goto fail;
	for (size_t i = 0; i < preq.njobs; i++)
		preq.jobs[i].run.bundle_sha256 = sha;
	if (pilot_api_submit_pipeline(api, &preq, &a) < 0 || a.nruns != p->njobs)
		goto fail;
	for (size_t i = 0; i < a.nruns; i++)
		memcpy(pr.jobs[i].run_id, a.runs[i], PILOT_ID_SIZE);
	if (ctx->verbose)
		cmd_notef(ctx, "pipeline %s: %zu jobs, up to %lld at once", a.id, a.nruns, (long long)(o->jobs > 0 ? o->jobs : 1));

	char host[256] = "localhost";
	gethostname(host, sizeof(host) - 1);
	agent = pilot_xasprintf("run@%s", host);
	pr.api = api;
	pr.data_dir = data_dir;
	pr.agent = agent;
	pthread_mutex_init(&pr.lock, NULL);
	pthread_cond_init(&pr.changed, NULL);
	struct sigaction sa = { .sa_handler = on_signal };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	drive_pipeline(&pr, a.id);
	pthread_cond_destroy(&pr.changed);
	pthread_mutex_destroy(&pr.lock);
	if (pilot_api_agent_leave(api, agent) < 0)
		pilot_error_clear();
	status = pipeline_outcome(ctx, api, &pr, a.id);
	goto out;
fail:
	status = cmd_fail(ctx, EXIT_PILOT);
out:
	for (size_t i = 0; i < p->njobs; i++) {
		if (pr.jobs[i].owns_rt)
			pilot_runtime_close(pr.jobs[i].rt);
		for (int s = 0; s < 3; s++)
			pilot_buf_free(&pr.jobs[i].pending[s]);
		free(specs[i]);
	}
	free(specs);
	free(pr.jobs);
	pilot_array_clear(&a);
	pilot_pipeline_request_clear(&preq);
	pilot_api_close(api);
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
	if (pipeline || o->jobs) {
		params_json = project_pairs_json(&o->params, "--param", false);
		env_json = project_pairs_json(&o->env, "--env", true);
		if (!pipeline)
			status = cmd_usage_error(ctx, "--jobs: only for a pipeline (a spec with jobs:)");
		else if ((o->params.n && !params_json) || (o->env.n && !env_json))
			status = cmd_fail(ctx, EXIT_PILOT);
		else
			status = run_pipeline(ctx, o, project, pipeline, params_json, env_json);
		pilot_spec_pipeline_free(pipeline);
		pilot_spec_free(spec);
		return status;
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

	if (open_store(ctx, &api, &data_dir) < 0)
		goto fail;
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
			if (pilot_api_open_local(pilot_config_get(ctx->config, "data_dir", NULL), NULL, &capi) >= 0)
				st = execute_one(ctx, o, capi, rt, data_dir, run.id, agent, false);
			pilot_api_close(capi);
			_exit(st);
		}
		puts(run.id);
		status = EXIT_OK;
		goto out;
	}
	if (ctx->verbose)
		cmd_notef(ctx, "run %s on %s", run.id, pilot_runtime_describe(rt));
	status = execute_one(ctx, o, api, rt, data_dir, run.id, agent, true);
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
		"cancels the job with a grace period, the second kills it. A pipeline (a spec with\n"
		"jobs:) runs job by job as their needs allow, up to --jobs at once, each output\n"
		"line prefixed with its job; it exits with the first failed job's status.",
	.opts = options,
	.opts_size = sizeof(struct opts),
	.min_args = 0,
	.max_args = 1,
	.flags = CMD_NEEDS_CONFIG,
	.run = run,
	.complete_args = "file",
};
