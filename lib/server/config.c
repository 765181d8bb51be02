/* The server's settings: a flat YAML file (--config FILE) whose keys are the long
 * names of the `pilot server` flags, and the one function that turns key/value
 * settings — from the file or from flags — into struct pilot_server_options. */
#include <string.h>

#include <jansson.h>
#include <yaml.h>

#include "pilot/server.h"

const char *const pilot_server_config_keys[] = {
	"listen",
	"data",
	"tls_cert",
	"tls_key",
	"threads",
	"max_connections",
	"max_conns_per_ip",
	"connection_timeout",
	"request_timeout",
	"upload_timeout",
	"max_wait",
	"lease_ttl",
	"reap_interval",
	"keepalive",
	"max_json_body",
	"max_log_chunk",
	"max_bundle_size",
	"max_artifact_size",
	"log_format",
	"pools",
	"require_registration",
	NULL,
};

static size_t nkeys(void)
{
	size_t n = 0;
	while (pilot_server_config_keys[n])
		n++;
	return n;
}

static bool known_key(const char *k)
{
	for (size_t i = 0; pilot_server_config_keys[i]; i++)
		if (!strcmp(pilot_server_config_keys[i], k))
			return true;
	return false;
}

static int unknown_key(const char *origin, const char *key, size_t line, size_t col)
{
	const char *s = pilot_suggest(key, (const char *const *)pilot_server_config_keys, nkeys());
	if (line)
		return pilot_error_set(PILOT_EINVALID, "%s:%zu:%zu: unknown key '%s'%s%s%s", origin, line, col, key,
				       s ? " (did you mean '" : "", s ? s : "", s ? "'?)" : "");
	return pilot_error_set(PILOT_EINVALID, "%s: unknown setting '%s'%s%s%s", origin, key, s ? " (did you mean '" : "",
			       s ? s : "", s ? "'?)" : "");
}

/* A YAML node as JSON (scalars as strings; their meaning is checked where used). */
static json_t *node_json(yaml_document_t *doc, yaml_node_t *n, int depth)
{
	if (!n || depth > 16)
		return json_null();
	switch (n->type) {
	case YAML_SCALAR_NODE:
		return json_stringn((const char *)n->data.scalar.value, n->data.scalar.length);
	case YAML_SEQUENCE_NODE: {
		json_t *a = json_array();
		for (yaml_node_item_t *i = n->data.sequence.items.start; i < n->data.sequence.items.top; i++)
			json_array_append_new(a, node_json(doc, yaml_document_get_node(doc, *i), depth + 1));
		return a;
	}
	case YAML_MAPPING_NODE: {
		json_t *o = json_object();
		for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
			yaml_node_t *k = yaml_document_get_node(doc, p->key);
			if (k && k->type == YAML_SCALAR_NODE)
				json_object_set_new(o, (const char *)k->data.scalar.value,
						    node_json(doc, yaml_document_get_node(doc, p->value), depth + 1));
		}
		return o;
	}
	default:
		return json_null();
	}
}

int pilot_server_config_read(const char *path, struct pilot_kvs *kvs)
{
	_cleanup_buf_ struct pilot_buf text = PILOT_BUF_INIT;
	int r = pilot_read_file(path, 1024 * 1024, &text);
	if (r < 0)
		return pilot_error_prefix(r, "cannot read server config '%s'", path);
	yaml_parser_t parser;
	yaml_document_t doc;
	if (!yaml_parser_initialize(&parser))
		return pilot_error_set(PILOT_ENOMEM, "cannot parse '%s'", path);
	yaml_parser_set_input_string(&parser, (const unsigned char *)text.data, text.len);
	if (!yaml_parser_load(&parser, &doc)) {
		r = pilot_error_set(PILOT_EINVALID, "%s:%zu:%zu: %s", path, parser.problem_mark.line + 1,
				    parser.problem_mark.column + 1, parser.problem ? parser.problem : "malformed YAML");
		yaml_parser_delete(&parser);
		return r;
	}
	yaml_node_t *root = yaml_document_get_root_node(&doc);
	r = 0;
	if (!root || (root->type == YAML_SCALAR_NODE && !root->data.scalar.length))
		goto out;
	if (root->type != YAML_MAPPING_NODE) {
		r = pilot_error_set(PILOT_EINVALID, "%s:%zu:%zu: expected a mapping of settings", path,
				    root->start_mark.line + 1, root->start_mark.column + 1);
		goto out;
	}
	for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(&doc, p->key);
		yaml_node_t *v = yaml_document_get_node(&doc, p->value);
		if (k->type != YAML_SCALAR_NODE) {
			r = pilot_error_set(PILOT_EINVALID, "%s:%zu:%zu: expected a key", path, k->start_mark.line + 1,
					    k->start_mark.column + 1);
			goto out;
		}
		const char *key = (const char *)k->data.scalar.value;
		if (!known_key(key)) {
			r = unknown_key(path, key, k->start_mark.line + 1, k->start_mark.column + 1);
			goto out;
		}
		if (!strcmp(key, "pools")) {
			/* The pools are checked as the server starts, as JSON. */
			json_t *j = node_json(&doc, v, 0);
			char *js = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
			json_decref(j);
			pilot_kvs_set(kvs, key, js ? js : "null");
			free(js);
			continue;
		}
		if (v->type != YAML_SCALAR_NODE) {
			r = pilot_error_set(PILOT_EINVALID, "%s:%zu:%zu: %s: expected a plain value", path,
					    v->start_mark.line + 1, v->start_mark.column + 1, key);
			goto out;
		}
		pilot_kvs_set(kvs, key, (const char *)v->data.scalar.value);
	}
