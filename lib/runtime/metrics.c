/* Metrics a job reports: "METRIC ..." lines on its stdout and JSON lines appended to the
 * $PILOT_METRICS file, both turned into compact JSON objects for the caller to store. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "pilot/runtime.h"
#include "pilot/util.h"

#define METRIC_LINE_MAX (64 * 1024)

/* JSON's number grammar (strtod alone would take "0x1p3", "inf" and "nan"). */
static bool is_json_number(const char *s, size_t n, bool *integer)
{
	size_t i = 0;
	*integer = true;
	if (i < n && s[i] == '-')
		i++;
	size_t digits = i;
	while (i < n && s[i] >= '0' && s[i] <= '9')
		i++;
	if (i == digits)
		return false;
	if (s[digits] == '0' && i - digits > 1)
		return false;
	if (i < n && s[i] == '.') {
		*integer = false;
		size_t f = ++i;
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
		if (i == f)
			return false;
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		*integer = false;
		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		size_t e = i;
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
		if (i == e)
			return false;
	}
	return i == n;
}

static json_t *kv_value(const char *s, size_t n, bool quoted)
{
	if (!quoted) {
		bool integer;
		if (is_json_number(s, n, &integer)) {
			_cleanup_free_ char *t = pilot_xstrndup(s, n);
			if (integer) {
				int64_t v;
				if (pilot_parse_int64(t, INT64_MIN, INT64_MAX, &v) == 0)
					return json_integer(v);
			}
			double d = strtod(t, NULL);
			if (isfinite(d))
				return json_real(d);
		}
		if (n == 4 && memcmp(s, "true", 4) == 0)
			return json_true();
		if (n == 5 && memcmp(s, "false", 5) == 0)
			return json_false();
	}
	return json_stringn_nocheck(s, n);
}

static bool key_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
	       c == '-' || c == '/' || c == ':';
}

static int parse_pairs(const char *s, size_t n, json_t *obj)
{
	size_t i = 0, pairs = 0;
	for (;;) {
		while (i < n && (s[i] == ' ' || s[i] == '\t'))
			i++;
		if (i == n)
			break;
		size_t k = i;
		while (i < n && key_char(s[i]))
			i++;
		if (i == k || i == n || s[i] != '=')
			return pilot_error_set(PILOT_EINVALID, "invalid METRIC line: expected key=value at column %zu",
					       k + 8);
		_cleanup_free_ char *key = pilot_xstrndup(s + k, i - k);
		i++;
		json_t *v;
		if (i < n && s[i] == '"') {
			_cleanup_buf_ struct pilot_buf val = PILOT_BUF_INIT;
			i++;
			while (i < n && s[i] != '"') {
				if (s[i] == '\\' && i + 1 < n)
					i++;
				pilot_buf_putc(&val, s[i++]);
			}
			if (i == n)
				return pilot_error_set(PILOT_EINVALID, "invalid METRIC line: unterminated quote in '%s'", key);
			i++;
			v = kv_value(val.data ? val.data : "", val.len, true);
		} else {
			size_t b = i;
			while (i < n && s[i] != ' ' && s[i] != '\t')
				i++;
			v = kv_value(s + b, i - b, false);
		}
		if (!v)
			return pilot_error_set(PILOT_EINVALID, "invalid METRIC line: value of '%s' is not UTF-8", key);
		json_object_set_new(obj, key, v);
		pairs++;
	}
	if (!pairs)
		return pilot_error_set(PILOT_EINVALID, "invalid METRIC line: no values");
	return 0;
}

/* 15 significant digits: what a job printed as 0.9 stays 0.9 (17 would say
 * 0.90000000000000002), and no metric needs more. */
static char *dump(json_t *obj)
{
	char *s = json_dumps(obj, JSON_COMPACT | JSON_REAL_PRECISION(15));
	if (!s)
		abort();
	return s;
}

/* A JSON object from a line's text, or NULL with the error set. */
static json_t *parse_object(const char *s, size_t n, const char *what)
{
	json_error_t jerr;
	json_t *v = json_loadb(s, n, JSON_REJECT_DUPLICATES, &jerr);
	if (!v) {
		pilot_error_set(PILOT_EINVALID, "invalid %s: %s", what, jerr.text);
		return NULL;
	}
	if (!json_is_object(v)) {
		json_decref(v);
		pilot_error_set(PILOT_EINVALID, "invalid %s: not a JSON object", what);
		return NULL;
	}
	return v;
}

int pilot_metric_parse_line(const char *line, size_t len, char **json)
{
	*json = NULL;
	while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		len--;
	if (len < 7 || memcmp(line, "METRIC ", 7) != 0)
		return 0;
	const char *s = line + 7;
	size_t n = len - 7;
	while (n && (*s == ' ' || *s == '\t')) {
		s++;
		n--;
	}
	json_t *obj;
	if (n && *s == '{') {
		obj = parse_object(s, n, "METRIC line");
		if (!obj)
			return PILOT_EINVALID;
	} else {
		obj = json_object();
		int r = parse_pairs(s, n, obj);
		if (r < 0) {
			json_decref(obj);
			return r;
		}
	}
	*json = dump(obj);
	json_decref(obj);
	return 1;
}

/* ---- the stdout scanner ---- */

