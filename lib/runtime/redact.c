/* The streaming secret redactor: a job's output may print a secret in pieces (one write
 * per byte, a pipe boundary in the middle), so a candidate at the end of a write is held
 * back until the next write proves or disproves it. */
#include <string.h>

#include "pilot/runtime.h"
#include "pilot/util.h"

struct pilot_redactor {
	char **secrets;      /* longest first, so the longest wins at one position */
	size_t *lens;
	size_t n;
	bool first[256];     /* bytes some secret starts with: the only places worth a look */
	struct pilot_buf work;
};

static int by_length_desc(const void *a, const void *b)
{
	size_t la = strlen(*(char *const *)a), lb = strlen(*(char *const *)b);
	return la < lb ? 1 : la > lb ? -1 : 0;
}

struct pilot_redactor *pilot_redactor_new(const char *const *secrets, size_t n)
{
	struct pilot_redactor *r = pilot_xcalloc(1, sizeof(*r));
	r->secrets = pilot_xcalloc(n ? n : 1, sizeof(char *));
	r->lens = pilot_xcalloc(n ? n : 1, sizeof(size_t));
	for (size_t i = 0; i < n; i++) {
		if (!secrets[i] || !secrets[i][0])
			continue;
		r->secrets[r->n++] = pilot_xstrdup(secrets[i]);
	}
	if (r->n)
		qsort(r->secrets, r->n, sizeof(char *), by_length_desc);
	for (size_t i = 0; i < r->n; i++) {
		r->lens[i] = strlen(r->secrets[i]);
		r->first[(unsigned char)r->secrets[i][0]] = true;
	}
	pilot_buf_init(&r->work, 0);
	return r;
}

void pilot_redactor_free(struct pilot_redactor *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++)
		free(r->secrets[i]);
	free(r->secrets);
	free(r->lens);
	pilot_buf_free(&r->work);
	free(r);
}

/* Redacts work, emitting all of it (final) or all but a tail that may begin a secret,
 * which stays in work. */
static void process(struct pilot_redactor *r, bool final, pilot_emit_fn emit, void *ud)
{
	const char *p = r->work.data;
	size_t n = r->work.len, start = 0, i = 0;
	while (i < n) {
		if (!r->first[(unsigned char)p[i]]) {
			i++;
			continue;
		}
		size_t matched = 0;
		for (size_t k = 0; k < r->n; k++) {
			size_t len = r->lens[k];
			if (i + len <= n) {
				if (memcmp(p + i, r->secrets[k], len) == 0) {
					matched = len;
					break;
				}
			} else if (!final && memcmp(p + i, r->secrets[k], n - i) == 0) {
				/* Could still become this secret (or a longer match than a
				 * shorter one found here): decide when more arrives. */
				if (i > start)
					emit(p + start, i - start, ud);
				pilot_buf_consume(&r->work, i);
				return;
			}
		}
		if (matched) {
			if (i > start)
				emit(p + start, i - start, ud);
			emit("***", 3, ud);
			i += matched;
			start = i;
		} else {
			i++;
		}
	}
	if (n > start)
		emit(p + start, n - start, ud);
	pilot_buf_reset(&r->work);
}

void pilot_redactor_feed(struct pilot_redactor *r, const char *data, size_t len, pilot_emit_fn emit, void *ud)
{
	if (!len)
		return;
	if (r->n == 0) {
		emit(data, len, ud);
		return;
	}
	pilot_buf_append(&r->work, data, len);
	process(r, false, emit, ud);
}

void pilot_redactor_flush(struct pilot_redactor *r, pilot_emit_fn emit, void *ud)
{
	if (r->work.len)
		process(r, true, emit, ud);
}

static void to_buf(const char *data, size_t len, void *ud)
{
	pilot_buf_append(ud, data, len);
}

char *pilot_redact_string(const char *const *secrets, size_t n, const char *s)
{
	struct pilot_redactor *r = pilot_redactor_new(secrets, n);
	struct pilot_buf out = PILOT_BUF_INIT;
	pilot_redactor_feed(r, s, strlen(s), to_buf, &out);
	pilot_redactor_flush(r, to_buf, &out);
	pilot_redactor_free(r);
	return pilot_buf_steal(&out);
}
