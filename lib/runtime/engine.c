/* The docker and podman runtimes over the Engine API (engine-api.c). A job is create →
 * attach → start → stream until the container ends → wait → remove. Output comes from attach, not from the logs
 * endpoint: attach carries the bytes exactly (a json-file log would turn invalid UTF-8
 * into U+FFFD), works whatever log driver the engine uses, and being attached before the
 * start means no early output is missed. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <curl/curl.h>
#include <jansson.h>

#include "runtime-internal.h"

/* Create, start and remove copy or delete a whole filesystem under the vfs driver:
 * minutes for a big image. */
#define LONG_TIMEOUT_MS (30 * 60 * 1000)
#define PING_TIMEOUT_MS 10000
/* After the engine says the container ended, how long its output may still trickle in. */
#define DRAIN_AFTER_EXIT_MS 30000
/* After SIGKILL, how long to wait for the engine to report the end. */
#define GIVE_UP_AFTER_KILL_MS 30000

/* ---- opening ---- */

int runtime_engine_open(struct pilot_runtime *rt, const char *name)
{
	int r = runtime_endpoint_parse(rt->endpoint, &rt->socket_path, &rt->base_url);
	if (r < 0)
		return r;
	rt->api_prefix[0] = '\0';
	_cleanup_buf_ struct pilot_buf body = PILOT_BUF_INIT;
	long status = 0;
	r = engine_call(rt, "GET", "/_ping", NULL, PING_TIMEOUT_MS, &status, &body);
	if (r < 0)
		return r;
	if (status != 200) {
		_cleanup_free_ char *what = pilot_xasprintf("%s at %s does not answer its ping", name, rt->endpoint);
		return engine_status_error(rt, status, &body, what);
	}
	r = engine_call(rt, "GET", "/version", NULL, PING_TIMEOUT_MS, &status, &body);
	if (r < 0)
		return r;
	if (status != 200)
		return engine_status_error(rt, status, &body, "cannot read the engine version");
	json_t *v = engine_parse_json(&body);
	if (!json_is_object(v)) {
		json_decref(v);
		return pilot_error_set(PILOT_EINVALID, "%s at %s: /version is not a JSON object", name, rt->endpoint);
	}
	const char *api = json_string_value(json_object_get(v, "ApiVersion"));
	const char *min_api = json_string_value(json_object_get(v, "MinAPIVersion"));
	const char *version = json_string_value(json_object_get(v, "Version"));
	bool podman = false;
	json_t *comp;
	size_t i;
	json_array_foreach(json_object_get(v, "Components"), i, comp) {
		const char *cn = json_string_value(json_object_get(comp, "Name"));
		if (cn && strstr(cn, "Podman"))
			podman = true;
	}
	int minor = runtime_api_minor(api);
	int min_minor = runtime_api_minor(min_api);
	if (minor < RUNTIME_API_MIN_MINOR) {
		r = pilot_error_set(PILOT_EUNAVAILABLE, "%s at %s speaks API %s, pilot needs at least 1.%d", name,
				    rt->endpoint, api ? api : "(unknown)", RUNTIME_API_MIN_MINOR);
		json_decref(v);
		return r;
	}
	if (minor > RUNTIME_API_MAX_MINOR)
		minor = RUNTIME_API_MAX_MINOR;
	if (min_minor > minor)
		minor = min_minor;
	if (podman)
		rt->kind = RUNTIME_PODMAN;
	else
		rt->kind = RUNTIME_DOCKER;
	snprintf(rt->api_prefix, sizeof(rt->api_prefix), "/v1.%d", minor);
	snprintf(rt->version, sizeof(rt->version), "%s", version ? version : "unknown");
	snprintf(rt->describe, sizeof(rt->describe), "%s %s (API 1.%d) at %s", engine_name(rt), rt->version, minor,
		 rt->endpoint);
	json_decref(v);
	return 0;
}

/* ---- images ---- */

