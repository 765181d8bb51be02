/* runtime-driver: a test-only program that runs one job through the lib/runtime API, the
 * way `pilot run` and the agent will, so that the e2e tests can drive real engines before
 * those commands exist. The job's output goes to this program's stdout/stderr as it
 * streams; it exits with pilot_job_exit_status() (125 when the runtime failed).
 *
 *   runtime-driver [options] [--] COMMAND [ARG...]
 *   runtime-driver [options] --shell 'SCRIPT'
 *   runtime-driver [--runtime K] [--endpoint A] [--owner O] --cleanup-orphans
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "pilot/runtime.h"
#include "pilot/util.h"

static struct pilot_job_control *g_ctl;
static FILE *g_events, *g_metrics, *g_log;

static void on_signal(int sig)
{
	(void)sig;
	if (g_ctl)
		pilot_job_control_cancel(g_ctl, false);
}

static void on_output(int stream, const char *data, size_t len, void *ud)
{
	(void)ud;
	if (pilot_write_all(stream == 2 ? 2 : 1, data, len) < 0)
		pilot_log(PILOT_LOG_WARN, "cannot write the job's output");
}

static void on_metric(const char *json, void *ud)
{
	(void)ud;
	if (g_metrics) {
		fprintf(g_metrics, "%s\n", json);
		fflush(g_metrics);
	}
}

static void on_started(const char *id, void *ud)
{
	(void)ud;
	if (g_events) {
		fprintf(g_events, "started %s\n", id);
		fflush(g_events);
	}
}

static void on_pull(const struct pilot_pull_progress *p, void *ud)
{
	(void)ud;
	if (g_events)
		fprintf(g_events, "pull %s %s %s %llu/%llu\n", p->image, p->layer ? p->layer : "-", p->status,
			(unsigned long long)p->bytes_done, (unsigned long long)p->bytes_total);
}

static void log_hook(enum pilot_log_level level, const char *msg, void *ud)
{
	(void)ud;
	static const char *const names[] = { "error", "warning", "notice", "info", "debug" };
	fprintf(g_log ? g_log : stderr, "runtime-driver: %s: %s\n", names[level], msg);
	fflush(g_log ? g_log : stderr);
}

static int fail(const char *what)
{
	fprintf(stderr, "runtime-driver: error: %s%s%s\n", what ? what : "", what ? ": " : "", pilot_error_last());
	return 125;
}

static FILE *open_out(const char *path)
{
	FILE *f = fopen(path, "w");
	if (!f) {
		fprintf(stderr, "runtime-driver: cannot open '%s': %s\n", path, strerror(errno));
		exit(125);
	}
	return f;
}

enum {
	O_RUNTIME = 256, O_ENDPOINT, O_OWNER, O_IMAGE, O_WORKSPACE, O_WORKDIR, O_ENV, O_SECRET, O_TIMEOUT, O_GRACE,
	O_PULL, O_CPUS, O_MEMORY, O_GPUS, O_SHM, O_PIDS, O_NETWORK, O_USER, O_PRIVILEGED, O_RUN_ID, O_ATTEMPT,
	O_SHELL, O_METRICS_FILE, O_METRICS_OUT, O_ARTIFACT, O_ARTIFACTS_OUT, O_EVENTS_OUT, O_LOG, O_CLEANUP,
	O_DESCRIBE, O_AUTO_HOST, O_DEBUG,
};

static const struct option longopts[] = {
	{ "runtime", required_argument, NULL, O_RUNTIME },
	{ "endpoint", required_argument, NULL, O_ENDPOINT },
	{ "owner", required_argument, NULL, O_OWNER },
	{ "image", required_argument, NULL, O_IMAGE },
	{ "workspace", required_argument, NULL, O_WORKSPACE },
	{ "workdir", required_argument, NULL, O_WORKDIR },
	{ "env", required_argument, NULL, O_ENV },
	{ "secret", required_argument, NULL, O_SECRET },
	{ "timeout", required_argument, NULL, O_TIMEOUT },
	{ "grace", required_argument, NULL, O_GRACE },
	{ "pull", required_argument, NULL, O_PULL },
	{ "cpus", required_argument, NULL, O_CPUS },
	{ "memory", required_argument, NULL, O_MEMORY },
	{ "gpus", required_argument, NULL, O_GPUS },
	{ "shm", required_argument, NULL, O_SHM },
	{ "pids", required_argument, NULL, O_PIDS },
	{ "network", required_argument, NULL, O_NETWORK },
	{ "user", required_argument, NULL, O_USER },
	{ "privileged", no_argument, NULL, O_PRIVILEGED },
	{ "run-id", required_argument, NULL, O_RUN_ID },
	{ "attempt", required_argument, NULL, O_ATTEMPT },
	{ "shell", no_argument, NULL, O_SHELL },
	{ "metrics-file", required_argument, NULL, O_METRICS_FILE },
	{ "metrics-out", required_argument, NULL, O_METRICS_OUT },
	{ "artifact", required_argument, NULL, O_ARTIFACT },
	{ "artifacts-out", required_argument, NULL, O_ARTIFACTS_OUT },
	{ "events-out", required_argument, NULL, O_EVENTS_OUT },
	{ "log", required_argument, NULL, O_LOG },
	{ "cleanup-orphans", no_argument, NULL, O_CLEANUP },
	{ "describe", no_argument, NULL, O_DESCRIBE },
	{ "auto-host", no_argument, NULL, O_AUTO_HOST },
	{ "debug", no_argument, NULL, O_DEBUG },
	{ NULL, 0, NULL, 0 },
};

static void push(const char ***v, size_t *n, const char *s)
{
	*v = pilot_xrealloc(*v, (*n + 1) * sizeof(char *));
	(*v)[(*n)++] = s;
}

int main(int argc, char **argv)
{
	const char *kind = NULL, *artifacts_out = NULL;
	struct pilot_runtime_opts ropts = { 0 };
	struct pilot_job job = { .attempt = 1 };
	const char **env = NULL, **secrets = NULL, **artifacts = NULL;
	size_t nenv = 0, nsecrets = 0, nartifacts = 0;
	bool cleanup = false, describe = false, debug = false;
	_cleanup_free_ char *cwd = getcwd(NULL, 0);
	job.workspace = cwd;

	int c;
	int64_t v;
	uint64_t size;
	while ((c = getopt_long(argc, argv, "+", longopts, NULL)) != -1) {
		int r = 0;
		switch (c) {
		case O_RUNTIME: kind = optarg; break;
		case O_ENDPOINT: ropts.endpoint = optarg; break;
		case O_OWNER: ropts.owner = optarg; break;
		case O_AUTO_HOST: ropts.auto_host = true; break;
		case O_IMAGE: job.image = optarg; break;
		case O_WORKSPACE: job.workspace = optarg; break;
		case O_WORKDIR: job.workdir = optarg; break;
		case O_ENV: push(&env, &nenv, optarg); break;
		case O_SECRET: push(&secrets, &nsecrets, optarg); break;
		case O_TIMEOUT: r = pilot_parse_duration(optarg, &job.timeout_ms); break;
		case O_GRACE: r = pilot_parse_duration(optarg, &job.grace_ms); break;
		case O_PULL: r = pilot_pull_policy_parse(optarg, &job.pull); break;
		case O_CPUS: {
			char *end;
			job.res.cpus = strtod(optarg, &end);
			if (*end || end == optarg)
				r = pilot_error_set(PILOT_EINVALID, "invalid cpus '%s'", optarg);
			break;
		}
		case O_MEMORY: r = pilot_parse_size(optarg, &size); job.res.memory = size; break;
		case O_SHM: r = pilot_parse_size(optarg, &size); job.res.shm = size; break;
		case O_GPUS:
			if (strcmp(optarg, "all") == 0) {
				job.res.gpus = -1;
			} else {
				r = pilot_parse_int64(optarg, 0, 1024, &v);
				job.res.gpus = (int)v;
			}
			break;
		case O_PIDS: r = pilot_parse_int64(optarg, -1, INT64_MAX, &job.res.pids); break;
		case O_NETWORK: job.network = optarg; break;
		case O_USER: job.user = optarg; break;
		case O_PRIVILEGED: job.privileged = true; break;
		case O_RUN_ID: job.run_id = optarg; break;
		case O_ATTEMPT: r = pilot_parse_int64(optarg, 0, 1000000, &v); job.attempt = (int)v; break;
		case O_SHELL: job.shell = true; break;
		case O_METRICS_FILE: job.metrics_path = optarg; break;
		case O_METRICS_OUT: g_metrics = open_out(optarg); break;
		case O_ARTIFACT: push(&artifacts, &nartifacts, optarg); break;
		case O_ARTIFACTS_OUT: artifacts_out = optarg; break;
		case O_EVENTS_OUT: g_events = open_out(optarg); break;
		case O_LOG: g_log = open_out(optarg); break;
		case O_CLEANUP: cleanup = true; break;
		case O_DESCRIBE: describe = true; break;
		case O_DEBUG: debug = true; break;
		default:
			fprintf(stderr, "runtime-driver: usage error (see the comment at the top of runtime-driver.c)\n");
			return 2;
		}
		if (r < 0) {
			fprintf(stderr, "runtime-driver: %s\n", pilot_error_last());
			return 2;
		}
	}
	pilot_log_set_handler(log_hook, NULL, debug ? PILOT_LOG_DEBUG : PILOT_LOG_INFO);
	job.argv = (const char *const *)argv + optind;
	job.argc = (size_t)(argc - optind);
	job.env = env;
	job.nenv = nenv;
	job.secrets = secrets;
	job.nsecrets = nsecrets;
	job.on_output = on_output;
	job.on_metric = g_metrics || job.metrics_path ? on_metric : NULL;
	job.on_started = on_started;
	job.on_pull = on_pull;

	struct pilot_runtime *rt;
	if (pilot_runtime_open(kind, &ropts, &rt) < 0)
		return fail(NULL);
	if (describe) {
		printf("%s %s\n", pilot_runtime_kind(rt), pilot_runtime_describe(rt));
		pilot_runtime_close(rt);
		return 0;
	}
	if (cleanup) {
		unsigned removed = 0;
		int r = pilot_runtime_cleanup_orphans(rt, ropts.owner, &removed);
		printf("removed %u\n", removed);
		pilot_runtime_close(rt);
		return r < 0 ? fail("cleanup") : 0;
	}

	if (pilot_job_control_new(&g_ctl) < 0)
		return fail(NULL);
	struct sigaction sa = { .sa_handler = on_signal };
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	struct pilot_job_result res;
	int r = pilot_runtime_run(rt, &job, g_ctl, &res);
	int status = r < 0 ? fail(NULL) : pilot_job_exit_status(&res);
	if (g_events) {
		fprintf(g_events, "result rc=%d exit=%d signal=%d started=%d timed_out=%d canceled=%d oom=%d id=%s\n", r,
			res.exit_code, res.signal, res.started, res.timed_out, res.canceled, res.oom_killed, res.id);
		fclose(g_events);
	}
	if (r == 0 && nartifacts) {
		struct pilot_artifact_files list;
		if (pilot_artifacts_collect(job.workspace, artifacts, nartifacts, &list) < 0) {
			status = fail("artifacts");
		} else {
			FILE *f = artifacts_out ? open_out(artifacts_out) : stdout;
			for (size_t i = 0; i < list.n; i++)
				fprintf(f, "%s %llu\n", list.items[i].path, (unsigned long long)list.items[i].size);
			if (f != stdout)
				fclose(f);
			pilot_artifact_files_free(&list);
		}
	}
	if (g_metrics)
		fclose(g_metrics);
	struct pilot_job_control *ctl = g_ctl;
	g_ctl = NULL; /* before the free: a late signal must not touch it */
	pilot_job_control_free(ctl);
	pilot_runtime_close(rt);
	free(env);
	free(secrets);
	free(artifacts);
	if (g_log)
		fclose(g_log);
	return status;
}
