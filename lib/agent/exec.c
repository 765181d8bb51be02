/* One claimed attempt from start to finish: the workspace, the job run by the runtime
 * with the shipper and heartbeat threads beside it, the artifacts, the end reported;
 * and the helpers the attempt's parts share. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "internal.h"
#include "pilot/bundle.h"

const char *pilot_exec_outcome_name(enum pilot_exec_outcome o)
{
	switch (o) {
	case PILOT_EXEC_REPORTED: return "reported";
	case PILOT_EXEC_SUPERSEDED: return "superseded";
	case PILOT_EXEC_LEASE_LOST: return "lease lost";
	case PILOT_EXEC_UNREPORTED: return "unreported";
	}
	return "?";
}

static void deadline_at(struct timespec *ts, int64_t mono_ms)
{
	ts->tv_sec = (time_t)(mono_ms / 1000);
	ts->tv_nsec = (long)(mono_ms % 1000) * 1000000L;
}

/* Wait on c until the monotonic time `until` (ms), or a signal of c. */
void exec_wait_until(pthread_cond_t *c, pthread_mutex_t *m, int64_t until)
{
	struct timespec ts;
	deadline_at(&ts, until);
	pthread_cond_timedwait(c, m, &ts);
}

int64_t exec_jitter(int64_t ms)
{
	uint32_t r;
	pilot_random_bytes(&r, sizeof(r));
	return ms / 2 + (int64_t)(r % (uint32_t)(ms / 2 + 1));
}

int64_t exec_next_backoff(int64_t b)
{
	return b * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : b * 2;
}

bool exec_hurry(const struct exec *e)
{
	return e->o->hurry && e->o->hurry(e->o->ud);
}

/* A refusal that means another attempt owns the run (or this one is gone): api.h says
 * such messages name the attempt "superseded"; a refusal that carries an expected
 * offset is about the bytes instead. */
bool exec_superseded(int r, int64_t expected)
{
	if (r == PILOT_ENOTFOUND)
		return true;
	if (r != PILOT_ECONFLICT)
		return false;
	return expected < 0 || strstr(pilot_error_last(), "superseded") != NULL;
}

/* Worth trying again: the server or the link is away or failed for a passing reason. */
bool exec_transient(int r)
{
	return r == PILOT_EUNAVAILABLE || r == PILOT_EIO || r == PILOT_EFAIL || r == PILOT_ENOMEM;
}

/* Called with e->lock held. */
void exec_fatal(struct exec *e, enum pilot_exec_outcome why)
{
	if (e->stop)
		return;
	e->stop = true;
	e->fatal = why;
	if (e->ctl)
		pilot_job_control_cancel(e->ctl, true);
	pthread_cond_broadcast(&e->cond);
	pthread_cond_broadcast(&e->hb_cond);
}

void exec_fatal_locked(struct exec *e, enum pilot_exec_outcome why)
{
	pthread_mutex_lock(&e->lock);
	exec_fatal(e, why);
	pthread_mutex_unlock(&e->lock);
}

bool exec_stopped(struct exec *e)
{
	pthread_mutex_lock(&e->lock);
	bool s = e->stop;
	pthread_mutex_unlock(&e->lock);
	return s;
}

bool exec_retry_wait(struct exec *e, int r, int64_t start, int64_t *backoff, const char *what)
{
	if (!exec_transient(r) || exec_stopped(e) || exec_hurry(e) || pilot_mono_ms() - start >= e->give_up_ms)
		return false;
	pilot_log(PILOT_LOG_INFO, "run %s: %s failed, retrying: %s", e->claim->run.id, what, pilot_error_last());
	int64_t ms = exec_jitter(*backoff);
	struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
	*backoff = exec_next_backoff(*backoff);
	return true;
}

