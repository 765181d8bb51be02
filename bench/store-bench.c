/* Store benchmark: prints a table of figures for the local store.
 *
 *   store-bench [--runs N] [--pilot PATH]
 *
 * 1. submits, claims and finishes through the api, one process (fsync-bound);
 * 2. a store of N runs (default 1,000,000, written straight into SQLite in one
 *    transaction, as the store's own schema lays them out), then the time to open it
 *    and list the newest 50 as JSON (what `pilot list --output json` does), a page deep
 *    in the keyset, a state filter, an id prefix lookup, status; with --pilot, the
 *    wall time of the real command too. */
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "pilot/api.h"
#include "pilot/store.h"

/* Microseconds, for figures below a millisecond. */
static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static double ms_since(int64_t t0)
{
	return (double)(now_us() - t0) / 1000.0;
}

static void row(const char *what, double ms, long n)
{
	if (n > 0)
		printf("%-44s %10.2f ms  %10.0f /s\n", what, ms, ms > 0 ? n * 1000.0 / ms : 0.0);
	else
		printf("%-44s %10.2f ms\n", what, ms);
}

static void api_rates(const char *dir)
{
	struct pilot_api *api;
	struct pilot_local_options o = { .actor = "bench" };
	if (pilot_api_open_local(dir, &o, &api) < 0) {
		fprintf(stderr, "open: %s\n", pilot_error_last());
		exit(1);
	}
	enum { N = 1000 };
	int64_t t0 = now_us();
	for (int i = 0; i < N; i++) {
		struct pilot_submit_request q = { .name = "bench", .spec_json = "{\"name\":\"bench\"}" };
		if (pilot_api_submit(api, &q, NULL) < 0)
			exit(1);
	}
	row("submit (1 process)", ms_since(t0), N);
	t0 = now_us();
	for (int i = 0; i < N; i++) {
		struct pilot_claim_request q = { .agent = "bench-agent" };
		struct pilot_claim c = { 0 };
		if (pilot_api_claim(api, &q, &c) != 1)
			exit(1);
		struct pilot_finish f = { .state = PILOT_ATTEMPT_SUCCEEDED };
		if (pilot_api_finish(api, c.attempt_id, c.lease_token, &f, NULL) < 0)
			exit(1);
		pilot_claim_clear(&c);
	}
	row("claim + finish (1 process)", ms_since(t0), N);
	t0 = now_us();
	struct pilot_claim_request q = { .agent = "bench-agent" };
	struct pilot_claim c = { 0 };
	for (int i = 0; i < N; i++)
		pilot_api_claim(api, &q, &c);
	row("empty claim poll (read-only)", ms_since(t0), N);
	pilot_api_close(api);
}

static void fill(const char *dir, long n)
{
	struct pilot_store *st;
	if (pilot_store_open(dir, NULL, &st) < 0)
		exit(1);
	_cleanup_free_ char *path = pilot_xstrdup(pilot_store_db_path(st));
	pilot_store_close(st);
	sqlite3 *db;
	sqlite3_open(path, &db);
	sqlite3_exec(db, "PRAGMA synchronous=OFF; BEGIN", NULL, NULL, NULL);
	sqlite3_stmt *s;
	sqlite3_prepare_v2(db,
			   "INSERT INTO runs(id, name, spec_json, state, reason, created_ms, started_ms, finished_ms, "
			   "updated_ms, attempt_count, agent) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7, ?7, 1, 'agent-1')",
			   -1, &s, NULL);
	static const char *const names[] = { "train", "eval", "etl", "report" };
	int64_t base = pilot_now_ms() - n * 1000;
	for (long i = 0; i < n; i++) {
		char id[PILOT_ID_SIZE];
		/* Ids as the store makes them: increasing, time first. */
		static const char b32[] = "0123456789abcdefghjkmnpqrstvwxyz";
		uint64_t t = (uint64_t)(base + i * 1000 - 1735689600000LL);
		id[0] = 'r';
		for (int k = 9; k >= 1; k--) {
			id[k] = b32[t & 31];
			t >>= 5;
		}
		memcpy(id + 10, "00000", 5);
		id[15] = '\0';
		bool failed = i % 10 == 3;
		sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(s, 2, names[i % 4], -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 3, "{\"name\":\"bench\",\"command\":\"python train.py --lr 0.1\"}", -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 4, failed ? "failed" : "succeeded", -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 5, "exit_code", -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 6, base + i * 1000);
		sqlite3_bind_int64(s, 7, base + i * 1000 + 500);
		sqlite3_step(s);
		sqlite3_reset(s);
	}
	sqlite3_finalize(s);
	char sql[256];
	snprintf(sql, sizeof(sql),
		 "INSERT OR REPLACE INTO run_counts VALUES ('succeeded', %ld), ('failed', %ld); COMMIT; "
		 "PRAGMA wal_checkpoint(TRUNCATE)",
		 n - (n + 6) / 10, (n + 6) / 10);
	sqlite3_exec(db, sql, NULL, NULL, NULL);
	sqlite3_close(db);
}

