/* Packing: after the scan, stream the tar (headers from tar.c, file contents read in
 * chunks straight into the tar buffer) through zlib's raw deflate wrapped in a gzip header
 * and trailer of our own, hashing the compressed bytes on the way out. The deflate input
 * is always cut into the same fixed-size pieces, and pieces that look random are stored
 * rather than compressed, decided by their bytes alone: the output depends only on the
 * tree. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <zlib.h>

#include "bundle-internal.h"

#define IN_CHUNK (1u << 20)
#define OUT_CHUNK (256u << 10)

const char *pilot_bundle_type_name(enum pilot_bundle_type t)
{
	return t == PILOT_BUNDLE_DIR ? "dir" : t == PILOT_BUNDLE_SYMLINK ? "symlink" : "file";
}

static unsigned entry_mode(const struct bentry *e)
{
	return e->type == PILOT_BUNDLE_SYMLINK ? 0777 : e->type == PILOT_BUNDLE_DIR || e->exec ? 0755 : 0644;
}

static uint64_t padded(uint64_t n)
{
	return (n + TAR_BLOCK - 1) / TAR_BLOCK * TAR_BLOCK;
}

static int source_date_epoch(uint64_t *mtime)
{
	const char *v = getenv("SOURCE_DATE_EPOCH");
	*mtime = 0;
	if (!v || !*v)
		return 0;
	int64_t t;
	if (pilot_parse_int64(v, 0, (int64_t)TAR_MAX_OCTAL, &t) < 0)
		return pilot_error_set(PILOT_EINVALID, "invalid SOURCE_DATE_EPOCH '%s': expected seconds since 1970",
				       v);
	*mtime = (uint64_t)t;
	return 0;
}

/* Sizes of the tar stream and counts, from the scan alone. */
static void totals(const struct scan *s, struct pilot_bundle_info *info, uint64_t mtime)
{
	_cleanup_buf_ struct pilot_buf hdr = PILOT_BUF_INIT;
	uint64_t total = 0;
	memset(info, 0, sizeof(*info));
	for (size_t i = 0; i < s->n; i++) {
		const struct bentry *e = &s->v[i];
		if (e->skipped)
			continue;
		pilot_buf_reset(&hdr);
		tar_header(&hdr, e->path, e->type, e->target, e->size, entry_mode(e), mtime);
		total += hdr.len + padded(e->size);
		info->files += e->type == PILOT_BUNDLE_FILE;
		info->dirs += e->type == PILOT_BUNDLE_DIR;
		info->symlinks += e->type == PILOT_BUNDLE_SYMLINK;
		info->data_bytes += e->size;
	}
	total += 2 * TAR_BLOCK;
	info->uncompressed_size = (total + TAR_RECORD - 1) / TAR_RECORD * TAR_RECORD;
}

