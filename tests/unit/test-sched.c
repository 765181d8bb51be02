/* Unit tests for lib/sched: time zones and weekly windows. Expected values come from
 * oracles outside pilot, run at test time: glibc (GNU date's localtime and its date
 * parser) and zdump's list of transitions, both reading the system's tzdata. */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "pilot/sched.h"

static const char *const zones[] = {
	"America/New_York", "Europe/London",    "Australia/Lord_Howe", "Asia/Kathmandu", "Europe/Berlin",
	"America/Sao_Paulo", "Pacific/Chatham", "Africa/Casablanca",   "America/St_Johns", "UTC",
};

/* What a shell command prints (the oracle), whole. */
static char *sh(const char *cmd)
{
	FILE *f = popen(cmd, "r");
	assert_non_null(f);
	struct pilot_buf b = PILOT_BUF_INIT;
	char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		assert_int_equal(pilot_buf_append(&b, chunk, n), 0);
	assert_int_equal(pclose(f), 0);
	return pilot_buf_steal(&b);
}

static char *shf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *shf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	struct pilot_buf cmd = PILOT_BUF_INIT;
	assert_int_equal(pilot_buf_vprintf(&cmd, fmt, ap), 0);
	va_end(ap);
	char *out = sh(pilot_buf_str(&cmd));
	pilot_buf_free(&cmd);
	return out;
}

/* glibc's idea of a wall-clock time in a zone, as an instant. */
static int64_t date_at(const char *zone, const char *when)
{
	_cleanup_free_ char *out = shf("TZ=':%s' date -d '%s' +%%s", zone, when);
	return strtoll(out, NULL, 10);
}

static void test_days(void **state)
{
	(void)state;
	/* Against glibc's timegm over four centuries, a day every 97. */
	_cleanup_free_ char *out = sh("seq -146097 97 146097 | awk '{ printf \"@%.0f\\n\", $1 * 86400 }' | date -u -f - '+%Y %m %d %w'");
	char *line = out;
	for (int64_t d = -146097; d <= 146097; d += 97) {
		long long y;
		int m, dd, w;
		assert_int_equal(sscanf(line, "%lld %d %d %d", &y, &m, &dd, &w), 4);
		int64_t py;
		int pm, pd;
		pilot_civil_from_days(d, &py, &pm, &pd);
		assert_int_equal(py, y);
		assert_int_equal(pm, m);
		assert_int_equal(pd, dd);
		assert_int_equal(pilot_weekday(d), w);
		assert_int_equal(pilot_days_from_civil(y, m, dd), d);
		line = strchr(line, '\n') + 1;
	}
}

/* Offsets and wall-clock times at pseudo-random instants from 1850 to 2150 (past the
 * last transition the files list, where their footer's rule governs) against glibc. */