static char *escape(const char *s)
{
	engine_curl_ready();
	char *e = curl_easy_escape(NULL, s, 0);
	if (!e)
		abort();
	char *out = pilot_xstrdup(e);
	curl_free(e);
	return out;
}

static int image_present(struct pilot_runtime *rt, const char *image, bool *present)
{
	_cleanup_free_ char *path = pilot_xasprintf("/images/%s/json", image);
	_cleanup_buf_ struct pilot_buf body = PILOT_BUF_INIT;
	long status = 0;
	int r = engine_call(rt, "GET", path, NULL, ENGINE_API_TIMEOUT_MS, &status, &body);
	if (r < 0)
		return r;
	if (status == 200 || status == 404) {
		*present = status == 200;
		return 0;
	}
	_cleanup_free_ char *what = pilot_xasprintf("cannot inspect image '%s'", image);
	return engine_status_error(rt, status, &body, what);
}

struct pull_ctx {
	struct runtime_pull_state st;
	struct pilot_buf raw; /* the start of the body, for an error status */
};

static size_t pull_write(char *p, size_t size, size_t n, void *ud)
{
	struct pull_ctx *pc = ud;
	if (pc->raw.len < 64 * 1024)
		pilot_buf_append(&pc->raw, p, size * n);
	runtime_pull_feed(&pc->st, p, size * n);
	return size * n;
}

static int pull(struct pilot_runtime *rt, const char *image,
		void (*on_pull)(const struct pilot_pull_progress *p, void *ud), void *ud, struct pilot_job_control *ctl)
{
	_cleanup_free_ char *name = NULL, *tag = NULL;
	int r = runtime_image_split(image, &name, &tag);
	if (r < 0)
		return r;
	_cleanup_free_ char *ename = escape(name), *etag = escape(tag);
	_cleanup_free_ char *path = pilot_xasprintf("/images/create?fromImage=%s&tag=%s", ename, etag);
	struct pull_ctx pc;
	runtime_pull_init(&pc.st, image, on_pull, ud);
	pilot_buf_init(&pc.raw, 0);
	struct curl_slist *headers;
	/* A pull has no time limit (images are big); a cancel interrupts it. */
	CURL *h = engine_easy_new(rt, "POST", path, NULL, 0, &headers);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, pull_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &pc);
	bool canceled;
	CURLcode c = engine_perform(h, ctl, &canceled);
	long status = 0;
	if (canceled) {
		r = pilot_error_set(PILOT_ECANCELED, "pull of image '%s' canceled", image);
	} else if (c != CURLE_OK) {
		r = engine_transport_error(rt, h, c);
		pilot_error_prefix(r, "cannot pull image '%s'", image);
	} else {
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
		runtime_pull_finish(&pc.st);
		if (status >= 300) {
			_cleanup_free_ char *what = pilot_xasprintf("cannot pull image '%s'", image);
			r = engine_status_error(rt, status, &pc.raw, what);
		} else if (pc.st.error) {
			r = pilot_error_set(PILOT_EFAIL, "cannot pull image '%s': %s", image, pc.st.error);
		}
	}
	curl_easy_cleanup(h);
	curl_slist_free_all(headers);
	runtime_pull_free(&pc.st);
	pilot_buf_free(&pc.raw);
	return r;
}

int runtime_engine_ensure_image(struct pilot_runtime *rt, const char *image, enum pilot_pull_policy policy,
				void (*on_pull)(const struct pilot_pull_progress *p, void *ud), void *ud,
				struct pilot_job_control *ctl)
{
	_cleanup_free_ char *name = NULL, *tag = NULL;
	int r = runtime_image_split(image, &name, &tag);
	if (r < 0)
		return r;
	if (policy == PILOT_PULL_ALWAYS)
		return pull(rt, image, on_pull, ud, ctl);
	bool present = false;
	r = image_present(rt, image, &present);
	if (r < 0 || present)
		return r;
	if (policy == PILOT_PULL_NEVER)
		return pilot_error_set(PILOT_ENOTFOUND, "image '%s' is not present in %s and the pull policy is 'never'",
				       image, engine_name(rt));
	pilot_log(PILOT_LOG_INFO, "pulling image '%s'", image);
	return pull(rt, image, on_pull, ud, ctl);
}

