/* The api conformance checks (see conformance.h). Each test isolates itself in a shared
 * store by a random tag: its runs require the label ct=TAG and carry the name ct-TAG,
 * and its agents offer only that label, so tests never claim each other's runs. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "conformance.h"

static const struct conformance_target *T;
static int n_checks, n_failed;
static const char *cur_test;

/* ---- TAP ---- */

static bool check_(bool ok, const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static bool check_(bool ok, const char *file, int line, const char *fmt, ...)
{
	char desc[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(desc, sizeof(desc), fmt, ap);
	va_end(ap);
	n_checks++;
	printf("%s %d - %s: %s\n", ok ? "ok" : "not ok", n_checks, cur_test, desc);
	if (!ok) {
		n_failed++;
		printf("#   at %s:%d\n#   last error: %s\n", file, line, pilot_error_last());
	}
	fflush(stdout);
	return ok;
}
#define CHECK(cond, ...) check_((cond), __FILE__, __LINE__, __VA_ARGS__)
/* call must return want (an int); prints what it got otherwise. */
#define CHECK_RC(call, want, ...)                                                                       \
	({                                                                                              \
		int _r = (call);                                                                        \
		if (_r != (want))                                                                       \
			printf("#   got %d (%s), wanted %d (%s)\n", _r, pilot_err_name(_r), (want),      \
			       pilot_err_name(want));                                                   \
		check_(_r == (want), __FILE__, __LINE__, __VA_ARGS__);                                  \
	})

static void diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void diag(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("# ", stdout);
	vprintf(fmt, ap);
	fputc('\n', stdout);
	va_end(ap);
	fflush(stdout);
}

static void sleep_ms(int64_t ms)
{
	struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int scaled(int n)
{
	int p = T->scale_percent > 0 ? T->scale_percent : 100;
	int v = n * p / 100;
	return v > 0 ? v : 1;
}

/* ---- per-test context ---- */

struct ctx {
	struct pilot_api *api;
	char tag[17];
	char name[24];
	char agent[32];
};

static void ctx_init(struct ctx *c)
{
	pilot_random_hex(c->tag, 8);
	snprintf(c->name, sizeof(c->name), "ct-%s", c->tag);
	snprintf(c->agent, sizeof(c->agent), "agent-%s", c->tag);
	c->api = T->open(T->ud);
	if (!c->api) {
		printf("Bail out! cannot open the api: %s\n", pilot_error_last());
		exit(1);
	}
}

static void ctx_free(struct ctx *c)
{
	pilot_api_close(c->api);
	c->api = NULL;
}

static void req_init(struct ctx *c, struct pilot_submit_request *q)
{
	memset(q, 0, sizeof(*q));
	q->name = c->name;
	q->spec_json = "{\"name\":\"ct\",\"command\":[\"true\"]}";
	pilot_kvs_set(&q->requires, "ct", c->tag);
}

static int submit(struct ctx *c, struct pilot_run *out)
{
	struct pilot_submit_request q;
	req_init(c, &q);
	int r = pilot_api_submit(c->api, &q, out);
	pilot_submit_request_clear(&q);
	return r;
}

static int claim_as(struct ctx *c, struct pilot_api *api, const char *agent, int64_t wait_ms, struct pilot_claim *out)
{
	struct pilot_claim_request q = { .agent = agent, .wait_ms = wait_ms, .version = "conformance" };
	pilot_kvs_set(&q.labels, "ct", c->tag);
	int r = pilot_api_claim(api, &q, out);
	pilot_claim_request_clear(&q);
	return r;
}

static int claim(struct ctx *c, struct pilot_claim *out)
{
	return claim_as(c, c->api, c->agent, 0, out);
}

static enum pilot_run_state state_of(struct ctx *c, const char *id)
{
	struct pilot_run r = { 0 };
	if (pilot_api_get_run(c->api, id, &r) < 0)
		return (enum pilot_run_state)-1;
	enum pilot_run_state s = r.state;
	pilot_run_clear(&r);
	return s;
}

/* Poll (calling reap, which a server may also do on its own) until the run leaves
 * state `from` or timeout_ms passes; returns the state. */
static enum pilot_run_state wait_leave(struct ctx *c, const char *id, enum pilot_run_state from, int64_t timeout_ms)
{
	int64_t end = pilot_mono_ms() + timeout_ms;
	for (;;) {
		pilot_api_reap(c->api);
		enum pilot_run_state s = state_of(c, id);
		if (s != from || pilot_mono_ms() > end)
			return s;
		sleep_ms(20);
	}
}

static struct pilot_finish outcome(enum pilot_attempt_state st, enum pilot_reason reason, int code)
{
	struct pilot_finish f = { .state = st, .reason = reason };
	if (st == PILOT_ATTEMPT_SUCCEEDED || reason == PILOT_REASON_EXIT_CODE) {
		f.has_exit_code = true;
		f.exit_code = code;
	}
	return f;
}

static bool has_event(struct ctx *c, const char *run, const char *type)
{
	struct pilot_event_filter f = { .run = run, .limit = 1000 };
	struct pilot_event_list l = { 0 };
	bool found = false;
	if (pilot_api_list_events(c->api, &f, 0, &l) == 0)
		for (size_t i = 0; i < l.n; i++)
			found |= !strcmp(l.items[i].type, type);
	pilot_event_list_clear(&l);
	return found;
}

/* ---- tests ---- */

static void t_submit_get(struct ctx *c)
{
	struct pilot_submit_request q;
	struct pilot_run r = { 0 }, g = { 0 };
	req_init(c, &q);
	q.params_json = "{\"lr\":0.1}";
	q.env_json = "{\"EPOCHS\":\"5\"}";
	q.priority = 7;
	q.timeout_ms = 120000;
	q.retry.max_attempts = 3;
	q.retry.on = PILOT_RETRY_ON_EXIT_CODE | PILOT_RETRY_ON_TIMEOUT;
	q.retry.backoff_ms = 1000;
	q.submitter = "alice";
	pilot_kvs_set(&q.secrets, "HF_TOKEN", "s3cret-value");
	CHECK_RC(pilot_api_submit(c->api, &q, &r), 0, "submit returns 0");
	pilot_submit_request_clear(&q);
	CHECK(r.id[0] == 'r' && strlen(r.id) == PILOT_ID_LEN, "run id '%s' has the run id form", r.id);
	CHECK(r.state == PILOT_RUN_QUEUED && r.reason == PILOT_REASON_NONE, "a new run is queued");
	CHECK(r.created_ms > 0 && r.attempt_count == 0, "created time set, no attempts");
	CHECK_RC(pilot_api_get_run(c->api, r.id, &g), 0, "get by full id");
	CHECK(!strcmp(g.name, c->name), "name kept");
	CHECK(g.spec_json && !strcmp(g.spec_json, "{\"name\":\"ct\",\"command\":[\"true\"]}"), "spec kept byte for byte");
	CHECK(g.params_json && !strcmp(g.params_json, "{\"lr\":0.1}"), "params kept byte for byte");
	CHECK(g.env_json && !strcmp(g.env_json, "{\"EPOCHS\":\"5\"}"), "env kept");
	CHECK(g.priority == 7 && g.timeout_ms == 120000, "priority and timeout kept");
	CHECK(g.retry.max_attempts == 3 && g.retry.on == (PILOT_RETRY_ON_EXIT_CODE | PILOT_RETRY_ON_TIMEOUT) &&
		      g.retry.backoff_ms == 1000,
	      "retry policy kept");
	CHECK(g.submitter && !strcmp(g.submitter, "alice"), "submitter kept");
	CHECK(!strcmp(pilot_kvs_get(&g.requires, "ct") ? pilot_kvs_get(&g.requires, "ct") : "", c->tag), "requires kept");
	CHECK(g.secrets.n == 1 && !strcmp(g.secrets.items[0].key, "HF_TOKEN") && g.secrets.items[0].value == NULL,
	      "get shows the secret's name but not its value");
	json_t *j = pilot_run_to_json(&g);
	char *text = json_dumps(j, 0);
	CHECK(text && !strstr(text, "s3cret-value"), "the run's JSON does not contain the secret value");
	free(text);
	json_decref(j);
	pilot_run_clear(&g);
	char prefix[12];
	snprintf(prefix, sizeof(prefix), "%.11s", r.id);
	CHECK_RC(pilot_api_get_run(c->api, prefix, &g), 0, "get by a unique prefix");
	CHECK(!strcmp(g.id, r.id), "the prefix finds the run");
	pilot_run_clear(&g);
	CHECK(has_event(c, r.id, "submitted"), "a 'submitted' event was written");
	pilot_run_clear(&r);
}

static void t_submit_invalid(struct ctx *c)
{
	struct pilot_submit_request q;
	struct pilot_run r = { 0 };
	req_init(c, &q);
	q.name = "Bad Name";
	CHECK_RC(pilot_api_submit(c->api, &q, &r), PILOT_EINVALID, "a bad name is refused");
	q.name = c->name;
	q.spec_json = "{not json";
	CHECK_RC(pilot_api_submit(c->api, &q, &r), PILOT_EINVALID, "a spec that is not JSON is refused");
	/* JSON, but not a spec an agent could run: refused now, not failed later. */
	q.spec_json = "{\"name\":\"ct\",\"command\":\"true\"}";
	CHECK_RC(pilot_api_submit(c->api, &q, &r), PILOT_EINVALID, "a spec whose command is a string is refused");
	CHECK(strstr(pilot_error_last(), "command: expected an array") != NULL, "naming the field: %s",
	      pilot_error_last());
	q.spec_json = "{\"name\":\"ct\",\"command\":[\"true\"],\"imag\":\"x\"}";
	CHECK_RC(pilot_api_submit(c->api, &q, &r), PILOT_EINVALID, "a spec with an unknown field is refused");
	q.spec_json = "{\"name\":\"ct\",\"command\":[\"true\"]}";
	q.params_json = "[1,2]";
	CHECK_RC(pilot_api_submit(c->api, &q, &r), PILOT_EINVALID, "params that are not an object are refused");
	q.params_json = NULL;
	q.bundle_sha256 = "0000000000000000000000000000000000000000000000000000000000000000";
	CHECK_RC(pilot_api_submit(c->api, &q, &r), PILOT_ENOTFOUND, "a bundle never uploaded is refused");
	q.bundle_sha256 = "xyz";
	CHECK_RC(pilot_api_submit(c->api, &q, &r), PILOT_EINVALID, "a malformed bundle hash is refused");
	pilot_submit_request_clear(&q);
	struct pilot_run_filter f = { .name = c->name };
	struct pilot_run_list l = { 0 };
	CHECK_RC(pilot_api_list_runs(c->api, &f, &l), 0, "list");
	CHECK(l.n == 0, "nothing was created by refused submits");
	pilot_run_list_clear(&l);
}

static void t_get_unknown_ambiguous(struct ctx *c)
{
	struct pilot_run r = { 0 }, a = { 0 }, b = { 0 };
	CHECK_RC(pilot_api_get_run(c->api, "rzzzzzzzzzzzzzz", &r), PILOT_ENOTFOUND, "an unknown id is not found");
	CHECK(strstr(pilot_error_last(), "rzzzzzzzzzzzzzz") != NULL, "the message names the id");
	CHECK_RC(pilot_api_get_run(c->api, "not an id!", &r), PILOT_ENOTFOUND, "garbage is not found");
	submit(c, &a);
	submit(c, &b);
	/* Two runs made now share their time prefix. */
	size_t common = 0;
	while (a.id[common] && a.id[common] == b.id[common])
		common++;
	char prefix[PILOT_ID_SIZE];
	snprintf(prefix, sizeof(prefix), "%.*s", (int)common, a.id);
	CHECK_RC(pilot_api_get_run(c->api, prefix, &r), PILOT_EAMBIGUOUS, "a shared prefix '%s' is ambiguous", prefix);
	CHECK(strstr(pilot_error_last(), a.id) && strstr(pilot_error_last(), b.id), "the message lists the candidates");
	CHECK_RC(pilot_api_cancel(c->api, prefix, NULL, PILOT_CANCEL_GRACE_AGENT, &r), PILOT_EAMBIGUOUS,
		 "cancel by an ambiguous prefix is refused");
	CHECK(state_of(c, a.id) == PILOT_RUN_QUEUED && state_of(c, b.id) == PILOT_RUN_QUEUED, "nothing was canceled");
	pilot_run_clear(&a);
	pilot_run_clear(&b);
}

static void t_idempotency(struct ctx *c)
{
	struct pilot_submit_request q;
	struct pilot_run a = { 0 }, b = { 0 };
	char key[64];
	snprintf(key, sizeof(key), "key-%s", c->tag);
	req_init(c, &q);
	q.idempotency_key = key;
	CHECK_RC(pilot_api_submit(c->api, &q, &a), 0, "first submit with a key returns 0");
	CHECK_RC(pilot_api_submit(c->api, &q, &b), 1, "the same submit again returns 1 (a replay)");
	CHECK(!strcmp(a.id, b.id), "the replay returns the original run");
	pilot_run_clear(&b);
	q.priority = 99;
	CHECK_RC(pilot_api_submit(c->api, &q, &b), PILOT_ECONFLICT, "the same key with a different payload conflicts");
	CHECK(strstr(pilot_error_last(), key) != NULL, "the message names the key");
	pilot_submit_request_clear(&q);
	struct pilot_run_filter f = { .name = c->name };
	struct pilot_run_list l = { 0 };
	pilot_api_list_runs(c->api, &f, &l);
	CHECK(l.n == 1, "exactly one run exists (%zu)", l.n);
	pilot_run_list_clear(&l);
	pilot_run_clear(&a);
}

/* Children: fork n processes running fn(i); returns how many exited 0. */
static int fork_all(int n, int (*fn)(struct ctx *c, int i, void *ud), struct ctx *c, void *ud)
{
	pid_t *pids = pilot_xcalloc((size_t)n, sizeof(pid_t));
	fflush(stdout);
	for (int i = 0; i < n; i++) {
		pids[i] = fork();
		if (pids[i] == 0) {
			struct ctx child = *c;
			child.api = T->open(T->ud);
			int st = child.api ? fn(&child, i, ud) : 1;
			if (st)
				fprintf(stderr, "child %d: %s\n", i, pilot_error_last());
			pilot_api_close(child.api);
			_exit(st);
		}
	}
	int good = 0;
	for (int i = 0; i < n; i++) {
		int st = 0;
		if (pids[i] > 0 && waitpid(pids[i], &st, 0) == pids[i] && WIFEXITED(st) && WEXITSTATUS(st) == 0)
			good++;
	}
	free(pids);
	return good;
}

static size_t count_runs(struct ctx *c, unsigned states)
{
	struct pilot_run_filter f = { .name = c->name, .states = states, .limit = 1000 };
	char after[PILOT_ID_SIZE] = "";
	size_t n = 0;
	for (;;) {
		struct pilot_run_list l = { 0 };
		f.after = after[0] ? after : NULL;
		if (pilot_api_list_runs(c->api, &f, &l) < 0)
			return (size_t)-1;
		n += l.n;
		memcpy(after, l.next_after, PILOT_ID_SIZE);
		pilot_run_list_clear(&l);
		if (!after[0])
			return n;
	}
}

struct submit_job {
	int per_child;
	bool shared_keys;
};

static int submit_child(struct ctx *c, int i, void *ud)
{
	struct submit_job *job = ud;
	for (int k = 0; k < job->per_child; k++) {
		struct pilot_submit_request q;
		char key[64];
		if (job->shared_keys)
			snprintf(key, sizeof(key), "%s-shared-%d", c->tag, k);
		else
			snprintf(key, sizeof(key), "%s-%d-%d", c->tag, i, k);
		req_init(c, &q);
		q.idempotency_key = key;
		int r = pilot_api_submit(c->api, &q, NULL);
		pilot_submit_request_clear(&q);
		if (r < 0)
			return 1;
	}
	return 0;
}

static void t_concurrent_submits(struct ctx *c)
{
	int procs = 8, per = scaled(1000);
	struct submit_job job = { .per_child = per };
	int64_t t0 = pilot_mono_ms();
	int good = fork_all(procs, submit_child, c, &job);
	int64_t dt = pilot_mono_ms() - t0;
	CHECK(good == procs, "%d processes x %d submits all succeeded (%d)", procs, per, good);
	size_t n = count_runs(c, 0);
	CHECK(n == (size_t)(procs * per), "exactly %d runs exist (%zu)", procs * per, n);
	diag("%d submits from %d processes in %lld ms (%.0f/s)", procs * per, procs, (long long)dt,
	     dt ? procs * per * 1000.0 / (double)dt : 0.0);
}

static void t_concurrent_replays(struct ctx *c)
{
	int procs = 6, per = scaled(100);
	struct submit_job job = { .per_child = per, .shared_keys = true };
	int good = fork_all(procs, submit_child, c, &job);
	CHECK(good == procs, "%d processes replaying the same %d keys all succeeded", procs, per);
	size_t n = count_runs(c, 0);
	CHECK(n == (size_t)per, "exactly one run per key: %d (%zu)", per, n);
}

static void t_list_pagination(struct ctx *c)
{
	enum { N = 25 };
	char ids[N][PILOT_ID_SIZE];
	for (int i = 0; i < N; i++) {
		struct pilot_run r = { 0 };
		submit(c, &r);
		memcpy(ids[i], r.id, PILOT_ID_SIZE);
		pilot_run_clear(&r);
	}
	struct pilot_run_filter f = { .name = c->name, .limit = 10 };
	char after[PILOT_ID_SIZE] = "";
	char seen[N][PILOT_ID_SIZE];
	size_t n = 0, pages = 0;
	bool ordered = true;
	for (;;) {
		struct pilot_run_list l = { 0 };
		f.after = after[0] ? after : NULL;
		if (!CHECK_RC(pilot_api_list_runs(c->api, &f, &l), 0, "list page %zu", pages + 1))
			break;
		pages++;
		for (size_t i = 0; i < l.n && n < N; i++) {
			if (n && strcmp(seen[n - 1], l.items[i].id) <= 0)
				ordered = false;
			memcpy(seen[n++], l.items[i].id, PILOT_ID_SIZE);
		}
		CHECK(l.n <= 10, "a page holds at most the limit");
		memcpy(after, l.next_after, PILOT_ID_SIZE);
		pilot_run_list_clear(&l);
		if (!after[0] || pages > 5)
			break;
	}
	CHECK(pages == 3 && n == N, "25 runs in pages of 10: %zu pages, %zu runs", pages, n);
	CHECK(ordered, "newest first, no duplicates");
	CHECK(n == N && !strcmp(seen[0], ids[N - 1]) && !strcmp(seen[N - 1], ids[0]), "first is the newest, last the oldest");

	/* Filters: state, since. */
	struct pilot_run x = { 0 };
	pilot_api_cancel(c->api, ids[3], NULL, PILOT_CANCEL_GRACE_AGENT, &x);
	pilot_run_clear(&x);
	struct pilot_run_list l = { 0 };
	struct pilot_run_filter fs = { .name = c->name, .states = PILOT_RUN_STATE_BIT(PILOT_RUN_CANCELED) };
	CHECK_RC(pilot_api_list_runs(c->api, &fs, &l), 0, "list by state");
	CHECK(l.n == 1 && !strcmp(l.items[0].id, ids[3]), "the state filter finds the canceled run");
	pilot_run_list_clear(&l);
	fs.states = PILOT_RUN_STATE_BIT(PILOT_RUN_CANCELED) | PILOT_RUN_STATE_BIT(PILOT_RUN_QUEUED);
	fs.limit = 1000;
	pilot_api_list_runs(c->api, &fs, &l);
	CHECK(l.n == N, "a set of states finds all of them (%zu)", l.n);
	pilot_run_list_clear(&l);
	struct pilot_run_filter fa = { .states = PILOT_RUN_STATE_BIT(PILOT_RUN_CANCELED), .limit = 1000 };
	pilot_api_list_runs(c->api, &fa, &l);
	bool found = false, all_canceled = true;
	for (size_t i = 0; i < l.n; i++) {
		found |= !strcmp(l.items[i].id, ids[3]);
		all_canceled &= l.items[i].state == PILOT_RUN_CANCELED;
		ordered &= i == 0 || strcmp(l.items[i - 1].id, l.items[i].id) > 0;
	}
	CHECK(found && all_canceled && ordered, "a state filter without a name works too");
	pilot_run_list_clear(&l);
	struct pilot_run_filter ft = { .name = c->name, .since_ms = pilot_now_ms() + 60000 };
	pilot_api_list_runs(c->api, &ft, &l);
	CHECK(l.n == 0, "since in the future finds nothing");
	pilot_run_list_clear(&l);
	ft.since_ms = pilot_now_ms() - 600000;
	ft.limit = 1000;
	pilot_api_list_runs(c->api, &ft, &l);
	CHECK(l.n == N, "since ten minutes ago finds all");
	pilot_run_list_clear(&l);
}

static void t_claim_basic(struct ctx *c)
{
	struct pilot_claim cl = { 0 };
	CHECK_RC(claim(c, &cl), 0, "nothing to claim gives 0");
	struct pilot_submit_request q;
	struct pilot_run r = { 0 };
	req_init(c, &q);
	pilot_kvs_set(&q.secrets, "API_KEY", "v@lue");
	pilot_api_submit(c->api, &q, &r);
	pilot_submit_request_clear(&q);
	CHECK_RC(claim(c, &cl), 1, "a queued run is claimed");
	CHECK(!strcmp(cl.run.id, r.id), "the claimed run is the one submitted");
	CHECK(cl.attempt == 1 && cl.attempt_id[0] == 'a', "attempt 1 with an attempt id");
	CHECK(strlen(cl.lease_token) >= 32, "a lease token");
	CHECK(cl.lease_ttl_ms == T->lease_ttl_ms && cl.lease_expires_ms > pilot_now_ms() - 1000, "lease TTL and expiry");
	CHECK(cl.run.state == PILOT_RUN_RUNNING, "the claimed run is running");
	CHECK(cl.run.spec_json && strstr(cl.run.spec_json, "\"command\""), "the claim carries the spec");
	const char *sv = pilot_kvs_get(&cl.run.secrets, "API_KEY");
	CHECK(sv && !strcmp(sv, "v@lue"), "the claim carries the secret value");
	struct pilot_run g = { 0 };
	pilot_api_get_run(c->api, r.id, &g);
	CHECK(g.state == PILOT_RUN_RUNNING && g.nattempts == 1 && g.attempts[0].state == PILOT_ATTEMPT_RUNNING &&
		      !strcmp(g.attempts[0].agent, c->agent) && g.agent && !strcmp(g.agent, c->agent),
	      "get shows the running attempt and its agent");
	CHECK(g.started_ms > 0, "started time set");
	CHECK(!pilot_kvs_get(&g.secrets, "API_KEY"), "get still withholds the secret value");
	pilot_run_clear(&g);
	CHECK(has_event(c, r.id, "claimed"), "a 'claimed' event");
	struct pilot_claim cl2 = { 0 };
	CHECK_RC(claim(c, &cl2), 0, "a claimed run is not claimed again");
	struct pilot_finish fin = outcome(PILOT_ATTEMPT_SUCCEEDED, PILOT_REASON_EXIT_CODE, 0);
	CHECK_RC(pilot_api_finish(c->api, cl.attempt_id, cl.lease_token, &fin, NULL), 0, "finish it");
	pilot_claim_clear(&cl);
	pilot_run_clear(&r);

	/* Long-poll: a claim waiting while another process submits. */
	pid_t pid = fork();
	if (pid == 0) {
		struct ctx child = *c;
		sleep_ms(300);
		child.api = T->open(T->ud);
		int st = child.api && submit(&child, NULL) >= 0 ? 0 : 1;
		pilot_api_close(child.api);
		_exit(st);
	}
	int64_t t0 = pilot_mono_ms();
	CHECK_RC(claim_as(c, c->api, c->agent, 10000, &cl), 1, "a waiting claim gets a run submitted meanwhile");
	int64_t dt = pilot_mono_ms() - t0;
	CHECK(dt < 9000, "...without waiting the whole timeout (%lld ms)", (long long)dt);
	waitpid(pid, NULL, 0);
	CHECK_RC(pilot_api_finish(c->api, cl.attempt_id, cl.lease_token, &fin, NULL), 0, "finish it");
	pilot_claim_clear(&cl);
	t0 = pilot_mono_ms();
	CHECK_RC(claim_as(c, c->api, c->agent, 300, &cl), 0, "a waiting claim with nothing gives 0 after the wait");
	CHECK(pilot_mono_ms() - t0 >= 250, "...having waited");
}

static void t_claim_order_labels(struct ctx *c)
{
	struct pilot_submit_request q;
	struct pilot_run low = { 0 }, high = { 0 }, gpu = { 0 }, low2 = { 0 };
	req_init(c, &q);
	q.priority = 1;
	pilot_api_submit(c->api, &q, &low);
	pilot_api_submit(c->api, &q, &low2);
	q.priority = 50;
	pilot_api_submit(c->api, &q, &high);
	q.priority = 100;
	pilot_kvs_set(&q.requires, "gpu", "a100");
	pilot_api_submit(c->api, &q, &gpu);
	pilot_submit_request_clear(&q);
	struct pilot_claim a = { 0 }, b = { 0 }, d = { 0 }, e = { 0 };
	CHECK_RC(claim(c, &a), 1, "claim 1");
	CHECK(!strcmp(a.run.id, high.id), "the highest priority run this agent can run comes first (not the gpu one)");
	CHECK_RC(claim(c, &b), 1, "claim 2");
	CHECK(!strcmp(b.run.id, low.id), "then the oldest of equal priority");
	struct pilot_claim_request gq = { .agent = "gpu-agent" };
	pilot_kvs_set(&gq.labels, "ct", c->tag);
	pilot_kvs_set(&gq.labels, "gpu", "a100");
	pilot_kvs_set(&gq.labels, "zone", "x");
	CHECK_RC(pilot_api_claim(c->api, &gq, &d), 1, "an agent with the labels claims");
	CHECK(!strcmp(d.run.id, gpu.id), "the run requiring gpu=a100 goes to the agent that has it");
	pilot_claim_request_clear(&gq);
	struct pilot_claim_request wq = { .agent = "wrong-gpu" };
	pilot_kvs_set(&wq.labels, "ct", c->tag);
	pilot_kvs_set(&wq.labels, "gpu", "t4");
	CHECK_RC(pilot_api_claim(c->api, &wq, &e), 1, "a claim by another agent");
	CHECK(!strcmp(e.run.id, low2.id), "gets the last unrestricted run");
	pilot_claim_clear(&e);
	CHECK_RC(pilot_api_claim(c->api, &wq, &e), 0, "then nothing");
	pilot_claim_request_clear(&wq);
	pilot_claim_clear(&a);
	pilot_claim_clear(&b);
	pilot_claim_clear(&d);
	pilot_run_clear(&low);
	pilot_run_clear(&low2);
	pilot_run_clear(&high);
	pilot_run_clear(&gpu);
}

struct claim_job {
	int fd; /* write end: one line per claim */
};

static int claim_child(struct ctx *c, int i, void *ud)
{
	struct claim_job *job = ud;
	char agent[48];
	snprintf(agent, sizeof(agent), "%s-%d", c->agent, i);
	int misses = 0;
	int64_t worst = 0;
	for (;;) {
		struct pilot_claim cl = { 0 };
		int64_t t0 = pilot_mono_ms();
		int r = claim_as(c, c->api, agent, 0, &cl);
		if (r < 0)
			return 1;
		if (r == 0) {
			/* Several empty answers in a row: the queue is drained. */
			if (++misses >= 3) {
				if (getenv("PILOT_CONFORMANCE_VERBOSE"))
					fprintf(stderr, "claimer %d: slowest claim+finish %lld ms\n", i, (long long)worst);
				return 0;
			}
			sleep_ms(20);
			continue;
		}
		misses = 0;
		/* Finish at once. On two busy cores (sanitizers, 20 writers) a claimer can
		 * still be starved past the short lease: its attempt is then superseded and
		 * the run claimed again, which is the lease doing its job. Recorded as such. */
		struct pilot_finish f = outcome(PILOT_ATTEMPT_SUCCEEDED, PILOT_REASON_EXIT_CODE, 0);
		r = pilot_api_finish(c->api, cl.attempt_id, cl.lease_token, &f, NULL);
		if (pilot_mono_ms() - t0 > worst)
			worst = pilot_mono_ms() - t0;
		char line[64];
		int n = snprintf(line, sizeof(line), "%s %d %s\n", cl.run.id, cl.attempt, r == 0 ? "ok" : "superseded");
		pilot_claim_clear(&cl);
		if (r < 0 && r != PILOT_ECONFLICT)
			return 1;
		if (write(job->fd, line, (size_t)n) != n)
			return 1;
	}
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void t_concurrent_claims(struct ctx *c)
{
	int procs = 20, runs = scaled(500);
	for (int i = 0; i < runs; i++)
		if (submit(c, NULL) < 0)
			break;
	char path[] = "/tmp/pilot-ct-claims.XXXXXX";
	int fd = mkstemp(path);
	unlink(path);
	struct claim_job job = { .fd = fd };
	int64_t t0 = pilot_mono_ms();
	int good = fork_all(procs, claim_child, c, &job);
	int64_t dt = pilot_mono_ms() - t0;
	CHECK(good == procs, "%d claimers finished (%d)", procs, good);
	off_t size = lseek(fd, 0, SEEK_END);
	char *buf = pilot_xmalloc((size_t)size + 1);
	pread(fd, buf, (size_t)size, 0);
	buf[size] = '\0';
	close(fd);
	/* Lines "RUN ATTEMPT ok|superseded": every (run, attempt) held once, and one
	 * accepted finish per run. */
	char **claims = pilot_xcalloc((size_t)runs * 4 + 1, sizeof(char *));
	char **oks = pilot_xcalloc((size_t)runs * 4 + 1, sizeof(char *));
	size_t n = 0, nok = 0, superseded = 0;
	char *save = NULL;
	for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *st = strrchr(line, ' ');
		if (!st || st == line)
			continue;
		*st++ = '\0';
		if (n < (size_t)runs * 4)
			claims[n++] = line;
		if (!strcmp(st, "ok") && nok < (size_t)runs * 4)
			oks[nok++] = pilot_xstrndup(line, strcspn(line, " "));
		else if (strcmp(st, "ok"))
			superseded++;
	}
	qsort(claims, n, sizeof(*claims), cmp_str);
	qsort(oks, nok, sizeof(*oks), cmp_str);
	size_t two_holders = 0, dups = 0;
	for (size_t i = 1; i < n; i++)
		two_holders += !strcmp(claims[i - 1], claims[i]);
	for (size_t i = 1; i < nok; i++)
		dups += !strcmp(oks[i - 1], oks[i]);
	CHECK(n == (size_t)runs + superseded, "%d runs were claimed %zu times in all (%zu superseded)", runs, n,
	      superseded);
	CHECK(two_holders == 0, "no attempt had two holders (%zu)", two_holders);
	CHECK(nok == (size_t)runs && dups == 0, "each run was finished once (%zu finishes, %zu twice)", nok, dups);
	CHECK(count_runs(c, PILOT_RUN_STATE_BIT(PILOT_RUN_SUCCEEDED)) == (size_t)runs, "all runs succeeded");
	diag("%d claims+finishes by %d processes in %lld ms (%.0f/s), %zu leases expired under load", runs, procs,
	     (long long)dt, dt ? runs * 1000.0 / (double)dt : 0.0, superseded);
	for (size_t i = 0; i < nok; i++)
		free(oks[i]);
	free(oks);
	free(claims);
	free(buf);
}

static void t_heartbeat_cancel(struct ctx *c)
{
	struct pilot_run r = { 0 }, x = { 0 };
	struct pilot_claim cl = { 0 };
	struct pilot_heartbeat_reply hb = { 0 };
	submit(c, &r);
	claim(c, &cl);
	CHECK_RC(pilot_api_heartbeat(c->api, cl.attempt_id, cl.lease_token, &hb), 0, "heartbeat");
	CHECK(!hb.cancel_requested, "no cancel asked yet");
	CHECK(hb.lease_expires_ms >= pilot_now_ms() + T->lease_ttl_ms / 2, "the lease is renewed");
	CHECK_RC(pilot_api_heartbeat(c->api, cl.attempt_id, "0000", &hb), PILOT_ECONFLICT, "a wrong token is refused");
	CHECK(strstr(pilot_error_last(), "superseded") != NULL, "as superseded");
	CHECK_RC(pilot_api_cancel(c->api, r.id, "bob", PILOT_CANCEL_GRACE_AGENT, &x), 0, "cancel a running run");
	CHECK(x.state == PILOT_RUN_CANCELING && x.cancel_requested, "it is canceling");
	pilot_run_clear(&x);
	CHECK_RC(pilot_api_cancel(c->api, r.id, "bob", PILOT_CANCEL_GRACE_AGENT, &x), 1,
		 "a second cancel is a no-op that says so");
	CHECK(x.state == PILOT_RUN_CANCELING, "still canceling");
	pilot_run_clear(&x);
	CHECK_RC(pilot_api_heartbeat(c->api, cl.attempt_id, cl.lease_token, &hb), 0, "heartbeat");
	CHECK(hb.cancel_requested, "the heartbeat reports the cancel");
	CHECK(hb.cancel_grace_ms == PILOT_CANCEL_GRACE_AGENT, "leaving the grace to the agent (%lld)",
	      (long long)hb.cancel_grace_ms);
	struct pilot_finish f = outcome(PILOT_ATTEMPT_CANCELED, PILOT_REASON_CANCELED, 0);
	CHECK_RC(pilot_api_finish(c->api, cl.attempt_id, cl.lease_token, &f, &x), 0, "the agent finishes canceled");
	CHECK(x.state == PILOT_RUN_CANCELED && x.reason == PILOT_REASON_CANCELED, "the run is canceled (canceled)");
	CHECK(x.nattempts == 1 && x.attempts[0].state == PILOT_ATTEMPT_CANCELED, "the attempt is canceled");
	pilot_run_clear(&x);
	CHECK(has_event(c, r.id, "cancel_requested"), "a 'cancel_requested' event");
	CHECK_RC(pilot_api_cancel(c->api, r.id, NULL, PILOT_CANCEL_GRACE_AGENT, &x), 1,
		 "cancel of a finished run is a no-op that says so");
	CHECK(x.state == PILOT_RUN_CANCELED, "unchanged");
	pilot_run_clear(&x);
	pilot_claim_clear(&cl);
	pilot_run_clear(&r);

	/* A job that completes while the cancel is on its way still succeeded. */
	submit(c, &r);
	claim(c, &cl);
	pilot_api_cancel(c->api, r.id, NULL, PILOT_CANCEL_GRACE_AGENT, NULL);
	f = outcome(PILOT_ATTEMPT_SUCCEEDED, PILOT_REASON_EXIT_CODE, 0);
	CHECK_RC(pilot_api_finish(c->api, cl.attempt_id, cl.lease_token, &f, &x), 0, "finish succeeded while canceling");
	CHECK(x.state == PILOT_RUN_SUCCEEDED, "the run succeeded");
	pilot_run_clear(&x);
	pilot_claim_clear(&cl);
	pilot_run_clear(&r);

	/* ...and one that fails while canceling is canceled, not retried. */
	struct pilot_submit_request q;
	req_init(c, &q);
	q.retry.max_attempts = 5;
	q.retry.on = PILOT_RETRY_ON_EXIT_CODE;
	pilot_api_submit(c->api, &q, &r);
	pilot_submit_request_clear(&q);
	claim(c, &cl);
	pilot_api_cancel(c->api, r.id, NULL, PILOT_CANCEL_GRACE_AGENT, NULL);
	f = outcome(PILOT_ATTEMPT_FAILED, PILOT_REASON_EXIT_CODE, 143);
	CHECK_RC(pilot_api_finish(c->api, cl.attempt_id, cl.lease_token, &f, &x), 0, "finish failed while canceling");
	CHECK(x.state == PILOT_RUN_CANCELED && x.reason == PILOT_REASON_CANCELED, "the run is canceled, not retried");
	pilot_run_clear(&x);
	pilot_claim_clear(&cl);
	pilot_run_clear(&r);
}

/* The grace a cancel asks for is kept with the run and reaches the agent in its
 * heartbeat; a second cancel may only shorten it. */
static void t_cancel_grace(struct ctx *c)
{
	struct pilot_run r = { 0 }, x = { 0 };
	struct pilot_claim cl = { 0 };
	struct pilot_heartbeat_reply hb = { 0 };
	submit(c, &r);
	claim(c, &cl);
	CHECK_RC(pilot_api_heartbeat(c->api, cl.attempt_id, cl.lease_token, &hb), 0, "heartbeat");
	CHECK(!hb.cancel_requested && hb.cancel_grace_ms == PILOT_CANCEL_GRACE_AGENT, "no cancel, no grace");
	CHECK_RC(pilot_api_cancel(c->api, r.id, "bob", 2000, &x), 0, "cancel a running run with a 2 s grace");
	CHECK(x.state == PILOT_RUN_CANCELING && x.cancel_grace_ms == 2000, "canceling, grace 2000 ms (%lld)",
	      (long long)x.cancel_grace_ms);
	pilot_run_clear(&x);
	CHECK_RC(pilot_api_heartbeat(c->api, cl.attempt_id, cl.lease_token, &hb), 0, "heartbeat");
	CHECK(hb.cancel_requested && hb.cancel_grace_ms == 2000, "the heartbeat carries the grace (%lld)",
	      (long long)hb.cancel_grace_ms);
	CHECK_RC(pilot_api_cancel(c->api, r.id, "bob", 5000, &x), 1, "a longer grace changes nothing");
	CHECK(x.cancel_grace_ms == 2000, "the grace stays 2000 ms");
	pilot_run_clear(&x);
	CHECK_RC(pilot_api_cancel(c->api, r.id, "bob", PILOT_CANCEL_GRACE_AGENT, &x), 1,
		 "nor does a cancel that leaves it to the agent");
	pilot_run_clear(&x);
	CHECK_RC(pilot_api_cancel(c->api, r.id, "dave", 0, &x), 0, "a cancel with no grace hurries it");
	CHECK(x.state == PILOT_RUN_CANCELING && x.cancel_grace_ms == 0, "still canceling, grace 0");
	pilot_run_clear(&x);
	CHECK(has_event(c, r.id, "cancel_hurried"), "a 'cancel_hurried' event");
	CHECK_RC(pilot_api_cancel(c->api, r.id, "dave", 0, &x), 1, "the same again changes nothing");
	pilot_run_clear(&x);
	CHECK_RC(pilot_api_heartbeat(c->api, cl.attempt_id, cl.lease_token, &hb), 0, "heartbeat");
	CHECK(hb.cancel_requested && hb.cancel_grace_ms == 0, "the heartbeat says: kill it now (%lld)",
	      (long long)hb.cancel_grace_ms);
	CHECK_RC(pilot_api_get_run(c->api, r.id, &x), 0, "get the run");
	CHECK(x.cancel_requested && x.cancel_grace_ms == 0, "it shows the grace asked for");
	pilot_run_clear(&x);
	struct pilot_finish f = outcome(PILOT_ATTEMPT_CANCELED, PILOT_REASON_CANCELED, 0);
	CHECK_RC(pilot_api_finish(c->api, cl.attempt_id, cl.lease_token, &f, &x), 0, "the agent finishes canceled");
	CHECK(x.state == PILOT_RUN_CANCELED, "the run is canceled");
	pilot_run_clear(&x);
	CHECK_RC(pilot_api_cancel(c->api, r.id, NULL, 0, &x), 1, "a finished run is left alone, grace or not");
	pilot_run_clear(&x);
	pilot_claim_clear(&cl);
	pilot_run_clear(&r);

	/* A plain cancel first, then one with a grace: any grace hurries the agent's own. */
	submit(c, &r);
	claim(c, &cl);
	CHECK_RC(pilot_api_cancel(c->api, r.id, NULL, PILOT_CANCEL_GRACE_AGENT, &x), 0, "a plain cancel");
	CHECK(x.cancel_grace_ms == PILOT_CANCEL_GRACE_AGENT, "leaves the grace to the agent");
	pilot_run_clear(&x);
	CHECK_RC(pilot_api_cancel(c->api, r.id, NULL, 3000, &x), 0, "then one with a 3 s grace");
	pilot_run_clear(&x);
	CHECK_RC(pilot_api_heartbeat(c->api, cl.attempt_id, cl.lease_token, &hb), 0, "heartbeat");
	CHECK(hb.cancel_requested && hb.cancel_grace_ms == 3000, "the heartbeat carries 3000 ms (%lld)",
	      (long long)hb.cancel_grace_ms);
	CHECK_RC(pilot_api_cancel(c->api, r.id, NULL, PILOT_CANCEL_GRACE_MAX_MS + 1, &x), PILOT_EINVALID,
		 "a grace longer than a day is refused");
	f = outcome(PILOT_ATTEMPT_CANCELED, PILOT_REASON_CANCELED, 0);
	CHECK_RC(pilot_api_finish(c->api, cl.attempt_id, cl.lease_token, &f, &x), 0, "the agent finishes canceled");
	pilot_run_clear(&x);
	pilot_claim_clear(&cl);
	pilot_run_clear(&r);

	/* Nothing runs yet: canceled at once, the grace has nothing to apply to. */
	submit(c, &r);
	CHECK_RC(pilot_api_cancel(c->api, r.id, NULL, 2000, &x), 0, "cancel a queued run with a grace");
	CHECK(x.state == PILOT_RUN_CANCELED && x.reason == PILOT_REASON_CANCELED, "canceled at once");
	pilot_run_clear(&x);
	pilot_run_clear(&r);
}

static void t_cancel_queued_waiting(struct ctx *c)
{
	struct pilot_run r = { 0 }, x = { 0 };
	submit(c, &r);
	CHECK_RC(pilot_api_cancel(c->api, r.id, "carol", PILOT_CANCEL_GRACE_AGENT, &x), 0, "cancel a queued run");
	CHECK(x.state == PILOT_RUN_CANCELED && x.reason == PILOT_REASON_CANCELED && x.finished_ms > 0,
	      "canceled at once, with a reason and an end time");
	pilot_run_clear(&x);
	struct pilot_claim cl = { 0 };
	CHECK_RC(claim(c, &cl), 0, "a canceled run is not claimed");
	CHECK(has_event(c, r.id, "canceled"), "a 'canceled' event");
	pilot_run_clear(&r);
	struct pilot_submit_request q;
	req_init(c, &q);
	q.not_before_ms = pilot_now_ms() + 60000;
	pilot_api_submit(c->api, &q, &r);
	pilot_submit_request_clear(&q);
	CHECK(r.state == PILOT_RUN_WAITING && r.not_before_ms > 0, "a run with a future start is waiting");
	CHECK_RC(pilot_api_cancel(c->api, r.id, NULL, PILOT_CANCEL_GRACE_AGENT, &x), 0, "cancel a waiting run");
	CHECK(x.state == PILOT_RUN_CANCELED, "canceled at once");
	pilot_run_clear(&x);
	pilot_run_clear(&r);
	CHECK_RC(pilot_api_cancel(c->api, "rzzzzzzzzzzzzzz", NULL, PILOT_CANCEL_GRACE_AGENT, &x), PILOT_ENOTFOUND,
		 "cancel of an unknown run");
}

static void t_not_before(struct ctx *c)
{
	struct pilot_submit_request q;
	struct pilot_run r = { 0 };
	struct pilot_claim cl = { 0 };
	req_init(c, &q);
	q.not_before_ms = pilot_now_ms() + 1500;
	pilot_api_submit(c->api, &q, &r);
	pilot_submit_request_clear(&q);
	CHECK(r.state == PILOT_RUN_WAITING, "waiting until not_before");
	CHECK_RC(claim(c, &cl), 0, "not claimable before its time");
	sleep_ms(1600);
	CHECK_RC(claim(c, &cl), 1, "claimable after");
	CHECK(!strcmp(cl.run.id, r.id), "the same run");
	CHECK(has_event(c, r.id, "requeued"), "a 'requeued' event");
	pilot_claim_clear(&cl);
	pilot_run_clear(&r);
}

static void t_logs(struct ctx *c)
{
	struct pilot_run r = { 0 };
	struct pilot_claim cl = { 0 };
	struct pilot_log_chunk lc = { 0 };
	int64_t exp = -1;
	submit(c, &r);
	struct pilot_log_request lq = { .run = r.id };
	CHECK_RC(pilot_api_read_logs(c->api, &lq, &lc), 0, "read logs of a run with no attempt");
	CHECK(lc.attempt == 0 && lc.data.len == 0 && !lc.complete, "empty, attempt 0");
	pilot_log_chunk_clear(&lc);
	claim(c, &cl);
	const char *A = cl.attempt_id, *K = cl.lease_token;
	CHECK_RC(pilot_api_append_log(c->api, A, K, 0, "hello ", 6, &exp), 0, "append at 0");
	CHECK(exp == 6, "the expected offset is now 6 (%lld)", (long long)exp);
	CHECK_RC(pilot_api_append_log(c->api, A, K, 6, "world\n", 6, &exp), 0, "append at 6");
	CHECK_RC(pilot_api_append_log(c->api, A, K, 0, "hello ", 6, &exp), 0, "a replay of stored bytes is acknowledged");
	CHECK(exp == 12, "and adds nothing (%lld)", (long long)exp);
	CHECK_RC(pilot_api_append_log(c->api, A, K, 6, "world\nmore\n", 11, &exp), 0,
		 "an overlapping append with a new tail is acknowledged");
	CHECK(exp == 17, "only the tail is added (%lld)", (long long)exp);
	CHECK_RC(pilot_api_append_log(c->api, A, K, 20, "gap", 3, &exp), PILOT_ECONFLICT, "a gap is refused");
	CHECK(exp == 17, "with the expected offset (%lld)", (long long)exp);
	CHECK_RC(pilot_api_append_log(c->api, A, K, 0, "HELLO ", 6, &exp), PILOT_ECONFLICT, "different bytes are refused");
	CHECK_RC(pilot_api_append_log(c->api, A, K, 17, "", 0, &exp), 0, "an empty append at the end is fine");
	lq.attempt = 0;
	CHECK_RC(pilot_api_read_logs(c->api, &lq, &lc), 0, "read the latest attempt's log");
	CHECK(lc.attempt == 1 && lc.data.len == 17 && !memcmp(lc.data.data, "hello world\nmore\n", 17),
	      "the log reads back exactly, stored once");
	CHECK(lc.next_offset == 17 && !lc.complete, "next offset 17, not complete while running");
	pilot_log_chunk_clear(&lc);
	lq.offset = 6;
	lq.max_bytes = 5;
	pilot_api_read_logs(c->api, &lq, &lc);
	CHECK(lc.data.len == 5 && !memcmp(lc.data.data, "world", 5) && lc.next_offset == 11, "offset and max bytes");
	pilot_log_chunk_clear(&lc);
	lq.offset = 0;
	lq.max_bytes = 0;
	lq.attempt = 2;
	CHECK_RC(pilot_api_read_logs(c->api, &lq, &lc), PILOT_ENOTFOUND, "an attempt that does not exist");
	lq.attempt = 1;

	/* Follow: a reader blocked on the end gets bytes appended by another process. */
	pilot_api_heartbeat(c->api, A, K, NULL);
	pid_t pid = fork();
	if (pid == 0) {
		sleep_ms(300);
		struct pilot_api *api = T->open(T->ud);
		int st = api && pilot_api_append_log(api, A, K, 17, "late\n", 5, NULL) == 0 ? 0 : 1;
		pilot_api_close(api);
		_exit(st);
	}
	lq.offset = 17;
	lq.wait_ms = 10000;
	int64_t t0 = pilot_mono_ms();
	CHECK_RC(pilot_api_read_logs(c->api, &lq, &lc), 0, "a waiting read");
	CHECK(lc.data.len == 5 && !memcmp(lc.data.data, "late\n", 5), "returns the new bytes");
	CHECK(pilot_mono_ms() - t0 < 9000, "before the timeout");
	waitpid(pid, NULL, 0);
	pilot_log_chunk_clear(&lc);
	lq.offset = 22;
	lq.wait_ms = 200;
	pilot_api_heartbeat(c->api, A, K, NULL);
	t0 = pilot_mono_ms();
	CHECK_RC(pilot_api_read_logs(c->api, &lq, &lc), 0, "a waiting read with nothing new");
	CHECK(lc.data.len == 0 && pilot_mono_ms() - t0 >= 150, "returns empty after the wait");
	pilot_log_chunk_clear(&lc);

	struct pilot_finish f = outcome(PILOT_ATTEMPT_SUCCEEDED, PILOT_REASON_EXIT_CODE, 0);
	CHECK_RC(pilot_api_finish(c->api, A, K, &f, NULL), 0, "finish");
	CHECK_RC(pilot_api_append_log(c->api, A, K, 22, "after", 5, &exp), PILOT_ECONFLICT, "new bytes after finish are refused");
	CHECK_RC(pilot_api_append_log(c->api, A, K, 17, "late\n", 5, &exp), 0, "a replay after finish is acknowledged");
	lq.offset = 0;
	lq.wait_ms = 5000;
	t0 = pilot_mono_ms();
	pilot_api_read_logs(c->api, &lq, &lc);
	CHECK(lc.complete && lc.data.len == 22 && lc.next_offset == 22, "the finished attempt's log is complete");
	pilot_log_chunk_clear(&lc);
	lq.offset = 22;
	pilot_api_read_logs(c->api, &lq, &lc);
	CHECK(lc.complete && lc.data.len == 0 && pilot_mono_ms() - t0 < 4000, "a wait at the end of a complete log returns at once");
	pilot_log_chunk_clear(&lc);
	struct pilot_run g = { 0 };
	pilot_api_get_run(c->api, r.id, &g);
	CHECK(g.nattempts == 1 && g.attempts[0].log_bytes == 22, "the attempt counts its log bytes");
	pilot_run_clear(&g);
	pilot_claim_clear(&cl);
	pilot_run_clear(&r);
}

static void t_metrics(struct ctx *c)
{
	struct pilot_run r = { 0 };
	struct pilot_claim cl = { 0 };
	submit(c, &r);
	claim(c, &cl);
	struct pilot_metric m[3] = {
		{ .json = "{\"loss\":0.5,\"step\":1}" },
		{ .json = "{\"loss\":0.25,\"step\":2}", .time_ms = 1700000000000 },
		{ .json = "{\"loss\":0.125,\"step\":3}" },
	};
	int64_t exp = -1;
	CHECK_RC(pilot_api_put_metrics(c->api, cl.attempt_id, cl.lease_token, 0, m, 2, &exp), 0, "put 2 metrics");
	CHECK(exp == 2, "next index 2");
	CHECK_RC(pilot_api_put_metrics(c->api, cl.attempt_id, cl.lease_token, 0, m, 3, &exp), 0,
		 "a put overlapping stored records is acknowledged");
	CHECK(exp == 3, "only the new one is added (%lld)", (long long)exp);
	CHECK_RC(pilot_api_put_metrics(c->api, cl.attempt_id, cl.lease_token, 5, m, 1, &exp), PILOT_ECONFLICT, "a gap is refused");
	CHECK(exp == 3, "with the expected index");
	struct pilot_metric bad = { .json = "[1]" };
	CHECK_RC(pilot_api_put_metrics(c->api, cl.attempt_id, cl.lease_token, 3, &bad, 1, &exp), PILOT_EINVALID,
		 "a record that is not an object is refused");
	struct pilot_metric_list ml = { 0 };
	CHECK_RC(pilot_api_get_metrics(c->api, r.id, 0, &ml), 0, "get metrics");
	CHECK(ml.n == 3 && ml.items[0].index == 0 && ml.items[2].index == 2 && ml.items[0].attempt == 1, "three records in order");
	CHECK(ml.n == 3 && !strcmp(ml.items[1].json, "{\"loss\":0.25,\"step\":2}") && ml.items[1].time_ms == 1700000000000,
	      "kept as sent, with the given time");
	CHECK(ml.n == 3 && ml.items[0].time_ms > 0, "a missing time is filled in");
	pilot_metric_list_clear(&ml);
	pilot_claim_clear(&cl);
	pilot_run_clear(&r);
}

static int tmpfile_with(const char *data, size_t len)
{
	char path[] = "/tmp/pilot-ct-file.XXXXXX";
	int fd = mkstemp(path);
	unlink(path);
	if (write(fd, data, len) != (ssize_t)len)
		abort();
	lseek(fd, 0, SEEK_SET);
	return fd;
}

static bool fd_equals(int fd, const char *data, size_t len)
{
	char *buf = pilot_xmalloc(len + 16);
	size_t got = 0;
	ssize_t n;
	while ((n = read(fd, buf + got, len + 16 - got)) > 0)
		got += (size_t)n;
	bool eq = got == len && !memcmp(buf, data, len);
	free(buf);
	return eq;
}

static void t_artifacts(struct ctx *c)
{
	struct pilot_run r = { 0 };
	struct pilot_claim cl = { 0 };
	submit(c, &r);
	claim(c, &cl);
	int fd = tmpfile_with("model-bytes", 11);
	CHECK_RC(pilot_api_put_artifact(c->api, cl.attempt_id, cl.lease_token, "outputs/model.pt", fd), 0, "put an artifact");
	close(fd);
	fd = tmpfile_with("x", 1);
	CHECK_RC(pilot_api_put_artifact(c->api, cl.attempt_id, cl.lease_token, "../escape", fd), PILOT_EINVALID,
		 "a path with '..' is refused");
	lseek(fd, 0, SEEK_SET);
	CHECK_RC(pilot_api_put_artifact(c->api, cl.attempt_id, cl.lease_token, "/abs", fd), PILOT_EINVALID,
		 "an absolute path is refused");
	lseek(fd, 0, SEEK_SET);
	CHECK_RC(pilot_api_put_artifact(c->api, cl.attempt_id, "bad-token", "x.txt", fd), PILOT_ECONFLICT,
		 "a wrong token is refused");
	close(fd);
	struct pilot_artifact_list al = { 0 };
	CHECK_RC(pilot_api_list_artifacts(c->api, r.id, 0, &al), 0, "list artifacts");
	CHECK(al.n == 1 && !strcmp(al.items[0].path, "outputs/model.pt") && al.items[0].size == 11 && al.items[0].attempt == 1,
	      "one artifact with its path, size and attempt");
	char sha[65];
	pilot_sha256_hex("model-bytes", 11, sha);
	CHECK(al.n == 1 && !strcmp(al.items[0].sha256, sha), "and its sha256");
	pilot_artifact_list_clear(&al);
	struct pilot_artifact meta = { 0 };
	int rfd = -1;
	CHECK_RC(pilot_api_get_artifact(c->api, r.id, "outputs/model.pt", 0, &rfd, &meta), 0, "get the artifact");
	CHECK(rfd >= 0 && fd_equals(rfd, "model-bytes", 11), "its bytes read back");
	if (rfd >= 0)
		close(rfd);
	pilot_artifact_clear(&meta);
	CHECK_RC(pilot_api_get_artifact(c->api, r.id, "nope", 0, &rfd, NULL), PILOT_ENOTFOUND, "an unknown path");
	pilot_claim_clear(&cl);
	pilot_run_clear(&r);
}

static void t_bundles(struct ctx *c)
{
	char data[64], sha[65];
	snprintf(data, sizeof(data), "bundle-%s", c->tag);
	pilot_sha256_hex(data, strlen(data), sha);
	CHECK_RC(pilot_api_bundle_has(c->api, sha), 0, "a new bundle is not there");
	int fd = tmpfile_with(data, strlen(data));
	char wrong[65];
	pilot_sha256_hex("other", 5, wrong);
	CHECK_RC(pilot_api_bundle_put(c->api, wrong, fd), PILOT_EINVALID, "a put whose bytes do not match the hash is refused");
	CHECK_RC(pilot_api_bundle_has(c->api, wrong), 0, "and stores nothing");
	lseek(fd, 0, SEEK_SET);
	CHECK_RC(pilot_api_bundle_put(c->api, sha, fd), 0, "put the bundle");
	lseek(fd, 0, SEEK_SET);
	CHECK_RC(pilot_api_bundle_put(c->api, sha, fd), 0, "putting it again is fine");
	close(fd);
	CHECK_RC(pilot_api_bundle_has(c->api, sha), 1, "now it is there");
	int rfd = -1;
	CHECK_RC(pilot_api_bundle_get(c->api, sha, &rfd), 0, "get it");
	CHECK(rfd >= 0 && fd_equals(rfd, data, strlen(data)), "the same bytes");
	if (rfd >= 0)
		close(rfd);
	CHECK_RC(pilot_api_bundle_get(c->api, wrong, &rfd), PILOT_ENOTFOUND, "an unknown bundle");
	struct pilot_submit_request q;
	struct pilot_run r = { 0 };
	req_init(c, &q);
	q.bundle_sha256 = sha;
	CHECK_RC(pilot_api_submit(c->api, &q, &r), 0, "submit with the bundle");
	CHECK(!strcmp(r.bundle_sha256, sha), "the run names its bundle");
	pilot_submit_request_clear(&q);
	pilot_run_clear(&r);
}

static void t_finish(struct ctx *c)
{
	struct pilot_run r = { 0 }, x = { 0 };
	struct pilot_claim cl = { 0 };
	submit(c, &r);
	claim(c, &cl);
	struct pilot_finish bad = { .state = PILOT_ATTEMPT_FAILED, .reason = PILOT_REASON_EXIT_CODE };
	CHECK_RC(pilot_api_finish(c->api, cl.attempt_id, cl.lease_token, &bad, &x), PILOT_EINVALID,
		 "failed with exit_code but no code is refused");
	bad.state = PILOT_ATTEMPT_LOST;
	bad.reason = PILOT_REASON_LOST;
	CHECK_RC(pilot_api_finish(c->api, cl.attempt_id, cl.lease_token, &bad, &x), PILOT_EINVALID,
		 "an agent cannot report its attempt lost");
	struct pilot_finish f = outcome(PILOT_ATTEMPT_FAILED, PILOT_REASON_EXIT_CODE, 3);
	CHECK_RC(pilot_api_finish(c->api, cl.attempt_id, "wrong", &f, &x), PILOT_ECONFLICT, "a wrong token is refused");
	CHECK(state_of(c, r.id) == PILOT_RUN_RUNNING, "and changes nothing");
	CHECK_RC(pilot_api_finish(c->api, cl.attempt_id, cl.lease_token, &f, &x), 0, "finish failed (exit 3)");
	CHECK(x.state == PILOT_RUN_FAILED && x.reason == PILOT_REASON_EXIT_CODE && x.has_exit_code && x.exit_code == 3,
	      "no retry asked: the run failed with exit_code 3");
	CHECK(x.finished_ms > 0 && x.nattempts == 1 && x.attempts[0].state == PILOT_ATTEMPT_FAILED &&
		      x.attempts[0].exit_code == 3 && x.attempts[0].finished_ms > 0,
	      "the attempt failed with its code and end time");
	pilot_run_clear(&x);
	CHECK_RC(pilot_api_finish(c->api, cl.attempt_id, cl.lease_token, &f, &x), 0, "the same finish again is acknowledged");
	CHECK(x.state == PILOT_RUN_FAILED, "and changes nothing");
	pilot_run_clear(&x);
	struct pilot_finish g = outcome(PILOT_ATTEMPT_SUCCEEDED, PILOT_REASON_EXIT_CODE, 0);
	CHECK_RC(pilot_api_finish(c->api, cl.attempt_id, cl.lease_token, &g, &x), PILOT_ECONFLICT,
		 "a different outcome for a finished attempt conflicts");
	CHECK_RC(pilot_api_heartbeat(c->api, cl.attempt_id, cl.lease_token, NULL), PILOT_ECONFLICT,
		 "a heartbeat after finish is refused");
	CHECK_RC(pilot_api_finish(c->api, "azzzzzzzzzzzzzz", "x", &g, &x), PILOT_ENOTFOUND, "an unknown attempt");
	CHECK(has_event(c, r.id, "finished"), "a 'finished' event");
	pilot_claim_clear(&cl);
	pilot_run_clear(&r);

	submit(c, &r);
	claim(c, &cl);
	CHECK_RC(pilot_api_finish(c->api, cl.attempt_id, cl.lease_token, &g, &x), 0, "finish succeeded");
	CHECK(x.state == PILOT_RUN_SUCCEEDED && x.reason == PILOT_REASON_EXIT_CODE && x.has_exit_code && x.exit_code == 0,
	      "the run succeeded (exit_code 0)");
	pilot_run_clear(&x);
	pilot_claim_clear(&cl);
	pilot_run_clear(&r);

	submit(c, &r);
	claim(c, &cl);
	struct pilot_finish rt = { .state = PILOT_ATTEMPT_FAILED, .reason = PILOT_REASON_RUNTIME_ERROR,
				   .message = "image 'nope' not found" };
	CHECK_RC(pilot_api_finish(c->api, cl.attempt_id, cl.lease_token, &rt, &x), 0, "finish with a runtime error");
	CHECK(x.state == PILOT_RUN_FAILED && x.reason == PILOT_REASON_RUNTIME_ERROR && !x.has_exit_code,
	      "failed (runtime_error), no exit code");
	CHECK(x.message && strstr(x.message, "image 'nope' not found"), "the message is kept");
	pilot_run_clear(&x);
	pilot_claim_clear(&cl);
	pilot_run_clear(&r);
}

static void t_retry_policy(struct ctx *c)
{
	struct pilot_submit_request q;
	struct pilot_run r = { 0 }, x = { 0 };
	req_init(c, &q);
	q.retry.max_attempts = 3;
	q.retry.on = PILOT_RETRY_ON_EXIT_CODE;
	q.retry.backoff_ms = 50;
	q.retry.max_backoff_ms = 80;
	pilot_api_submit(c->api, &q, &r);
	pilot_submit_request_clear(&q);
	for (int n = 1; n <= 3; n++) {
		struct pilot_claim cl = { 0 };
		int got = 0;
		int64_t end = pilot_mono_ms() + 5000;
		while ((got = claim(c, &cl)) == 0 && pilot_mono_ms() < end)
			sleep_ms(10);
		if (!CHECK(got == 1 && cl.attempt == n, "attempt %d is claimed", n))
			break;
		struct pilot_finish f = outcome(PILOT_ATTEMPT_FAILED, PILOT_REASON_EXIT_CODE, 10 + n);
		pilot_api_finish(c->api, cl.attempt_id, cl.lease_token, &f, &x);
		if (n < 3) {
			CHECK(x.state == PILOT_RUN_WAITING && x.reason == PILOT_REASON_NONE, "after failure %d the run waits", n);
			CHECK(x.not_before_ms > 0 && x.not_before_ms <= pilot_now_ms() + 80 + 50, "not_before within the cap");
		} else {
			CHECK(x.state == PILOT_RUN_FAILED && x.reason == PILOT_REASON_EXIT_CODE && x.exit_code == 13,
			      "after the third failure the run failed (exit 13)");
			CHECK(x.nattempts == 3, "three attempts recorded");
		}
		pilot_run_clear(&x);
		pilot_claim_clear(&cl);
	}
	CHECK(has_event(c, r.id, "retry_scheduled"), "'retry_scheduled' events");
	pilot_run_clear(&r);

	/* No backoff asked (PILOT_RETRY_AT_ONCE, pilot.yaml's backoff: 0): the next attempt
	 * may start at once; a request's zeros take the defaults, which the run shows. */
	req_init(c, &q);
	q.retry.max_attempts = 2;
	q.retry.on = PILOT_RETRY_ON_EXIT_CODE;
	q.retry.backoff_ms = PILOT_RETRY_AT_ONCE;
	CHECK_RC(pilot_api_submit(c->api, &q, &r), 0, "a policy with no backoff");
	pilot_submit_request_clear(&q);
	CHECK(r.retry.backoff_ms == 0 && r.retry.max_backoff_ms > 0, "the run holds backoff 0 (%lld, cap %lld)",
	      (long long)r.retry.backoff_ms, (long long)r.retry.max_backoff_ms);
	{
		struct pilot_claim c1 = { 0 };
		claim(c, &c1);
		struct pilot_finish f1 = outcome(PILOT_ATTEMPT_FAILED, PILOT_REASON_EXIT_CODE, 1);
		pilot_api_finish(c->api, c1.attempt_id, c1.lease_token, &f1, &x);
		CHECK(x.state == PILOT_RUN_WAITING && x.not_before_ms <= pilot_now_ms(), "retried with no wait");
		pilot_run_clear(&x);
		pilot_claim_clear(&c1);
		int got = claim(c, &c1);
		CHECK(got == 1 && c1.attempt == 2, "attempt 2 is claimed at once (%d, %d)", got, c1.attempt);
		if (got == 1) {
			f1 = outcome(PILOT_ATTEMPT_SUCCEEDED, PILOT_REASON_EXIT_CODE, 0);
			pilot_api_finish(c->api, c1.attempt_id, c1.lease_token, &f1, NULL);
		}
		pilot_claim_clear(&c1);
	}
	pilot_run_clear(&r);
	req_init(c, &q);
	q.retry.max_attempts = 2;
	CHECK_RC(pilot_api_submit(c->api, &q, &r), 0, "a policy that leaves the backoff to the defaults");
	pilot_submit_request_clear(&q);
	CHECK(r.retry.backoff_ms > 0 && r.retry.max_backoff_ms >= r.retry.backoff_ms,
	      "the run shows the defaults in force (%lld, cap %lld)", (long long)r.retry.backoff_ms,
	      (long long)r.retry.max_backoff_ms);
	pilot_api_cancel(c->api, r.id, NULL, PILOT_CANCEL_GRACE_AGENT, NULL);
	pilot_run_clear(&r);
	req_init(c, &q);
	q.retry.backoff_ms = -5;
	CHECK_RC(pilot_api_submit(c->api, &q, &r), PILOT_EINVALID, "any other negative backoff is refused");
	pilot_submit_request_clear(&q);

	/* A cause the policy does not name is not retried. */
	req_init(c, &q);
	q.retry.max_attempts = 3;
	q.retry.on = PILOT_RETRY_ON_EXIT_CODE;
	q.retry.backoff_ms = 10;
	pilot_api_submit(c->api, &q, &r);
	pilot_submit_request_clear(&q);
	struct pilot_claim cl = { 0 };
	claim(c, &cl);
	struct pilot_finish f = outcome(PILOT_ATTEMPT_FAILED, PILOT_REASON_TIMEOUT, 0);
	pilot_api_finish(c->api, cl.attempt_id, cl.lease_token, &f, &x);
	CHECK(x.state == PILOT_RUN_FAILED && x.reason == PILOT_REASON_TIMEOUT, "a timeout is not retried when only exit_code is");
	pilot_run_clear(&x);
	pilot_claim_clear(&cl);
	pilot_run_clear(&r);

	/* Timeouts retried when asked; cancel during the backoff. */
	req_init(c, &q);
	q.retry.max_attempts = 2;
	q.retry.on = PILOT_RETRY_ON_TIMEOUT;
	q.retry.backoff_ms = 60000;
	pilot_api_submit(c->api, &q, &r);
	pilot_submit_request_clear(&q);
	claim(c, &cl);
	pilot_api_finish(c->api, cl.attempt_id, cl.lease_token, &f, &x);
	CHECK(x.state == PILOT_RUN_WAITING, "a timeout is retried when asked");
	pilot_run_clear(&x);
	pilot_claim_clear(&cl);
	CHECK_RC(pilot_api_cancel(c->api, r.id, NULL, PILOT_CANCEL_GRACE_AGENT, &x), 0, "cancel during the backoff");
	CHECK(x.state == PILOT_RUN_CANCELED, "canceled at once");
	pilot_run_clear(&x);
	pilot_run_clear(&r);
}

static void t_retry_op(struct ctx *c)
{
	struct pilot_submit_request q;
	struct pilot_run r = { 0 }, n = { 0 };
	req_init(c, &q);
	q.params_json = "{\"a\":1}";
	pilot_kvs_set(&q.secrets, "TOKEN", "t0k");
	pilot_api_submit(c->api, &q, &r);
	pilot_submit_request_clear(&q);
	CHECK_RC(pilot_api_retry(c->api, r.id, "dave", &n), PILOT_ECONFLICT, "a queued run cannot be retried");
	pilot_api_cancel(c->api, r.id, NULL, PILOT_CANCEL_GRACE_AGENT, NULL);
	CHECK_RC(pilot_api_retry(c->api, r.id, "dave", &n), 0, "a finished run can");
	CHECK(strcmp(n.id, r.id) && n.state == PILOT_RUN_QUEUED, "a new queued run");
	CHECK(n.retry_of && !strcmp(n.retry_of, r.id), "that names the old one");
	CHECK(n.params_json && !strcmp(n.params_json, "{\"a\":1}") && !strcmp(n.name, c->name), "with the same params and name");
	CHECK(n.submitter && !strcmp(n.submitter, "dave"), "submitted by the retrier");
	CHECK(has_event(c, r.id, "retried"), "the old run records a 'retried' event");
	struct pilot_claim cl = { 0 };
	claim(c, &cl);
	const char *sv = pilot_kvs_get(&cl.run.secrets, "TOKEN");
	CHECK(!strcmp(cl.run.id, n.id) && sv && !strcmp(sv, "t0k"), "the new run carries the secrets");
	pilot_claim_clear(&cl);
	pilot_run_clear(&r);
	pilot_run_clear(&n);
}

static void t_lost_requeue_superseded(struct ctx *c)
{
	struct pilot_run r = { 0 }, g = { 0 };
	struct pilot_claim a = { 0 }, b = { 0 };
	submit(c, &r);
	claim(c, &a);
	pilot_api_append_log(c->api, a.attempt_id, a.lease_token, 0, "first\n", 6, NULL);
	/* The agent vanishes: no heartbeat. */
	sleep_ms(T->lease_ttl_ms + 100);
	enum pilot_run_state s = wait_leave(c, r.id, PILOT_RUN_RUNNING, T->lease_ttl_ms * 4 + 5000);
	CHECK(s == PILOT_RUN_QUEUED, "after the lease expires the run is requeued (%s)", pilot_run_state_name(s));
	pilot_api_get_run(c->api, r.id, &g);
	CHECK(g.nattempts == 1 && g.attempts[0].state == PILOT_ATTEMPT_LOST && g.attempts[0].reason == PILOT_REASON_LOST,
	      "the attempt is lost");
	CHECK(g.lost_count == 1, "lost count 1");
	pilot_run_clear(&g);
	CHECK(has_event(c, r.id, "lost"), "a 'lost' event");
	CHECK_RC(claim(c, &b), 1, "the run is claimed again");
	CHECK(b.attempt == 2 && !strcmp(b.run.id, r.id), "as attempt 2");

	/* The old agent comes back: every write of attempt 1 is refused and changes nothing. */
	struct pilot_heartbeat_reply hb = { 0 };
	CHECK_RC(pilot_api_heartbeat(c->api, a.attempt_id, a.lease_token, &hb), PILOT_ECONFLICT, "old heartbeat refused");
	CHECK(strstr(pilot_error_last(), "superseded") != NULL, "as superseded: %s", pilot_error_last());
	int64_t exp = -1;
	CHECK_RC(pilot_api_append_log(c->api, a.attempt_id, a.lease_token, 6, "second\n", 7, &exp), PILOT_ECONFLICT,
		 "old log append refused");
	struct pilot_metric m = { .json = "{\"x\":1}" };
	CHECK_RC(pilot_api_put_metrics(c->api, a.attempt_id, a.lease_token, 0, &m, 1, &exp), PILOT_ECONFLICT,
		 "old metrics refused");
	int fd = tmpfile_with("x", 1);
	CHECK_RC(pilot_api_put_artifact(c->api, a.attempt_id, a.lease_token, "old.txt", fd), PILOT_ECONFLICT,
		 "old artifact refused");
	close(fd);
	struct pilot_finish f = outcome(PILOT_ATTEMPT_SUCCEEDED, PILOT_REASON_EXIT_CODE, 0);
	CHECK_RC(pilot_api_finish(c->api, a.attempt_id, a.lease_token, &f, NULL), PILOT_ECONFLICT, "old finish refused");
	CHECK(strstr(pilot_error_last(), "superseded") != NULL, "as superseded");
	pilot_api_get_run(c->api, r.id, &g);
	CHECK(g.state == PILOT_RUN_RUNNING && g.attempt_count == 2, "the run is still running attempt 2");
	CHECK(g.nattempts == 2 && g.attempts[0].state == PILOT_ATTEMPT_LOST && g.attempts[0].log_bytes == 6,
	      "attempt 1 is still lost with its 6 log bytes");
	pilot_run_clear(&g);
	struct pilot_artifact_list al = { 0 };
	pilot_api_list_artifacts(c->api, r.id, 0, &al);
	CHECK(al.n == 0, "no artifact recorded");
	pilot_artifact_list_clear(&al);
	struct pilot_metric_list ml = { 0 };
	pilot_api_get_metrics(c->api, r.id, 0, &ml);
	CHECK(ml.n == 0, "no metrics recorded");
	pilot_metric_list_clear(&ml);
	struct pilot_log_chunk lc = { 0 };
	struct pilot_log_request lq = { .run = r.id, .attempt = 1 };
	pilot_api_read_logs(c->api, &lq, &lc);
	CHECK(lc.complete && lc.data.len == 6, "attempt 1's log is complete at 6 bytes");
	pilot_log_chunk_clear(&lc);
	/* The live attempt works normally. */
	CHECK_RC(pilot_api_heartbeat(c->api, b.attempt_id, b.lease_token, &hb), 0, "the new attempt's heartbeat works");
	struct pilot_run x = { 0 };
	CHECK_RC(pilot_api_finish(c->api, b.attempt_id, b.lease_token, &f, &x), 0, "the new attempt finishes");
	CHECK(x.state == PILOT_RUN_SUCCEEDED, "the run succeeded");
	pilot_run_clear(&x);
	pilot_claim_clear(&a);
	pilot_claim_clear(&b);
	pilot_run_clear(&r);
}

static void t_lost_limit(struct ctx *c)
{
	struct pilot_run r = { 0 }, g = { 0 };
	submit(c, &r);
	int max = T->max_lost;
	enum pilot_run_state s = PILOT_RUN_QUEUED;
	for (int i = 0; i <= max; i++) {
		struct pilot_claim cl = { 0 };
		if (!CHECK_RC(claim(c, &cl), 1, "claim %d", i + 1))
			break;
		pilot_claim_clear(&cl);
		sleep_ms(T->lease_ttl_ms + 50);
		s = wait_leave(c, r.id, PILOT_RUN_RUNNING, T->lease_ttl_ms * 4 + 5000);
		if (i < max)
			CHECK(s == PILOT_RUN_QUEUED, "loss %d requeues (%s)", i + 1, pilot_run_state_name(s));
	}
	pilot_api_get_run(c->api, r.id, &g);
	CHECK(g.state == PILOT_RUN_FAILED && g.reason == PILOT_REASON_LOST, "loss %d fails the run with reason lost", max + 1);
	CHECK(g.lost_count == max + 1 && g.nattempts == (size_t)max + 1, "every attempt was counted");
	pilot_run_clear(&g);

	/* Losses do not spend the retry budget: one allowed attempt survives a loss. */
	pilot_run_clear(&r);
	submit(c, &r);
	struct pilot_claim cl = { 0 };
	claim(c, &cl);
	pilot_claim_clear(&cl);
	sleep_ms(T->lease_ttl_ms + 50);
	wait_leave(c, r.id, PILOT_RUN_RUNNING, T->lease_ttl_ms * 4 + 5000);
	CHECK_RC(claim(c, &cl), 1, "a run with no retries is claimed again after a loss");
	struct pilot_finish f = outcome(PILOT_ATTEMPT_SUCCEEDED, PILOT_REASON_EXIT_CODE, 0);
	struct pilot_run x = { 0 };
	pilot_api_finish(c->api, cl.attempt_id, cl.lease_token, &f, &x);
	CHECK(x.state == PILOT_RUN_SUCCEEDED, "and can succeed");
	pilot_run_clear(&x);
	pilot_claim_clear(&cl);
	pilot_run_clear(&r);
}

/* pilot run's runs: held for their submitter, claimed by name, failed when lost. */
static void t_held_runs(struct ctx *c)
{
	struct pilot_submit_request q;
	struct pilot_run held = { 0 }, open = { 0 }, g = { 0 };
	req_init(c, &q);
	q.hold = true;
	q.priority = 90;
	CHECK_RC(pilot_api_submit(c->api, &q, &held), 0, "submit a held run");
	CHECK(held.held, "the run says it is held");
	q.hold = false;
	q.priority = 1;
	pilot_api_submit(c->api, &q, &open);
	pilot_submit_request_clear(&q);

	struct pilot_claim cl = { 0 };
	CHECK_RC(claim(c, &cl), 1, "an ordinary claim gets a run");
	CHECK(!strcmp(cl.run.id, open.id), "...the open one, not the held one of higher priority");
	pilot_claim_clear(&cl);
	CHECK_RC(claim(c, &cl), 0, "then nothing: the held run is not offered");

	struct pilot_claim_request nq = { .agent = "holder", .run = open.id };
	pilot_kvs_set(&nq.labels, "ct", c->tag);
	CHECK_RC(pilot_api_claim(c->api, &nq, &cl), 0, "a claim naming a run that is not queued gets nothing");
	nq.run = "rzzzzzzzzzzzzzz";
	CHECK_RC(pilot_api_claim(c->api, &nq, &cl), PILOT_ENOTFOUND, "a claim naming an unknown run is not found");
	nq.run = held.id;
	CHECK_RC(pilot_api_claim(c->api, &nq, &cl), 1, "a claim naming the held run gets it");
	CHECK(!strcmp(cl.run.id, held.id) && cl.attempt == 1, "attempt 1 of the held run");
	pilot_claim_request_clear(&nq);
	pilot_claim_clear(&cl);

	/* Nobody else may run it: a lost attempt ends it. */
	sleep_ms(T->lease_ttl_ms + 50);
	wait_leave(c, held.id, PILOT_RUN_RUNNING, T->lease_ttl_ms * 4 + 5000);
	pilot_api_get_run(c->api, held.id, &g);
	CHECK(g.state == PILOT_RUN_FAILED && g.reason == PILOT_REASON_LOST, "a lost held run fails (lost), not requeued (%s)",
	      pilot_run_state_name(g.state));
	pilot_run_clear(&g);
	pilot_run_clear(&held);
	pilot_run_clear(&open);
}

static void t_lost_while_canceling(struct ctx *c)
{
	struct pilot_run r = { 0 };
	struct pilot_claim cl = { 0 };
	submit(c, &r);
	claim(c, &cl);
	pilot_api_cancel(c->api, r.id, NULL, PILOT_CANCEL_GRACE_AGENT, NULL);
	sleep_ms(T->lease_ttl_ms + 50);
	enum pilot_run_state s = wait_leave(c, r.id, PILOT_RUN_CANCELING, T->lease_ttl_ms * 4 + 5000);
	CHECK(s == PILOT_RUN_CANCELED, "a canceling run whose agent vanished ends canceled (%s)", pilot_run_state_name(s));
	pilot_claim_clear(&cl);
	pilot_run_clear(&r);
}

static void t_heartbeat_keeps_lease(struct ctx *c)
{
	struct pilot_run r = { 0 };
	struct pilot_claim cl = { 0 };
	submit(c, &r);
	claim(c, &cl);
	int64_t end = pilot_mono_ms() + T->lease_ttl_ms * 3;
	bool ok = true;
	while (pilot_mono_ms() < end) {
		ok &= pilot_api_heartbeat(c->api, cl.attempt_id, cl.lease_token, NULL) == 0;
		pilot_api_reap(c->api);
		sleep_ms(T->lease_ttl_ms / 4);
	}
	CHECK(ok, "heartbeats succeed for three TTLs");
	CHECK(state_of(c, r.id) == PILOT_RUN_RUNNING, "a heartbeating attempt is not reaped");
	pilot_claim_clear(&cl);
	pilot_run_clear(&r);
}

static void t_timeout_backstop(struct ctx *c)
{
	struct pilot_submit_request q;
	struct pilot_run r = { 0 }, g = { 0 };
	struct pilot_claim cl = { 0 };
	req_init(c, &q);
	q.timeout_ms = 100;
	pilot_api_submit(c->api, &q, &r);
	pilot_submit_request_clear(&q);
	claim(c, &cl);
	/* The agent heartbeats but never enforces the timeout. */
	int64_t end = pilot_mono_ms() + 100 + T->timeout_grace_ms + T->lease_ttl_ms * 4 + 5000;
	while (pilot_mono_ms() < end) {
		pilot_api_heartbeat(c->api, cl.attempt_id, cl.lease_token, NULL);
		pilot_api_reap(c->api);
		if (state_of(c, r.id) != PILOT_RUN_RUNNING)
			break;
		sleep_ms(T->lease_ttl_ms / 4 < 50 ? T->lease_ttl_ms / 4 : 50);
	}
	pilot_api_get_run(c->api, r.id, &g);
	CHECK(g.state == PILOT_RUN_FAILED && g.reason == PILOT_REASON_TIMEOUT, "past timeout + grace the run fails (timeout): %s %s",
	      pilot_run_state_name(g.state), pilot_reason_name(g.reason));
	CHECK(g.nattempts == 1 && g.attempts[0].state == PILOT_ATTEMPT_FAILED && g.attempts[0].reason == PILOT_REASON_TIMEOUT,
	      "the attempt failed (timeout)");
	pilot_run_clear(&g);
	CHECK(has_event(c, r.id, "timeout"), "a 'timeout' event");
	CHECK_RC(pilot_api_heartbeat(c->api, cl.attempt_id, cl.lease_token, NULL), PILOT_ECONFLICT,
		 "the agent's next heartbeat is refused");
	pilot_claim_clear(&cl);
	pilot_run_clear(&r);
}

static void t_events(struct ctx *c)
{
	struct pilot_event_list l = { 0 };
	CHECK_RC(pilot_api_list_events(c->api, NULL, 0, &l), 0, "list all events");
	int64_t base = 0;
	pilot_event_list_clear(&l);
	/* Find the current end. */
	for (;;) {
		struct pilot_event_filter f = { .after_seq = base, .limit = 1000 };
		pilot_api_list_events(c->api, &f, 0, &l);
		bool more = l.n == 1000;
		base = l.last_seq;
		pilot_event_list_clear(&l);
		if (!more)
			break;
	}
	struct pilot_run r = { 0 };
	struct pilot_claim cl = { 0 };
	submit(c, &r);
	claim(c, &cl);
	struct pilot_finish f = outcome(PILOT_ATTEMPT_SUCCEEDED, PILOT_REASON_EXIT_CODE, 0);
	pilot_api_finish(c->api, cl.attempt_id, cl.lease_token, &f, NULL);
	struct pilot_event_filter fr = { .run = r.id };
	CHECK_RC(pilot_api_list_events(c->api, &fr, 0, &l), 0, "list a run's events");
	CHECK(l.n == 3, "submitted, claimed, finished (%zu)", l.n);
	if (l.n == 3) {
		CHECK(!strcmp(l.items[0].type, "submitted") && l.items[0].state == PILOT_RUN_QUEUED, "1: submitted, queued");
		CHECK(!strcmp(l.items[1].type, "claimed") && l.items[1].state == PILOT_RUN_RUNNING && l.items[1].attempt == 1 &&
			      !strcmp(l.items[1].actor, c->agent),
		      "2: claimed by the agent, running, attempt 1");
		CHECK(!strcmp(l.items[2].type, "finished") && l.items[2].state == PILOT_RUN_SUCCEEDED, "3: finished, succeeded");
		CHECK(l.items[0].seq < l.items[1].seq && l.items[1].seq < l.items[2].seq, "seq increases");
		CHECK(l.items[1].data_json && strstr(l.items[1].data_json, "\"from\":\"queued\"") &&
			      strstr(l.items[1].data_json, "\"to\":\"running\""),
		      "transition events carry from/to");
		CHECK(l.items[0].time_ms > 0 && l.items[0].message, "time and message");
		CHECK(l.last_seq == l.items[2].seq, "last_seq is the cursor");
	}
	pilot_event_list_clear(&l);
	struct pilot_event_filter fa = { .after_seq = base, .limit = 2 };
	pilot_api_list_events(c->api, &fa, 0, &l);
	CHECK(l.n == 2 && l.items[0].seq > base, "all events after a cursor, limited");
	int64_t cur = l.last_seq;
	pilot_event_list_clear(&l);
	fa.after_seq = cur;
	fa.limit = 0;
	pilot_api_list_events(c->api, &fa, 0, &l);
	CHECK(l.n >= 1 && l.items[0].seq > cur, "the next page continues after it");
	pilot_event_list_clear(&l);

	/* Waiting: an event written by another process wakes the reader. */
	struct pilot_event_filter fw = { .run = r.id, .after_seq = 0 };
	pilot_api_list_events(c->api, &fw, 0, &l);
	fw.after_seq = l.last_seq;
	pilot_event_list_clear(&l);
	pid_t pid = fork();
	if (pid == 0) {
		sleep_ms(300);
		struct pilot_api *api = T->open(T->ud);
		int st = api && pilot_api_retry(api, r.id, NULL, NULL) == 0 ? 0 : 1;
		pilot_api_close(api);
		_exit(st);
	}
	int64_t t0 = pilot_mono_ms();
	CHECK_RC(pilot_api_list_events(c->api, &fw, 10000, &l), 0, "a waiting event read");
	CHECK(l.n == 1 && !strcmp(l.items[0].type, "retried"), "returns the new event");
	CHECK(pilot_mono_ms() - t0 < 9000, "before the timeout");
	waitpid(pid, NULL, 0);
	fw.after_seq = l.last_seq;
	pilot_event_list_clear(&l);
	t0 = pilot_mono_ms();
	CHECK_RC(pilot_api_list_events(c->api, &fw, 200, &l), 0, "a waiting read with nothing new");
	CHECK(l.n == 0 && l.last_seq == fw.after_seq && pilot_mono_ms() - t0 >= 150, "empty after the wait, cursor kept");
	pilot_event_list_clear(&l);
	pilot_claim_clear(&cl);
	pilot_run_clear(&r);
}

static void t_agents_status(struct ctx *c)
{
	struct pilot_status s0 = { 0 }, s1 = { 0 };
	CHECK_RC(pilot_api_status(c->api, &s0), 0, "status");
	CHECK(s0.version && *s0.version && s0.now_ms > 0, "with a version and the time");
	struct pilot_agent_info info = { .name = c->agent, .version = "9.9", .capacity = 2 };
	pilot_kvs_set(&info.labels, "ct", c->tag);
	CHECK_RC(pilot_api_register_agent(c->api, &info), 0, "register an agent");
	info.name = (char *)"bad name";
	CHECK_RC(pilot_api_register_agent(c->api, &info), PILOT_EINVALID, "a name with a space is refused");
	pilot_kvs_clear(&info.labels);
	struct pilot_agent_list al = { 0 };
	pilot_api_list_agents(c->api, &al);
	struct pilot_agent_info *me = NULL;
	for (size_t i = 0; i < al.n; i++)
		if (!strcmp(al.items[i].name, c->agent))
			me = &al.items[i];
	CHECK(me && me->state == PILOT_AGENT_IDLE && me->capacity == 2 && me->version && !strcmp(me->version, "9.9"),
	      "listed idle with its capacity and version");
	CHECK(me && pilot_kvs_get(&me->labels, "ct") && !strcmp(pilot_kvs_get(&me->labels, "ct"), c->tag), "and its labels");
	pilot_agent_list_clear(&al);
	struct pilot_run r = { 0 };
	struct pilot_claim cl = { 0 };
	submit(c, &r);
	pilot_api_status(c->api, &s1);
	CHECK(s1.counts[PILOT_RUN_QUEUED] >= 1 && s1.oldest_queued_ms > 0, "status counts the queued run");
	pilot_status_clear(&s1);
	claim(c, &cl);
	pilot_api_list_agents(c->api, &al);
	me = NULL;
	for (size_t i = 0; i < al.n; i++)
		if (!strcmp(al.items[i].name, c->agent))
			me = &al.items[i];
	CHECK(me && me->state == PILOT_AGENT_BUSY && me->nruns == 1 && !strcmp(me->runs[0], r.id), "busy with the run");
	pilot_agent_list_clear(&al);
	struct pilot_finish f = outcome(PILOT_ATTEMPT_SUCCEEDED, PILOT_REASON_EXIT_CODE, 0);
	pilot_api_finish(c->api, cl.attempt_id, cl.lease_token, &f, NULL);
	pilot_api_status(c->api, &s1);
	CHECK(s1.counts[PILOT_RUN_SUCCEEDED] == s0.counts[PILOT_RUN_SUCCEEDED] + 1, "status counts the success");
	pilot_status_clear(&s1);
	CHECK_RC(pilot_api_agent_leave(c->api, c->agent), 0, "the agent leaves");
	pilot_api_list_agents(c->api, &al);
	me = NULL;
	for (size_t i = 0; i < al.n; i++)
		if (!strcmp(al.items[i].name, c->agent))
			me = &al.items[i];
	CHECK(me && me->state == PILOT_AGENT_OFFLINE, "and is gone");
	pilot_agent_list_clear(&al);
	pilot_status_clear(&s0);
	pilot_claim_clear(&cl);
	pilot_run_clear(&r);
}

/* ---- runs that wait for others (submit --after) ---- */

/* Submit a run of c's labels that waits for `after` (RUN or RUN:STATES). */
static int submit_after(struct ctx *c, const char *after, struct pilot_run *out)
{
	struct pilot_submit_request q;
	req_init(c, &q);
	q.after = pilot_xcalloc(1, sizeof(*q.after));
	q.nafter = 1;
	if (pilot_run_need_parse(after, q.after) < 0) {
		pilot_submit_request_clear(&q);
		return pilot_error_code();
	}
	int r = pilot_api_submit(c->api, &q, out);
	pilot_submit_request_clear(&q);
	return r;
}

/* Claim (waiting up to 5 s for a long-poll or a local poll) and finish the next run
 * with st; its id goes to id. */
static bool run_once(struct ctx *c, enum pilot_attempt_state st, char id[PILOT_ID_SIZE])
{
	struct pilot_claim cl = { 0 };
	int64_t end = pilot_mono_ms() + 5000;
	int got;
	while ((got = claim(c, &cl)) == 0 && pilot_mono_ms() < end)
		sleep_ms(10);
	if (got != 1)
		return false;
	memcpy(id, cl.run.id, PILOT_ID_SIZE);
	struct pilot_finish f = outcome(st, st == PILOT_ATTEMPT_SUCCEEDED ? PILOT_REASON_EXIT_CODE
					    : st == PILOT_ATTEMPT_CANCELED ? PILOT_REASON_CANCELED
									   : PILOT_REASON_EXIT_CODE,
					st == PILOT_ATTEMPT_SUCCEEDED ? 0 : 1);
	int r = pilot_api_finish(c->api, cl.attempt_id, cl.lease_token, &f, NULL);
	pilot_claim_clear(&cl);
	return r == 0;
}

static void t_after(struct ctx *c)
{
	struct pilot_run a = { 0 }, b = { 0 }, x = { 0 };
	char id[PILOT_ID_SIZE];
	submit(c, &a);
	CHECK_RC(submit_after(c, a.id, &b), 0, "submit a run that waits for another");
	CHECK(b.state == PILOT_RUN_WAITING && b.needs_left == 1 && b.nneeds == 1 && !strcmp(b.needs[0].run, a.id) &&
		      b.needs[0].states == PILOT_RUN_STATE_BIT(PILOT_RUN_SUCCEEDED),
	      "it waits for it to succeed (needs_left 1)");
	CHECK(run_once(c, PILOT_ATTEMPT_SUCCEEDED, id) && !strcmp(id, a.id), "the run it waits for is claimed first");
	CHECK(state_of(c, b.id) == PILOT_RUN_QUEUED, "it succeeded: the waiting run is queued at once");
	CHECK(has_event(c, b.id, "needs_met"), "with a 'needs_met' event");
	CHECK(run_once(c, PILOT_ATTEMPT_SUCCEEDED, id) && !strcmp(id, b.id), "and claimed next");
	pilot_api_get_run(c->api, b.id, &x);
	CHECK(x.needs_left == 0 && x.state == PILOT_RUN_SUCCEEDED, "needs_left 0 when it ran");
	pilot_run_clear(&x);
	pilot_run_clear(&a);
	pilot_run_clear(&b);

	/* A prefix is resolved; a run already ended as asked lets the new one go at once. */
	submit(c, &a);
	CHECK(run_once(c, PILOT_ATTEMPT_SUCCEEDED, id), "a run succeeds");
	char prefix[12];
	snprintf(prefix, sizeof(prefix), "%.11s", a.id);
	CHECK_RC(submit_after(c, prefix, &b), 0, "wait for an ended run by a prefix of its id");
	CHECK(b.state == PILOT_RUN_QUEUED && b.needs_left == 0 && b.nneeds == 1 && !strcmp(b.needs[0].run, a.id),
	      "it is queued at once, the full id recorded");
	CHECK(run_once(c, PILOT_ATTEMPT_SUCCEEDED, id), "and runs");
	pilot_run_clear(&a);
	pilot_run_clear(&b);

	CHECK_RC(submit_after(c, "rzzzzzzzzzzzzzz", &b), PILOT_ENOTFOUND, "waiting for an unknown run");
	CHECK(strstr(pilot_error_last(), "rzzzzzzzzzzzzzz") != NULL, "names it");
	submit(c, &a);
	struct pilot_submit_request q;
	req_init(c, &q);
	q.after = pilot_xcalloc(2, sizeof(*q.after));
	q.nafter = 2;
	pilot_run_need_parse(a.id, &q.after[0]);
	pilot_run_need_parse(a.id, &q.after[1]);
	CHECK_RC(pilot_api_submit(c->api, &q, &b), PILOT_EINVALID, "the same run named twice");
	q.nafter = 1;
	q.after[0].states = PILOT_RUN_STATE_BIT(PILOT_RUN_RUNNING);
	CHECK_RC(pilot_api_submit(c->api, &q, &b), PILOT_EINVALID, "waiting for a state that is not an end");
	pilot_submit_request_clear(&q);
	CHECK_RC(pilot_api_cancel(c->api, a.id, NULL, PILOT_CANCEL_GRACE_AGENT, NULL), 0, "(clean up)");
	pilot_run_clear(&a);
}

/* A need that ends otherwise than asked fails its waiters at once, and theirs in turn;
 * "any" accepts every end; a cancel fans out the same way. */
static void t_after_fail_fast(struct ctx *c)
{
	struct pilot_run a = { 0 }, b = { 0 }, d = { 0 }, e = { 0 }, x = { 0 };
	char id[PILOT_ID_SIZE];
	submit(c, &a);
	submit_after(c, a.id, &b);
	char b_failed[PILOT_ID_SIZE + 8];
	snprintf(b_failed, sizeof(b_failed), "%s:failed", b.id);
	submit_after(c, b.id, &d);
	submit_after(c, b_failed, &e);
	CHECK(b.state == PILOT_RUN_WAITING && d.state == PILOT_RUN_WAITING && e.state == PILOT_RUN_WAITING,
	      "a chain of three waits");
	CHECK(run_once(c, PILOT_ATTEMPT_FAILED, id) && !strcmp(id, a.id), "the first run fails");
	pilot_api_get_run(c->api, b.id, &x);
	CHECK(x.state == PILOT_RUN_FAILED && x.reason == PILOT_REASON_DEPENDENCY_FAILED && x.message &&
		      strstr(x.message, a.id),
	      "its waiter failed at once (dependency_failed), naming it: %s", x.message ? x.message : "");
	pilot_run_clear(&x);
	CHECK(state_of(c, d.id) == PILOT_RUN_FAILED, "the waiter's waiter failed too");
	CHECK(state_of(c, e.id) == PILOT_RUN_QUEUED, "one that waits for a failure is queued");
	CHECK(has_event(c, b.id, "dependency_failed"), "a 'dependency_failed' event");
	CHECK(run_once(c, PILOT_ATTEMPT_SUCCEEDED, id) && !strcmp(id, e.id), "and it runs");
	struct pilot_claim cl = { 0 };
	CHECK_RC(claim(c, &cl), 0, "nothing else is left to claim");
	pilot_run_clear(&a);
	pilot_run_clear(&b);
	pilot_run_clear(&d);
	pilot_run_clear(&e);

	/* Submitted after its need already failed: failed at once. */
	submit(c, &a);
	CHECK(run_once(c, PILOT_ATTEMPT_FAILED, id), "a run fails");
	CHECK_RC(submit_after(c, a.id, &b), 0, "submit a run waiting for it to succeed");
	CHECK(b.state == PILOT_RUN_FAILED && b.reason == PILOT_REASON_DEPENDENCY_FAILED, "failed at once");
	char any[PILOT_ID_SIZE + 8];
	snprintf(any, sizeof(any), "%s:any", a.id);
	CHECK_RC(submit_after(c, any, &d), 0, "one that waits for any end");
	CHECK(d.state == PILOT_RUN_QUEUED, "is queued at once");
	CHECK(run_once(c, PILOT_ATTEMPT_SUCCEEDED, id), "(it runs)");
	pilot_run_clear(&a);
	pilot_run_clear(&b);
	pilot_run_clear(&d);

	/* Cancel fan-out: canceling a waited-for run (queued or waiting) fails its waiters;
	 * canceling a waiter leaves the run it waited for alone. */
	submit(c, &a);
	submit_after(c, a.id, &b);
	submit_after(c, b.id, &d);
	CHECK_RC(pilot_api_cancel(c->api, d.id, NULL, PILOT_CANCEL_GRACE_AGENT, NULL), 0, "cancel the last waiter");
	CHECK(state_of(c, b.id) == PILOT_RUN_WAITING && state_of(c, a.id) == PILOT_RUN_QUEUED,
	      "the runs it waited for go on");
	CHECK_RC(pilot_api_cancel(c->api, a.id, NULL, PILOT_CANCEL_GRACE_AGENT, NULL), 0, "cancel the first run");
	pilot_api_get_run(c->api, b.id, &x);
	CHECK(x.state == PILOT_RUN_FAILED && x.reason == PILOT_REASON_DEPENDENCY_FAILED && x.message &&
		      strstr(x.message, "canceled"),
	      "its waiter failed: %s", x.message ? x.message : "");
	pilot_run_clear(&x);
	CHECK(state_of(c, d.id) == PILOT_RUN_CANCELED, "the canceled waiter stays canceled");
	pilot_run_clear(&a);
	pilot_run_clear(&b);
	pilot_run_clear(&d);
}

/* ---- concurrency groups ---- */

/* Submit a run of c's labels in group (named after c's tag) with max and priority,
 * waiting for `after` when not NULL. */
static int submit_group(struct ctx *c, int max, int priority, const char *after, struct pilot_run *out)
{
	struct pilot_submit_request q;
	char group[32];
	snprintf(group, sizeof(group), "g-%s", c->tag);
	req_init(c, &q);
	q.concurrency_group = group;
	q.concurrency_max = max;
	q.priority = priority;
	if (after) {
		q.after = pilot_xcalloc(1, sizeof(*q.after));
		q.nafter = 1;
		pilot_run_need_parse(after, q.after);
	}
	int r = pilot_api_submit(c->api, &q, out);
	pilot_submit_request_clear(&q);
	return r;
}

static bool slot_waiting(struct ctx *c, const char *id)
{
	struct pilot_run r = { 0 };
	bool w = pilot_api_get_run(c->api, id, &r) == 0 && r.state == PILOT_RUN_WAITING && r.slot_wait;
	pilot_run_clear(&r);
	return w;
}

/* At most max runs of a group are queued or running; the others wait for a slot and
 * take the ones that come free, best priority first; a cancel frees a slot too. */
static void t_concurrency(struct ctx *c)
{
	struct pilot_run r[6] = { 0 };
	struct pilot_claim cl = { 0 }, cl2 = { 0 };
	char id[PILOT_ID_SIZE];
	for (int i = 0; i < 4; i++)
		CHECK_RC(submit_group(c, 2, 0, NULL, &r[i]), 0, "submit run %d of a group of at most 2", i + 1);
	CHECK(r[0].state == PILOT_RUN_QUEUED && r[1].state == PILOT_RUN_QUEUED, "the first two are queued");
	CHECK(r[2].state == PILOT_RUN_WAITING && r[2].slot_wait && r[3].state == PILOT_RUN_WAITING && r[3].slot_wait,
	      "the other two wait for a slot");
	CHECK(r[2].concurrency_group && !strncmp(r[2].concurrency_group, "g-", 2) && r[2].concurrency_max == 2,
	      "a run shows its group and max");
	CHECK_RC(claim(c, &cl), 1, "claim one");
	CHECK_RC(claim(c, &cl2), 1, "claim the other");
	struct pilot_claim none = { 0 };
	CHECK_RC(claim(c, &none), 0, "nothing more: the group is full");
	pilot_claim_clear(&none);
	struct pilot_finish ok = outcome(PILOT_ATTEMPT_SUCCEEDED, PILOT_REASON_EXIT_CODE, 0);
	CHECK_RC(pilot_api_finish(c->api, cl.attempt_id, cl.lease_token, &ok, NULL), 0, "one ends");
	CHECK(state_of(c, r[2].id) == PILOT_RUN_QUEUED && !slot_waiting(c, r[2].id),
	      "the oldest waiting run took its slot at once");
	CHECK(has_event(c, r[2].id, "slot_free"), "with a 'slot_free' event");
	CHECK(slot_waiting(c, r[3].id), "the last still waits");
	CHECK_RC(pilot_api_cancel(c->api, r[2].id, NULL, PILOT_CANCEL_GRACE_AGENT, NULL), 0, "cancel the queued one");
	CHECK(state_of(c, r[3].id) == PILOT_RUN_QUEUED, "its slot went to the last");

	/* Waiting runs go by priority, then age. */
	CHECK_RC(submit_group(c, 2, 0, NULL, &r[4]), 0, "a low-priority run");
	CHECK_RC(submit_group(c, 2, 10, NULL, &r[5]), 0, "a high-priority run");
	CHECK(slot_waiting(c, r[4].id) && slot_waiting(c, r[5].id), "both wait");
	CHECK_RC(pilot_api_finish(c->api, cl2.attempt_id, cl2.lease_token, &ok, NULL), 0, "a running one ends");
	CHECK(state_of(c, r[5].id) == PILOT_RUN_QUEUED && slot_waiting(c, r[4].id), "the higher priority goes first");
	CHECK(run_once(c, PILOT_ATTEMPT_FAILED, id), "a run fails");
	CHECK(state_of(c, r[4].id) == PILOT_RUN_QUEUED, "a failure frees its slot too");
	for (int i = 0; i < 2; i++)
		CHECK(run_once(c, PILOT_ATTEMPT_SUCCEEDED, id), "(the rest run)");
	CHECK_RC(claim(c, &none), 0, "nothing is left");
	pilot_claim_clear(&cl);
	pilot_claim_clear(&cl2);
	for (int i = 0; i < 6; i++)
		pilot_run_clear(&r[i]);

	/* A run that waits for another takes a slot only once that one succeeded, and
	 * waits for it then if the group is full. */
	struct pilot_run a = { 0 }, b = { 0 }, w = { 0 }, x = { 0 };
	submit(c, &a);
	CHECK_RC(submit_group(c, 1, 0, a.id, &w), 0, "a run of a group of 1 that waits for another");
	CHECK(w.state == PILOT_RUN_WAITING && !w.slot_wait && w.needs_left == 1, "it waits for that run, not a slot");
	CHECK_RC(submit_group(c, 1, 0, NULL, &b), 0, "another run of the group");
	CHECK(b.state == PILOT_RUN_QUEUED, "takes the slot");
	CHECK(run_once(c, PILOT_ATTEMPT_SUCCEEDED, id) && !strcmp(id, a.id), "the run waited for succeeds");
	CHECK(slot_waiting(c, w.id), "the waiter now waits for a slot");
	CHECK(has_event(c, w.id, "slot_wait"), "with a 'slot_wait' event");
	CHECK(run_once(c, PILOT_ATTEMPT_SUCCEEDED, id) && !strcmp(id, b.id), "the slot's holder ends");
	CHECK(run_once(c, PILOT_ATTEMPT_SUCCEEDED, id) && !strcmp(id, w.id), "the waiter runs");
	CHECK_RC(pilot_api_retry(c->api, w.id, NULL, &x), 0, "retry it");
	CHECK(x.concurrency_group && x.concurrency_max == 1 && x.state == PILOT_RUN_QUEUED, "the retry is in the group");
	CHECK(run_once(c, PILOT_ATTEMPT_SUCCEEDED, id), "(it runs)");
	pilot_run_clear(&a);
	pilot_run_clear(&b);
	pilot_run_clear(&w);
	pilot_run_clear(&x);

	struct pilot_submit_request q;
	req_init(c, &q);
	q.concurrency_group = "g";
	q.concurrency_max = 0;
	CHECK_RC(pilot_api_submit(c->api, &q, &a), PILOT_EINVALID, "a max of 0");
	q.concurrency_max = 1;
	q.concurrency_group = "Bad Group";
	CHECK_RC(pilot_api_submit(c->api, &q, &a), PILOT_EINVALID, "a group name that is not a name");
	CHECK(strstr(pilot_error_last(), "Bad Group") != NULL, "names it");
	pilot_submit_request_clear(&q);
}

/* A retry waiting for its backoff keeps its slot: the group does not start another. */
static void t_concurrency_retry(struct ctx *c)
{
	struct pilot_run a = { 0 }, b = { 0 };
	char group[32];
	snprintf(group, sizeof(group), "g-%s", c->tag);
	struct pilot_submit_request q;
	req_init(c, &q);
	q.concurrency_group = group;
	q.concurrency_max = 1;
	q.retry.max_attempts = 2;
	q.retry.on = PILOT_RETRY_ON_EXIT_CODE;
	q.retry.backoff_ms = 300;
	q.retry.max_backoff_ms = 300;
	CHECK_RC(pilot_api_submit(c->api, &q, &a), 0, "a run of a group of 1 with a retry");
	pilot_submit_request_clear(&q);
	CHECK_RC(submit_group(c, 1, 0, NULL, &b), 0, "another of the group");
	char id[PILOT_ID_SIZE];
	CHECK(run_once(c, PILOT_ATTEMPT_FAILED, id) && !strcmp(id, a.id), "the first fails once");
	CHECK(state_of(c, a.id) == PILOT_RUN_WAITING && slot_waiting(c, b.id), "it waits to retry; the other still waits");
	CHECK(run_once(c, PILOT_ATTEMPT_SUCCEEDED, id) && !strcmp(id, a.id), "the retry runs, in its slot");
	CHECK(run_once(c, PILOT_ATTEMPT_SUCCEEDED, id) && !strcmp(id, b.id), "then the other");
	pilot_run_clear(&a);
	pilot_run_clear(&b);
}

/* ---- arrays ---- */

static void array_req(struct ctx *c, struct pilot_array_request *q, size_t n, int throttle)
{
	memset(q, 0, sizeof(*q));
	req_init(c, &q->base);
	q->nelements = n;
	q->throttle = throttle;
	q->elements = pilot_xcalloc(n, sizeof(*q->elements));
	for (size_t i = 0; i < n; i++)
		q->elements[i].index = (int64_t)i * 10;
}

/* An array is made whole in one call: its runs carry its id and their index, one
 * element may have its own spec and params, the throttle holds back the rest, a
 * replay returns the same array, and a bad element refuses the whole array. */
static void t_array(struct ctx *c)
{
	struct pilot_array_request q;
	struct pilot_array a = { 0 }, b = { 0 };
	array_req(c, &q, 5, 2);
	q.elements[3].spec_json = "{\"name\":\"ct\",\"command\":[\"echo\",\"30\"]}";
	q.elements[3].params_json = "{\"i\":\"30\"}";
	char key[40];
	snprintf(key, sizeof(key), "array-%s", c->tag);
	q.base.idempotency_key = key;
	CHECK_RC(pilot_api_submit_array(c->api, &q, &a), 0, "submit an array of 5, at most 2 at once");
	CHECK(a.id[0] == 'x' && a.nruns == 5 && a.throttle == 2 && a.name && !strcmp(a.name, c->name),
	      "an array id, its name, throttle and 5 runs");
	CHECK_RC(pilot_api_submit_array(c->api, &q, &b), 1, "the same key and payload again: a replay");
	CHECK(!strcmp(a.id, b.id) && b.nruns == 5, "of the same array");
	pilot_array_clear(&b);
	struct pilot_run r = { 0 };
	if (a.nruns == 5) {
		CHECK_RC(pilot_api_get_run(c->api, a.runs[3], &r), 0, "get the fourth run");
		CHECK(!strcmp(r.array_id, a.id) && r.array_index == 30, "it knows its array and index");
		CHECK(r.spec_json && strstr(r.spec_json, "\"30\"") && r.params_json && strstr(r.params_json, "30"),
		      "its own spec and params");
		CHECK(r.state == PILOT_RUN_WAITING && r.slot_wait, "it waits for a slot of the array");
		pilot_run_clear(&r);
		CHECK(state_of(c, a.runs[0]) == PILOT_RUN_QUEUED && state_of(c, a.runs[1]) == PILOT_RUN_QUEUED,
		      "the first two are queued");
	}
	struct pilot_run_filter f = { .array = a.id, .limit = 100 };
	struct pilot_run_list l = { 0 };
	CHECK_RC(pilot_api_list_runs(c->api, &f, &l), 0, "list the array's runs");
	CHECK(l.n == 5, "all five (%zu)", l.n);
	pilot_run_list_clear(&l);
	char id[PILOT_ID_SIZE];
	int ran = 0, most = 0;
	for (int i = 0; i < 5; i++) {
		struct pilot_run_filter fq = { .array = a.id, .states = PILOT_RUN_STATE_BIT(PILOT_RUN_QUEUED) };
		if (pilot_api_list_runs(c->api, &fq, &l) == 0 && (int)l.n > most)
			most = (int)l.n;
		pilot_run_list_clear(&l);
		ran += run_once(c, PILOT_ATTEMPT_SUCCEEDED, id);
	}
	CHECK(ran == 5 && most == 2, "every run ran, never more than two queued at once (%d runs, %d)", ran, most);
	pilot_array_clear(&a);

	q.elements[3].spec_json = NULL;
	q.elements[3].params_json = NULL;
	q.base.idempotency_key = NULL;
	q.elements[4].index = 0;
	CHECK_RC(pilot_api_submit_array(c->api, &q, &a), PILOT_EINVALID, "an index given twice");
	q.elements[4].index = 40;
	q.elements[2].spec_json = "{\"name\":\"ct\",\"command\":\"echo\"}";
	CHECK_RC(pilot_api_submit_array(c->api, &q, &a), PILOT_EINVALID, "an element whose spec no agent could run");
	CHECK(strstr(pilot_error_last(), "element 20") != NULL, "names it: %s", pilot_error_last());
	q.elements[2].spec_json = NULL;
	q.throttle = -1;
	CHECK_RC(pilot_api_submit_array(c->api, &q, &a), PILOT_EINVALID, "a negative throttle");
	q.throttle = 0;
	q.nelements = 0;
	CHECK_RC(pilot_api_submit_array(c->api, &q, &a), PILOT_EINVALID, "no elements");
	struct pilot_claim none = { 0 };
	CHECK_RC(claim(c, &none), 0, "nothing of the refused arrays was queued");
	q.nelements = 5;
	pilot_array_request_clear(&q);
}

/* Every element waits for the runs the array waits for, and a failure fails them all. */
static void t_array_after(struct ctx *c)
{
	struct pilot_run a = { 0 };
	struct pilot_array arr = { 0 };
	struct pilot_array_request q;
	char id[PILOT_ID_SIZE];
	submit(c, &a);
	array_req(c, &q, 3, 0);
	q.base.after = pilot_xcalloc(1, sizeof(*q.base.after));
	q.base.nafter = 1;
	pilot_run_need_parse(a.id, q.base.after);
	CHECK_RC(pilot_api_submit_array(c->api, &q, &arr), 0, "an array waiting for a run");
	bool all_wait = arr.nruns == 3;
	for (size_t i = 0; i < arr.nruns; i++)
		all_wait &= state_of(c, arr.runs[i]) == PILOT_RUN_WAITING;
	CHECK(all_wait, "every element waits");
	CHECK(run_once(c, PILOT_ATTEMPT_FAILED, id) && !strcmp(id, a.id), "the run fails");
	bool all_failed = arr.nruns == 3;
	for (size_t i = 0; i < arr.nruns; i++)
		all_failed &= state_of(c, arr.runs[i]) == PILOT_RUN_FAILED;
	CHECK(all_failed, "every element failed at once (dependency_failed)");
	pilot_array_clear(&arr);
	pilot_array_request_clear(&q);
	pilot_run_clear(&a);
}

/* Canceling an array cancels what has not ended; retrying it with --failed re-runs
 * only the elements that failed or were canceled, in their place. */
static void t_array_cancel_retry(struct ctx *c)
{
	struct pilot_array_request q;
	struct pilot_array a = { 0 }, x = { 0 };
	char id[PILOT_ID_SIZE];
	array_req(c, &q, 4, 0);
	CHECK_RC(pilot_api_submit_array(c->api, &q, &a), 0, "an array of 4");
	pilot_array_request_clear(&q);
	CHECK(run_once(c, PILOT_ATTEMPT_SUCCEEDED, id), "element 0 succeeds");
	CHECK(run_once(c, PILOT_ATTEMPT_FAILED, id), "element 10 fails");
	struct pilot_claim cl = { 0 };
	CHECK_RC(claim(c, &cl), 1, "element 20 is claimed");
	CHECK_RC(pilot_api_cancel_array(c->api, a.id, NULL, 0, &x), 0, "cancel the array");
	CHECK(x.changed == 2, "two runs were going (%d)", x.changed);
	pilot_array_clear(&x);
	if (a.nruns == 4) {
		CHECK(state_of(c, a.runs[0]) == PILOT_RUN_SUCCEEDED && state_of(c, a.runs[1]) == PILOT_RUN_FAILED,
		      "the ended ones are left as they were");
		CHECK(state_of(c, a.runs[2]) == PILOT_RUN_CANCELING && state_of(c, a.runs[3]) == PILOT_RUN_CANCELED,
		      "the running one is canceling, the queued one canceled");
	}
	struct pilot_finish f = outcome(PILOT_ATTEMPT_CANCELED, PILOT_REASON_CANCELED, 0);
	CHECK_RC(pilot_api_finish(c->api, cl.attempt_id, cl.lease_token, &f, NULL), 0, "its agent stops it");
	pilot_claim_clear(&cl);
	CHECK_RC(pilot_api_cancel_array(c->api, a.id, NULL, -1, &x), 0, "cancel it again");
	CHECK(x.changed == 0, "nothing was going");
	pilot_array_clear(&x);

	char prefix[12];
	snprintf(prefix, sizeof(prefix), "%.11s", a.id);
	CHECK_RC(pilot_api_retry_array(c->api, prefix, NULL, &x), 0, "retry the array (by a prefix)");
	CHECK(x.changed == 3 && x.nruns == 7, "three new runs, for the failed and canceled (%d, %zu runs)", x.changed,
	      x.nruns);
	pilot_array_clear(&x);
	CHECK_RC(pilot_api_retry_array(c->api, a.id, NULL, &x), 0, "retry it again at once");
	CHECK(x.changed == 0, "nothing to retry: the new runs have not ended");
	pilot_array_clear(&x);
	int ran = 0, index10 = 0;
	for (int i = 0; i < 3; i++) {
		ran += run_once(c, PILOT_ATTEMPT_SUCCEEDED, id);
		struct pilot_run r = { 0 };
		if (pilot_api_get_run(c->api, id, &r) == 0 && !strcmp(r.array_id, a.id) && r.array_index == 10 && r.retry_of)
			index10++;
		pilot_run_clear(&r);
	}
	CHECK(ran == 3 && index10 == 1, "they run, in the array at their index, as retries");
	CHECK_RC(pilot_api_get_array(c->api, a.id, &x), 0, "get the array");
	CHECK(x.nruns == 7, "it has 7 runs");
	pilot_array_clear(&x);
	CHECK_RC(pilot_api_get_array(c->api, "xzzzzzzzzzzzzzz", &x), PILOT_ENOTFOUND, "an unknown array");
	CHECK_RC(pilot_api_cancel_array(c->api, "xzzzzzzzzzzzzzz", NULL, -1, &x), PILOT_ENOTFOUND, "cancel it");
	CHECK_RC(pilot_api_retry_array(c->api, "xzzzzzzzzzzzzzz", NULL, &x), PILOT_ENOTFOUND, "retry it");
	pilot_array_clear(&a);
}

/* ---- pipelines ---- */

/* The diamond a -> (b, c) -> d, and e needing nothing, claimed last (a lower
 * priority). Job names are the test's name with the letter. */
struct pipe {
	char names[5][160];
	struct pilot_pipeline_request q;
};

static void pipe_init(struct ctx *c, struct pipe *p)
{
	static const int needs[5][2] = { { -1, -1 }, { 0, -1 }, { 0, -1 }, { 1, 2 }, { -1, -1 } };
	memset(p, 0, sizeof(*p));
	p->q.name = c->name;
	p->q.njobs = 5;
	p->q.jobs = pilot_xcalloc(5, sizeof(*p->q.jobs));
	for (int i = 0; i < 5; i++) {
		struct pilot_pipeline_job *j = &p->q.jobs[i];
		snprintf(p->names[i], sizeof(p->names[i]), "%s-%c", c->name, 'a' + i);
		req_init(c, &j->run);
		j->run.name = p->names[i];
		j->run.priority = i == 4 ? 0 : 10;
		j->needs = pilot_xcalloc(2, sizeof(*j->needs));
		for (int k = 0; k < 2 && needs[i][k] >= 0; k++)
			j->needs[j->nneeds++] = p->names[needs[i][k]];
	}
}

/* The runs of a pipeline's jobs: the latest of each, by job (index). */
static bool pipe_latest(struct ctx *c, const char *pid, char out[5][PILOT_ID_SIZE])
{
	struct pilot_array a = { 0 };
	if (pilot_api_get_array(c->api, pid, &a) < 0)
		return false;
	memset(out, 0, 5 * PILOT_ID_SIZE);
	for (size_t i = 0; i < a.nruns; i++) {
		struct pilot_run r = { 0 };
		if (pilot_api_get_run(c->api, a.runs[i], &r) == 0 && r.array_index >= 0 && r.array_index < 5)
			memcpy(out[r.array_index], r.id, PILOT_ID_SIZE); /* oldest first: the last wins */
		pilot_run_clear(&r);
	}
	pilot_array_clear(&a);
	return true;
}

static bool needs_are(struct ctx *c, const char *id, const char *x, const char *y)
{
	struct pilot_run r = { 0 };
	bool ok = pilot_api_get_run(c->api, id, &r) == 0 && r.nneeds == (y ? 2u : 1u);
	for (size_t i = 0; ok && i < r.nneeds; i++)
		ok = !strcmp(r.needs[i].run, x) || (y && !strcmp(r.needs[i].run, y));
	pilot_run_clear(&r);
	return ok;
}

static bool ended(struct ctx *c, const char *id, enum pilot_run_state st, enum pilot_reason reason)
{
	struct pilot_run r = { 0 };
	bool ok = pilot_api_get_run(c->api, id, &r) == 0 && r.state == st && r.reason == reason;
	pilot_run_clear(&r);
	return ok;
}

/* A pipeline is made whole in one call; each job's run is queued once the jobs it
 * needs have succeeded, in that order; a replay returns it; a bad job refuses it all. */
static void t_pipeline(struct ctx *c)
{
	struct pipe p;
	struct pilot_array a = { 0 }, b = { 0 };
	char id[PILOT_ID_SIZE], key[40];
	pipe_init(c, &p);
	snprintf(key, sizeof(key), "pipeline-%s", c->tag);
	p.q.idempotency_key = key;
	CHECK_RC(pilot_api_submit_pipeline(c->api, &p.q, &a), 0, "submit a pipeline of 5 jobs");
	CHECK(a.id[0] == 'p' && a.nruns == 5 && a.name && !strcmp(a.name, c->name), "a pipeline id, its name, 5 runs");
	CHECK_RC(pilot_api_submit_pipeline(c->api, &p.q, &b), 1, "the same key and payload again: a replay");
	CHECK(!strcmp(a.id, b.id) && b.nruns == 5, "of the same pipeline");
	pilot_array_clear(&b);
	if (a.nruns != 5) {
		pilot_array_clear(&a);
		pilot_pipeline_request_clear(&p.q);
		return;
	}
	struct pilot_run r = { 0 };
	CHECK_RC(pilot_api_get_run(c->api, a.runs[3], &r), 0, "get job d's run");
	CHECK(!strcmp(r.array_id, a.id) && r.array_index == 3 && !strcmp(r.name, p.names[3]),
	      "it knows its pipeline, its place and its job's name");
	CHECK(r.state == PILOT_RUN_WAITING && r.needs_left == 2, "it waits for two runs (%d)", r.needs_left);
	pilot_run_clear(&r);
	CHECK(needs_are(c, a.runs[3], a.runs[1], a.runs[2]) && needs_are(c, a.runs[1], a.runs[0], NULL),
	      "d waits for b's and c's runs, b for a's");
	CHECK(state_of(c, a.runs[0]) == PILOT_RUN_QUEUED && state_of(c, a.runs[4]) == PILOT_RUN_QUEUED &&
	      state_of(c, a.runs[1]) == PILOT_RUN_WAITING && state_of(c, a.runs[2]) == PILOT_RUN_WAITING,
	      "a and e are queued, b and c wait");
	CHECK(run_once(c, PILOT_ATTEMPT_SUCCEEDED, id) && !strcmp(id, a.runs[0]), "a runs first");
	CHECK(state_of(c, a.runs[1]) == PILOT_RUN_QUEUED && state_of(c, a.runs[2]) == PILOT_RUN_QUEUED &&
	      state_of(c, a.runs[3]) == PILOT_RUN_WAITING, "then b and c are queued, d still waits");
	CHECK(run_once(c, PILOT_ATTEMPT_SUCCEEDED, id) && !strcmp(id, a.runs[1]), "b runs");
	CHECK(state_of(c, a.runs[3]) == PILOT_RUN_WAITING, "d waits for c");
	CHECK(run_once(c, PILOT_ATTEMPT_SUCCEEDED, id) && !strcmp(id, a.runs[2]), "c runs");
	CHECK(run_once(c, PILOT_ATTEMPT_SUCCEEDED, id) && !strcmp(id, a.runs[3]), "then d, before e (lower priority)");
	CHECK(run_once(c, PILOT_ATTEMPT_SUCCEEDED, id) && !strcmp(id, a.runs[4]), "and e");
	struct pilot_run_filter f = { .array = a.id, .limit = 100 };
	struct pilot_run_list l = { 0 };
	CHECK_RC(pilot_api_list_runs(c->api, &f, &l), 0, "list the pipeline's runs");
	CHECK(l.n == 5, "all five (%zu)", l.n);
	pilot_run_list_clear(&l);
	char prefix[12];
	snprintf(prefix, sizeof(prefix), "%.11s", a.id);
	CHECK_RC(pilot_api_get_array(c->api, prefix, &b), 0, "get the pipeline by a prefix");
	CHECK(!strcmp(a.id, b.id), "the same");
	pilot_array_clear(&b);
	pilot_array_clear(&a);

	p.q.idempotency_key = NULL;
	p.q.jobs[1].needs[0] = p.names[3];
	CHECK_RC(pilot_api_submit_pipeline(c->api, &p.q, &a), PILOT_EINVALID, "a job needing a job after it");
	CHECK(strstr(pilot_error_last(), p.names[3]) != NULL, "names it: %s", pilot_error_last());
	p.q.jobs[1].needs[0] = p.names[1];
	CHECK_RC(pilot_api_submit_pipeline(c->api, &p.q, &a), PILOT_EINVALID, "a job needing itself");
	p.q.jobs[1].needs[0] = p.names[0];
	p.q.jobs[4].run.name = p.names[0];
	CHECK_RC(pilot_api_submit_pipeline(c->api, &p.q, &a), PILOT_EINVALID, "two jobs of one name");
	p.q.jobs[4].run.name = p.names[4];
	p.q.jobs[2].run.spec_json = "{\"name\":\"ct\",\"command\":\"echo\"}";
	CHECK_RC(pilot_api_submit_pipeline(c->api, &p.q, &a), PILOT_EINVALID, "a job whose spec no agent could run");
	CHECK(strstr(pilot_error_last(), p.names[2]) != NULL, "names the job: %s", pilot_error_last());
	p.q.jobs[2].run.spec_json = "{\"name\":\"ct\",\"command\":[\"true\"]}";
	p.q.max_failures = 6;
	CHECK_RC(pilot_api_submit_pipeline(c->api, &p.q, &a), PILOT_EINVALID, "a max_failures above its jobs");
	p.q.max_failures = 0;
	size_t n = p.q.njobs;
	p.q.njobs = 0;
	CHECK_RC(pilot_api_submit_pipeline(c->api, &p.q, &a), PILOT_EINVALID, "no jobs");
	p.q.njobs = n;
	struct pilot_claim none = { 0 };
	CHECK_RC(claim(c, &none), 0, "nothing of the refused pipelines was queued");
	pilot_pipeline_request_clear(&p.q);
}

/* A job that fails skips exactly the jobs that need it, at once, and the rest go on;
 * retrying the pipeline re-runs the failed and the skipped, which wait for the new
 * runs (the succeeded kept). */
static void t_pipeline_fail_fast(struct ctx *c)
{
	struct pipe p;
	struct pilot_array a = { 0 }, x = { 0 };
	char id[PILOT_ID_SIZE], now[5][PILOT_ID_SIZE];
	pipe_init(c, &p);
	CHECK_RC(pilot_api_submit_pipeline(c->api, &p.q, &a), 0, "submit the diamond");
	pilot_pipeline_request_clear(&p.q);
	if (a.nruns != 5) {
		pilot_array_clear(&a);
		return;
	}
	CHECK(run_once(c, PILOT_ATTEMPT_SUCCEEDED, id) && !strcmp(id, a.runs[0]), "a succeeds");
	CHECK(run_once(c, PILOT_ATTEMPT_FAILED, id) && !strcmp(id, a.runs[1]), "b fails");
	CHECK(ended(c, a.runs[3], PILOT_RUN_SKIPPED, PILOT_REASON_DEPENDENCY_FAILED),
	      "d, which needs b, is skipped at once (dependency_failed)");
	CHECK(state_of(c, a.runs[2]) == PILOT_RUN_QUEUED && state_of(c, a.runs[4]) == PILOT_RUN_QUEUED,
	      "c and e, which do not, are still queued");
	CHECK(run_once(c, PILOT_ATTEMPT_SUCCEEDED, id) && !strcmp(id, a.runs[2]), "c runs");
	CHECK(run_once(c, PILOT_ATTEMPT_SUCCEEDED, id) && !strcmp(id, a.runs[4]), "e runs");
	CHECK_RC(pilot_api_retry_array(c->api, a.id, NULL, &x), 0, "retry the pipeline");
	CHECK(x.changed == 2 && x.nruns == 7, "b and d run again (%d, %zu runs)", x.changed, x.nruns);
	pilot_array_clear(&x);
	if (pipe_latest(c, a.id, now)) {
		CHECK(strcmp(now[1], a.runs[1]) && strcmp(now[3], a.runs[3]) && !strcmp(now[2], a.runs[2]),
		      "new runs for b and d, c kept");
		CHECK(state_of(c, now[1]) == PILOT_RUN_QUEUED, "the new b is queued (a succeeded)");
		CHECK(state_of(c, now[3]) == PILOT_RUN_WAITING && needs_are(c, now[3], now[1], a.runs[2]),
		      "the new d waits for the new b and the old c");
		CHECK(run_once(c, PILOT_ATTEMPT_SUCCEEDED, id) && !strcmp(id, now[1]), "the new b succeeds");
		CHECK(run_once(c, PILOT_ATTEMPT_SUCCEEDED, id) && !strcmp(id, now[3]), "then the new d runs");
	}
	CHECK_RC(pilot_api_retry_array(c->api, a.id, NULL, &x), 0, "retry it again");
	CHECK(x.changed == 0, "nothing to retry");
	pilot_array_clear(&x);
	pilot_array_clear(&a);
}

/* Canceling a pipeline cancels every job not ended (the waiting ones end canceled, not
 * skipped); retrying it then runs them all again in order. */
static void t_pipeline_cancel(struct ctx *c)
{
	struct pipe p;
	struct pilot_array a = { 0 }, x = { 0 };
	char id[PILOT_ID_SIZE], now[5][PILOT_ID_SIZE];
	pipe_init(c, &p);
	CHECK_RC(pilot_api_submit_pipeline(c->api, &p.q, &a), 0, "submit the diamond");
	pilot_pipeline_request_clear(&p.q);
	struct pilot_claim cl = { 0 };
	CHECK_RC(claim(c, &cl), 1, "a is claimed");
	CHECK_RC(pilot_api_cancel_array(c->api, a.id, NULL, 0, &x), 0, "cancel the pipeline");
	CHECK(x.changed == 5, "all five were going (%d)", x.changed);
	pilot_array_clear(&x);
	if (a.nruns == 5) {
		CHECK(state_of(c, a.runs[0]) == PILOT_RUN_CANCELING, "the running one is canceling");
		bool canceled = true;
		for (int i = 1; i < 5; i++)
			canceled &= ended(c, a.runs[i], PILOT_RUN_CANCELED, PILOT_REASON_CANCELED);
		CHECK(canceled, "the others are canceled");
	}
	struct pilot_finish f = outcome(PILOT_ATTEMPT_CANCELED, PILOT_REASON_CANCELED, 0);
	CHECK_RC(pilot_api_finish(c->api, cl.attempt_id, cl.lease_token, &f, NULL), 0, "its agent stops a");
	pilot_claim_clear(&cl);
	CHECK_RC(pilot_api_retry_array(c->api, a.id, NULL, &x), 0, "retry the pipeline");
	CHECK(x.changed == 5, "every job runs again (%d)", x.changed);
	pilot_array_clear(&x);
	if (pipe_latest(c, a.id, now)) {
		CHECK(needs_are(c, now[3], now[1], now[2]) && state_of(c, now[3]) == PILOT_RUN_WAITING,
		      "the new d waits for the new b and c");
		int order = 0;
		for (int i = 0; i < 5; i++)
			order += run_once(c, PILOT_ATTEMPT_SUCCEEDED, id) && !strcmp(id, now[i]);
		CHECK(order == 5, "they run in order (%d of 5)", order);
	}
	CHECK_RC(pilot_api_get_array(c->api, "pzzzzzzzzzzzzzz", &x), PILOT_ENOTFOUND, "an unknown pipeline");
	CHECK_RC(pilot_api_cancel_array(c->api, "pzzzzzzzzzzzzzz", NULL, -1, &x), PILOT_ENOTFOUND, "cancel it");
	CHECK_RC(pilot_api_retry_array(c->api, "pzzzzzzzzzzzzzz", NULL, &x), PILOT_ENOTFOUND, "retry it");
	pilot_array_clear(&a);
}

/* A pipeline's max_failures: once reached, every job not started is skipped. */
static void t_pipeline_max_failures(struct ctx *c)
{
	struct pipe p;
	struct pilot_array a = { 0 };
	char id[PILOT_ID_SIZE];
	pipe_init(c, &p);
	p.q.max_failures = 1;
	CHECK_RC(pilot_api_submit_pipeline(c->api, &p.q, &a), 0, "submit the diamond, max_failures 1");
	pilot_pipeline_request_clear(&p.q);
	CHECK(a.max_failures == 1, "it shows its max_failures");
	CHECK(run_once(c, PILOT_ATTEMPT_FAILED, id), "a fails");
	bool skipped = a.nruns == 5;
	for (size_t i = 1; i < a.nruns && skipped; i++)
		skipped = ended(c, a.runs[i], PILOT_RUN_SKIPPED, PILOT_REASON_TOO_MANY_FAILURES);
	CHECK(skipped, "every other job is skipped (too_many_failures), e too");
	struct pilot_claim none = { 0 };
	CHECK_RC(claim(c, &none), 0, "nothing is left to claim");
	pilot_array_clear(&a);
}

/* max_failures: once that many elements failed, the ones not started are skipped;
 * retrying the array re-runs the failed and the skipped. */
static void t_array_max_failures(struct ctx *c)
{
	struct pilot_array_request q;
	struct pilot_array a = { 0 }, x = { 0 };
	char id[PILOT_ID_SIZE];
	array_req(c, &q, 5, 1);
	q.max_failures = 2;
	CHECK_RC(pilot_api_submit_array(c->api, &q, &a), 0, "an array of 5, one at a time, max_failures 2");
	CHECK(a.max_failures == 2, "it shows its max_failures");
	CHECK(run_once(c, PILOT_ATTEMPT_FAILED, id), "element 0 fails");
	CHECK(a.nruns == 5 && state_of(c, a.runs[2]) == PILOT_RUN_WAITING, "the rest go on after one failure");
	CHECK(run_once(c, PILOT_ATTEMPT_FAILED, id), "element 10 fails");
	struct pilot_run r = { 0 };
	bool skipped = a.nruns == 5;
	for (size_t i = 2; i < a.nruns && skipped; i++) {
		skipped = pilot_api_get_run(c->api, a.runs[i], &r) == 0 && r.state == PILOT_RUN_SKIPPED &&
			  r.reason == PILOT_REASON_TOO_MANY_FAILURES;
		pilot_run_clear(&r);
	}
	CHECK(skipped, "the three not started are skipped (too_many_failures)");
	struct pilot_claim none = { 0 };
	CHECK_RC(claim(c, &none), 0, "nothing is left to claim");
	CHECK_RC(pilot_api_retry_array(c->api, a.id, NULL, &x), 0, "retry the array");
	CHECK(x.changed == 5, "the failed and the skipped run again (%d)", x.changed);
	pilot_array_clear(&x);
	int ok = 0;
	for (int i = 0; i < 5; i++)
		ok += run_once(c, PILOT_ATTEMPT_SUCCEEDED, id);
	CHECK(ok == 5, "and succeed: the old failures no longer count");
	q.max_failures = -1;
	CHECK_RC(pilot_api_submit_array(c->api, &q, &x), PILOT_EINVALID, "a negative max_failures");
	pilot_array_request_clear(&q);
	pilot_array_clear(&a);
}

/* ---- duplicates ---- */

static int submit_dup(struct ctx *c, const char *params, bool skip, struct pilot_run *out)
{
	struct pilot_submit_request q;
	req_init(c, &q);
	q.params_json = params;
	q.skip_duplicate = skip;
	int r = pilot_api_submit(c->api, &q, out);
	pilot_submit_request_clear(&q);
	return r;
}

/* ---- failures across agents ---- */

/* A claim by agent with the test's label, and only=ONLY when given. */
static int claim_only(struct ctx *c, const char *agent, const char *only, struct pilot_claim *out)
{
	struct pilot_claim_request q = { .agent = agent, .version = "conformance" };
	pilot_kvs_set(&q.labels, "ct", c->tag);
	if (only)
		pilot_kvs_set(&q.labels, "only", only);
	int r = pilot_api_claim(c->api, &q, out);
	pilot_claim_request_clear(&q);
	return r;
}

/* Claim (as agent) and end it as st; the run's id in id. */
static bool run_as(struct ctx *c, const char *agent, const char *only, enum pilot_attempt_state st,
		   char id[PILOT_ID_SIZE])
{
	struct pilot_claim cl = { 0 };
	if (claim_only(c, agent, only, &cl) != 1)
		return false;
	memcpy(id, cl.run.id, PILOT_ID_SIZE);
	struct pilot_finish f = outcome(st, PILOT_REASON_EXIT_CODE, st == PILOT_ATTEMPT_SUCCEEDED ? 0 : 1);
	int r = pilot_api_finish(c->api, cl.attempt_id, cl.lease_token, &f, NULL);
	pilot_claim_clear(&cl);
	return r == 0;
}

static int submit_named(struct ctx *c, const char *name, const char *only, int attempts, struct pilot_run *out)
{
	struct pilot_submit_request q;
	req_init(c, &q);
	q.name = name;
	if (only)
		pilot_kvs_set(&q.requires, "only", only);
	q.retry.max_attempts = attempts;
	q.retry.on = PILOT_RETRY_ON_EXIT_CODE;
	q.retry.backoff_ms = PILOT_RETRY_AT_ONCE;
	int r = pilot_api_submit(c->api, &q, out);
	pilot_submit_request_clear(&q);
	return r;
}

/* start_timeout: a run no live agent could take for that long fails (no_agent); one
 * that an agent could take (busy elsewhere) keeps waiting, and runs when claimed. */
static void t_start_timeout(struct ctx *c)
{
	struct pilot_submit_request q;
	struct pilot_run lonely = { 0 }, wanted = { 0 }, x = { 0 };
	char id[PILOT_ID_SIZE];
	req_init(c, &q);
	pilot_kvs_set(&q.requires, "only", "nobody");
	q.start_timeout_ms = 300;
	CHECK_RC(pilot_api_submit(c->api, &q, &lonely), 0, "a run no agent has the labels for, start_timeout 300ms");
	CHECK(lonely.start_timeout_ms == 300, "it shows its start_timeout");
	pilot_submit_request_clear(&q);
	/* An agent busy with another run (it stays seen through its heartbeats). */
	struct pilot_run busy = { 0 };
	struct pilot_claim cl = { 0 };
	req_init(c, &q);
	pilot_kvs_set(&q.requires, "only", "here");
	pilot_api_submit(c->api, &q, &busy);
	CHECK_RC(claim_only(c, c->agent, "here", &cl), 1, "an agent takes a run of its own");
	q.start_timeout_ms = 300;
	CHECK_RC(pilot_api_submit(c->api, &q, &wanted), 0, "a run that agent could take, start_timeout 300ms");
	pilot_submit_request_clear(&q);
	enum pilot_run_state st = wait_leave(c, lonely.id, PILOT_RUN_QUEUED, 5000);
	pilot_api_get_run(c->api, lonely.id, &x);
	CHECK(st == PILOT_RUN_FAILED && x.reason == PILOT_REASON_NO_AGENT, "the first fails: no_agent (%s)",
	      pilot_run_state_name(st));
	CHECK(x.message && strstr(x.message, "start_timeout"), "saying why: %s", x.message ? x.message : "");
	CHECK(x.attempt_count == 0 && has_event(c, lonely.id, "no_agent"), "never run; event no_agent");
	pilot_run_clear(&x);
	bool beat = true;
	for (int i = 0; i < 8; i++) {
		beat &= pilot_api_heartbeat(c->api, cl.attempt_id, cl.lease_token, NULL) == 0;
		sleep_ms(100);
		pilot_api_reap(c->api);
	}
	CHECK(beat && state_of(c, wanted.id) == PILOT_RUN_QUEUED,
	      "past its start_timeout the second still waits: the busy agent could take it");
	struct pilot_finish f = outcome(PILOT_ATTEMPT_SUCCEEDED, PILOT_REASON_EXIT_CODE, 0);
	CHECK_RC(pilot_api_finish(c->api, cl.attempt_id, cl.lease_token, &f, NULL), 0, "the agent ends its run");
	pilot_claim_clear(&cl);
	pilot_run_clear(&busy);
	CHECK(run_as(c, c->agent, "here", PILOT_ATTEMPT_SUCCEEDED, id) && !strcmp(id, wanted.id), "and runs when claimed");
	req_init(c, &q);
	q.start_timeout_ms = -1;
	CHECK_RC(pilot_api_submit(c->api, &q, &x), PILOT_EINVALID, "a negative start_timeout is refused");
	pilot_submit_request_clear(&q);
	pilot_run_clear(&lonely);
	pilot_run_clear(&wanted);
}

/* A retry does not go back to the agent that failed it while another live agent could
 * take it; when none could, it does, at once. */
static void t_retry_elsewhere(struct ctx *c)
{
	char b[48], id[PILOT_ID_SIZE];
	struct pilot_run r = { 0 };
	struct pilot_claim none = { 0 };
	snprintf(b, sizeof(b), "%s-b", c->agent);
	CHECK_RC(claim_only(c, b, NULL, &none), 0, "a second agent asks, with nothing to take");
	CHECK_RC(submit_named(c, c->name, NULL, 2, &r), 0, "a run with one retry");
	CHECK(run_as(c, c->agent, NULL, PILOT_ATTEMPT_FAILED, id) && !strcmp(id, r.id), "the first agent fails it");
	CHECK_RC(claim_only(c, c->agent, NULL, &none), 0, "it does not get the retry");
	struct pilot_claim cl = { 0 };
	CHECK_RC(claim_only(c, b, NULL, &cl), 1, "the second agent does");
	CHECK(!strcmp(cl.run.id, r.id) && cl.attempt == 2, "attempt 2 of that run");
	struct pilot_finish f = outcome(PILOT_ATTEMPT_SUCCEEDED, PILOT_REASON_EXIT_CODE, 0);
	pilot_api_finish(c->api, cl.attempt_id, cl.lease_token, &f, NULL);
	pilot_claim_clear(&cl);
	pilot_run_clear(&r);

	CHECK_RC(submit_named(c, c->name, "a", 2, &r), 0, "a run only the first agent can take");
	CHECK(run_as(c, c->agent, "a", PILOT_ATTEMPT_FAILED, id) && !strcmp(id, r.id), "it fails there");
	CHECK(run_as(c, c->agent, "a", PILOT_ATTEMPT_SUCCEEDED, id) && !strcmp(id, r.id),
	      "no other agent could: its retry goes back to it at once");
	pilot_run_clear(&r);
}

static const struct pilot_block *block_of(const struct pilot_block_list *l, const char *agent, const char *name)
{
	for (size_t i = 0; i < l->n; i++)
		if (!strcmp(l->items[i].agent, agent) && !strcmp(l->items[i].name, name))
			return &l->items[i];
	return NULL;
}

/* Failures of one name on one agent in a row blocklist the agent for that name; a
 * success wipes a count; a run only blocklisted agents could take fails (no_agent);
 * clearing the entry lets the agent take such runs again. */
static void t_blocklist(struct ctx *c)
{
	char b[48], other[48], id[PILOT_ID_SIZE];
	struct pilot_run r = { 0 };
	struct pilot_claim none = { 0 };
	struct pilot_block_list l = { 0 };
	snprintf(b, sizeof(b), "%s-b", c->agent);
	snprintf(other, sizeof(other), "%s-2", c->name);
	int n = T->blocklist_after, failed = 0;
	for (int i = 0; i < n; i++) {
		submit_named(c, c->name, NULL, 1, &r);
		failed += run_as(c, c->agent, NULL, PILOT_ATTEMPT_FAILED, id) && !strcmp(id, r.id);
		if (i == n - 2) {
			CHECK_RC(pilot_api_list_blocklist(c->api, &l), 0, "list the blocklist");
			const struct pilot_block *e = block_of(&l, c->agent, c->name);
			CHECK(e && e->failures == n - 1 && !e->blocked_ms, "%d failures counted, not blocking yet", n - 1);
			pilot_block_list_clear(&l);
		}
		if (i < n - 1)
			pilot_run_clear(&r);
	}
	CHECK(failed == n, "%d runs of one name failed on one agent (%d)", n, failed);
	CHECK(has_event(c, r.id, "blocklisted"), "the last says the agent is blocklisted");
	pilot_run_clear(&r);
	CHECK_RC(pilot_api_list_blocklist(c->api, &l), 0, "list the blocklist");
	const struct pilot_block *e = block_of(&l, c->agent, c->name);
	CHECK(e && e->failures == n && e->blocked_ms > 0, "the agent is blocked for the name");
	pilot_block_list_clear(&l);

	CHECK_RC(claim_only(c, b, NULL, &none), 0, "a second agent asks, with nothing to take");
	CHECK_RC(submit_named(c, c->name, NULL, 1, &r), 0, "another run of the name");
	CHECK_RC(claim_only(c, c->agent, NULL, &none), 0, "the blocked agent does not get it");
	CHECK(run_as(c, b, NULL, PILOT_ATTEMPT_SUCCEEDED, id) && !strcmp(id, r.id), "the other agent does");
	pilot_run_clear(&r);

	CHECK_RC(submit_named(c, c->name, "a", 1, &r), 0, "a run only the blocked agent could take");
	CHECK_RC(claim_only(c, c->agent, "a", &none), 0, "it does not get it either");
	enum pilot_run_state st = wait_leave(c, r.id, PILOT_RUN_QUEUED, 5000);
	struct pilot_run x = { 0 };
	pilot_api_get_run(c->api, r.id, &x);
	CHECK(st == PILOT_RUN_FAILED && x.reason == PILOT_REASON_NO_AGENT, "it fails: no_agent (%s)",
	      pilot_run_state_name(st));
	CHECK(x.message && strstr(x.message, "pilot agents blocklist --clear"), "saying how to clear: %s",
	      x.message ? x.message : "");
	pilot_run_clear(&x);
	pilot_run_clear(&r);

	int cleared = -1;
	CHECK_RC(pilot_api_clear_blocklist(c->api, c->agent, c->name, &cleared), 0, "clear the entry");
	CHECK(cleared == 1, "one entry cleared (%d)", cleared);
	CHECK_RC(pilot_api_list_blocklist(c->api, &l), 0, "list the blocklist");
	CHECK(!block_of(&l, c->agent, c->name), "it is gone");
	pilot_block_list_clear(&l);
	submit_named(c, c->name, NULL, 1, &r);
	CHECK(run_as(c, c->agent, NULL, PILOT_ATTEMPT_SUCCEEDED, id) && !strcmp(id, r.id),
	      "the agent takes runs of the name again");
	pilot_run_clear(&r);

	for (int i = 0; i < 2; i++) {
		submit_named(c, other, NULL, 1, &r);
		run_as(c, c->agent, NULL, PILOT_ATTEMPT_FAILED, id);
		pilot_run_clear(&r);
	}
	submit_named(c, other, NULL, 1, &r);
	CHECK(run_as(c, c->agent, NULL, PILOT_ATTEMPT_SUCCEEDED, id) && !strcmp(id, r.id), "two failures, then a success");
	pilot_run_clear(&r);
	CHECK_RC(pilot_api_list_blocklist(c->api, &l), 0, "list the blocklist");
	CHECK(!block_of(&l, c->agent, other), "the success wiped the count");
	pilot_block_list_clear(&l);
}

/* ---- agent control ---- */

static enum pilot_agent_state agent_state(struct ctx *c, const char *agent, enum pilot_agent_control *told)
{
	struct pilot_agent_info a = { 0 };
	if (pilot_api_get_agent(c->api, agent, &a) < 0)
		return (enum pilot_agent_state)-1;
	enum pilot_agent_state st = a.state;
	if (told)
		*told = a.control;
	pilot_agent_info_clear(&a);
	return st;
}

/* drain: claims take nothing and say so, until resume; drain with now stops the
 * running attempt (a heartbeat asks for the cancel, with requeue) and its canceled end
 * requeues the run, spending no retry; sleep/wake; a shutdown is said at once even to
 * a long-poll; the goodbye clears it; forget removes an offline agent; mistakes are
 * refused. */
static void t_agent_control(struct ctx *c)
{
	struct pilot_run r = { 0 }, x = { 0 };
	struct pilot_claim cl = { 0 }, none = { 0 };
	struct pilot_agent_info a = { 0 };
	enum pilot_agent_control told = PILOT_CONTROL_NONE;
	char id[PILOT_ID_SIZE];
	CHECK_RC(claim_only(c, c->agent, NULL, &none), 0, "the agent asks, with nothing to take");
	CHECK(none.command == PILOT_CONTROL_NONE, "and is told nothing");
	CHECK(agent_state(c, c->agent, NULL) == PILOT_AGENT_IDLE, "it is idle");

	CHECK_RC(pilot_api_control_agent(c->api, c->agent, "drain", false, "ops", &a), 0, "drain it");
	CHECK(a.state == PILOT_AGENT_DRAINED && a.control == PILOT_CONTROL_DRAIN && a.control_ms > 0 && a.control_by &&
		      !strcmp(a.control_by, "ops"),
	      "drained, by ops (%s)", pilot_agent_state_name(a.state));
	pilot_agent_info_clear(&a);
	CHECK_RC(submit_named(c, c->name, NULL, 1, &r), 0, "a run it could take");
	CHECK_RC(claim_only(c, c->agent, NULL, &none), 0, "a drained agent gets nothing");
	CHECK(none.command == PILOT_CONTROL_DRAIN, "and hears it is drained (%d)", (int)none.command);
	CHECK(state_of(c, r.id) == PILOT_RUN_QUEUED, "the run waits");
	CHECK_RC(pilot_api_control_agent(c->api, c->agent, "resume", false, NULL, &a), 0, "resume it");
	CHECK(a.state == PILOT_AGENT_IDLE && a.control == PILOT_CONTROL_NONE, "idle again");
	pilot_agent_info_clear(&a);
	CHECK(run_as(c, c->agent, NULL, PILOT_ATTEMPT_SUCCEEDED, id) && !strcmp(id, r.id), "it takes the run");
	pilot_run_clear(&r);

	submit_named(c, c->name, NULL, 1, &r);
	CHECK_RC(claim_only(c, c->agent, NULL, &cl), 1, "claim a run");
	CHECK_RC(pilot_api_control_agent(c->api, c->agent, "drain", true, NULL, &a), 0, "drain it at once");
	CHECK(a.state == PILOT_AGENT_DRAINING && a.nruns == 1, "draining, with its run (%s)",
	      pilot_agent_state_name(a.state));
	pilot_agent_info_clear(&a);
	CHECK(has_event(c, r.id, "requeue_requested"), "the run says it is to be requeued");
	struct pilot_heartbeat_reply hb = { 0 };
	CHECK_RC(pilot_api_heartbeat(c->api, cl.attempt_id, cl.lease_token, &hb), 0, "heartbeat");
	CHECK(hb.cancel_requested && hb.requeue, "it asks for a stop, to requeue");
	CHECK(state_of(c, r.id) == PILOT_RUN_RUNNING, "the run is running until the attempt ends");
	struct pilot_finish f = outcome(PILOT_ATTEMPT_CANCELED, PILOT_REASON_CANCELED, 0);
	CHECK_RC(pilot_api_finish(c->api, cl.attempt_id, cl.lease_token, &f, &x), 0, "the attempt ends canceled");
	CHECK(x.state == PILOT_RUN_QUEUED && x.lost_count == 0,
	      "the run is queued again, no loss counted (%s)", pilot_run_state_name(x.state));
	CHECK(has_event(c, r.id, "requeued"), "a 'requeued' event");
	pilot_run_clear(&x);
	pilot_claim_clear(&cl);
	CHECK(agent_state(c, c->agent, &told) == PILOT_AGENT_DRAINED && told == PILOT_CONTROL_DRAIN, "drained");
	CHECK_RC(pilot_api_control_agent(c->api, c->agent, "wake", false, NULL, NULL), 0, "wake clears a drain too");
	CHECK(run_as(c, c->agent, NULL, PILOT_ATTEMPT_SUCCEEDED, id) && !strcmp(id, r.id), "attempt 2 runs it");
	pilot_api_get_run(c->api, r.id, &x);
	CHECK(x.state == PILOT_RUN_SUCCEEDED && x.attempt_count == 2, "succeeded, in two attempts");
	pilot_run_clear(&x);
	pilot_run_clear(&r);

	CHECK_RC(pilot_api_control_agent(c->api, c->agent, "sleep", false, NULL, &a), 0, "put it to sleep");
	CHECK(a.state == PILOT_AGENT_ASLEEP, "asleep (%s)", pilot_agent_state_name(a.state));
	pilot_agent_info_clear(&a);
	CHECK_RC(claim_only(c, c->agent, NULL, &none), 0, "it claims nothing");
	CHECK(none.command == PILOT_CONTROL_SLEEP, "and hears it is asleep");
	struct pilot_status s = { 0 };
	CHECK_RC(pilot_api_status(c->api, &s), 0, "status");
	CHECK(s.agents_paused >= 1, "counts it drained or asleep (%d)", s.agents_paused);
	pilot_status_clear(&s);
	CHECK_RC(pilot_api_control_agent(c->api, c->agent, "wake", false, NULL, NULL), 0, "wake it");

	CHECK_RC(pilot_api_control_agent(c->api, c->agent, "shutdown", false, NULL, &a), 0, "shut it down");
	CHECK(a.control == PILOT_CONTROL_SHUTDOWN, "told to shut down");
	pilot_agent_info_clear(&a);
	int64_t t0 = pilot_mono_ms();
	CHECK_RC(claim_as(c, c->api, c->agent, 5000, &none), 0, "a long-poll claim");
	CHECK(none.command == PILOT_CONTROL_SHUTDOWN && pilot_mono_ms() - t0 < 4000,
	      "hears of the shutdown at once (%lld ms)", (long long)(pilot_mono_ms() - t0));
	CHECK_RC(pilot_api_control_agent(c->api, c->agent, "forget", false, NULL, NULL), PILOT_ECONFLICT,
		 "a connected agent cannot be forgotten");
	CHECK_RC(pilot_api_agent_leave(c->api, c->agent), 0, "it says goodbye");
	CHECK(agent_state(c, c->agent, &told) == PILOT_AGENT_OFFLINE && told == PILOT_CONTROL_NONE,
	      "offline, the shutdown done");
	CHECK_RC(pilot_api_control_agent(c->api, c->agent, "shutdown", false, NULL, NULL), PILOT_ECONFLICT,
		 "an offline agent cannot be shut down");
	CHECK_RC(pilot_api_control_agent(c->api, c->agent, "forget", false, NULL, &a), 0, "forget it");
	CHECK(!a.name, "nothing is left to show");
	CHECK_RC(pilot_api_get_agent(c->api, c->agent, &a), PILOT_ENOTFOUND, "it is not known any more");
	CHECK_RC(pilot_api_control_agent(c->api, c->agent, "drain", false, NULL, NULL), PILOT_ENOTFOUND,
		 "an unknown agent");
	CHECK_RC(pilot_api_control_agent(c->api, c->agent, "dran", false, NULL, NULL), PILOT_EINVALID,
		 "an unknown action");
	CHECK_RC(pilot_api_control_agent(c->api, c->agent, "resume", true, NULL, NULL), PILOT_EINVALID,
		 "now with resume");
}

/* A sleep schedule puts the agent to sleep inside its windows (told by "schedule"),
 * and says when it next changes; waking by hand holds until the next window; a
 * schedule does not wake an agent put to sleep by hand; clearing it wakes one it put
 * to sleep; bad windows and zones are refused. */
static void t_agent_sleep_schedule(struct ctx *c)
{
	struct pilot_claim none = { 0 };
	struct pilot_agent_info a = { 0 };
	CHECK_RC(claim_only(c, c->agent, NULL, &none), 0, "the agent asks, with nothing to take");
	CHECK_RC(pilot_api_schedule_agent(c->api, c->agent, "daily 00:00-24:00", NULL, &a), 0, "sleep all week");
	CHECK(a.state == PILOT_AGENT_ASLEEP && a.control == PILOT_CONTROL_SLEEP && a.control_by &&
		      !strcmp(a.control_by, "schedule"),
	      "asleep, told by the schedule (%s)", pilot_agent_state_name(a.state));
	CHECK(a.sleep_schedule && !strcmp(a.sleep_schedule, "daily 00:00-24:00") && a.sleep_tz &&
		      !strcmp(a.sleep_tz, "UTC") && a.sleep_next_ms == 0,
	      "the schedule, in UTC, never changing (%s)", a.sleep_schedule ? a.sleep_schedule : "-");
	pilot_agent_info_clear(&a);
	CHECK_RC(claim_only(c, c->agent, NULL, &none), 0, "it claims nothing");
	CHECK(none.command == PILOT_CONTROL_SLEEP, "and hears it is asleep");
	CHECK_RC(pilot_api_control_agent(c->api, c->agent, "wake", false, NULL, &a), 0, "wake it by hand");
	CHECK(a.state == PILOT_AGENT_IDLE && a.sleep_schedule, "awake, the schedule kept");
	pilot_agent_info_clear(&a);

	/* A window that opens two hours from now (UTC, glibc's clock arithmetic). */
	time_t now = time(NULL);
	time_t start = now + 7200 - now % 60;
	struct tm tm;
	gmtime_r(&start, &tm);
	char windows[64];
	snprintf(windows, sizeof(windows), "daily %02d:%02d-%02d:%02d", tm.tm_hour, tm.tm_min, (tm.tm_hour + 1) % 24,
		 tm.tm_min);
	CHECK_RC(pilot_api_schedule_agent(c->api, c->agent, windows, "Etc/UTC", &a), 0, "a window later today");
	CHECK(a.state == PILOT_AGENT_IDLE && a.control == PILOT_CONTROL_NONE, "awake now (%s)",
	      pilot_agent_state_name(a.state));
	CHECK(a.sleep_next_ms == (int64_t)start * 1000, "next change when the window opens (%lld, not %lld)",
	      (long long)a.sleep_next_ms, (long long)start * 1000);
	pilot_agent_info_clear(&a);
	CHECK_RC(pilot_api_control_agent(c->api, c->agent, "sleep", false, "ops", NULL), 0, "sleep by hand");
	CHECK_RC(pilot_api_schedule_agent(c->api, c->agent, windows, "Asia/Kathmandu", &a), 0, "the window in Kathmandu");
	CHECK(a.state == PILOT_AGENT_ASLEEP && a.control_by && !strcmp(a.control_by, "ops"),
	      "a schedule does not wake what ops put to sleep");
	CHECK(a.sleep_next_ms == ((int64_t)start - 5 * 3600 - 45 * 60 + (start - 20700 <= now ? 86400 : 0)) * 1000,
	      "the window opens at that time in +05:45 (%lld)", (long long)a.sleep_next_ms);
	pilot_agent_info_clear(&a);
	CHECK_RC(pilot_api_control_agent(c->api, c->agent, "wake", false, NULL, NULL), 0, "wake it");

	CHECK_RC(pilot_api_schedule_agent(c->api, c->agent, "daily 00:00-24:00", NULL, NULL), 0, "asleep all week again");
	CHECK_RC(pilot_api_schedule_agent(c->api, c->agent, NULL, NULL, &a), 0, "clear the schedule");
	CHECK(a.state == PILOT_AGENT_IDLE && !a.sleep_schedule && !a.sleep_tz && !a.sleep_next_ms,
	      "awake, no schedule (%s)", pilot_agent_state_name(a.state));
	pilot_agent_info_clear(&a);
	CHECK_RC(claim_only(c, c->agent, NULL, &none), 0, "it claims");
	CHECK(none.command == PILOT_CONTROL_NONE, "and is told nothing");

	CHECK_RC(pilot_api_schedule_agent(c->api, c->agent, "weekdays 09:00-17:00", NULL, NULL), PILOT_EINVALID,
		 "days that are not days");
	CHECK(strstr(pilot_error_last(), "weekdays"), "the error names them: %s", pilot_error_last());
	CHECK_RC(pilot_api_schedule_agent(c->api, c->agent, "mon 09:00-17:00", "Mars/Olympus", NULL), PILOT_EINVALID,
		 "a zone that is not one");
	CHECK(strstr(pilot_error_last(), "Mars/Olympus"), "the error names it: %s", pilot_error_last());
	CHECK_RC(pilot_api_schedule_agent(c->api, c->agent, NULL, "UTC", NULL), PILOT_EINVALID, "a zone alone");
	CHECK_RC(pilot_api_schedule_agent(c->api, "nobody-here", "mon 09:00-17:00", NULL, NULL), PILOT_ENOTFOUND,
		 "an unknown agent");
}

/* With skip_duplicate, a run whose name and params match one queued, waiting or
 * running ends skipped at once; other params, or the first one ended, run. */
static void t_skip_duplicate(struct ctx *c)
{
	struct pilot_run a = { 0 }, b = { 0 }, d = { 0 }, e = { 0 }, w = { 0 };
	char id[PILOT_ID_SIZE];
	CHECK_RC(submit_dup(c, "{\"lr\":\"1\"}", true, &a), 0, "a run with skip_duplicate, none like it going");
	CHECK(a.state == PILOT_RUN_QUEUED, "is queued");
	CHECK_RC(submit_dup(c, "{\"lr\":\"1\"}", true, &b), 0, "the same again");
	CHECK(b.state == PILOT_RUN_SKIPPED && b.reason == PILOT_REASON_DUPLICATE && b.message && strstr(b.message, a.id),
	      "ends skipped (duplicate), naming the run going: %s", b.message ? b.message : "");
	CHECK(has_event(c, b.id, "skipped"), "a 'skipped' event");
	CHECK(pilot_run_state_terminal(b.state), "skipped is an end");
	CHECK_RC(submit_dup(c, "{\"lr\":\"2\"}", true, &d), 0, "other params");
	CHECK(d.state == PILOT_RUN_QUEUED, "are no duplicate");
	CHECK_RC(submit_dup(c, "{\"lr\":\"1\"}", false, &e), 0, "the same without skip_duplicate");
	CHECK(e.state == PILOT_RUN_QUEUED, "is queued");
	pilot_run_clear(&d);
	CHECK_RC(submit_after(c, b.id, &w), 0, "a run waiting for the skipped one to succeed");
	CHECK(w.state == PILOT_RUN_FAILED && w.reason == PILOT_REASON_DEPENDENCY_FAILED, "fails at once");
	pilot_run_clear(&w);
	for (int i = 0; i < 3; i++)
		CHECK(run_once(c, PILOT_ATTEMPT_SUCCEEDED, id), "(the queued ones run)");
	CHECK_RC(submit_dup(c, "{\"lr\":\"1\"}", true, &d), 0, "once none is going");
	CHECK(d.state == PILOT_RUN_QUEUED, "it is queued again");
	CHECK(run_once(c, PILOT_ATTEMPT_SUCCEEDED, id), "(and runs)");
	struct pilot_run_filter f = { .states = PILOT_RUN_STATE_BIT(PILOT_RUN_SKIPPED), .name = c->name };
	struct pilot_run_list l = { 0 };
	CHECK_RC(pilot_api_list_runs(c->api, &f, &l), 0, "list the skipped runs");
	CHECK(l.n == 1 && !strcmp(l.items[0].id, b.id), "the one");
	pilot_run_list_clear(&l);
	pilot_run_clear(&a);
	pilot_run_clear(&b);
	pilot_run_clear(&d);
	pilot_run_clear(&e);
}

/* ---- the table ---- */

static const struct {
	const char *name;
	void (*fn)(struct ctx *c);
} tests[] = {
	{ "submit_get", t_submit_get },
	{ "submit_invalid", t_submit_invalid },
	{ "get_unknown_ambiguous", t_get_unknown_ambiguous },
	{ "idempotency", t_idempotency },
	{ "concurrent_submits", t_concurrent_submits },
	{ "concurrent_replays", t_concurrent_replays },
	{ "list_pagination", t_list_pagination },
	{ "claim_basic", t_claim_basic },
	{ "claim_order_labels", t_claim_order_labels },
	{ "concurrent_claims", t_concurrent_claims },
	{ "heartbeat_cancel", t_heartbeat_cancel },
	{ "cancel_grace", t_cancel_grace },
	{ "cancel_queued_waiting", t_cancel_queued_waiting },
	{ "not_before", t_not_before },
	{ "after", t_after },
	{ "after_fail_fast", t_after_fail_fast },
	{ "concurrency", t_concurrency },
	{ "concurrency_retry", t_concurrency_retry },
	{ "array", t_array },
	{ "array_after", t_array_after },
	{ "array_cancel_retry", t_array_cancel_retry },
	{ "array_max_failures", t_array_max_failures },
	{ "pipeline", t_pipeline },
	{ "pipeline_fail_fast", t_pipeline_fail_fast },
	{ "pipeline_cancel", t_pipeline_cancel },
	{ "pipeline_max_failures", t_pipeline_max_failures },
	{ "skip_duplicate", t_skip_duplicate },
	{ "retry_elsewhere", t_retry_elsewhere },
	{ "start_timeout", t_start_timeout },
	{ "blocklist", t_blocklist },
	{ "agent_control", t_agent_control },
	{ "agent_sleep_schedule", t_agent_sleep_schedule },
	{ "logs", t_logs },
	{ "metrics", t_metrics },
	{ "artifacts", t_artifacts },
	{ "bundles", t_bundles },
	{ "finish", t_finish },
	{ "retry_policy", t_retry_policy },
	{ "retry_op", t_retry_op },
	{ "lost_requeue_superseded", t_lost_requeue_superseded },
	{ "lost_limit", t_lost_limit },
	{ "held_runs", t_held_runs },
	{ "lost_while_canceling", t_lost_while_canceling },
	{ "heartbeat_keeps_lease", t_heartbeat_keeps_lease },
	{ "timeout_backstop", t_timeout_backstop },
	{ "events", t_events },
	{ "agents_status", t_agents_status },
};

int conformance_main(const struct conformance_target *t, int argc, char **argv)
{
	T = t;
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("# api conformance: %s\n", t->name);
	for (size_t i = 0; i < ARRAY_SIZE(tests); i++) {
		bool want = argc <= 1;
		for (int a = 1; a < argc; a++)
			want |= !strcmp(argv[a], tests[i].name);
		if (!want)
			continue;
		struct ctx c;
		cur_test = tests[i].name;
		ctx_init(&c);
		int64_t t0 = pilot_mono_ms();
		tests[i].fn(&c);
		diag("%s: %lld ms", tests[i].name, (long long)(pilot_mono_ms() - t0));
		ctx_free(&c);
	}
	printf("1..%d\n", n_checks);
	return n_failed ? 1 : 0;
}