static void test_offsets_against_glibc(void **state)
{
	(void)state;
	char path[] = "/tmp/pilot-test-sched-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	FILE *f = fdopen(fd, "w");
	int64_t t[4000];
	uint64_t x = 88172645463325252ull;
	for (size_t i = 0; i < 4000; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		t[i] = -3786825600LL + (int64_t)(x % 9467280000ULL);
		fprintf(f, "@%" PRId64 "\n", t[i]);
	}
	fclose(f);
	for (size_t z = 0; z < sizeof(zones) / sizeof(*zones); z++) {
		struct pilot_tz *tz;
		assert_int_equal(pilot_tz_load(zones[z], &tz), 0);
		_cleanup_free_ char *out = shf("TZ=':%s' date -f %s '+%%Y %%m %%d %%H %%M %%S %%z %%Z'", zones[z], path);
		char *line = out;
		for (size_t i = 0; i < 4000; i++) {
			long long y;
			int mo, d, h, mi, s;
			char off[8], abbr[16];
			assert_int_equal(sscanf(line, "%lld %d %d %d %d %d %7s %15s", &y, &mo, &d, &h, &mi, &s, off, abbr), 8);
			int secs = ((off[1] - '0') * 10 + (off[2] - '0')) * 3600 + ((off[3] - '0') * 10 + (off[4] - '0')) * 60;
			if (off[0] == '-')
				secs = -secs;
			struct pilot_civil c;
			pilot_tz_to_civil(tz, t[i], &c);
			/* glibc prints offsets to the minute; LMT's seconds are cut off there. */
			if (pilot_tz_offset(tz, t[i]) / 60 != secs / 60 || c.year != y || c.month != mo || c.day != d ||
			    c.hour != h || c.min != mi || c.sec != s || strcmp(c.abbr, abbr))
				fail_msg("%s at %" PRId64 ": pilot %04" PRId64 "-%02d-%02d %02d:%02d:%02d %d %s, glibc %s", zones[z],
					 t[i], c.year, c.month, c.day, c.hour, c.min, c.sec, c.utoff, c.abbr, line);
			line = strchr(line, '\n') + 1;
		}
		/* A wall-clock time maps back to an instant showing it, its first if twice. */
		for (size_t i = 0; i < 4000; i += 7) {
			struct pilot_civil c, back;
			pilot_tz_to_civil(tz, t[i], &c);
			int64_t u = pilot_tz_from_civil(tz, c.year, c.month, c.day, c.hour * 3600 + c.min * 60 + c.sec);
			pilot_tz_to_civil(tz, u, &back);
			assert_true(u <= t[i]);
			assert_true(back.hour == c.hour && back.min == c.min && back.sec == c.sec && back.day == c.day);
		}
		pilot_tz_free(tz);
	}
	unlink(path);
}

/* Gaps and overlaps, from zdump's transitions: a time in a spring-forward gap is the
 * first instant after it (the transition); a time in a fall-back overlap is its first
 * occurrence. Years in the files' tables and past them (the footer's rule). */
static void test_gaps_and_overlaps(void **state)
{
	(void)state;
	static const char *const years[] = { "2026,2028", "1990,1991", "2045,2047" };
	int gaps = 0, overlaps = 0;
	for (size_t z = 0; z < sizeof(zones) / sizeof(*zones); z++) {
		struct pilot_tz *tz;
		assert_int_equal(pilot_tz_load(zones[z], &tz), 0);
		for (size_t y = 0; y < 3; y++) {
			/* Lines "SECONDS GMTOFF" for each side of each transition. */
			_cleanup_free_ char *out = shf(
				"zdump -v -c %s '%s' | grep -v NULL | sed -E 's/^[^ ]+ +(.*) UT = .* gmtoff=(-?[0-9]+)$/\\1|\\2/' | "
				"while IFS='|' read -r d o; do echo \"$(date -u -d \"$d\" +%%s) $o\"; done",
				years[y], zones[z]);
			char *line = out;
			while (*line) {
				long long t0, t1;
				int o0, o1;
				assert_int_equal(sscanf(line, "%lld %d", &t0, &o0), 2);
				line = strchr(line, '\n') + 1;
				assert_int_equal(sscanf(line, "%lld %d", &t1, &o1), 2);
				line = strchr(line, '\n') + 1;
				assert_int_equal(t1, t0 + 1);
				assert_int_equal(pilot_tz_offset(tz, t0), o0);
				assert_int_equal(pilot_tz_offset(tz, t1), o1);
				if (o1 > o0) {
					/* Wall-clock times [t1 + o0, t1 + o1) do not happen. */
					for (int64_t local = t1 + o0; local < t1 + o1; local += (o1 - o0) / 3) {
						int64_t days = local >= 0 ? local / 86400 : -((-local + 86399) / 86400);
						int64_t yy;
						int mm, dd;
						pilot_civil_from_days(days, &yy, &mm, &dd);
						assert_int_equal(pilot_tz_from_civil(tz, yy, mm, dd, (int)(local - days * 86400)), t1);
					}
					gaps++;
				} else if (o1 < o0) {
					/* Wall-clock times [t1 + o1, t1 + o0) happen twice: first at local - o0. */
					for (int64_t local = t1 + o1; local < t1 + o0; local += (o0 - o1) / 3) {
						int64_t days = local >= 0 ? local / 86400 : -((-local + 86399) / 86400);
						int64_t yy;
						int mm, dd;
						pilot_civil_from_days(days, &yy, &mm, &dd);
						assert_int_equal(pilot_tz_from_civil(tz, yy, mm, dd, (int)(local - days * 86400)),
								 local - o0);
					}
					overlaps++;
				}
			}
		}
		pilot_tz_free(tz);
	}
	/* New York, London, Lord Howe, Berlin, Chatham, St Johns change twice a year. */
	assert_true(gaps >= 30 && overlaps >= 30);
}

