/* util: the error model, the growable buffer, cleanup helpers, checked parsing of
 * numbers/durations/sizes, ids, logging hooks and filesystem helpers shared by every
 * other module of libpilot. */
#ifndef PILOT_UTIL_H
#define PILOT_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/types.h>

/* ---- errors ----------------------------------------------------------------
 * Library functions return 0 (or a non-negative count) on success and one of these
 * negative codes on failure, after recording a message for the calling thread. */
enum pilot_err {
	PILOT_OK = 0,
	PILOT_EFAIL = -1,        /* anything not covered below */
	PILOT_ENOTFOUND = -2,
	PILOT_ECONFLICT = -3,    /* state conflict, superseded lease, idempotency mismatch */
	PILOT_EINVALID = -4,     /* malformed input */
	PILOT_EUNAVAILABLE = -5, /* engine/server unreachable, busy */
	PILOT_EAUTH = -6,        /* missing or wrong credentials */
	PILOT_EFORBIDDEN = -7,   /* credentials lack the scope */
	PILOT_EIO = -8,
	PILOT_ENOMEM = -9,
	PILOT_ELIMIT = -10,      /* a configured limit was reached */
	PILOT_EAMBIGUOUS = -11,  /* an id prefix matches several objects */
	PILOT_ECANCELED = -12,
};