static ssize_t find_entry(const struct scan *s, const char *path, size_t len)
{
	size_t lo = 0, hi = s->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const char *p = s->v[mid].path;
		int c = strncmp(p, path, len);
		if (!c && p[len])
			c = 1;
		if (!c)
			return (ssize_t)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/* The error for a tree over the limit names what takes the room, so the user knows what
 * to put in .pilotignore: the five largest directories and files. */
static int too_large(const struct scan *s, uint64_t size, uint64_t max)
{
	_cleanup_free_ uint64_t *dsz = pilot_xcalloc(s->n ? s->n : 1, sizeof(*dsz));
	for (size_t i = 0; i < s->n; i++) {
		const struct bentry *e = &s->v[i];
		if (e->type != PILOT_BUNDLE_FILE)
			continue;
		for (const char *p = e->path; (p = strchr(p, '/')); p++) {
			ssize_t j = find_entry(s, e->path, (size_t)(p - e->path));
			if (j >= 0)
				dsz[j] += e->size;
		}
	}
	_cleanup_buf_ struct pilot_buf top = PILOT_BUF_INIT;
	_cleanup_free_ bool *taken = pilot_xcalloc(s->n ? s->n : 1, sizeof(*taken));
	for (int k = 0; k < 5; k++) {
		ssize_t best = -1;
		uint64_t bsz = 0;
		for (size_t i = 0; i < s->n; i++) {
			const struct bentry *e = &s->v[i];
			uint64_t sz = e->type == PILOT_BUNDLE_DIR ? dsz[i] : e->size;
			if (!taken[i] && sz > bsz) {
				best = (ssize_t)i;
				bsz = sz;
			}
		}
		if (best < 0)
			break;
		taken[best] = true;
		char h[32];
		pilot_format_size(bsz, h, sizeof(h));
		const struct bentry *e = &s->v[best];
		pilot_buf_printf(&top, "%s'%s%s' %s", k ? ", " : "", e->path, e->type == PILOT_BUNDLE_DIR ? "/" : "", h);
	}
	char hs[32], hm[32];
	pilot_format_size(size, hs, sizeof(hs));
	pilot_format_size(max, hm, sizeof(hm));
	return pilot_error_set(PILOT_ELIMIT,
			       "the bundle would be %s, more than max_bundle_size (%s); largest: %s; add what the "
			       "job does not need to .pilotignore, or raise the limit with --max-size",
			       hs, hm, pilot_buf_str(&top));
}

struct writer {
	int fd;
	int level, cur_level;
	unsigned char *in;
	size_t in_len;
	unsigned char *out;
	z_stream z;
	bool z_ready;
	uint32_t crc;
	uint64_t tar_bytes;
	uint64_t compressed;
	EVP_MD_CTX *md;
};

static int emit(struct writer *w, const void *p, size_t n)
{
	EVP_DigestUpdate(w->md, p, n);
	w->compressed += n;
	if (w->fd >= 0) {
		int r = pilot_write_all(w->fd, p, n);
		if (r < 0)
			return pilot_error_errno(PILOT_EIO, -r, "cannot write the bundle");
	}
	return 0;
}

/* Does a 16 KiB piece look like random bytes (compressed or encrypted data: images,
 * archives, weights)? deflate spends most of its time on such data finding nothing, so
 * it is stored instead. The test: a flat byte histogram, a chi-square against the uniform
 * distribution under 400 (random data gives 255 +- 23; text gives thousands). Only the
 * data decides, so the bytes stay deterministic. */
#define PIECE 16384
static bool looks_random(const unsigned char *p)
{
	uint32_t count[256] = { 0 };
	for (size_t i = 0; i < PIECE; i++)
		count[p[i]]++;
	uint64_t sum = 0;
	for (int k = 0; k < 256; k++) {
		int64_t d = (int64_t)count[k] - PIECE / 256;
		sum += (uint64_t)(d * d);
	}
	return sum <= UINT64_C(400) * (PIECE / 256);
}

static int set_level(struct writer *w, int level)
{
	w->z.next_in = w->in;
	w->z.avail_in = 0;
	for (;;) {
		w->z.next_out = w->out;
		w->z.avail_out = OUT_CHUNK;
		/* Ends the current block first; Z_BUF_ERROR asks for more room. */
		int zr = deflateParams(&w->z, level, Z_DEFAULT_STRATEGY);
		size_t have = OUT_CHUNK - w->z.avail_out;
		if (have) {
			int r = emit(w, w->out, have);
			if (r < 0)
				return r;
		}
		if (zr == Z_OK)
			break;
		if (zr != Z_BUF_ERROR)
			return pilot_error_set(PILOT_EFAIL, "cannot compress the bundle: deflateParams failed");
	}
	w->cur_level = level;
	return 0;
}

static int deflate_some(struct writer *w, const unsigned char *p, size_t n, int flush)
{
	w->z.next_in = (unsigned char *)p;
	w->z.avail_in = (uInt)n;
	int zr;
	do {
		w->z.next_out = w->out;
		w->z.avail_out = OUT_CHUNK;
		zr = deflate(&w->z, flush);
		if (zr == Z_STREAM_ERROR)
			return pilot_error_set(PILOT_EFAIL, "cannot compress the bundle: deflate failed");
		size_t have = OUT_CHUNK - w->z.avail_out;
		if (have) {
			int r = emit(w, w->out, have);
			if (r < 0)
				return r;
		}
	} while (w->z.avail_out == 0 || (flush == Z_FINISH && zr != Z_STREAM_END));
	return 0;
}

/* Compress the tar buffer, piece by piece: random-looking pieces at level 0 (stored),
 * the rest at the bundle level; a short last piece keeps the level it finds. */
static int compress_chunk(struct writer *w, int flush)
{
	w->crc = (uint32_t)crc32(w->crc, w->in, (uInt)w->in_len);
	w->tar_bytes += w->in_len;
	int r = 0;
	for (size_t off = 0; off < w->in_len && r >= 0; off += PIECE) {
		size_t n = w->in_len - off < PIECE ? w->in_len - off : PIECE;
		if (n == PIECE) {
			int want = looks_random(w->in + off) ? 0 : w->level;
			if (want != w->cur_level)
				r = set_level(w, want);
		}
		if (r >= 0)
			r = deflate_some(w, w->in + off, n, Z_NO_FLUSH);
	}
	if (r >= 0 && flush != Z_NO_FLUSH)
		r = deflate_some(w, w->in, 0, flush);
	w->in_len = 0;
	return r;
}

static int put(struct writer *w, const void *p, size_t n)
{
	const unsigned char *c = p;
	while (n) {
		size_t k = IN_CHUNK - w->in_len < n ? IN_CHUNK - w->in_len : n;
		memcpy(w->in + w->in_len, c, k);
		w->in_len += k;
		c += k;
		n -= k;
		if (w->in_len == IN_CHUNK) {
			int r = compress_chunk(w, Z_NO_FLUSH);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

static int put_file(struct writer *w, const struct scan *s, const struct bentry *e,
		    struct pilot_pack_progress *prog, const struct pilot_pack_opts *o, int64_t *last_ms)
{
	_cleanup_close_ int fd = openat(s->root_fd, e->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return pilot_error_errno(PILOT_EIO, errno, "cannot read '%s'", e->path);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return pilot_error_errno(PILOT_EIO, errno, "cannot read '%s'", e->path);
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != e->size)
		return pilot_error_set(PILOT_EIO, "'%s' changed while packing", e->path);
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	uint64_t left = e->size;
	while (left) {
		size_t room = IN_CHUNK - w->in_len;
		size_t want = left < room ? (size_t)left : room;
		ssize_t n = read(fd, w->in + w->in_len, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return pilot_error_errno(PILOT_EIO, errno, "cannot read '%s'", e->path);
		if (n == 0)
			return pilot_error_set(PILOT_EIO, "'%s' changed while packing: it got shorter", e->path);
		w->in_len += (size_t)n;
		left -= (uint64_t)n;
		prog->bytes += (uint64_t)n;
		if (w->in_len == IN_CHUNK) {
			int r = compress_chunk(w, Z_NO_FLUSH);
			if (r < 0)
				return r;
			bundle_progress(o, prog, s->start_ms, last_ms, false);
		}
	}
	static const char zeros[TAR_BLOCK];
	return put(w, zeros, padded(e->size) - e->size);
}

static void writer_free(struct writer *w)
{
	if (w->z_ready)
		deflateEnd(&w->z);
	EVP_MD_CTX_free(w->md);
	free(w->in);
	free(w->out);
}

static void le32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static int write_bundle(const struct pilot_pack_opts *o, const struct scan *s, int out_fd, uint64_t mtime,
			struct pilot_bundle_info *info)
{
	int level = o->level > 0 && o->level <= 9 ? o->level : PILOT_BUNDLE_LEVEL;
	struct writer w = { .fd = out_fd, .level = level, .cur_level = level };
	w.in = pilot_xmalloc(IN_CHUNK);
	w.out = pilot_xmalloc(OUT_CHUNK);
	w.md = EVP_MD_CTX_new();
	if (!w.md || EVP_DigestInit_ex(w.md, EVP_sha256(), NULL) != 1) {
		writer_free(&w);
		return pilot_error_set(PILOT_EFAIL, "cannot start sha256");
	}
	/* Raw deflate, window and memory as zlib's defaults: gzip's framing is ours. */
	if (deflateInit2(&w.z, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
		writer_free(&w);
		return pilot_error_set(PILOT_EFAIL, "cannot start deflate");
	}
	w.z_ready = true;
	w.crc = (uint32_t)crc32(0, NULL, 0);

	/* gzip member header: no FNAME, MTIME 0, XFL 0, OS 3 whatever the machine. */
	static const unsigned char gz_header[10] = { 0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3 };
	int r = emit(&w, gz_header, sizeof(gz_header));

	struct pilot_pack_progress prog = {
		.phase = PILOT_PACK_WRITING, .files_total = info->files + info->symlinks, .bytes_total = info->data_bytes,
	};
	int64_t last_ms = 0;
	_cleanup_buf_ struct pilot_buf hdr = PILOT_BUF_INIT;
	for (size_t i = 0; i < s->n && r >= 0; i++) {
		const struct bentry *e = &s->v[i];
		if (e->skipped)
			continue;
		pilot_buf_reset(&hdr);
		tar_header(&hdr, e->path, e->type, e->target, e->size, entry_mode(e), mtime);
		r = put(&w, hdr.data, hdr.len);
		if (r >= 0 && e->type == PILOT_BUNDLE_FILE)
			r = put_file(&w, s, e, &prog, o, &last_ms);
		if (e->type != PILOT_BUNDLE_DIR)
			prog.files++;
		bundle_progress(o, &prog, s->start_ms, &last_ms, false);
	}
	if (r >= 0) {
		/* Two zero blocks end the archive; tar pads to its 20-block record. */
		uint64_t end = w.tar_bytes + w.in_len + 2 * TAR_BLOCK;
		uint64_t rec = (end + TAR_RECORD - 1) / TAR_RECORD * TAR_RECORD;
		static const char zeros[TAR_BLOCK];
		for (uint64_t k = 0; k < 2 * TAR_BLOCK + rec - end && r >= 0; k += TAR_BLOCK)
			r = put(&w, zeros, TAR_BLOCK);
	}
	if (r >= 0)
		r = compress_chunk(&w, Z_FINISH);
	if (r >= 0) {
		unsigned char trailer[8];
		le32(trailer, w.crc);
		le32(trailer + 4, (uint32_t)w.tar_bytes);
		r = emit(&w, trailer, sizeof(trailer));
	}
	if (r >= 0 && w.tar_bytes != info->uncompressed_size)
		r = pilot_error_set(PILOT_EFAIL, "internal error: wrote %llu tar bytes, expected %llu",
				    (unsigned long long)w.tar_bytes, (unsigned long long)info->uncompressed_size);
	if (r >= 0) {
		unsigned char md[EVP_MAX_MD_SIZE];
		unsigned mdlen = 0;
		EVP_DigestFinal_ex(w.md, md, &mdlen);
		for (unsigned k = 0; k < mdlen && k < 32; k++)
			snprintf(info->sha256 + 2 * k, 3, "%02x", md[k]);
		info->compressed_size = w.compressed;
		prog.done = true;
		bundle_progress(o, &prog, s->start_ms, &last_ms, true);
	}
	writer_free(&w);
	return r < 0 ? r : 0;
}

int pilot_bundle_pack(const struct pilot_pack_opts *o, int out_fd, struct pilot_bundle_info *info)
{
	struct pilot_bundle_info local;
	if (!info)
		info = &local;
	memset(info, 0, sizeof(*info));
	uint64_t mtime;
	int r = source_date_epoch(&mtime);
	if (r < 0)
		return r;
	struct scan s;
	r = bundle_scan(o, &s);
	if (r >= 0) {
		totals(&s, info, mtime);
		uint64_t max = o->max_size ? o->max_size : PILOT_BUNDLE_DEFAULT_MAX_SIZE;
		if (info->uncompressed_size > max)
			r = too_large(&s, info->uncompressed_size, max);
	}
	if (r >= 0)
		r = write_bundle(o, &s, out_fd, mtime, info);
	bundle_scan_free(&s);
	return r;
}

int pilot_bundle_list(const struct pilot_pack_opts *o,
		      int (*fn)(const struct pilot_bundle_entry *e, void *userdata), void *userdata,
		      struct pilot_bundle_info *info)
{
	struct pilot_bundle_info local;
	if (!info)
		info = &local;
	memset(info, 0, sizeof(*info));
	uint64_t mtime;
	int r = source_date_epoch(&mtime);
	if (r < 0)
		return r;
	struct scan s;
	r = bundle_scan(o, &s);
	if (r >= 0) {
		totals(&s, info, mtime);
		for (size_t i = 0; i < s.n && r == 0; i++) {
			const struct bentry *e = &s.v[i];
			if (e->skipped)
				continue;
			struct pilot_bundle_entry be = {
				.path = e->path, .type = e->type, .size = e->size, .mode = entry_mode(e), .target = e->target,
			};
			r = fn(&be, userdata);
		}
	}
	bundle_scan_free(&s);
	return r;
}
