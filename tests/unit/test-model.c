/* Unit tests for lib/model: names of states and reasons, key/value lists, the JSON
 * codecs (round trips, secrets withheld, malformed input), and API tokens (shape and
 * checksum, scopes, the record's JSON form). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "pilot/model.h"
#include "pilot/util.h"

static void test_names(void **state)
{
	(void)state;
	for (int s = 0; s < PILOT_RUN_NSTATES; s++) {
		enum pilot_run_state back;
		assert_int_equal(pilot_run_state_from_name(pilot_run_state_name(s), &back), 0);
		assert_int_equal(back, s);
	}
	for (int r = 0; r < PILOT_NREASONS; r++) {
		enum pilot_reason back;
		assert_int_equal(pilot_reason_from_name(pilot_reason_name(r), &back), 0);
		assert_int_equal(back, r);
	}
	for (int s = 0; s < PILOT_ATTEMPT_NSTATES; s++) {
		enum pilot_attempt_state back;
		assert_int_equal(pilot_attempt_state_from_name(pilot_attempt_state_name(s), &back), 0);
		assert_int_equal(back, s);
	}
	for (int s = 0; s < PILOT_AGENT_NSTATES; s++) {
		enum pilot_agent_state back;
		assert_int_equal(pilot_agent_state_from_name(pilot_agent_state_name(s), &back), 0);
		assert_int_equal(back, s);
	}
	assert_string_equal(pilot_run_state_name(PILOT_RUN_CANCELING), "canceling");
	assert_string_equal(pilot_reason_name(PILOT_REASON_BUNDLE_INVALID), "bundle_invalid");
	enum pilot_run_state s;
	assert_int_equal(pilot_run_state_from_name("runing", &s), PILOT_EINVALID);
	assert_non_null(strstr(pilot_error_last(), "did you mean 'running'"));
	assert_true(pilot_run_state_terminal(PILOT_RUN_CANCELED));
	assert_false(pilot_run_state_terminal(PILOT_RUN_CANCELING));
	unsigned set;
	assert_int_equal(pilot_run_states_parse("queued, failed", &set), 0);
	assert_int_equal(set, PILOT_RUN_STATE_BIT(PILOT_RUN_QUEUED) | PILOT_RUN_STATE_BIT(PILOT_RUN_FAILED));
	assert_int_equal(pilot_run_states_parse("terminal", &set), 0);
	assert_int_equal(set, PILOT_RUN_TERMINAL_BITS);
	assert_int_equal(pilot_run_states_parse("active", &set), 0);
	assert_int_equal(set & PILOT_RUN_TERMINAL_BITS, 0);
	assert_int_equal(pilot_run_states_parse("queued,nope", &set), PILOT_EINVALID);
	unsigned on;
	assert_int_equal(pilot_retry_on_parse("exit_code,timeout", &on), 0);
	assert_int_equal(on, PILOT_RETRY_ON_EXIT_CODE | PILOT_RETRY_ON_TIMEOUT);
	assert_int_equal(pilot_retry_on_parse("exitcode", &on), PILOT_EINVALID);
	assert_non_null(strstr(pilot_error_last(), "exit_code"));
	assert_int_equal(pilot_err_from_name("conflict"), PILOT_ECONFLICT);
	assert_int_equal(pilot_err_from_name("ambiguous"), PILOT_EAMBIGUOUS);
	assert_int_equal(pilot_err_from_name("what"), PILOT_EFAIL);
}

static void test_kvs(void **state)
{
	(void)state;
	struct pilot_kvs k = { 0 }, req = { 0 }, copy = { 0 };
	pilot_kvs_set(&k, "zone", "b");
	pilot_kvs_set(&k, "gpu", "a100");
	pilot_kvs_set(&k, "arch", "x86");
	pilot_kvs_set(&k, "zone", "c");
	assert_int_equal(k.n, 3);
	assert_string_equal(k.items[0].key, "arch");
	assert_string_equal(k.items[2].key, "zone");
	assert_string_equal(pilot_kvs_get(&k, "zone"), "c");
	assert_null(pilot_kvs_get(&k, "none"));
	assert_true(pilot_kvs_has(&k, "gpu"));
	assert_int_equal(pilot_kvs_set_pair(&req, "gpu=a100"), 0);
	assert_int_equal(pilot_kvs_set_pair(&req, "novalue"), PILOT_EINVALID);
	assert_int_equal(pilot_kvs_set_pair(&req, "=x"), PILOT_EINVALID);
	assert_true(pilot_kvs_satisfies(&k, &req));
	pilot_kvs_set(&req, "zone", "b");
	assert_false(pilot_kvs_satisfies(&k, &req));
	struct pilot_kvs empty = { 0 };
	assert_true(pilot_kvs_satisfies(&empty, &empty));
	assert_false(pilot_kvs_satisfies(&empty, &req));
	assert_int_equal(pilot_kvs_set_pair(&req, "eq=a=b"), 0);
	assert_string_equal(pilot_kvs_get(&req, "eq"), "a=b");
	pilot_kvs_copy(&copy, &k);
	assert_int_equal(copy.n, 3);
	assert_string_equal(pilot_kvs_get(&copy, "gpu"), "a100");
	pilot_kvs_clear(&k);
	pilot_kvs_clear(&req);
	pilot_kvs_clear(&copy);
	pilot_kvs_clear(NULL);
	assert_int_equal(k.n, 0);
}

static json_t *roundtrip_text(json_t *j)
{
	/* Through text, as the wire does. */
	char *s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	json_t *back = json_loads(s, 0, NULL);
	free(s);
	assert_non_null(back);
	return back;
}