/* Record a message for this thread and return code. printf-style. */
int pilot_error_set(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int pilot_error_setv(int code, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Like pilot_error_set with ": strerror(errnum)" appended. */
int pilot_error_errno(int code, int errnum, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Put "prefix: " in front of the current message; returns code unchanged. */
int pilot_error_prefix(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The last message set on this thread ("" when none). */
const char *pilot_error_last(void);
/* The code passed with the last message (0 when none). */
int pilot_error_code(void);
void pilot_error_clear(void);
/* A short stable name for a code: "not_found", "conflict", ... */
const char *pilot_err_name(int code);

/* ---- cleanup helpers ---------------------------------------------------- */
#define _cleanup_(f) __attribute__((cleanup(f)))
static inline void pilot_freep(void *p) { free(*(void **)p); }
#define _cleanup_free_ _cleanup_(pilot_freep)
void pilot_closep(int *fd);
#define _cleanup_close_ _cleanup_(pilot_closep)
#define TAKE_PTR(p) ({ __typeof__(p) _tp = (p); (p) = NULL; _tp; })
#define TAKE_FD(fd) ({ int _tfd = (fd); (fd) = -1; _tfd; })
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define PILOT_DEFINE_CLEANUP(type, func) \
	static inline void func##p(type **p) { func(*p); }

/* Allocation that never returns NULL: on exhaustion pilot aborts, like git's xmalloc. */
void *pilot_xmalloc(size_t n);
void *pilot_xcalloc(size_t n, size_t size);
void *pilot_xrealloc(void *p, size_t n);
char *pilot_xstrdup(const char *s);
char *pilot_xstrndup(const char *s, size_t n);
char *pilot_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- growable byte/string buffer ------------------------------------------
 * Always NUL-terminated. max == 0 means unbounded; every buffer fed by the network
 * sets a max, and an append past it fails with PILOT_ELIMIT leaving the buffer as it was. */
struct pilot_buf {
	char *data;
	size_t len;
	size_t cap;
	size_t max;
};
#define PILOT_BUF_INIT { NULL, 0, 0, 0 }
void pilot_buf_init(struct pilot_buf *b, size_t max);
int pilot_buf_append(struct pilot_buf *b, const void *p, size_t n);
int pilot_buf_puts(struct pilot_buf *b, const char *s);
int pilot_buf_putc(struct pilot_buf *b, char c);
int pilot_buf_printf(struct pilot_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int pilot_buf_vprintf(struct pilot_buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Returns the string ("" when empty, never NULL). */
const char *pilot_buf_str(const struct pilot_buf *b);
void pilot_buf_reset(struct pilot_buf *b);
void pilot_buf_truncate(struct pilot_buf *b, size_t len);
/* Drop the first n bytes. */
void pilot_buf_consume(struct pilot_buf *b, size_t n);
/* Hand the string to the caller (never NULL) and reset the buffer. */
char *pilot_buf_steal(struct pilot_buf *b);
void pilot_buf_free(struct pilot_buf *b);
#define _cleanup_buf_ _cleanup_(pilot_buf_free)

/* ---- checked parsing -------------------------------------------------------
 * All return 0 or PILOT_EINVALID with a message naming the input. */
int pilot_parse_int64(const char *s, int64_t min, int64_t max, int64_t *out);
/* "500ms", "90s", "15m", "2h", "1d", "1h30m", "1.5h", bare "30" = seconds. Out: milliseconds. */
int pilot_parse_duration(const char *s, int64_t *ms);
/* "512MiB", "4G", "1.5GB", "100k", bare "1024" = bytes. K/M/G/T/P without "iB" are
 * decimal when followed by B ("4GB") and binary otherwise ("4G" = 4 GiB, as docker does). */
int pilot_parse_size(const char *s, uint64_t *bytes);
/* Human forms: "1h2m", "350ms"; "1.5 GiB". */
void pilot_format_duration(int64_t ms, char *out, size_t outlen);
void pilot_format_size(uint64_t bytes, char *out, size_t outlen);

/* ---- ids -------------------------------------------------------------------
 * prefix letter + 9 chars of milliseconds since 2025-01-01 + 5 random chars, all in
 * Crockford base32 (lowercase, ascending ASCII): unique, and sortable by creation. */
#define PILOT_ID_LEN 15
#define PILOT_ID_SIZE (PILOT_ID_LEN + 1)
void pilot_id_new(char prefix, char out[PILOT_ID_SIZE]);
/* Plausible id syntax (prefix letter and base32 characters; full or a prefix). */
bool pilot_id_valid(const char *s, bool allow_prefix);
/* Cryptographically random bytes (OpenSSL); aborts if the RNG fails. */
void pilot_random_bytes(void *out, size_t n);
/* Lowercase hex of n random bytes into out (size 2n+1). */
void pilot_random_hex(char *out, size_t nbytes);
/* sha256 of a buffer as 64 hex chars + NUL. */
void pilot_sha256_hex(const void *p, size_t n, char out[65]);
bool pilot_sha256_valid(const char *hex);

/* ---- time ---------------------------------------------------------------- */
int64_t pilot_now_ms(void);      /* wall clock, ms since the epoch */
int64_t pilot_mono_ms(void);     /* monotonic */
/* RFC 3339 UTC with milliseconds: 2026-01-02T03:04:05.678Z */
void pilot_format_time(int64_t ms, char out[32]);

/* ---- logging ---------------------------------------------------------------
 * The library never prints: it reports through this hook, which the CLI sets. */
enum pilot_log_level { PILOT_LOG_ERROR, PILOT_LOG_WARN, PILOT_LOG_NOTICE, PILOT_LOG_INFO, PILOT_LOG_DEBUG };
typedef void (*pilot_log_fn)(enum pilot_log_level level, const char *msg, void *userdata);
void pilot_log_set_handler(pilot_log_fn fn, void *userdata, enum pilot_log_level max_level);
void pilot_log(enum pilot_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool pilot_log_enabled(enum pilot_log_level level);

/* ---- filesystem -------------------------------------------------------------- */
/* Read a whole file, failing with PILOT_ELIMIT past max bytes (0 = no limit). */
int pilot_read_file(const char *path, size_t max, struct pilot_buf *out);
/* Write to a temp file beside path, fsync, rename, fsync the directory. */
int pilot_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode);
int pilot_mkdir_p(const char *path, mode_t mode);
/* Remove a tree without following symlinks; a missing path is fine. */
int pilot_rm_rf(const char *path);
int pilot_fsync_dir(const char *dir);
/* Write all of it, retrying on EINTR and short writes. */
int pilot_write_all(int fd, const void *p, size_t n);
/* $XDG_DATA_HOME/pilot or ~/.local/share/pilot; $XDG_CONFIG_HOME/pilot or ~/.config/pilot. */
char *pilot_data_home(void);
char *pilot_config_home(void);
/* "user@host" for this process: $USER, else the password database's name of the
 * effective uid, else "uid-N"; the host name up to its first dot. */
char *pilot_local_identity(void);
/* A new empty file in $TMPDIR (else /tmp) with no name (O_TMPFILE, or a name removed
 * at once where the filesystem lacks it), open for reading and writing; the fd or
 * PILOT_EIO naming the directory. */
int pilot_open_temp(void);
/* Join two path parts with exactly one '/'. */
char *pilot_path_join(const char *a, const char *b);

/* ---- key/value pairs ------------------------------------------------------- */
/* One entry of a map kept in order (spec env/params, labels, secrets). */
struct pilot_kv {
	char *key;
	char *value;
};

/* ---- strings -------------------------------------------------------------- */
bool pilot_str_has_prefix(const char *s, const char *prefix);
bool pilot_str_has_suffix(const char *s, const char *suffix);
/* Damerau-Levenshtein distance (restricted), for "did you mean". */
int pilot_edit_distance(const char *a, const char *b);
/* The closest candidate within a reasonable distance, or NULL. */
const char *pilot_suggest(const char *word, const char *const *candidates, size_t n);

#endif
