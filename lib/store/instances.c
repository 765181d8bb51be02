/* Instances: the machines a server's pools launched through their provisioners, from
 * launch to termination, so that a restarted server neither launches twice nor
 * forgets one. */
#include <string.h>

#include "internal.h"

static const char *const instance_state_names[] = { "launching", "running", "terminating", "terminated" };

const char *pilot_instance_state_name(enum pilot_instance_state s)
{
	return (unsigned)s < ARRAY_SIZE(instance_state_names) ? instance_state_names[s] : "unknown";
}

static enum pilot_instance_state state_from(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(instance_state_names); i++)
		if (!strcmp(name, instance_state_names[i]))
			return (enum pilot_instance_state)i;
	return PILOT_INSTANCE_TERMINATING; /* unknown: end it rather than keep it */
}

void pilot_instance_clear(struct pilot_instance *i)
{
	if (!i)
		return;
	free(i->pool);
	free(i->agent);
	free(i->provider_id);
	free(i->run_id);
	free(i->token_id);
	free(i->message);
	memset(i, 0, sizeof(*i));
}

int pilot_store_instance_add(struct pilot_store *st, struct pilot_instance *in)
{
	static const char sql[] = "INSERT INTO instances(id, pool, agent, provider_id, state, run_id, token_id, "
				  "launched_ms, cost_per_hour) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
	if (!in->pool || !in->agent)
		return pilot_error_set(PILOT_EINVALID, "an instance needs a pool and an agent name");
	if (!in->id[0])
		pilot_id_new('i', in->id);
	if (!in->launched_ms)
		in->launched_ms = store_now();
	STORE_LOCKED(st);
	sqlite3_stmt *s = db_stmt(st, sql);
	if (!s)
		return pilot_error_code();
	bind_text(s, 1, in->id);
	bind_text(s, 2, in->pool);
	bind_text(s, 3, in->agent);
	bind_text(s, 4, in->provider_id);
	bind_text(s, 5, pilot_instance_state_name(in->state));
	bind_text(s, 6, in->run_id);
	bind_text(s, 7, in->token_id);
	bind_int(s, 8, in->launched_ms);
	sqlite3_bind_double(s, 9, in->cost_per_hour);
	return db_done(st, s, "cannot record instance");
}

int pilot_store_instance_update(struct pilot_store *st, const char *id, enum pilot_instance_state state,
				const char *provider_id, int64_t registered_ms, int64_t ended_ms, const char *message)
{
	static const char sql[] = "UPDATE instances SET state = ?2, provider_id = COALESCE(?3, provider_id), "
				  "registered_ms = COALESCE(?4, registered_ms), ended_ms = COALESCE(?5, ended_ms), "
				  "message = COALESCE(?6, message) WHERE id = ?1";
	STORE_LOCKED(st);
	sqlite3_stmt *s = db_stmt(st, sql);
	if (!s)
		return pilot_error_code();
	bind_text(s, 1, id);
	bind_text(s, 2, pilot_instance_state_name(state));
	bind_text(s, 3, provider_id);
	bind_int_or_null(s, 4, registered_ms);
	bind_int_or_null(s, 5, ended_ms);
	bind_text(s, 6, message);
	int r = db_done(st, s, "cannot update instance");
	if (r == 0 && sqlite3_changes(st->db) == 0)
		return pilot_error_set(PILOT_ENOTFOUND, "instance '%s' not found", id);
	return r;
}

int pilot_store_instance_list(struct pilot_store *st, int64_t ended_since, struct pilot_instance **out, size_t *n)
{
	static const char sql[] = "SELECT id, pool, agent, provider_id, state, run_id, token_id, launched_ms, "
				  "registered_ms, ended_ms, cost_per_hour, message FROM instances "
				  "WHERE state != 'terminated' OR (?1 > 0 AND ended_ms >= ?1) ORDER BY launched_ms, id";
	STORE_LOCKED(st);
	sqlite3_stmt *s = db_stmt(st, sql);
	if (!s)
		return pilot_error_code();
	bind_int(s, 1, ended_since);
	struct pilot_instance *v = NULL;
	size_t k = 0;
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		v = pilot_xrealloc(v, (k + 1) * sizeof(*v));
		struct pilot_instance *i = &v[k++];
		memset(i, 0, sizeof(*i));
		col_copy_id(s, 0, i->id);
		i->pool = col_dup(s, 1);
		i->agent = col_dup(s, 2);
		i->provider_id = col_dup(s, 3);
		i->state = state_from(col_text(s, 4));
		i->run_id = col_dup(s, 5);
		i->token_id = col_dup(s, 6);
		i->launched_ms = col_int(s, 7);
		i->registered_ms = col_int(s, 8);
		i->ended_ms = col_int(s, 9);
		i->cost_per_hour = sqlite3_column_double(s, 10);
		i->message = col_dup(s, 11);
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		for (size_t j = 0; j < k; j++)
			pilot_instance_clear(&v[j]);
		free(v);
		return db_error(st, "cannot list instances");
	}
	*out = v;
	*n = k;
	return 0;
}

int pilot_store_instance_totals(struct pilot_store *st, const char *pool, int64_t now_ms, int64_t *launched,
				double *cost)
{
	static const char sql[] = "SELECT COUNT(*), TOTAL(cost_per_hour * (COALESCE(ended_ms, ?2) - launched_ms) / "
				  "3600000.0) FROM instances WHERE pool = ?1";
	STORE_LOCKED(st);
	sqlite3_stmt *s = db_stmt(st, sql);
	if (!s)
		return pilot_error_code();
	bind_text(s, 1, pool);
	bind_int(s, 2, now_ms);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*launched = col_int(s, 0);
		*cost = sqlite3_column_double(s, 1);
	}
	sqlite3_reset(s);
	return rc == SQLITE_ROW ? 0 : db_error(st, "cannot count instances");
}