/* ---- containers ---- */

static int container_remove(struct pilot_runtime *rt, const char *id)
{
	_cleanup_free_ char *path = pilot_xasprintf("/containers/%s?force=1&v=1", id);
	_cleanup_buf_ struct pilot_buf body = PILOT_BUF_INIT;
	long status = 0;
	int r = engine_call(rt, "DELETE", path, NULL, LONG_TIMEOUT_MS, &status, &body);
	if (r < 0)
		return r;
	if (status >= 300 && status != 404) {
		_cleanup_free_ char *what = pilot_xasprintf("cannot remove container %.12s", id);
		return engine_status_error(rt, status, &body, what);
	}
	return 0;
}

static int container_kill(struct pilot_runtime *rt, const char *id, const char *sig)
{
	_cleanup_free_ char *path = pilot_xasprintf("/containers/%s/kill?signal=%s", id, sig);
	_cleanup_buf_ struct pilot_buf body = PILOT_BUF_INIT;
	long status = 0;
	int r = engine_call(rt, "POST", path, NULL, ENGINE_API_TIMEOUT_MS, &status, &body);
	if (r < 0)
		return r;
	/* 409: it is not running any more, which is what we wanted. */
	if (status >= 300 && status != 409 && status != 404) {
		_cleanup_free_ char *what = pilot_xasprintf("cannot send %s to container %.12s", sig, id);
		return engine_status_error(rt, status, &body, what);
	}
	return 0;
}

/* The container name: pilot-<run>-<attempt>-<random>, readable in `docker ps`. */
static char *container_name(const struct pilot_job *job)
{
	char rnd[9];
	pilot_random_hex(rnd, 4);
	if (!job->run_id)
		return pilot_xasprintf("pilot-%s", rnd);
	for (const char *p = job->run_id; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
		      *p == '_' || *p == '.'))
			return pilot_xasprintf("pilot-%s", rnd);
	return pilot_xasprintf("pilot-%.64s-%d-%s", job->run_id, job->attempt, rnd);
}

static int container_create(struct pilot_runtime *rt, const struct pilot_job *job, char *id, size_t idsize)
{
	_cleanup_free_ char *body_json = runtime_create_body(job, rt->kind == RUNTIME_PODMAN, rt->owner);
	_cleanup_free_ char *name = container_name(job);
	_cleanup_free_ char *path = pilot_xasprintf("/containers/create?name=%s", name);
	_cleanup_buf_ struct pilot_buf body = PILOT_BUF_INIT;
	long status = 0;
	int r = engine_call(rt, "POST", path, body_json, LONG_TIMEOUT_MS, &status, &body);
	if (r < 0)
		return pilot_error_prefix(r, "cannot create a container for image '%s'", job->image);
	if (status != 201 && status != 200) {
		_cleanup_free_ char *what = pilot_xasprintf("cannot create a container for image '%s'", job->image);
		return engine_status_error(rt, status, &body, what);
	}
	json_t *v = engine_parse_json(&body);
	const char *cid = json_string_value(json_object_get(v, "Id"));
	if (!cid || !*cid || strlen(cid) >= idsize) {
		json_decref(v);
		return pilot_error_set(PILOT_EINVALID, "%s: the create answer has no container id", engine_name(rt));
	}
	snprintf(id, idsize, "%s", cid);
	size_t i;
	json_t *w;
	json_array_foreach(json_object_get(v, "Warnings"), i, w) {
		if (json_string_value(w))
			pilot_log(PILOT_LOG_NOTICE, "%s: %s", engine_name(rt), json_string_value(w));
	}
	json_decref(v);
	return 0;
}

/* ---- the run ---- */

struct waiter {
	CURL *h;
	struct curl_slist *headers;
	struct pilot_buf body;
	bool done;
	CURLcode result;
	long status;
};

