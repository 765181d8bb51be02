/* Agents (registration, last-seen, derived state), bundles (blobs named by the
 * client) and the server's API tokens. */
#include <string.h>

#include "internal.h"

int store_touch_agent(struct pilot_store *st, const char *name, const struct pilot_kvs *labels, const char *version,
		      int capacity, int free_slots, bool full)
{
	static const char sql[] =
		"INSERT INTO agents(name, labels_json, version, capacity, free_slots, first_seen_ms, last_seen_ms) "
		"VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6) ON CONFLICT(name) DO UPDATE SET "
		"labels_json = CASE WHEN ?7 THEN excluded.labels_json ELSE labels_json END, "
		"version = CASE WHEN ?7 AND excluded.version IS NOT NULL THEN excluded.version ELSE version END, "
		"capacity = CASE WHEN ?7 THEN excluded.capacity ELSE capacity END, "
		"free_slots = excluded.free_slots, last_seen_ms = excluded.last_seen_ms, left_ms = NULL";
	sqlite3_stmt *s = db_stmt(st, sql);
	if (!s)
		return pilot_error_code();
	_cleanup_free_ char *lj = kvs_to_text(labels);
	bind_text(s, 1, name);
	bind_text(s, 2, lj);
	bind_text(s, 3, version);
	bind_int(s, 4, capacity > 0 ? capacity : 1);
	bind_int(s, 5, free_slots > 0 ? free_slots : 1);
	bind_int(s, 6, store_now());
	bind_int(s, 7, full);
	return db_done(st, s, "cannot record agent");
}

static bool valid_agent_name(const char *n)
{
	if (!n || !*n || strlen(n) > 127)
		return false;
	for (const char *p = n; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == '/' || *p == 0x7f)
			return false;
	return true;
}

int pilot_store_register_agent(struct pilot_store *st, const struct pilot_agent_info *info)
{
	if (!valid_agent_name(info->name))
		return pilot_error_set(PILOT_EINVALID, "invalid agent name '%s'", info->name ? info->name : "");
	STORE_LOCKED(st);
	int r = db_begin(st, true);
	if (r < 0)
		return r;
	if ((r = store_touch_agent(st, info->name, &info->labels, info->version, info->capacity, info->capacity, true)) <
	    0) {
		db_rollback(st);
		return r;
	}
	return db_commit(st);
}

int pilot_store_agent_leave(struct pilot_store *st, const char *agent)
{
	static const char sql[] = "UPDATE agents SET left_ms = ?2, last_seen_ms = ?2 WHERE name = ?1";
	STORE_LOCKED(st);
	sqlite3_stmt *s = db_stmt(st, sql);
	if (!s)
		return pilot_error_code();
	bind_text(s, 1, agent);
	bind_int(s, 2, store_now());
	int r = db_done(st, s, "cannot update agent");
	if (r < 0)
		return r;
	if (sqlite3_changes(st->db) == 0)
		return pilot_error_set(PILOT_ENOTFOUND, "agent '%s' not found", agent ? agent : "");
	return 0;
}

int pilot_store_list_agents(struct pilot_store *st, struct pilot_agent_list *out)
{
	static const char sql[] = "SELECT name, labels_json, version, capacity, first_seen_ms, last_seen_ms, left_ms "
				  "FROM agents ORDER BY name";
	static const char sql_runs[] = "SELECT agent, run_id FROM attempts WHERE state = 'running' ORDER BY run_id";
	STORE_LOCKED(st);
	struct pilot_agent_list l = { 0 };
	int64_t now = store_now();
	int r = db_begin(st, false);
	if (r < 0)
		return r;
	sqlite3_stmt *s = db_stmt(st, sql);
	int rc = SQLITE_ERROR;
	if (!s)
		goto fail;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		l.items = pilot_xrealloc(l.items, (l.n + 1) * sizeof(*l.items));
		struct pilot_agent_info *a = &l.items[l.n++];
		memset(a, 0, sizeof(*a));
		a->name = col_dup(s, 0);
		kvs_from_text(col_text(s, 1), &a->labels, true);
		a->version = col_dup(s, 2);
		a->capacity = (int)col_int(s, 3);
		a->first_seen_ms = col_int(s, 4);
		a->last_seen_ms = col_int(s, 5);
		int64_t left = col_int(s, 6);
		a->state = left ? PILOT_AGENT_GONE
			   : a->last_seen_ms < now - st->opt.lease_ttl_ms ? PILOT_AGENT_LOST : PILOT_AGENT_IDLE;
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE || !(s = db_stmt(st, sql_runs)))
		goto fail;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *agent = col_text(s, 0);
		for (size_t i = 0; i < l.n; i++) {
			struct pilot_agent_info *a = &l.items[i];
			if (strcmp(a->name, agent))
				continue;
			a->runs = pilot_xrealloc(a->runs, (a->nruns + 1) * sizeof(*a->runs));
			a->runs[a->nruns++] = col_dup(s, 1);
			/* An agent holding a live lease is busy even when gone or quiet: the
			 * reaper decides when the lease is lost. */
			if (a->state != PILOT_AGENT_LOST)
				a->state = PILOT_AGENT_BUSY;
			break;
		}
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		goto fail;
	sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL);
	*out = l;
	return 0;
