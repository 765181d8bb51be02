/* API tokens as values: the secret's shape and checksum, its hash, scopes, and the
 * record's destructors and JSON form. Keeping them here lets the http client check a
 * token and read token records without linking the server. */
#include <ctype.h>
#include <string.h>

#include "pilot/model.h"

#define BODY_HEX 40
#define SUM_HEX 8

static const char *const scope_names[] = { "read", "submit", "cancel", "agent", "admin", "register" };

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
					       "unknown scope '%s'%s%s%s (scopes: read, submit, cancel, agent, admin, register)", w,
					       s ? " (did you mean '" : "", s ? s : "", s ? "'?)" : "");
		}
		p += n;
	}
	if (!mask)
		return pilot_error_set(PILOT_EINVALID, "no scope given (scopes: read, submit, cancel, agent, admin, register)");
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

json_t *pilot_token_scopes_to_json(unsigned scopes)
{
	json_t *a = json_array();
	for (size_t i = 0; i < ARRAY_SIZE(scope_names); i++)
		if (scopes & (1u << i))
			json_array_append_new(a, json_string(scope_names[i]));
	return a;
}

int pilot_token_scopes_from_json(const json_t *v, unsigned *out)
{
	if (json_is_string(v))
		return pilot_token_scopes_parse(json_string_value(v), out);
	if (!json_is_array(v))
		return pilot_error_set(PILOT_EINVALID, "'scopes' must be a list such as [\"read\", \"submit\"]");
	_cleanup_buf_ struct pilot_buf b = PILOT_BUF_INIT;
	size_t i;
	json_t *s;
	json_array_foreach(v, i, s) {
		if (!json_is_string(s))
			return pilot_error_set(PILOT_EINVALID, "'scopes' must be a list of strings");
		pilot_buf_puts(&b, json_string_value(s));
		pilot_buf_putc(&b, ' ');
	}
	return pilot_token_scopes_parse(pilot_buf_str(&b), out);
}

bool pilot_token_scopes_allow(unsigned have, unsigned need)
{
	if (have & PILOT_SCOPE_ADMIN)
		return true;
	return (have & need) != 0;
}

void pilot_token_record_clear(struct pilot_token_record *t)
{
	if (!t)
		return;
	free(t->name);
	free(t->scopes);
	free(t->agent);
	memset(t, 0, sizeof(*t));
}

void pilot_token_list_clear(struct pilot_token_list *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++)
		pilot_token_record_clear(&l->items[i]);
	free(l->items);
	memset(l, 0, sizeof(*l));
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
	if (t->agent)
		json_object_set_new(j, "agent", json_string(t->agent));
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
	const char *agent = json_string_value(json_object_get(j, "agent"));
	t.agent = agent ? pilot_xstrdup(agent) : NULL;
	*out = t;
	return 0;
}
