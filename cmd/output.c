/* --output json|yaml for the commands that print the model. JSON is jansson's own
 * (indented by 2, keys in the order the model writes them). YAML is written here from
 * the same JSON value, in block style: strings that could read as anything else
 * (numbers, booleans, null, YAML punctuation, spaces at the ends, control characters)
 * are double-quoted with JSON's escapes, which YAML's double-quoted style shares, so
 * a YAML parser gives back exactly the JSON document. */
#include <string.h>
#include <strings.h>

#include "runs.h"

int output_parse(struct pilot_ctx *ctx, const char *arg, const char *text_name, enum output_format *out)
{
	if (!arg || !strcmp(arg, text_name))
		*out = OUTPUT_TEXT;
	else if (!strcmp(arg, "json"))
		*out = OUTPUT_JSON;
	else if (!strcmp(arg, "yaml"))
		*out = OUTPUT_YAML;
	else
		return cmd_usage_error(ctx, "unknown output format '%s' (expected %s, json or yaml)", arg, text_name);
	return 0;
}

static bool reserved_word(const char *s)
{
	static const char *const words[] = { "null", "true", "false", "yes", "no", "on", "off", "y", "n", "~" };
	for (size_t i = 0; i < ARRAY_SIZE(words); i++)
		if (!strcasecmp(s, words[i]))
			return true;
	return false;
}

static bool looks_numeric(const char *s)
{
	const char *p = s;
	if (*p == '+' || *p == '-')
		p++;
	if (*p == '.' && (!strcasecmp(p, ".inf") || !strcasecmp(p, ".nan")))
		return true;
	bool digit = false;
	for (; *p; p++) {
		if (*p >= '0' && *p <= '9')
			digit = true;
		else if (!strchr(".eExXoO_:abcdefABCDEF+-", *p))
			return false;
	}
	return digit;
}

/* Plain (unquoted) only for a conservative set of strings. */
static bool plain_ok(const char *s)
{
	if (!*s || reserved_word(s) || looks_numeric(s))
		return false;
	if (strchr("-?:,[]{}#&*!|>'\"%@` ", s[0]))
		return false;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p < 0x20 || *p == 0x7f)
			return false;
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      strchr("_./@+-=()", *p) || *p >= 0x80 || *p == ' '))
			return false;
	}
	/* ": " and " #" start a mapping or a comment inside a plain scalar. */
	if (strstr(s, ": ") || strstr(s, " #") || s[strlen(s) - 1] == ' ' || s[strlen(s) - 1] == ':')
		return false;
	return true;
}

static void put_string(struct pilot_buf *b, const char *s)
{
	if (plain_ok(s)) {
		pilot_buf_puts(b, s);
		return;
	}
	json_t *j = json_string(s);
	char *q = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
	pilot_buf_puts(b, q ? q : "\"\"");
	free(q);
	json_decref(j);
}

static bool is_block(const json_t *v)
{
	return (json_is_object(v) && json_object_size(v)) || (json_is_array(v) && json_array_size(v));
}

static void put_scalar(struct pilot_buf *b, const json_t *v)
{
	if (json_is_string(v)) {
		put_string(b, json_string_value(v));
	} else if (json_is_object(v)) {
		pilot_buf_puts(b, "{}");
	} else if (json_is_array(v)) {
		pilot_buf_puts(b, "[]");
	} else {
		char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
		pilot_buf_puts(b, s ? s : "null");
		free(s);
	}
}

static void pad(struct pilot_buf *b, int n)
{
	for (int i = 0; i < n; i++)
		pilot_buf_putc(b, ' ');
}

/* A non-empty object or array, one entry a line at indent; the first entry continues
 * the current line when first_inline (right after "- "). */
static void put_block(struct pilot_buf *b, const json_t *v, int indent, bool first_inline)
{
	bool first = true;
	if (json_is_object(v)) {
		const char *key;
		json_t *val;
		json_object_foreach((json_t *)v, key, val) {
			if (!(first && first_inline))
				pad(b, indent);
			first = false;
			put_string(b, key);
			pilot_buf_putc(b, ':');
			if (!is_block(val)) {
				pilot_buf_putc(b, ' ');
				put_scalar(b, val);
				pilot_buf_putc(b, '\n');
			} else {
				pilot_buf_putc(b, '\n');
				put_block(b, val, indent + 2, false);
			}
		}
		return;
	}
	size_t i;
	json_t *item;
	json_array_foreach(v, i, item) {
		if (!(first && first_inline))
			pad(b, indent);
		first = false;
		pilot_buf_puts(b, "- ");
		if (!is_block(item)) {
			put_scalar(b, item);
			pilot_buf_putc(b, '\n');
		} else {
			put_block(b, item, indent + 2, true);
		}
	}
}

void output_yaml(struct pilot_buf *b, const json_t *v, int indent)
{
	if (is_block(v)) {
		put_block(b, v, indent, false);
	} else {
		pad(b, indent);
		put_scalar(b, v);
		pilot_buf_putc(b, '\n');
	}
}

void output_value(json_t *v, enum output_format f)
{
	if (f == OUTPUT_YAML) {
		_cleanup_buf_ struct pilot_buf b = PILOT_BUF_INIT;
		output_yaml(&b, v, 0);
		fputs(pilot_buf_str(&b), stdout);
	} else {
		char *text = json_dumps(v, JSON_INDENT(2) | JSON_ENCODE_ANY);
		if (text)
			puts(text);
		free(text);
	}
	json_decref(v);
}
