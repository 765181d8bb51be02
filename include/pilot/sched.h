/* Civil time: IANA time zones read from the system's TZif files, conversions between
 * instants and wall-clock times, and weekly windows (an agent's sleep schedule).
 * Instants are seconds since the epoch (UTC); dates are proleptic Gregorian. */
#ifndef PILOT_SCHED_H
#define PILOT_SCHED_H

#include <stdbool.h>
#include <stdint.h>

#include "pilot/util.h"

/* Days since 1970-01-01 of a date, and back; month 1-12. */
int64_t pilot_days_from_civil(int64_t year, int month, int day);
void pilot_civil_from_days(int64_t days, int64_t *year, int *month, int *day);
/* 0 = Sunday ... 6 = Saturday. */
int pilot_weekday(int64_t days);

struct pilot_tz;

/* Loads a zone by its IANA name ("Europe/Berlin"; "UTC" needs no file), from $TZDIR
 * or /usr/share/zoneinfo. A name that is not a zone is PILOT_EINVALID, naming it. */
int pilot_tz_load(const char *name, struct pilot_tz **out);
void pilot_tz_free(struct pilot_tz *tz);
static inline void pilot_tz_freep(struct pilot_tz **p) { pilot_tz_free(*p); }
#define _cleanup_tz_ _cleanup_(pilot_tz_freep)
const char *pilot_tz_name(const struct pilot_tz *tz);

struct pilot_civil {
	int64_t year;
	int month, day, hour, min, sec;
	int wday;        /* 0 = Sunday */
	int32_t utoff;   /* seconds east of UTC */
	bool dst;
	char abbr[16];
};

/* The offset from UTC in effect at instant t, and the wall-clock time there. */
int32_t pilot_tz_offset(const struct pilot_tz *tz, int64_t t);
void pilot_tz_to_civil(const struct pilot_tz *tz, int64_t t, struct pilot_civil *out);

/* The instant of a wall-clock time (date + seconds into the day, which may be 86400 for
 * the next midnight). A time skipped by a forward jump (the spring-forward gap) maps to
 * the first instant after the gap; a time that happens twice (the fall-back overlap)
 * maps to its first occurrence. */
int64_t pilot_tz_from_civil(const struct pilot_tz *tz, int64_t year, int month, int day, int secs_of_day);

/* Weekly windows in a zone: "mon-fri 19:00-07:00; sat,sun 00:00-24:00". Each rule is a
 * set of days (mon..sun, ranges that may wrap, lists, "daily") and a start and end time
 * of day (HH:MM or HH:MM:SS); an end at or before the start ends on the next day. */
#define PILOT_WEEKLY_MAX_RULES 14

struct pilot_weekly {
	size_t n;
	struct {
		uint8_t days;    /* bit 0 = Sunday */
		int start, end;  /* seconds into the day; end may be 86400 */
	} rule[PILOT_WEEKLY_MAX_RULES];
};

int pilot_weekly_parse(const char *text, struct pilot_weekly *out);
/* Canonical text of a parsed schedule. */
void pilot_weekly_format(const struct pilot_weekly *w, char *out, size_t outlen);
/* Whether instant t lies in a window, and the next instant after t where that changes
 * (0 when it never does: an empty schedule, or one that covers all of the week). */
bool pilot_weekly_contains(const struct pilot_weekly *w, const struct pilot_tz *tz, int64_t t);
int64_t pilot_weekly_next_change(const struct pilot_weekly *w, const struct pilot_tz *tz, int64_t t);

#endif
