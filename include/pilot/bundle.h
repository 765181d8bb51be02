/* bundle: a project directory packed into a deterministic gzip'd tar named by the sha256
 * of its bytes, and the safe extraction of such a bundle by an agent that did not make it.
 * Also the gitignore-style matcher (pilot_ignore_*, pilot_glob_match) that decides what goes
 * in, exposed for other collectors of files (artifacts).
 *
 * What goes in: everything under the directory except
 *   - entries named .git or .pilot, at any depth (always, no pattern can bring them back);
 *   - what the ignore rules exclude. A .pilotignore in the project root switches to
 *     .pilotignore files only (root and nested; .gitignore files are not read at all).
 *     Without one, .gitignore files are read (root and nested) and a nested .pilotignore
 *     is read after the .gitignore of its own directory (so it wins over it). Full
 *     gitignore semantics; an excluded directory is never descended into. The extra
 *     patterns (pilot.yaml's ignore:, --ignore) are anchored at the root and win over
 *     every file, like git's --exclude. .git/info/exclude and core.excludesFile are not read;
 *   - .env and .env.* (files or directories, at any depth), unless a negation in the rules
 *     above matches them (e.g. "!.env"): they usually hold secrets. Each is reported by a
 *     NOTICE through pilot_log;
 *   - sockets, fifos and devices (NOTICE).
 * Directories that are not excluded are stored, empty ones included. Symlinks are stored
 * as symlinks when they resolve inside the project (following the bundle's own symlinks
 * on the way, as the extractor will); one that leads outside is an error, or is left out
 * with a NOTICE when skip_outside_links is set. Hardlinks are stored as separate files.
 *
 * The bytes: ustar headers (a pax 'x' header only for paths or link targets longer than
 * ustar holds, or files of 8 GiB and more), entries sorted bytewise by path, uid/gid 0
 * with no user or group names, mtime $SOURCE_DATE_EPOCH or 0, mode 0644 or 0755 (0755 when
 * any execute bit is set) for files, 0755 for directories, 0777 for symlinks; the tar
 * padded to a 10240-byte record; gzip with a fixed header (no name, no time, OS 3) around
 * zlib's raw deflate at a fixed level fed in fixed-size 16 KiB pieces, where a piece whose
 * byte histogram is flat (already compressed data) is stored instead (deflate level 0),
 * which is several times faster on such data and no bigger. So the same tree gives the
 * same bytes whatever the umask, mtimes, owner, clock or machine — as long as zlib's
 * deflate is the same (zlib's output for a level has been stable for years, but a
 * different deflate implementation, such as zlib-ng, could differ). */
#ifndef PILOT_BUNDLE_H
#define PILOT_BUNDLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pilot/util.h"

/* Largest bundle (the uncompressed tar stream) unless told otherwise: 2 GiB. */
#define PILOT_BUNDLE_DEFAULT_MAX_SIZE (UINT64_C(2) << 30)
/* The deflate level bundles are made with, chosen for speed (bench/pack: level 1 is 1.7 to
 * 2.4 times as fast as 6, for 7% more bytes on prose to 25% on source code; level 3 sits
 * in between). Part of the format: changing it changes every bundle's hash. Level 1
 * cannot exceed about 230:1 even on zeros, far under the extractor's max_ratio. */
#define PILOT_BUNDLE_LEVEL 1
/* Limits shared by packing and extraction, so that what pack makes, unpack accepts. */
#define PILOT_BUNDLE_MAX_PATH 4096
#define PILOT_BUNDLE_MAX_DEPTH 256
#define PILOT_BUNDLE_MAX_ENTRIES 1000000

enum pilot_bundle_type {
	PILOT_BUNDLE_FILE,
	PILOT_BUNDLE_DIR,
	PILOT_BUNDLE_SYMLINK,
};
/* "file", "dir", "symlink" */
const char *pilot_bundle_type_name(enum pilot_bundle_type t);

struct pilot_bundle_entry {
	const char *path;     /* relative to the project, '/'-separated, no trailing '/' */
	enum pilot_bundle_type type;
	uint64_t size;        /* bytes of a file; 0 otherwise */
	unsigned mode;        /* as stored: 0644, 0755 or 0777 */
	const char *target;   /* a symlink's target; NULL otherwise */
};

struct pilot_bundle_info {
	char sha256[65];            /* of the compressed bytes: the bundle's name */
	uint64_t compressed_size;
	uint64_t uncompressed_size; /* the tar stream: what max_size limits */
	uint64_t files, dirs, symlinks;
	uint64_t data_bytes;        /* sum of the files' sizes */
};

enum pilot_pack_phase {
	PILOT_PACK_SCANNING,  /* walking the tree: files/bytes count what was found so far */
	PILOT_PACK_WRITING,   /* files/bytes against files_total/bytes_total */
};

struct pilot_pack_progress {
	enum pilot_pack_phase phase;
	uint64_t files, files_total;
	uint64_t bytes, bytes_total;  /* file data */
	int64_t elapsed_ms;           /* since the call began */
	bool done;                    /* the last call, once everything is written */
};

struct pilot_pack_opts {
	const char *dir;
	const char *const *extra_ignore;  /* gitignore patterns anchored at dir */
	size_t n_extra_ignore;
	uint64_t max_size;         /* of the tar stream; 0 = PILOT_BUNDLE_DEFAULT_MAX_SIZE */
	bool skip_outside_links;   /* leave out symlinks leading outside instead of failing */
	int level;                 /* deflate level, 0 = PILOT_BUNDLE_LEVEL (benchmarks only) */
	/* Called about every 100 ms while scanning and writing, and once with done set. */
	void (*progress)(const struct pilot_pack_progress *p, void *userdata);
	void *userdata;
};

