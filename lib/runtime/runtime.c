/* The runtime front: choosing and opening a runtime, the job control behind cancel, the
 * exit-status mapping, and the output pipeline (redaction, metrics) that every runtime
 * feeds the job's bytes through. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "runtime-internal.h"

int pilot_pull_policy_parse(const char *s, enum pilot_pull_policy *out)
{
	static const char *const names[] = { "missing", "always", "never" };
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		if (s && strcmp(s, names[i]) == 0) {
			*out = (enum pilot_pull_policy)i;
			return 0;
		}
	}
	return pilot_error_set(PILOT_EINVALID, "invalid pull policy '%s': expected always, missing or never",
			       s ? s : "");
}

const char *pilot_pull_policy_name(enum pilot_pull_policy p)
{
	switch (p) {
	case PILOT_PULL_ALWAYS: return "always";
	case PILOT_PULL_NEVER: return "never";
	default: return "missing";
	}
}

/* ---- opening ---- */

static struct pilot_runtime *runtime_alloc(enum runtime_kind kind, const struct pilot_runtime_opts *opts)
{
	struct pilot_runtime *rt = pilot_xcalloc(1, sizeof(*rt));
	rt->kind = kind;
	rt->connect_timeout_ms = opts && opts->connect_timeout_ms > 0 ? (long)opts->connect_timeout_ms : 5000;
	if (opts && opts->owner)
		rt->owner = pilot_xstrdup(opts->owner);
	return rt;
}

/* The address an engine of this kind is looked for at, when none is given. */
static char *default_endpoint(enum runtime_kind kind)
{
	const char *env = getenv(kind == RUNTIME_DOCKER ? "DOCKER_HOST" : "CONTAINER_HOST");
	if (env && *env)
		return pilot_xstrdup(env);
	if (kind == RUNTIME_DOCKER)
		return pilot_xstrdup("unix:///var/run/docker.sock");
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	if (xdg && *xdg) {
		_cleanup_free_ char *p = pilot_path_join(xdg, "podman/podman.sock");
		if (access(p, F_OK) == 0)
			return pilot_xasprintf("unix://%s", p);
	}
	return pilot_xstrdup("unix:///run/podman/podman.sock");
}

static int open_engine(enum runtime_kind kind, const struct pilot_runtime_opts *opts, struct pilot_runtime **out)
{
	struct pilot_runtime *rt = runtime_alloc(kind, opts);
	rt->endpoint = opts && opts->endpoint ? pilot_xstrdup(opts->endpoint) : default_endpoint(kind);
	const char *tls = getenv("DOCKER_TLS_VERIFY");
	if (pilot_str_has_prefix(rt->endpoint, "tcp://") && tls && *tls) {
		/* Plain HTTP to a TLS port would only fail obscurely. */
		int e = pilot_error_set(PILOT_EINVALID,
					"cannot use %s at %s: DOCKER_TLS_VERIFY is set and pilot speaks plain HTTP "
					"to engines (use a unix socket, or an ssh tunnel to one)",
					kind == RUNTIME_DOCKER ? "docker" : "podman", rt->endpoint);
		pilot_runtime_close(rt);
		return e;
	}
	int r = runtime_engine_open(rt, kind == RUNTIME_DOCKER ? "docker" : "podman");
	if (r < 0) {
		pilot_runtime_close(rt);
		return r;
	}
	*out = rt;
	return 0;
}

int pilot_runtime_open(const char *kind, const struct pilot_runtime_opts *opts, struct pilot_runtime **out)
{
	*out = NULL;
	if (kind && strcmp(kind, "docker") == 0)
		return open_engine(RUNTIME_DOCKER, opts, out);
	if (kind && strcmp(kind, "podman") == 0)
		return open_engine(RUNTIME_PODMAN, opts, out);
	if (kind && strcmp(kind, "host") == 0) {
		struct pilot_runtime *rt = runtime_alloc(RUNTIME_HOST, opts);
		snprintf(rt->describe, sizeof(rt->describe), "host processes (no isolation)");
		*out = rt;
		return 0;
	}
	if (kind && strcmp(kind, "auto") != 0) {
		static const char *const kinds[] = { "docker", "podman", "host", "auto" };
		const char *s = pilot_suggest(kind, kinds, ARRAY_SIZE(kinds));
		if (s)
			return pilot_error_set(PILOT_EINVALID, "unknown runtime '%s' (did you mean '%s'?)", kind, s);
		return pilot_error_set(PILOT_EINVALID, "unknown runtime '%s': expected docker, podman or host", kind);
	}

	/* auto: an explicit endpoint is whatever engine answers there. */
	if (opts && opts->endpoint)
		return open_engine(RUNTIME_DOCKER, opts, out);
	if (open_engine(RUNTIME_DOCKER, opts, out) == 0)
		return 0;
	char docker_err[1024];
	snprintf(docker_err, sizeof(docker_err), "%s", pilot_error_last());
	if (open_engine(RUNTIME_PODMAN, opts, out) == 0)
		return 0;
	if (opts && opts->auto_host) {
		pilot_log(PILOT_LOG_NOTICE, "no container engine answered (docker, podman): running on the host, not isolated");
		return pilot_runtime_open("host", opts, out);
	}
	return pilot_error_prefix(PILOT_EUNAVAILABLE, "no container engine found: %s", docker_err);
}

