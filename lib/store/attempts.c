/* What agents write for an attempt under its lease (heartbeats, log bytes, artifacts,
 * metrics, the finish) and the matching reads (logs, artifacts, metrics, events).
 * Every write goes through lease_write: one transaction that checks the lease first
 * and changes nothing when it is superseded. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#define MAX_LOG_APPEND (8u << 20)
#define MAX_METRICS_PUT 10000

void lease_clear(struct lease *l)
{
	free(l->agent);
	l->agent = NULL;
}

int lease_check(struct pilot_store *st, const char *attempt_id, const char *token, bool require_running,
		struct lease *out)
{
	static const char sql[] = "SELECT run_id, number, agent, token_sha256, state, reason, exit_code, log_bytes, "
				  "metric_count, requeue FROM attempts WHERE id = ?1";
	if (!attempt_id || !pilot_id_valid(attempt_id, false))
		return pilot_error_set(PILOT_ENOTFOUND, "attempt '%s' not found", attempt_id ? attempt_id : "");
	sqlite3_stmt *s = db_stmt(st, sql);
	if (!s)
		return pilot_error_code();
	bind_text(s, 1, attempt_id);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_DONE) {
		sqlite3_reset(s);
		return pilot_error_set(PILOT_ENOTFOUND, "attempt '%s' not found", attempt_id);
	}
	if (rc != SQLITE_ROW)
		return db_error(st, "cannot read attempt");
	memset(out, 0, sizeof(*out));
	snprintf(out->attempt_id, sizeof(out->attempt_id), "%s", attempt_id);
	col_copy_id(s, 0, out->run_id);
	out->number = (int)col_int(s, 1);
	out->agent = col_dup(s, 2);
	char sha[65];
	pilot_sha256_hex(token ? token : "", token ? strlen(token) : 0, sha);
	bool token_ok = !strcmp(sha, col_text(s, 3));
	pilot_attempt_state_from_name(col_text(s, 4), &out->state);
	pilot_reason_from_name(col_text(s, 5), &out->reason);
	out->has_exit_code = sqlite3_column_type(s, 6) != SQLITE_NULL;
	out->exit_code = (int)col_int(s, 6);
	out->log_bytes = col_int(s, 7);
	out->metric_count = col_int(s, 8);
	out->requeue = col_int(s, 9) != 0;
	sqlite3_reset(s);
	if (!token_ok) {
		lease_clear(out);
		return pilot_error_set(PILOT_ECONFLICT, "attempt '%s' superseded: the lease token does not match",
				       attempt_id);
	}
	if (out->state == PILOT_ATTEMPT_LOST) {
		lease_clear(out);
		return pilot_error_set(PILOT_ECONFLICT, "attempt '%s' superseded: its lease expired and it was marked lost",
				       attempt_id);
	}
	if (require_running && out->state != PILOT_ATTEMPT_RUNNING) {
		int r = pilot_error_set(PILOT_ECONFLICT, "attempt '%s' superseded: it already finished (%s)", attempt_id,
					pilot_attempt_state_name(out->state));
		lease_clear(out);
		return r;
	}
	return 0;
}

int lease_write(struct pilot_store *st, const char *attempt_id, const char *token, bool require_running,
		lease_write_fn write, void *ud)
{
	STORE_LOCKED(st);
	struct lease l;
	int r = db_begin(st, true);
	if (r < 0)
		return r;
	if ((r = lease_check(st, attempt_id, token, require_running, &l)) < 0) {
		db_rollback(st);
		return r;
	}
	r = write(st, &l, ud);
	lease_clear(&l);
	if (r < 0) {
		db_rollback(st);
		return r;
	}
	return db_commit(st);
}

static int touch_agent_seen(struct pilot_store *st, const char *agent)
{
	static const char sql[] = "UPDATE agents SET last_seen_ms = ?2 WHERE name = ?1";
	sqlite3_stmt *s = db_stmt(st, sql);
	if (!s)
		return pilot_error_code();
	bind_text(s, 1, agent);
	bind_int(s, 2, store_now());
	return db_done(st, s, "cannot update agent");
}

struct heartbeat {
	int64_t now;
	struct pilot_heartbeat_reply reply;
};

static int heartbeat_write(struct pilot_store *st, const struct lease *l, void *ud)
{
	static const char upd[] = "UPDATE attempts SET heartbeat_ms = ?2, lease_expires_ms = ?3 WHERE id = ?1";
	static const char cancel[] = "SELECT cancel_requested, cancel_grace_ms FROM runs WHERE id = ?1";
	struct heartbeat *h = ud;
	sqlite3_stmt *s = db_stmt(st, upd);
	if (!s)
		return pilot_error_code();
	bind_text(s, 1, l->attempt_id);
	bind_int(s, 2, h->now);
	bind_int(s, 3, h->now + st->opt.lease_ttl_ms);
	int r;
	if ((r = db_done(st, s, "cannot renew lease")) < 0 || (r = touch_agent_seen(st, l->agent)) < 0)
		return r;
	if (!(s = db_stmt(st, cancel)))
		return pilot_error_code();
	bind_text(s, 1, l->run_id);
	h->reply.cancel_grace_ms = PILOT_CANCEL_GRACE_AGENT;
	if (sqlite3_step(s) == SQLITE_ROW) {
		h->reply.cancel_requested = col_int(s, 0) != 0;
		if (h->reply.cancel_requested && sqlite3_column_type(s, 1) != SQLITE_NULL)
			h->reply.cancel_grace_ms = col_int(s, 1);
	}
	sqlite3_reset(s);
	/* A cancel of the run wins over a requeue: the run ends canceled. */
	if (l->requeue && !h->reply.cancel_requested)
		h->reply.cancel_requested = h->reply.requeue = true;
	h->reply.lease_expires_ms = h->now + st->opt.lease_ttl_ms;
	h->reply.lease_ttl_ms = st->opt.lease_ttl_ms;
	return 0;
}