static void fill_run(struct pilot_run *r)
{
	memset(r, 0, sizeof(*r));
	memcpy(r->id, "r01abcdefghjkmn", PILOT_ID_SIZE);
	r->name = pilot_xstrdup("train");
	r->spec_json = pilot_xstrdup("{\"name\":\"train\",\"params\":{\"lr\":0.1}}");
	pilot_sha256_hex("b", 1, r->bundle_sha256);
	r->params_json = pilot_xstrdup("{\"lr\":0.3}");
	pilot_kvs_set(&r->requires, "gpu", "a100");
	pilot_kvs_set(&r->secrets, "HF_TOKEN", "top-secret");
	r->priority = -5;
	r->state = PILOT_RUN_FAILED;
	r->reason = PILOT_REASON_EXIT_CODE;
	r->message = pilot_xstrdup("attempt 2 failed (exit code 3)");
	r->has_exit_code = true;
	r->exit_code = 3;
	r->created_ms = 1700000000001;
	r->started_ms = 1700000000002;
	r->finished_ms = 1700000000003;
	r->updated_ms = 1700000000004;
	r->attempt_count = 2;
	r->lost_count = 1;
	r->retry.max_attempts = 3;
	r->retry.on = PILOT_RETRY_ON_TIMEOUT;
	r->retry.backoff_ms = 5000;
	r->retry.max_backoff_ms = 60000;
	r->timeout_ms = 7200000;
	r->idempotency_key = pilot_xstrdup("k1");
	r->submitter = pilot_xstrdup("alice");
	r->retry_of = pilot_xstrdup("r01aaaaaaaaaaaa");
	r->agent = pilot_xstrdup("box");
	r->nattempts = 2;
	r->attempts = pilot_xcalloc(2, sizeof(*r->attempts));
	for (int i = 0; i < 2; i++) {
		struct pilot_attempt *a = &r->attempts[i];
		snprintf(a->id, sizeof(a->id), "a01abcdefghjkm%d", i);
		memcpy(a->run_id, r->id, PILOT_ID_SIZE);
		a->number = i + 1;
		a->agent = pilot_xstrdup("box");
		a->state = i ? PILOT_ATTEMPT_FAILED : PILOT_ATTEMPT_LOST;
		a->reason = i ? PILOT_REASON_EXIT_CODE : PILOT_REASON_LOST;
		a->has_exit_code = i;
		a->exit_code = i ? 3 : 0;
		a->message = pilot_xstrdup("m");
		a->started_ms = 10 + i;
		a->finished_ms = 20 + i;
		a->heartbeat_ms = 15;
		a->lease_expires_ms = 0;
		a->log_bytes = 1234;
	}
}

