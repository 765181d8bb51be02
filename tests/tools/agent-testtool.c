/* A test-only client of the api for the agent's e2e scripts and benchmarks: it submits
 * a project directory, waits for a run, reads its log byte for byte, lists artifacts,
 * and measures how late log lines become visible to a follower. It talks to
 * $PILOT_SERVER (with $PILOT_TOKEN) when set, else to the local store ($PILOT_DATA_DIR).
 *
 *   agent-testtool submit DIR [K=V requires...]   print the run id
 *   agent-testtool wait RUN [SECONDS]             print "STATE REASON EXIT ATTEMPTS"
 *   agent-testtool logs RUN [ATTEMPT]             the log's bytes on stdout (waits for its end)
 *   agent-testtool peek RUN                       what the latest attempt's log holds now
 *   agent-testtool get RUN                        the run as JSON
 *   agent-testtool artifacts RUN                  "ATTEMPT PATH SIZE" lines
 *   agent-testtool metrics RUN                    one JSON object a line
 *   agent-testtool cancel RUN
 *   agent-testtool lag RUN                        follow; lines start with CLOCK_REALTIME ns;
 *                                                 prints count, p50, p90, p99, max in ms
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "pilot/api.h"
#include "pilot/bundle.h"
#include "pilot/spec.h"

static int fail(const char *what)
{
	fprintf(stderr, "agent-testtool: %s: %s\n", what, pilot_error_last());
	return 1;
}

static int open_api(struct pilot_api **api)
{
	const char *url = getenv("PILOT_SERVER");
	if (url && *url) {
		struct pilot_http_options ho = { .url = url, .token = getenv("PILOT_TOKEN") };
		return pilot_api_open_http(&ho, api);
	}
	return pilot_api_open_local(NULL, NULL, api);
}

static int submit(struct pilot_api *api, int argc, char **argv)
{
	_cleanup_free_ char *spec_path = NULL, *project = NULL, *spec_json = NULL;
	struct pilot_spec *spec = NULL;
	if (pilot_spec_find(argv[0], &spec_path, &project) < 0 || pilot_spec_load_file(spec_path, NULL, &spec) < 0)
		return fail("spec");
	_cleanup_close_ int fd = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	struct pilot_pack_opts po = { .dir = project };
	struct pilot_bundle_info info;
	if (fd < 0 || pilot_bundle_pack(&po, fd, &info) < 0)
		return fail("pack");
	int r = pilot_api_bundle_has(api, info.sha256);
	if (r < 0)
		return fail("bundle has");
	if (!r && (lseek(fd, 0, SEEK_SET) < 0 || pilot_api_bundle_put(api, info.sha256, fd) < 0))
		return fail("bundle put");
	spec_json = pilot_spec_to_json(spec);
	struct pilot_submit_request q = {
		.name = spec->name,
		.spec_json = spec_json,
		.bundle_sha256 = info.sha256,
		.priority = spec->priority,
		.timeout_ms = spec->timeout_ms,
		.retry = { .max_attempts = spec->retry.max_attempts },
		.submitter = "e2e",
	};
	for (size_t i = 0; i < spec->nrequires; i++)
		pilot_kvs_set(&q.requires, spec->requires[i].key, spec->requires[i].value);
	for (int i = 1; i < argc; i++)
		if (pilot_kvs_set_pair(&q.requires, argv[i]) < 0)
			return fail("requires");
	for (size_t i = 0; i < spec->nsecrets; i++) {
		const char *v = getenv(spec->secrets[i]);
		pilot_kvs_set(&q.secrets, spec->secrets[i], v ? v : "");
	}
	struct pilot_run run = { 0 };
	r = pilot_api_submit(api, &q, &run);
	pilot_submit_request_clear(&q);
	pilot_spec_free(spec);
	if (r < 0)
		return fail("submit");
	puts(run.id);
	pilot_run_clear(&run);
	return 0;
}

static int wait_run(struct pilot_api *api, const char *id, double seconds)
{
	int64_t until = pilot_mono_ms() + (int64_t)(seconds * 1000);
	for (;;) {
		struct pilot_run run = { 0 };
		if (pilot_api_get_run(api, id, &run) < 0)
			return fail("get");
		if (pilot_run_state_terminal(run.state) || pilot_mono_ms() >= until) {
			char code[16] = "-";
			if (run.has_exit_code)
				snprintf(code, sizeof(code), "%d", run.exit_code);
			printf("%s %s %s %d\n", pilot_run_state_name(run.state),
			       run.reason ? pilot_reason_name(run.reason) : "-", code, run.attempt_count);
			bool done = pilot_run_state_terminal(run.state);
			pilot_run_clear(&run);
			return done ? 0 : 3;
		}
		pilot_run_clear(&run);
		struct timespec ts = { 0, 50 * 1000000L };
		nanosleep(&ts, NULL);
	}
}

/* Calls f for every chunk of the attempt's log until it is complete. */
static int follow(struct pilot_api *api, const char *id, int attempt,
		  void (*f)(const char *p, size_t n, void *ud), void *ud)
{
	int64_t offset = 0;
	for (;;) {
		struct pilot_log_request q = { .run = id, .attempt = attempt, .offset = offset, .wait_ms = 5000 };
		struct pilot_log_chunk c = { 0 };
		if (pilot_api_read_logs(api, &q, &c) < 0)
			return fail("read logs");
		if (!attempt && c.attempt)
			attempt = c.attempt;
		if (c.data.len)
			f(c.data.data, c.data.len, ud);
		offset = c.next_offset;
		bool done = c.complete || (pilot_run_state_terminal(c.run_state) && c.attempt == 0);
		pilot_log_chunk_clear(&c);
		if (done)
			return 0;
	}
}

