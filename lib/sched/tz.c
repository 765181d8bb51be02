/* IANA time zones from the system's compiled TZif files (RFC 8536): the transitions
 * they list, then the POSIX TZ rule in their footer for instants past the last one. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define TZIF_MAX (1u << 20)

struct tz_type {
	int32_t off;
	bool dst;
	char abbr[16];
};

/* A POSIX TZ date rule: Jn (1-365, no Feb 29), n (0-365) or Mm.w.d, and a time of day
 * (may be negative or past 24h) in the local time then in effect. */
struct tz_rule {
	char kind; /* 'J', 'N' or 'M' */
	int a, b, c;
	int32_t time;
};

struct pilot_tz {
	char *name;
	size_t n;          /* transitions */
	int64_t *at;
	uint8_t *type;
	size_t ntypes;
	struct tz_type *types;
	bool posix;        /* the footer's rule governs after the last transition */
	struct tz_type std, dst;
	bool has_dst;
	struct tz_rule start, end;
};

/* ---- dates ---- */

int64_t sched_floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

int64_t pilot_days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = sched_floor_div(y, 400);
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

void pilot_civil_from_days(int64_t z, int64_t *year, int *month, int *day)
{
	z += 719468;
	int64_t era = sched_floor_div(z, 146097);
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	int d = (int)(doy - (153 * mp + 2) / 5 + 1);
	int m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*year = yoe + era * 400 + (m <= 2);
	*month = m;
	*day = d;
}

int pilot_weekday(int64_t days)
{
	int64_t w = (days + 4) % 7; /* 1970-01-01 was a Thursday */
	return (int)(w < 0 ? w + 7 : w);
}