static void test_tz_names(void **state)
{
	(void)state;
	struct pilot_tz *tz = NULL;
	static const char *const bad[] = { "", "Nowhere/Atlantis", "../../etc/passwd", "/etc/localtime", "Europe/../UTC",
					   "Europe/Berlin\n", "zone.tab" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		assert_int_equal(pilot_tz_load(bad[i], &tz), PILOT_EINVALID);
		assert_null(tz);
	}
	assert_int_equal(pilot_tz_load("Asia/Kathmandu", &tz), 0);
	assert_string_equal(pilot_tz_name(tz), "Asia/Kathmandu");
	assert_int_equal(pilot_tz_offset(tz, 1796083200), 5 * 3600 + 45 * 60);
	pilot_tz_free(tz);
}

static void check_parse(const char *text, const char *canonical)
{
	struct pilot_weekly w;
	char out[256];
	if (pilot_weekly_parse(text, &w) < 0)
		fail_msg("'%s': %s", text, pilot_error_last());
	pilot_weekly_format(&w, out, sizeof(out));
	assert_string_equal(out, canonical);
	/* The canonical text says the same. */
	struct pilot_weekly again;
	assert_int_equal(pilot_weekly_parse(out, &again), 0);
	assert_memory_equal(&w, &again, sizeof(w));
}

static void test_weekly_parse(void **state)
{
	(void)state;
	check_parse("mon-fri 19:00-07:00", "mon-fri 19:00-07:00");
	check_parse("  Sat,Sunday 00:00-24:00 ; daily 12:00-13:00 ", "sat,sun 00:00-24:00; daily 12:00-13:00");
	check_parse("fri-mon 22:30-23:00", "mon,fri-sun 22:30-23:00");
	check_parse("* 01:00-02:00", "daily 01:00-02:00");
	check_parse("mon,wed,thu 08:00-09:00", "mon,wed,thu 08:00-09:00");
	check_parse("tue-thu 00:00-00:30", "tue-thu 00:00-00:30");
	check_parse("sun 10:00:30-10:00:45", "sun 10:00:30-10:00:45");
	static const char *const bad[] = { "",	 "mon-fri",	"mon-fri 19:00",      "moon 10:00-11:00", "mon 25:00-26:00",
					   "mon 10:00-10:00", "mon 10:60-11:00", "mon 24:00-01:00", "mon, 10:00-11:00", "mon 10:00-11:00;;",
					   "mon 1:00-2:00", "mon 10:00:60-11:00", "mon 24:00:01-01:00" };
	struct pilot_weekly w;
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		if (pilot_weekly_parse(bad[i], &w) != PILOT_EINVALID)
			fail_msg("'%s' parsed", bad[i]);
}

static void expect_change(const struct pilot_weekly *w, const struct pilot_tz *tz, int64_t t, bool in, int64_t next)
{
	if (pilot_weekly_contains(w, tz, t) != in)
		fail_msg("at %" PRId64 " in %s: expected %s a window", t, pilot_tz_name(tz), in ? "in" : "out of");
	assert_int_equal(pilot_weekly_next_change(w, tz, t), next);
}

