/* The user config file and the precedence rule (flag > env > profile > default),
 * implemented once for every command. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include <yaml.h>

#include "pilot/config.h"
#include "pilot/util.h"

const struct pilot_config_key pilot_config_keys[] = {
	{ "cacert", "PILOT_CACERT", NULL, "CA bundle for the server's TLS certificate", false },
	{ "data_dir", "PILOT_DATA_DIR", NULL, "local store directory (default $XDG_DATA_HOME/pilot)", false },
	{ "max_bundle_size", "PILOT_MAX_BUNDLE_SIZE", "2GiB", "largest bundle, uncompressed", false },
	{ "network", "PILOT_NETWORK", NULL, "container network (default: the engine's)", false },
	{ "pull", "PILOT_PULL", "missing", "image pull policy: always, missing, never", false },
	{ "runtime", "PILOT_RUNTIME", NULL, "docker, podman or host (default: first that answers)", false },
	{ "server", "PILOT_SERVER", NULL, "server URL; without one pilot works locally", false },
	{ "token", "PILOT_TOKEN", NULL, "API token for the server", true },
};
const size_t pilot_config_nkeys = ARRAY_SIZE(pilot_config_keys);

#define CONFIG_MAX_BYTES (1024 * 1024)

const struct pilot_config_key *pilot_config_key_find(const char *name)
{
	for (size_t i = 0; i < pilot_config_nkeys; i++)
		if (!strcmp(pilot_config_keys[i].name, name))
			return &pilot_config_keys[i];
	return NULL;
}

static int unknown_key(const char *path, const yaml_node_t *node, const char *key)
{
	const char *names[ARRAY_SIZE(pilot_config_keys)];
	for (size_t i = 0; i < pilot_config_nkeys; i++)
		names[i] = pilot_config_keys[i].name;
	const char *s = pilot_suggest(key, names, pilot_config_nkeys);
	return pilot_error_set(PILOT_EINVALID, "%s:%zu:%zu: unknown key '%s'%s%s%s", path,
			       node->start_mark.line + 1, node->start_mark.column + 1, key,
			       s ? " (did you mean '" : "", s ? s : "", s ? "'?)" : "");
}

char *pilot_config_default_path(void)
{
	_cleanup_free_ char *dir = pilot_config_home();
	return pilot_path_join(dir, "config.yaml");
}

static struct pilot_config_profile *profile_find(const struct pilot_config *cfg, const char *name, bool create)
{
	struct pilot_config *c = (struct pilot_config *)cfg;
	for (size_t i = 0; i < c->nprofiles; i++)
		if (!strcmp(c->profiles[i].name, name))
			return &c->profiles[i];
	if (!create)
		return NULL;
	c->profiles = pilot_xrealloc(c->profiles, (c->nprofiles + 1) * sizeof(*c->profiles));
	struct pilot_config_profile *p = &c->profiles[c->nprofiles++];
	p->name = pilot_xstrdup(name);
	p->entries = NULL;
	p->n = 0;
	return p;
}

static int bad_node(const char *path, const yaml_node_t *n, const char *what)
{
	return pilot_error_set(PILOT_EINVALID, "%s:%zu:%zu: %s", path, n->start_mark.line + 1,
			       n->start_mark.column + 1, what);
}

static int parse_doc(struct pilot_config *cfg, yaml_document_t *doc)
{
	yaml_node_t *root = yaml_document_get_root_node(doc);
	if (!root || (root->type == YAML_SCALAR_NODE && !root->data.scalar.length))
		return 0; /* empty file */
	if (root->type != YAML_MAPPING_NODE)
		return bad_node(cfg->path, root, "expected a mapping at the top level");
	for (yaml_node_pair_t *pr = root->data.mapping.pairs.start; pr < root->data.mapping.pairs.top; pr++) {
		yaml_node_t *k = yaml_document_get_node(doc, pr->key);
		yaml_node_t *v = yaml_document_get_node(doc, pr->value);
		if (k->type != YAML_SCALAR_NODE)
			return bad_node(cfg->path, k, "expected a key");
		const char *key = (const char *)k->data.scalar.value;
		if (!strcmp(key, "current_profile")) {
			if (v->type != YAML_SCALAR_NODE)
				return bad_node(cfg->path, v, "current_profile: expected a profile name");
			free(cfg->current_profile);
			cfg->current_profile = pilot_xstrdup((const char *)v->data.scalar.value);
		} else if (!strcmp(key, "profiles")) {
			if (v->type != YAML_MAPPING_NODE)
				return bad_node(cfg->path, v, "profiles: expected a mapping of profile names");
			for (yaml_node_pair_t *pp = v->data.mapping.pairs.start; pp < v->data.mapping.pairs.top; pp++) {
				yaml_node_t *pk = yaml_document_get_node(doc, pp->key);
				yaml_node_t *pv = yaml_document_get_node(doc, pp->value);
				if (pk->type != YAML_SCALAR_NODE)
					return bad_node(cfg->path, pk, "profiles: expected a profile name");
				const char *pname = (const char *)pk->data.scalar.value;
				struct pilot_config_profile *prof = profile_find(cfg, pname, true);
				if (pv->type == YAML_SCALAR_NODE && !pv->data.scalar.length)
					continue;
				if (pv->type != YAML_MAPPING_NODE)
					return bad_node(cfg->path, pv, "expected a mapping of settings");
				for (yaml_node_pair_t *e = pv->data.mapping.pairs.start; e < pv->data.mapping.pairs.top; e++) {
					yaml_node_t *ek = yaml_document_get_node(doc, e->key);
					yaml_node_t *ev = yaml_document_get_node(doc, e->value);
					if (ek->type != YAML_SCALAR_NODE)
						return bad_node(cfg->path, ek, "expected a key");
					const char *ename = (const char *)ek->data.scalar.value;
					if (!pilot_config_key_find(ename))
						return unknown_key(cfg->path, ek, ename);
					if (ev->type != YAML_SCALAR_NODE)
						return bad_node(cfg->path, ev, "expected a plain value");
					prof->entries = pilot_xrealloc(prof->entries, (prof->n + 1) * sizeof(*prof->entries));
					prof->entries[prof->n].key = pilot_xstrdup(ename);
					prof->entries[prof->n].value = pilot_xstrdup((const char *)ev->data.scalar.value);
					prof->n++;
				}
			}
		} else {
			const char *top[] = { "current_profile", "profiles" };
			const char *s = pilot_suggest(key, top, 2);
			return pilot_error_set(PILOT_EINVALID, "%s:%zu:%zu: unknown key '%s'%s%s%s", cfg->path,
					       k->start_mark.line + 1, k->start_mark.column + 1, key,
					       s ? " (did you mean '" : "", s ? s : "", s ? "'?)" : "");
		}
	}
	return 0;
}