int pilot_store_heartbeat(struct pilot_store *st, const char *attempt_id, const char *token,
			  struct pilot_heartbeat_reply *reply)
{
	struct heartbeat h = { .now = store_now() };
	int r = lease_write(st, attempt_id, token, true, heartbeat_write, &h);
	if (r == 0 && reply)
		*reply = h.reply;
	return r;
}

/* ---- logs ---- */

/* Reads [off, off+len) of an attempt's log (which must hold it) into buf. */
static int read_range(struct pilot_store *st, const char *attempt_id, int64_t off, size_t len, struct pilot_buf *buf)
{
	static const char first[] = "SELECT offset FROM log_chunks WHERE attempt_id = ?1 AND offset <= ?2 "
				    "ORDER BY offset DESC LIMIT 1";
	static const char from[] = "SELECT offset, len, data FROM log_chunks WHERE attempt_id = ?1 AND offset >= ?2 "
				   "ORDER BY offset";
	if (!len)
		return 0;
	sqlite3_stmt *s = db_stmt(st, first);
	if (!s)
		return pilot_error_code();
	bind_text(s, 1, attempt_id);
	bind_int(s, 2, off);
	int64_t start = 0;
	if (sqlite3_step(s) == SQLITE_ROW)
		start = col_int(s, 0);
	sqlite3_reset(s);
	if (!(s = db_stmt(st, from)))
		return pilot_error_code();
	bind_text(s, 1, attempt_id);
	bind_int(s, 2, start);
	int64_t end = off + (int64_t)len;
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		int64_t co = col_int(s, 0), cl = col_int(s, 1);
		const char *data = sqlite3_column_blob(s, 2);
		if (co >= end)
			break;
		int64_t a = co > off ? co : off;
		int64_t b = co + cl < end ? co + cl : end;
		if (b > a) {
			int r = pilot_buf_append(buf, data + (a - co), (size_t)(b - a));
			if (r < 0) {
				sqlite3_reset(s);
				return r;
			}
		}
	}
	sqlite3_reset(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_error(st, "cannot read log");
	return 0;
}

struct log_append {
	int64_t offset;
	const void *data;
	size_t len;
	int64_t end;                  /* the log's length before the append, -1 = unread */
	int64_t added;
};

