/* Unit tests for lib/util: errors, buffers, parsing, ids, fs helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "pilot/util.h"

static void test_error_model(void **state)
{
	(void)state;
	pilot_error_clear();
	assert_string_equal(pilot_error_last(), "");
	assert_int_equal(pilot_error_set(PILOT_ENOTFOUND, "run '%s' not found", "r1"), PILOT_ENOTFOUND);
	assert_string_equal(pilot_error_last(), "run 'r1' not found");
	assert_int_equal(pilot_error_code(), PILOT_ENOTFOUND);
	pilot_error_prefix(PILOT_EFAIL, "cannot show");
	assert_string_equal(pilot_error_last(), "cannot show: run 'r1' not found");
	assert_string_equal(pilot_err_name(PILOT_ECONFLICT), "conflict");
}

static void test_buf(void **state)
{
	(void)state;
	_cleanup_buf_ struct pilot_buf b = PILOT_BUF_INIT;
	assert_string_equal(pilot_buf_str(&b), "");
	for (int i = 0; i < 1000; i++)
		assert_int_equal(pilot_buf_printf(&b, "%d,", i), 0);
	assert_true(pilot_str_has_prefix(b.data, "0,1,2,"));
	assert_true(pilot_str_has_suffix(b.data, "999,"));
	pilot_buf_consume(&b, 2);
	assert_true(pilot_str_has_prefix(b.data, "1,2,"));
	pilot_buf_truncate(&b, 2);
	assert_string_equal(b.data, "1,");

	struct pilot_buf lim;
	pilot_buf_init(&lim, 8);
	assert_int_equal(pilot_buf_puts(&lim, "12345678"), 0);
	assert_int_equal(pilot_buf_puts(&lim, "9"), PILOT_ELIMIT);
	assert_string_equal(lim.data, "12345678"); /* unchanged on failure */
	char *s = pilot_buf_steal(&lim);
	assert_string_equal(s, "12345678");
	assert_null(lim.data);
	free(s);
	pilot_buf_free(&lim);
}

static void test_int(void **state)
{
	(void)state;
	int64_t v;
	assert_int_equal(pilot_parse_int64("42", 0, 100, &v), 0);
	assert_int_equal(v, 42);
	assert_int_equal(pilot_parse_int64("-5", -10, 10, &v), 0);
	assert_int_equal(v, -5);
	assert_int_equal(pilot_parse_int64("101", 0, 100, &v), PILOT_EINVALID);
	assert_int_equal(pilot_parse_int64("12x", 0, 100, &v), PILOT_EINVALID);
	assert_int_equal(pilot_parse_int64("", 0, 100, &v), PILOT_EINVALID);
	assert_int_equal(pilot_parse_int64(" 1", 0, 100, &v), PILOT_EINVALID);
	assert_int_equal(pilot_parse_int64("99999999999999999999", INT64_MIN, INT64_MAX, &v), PILOT_EINVALID);
}

static void test_duration(void **state)
{
	(void)state;
	static const struct { const char *in; int64_t ms; } good[] = {
		{ "500ms", 500 }, { "90s", 90000 }, { "15m", 900000 }, { "2h", 7200000 },
		{ "1d", 86400000 }, { "1h30m", 5400000 }, { "1.5h", 5400000 }, { "30", 30000 },
		{ "0s", 0 }, { "1w", 604800000 }, { "0.5s", 500 },
	};
	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		int64_t ms = -1;
		assert_int_equal(pilot_parse_duration(good[i].in, &ms), 0);
		assert_int_equal(ms, good[i].ms);
	}
	static const char *bad[] = { "", "s", "10x", "-5s", "1h 30m", "1.s", "h1", "99999999999999999999d", "1s30" };
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		int64_t ms;
		assert_int_equal(pilot_parse_duration(bad[i], &ms), PILOT_EINVALID);
	}
	pilot_parse_duration("10x", &(int64_t){ 0 });
	assert_non_null(strstr(pilot_error_last(), "invalid duration '10x'"));
	char out[32];
	pilot_format_duration(350, out, sizeof(out));
	assert_string_equal(out, "350ms");
	pilot_format_duration(3723000, out, sizeof(out));
	assert_string_equal(out, "1h2m");
}

static void test_size(void **state)
{
	(void)state;
	static const struct { const char *in; uint64_t b; } good[] = {
		{ "512MiB", 512ULL << 20 }, { "4G", 4ULL << 30 }, { "1.5GB", 1500000000ULL },
		{ "100k", 102400 }, { "1024", 1024 }, { "10B", 10 }, { "2KiB", 2048 }, { "1TB", 1000000000000ULL },
		{ "0.5GiB", 512ULL << 20 },
	};
	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		uint64_t b = 0;
		assert_int_equal(pilot_parse_size(good[i].in, &b), 0);
		assert_int_equal(b, good[i].b);
	}
	static const char *bad[] = { "", "4 gigs", "GiB", "4X", "-1G", "1.5.5G", "99999999999P", "4 G" };
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		uint64_t b;
		assert_int_equal(pilot_parse_size(bad[i], &b), PILOT_EINVALID);
	}
	pilot_parse_size("4 gigs", &(uint64_t){ 0 });
	assert_string_equal(pilot_error_last(), "invalid size '4 gigs' (expected e.g. 512MiB, 4G)");
	char out[32];
	pilot_format_size(1536, out, sizeof(out));
	assert_string_equal(out, "1.5 KiB");
}

