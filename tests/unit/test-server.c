/* Unit tests for lib/server and the http transport's client extras: the server config
 * file, and an in-process server on loopback reached through lib/api/http.c (auth
 * codes, limits, shutdown of a waiting claim, an unreachable server). The full api contract over http is the conformance suite's
 * job (tests/conformance/http.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "pilot/api.h"
#include "pilot/server.h"
#include "pilot/store.h"
#include "pilot/util.h"

static char dir[64];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/pilot-test-server.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	/* Fail fast on purpose-made connection errors. */
	setenv("PILOT_HTTP_RETRIES", "0", 1);
	unsetenv("PILOT_LEASE_TTL");
	unsetenv("PILOT_REAP_INTERVAL");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	pilot_rm_rf(dir);
	return 0;
}

static void test_config_file(void **state)
{
	(void)state;
	_cleanup_free_ char *p = pilot_path_join(dir, "server.yaml");
	const char *text = "listen: 127.0.0.1:9000\nlease_ttl: 5s\nmax_bundle_size: 4GiB\nmax_conns_per_ip: -1\n"
			   "log_format: json\n";
	assert_int_equal(pilot_write_file_atomic(p, text, strlen(text), 0600), 0);
	struct pilot_kvs kvs = { 0 };
	assert_int_equal(pilot_server_config_read(p, &kvs), 0);
	struct pilot_server_options o = { 0 };
	assert_int_equal(pilot_server_options_apply(&o, &kvs, p), 0);
	assert_string_equal(o.listen, "127.0.0.1:9000");
	assert_int_equal(o.lease_ttl_ms, 5000);
	assert_true(o.max_bundle_size == 4ULL << 30);
	assert_int_equal(o.max_conns_per_ip, -1);
	assert_true(o.log_json);
	pilot_kvs_clear(&kvs);

	text = "listen: :1\nlease_tll: 5s\n";
	assert_int_equal(pilot_write_file_atomic(p, text, strlen(text), 0600), 0);
	assert_int_equal(pilot_server_config_read(p, &kvs), PILOT_EINVALID);
	assert_non_null(strstr(pilot_error_last(), ":2:1: unknown key 'lease_tll' (did you mean 'lease_ttl'?)"));
	pilot_kvs_clear(&kvs);

	text = "- a list\n";
	assert_int_equal(pilot_write_file_atomic(p, text, strlen(text), 0600), 0);
	assert_int_equal(pilot_server_config_read(p, &kvs), PILOT_EINVALID);
	pilot_kvs_clear(&kvs);

	pilot_kvs_set(&kvs, "reap_interval", "soon");
	assert_int_equal(pilot_server_options_apply(&o, &kvs, "flag"), PILOT_EINVALID);
	assert_non_null(strstr(pilot_error_last(), "reap_interval"));
	pilot_kvs_clear(&kvs);
	pilot_kvs_set(&kvs, "log_format", "xml");
	assert_int_equal(pilot_server_options_apply(&o, &kvs, "flag"), PILOT_EINVALID);
	pilot_kvs_clear(&kvs);
	pilot_kvs_set(&kvs, "threads", "0");
	assert_int_equal(pilot_server_options_apply(&o, &kvs, "flag"), PILOT_EINVALID);
	pilot_kvs_clear(&kvs);
}

/* ---- an in-process server ---- */

struct fixture {
	char data[96];
	char admin[PILOT_TOKEN_SIZE];
	struct pilot_server *srv;
};

static void start(struct fixture *f, const char *name, struct pilot_server_options *o)
{
	snprintf(f->data, sizeof(f->data), "%s/%s", dir, name);
	assert_int_equal(pilot_server_init(f->data, f->admin, NULL), 0);
	o->data_dir = f->data;
	o->listen = "127.0.0.1:0";
	assert_int_equal(pilot_server_start(o, &f->srv), 0);
	assert_true(pilot_str_has_prefix(pilot_server_url(f->srv), "http://127.0.0.1:"));
}

static struct pilot_api *client(struct fixture *f, const char *token)
{
	struct pilot_http_options ho = { .url = pilot_server_url(f->srv), .token = token };
	struct pilot_api *api = NULL;
	assert_int_equal(pilot_api_open_http(&ho, &api), 0);
	assert_true(pilot_api_is_http(api));
	return api;
}

struct progress {
	int calls;
	uint64_t last_sent, last_total;
};

static void on_progress(uint64_t sent, uint64_t total, void *ud)
{
	struct progress *p = ud;
	p->calls++;
	p->last_sent = sent;
	p->last_total = total;
}