fail:
	r = s ? db_error(st, "cannot list agents") : pilot_error_code();
	db_rollback(st);
	pilot_agent_list_clear(&l);
	return r;
}

/* ---- bundles ---- */

int pilot_store_bundle_has(struct pilot_store *st, const char *sha256)
{
	return pilot_blob_has(st->blobs, sha256);
}

int pilot_store_bundle_put(struct pilot_store *st, const char *sha256, int fd)
{
	int r = pilot_blob_put_fd(st->blobs, fd, sha256, NULL, NULL);
	return r < 0 ? pilot_error_prefix(r, "cannot store bundle") : 0;
}

int pilot_store_bundle_get(struct pilot_store *st, const char *sha256, int *fd)
{
	int r = pilot_blob_open_read(st->blobs, sha256, fd, NULL);
	if (r == PILOT_ENOTFOUND)
		return pilot_error_set(PILOT_ENOTFOUND, "bundle '%s' not found", sha256);
	return r;
}

/* ---- tokens ---- */

#define TOKEN_COLS "id, name, sha256, scopes, created_ms, expires_ms, revoked_ms, last_used_ms"

static void load_token(sqlite3_stmt *s, struct pilot_token_record *t)
{
	memset(t, 0, sizeof(*t));
	col_copy_id(s, 0, t->id);
	t->name = col_dup(s, 1);
	snprintf(t->sha256, sizeof(t->sha256), "%s", col_text(s, 2));
	t->scopes = col_dup(s, 3);
	t->created_ms = col_int(s, 4);
	t->expires_ms = col_int(s, 5);
	t->revoked_ms = col_int(s, 6);
	t->last_used_ms = col_int(s, 7);
}

static int token_by(struct pilot_store *st, const char *sql, const char *key, struct pilot_token_record *out)
{
	sqlite3_stmt *s = db_stmt(st, sql);
	if (!s)
		return pilot_error_code();
	bind_text(s, 1, key);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		load_token(s, out);
		sqlite3_reset(s);
		return 1;
	}
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : db_error(st, "cannot read tokens");
}

