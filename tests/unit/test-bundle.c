/* Unit tests for lib/bundle: glob and ignore semantics, what goes in a bundle, its bytes
 * being the same whatever the umask, mtimes and modes, symlink containment, the size
 * limit's message, and extraction limits and refusals with a sentinel beside the target
 * that must not change. (git agreement and crafted attack archives: tests/e2e/t02*.) */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <cmocka.h>

#include "pilot/bundle.h"
#include "../../lib/bundle/bundle-internal.h"

/* ---- helpers ---------------------------------------------------------------- */

static char *tmp_new(void)
{
	const char *base = getenv("TMPDIR");
	char *t = pilot_xasprintf("%s/pilot-test-bundle.XXXXXX", base && *base ? base : "/tmp");
	assert_non_null(mkdtemp(t));
	return t;
}

static void put(const char *root, const char *rel, const char *content, mode_t mode)
{
	_cleanup_free_ char *p = pilot_path_join(root, rel);
	_cleanup_free_ char *dir = pilot_xstrdup(p);
	*strrchr(dir, '/') = '\0';
	assert_int_equal(pilot_mkdir_p(dir, 0755), 0);
	assert_int_equal(pilot_write_file_atomic(p, content, strlen(content), mode), 0);
}

static void mkdirs(const char *root, const char *rel)
{
	_cleanup_free_ char *p = pilot_path_join(root, rel);
	assert_int_equal(pilot_mkdir_p(p, 0755), 0);
}

static void link_at(const char *root, const char *rel, const char *target)
{
	_cleanup_free_ char *p = pilot_path_join(root, rel);
	assert_int_equal(symlink(target, p), 0);
}

static int collect(const struct pilot_bundle_entry *e, void *ud)
{
	struct pilot_buf *b = ud;
	pilot_buf_printf(b, "%s%s%s%s ", e->path, e->type == PILOT_BUNDLE_DIR ? "/" : "",
			 e->target ? "->" : "", e->target ? e->target : "");
	return 0;
}

/* The listing as "a b/ c->t " (bundle order). */
static char *listing(const char *dir, const char *const *extra, size_t n)
{
	struct pilot_pack_opts o = { .dir = dir, .extra_ignore = extra, .n_extra_ignore = n };
	struct pilot_buf b = PILOT_BUF_INIT;
	int r = pilot_bundle_list(&o, collect, &b, NULL);
	if (r < 0)
		fail_msg("list failed: %s", pilot_error_last());
	return pilot_buf_steal(&b);
}

static int pack_file(const char *dir, const char *out, struct pilot_bundle_info *info)
{
	struct pilot_pack_opts o = { .dir = dir };
	int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	int r = pilot_bundle_pack(&o, fd, info);
	close(fd);
	return r;
}

static void sig_walk(const char *root, const char *rel, struct pilot_buf *out)
{
	_cleanup_free_ char *p = *rel ? pilot_path_join(root, rel) : pilot_xstrdup(root);
	DIR *d = opendir(p);
	assert_non_null(d);
	char *names[256];
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") && n < ARRAY_SIZE(names))
			names[n++] = pilot_xstrdup(de->d_name);
	closedir(d);
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			if (strcmp(names[j], names[i]) < 0) {
				char *t = names[i];
				names[i] = names[j];
				names[j] = t;
			}
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *r = *rel ? pilot_xasprintf("%s/%s", rel, names[i]) : pilot_xstrdup(names[i]);
		_cleanup_free_ char *full = pilot_path_join(root, r);
		struct stat st;
		assert_int_equal(lstat(full, &st), 0);
		pilot_buf_printf(out, "%s %o ", r, (unsigned)st.st_mode);
		if (S_ISREG(st.st_mode)) {
			struct pilot_buf c = PILOT_BUF_INIT;
			assert_int_equal(pilot_read_file(full, 0, &c), 0);
			char h[65];
			pilot_sha256_hex(c.data ? c.data : "", c.len, h);
			pilot_buf_printf(out, "%s\n", h);
			pilot_buf_free(&c);
		} else if (S_ISLNK(st.st_mode)) {
			char t[4096];
			ssize_t l = readlink(full, t, sizeof(t) - 1);
			t[l > 0 ? l : 0] = 0;
			pilot_buf_printf(out, "-> %s\n", t);
		} else {
			pilot_buf_puts(out, "\n");
			if (S_ISDIR(st.st_mode))
				sig_walk(root, r, out);
		}
		free(names[i]);
	}
}

/* Everything under dir: paths, modes, contents. */
static char *tree_sig(const char *dir)
{
	struct pilot_buf b = PILOT_BUF_INIT;
	pilot_buf_puts(&b, "");
	sig_walk(dir, "", &b);
	return pilot_buf_steal(&b);
}

static struct pilot_buf logged;
static void capture(enum pilot_log_level level, const char *msg, void *ud)
{
	(void)level;
	(void)ud;
	pilot_buf_printf(&logged, "%s\n", msg);
}

/* ---- glob ---------------------------------------------------------------------- */

