/* Reading runs: one run, the keyset-paged list, and the status counts. */
#include <string.h>

#include "internal.h"
#include "pilot/version.h"

/* ---- reads ---- */

int pilot_store_get_run(struct pilot_store *st, const char *run, struct pilot_run *out)
{
	STORE_LOCKED(st);
	char id[PILOT_ID_SIZE];
	int r = db_begin(st, false);
	if (r < 0)
		return r;
	if ((r = resolve_run(st, run, id)) < 0 || (r = store_get_run_locked(st, id, true, false, out)) < 0) {
		db_rollback(st);
		return r;
	}
	sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL);
	return 0;
}

/* The smallest id a run created at or after ms can have: ids start with the creation
 * time (util/id.c's layout: prefix, 9 base32 digits of ms since 2025-01-01). */
static void id_floor(int64_t ms, char out[PILOT_ID_SIZE])
{
	static const char b32[] = "0123456789abcdefghjkmnpqrstvwxyz";
	int64_t t = ms - 1735689600000LL;
	uint64_t ts = t > 0 ? (uint64_t)t : 0;
	out[0] = 'r';
	for (int i = 9; i >= 1; i--) {
		out[i] = b32[ts & 31];
		ts >>= 5;
	}
	out[10] = '\0';
}

static int list_query(struct pilot_store *st, const char *sql, const struct pilot_run_filter *f, const char *state,
		      const char *states_csv, size_t limit, struct pilot_run_list *out)
{
	sqlite3_stmt *s = db_stmt(st, sql);
	if (!s)
		return pilot_error_code();
	char floor[PILOT_ID_SIZE] = "";
	if (f->since_ms > 0)
		id_floor(f->since_ms, floor);
	bind_text(s, 1, f->after && *f->after ? f->after : "~");
	bind_text(s, 2, floor);
	bind_int(s, 3, (int64_t)limit);
	bind_text(s, 4, f->name ? f->name : state);
	bind_text(s, 5, states_csv);
	bind_int(s, 6, f->since_ms);
	bind_text(s, 7, f->array);
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		out->items = pilot_xrealloc(out->items, (out->n + 1) * sizeof(*out->items));
		store_load_run(s, &out->items[out->n++], false);
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return db_error(st, "cannot list runs");
	return 0;
}

static int cmp_id_desc(const void *a, const void *b)
{
	return strcmp(((const struct pilot_run *)b)->id, ((const struct pilot_run *)a)->id);
}