static void test_server_auth(void **state)
{
	(void)state;
	struct fixture f = { 0 };
	struct pilot_server_options o = { .max_json_body = 4096 };
	start(&f, "auth", &o);

	/* init refuses a second time */
	char again[PILOT_TOKEN_SIZE];
	assert_int_equal(pilot_server_init(f.data, again, NULL), PILOT_ECONFLICT);

	struct pilot_api *admin = client(&f, f.admin);
	struct pilot_whoami w = { 0 };
	assert_int_equal(pilot_http_whoami(admin, &w), 0);
	assert_string_equal(w.name, "admin");
	assert_int_equal(w.scopes, PILOT_SCOPE_ADMIN);
	pilot_whoami_clear(&w);

	char *agent_tok = NULL;
	struct pilot_token_record rec = { 0 };
	assert_int_equal(pilot_http_token_create(admin, "ag", PILOT_SCOPE_AGENT, 0, &agent_tok, &rec), 0);
	assert_int_equal(pilot_token_check(agent_tok), 0);
	assert_string_equal(rec.name, "ag");
	pilot_token_record_clear(&rec);
	struct pilot_token_list tl = { 0 };
	assert_int_equal(pilot_http_token_list(admin, &tl), 0);
	assert_int_equal(tl.n, 2);
	pilot_token_list_clear(&tl);

	struct pilot_api *agent = client(&f, agent_tok);
	struct pilot_submit_request q = { .name = "x", .spec_json = "{}" };
	struct pilot_run r = { 0 };
	assert_int_equal(pilot_api_submit(agent, &q, &r), PILOT_EFORBIDDEN);
	assert_non_null(strstr(pilot_error_last(), "'submit' scope"));
	struct pilot_run_list rl = { 0 };
	assert_int_equal(pilot_api_list_runs(agent, NULL, &rl), PILOT_EFORBIDDEN);
	/* An agent name, once used by one agent token, is refused to another. */
	struct pilot_agent_info ai = { .name = "box1", .capacity = 1 };
	assert_int_equal(pilot_api_register_agent(agent, &ai), 0);
	char *agent2_tok = NULL;
	assert_int_equal(pilot_http_token_create(admin, NULL, PILOT_SCOPE_AGENT, 0, &agent2_tok, NULL), 0);
	struct pilot_api *agent2 = client(&f, agent2_tok);
	assert_int_equal(pilot_api_register_agent(agent2, &ai), PILOT_EFORBIDDEN);
	assert_int_equal(pilot_api_agent_leave(agent2, "box1"), PILOT_EFORBIDDEN);

	/* A well-formed token the server does not know. */
	char stranger[PILOT_TOKEN_SIZE];
	pilot_token_generate(stranger);
	struct pilot_api *nobody = client(&f, stranger);
	struct pilot_status st = { 0 };
	assert_int_equal(pilot_api_status(nobody, &st), PILOT_EAUTH);
	assert_non_null(strstr(pilot_error_last(), "run 'pilot login'"));
	/* A malformed token is refused before anything is sent. */
	struct pilot_http_options ho = { .url = pilot_server_url(f.srv), .token = "pilot_nope" };
	struct pilot_api *broken = NULL;
	assert_int_equal(pilot_api_open_http(&ho, &broken), PILOT_EAUTH);

	/* Revoked: 401 from then on. */
	assert_int_equal(pilot_http_token_revoke(admin, "ag"), 0);
	assert_int_equal(pilot_api_register_agent(agent, &ai), PILOT_EAUTH);
	assert_int_equal(pilot_http_token_revoke(admin, "nosuch"), PILOT_ENOTFOUND);

	/* A JSON body over max_json_body. */
	struct pilot_buf big = PILOT_BUF_INIT;
	pilot_buf_puts(&big, "{\"pad\":\"");
	for (int i = 0; i < 5000; i++)
		pilot_buf_putc(&big, 'x');
	pilot_buf_puts(&big, "\"}");
	q.spec_json = pilot_buf_str(&big);
	assert_int_equal(pilot_api_submit(admin, &q, &r), PILOT_ELIMIT);
	pilot_buf_free(&big);

	/* A bundle upload reports its progress to the hook. */
	_cleanup_free_ char *bfile = pilot_path_join(dir, "bundle.bin");
	size_t bsize = 3 * 1024 * 1024 + 17;
	char *bytes = pilot_xcalloc(1, bsize);
	for (size_t i = 0; i < bsize; i++)
		bytes[i] = (char)(i * 7);
	char bsha[65];
	pilot_sha256_hex(bytes, bsize, bsha);
	assert_int_equal(pilot_write_file_atomic(bfile, bytes, bsize, 0600), 0);
	free(bytes);
	struct progress p = { 0 };
	pilot_http_set_progress(admin, on_progress, &p);
	assert_int_equal(pilot_api_bundle_has(admin, bsha), 0);
	assert_int_equal(pilot_api_bundle_put_file(admin, bsha, bfile), 0);
	assert_int_equal(pilot_api_bundle_has(admin, bsha), 1);
	assert_true(p.calls > 0);
	assert_true(p.last_sent == bsize && p.last_total == bsize);
	pilot_http_set_progress(admin, NULL, NULL);
	int bfd = -1;
	assert_int_equal(pilot_api_bundle_get(admin, bsha, &bfd), 0);
	struct stat sb;
	assert_int_equal(fstat(bfd, &sb), 0);
	assert_int_equal((size_t)sb.st_size, bsize);
	close(bfd);
	/* The wrong name for the bytes. */
	char wrong[65];
	memset(wrong, 'a', 64);
	wrong[64] = '\0';
	assert_int_equal(pilot_api_bundle_put_file(admin, wrong, bfile), PILOT_EINVALID);

	/* Not a transport the extras work on. */
	struct pilot_api *local = NULL;
	_cleanup_free_ char *ldir = pilot_path_join(dir, "local");
	assert_int_equal(pilot_api_open_local(ldir, NULL, &local), 0);
	assert_false(pilot_api_is_http(local));
	assert_int_equal(pilot_http_whoami(local, &w), PILOT_EINVALID);
	pilot_api_close(local);

	free(agent_tok);
	free(agent2_tok);
	pilot_api_close(agent);
	pilot_api_close(agent2);
	pilot_api_close(nobody);
	pilot_api_close(admin);
	pilot_server_stop(f.srv, 5000);
}