static bool is_leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int month_days(int64_t y, int m)
{
	static const int n[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	return m == 2 && is_leap(y) ? 29 : n[m - 1];
}

/* ---- POSIX TZ strings ---- */

static const char *parse_abbr(const char *p, char out[16])
{
	size_t n = 0;
	if (*p == '<') {
		p++;
		while (*p && *p != '>' && n < 15)
			out[n++] = *p++;
		if (*p != '>')
			return NULL;
		p++;
	} else {
		while (isalpha((unsigned char)*p) && n < 15)
			out[n++] = *p++;
	}
	out[n] = 0;
	return n >= 3 ? p : NULL;
}

/* [+-]hh[:mm[:ss]], hours up to max_h. */
static const char *parse_hms(const char *p, int max_h, int32_t *out)
{
	int sign = 1;
	if (*p == '+' || *p == '-')
		sign = *p++ == '-' ? -1 : 1;
	int32_t v[3] = { 0, 0, 0 };
	for (int i = 0; i < 3; i++) {
		if (i && *p != ':')
			break;
		if (i)
			p++;
		if (!isdigit((unsigned char)*p))
			return NULL;
		int x = 0;
		while (isdigit((unsigned char)*p) && x < 1000)
			x = x * 10 + (*p++ - '0');
		v[i] = x;
	}
	if (v[0] > max_h || v[1] > 59 || v[2] > 59)
		return NULL;
	*out = sign * (v[0] * 3600 + v[1] * 60 + v[2]);
	return p;
}

static const char *parse_num(const char *p, int lo, int hi, int *out)
{
	if (!isdigit((unsigned char)*p))
		return NULL;
	int x = 0;
	while (isdigit((unsigned char)*p) && x <= hi)
		x = x * 10 + (*p++ - '0');
	if (x < lo || x > hi)
		return NULL;
	*out = x;
	return p;
}

static const char *parse_rule(const char *p, struct tz_rule *r)
{
	if (*p == 'M') {
		r->kind = 'M';
		if (!(p = parse_num(p + 1, 1, 12, &r->a)) || *p++ != '.' || !(p = parse_num(p, 1, 5, &r->b)) ||
		    *p++ != '.' || !(p = parse_num(p, 0, 6, &r->c)))
			return NULL;
	} else if (*p == 'J') {
		r->kind = 'J';
		if (!(p = parse_num(p + 1, 1, 365, &r->a)))
			return NULL;
	} else {
		r->kind = 'N';
		if (!(p = parse_num(p, 0, 365, &r->a)))
			return NULL;
	}
	r->time = 7200;
	if (*p == '/' && !(p = parse_hms(p + 1, 167, &r->time)))
		return NULL;
	return p;
}

static int parse_posix(struct pilot_tz *tz, const char *s)
{
	int32_t off;
	const char *p = parse_abbr(s, tz->std.abbr);
	if (!p || !(p = parse_hms(p, 24, &off)))
		return -1;
	tz->std.off = -off;
	tz->std.dst = false;
	if (!*p) {
		tz->has_dst = false;
		return 0;
	}
	if (!(p = parse_abbr(p, tz->dst.abbr)))
		return -1;
	tz->has_dst = true;
	tz->dst.dst = true;
	tz->dst.off = tz->std.off + 3600;
	if (*p && *p != ',') {
		if (!(p = parse_hms(p, 24, &off)))
			return -1;
		tz->dst.off = -off;
	}
	if (!*p) {
		/* No rule: the United States' since 2007, as most systems assume. */
		p = ",M3.2.0,M11.1.0";
	}
	if (*p++ != ',' || !(p = parse_rule(p, &tz->start)) || *p++ != ',' || !(p = parse_rule(p, &tz->end)) || *p)
		return -1;
	return 0;
}

/* The instant a rule names in a year, given the offset in effect before it. */
static int64_t rule_instant(const struct tz_rule *r, int64_t year, int32_t off)
{
	int64_t days;
	if (r->kind == 'J') {
		days = pilot_days_from_civil(year, 1, 1) + r->a - 1 + (is_leap(year) && r->a >= 60);
	} else if (r->kind == 'N') {
		days = pilot_days_from_civil(year, 1, 1) + r->a;
	} else {
		int64_t first = pilot_days_from_civil(year, r->a, 1);
		int d = 1 + (r->c - pilot_weekday(first) + 7) % 7 + (r->b - 1) * 7;
		while (d > month_days(year, r->a))
			d -= 7;
		days = first + d - 1;
	}
	return days * 86400 + r->time - off;
}

static const struct tz_type *posix_type(const struct pilot_tz *tz, int64_t t)
{
	if (!tz->has_dst)
		return &tz->std;
	int64_t y;
	int m, d;
	pilot_civil_from_days(sched_floor_div(t + tz->std.off, 86400), &y, &m, &d);
	int64_t start = rule_instant(&tz->start, y, tz->std.off);
	int64_t end = rule_instant(&tz->end, y, tz->dst.off);
	bool in = start < end ? (t >= start && t < end) : !(t >= end && t < start);
	return in ? &tz->dst : &tz->std;
}

/* ---- TZif ---- */

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
	return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

static int bad(const char *name, const char *why)
{
	return pilot_error_set(PILOT_EINVALID, "time zone '%s': %s", name, why);
}

static int parse_tzif(struct pilot_tz *tz, const unsigned char *p, size_t len)
{
	if (len < 44 || memcmp(p, "TZif", 4))
		return bad(tz->name, "not a compiled time zone file");
	int version = p[4];
	uint32_t c[6];
	for (int i = 0; i < 6; i++)
		c[i] = be32(p + 20 + 4 * i);
	size_t tsize = 4;
	const unsigned char *q = p + 44, *end = p + len;
	if (version >= '2') {
		/* Skip the 32-bit block: the 64-bit one after it says the same and more. */
		uint64_t skip = (uint64_t)c[3] * 5 + (uint64_t)c[4] * 6 + c[5] + (uint64_t)c[2] * 8 + c[1] + c[0];
		if (skip + 44 > (uint64_t)(end - q) || memcmp(q + skip, "TZif", 4))
			return bad(tz->name, "truncated file");
		q += skip;
		for (int i = 0; i < 6; i++)
			c[i] = be32(q + 20 + 4 * i);
		q += 44;
		tsize = 8;
	}
	uint32_t isut = c[0], isstd = c[1], leap = c[2], timecnt = c[3], typecnt = c[4], charcnt = c[5];
	if (leap)
		return bad(tz->name, "zones that count leap seconds are not supported");
	if (typecnt == 0 || typecnt > 256 || charcnt == 0)
		return bad(tz->name, "no local time types");
	uint64_t need = (uint64_t)timecnt * (tsize + 1) + (uint64_t)typecnt * 6 + charcnt + isstd + isut;
	if (need > (uint64_t)(end - q))
		return bad(tz->name, "truncated file");
	tz->n = timecnt;
	tz->at = pilot_xcalloc(timecnt ? timecnt : 1, sizeof(*tz->at));
	tz->type = pilot_xcalloc(timecnt ? timecnt : 1, 1);
	for (uint32_t i = 0; i < timecnt; i++) {
		tz->at[i] = tsize == 8 ? be64(q + 8 * i) : (int32_t)be32(q + 4 * i);
		if (i && tz->at[i] <= tz->at[i - 1])
			return bad(tz->name, "transitions out of order");
	}
	q += (size_t)timecnt * tsize;
	for (uint32_t i = 0; i < timecnt; i++) {
		if (q[i] >= typecnt)
			return bad(tz->name, "transition to a type that does not exist");
		tz->type[i] = q[i];
	}
	q += timecnt;
	const unsigned char *chars = q + (size_t)typecnt * 6;
	tz->ntypes = typecnt;
	tz->types = pilot_xcalloc(typecnt, sizeof(*tz->types));
	for (uint32_t i = 0; i < typecnt; i++, q += 6) {
		int32_t off = (int32_t)be32(q);
		if (off <= -25 * 3600 || off >= 26 * 3600 || q[5] >= charcnt)
			return bad(tz->name, "local time type out of range");
		tz->types[i].off = off;
		tz->types[i].dst = q[4] != 0;
		snprintf(tz->types[i].abbr, sizeof(tz->types[i].abbr), "%.*s", (int)strnlen((const char *)chars + q[5], charcnt - q[5]),
			 chars + q[5]);
	}
	q = chars + charcnt + isstd + isut;
	if (tsize == 8 && q < end && *q == '\n') {
		const unsigned char *nl = memchr(q + 1, '\n', (size_t)(end - q - 1));
		if (!nl)
			return bad(tz->name, "footer without its end");
		_cleanup_free_ char *footer = pilot_xstrndup((const char *)q + 1, (size_t)(nl - q - 1));
		if (*footer) {
			if (parse_posix(tz, footer) < 0)
				return bad(tz->name, "footer rule not understood");
			tz->posix = true;
		}
	}
	return 0;
}

static bool name_ok(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > 255 || name[0] == '/' || name[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = name[i];
		if (!(isalnum((unsigned char)ch) || ch == '_' || ch == '-' || ch == '+' || ch == '/' || ch == '.'))
			return false;
		if (ch == '/' && name[i + 1] == '.')
			return false;
	}
	return true;
}

int pilot_tz_load(const char *name, struct pilot_tz **out)
{
	*out = NULL;
	if (!name || !name_ok(name))
		return pilot_error_set(PILOT_EINVALID, "'%s' is not a time zone name (an IANA name like Europe/Berlin)",
				       name ? name : "");
	struct pilot_tz *tz = pilot_xcalloc(1, sizeof(*tz));
	tz->name = pilot_xstrdup(name);
	if (!strcmp(name, "UTC")) {
		tz->ntypes = 1;
		tz->types = pilot_xcalloc(1, sizeof(*tz->types));
		snprintf(tz->types[0].abbr, sizeof(tz->types[0].abbr), "UTC");
		*out = tz;
		return 0;
	}
	const char *dir = getenv("TZDIR");
	_cleanup_free_ char *path = pilot_path_join(dir && *dir ? dir : "/usr/share/zoneinfo", name);
	_cleanup_buf_ struct pilot_buf b;
	pilot_buf_init(&b, TZIF_MAX);
	int r = pilot_read_file(path, TZIF_MAX, &b);
	if (r < 0) {
		pilot_error_clear();
		r = pilot_error_set(PILOT_EINVALID, "unknown time zone '%s' (no %s)", name, path);
	} else {
		r = parse_tzif(tz, (const unsigned char *)b.data, b.len);
	}
	if (r < 0) {
		pilot_tz_free(tz);
		return r;
	}
	*out = tz;
	return 0;
}

void pilot_tz_free(struct pilot_tz *tz)
{
	if (!tz)
		return;
	free(tz->name);
	free(tz->at);
	free(tz->type);
	free(tz->types);
	free(tz);
}

const char *pilot_tz_name(const struct pilot_tz *tz)
{
	return tz->name;
}

static const struct tz_type *type_at(const struct pilot_tz *tz, int64_t t)
{
	if (tz->n == 0 || t < tz->at[0])
		return tz->n == 0 && tz->posix ? posix_type(tz, t) : &tz->types[0];
	if (t >= tz->at[tz->n - 1] && tz->posix)
		return posix_type(tz, t);
	size_t lo = 0, hi = tz->n; /* at[lo] <= t < at[hi] */
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (tz->at[mid] <= t)
			lo = mid;
		else
			hi = mid;
	}
	return &tz->types[tz->type[lo]];
}

