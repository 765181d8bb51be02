/* Unit tests for lib/store: the whole transition matrix, schema versions, damaged
 * files, file modes, tokens, the reaper's restart delay, counters, and a kill -9 in
 * the middle of submits. (The api rules themselves are in tests/conformance.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "pilot/store.h"
#include "pilot/util.h"

static char dir[64];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/pilot-test-store.XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	pilot_rm_rf(dir);
	return 0;
}

static struct pilot_store *open_store(const struct pilot_local_options *o)
{
	struct pilot_store *st = NULL;
	/* The runs of these tests fail on one agent again and again: no blocklist. */
	struct pilot_local_options def = { .actor = "tester", .blocklist_after = -1 };
	int r = pilot_store_open(dir, o ? o : &def, &st);
	if (r < 0)
		fail_msg("open: %s", pilot_error_last());
	return st;
}

static void submit(struct pilot_store *st, int64_t not_before, char id[PILOT_ID_SIZE])
{
	struct pilot_submit_request q = { .name = "job", .spec_json = "{}", .not_before_ms = not_before };
	struct pilot_run r = { 0 };
	assert_int_equal(pilot_store_submit(st, &q, &r), 0);
	memcpy(id, r.id, PILOT_ID_SIZE);
	pilot_run_clear(&r);
}

static enum pilot_run_state state_of(struct pilot_store *st, const char *id)
{
	struct pilot_run r = { 0 };
	assert_int_equal(pilot_store_get_run(st, id, &r), 0);
	enum pilot_run_state s = r.state;
	pilot_run_clear(&r);
	return s;
}

static size_t event_count(struct pilot_store *st, const char *id)
{
	struct pilot_event_filter f = { .run = id, .limit = 1000 };
	struct pilot_event_list l = { 0 };
	assert_int_equal(pilot_store_list_events(st, &f, &l), 0);
	size_t n = l.n;
	pilot_event_list_clear(&l);
	return n;
}

/* A fresh run in the given state, reached by legal paths. */
static void make_run_in(struct pilot_store *st, enum pilot_run_state s, char id[PILOT_ID_SIZE])
{
	submit(st, s == PILOT_RUN_WAITING ? pilot_now_ms() + 3600000 : 0, id);
	if (s == PILOT_RUN_QUEUED || s == PILOT_RUN_WAITING)
		return;
	if (s == PILOT_RUN_CANCELED) {
		assert_int_equal(pilot_store_cancel(st, id, NULL, PILOT_CANCEL_GRACE_AGENT, NULL), 0);
		return;
	}
	if (s == PILOT_RUN_SKIPPED) {
		/* A duplicate of the queued run just made. */
		struct pilot_submit_request q = { .name = "job", .spec_json = "{}", .skip_duplicate = true };
		struct pilot_run r = { 0 };
		assert_int_equal(pilot_store_submit(st, &q, &r), 0);
		assert_int_equal(r.state, PILOT_RUN_SKIPPED);
		memcpy(id, r.id, PILOT_ID_SIZE);
		pilot_run_clear(&r);
		return;
	}
	struct pilot_claim_request q = { .agent = "a1" };
	struct pilot_claim c = { 0 };
	/* Earlier runs of the matrix are still queued: claim until this one comes up. */
	for (;;) {
		assert_int_equal(pilot_store_claim(st, &q, &c), 1);
		bool mine = !strcmp(c.run.id, id);
		if (!mine) {
			struct pilot_finish f = { .state = PILOT_ATTEMPT_SUCCEEDED };
			assert_int_equal(pilot_store_finish(st, c.attempt_id, c.lease_token, &f, NULL), 0);
			pilot_claim_clear(&c);
			continue;
		}
		break;
	}
	if (s == PILOT_RUN_CANCELING)
		assert_int_equal(pilot_store_cancel(st, id, NULL, PILOT_CANCEL_GRACE_AGENT, NULL), 0);
	if (s == PILOT_RUN_SUCCEEDED || s == PILOT_RUN_FAILED) {
		struct pilot_finish f = { .state = s == PILOT_RUN_SUCCEEDED ? PILOT_ATTEMPT_SUCCEEDED : PILOT_ATTEMPT_FAILED,
					  .reason = s == PILOT_RUN_FAILED ? PILOT_REASON_RUNTIME_ERROR : PILOT_REASON_NONE };
		assert_int_equal(pilot_store_finish(st, c.attempt_id, c.lease_token, &f, NULL), 0);
	}
	pilot_claim_clear(&c);
	assert_int_equal(state_of(st, id), s);
}