/* Field 22 of /proc/PID/stat: the start time, which tells a reused pid apart. */
static int proc_start_time(pid_t pid, unsigned long long *out)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	struct pilot_buf b = PILOT_BUF_INIT;
	int r = pilot_read_file(path, 4096, &b);
	if (r < 0) {
		pilot_buf_free(&b);
		return r;
	}
	/* The command name (field 2) may hold spaces and parentheses: skip to its end. */
	const char *p = strrchr(pilot_buf_str(&b), ')');
	r = PILOT_EINVALID;
	if (p) {
		int field = 2;
		for (p++; *p && field < 22; p++)
			if (*p == ' ')
				field++;
		char *end;
		errno = 0;
		unsigned long long v = strtoull(p, &end, 10);
		if (field == 22 && end != p && !errno) {
			*out = v;
			r = 0;
		}
	}
	pilot_buf_free(&b);
	return r;
}

static void on_started(const char *id, void *ud)
{
	struct exec *e = ud;
	/* A host job outlives a crashed agent in its own session: note it, so that the
	 * agent's next start can stop it (containers are found by their labels). */
	int pid = 0;
	unsigned long long start;
	if (sscanf(id, "pid %d", &pid) == 1 && pid > 0 && proc_start_time(pid, &start) == 0) {
		_cleanup_free_ char *path = pilot_path_join(e->dir, PID_FILE);
		char text[64];
		int n = snprintf(text, sizeof(text), "%d %llu\n", pid, start);
		if (pilot_write_file_atomic(path, text, (size_t)n, 0600) < 0)
			pilot_log(PILOT_LOG_DEBUG, "%s", pilot_error_last());
	}
	if (e->o->on_started)
		e->o->on_started(id, e->o->ud);
}

static void finish_with(struct pilot_exec_result *res, enum pilot_attempt_state st, enum pilot_reason why,
			const char *message)
{
	res->finish.state = st;
	res->finish.reason = why;
	if (message) {
		snprintf(res->message, sizeof(res->message), "%s", message);
		res->finish.message = res->message;
	}
}

/* How a job that pilot exec_stopped (cancel, timeout) ended, for the run's events: which
 * signals it was sent and what ended it. "" when it was never sent one. */
static void stop_note(const struct pilot_job_result *j, char *out, size_t size)
{
	/* The host runtime reports the signal; a container's init reports 128+N. */
	int sig = j->signal > 0 ? j->signal : j->exit_code > 128 && j->exit_code < 160 ? j->exit_code - 128 : 0;
	if (j->sent_kill && !j->sent_term)
		snprintf(out, size, "killed with SIGKILL at once, no grace");
	else if (j->sent_kill && sig == SIGKILL)
		snprintf(out, size, "SIGTERM, then SIGKILL when the grace ran out");
	else if (j->sent_term && sig == SIGTERM)
		snprintf(out, size, "ended by SIGTERM");
	else if (j->sent_term && sig > 0)
		snprintf(out, size, "sent SIGTERM, ended by signal %d", sig);
	else if (j->sent_term && j->exit_code >= 0)
		snprintf(out, size, "sent SIGTERM, exited %d", j->exit_code);
	else
		out[0] = 0;
}