static void test_run_json(void **state)
{
	(void)state;
	struct pilot_run r, back = { 0 };
	fill_run(&r);
	json_t *j = pilot_run_to_json(&r);
	char *text = json_dumps(j, 0);
	assert_null(strstr(text, "top-secret"));
	assert_non_null(strstr(text, "HF_TOKEN"));
	free(text);
	j = roundtrip_text(j);
	assert_int_equal(pilot_run_from_json(j, &back), 0);
	json_decref(j);
	assert_string_equal(back.id, r.id);
	assert_string_equal(back.name, r.name);
	assert_string_equal(back.spec_json, r.spec_json);
	assert_string_equal(back.bundle_sha256, r.bundle_sha256);
	assert_string_equal(back.params_json, r.params_json);
	assert_null(back.env_json);
	assert_string_equal(pilot_kvs_get(&back.requires, "gpu"), "a100");
	assert_int_equal(back.secrets.n, 1);
	assert_string_equal(back.secrets.items[0].key, "HF_TOKEN");
	assert_null(back.secrets.items[0].value);
	assert_int_equal(back.priority, -5);
	assert_int_equal(back.state, PILOT_RUN_FAILED);
	assert_int_equal(back.reason, PILOT_REASON_EXIT_CODE);
	assert_string_equal(back.message, r.message);
	assert_true(back.has_exit_code);
	assert_int_equal(back.exit_code, 3);
	assert_int_equal(back.created_ms, r.created_ms);
	assert_int_equal(back.started_ms, r.started_ms);
	assert_int_equal(back.finished_ms, r.finished_ms);
	assert_int_equal(back.not_before_ms, 0);
	assert_int_equal(back.updated_ms, r.updated_ms);
	assert_int_equal(back.attempt_count, 2);
	assert_int_equal(back.lost_count, 1);
	assert_memory_equal(&back.retry, &r.retry, sizeof(r.retry));
	assert_int_equal(back.timeout_ms, r.timeout_ms);
	assert_string_equal(back.idempotency_key, "k1");
	assert_string_equal(back.submitter, "alice");
	assert_string_equal(back.retry_of, r.retry_of);
	assert_false(back.cancel_requested);
	assert_string_equal(back.agent, "box");
	assert_int_equal(back.nattempts, 2);
	for (int i = 0; i < 2; i++) {
		struct pilot_attempt *a = &r.attempts[i], *b = &back.attempts[i];
		assert_string_equal(a->id, b->id);
		assert_string_equal(a->run_id, b->run_id);
		assert_int_equal(a->number, b->number);
		assert_string_equal(a->agent, b->agent);
		assert_int_equal(a->state, b->state);
		assert_int_equal(a->reason, b->reason);
		assert_int_equal(a->has_exit_code, b->has_exit_code);
		assert_int_equal(a->exit_code, b->exit_code);
		assert_int_equal(a->started_ms, b->started_ms);
		assert_int_equal(a->finished_ms, b->finished_ms);
		assert_int_equal(a->heartbeat_ms, b->heartbeat_ms);
		assert_int_equal(a->log_bytes, b->log_bytes);
	}
	struct pilot_run copy;
	pilot_run_copy(&copy, &back);
	assert_string_equal(copy.attempts[1].agent, "box");
	pilot_run_clear(&copy);
	pilot_run_clear(&back);

	/* The claim carries what only the agent may see. */
	struct pilot_claim c = { .run = r, .attempt = 2, .lease_ttl_ms = 60000, .lease_expires_ms = 99 };
	memcpy(c.attempt_id, "a01abcdefghjkm1", PILOT_ID_SIZE);
	snprintf(c.lease_token, sizeof(c.lease_token), "%s", "0123456789abcdef0123456789abcdef");
	j = roundtrip_text(pilot_claim_to_json(&c));
	struct pilot_claim cb = { 0 };
	assert_int_equal(pilot_claim_from_json(j, &cb), 0);
	json_decref(j);
	assert_string_equal(pilot_kvs_get(&cb.run.secrets, "HF_TOKEN"), "top-secret");
	assert_string_equal(cb.lease_token, c.lease_token);
	assert_string_equal(cb.attempt_id, c.attempt_id);
	assert_int_equal(cb.attempt, 2);
	assert_int_equal(cb.lease_ttl_ms, 60000);
	assert_int_equal(cb.lease_expires_ms, 99);
	assert_string_equal(cb.run.spec_json, r.spec_json);
	pilot_claim_clear(&cb);
	pilot_run_clear(&r);
}

