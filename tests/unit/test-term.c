/* Unit tests for lib/term: table layout and shrinking, sparklines, ages, progress. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "pilot/term.h"

static void test_table(void **state)
{
	(void)state;
	const char *h[] = { "ID", "NAME", "STATE" };
	struct pilot_table *t = pilot_table_new(3, h);
	pilot_table_add(t, (const char *[]){ "r1", "train-resnet", "running" });
	pilot_table_add(t, (const char *[]){ "r22", "x", "queued" });
	assert_int_equal(pilot_table_rows(t), 2);
	_cleanup_buf_ struct pilot_buf b = PILOT_BUF_INIT;
	pilot_table_render(t, 0, &b);
	assert_string_equal(b.data,
			    "ID   NAME          STATE\n"
			    "r1   train-resnet  running\n"
			    "r22  x             queued\n");
	pilot_buf_reset(&b);
	pilot_table_render(t, 20, &b);
	assert_string_equal(b.data,
			    "ID   NAME      STATE\n"
			    "r1   train-r…  running\n"
			    "r22  x         queued\n");
	pilot_table_free(t);
	pilot_table_free(NULL);

	/* The first column holds ids: never cut, even when it is the widest. */
	t = pilot_table_new(3, h);
	pilot_table_add(t, (const char *[]){ "r01rr0tnx5c0srt", "train", "succeeded" });
	pilot_buf_reset(&b);
	pilot_table_render(t, 24, &b);
	assert_string_equal(b.data,
			    "ID               NAME   STATE\n"
			    "r01rr0tnx5c0srt  train  succeed…\n");
	pilot_table_free(t);
}

static void test_sparkline(void **state)
{
	(void)state;
	double v[] = { 0, 1, 2, 3, 4, 5, 6, 7 };
	_cleanup_buf_ struct pilot_buf b = PILOT_BUF_INIT;
	pilot_sparkline(v, 8, 0, &b);
	assert_string_equal(b.data, "▁▂▃▄▅▆▇█");
	pilot_buf_reset(&b);
	pilot_sparkline(v, 8, 2, &b);
	assert_string_equal(b.data, "▁█");
	pilot_buf_reset(&b);
	double flat[] = { 2, 2 };
	pilot_sparkline(flat, 2, 0, &b);
	assert_string_equal(b.data, "▄▄");
	assert_int_equal(pilot_utf8_width("▁▂x"), 3);
}

static void test_age_progress(void **state)
{
	(void)state;
	char out[32];
	pilot_format_age(1000, 1000 + 59000, out, sizeof(out));
	assert_string_equal(out, "59s");
	pilot_format_age(1000, 1000 + 7200000, out, sizeof(out));
	assert_string_equal(out, "2h");
	pilot_format_age(0, 5, out, sizeof(out));
	assert_string_equal(out, "-");
	_cleanup_buf_ struct pilot_buf b = PILOT_BUF_INIT;
	pilot_progress_line("packing", 12, "files", 2 * 1024 * 1024, 1000, &b);
	assert_string_equal(b.data, "packing  12 files  2.0 MiB  2.0 MiB/s");
	pilot_buf_reset(&b);
	pilot_progress_bar(1024 * 1024, 4 * 1024 * 1024, 500, 8, &b);
	assert_string_equal(b.data, "██░░░░░░  1.0 MiB / 4.0 MiB  2.0 MiB/s");
	pilot_buf_reset(&b);
	/* An unknown total draws an empty bar; more than the total, a full one. */
	pilot_progress_bar(10, 0, 0, 3, &b);
	assert_string_equal(b.data, "░░░  10 B / 0 B  0 B/s");
	pilot_buf_reset(&b);
	pilot_progress_bar(9, 5, 0, 2, &b);
	assert_true(pilot_str_has_prefix(b.data, "██  "));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_sparkline),
		cmocka_unit_test(test_age_progress),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