static int run_job(struct exec *e, const char *ws, struct pilot_exec_result *res)
{
	const struct pilot_run *run = &e->claim->run;
	struct pilot_spec *spec = NULL;
	struct strv env = { 0 }, secrets = { 0 };
	int r = pilot_spec_from_json(run->spec_json, &spec);
	if (r < 0) {
		finish_with(res, PILOT_ATTEMPT_FAILED, PILOT_REASON_RUNTIME_ERROR, pilot_error_last());
		return r;
	}
	bool isolated = pilot_runtime_isolated(e->o->rt);
	const char *workdir = isolated ? spec->workdir : ws;
	_cleanup_free_ char *dotpilot = pilot_path_join(ws, ".pilot");
	_cleanup_free_ char *metrics_host = pilot_path_join(dotpilot, "metrics.jsonl");
	_cleanup_free_ char *metrics_job = pilot_xasprintf("%s/.pilot/metrics.jsonl", workdir);
	pilot_mkdir_p(dotpilot, 0755);
	/* Created ahead so a job running as another user than the workspace's owner can
	 * still append to it. */
	int mfd = open(metrics_host, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0666);
	if (mfd >= 0) {
		fchmod(mfd, 0666);
		close(mfd);
	}

	for (size_t i = 0; i < spec->nenv; i++)
		exec_strv_add(&env, pilot_xasprintf("%s=%s", spec->env[i].key, spec->env[i].value));
	r = exec_add_json_env(&env, run->env_json);
	for (size_t i = 0; i < run->secrets.n; i++) {
		const char *v = run->secrets.items[i].value ? run->secrets.items[i].value : "";
		exec_strv_add(&env, pilot_xasprintf("%s=%s", run->secrets.items[i].key, v));
		if (*v)
			exec_strv_add(&secrets, pilot_xstrdup(v));
	}
	exec_strv_add(&env, pilot_xasprintf("PILOT_RUN_ID=%s", run->id));
	exec_strv_add(&env, pilot_xasprintf("PILOT_ATTEMPT=%d", e->claim->attempt));
	exec_strv_add(&env, pilot_xasprintf("PILOT_METRICS=%s", metrics_job));
	if (run->array_id[0] == 'p') {
		exec_strv_add(&env, pilot_xasprintf("PILOT_PIPELINE_ID=%s", run->array_id));
		exec_strv_add(&env, pilot_xasprintf("PILOT_JOB=%s", run->name));
	} else if (run->array_id[0]) {
		exec_strv_add(&env, pilot_xasprintf("PILOT_ARRAY_ID=%s", run->array_id));
		exec_strv_add(&env, pilot_xasprintf("PILOT_ARRAY_INDEX=%lld", (long long)run->array_index));
	}
	if (r < 0) {
		finish_with(res, PILOT_ATTEMPT_FAILED, PILOT_REASON_RUNTIME_ERROR, pilot_error_last());
		goto out;
	}

	struct pilot_job job = {
		.run_id = run->id,
		.attempt = e->claim->attempt,
		.image = spec->image,
		.argv = (const char *const *)spec->command,
		.argc = spec->ncommand,
		.workspace = ws,
		.workdir = spec->workdir,
		.env = (const char *const *)env.v,
		.nenv = env.n,
		.secrets = (const char *const *)secrets.v,
		.nsecrets = secrets.n,
		.res = {
			.cpus = (double)spec->resources.cpus_milli / 1000.0,
			.memory = spec->resources.memory,
			.gpus = spec->resources.gpus,
			.shm = spec->resources.shm,
		},
		.network = e->o->network,
		.timeout_ms = run->timeout_ms,
		.grace_ms = e->o->grace_ms,
		.pull = e->o->pull,
		.metrics_path = metrics_host,
		.on_output = exec_on_output,
		.on_metric = exec_on_metric,
		.on_started = on_started,
		.ud = e,
	};
	/* The spec's string command is {"/bin/sh", "-c", TEXT}: the runtime's shell form
	 * takes the text alone. */
	if (spec->shell && spec->ncommand == 3) {
		job.argv = (const char *const *)spec->command + 2;
		job.argc = 1;
		job.shell = true;
	}
	/* A job running as root with every capability dropped cannot write a workspace
	 * owned by another user: run it as the workspace's owner then. */
	char user[32];
	if (isolated && geteuid() != 0 && strcmp(pilot_runtime_kind(e->o->rt), "docker") == 0) {
		snprintf(user, sizeof(user), "%u:%u", (unsigned)geteuid(), (unsigned)getegid());
		job.user = user;
	}
	r = pilot_runtime_run(e->o->rt, &job, e->ctl, &res->job);
	if (r < 0) {
		finish_with(res, PILOT_ATTEMPT_FAILED, PILOT_REASON_RUNTIME_ERROR, pilot_error_last());
		goto out;
	}
	if (res->job.canceled) {
		pthread_mutex_lock(&e->lock);
		bool by_run = e->cancel_requested, requeue = e->requeue;
		pthread_mutex_unlock(&e->lock);
		char how[64], msg[sizeof(res->message)];
		stop_note(&res->job, how, sizeof(how));
		const char *who = requeue ? "stopped to be requeued" : by_run ? NULL : e->o->cancel_message;
		snprintf(msg, sizeof(msg), "%s%s%s", who ? who : "", who && *how ? ": " : "", how);
		finish_with(res, PILOT_ATTEMPT_CANCELED, PILOT_REASON_CANCELED, *msg ? msg : NULL);
	} else if (res->job.timed_out) {
		char msg[128], d[32], how[64];
		pilot_format_duration(run->timeout_ms, d, sizeof(d));
		stop_note(&res->job, how, sizeof(how));
		snprintf(msg, sizeof(msg), "timed out after %s%s%s", d, *how ? ": " : "", how);
		finish_with(res, PILOT_ATTEMPT_FAILED, PILOT_REASON_TIMEOUT, msg);
	} else {
		int code = res->job.exit_code >= 0 ? res->job.exit_code : 128 + res->job.signal;
		res->finish.has_exit_code = true;
		res->finish.exit_code = code;
		finish_with(res, code == 0 ? PILOT_ATTEMPT_SUCCEEDED : PILOT_ATTEMPT_FAILED, PILOT_REASON_EXIT_CODE,
			    res->job.oom_killed ? "killed by the memory limit" : NULL);
	}
	res->exit_status = pilot_job_exit_status(&res->job);

	/* Also after a cancel: what the job left is uploaded before the end is reported. */
	if (spec->nartifacts && !exec_stopped(e))
		exec_upload_artifacts(e, ws, spec, res);
	r = 0;
out:
	exec_strv_free(&env);
	exec_strv_free(&secrets);
	pilot_spec_free(spec);
	return r;
}