static void test_glob(void **state)
{
	(void)state;
	static const struct {
		const char *pat, *text;
		bool pathname, want;
	} cases[] = {
		{ "foo", "foo", true, true },
		{ "foo", "bar", true, false },
		{ "", "", true, true },
		{ "???", "foo", true, true },
		{ "??", "foo", true, false },
		{ "*", "foo", true, true },
		{ "f*", "foo", true, true },
		{ "*f", "foo", true, false },
		{ "*foo*", "foo", true, true },
		{ "*ob*a*r*", "foobar", true, true },
		{ "*ab", "aaaaaaabababab", true, true },
		{ "foo\\*", "foo*", true, true },
		{ "foo\\*bar", "foobar", true, false },
		{ "f\\\\oo", "f\\oo", true, true },
		{ "foo\\", "foo", true, false },
		{ "*[al]?", "ball", true, true },
		{ "[ten]", "ten", true, false },
		{ "**[!te]", "ten", true, true },
		{ "**[!ten]", "ten", true, false },
		{ "t[a-g]n", "ten", true, true },
		{ "t[!a-g]n", "ten", true, false },
		{ "t[!a-g]n", "ton", true, true },
		{ "t[^a-g]n", "ton", true, true },
		{ "a[]]b", "a]b", true, true },
		{ "a[]-]b", "a-b", true, true },
		{ "a[]-]b", "a]b", true, true },
		{ "a[]-]b", "aab", true, false },
		{ "a[]a-]b", "aab", true, true },
		{ "]", "]", true, true },
		{ "[a-c", "a", true, false },
		{ "[[:foo:]]", "f", true, false },
		{ "[[:alpha:]][[:digit:]][[:upper:]]", "a1B", true, true },
		{ "[[:digit:][:upper:][:space:]]", "1", true, true },
		{ "[[:digit:][:upper:][:space:]]", "a", true, false },
		{ "[[:xdigit:]]", "F", true, true },
		{ "[a-]", "-", true, true },
		{ "[\\]]", "]", true, true },
		{ "[[:]", ":", true, true },
		{ "foo*bar", "foo/baz/bar", true, false },
		{ "foo*bar", "foo/baz/bar", false, true },
		{ "foo**bar", "foo/baz/bar", true, false },
		{ "foo?bar", "foo/bar", true, false },
		{ "foo[/]bar", "foo/bar", true, false },
		{ "foo/**/bar", "foo/bar", true, true },
		{ "foo/**/bar", "foo/baz/bar", true, true },
		{ "foo/**/bar", "foo/b/a/z/bar", true, true },
		{ "foo/**/bar", "foo/bazbar", true, false },
		{ "**/foo", "foo", true, true },
		{ "**/foo", "x/y/foo", true, true },
		{ "**/foo", "xfoo", true, false },
		{ "foo/**", "foo/a/b", true, true },
		{ "foo/**", "foo", true, false },
		{ "**", "a/b/c", true, true },
		{ "*/bar", "foo/bar", true, true },
		{ "*/bar", "a/b/bar", true, false },
		{ "*/**", "a/b", true, true },
		{ "*/**", "a", true, false },
		{ "a/*", "a/b/c", true, false },
		{ "a/*/c", "a/b/c", true, true },
		{ "sp ace", "sp ace", true, true },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		bool got = pilot_glob_match(cases[i].pat, cases[i].text, cases[i].pathname);
		if (got != cases[i].want)
			fail_msg("glob '%s' vs '%s' (pathname %d): got %d", cases[i].pat, cases[i].text,
				 cases[i].pathname, got);
	}
}

/* ---- ignore lists ------------------------------------------------------------- */

static void test_ignore(void **state)
{
	(void)state;
	struct pilot_ignore *ig = pilot_ignore_new();
	const char text[] = "\xef\xbb\xbf# comment\n*.o\n!keep.o\nbuild/\n/top\nsub/x\n\\#hash\n\\!bang\n"
			    "trail   \nesc\\ \r\ndir/a**\n!";
	pilot_ignore_add_text(ig, "", text, sizeof(text) - 1);
	static const struct {
		const char *path;
		bool dir;
		enum pilot_ignore_result want;
	} cases[] = {
		{ "a.o", false, PILOT_IGNORE_EXCLUDE },
		{ "d/a.o", false, PILOT_IGNORE_EXCLUDE },
		{ "keep.o", false, PILOT_IGNORE_INCLUDE },
		{ "build", true, PILOT_IGNORE_EXCLUDE },
		{ "build", false, PILOT_IGNORE_NONE },
		{ "x/build", true, PILOT_IGNORE_EXCLUDE },
		{ "top", false, PILOT_IGNORE_EXCLUDE },
		{ "x/top", false, PILOT_IGNORE_NONE },
		{ "sub/x", false, PILOT_IGNORE_EXCLUDE },
		{ "a/sub/x", false, PILOT_IGNORE_NONE },
		{ "#hash", false, PILOT_IGNORE_EXCLUDE },
		{ "!bang", false, PILOT_IGNORE_EXCLUDE },
		{ "trail", false, PILOT_IGNORE_EXCLUDE },
		{ "trail ", false, PILOT_IGNORE_NONE },
		{ "esc ", false, PILOT_IGNORE_EXCLUDE },
		{ "esc", false, PILOT_IGNORE_NONE },
		{ "comment", false, PILOT_IGNORE_NONE },
		/* git compares the literal start first, so "**" then starts the glob. */
		{ "dir/ab/c", false, PILOT_IGNORE_EXCLUDE },
		{ "other", false, PILOT_IGNORE_NONE },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		enum pilot_ignore_result got = pilot_ignore_match(ig, cases[i].path, cases[i].dir);
		if (got != cases[i].want)
			fail_msg("'%s' (dir %d): got %d, want %d", cases[i].path, cases[i].dir, got, cases[i].want);
	}
	/* Patterns of a nested file apply below their base only, relative to it. */
	size_t mark = pilot_ignore_count(ig);
	pilot_ignore_add(ig, "sub/dir", "/only");
	pilot_ignore_add(ig, "sub/dir", "name");
	assert_int_equal(pilot_ignore_match(ig, "sub/dir/only", false), PILOT_IGNORE_EXCLUDE);
	assert_int_equal(pilot_ignore_match(ig, "only", false), PILOT_IGNORE_NONE);
	assert_int_equal(pilot_ignore_match(ig, "sub/dir/x/name", false), PILOT_IGNORE_EXCLUDE);
	assert_int_equal(pilot_ignore_match(ig, "sub/name", false), PILOT_IGNORE_NONE);
	assert_int_equal(pilot_ignore_match(ig, "sub/dirx/name", false), PILOT_IGNORE_NONE);
	pilot_ignore_truncate(ig, mark);
	assert_int_equal(pilot_ignore_match(ig, "sub/dir/only", false), PILOT_IGNORE_NONE);
	pilot_ignore_free(ig);
	pilot_ignore_free(NULL);
}