static bool holds_token(const struct pilot_config *cfg)
{
	for (size_t i = 0; i < cfg->nprofiles; i++)
		for (size_t j = 0; j < cfg->profiles[i].n; j++)
			if (!strcmp(cfg->profiles[i].entries[j].key, "token"))
				return true;
	return false;
}

int pilot_config_load(const struct pilot_config_overrides *ov, struct pilot_config **out)
{
	struct pilot_config *cfg = pilot_xcalloc(1, sizeof(*cfg));
	_cleanup_buf_ struct pilot_buf text = PILOT_BUF_INIT;
	int r = 0;

	cfg->path = ov && ov->path ? pilot_xstrdup(ov->path) : pilot_config_default_path();
	cfg->server_flag = ov && ov->server ? pilot_xstrdup(ov->server) : NULL;

	struct stat st;
	if (stat(cfg->path, &st) == 0) {
		cfg->exists = true;
		r = pilot_read_file(cfg->path, CONFIG_MAX_BYTES, &text);
		if (r < 0)
			goto fail;
		yaml_parser_t parser;
		yaml_document_t doc;
		yaml_parser_initialize(&parser);
		yaml_parser_set_input_string(&parser, (const unsigned char *)pilot_buf_str(&text), text.len);
		if (!yaml_parser_load(&parser, &doc)) {
			r = pilot_error_set(PILOT_EINVALID, "%s:%zu:%zu: %s", cfg->path, parser.problem_mark.line + 1,
					    parser.problem_mark.column + 1, parser.problem ? parser.problem : "invalid YAML");
			yaml_parser_delete(&parser);
			goto fail;
		}
		r = parse_doc(cfg, &doc);
		yaml_document_delete(&doc);
		yaml_parser_delete(&parser);
		if (r < 0)
			goto fail;
		if ((st.st_mode & 077) && holds_token(cfg)) {
			r = pilot_error_set(PILOT_EAUTH,
					    "config file '%s' holds a token but has mode %04o, readable by others; "
					    "run 'chmod 600 %s'", cfg->path, (unsigned)(st.st_mode & 07777), cfg->path);
			goto fail;
		}
	} else if (errno != ENOENT) {
		r = pilot_error_errno(PILOT_EIO, errno, "cannot read config file '%s'", cfg->path);
		goto fail;
	} else if (ov && ov->path) {
		r = pilot_error_set(PILOT_ENOTFOUND, "config file '%s' does not exist", cfg->path);
		goto fail;
	}

	const char *env_profile = getenv("PILOT_PROFILE");
	if (ov && ov->profile)
		cfg->profile = pilot_xstrdup(ov->profile);
	else if (env_profile && *env_profile)
		cfg->profile = pilot_xstrdup(env_profile);
	else if (cfg->current_profile)
		cfg->profile = pilot_xstrdup(cfg->current_profile);
	else
		cfg->profile = pilot_xstrdup("default");
	/* Naming a profile that does not exist is a mistake worth stopping for, except for
	 * the implicit "default". */
	if (strcmp(cfg->profile, "default") && !profile_find(cfg, cfg->profile, false) &&
	    (ov && ov->profile ? true : (env_profile && *env_profile) || cfg->current_profile)) {
		r = pilot_error_set(PILOT_ENOTFOUND, "profile '%s' is not in config file '%s'", cfg->profile,
				    cfg->path);
		goto fail;
	}
	*out = cfg;
	return 0;
fail:
	pilot_config_free(cfg);
	*out = NULL;
	return r;
}