int pilot_store_list_runs(struct pilot_store *st, const struct pilot_run_filter *f, struct pilot_run_list *out)
{
	static const char sql_all[] = "SELECT " RUN_COLS_LIST " FROM runs WHERE id < ?1 AND id >= ?2 "
				      "AND created_ms >= ?6 ORDER BY id DESC LIMIT ?3";
	static const char sql_state[] = "SELECT " RUN_COLS_LIST " FROM runs WHERE state = ?4 AND id < ?1 AND id >= ?2 "
					"AND created_ms >= ?6 ORDER BY id DESC LIMIT ?3";
	static const char sql_name[] = "SELECT " RUN_COLS_LIST " FROM runs WHERE name = ?4 AND id < ?1 AND id >= ?2 "
				       "AND created_ms >= ?6 AND (?5 IS NULL OR instr(?5, ',' || state || ',') > 0) "
				       "ORDER BY id DESC LIMIT ?3";
	/* An array's runs (at most PILOT_ARRAY_MAX_ELEMENTS, by their index). */
	static const char sql_array[] = "SELECT " RUN_COLS_LIST " FROM runs INDEXED BY runs_array WHERE array_id = ?7 "
					"AND id < ?1 AND id >= ?2 AND created_ms >= ?6 AND (?4 IS NULL OR name = ?4) "
					"AND (?5 IS NULL OR instr(?5, ',' || state || ',') > 0) ORDER BY id DESC LIMIT ?3";
	struct pilot_run_filter zero = { 0 };
	if (!f)
		f = &zero;
	size_t limit = f->limit ? f->limit : 50;
	if (limit > 1000)
		limit = 1000;
	if (f->after && *f->after && !pilot_id_valid(f->after, true))
		return pilot_error_set(PILOT_EINVALID, "invalid cursor '%s'", f->after);
	unsigned states = f->states & ((1u << PILOT_RUN_NSTATES) - 1);
	if (states == (1u << PILOT_RUN_NSTATES) - 1)
		states = 0;
	STORE_LOCKED(st);
	struct pilot_run_list l = { 0 };
	int r = db_begin(st, false);
	if (r < 0)
		return r;
	/* One more than asked tells whether there is a next page. */
	if (f->name || f->array) {
		_cleanup_buf_ struct pilot_buf csv = PILOT_BUF_INIT;
		if (states) {
			pilot_buf_putc(&csv, ',');
			for (int i = 0; i < PILOT_RUN_NSTATES; i++)
				if (states & (1u << i))
					pilot_buf_printf(&csv, "%s,", pilot_run_state_name(i));
		}
		r = list_query(st, f->array ? sql_array : sql_name, f, NULL, states ? pilot_buf_str(&csv) : NULL, limit + 1,
			       &l);
	} else if (!states) {
		r = list_query(st, sql_all, f, NULL, NULL, limit + 1, &l);
	} else {
		/* One index range per state, merged: each is an ordered scan of runs_state_id. */
		for (int i = 0; i < PILOT_RUN_NSTATES && r >= 0; i++)
			if (states & (1u << i))
				r = list_query(st, sql_state, f, pilot_run_state_name(i), NULL, limit + 1, &l);
		if (r >= 0 && l.n > 1)
			qsort(l.items, l.n, sizeof(*l.items), cmp_id_desc);
	}
	sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL);
	if (r < 0) {
		pilot_run_list_clear(&l);
		return r;
	}
	if (l.n > limit) {
		for (size_t i = limit; i < l.n; i++)
			pilot_run_clear(&l.items[i]);
		l.n = limit;
		memcpy(l.next_after, l.items[limit - 1].id, PILOT_ID_SIZE);
	}
	*out = l;
	return 0;
}

/* ---- status ---- */

int pilot_store_status(struct pilot_store *st, struct pilot_status *out)
{
	static const char sql_counts[] = "SELECT state, n FROM run_counts";
	static const char sql_oldest[] = "SELECT created_ms FROM runs WHERE state = 'queued' ORDER BY id LIMIT 1";
	static const char sql_agents[] =
		"SELECT a.last_seen_ms, a.left_ms, EXISTS(SELECT 1 FROM attempts t WHERE t.state = 'running' "
		"AND t.agent = a.name), a.control FROM agents a";
	STORE_LOCKED(st);
	struct pilot_status s = { 0 };
	int r = db_begin(st, false);
	if (r < 0)
		return r;
	s.now_ms = store_now();
	s.version = pilot_xstrdup(pilot_version());
	sqlite3_stmt *q = db_stmt(st, sql_counts);
	int rc = SQLITE_DONE;
	if (!q)
		goto fail;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		enum pilot_run_state state;
		if (pilot_run_state_from_name(col_text(q, 0), &state) == 0)
			s.counts[state] = col_int(q, 1);
	}
	sqlite3_reset(q);
	if (rc != SQLITE_DONE || !(q = db_stmt(st, sql_oldest)))
		goto fail;
	if ((rc = sqlite3_step(q)) == SQLITE_ROW)
		s.oldest_queued_ms = col_int(q, 0);
	sqlite3_reset(q);
	if ((rc != SQLITE_DONE && rc != SQLITE_ROW) || !(q = db_stmt(st, sql_agents)))
		goto fail;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		int64_t seen = col_int(q, 0), left = col_int(q, 1);
		bool busy = col_int(q, 2) != 0;
		if (left && left >= seen && !busy)
			continue; /* offline */
		if (seen < s.now_ms - st->opt.lease_ttl_ms)
			s.agents_lost++;
		else if (busy)
			s.agents_busy++;
		else if (sqlite3_column_type(q, 3) != SQLITE_NULL)
			s.agents_paused++;
		else
			s.agents_idle++;
	}
	sqlite3_reset(q);
	if (rc != SQLITE_DONE)
		goto fail;
	sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL);
	*out = s;
	return 0;
fail:
	/* A statement that failed to prepare has set its own message. */
	r = q ? db_error(st, "cannot read status") : pilot_error_code();
	db_rollback(st);
	pilot_status_clear(&s);
	return r;
}