static int log_append_write(struct pilot_store *st, const struct lease *l, void *ud)
{
	static const char ins[] = "INSERT INTO log_chunks(attempt_id, offset, len, data) VALUES (?1, ?2, ?3, ?4)";
	static const char upd[] = "UPDATE attempts SET log_bytes = ?2 WHERE id = ?1";
	struct log_append *a = ud;
	int64_t end = a->end = l->log_bytes;
	if (a->offset > end)
		return pilot_error_set(PILOT_ECONFLICT,
				       "log of attempt '%s' has %lld bytes: an append at offset %lld leaves a gap",
				       l->attempt_id, (long long)end, (long long)a->offset);
	int64_t overlap = end - a->offset < (int64_t)a->len ? end - a->offset : (int64_t)a->len;
	int r;
	if (overlap > 0) {
		_cleanup_buf_ struct pilot_buf have = PILOT_BUF_INIT;
		if ((r = read_range(st, l->attempt_id, a->offset, (size_t)overlap, &have)) < 0)
			return r;
		if ((int64_t)have.len != overlap || memcmp(have.data, a->data, (size_t)overlap))
			return pilot_error_set(PILOT_ECONFLICT,
					       "log of attempt '%s': the bytes at offset %lld differ from those stored",
					       l->attempt_id, (long long)a->offset);
	}
	int64_t tail = (int64_t)a->len - overlap;
	if (tail <= 0)
		return 0;
	if (l->state != PILOT_ATTEMPT_RUNNING)
		return pilot_error_set(PILOT_ECONFLICT,
				       "attempt '%s' superseded: it already finished (%s) and its log is complete",
				       l->attempt_id, pilot_attempt_state_name(l->state));
	sqlite3_stmt *s = db_stmt(st, ins);
	if (!s)
		return pilot_error_code();
	bind_text(s, 1, l->attempt_id);
	bind_int(s, 2, end);
	bind_int(s, 3, tail);
	sqlite3_bind_blob(s, 4, (const char *)a->data + overlap, (int)tail, SQLITE_STATIC);
	if ((r = db_done(st, s, "cannot store log")) < 0)
		return r;
	if (!(s = db_stmt(st, upd)))
		return pilot_error_code();
	bind_text(s, 1, l->attempt_id);
	bind_int(s, 2, end + tail);
	if ((r = db_done(st, s, "cannot store log")) < 0)
		return r;
	a->added = tail;
	return 0;
}

int pilot_store_append_log(struct pilot_store *st, const char *attempt_id, const char *token, int64_t offset,
			   const void *data, size_t len, int64_t *expected_offset)
{
	if (len > MAX_LOG_APPEND)
		return pilot_error_set(PILOT_ELIMIT, "log chunk of %zu bytes is too large (at most %u)", len,
				       MAX_LOG_APPEND);
	if (offset < 0)
		return pilot_error_set(PILOT_EINVALID, "invalid log offset %lld", (long long)offset);
	struct log_append a = { .offset = offset, .data = data, .len = len, .end = -1 };
	int r = lease_write(st, attempt_id, token, false, log_append_write, &a);
	/* On a conflict too: where the agent should resume. */
	if (expected_offset && a.end >= 0)
		*expected_offset = a.end + (r == 0 ? a.added : 0);
	return r;
}