static void big_store(const char *dir, long n, const char *pilot)
{
	int64_t t0 = now_us();
	fill(dir, n);
	char what[64];
	snprintf(what, sizeof(what), "write %ld runs (bulk, one transaction)", n);
	row(what, ms_since(t0), n);

	struct pilot_api *api;
	t0 = now_us();
	if (pilot_api_open_local(dir, NULL, &api) < 0)
		exit(1);
	row("open the store", ms_since(t0), 0);
	t0 = now_us();
	struct pilot_run_filter f = { .limit = 50 };
	struct pilot_run_list l = { 0 };
	pilot_api_list_runs(api, &f, &l);
	json_t *j = pilot_run_list_to_json(&l);
	char *text = json_dumps(j, JSON_INDENT(2));
	row("list newest 50 + JSON", ms_since(t0), 0);
	char cursor[PILOT_ID_SIZE];
	memcpy(cursor, l.items[l.n - 1].id, PILOT_ID_SIZE);
	free(text);
	json_decref(j);
	pilot_run_list_clear(&l);
	t0 = now_us();
	for (int page = 0; page < 100; page++) {
		f.after = cursor;
		pilot_api_list_runs(api, &f, &l);
		memcpy(cursor, l.next_after, PILOT_ID_SIZE);
		pilot_run_list_clear(&l);
	}
	row("100 more pages of 50 (keyset)", ms_since(t0), 0);
	struct pilot_run_filter ff = { .limit = 50, .states = PILOT_RUN_STATE_BIT(PILOT_RUN_FAILED) };
	t0 = now_us();
	pilot_api_list_runs(api, &ff, &l);
	pilot_run_list_clear(&l);
	row("list --state failed (newest 50)", ms_since(t0), 0);
	struct pilot_run_filter fn = { .limit = 50, .name = "eval" };
	t0 = now_us();
	pilot_api_list_runs(api, &fn, &l);
	pilot_run_list_clear(&l);
	row("list --name eval (newest 50)", ms_since(t0), 0);
	struct pilot_run_filter fs = { .limit = 50, .since_ms = pilot_now_ms() - 3600 * 1000 };
	t0 = now_us();
	pilot_api_list_runs(api, &fs, &l);
	pilot_run_list_clear(&l);
	row("list --since 1h", ms_since(t0), 0);
	char prefix[12];
	memcpy(prefix, cursor, 11);
	prefix[11] = '\0';
	struct pilot_run r = { 0 };
	t0 = now_us();
	pilot_api_get_run(api, prefix, &r);
	row("get by an 11-character prefix", ms_since(t0), 0);
	pilot_run_clear(&r);
	struct pilot_status s = { 0 };
	t0 = now_us();
	pilot_api_status(api, &s);
	row("status", ms_since(t0), 0);
	pilot_status_clear(&s);
	pilot_api_close(api);

	if (pilot) {
		fflush(stdout);
		t0 = now_us();
		pid_t pid = fork();
		if (pid == 0) {
			setenv("PILOT_DATA_DIR", dir, 1);
			if (!freopen("/dev/null", "w", stdout))
				_exit(127);
			execl(pilot, pilot, "list", "--output", "json", (char *)NULL);
			_exit(127);
		}
		int ws;
		waitpid(pid, &ws, 0);
		row("`pilot list --output json` (whole process)", ms_since(t0), 0);
	}
}

int main(int argc, char **argv)
{
	long n = 1000000;
	const char *pilot = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--runs") && i + 1 < argc)
			n = strtol(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--pilot") && i + 1 < argc)
			pilot = argv[++i];
	}
	char dir[] = "/tmp/pilot-bench.XXXXXX";
	if (!mkdtemp(dir))
		return 1;
	_cleanup_free_ char *a = pilot_path_join(dir, "api");
	_cleanup_free_ char *b = pilot_path_join(dir, "big");
	printf("%-44s %13s  %13s\n", "operation", "time", "rate");
	api_rates(a);
	big_store(b, n, pilot);
	pilot_rm_rf(dir);
	return 0;
}