static void waiter_start(struct pilot_runtime *rt, const char *id, CURLM *m, struct waiter *w)
{
	memset(w, 0, sizeof(*w));
	pilot_buf_init(&w->body, 64 * 1024);
	_cleanup_free_ char *path = pilot_xasprintf("/containers/%s/wait", id);
	/* No time limit: a job may run for days. */
	w->h = engine_easy_new(rt, "POST", path, NULL, 0, &w->headers);
	curl_easy_setopt(w->h, CURLOPT_WRITEFUNCTION, engine_write_buf);
	curl_easy_setopt(w->h, CURLOPT_WRITEDATA, &w->body);
	curl_multi_add_handle(m, w->h);
}

static void waiter_check(CURLM *m, struct waiter *w)
{
	CURLMsg *msg;
	int left;
	while ((msg = curl_multi_info_read(m, &left))) {
		if (msg->msg == CURLMSG_DONE && msg->easy_handle == w->h) {
			w->done = true;
			w->result = msg->data.result;
			curl_easy_getinfo(w->h, CURLINFO_RESPONSE_CODE, &w->status);
		}
	}
}

static void waiter_free(CURLM *m, struct waiter *w)
{
	if (w->h) {
		curl_multi_remove_handle(m, w->h);
		curl_easy_cleanup(w->h);
	}
	curl_slist_free_all(w->headers);
	pilot_buf_free(&w->body);
}

static void stop_signal(struct pilot_runtime *rt, const char *id, const char *sig)
{
	if (container_kill(rt, id, sig) < 0)
		pilot_log(PILOT_LOG_WARN, "%s", pilot_error_last());
}

/* The state after the end: exit code (when wait did not give it) and the OOM flag. */
static int inspect_end(struct pilot_runtime *rt, const char *id, struct pilot_job_result *res, bool need_code)
{
	_cleanup_free_ char *path = pilot_xasprintf("/containers/%s/json", id);
	_cleanup_buf_ struct pilot_buf body = PILOT_BUF_INIT;
	long status = 0;
	int r = engine_call(rt, "GET", path, NULL, ENGINE_API_TIMEOUT_MS, &status, &body);
	if (r < 0)
		return r;
	if (status != 200)
		return engine_status_error(rt, status, &body, "cannot inspect the container");
	json_t *v = engine_parse_json(&body);
	json_t *state = json_object_get(v, "State");
	if (json_is_true(json_object_get(state, "OOMKilled")))
		res->oom_killed = true;
	if (need_code) {
		if (json_is_true(json_object_get(state, "Running"))) {
			json_decref(v);
			return pilot_error_set(PILOT_EFAIL, "%s: lost track of the container, it still runs",
					       engine_name(rt));
		}
		res->exit_code = (int)json_integer_value(json_object_get(state, "ExitCode"));
	}
	json_decref(v);
	return 0;
}

static int follow(struct pilot_runtime *rt, const struct pilot_job *job, struct pilot_job_control *ctl,
		  struct pilot_job_result *res, const char *id, struct engine_attach *a)
{
	struct runtime_output out;
	struct runtime_demux dm = { 0 };
	struct waiter w;
	CURLM *m = curl_multi_init();
	if (!m)
		abort();
	runtime_output_init(&out, job);
	waiter_start(rt, id, m, &w);