int pilot_store_read_logs(struct pilot_store *st, const struct pilot_log_request *req, struct pilot_log_chunk *out)
{
	static const char sql_run[] = "SELECT state, attempt_count FROM runs WHERE id = ?1";
	static const char sql_att[] = "SELECT id, state, log_bytes FROM attempts WHERE run_id = ?1 AND number = ?2";
	if (req->offset < 0)
		return pilot_error_set(PILOT_EINVALID, "invalid log offset %lld", (long long)req->offset);
	size_t max = req->max_bytes ? req->max_bytes : (1u << 20);
	if (max > (16u << 20))
		max = 16u << 20;
	STORE_LOCKED(st);
	char id[PILOT_ID_SIZE];
	struct pilot_log_chunk c = { 0 };
	int r = db_begin(st, false);
	if (r < 0)
		return r;
	if ((r = resolve_run(st, req->run, id)) < 0)
		goto fail;
	sqlite3_stmt *s = db_stmt(st, sql_run);
	if (!s) {
		r = pilot_error_code();
		goto fail;
	}
	bind_text(s, 1, id);
	if (sqlite3_step(s) != SQLITE_ROW) {
		sqlite3_reset(s);
		r = db_error(st, "cannot read run");
		goto fail;
	}
	pilot_run_state_from_name(col_text(s, 0), &c.run_state);
	c.latest_attempt = (int)col_int(s, 1);
	sqlite3_reset(s);
	int number = req->attempt > 0 ? req->attempt : c.latest_attempt;
	if (req->attempt < 0 || number > c.latest_attempt) {
		r = pilot_error_set(PILOT_ENOTFOUND, "run '%s' has no attempt %d", id, req->attempt);
		goto fail;
	}
	c.attempt = number;
	c.offset = req->offset;
	c.next_offset = req->offset;
	if (number > 0) {
		if (!(s = db_stmt(st, sql_att))) {
			r = pilot_error_code();
			goto fail;
		}
		bind_text(s, 1, id);
		bind_int(s, 2, number);
		if (sqlite3_step(s) != SQLITE_ROW) {
			sqlite3_reset(s);
			r = db_error(st, "cannot read attempt");
			goto fail;
		}
		char aid[PILOT_ID_SIZE];
		col_copy_id(s, 0, aid);
		bool running = !strcmp(col_text(s, 1), "running");
		int64_t bytes = col_int(s, 2);
		sqlite3_reset(s);
		if (req->offset < bytes) {
			size_t n = (size_t)(bytes - req->offset) < max ? (size_t)(bytes - req->offset) : max;
			if ((r = read_range(st, aid, req->offset, n, &c.data)) < 0)
				goto fail;
			c.next_offset = req->offset + (int64_t)c.data.len;
		}
		c.complete = !running && c.next_offset >= bytes;
	}
	sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL);
	*out = c;
	return 0;
fail:
	pilot_log_chunk_clear(&c);
	db_rollback(st);
	return r;
}

/* ---- artifacts ---- */

static int check_artifact_path(const char *path)
{
	if (!path || !*path || strlen(path) > 1024 || path[0] == '/')
		goto bad;
	const char *p = path;
	while (*p) {
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			goto bad;
		p += n;
		if (*p == '/') {
			p++;
			if (!*p)
				goto bad;
		}
	}
	for (p = path; *p; p++)
		if ((unsigned char)*p < 0x20)
			goto bad;
	return 0;
bad:
	return pilot_error_set(PILOT_EINVALID, "invalid artifact path '%s': expected a relative path without '.' or '..'",
			       path ? path : "");
}

struct artifact_put {
	const char *path;
	const char *sha256;
	uint64_t size;
};

static int artifact_put_write(struct pilot_store *st, const struct lease *l, void *ud)
{
	static const char ins[] =
		"INSERT OR REPLACE INTO artifacts(attempt_id, run_id, attempt, path, size, sha256, created_ms) "
		"VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
	const struct artifact_put *a = ud;
	sqlite3_stmt *s = db_stmt(st, ins);
	if (!s)
		return pilot_error_code();
	bind_text(s, 1, l->attempt_id);
	bind_text(s, 2, l->run_id);
	bind_int(s, 3, l->number);
	bind_text(s, 4, a->path);
	bind_int(s, 5, (int64_t)a->size);
	bind_text(s, 6, a->sha256);
	bind_int(s, 7, store_now());
	return db_done(st, s, "cannot record artifact");
}

int pilot_store_put_artifact(struct pilot_store *st, const char *attempt_id, const char *token, const char *path,
			     int fd)
{
	int r = check_artifact_path(path);
	if (r < 0)
		return r;
	/* Refuse a superseded writer before reading a possibly large stream... */
	{
		STORE_LOCKED(st);
		struct lease l;
		if ((r = lease_check(st, attempt_id, token, true, &l)) < 0)
			return r;
		lease_clear(&l);
	}
	char sha[65];
	struct artifact_put a = { .path = path, .sha256 = sha };
	if ((r = pilot_blob_put_fd(st->blobs, fd, NULL, sha, &a.size)) < 0)
		return pilot_error_prefix(r, "cannot store artifact '%s'", path);
	/* ...and check again where it counts: the record is written under the lease. */
	return lease_write(st, attempt_id, token, true, artifact_put_write, &a);
}

