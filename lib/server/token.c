/* The server data directory's tokens and first-time set-up: creating a token in the
 * store (the token format itself is lib/model/token.c), init and check. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pilot/server.h"
#include "pilot/store.h"

int pilot_server_token_create(struct pilot_store *st, const char *name, unsigned scopes, int64_t expires_ms,
			      const char *agent, bool replace, char secret[PILOT_TOKEN_SIZE],
			      struct pilot_token_record *out)
{
	if (!(scopes & PILOT_SCOPE_ALL))
		return pilot_error_set(PILOT_EINVALID, "a token needs at least one scope");
	_cleanup_free_ char *scope_text = pilot_token_scopes_format(scopes);
	_cleanup_free_ char *gen_name = NULL;
	if (!name || !*name) {
		char rnd[5];
		pilot_random_hex(rnd, 2);
		size_t first = strcspn(scope_text, " ");
		gen_name = pilot_xasprintf("%.*s-%s", (int)first, scope_text, rnd);
		name = gen_name;
	}
	char tok[PILOT_TOKEN_SIZE], sha[65];
	pilot_token_generate(tok);
	pilot_token_hash(tok, sha);
	int r = pilot_store_token_create(st, name, sha, scope_text, expires_ms, agent, replace, out);
	if (r < 0) {
		explicit_bzero(tok, sizeof(tok));
		return r;
	}
	memcpy(secret, tok, PILOT_TOKEN_SIZE);
	explicit_bzero(tok, sizeof(tok));
	return 0;
}

char *pilot_server_default_data_dir(void)
{
	_cleanup_free_ char *home = pilot_data_home();
	return pilot_path_join(home, "server");
}

int pilot_server_init(const char *data_dir, char secret[PILOT_TOKEN_SIZE], struct pilot_token_record *out)
{
	_cleanup_free_ char *def = data_dir ? NULL : pilot_server_default_data_dir();
	const char *dir = data_dir ? data_dir : def;
	int r = pilot_mkdir_p(dir, 0700);
	if (r < 0)
		return pilot_error_prefix(r, "cannot create data directory '%s'", dir);
	/* mkdir_p leaves an existing directory's mode alone: the tokens' hashes and the
	 * jobs' secrets live here, so tighten it. */
	if (chmod(dir, 0700) < 0)
		return pilot_error_errno(PILOT_EIO, errno, "cannot set the mode of '%s'", dir);
	struct pilot_local_options lo = { .quick_check = 1 };
	struct pilot_store *st = NULL;
	if ((r = pilot_store_open(dir, &lo, &st)) < 0)
		return r;
	struct pilot_token_list l = { 0 };
	if ((r = pilot_store_token_list(st, &l)) < 0) {
		pilot_store_close(st);
		return r;
	}
	size_t n = l.n;
	pilot_token_list_clear(&l);
	if (n > 0) {
		pilot_store_close(st);
		return pilot_error_set(PILOT_ECONFLICT,
				       "data directory '%s' is initialised already; create more tokens with "
				       "'pilot token create --data %s'",
				       dir, dir);
	}
	r = pilot_server_token_create(st, "admin", PILOT_SCOPE_ADMIN, 0, NULL, false, secret, out);
	pilot_store_close(st);
	return r;
}

int pilot_server_check(const char *data_dir)
{
	_cleanup_free_ char *def = data_dir ? NULL : pilot_server_default_data_dir();
	const char *dir = data_dir ? data_dir : def;
	struct stat sb;
	if (stat(dir, &sb) < 0)
		return pilot_error_errno(PILOT_ENOTFOUND, errno, "cannot open data directory '%s'", dir);
	/* The data at rest: the lock a running server holds (server.c) is taken for the
	 * check, so no server is running now and none starts meanwhile. */
	_cleanup_free_ char *lock = pilot_path_join(dir, "server.lock");
	_cleanup_close_ int lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lock_fd < 0)
		return pilot_error_errno(PILOT_EIO, errno, "cannot open '%s'", lock);
	if (flock(lock_fd, LOCK_EX | LOCK_NB) < 0)
		return errno == EWOULDBLOCK
			       ? pilot_error_set(PILOT_EUNAVAILABLE,
						 "a pilot server is running on '%s': stop it first (check reads the data at rest)",
						 dir)
			       : pilot_error_errno(PILOT_EIO, errno, "cannot lock '%s'", lock);
	struct pilot_local_options lo = { .quick_check = -1, .no_auto_reap = true };
	struct pilot_store *st = NULL;
	int r = pilot_store_open(dir, &lo, &st);
	if (r < 0)
		return r;
	r = pilot_store_integrity_check(st);
	pilot_store_close(st);
	if (r < 0)
		return r;
	/* Opening the store removed abandoned temp blobs; anything left is held by a live
	 * writer or is a leak. */
	_cleanup_free_ char *tmp = pilot_path_join(dir, "blobs/tmp");
	DIR *d = opendir(tmp);
	size_t stray = 0;
	if (d) {
		struct dirent *e;
		while ((e = readdir(d)))
			if (e->d_name[0] != '.')
				stray++;
		closedir(d);
	}
	if (stray)
		return pilot_error_set(PILOT_EIO, "%zu temp blob%s left in '%s'", stray, stray == 1 ? "" : "s", tmp);
	return 0;
}
