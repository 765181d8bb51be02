/* The library's logging hook: lib/ never writes to stdout/stderr itself. */
#include <stdio.h>

#include "pilot/util.h"

static pilot_log_fn log_fn;
static void *log_userdata;
static enum pilot_log_level log_max = PILOT_LOG_WARN;

void pilot_log_set_handler(pilot_log_fn fn, void *userdata, enum pilot_log_level max_level)
{
	log_fn = fn;
	log_userdata = userdata;
	log_max = max_level;
}

bool pilot_log_enabled(enum pilot_log_level level)
{
	return log_fn && level <= log_max;
}

void pilot_log(enum pilot_log_level level, const char *fmt, ...)
{
	if (!pilot_log_enabled(level))
		return;
	char msg[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_fn(level, msg, log_userdata);
}