static void load_artifact(sqlite3_stmt *s, struct pilot_artifact *a)
{
	memset(a, 0, sizeof(*a));
	a->path = col_dup(s, 0);
	a->size = (uint64_t)col_int(s, 1);
	snprintf(a->sha256, sizeof(a->sha256), "%s", col_text(s, 2));
	a->attempt = (int)col_int(s, 3);
	a->created_ms = col_int(s, 4);
}

/* A list of a run's rows: sql (a static string: ?1 = the run's id, ?2 = an attempt
 * number or 0) and how each row joins the list. */
struct run_rows {
	const char *sql;
	const char *fail;             /* the error's words: "cannot list artifacts" */
	void (*add)(sqlite3_stmt *s, void *list);
	void (*clear)(void *list);
};

/* The rows of the run ref names into list, which starts empty and is left empty on a
 * failure. Takes the store's lock. */
static int read_run_rows(struct pilot_store *st, const char *ref, int attempt, const struct run_rows *q, void *list)
{
	STORE_LOCKED(st);
	char id[PILOT_ID_SIZE];
	int r = resolve_run(st, ref, id);
	if (r < 0)
		return r;
	sqlite3_stmt *s = db_stmt(st, q->sql);
	if (!s)
		return pilot_error_code();
	bind_text(s, 1, id);
	bind_int(s, 2, attempt);
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		q->add(s, list);
	sqlite3_reset(s);
	if (rc == SQLITE_DONE)
		return 0;
	q->clear(list);
	return db_error(st, q->fail);
}

static void load_metric(sqlite3_stmt *s, struct pilot_metric *m)
{
	m->attempt = (int)col_int(s, 0);
	m->index = col_int(s, 1);
	m->time_ms = col_int(s, 2);
	m->json = col_dup(s, 3);
}

/* The two sides of read_run_rows for a struct pilot_TYPE: a row loaded by load joins
 * the list's items; clear empties it. */
#define RUN_ROWS_LIST(type, load)                                                      \
	static void type##_add(sqlite3_stmt *s, void *list)                            \
	{                                                                               \
		struct pilot_##type *l = list;                                          \
		l->items = pilot_xrealloc(l->items, (l->n + 1) * sizeof(*l->items));   \
		memset(&l->items[l->n], 0, sizeof(l->items[l->n]));                    \
		load(s, &l->items[l->n++]);                                             \
	}                                                                               \
	static void type##_clear(void *list)                                           \
	{                                                                               \
		pilot_##type##_clear(list);                                             \
	}
RUN_ROWS_LIST(artifact_list, load_artifact)
RUN_ROWS_LIST(metric_list, load_metric)

static const struct run_rows artifact_rows = {
	"SELECT path, size, sha256, attempt, created_ms FROM artifacts "
	"WHERE run_id = ?1 AND (?2 = 0 OR attempt = ?2) ORDER BY attempt, path",
	"cannot list artifacts", artifact_list_add, artifact_list_clear,
};
static const struct run_rows metric_rows = {
	"SELECT attempt, idx, time_ms, json FROM metrics WHERE run_id = ?1 AND (?2 = 0 OR attempt = ?2) "
	"ORDER BY attempt, idx",
	"cannot read metrics", metric_list_add, metric_list_clear,
};

int pilot_store_list_artifacts(struct pilot_store *st, const char *run, int attempt, struct pilot_artifact_list *out)
{
	memset(out, 0, sizeof(*out));
	return read_run_rows(st, run, attempt, &artifact_rows, out);
}

int pilot_store_get_metrics(struct pilot_store *st, const char *run, int attempt, struct pilot_metric_list *out)
{
	memset(out, 0, sizeof(*out));
	return read_run_rows(st, run, attempt, &metric_rows, out);
}

