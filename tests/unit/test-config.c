/* Unit tests for lib/config: parsing, precedence, the token-mode check, saving. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "pilot/config.h"
#include "pilot/util.h"

static char dir[64];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/pilot-test-config.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	unsetenv("PILOT_SERVER");
	unsetenv("PILOT_TOKEN");
	unsetenv("PILOT_PROFILE");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	pilot_rm_rf(dir);
	return 0;
}

static char *write_cfg(const char *name, const char *text, mode_t mode)
{
	char *p = pilot_path_join(dir, name);
	assert_int_equal(pilot_write_file_atomic(p, text, strlen(text), mode), 0);
	return p;
}

static void test_precedence(void **state)
{
	(void)state;
	_cleanup_free_ char *p = write_cfg("a.yaml",
		"current_profile: prod\n"
		"profiles:\n"
		"  default: {server: http://d}\n"
		"  prod:\n"
		"    server: http://p\n"
		"    runtime: podman\n", 0600);
	struct pilot_config_overrides ov = { .path = p };
	struct pilot_config *cfg;
	assert_int_equal(pilot_config_load(&ov, &cfg), 0);
	const char *src;
	assert_string_equal(cfg->profile, "prod");
	assert_string_equal(pilot_config_get(cfg, "server", &src), "http://p");
	assert_string_equal(src, "profile");
	assert_string_equal(pilot_config_get(cfg, "pull", &src), "missing");
	assert_string_equal(src, "default");
	setenv("PILOT_RUNTIME", "host", 1);
	assert_string_equal(pilot_config_get(cfg, "runtime", &src), "host");
	assert_string_equal(src, "env");
	unsetenv("PILOT_RUNTIME");
	pilot_config_free(cfg);

	ov.server = "http://flag";
	ov.profile = "default";
	setenv("PILOT_SERVER", "http://env", 1);
	assert_int_equal(pilot_config_load(&ov, &cfg), 0);
	assert_string_equal(pilot_config_get(cfg, "server", &src), "http://flag");
	assert_string_equal(src, "flag");
	pilot_config_free(cfg);
	ov.server = NULL;
	assert_int_equal(pilot_config_load(&ov, &cfg), 0);
	assert_string_equal(pilot_config_get(cfg, "server", NULL), "http://env");
	unsetenv("PILOT_SERVER");
	assert_string_equal(pilot_config_get(cfg, "server", NULL), "http://d");
	pilot_config_free(cfg);

	ov.profile = "nope";
	assert_int_equal(pilot_config_load(&ov, &cfg), PILOT_ENOTFOUND);
}

static void test_errors(void **state)
{
	(void)state;
	_cleanup_free_ char *p = write_cfg("b.yaml", "profiles:\n  default:\n    sevrer: x\n", 0600);
	struct pilot_config_overrides ov = { .path = p };
	struct pilot_config *cfg;
	assert_int_equal(pilot_config_load(&ov, &cfg), PILOT_EINVALID);
	assert_non_null(strstr(pilot_error_last(), "b.yaml:3:5: unknown key 'sevrer' (did you mean 'server'?)"));

	_cleanup_free_ char *q = write_cfg("c.yaml", "profiles:\n  default:\n    token: ptk_x\n", 0644);
	ov.path = q;
	assert_int_equal(pilot_config_load(&ov, &cfg), PILOT_EAUTH);
	assert_non_null(strstr(pilot_error_last(), "mode 0644"));
	assert_non_null(strstr(pilot_error_last(), "chmod 600"));
	chmod(q, 0600);
	assert_int_equal(pilot_config_load(&ov, &cfg), 0);
	pilot_config_free(cfg);

	_cleanup_free_ char *r = write_cfg("d.yaml", "profiles: [1, 2\n", 0600);
	ov.path = r;
	assert_int_equal(pilot_config_load(&ov, &cfg), PILOT_EINVALID);
}

static void test_save_roundtrip(void **state)
{
	(void)state;
	_cleanup_free_ char *p = pilot_path_join(dir, "sub/dir/config.yaml");
	struct pilot_config_overrides ov = { 0 };
	setenv("XDG_CONFIG_HOME", dir, 1);
	struct pilot_config *cfg;
	assert_int_equal(pilot_config_load(&ov, &cfg), 0);
	free(cfg->path);
	cfg->path = pilot_xstrdup(p);
	assert_int_equal(pilot_config_set(cfg, "default", "token", "ptk_\"quoted\"\\x"), 0);
	assert_int_equal(pilot_config_set(cfg, "ci", "server", "http://ci:8080"), 0);
	assert_int_equal(pilot_config_set(cfg, "ci", "sever", "x"), PILOT_EINVALID);
	assert_int_equal(pilot_config_save(cfg), 0);
	pilot_config_free(cfg);
	struct stat st;
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);

	ov.path = p;
	assert_int_equal(pilot_config_load(&ov, &cfg), 0);
	assert_string_equal(pilot_config_profile_get(cfg, "default", "token"), "ptk_\"quoted\"\\x");
	assert_string_equal(pilot_config_profile_get(cfg, "ci", "server"), "http://ci:8080");
	assert_int_equal(pilot_config_set(cfg, "ci", "server", NULL), 0);
	assert_null(pilot_config_profile_get(cfg, "ci", "server"));
	pilot_config_free(cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_precedence),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_save_roundtrip),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