static void test_transition_matrix(void **state)
{
	(void)state;
	/* The table of design §4, written out independently of the store's. */
	static const char *const legal[] = {
		"queued>running", "queued>canceled", "queued>failed", "queued>skipped",
		"waiting>queued", "waiting>canceled", "waiting>failed", "waiting>skipped",
		"running>succeeded", "running>failed", "running>canceled", "running>canceling", "running>waiting",
		"running>queued",
		"canceling>canceled", "canceling>succeeded",
	};
	struct pilot_store *st = open_store(NULL);
	int checked = 0;
	for (int from = 0; from < PILOT_RUN_NSTATES; from++) {
		for (int to = 0; to < PILOT_RUN_NSTATES; to++) {
			char name[64];
			snprintf(name, sizeof(name), "%s>%s", pilot_run_state_name(from), pilot_run_state_name(to));
			bool want = false;
			for (size_t i = 0; i < ARRAY_SIZE(legal); i++)
				want |= !strcmp(legal[i], name);
			if (pilot_run_transition_allowed(from, to) != want)
				fail_msg("transition %s: table says %d", name, !want);
			char id[PILOT_ID_SIZE];
			make_run_in(st, from, id);
			size_t events = event_count(st, id);
			enum pilot_reason reason = pilot_run_state_terminal(to) ? PILOT_REASON_CANCELED : PILOT_REASON_NONE;
			int r = pilot_store_transition(st, id, to, reason, "tester", "matrix");
			if (want) {
				if (r != 0)
					fail_msg("transition %s refused: %s", name, pilot_error_last());
				assert_int_equal(state_of(st, id), to);
				assert_int_equal(event_count(st, id), events + 1);
			} else {
				if (r != PILOT_ECONFLICT)
					fail_msg("transition %s: got %d, wanted a conflict", name, r);
				assert_int_equal(state_of(st, id), from);
				assert_int_equal(event_count(st, id), events);
			}
			checked++;
		}
	}
	assert_int_equal(checked, PILOT_RUN_NSTATES * PILOT_RUN_NSTATES);
	/* A terminal state without a reason, or a live one with one, is refused. */
	char id[PILOT_ID_SIZE];
	make_run_in(st, PILOT_RUN_QUEUED, id);
	assert_int_equal(pilot_store_transition(st, id, PILOT_RUN_CANCELED, PILOT_REASON_NONE, NULL, NULL), PILOT_EINVALID);
	assert_int_equal(state_of(st, id), PILOT_RUN_QUEUED);
	pilot_store_close(st);
}

static void test_counts_match(void **state)
{
	(void)state;
	struct pilot_store *st = open_store(NULL);
	char id[PILOT_ID_SIZE];
	for (int s = 0; s < PILOT_RUN_NSTATES; s++)
		for (int k = 0; k <= s; k++)
			make_run_in(st, s, id);
	struct pilot_status stt = { 0 };
	assert_int_equal(pilot_store_status(st, &stt), 0);
	for (int s = 0; s < PILOT_RUN_NSTATES; s++) {
		struct pilot_run_filter f = { .states = PILOT_RUN_STATE_BIT(s), .limit = 1000 };
		struct pilot_run_list l = { 0 };
		assert_int_equal(pilot_store_list_runs(st, &f, &l), 0);
		if ((int64_t)l.n != stt.counts[s])
			fail_msg("state %s: status says %lld, list finds %zu", pilot_run_state_name(s),
				 (long long)stt.counts[s], l.n);
		pilot_run_list_clear(&l);
	}
	pilot_status_clear(&stt);
	pilot_store_close(st);
}