out:
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	return r;
}

static int bad(const char *origin, const char *key, const char *value)
{
	(void)value;
	return pilot_error_prefix(PILOT_EINVALID, "%s: %s", origin, key);
}

static int set_duration(const char *origin, const char *key, const char *v, int64_t *out)
{
	int64_t ms;
	if (pilot_parse_duration(v, &ms) < 0)
		return bad(origin, key, v);
	if (ms <= 0)
		return pilot_error_set(PILOT_EINVALID, "%s: %s must be positive", origin, key);
	*out = ms;
	return 0;
}

static int set_size(const char *origin, const char *key, const char *v, uint64_t *out)
{
	uint64_t n;
	if (pilot_parse_size(v, &n) < 0)
		return bad(origin, key, v);
	if (n == 0)
		return pilot_error_set(PILOT_EINVALID, "%s: %s must be positive", origin, key);
	*out = n;
	return 0;
}

/* One of two words: no (false) or yes (true). */
static int set_either(const char *origin, const char *key, const char *v, const char *no, const char *yes, bool *out)
{
	if (strcmp(v, no) && strcmp(v, yes))
		return pilot_error_set(PILOT_EINVALID, "%s: %s '%s': expected %s or %s", origin, key, v, no, yes);
	*out = !strcmp(v, yes);
	return 0;
}

static int set_int(const char *origin, const char *key, const char *v, int64_t min, int64_t max, int *out)
{
	int64_t n;
	if (pilot_parse_int64(v, min, max, &n) < 0)
		return bad(origin, key, v);
	*out = (int)n;
	return 0;
}

int pilot_server_options_apply(struct pilot_server_options *o, const struct pilot_kvs *kvs, const char *origin)
{
	if (!origin)
		origin = "server settings";
	for (size_t i = 0; i < kvs->n; i++) {
		const char *k = kvs->items[i].key, *v = kvs->items[i].value;
		int r = 0;
		pilot_error_clear();
		if (!v)
			continue;
		if (!strcmp(k, "listen"))
			o->listen = v;
		else if (!strcmp(k, "data"))
			o->data_dir = v;
		else if (!strcmp(k, "tls_cert"))
			o->tls_cert = v;
		else if (!strcmp(k, "tls_key"))
			o->tls_key = v;
		else if (!strcmp(k, "threads"))
			r = set_int(origin, k, v, 1, 256, &o->threads);
		else if (!strcmp(k, "max_connections"))
			r = set_int(origin, k, v, 1, 1000000, &o->max_connections);
		else if (!strcmp(k, "max_conns_per_ip"))
			r = set_int(origin, k, v, -1, 1000000, &o->max_conns_per_ip);
		else if (!strcmp(k, "connection_timeout"))
			r = set_duration(origin, k, v, &o->connection_timeout_ms);
		else if (!strcmp(k, "request_timeout"))
			r = set_duration(origin, k, v, &o->request_timeout_ms);
		else if (!strcmp(k, "upload_timeout"))
			r = set_duration(origin, k, v, &o->upload_timeout_ms);
		else if (!strcmp(k, "max_wait"))
			r = set_duration(origin, k, v, &o->max_wait_ms);
		else if (!strcmp(k, "lease_ttl"))
			r = set_duration(origin, k, v, &o->lease_ttl_ms);
		else if (!strcmp(k, "reap_interval"))
			r = set_duration(origin, k, v, &o->reap_interval_ms);
		else if (!strcmp(k, "keepalive"))
			r = set_duration(origin, k, v, &o->keepalive_ms);
		else if (!strcmp(k, "max_json_body"))
			r = set_size(origin, k, v, &o->max_json_body);
		else if (!strcmp(k, "max_log_chunk"))
			r = set_size(origin, k, v, &o->max_log_chunk);
		else if (!strcmp(k, "max_bundle_size"))
			r = set_size(origin, k, v, &o->max_bundle_size);
		else if (!strcmp(k, "max_artifact_size"))
			r = set_size(origin, k, v, &o->max_artifact_size);
		else if (!strcmp(k, "pools"))
			o->pools_json = v;
		else if (!strcmp(k, "require_registration"))
			r = set_either(origin, k, v, "false", "true", &o->require_registration);
		else if (!strcmp(k, "log_format"))
			r = set_either(origin, k, v, "text", "json", &o->log_json);
		else
			r = unknown_key(origin, k, 0, 0);
		if (r < 0)
			return r;
	}
	return 0;
}
