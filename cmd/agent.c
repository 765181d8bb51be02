/* pilot agent: claim runs from a server (or the local store), run them, report them.
 * Options become a struct pilot_agent_opts; this file adds what a library must not do:
 * signals (first SIGTERM/SIGINT drains, the second stops at once), the token file, and
 * the shutdown command of one-shot machines. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pilot.h"
#include "pilot/agent.h"
#include "pilot/api.h"
#include "pilot/config.h"
#include "pilot/runtime.h"
#include "pilot/version.h"

struct opts {
	const char *server;
	const char *token;
	const char *token_file;
	const char *registration_token_file;
	const char *name;
	struct opt_list labels;
	int64_t concurrency;
	const char *runtime;
	bool allow_host;
	const char *workdir;
	bool once;
	int64_t idle_timeout_ms;
	int64_t max_jobs;
	int64_t drain_timeout_ms;
	const char *shutdown_command;
};

static const struct pilot_opt options[] = {
	{ OPT_STRING, 0, "server", "URL", "claim from this server (default: the configured one, else the local store)",
	  offsetof(struct opts, server), NULL },
	{ OPT_STRING, 0, "token", "TOKEN", "API token (visible to other users in ps: prefer --token-file or PILOT_TOKEN)",
	  offsetof(struct opts, token), NULL },
	{ OPT_STRING, 0, "token-file", "FILE", "read the API token from FILE (mode 0600)",
	  offsetof(struct opts, token_file), "file" },
	{ OPT_STRING, 0, "registration-token-file", "FILE",
	  "enroll with the registration token in FILE; keep the agent token it gets in WORKDIR/tokens",
	  offsetof(struct opts, registration_token_file), "file" },
	{ OPT_STRING, 0, "name", "NAME", "the agent's name (default: the host name)", offsetof(struct opts, name), NULL },
	{ OPT_LIST, 'l', "labels", "K=V,...", "labels runs can require (repeatable)", offsetof(struct opts, labels),
	  NULL },
	{ OPT_INT, 'c', "concurrency", "N", "run up to N jobs at once (default 1)", offsetof(struct opts, concurrency),
	  NULL },
	{ OPT_STRING, 0, "runtime", "RUNTIME", "docker, podman or host (default: the config's, else docker or podman)",
	  offsetof(struct opts, runtime), "docker podman host" },
	{ OPT_FLAG, 0, "allow-host", NULL, "also run jobs on this host, without isolation (specs without an image)",
	  offsetof(struct opts, allow_host), NULL },
	{ OPT_STRING, 0, "workdir", "DIR", "workspaces and the bundle cache (default: DATA_DIR/agent)",
	  offsetof(struct opts, workdir), "dir" },
	{ OPT_FLAG, 0, "once", NULL, "claim at most one run, finish it, exit", offsetof(struct opts, once), NULL },
	{ OPT_DURATION, 0, "idle-timeout", "DUR", "exit when nothing was claimed for DUR",
	  offsetof(struct opts, idle_timeout_ms), NULL },
	{ OPT_INT, 0, "max-jobs", "N", "exit after N runs", offsetof(struct opts, max_jobs), NULL },
	{ OPT_DURATION, 0, "drain-timeout", "DUR", "on SIGTERM, cancel the jobs still running after DUR (default: wait)",
	  offsetof(struct opts, drain_timeout_ms), NULL },
	{ OPT_STRING, 0, "shutdown-command", "CMD", "run CMD when the agent ends on its own (e.g. poweroff)",
	  offsetof(struct opts, shutdown_command), NULL },
	OPT_END_ROW,
};

/* ---- where the api comes from ------------------------------------------------------ */

struct conn {
	const char *url;       /* NULL = the local store */
	const char *token;
	const char *cacert;
	const char *data_dir;
};

static int open_api(void *ud, struct pilot_api **out)
{
	const struct conn *c = ud;
	if (!c->url)
		return pilot_api_open_local(c->data_dir, NULL, out);
	struct pilot_http_options ho = { .url = c->url, .token = c->token, .cacert = c->cacert };
	return pilot_api_open_http(&ho, out);
}

