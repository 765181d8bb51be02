/* blob: content-addressed storage of immutable byte strings (bundles, artifacts) in a
 * local directory, named by their sha256:
 *
 *     DIR/sha256/ab/cdef...      the blob whose hash is abcdef...
 *     DIR/tmp/                   blobs being written (removed at open when abandoned)
 *
 * A blob appears under its name only once complete: it is written to a temp file,
 * fsynced, its hash checked, then renamed into place and the directory fsynced, so a
 * reader never sees a partial blob and a crash leaves at most a stray temp file.
 * Several processes may share one directory. (An S3-compatible backend comes later,
 * behind the same calls.) */
#ifndef PILOT_BLOB_H
#define PILOT_BLOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pilot/util.h"

struct pilot_blob_store;

/* Open (creating with mode 0700) the blob directory and remove temp files no live
 * writer holds. */
int pilot_blob_open(const char *dir, struct pilot_blob_store **out);
void pilot_blob_close(struct pilot_blob_store *bs);
PILOT_DEFINE_CLEANUP(struct pilot_blob_store, pilot_blob_close)

/* 1 when the blob is present, 0 when not, PILOT_EINVALID for a malformed hash. */
int pilot_blob_has(struct pilot_blob_store *bs, const char *sha256);
/* Store the bytes read from fd until EOF. expect_sha256 (NULL = any) must match or the
 * call fails with PILOT_EINVALID and stores nothing. sha256_out (NULL = not wanted)
 * gets the hash and size_out the length. Storing a blob that exists is a no-op. */
int pilot_blob_put_fd(struct pilot_blob_store *bs, int fd, const char *expect_sha256, char sha256_out[65],
		      uint64_t *size_out);
int pilot_blob_put_buf(struct pilot_blob_store *bs, const void *data, size_t len, const char *expect_sha256,
		       char sha256_out[65]);
/* An fd open for reading (O_CLOEXEC) and the size; PILOT_ENOTFOUND when absent. */
int pilot_blob_open_read(struct pilot_blob_store *bs, const char *sha256, int *fd, uint64_t *size_out);
/* The path a blob has (whether or not it exists); caller frees. */
char *pilot_blob_path(struct pilot_blob_store *bs, const char *sha256);
/* Remove a blob (a missing one is fine). For garbage collection. */
int pilot_blob_remove(struct pilot_blob_store *bs, const char *sha256);

#endif