/* Report the end, retrying passing failures while the lease holds. */
static void report(struct exec *e, struct pilot_exec_result *res)
{
	int64_t start = pilot_mono_ms(), backoff = BACKOFF_MIN_MS;
	/* A cancel that did not come from the run (Ctrl-C on pilot run, an agent giving up
	 * its jobs) is asked for first, so that the run's events say who canceled it. An
	 * agent's token may not be allowed to: the finish below ends the run anyway. */
	if (res->finish.state == PILOT_ATTEMPT_CANCELED && !e->cancel_requested && !exec_stopped(e)) {
		struct pilot_run after = { 0 };
		pthread_mutex_lock(&e->api_lock);
		int r = pilot_api_cancel(e->o->api, e->claim->run.id, e->claim->run.agent, PILOT_CANCEL_GRACE_AGENT,
					 &after);
		pthread_mutex_unlock(&e->api_lock);
		if (r < 0)
			pilot_log(PILOT_LOG_DEBUG, "run %s: cannot cancel: %s", e->claim->run.id, pilot_error_last());
		pilot_run_clear(&after);
	}
	for (;;) {
		if (exec_stopped(e)) {
			res->outcome = e->fatal;
			return;
		}
		pthread_mutex_lock(&e->lock);
		e->reporting = true;
		pthread_mutex_unlock(&e->lock);
		pthread_mutex_lock(&e->api_lock);
		int r = pilot_api_finish(e->o->api, e->claim->attempt_id, e->claim->lease_token, &res->finish, NULL);
		pthread_mutex_unlock(&e->api_lock);
		if (r >= 0) {
			res->outcome = PILOT_EXEC_REPORTED;
			return;
		}
		if (exec_superseded(r, -1)) {
			pilot_log(PILOT_LOG_WARN, "attempt %s: %s", e->claim->attempt_id, pilot_error_last());
			exec_fatal_locked(e, PILOT_EXEC_SUPERSEDED);
			res->outcome = PILOT_EXEC_SUPERSEDED;
			return;
		}
		if (!exec_transient(r) || exec_hurry(e) || pilot_mono_ms() - start >= e->give_up_ms) {
			pilot_log(PILOT_LOG_ERROR, "attempt %s: cannot report its end: %s", e->claim->attempt_id,
				  pilot_error_last());
			res->outcome = PILOT_EXEC_UNREPORTED;
			return;
		}
		pilot_log(PILOT_LOG_INFO, "attempt %s: reporting the end failed, retrying: %s", e->claim->attempt_id,
			  pilot_error_last());
		pthread_mutex_lock(&e->lock);
		exec_wait_until(&e->hb_cond, &e->lock, pilot_mono_ms() + exec_jitter(backoff));
		pthread_mutex_unlock(&e->lock);
		backoff = exec_next_backoff(backoff);
	}
}

