/* Weekly windows in a time zone (an agent's sleep schedule): parsing, the canonical
 * text, and whether and until when an instant lies in one. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"


static const char *const day_names[7] = { "sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday" };

static int parse_day(const char *s, size_t n)
{
	for (int i = 0; i < 7; i++)
		if (n >= 3 && n <= strlen(day_names[i]) && !strncasecmp(s, day_names[i], n))
			return i;
	return -1;
}

static bool two_digits(const char *s)
{
	return isdigit((unsigned char)s[0]) && isdigit((unsigned char)s[1]);
}

/* HH:MM or HH:MM:SS, up to 24:00. */
static int parse_daytime(const char *s, size_t n, int *out)
{
	if ((n != 5 && n != 8) || !two_digits(s) || s[2] != ':' || !two_digits(s + 3) ||
	    (n == 8 && (s[5] != ':' || !two_digits(s + 6))))
		return -1;
	int h = (s[0] - '0') * 10 + (s[1] - '0');
	int m = (s[3] - '0') * 10 + (s[4] - '0');
	int sec = n == 8 ? (s[6] - '0') * 10 + (s[7] - '0') : 0;
	if (m > 59 || sec > 59 || h > 24 || (h == 24 && (m || sec)))
		return -1;
	*out = h * 3600 + m * 60 + sec;
	return 0;
}

static void put_daytime(struct pilot_buf *b, int t)
{
	pilot_buf_printf(b, "%02d:%02d", t / 3600, t / 60 % 60);
	if (t % 60)
		pilot_buf_printf(b, ":%02d", t % 60);
}

static int parse_days(const char *s, size_t n, uint8_t *days)
{
	if ((n == 5 && !strncasecmp(s, "daily", 5)) || (n == 1 && *s == '*')) {
		*days = 0x7f;
		return 0;
	}
	*days = 0;
	while (n) {
		size_t item = 0;
		while (item < n && s[item] != ',')
			item++;
		const char *dash = memchr(s, '-', item);
		int a, b;
		if (dash) {
			a = parse_day(s, (size_t)(dash - s));
			b = parse_day(dash + 1, item - (size_t)(dash - s) - 1);
		} else {
			a = b = parse_day(s, item);
		}
		if (a < 0 || b < 0)
			return -1;
		for (int d = a;; d = (d + 1) % 7) {
			*days |= (uint8_t)(1u << d);
			if (d == b)
				break;
		}
		s += item;
		n -= item;
		if (n) {
			s++;
			n--;
			if (!n)
				return -1;
		}
	}
	return 0;
}

int pilot_weekly_parse(const char *text, struct pilot_weekly *out)
{
	memset(out, 0, sizeof(*out));
	const char *p = text;
	while (*p) {
		while (*p == ' ' || *p == '\t')
			p++;
		size_t len = strcspn(p, ";");
		size_t end = len;
		while (end && (p[end - 1] == ' ' || p[end - 1] == '\t'))
			end--;
		if (end == 0) {
			if (p[len] == ';' || out->n == 0)
				return pilot_error_set(PILOT_EINVALID, "sleep schedule '%s': an empty rule", text);
			break;
		}
		if (out->n == PILOT_WEEKLY_MAX_RULES)
			return pilot_error_set(PILOT_EINVALID, "sleep schedule '%s': more than %d rules", text,
					       PILOT_WEEKLY_MAX_RULES);
		size_t dl = strcspn(p, " \t");
		const char *t = p + dl;
		while (t < p + end && (*t == ' ' || *t == '\t'))
			t++;
		size_t tl = (size_t)(p + end - t);
		const char *dash = memchr(t, '-', tl);
		int start, stop;
		uint8_t days;
		if (dl >= end || parse_days(p, dl, &days) < 0)
			return pilot_error_set(PILOT_EINVALID,
					       "sleep schedule '%s': '%.*s' is not a set of days (like mon-fri, sat,sun or daily)",
					       text, (int)dl, p);
		if (!dash || parse_daytime(t, (size_t)(dash - t), &start) < 0 ||
		    parse_daytime(dash + 1, tl - (size_t)(dash - t) - 1, &stop) < 0 || start == 86400)
			return pilot_error_set(PILOT_EINVALID, "sleep schedule '%s': '%.*s' is not a time range (like 19:00-07:00)",
					       text, (int)tl, t);
		if (start == stop)
			return pilot_error_set(PILOT_EINVALID, "sleep schedule '%s': '%.*s' starts where it ends", text,
					       (int)tl, t);
		out->rule[out->n].days = days;
		out->rule[out->n].start = start;
		out->rule[out->n].end = stop;
		out->n++;
		p += len;
		if (*p == ';')
			p++;
	}
	if (out->n == 0)
		return pilot_error_set(PILOT_EINVALID, "sleep schedule '%s': no rule", text);
	return 0;
}

