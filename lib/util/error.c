/* The per-thread error message behind pilot_error_last(): library calls return a code
 * and leave a human message here for the command to report once, at the top. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "pilot/util.h"

#define ERROR_MAX 2048

static _Thread_local char error_msg[ERROR_MAX];
static _Thread_local int error_code;

int pilot_error_setv(int code, const char *fmt, va_list ap)
{
	vsnprintf(error_msg, sizeof(error_msg), fmt, ap);
	error_code = code;
	return code;
}

int pilot_error_set(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	pilot_error_setv(code, fmt, ap);
	va_end(ap);
	return code;
}

int pilot_error_errno(int code, int errnum, const char *fmt, ...)
{
	char head[ERROR_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(head, sizeof(head), fmt, ap);
	va_end(ap);
	return pilot_error_set(code, "%s: %s", head, strerror(errnum));
}

int pilot_error_prefix(int code, const char *fmt, ...)
{
	char head[ERROR_MAX], old[ERROR_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(head, sizeof(head), fmt, ap);
	va_end(ap);
	memcpy(old, error_msg, sizeof(old));
	/* "head: old", cut at ERROR_MAX. */
	size_t n = 0;
	const char *parts[] = { head, old[0] ? ": " : "", old };
	for (size_t i = 0; i < 3; i++) {
		size_t len = strlen(parts[i]);
		if (len > ERROR_MAX - 1 - n)
			len = ERROR_MAX - 1 - n;
		memcpy(error_msg + n, parts[i], len);
		n += len;
	}
	error_msg[n] = '\0';
	if (!error_code)
		error_code = code;
	return code;
}

const char *pilot_error_last(void)
{
	return error_msg;
}

int pilot_error_code(void)
{
	return error_code;
}

void pilot_error_clear(void)
{
	error_msg[0] = '\0';
	error_code = 0;
}

const char *pilot_err_name(int code)
{
	switch (code) {
	case PILOT_OK: return "ok";
	case PILOT_ENOTFOUND: return "not_found";
	case PILOT_ECONFLICT: return "conflict";
	case PILOT_EINVALID: return "invalid";
	case PILOT_EUNAVAILABLE: return "unavailable";
	case PILOT_EAUTH: return "unauthorized";
	case PILOT_EFORBIDDEN: return "forbidden";
	case PILOT_EIO: return "io";
	case PILOT_ENOMEM: return "no_memory";
	case PILOT_ELIMIT: return "limit";
	case PILOT_EAMBIGUOUS: return "ambiguous";
	case PILOT_ECANCELED: return "canceled";
	default: return "failed";
	}
}