void pilot_config_free(struct pilot_config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < cfg->nprofiles; i++) {
		for (size_t j = 0; j < cfg->profiles[i].n; j++) {
			free(cfg->profiles[i].entries[j].key);
			free(cfg->profiles[i].entries[j].value);
		}
		free(cfg->profiles[i].entries);
		free(cfg->profiles[i].name);
	}
	free(cfg->profiles);
	free(cfg->current_profile);
	free(cfg->profile);
	free(cfg->server_flag);
	free(cfg->path);
	free(cfg);
}

const char *pilot_config_profile_get(const struct pilot_config *cfg, const char *profile, const char *key)
{
	const struct pilot_config_profile *p = profile_find(cfg, profile, false);
	if (!p)
		return NULL;
	for (size_t i = 0; i < p->n; i++)
		if (!strcmp(p->entries[i].key, key))
			return p->entries[i].value;
	return NULL;
}

const char *pilot_config_get(const struct pilot_config *cfg, const char *key, const char **source)
{
	const struct pilot_config_key *k = pilot_config_key_find(key);
	const char *v, *dummy;
	if (!source)
		source = &dummy;
	if (!strcmp(key, "server") && cfg && cfg->server_flag) {
		*source = "flag";
		return cfg->server_flag;
	}
	if (k && k->env && (v = getenv(k->env)) && *v) {
		*source = "env";
		return v;
	}
	if (cfg && (v = pilot_config_profile_get(cfg, cfg->profile, key))) {
		*source = "profile";
		return v;
	}
	*source = "default";
	return k ? k->def : NULL;
}

int pilot_config_set(struct pilot_config *cfg, const char *profile, const char *key, const char *value)
{
	if (!pilot_config_key_find(key)) {
		const char *names[ARRAY_SIZE(pilot_config_keys)];
		for (size_t i = 0; i < pilot_config_nkeys; i++)
			names[i] = pilot_config_keys[i].name;
		const char *s = pilot_suggest(key, names, pilot_config_nkeys);
		return pilot_error_set(PILOT_EINVALID, "unknown config key '%s'%s%s%s", key,
				       s ? " (did you mean '" : "", s ? s : "", s ? "'?)" : "");
	}
	struct pilot_config_profile *p = profile_find(cfg, profile, value != NULL);
	if (!p)
		return 0;
	for (size_t i = 0; i < p->n; i++) {
		if (strcmp(p->entries[i].key, key))
			continue;
		if (value) {
			free(p->entries[i].value);
			p->entries[i].value = pilot_xstrdup(value);
		} else {
			free(p->entries[i].key);
			free(p->entries[i].value);
			memmove(&p->entries[i], &p->entries[i + 1], (p->n - i - 1) * sizeof(*p->entries));
			p->n--;
		}
		return 0;
	}
	if (value) {
		p->entries = pilot_xrealloc(p->entries, (p->n + 1) * sizeof(*p->entries));
		p->entries[p->n].key = pilot_xstrdup(key);
		p->entries[p->n].value = pilot_xstrdup(value);
		p->n++;
	}
	return 0;
}

int pilot_config_set_current(struct pilot_config *cfg, const char *profile)
{
	free(cfg->current_profile);
	cfg->current_profile = profile ? pilot_xstrdup(profile) : NULL;
	return 0;
}

/* Values are written double-quoted with YAML escapes so any string survives. */
static void put_quoted(struct pilot_buf *b, const char *s)
{
	pilot_buf_putc(b, '"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			pilot_buf_printf(b, "\\%c", c);
		else if (c < 0x20)
			pilot_buf_printf(b, "\\x%02x", c);
		else
			pilot_buf_putc(b, (char)c);
	}
	pilot_buf_putc(b, '"');
}

int pilot_config_save(const struct pilot_config *cfg)
{
	_cleanup_buf_ struct pilot_buf b = PILOT_BUF_INIT;
	_cleanup_free_ char *dir = pilot_xstrdup(cfg->path);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		int r = pilot_mkdir_p(dir, 0700);
		if (r < 0)
			return r;
	}
	pilot_buf_puts(&b, "# pilot configuration; edit with 'pilot config set|unset'. See pilot-config(1).\n");
	if (cfg->current_profile) {
		pilot_buf_puts(&b, "current_profile: ");
		put_quoted(&b, cfg->current_profile);
		pilot_buf_putc(&b, '\n');
	}
	pilot_buf_puts(&b, "profiles:\n");
	for (size_t i = 0; i < cfg->nprofiles; i++) {
		const struct pilot_config_profile *p = &cfg->profiles[i];
		pilot_buf_puts(&b, "  ");
		put_quoted(&b, p->name);
		pilot_buf_puts(&b, p->n ? ":\n" : ": {}\n");
		for (size_t j = 0; j < p->n; j++) {
			pilot_buf_printf(&b, "    %s: ", p->entries[j].key);
			put_quoted(&b, p->entries[j].value);
			pilot_buf_putc(&b, '\n');
		}
	}
	return pilot_write_file_atomic(cfg->path, b.data, b.len, 0600);
}