static void test_ids(void **state)
{
	(void)state;
	char prev[PILOT_ID_SIZE] = "";
	for (int i = 0; i < 2000; i++) {
		char id[PILOT_ID_SIZE];
		pilot_id_new('r', id);
		assert_int_equal(strlen(id), PILOT_ID_LEN);
		assert_true(pilot_id_valid(id, false));
		assert_int_not_equal(strcmp(id, prev), 0);
		/* Sortable: the time part never goes backwards. */
		if (prev[0])
			assert_true(strncmp(prev, id, 10) <= 0);
		memcpy(prev, id, sizeof(id));
		if (i % 500 == 0)
			usleep(2000);
	}
	assert_true(pilot_id_valid("r01", true));
	assert_false(pilot_id_valid("r01", false));
	assert_false(pilot_id_valid("R01", true));
	assert_false(pilot_id_valid("r0i", true)); /* 'i' is not in the alphabet */
	char hex[65];
	pilot_sha256_hex("abc", 3, hex);
	assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	assert_true(pilot_sha256_valid(hex));
	assert_false(pilot_sha256_valid("abc"));
}

static void test_fs(void **state)
{
	(void)state;
	char tmpl[] = "/tmp/pilot-test-util.XXXXXX";
	assert_non_null(mkdtemp(tmpl));
	_cleanup_free_ char *deep = pilot_path_join(tmpl, "a/b/c");
	assert_int_equal(pilot_mkdir_p(deep, 0755), 0);
	_cleanup_free_ char *f = pilot_path_join(deep, "f.txt");
	assert_int_equal(pilot_write_file_atomic(f, "hello", 5, 0600), 0);
	struct stat st;
	assert_int_equal(stat(f, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	_cleanup_buf_ struct pilot_buf b = PILOT_BUF_INIT;
	assert_int_equal(pilot_read_file(f, 0, &b), 0);
	assert_string_equal(b.data, "hello");
	pilot_buf_reset(&b);
	assert_int_equal(pilot_read_file(f, 3, &b), PILOT_ELIMIT);
	_cleanup_free_ char *missing = pilot_path_join(tmpl, "nope");
	assert_int_equal(pilot_read_file(missing, 0, &b), PILOT_ENOTFOUND);
	/* A symlink inside the tree is removed, not followed. */
	char outside[] = "/tmp/pilot-test-keep.XXXXXX";
	assert_non_null(mkdtemp(outside));
	_cleanup_free_ char *link = pilot_path_join(tmpl, "a/link");
	assert_int_equal(symlink(outside, link), 0);
	assert_int_equal(pilot_rm_rf(tmpl), 0);
	assert_int_equal(access(tmpl, F_OK), -1);
	assert_int_equal(access(outside, F_OK), 0);
	rmdir(outside);
	_cleanup_free_ char *j = pilot_path_join("/a/", "/b");
	assert_string_equal(j, "/a/b");
	/* A temp file leaves no name behind, in $TMPDIR when set; a bad $TMPDIR is named. */
	char tdir[] = "/tmp/pilot-test-tmp.XXXXXX";
	assert_non_null(mkdtemp(tdir));
	setenv("TMPDIR", tdir, 1);
	int fd = pilot_open_temp();
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "x", 1), 1);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_nlink, 0);
	close(fd);
	assert_int_equal(rmdir(tdir), 0);
	assert_int_equal(pilot_open_temp(), PILOT_EIO);
	assert_non_null(strstr(pilot_error_last(), tdir));
	unsetenv("TMPDIR");
}

static void test_suggest(void **state)
{
	(void)state;
	const char *cands[] = { "submit", "status", "show", "server" };
	assert_string_equal(pilot_suggest("sumbit", cands, 4), "submit");
	assert_string_equal(pilot_suggest("stauts", cands, 4), "status");
	assert_null(pilot_suggest("xyzzy", cands, 4));
	assert_int_equal(pilot_edit_distance("abc", "acb"), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_error_model), cmocka_unit_test(test_buf), cmocka_unit_test(test_int),
		cmocka_unit_test(test_duration), cmocka_unit_test(test_size), cmocka_unit_test(test_ids),
		cmocka_unit_test(test_fs), cmocka_unit_test(test_suggest),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
