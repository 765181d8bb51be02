/* Symlink containment: where a symlink of a tree leads, resolved the way the kernel would
 * resolve it once the tree is on disk (following the tree's other symlinks, '..' after a
 * symlink going up from where the symlink led), but without touching any filesystem: the
 * tree is described by a lookup function, so the packer can check the bundle it is about
 * to write and the extractor the bundle it has written so far. A purely lexical check is
 * not enough: with a/b -> "." the link a/c -> "b/../.." looks like it stays at the root,
 * yet b/.. is the parent of a, and one more ".." leaves the tree. */
#include <string.h>

#include "bundle-internal.h"

/* The kernel's limit on symlinks followed in one resolution. */
#define MAX_LINKS 40

int bundle_link_escapes(const char *linkpath, const char *target, tree_lookup_fn lookup, void *ud,
			uint64_t *budget)
{
	if (target[0] == '/')
		return 1;
	_cleanup_buf_ struct pilot_buf cur = PILOT_BUF_INIT;  /* where we are: a directory of the tree */
	_cleanup_buf_ struct pilot_buf pend = PILOT_BUF_INIT; /* what is left to walk */
	_cleanup_buf_ struct pilot_buf cand = PILOT_BUF_INIT;
	const char *slash = strrchr(linkpath, '/');
	if (slash)
		pilot_buf_append(&cur, linkpath, (size_t)(slash - linkpath));
	pilot_buf_puts(&pend, target);
	int links = 0;
	size_t i = 0;
	while (i <= pend.len) {
		if (*budget == 0)
			return -1;
		(*budget)--;
		const char *c = pend.data + i;
		const char *e = memchr(c, '/', pend.len - i);
		size_t len = e ? (size_t)(e - c) : pend.len - i;
		size_t next = i + len + 1;
		bool last = !e;
		if (!len || (len == 1 && c[0] == '.')) {
			i = next;
			continue;
		}
		if (len == 2 && c[0] == '.' && c[1] == '.') {
			if (!cur.len)
				return 1;
			char *up = memrchr(cur.data, '/', cur.len);
			pilot_buf_truncate(&cur, up ? (size_t)(up - cur.data) : 0);
			i = next;
			continue;
		}
		if (last)
			return 0; /* the final component is not followed: a link there is checked itself */
		pilot_buf_reset(&cand);
		if (cur.len) {
			pilot_buf_append(&cand, cur.data, cur.len);
			pilot_buf_putc(&cand, '/');
		}
		pilot_buf_append(&cand, c, len);
		enum pilot_bundle_type type;
		const char *t = NULL;
		if (lookup(ud, cand.data, &type, &t) && type == PILOT_BUNDLE_SYMLINK && t) {
			if (++links > MAX_LINKS)
				return -1;
			if (t[0] == '/')
				return 1;
			/* Walk the link's target from the directory holding the link (cur), then
			 * the rest of the path. */
			_cleanup_buf_ struct pilot_buf np = PILOT_BUF_INIT;
			pilot_buf_puts(&np, t);
			pilot_buf_putc(&np, '/');
			pilot_buf_append(&np, pend.data + next, pend.len - next);
			pilot_buf_free(&pend);
			pend = np;
			np = (struct pilot_buf)PILOT_BUF_INIT;
			i = 0;
			continue;
		}
		pilot_buf_reset(&cur);
		pilot_buf_append(&cur, cand.data, cand.len);
		i = next;
	}
	return 0;
}