struct pilot_metric_scanner {
	void (*on_metric)(const char *json, void *ud);
	void *ud;
	struct pilot_buf line;
	bool skipping;      /* inside a line past METRIC_LINE_MAX */
};

struct pilot_metric_scanner *pilot_metric_scanner_new(void (*on_metric)(const char *json, void *ud), void *ud)
{
	struct pilot_metric_scanner *s = pilot_xcalloc(1, sizeof(*s));
	s->on_metric = on_metric;
	s->ud = ud;
	pilot_buf_init(&s->line, METRIC_LINE_MAX);
	return s;
}

void pilot_metric_scanner_free(struct pilot_metric_scanner *s)
{
	if (!s)
		return;
	pilot_buf_free(&s->line);
	free(s);
}

static void scan_line(struct pilot_metric_scanner *s, const char *p, size_t n)
{
	_cleanup_free_ char *json = NULL;
	int r = pilot_metric_parse_line(p, n, &json);
	if (r > 0)
		s->on_metric(json, s->ud);
	else if (r < 0)
		pilot_log(PILOT_LOG_INFO, "%s", pilot_error_last());
}

void pilot_metric_scanner_feed(struct pilot_metric_scanner *s, const char *data, size_t len)
{
	while (len) {
		const char *nl = memchr(data, '\n', len);
		size_t take = nl ? (size_t)(nl - data) : len;
		if (!s->skipping) {
			/* Most lines are not metrics: look no further once the start says so. */
			bool maybe = true;
			size_t have = s->line.len, cmp = have + take < 7 ? have + take : 7;
			char head[7];
			memcpy(head, s->line.data ? s->line.data : "", have < 7 ? have : 7);
			if (have < 7)
				memcpy(head + have, data, cmp - have);
			if (memcmp(head, "METRIC ", cmp) != 0)
				maybe = false;
			if (!maybe) {
				s->skipping = true;
				pilot_buf_reset(&s->line);
			} else if (pilot_buf_append(&s->line, data, take) < 0) {
				s->skipping = true;
				pilot_buf_reset(&s->line);
			}
		}
		if (!nl)
			return;
		if (!s->skipping)
			scan_line(s, s->line.data ? s->line.data : "", s->line.len);
		s->skipping = false;
		pilot_buf_reset(&s->line);
		data += take + 1;
		len -= take + 1;
	}
}

void pilot_metric_scanner_finish(struct pilot_metric_scanner *s)
{
	if (!s->skipping && s->line.len)
		scan_line(s, s->line.data, s->line.len);
	s->skipping = false;
	pilot_buf_reset(&s->line);
}

/* ---- the metrics file ---- */

int pilot_metric_read_file(const char *path, uint64_t *offset, bool final,
			   void (*on_metric)(const char *json, void *ud), void *ud)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		return pilot_error_errno(PILOT_EIO, errno, "cannot open metrics file '%s'", path);
	}
	struct stat st;
	if (fstat(fd, &st) < 0)
		return pilot_error_errno(PILOT_EIO, errno, "cannot stat metrics file '%s'", path);
	if (!S_ISREG(st.st_mode))
		return pilot_error_set(PILOT_EINVALID, "metrics file '%s' is not a regular file", path);
	if ((uint64_t)st.st_size < *offset)
		*offset = 0; /* truncated or replaced: start over */
	int count = 0, bad = 0;
	_cleanup_buf_ struct pilot_buf line = PILOT_BUF_INIT;
	bool skipping = false;
	uint64_t pos = *offset;
	char buf[65536];
	for (;;) {
		ssize_t got = pread(fd, buf, sizeof(buf), (off_t)pos);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			return pilot_error_errno(PILOT_EIO, errno, "cannot read metrics file '%s'", path);
		}
		if (got == 0)
			break;
		size_t i = 0;
		while (i < (size_t)got) {
			const char *nl = memchr(buf + i, '\n', (size_t)got - i);
			size_t take = nl ? (size_t)(nl - (buf + i)) : (size_t)got - i;
			if (!skipping && line.len + take > METRIC_LINE_MAX) {
				skipping = true;
				pilot_buf_reset(&line);
			}
			if (!skipping)
				pilot_buf_append(&line, buf + i, take);
			i += take;
			if (!nl)
				break;
			i++;
			*offset = pos + i;
			if (skipping) {
				bad++;
			} else if (line.len) {
				json_t *obj = parse_object(line.data, line.len, "metrics line");
				if (obj) {
					char *json = dump(obj);
					on_metric(json, ud);
					free(json);
					json_decref(obj);
					count++;
				} else {
					bad++;
				}
			}
			skipping = false;
			pilot_buf_reset(&line);
		}
		pos += (uint64_t)got;
	}
	if (final && line.len && !skipping) {
		json_t *obj = parse_object(line.data, line.len, "metrics line");
		if (obj) {
			char *json = dump(obj);
			on_metric(json, ud);
			free(json);
			json_decref(obj);
			count++;
		} else {
			bad++;
		}
		*offset = pos;
	}
	if (bad)
		pilot_log(PILOT_LOG_NOTICE, "metrics file '%s': %d line%s skipped (not a JSON object)", path, bad,
			  bad == 1 ? "" : "s");
	return count;
}