static void exec_init(struct exec *e, const struct pilot_exec_opts *o, const struct pilot_claim *claim,
		      struct pilot_job_control *ctl, const char *dir)
{
	memset(e, 0, sizeof(*e));
	e->o = o;
	e->claim = claim;
	e->ctl = ctl;
	e->dir = dir;
	e->cancel_grace_ms = PILOT_CANCEL_GRACE_AGENT;
	int64_t ttl = claim->lease_ttl_ms > 0 ? claim->lease_ttl_ms : 60000;
	e->heartbeat_ms = o->heartbeat_ms > 0 ? o->heartbeat_ms : PILOT_AGENT_HEARTBEAT_MS;
	if (o->heartbeat_ms <= 0 && e->heartbeat_ms > ttl / 4)
		e->heartbeat_ms = ttl / 4 > 100 ? ttl / 4 : 100;
	e->give_up_ms = o->give_up_ms > 0 ? o->give_up_ms : 3 * e->heartbeat_ms;
	pthread_mutex_init(&e->api_lock, NULL);
	pthread_mutex_init(&e->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&e->cond, &ca);
	pthread_cond_init(&e->hb_cond, &ca);
	pthread_condattr_destroy(&ca);
	e->last_renew = pilot_mono_ms();
}

static void exec_destroy(struct exec *e)
{
	for (size_t i = 0; i < e->nmetrics; i++)
		free(e->metrics[i]);
	free(e->metrics);
	pilot_buf_free(&e->log);
	pthread_cond_destroy(&e->cond);
	pthread_cond_destroy(&e->hb_cond);
	pthread_mutex_destroy(&e->lock);
	pthread_mutex_destroy(&e->api_lock);
}

int pilot_exec_attempt(const struct pilot_exec_opts *o, const struct pilot_claim *claim,
		       struct pilot_exec_result *res)
{
	if (!o || !o->api || !o->rt || !o->work_dir || !claim || !res)
		return pilot_error_set(PILOT_EINVALID, "pilot_exec_attempt: missing arguments");
	memset(res, 0, sizeof(*res));
	res->exit_status = PILOT_EXEC_STATUS_FAILED;

	struct pilot_job_control *own_ctl = NULL;
	if (!o->ctl && pilot_job_control_new(&own_ctl) < 0)
		return PILOT_ENOMEM;
	_cleanup_free_ char *dir = pilot_xasprintf("%s/%s", o->work_dir, claim->attempt_id);
	_cleanup_free_ char *ws = pilot_path_join(dir, "workspace");
	struct exec e;
	exec_init(&e, o, claim, o->ctl ? o->ctl : own_ctl, dir);

	pthread_t ship_thread, hb_thread;
	pthread_create(&hb_thread, NULL, exec_heartbeat, &e);
	pthread_create(&ship_thread, NULL, exec_shipper, &e);

