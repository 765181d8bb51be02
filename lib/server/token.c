/* API tokens: the secret's shape and checksum, its hash, scopes, the JSON form of a
 * token record, and the server data directory's first-time set-up. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pilot/server.h"
#include "pilot/store.h"

#define BODY_HEX 40
#define SUM_HEX 8

static const char *const scope_names[] = { "read", "submit", "cancel", "agent", "admin" };

static void checksum(const char *prefix_and_body, size_t n, char out[SUM_HEX + 1])
{
	char full[65];
	pilot_sha256_hex(prefix_and_body, n, full);
	memcpy(out, full, SUM_HEX);
	out[SUM_HEX] = '\0';
}

void pilot_token_generate(char out[PILOT_TOKEN_SIZE])
{
	char body[BODY_HEX + 1];
	pilot_random_hex(body, BODY_HEX / 2);
	size_t p = strlen(PILOT_TOKEN_PREFIX);
	memcpy(out, PILOT_TOKEN_PREFIX, p);
	memcpy(out + p, body, BODY_HEX);
	checksum(out, p + BODY_HEX, out + p + BODY_HEX);
	out[PILOT_TOKEN_LEN] = '\0';
	explicit_bzero(body, sizeof(body));
}

int pilot_token_check(const char *token)
{
	size_t p = strlen(PILOT_TOKEN_PREFIX);
	if (!token || !*token)
		return pilot_error_set(PILOT_EAUTH, "no token");
	if (strncmp(token, PILOT_TOKEN_PREFIX, p) != 0)
		return pilot_error_set(PILOT_EAUTH, "malformed token: it does not start with '%s'", PILOT_TOKEN_PREFIX);
	size_t len = strlen(token);
	if (len != PILOT_TOKEN_LEN)
		return pilot_error_set(PILOT_EAUTH, "malformed token: %zu characters instead of %d", len, PILOT_TOKEN_LEN);
	for (size_t i = p; i < len; i++)
		if (!isxdigit((unsigned char)token[i]) || isupper((unsigned char)token[i]))
			return pilot_error_set(PILOT_EAUTH, "malformed token: unexpected character at position %zu",
					       i + 1);
	char sum[SUM_HEX + 1];
	checksum(token, p + BODY_HEX, sum);
	if (memcmp(sum, token + p + BODY_HEX, SUM_HEX) != 0)
		return pilot_error_set(PILOT_EAUTH, "malformed token: the checksum does not match (a typo?)");
	return 0;
}

void pilot_token_hash(const char *token, char out[65])
{
	pilot_sha256_hex(token, strlen(token), out);
}

int pilot_token_scopes_parse(const char *list, unsigned *out)
{
	unsigned mask = 0;
	const char *p = list ? list : "";
	while (*p) {
		while (*p == ',' || *p == ' ')
			p++;
		if (!*p)
			break;
		size_t n = strcspn(p, ", ");
		bool found = false;
		for (size_t i = 0; i < ARRAY_SIZE(scope_names); i++)
			if (strlen(scope_names[i]) == n && !strncmp(p, scope_names[i], n)) {
				mask |= 1u << i;
				found = true;
			}
		if (!found) {
			_cleanup_free_ char *w = pilot_xstrndup(p, n);
			const char *s = pilot_suggest(w, scope_names, ARRAY_SIZE(scope_names));
			return pilot_error_set(PILOT_EINVALID,
					       "unknown scope '%s'%s%s%s (scopes: read, submit, cancel, agent, admin)", w,
					       s ? " (did you mean '" : "", s ? s : "", s ? "'?)" : "");
		}
		p += n;
	}
	if (!mask)
		return pilot_error_set(PILOT_EINVALID, "no scope given (scopes: read, submit, cancel, agent, admin)");
	*out = mask;
	return 0;
}

char *pilot_token_scopes_format(unsigned scopes)
{
	struct pilot_buf b = PILOT_BUF_INIT;
	for (size_t i = 0; i < ARRAY_SIZE(scope_names); i++)
		if (scopes & (1u << i)) {
			if (b.len)
				pilot_buf_putc(&b, ' ');
			pilot_buf_puts(&b, scope_names[i]);
		}
	return pilot_buf_steal(&b);
}

bool pilot_token_scopes_allow(unsigned have, unsigned need)
{
	if (have & PILOT_SCOPE_ADMIN)
		return true;
	return (have & need) != 0;
}

int pilot_server_token_create(struct pilot_store *st, const char *name, unsigned scopes, int64_t expires_ms,
			      char secret[PILOT_TOKEN_SIZE], struct pilot_token_record *out)
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
	int r = pilot_store_token_create(st, name, sha, scope_text, expires_ms, out);
	if (r < 0) {
		explicit_bzero(tok, sizeof(tok));
		return r;
	}
	memcpy(secret, tok, PILOT_TOKEN_SIZE);
	explicit_bzero(tok, sizeof(tok));
	return 0;
}

json_t *pilot_token_record_to_json(const struct pilot_token_record *t)
{
	json_t *scopes = json_array();
	const char *p = t->scopes ? t->scopes : "";
	while (*p) {
		while (*p == ' ')
			p++;
		size_t n = strcspn(p, " ");
		if (n)
			json_array_append_new(scopes, json_stringn(p, n));
		p += n;
	}
	json_t *j = json_pack("{s:s,s:s?,s:o,s:I}", "id", t->id, "name", t->name, "scopes", scopes, "created_ms",
			      (json_int_t)t->created_ms);
	if (t->expires_ms)
		json_object_set_new(j, "expires_ms", json_integer(t->expires_ms));
	if (t->revoked_ms)
		json_object_set_new(j, "revoked_ms", json_integer(t->revoked_ms));
	if (t->last_used_ms)
		json_object_set_new(j, "last_used_ms", json_integer(t->last_used_ms));
	return j;
}

static int64_t int_field(const json_t *j, const char *k)
{
	json_t *v = json_object_get(j, k);
	return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

int pilot_token_record_from_json(const json_t *j, struct pilot_token_record *out)
{
	if (!json_is_object(j))
		return pilot_error_set(PILOT_EINVALID, "invalid token record: expected an object");
	const char *id = json_string_value(json_object_get(j, "id"));
	if (!id || strlen(id) >= PILOT_ID_SIZE)
		return pilot_error_set(PILOT_EINVALID, "invalid token record: bad 'id'");
	struct pilot_token_record t = { 0 };
	snprintf(t.id, sizeof(t.id), "%s", id);
	const char *name = json_string_value(json_object_get(j, "name"));
	t.name = name ? pilot_xstrdup(name) : NULL;
	json_t *scopes = json_object_get(j, "scopes");
	struct pilot_buf b = PILOT_BUF_INIT;
	if (json_is_array(scopes)) {
		size_t i;
		json_t *v;
		json_array_foreach(scopes, i, v) {
			if (!json_is_string(v))
				continue;
			if (b.len)
				pilot_buf_putc(&b, ' ');
			pilot_buf_puts(&b, json_string_value(v));
		}
	} else if (json_is_string(scopes)) {
		pilot_buf_puts(&b, json_string_value(scopes));
	}
	t.scopes = pilot_buf_steal(&b);
	t.created_ms = int_field(j, "created_ms");
	t.expires_ms = int_field(j, "expires_ms");
	t.revoked_ms = int_field(j, "revoked_ms");
	t.last_used_ms = int_field(j, "last_used_ms");
	*out = t;
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
	r = pilot_server_token_create(st, "admin", PILOT_SCOPE_ADMIN, 0, secret, out);
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
