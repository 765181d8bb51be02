/* Checked parsing and formatting of integers, durations and sizes: one grammar for
 * the spec, the flags and the config file alike. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "pilot/util.h"

int pilot_parse_int64(const char *s, int64_t min, int64_t max, int64_t *out)
{
	char *end;
	if (!s || !*s || isspace((unsigned char)*s))
		return pilot_error_set(PILOT_EINVALID, "invalid number '%s'", s ? s : "");
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (*end)
		return pilot_error_set(PILOT_EINVALID, "invalid number '%s'", s);
	if (errno == ERANGE || v < min || v > max)
		return pilot_error_set(PILOT_EINVALID, "number '%s' out of range (%" PRId64 "..%" PRId64 ")",
				       s, min, max);
	*out = v;
	return 0;
}

/* Reads "123" or "1.25" at *p. The integer part goes to *whole, the fraction as
 * numerator/denominator. Returns false when no digit is there or it overflows. */
static bool read_decimal(const char **p, uint64_t *whole, uint64_t *num, uint64_t *den)
{
	const char *s = *p;
	uint64_t w = 0, n = 0, d = 1;
	bool digits = false;
	while (isdigit((unsigned char)*s)) {
		unsigned dig = (unsigned)(*s - '0');
		if (w > (UINT64_MAX - dig) / 10)
			return false;
		w = w * 10 + dig;
		s++;
		digits = true;
	}
	if (*s == '.' && isdigit((unsigned char)s[1])) {
		s++;
		while (isdigit((unsigned char)*s)) {
			if (d < 1000000000000ULL) { /* ignore digits beyond 12 places */
				n = n * 10 + (uint64_t)(*s - '0');
				d *= 10;
			}
			s++;
			digits = true;
		}
	}
	if (!digits)
		return false;
	*p = s;
	*whole = w;
	*num = n;
	*den = d;
	return true;
}

/* whole*mult + num*mult/den, or false on overflow. */
static bool scale(uint64_t whole, uint64_t num, uint64_t den, uint64_t mult, uint64_t *out)
{
	if (mult && whole > UINT64_MAX / mult)
		return false;
	uint64_t v = whole * mult;
	unsigned __int128 f = (unsigned __int128)num * mult / den;
	if (f > UINT64_MAX - v)
		return false;
	*out = v + (uint64_t)f;
	return true;
}

int pilot_parse_duration(const char *s, int64_t *ms)
{
	static const struct { const char *unit; uint64_t ms; } units[] = {
		{ "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 }, { "d", 86400000 },
		{ "w", 604800000 },
	};
	const char *p = s;
	uint64_t total = 0;
	if (!s || !*s)
		goto bad;
	while (*p) {
		uint64_t whole, num, den, part;
		if (!read_decimal(&p, &whole, &num, &den))
			goto bad;
		size_t ulen = 0;
		while (isalpha((unsigned char)p[ulen]))
			ulen++;
		uint64_t mult = 0;
		if (ulen == 0) {
			if (p != s + strlen(s) || total) /* bare number only on its own */
				goto bad;
			mult = 1000;
		}
		for (size_t i = 0; i < ARRAY_SIZE(units) && ulen; i++)
			if (strlen(units[i].unit) == ulen && strncmp(p, units[i].unit, ulen) == 0)
				mult = units[i].ms;
		if (!mult)
			goto bad;
		if (!scale(whole, num, den, mult, &part) || part > (uint64_t)INT64_MAX - total)
			return pilot_error_set(PILOT_EINVALID, "duration '%s' is too long", s);
		total += part;
		p += ulen;
	}
	*ms = (int64_t)total;
	return 0;
bad:
	return pilot_error_set(PILOT_EINVALID, "invalid duration '%s' (expected e.g. 500ms, 90s, 2h, 1d)",
			       s ? s : "");
}

int pilot_parse_size(const char *s, uint64_t *bytes)
{
	const char *p = s;
	uint64_t whole, num, den, mult = 1;
	if (!s || !read_decimal(&p, &whole, &num, &den))
		goto bad;
	if (*p) {
		static const char prefixes[] = "kmgtp";
		const char *at = strchr(prefixes, tolower((unsigned char)*p));
		if (!at || !*at) {
			if ((*p == 'b' || *p == 'B') && !p[1])
				goto done;
			goto bad;
		}
		int power = (int)(at - prefixes) + 1;
		const char *rest = p + 1;
		uint64_t base;
		if (!strcmp(rest, "") || !strcmp(rest, "iB") || !strcmp(rest, "ib"))
			base = 1024;
		else if (!strcmp(rest, "B") || !strcmp(rest, "b"))
			base = 1000;
		else
			goto bad;
		for (int i = 0; i < power; i++)
			mult *= base;
	}
done:
	if (!scale(whole, num, den, mult, bytes))
		return pilot_error_set(PILOT_EINVALID, "size '%s' is too large", s);
	return 0;
bad:
	return pilot_error_set(PILOT_EINVALID, "invalid size '%s' (expected e.g. 512MiB, 4G)", s ? s : "");
}

void pilot_format_duration(int64_t ms, char *out, size_t outlen)
{
	if (ms < 0)
		ms = 0;
	if (ms < 1000) {
		snprintf(out, outlen, "%" PRId64 "ms", ms);
		return;
	}
	int64_t s = ms / 1000;
	if (s < 60)
		snprintf(out, outlen, "%" PRId64 ".%" PRId64 "s", s, (ms % 1000) / 100);
	else if (s < 3600)
		snprintf(out, outlen, "%" PRId64 "m%" PRId64 "s", s / 60, s % 60);
	else if (s < 86400)
		snprintf(out, outlen, "%" PRId64 "h%" PRId64 "m", s / 3600, (s % 3600) / 60);
	else
		snprintf(out, outlen, "%" PRId64 "d%" PRId64 "h", s / 86400, (s % 86400) / 3600);
}

void pilot_format_size(uint64_t bytes, char *out, size_t outlen)
{
	static const char *units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	if (bytes < 1024) {
		snprintf(out, outlen, "%" PRIu64 " B", bytes);
		return;
	}
	double v = (double)bytes;
	size_t u = 0;
	while (v >= 1024 && u + 1 < ARRAY_SIZE(units)) {
		v /= 1024;
		u++;
	}
	snprintf(out, outlen, v < 10 ? "%.1f %s" : "%.0f %s", v, units[u]);
}