	int64_t start = pilot_mono_ms();
	int64_t deadline = job->timeout_ms ? start + job->timeout_ms : 0;
	int64_t grace = job->grace_ms ? job->grace_ms : PILOT_JOB_DEFAULT_GRACE_MS;
	int64_t kill_at = 0, give_up_at = 0, exited_at = 0;
	int64_t asked = -1; /* the cancel's own grace, as last applied to kill_at */
	bool stopping = false, killed = false;
	int r = 0;
	for (;;) {
		int running = 0;
		curl_multi_perform(m, &running);
		waiter_check(m, &w);
		if (!a->eof && engine_attach_read(rt, a, &dm, &out) < 0) {
			/* Past a broken frame nothing can be trusted: stop reading, and
			 * still wait for the end of the job. */
			pilot_log(PILOT_LOG_WARN, "%s", pilot_error_last());
			a->eof = true;
		}
		int64_t now = pilot_mono_ms();
		if (w.done && !exited_at)
			exited_at = now;
		if (a->eof && w.done)
			break;
		if (exited_at && now - exited_at > DRAIN_AFTER_EXIT_MS) {
			pilot_log(PILOT_LOG_WARN, "%s: the output stream did not end after the container did",
				  engine_name(rt));
			break;
		}

		int cs = runtime_control_state(ctl);
		if (cs && !stopping) {
			res->canceled = true;
			stopping = true;
			if (cs == 2) {
				stop_signal(rt, id, "SIGKILL");
				killed = res->sent_kill = true;
				give_up_at = now + GIVE_UP_AFTER_KILL_MS;
			} else {
				stop_signal(rt, id, "SIGTERM");
				res->sent_term = true;
				asked = runtime_control_grace(ctl, -1);
				kill_at = now + (asked >= 0 ? asked : grace);
			}
		} else if (cs == 2 && !killed) {
			stop_signal(rt, id, "SIGKILL");
			killed = res->sent_kill = true;
			give_up_at = now + GIVE_UP_AFTER_KILL_MS;
		}
		if (deadline && now >= deadline && !stopping) {
			res->timed_out = true;
			stopping = true;
			stop_signal(rt, id, "SIGTERM");
			res->sent_term = true;
			kill_at = now + grace;
		}
		if (kill_at && !killed && runtime_control_grace(ctl, -1) != asked) {
			/* A hastier cancel while the job is being stopped. */
			asked = runtime_control_grace(ctl, -1);
			if (now + asked < kill_at)
				kill_at = now + asked;
		}
		if (kill_at && now >= kill_at && !killed) {
			stop_signal(rt, id, "SIGKILL");
			killed = res->sent_kill = true;
			give_up_at = now + GIVE_UP_AFTER_KILL_MS;
		}
		if (killed && now >= give_up_at) {
			r = pilot_error_set(PILOT_EFAIL, "%s: container %.12s did not end after SIGKILL", engine_name(rt),
					    id);
			break;
		}
		runtime_output_tick(&out);

		int64_t next = now + 1000;
		if (deadline && !stopping && deadline < next)
			next = deadline;
		if (kill_at && !killed && kill_at < next)
			next = kill_at;
		if (killed && give_up_at < next)
			next = give_up_at;
		struct curl_waitfd fds[2];
		unsigned nfds = 0;
		if (!a->eof)
			fds[nfds++] = (struct curl_waitfd){ .fd = a->fd, .events = CURL_WAIT_POLLIN };
		if (ctl)
			fds[nfds++] = (struct curl_waitfd){ .fd = runtime_control_fd(ctl), .events = CURL_WAIT_POLLIN };
		int64_t wait_ms = next - now;
		curl_multi_poll(m, fds, nfds, (int)(wait_ms > 0 ? wait_ms : 0), NULL);
	}
	res->duration_ms = pilot_mono_ms() - start;
	runtime_output_finish(&out);
	runtime_output_free(&out);
	if (!runtime_demux_clean(&dm))
		pilot_log(PILOT_LOG_WARN, "%s: the output stream ended inside a frame", engine_name(rt));

	bool need_code = true;
	if (r == 0 && w.done && w.result == CURLE_OK && w.status == 200) {
		json_t *v = engine_parse_json(&w.body);
		json_t *code = json_object_get(v, "StatusCode");
		if (json_is_integer(code)) {
			res->exit_code = (int)json_integer_value(code);
			need_code = false;
		}
		json_decref(v);
	}
	waiter_free(m, &w);
	curl_multi_cleanup(m);
	if (r == 0)
		r = inspect_end(rt, id, res, need_code);
	return r;
}