static int read_token_file(const char *path, char **out)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return pilot_error_errno(errno == ENOENT ? PILOT_ENOTFOUND : PILOT_EIO, errno, "cannot read token file '%s'",
					 path);
	if (st.st_mode & 077)
		return pilot_error_set(PILOT_EINVALID, "token file '%s' can be read by others (mode %04o): chmod 600 '%s'",
				       path, (unsigned)(st.st_mode & 07777), path);
	struct pilot_buf b = PILOT_BUF_INIT;
	int r = pilot_read_file(path, 4096, &b);
	if (r < 0) {
		pilot_buf_free(&b);
		return pilot_error_prefix(r, "cannot read token file '%s'", path);
	}
	while (b.len && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == '\r' || b.data[b.len - 1] == ' '))
		pilot_buf_truncate(&b, b.len - 1);
	if (!b.len) {
		pilot_buf_free(&b);
		return pilot_error_set(PILOT_EINVALID, "token file '%s' is empty", path);
	}
	*out = pilot_buf_steal(&b);
	return 0;
}

/* ---- enrollment ------------------------------------------------------------------ */

/* With a registration token: the agent token kept in WORKDIR/tokens/NAME.token if the
 * server still takes it, else a new one the server gives for the registration token
 * (kept there, mode 0600). *token (caller frees) gets the one to use. */
static int enrolled_token(struct pilot_ctx *ctx, struct conn *c, const char *reg_file, const char *workdir,
			  const struct pilot_agent_info *info, char **token)
{
	if (strchr(info->name, '/') || info->name[0] == '.')
		return pilot_error_set(PILOT_EINVALID, "agent name '%s' cannot name its token file: no '/', no leading '.'",
				       info->name);
	_cleanup_free_ char *dir = pilot_path_join(workdir, "tokens");
	_cleanup_free_ char *file = pilot_xasprintf("%s.token", info->name);
	_cleanup_free_ char *path = pilot_path_join(dir, file);
	_cleanup_free_ char *kept = NULL;
	int r = read_token_file(path, &kept);
	if (r < 0 && r != PILOT_ENOTFOUND)
		return r;
	if (kept) {
		/* Registering is what it does first anyway: it tells whether the token holds. */
		struct conn probe = *c;
		probe.token = kept;
		_cleanup_api_ struct pilot_api *api = NULL;
		if ((r = open_api(&probe, &api)) < 0)
			return r;
		r = pilot_api_register_agent(api, info);
		if (r != PILOT_EAUTH) {
			/* Kept, or the server cannot say now: the agent waits for it as usual. */
			pilot_error_clear();
			*token = TAKE_PTR(kept);
			return 0;
		}
		cmd_notef(ctx, "the server does not take the agent token in '%s' any more: enrolling again", path);
	}
	_cleanup_free_ char *reg = NULL;
	if ((r = read_token_file(reg_file, &reg)) < 0)
		return r;
	struct conn enroll = *c;
	enroll.token = reg;
	_cleanup_api_ struct pilot_api *api = NULL;
	char *secret = NULL;
	struct pilot_token_record rec = { 0 };
	if ((r = open_api(&enroll, &api)) < 0 || (r = pilot_http_agent_enroll(api, info, &secret, &rec)) < 0)
		return pilot_error_prefix(r, "cannot enroll agent '%s'", info->name);
	_cleanup_free_ char *line = pilot_xasprintf("%s\n", secret);
	if ((r = pilot_mkdir_p(dir, 0700)) < 0 || (r = pilot_write_file_atomic(path, line, strlen(line), 0600)) < 0) {
		explicit_bzero(secret, strlen(secret));
		free(secret);
		pilot_token_record_clear(&rec);
		return pilot_error_prefix(r, "cannot keep the agent token");
	}
	explicit_bzero(line, strlen(line));
	cmd_notef(ctx, "agent '%s' enrolled: its token '%s' is kept in '%s'", info->name, rec.name, path);
	pilot_token_record_clear(&rec);
	*token = secret;
	return 0;
}

