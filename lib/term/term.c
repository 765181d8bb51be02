/* Terminal rendering: tables, sparklines, progress lines and bars, and ages, into buffers. */
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "pilot/term.h"

int pilot_term_width(int fd)
{
	const char *cols = getenv("COLUMNS");
	int64_t v;
	if (!isatty(fd))
		return 0;
	if (cols && pilot_parse_int64(cols, 10, 10000, &v) == 0)
		return (int)v;
	struct winsize ws;
	if (ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		return ws.ws_col;
	return 80;
}

size_t pilot_utf8_width(const char *s)
{
	size_t w = 0;
	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			w++;
	return w;
}

struct pilot_table {
	size_t ncols;
	char **cells; /* row-major, header row first */
	size_t nrows; /* including the header */
};

struct pilot_table *pilot_table_new(size_t ncols, const char *const *headers)
{
	struct pilot_table *t = pilot_xcalloc(1, sizeof(*t));
	t->ncols = ncols;
	pilot_table_add(t, headers);
	return t;
}

void pilot_table_add(struct pilot_table *t, const char *const *cells)
{
	t->cells = pilot_xrealloc(t->cells, (t->nrows + 1) * t->ncols * sizeof(*t->cells));
	for (size_t i = 0; i < t->ncols; i++)
		t->cells[t->nrows * t->ncols + i] = pilot_xstrdup(cells[i] ? cells[i] : "");
	t->nrows++;
}

size_t pilot_table_rows(const struct pilot_table *t)
{
	return t ? t->nrows - 1 : 0;
}

/* Append s cut to at most width columns, with '…' when cut. */
static void put_cut(struct pilot_buf *out, const char *s, size_t width)
{
	size_t w = pilot_utf8_width(s);
	if (w <= width) {
		pilot_buf_puts(out, s);
		return;
	}
	size_t cols = 0;
	const char *p = s;
	while (*p && cols + 1 < width) {
		p++;
		while (((unsigned char)*p & 0xc0) == 0x80)
			p++;
		cols++;
	}
	pilot_buf_append(out, s, (size_t)(p - s));
	pilot_buf_puts(out, "…");
}

void pilot_table_render(const struct pilot_table *t, int max_width, struct pilot_buf *out)
{
	size_t *width = pilot_xcalloc(t->ncols, sizeof(*width));
	for (size_t r = 0; r < t->nrows; r++)
		for (size_t c = 0; c < t->ncols; c++) {
			size_t w = pilot_utf8_width(t->cells[r * t->ncols + c]);
			if (w > width[c])
				width[c] = w;
		}
	if (max_width > 0) {
		size_t total = 0;
		for (size_t c = 0; c < t->ncols; c++)
			total += width[c] + (c ? 2 : 0);
		/* Shrink the widest column until it fits, but never below 8 columns, and never
		 * the first: it holds the ids, and a cut id is an ambiguous prefix. */
		while (total > (size_t)max_width && t->ncols > 1) {
			size_t wide = 1;
			for (size_t c = 2; c < t->ncols; c++)
				if (width[c] > width[wide])
					wide = c;
			if (width[wide] <= 8)
				break;
			width[wide]--;
			total--;
		}
	}
	for (size_t r = 0; r < t->nrows; r++) {
		for (size_t c = 0; c < t->ncols; c++) {
			const char *cell = t->cells[r * t->ncols + c];
			size_t before = out->len;
			put_cut(out, cell, width[c]);
			if (c + 1 < t->ncols) {
				size_t w = pilot_utf8_width(out->data + before);
				for (size_t k = w; k < width[c] + 2; k++)
					pilot_buf_putc(out, ' ');
			}
		}
		pilot_buf_putc(out, '\n');
	}
	free(width);
}

void pilot_table_free(struct pilot_table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
}

void pilot_sparkline(const double *values, size_t n, size_t width, struct pilot_buf *out)
{
	static const char *const bars[] = { "▁", "▂", "▃", "▄", "▅", "▆", "▇", "█" };
	if (width && n > width) {
		values += n - width;
		n = width;
	}
	if (!n)
		return;
	double lo = values[0], hi = values[0];
	for (size_t i = 1; i < n; i++) {
		if (values[i] < lo)
			lo = values[i];
		if (values[i] > hi)
			hi = values[i];
	}
	for (size_t i = 0; i < n; i++) {
		size_t k = hi > lo ? (size_t)((values[i] - lo) / (hi - lo) * 7.0 + 0.5) : 3;
		pilot_buf_puts(out, bars[k > 7 ? 7 : k]);
	}
}

void pilot_format_age(int64_t then_ms, int64_t now_ms, char *out, size_t outlen)
{
	if (then_ms <= 0) {
		snprintf(out, outlen, "-");
		return;
	}
	int64_t s = (now_ms - then_ms) / 1000;
	if (s < 0)
		s = 0;
	if (s < 60)
		snprintf(out, outlen, "%llds", (long long)s);
	else if (s < 3600)
		snprintf(out, outlen, "%lldm", (long long)(s / 60));
	else if (s < 86400)
		snprintf(out, outlen, "%lldh", (long long)(s / 3600));
	else
		snprintf(out, outlen, "%lldd", (long long)(s / 86400));
}

void pilot_progress_line(const char *label, uint64_t items, const char *item_name, uint64_t bytes,
			 int64_t elapsed_ms, struct pilot_buf *out)
{
	char size[32], rate[32];
	pilot_format_size(bytes, size, sizeof(size));
	uint64_t per_s = elapsed_ms > 0 ? bytes * 1000 / (uint64_t)elapsed_ms : 0;
	pilot_format_size(per_s, rate, sizeof(rate));
	pilot_buf_printf(out, "%s  %llu %s  %s  %s/s", label, (unsigned long long)items, item_name, size, rate);
}

void pilot_progress_bar(uint64_t done, uint64_t total, int64_t elapsed_ms, int width, struct pilot_buf *out)
{
	char sent[32], all[32], rate[32];
	pilot_format_size(done, sent, sizeof(sent));
	pilot_format_size(total, all, sizeof(all));
	pilot_format_size(elapsed_ms > 0 ? done * 1000 / (uint64_t)elapsed_ms : 0, rate, sizeof(rate));
	int fill = total ? (int)((done < total ? done : total) * (uint64_t)width / total) : 0;
	for (int i = 0; i < width; i++)
		pilot_buf_puts(out, i < fill ? "█" : "░");
	pilot_buf_printf(out, "  %s / %s  %s/s", sent, all, rate);
}