/* ---- what goes in ----------------------------------------------------------------- */

static void test_rules(void **state)
{
	(void)state;
	_cleanup_free_ char *t = tmp_new();
	put(t, ".gitignore", "*.log\nbuild/\n/data/*\n!/data/keep\n", 0644);
	put(t, "a.log", "x", 0644);
	put(t, "main.c", "x", 0644);
	put(t, "build/out", "x", 0644);
	put(t, "data/big", "x", 0644);
	put(t, "data/keep", "x", 0644);
	put(t, "sub/.gitignore", "!important.log\n", 0644);
	put(t, "sub/important.log", "x", 0644);
	put(t, "sub/.pilotignore", "secret\n", 0644);
	put(t, "sub/secret", "x", 0644);
	put(t, ".git/config", "x", 0644);
	put(t, "x/.git", "gitdir: y", 0644);
	put(t, ".pilot/state", "x", 0644);
	mkdirs(t, "empty");

	logged = (struct pilot_buf)PILOT_BUF_INIT;
	pilot_log_set_handler(capture, NULL, PILOT_LOG_DEBUG);
	put(t, ".env", "TOKEN=1", 0600);
	put(t, "sub/.env.local", "TOKEN=2", 0600);
	_cleanup_free_ char *l1 = listing(t, NULL, 0);
	assert_string_equal(l1, ".gitignore data/ data/keep empty/ main.c sub/ sub/.gitignore sub/.pilotignore "
				"sub/important.log x/ ");
	assert_non_null(strstr(pilot_buf_str(&logged), "'.env', 'sub/.env.local'"));

	/* The extra patterns win over every file. */
	const char *extra[] = { "main.c", "!a.log", "sub/" };
	_cleanup_free_ char *l2 = listing(t, extra, ARRAY_SIZE(extra));
	assert_string_equal(l2, ".gitignore a.log data/ data/keep empty/ x/ ");

	/* A root .pilotignore: .gitignore files are not read any more. */
	put(t, ".pilotignore", "main.c\n!.env\n", 0644);
	pilot_buf_reset(&logged);
	_cleanup_free_ char *l3 = listing(t, NULL, 0);
	assert_string_equal(l3, ".env .gitignore .pilotignore a.log build/ build/out data/ data/big data/keep empty/ "
				"sub/ sub/.gitignore sub/.pilotignore sub/important.log x/ ");
	/* "!.env" brings back .env only; sub/.env.local is still left out, with a notice. */
	assert_non_null(strstr(pilot_buf_str(&logged), "'sub/.env.local'"));
	assert_null(strstr(pilot_buf_str(&logged), "'.env',"));
	pilot_log_set_handler(NULL, NULL, PILOT_LOG_WARN);
	pilot_buf_free(&logged);
	pilot_rm_rf(t);
}

static void test_special_files(void **state)
{
	(void)state;
	_cleanup_free_ char *t = tmp_new();
	put(t, "f", "x", 0644);
	_cleanup_free_ char *fifo = pilot_path_join(t, "pipe");
	assert_int_equal(mkfifo(fifo, 0644), 0);
	logged = (struct pilot_buf)PILOT_BUF_INIT;
	pilot_log_set_handler(capture, NULL, PILOT_LOG_DEBUG);
	_cleanup_free_ char *l = listing(t, NULL, 0);
	assert_string_equal(l, "f ");
	assert_non_null(strstr(pilot_buf_str(&logged), "leaving out 'pipe': a fifo"));
	pilot_log_set_handler(NULL, NULL, PILOT_LOG_WARN);
	pilot_buf_free(&logged);
	pilot_rm_rf(t);
}

/* ---- determinism -------------------------------------------------------------- */

static void make_project(const char *root, bool reversed, mode_t umask_value, mode_t file_mode, mode_t exec_mode)
{
	mode_t old = umask(umask_value);
	const char *files[] = { "src/main.c", "src/util/x.h", "README", "data/a.bin", "bin/run" };
	for (size_t k = 0; k < ARRAY_SIZE(files); k++) {
		size_t i = reversed ? ARRAY_SIZE(files) - 1 - k : k;
		put(root, files[i], files[i], strcmp(files[i], "bin/run") ? file_mode : exec_mode);
	}
	mkdirs(root, "empty");
	link_at(root, "src/link", "main.c");
	umask(old);
}