	bool invalid = false;
	int r = pilot_mkdir_p(dir, 0700);
	if (r >= 0)
		r = exec_prepare_workspace(&e, ws, &invalid);
	if (r < 0)
		finish_with(res, PILOT_ATTEMPT_FAILED, invalid ? PILOT_REASON_BUNDLE_INVALID : PILOT_REASON_RUNTIME_ERROR,
			    pilot_error_last());
	else
		run_job(&e, ws, res);

	pthread_mutex_lock(&e.lock);
	e.job_done = true;
	pthread_cond_broadcast(&e.cond);
	pthread_mutex_unlock(&e.lock);
	pthread_join(ship_thread, NULL);
	pthread_mutex_lock(&e.lock);
	res->log_bytes = e.log_base;
	res->metrics = e.metric_base;
	res->canceled_by_request = e.cancel_requested;
	pthread_mutex_unlock(&e.lock);

	report(&e, res);
	exec_stop_heartbeat(&e, hb_thread);

	if (res->outcome != PILOT_EXEC_REPORTED && res->exit_status == 0)
		res->exit_status = PILOT_EXEC_STATUS_FAILED;
	if (!o->keep_workspace && pilot_rm_rf(dir) < 0)
		pilot_log(PILOT_LOG_WARN, "%s", pilot_error_last());

	exec_destroy(&e);
	pilot_job_control_free(own_ctl);
	return 0;
}

int pilot_exec_refuse(const struct pilot_exec_opts *o, const struct pilot_claim *claim, const char *message,
		      struct pilot_exec_result *res)
{
	if (!o || !o->api || !claim || !res)
		return pilot_error_set(PILOT_EINVALID, "pilot_exec_refuse: missing arguments");
	memset(res, 0, sizeof(*res));
	res->exit_status = PILOT_EXEC_STATUS_FAILED;
	struct exec e;
	exec_init(&e, o, claim, o->ctl, NULL);
	pthread_t hb_thread;
	pthread_create(&hb_thread, NULL, exec_heartbeat, &e);
	finish_with(res, PILOT_ATTEMPT_FAILED, PILOT_REASON_RUNTIME_ERROR, message);
	report(&e, res);
	exec_stop_heartbeat(&e, hb_thread);
	exec_destroy(&e);
	return 0;
}

int pilot_exec_cleanup_work_dir(const char *work_dir, unsigned *killed)
{
	if (killed)
		*killed = 0;
	DIR *d = opendir(work_dir);
	if (!d) {
		if (errno == ENOENT)
			return 0;
		return pilot_error_errno(PILOT_EIO, errno, "cannot read '%s'", work_dir);
	}
	struct dirent *de;
	int r = 0;
	char first[256] = "";
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		_cleanup_free_ char *sub = pilot_path_join(work_dir, de->d_name);
		_cleanup_free_ char *pidf = pilot_path_join(sub, PID_FILE);
		struct pilot_buf b = PILOT_BUF_INIT;
		int pid = 0;
		unsigned long long want = 0, have = 0;
		if (pilot_read_file(pidf, 256, &b) == 0 && sscanf(pilot_buf_str(&b), "%d %llu", &pid, &want) == 2 &&
		    pid > 1 && proc_start_time(pid, &have) == 0 && have == want) {
			/* The job leads its own session and process group. */
			if (kill(-pid, SIGKILL) == 0 || kill(pid, SIGKILL) == 0) {
				pilot_log(PILOT_LOG_NOTICE, "killed host job %d left by an earlier agent", pid);
				if (killed)
					(*killed)++;
			}
		}
		pilot_buf_free(&b);
		if (pilot_rm_rf(sub) < 0 && !r) {
			r = pilot_error_code();
			snprintf(first, sizeof(first), "%s", pilot_error_last());
		}
	}
	closedir(d);
	return r < 0 ? pilot_error_set(r, "cannot clear '%s': %s", work_dir, first) : 0;
}