static void test_files_and_modes(void **state)
{
	(void)state;
	pilot_rm_rf(dir);
	struct pilot_store *st = open_store(NULL);
	struct stat sb;
	assert_int_equal(stat(dir, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0700);
	assert_int_equal(stat(pilot_store_db_path(st), &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_non_null(pilot_store_blobs(st));
	assert_int_equal(pilot_store_options(st)->lease_ttl_ms, 60000);
	assert_int_equal(pilot_store_options(st)->max_lost, 3);
	assert_int_equal(pilot_store_integrity_check(st), 0);
	pilot_store_close(st);
	pilot_store_close(NULL);
}

static void set_user_version(const char *path, int v)
{
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	char sql[64];
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

static void test_schema_versions(void **state)
{
	(void)state;
	struct pilot_store *st = open_store(NULL);
	_cleanup_free_ char *path = pilot_xstrdup(pilot_store_db_path(st));
	pilot_store_close(st);
	set_user_version(path, PILOT_STORE_SCHEMA_VERSION + 5);
	st = NULL;
	assert_int_equal(pilot_store_open(dir, NULL, &st), PILOT_EINVALID);
	assert_null(st);
	assert_non_null(strstr(pilot_error_last(), path));
	assert_non_null(strstr(pilot_error_last(), "newer"));
	assert_non_null(strstr(pilot_error_last(), "upgrade pilot"));
}

static void test_damaged_files(void **state)
{
	(void)state;
	_cleanup_free_ char *path = pilot_path_join(dir, "pilot.db");
	const char junk[] = "this is not a database, just some text that is long enough to have a header";
	char big[8192];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = junk[i % (sizeof(junk) - 1)];
	assert_int_equal(pilot_write_file_atomic(path, big, sizeof(big), 0600), 0);
	struct pilot_store *st = NULL;
	assert_true(pilot_store_open(dir, NULL, &st) < 0);
	assert_non_null(strstr(pilot_error_last(), path));

	/* A real database with a page overwritten: quick_check refuses it. */
	pilot_rm_rf(dir);
	st = open_store(NULL);
	char id[PILOT_ID_SIZE];
	for (int i = 0; i < 300; i++)
		submit(st, 0, id);
	pilot_store_close(st);
	/* Checkpoint the WAL into the file so the damage is in what is read. */
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode=DELETE", NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(db);
	int fd = open(path, O_WRONLY);
	struct stat sb;
	fstat(fd, &sb);
	assert_true(sb.st_size > 4 * 4096);
	char garbage[4096];
	memset(garbage, 0x5a, sizeof(garbage));
	assert_int_equal(pwrite(fd, garbage, sizeof(garbage), sb.st_size / 2 / 4096 * 4096), (ssize_t)sizeof(garbage));
	close(fd);
	struct pilot_local_options o = { .quick_check = 1 };
	st = NULL;
	assert_true(pilot_store_open(dir, &o, &st) < 0);
	assert_null(st);
	assert_non_null(strstr(pilot_error_last(), "damaged"));
	assert_non_null(strstr(pilot_error_last(), path));
}

static void test_concurrent_first_open(void **state)
{
	(void)state;
	pilot_rm_rf(dir);
	pid_t pids[6];
	for (int i = 0; i < 6; i++) {
		pids[i] = fork();
		if (pids[i] == 0) {
			struct pilot_store *st = NULL;
			if (pilot_store_open(dir, NULL, &st) < 0)
				_exit(1);
			char id[PILOT_ID_SIZE];
			struct pilot_submit_request q = { .name = "x", .spec_json = "{}" };
			struct pilot_run r = { 0 };
			int rc = pilot_store_submit(st, &q, &r);
			(void)id;
			pilot_run_clear(&r);
			pilot_store_close(st);
			_exit(rc < 0);
		}
	}
	for (int i = 0; i < 6; i++) {
		int ws;
		waitpid(pids[i], &ws, 0);
		assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
	}
	struct pilot_store *st = open_store(NULL);
	struct pilot_run_list l = { 0 };
	assert_int_equal(pilot_store_list_runs(st, NULL, &l), 0);
	assert_int_equal(l.n, 6);
	pilot_run_list_clear(&l);
	pilot_store_close(st);
}

static void test_tokens(void **state)
{
	(void)state;
	struct pilot_store *st = open_store(NULL);
	char h1[65], h2[65], h3[65];
	pilot_sha256_hex("secret1", 7, h1);
	pilot_sha256_hex("secret2", 7, h2);
	pilot_sha256_hex("secret3", 7, h3);
	struct pilot_token_record t = { 0 };
	assert_int_equal(pilot_store_token_create(st, "ci", h1, "read submit", 0, NULL, false, &t), 0);
	assert_int_equal(t.id[0], 't');
	assert_string_equal(t.name, "ci");
	assert_string_equal(t.scopes, "read submit");
	char id[PILOT_ID_SIZE];
	memcpy(id, t.id, sizeof(id));
	pilot_token_record_clear(&t);
	assert_int_equal(pilot_store_token_create(st, "ci", h2, "read", 0, NULL, false, NULL), PILOT_ECONFLICT);
	assert_int_equal(pilot_store_token_create(st, "other", h1, "read", 0, NULL, false, NULL), PILOT_ECONFLICT);
	assert_int_equal(pilot_store_token_create(st, "", h2, "read", 0, NULL, false, NULL), PILOT_EINVALID);
	assert_int_equal(pilot_store_token_create(st, "x", "nothex", "read", 0, NULL, false, NULL), PILOT_EINVALID);
	assert_int_equal(pilot_store_token_lookup(st, h1, &t), 0);
	assert_string_equal(t.id, id);
	assert_true(t.last_used_ms > 0);
	pilot_token_record_clear(&t);
	assert_int_equal(pilot_store_token_lookup(st, h2, &t), PILOT_EAUTH);
	assert_int_equal(pilot_store_token_create(st, "old", h3, "agent", pilot_now_ms() - 1, NULL, false, NULL), 0);
	assert_int_equal(pilot_store_token_lookup(st, h3, &t), PILOT_EAUTH);
	struct pilot_token_list l = { 0 };
	assert_int_equal(pilot_store_token_list(st, &l), 0);
	assert_int_equal(l.n, 2);
	pilot_token_list_clear(&l);
	assert_int_equal(pilot_store_token_revoke(st, "ci"), 0);
	assert_int_equal(pilot_store_token_revoke(st, id), 0);
	assert_int_equal(pilot_store_token_lookup(st, h1, &t), PILOT_EAUTH);
	assert_int_equal(pilot_store_token_revoke(st, "nope"), PILOT_ENOTFOUND);
	/* A revoked token's name may be used again. */
	assert_int_equal(pilot_store_token_create(st, "ci", h2, "read", 0, NULL, false, NULL), 0);
	/* Bound to an agent; a replacement revokes the live token of that name at once. */
	char h4[65], h5[65];
	pilot_sha256_hex("secret4", 7, h4);
	pilot_sha256_hex("secret5", 7, h5);
	assert_int_equal(pilot_store_token_create(st, "agent-a1", h4, "agent", 0, "a1", false, &t), 0);
	assert_string_equal(t.agent, "a1");
	pilot_token_record_clear(&t);
	assert_int_equal(pilot_store_token_create(st, "agent-a1", h5, "agent", 0, "a1", false, NULL), PILOT_ECONFLICT);
	assert_int_equal(pilot_store_token_create(st, "agent-a1", h5, "agent", 0, "a1", true, NULL), 0);
	assert_int_equal(pilot_store_token_lookup(st, h4, &t), PILOT_EAUTH);
	assert_int_equal(pilot_store_token_lookup(st, h5, &t), 0);
	assert_string_equal(t.agent, "a1");
	pilot_token_record_clear(&t);
	pilot_store_close(st);
}

static void sleep_ms(int64_t ms)
{
	struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static void test_reap_delay(void **state)
{
	(void)state;
	struct pilot_local_options quick = { .lease_ttl_ms = 100 };
	struct pilot_store *st = open_store(&quick);
	char id[PILOT_ID_SIZE];
	submit(st, 0, id);
	struct pilot_claim_request q = { .agent = "a1" };
	struct pilot_claim c = { 0 };
	assert_int_equal(pilot_store_claim(st, &q, &c), 1);
	pilot_claim_clear(&c);
	pilot_store_close(st);
	sleep_ms(200);
	/* A restarted server waits one TTL before reaping: the lease looks expired only
	 * because nobody could renew it while it was down. */
	struct pilot_local_options restarted = { .lease_ttl_ms = 100, .reap_delay_ms = 60000 };
	st = open_store(&restarted);
	assert_false(pilot_store_reap_due(st));
	assert_int_equal(pilot_store_reap(st), 0);
	assert_int_equal(state_of(st, id), PILOT_RUN_RUNNING);
	pilot_store_close(st);
	st = open_store(&quick);
	assert_true(pilot_store_reap_due(st));
	assert_int_equal(pilot_store_reap(st), 1);
	assert_int_equal(state_of(st, id), PILOT_RUN_QUEUED);
	assert_false(pilot_store_reap_due(st));
	pilot_store_close(st);
}

/* start_timeout fails a run no agent could take; not one a server's pool launches
 * machines for. */
static void test_start_timeout_pools(void **state)
{
	(void)state;
	struct pilot_store *st = open_store(NULL);
	struct pilot_kvs pool = { 0 };
	pilot_kvs_set(&pool, "gpu", "a100");
	pilot_kvs_set(&pool, "zone", "x");
	pilot_store_set_pool_labels(st, &pool, 1);
	pilot_kvs_clear(&pool);
	char ids[2][PILOT_ID_SIZE];
	static const char *const gpus[] = { "a100", "h100" };
	for (int i = 0; i < 2; i++) {
		struct pilot_submit_request q = { .name = "job", .spec_json = "{}", .start_timeout_ms = 100 };
		pilot_kvs_set(&q.requires, "gpu", gpus[i]);
		struct pilot_run r = { 0 };
		assert_int_equal(pilot_store_submit(st, &q, &r), 0);
		memcpy(ids[i], r.id, PILOT_ID_SIZE);
		pilot_run_clear(&r);
		pilot_kvs_clear(&q.requires);
	}
	sleep_ms(200);
	assert_true(pilot_store_reap_due(st));
	assert_int_equal(pilot_store_reap(st), 1);
	assert_int_equal(state_of(st, ids[0]), PILOT_RUN_QUEUED);
	assert_int_equal(state_of(st, ids[1]), PILOT_RUN_FAILED);
	/* Without the pool, the first fails too. */
	pilot_store_set_pool_labels(st, NULL, 0);
	sleep_ms(200);
	assert_int_equal(pilot_store_reap(st), 1);
	assert_int_equal(state_of(st, ids[0]), PILOT_RUN_FAILED);
	pilot_store_close(st);
}

static void test_env_knobs(void **state)
{
	(void)state;
	setenv("PILOT_LEASE_TTL", "2s", 1);
	setenv("PILOT_BACKOFF_BASE", "250ms", 1);
	setenv("PILOT_MAX_LOST", "7", 1);
	struct pilot_store *st = open_store(NULL);
	assert_int_equal(pilot_store_options(st)->lease_ttl_ms, 2000);
	assert_int_equal(pilot_store_options(st)->backoff_base_ms, 250);
	assert_int_equal(pilot_store_options(st)->max_lost, 7);
	pilot_store_close(st);
	struct pilot_local_options o = { .lease_ttl_ms = 5000 };
	st = open_store(&o);
	assert_int_equal(pilot_store_options(st)->lease_ttl_ms, 5000);
	pilot_store_close(st);
	unsetenv("PILOT_LEASE_TTL");
	unsetenv("PILOT_BACKOFF_BASE");
	unsetenv("PILOT_MAX_LOST");
}

static void test_kill_during_submits(void **state)
{
	(void)state;
	for (int round = 0; round < 3; round++) {
		int p[2];
		assert_int_equal(pipe(p), 0);
		pid_t pid = fork();
		if (pid == 0) {
			close(p[0]);
			struct pilot_store *st = NULL;
			if (pilot_store_open(dir, NULL, &st) < 0)
				_exit(1);
			for (int i = 0; i < 1000; i++) {
				struct pilot_submit_request q = { .name = "crash", .spec_json = "{}" };
				struct pilot_run r = { 0 };
				if (pilot_store_submit(st, &q, &r) < 0)
					_exit(1);
				/* Acknowledged only now. */
				if (write(p[1], r.id, PILOT_ID_LEN) != PILOT_ID_LEN)
					_exit(1);
				pilot_run_clear(&r);
			}
			_exit(0);
		}
		close(p[1]);
		char (*ids)[PILOT_ID_SIZE] = pilot_xcalloc(1000, PILOT_ID_SIZE);
		int n = 0, want = 100 + round * 150;
		while (n < 1000) {
			char buf[PILOT_ID_LEN];
			size_t got = 0;
			while (got < sizeof(buf)) {
				ssize_t k = read(p[0], buf + got, sizeof(buf) - got);
				if (k <= 0)
					break;
				got += (size_t)k;
			}
			if (got < sizeof(buf))
				break;
			memcpy(ids[n], buf, PILOT_ID_LEN);
			ids[n++][PILOT_ID_LEN] = '\0';
			if (n == want)
				kill(pid, SIGKILL);
		}
		close(p[0]);
		waitpid(pid, NULL, 0);
		assert_true(n >= want);
		struct pilot_store *st = open_store(NULL);
		for (int i = 0; i < n; i++) {
			struct pilot_run r = { 0 };
			if (pilot_store_get_run(st, ids[i], &r) < 0)
				fail_msg("round %d: acknowledged run %s is missing: %s", round, ids[i], pilot_error_last());
			pilot_run_clear(&r);
		}
		assert_int_equal(pilot_store_integrity_check(st), 0);
		pilot_store_close(st);
		free(ids);
	}
}

/* Two handles in one process, then another process writing and closing: every write
 * stays visible to everyone. (The store once closed a descriptor of the database file
 * while opening, dropping the other handles' locks; an agent's run then lost a cancel.
 * This interleaving did not show that bug; it guards the visibility it needs.) */
static void test_two_handles_one_process(void **state)
{
	(void)state;
	struct pilot_store *a = open_store(NULL), *b = open_store(NULL);
	char first[PILOT_ID_SIZE], mine[PILOT_ID_SIZE];
	submit(a, 0, first);
	pid_t pid = fork();
	if (pid == 0) {
		struct pilot_store *c = open_store(NULL);
		char other[PILOT_ID_SIZE];
		submit(c, 0, other);
		pilot_store_close(c);
		_exit(0);
	}
	int wst;
	waitpid(pid, &wst, 0);
	assert_true(WIFEXITED(wst) && WEXITSTATUS(wst) == 0);
	submit(a, 0, mine);
	pid = fork();
	if (pid == 0) {
		struct pilot_store *c = open_store(NULL);
		struct pilot_run r = { 0 };
		int rc = pilot_store_get_run(c, mine, &r);
		pilot_run_clear(&r);
		pilot_store_close(c);
		_exit(rc == 0 ? 0 : 1);
	}
	waitpid(pid, &wst, 0);
	assert_true(WIFEXITED(wst));
	assert_int_equal(WEXITSTATUS(wst), 0); /* another process sees the write */
	pilot_store_close(b);
	pilot_store_close(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_transition_matrix, setup, teardown),
		cmocka_unit_test_setup_teardown(test_counts_match, setup, teardown),
		cmocka_unit_test_setup_teardown(test_files_and_modes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_schema_versions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_first_open, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tokens, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reap_delay, setup, teardown),
		cmocka_unit_test_setup_teardown(test_start_timeout_pools, setup, teardown),
		cmocka_unit_test_setup_teardown(test_env_knobs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kill_during_submits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_handles_one_process, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
