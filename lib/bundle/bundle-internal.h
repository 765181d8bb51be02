/* Internal interfaces between the files of lib/bundle: the scanned entry list, the tar
 * header encoder and the symlink containment check shared by packing and extraction. */
#ifndef PILOT_BUNDLE_INTERNAL_H
#define PILOT_BUNDLE_INTERNAL_H

#include "pilot/bundle.h"

/* One entry found by the scan. */
struct bentry {
	char *path;
	char *target;    /* symlinks */
	uint64_t size;   /* files */
	enum pilot_bundle_type type;
	bool exec;       /* any execute bit */
	bool skipped;    /* a symlink left out (skip_outside_links) */
};

struct scan {
	struct bentry *v;  /* sorted bytewise by path */
	size_t n, cap;
	int root_fd;
	int64_t start_ms;
};

/* Walk opts->dir, applying the ignore rules, and check the symlinks. */
int bundle_scan(const struct pilot_pack_opts *opts, struct scan *s);
void bundle_scan_free(struct scan *s);
/* Call the progress callback if 100 ms have passed since the last call (or force). */
void bundle_progress(const struct pilot_pack_opts *opts, struct pilot_pack_progress *p, int64_t start_ms,
		     int64_t *last_ms, bool force);

/* Append the header block(s) for an entry to out: a ustar header, preceded by a pax
 * header when the path, the link target or the size does not fit. */
void tar_header(struct pilot_buf *out, const char *path, enum pilot_bundle_type type, const char *target,
		uint64_t size, unsigned mode, uint64_t mtime);
#define TAR_BLOCK 512
#define TAR_RECORD 10240
#define TAR_MAX_OCTAL UINT64_C(077777777777)

/* Does the symlink at linkpath with target lead outside the root? Resolution follows
 * the tree's own symlinks met on the way (not the final component: that link is checked
 * on its own), as the kernel would once the tree is on disk; missing components are taken
 * as directories. lookup gives the type and, for a symlink, the target of a path of the
 * tree (false when the path is not in it). budget bounds the work across calls.
 * Returns 0 inside, 1 outside, -1 too many levels of links or budget spent. */
typedef bool (*tree_lookup_fn)(void *ud, const char *path, enum pilot_bundle_type *type, const char **target);
int bundle_link_escapes(const char *linkpath, const char *target, tree_lookup_fn lookup, void *ud,
			uint64_t *budget);

#endif
