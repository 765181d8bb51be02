/* term: terminal rendering shared by the commands — aligned tables, sparklines,
 * one-line progress, relative ages. Everything renders into a pilot_buf; the command
 * decides where it goes (the library never prints). */
#ifndef PILOT_TERM_H
#define PILOT_TERM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pilot/util.h"

/* Columns of the terminal on fd, or 0 when fd is not a terminal. $COLUMNS wins. */
int pilot_term_width(int fd);

/* A table: add the header row, then rows of exactly ncols cells (copied). */
struct pilot_table;
struct pilot_table *pilot_table_new(size_t ncols, const char *const *headers);
void pilot_table_add(struct pilot_table *t, const char *const *cells);
/* Left-aligned columns separated by two spaces; the last column is not padded.
 * max_width > 0 shrinks the widest column but the first (with a trailing '…') to fit:
 * the first holds ids, which are never cut. */
void pilot_table_render(const struct pilot_table *t, int max_width, struct pilot_buf *out);
size_t pilot_table_rows(const struct pilot_table *t);
void pilot_table_free(struct pilot_table *t);

/* ▁▂▃▄▅▆▇█ for the last `width` values (all when width is 0), scaled min..max. */
void pilot_sparkline(const double *values, size_t n, size_t width, struct pilot_buf *out);

/* "12s", "5m", "3h", "2d" between then and now; "-" when then is 0. */
void pilot_format_age(int64_t then_ms, int64_t now_ms, char *out, size_t outlen);

/* One progress line, meant to be written after '\r' and a clear-to-end (ESC[K):
 * "label  1,234 files  56.7 MiB  12.3 MiB/s". */
void pilot_progress_line(const char *label, uint64_t items, const char *item_name, uint64_t bytes,
			 int64_t elapsed_ms, struct pilot_buf *out);

/* A transfer's progress: "█████░░░░░  1.2 MiB / 4.0 MiB  3.1 MiB/s", the bar width
 * characters wide (empty when total is 0, unknown). */
void pilot_progress_bar(uint64_t done, uint64_t total, int64_t elapsed_ms, int width, struct pilot_buf *out);

/* Display width of a UTF-8 string (one column per code point; enough for our tables). */
size_t pilot_utf8_width(const char *s);

#endif