static void test_deterministic(void **state)
{
	(void)state;
	_cleanup_free_ char *a = tmp_new(), *b = tmp_new(), *out = tmp_new();
	make_project(a, false, 022, 0644, 0755);
	make_project(b, true, 077, 0600, 0700);
	/* Different mtimes too. */
	_cleanup_free_ char *readme = pilot_path_join(b, "README");
	struct timeval tv[2] = { { 12345, 0 }, { 12345, 0 } };
	assert_int_equal(utimes(readme, tv), 0);
	_cleanup_free_ char *fa = pilot_path_join(out, "a.tar.gz"), *fb = pilot_path_join(out, "b.tar.gz");
	struct pilot_bundle_info ia, ib;
	unsetenv("SOURCE_DATE_EPOCH");
	assert_int_equal(pack_file(a, fa, &ia), 0);
	assert_int_equal(pack_file(b, fb, &ib), 0);
	assert_string_equal(ia.sha256, ib.sha256);
	assert_int_equal(ia.compressed_size, ib.compressed_size);
	assert_int_equal(ia.files, 5);
	assert_int_equal(ia.symlinks, 1);
	assert_int_equal(ia.dirs, 5);
	assert_int_equal(ia.uncompressed_size % TAR_RECORD, 0);

	/* The hash is of the bytes written; no output fd gives the same hash. */
	struct pilot_buf bytes = PILOT_BUF_INIT;
	assert_int_equal(pilot_read_file(fa, 0, &bytes), 0);
	char h[65];
	pilot_sha256_hex(bytes.data, bytes.len, h);
	assert_string_equal(h, ia.sha256);
	assert_int_equal(bytes.len, ia.compressed_size);
	/* gzip header: no name, no time, OS 3. */
	assert_memory_equal(bytes.data, "\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03", 10);
	pilot_buf_free(&bytes);
	struct pilot_pack_opts o = { .dir = a };
	struct pilot_bundle_info in;
	assert_int_equal(pilot_bundle_pack(&o, -1, &in), 0);
	assert_string_equal(in.sha256, ia.sha256);

	/* SOURCE_DATE_EPOCH changes the mtimes, and so the hash, the same way each time. */
	setenv("SOURCE_DATE_EPOCH", "1700000000", 1);
	assert_int_equal(pilot_bundle_pack(&o, -1, &in), 0);
	assert_string_not_equal(in.sha256, ia.sha256);
	struct pilot_bundle_info in2;
	assert_int_equal(pilot_bundle_pack(&o, -1, &in2), 0);
	assert_string_equal(in.sha256, in2.sha256);
	setenv("SOURCE_DATE_EPOCH", "yesterday", 1);
	assert_int_equal(pilot_bundle_pack(&o, -1, &in), PILOT_EINVALID);
	assert_non_null(strstr(pilot_error_last(), "SOURCE_DATE_EPOCH"));
	unsetenv("SOURCE_DATE_EPOCH");

	/* A mode change that crosses the execute line does change the hash. */
	_cleanup_free_ char *readme_a = pilot_path_join(a, "README");
	chmod(readme_a, 0744);
	assert_int_equal(pilot_bundle_pack(&o, -1, &in), 0);
	assert_string_not_equal(in.sha256, ia.sha256);

	/* Round trip. */
	_cleanup_free_ char *dest = pilot_path_join(out, "x");
	assert_int_equal(pilot_bundle_extract(fb, dest, NULL, &in), 0);
	assert_string_equal(in.sha256, ib.sha256);
	_cleanup_free_ char *run = pilot_path_join(dest, "bin/run");
	struct stat st;
	assert_int_equal(stat(run, &st), 0);
	assert_true(st.st_mode & 0100);
	_cleanup_free_ char *lnk = pilot_path_join(dest, "src/link");
	assert_int_equal(lstat(lnk, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	_cleanup_free_ char *empty = pilot_path_join(dest, "empty");
	assert_int_equal(stat(empty, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	pilot_rm_rf(a);
	pilot_rm_rf(b);
	pilot_rm_rf(out);
}

/* Random data is stored rather than deflated; the bytes are still deterministic and the
 * bundle still extracts to the same tree. */
static void test_random_data(void **state)
{
	(void)state;
	_cleanup_free_ char *t = tmp_new(), *out = tmp_new();
	size_t n = 3u << 20;
	unsigned char *rnd = pilot_xmalloc(n + 1);
	pilot_random_bytes(rnd, n);
	_cleanup_free_ char *f = pilot_path_join(t, "weights.bin");
	int fd = open(f, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_int_equal(pilot_write_all(fd, rnd, n), 0);
	close(fd);
	free(rnd);
	char text[4096];
	for (size_t i = 0; i < sizeof(text) - 1; i++)
		text[i] = "lorem ipsum dolor sit amet\n"[i % 27];
	text[sizeof(text) - 1] = 0;
	put(t, "notes.txt", text, 0644);
	_cleanup_free_ char *b1 = pilot_path_join(out, "1.tar.gz"), *b2 = pilot_path_join(out, "2.tar.gz");
	struct pilot_bundle_info i1, i2;
	assert_int_equal(pack_file(t, b1, &i1), 0);
	assert_int_equal(pack_file(t, b2, &i2), 0);
	assert_string_equal(i1.sha256, i2.sha256);
	/* Stored: about the size of the data, not more than a little overhead. */
	assert_true(i1.compressed_size > n);
	assert_true(i1.compressed_size < n + n / 100);
	_cleanup_free_ char *dest = pilot_path_join(out, "x");
	assert_int_equal(pilot_bundle_extract(b1, dest, NULL, NULL), 0);
	_cleanup_free_ char *s1 = tree_sig(t), *s2 = tree_sig(dest);
	assert_string_equal(s1, s2);
	pilot_rm_rf(t);
	pilot_rm_rf(out);
}

static void on_progress(const struct pilot_pack_progress *p, void *ud)
{
	struct pilot_pack_progress *last = ud;
	*last = *p;
}

static void test_progress_and_long_names(void **state)
{
	(void)state;
	_cleanup_free_ char *t = tmp_new(), *out = tmp_new();
	char longname[300];
	memset(longname, 'n', 200);
	longname[200] = 0;
	_cleanup_free_ char *deep = pilot_xasprintf("%s/%s/%s", longname, longname, longname);
	put(t, deep, "deep", 0644);
	put(t, "l", "x", 0644);
	char target[400];
	memset(target, 'x', 200);
	memcpy(target + 200, "/../l", 6);
	link_at(t, "link", target);
	struct pilot_pack_progress last = { 0 };
	struct pilot_pack_opts o = { .dir = t, .progress = on_progress, .userdata = &last };
	_cleanup_free_ char *f = pilot_path_join(out, "b.tar.gz");
	int fd = open(f, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	struct pilot_bundle_info info;
	assert_int_equal(pilot_bundle_pack(&o, fd, &info), 0);
	close(fd);
	assert_true(last.done);
	assert_int_equal(last.files, 3);
	assert_int_equal(last.files_total, 3);
	assert_int_equal(last.bytes, 5);
	_cleanup_free_ char *dest = pilot_path_join(out, "x");
	assert_int_equal(pilot_bundle_extract(f, dest, NULL, NULL), 0);
	_cleanup_free_ char *s1 = tree_sig(t), *s2 = tree_sig(dest);
	assert_string_equal(s1, s2);
	pilot_rm_rf(t);
	pilot_rm_rf(out);
}

/* ---- symlinks ------------------------------------------------------------------ */

static void test_links(void **state)
{
	(void)state;
	_cleanup_free_ char *t = tmp_new();
	put(t, "a/file", "x", 0644);
	link_at(t, "in1", "a/file");
	link_at(t, "a/in2", "../in1");
	link_at(t, "a/dangling", "nothing/here");
	_cleanup_free_ char *l = listing(t, NULL, 0);
	assert_string_equal(l, "a/ a/dangling->nothing/here a/file a/in2->../in1 in1->a/file ");

	link_at(t, "abs", "/etc/passwd");
	struct pilot_pack_opts o = { .dir = t };
	struct pilot_bundle_info info;
	assert_int_equal(pilot_bundle_pack(&o, -1, &info), PILOT_EINVALID);
	assert_non_null(strstr(pilot_error_last(), "symlink 'abs' -> '/etc/passwd' points outside"));

	/* Lexically inside, but b is "." so b/.. is the parent of a, and the last ".." leaves. */
	link_at(t, "a/b", ".");
	link_at(t, "a/c", "b/../..");
	link_at(t, "a/up", "../..");
	o.skip_outside_links = true;
	logged = (struct pilot_buf)PILOT_BUF_INIT;
	pilot_log_set_handler(capture, NULL, PILOT_LOG_DEBUG);
	_cleanup_free_ char *l2 = NULL;
	{
		struct pilot_buf b = PILOT_BUF_INIT;
		assert_int_equal(pilot_bundle_list(&o, collect, &b, NULL), 0);
		l2 = pilot_buf_steal(&b);
	}
	assert_string_equal(l2, "a/ a/b->. a/dangling->nothing/here a/file a/in2->../in1 in1->a/file ");
	const char *log = pilot_buf_str(&logged);
	assert_non_null(strstr(log, "'abs'"));
	assert_non_null(strstr(log, "'a/c'"));
	assert_non_null(strstr(log, "'a/up'"));
	pilot_log_set_handler(NULL, NULL, PILOT_LOG_WARN);
	pilot_buf_free(&logged);
	o.skip_outside_links = false;
	assert_int_equal(pilot_bundle_pack(&o, -1, &info), PILOT_EINVALID);
	assert_non_null(strstr(pilot_error_last(), "(and 2 more)"));
	pilot_rm_rf(t);
}

static const char *const tree_paths[][3] = {
	/* path, type ("f" "d" "l"), target */
	{ "a", "d", NULL },
	{ "a/b", "l", "." },
	{ "a/f", "f", NULL },
	{ "x", "l", "a/b/b/b/f" },
	{ "loop1", "l", "loop2/x" },
	{ "loop2", "l", "loop1/x" },
};

static bool lookup_table(void *ud, const char *path, enum pilot_bundle_type *type, const char **target)
{
	(void)ud;
	for (size_t i = 0; i < ARRAY_SIZE(tree_paths); i++) {
		if (strcmp(tree_paths[i][0], path))
			continue;
		*type = tree_paths[i][1][0] == 'd' ? PILOT_BUNDLE_DIR
			: tree_paths[i][1][0] == 'l' ? PILOT_BUNDLE_SYMLINK : PILOT_BUNDLE_FILE;
		*target = tree_paths[i][2];
		return true;
	}
	return false;
}

static void test_resolver(void **state)
{
	(void)state;
	static const struct {
		const char *link, *target;
		int want;
	} cases[] = {
		{ "l", "a/f", 0 },
		{ "l", "/a", 1 },
		{ "l", "..", 1 },
		{ "a/l", "..", 0 },
		{ "a/l", "../..", 1 },
		{ "a/l", "b/..", 0 },        /* a/b is "a" itself: its parent is the root, fine... */
		{ "a/l", "b/../..", 1 },     /* ...and one more step leaves */
		{ "a/l", "b/b/b/f", 0 },
		{ "l", "x/..", 0 },          /* x is followed: a/f's parent is a, its parent the root */
		{ "l", "missing/../a", 0 },
		{ "l", "missing/../../a", 1 },
		{ "l", "loop1/y", -1 },
		{ "l", "./a/./f/", 0 },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		uint64_t budget = 100000;
		int got = bundle_link_escapes(cases[i].link, cases[i].target, lookup_table, NULL, &budget);
		if (got != cases[i].want)
			fail_msg("link '%s' -> '%s': got %d, want %d", cases[i].link, cases[i].target, got,
				 cases[i].want);
	}
	uint64_t none = 0;
	assert_int_equal(bundle_link_escapes("l", "a/f", lookup_table, NULL, &none), -1);
}

/* ---- limits ---------------------------------------------------------------------- */

static void test_max_size(void **state)
{
	(void)state;
	_cleanup_free_ char *t = tmp_new();
	char *big = pilot_xmalloc(200001);
	memset(big, 'b', 200000);
	big[200000] = 0;
	put(t, "data/raw/huge.bin", big, 0644);
	big[100000] = 0;
	put(t, "model.bin", big, 0644);
	free(big);
	put(t, "small", "s", 0644);
	struct pilot_pack_opts o = { .dir = t, .max_size = 100000 };
	assert_int_equal(pilot_bundle_pack(&o, -1, NULL), PILOT_ELIMIT);
	const char *m = pilot_error_last();
	assert_non_null(strstr(m, "max_bundle_size"));
	assert_non_null(strstr(m, "'data/' 195 KiB, 'data/raw/' 195 KiB, 'data/raw/huge.bin' 195 KiB, 'model.bin' 98 KiB"));
	/* list does not enforce it but says how big it would be. */
	struct pilot_buf b = PILOT_BUF_INIT;
	struct pilot_bundle_info info;
	assert_int_equal(pilot_bundle_list(&o, collect, &b, &info), 0);
	assert_true(info.uncompressed_size > 300000);
	pilot_buf_free(&b);
	o.max_size = 0;
	assert_int_equal(pilot_bundle_pack(&o, -1, &info), 0);
	pilot_rm_rf(t);
}

/* An archive built with libarchive's writer, which writes whatever it is told. */
struct spec_entry {
	const char *path;
	char type; /* f d l h c p */
	const char *target;
	size_t size;
	char fill;
	unsigned mode;
};

static void make_archive(const char *file, const struct spec_entry *e, size_t n, bool gzip)
{
	struct archive *a = archive_write_new();
	archive_write_set_format_pax_restricted(a);
	if (gzip)
		archive_write_add_filter_gzip(a);
	assert_int_equal(archive_write_open_filename(a, file), ARCHIVE_OK);
	for (size_t i = 0; i < n; i++) {
		struct archive_entry *ae = archive_entry_new();
		archive_entry_set_pathname(ae, e[i].path);
		archive_entry_set_perm(ae, e[i].mode ? e[i].mode : 0644);
		switch (e[i].type) {
		case 'd': archive_entry_set_filetype(ae, AE_IFDIR); break;
		case 'l':
			archive_entry_set_filetype(ae, AE_IFLNK);
			archive_entry_set_symlink(ae, e[i].target);
			break;
		case 'h':
			archive_entry_set_filetype(ae, AE_IFREG);
			archive_entry_set_hardlink(ae, e[i].target);
			break;
		case 'c': archive_entry_set_filetype(ae, AE_IFCHR); break;
		case 'p': archive_entry_set_filetype(ae, AE_IFIFO); break;
		default:
			archive_entry_set_filetype(ae, AE_IFREG);
			archive_entry_set_size(ae, (la_int64_t)e[i].size);
		}
		assert_int_equal(archive_write_header(a, ae), ARCHIVE_OK);
		if (e[i].type == 'f' && e[i].size) {
			char *buf = pilot_xmalloc(e[i].size);
			memset(buf, e[i].fill ? e[i].fill : 'x', e[i].size);
			assert_int_equal(archive_write_data(a, buf, e[i].size), (la_ssize_t)e[i].size);
			free(buf);
		}
		archive_entry_free(ae);
	}
	archive_write_close(a);
	archive_write_free(a);
}

/* Extract into work/out with limits; the sentinel beside it must not change, and on
 * failure nothing may be left but the sentinel. Returns the result. */
static int extract_checked(const struct spec_entry *e, size_t n, const struct pilot_extract_limits *lim,
			   bool gzip)
{
	_cleanup_free_ char *work = tmp_new();
	_cleanup_free_ char *file = pilot_path_join(work, "b.tar");
	make_archive(file, e, n, gzip);
	put(work, "sentinel/file", "precious", 0644);
	mkdirs(work, "sentinel/dir");
	_cleanup_free_ char *sentinel = pilot_path_join(work, "sentinel");
	_cleanup_free_ char *before = tree_sig(sentinel);
	_cleanup_free_ char *dest = pilot_path_join(work, "out");
	int r = pilot_bundle_extract(file, dest, lim, NULL);
	_cleanup_free_ char *msg = pilot_xstrdup(pilot_error_last());
	_cleanup_free_ char *after = tree_sig(sentinel);
	assert_string_equal(before, after);
	if (r < 0) {
		unlink(file);
		_cleanup_free_ char *left = tree_sig(work);
		/* Only the sentinel remains: no out/, no temporary directory. */
		assert_int_equal(strncmp(left, "sentinel ", 9), 0);
		assert_null(strstr(left, "\nout"));
		assert_null(strstr(left, ".pilot-unpack"));
	}
	pilot_rm_rf(work);
	pilot_error_set(r < 0 ? r : PILOT_OK, "%s", msg);
	return r;
}

static void test_extract_limits(void **state)
{
	(void)state;
	struct pilot_extract_limits lim;
	pilot_extract_limits_default(&lim);
	assert_int_equal(lim.max_bytes, PILOT_BUNDLE_DEFAULT_MAX_SIZE);
	assert_int_equal(lim.max_ratio, 1000);

	const struct spec_entry five[] = {
		{ "a", 'f', NULL, 1, 0, 0 }, { "b", 'f', NULL, 1, 0, 0 }, { "c", 'f', NULL, 1, 0, 0 },
		{ "d", 'f', NULL, 1, 0, 0 }, { "e", 'f', NULL, 1, 0, 0 },
	};
	assert_int_equal(extract_checked(five, 5, &lim, true), 0);
	lim.max_entries = 3;
	assert_int_equal(extract_checked(five, 5, &lim, true), PILOT_ELIMIT);
	assert_non_null(strstr(pilot_error_last(), "max_entries"));

	pilot_extract_limits_default(&lim);
	lim.max_bytes = 100000;
	const struct spec_entry big[] = { { "small", 'f', NULL, 10, 0, 0 }, { "big", 'f', NULL, 200000, 0, 0 } };
	assert_int_equal(extract_checked(big, 2, &lim, true), PILOT_ELIMIT);
	assert_non_null(strstr(pilot_error_last(), "max_bytes"));
	assert_non_null(strstr(pilot_error_last(), "'big'"));

	pilot_extract_limits_default(&lim);
	lim.max_path = 20;
	const struct spec_entry longp[] = { { "aaaaaaaaaa/bbbbbbbbbbbbbb", 'f', NULL, 1, 0, 0 } };
	assert_int_equal(extract_checked(longp, 1, &lim, true), PILOT_ELIMIT);
	assert_non_null(strstr(pilot_error_last(), "max_path"));
	const struct spec_entry longt[] = { { "l", 'l', "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 0, 0, 0 } };
	assert_int_equal(extract_checked(longt, 1, &lim, true), PILOT_ELIMIT);
	assert_non_null(strstr(pilot_error_last(), "max_path"));

	pilot_extract_limits_default(&lim);
	lim.max_depth = 3;
	const struct spec_entry deep[] = { { "a/b/c/d", 'f', NULL, 1, 0, 0 } };
	assert_int_equal(extract_checked(deep, 1, &lim, true), PILOT_ELIMIT);
	assert_non_null(strstr(pilot_error_last(), "max_depth"));
	const struct spec_entry ok3[] = { { "./a//b/./c", 'f', NULL, 1, 0, 0 } };
	assert_int_equal(extract_checked(ok3, 1, &lim, true), 0);

	pilot_extract_limits_default(&lim);
	lim.max_ratio = 50;
	lim.ratio_after = 64 * 1024;
	const struct spec_entry zeros[] = { { "zeros", 'f', NULL, 4u << 20, '\0', 0 } };
	assert_int_equal(extract_checked(zeros, 1, &lim, true), PILOT_ELIMIT);
	assert_non_null(strstr(pilot_error_last(), "max_ratio"));
	/* Uncompressed tar: no ratio to speak of. */
	assert_int_equal(extract_checked(zeros, 1, &lim, false), 0);
}

static void test_extract_refusals(void **state)
{
	(void)state;
	static const struct {
		struct spec_entry e[3];
		size_t n;
		const char *why;
	} cases[] = {
		{ { { "/abs/x", 'f', NULL, 1, 0, 0 } }, 1, "absolute" },
		{ { { "../x", 'f', NULL, 1, 0, 0 } }, 1, "'..'" },
		{ { { "a/../../x", 'f', NULL, 1, 0, 0 } }, 1, "'..'" },
		{ { { "l", 'l', "/etc", 0, 0, 0 } }, 1, "points outside" },
		{ { { "l", 'l', "../sentinel", 0, 0, 0 } }, 1, "points outside" },
		{ { { "a/b", 'l', ".", 0, 0, 0 }, { "a/c", 'l', "b/../..", 0, 0, 0 } }, 2, "points outside" },
		{ { { "a/c", 'l', "b/../..", 0, 0, 0 }, { "a/b", 'l', ".", 0, 0, 0 } }, 2, "points outside" },
		{ { { "d", 'l', "sub", 0, 0, 0 }, { "sub/", 'd', NULL, 0, 0, 0 }, { "d/x", 'f', NULL, 1, 0, 0 } },
		  3, "symlink: nothing is extracted through one" },
		{ { { "h", 'h', "/etc/passwd", 0, 0, 0 } }, 1, "absolute" },
		{ { { "h", 'h', "../sentinel/file", 0, 0, 0 } }, 1, "'..'" },
		{ { { "h", 'h', "missing", 0, 0, 0 } }, 1, "not a regular file extracted before it" },
		{ { { "d", 'd', NULL, 0, 0, 0 }, { "h", 'h', "d", 0, 0, 0 } }, 2, "not a regular file" },
		{ { { "c", 'c', NULL, 0, 0, 0 } }, 1, "character devices" },
		{ { { "p", 'p', NULL, 0, 0, 0 } }, 1, "fifos" },
		{ { { "x", 'f', NULL, 1, 0, 0 }, { "x", 'd', NULL, 0, 0, 0 } }, 2, "appears twice" },
		{ { { "x", 'd', NULL, 0, 0, 0 }, { "x", 'l', "y", 0, 0, 0 } }, 2, "appears twice" },
		{ { { "x/y", 'f', NULL, 1, 0, 0 }, { "x", 'f', NULL, 1, 0, 0 } }, 2, "appears twice" },
		{ { { "x", 'f', NULL, 1, 0, 0 }, { "x/y", 'f', NULL, 1, 0, 0 } }, 2, "not a directory" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		int r = extract_checked(cases[i].e, cases[i].n, NULL, true);
		if (r >= 0 || !strstr(pilot_error_last(), cases[i].why))
			fail_msg("case %zu (%s): got %d '%s'", i, cases[i].e[0].path, r, pilot_error_last());
	}
	/* The same file twice replaces it; setuid is dropped; a hardlink to a file is fine. */
	const struct spec_entry ok[] = {
		{ "x", 'f', NULL, 1, 'a', 04755 }, { "x", 'f', NULL, 2, 'b', 0644 }, { "h", 'h', "x", 0, 0, 0 },
	};
	assert_int_equal(extract_checked(ok, 3, NULL, true), 0);
}

static void test_extract_dest(void **state)
{
	(void)state;
	_cleanup_free_ char *work = tmp_new(), *src = tmp_new();
	put(src, "f", "data", 0644);
	_cleanup_free_ char *file = pilot_path_join(work, "b.tar.gz");
	assert_int_equal(pack_file(src, file, NULL), 0);

	/* An empty directory is fine, and keeps its mode. */
	_cleanup_free_ char *empty = pilot_path_join(work, "empty");
	assert_int_equal(mkdir(empty, 0700), 0);
	assert_int_equal(pilot_bundle_extract(file, empty, NULL, NULL), 0);
	struct stat st;
	assert_int_equal(stat(empty, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	/* Now it is not empty. */
	assert_int_equal(pilot_bundle_extract(file, empty, NULL, NULL), PILOT_ECONFLICT);
	assert_non_null(strstr(pilot_error_last(), "not empty"));
	/* A file in the way. */
	_cleanup_free_ char *f = pilot_path_join(empty, "f");
	assert_int_equal(pilot_bundle_extract(file, f, NULL, NULL), PILOT_ECONFLICT);
	/* No parent. */
	_cleanup_free_ char *orphan = pilot_path_join(work, "no/such/dir");
	assert_true(pilot_bundle_extract(file, orphan, NULL, NULL) < 0);
	/* Not a bundle. */
	_cleanup_free_ char *junk = pilot_path_join(work, "junk");
	put(work, "junk", "this is not a tar file at all, just text that goes on for a while", 0644);
	_cleanup_free_ char *out = pilot_path_join(work, "out");
	assert_int_equal(pilot_bundle_extract(junk, out, NULL, NULL), PILOT_EINVALID);
	assert_int_equal(access(out, F_OK), -1);
	/* Truncated. */
	struct pilot_buf b = PILOT_BUF_INIT;
	assert_int_equal(pilot_read_file(file, 0, &b), 0);
	_cleanup_free_ char *cut = pilot_path_join(work, "cut.tar.gz");
	assert_int_equal(pilot_write_file_atomic(cut, b.data, b.len / 2, 0644), 0);
	pilot_buf_free(&b);
	assert_true(pilot_bundle_extract(cut, out, NULL, NULL) < 0);
	assert_int_equal(access(out, F_OK), -1);
	assert_int_equal(pilot_bundle_extract("/nonexistent.tar.gz", out, NULL, NULL), PILOT_ENOTFOUND);
	pilot_rm_rf(work);
	pilot_rm_rf(src);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_glob),
		cmocka_unit_test(test_ignore),
		cmocka_unit_test(test_rules),
		cmocka_unit_test(test_special_files),
		cmocka_unit_test(test_deterministic),
		cmocka_unit_test(test_random_data),
		cmocka_unit_test(test_progress_and_long_names),
		cmocka_unit_test(test_links),
		cmocka_unit_test(test_resolver),
		cmocka_unit_test(test_max_size),
		cmocka_unit_test(test_extract_limits),
		cmocka_unit_test(test_extract_refusals),
		cmocka_unit_test(test_extract_dest),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