/* A start the engine refused because of the command itself: the job's failure, with
 * the exit status a shell (and `docker run`) gives it — 127 not found, 126 not
 * executable — rather than pilot's 125. */
static int command_failure(const char *msg)
{
	if (strstr(msg, "executable file not found") || strstr(msg, "no such file or directory"))
		return 127;
	if (strstr(msg, "permission denied"))
		return 126;
	return 0;
}

static void report_not_run(const struct pilot_job *job, struct pilot_job_result *res, int code, const char *msg)
{
	res->exit_code = code;
	if (job->on_output) {
		_cleanup_free_ char *line = pilot_xasprintf("pilot: cannot run the command: %s\n", msg);
		job->on_output(2, line, strlen(line), job->ud);
	}
}

static int check_strings(const struct pilot_job *job)
{
	/* JSON carries only UTF-8: say which part of the job is not, instead of sending
	 * a request the engine would reject. */
	const char *single[] = { job->image, job->workspace, job->workdir, job->user, job->network, job->run_id };
	const char *names[] = { "image", "workspace", "workdir", "user", "network", "run id" };
	for (size_t i = 0; i < ARRAY_SIZE(single); i++) {
		if (!single[i])
			continue;
		json_t *s = json_string(single[i]);
		if (!s)
			return pilot_error_set(PILOT_EINVALID, "invalid job: the %s is not valid UTF-8", names[i]);
		json_decref(s);
	}
	for (size_t i = 0; i < job->argc + job->nenv; i++) {
		const char *v = i < job->argc ? job->argv[i] : job->env[i - job->argc];
		json_t *s = json_string(v);
		if (!s)
			return pilot_error_set(PILOT_EINVALID, "invalid job: %s %zu is not valid UTF-8",
					       i < job->argc ? "argument" : "environment entry",
					       i < job->argc ? i : i - job->argc);
		json_decref(s);
	}
	return 0;
}

int runtime_engine_run(struct pilot_runtime *rt, const struct pilot_job *job, struct pilot_job_control *ctl,
		       struct pilot_job_result *res)
{
	int r = runtime_job_validate(job, true);
	if (r < 0)
		return r;
	r = check_strings(job);
	if (r < 0)
		return r;
	struct stat st;
	if (stat(job->workspace, &st) < 0)
		return pilot_error_errno(PILOT_ENOTFOUND, errno, "cannot use workspace '%s'", job->workspace);
	if (!S_ISDIR(st.st_mode))
		return pilot_error_set(PILOT_EINVALID, "cannot use workspace '%s': not a directory", job->workspace);
	if (runtime_control_state(ctl)) {
		res->canceled = true;
		return 0;
	}
	/* Phase times, for -vv and bench/run-overhead. */
	int64_t t[6] = { pilot_mono_ms() };
	r = runtime_engine_ensure_image(rt, job->image, job->pull, job->on_pull, job->ud, ctl);
	t[1] = pilot_mono_ms();
	if (r == PILOT_ECANCELED) {
		res->canceled = true;
		return 0;
	}
	if (r < 0)
		return r;

	char id[80];
	r = container_create(rt, job, id, sizeof(id));
	if (r < 0)
		return r;
	snprintf(res->id, sizeof(res->id), "%s", id);
	t[2] = t[3] = t[4] = pilot_mono_ms();

	struct engine_attach a;
	r = engine_attach_open(rt, id, &a);
	if (r == 0 && runtime_control_state(ctl)) {
		res->canceled = true;
	} else if (r == 0) {
		_cleanup_free_ char *path = pilot_xasprintf("/containers/%s/start", id);
		_cleanup_buf_ struct pilot_buf body = PILOT_BUF_INIT;
		long status = 0;
		r = engine_call(rt, "POST", path, NULL, LONG_TIMEOUT_MS, &status, &body);
		int not_run = 0;
		if (r == 0 && status != 204 && status != 304) {
			_cleanup_free_ char *msg = runtime_engine_message(body.data ? body.data : "", body.len);
			not_run = msg ? command_failure(msg) : 0;
			if (not_run)
				report_not_run(job, res, not_run, msg);
			else
				r = engine_status_error(rt, status, &body, "cannot start the container");
		}
		if (r == 0 && !not_run) {
			res->started = true;
			t[3] = pilot_mono_ms();
			if (job->on_started)
				job->on_started(id, job->ud);
			r = follow(rt, job, ctl, res, id, &a);
			t[4] = pilot_mono_ms();
		}
	}
	engine_attach_close(&a);