void pilot_runtime_close(struct pilot_runtime *rt)
{
	if (!rt)
		return;
	free(rt->endpoint);
	free(rt->socket_path);
	free(rt->base_url);
	free(rt->owner);
	free(rt);
}

const char *pilot_runtime_kind(const struct pilot_runtime *rt)
{
	switch (rt->kind) {
	case RUNTIME_DOCKER: return "docker";
	case RUNTIME_PODMAN: return "podman";
	default: return "host";
	}
}

bool pilot_runtime_isolated(const struct pilot_runtime *rt)
{
	return rt->kind != RUNTIME_HOST;
}

const char *pilot_runtime_describe(const struct pilot_runtime *rt)
{
	return rt->describe;
}

int pilot_runtime_ensure_image(struct pilot_runtime *rt, const char *image, enum pilot_pull_policy policy,
			       void (*on_pull)(const struct pilot_pull_progress *p, void *ud), void *ud,
			       struct pilot_job_control *ctl)
{
	if (rt->kind == RUNTIME_HOST)
		return 0;
	return runtime_engine_ensure_image(rt, image, policy, on_pull, ud, ctl);
}

int pilot_runtime_cleanup_orphans(struct pilot_runtime *rt, const char *owner, unsigned *removed)
{
	if (removed)
		*removed = 0;
	if (rt->kind == RUNTIME_HOST)
		return 0;
	return runtime_engine_cleanup(rt, owner, removed);
}

/* ---- running ---- */

int runtime_job_validate(const struct pilot_job *job, bool container)
{
	if (!job->workspace || job->workspace[0] != '/')
		return pilot_error_set(PILOT_EINVALID, "invalid job: the workspace must be an absolute path, not '%s'",
				       job->workspace ? job->workspace : "");
	if (container && (!job->image || !*job->image))
		return pilot_error_set(PILOT_EINVALID, "invalid job: no image to run in a container");
	if (!container && job->argc == 0)
		return pilot_error_set(PILOT_EINVALID, "invalid job: the host runtime needs a command");
	if (job->shell && job->argc != 1)
		return pilot_error_set(PILOT_EINVALID, "invalid job: a shell command is one string, not %zu", job->argc);
	for (size_t i = 0; i < job->argc; i++)
		if (!job->argv[i])
			return pilot_error_set(PILOT_EINVALID, "invalid job: argument %zu is missing", i);
	for (size_t i = 0; i < job->nenv; i++) {
		const char *eq = job->env[i] ? strchr(job->env[i], '=') : NULL;
		if (!eq || eq == job->env[i])
			return pilot_error_set(PILOT_EINVALID, "invalid job: environment entry '%s' is not KEY=VALUE",
					       job->env[i] ? job->env[i] : "");
	}
	if (job->workdir && job->workdir[0] != '/')
		return pilot_error_set(PILOT_EINVALID, "invalid job: workdir '%s' is not an absolute path", job->workdir);
	if (job->res.cpus < 0 || job->res.gpus < -1 || job->res.pids < -1 || job->timeout_ms < 0 || job->grace_ms < 0)
		return pilot_error_set(PILOT_EINVALID, "invalid job: negative resource or duration");
	return 0;
}

int pilot_runtime_run(struct pilot_runtime *rt, const struct pilot_job *job, struct pilot_job_control *ctl,
		      struct pilot_job_result *res)
{
	memset(res, 0, sizeof(*res));
	res->exit_code = -1;
	if (rt->kind == RUNTIME_HOST)
		return runtime_host_run(rt, job, ctl, res);
	return runtime_engine_run(rt, job, ctl, res);
}

int pilot_job_exit_status(const struct pilot_job_result *res)
{
	if (res->canceled)
		return 130;
	if (res->timed_out)
		return 124;
	if (res->signal > 0)
		return 128 + res->signal;
	if (res->exit_code >= 0 && res->exit_code <= 255)
		return res->exit_code;
	return 125;
}

/* ---- control ---- */

int pilot_job_control_new(struct pilot_job_control **out)
{
	struct pilot_job_control *ctl = pilot_xcalloc(1, sizeof(*ctl));
	if (pipe2(ctl->fds, O_CLOEXEC | O_NONBLOCK) < 0) {
		int e = errno;
		free(ctl);
		*out = NULL;
		return pilot_error_errno(PILOT_EIO, e, "cannot create a pipe");
	}
	atomic_init(&ctl->requests, 0);
	atomic_init(&ctl->force, false);
	atomic_init(&ctl->grace_ms, -1);
	*out = ctl;
	return 0;
}