int32_t pilot_tz_offset(const struct pilot_tz *tz, int64_t t)
{
	return type_at(tz, t)->off;
}

void pilot_tz_to_civil(const struct pilot_tz *tz, int64_t t, struct pilot_civil *out)
{
	const struct tz_type *ty = type_at(tz, t);
	int64_t local = t + ty->off;
	int64_t days = sched_floor_div(local, 86400);
	int64_t s = local - days * 86400;
	pilot_civil_from_days(days, &out->year, &out->month, &out->day);
	out->hour = (int)(s / 3600);
	out->min = (int)(s / 60 % 60);
	out->sec = (int)(s % 60);
	out->wday = pilot_weekday(days);
	out->utoff = ty->off;
	out->dst = ty->dst;
	snprintf(out->abbr, sizeof(out->abbr), "%s", ty->abbr);
}

int64_t sched_from_local(const struct pilot_tz *tz, int64_t local)
{
	/* Every offset that can be in effect near this local time: zones' offsets stay
	 * within a day of UTC, and no zone has changed twice within a day. */
	int32_t cand[3] = { pilot_tz_offset(tz, local - 90000), pilot_tz_offset(tz, local), pilot_tz_offset(tz, local + 90000) };
	int64_t best = 0, lo = 0, hi = 0;
	bool found = false;
	for (int i = 0; i < 3; i++) {
		int64_t u = local - cand[i];
		if (pilot_tz_offset(tz, u) == cand[i]) {
			if (!found || u < best)
				best = u;
			found = true;
		}
		if (i == 0 || u < lo)
			lo = u;
		if (i == 0 || u > hi)
			hi = u;
	}
	if (found)
		return best;
	/* In a gap: the first instant after it is the transition, somewhere in (lo, hi]. */
	int32_t before = pilot_tz_offset(tz, lo);
	while (hi - lo > 1) {
		int64_t mid = lo + (hi - lo) / 2;
		if (pilot_tz_offset(tz, mid) == before)
			lo = mid;
		else
			hi = mid;
	}
	return hi;
}

int64_t pilot_tz_from_civil(const struct pilot_tz *tz, int64_t year, int month, int day, int secs_of_day)
{
	return sched_from_local(tz, pilot_days_from_civil(year, month, day) * 86400 + secs_of_day);
}