/* ---- tuning knobs for tests (documented in pilot-agent(1)) ----------------------- */

static int env_duration(const char *name, int64_t *out)
{
	const char *v = getenv(name);
	if (!v || !*v)
		return 0;
	if (pilot_parse_duration(v, out) < 0)
		return pilot_error_prefix(PILOT_EINVALID, "%s", name);
	return 0;
}

/* ---- signals --------------------------------------------------------------------------- */

static pthread_mutex_t sig_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pilot_agent *sig_agent;
static struct pilot_ctx *sig_ctx;
static int64_t sig_drain_ms;

static void *signal_thread(void *arg)
{
	sigset_t *set = arg;
	int count = 0;
	for (;;) {
		int sig = 0;
		if (sigwait(set, &sig) != 0)
			continue;
		count++;
		pthread_mutex_lock(&sig_lock);
		if (sig_agent) {
			if (count == 1) {
				char d[32] = "no limit";
				if (sig_drain_ms)
					pilot_format_duration(sig_drain_ms, d, sizeof(d));
				cmd_notef(sig_ctx, "%s: stopping: no more claims; running jobs may finish (drain timeout: %s); "
					  "send it again to stop at once", strsignal(sig), d);
			} else {
				cmd_notef(sig_ctx, "%s: stopping now", strsignal(sig));
			}
			pilot_agent_stop(sig_agent, count > 1);
		}
		pthread_mutex_unlock(&sig_lock);
	}
	return NULL;
}

static int run_shutdown_command(struct pilot_ctx *ctx, const char *command)
{
	cmd_notef(ctx, "running the shutdown command: %s", command);
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0) {
		cmd_errorf(ctx, "cannot run the shutdown command: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		execl("/bin/sh", "sh", "-c", command, (char *)NULL);
		_exit(127);
	}
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		cmd_warnf(ctx, "the shutdown command failed (%s %d)", WIFEXITED(st) ? "exit" : "signal",
			  WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
		return -1;
	}
	return 0;
}

/* ---- the command ------------------------------------------------------------------------ */