int pilot_store_token_create(struct pilot_store *st, const char *name, const char *sha256, const char *scopes,
			     int64_t expires_ms, struct pilot_token_record *out)
{
	static const char live[] = "SELECT " TOKEN_COLS " FROM tokens WHERE name = ?1 AND revoked_ms IS NULL";
	static const char ins[] = "INSERT INTO tokens(id, name, sha256, scopes, created_ms, expires_ms) "
				  "VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
	static const char get[] = "SELECT " TOKEN_COLS " FROM tokens WHERE id = ?1";
	if (!name || !*name || strlen(name) > 128)
		return pilot_error_set(PILOT_EINVALID, "invalid token name '%s'", name ? name : "");
	if (!sha256 || !pilot_sha256_valid(sha256))
		return pilot_error_set(PILOT_EINVALID, "invalid token hash");
	STORE_LOCKED(st);
	struct pilot_token_record t;
	int r = db_begin(st, true);
	if (r < 0)
		return r;
	if ((r = token_by(st, live, name, &t)) != 0) {
		if (r > 0) {
			pilot_token_record_clear(&t);
			r = pilot_error_set(PILOT_ECONFLICT, "a token named '%s' exists already", name);
		}
		goto fail;
	}
	char id[PILOT_ID_SIZE];
	pilot_id_new('t', id);
	sqlite3_stmt *s = db_stmt(st, ins);
	if (!s) {
		r = pilot_error_code();
		goto fail;
	}
	bind_text(s, 1, id);
	bind_text(s, 2, name);
	bind_text(s, 3, sha256);
	bind_text(s, 4, scopes ? scopes : "");
	bind_int(s, 5, store_now());
	bind_int_or_null(s, 6, expires_ms);
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc == SQLITE_CONSTRAINT_UNIQUE) {
		r = pilot_error_set(PILOT_ECONFLICT, "a token with this secret exists already");
		goto fail;
	}
	if (rc != SQLITE_DONE) {
		r = db_error(st, "cannot create token");
		goto fail;
	}
	if ((r = token_by(st, get, id, &t)) <= 0) {
		if (r == 0)
			r = pilot_error_set(PILOT_EIO, "token '%s' vanished", id);
		goto fail;
	}
	if ((r = db_commit(st)) < 0) {
		pilot_token_record_clear(&t);
		return r;
	}
	if (out)
		*out = t;
	else
		pilot_token_record_clear(&t);
	return 0;
fail:
	db_rollback(st);
	return r;
}

int pilot_store_token_list(struct pilot_store *st, struct pilot_token_list *out)
{
	static const char sql[] = "SELECT " TOKEN_COLS " FROM tokens ORDER BY id";
	STORE_LOCKED(st);
	sqlite3_stmt *s = db_stmt(st, sql);
	if (!s)
		return pilot_error_code();
	struct pilot_token_list l = { 0 };
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		l.items = pilot_xrealloc(l.items, (l.n + 1) * sizeof(*l.items));
		load_token(s, &l.items[l.n++]);
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		pilot_token_list_clear(&l);
		return db_error(st, "cannot list tokens");
	}
	*out = l;
	return 0;
}

int pilot_store_token_revoke(struct pilot_store *st, const char *id_or_name)
{
	static const char sql[] = "UPDATE tokens SET revoked_ms = COALESCE(revoked_ms, ?2) WHERE id = ?1 OR name = ?1";
	STORE_LOCKED(st);
	sqlite3_stmt *s = db_stmt(st, sql);
	if (!s)
		return pilot_error_code();
	bind_text(s, 1, id_or_name);
	bind_int(s, 2, store_now());
	int r = db_done(st, s, "cannot revoke token");
	if (r < 0)
		return r;
	if (sqlite3_changes(st->db) == 0)
		return pilot_error_set(PILOT_ENOTFOUND, "token '%s' not found", id_or_name ? id_or_name : "");
	return 0;
}

int pilot_store_token_lookup(struct pilot_store *st, const char *sha256, struct pilot_token_record *out)
{
	static const char sql[] = "SELECT " TOKEN_COLS " FROM tokens WHERE sha256 = ?1";
	static const char used[] = "UPDATE tokens SET last_used_ms = ?2 WHERE id = ?1";
	STORE_LOCKED(st);
	struct pilot_token_record t;
	int r = token_by(st, sql, sha256, &t);
	if (r < 0)
		return r;
	int64_t now = store_now();
	if (r == 0 || t.revoked_ms || (t.expires_ms && t.expires_ms <= now)) {
		if (r > 0)
			pilot_token_record_clear(&t);
		return pilot_error_set(PILOT_EAUTH, "invalid, expired or revoked token");
	}
	/* Recording every use would make each request a write: once a minute is enough
	 * to tell a live token from a forgotten one. */
	if (now - t.last_used_ms > 60000) {
		sqlite3_stmt *s = db_stmt(st, used);
		if (s) {
			bind_text(s, 1, t.id);
			bind_int(s, 2, now);
			if (db_done(st, s, "cannot update token") == 0)
				t.last_used_ms = now;
		}
	}
	if (out)
		*out = t;
	else
		pilot_token_record_clear(&t);
	return 0;
}
