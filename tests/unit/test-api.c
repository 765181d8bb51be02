/* Unit tests for lib/api: choosing the transport from the configuration. The api's
 * contract itself is the conformance suite's (tests/conformance), on both transports. */
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open_from_config),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
