/* pilot artifacts RUN: the files a run's job left (the spec's artifacts: globs), with
 * their sizes; --download DIR fetches them. Paths come from the server and are not
 * trusted: every component is checked, directories are opened one at a time without
 * following symlinks, and each file is written to a temporary name, checked against
 * its recorded size and sha256, and renamed into place, so DIR only ever holds
 * complete files and nothing is written outside it. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "runs.h"
#include "pilot/bundle.h"
#include "pilot/term.h"

struct opts {
	const char *download;
	int64_t attempt;
	bool all_attempts;
	const char *output;
};

static const struct pilot_opt options[] = {
	{ OPT_STRING, 'd', "download", "DIR", "download the artifacts into DIR (created if needed)",
	  offsetof(struct opts, download), "dir" },
	{ OPT_INT, 'a', "attempt", "N", "the artifacts of attempt N (default: the latest of each path)",
	  offsetof(struct opts, attempt), NULL },
	{ OPT_FLAG, 0, "all-attempts", NULL, "list the artifacts of every attempt", offsetof(struct opts, all_attempts),
	  NULL },
	{ OPT_STRING, 'o', "output", "FORMAT", "table (default), json or yaml", offsetof(struct opts, output),
	  "table json yaml" },
	OPT_END_ROW,
};

/* A pattern without '/' matches the file name at any depth, as in .gitignore. */
static bool selected(const char *pattern, const char *path)
{
	if (!pattern)
		return true;
	if (pilot_glob_match(pattern, path, true))
		return true;
	if (!strchr(pattern, '/')) {
		const char *base = strrchr(path, '/');
		return pilot_glob_match(pattern, base ? base + 1 : path, true);
	}
	/* "outputs/" or "outputs" selects what is under the directory. */
	size_t n = strlen(pattern);
	while (n && pattern[n - 1] == '/')
		n--;
	return n && !strncmp(path, pattern, n) && path[n] == '/';
}

/* Relative, '/'-separated, no empty, "." or ".." component, no NUL or control bytes. */
static bool safe_path(const char *p)
{
	if (!*p || *p == '/' || strlen(p) > 4096)
		return false;
	for (const char *c = p; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == '\\')
			return false;
	const char *s = p;
	for (;;) {
		const char *e = strchr(s, '/');
		size_t n = e ? (size_t)(e - s) : strlen(s);
		if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.') || n > 255)
			return false;
		if (!e)
			return true;
		s = e + 1;
	}
}

/* Open (creating) the directory part of path below dirfd, never following a symlink.
 * *leaf gets the last component. Returns an fd or a negative code. */
static int open_parent(int dirfd, const char *path, const char **leaf)
{
	int fd = dup(dirfd);
	if (fd < 0)
		return pilot_error_errno(PILOT_EIO, errno, "cannot open the download directory");
	const char *s = path;
	for (;;) {
		const char *e = strchr(s, '/');
		if (!e) {
			*leaf = s;
			return fd;
		}
		_cleanup_free_ char *comp = pilot_xstrndup(s, (size_t)(e - s));
		if (mkdirat(fd, comp, 0755) < 0 && errno != EEXIST) {
			int err = errno;
			close(fd);
			return pilot_error_errno(PILOT_EIO, err, "cannot create directory for '%s'", path);
		}
		int next = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		int err = errno;
		close(fd);
		if (next < 0)
			return pilot_error_errno(PILOT_EIO, err, "cannot open directory '%.*s' for '%s'", (int)(e - path), path,
						 path);
		fd = next;
		s = e + 1;
	}
}