static int parse_labels(const struct opt_list *l, struct pilot_kvs *labels)
{
	for (size_t i = 0; i < l->n; i++) {
		_cleanup_free_ char *copy = pilot_xstrdup(l->items[i]);
		char *save = NULL;
		for (char *p = strtok_r(copy, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
			if (pilot_kvs_set_pair(labels, p) < 0)
				return pilot_error_set(PILOT_EINVALID, "invalid label '%s': expected KEY=VALUE", p);
		}
	}
	return 0;
}

static int open_runtimes(struct pilot_ctx *ctx, const struct opts *o, const char *name, struct pilot_runtime **rt,
			 struct pilot_runtime **host_rt)
{
	const char *kind = o->runtime ? o->runtime : pilot_config_get(ctx->config, "runtime", NULL);
	if (kind && !strcmp(kind, "auto"))
		kind = NULL;
	if (kind && strcmp(kind, "docker") && strcmp(kind, "podman") && strcmp(kind, "host"))
		return pilot_error_set(PILOT_EINVALID, "unknown runtime '%s' (expected docker, podman or host)", kind);
	if (kind && !strcmp(kind, "host") && !o->allow_host)
		return pilot_error_set(PILOT_EINVALID,
				       "runtime 'host' runs other people's jobs on this machine without isolation: add --allow-host to mean it");
	struct pilot_runtime_opts ro = { .owner = name, .auto_host = o->allow_host };
	int r = pilot_runtime_open(kind, &ro, rt);
	if (r < 0) {
		if (!kind && !o->allow_host)
			return pilot_error_prefix(r, "no container engine answered (docker, podman); start one, or run jobs on "
						  "the host with --runtime host --allow-host");
		return r;
	}
	if (!pilot_runtime_isolated(*rt)) {
		if (!kind)
			cmd_notef(ctx, "no container engine answered (docker, podman): jobs run on the host");
		*host_rt = *rt;
		return 0;
	}
	if (o->allow_host) {
		struct pilot_runtime_opts ho = { .owner = name };
		if ((r = pilot_runtime_open("host", &ho, host_rt)) < 0)
			return r;
	}
	return 0;
}

static int run(struct pilot_ctx *ctx, void *optsp, int argc, char **argv)
{
	struct opts *o = optsp;
	(void)argc;
	(void)argv;
	if (o->token && o->token_file)
		return cmd_usage_error(ctx, "--token and --token-file exclude each other");
	if (o->registration_token_file && (o->token || o->token_file))
		return cmd_usage_error(ctx, "--registration-token-file excludes --token and --token-file: the agent gets "
					    "its own token");
	if (o->concurrency < 0 || o->concurrency > 256)
		return cmd_usage_error(ctx, "--concurrency must be between 1 and 256");
	if (o->max_jobs < 0 || o->max_jobs > INT32_MAX)
		return cmd_usage_error(ctx, "--max-jobs must be a positive number");
	if (o->idle_timeout_ms < 0 || o->drain_timeout_ms < 0)
		return cmd_usage_error(ctx, "durations must not be negative");

	struct pilot_agent_opts ao = { 0 };
	struct pilot_kvs labels = { 0 };
	struct pilot_runtime *rt = NULL, *host_rt = NULL;
	struct pilot_agent *agent = NULL;
	struct pilot_api *local_api = NULL;
	_cleanup_free_ char *token = NULL, *workdir = NULL, *data_home = NULL;
	_cleanup_buf_ struct pilot_buf lb = PILOT_BUF_INIT; /* the labels, for the start notice */
	int status = EXIT_FAIL;
	struct pilot_agent_stats stats = { 0 };
	int64_t t0 = pilot_mono_ms();

	char host[256] = "localhost";
	gethostname(host, sizeof(host) - 1);
	const char *name = o->name ? o->name : host;

	struct conn conn = { 0 };
	conn.url = o->server ? o->server : pilot_config_get(ctx->config, "server", NULL);
	if (conn.url && !*conn.url)
		conn.url = NULL;
	conn.cacert = pilot_config_get(ctx->config, "cacert", NULL);
	conn.data_dir = pilot_config_get(ctx->config, "data_dir", NULL);
	if (o->token_file) {
		if (read_token_file(o->token_file, &token) < 0)
			goto fail;
		conn.token = token;
	} else {
		conn.token = o->token ? o->token : pilot_config_get(ctx->config, "token", NULL);
	}

	if (parse_labels(&o->labels, &labels) < 0)
		goto fail;
	if (env_duration("PILOT_HEARTBEAT", &ao.heartbeat_ms) < 0 || env_duration("PILOT_LEASE_GIVE_UP", &ao.give_up_ms) < 0 ||
	    env_duration("PILOT_CLAIM_WAIT", &ao.claim_wait_ms) < 0 || env_duration("PILOT_CANCEL_GRACE", &ao.grace_ms) < 0)
		goto fail;
	const char *pull = pilot_config_get(ctx->config, "pull", NULL);
	if (pull && pilot_pull_policy_parse(pull, &ao.pull) < 0)
		goto fail;

	if (o->workdir) {
		workdir = pilot_xstrdup(o->workdir);
	} else {
		const char *dd = conn.data_dir;
		if (!dd || !*dd)
			dd = getenv("PILOT_DATA_DIR");
		if (!dd || !*dd)
			dd = data_home = pilot_data_home();
		workdir = pilot_path_join(dd, "agent");
	}

	if (open_runtimes(ctx, o, name, &rt, &host_rt) < 0)
		goto fail;
	if (!pilot_kvs_has(&labels, "runtime"))
		pilot_kvs_set(&labels, "runtime", pilot_runtime_kind(rt));
	if (o->registration_token_file) {
		if (!conn.url) {
			pilot_error_set(PILOT_EINVALID, "--registration-token-file needs a server (--server or the config's)");
			goto fail;
		}
		struct pilot_agent_info info = { .name = (char *)name, .labels = labels, .version = (char *)pilot_version(),
						 .capacity = o->once ? 1 : (int)o->concurrency };
		if (enrolled_token(ctx, &conn, o->registration_token_file, workdir, &info, &token) < 0)
			goto fail;
		conn.token = token;
	}

	ao.name = name;
	ao.labels = &labels;
	ao.concurrency = o->once ? 1 : (int)o->concurrency;
	ao.open_api = open_api;
	ao.open_ud = &conn;
	/* One store handle per process: SQLite's locks are per process, and a store is
	 * meant to be shared by threads. */
	if (!conn.url) {
		if (open_api(&conn, &local_api) < 0)
			goto fail;
		ao.api = local_api;
	}
	ao.bundle_cache = conn.url != NULL;
	ao.rt = rt;
	ao.host_rt = host_rt;
	ao.work_dir = workdir;
	ao.network = pilot_config_get(ctx->config, "network", NULL);
	ao.max_jobs = o->once ? 1 : (int)o->max_jobs;
	ao.idle_timeout_ms = o->idle_timeout_ms;
	ao.drain_timeout_ms = o->drain_timeout_ms;

	/* Signals are taken by one thread (the job threads inherit the blocked set; the
	 * runtimes unblock them in the jobs they start). */
	static sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	pthread_t st;
	pthread_create(&st, NULL, signal_thread, &set);
	pthread_detach(st);

	if (pilot_agent_new(&ao, &agent) < 0)
		goto fail;
	pthread_mutex_lock(&sig_lock);
	sig_agent = agent;
	sig_ctx = ctx;
	sig_drain_ms = o->drain_timeout_ms;
	pthread_mutex_unlock(&sig_lock);

	for (size_t i = 0; i < labels.n; i++)
		pilot_buf_printf(&lb, "%s%s=%s", i ? "," : "", labels.items[i].key, labels.items[i].value);
	cmd_notef(ctx, "agent '%s' (%s; labels %s%s) claiming from %s%s", name, pilot_runtime_describe(rt),
		  pilot_buf_str(&lb), host_rt && host_rt != rt ? "; host jobs allowed" : "",
		  conn.url ? conn.url : "the local store", o->once ? " (once)" : "");

	int r = pilot_agent_run(agent, &stats);
	pthread_mutex_lock(&sig_lock);
	sig_agent = NULL;
	pthread_mutex_unlock(&sig_lock);
	if (stats.first_claim_ms)
		pilot_log(PILOT_LOG_INFO, "the first claim request went out %lld ms after the command started",
			  (long long)(stats.first_claim_ms - t0));
	if (r < 0)
		goto fail;
	status = stats.not_reported ? EXIT_FAIL : EXIT_OK;
	if (ctx->verbose)
		cmd_notef(ctx, "agent '%s': %u run%s claimed, %u handed over, %u not", name, stats.claimed,
			  stats.claimed == 1 ? "" : "s", stats.reported, stats.not_reported);
	goto out;
fail:
	status = cmd_fail(ctx, EXIT_FAIL);
out:
	pilot_agent_free(agent);
	pilot_api_close(local_api);
	if (host_rt != rt)
		pilot_runtime_close(host_rt);
	pilot_runtime_close(rt);
	pilot_kvs_clear(&labels);
	/* A one-shot machine powers off whatever happened, unless someone stopped the
	 * agent on purpose. */
	if (o->shutdown_command && !stats.stopped)
		run_shutdown_command(ctx, o->shutdown_command);
	return status;
}

const struct pilot_cmd cmd_agent = {
	.name = "agent",
	.summary = "claim queued runs and run them on this machine",
	.description =
		"Long-polls the server (or, without one, the local store) for runs whose requires\n"
		"match the agent's labels, runs each in a container (or on the host with\n"
		"--allow-host), streams its log, metrics and artifacts back and reports its end.\n"
		"The first SIGTERM or SIGINT stops claiming and lets running jobs finish (up to\n"
		"--drain-timeout); a second one stops at once. --once claims one run and exits 0\n"
		"when its result was handed over, whatever the job's own exit code.",
	.opts = options,
	.opts_size = sizeof(struct opts),
	.min_args = 0,
	.max_args = 0,
	.flags = CMD_NEEDS_CONFIG,
	.run = run,
};
