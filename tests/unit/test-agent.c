/* Unit tests for lib/agent: the attempt executor and the agent loop, over the local
 * transport and the host runtime, with an api wrapper that drops calls and their
 * answers to check that logs stay byte-identical and an attempt reports exactly once,
 * and with real lease expiry for superseded attempts. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "pilot/agent.h"
#include "pilot/bundle.h"
#include "pilot/spec.h"

struct env {
	char dir[64];
	char *data, *work, *project;
	struct pilot_api *api;        /* the submitter's and the checker's */
	struct pilot_runtime *host;
	struct pilot_local_options lo;
};

static void sleep_ms(int64_t ms)
{
	struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void write_file(const char *dir, const char *name, const char *text)
{
	_cleanup_free_ char *p = pilot_path_join(dir, name);
	assert_int_equal(pilot_write_file_atomic(p, text, strlen(text), 0644), 0);
}

static int env_open_api(void *ud, struct pilot_api **out)
{
	struct env *e = ud;
	return pilot_api_open_local(e->data, &e->lo, out);
}

static struct env *env_new(int64_t lease_ttl_ms)
{
	struct env *e = pilot_xcalloc(1, sizeof(*e));
	snprintf(e->dir, sizeof(e->dir), "/tmp/pilot-test-agent.XXXXXX");
	assert_non_null(mkdtemp(e->dir));
	e->data = pilot_path_join(e->dir, "data");
	e->work = pilot_path_join(e->dir, "work");
	e->project = pilot_path_join(e->dir, "project");
	assert_int_equal(pilot_mkdir_p(e->project, 0755), 0);
	assert_int_equal(pilot_mkdir_p(e->work, 0700), 0);
	e->lo.lease_ttl_ms = lease_ttl_ms;
	assert_int_equal(env_open_api(e, &e->api), 0);
	struct pilot_runtime_opts ro = { .owner = "test" };
	assert_int_equal(pilot_runtime_open("host", &ro, &e->host), 0);
	return e;
}

static void env_free(struct env *e)
{
	pilot_api_close(e->api);
	pilot_runtime_close(e->host);
	pilot_rm_rf(e->dir);
	free(e->data);
	free(e->work);
	free(e->project);
	free(e);
}

/* Submit the project with this pilot.yaml; id gets the run id. */
static void submit(struct env *e, const char *yaml, const char *secret_value, char id[PILOT_ID_SIZE])
{
	write_file(e->project, "pilot.yaml", yaml);
	struct pilot_spec *spec = NULL;
	assert_int_equal(pilot_spec_load_string(yaml, strlen(yaml), "pilot.yaml", NULL, &spec), 0);
	_cleanup_free_ char *bundle = pilot_path_join(e->dir, "bundle.tar.gz");
	int fd = open(bundle, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	struct pilot_pack_opts po = { .dir = e->project };
	struct pilot_bundle_info info;
	assert_int_equal(pilot_bundle_pack(&po, fd, &info), 0);
	close(fd);
	assert_int_equal(pilot_api_bundle_put_file(e->api, info.sha256, bundle), 0);
	_cleanup_free_ char *json = pilot_spec_to_json(spec);
	struct pilot_submit_request q = {
		.name = spec->name,
		.spec_json = json,
		.bundle_sha256 = info.sha256,
		.timeout_ms = spec->timeout_ms,
	};
	for (size_t i = 0; i < spec->nsecrets; i++)
		pilot_kvs_set(&q.secrets, spec->secrets[i], secret_value);
	for (size_t i = 0; i < spec->nrequires; i++)
		pilot_kvs_set(&q.requires, spec->requires[i].key, spec->requires[i].value);
	struct pilot_run run = { 0 };
	assert_true(pilot_api_submit(e->api, &q, &run) >= 0);
	memcpy(id, run.id, PILOT_ID_SIZE);
	pilot_run_clear(&run);
	pilot_submit_request_clear(&q);
	pilot_spec_free(spec);
}

static void claim(struct pilot_api *api, const char *agent, struct pilot_claim *c)
{
	struct pilot_claim_request q = { .agent = agent, .capacity = 1, .free_slots = 1 };
	assert_int_equal(pilot_api_claim(api, &q, c), 1);
	pilot_claim_request_clear(&q);
}

static char *read_log(struct pilot_api *api, const char *run, int attempt, size_t *len)
{
	struct pilot_buf all = PILOT_BUF_INIT;
	int64_t off = 0;
	for (;;) {
		struct pilot_log_request q = { .run = run, .attempt = attempt, .offset = off, .max_bytes = 1 << 20 };
		struct pilot_log_chunk c = { 0 };
		assert_int_equal(pilot_api_read_logs(api, &q, &c), 0);
		pilot_buf_append(&all, c.data.data, c.data.len);
		off = c.next_offset;
		bool more = c.data.len > 0;
		pilot_log_chunk_clear(&c);
		if (!more)
			break;
	}
	*len = all.len;
	return pilot_buf_steal(&all);
}

static void get_run(struct pilot_api *api, const char *id, struct pilot_run *run)
{
	memset(run, 0, sizeof(*run));
	assert_int_equal(pilot_api_get_run(api, id, run), 0);
}

/* ---- an api that loses calls and answers ------------------------------------------- */

struct lossy {
	struct pilot_api base;
	struct pilot_api *inner;
	pthread_mutex_t lock;
	unsigned seed;
	int percent;              /* of writes lost */
	bool heartbeat_down;      /* every heartbeat fails */
	int finishes;             /* finish calls that reached the store */
	int lost_before, lost_after;
};

#define LOSSY(api) ((struct lossy *)(api))

/* 0: go on; 1: fail before the call; 2: make the call and lose the answer. */
static int fate(struct pilot_api *api)
{
	struct lossy *l = LOSSY(api);
	pthread_mutex_lock(&l->lock);
	int r = (int)(rand_r(&l->seed) % 100) < l->percent ? 1 + (int)(rand_r(&l->seed) % 2) : 0;
	if (r == 1)
		l->lost_before++;
	else if (r == 2)
		l->lost_after++;
	pthread_mutex_unlock(&l->lock);
	return r;
}

static int lost(void)
{
	return pilot_error_set(PILOT_EUNAVAILABLE, "connection reset (test)");
}

static int x_append_log(struct pilot_api *api, const char *a, const char *t, int64_t off, const void *d, size_t n,
			int64_t *exp)
{
	int f = fate(api);
	if (f == 1)
		return lost();
	int r = pilot_api_append_log(LOSSY(api)->inner, a, t, off, d, n, exp);
	return f == 2 && r >= 0 ? lost() : r;
}

static int x_heartbeat(struct pilot_api *api, const char *a, const char *t, struct pilot_heartbeat_reply *rep)
{
	if (LOSSY(api)->heartbeat_down)
		return lost();
	int f = fate(api);
	if (f == 1)
		return lost();
	int r = pilot_api_heartbeat(LOSSY(api)->inner, a, t, rep);
	return f == 2 && r >= 0 ? lost() : r;
}

static int x_put_metrics(struct pilot_api *api, const char *a, const char *t, int64_t first,
			 const struct pilot_metric *m, size_t n, int64_t *exp)
{
	int f = fate(api);
	if (f == 1)
		return lost();
	int r = pilot_api_put_metrics(LOSSY(api)->inner, a, t, first, m, n, exp);
	return f == 2 && r >= 0 ? lost() : r;
}

static int x_put_artifact(struct pilot_api *api, const char *a, const char *t, const char *path, int fd)
{
	int f = fate(api);
	if (f == 1)
		return lost();
	int r = pilot_api_put_artifact(LOSSY(api)->inner, a, t, path, fd);
	return f == 2 && r >= 0 ? lost() : r;
}

static int x_finish(struct pilot_api *api, const char *a, const char *t, const struct pilot_finish *o,
		    struct pilot_run *run)
{
	int f = fate(api);
	if (f == 1)
		return lost();
	int r = pilot_api_finish(LOSSY(api)->inner, a, t, o, run);
	pthread_mutex_lock(&LOSSY(api)->lock);
	LOSSY(api)->finishes++;
	pthread_mutex_unlock(&LOSSY(api)->lock);
	return f == 2 && r >= 0 ? lost() : r;
}

static int x_bundle_get(struct pilot_api *api, const char *sha, int *fd)
{
	if (fate(api) == 1)
		return lost();
	return pilot_api_bundle_get(LOSSY(api)->inner, sha, fd);
}

static int x_cancel(struct pilot_api *api, const char *run, const char *actor, int64_t grace_ms,
		    struct pilot_run *out)
{
	return pilot_api_cancel(LOSSY(api)->inner, run, actor, grace_ms, out);
}

static void x_close(struct pilot_api *api)
{
	pthread_mutex_destroy(&LOSSY(api)->lock);
	free(api);
}

static const struct pilot_api_ops lossy_ops = {
	.name = "lossy",
	.append_log = x_append_log,
	.heartbeat = x_heartbeat,
	.put_metrics = x_put_metrics,
	.put_artifact = x_put_artifact,
	.finish = x_finish,
	.bundle_get = x_bundle_get,
	.cancel = x_cancel,
	.close = x_close,
};

static struct pilot_api *lossy_new(struct pilot_api *inner, int percent, unsigned seed)
{
	struct lossy *l = pilot_xcalloc(1, sizeof(*l));
	l->base.ops = &lossy_ops;
	l->inner = inner;
	l->percent = percent;
	l->seed = seed;
	pthread_mutex_init(&l->lock, NULL);
	return &l->base;
}

/* ---- the executor --------------------------------------------------------------------- */

static const char *const big_job =
	"name: big\n"
	"secrets: [TOKEN]\n"
	"command: |\n"
	"  i=0; while [ $i -lt 3000 ]; do echo \"line $i of the job $TOKEN\"; i=$((i+1)); done\n"
	"  echo 'METRIC step=1 loss=0.5'\n"
	"  echo '{\"acc\": 0.9}' >> \"$PILOT_METRICS\"\n"
	"  mkdir -p out; echo weights > out/model.pt; ln -s /etc/passwd out/link.pt\n"
	"  printf 'no newline at the end'\n"
	"  exit 3\n"
	"artifacts: [\"*.pt\"]\n";

static void check_big_log(const char *log, size_t len)
{
	struct pilot_buf want = PILOT_BUF_INIT;
	for (int i = 0; i < 3000; i++)
		pilot_buf_printf(&want, "line %d of the job ***\n", i);
	pilot_buf_puts(&want, "METRIC step=1 loss=0.5\nno newline at the end");
	assert_int_equal(len, want.len);
	assert_memory_equal(log, want.data, want.len);
	assert_null(strstr(log, "s3cr3t"));
	pilot_buf_free(&want);
}

static void check_big_run(struct env *e, const char *id, struct pilot_exec_result *res)
{
	assert_int_equal(res->outcome, PILOT_EXEC_REPORTED);
	assert_int_equal(res->finish.state, PILOT_ATTEMPT_FAILED);
	assert_true(res->finish.has_exit_code);
	assert_int_equal(res->finish.exit_code, 3);
	assert_int_equal(res->exit_status, 3);
	size_t len;
	_cleanup_free_ char *log = read_log(e->api, id, 1, &len);
	check_big_log(log, len);
	assert_int_equal(res->log_bytes, (int64_t)len);
	struct pilot_run run;
	get_run(e->api, id, &run);
	assert_int_equal(run.state, PILOT_RUN_FAILED);
	assert_int_equal(run.attempt_count, 1);
	assert_int_equal(run.exit_code, 3);
	pilot_run_clear(&run);
	struct pilot_artifact_list al = { 0 };
	assert_int_equal(pilot_api_list_artifacts(e->api, id, 0, &al), 0);
	assert_int_equal(al.n, 1); /* the symlink is not taken */
	assert_string_equal(al.items[0].path, "out/model.pt");
	pilot_artifact_list_clear(&al);
	struct pilot_metric_list ml = { 0 };
	assert_int_equal(pilot_api_get_metrics(e->api, id, 0, &ml), 0);
	assert_int_equal(ml.n, 2);
	pilot_metric_list_clear(&ml);
}

static void test_exec_basic(void **state)
{
	(void)state;
	struct env *e = env_new(0);
	char id[PILOT_ID_SIZE];
	submit(e, big_job, "s3cr3t", id);
	struct pilot_claim c = { 0 };
	claim(e->api, "a1", &c);
	struct pilot_exec_opts eo = { .api = e->api, .rt = e->host, .work_dir = e->work };
	struct pilot_exec_result res;
	assert_int_equal(pilot_exec_attempt(&eo, &c, &res), 0);
	check_big_run(e, id, &res);
	assert_int_equal(res.artifacts, 1);
	assert_int_equal(res.metrics, 2);
	/* The workspace is gone. */
	_cleanup_free_ char *dir = pilot_path_join(e->work, c.attempt_id);
	assert_int_equal(access(dir, F_OK), -1);
	pilot_claim_clear(&c);
	env_free(e);
}

/* A third of the writes and answers are lost: the log is still byte-identical, the end
 * is reported once (a lost answer to finish is replayed and acknowledged). */
static void test_exec_lossy(void **state)
{
	(void)state;
	for (unsigned seed = 1; seed <= 3; seed++) {
		struct env *e = env_new(0);
		char id[PILOT_ID_SIZE];
		submit(e, big_job, "s3cr3t", id);
		struct pilot_claim c = { 0 };
		claim(e->api, "a1", &c);
		struct pilot_api *inner = NULL;
		assert_int_equal(env_open_api(e, &inner), 0);
		struct pilot_api *api = lossy_new(inner, 33, seed);
		_cleanup_free_ char *cache = pilot_path_join(e->dir, "cache");
		struct pilot_exec_opts eo = {
			.api = api, .rt = e->host, .work_dir = e->work, .bundle_cache = cache,
			.heartbeat_ms = 50, .give_up_ms = 20000,
		};
		struct pilot_exec_result res;
		assert_int_equal(pilot_exec_attempt(&eo, &c, &res), 0);
		check_big_run(e, id, &res);
		assert_true(LOSSY(api)->lost_before + LOSSY(api)->lost_after > 0);
		pilot_api_close(api);
		pilot_api_close(inner);
		pilot_claim_clear(&c);
		env_free(e);
	}
}

/* The lease expires (no heartbeat in time), the store gives the run to a new attempt:
 * the old one's next write is refused, its job is killed, nothing is reported. */
static void test_exec_superseded(void **state)
{
	(void)state;
	struct env *e = env_new(300);
	char id[PILOT_ID_SIZE];
	submit(e, "name: loop\ncommand: while true; do echo tick; sleep 0.05; done\n", NULL, id);
	struct pilot_claim c = { 0 };
	claim(e->api, "a1", &c);
	struct pilot_exec_opts eo = {
		.api = e->api, .rt = e->host, .work_dir = e->work, .heartbeat_ms = 60000, .give_up_ms = 120000,
	};
	struct pilot_exec_result res;
	/* The checker's handle reaps meanwhile (the local transport reaps inside calls). */
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct pilot_api *api = NULL;
		if (env_open_api(e, &api) < 0)
			_exit(1);
		for (int i = 0; i < 100; i++) {
			sleep_ms(50);
			pilot_api_reap(api);
		}
		_exit(0);
	}
	int64_t t0 = pilot_mono_ms();
	assert_int_equal(pilot_exec_attempt(&eo, &c, &res), 0);
	assert_int_equal(res.outcome, PILOT_EXEC_SUPERSEDED);
	assert_true(pilot_mono_ms() - t0 < 60000);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	struct pilot_run run;
	get_run(e->api, id, &run);
	assert_int_not_equal(run.state, PILOT_RUN_SUCCEEDED);
	assert_int_equal(run.nattempts, 1);
	assert_int_equal(run.attempts[0].state, PILOT_ATTEMPT_LOST);
	pilot_run_clear(&run);
	pilot_claim_clear(&c);
	env_free(e);
}

/* No renewal gets through: the agent stops the job itself and reports nothing. */
static void test_exec_lease_give_up(void **state)
{
	(void)state;
	struct env *e = env_new(0);
	char id[PILOT_ID_SIZE];
	submit(e, "name: sleeper\ncommand: sleep 30\n", NULL, id);
	struct pilot_claim c = { 0 };
	claim(e->api, "a1", &c);
	struct pilot_api *inner = NULL;
	assert_int_equal(env_open_api(e, &inner), 0);
	struct pilot_api *hb = lossy_new(inner, 0, 1);
	LOSSY(hb)->heartbeat_down = true;
	struct pilot_exec_opts eo = {
		.api = e->api, .hb_api = hb, .rt = e->host, .work_dir = e->work, .heartbeat_ms = 50, .give_up_ms = 300,
	};
	struct pilot_exec_result res;
	assert_int_equal(pilot_exec_attempt(&eo, &c, &res), 0);
	assert_int_equal(res.outcome, PILOT_EXEC_LEASE_LOST);
	assert_true(res.job.canceled);
	struct pilot_run run;
	get_run(e->api, id, &run);
	assert_int_equal(run.state, PILOT_RUN_RUNNING);
	pilot_run_clear(&run);
	pilot_api_close(hb);
	pilot_api_close(inner);
	pilot_claim_clear(&c);
	env_free(e);
}

struct canceler {
	struct env *e;
	char id[PILOT_ID_SIZE];
};

static void *cancel_later(void *arg)
{
	struct canceler *k = arg;
	struct pilot_api *api = NULL;
	if (env_open_api(k->e, &api) < 0)
		return NULL;
	sleep_ms(300);
	struct pilot_run run = { 0 };
	pilot_api_cancel(api, k->id, "tester", PILOT_CANCEL_GRACE_AGENT, &run);
	pilot_run_clear(&run);
	pilot_api_close(api);
	return NULL;
}

/* A cancel comes with a heartbeat: SIGTERM (the job traps it and writes a last
 * artifact), the artifact is uploaded, the attempt ends canceled. */
static void test_exec_cancel(void **state)
{
	(void)state;
	struct env *e = env_new(0);
	struct canceler k = { .e = e };
	submit(e,
	       "name: trap\n"
	       "command: trap 'echo bye; echo last > final.txt; exit 1' TERM; echo started; while true; do sleep 0.05; done\n"
	       "artifacts: [final.txt]\n",
	       NULL, k.id);
	struct pilot_claim c = { 0 };
	claim(e->api, "a1", &c);
	struct pilot_exec_opts eo = { .api = e->api, .rt = e->host, .work_dir = e->work, .heartbeat_ms = 50 };
	pthread_t t;
	pthread_create(&t, NULL, cancel_later, &k);
	struct pilot_exec_result res;
	assert_int_equal(pilot_exec_attempt(&eo, &c, &res), 0);
	pthread_join(t, NULL);
	assert_int_equal(res.outcome, PILOT_EXEC_REPORTED);
	assert_true(res.canceled_by_request);
	assert_int_equal(res.finish.state, PILOT_ATTEMPT_CANCELED);
	assert_int_equal(res.exit_status, 130);
	assert_int_equal(res.artifacts, 1);
	struct pilot_run run;
	get_run(e->api, k.id, &run);
	assert_int_equal(run.state, PILOT_RUN_CANCELED);
	pilot_run_clear(&run);
	size_t len;
	_cleanup_free_ char *log = read_log(e->api, k.id, 1, &len);
	/* The shell may also say, on stderr, that its sleep was terminated. */
	assert_true(pilot_str_has_prefix(log, "started\n"));
	assert_non_null(strstr(log, "bye\n"));
	pilot_claim_clear(&c);
	env_free(e);
}

/* A damaged cached bundle is fetched again, not blamed on the bundle. */
static void test_exec_bad_cache(void **state)
{
	(void)state;
	struct env *e = env_new(0);
	char id[PILOT_ID_SIZE];
	write_file(e->project, "data.txt", "payload\n");
	submit(e, "name: cat\ncommand: cat data.txt\n", NULL, id);
	struct pilot_claim c = { 0 };
	claim(e->api, "a1", &c);
	_cleanup_free_ char *cache = pilot_path_join(e->dir, "cache");
	assert_int_equal(pilot_mkdir_p(cache, 0700), 0);
	_cleanup_free_ char *name = pilot_xasprintf("%s.tar.gz", c.run.bundle_sha256);
	write_file(cache, name, "not a bundle");
	struct pilot_exec_opts eo = { .api = e->api, .rt = e->host, .work_dir = e->work, .bundle_cache = cache };
	struct pilot_exec_result res;
	assert_int_equal(pilot_exec_attempt(&eo, &c, &res), 0);
	assert_int_equal(res.outcome, PILOT_EXEC_REPORTED);
	assert_int_equal(res.finish.state, PILOT_ATTEMPT_SUCCEEDED);
	size_t len;
	_cleanup_free_ char *log = read_log(e->api, id, 1, &len);
	assert_string_equal(log, "payload\n");
	pilot_claim_clear(&c);
	env_free(e);
}

static void test_exec_refuse(void **state)
{
	(void)state;
	struct env *e = env_new(0);
	char id[PILOT_ID_SIZE];
	submit(e, "name: host\ncommand: true\n", NULL, id);
	struct pilot_claim c = { 0 };
	claim(e->api, "a1", &c);
	struct pilot_exec_opts eo = { .api = e->api, .rt = e->host, .work_dir = e->work };
	struct pilot_exec_result res;
	assert_int_equal(pilot_exec_refuse(&eo, &c, "not here", &res), 0);
	assert_int_equal(res.outcome, PILOT_EXEC_REPORTED);
	struct pilot_run run;
	get_run(e->api, id, &run);
	assert_int_equal(run.state, PILOT_RUN_FAILED);
	assert_int_equal(run.reason, PILOT_REASON_RUNTIME_ERROR);
	assert_non_null(strstr(run.attempts[0].message, "not here"));
	pilot_run_clear(&run);
	pilot_claim_clear(&c);
	env_free(e);
}

/* A host job left by a crashed agent is killed (its start time matches); a pid file
 * naming a process that is not the job (a reused pid) is left alone. */
static void test_cleanup_work_dir(void **state)
{
	(void)state;
	struct env *e = env_new(0);
	pid_t job = fork();
	assert_true(job >= 0);
	if (job == 0) {
		setsid();
		execl("/bin/sleep", "sleep", "60", (char *)NULL);
		_exit(127);
	}
	pid_t other = fork();
	assert_true(other >= 0);
	if (other == 0) {
		setsid();
		execl("/bin/sleep", "sleep", "60", (char *)NULL);
		_exit(127);
	}
	sleep_ms(100);
	char stat_path[64];
	snprintf(stat_path, sizeof(stat_path), "/proc/%d/stat", (int)job);
	struct pilot_buf b = PILOT_BUF_INIT;
	assert_int_equal(pilot_read_file(stat_path, 4096, &b), 0);
	const char *p = strrchr(b.data, ')');
	int field = 2;
	for (p++; *p && field < 22; p++)
		if (*p == ' ')
			field++;
	unsigned long long start = strtoull(p, NULL, 10);
	pilot_buf_free(&b);

	_cleanup_free_ char *a1 = pilot_path_join(e->work, "a1");
	_cleanup_free_ char *a2 = pilot_path_join(e->work, "a2");
	assert_int_equal(pilot_mkdir_p(a1, 0700), 0);
	assert_int_equal(pilot_mkdir_p(a2, 0700), 0);
	char text[64];
	snprintf(text, sizeof(text), "%d %llu\n", (int)job, start);
	write_file(a1, "job.pid", text);
	snprintf(text, sizeof(text), "%d %llu\n", (int)other, start + 12345);
	write_file(a2, "job.pid", text);
	unsigned killed = 0;
	assert_int_equal(pilot_exec_cleanup_work_dir(e->work, &killed), 0);
	assert_int_equal(killed, 1);
	int st = 0;
	assert_int_equal(waitpid(job, &st, 0), job);
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	assert_int_equal(kill(other, 0), 0);
	kill(other, SIGKILL);
	waitpid(other, NULL, 0);
	assert_int_equal(access(a1, F_OK), -1);
	assert_int_equal(access(a2, F_OK), -1);
	assert_int_equal(pilot_exec_cleanup_work_dir("/nonexistent/pilot", NULL), 0);
	env_free(e);
}

/* ---- the agent loop ----------------------------------------------------------------- */

static void agent_opts(struct env *e, struct pilot_agent_opts *o, const struct pilot_kvs *labels)
{
	memset(o, 0, sizeof(*o));
	o->name = "agent-1";
	o->labels = labels;
	o->open_api = env_open_api;
	o->open_ud = e;
	o->rt = e->host;
	o->host_rt = e->host;
	o->work_dir = e->work;
	o->heartbeat_ms = 100;
}

static void test_agent_runs_jobs(void **state)
{
	(void)state;
	struct env *e = env_new(0);
	char id1[PILOT_ID_SIZE], id2[PILOT_ID_SIZE], id3[PILOT_ID_SIZE];
	submit(e, "name: one\ncommand: echo one\n", NULL, id1);
	submit(e, "name: two\ncommand: echo two; exit 4\n", NULL, id2);
	submit(e, "name: three\ncommand: echo three\nrequires: {gpu: a100}\n", NULL, id3);
	struct pilot_kvs labels = { 0 };
	pilot_kvs_set(&labels, "runtime", "host");
	struct pilot_agent_opts o;
	agent_opts(e, &o, &labels);
	o.concurrency = 2;
	o.idle_timeout_ms = 300;
	struct pilot_agent *a = NULL;
	assert_int_equal(pilot_agent_new(&o, &a), 0);
	/* One agent per name and work directory. */
	struct pilot_agent *b = NULL;
	assert_int_equal(pilot_agent_new(&o, &b), PILOT_ECONFLICT);
	struct pilot_agent_stats st;
	assert_int_equal(pilot_agent_run(a, &st), 0);
	assert_int_equal(st.claimed, 2);
	assert_int_equal(st.reported, 2);
	assert_int_equal(st.not_reported, 0);
	assert_true(st.idle_timeout);
	assert_true(st.first_claim_ms > 0);
	pilot_agent_free(a);
	struct pilot_run run;
	get_run(e->api, id1, &run);
	assert_int_equal(run.state, PILOT_RUN_SUCCEEDED);
	assert_string_equal(run.agent, "agent-1");
	pilot_run_clear(&run);
	get_run(e->api, id2, &run);
	assert_int_equal(run.state, PILOT_RUN_FAILED);
	assert_int_equal(run.exit_code, 4);
	pilot_run_clear(&run);
	get_run(e->api, id3, &run);
	assert_int_equal(run.state, PILOT_RUN_QUEUED);
	pilot_run_clear(&run);
	/* The agent said goodbye. */
	struct pilot_agent_list al = { 0 };
	assert_int_equal(pilot_api_list_agents(e->api, &al), 0);
	assert_int_equal(al.n, 1);
	assert_int_equal(al.items[0].state, PILOT_AGENT_OFFLINE);
	assert_string_equal(pilot_kvs_get(&al.items[0].labels, "runtime"), "host");
	pilot_agent_list_clear(&al);
	pilot_kvs_clear(&labels);
	env_free(e);
}

/* Without host jobs allowed, an image-less spec is refused, with a reason. */
static void test_agent_refuses_host(void **state)
{
	(void)state;
	struct env *e = env_new(0);
	char id[PILOT_ID_SIZE];
	submit(e, "name: hosty\ncommand: echo hi\n", NULL, id);
	struct pilot_agent_opts o;
	agent_opts(e, &o, NULL);
	o.host_rt = NULL;
	o.max_jobs = 1;
	struct pilot_agent *a = NULL;
	assert_int_equal(pilot_agent_new(&o, &a), 0);
	struct pilot_agent_stats st;
	assert_int_equal(pilot_agent_run(a, &st), 0);
	assert_int_equal(st.refused, 1);
	assert_int_equal(st.reported, 1);
	pilot_agent_free(a);
	struct pilot_run run;
	get_run(e->api, id, &run);
	assert_int_equal(run.state, PILOT_RUN_FAILED);
	assert_int_equal(run.reason, PILOT_REASON_RUNTIME_ERROR);
	assert_non_null(strstr(run.attempts[0].message, "--allow-host"));
	pilot_run_clear(&run);
	env_free(e);
}

struct stopper {
	struct pilot_agent *a;
	int64_t after_ms;
	bool now;
};

static void *stop_later(void *arg)
{
	struct stopper *s = arg;
	sleep_ms(s->after_ms);
	pilot_agent_stop(s->a, s->now);
	return NULL;
}

/* An idle timeout shorter than anything still asks once before ending. */
static void test_agent_idle_asks_first(void **state)
{
	(void)state;
	struct env *e = env_new(0);
	struct pilot_agent_opts o;
	agent_opts(e, &o, NULL);
	o.api = e->api;
	o.open_api = NULL;
	o.idle_timeout_ms = 1;
	o.max_jobs = 1;
	struct pilot_agent *a = NULL;
	assert_int_equal(pilot_agent_new(&o, &a), 0);
	struct pilot_agent_stats st;
	assert_int_equal(pilot_agent_run(a, &st), 0);
	assert_true(st.idle_timeout);
	assert_true(st.first_claim_ms > 0);
	assert_int_equal(st.claimed, 0);
	pilot_agent_free(a);
	env_free(e);
}

/* A stop while a long claim is in flight ends the agent without waiting for it. */
static void test_agent_stop_idle(void **state)
{
	(void)state;
	struct env *e = env_new(0);
	struct pilot_agent_opts o;
	agent_opts(e, &o, NULL);
	o.claim_wait_ms = 60000;
	struct pilot_agent *a = NULL;
	assert_int_equal(pilot_agent_new(&o, &a), 0);
	struct stopper s = { .a = a, .after_ms = 200 };
	pthread_t t;
	pthread_create(&t, NULL, stop_later, &s);
	struct pilot_agent_stats st;
	int64_t t0 = pilot_mono_ms();
	assert_int_equal(pilot_agent_run(a, &st), 0);
	assert_true(pilot_mono_ms() - t0 < 30000);
	assert_true(st.stopped);
	assert_int_equal(st.claimed, 0);
	pthread_join(t, NULL);
	pilot_agent_free(a);
	env_free(e);
}

/* A stop with a drain timeout: the running job is canceled after it and the run ends
 * canceled with a message naming the agent. */
static void test_agent_drain(void **state)
{
	(void)state;
	struct env *e = env_new(0);
	char id[PILOT_ID_SIZE];
	submit(e, "name: long\ncommand: echo started; sleep 60\n", NULL, id);
	struct pilot_agent_opts o;
	agent_opts(e, &o, NULL);
	/* One api for everything, as `pilot agent` does on the local store. */
	o.api = e->api;
	o.open_api = NULL;
	o.drain_timeout_ms = 200;
	o.grace_ms = 200;
	struct pilot_agent *a = NULL;
	assert_int_equal(pilot_agent_new(&o, &a), 0);
	struct stopper s = { .a = a, .after_ms = 500 };
	pthread_t t;
	pthread_create(&t, NULL, stop_later, &s);
	struct pilot_agent_stats st;
	assert_int_equal(pilot_agent_run(a, &st), 0);
	pthread_join(t, NULL);
	assert_int_equal(st.claimed, 1);
	assert_int_equal(st.reported, 1);
	pilot_agent_free(a);
	struct pilot_run run;
	get_run(e->api, id, &run);
	assert_int_equal(run.state, PILOT_RUN_CANCELED);
	assert_non_null(strstr(run.attempts[0].message, "agent-1"));
	pilot_run_clear(&run);
	env_free(e);
}

static void log_to_stderr(enum pilot_log_level level, const char *msg, void *ud)
{
	(void)ud;
	fprintf(stderr, "# log %d: %s\n", (int)level, msg);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	pilot_log_set_handler(log_to_stderr, NULL, getenv("TEST_VERBOSE") ? PILOT_LOG_DEBUG : PILOT_LOG_WARN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exec_basic),
		cmocka_unit_test(test_exec_lossy),
		cmocka_unit_test(test_exec_superseded),
		cmocka_unit_test(test_exec_lease_give_up),
		cmocka_unit_test(test_exec_cancel),
		cmocka_unit_test(test_exec_bad_cache),
		cmocka_unit_test(test_exec_refuse),
		cmocka_unit_test(test_cleanup_work_dir),
		cmocka_unit_test(test_agent_runs_jobs),
		cmocka_unit_test(test_agent_refuses_host),
		cmocka_unit_test(test_agent_idle_asks_first),
		cmocka_unit_test(test_agent_stop_idle),
		cmocka_unit_test(test_agent_drain),
	};
	if (getenv("TEST_FILTER"))
		cmocka_set_test_filter(getenv("TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
