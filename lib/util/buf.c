/* struct pilot_buf: the one growable buffer type, with an optional hard maximum. */
#include <stdio.h>
#include <string.h>

#include "pilot/util.h"

void pilot_buf_init(struct pilot_buf *b, size_t max)
{
	b->data = NULL;
	b->len = b->cap = 0;
	b->max = max;
}

static int grow(struct pilot_buf *b, size_t extra)
{
	if (extra > SIZE_MAX - b->len - 1)
		return pilot_error_set(PILOT_ELIMIT, "buffer size overflow");
	size_t need = b->len + extra + 1;
	if (b->max && need - 1 > b->max)
		return pilot_error_set(PILOT_ELIMIT, "data exceeds the limit of %zu bytes", b->max);
	if (need <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	b->data = pilot_xrealloc(b->data, cap);
	b->cap = cap;
	return 0;
}

int pilot_buf_append(struct pilot_buf *b, const void *p, size_t n)
{
	int r = grow(b, n);
	if (r < 0)
		return r;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int pilot_buf_puts(struct pilot_buf *b, const char *s)
{
	return pilot_buf_append(b, s, strlen(s));
}

int pilot_buf_putc(struct pilot_buf *b, char c)
{
	return pilot_buf_append(b, &c, 1);
}

int pilot_buf_vprintf(struct pilot_buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	va_copy(ap2, ap);
	int n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return pilot_error_set(PILOT_EINVALID, "bad format string");
	int r = grow(b, (size_t)n);
	if (r < 0)
		return r;
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

int pilot_buf_printf(struct pilot_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = pilot_buf_vprintf(b, fmt, ap);
	va_end(ap);
	return r;
}

const char *pilot_buf_str(const struct pilot_buf *b)
{
	return b->data ? b->data : "";
}

void pilot_buf_reset(struct pilot_buf *b)
{
	pilot_buf_truncate(b, 0);
}

void pilot_buf_truncate(struct pilot_buf *b, size_t len)
{
	if (len < b->len) {
		b->len = len;
		b->data[len] = '\0';
	}
}

void pilot_buf_consume(struct pilot_buf *b, size_t n)
{
	if (n >= b->len) {
		pilot_buf_reset(b);
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
	b->data[b->len] = '\0';
}

char *pilot_buf_steal(struct pilot_buf *b)
{
	char *s = b->data ? b->data : pilot_xstrdup("");
	b->data = NULL;
	b->len = b->cap = 0;
	return s;
}

void pilot_buf_free(struct pilot_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}