static void test_other_json(void **state)
{
	(void)state;
	/* events */
	struct pilot_event e = { .seq = 42, .attempt = 1, .time_ms = 5, .type = (char *)"claimed",
				 .actor = (char *)"box", .message = (char *)"attempt 1 claimed by box",
				 .data_json = (char *)"{\"from\":\"queued\",\"to\":\"running\"}", .state = PILOT_RUN_RUNNING };
	memcpy(e.run_id, "r01abcdefghjkmn", PILOT_ID_SIZE);
	struct pilot_event_list el = { .items = &e, .n = 1, .last_seq = 42 }, elb = { 0 };
	json_t *j = roundtrip_text(pilot_event_list_to_json(&el));
	assert_int_equal(pilot_event_list_from_json(j, &elb), 0);
	json_decref(j);
	assert_int_equal(elb.n, 1);
	assert_int_equal(elb.last_seq, 42);
	assert_int_equal(elb.items[0].seq, 42);
	assert_string_equal(elb.items[0].type, "claimed");
	assert_string_equal(elb.items[0].data_json, e.data_json);
	assert_int_equal(elb.items[0].state, PILOT_RUN_RUNNING);
	pilot_event_list_clear(&elb);

	/* agents */
	char *runs[] = { (char *)"r01abcdefghjkmn" };
	struct pilot_agent_info a = { .name = (char *)"box", .version = (char *)"0.1", .capacity = 4,
				      .state = PILOT_AGENT_BUSY, .runs = runs, .nruns = 1, .first_seen_ms = 1,
				      .last_seen_ms = 2 };
	struct pilot_agent_list al = { .items = &a, .n = 1 }, alb = { 0 };
	j = roundtrip_text(pilot_agent_list_to_json(&al));
	assert_int_equal(pilot_agent_list_from_json(j, &alb), 0);
	json_decref(j);
	assert_string_equal(alb.items[0].name, "box");
	assert_int_equal(alb.items[0].state, PILOT_AGENT_BUSY);
	assert_int_equal(alb.items[0].nruns, 1);
	assert_string_equal(alb.items[0].runs[0], runs[0]);
	assert_int_equal(alb.items[0].capacity, 4);
	pilot_agent_list_clear(&alb);

	/* artifacts, metrics */
	struct pilot_artifact art = { .path = (char *)"out/model.pt", .size = 1ull << 40, .attempt = 2, .created_ms = 3 };
	pilot_sha256_hex("x", 1, art.sha256);
	struct pilot_artifact artb = { 0 };
	j = roundtrip_text(pilot_artifact_to_json(&art));
	assert_int_equal(pilot_artifact_from_json(j, &artb), 0);
	json_decref(j);
	assert_string_equal(artb.path, art.path);
	assert_int_equal(artb.size, art.size);
	assert_string_equal(artb.sha256, art.sha256);
	pilot_artifact_clear(&artb);
	struct pilot_metric m = { .attempt = 1, .index = 7, .time_ms = 9, .json = (char *)"{\"loss\":0.5}" }, mb = { 0 };
	j = roundtrip_text(pilot_metric_to_json(&m));
	assert_int_equal(pilot_metric_from_json(j, &mb), 0);
	json_decref(j);
	assert_string_equal(mb.json, m.json);
	assert_int_equal(mb.index, 7);
	pilot_metric_clear(&mb);

	/* status */
	struct pilot_status st = { .version = (char *)"0.1.0", .now_ms = 5, .oldest_queued_ms = 4, .agents_idle = 1,
				   .agents_busy = 2, .agents_lost = 3 }, stb = { 0 };
	st.counts[PILOT_RUN_QUEUED] = 10;
	st.counts[PILOT_RUN_CANCELED] = 11;
	j = pilot_status_to_json(&st);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "runs"), "total")), 21);
	j = roundtrip_text(j);
	assert_int_equal(pilot_status_from_json(j, &stb), 0);
	json_decref(j);
	assert_memory_equal(stb.counts, st.counts, sizeof(st.counts));
	assert_int_equal(stb.agents_lost, 3);
	assert_string_equal(stb.version, "0.1.0");
	pilot_status_clear(&stb);

	/* agent calls */
	struct pilot_finish f = { .state = PILOT_ATTEMPT_FAILED, .reason = PILOT_REASON_TIMEOUT, .message = "slow" }, fb;
	j = roundtrip_text(pilot_finish_to_json(&f));
	assert_int_equal(pilot_finish_from_json(j, &fb), 0);
	assert_int_equal(fb.state, f.state);
	assert_int_equal(fb.reason, f.reason);
	assert_false(fb.has_exit_code);
	assert_string_equal(fb.message, "slow");
	json_decref(j);
	struct pilot_heartbeat_reply h = { .cancel_requested = true, .lease_expires_ms = 8, .lease_ttl_ms = 9 }, hb;
	j = roundtrip_text(pilot_heartbeat_reply_to_json(&h));
	assert_int_equal(pilot_heartbeat_reply_from_json(j, &hb), 0);
	json_decref(j);
	assert_true(hb.cancel_requested);
	assert_int_equal(hb.lease_expires_ms, 8);
	assert_int_equal(hb.lease_ttl_ms, 9);
	struct pilot_claim_request cq = { .agent = "box", .capacity = 2, .free_slots = 1, .wait_ms = 30000 }, cqb;
	pilot_kvs_set(&cq.labels, "gpu", "t4");
	j = roundtrip_text(pilot_claim_request_to_json(&cq));
	assert_int_equal(pilot_claim_request_from_json(j, &cqb), 0);
	assert_string_equal(cqb.agent, "box");
	assert_string_equal(pilot_kvs_get(&cqb.labels, "gpu"), "t4");
	assert_int_equal(cqb.wait_ms, 30000);
	pilot_claim_request_clear(&cqb);
	pilot_claim_request_clear(&cq);
	json_decref(j);

	/* submit requests carry the secret values (the POST body) */
	struct pilot_submit_request q = { .name = "n", .spec_json = "{}", .idempotency_key = "k", .priority = 3,
					  .timeout_ms = 100, .retry = { .max_attempts = 2, .on = PILOT_RETRY_ON_EXIT_CODE } },
				    qb;
	pilot_kvs_set(&q.secrets, "S", "v");
	j = roundtrip_text(pilot_submit_request_to_json(&q));
	assert_int_equal(pilot_submit_request_from_json(j, &qb), 0);
	assert_string_equal(qb.name, "n");
	assert_string_equal(qb.idempotency_key, "k");
	assert_string_equal(pilot_kvs_get(&qb.secrets, "S"), "v");
	assert_int_equal(qb.retry.on, PILOT_RETRY_ON_EXIT_CODE);
	assert_null(qb.bundle_sha256);
	pilot_submit_request_clear(&qb);
	pilot_submit_request_clear(&q);
	json_decref(j);

	/* errors */
	j = roundtrip_text(pilot_error_to_json(PILOT_ECONFLICT, "attempt 'a1' superseded"));
	pilot_error_clear();
	assert_int_equal(pilot_error_from_json(j), PILOT_ECONFLICT);
	assert_string_equal(pilot_error_last(), "attempt 'a1' superseded");
	json_decref(j);
}

