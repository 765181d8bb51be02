/* The tar headers of a bundle, written by hand rather than through libarchive so that
 * every byte is ours to fix: ustar fields only, no owner names, no atime/ctime, no
 * locale-dependent charset conversion of names, and a pax header only when a path, link
 * target or size does not fit in ustar. */
#include <stdio.h>
#include <string.h>

#include "bundle-internal.h"

struct ustar {
	char name[100];
	char mode[8];
	char uid[8];
	char gid[8];
	char size[12];
	char mtime[12];
	char chksum[8];
	char typeflag;
	char linkname[100];
	char magic[6];
	char version[2];
	char uname[32];
	char gname[32];
	char devmajor[8];
	char devminor[8];
	char prefix[155];
	char pad[12];
};
_Static_assert(sizeof(struct ustar) == TAR_BLOCK, "ustar header is one block");

/* width-1 octal digits, zero-padded, then NUL. */
static void octal(char *field, size_t width, uint64_t v)
{
	for (size_t i = width - 1; i-- > 0;) {
		field[i] = (char)('0' + (v & 7));
		v >>= 3;
	}
	field[width - 1] = '\0';
}

static bool valid_utf8(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	while (*p) {
		size_t n;
		unsigned cp;
		if (*p < 0x80) {
			p++;
			continue;
		} else if ((*p & 0xe0) == 0xc0) {
			n = 1;
			cp = *p & 0x1f;
		} else if ((*p & 0xf0) == 0xe0) {
			n = 2;
			cp = *p & 0x0f;
		} else if ((*p & 0xf8) == 0xf0) {
			n = 3;
			cp = *p & 0x07;
		} else {
			return false;
		}
		p++;
		for (size_t i = 0; i < n; i++, p++) {
			if ((*p & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (*p & 0x3f);
		}
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
	}
	return true;
}

/* A pax record "LEN key=value\n", where LEN counts the whole record, itself included. */
static void pax_record(struct pilot_buf *b, const char *key, const char *value)
{
	size_t body = 1 + strlen(key) + 1 + strlen(value) + 1;
	size_t len = body + 1;
	for (;;) {
		char digits[32];
		size_t d = (size_t)snprintf(digits, sizeof(digits), "%zu", len);
		if (d + body == len)
			break;
		len = d + body;
	}
	pilot_buf_printf(b, "%zu %s=%s\n", len, key, value);
}

static void finish(struct ustar *h, char type, uint64_t size, unsigned mode, uint64_t mtime)
{
	octal(h->mode, sizeof(h->mode), mode);
	octal(h->uid, sizeof(h->uid), 0);
	octal(h->gid, sizeof(h->gid), 0);
	octal(h->size, sizeof(h->size), size);
	octal(h->mtime, sizeof(h->mtime), mtime);
	h->typeflag = type;
	memcpy(h->magic, "ustar", 6);
	memcpy(h->version, "00", 2);
	octal(h->devmajor, sizeof(h->devmajor), 0);
	octal(h->devminor, sizeof(h->devminor), 0);
	memset(h->chksum, ' ', sizeof(h->chksum));
	unsigned sum = 0;
	const unsigned char *p = (const unsigned char *)h;
	for (size_t i = 0; i < sizeof(*h); i++)
		sum += p[i];
	octal(h->chksum, 7, sum);
	h->chksum[7] = ' ';
}

static void put_block_padded(struct pilot_buf *out, const void *p, size_t n)
{
	static const char zeros[TAR_BLOCK];
	pilot_buf_append(out, p, n);
	if (n % TAR_BLOCK)
		pilot_buf_append(out, zeros, TAR_BLOCK - n % TAR_BLOCK);
}

void tar_header(struct pilot_buf *out, const char *path, enum pilot_bundle_type type, const char *target,
		uint64_t size, unsigned mode, uint64_t mtime)
{
	struct ustar h;
	memset(&h, 0, sizeof(h));
	_cleanup_free_ char *name = pilot_xasprintf("%s%s", path, type == PILOT_BUNDLE_DIR ? "/" : "");
	size_t len = strlen(name);
	bool pax_path = false;
	if (len <= sizeof(h.name)) {
		memcpy(h.name, name, len);
	} else {
		/* ustar's prefix + '/' + name, split at the first '/' that makes both fit. */
		size_t split = 0;
		for (size_t i = 1; i < len && i <= sizeof(h.prefix); i++) {
			if (name[i] == '/' && len - i - 1 <= sizeof(h.name) && len - i - 1 > 0) {
				split = i;
				break;
			}
		}
		if (split) {
			memcpy(h.prefix, name, split);
			memcpy(h.name, name + split + 1, len - split - 1);
		} else {
			pax_path = true;
			memcpy(h.name, name, sizeof(h.name));
		}
	}
	bool pax_link = target && strlen(target) > sizeof(h.linkname);
	if (target)
		memcpy(h.linkname, target, pax_link ? sizeof(h.linkname) : strlen(target));
	bool pax_size = size > TAR_MAX_OCTAL;
	if (pax_path || pax_link || pax_size) {
		_cleanup_buf_ struct pilot_buf pax = PILOT_BUF_INIT;
		if ((pax_path && !valid_utf8(name)) || (pax_link && !valid_utf8(target)))
			pax_record(&pax, "hdrcharset", "BINARY");
		if (pax_link)
			pax_record(&pax, "linkpath", target);
		if (pax_path)
			pax_record(&pax, "path", name);
		if (pax_size) {
			char v[32];
			snprintf(v, sizeof(v), "%llu", (unsigned long long)size);
			pax_record(&pax, "size", v);
		}
		struct ustar x;
		memset(&x, 0, sizeof(x));
		memcpy(x.name, "././@PaxHeader", sizeof("././@PaxHeader") - 1);
		finish(&x, 'x', pax.len, 0644, mtime);
		pilot_buf_append(out, &x, sizeof(x));
		put_block_padded(out, pax.data, pax.len);
	}
	char tf = type == PILOT_BUNDLE_DIR ? '5' : type == PILOT_BUNDLE_SYMLINK ? '2' : '0';
	finish(&h, tf, pax_size ? 0 : size, mode, mtime);
	pilot_buf_append(out, &h, sizeof(h));
}
