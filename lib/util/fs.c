/* Filesystem helpers: whole-file reads with a limit, crash-safe atomic writes,
 * recursive mkdir/remove, and the XDG base directories. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pilot/util.h"

int pilot_write_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n) {
		ssize_t w = write(fd, c, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

int pilot_read_file(const char *path, size_t max, struct pilot_buf *out)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return pilot_error_errno(errno == ENOENT ? PILOT_ENOTFOUND : PILOT_EIO, errno,
					 "cannot open '%s'", path);
	char chunk[65536];
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return pilot_error_errno(PILOT_EIO, errno, "cannot read '%s'", path);
		}
		if (n == 0)
			break;
		if (max && out->len + (size_t)n > max)
			return pilot_error_set(PILOT_ELIMIT, "'%s' is larger than %zu bytes", path, max);
		pilot_buf_append(out, chunk, (size_t)n);
	}
	return 0;
}

int pilot_fsync_dir(const char *dir)
{
	_cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0)
		return pilot_error_errno(PILOT_EIO, errno, "cannot sync directory '%s'", dir);
	return 0;
}

int pilot_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
	_cleanup_free_ char *tmp = pilot_xasprintf("%s.tmp.%ld", path, (long)getpid());
	_cleanup_free_ char *dircopy = pilot_xstrdup(path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		return pilot_error_errno(PILOT_EIO, errno, "cannot write '%s'", path);
	int r = -pilot_write_all(fd, data, len);
	if (!r && fchmod(fd, mode) < 0)
		r = errno;
	if (!r && fsync(fd) < 0)
		r = errno;
	if (close(fd) < 0 && !r)
		r = errno;
	if (!r && rename(tmp, path) < 0)
		r = errno;
	if (r) {
		unlink(tmp);
		return pilot_error_errno(PILOT_EIO, r, "cannot write '%s'", path);
	}
	return pilot_fsync_dir(dirname(dircopy));
}

int pilot_mkdir_p(const char *path, mode_t mode)
{
	_cleanup_free_ char *p = pilot_xstrdup(path);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, mode) < 0 && errno != EEXIST)
			return pilot_error_errno(PILOT_EIO, errno, "cannot create directory '%s'", p);
		*s = '/';
	}
	if (mkdir(p, mode) < 0 && errno != EEXIST)
		return pilot_error_errno(PILOT_EIO, errno, "cannot create directory '%s'", p);
	struct stat st;
	if (stat(p, &st) < 0 || !S_ISDIR(st.st_mode))
		return pilot_error_set(PILOT_EIO, "'%s' exists and is not a directory", p);
	return 0;
}

static int rm_at(int parent, const char *name)
{
	if (unlinkat(parent, name, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return -errno;
	int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	/* A directory we cannot list (mode 0) still has to go. */
	fchmod(fd, 0700);
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	int r = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		int q = rm_at(dirfd(d), e->d_name);
		if (q < 0 && !r)
			r = q;
	}
	closedir(d);
	if (unlinkat(parent, name, AT_REMOVEDIR) < 0 && errno != ENOENT && !r)
		r = -errno;
	return r;
}

int pilot_rm_rf(const char *path)
{
	int r = rm_at(AT_FDCWD, path);
	if (r < 0)
		return pilot_error_errno(PILOT_EIO, -r, "cannot remove '%s'", path);
	return 0;
}

static char *home_dir(void)
{
	const char *h = getenv("HOME");
	if (h && *h)
		return pilot_xstrdup(h);
	struct passwd *pw = getpwuid(getuid());
	return pilot_xstrdup(pw && pw->pw_dir ? pw->pw_dir : "/");
}

static char *xdg_dir(const char *var, const char *fallback)
{
	const char *v = getenv(var);
	if (v && v[0] == '/')
		return pilot_xasprintf("%s/pilot", v);
	_cleanup_free_ char *h = home_dir();
	return pilot_xasprintf("%s/%s/pilot", h, fallback);
}

char *pilot_data_home(void)
{
	return xdg_dir("XDG_DATA_HOME", ".local/share");
}

char *pilot_config_home(void)
{
	return xdg_dir("XDG_CONFIG_HOME", ".config");
}

char *pilot_local_identity(void)
{
	const char *u = getenv("USER");
	_cleanup_free_ char *from_uid = NULL;
	if (!u || !*u) {
		struct passwd *pw = getpwuid(geteuid());
		from_uid = pw && pw->pw_name && *pw->pw_name ? pilot_xstrdup(pw->pw_name)
							      : pilot_xasprintf("uid-%u", (unsigned)geteuid());
		u = from_uid;
	}
	char host[256] = "";
	if (gethostname(host, sizeof(host) - 1) < 0)
		host[0] = '\0';
	char *dot = strchr(host, '.');
	if (dot)
		*dot = '\0';
	return host[0] ? pilot_xasprintf("%s@%s", u, host) : pilot_xstrdup(u);
}

int pilot_open_temp(void)
{
	const char *dir = getenv("TMPDIR");
	if (!dir || !*dir)
		dir = "/tmp";
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0)
		return fd;
	_cleanup_free_ char *path = pilot_xasprintf("%s/pilot-XXXXXX", dir);
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0)
		return pilot_error_errno(PILOT_EIO, errno, "cannot create a temporary file in '%s'", dir);
	unlink(path);
	return fd;
}

char *pilot_path_join(const char *a, const char *b)
{
	size_t la = strlen(a);
	while (la > 1 && a[la - 1] == '/')
		la--;
	while (*b == '/')
		b++;
	return pilot_xasprintf("%.*s/%s", (int)la, a, b);
}
