/* What the sched module's files share. */
#ifndef PILOT_SCHED_INTERNAL_H
#define PILOT_SCHED_INTERNAL_H

#include "pilot/sched.h"

int64_t sched_floor_div(int64_t a, int64_t b);
/* The instant of a local time given as seconds since the epoch of the zone's civil
 * clock; gaps and overlaps as pilot_tz_from_civil says. */
int64_t sched_from_local(const struct pilot_tz *tz, int64_t local);

#endif