static void test_bad_json(void **state)
{
	(void)state;
	struct pilot_run r = { 0 };
	json_t *j = json_loads("{\"id\":\"r1\",\"name\":5,\"state\":\"queued\"}", 0, NULL);
	assert_int_equal(pilot_run_from_json(j, &r), PILOT_EINVALID);
	assert_non_null(strstr(pilot_error_last(), "'name'"));
	json_decref(j);
	j = json_loads("{\"id\":\"r1\",\"state\":\"sleeping\"}", 0, NULL);
	assert_int_equal(pilot_run_from_json(j, &r), PILOT_EINVALID);
	assert_non_null(strstr(pilot_error_last(), "sleeping"));
	json_decref(j);
	j = json_loads("[1]", 0, NULL);
	assert_int_equal(pilot_run_from_json(j, &r), PILOT_EINVALID);
	struct pilot_submit_request q;
	assert_int_equal(pilot_submit_request_from_json(j, &q), PILOT_EINVALID);
	json_decref(j);
	j = json_loads("{\"name\":\"x\",\"spec_json\":\"{}\",\"requires\":{\"a\":1}}", 0, NULL);
	assert_int_equal(pilot_submit_request_from_json(j, &q), PILOT_EINVALID);
	assert_non_null(strstr(pilot_error_last(), "requires"));
	json_decref(j);
	j = json_loads("{\"name\":\"x\"}", 0, NULL);
	assert_int_equal(pilot_submit_request_from_json(j, &q), PILOT_EINVALID);
	json_decref(j);
	j = json_loads("{\"runs\":{}}", 0, NULL);
	struct pilot_run_list l;
	assert_int_equal(pilot_run_list_from_json(j, &l), PILOT_EINVALID);
	json_decref(j);
	j = json_loads("{\"runs\":[{\"id\":\"r1\",\"state\":\"queued\"},{\"id\":7}]}", 0, NULL);
	assert_int_equal(pilot_run_list_from_json(j, &l), PILOT_EINVALID);
	json_decref(j);
	struct pilot_claim c;
	j = json_loads("{\"run\":{\"id\":\"r1\",\"state\":\"running\"}}", 0, NULL);
	assert_int_equal(pilot_claim_from_json(j, &c), PILOT_EINVALID);
	json_decref(j);
	/* Strings that are not UTF-8 still encode. */
	struct pilot_event e = { .type = (char *)"x", .message = (char *)"bad \xff byte" };
	j = pilot_event_to_json(&e);
	assert_string_equal(json_string_value(json_object_get(j, "message")), "bad ? byte");
	json_decref(j);
}

static void test_token_shape(void **state)
{
	(void)state;
	char t[PILOT_TOKEN_SIZE], u[PILOT_TOKEN_SIZE];
	pilot_token_generate(t);
	pilot_token_generate(u);
	assert_int_equal(strlen(t), PILOT_TOKEN_LEN);
	assert_true(pilot_str_has_prefix(t, PILOT_TOKEN_PREFIX));
	assert_string_not_equal(t, u);
	assert_int_equal(pilot_token_check(t), 0);

	char bad[PILOT_TOKEN_SIZE + 1];
	memcpy(bad, t, sizeof(t));
	bad[10] = bad[10] == 'a' ? 'b' : 'a';
	assert_int_equal(pilot_token_check(bad), PILOT_EAUTH);
	assert_non_null(strstr(pilot_error_last(), "checksum"));
	/* The message never echoes the token. */
	assert_null(strstr(pilot_error_last(), t + 6));
	assert_int_equal(pilot_token_check("ptk_0123"), PILOT_EAUTH);
	assert_non_null(strstr(pilot_error_last(), "pilot_"));
	memcpy(bad, t, sizeof(t));
	bad[PILOT_TOKEN_LEN - 1] = '\0';
	assert_int_equal(pilot_token_check(bad), PILOT_EAUTH);
	memcpy(bad, t, sizeof(t));
	bad[8] = 'G';
	assert_int_equal(pilot_token_check(bad), PILOT_EAUTH);
	assert_int_equal(pilot_token_check(""), PILOT_EAUTH);
	assert_int_equal(pilot_token_check(NULL), PILOT_EAUTH);

	char h1[65], h2[65];
	pilot_token_hash(t, h1);
	pilot_token_hash(u, h2);
	assert_true(pilot_sha256_valid(h1));
	assert_string_not_equal(h1, h2);
}