int pilot_store_get_artifact(struct pilot_store *st, const char *run, const char *path, int attempt, int *fd,
			     struct pilot_artifact *meta)
{
	static const char sql[] = "SELECT path, size, sha256, attempt, created_ms FROM artifacts "
				  "WHERE run_id = ?1 AND path = ?2 AND (?3 = 0 OR attempt = ?3) ORDER BY attempt DESC LIMIT 1";
	struct pilot_artifact a;
	char id[PILOT_ID_SIZE];
	{
		STORE_LOCKED(st);
		int r = resolve_run(st, run, id);
		if (r < 0)
			return r;
		sqlite3_stmt *s = db_stmt(st, sql);
		if (!s)
			return pilot_error_code();
		bind_text(s, 1, id);
		bind_text(s, 2, path);
		bind_int(s, 3, attempt);
		int rc = sqlite3_step(s);
		if (rc != SQLITE_ROW) {
			sqlite3_reset(s);
			if (rc == SQLITE_DONE)
				return pilot_error_set(PILOT_ENOTFOUND, "run '%s' has no artifact '%s'", id, path ? path : "");
			return db_error(st, "cannot read artifact");
		}
		load_artifact(s, &a);
		sqlite3_reset(s);
	}
	int r = pilot_blob_open_read(st->blobs, a.sha256, fd, NULL);
	if (r < 0) {
		pilot_artifact_clear(&a);
		return pilot_error_prefix(r, "cannot read artifact '%s' of run '%s'", path, id);
	}
	if (meta)
		*meta = a;
	else
		pilot_artifact_clear(&a);
	return 0;
}

/* ---- metrics ---- */

struct metrics_put {
	int64_t first_index;
	const struct pilot_metric *items;
	char **compact;               /* items[i].json, checked */
	size_t n;
	int64_t have, added;          /* have: -1 = unread */
};

static int metrics_put_write(struct pilot_store *st, const struct lease *l, void *ud)
{
	static const char ins[] = "INSERT INTO metrics(attempt_id, run_id, attempt, idx, time_ms, json) "
				  "VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
	static const char upd[] = "UPDATE attempts SET metric_count = ?2 WHERE id = ?1";
	struct metrics_put *m = ud;
	int64_t have = m->have = l->metric_count;
	if (m->first_index > have)
		return pilot_error_set(PILOT_ECONFLICT, "attempt '%s' has %lld metrics: a put at index %lld leaves a gap",
				       l->attempt_id, (long long)have, (long long)m->first_index);
	int64_t last = m->first_index + (int64_t)m->n;
	if (last <= have)
		return 0;
	if (l->state != PILOT_ATTEMPT_RUNNING)
		return pilot_error_set(PILOT_ECONFLICT, "attempt '%s' superseded: it already finished (%s)",
				       l->attempt_id, pilot_attempt_state_name(l->state));
	int64_t now = store_now();
	int r;
	for (int64_t idx = have; idx < last; idx++) {
		size_t i = (size_t)(idx - m->first_index);
		sqlite3_stmt *s = db_stmt(st, ins);
		if (!s)
			return pilot_error_code();
		bind_text(s, 1, l->attempt_id);
		bind_text(s, 2, l->run_id);
		bind_int(s, 3, l->number);
		bind_int(s, 4, idx);
		bind_int(s, 5, m->items[i].time_ms > 0 ? m->items[i].time_ms : now);
		bind_text(s, 6, m->compact[i]);
		if ((r = db_done(st, s, "cannot store metrics")) < 0)
			return r;
	}
	sqlite3_stmt *s = db_stmt(st, upd);
	if (!s)
		return pilot_error_code();
	bind_text(s, 1, l->attempt_id);
	bind_int(s, 2, last);
	if ((r = db_done(st, s, "cannot store metrics")) < 0)
		return r;
	m->added = last - have;
	return 0;
}

int pilot_store_put_metrics(struct pilot_store *st, const char *attempt_id, const char *token, int64_t first_index,
			    const struct pilot_metric *items, size_t n, int64_t *expected_index)
{
	if (n > MAX_METRICS_PUT)
		return pilot_error_set(PILOT_ELIMIT, "too many metrics in one call (%zu, at most %d)", n, MAX_METRICS_PUT);
	if (first_index < 0)
		return pilot_error_set(PILOT_EINVALID, "invalid metrics index %lld", (long long)first_index);
	_cleanup_free_ char **compact = pilot_xcalloc(n ? n : 1, sizeof(char *));
	int r = 0;
	for (size_t i = 0; i < n && r == 0; i++) {
		json_error_t e;
		json_t *j = items[i].json ? json_loads(items[i].json, 0, &e) : NULL;
		/* Kept as sent: re-encoding would change how numbers are written. */
		if (!json_is_object(j))
			r = pilot_error_set(PILOT_EINVALID, "invalid metrics record %zu: expected a JSON object", i);
		else
			compact[i] = pilot_xstrdup(items[i].json);
		json_decref(j);
	}
	struct metrics_put m = { .first_index = first_index, .items = items, .compact = compact, .n = n, .have = -1 };
	if (r == 0)
		r = lease_write(st, attempt_id, token, false, metrics_put_write, &m);
	/* On a conflict too: where the agent should resume. */
	if (expected_index && m.have >= 0)
		*expected_index = m.have + (r == 0 ? m.added : 0);
	for (size_t i = 0; i < n; i++)
		free(compact[i]);
	return r;
}