static void test_weekly_windows(void **state)
{
	(void)state;
	struct pilot_weekly w;
	struct pilot_tz *tz;
	assert_int_equal(pilot_tz_load("Europe/Berlin", &tz), 0);
	assert_int_equal(pilot_weekly_parse("mon-fri 19:00-07:00", &w), 0);
	/* Monday morning: Sunday opens no window. */
	int64_t mon_early = date_at("Europe/Berlin", "2026-12-07 06:59");
	expect_change(&w, tz, mon_early, false, date_at("Europe/Berlin", "2026-12-07 19:00"));
	int64_t fri_night = date_at("Europe/Berlin", "2026-12-11 20:00");
	expect_change(&w, tz, fri_night, true, date_at("Europe/Berlin", "2026-12-12 07:00"));
	expect_change(&w, tz, date_at("Europe/Berlin", "2026-12-12 07:00"), false, date_at("Europe/Berlin", "2026-12-14 19:00"));
	/* Across the change to summer time: Friday 27 March 19:00 CET to Saturday 07:00 CEST is
	 * one window; and Friday 23 October 19:00 CEST to Saturday 07:00 CEST. */
	expect_change(&w, tz, date_at("Europe/Berlin", "2026-03-27 18:00"), false, date_at("Europe/Berlin", "2026-03-27 19:00"));
	expect_change(&w, tz, date_at("Europe/Berlin", "2026-03-27 19:00"), true, date_at("Europe/Berlin", "2026-03-28 07:00"));
	pilot_tz_free(tz);

	/* New York: a window opening in the spring-forward gap opens when the gap ends; one
	 * opening in the fall-back overlap opens at its first occurrence. */
	assert_int_equal(pilot_tz_load("America/New_York", &tz), 0);
	assert_int_equal(pilot_weekly_parse("daily 02:30-03:30", &w), 0);
	int64_t jump = date_at("America/New_York", "2026-03-08 03:00"); /* = the gap's end */
	expect_change(&w, tz, date_at("America/New_York", "2026-03-08 01:00"), false, jump);
	expect_change(&w, tz, jump, true, date_at("America/New_York", "2026-03-08 03:30"));
	assert_int_equal(pilot_weekly_parse("daily 01:30-02:00", &w), 0);
	expect_change(&w, tz, date_at("America/New_York", "2026-11-01 00:00"), false,
		      date_at("America/New_York", "2026-11-01 01:30 EDT"));
	expect_change(&w, tz, date_at("America/New_York", "2026-11-01 01:30 EDT"), true,
		      date_at("America/New_York", "2026-11-01 02:00"));
	/* The second 01:30 is inside the window that opened at the first. */
	assert_true(pilot_weekly_contains(&w, tz, date_at("America/New_York", "2026-11-01 01:45 EST")));
	pilot_tz_free(tz);

	/* Lord Howe's half-hour jump swallows a window whole: it has no time that day. */
	assert_int_equal(pilot_tz_load("Australia/Lord_Howe", &tz), 0);
	assert_int_equal(pilot_weekly_parse("sun 02:05-02:25", &w), 0);
	expect_change(&w, tz, date_at("Australia/Lord_Howe", "2026-10-03 12:00"), false,
		      date_at("Australia/Lord_Howe", "2026-10-11 02:05"));
	pilot_tz_free(tz);

	/* Kathmandu (+05:45): a window across midnight. */
	assert_int_equal(pilot_tz_load("Asia/Kathmandu", &tz), 0);
	assert_int_equal(pilot_weekly_parse("sat 23:00-01:00", &w), 0);
	expect_change(&w, tz, date_at("Asia/Kathmandu", "2026-12-13 00:30"), true, date_at("Asia/Kathmandu", "2026-12-13 01:00"));
	pilot_tz_free(tz);

	/* All week long: never a change. */
	assert_int_equal(pilot_tz_load("UTC", &tz), 0);
	assert_int_equal(pilot_weekly_parse("daily 00:00-24:00", &w), 0);
	expect_change(&w, tz, 1796083200, true, 0);
	pilot_tz_free(tz);
}

int main(void)
{
	/* The zone names are looked up where the system keeps them, whatever the caller's. */
	unsetenv("TZDIR");
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_days),
		cmocka_unit_test(test_offsets_against_glibc),
		cmocka_unit_test(test_gaps_and_overlaps),
		cmocka_unit_test(test_tz_names),
		cmocka_unit_test(test_weekly_parse),
		cmocka_unit_test(test_weekly_windows),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