static void test_scopes(void **state)
{
	(void)state;
	unsigned m = 0;
	assert_int_equal(pilot_token_scopes_parse("read,submit", &m), 0);
	assert_int_equal(m, PILOT_SCOPE_READ | PILOT_SCOPE_SUBMIT);
	assert_int_equal(pilot_token_scopes_parse("admin agent cancel", &m), 0);
	assert_int_equal(m, PILOT_SCOPE_ADMIN | PILOT_SCOPE_AGENT | PILOT_SCOPE_CANCEL);
	assert_int_equal(pilot_token_scopes_parse("read, raed", &m), PILOT_EINVALID);
	assert_non_null(strstr(pilot_error_last(), "did you mean 'read'"));
	assert_int_equal(pilot_token_scopes_parse("", &m), PILOT_EINVALID);
	assert_int_equal(pilot_token_scopes_parse(" , ", &m), PILOT_EINVALID);
	_cleanup_free_ char *s = pilot_token_scopes_format(PILOT_SCOPE_SUBMIT | PILOT_SCOPE_READ | PILOT_SCOPE_ADMIN);
	assert_string_equal(s, "read submit admin");
	assert_true(pilot_token_scopes_allow(PILOT_SCOPE_ADMIN, PILOT_SCOPE_AGENT));
	assert_true(pilot_token_scopes_allow(PILOT_SCOPE_READ, PILOT_SCOPE_READ | PILOT_SCOPE_AGENT));
	assert_false(pilot_token_scopes_allow(PILOT_SCOPE_AGENT, PILOT_SCOPE_SUBMIT));
	assert_false(pilot_token_scopes_allow(PILOT_SCOPE_READ | PILOT_SCOPE_SUBMIT, PILOT_SCOPE_ADMIN));
	/* A registration token enrolls agents and does nothing else; admin may enroll. */
	assert_int_equal(pilot_token_scopes_parse("register", &m), 0);
	assert_int_equal(m, PILOT_SCOPE_REGISTER);
	assert_false(pilot_token_scopes_allow(PILOT_SCOPE_REGISTER, PILOT_SCOPE_AGENT));
	assert_false(pilot_token_scopes_allow(PILOT_SCOPE_AGENT, PILOT_SCOPE_REGISTER));
	assert_true(pilot_token_scopes_allow(PILOT_SCOPE_ADMIN, PILOT_SCOPE_REGISTER));
	/* The wire form, both ways; a string is taken too. */
	json_t *a = pilot_token_scopes_to_json(PILOT_SCOPE_CANCEL | PILOT_SCOPE_READ);
	_cleanup_free_ char *text = json_dumps(a, JSON_COMPACT);
	assert_string_equal(text, "[\"read\",\"cancel\"]");
	assert_int_equal(pilot_token_scopes_from_json(a, &m), 0);
	assert_int_equal(m, PILOT_SCOPE_CANCEL | PILOT_SCOPE_READ);
	json_decref(a);
	a = json_string("agent,admin");
	assert_int_equal(pilot_token_scopes_from_json(a, &m), 0);
	assert_int_equal(m, PILOT_SCOPE_AGENT | PILOT_SCOPE_ADMIN);
	json_decref(a);
	a = json_pack("[s,i]", "read", 3);
	assert_int_equal(pilot_token_scopes_from_json(a, &m), PILOT_EINVALID);
	json_decref(a);
	a = json_integer(1);
	assert_int_equal(pilot_token_scopes_from_json(a, &m), PILOT_EINVALID);
	json_decref(a);
	assert_int_equal(pilot_token_scopes_from_json(NULL, &m), PILOT_EINVALID);
}

static void test_token_json(void **state)
{
	(void)state;
	struct pilot_token_record t = { .id = "t0123", .name = "alice", .scopes = "read submit", .created_ms = 5,
					.expires_ms = 9 };
	memcpy(t.sha256, "abc", 4);
	json_t *j = pilot_token_record_to_json(&t);
	_cleanup_free_ char *text = json_dumps(j, JSON_COMPACT);
	assert_null(strstr(text, "sha256"));
	struct pilot_token_record b;
	assert_int_equal(pilot_token_record_from_json(j, &b), 0);
	assert_string_equal(b.id, "t0123");
	assert_string_equal(b.name, "alice");
	assert_string_equal(b.scopes, "read submit");
	assert_int_equal(b.expires_ms, 9);
	assert_int_equal(b.revoked_ms, 0);
	pilot_token_record_clear(&b);
	json_decref(j);
	assert_int_equal(pilot_token_record_from_json(json_null(), &b), PILOT_EINVALID);
}