void pilot_weekly_format(const struct pilot_weekly *w, char *out, size_t outlen)
{
	struct pilot_buf b;
	pilot_buf_init(&b, outlen);
	for (size_t i = 0; i < w->n; i++) {
		if (i)
			pilot_buf_puts(&b, "; ");
		uint8_t days = w->rule[i].days;
		if (days == 0x7f) {
			pilot_buf_puts(&b, "daily");
		} else {
			/* Runs of days from Monday on, Sunday last. */
			bool first = true;
			for (int k = 0; k < 7;) {
				int d = (k + 1) % 7;
				if (!(days & (1u << d))) {
					k++;
					continue;
				}
				int j = k;
				while (j + 1 < 7 && days & (1u << ((j + 2) % 7)))
					j++;
				pilot_buf_printf(&b, "%s%.3s", first ? "" : ",", day_names[d]);
				if (j > k)
					pilot_buf_printf(&b, "%s%.3s", j > k + 1 ? "-" : ",", day_names[(j + 1) % 7]);
				first = false;
				k = j + 1;
			}
		}
		pilot_buf_putc(&b, ' ');
		put_daytime(&b, w->rule[i].start);
		pilot_buf_putc(&b, '-');
		put_daytime(&b, w->rule[i].end);
	}
	snprintf(out, outlen, "%s", b.data ? pilot_buf_str(&b) : "");
	pilot_buf_free(&b);
}

/* The window a rule opens on a day (days since the epoch), as instants. */
static void window(const struct pilot_weekly *w, size_t i, const struct pilot_tz *tz, int64_t day, int64_t *s, int64_t *e)
{
	*s = sched_from_local(tz, day * 86400 + w->rule[i].start);
	int64_t end_day = w->rule[i].end > w->rule[i].start ? day : day + 1;
	*e = sched_from_local(tz, end_day * 86400 + w->rule[i].end);
}

static int64_t local_day(const struct pilot_tz *tz, int64_t t)
{
	return sched_floor_div(t + pilot_tz_offset(tz, t), 86400);
}

bool pilot_weekly_contains(const struct pilot_weekly *w, const struct pilot_tz *tz, int64_t t)
{
	int64_t today = local_day(tz, t);
	for (int64_t d = today - 1; d <= today; d++)
		for (size_t i = 0; i < w->n; i++) {
			if (!(w->rule[i].days & (1u << pilot_weekday(d))))
				continue;
			int64_t s, e;
			window(w, i, tz, d, &s, &e);
			if (s <= t && t < e)
				return true;
		}
	return false;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

int64_t pilot_weekly_next_change(const struct pilot_weekly *w, const struct pilot_tz *tz, int64_t t)
{
	int64_t cand[10 * PILOT_WEEKLY_MAX_RULES * 2];
	size_t n = 0;
	int64_t today = local_day(tz, t);
	for (int64_t d = today - 1; d <= today + 8; d++)
		for (size_t i = 0; i < w->n; i++) {
			if (!(w->rule[i].days & (1u << pilot_weekday(d))))
				continue;
			int64_t s, e;
			window(w, i, tz, d, &s, &e);
			if (s > t)
				cand[n++] = s;
			if (e > t)
				cand[n++] = e;
		}
	qsort(cand, n, sizeof(*cand), cmp_i64);
	bool now = pilot_weekly_contains(w, tz, t);
	for (size_t i = 0; i < n; i++)
		if ((i == 0 || cand[i] != cand[i - 1]) && pilot_weekly_contains(w, tz, cand[i]) != now)
			return cand[i];
	return 0;
}
