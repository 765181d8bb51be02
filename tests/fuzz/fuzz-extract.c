/* libFuzzer target for bundle extraction: any bytes extracted into WORK/out. Beside the
 * target lies a sentinel tree (and one more a level up); after every input the whole
 * fuzz directory must be exactly as before (nothing written outside, no temporary left
 * behind), and a successful extraction may hold no symlink that resolves outside it.
 * Any breach abort()s. */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pilot/bundle.h"

static char *base, *work, *target;
static char *before;

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Paths, types, modes, sizes, link targets and content hashes under dir, sorted. */
static void sig(const char *dir, const char *rel, struct pilot_buf *out)
{
	DIR *d = opendir(dir);
	if (!d)
		abort();
	char **names = NULL;
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		names = pilot_xrealloc(names, (n + 1) * sizeof(*names));
		names[n++] = pilot_xstrdup(de->d_name);
	}
	closedir(d);
	qsort(names, n, sizeof(*names), cmp_str);
	for (size_t i = 0; i < n; i++) {
		char *p = pilot_path_join(dir, names[i]);
		char *r = pilot_xasprintf("%s/%s", rel, names[i]);
		struct stat st;
		if (lstat(p, &st) < 0)
			abort();
		pilot_buf_printf(out, "%s %o %lld", r, (unsigned)st.st_mode, (long long)st.st_size);
		if (S_ISREG(st.st_mode)) {
			struct pilot_buf c = PILOT_BUF_INIT;
			if (pilot_read_file(p, 0, &c) < 0)
				abort();
			char h[65];
			pilot_sha256_hex(c.data ? c.data : "", c.len, h);
			pilot_buf_printf(out, " %s\n", h);
			pilot_buf_free(&c);
		} else if (S_ISLNK(st.st_mode)) {
			char t[PATH_MAX];
			ssize_t l = readlink(p, t, sizeof(t) - 1);
			t[l > 0 ? l : 0] = '\0';
			pilot_buf_printf(out, " -> %s\n", t);
		} else {
			pilot_buf_putc(out, '\n');
			if (S_ISDIR(st.st_mode))
				sig(p, r, out);
		}
		free(p);
		free(r);
		free(names[i]);
	}
	free(names);
}

static char *signature(void)
{
	struct pilot_buf b = PILOT_BUF_INIT;
	pilot_buf_puts(&b, "");
	sig(base, "", &b);
	return pilot_buf_steal(&b);
}

/* Every symlink of the extracted tree that resolves must resolve inside it. */
static void links_inside(const char *dir, const char *root)
{
	DIR *d = opendir(dir);
	if (!d)
		abort();
	struct dirent *de;
	size_t rl = strlen(root);
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		char *p = pilot_path_join(dir, de->d_name);
		struct stat st;
		if (lstat(p, &st) < 0)
			abort();
		if (S_ISLNK(st.st_mode)) {
			char real[PATH_MAX];
			if (realpath(p, real) && strcmp(real, root) && (strncmp(real, root, rl) || real[rl] != '/'))
				abort();
		} else if (S_ISDIR(st.st_mode)) {
			links_inside(p, root);
		}
		free(p);
	}
	closedir(d);
}

static void put(const char *path, const char *content)
{
	if (pilot_write_file_atomic(path, content, strlen(content), 0644) < 0)
		abort();
}

static void cleanup(void)
{
	pilot_rm_rf(base);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	const char *t = getenv("TMPDIR");
	base = pilot_xasprintf("%s/pilot-fuzz-extract.XXXXXX", t && *t ? t : "/tmp");
	if (!mkdtemp(base))
		abort();
	char real[PATH_MAX];
	if (!realpath(base, real))
		abort();
	free(base);
	base = pilot_xstrdup(real);
	atexit(cleanup);
	work = pilot_path_join(base, "work");
	target = pilot_path_join(work, "out");
	char *s = pilot_path_join(work, "sentinel/sub");
	char *s2 = pilot_path_join(base, "outer");
	if (pilot_mkdir_p(s, 0755) < 0 || pilot_mkdir_p(s2, 0755) < 0)
		abort();
	char *f1 = pilot_path_join(work, "sentinel/file"), *f2 = pilot_path_join(s, "file"),
	     *f3 = pilot_path_join(s2, "file"), *l = pilot_path_join(work, "sentinel/link");
	put(f1, "precious");
	put(f2, "nested");
	put(f3, "outer");
	if (symlink("file", l) < 0)
		abort();
	free(s);
	free(s2);
	free(f1);
	free(f2);
	free(f3);
	free(l);
	before = signature();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fd = memfd_create("bundle", MFD_CLOEXEC);
	if (fd < 0 || pilot_write_all(fd, data, size) < 0 || lseek(fd, 0, SEEK_SET) != 0)
		abort();
	struct pilot_extract_limits lim;
	pilot_extract_limits_default(&lim);
	/* Small enough that one input stays fast; the checks are the same. */
	lim.max_bytes = 8u << 20;
	lim.max_entries = 2048;
	int r = pilot_bundle_extract_fd(fd, target, &lim, NULL);
	close(fd);
	if (r == 0) {
		links_inside(target, target);
		if (pilot_rm_rf(target) < 0)
			abort();
	}
	char *after = signature();
	if (strcmp(before, after)) {
		fprintf(stderr, "the fuzz directory changed (extract returned %d: %s)\nbefore:\n%s\nafter:\n%s\n", r,
			pilot_error_last(), before, after);
		abort();
	}
	free(after);
	return 0;
}