void pilot_job_control_free(struct pilot_job_control *ctl)
{
	if (!ctl)
		return;
	close(ctl->fds[0]);
	close(ctl->fds[1]);
	free(ctl);
}

void pilot_job_control_cancel(struct pilot_job_control *ctl, bool force)
{
	int saved = errno;
	if (force)
		atomic_store(&ctl->force, true);
	atomic_fetch_add(&ctl->requests, 1);
	/* A full pipe already holds a wake-up; the byte's value does not matter. */
	ssize_t n = write(ctl->fds[1], "c", 1);
	(void)n;
	errno = saved;
}

void pilot_job_control_cancel_grace(struct pilot_job_control *ctl, int64_t grace_ms)
{
	int saved = errno;
	if (grace_ms == 0) {
		atomic_store(&ctl->force, true);
	} else if (grace_ms > 0) {
		long long cur = atomic_load(&ctl->grace_ms);
		while ((cur < 0 || grace_ms < cur) && !atomic_compare_exchange_weak(&ctl->grace_ms, &cur, grace_ms))
			;
	}
	/* The first request starts the stop; later ones only pass the grace on. */
	int none = 0;
	atomic_compare_exchange_strong(&ctl->requests, &none, 1);
	ssize_t n = write(ctl->fds[1], "c", 1);
	(void)n;
	errno = saved;
}

int64_t runtime_control_grace(struct pilot_job_control *ctl, int64_t def)
{
	long long g = ctl ? atomic_load(&ctl->grace_ms) : -1;
	return g >= 0 ? (int64_t)g : def;
}

bool pilot_job_control_canceled(const struct pilot_job_control *ctl)
{
	return ctl && atomic_load(&((struct pilot_job_control *)ctl)->requests) > 0;
}

int runtime_control_state(struct pilot_job_control *ctl)
{
	if (!ctl)
		return 0;
	char buf[64];
	while (read(ctl->fds[0], buf, sizeof(buf)) > 0)
		;
	int n = atomic_load(&ctl->requests);
	if (n == 0)
		return 0;
	return atomic_load(&ctl->force) || n > 1 ? 2 : 1;
}

int runtime_control_fd(const struct pilot_job_control *ctl)
{
	return ctl ? ctl->fds[0] : -1;
}

/* ---- output pipeline ---- */

static void emit_metric(const char *json, void *ud)
{
	struct runtime_output *o = ud;
	if (o->job->on_metric)
		o->job->on_metric(json, o->job->ud);
}

static void emit_stdout(const char *data, size_t len, void *ud)
{
	struct runtime_output *o = ud;
	if (o->scanner)
		pilot_metric_scanner_feed(o->scanner, data, len);
	if (o->job->on_output)
		o->job->on_output(1, data, len, o->job->ud);
}

static void emit_stderr(const char *data, size_t len, void *ud)
{
	struct runtime_output *o = ud;
	if (o->job->on_output)
		o->job->on_output(2, data, len, o->job->ud);
}

void runtime_output_init(struct runtime_output *o, const struct pilot_job *job)
{
	memset(o, 0, sizeof(*o));
	o->job = job;
	if (job->nsecrets) {
		o->red[0] = pilot_redactor_new(job->secrets, job->nsecrets);
		o->red[1] = pilot_redactor_new(job->secrets, job->nsecrets);
	}
	if (job->on_metric)
		o->scanner = pilot_metric_scanner_new(emit_metric, o);
	o->metrics_next_ms = pilot_mono_ms() + 1000;
}

void runtime_output_feed(struct runtime_output *o, int stream, const char *data, size_t len)
{
	pilot_emit_fn emit = stream == 2 ? emit_stderr : emit_stdout;
	struct pilot_redactor *r = o->red[stream == 2];
	if (r)
		pilot_redactor_feed(r, data, len, emit, o);
	else
		emit(data, len, o);
}

void runtime_output_tick(struct runtime_output *o)
{
	if (!o->job->metrics_path || !o->job->on_metric)
		return;
	int64_t now = pilot_mono_ms();
	if (now < o->metrics_next_ms)
		return;
	o->metrics_next_ms = now + 1000;
	pilot_metric_read_file(o->job->metrics_path, &o->metrics_offset, false, emit_metric, o);
}

void runtime_output_finish(struct runtime_output *o)
{
	if (o->red[0])
		pilot_redactor_flush(o->red[0], emit_stdout, o);
	if (o->red[1])
		pilot_redactor_flush(o->red[1], emit_stderr, o);
	if (o->scanner)
		pilot_metric_scanner_finish(o->scanner);
	if (o->job->metrics_path && o->job->on_metric)
		pilot_metric_read_file(o->job->metrics_path, &o->metrics_offset, true, emit_metric, o);
}

void runtime_output_free(struct runtime_output *o)
{
	pilot_redactor_free(o->red[0]);
	pilot_redactor_free(o->red[1]);
	pilot_metric_scanner_free(o->scanner);
	memset(o, 0, sizeof(*o));
}