/* ---- finish ---- */

static int normalize_outcome(const struct pilot_finish *in, struct pilot_finish *o)
{
	*o = *in;
	switch (in->state) {
	case PILOT_ATTEMPT_SUCCEEDED:
		if ((in->reason && in->reason != PILOT_REASON_EXIT_CODE) || (in->has_exit_code && in->exit_code != 0))
			break;
		o->reason = PILOT_REASON_EXIT_CODE;
		o->has_exit_code = true;
		o->exit_code = 0;
		return 0;
	case PILOT_ATTEMPT_FAILED:
		if (in->reason == PILOT_REASON_EXIT_CODE && !in->has_exit_code)
			break;
		if (in->reason == PILOT_REASON_EXIT_CODE || in->reason == PILOT_REASON_TIMEOUT ||
		    in->reason == PILOT_REASON_RUNTIME_ERROR || in->reason == PILOT_REASON_BUNDLE_INVALID)
			return 0;
		break;
	case PILOT_ATTEMPT_CANCELED:
		if (in->reason && in->reason != PILOT_REASON_CANCELED)
			break;
		o->reason = PILOT_REASON_CANCELED;
		return 0;
	default:
		break;
	}
	return pilot_error_set(PILOT_EINVALID, "invalid outcome: %s with reason '%s'%s",
			       pilot_attempt_state_name(in->state), pilot_reason_name(in->reason),
			       in->state == PILOT_ATTEMPT_FAILED && in->reason == PILOT_REASON_EXIT_CODE
				       ? " needs an exit code" : "");
}

struct finish {
	struct pilot_finish o;
	struct pilot_run run;         /* the run after it */
};

static int finish_write(struct pilot_store *st, const struct lease *l, void *ud)
{
	static const char upd[] = "UPDATE attempts SET state = ?2, reason = ?3, exit_code = ?4, message = ?5, "
				  "finished_ms = ?6, lease_expires_ms = NULL WHERE id = ?1 AND state = 'running'";
	static const char upd_run[] = "UPDATE runs SET exit_code = ?2 WHERE id = ?1";
	struct finish *f = ud;
	const struct pilot_finish *o = &f->o;
	int r;
	if (l->state != PILOT_ATTEMPT_RUNNING) {
		/* A finish said again (its answer was lost) is fine; a different one is not. */
		bool same = l->state == o->state && l->reason == o->reason && l->has_exit_code == o->has_exit_code &&
			    (!o->has_exit_code || l->exit_code == o->exit_code);
		if (!same)
			return pilot_error_set(PILOT_ECONFLICT, "attempt '%s' already finished (%s%s%s)", l->attempt_id,
					       pilot_attempt_state_name(l->state), l->reason ? ", " : "",
					       pilot_reason_name(l->reason));
	} else {
		sqlite3_stmt *s = db_stmt(st, upd);
		if (!s)
			return pilot_error_code();
		bind_text(s, 1, l->attempt_id);
		bind_text(s, 2, pilot_attempt_state_name(o->state));
		bind_text(s, 3, pilot_reason_name(o->reason));
		if (o->has_exit_code)
			bind_int(s, 4, o->exit_code);
		bind_text(s, 5, o->message);
		bind_int(s, 6, store_now());
		if ((r = db_done(st, s, "cannot finish attempt")) < 0)
			return r;
		if (o->has_exit_code) {
			if (!(s = db_stmt(st, upd_run)))
				return pilot_error_code();
			bind_text(s, 1, l->run_id);
			bind_int(s, 2, o->exit_code);
			if ((r = db_done(st, s, "cannot update run")) < 0)
				return r;
		}
		_cleanup_free_ char *detail = NULL;
		if (o->message && *o->message)
			detail = pilot_xasprintf("attempt %d %s: %s", l->number, pilot_attempt_state_name(o->state),
						 o->message);
		else if (o->has_exit_code)
			detail = pilot_xasprintf("attempt %d %s (exit code %d)", l->number,
						 pilot_attempt_state_name(o->state), o->exit_code);
		else
			detail = pilot_xasprintf("attempt %d %s (%s)", l->number, pilot_attempt_state_name(o->state),
						 pilot_reason_name(o->reason));
		if ((r = l->requeue && o->state == PILOT_ATTEMPT_CANCELED
				 ? store_attempt_requeued(st, l->run_id, l->number, detail, l->agent)
				 : store_attempt_ended(st, l->run_id, l->number, o->state, o->reason, detail, "finished",
						       l->agent)) < 0 ||
		    (r = touch_agent_seen(st, l->agent)) < 0)
			return r;
	}
	return store_get_run_locked(st, l->run_id, true, false, &f->run);
}

