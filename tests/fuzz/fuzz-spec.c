/* libFuzzer target for lib/spec: any bytes through the YAML loader, and through the
 * JSON reader. Whatever loads must survive the normal-form round trip unchanged. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pilot/spec.h"

static const char *fuzz_getenv(const char *name, void *ud)
{
	(void)ud;
	if (!strcmp(name, "HOME"))
		return "/home/fuzz";
	if (!strcmp(name, "EMPTY"))
		return "";
	if (!strcmp(name, "BYTES"))
		return "\xff";
	return NULL;
}

/* to_json(from_json(to_json(s))) must equal to_json(s). */
static void round_trip(const struct pilot_spec *s)
{
	char *j1 = pilot_spec_to_json(s);
	struct pilot_spec *b = NULL;
	if (!j1 || pilot_spec_from_json(j1, &b) < 0)
		abort();
	char *j2 = pilot_spec_to_json(b);
	if (!j2 || strcmp(j1, j2))
		abort();
	free(j1);
	free(j2);
	pilot_spec_free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* A leading '#' (a YAML comment) also exercises --param overrides. */
	static const char *const params[] = { "lr=0.5", "x=${HOME}", "bad" };
	struct pilot_spec_vars vars = { .getenv = fuzz_getenv };
	struct pilot_spec *s = NULL;
	if (size && data[0] == '#') {
		vars.params = params;
		vars.nparams = size > 1 && data[1] == '!' ? 3 : 2;
	}
	struct pilot_spec_pipeline *p = NULL;
	if (pilot_spec_load_any_string((const char *)data, size, "fuzz.yaml", &vars, &s, &p) == 0) {
		if (s)
			round_trip(s);
		/* Every job named once, each after the jobs it needs. */
		for (size_t i = 0; p && i < p->njobs; i++) {
			round_trip(p->jobs[i].spec);
			if (pilot_spec_pipeline_find(p, p->jobs[i].spec->name) != (int)i)
				abort();
			for (size_t k = 0; k < p->jobs[i].nneeds; k++) {
				int at = pilot_spec_pipeline_find(p, p->jobs[i].needs[k]);
				if (at < 0 || at >= (int)i)
					abort();
			}
		}
		pilot_spec_free(s);
		pilot_spec_pipeline_free(p);
	} else {
		size_t n;
		const struct pilot_spec_diag *d = pilot_spec_last_diags(&n);
		for (size_t i = 0; i < n; i++)
			free(pilot_spec_diag_string(&d[i]));
	}

	char *text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (pilot_spec_from_json(text, &s) == 0) {
		round_trip(s);
		pilot_spec_free(s);
	}
	free(text);
	return 0;
}
