/* Unit tests for lib/api: choosing the transport from the configuration, and the
 * routes table (paths built and matched back). The api's contract itself is the
 * conformance suite's (tests/conformance), on both transports. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "pilot/api.h"
#include "pilot/config.h"
#include "pilot/util.h"

static void test_open_from_config(void **state)
{
	(void)state;
	char dir[64];
	snprintf(dir, sizeof(dir), "/tmp/pilot-test-api.XXXXXX");
	assert_non_null(mkdtemp(dir));
	_cleanup_free_ char *cfgpath = pilot_path_join(dir, "config.yaml");
	_cleanup_free_ char *data = pilot_path_join(dir, "data");
	assert_int_equal(pilot_write_file_atomic(cfgpath, "", 0, 0600), 0);
	struct pilot_config_overrides ov = { .path = cfgpath };
	struct pilot_config *cfg;
	setenv("PILOT_DATA_DIR", data, 1);
	unsetenv("PILOT_SERVER");
	assert_int_equal(pilot_config_load(&ov, &cfg), 0);
	struct pilot_api *api = NULL;
	assert_int_equal(pilot_api_open_from_config(cfg, &api), 0);
	assert_string_equal(api->ops->name, "local");
	assert_non_null(pilot_api_local_store(api));
	pilot_api_close(api);
	pilot_config_free(cfg);
	_cleanup_free_ char *db = pilot_path_join(data, "pilot.db");
	assert_int_equal(access(db, F_OK), 0);
	setenv("PILOT_SERVER", "https://pilot.example.com", 1);
	assert_int_equal(pilot_config_load(&ov, &cfg), 0);
	api = NULL;
	/* A configured server selects the http transport (it connects on first use). */
	assert_int_equal(pilot_api_open_from_config(cfg, &api), 0);
	assert_string_equal(api->ops->name, "http");
	assert_null(pilot_api_local_store(api));
	pilot_api_close(api);
	pilot_config_free(cfg);
	unsetenv("PILOT_SERVER");
	unsetenv("PILOT_DATA_DIR");
	pilot_api_close(NULL);
	pilot_rm_rf(dir);
}

/* %XX -> the byte, as libmicrohttpd hands the server its paths. */
static char *url_decode(const char *s)
{
	char *out = pilot_xstrdup(s), *o = out;
	for (; *s; s++) {
		unsigned v;
		if (*s == '%' && sscanf(s + 1, "%2x", &v) == 1) {
			*o++ = (char)v;
			s += 2;
		} else {
			*o++ = *s;
		}
	}
	*o = '\0';
	return out;
}

/* Every route's path, built with pilot_route_path, is matched back to the same route
 * with the same parameters; a wrong method is told from an unknown path. */
static void test_routes(void **state)
{
	(void)state;
	for (int i = 0; i < PILOT_NROUTES; i++) {
		const struct pilot_route *rt = &pilot_routes[i];
		assert_non_null(rt->method);
		assert_non_null(rt->pattern);
		bool rest = strstr(rt->pattern, "*}") != NULL;
		const char *open = strchr(rt->pattern, '{');
		bool two = open && strchr(open + 1, '{');
		const char *const params[2] = { "r01 x", rest ? "out/a b.txt" : two ? "drain" : NULL };
		_cleanup_buf_ struct pilot_buf b = PILOT_BUF_INIT;
		pilot_route_path((enum pilot_route_id)i, params, &b);
		/* The server matches the decoded path. */
		_cleanup_free_ char *decoded = url_decode(pilot_buf_str(&b));
		char *got[2] = { NULL, NULL };
		bool known;
		int id = pilot_route_match(rt->method, decoded, got, &known);
		if (id != i)
			fail_msg("%s %s (%s) matched route %d, not %d", rt->method, rt->pattern, decoded, id, i);
		if (strchr(rt->pattern, '{'))
			assert_string_equal(got[0], "r01 x");
		if (rest || two)
			assert_string_equal(got[1], params[1]);
		pilot_route_params_free(got);
		assert_null(got[0]);
		if (rt->request)
			assert_int_equal(rt->body, PILOT_BODY_JSON);
	}
	char *got[2] = { NULL, NULL };
	bool known;
	assert_int_equal(pilot_route_match("PATCH", "/v1/runs", got, &known), -1);
	assert_true(known);
	assert_int_equal(pilot_route_match("GET", "/v1/nothing", got, &known), -1);
	assert_false(known);
	assert_null(got[0]);
	_cleanup_buf_ struct pilot_buf b = PILOT_BUF_INIT;
	pilot_url_escape(&b, "a/b c%", false);
	assert_string_equal(pilot_buf_str(&b), "a%2Fb%20c%25");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open_from_config),
		cmocka_unit_test(test_routes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