static int download_one(struct pilot_api *api, const char *run_id, const struct pilot_artifact *a, int dirfd)
{
	if (!safe_path(a->path))
		return pilot_error_set(PILOT_EINVALID, "refusing artifact path '%s': not a plain relative path", a->path);
	const char *leaf = a->path;
	_cleanup_close_ int pfd = open_parent(dirfd, a->path, &leaf);
	if (pfd < 0)
		return pfd;
	_cleanup_close_ int in = -1;
	int r = pilot_api_get_artifact(api, run_id, a->path, a->attempt, &in, NULL);
	if (r < 0)
		return r;
	char tmp[64];
	char hex[17];
	pilot_random_hex(hex, 8);
	snprintf(tmp, sizeof(tmp), ".pilot-download-%s", hex);
	_cleanup_close_ int out = openat(pfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (out < 0)
		return pilot_error_errno(PILOT_EIO, errno, "cannot create a file for '%s'", a->path);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	uint64_t total = 0;
	char buf[65536];
	for (;;) {
		ssize_t n = read(in, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = pilot_error_errno(PILOT_EIO, errno, "cannot read artifact '%s'", a->path);
			break;
		}
		if (n == 0)
			break;
		EVP_DigestUpdate(md, buf, (size_t)n);
		total += (uint64_t)n;
		if (pilot_write_all(out, buf, (size_t)n) < 0) {
			r = pilot_error_errno(PILOT_EIO, errno, "cannot write '%s'", a->path);
			break;
		}
	}
	unsigned char dig[32];
	unsigned dlen = 0;
	EVP_DigestFinal_ex(md, dig, &dlen);
	EVP_MD_CTX_free(md);
	char got[65];
	for (int i = 0; i < 32; i++)
		snprintf(got + 2 * i, 3, "%02x", dig[i]);
	if (r == 0 && (total != a->size || (a->sha256[0] && strcmp(got, a->sha256))))
		r = pilot_error_set(PILOT_EIO, "artifact '%s' arrived damaged (%llu bytes, sha256 %.12s; expected %llu, %.12s)",
				    a->path, (unsigned long long)total, got, (unsigned long long)a->size, a->sha256);
	if (r == 0 && fsync(out) < 0)
		r = pilot_error_errno(PILOT_EIO, errno, "cannot write '%s'", a->path);
	if (r == 0 && renameat(pfd, tmp, pfd, leaf) < 0)
		r = pilot_error_errno(PILOT_EIO, errno, "cannot put '%s' in place", a->path);
	if (r < 0)
		unlinkat(pfd, tmp, 0);
	return r;
}

static void print_table(struct pilot_ctx *ctx, const struct pilot_artifact_list *sel)
{
	static const char *const h[] = { "PATH", "SIZE", "ATTEMPT", "SHA256" };
	struct pilot_table *t = pilot_table_new(ARRAY_SIZE(h), h);
	uint64_t total = 0;
	for (size_t i = 0; i < sel->n; i++) {
		char size[32], att[16], sha[16];
		pilot_format_size(sel->items[i].size, size, sizeof(size));
		snprintf(att, sizeof(att), "%d", sel->items[i].attempt);
		snprintf(sha, sizeof(sha), "%.12s", sel->items[i].sha256);
		const char *cells[] = { sel->items[i].path, size, att, sha };
		pilot_table_add(t, cells);
		total += sel->items[i].size;
	}
	_cleanup_buf_ struct pilot_buf b = PILOT_BUF_INIT;
	pilot_table_render(t, pilot_term_width(1), &b);
	pilot_table_free(t);
	fputs(pilot_buf_str(&b), stdout);
	if (ctx->stdout_tty) {
		char size[32];
		pilot_format_size(total, size, sizeof(size));
		cmd_notef(ctx, "%zu file%s, %s", sel->n, sel->n == 1 ? "" : "s", size);
	}
}

static int run(struct pilot_ctx *ctx, void *optsp, int argc, char **argv)
{
	struct opts *o = optsp;
	const char *pattern = argc > 1 ? argv[1] : NULL;
	enum output_format fmt;
	int st = output_parse(ctx, o->output, "table", &fmt);
	if (st)
		return st;
	if (o->attempt < 0)
		return cmd_usage_error(ctx, "--attempt must be 1 or more");
	if (o->attempt && o->all_attempts)
		return cmd_usage_error(ctx, "--attempt and --all-attempts do not go together");
	if (o->download && o->all_attempts)
		return cmd_usage_error(ctx, "--download takes the latest of each path (or --attempt N)");

	_cleanup_api_ struct pilot_api *api = NULL;
	struct pilot_run r = { 0 };
	if ((st = runs_open_run(ctx, argv[0], &api, &r)))
		return st;
	if (o->attempt > r.attempt_count) {
		/* As pilot metrics says: an attempt that never was is not an empty list. */
		cmd_errorf(ctx, "run %s has no attempt %lld", r.id, (long long)o->attempt);
		pilot_run_clear(&r);
		return EXIT_FAIL;
	}
	struct pilot_artifact_list l = { 0 };
	if (pilot_api_list_artifacts(api, r.id, (int)o->attempt, &l) < 0) {
		pilot_run_clear(&r);
		return cmd_fail(ctx, EXIT_FAIL);
	}
	/* Keep what the pattern selects and, unless every attempt was asked for, the
	 * latest attempt of each path (the list is by attempt, then path). */
	struct pilot_artifact_list sel = { .items = pilot_xcalloc(l.n + 1, sizeof(*l.items)) };
	for (size_t i = 0; i < l.n; i++) {
		if (!selected(pattern, l.items[i].path))
			continue;
		bool newer = false;
		for (size_t k = i + 1; k < l.n && !o->all_attempts; k++)
			if (!strcmp(l.items[k].path, l.items[i].path))
				newer = true;
		if (!newer)
			sel.items[sel.n++] = l.items[i];
	}
	int status = EXIT_OK;
	if (o->download) {
		if (pilot_mkdir_p(o->download, 0755) < 0) {
			status = cmd_fail(ctx, EXIT_FAIL);
			goto out;
		}
		_cleanup_close_ int dirfd = open(o->download, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dirfd < 0) {
			pilot_error_errno(PILOT_EIO, errno, "cannot open '%s'", o->download);
			status = cmd_fail(ctx, EXIT_FAIL);
			goto out;
		}
		uint64_t bytes = 0;
		size_t ok = 0;
		for (size_t i = 0; i < sel.n; i++) {
			if (download_one(api, r.id, &sel.items[i], dirfd) < 0) {
				cmd_fail(ctx, EXIT_FAIL);
				status = EXIT_FAIL;
				continue;
			}
			printf("%s/%s\n", o->download, sel.items[i].path);
			bytes += sel.items[i].size;
			ok++;
		}
		char size[32];
		pilot_format_size(bytes, size, sizeof(size));
		if (!sel.n)
			cmd_notef(ctx, "run %s has no artifacts%s", r.id, pattern ? " matching the pattern" : "");
		else if (ctx->stderr_tty || ctx->verbose)
			cmd_notef(ctx, "downloaded %zu file%s (%s) into %s", ok, ok == 1 ? "" : "s", size, o->download);
		goto out;
	}
	if (fmt != OUTPUT_TEXT) {
		output_value(pilot_artifact_list_to_json(&sel), fmt);
		goto out;
	}
	if (!sel.n) {
		if (ctx->stdout_tty)
			cmd_notef(ctx, "run %s has no artifacts%s", r.id, pattern ? " matching the pattern" : "");
		goto out;
	}
	print_table(ctx, &sel);
out:
	/* sel borrows l's items. */
	free(sel.items);
	pilot_artifact_list_clear(&l);
	pilot_run_clear(&r);
	return status;
}

const struct pilot_cmd cmd_artifacts = {
	.name = "artifacts",
	.summary = "list or download the files a run left",
	.args = "RUN [PATTERN]",
	.description =
		"Lists the artifacts of a run (what its spec's artifacts: globs collected after\n"
		"the job), the latest attempt's copy of each path, with sizes. PATTERN narrows\n"
		"them: a glob matched against the path ('outputs/*.csv'), or, without a '/', the\n"
		"file name at any depth ('*.pt'), or a directory ('outputs/'). --download DIR\n"
		"writes them under DIR, keeping their paths; each file is checked against its\n"
		"recorded size and sha256 and appears complete or not at all; no path can lead\n"
		"outside DIR. The paths written are printed, one per line.",
	.opts = options,
	.opts_size = sizeof(struct opts),
	.min_args = 1,
	.max_args = 2,
	.flags = CMD_NEEDS_CONFIG,
	.run = run,
	.complete_args = "run",
};