static void test_run_needs(void **state)
{
	(void)state;
	struct pilot_run_need n;
	assert_int_equal(pilot_run_need_parse("r0abc", &n), 0);
	assert_string_equal(n.run, "r0abc");
	assert_int_equal(n.states, PILOT_RUN_STATE_BIT(PILOT_RUN_SUCCEEDED));
	assert_int_equal(pilot_run_need_parse("r0abc:failed,canceled", &n), 0);
	assert_int_equal(n.states, PILOT_RUN_STATE_BIT(PILOT_RUN_FAILED) | PILOT_RUN_STATE_BIT(PILOT_RUN_CANCELED));
	_cleanup_free_ char *s = pilot_run_need_states_format(n.states);
	assert_string_equal(s, "failed,canceled");
	assert_int_equal(pilot_run_need_parse("r0abc:any", &n), 0);
	assert_int_equal(n.states, PILOT_RUN_TERMINAL_BITS);
	_cleanup_free_ char *any = pilot_run_need_states_format(n.states);
	assert_string_equal(any, "any");
	assert_int_equal(pilot_run_need_parse("r0abc:running", &n), PILOT_EINVALID);
	assert_non_null(strstr(pilot_error_last(), "succeeded, failed, canceled, skipped, or any"));
	assert_int_equal(pilot_run_need_parse("r0abc:sucess", &n), PILOT_EINVALID);
	assert_int_equal(pilot_run_need_parse(":failed", &n), PILOT_EINVALID);
	assert_int_equal(pilot_run_need_parse("r0abcdefghijklmnopqrstuvwxyz", &n), PILOT_EINVALID);

	/* The submit request's "after" and the run's "needs" round-trip. */
	struct pilot_submit_request q = { .name = "x", .spec_json = "{}" };
	q.after = pilot_xcalloc(2, sizeof(*q.after));
	q.nafter = 2;
	pilot_run_need_parse("r0a", &q.after[0]);
	pilot_run_need_parse("r0b:any", &q.after[1]);
	q.concurrency_group = "gpu";
	q.concurrency_max = 2;
	json_t *j = pilot_submit_request_to_json(&q);
	struct pilot_submit_request back;
	assert_int_equal(pilot_submit_request_from_json(j, &back), 0);
	assert_string_equal(back.concurrency_group, "gpu");
	assert_int_equal(back.concurrency_max, 2);
	assert_int_equal(back.nafter, 2);
	assert_string_equal(back.after[1].run, "r0b");
	assert_int_equal(back.after[1].states, PILOT_RUN_TERMINAL_BITS);
	assert_int_equal(back.after[0].states, PILOT_RUN_STATE_BIT(PILOT_RUN_SUCCEEDED));
	pilot_submit_request_clear(&back);
	json_decref(j);
	pilot_submit_request_clear(&q);
	j = json_loads("{\"name\":\"x\",\"spec_json\":\"{}\",\"after\":[{\"run\":\"r0a\",\"states\":[\"gone\"]}]}", 0,
		       NULL);
	assert_int_equal(pilot_submit_request_from_json(j, &back), PILOT_EINVALID);
	assert_non_null(strstr(pilot_error_last(), "'after'"));
	json_decref(j);
	j = json_loads("{\"name\":\"x\",\"spec_json\":\"{}\",\"concurrency\":{\"group\":\"g\",\"max\":0}}", 0, NULL);
	assert_int_equal(pilot_submit_request_from_json(j, &back), PILOT_EINVALID);
	assert_non_null(strstr(pilot_error_last(), "'concurrency'"));
	json_decref(j);

	struct pilot_run r = { .needs_left = 1, .nneeds = 1, .concurrency_max = 3, .slot_wait = true };
	r.concurrency_group = pilot_xstrdup("gpu");
	r.needs = pilot_xcalloc(1, sizeof(*r.needs));
	pilot_run_need_parse("r0c:failed", &r.needs[0]);
	struct pilot_run copy;
	pilot_run_copy(&copy, &r);
	j = pilot_run_to_json(&copy);
	struct pilot_run r2;
	assert_int_equal(pilot_run_from_json(j, &r2), 0);
	assert_int_equal(r2.nneeds, 1);
	assert_int_equal(r2.needs_left, 1);
	assert_string_equal(r2.needs[0].run, "r0c");
	assert_int_equal(r2.needs[0].states, PILOT_RUN_STATE_BIT(PILOT_RUN_FAILED));
	assert_string_equal(r2.concurrency_group, "gpu");
	assert_int_equal(r2.concurrency_max, 3);
	assert_true(r2.slot_wait);
	json_decref(j);
	pilot_run_clear(&r2);
	pilot_run_clear(&copy);
	pilot_run_clear(&r);
}

