/* Unit tests for lib/blob: layout, hash checks, dedup, readers, temp-file clean-up. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "pilot/blob.h"
#include "pilot/util.h"

static char dir[64];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/pilot-test-blob.XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	pilot_rm_rf(dir);
	return 0;
}

static size_t count_files(const char *d)
{
	DIR *dd = opendir(d);
	size_t n = 0;
	struct dirent *e;
	while (dd && (e = readdir(dd)))
		n += e->d_name[0] != '.';
	if (dd)
		closedir(dd);
	return n;
}

static void test_put_has_read(void **state)
{
	(void)state;
	struct pilot_blob_store *bs;
	assert_int_equal(pilot_blob_open(dir, &bs), 0);
	char sha[65], want[65];
	pilot_sha256_hex("hello", 5, want);
	assert_int_equal(pilot_blob_has(bs, want), 0);
	assert_int_equal(pilot_blob_put_buf(bs, "hello", 5, NULL, sha), 0);
	assert_string_equal(sha, want);
	assert_int_equal(pilot_blob_has(bs, want), 1);
	/* The layout: sha256/ab/cdef... */
	_cleanup_free_ char *p = pilot_blob_path(bs, sha);
	_cleanup_free_ char *expect = pilot_xasprintf("%s/sha256/%.2s/%s", dir, sha, sha + 2);
	assert_string_equal(p, expect);
	struct stat st;
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	int fd = -1;
	uint64_t size = 0;
	assert_int_equal(pilot_blob_open_read(bs, sha, &fd, &size), 0);
	char buf[16] = "";
	assert_int_equal(read(fd, buf, sizeof(buf)), 5);
	assert_memory_equal(buf, "hello", 5);
	assert_int_equal(size, 5);
	close(fd);
	/* Again: a no-op, still one file. */
	assert_int_equal(pilot_blob_put_buf(bs, "hello", 5, want, NULL), 0);
	_cleanup_free_ char *sub = pilot_xasprintf("%s/sha256/%.2s", dir, sha);
	assert_int_equal(count_files(sub), 1);
	_cleanup_free_ char *tmp = pilot_path_join(dir, "tmp");
	assert_int_equal(count_files(tmp), 0);
	assert_int_equal(pilot_blob_remove(bs, sha), 0);
	assert_int_equal(pilot_blob_has(bs, sha), 0);
	assert_int_equal(pilot_blob_remove(bs, sha), 0);
	pilot_blob_close(bs);
}

static void test_hash_mismatch(void **state)
{
	(void)state;
	struct pilot_blob_store *bs;
	assert_int_equal(pilot_blob_open(dir, &bs), 0);
	char other[65];
	pilot_sha256_hex("other", 5, other);
	assert_int_equal(pilot_blob_put_buf(bs, "hello", 5, other, NULL), PILOT_EINVALID);
	assert_non_null(strstr(pilot_error_last(), other));
	assert_int_equal(pilot_blob_has(bs, other), 0);
	_cleanup_free_ char *tmp = pilot_path_join(dir, "tmp");
	assert_int_equal(count_files(tmp), 0);
	assert_int_equal(pilot_blob_has(bs, "nothex"), PILOT_EINVALID);
	assert_int_equal(pilot_blob_put_buf(bs, "x", 1, "ABC", NULL), PILOT_EINVALID);
	int fd;
	assert_int_equal(pilot_blob_open_read(bs, other, &fd, NULL), PILOT_ENOTFOUND);
	pilot_blob_close(bs);
}

static void test_put_fd_pipe(void **state)
{
	(void)state;
	struct pilot_blob_store *bs;
	assert_int_equal(pilot_blob_open(dir, &bs), 0);
	int p[2];
	assert_int_equal(pipe(p), 0);
	/* More than one read's worth, through a pipe (no size known in advance). */
	size_t n = 200000;
	char *data = pilot_xmalloc(n);
	for (size_t i = 0; i < n; i++)
		data[i] = (char)(i * 7);
	pid_t pid = fork();
	if (pid == 0) {
		close(p[0]);
		_exit(pilot_write_all(p[1], data, n) < 0);
	}
	close(p[1]);
	char sha[65], want[65];
	uint64_t size = 0;
	pilot_sha256_hex(data, n, want);
	assert_int_equal(pilot_blob_put_fd(bs, p[0], want, sha, &size), 0);
	close(p[0]);
	waitpid(pid, NULL, 0);
	assert_string_equal(sha, want);
	assert_int_equal(size, n);
	free(data);
	pilot_blob_close(bs);
}

static void test_stale_temps(void **state)
{
	(void)state;
	struct pilot_blob_store *bs;
	assert_int_equal(pilot_blob_open(dir, &bs), 0);
	pilot_blob_close(bs);
	_cleanup_free_ char *stale = pilot_xasprintf("%s/tmp/deadbeef", dir);
	_cleanup_free_ char *live = pilot_xasprintf("%s/tmp/cafebabe", dir);
	assert_int_equal(pilot_write_file_atomic(stale, "x", 1, 0600), 0);
	assert_int_equal(pilot_write_file_atomic(live, "y", 1, 0600), 0);
	/* A writer still busy with its temp file holds the lock. */
	int fd = open(live, O_RDONLY);
	assert_int_equal(flock(fd, LOCK_EX), 0);
	assert_int_equal(pilot_blob_open(dir, &bs), 0);
	assert_int_equal(access(stale, F_OK), -1);
	assert_int_equal(access(live, F_OK), 0);
	close(fd);
	pilot_blob_close(bs);
	assert_int_equal(pilot_blob_open(dir, &bs), 0);
	assert_int_equal(access(live, F_OK), -1);
	pilot_blob_close(bs);
	pilot_blob_close(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_put_has_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hash_mismatch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_put_fd_pipe, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_temps, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