int pilot_store_finish(struct pilot_store *st, const char *attempt_id, const char *token,
		       const struct pilot_finish *outcome, struct pilot_run *run)
{
	struct finish f = { 0 };
	int r = normalize_outcome(outcome, &f.o);
	if (r < 0)
		return r;
	r = lease_write(st, attempt_id, token, false, finish_write, &f);
	if (r == 0 && run)
		*run = f.run;
	else
		pilot_run_clear(&f.run);
	return r;
}

/* ---- events ---- */

int pilot_store_list_events(struct pilot_store *st, const struct pilot_event_filter *f, struct pilot_event_list *out)
{
	static const char sql_all[] = "SELECT seq, run_id, attempt, time_ms, type, actor, message, data_json, state "
				      "FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2";
	static const char sql_run[] = "SELECT seq, run_id, attempt, time_ms, type, actor, message, data_json, state "
				      "FROM events WHERE run_id = ?3 AND seq > ?1 ORDER BY seq LIMIT ?2";
	struct pilot_event_filter zero = { 0 };
	if (!f)
		f = &zero;
	size_t limit = f->limit ? f->limit : 100;
	if (limit > 1000)
		limit = 1000;
	STORE_LOCKED(st);
	char id[PILOT_ID_SIZE];
	int r;
	if (f->run && (r = resolve_run(st, f->run, id)) < 0)
		return r;
	sqlite3_stmt *s = db_stmt(st, f->run ? sql_run : sql_all);
	if (!s)
		return pilot_error_code();
	bind_int(s, 1, f->after_seq);
	bind_int(s, 2, (int64_t)limit);
	if (f->run)
		bind_text(s, 3, id);
	struct pilot_event_list l = { .last_seq = f->after_seq };
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		l.items = pilot_xrealloc(l.items, (l.n + 1) * sizeof(*l.items));
		struct pilot_event *e = &l.items[l.n++];
		memset(e, 0, sizeof(*e));
		e->seq = col_int(s, 0);
		col_copy_id(s, 1, e->run_id);
		e->attempt = (int)col_int(s, 2);
		e->time_ms = col_int(s, 3);
		e->type = col_dup(s, 4);
		e->actor = col_dup(s, 5);
		e->message = col_dup(s, 6);
		e->data_json = col_dup(s, 7);
		pilot_run_state_from_name(col_text(s, 8), &e->state);
		l.last_seq = e->seq;
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		pilot_event_list_clear(&l);
		return db_error(st, "cannot read events");
	}
	*out = l;
	return 0;
}

int pilot_store_last_event_seq(struct pilot_store *st, int64_t *seq)
{
	static const char sql[] = "SELECT COALESCE(MAX(seq), 0) FROM events";
	STORE_LOCKED(st);
	sqlite3_stmt *s = db_stmt(st, sql);
	if (!s)
		return pilot_error_code();
	int rc = sqlite3_step(s);
	*seq = rc == SQLITE_ROW ? col_int(s, 0) : 0;
	sqlite3_reset(s);
	return rc == SQLITE_ROW ? 0 : db_error(st, "cannot read events");
}