struct waiting_claim {
	struct pilot_api *api;
	int rc;
	int64_t took_ms;
};

static void *claim_thread(void *arg)
{
	struct waiting_claim *wc = arg;
	struct pilot_claim_request q = { .agent = "waiter", .wait_ms = 60000 };
	struct pilot_claim c = { 0 };
	int64_t t0 = pilot_mono_ms();
	wc->rc = pilot_api_claim(wc->api, &q, &c);
	wc->took_ms = pilot_mono_ms() - t0;
	pilot_claim_clear(&c);
	return NULL;
}

static void test_server_stop_answers_waiters(void **state)
{
	(void)state;
	struct fixture f = { 0 };
	struct pilot_server_options o = { 0 };
	start(&f, "stop", &o);
	_cleanup_free_ char *url = pilot_xstrdup(pilot_server_url(f.srv));
	struct waiting_claim wc = { .api = client(&f, f.admin), .rc = -100 };
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, claim_thread, &wc), 0);
	/* Give it time to be parked; then stop: it must be answered (204 -> 0) long before
	 * its 60 s are up. */
	struct timespec ts = { 0, 300 * 1000000L };
	nanosleep(&ts, NULL);
	pilot_server_stop(f.srv, 5000);
	pthread_join(th, NULL);
	assert_int_equal(wc.rc, 0);
	assert_true(wc.took_ms < 30000);
	pilot_api_close(wc.api);

	/* Now nothing listens there. */
	struct pilot_http_options ho = { .url = url, .token = f.admin };
	struct pilot_api *api = NULL;
	assert_int_equal(pilot_api_open_http(&ho, &api), 0);
	struct pilot_status st = { 0 };
	assert_int_equal(pilot_api_status(api, &st), PILOT_EUNAVAILABLE);
	assert_non_null(strstr(pilot_error_last(), url));
	pilot_api_close(api);
}

static void test_server_start_errors(void **state)
{
	(void)state;
	struct pilot_server *srv = NULL;
	_cleanup_free_ char *d = pilot_path_join(dir, "errs");
	struct pilot_server_options o = { .data_dir = d, .listen = "nowhere" };
	assert_int_equal(pilot_server_start(&o, &srv), PILOT_EINVALID);
	o.listen = "127.0.0.1:99999";
	assert_int_equal(pilot_server_start(&o, &srv), PILOT_EINVALID);
	o.listen = "127.0.0.1:0";
	o.tls_cert = "/nonexistent.pem";
	assert_true(pilot_server_start(&o, &srv) < 0);
	pilot_server_stop(NULL, 0);

	struct pilot_http_options ho = { .url = "ftp://x" };
	struct pilot_api *api = NULL;
	assert_int_equal(pilot_api_open_http(&ho, &api), PILOT_EINVALID);
	char tok[PILOT_TOKEN_SIZE];
	assert_int_equal(pilot_server_init(d, tok, NULL), 0);
	assert_int_equal(pilot_server_check(d), 0);
	_cleanup_free_ char *none = pilot_path_join(dir, "none");
	assert_int_equal(pilot_server_check(none), PILOT_ENOTFOUND);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_file),
		cmocka_unit_test(test_server_auth),
		cmocka_unit_test(test_server_stop_answers_waiters),
		cmocka_unit_test(test_server_start_errors),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