	/* Removed on every path; a failure here must not hide the job's own result. */
	char saved[2048];
	snprintf(saved, sizeof(saved), "%s", pilot_error_last());
	int saved_code = pilot_error_code();
	if (container_remove(rt, id) < 0)
		pilot_log(PILOT_LOG_WARN, "%s", pilot_error_last());
	t[5] = pilot_mono_ms();
	pilot_log(PILOT_LOG_DEBUG,
		  "%s: container %.12s: image %lld ms, create %lld ms, attach+start %lld ms, run %lld ms, remove %lld ms",
		  engine_name(rt), id, (long long)(t[1] - t[0]), (long long)(t[2] - t[1]), (long long)(t[3] - t[2]),
		  (long long)(t[4] - t[3]), (long long)(t[5] - t[4]));
	if (r < 0)
		pilot_error_set(saved_code ? saved_code : r, "%s", saved);
	return r;
}

/* ---- orphans ---- */

int runtime_engine_cleanup(struct pilot_runtime *rt, const char *owner, unsigned *removed)
{
	json_t *filters = json_object(), *labels = json_array();
	json_array_append_new(labels, json_string("pilot.managed=1"));
	if (owner) {
		json_t *s = json_sprintf("pilot.owner=%s", owner);
		if (!s) {
			json_decref(labels);
			json_decref(filters);
			return pilot_error_set(PILOT_EINVALID, "invalid owner: not valid UTF-8");
		}
		json_array_append_new(labels, s);
	}
	json_object_set_new(filters, "label", labels);
	char *fs = json_dumps(filters, JSON_COMPACT);
	json_decref(filters);
	if (!fs)
		abort();
	_cleanup_free_ char *efs = escape(fs);
	free(fs);
	_cleanup_free_ char *path = pilot_xasprintf("/containers/json?all=1&filters=%s", efs);
	_cleanup_buf_ struct pilot_buf body = PILOT_BUF_INIT;
	long status = 0;
	int r = engine_call(rt, "GET", path, NULL, ENGINE_API_TIMEOUT_MS, &status, &body);
	if (r < 0)
		return r;
	if (status != 200)
		return engine_status_error(rt, status, &body, "cannot list containers");
	json_t *list = engine_parse_json(&body);
	json_t *c;
	size_t i;
	int failed = 0;
	json_array_foreach(list, i, c) {
		const char *id = json_string_value(json_object_get(c, "Id"));
		if (!id)
			continue;
		/* Check the labels ourselves too: an engine that ignores a filter must not
		 * make us remove what is not ours. */
		json_t *lab = json_object_get(c, "Labels");
		const char *managed = json_string_value(json_object_get(lab, "pilot.managed"));
		const char *own = json_string_value(json_object_get(lab, "pilot.owner"));
		if (!managed || strcmp(managed, "1") != 0 || (owner && (!own || strcmp(own, owner) != 0)))
			continue;
		if (container_remove(rt, id) < 0) {
			pilot_log(PILOT_LOG_WARN, "%s", pilot_error_last());
			failed++;
			continue;
		}
		pilot_log(PILOT_LOG_INFO, "removed orphan container %.12s", id);
		if (removed)
			(*removed)++;
	}
	json_decref(list);
	if (failed)
		return pilot_error_set(PILOT_EFAIL, "cannot remove %d orphan container%s", failed, failed == 1 ? "" : "s");
	return 0;
}