/* Pack opts->dir into out_fd (-1: nothing written, the hash and sizes are still computed).
 * Fails before writing anything when the tree breaks a rule: PILOT_ELIMIT when the tar
 * would exceed max_size (the message names the largest directories and files) or a path
 * is longer or deeper than the limits above; PILOT_EINVALID for a symlink leading outside
 * or a bad $SOURCE_DATE_EPOCH; PILOT_EIO when reading or writing fails, including a file
 * that changed size while it was read. info may be NULL. */
int pilot_bundle_pack(const struct pilot_pack_opts *opts, int out_fd, struct pilot_bundle_info *info);

/* What pilot_bundle_pack would store, in bundle order, without reading file contents or
 * enforcing max_size (info->uncompressed_size says how big it would be; sha256 and
 * compressed_size stay empty). fn returning non-zero stops the walk with that value. */
int pilot_bundle_list(const struct pilot_pack_opts *opts,
		      int (*fn)(const struct pilot_bundle_entry *e, void *userdata), void *userdata,
		      struct pilot_bundle_info *info);

/* ---- extraction ------------------------------------------------------------
 * Only tar (ustar, pax, GNU) optionally gzip'd is read, with libarchive's tar reader and
 * built-in gzip filter only. Every entry is checked before anything is written for it and
 * nothing is ever written through a symlink (every directory is opened with O_NOFOLLOW,
 * every file created with O_EXCL). Refused, naming the entry: absolute paths, '..'
 * components, symlinks whose target is absolute or resolves outside (also through other
 * symlinks of the bundle; checked again over the whole tree at the end), hardlinks whose
 * target is absolute, outside, not a regular file of the bundle, or that carry data,
 * devices, fifos and other types, a path given twice with different types, an entry
 * below a symlink or a file. Files get 0755 when any execute bit is set, else 0644,
 * directories 0755 (less the umask); setuid/setgid/sticky bits, owners and mtimes are
 * not restored (files get the time of extraction). A path given twice with the same type
 * is replaced (a directory kept), as tar does.
 *
 * The bundle is extracted into a fresh directory beside dest and renamed to dest at the
 * end, so dest appears complete or not at all. dest must not exist, or be an empty
 * directory (its mode is kept); its parent must exist. On any failure the temporary
 * directory is removed and dest is left as it was. */
struct pilot_extract_limits {
	uint64_t max_bytes;    /* uncompressed tar stream; PILOT_BUNDLE_DEFAULT_MAX_SIZE */
	uint64_t max_entries;  /* PILOT_BUNDLE_MAX_ENTRIES */
	size_t max_path;       /* bytes of an entry's path or link target; PILOT_BUNDLE_MAX_PATH */
	unsigned max_depth;    /* components of a path; PILOT_BUNDLE_MAX_DEPTH */
	/* uncompressed / compressed bytes, checked once more than ratio_after bytes have been
	 * inflated: 1000 after 1 MiB (deflate cannot do much better than 1032:1, so this only
	 * stops streams of nothing but zeros). 0 disables. */
	uint64_t max_ratio;
	uint64_t ratio_after;
};
void pilot_extract_limits_default(struct pilot_extract_limits *lim);

/* Extract the bundle read from fd into dest. lim NULL = the defaults. A limit reached
 * fails with PILOT_ELIMIT and a message naming the limit (max_bytes, max_entries,
 * max_path, max_depth, max_ratio) and the entry; a refused entry with PILOT_EINVALID.
 * info (may be NULL) gets the sha256 and size of all the bytes read from fd (to the
 * end; more than 1 MiB after the end of the archive is refused) and the counts. */
int pilot_bundle_extract_fd(int fd, const char *dest, const struct pilot_extract_limits *lim,
			    struct pilot_bundle_info *info);
/* The same from a file ("-" is not special here). */
int pilot_bundle_extract(const char *bundle, const char *dest, const struct pilot_extract_limits *lim,
			 struct pilot_bundle_info *info);

/* ---- gitignore-style matching ---------------------------------------------- */

/* git's wildmatch: '*' '?' '[...]' (ranges, '!'/'^' negation, [:class:]), '\' escapes.
 * With pathname, '*' '?' and brackets never match '/', and '**' between slashes (or at
 * either end) matches any number of directories. */
bool pilot_glob_match(const char *pattern, const char *text, bool pathname);

enum pilot_ignore_result {
	PILOT_IGNORE_NONE = 0,     /* no pattern matched */
	PILOT_IGNORE_EXCLUDE = 1,  /* the deciding pattern excludes it */
	PILOT_IGNORE_INCLUDE = 2,  /* the deciding pattern is a negation ("!pat") */
};

/* An ordered list of patterns; the last one that matches decides. */
struct pilot_ignore;
struct pilot_ignore *pilot_ignore_new(void);
void pilot_ignore_free(struct pilot_ignore *ig);
/* One pattern in gitignore syntax (comments and blank lines add nothing, trailing spaces
 * are trimmed). base is the directory the patterns are relative to ("" = the root, or
 * "a/b"): they apply only below it. */
void pilot_ignore_add(struct pilot_ignore *ig, const char *base, const char *line);
/* A whole .gitignore-style text (BOM, CRLF and a missing final newline are fine). */
void pilot_ignore_add_text(struct pilot_ignore *ig, const char *base, const char *text, size_t len);
size_t pilot_ignore_count(const struct pilot_ignore *ig);
/* Drop the patterns added after the first n (for walkers leaving a directory). */
void pilot_ignore_truncate(struct pilot_ignore *ig, size_t n);
/* path relative to the root, without a trailing '/'. */
enum pilot_ignore_result pilot_ignore_match(const struct pilot_ignore *ig, const char *path, bool is_dir);

#endif