static void to_stdout(const char *p, size_t n, void *ud)
{
	(void)ud;
	if (n)
		fwrite(p, 1, n, stdout);
}

struct lag {
	struct pilot_buf line;
	double *v;
	size_t n, cap;
};

static void on_lag(const char *p, size_t n, void *ud)
{
	struct lag *l = ud;
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	double t = (double)now.tv_sec * 1e3 + (double)now.tv_nsec / 1e6;
	for (size_t i = 0; i < n; i++) {
		if (p[i] != '\n') {
			pilot_buf_putc(&l->line, p[i]);
			continue;
		}
		char *end;
		double ns = strtod(pilot_buf_str(&l->line), &end);
		if (end != pilot_buf_str(&l->line) && ns > 0) {
			if (l->n == l->cap) {
				l->cap = l->cap ? 2 * l->cap : 1024;
				l->v = pilot_xrealloc(l->v, l->cap * sizeof(*l->v));
			}
			l->v[l->n++] = t - ns / 1e6;
		}
		pilot_buf_reset(&l->line);
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: agent-testtool submit|wait|logs|get|artifacts|metrics|cancel|lag ...\n");
		return 2;
	}
	const char *cmd = argv[1];
	_cleanup_api_ struct pilot_api *api = NULL;
	if (open_api(&api) < 0)
		return fail("open");
	if (!strcmp(cmd, "submit"))
		return submit(api, argc - 2, argv + 2);
	const char *id = argv[2];
	if (!strcmp(cmd, "wait"))
		return wait_run(api, id, argc > 3 ? strtod(argv[3], NULL) : 120);
	if (!strcmp(cmd, "logs"))
		return follow(api, id, argc > 3 ? (int)strtol(argv[3], NULL, 10) : 0, to_stdout, NULL);
	if (!strcmp(cmd, "peek")) {
		int64_t off = 0;
		for (;;) {
			struct pilot_log_request q = { .run = id, .offset = off };
			struct pilot_log_chunk c = { 0 };
			if (pilot_api_read_logs(api, &q, &c) < 0)
				return fail("read logs");
			if (c.data.len)
				fwrite(c.data.data, 1, c.data.len, stdout);
			off = c.next_offset;
			bool more = c.data.len > 0;
			pilot_log_chunk_clear(&c);
			if (!more)
				return 0;
		}
	}
	if (!strcmp(cmd, "cancel")) {
		struct pilot_run run = { 0 };
		if (pilot_api_cancel(api, id, NULL, PILOT_CANCEL_GRACE_AGENT, &run) < 0)
			return fail("cancel");
		pilot_run_clear(&run);
		return 0;
	}
	if (!strcmp(cmd, "get")) {
		struct pilot_run run = { 0 };
		if (pilot_api_get_run(api, id, &run) < 0)
			return fail("get");
		json_t *j = pilot_run_to_json(&run);
		char *s = json_dumps(j, JSON_COMPACT);
		puts(s);
		free(s);
		json_decref(j);
		pilot_run_clear(&run);
		return 0;
	}
	if (!strcmp(cmd, "artifacts")) {
		struct pilot_artifact_list l = { 0 };
		if (pilot_api_list_artifacts(api, id, 0, &l) < 0)
			return fail("artifacts");
		for (size_t i = 0; i < l.n; i++)
			printf("%d %s %llu\n", l.items[i].attempt, l.items[i].path, (unsigned long long)l.items[i].size);
		pilot_artifact_list_clear(&l);
		return 0;
	}
	if (!strcmp(cmd, "metrics")) {
		struct pilot_metric_list l = { 0 };
		if (pilot_api_get_metrics(api, id, 0, &l) < 0)
			return fail("metrics");
		for (size_t i = 0; i < l.n; i++)
			printf("%s\n", l.items[i].json);
		pilot_metric_list_clear(&l);
		return 0;
	}
	if (!strcmp(cmd, "lag")) {
		struct lag l = { .line = PILOT_BUF_INIT };
		if (follow(api, id, 0, on_lag, &l) != 0)
			return 1;
		if (!l.n) {
			fprintf(stderr, "agent-testtool: no timestamped lines\n");
			return 1;
		}
		qsort(l.v, l.n, sizeof(*l.v), cmp_double);
		printf("lines %zu p50 %.1f p90 %.1f p99 %.1f max %.1f\n", l.n, l.v[l.n / 2], l.v[l.n * 9 / 10],
		       l.v[l.n * 99 / 100], l.v[l.n - 1]);
		free(l.v);
		pilot_buf_free(&l.line);
		return 0;
	}
	fprintf(stderr, "agent-testtool: unknown command '%s'\n", cmd);
	return 2;
}