static void test_array_spec(void **state)
{
	(void)state;
	_cleanup_free_ int64_t *idx = NULL;
	size_t n;
	int throttle;
	assert_int_equal(pilot_array_spec_parse("0-99%8", &idx, &n, &throttle), 0);
	assert_int_equal(n, 100);
	assert_int_equal(idx[0], 0);
	assert_int_equal(idx[99], 99);
	assert_int_equal(throttle, 8);
	free(idx);
	assert_int_equal(pilot_array_spec_parse("5,1,0-30:10", &idx, &n, &throttle), 0);
	assert_int_equal(n, 6);
	assert_int_equal(idx[0], 5);
	assert_int_equal(idx[1], 1);
	assert_int_equal(idx[5], 30);
	assert_int_equal(throttle, 0);
	free(idx);
	idx = NULL;
	static const char *const bad[][2] = {
		{ "", "no indexes" },
		{ "9-7", "the range 9-7 goes down" },
		{ "1,2,1", "index 1 is given twice" },
		{ "0-3%0", "how many may run at once" },
		{ "a-b", "expected indexes" },
		{ "-1", "expected indexes" },
		{ "0-3:0", "expected indexes" },
		{ "0-10000", "more than 10000 elements" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		assert_int_equal(pilot_array_spec_parse(bad[i][0], &idx, &n, &throttle), PILOT_EINVALID);
		assert_null(idx);
		if (!strstr(pilot_error_last(), bad[i][1]))
			fail_msg("'%s': %s", bad[i][0], pilot_error_last());
	}

	/* An array request and an array round-trip. */
	struct pilot_array_request q = { .base = { .name = "sweep", .spec_json = "{}" }, .throttle = 4, .nelements = 2 };
	q.elements = pilot_xcalloc(2, sizeof(*q.elements));
	q.elements[0].index = 3;
	q.elements[1] = (struct pilot_array_element){ 7, "{\"name\":\"x\"}", "{\"i\":\"7\"}" };
	json_t *j = pilot_array_request_to_json(&q);
	struct pilot_array_request back;
	assert_int_equal(pilot_array_request_from_json(j, &back), 0);
	assert_int_equal(back.nelements, 2);
	assert_int_equal(back.throttle, 4);
	assert_string_equal(back.base.name, "sweep");
	assert_int_equal(back.elements[1].index, 7);
	assert_string_equal(back.elements[1].params_json, "{\"i\":\"7\"}");
	assert_null(back.elements[0].spec_json);
	pilot_array_request_clear(&back);
	json_decref(j);
	pilot_array_request_clear(&q);

	/* A pipeline request round-trips; a job's needs must be names. */
	struct pilot_pipeline_request pq = { .name = "ml", .idempotency_key = "k", .max_failures = 1, .njobs = 2 };
	pq.jobs = pilot_xcalloc(2, sizeof(*pq.jobs));
	pq.jobs[0].run = (struct pilot_submit_request){ .name = "prep", .spec_json = "{}", .priority = 7 };
	pq.jobs[1].run = (struct pilot_submit_request){ .name = "train", .spec_json = "{}" };
	pq.jobs[1].needs = pilot_xcalloc(1, sizeof(*pq.jobs[1].needs));
	pq.jobs[1].needs[0] = "prep";
	pq.jobs[1].nneeds = 1;
	j = pilot_pipeline_request_to_json(&pq);
	struct pilot_pipeline_request pback;
	assert_int_equal(pilot_pipeline_request_from_json(j, &pback), 0);
	assert_string_equal(pback.name, "ml");
	assert_string_equal(pback.idempotency_key, "k");
	assert_int_equal(pback.max_failures, 1);
	assert_int_equal(pback.njobs, 2);
	assert_int_equal(pback.jobs[0].run.priority, 7);
	assert_int_equal(pback.jobs[0].nneeds, 0);
	assert_string_equal(pback.jobs[1].run.name, "train");
	assert_int_equal(pback.jobs[1].nneeds, 1);
	assert_string_equal(pback.jobs[1].needs[0], "prep");
	pilot_pipeline_request_clear(&pback);
	json_array_set_new(json_object_get(json_array_get(json_object_get(j, "jobs"), 1), "needs"), 0, json_integer(1));
	assert_int_equal(pilot_pipeline_request_from_json(j, &pback), PILOT_EINVALID);
	json_object_set_new(j, "jobs", json_string("x"));
	assert_int_equal(pilot_pipeline_request_from_json(j, &pback), PILOT_EINVALID);
	json_decref(j);
	pilot_pipeline_request_clear(&pq);

	struct pilot_array a = { .id = "x0abc", .throttle = 2, .nruns = 1 }, a2;
	a.runs = pilot_xcalloc(1, sizeof(*a.runs));
	memcpy(a.runs[0], "r0abc", 6);
	j = pilot_array_to_json(&a);
	assert_int_equal(pilot_array_from_json(j, &a2), 0);
	assert_string_equal(a2.id, "x0abc");
	assert_int_equal(a2.nruns, 1);
	assert_string_equal(a2.runs[0], "r0abc");
	json_decref(j);
	pilot_array_clear(&a2);
	pilot_array_clear(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_kvs),
		cmocka_unit_test(test_run_json),
		cmocka_unit_test(test_other_json),
		cmocka_unit_test(test_bad_json),
		cmocka_unit_test(test_token_shape),
		cmocka_unit_test(test_scopes),
		cmocka_unit_test(test_token_json),
		cmocka_unit_test(test_run_needs),
		cmocka_unit_test(test_array_spec),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
