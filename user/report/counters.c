// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Counter tables and the Prometheus text format 0.0.4 (see counters.h). */
#include <stdbool.h>
#include <string.h>
#include "report/counters.h"

static const char *const prom_type[] = {
	[SL_CTR_COUNTER] = SL_PROM_COUNTER,
	[SL_CTR_GAUGE] = SL_PROM_GAUGE,
	[SL_CTR_FLAG] = SL_PROM_GAUGE,
};

static unsigned long long val(const void *base, const struct sl_ctr *c)
{
	__u64 v;

	memcpy(&v, (const char *)base + c->off, sizeof(v));
	return v;
}

void sl_ctr_json(FILE *f, const struct sl_ctr *t, size_t n, const void *base)
{
	const char *sep = "";
	size_t i;

	for (i = 0; i < n; i++) {
		if (!t[i].key)
			continue;
		if (t[i].type == SL_CTR_FLAG)
			fprintf(f, "%s\"%s\":%s", sep, t[i].key,
				val(base, &t[i]) ? "true" : "false");
		else
			fprintf(f, "%s\"%s\":%llu", sep, t[i].key,
				val(base, &t[i]));
		sep = ",";
	}
}

void sl_ctr_prom(FILE *f, const struct sl_ctr *t, size_t n, const void *base)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (!t[i].metric)
			continue;
		if (t[i].help)
			sl_prom_family(f, t[i].metric, prom_type[t[i].type],
				       t[i].help);
		if (t[i].labels)
			fprintf(f, "%s{%s} %llu\n", t[i].metric, t[i].labels,
				val(base, &t[i]));
		else
			fprintf(f, "%s %llu\n", t[i].metric, val(base, &t[i]));
	}
}

void sl_ctr_text(FILE *f, const struct sl_ctr *t, size_t n, const void *base,
		 int width)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (t[i].key)
			fprintf(f, "  %-*s %llu\n", width, t[i].key,
				val(base, &t[i]));
}

/* Label values escape \ " and newline; HELP text \ and newline. */
static void prom_escape(FILE *f, const char *s, bool quote)
{
	for (; *s; s++) {
		if (*s == '\\' || (quote && *s == '"'))
			fprintf(f, "\\%c", *s);
		else if (*s == '\n')
			fputs("\\n", f);
		else
			fputc(*s, f);
	}
}

void sl_prom_family(FILE *f, const char *name, const char *type,
		    const char *help)
{
	fprintf(f, "# HELP %s ", name);
	prom_escape(f, help, false);
	fprintf(f, "\n# TYPE %s %s\n", name, type);
}

void sl_prom_sample(FILE *f, const char *name, const char *k1, const char *v1,
		    const char *k2, const char *v2, unsigned long long v)
{
	fputs(name, f);
	if (k1) {
		fprintf(f, "{%s=\"", k1);
		prom_escape(f, v1, true);
		if (k2) {
			fprintf(f, "\",%s=\"", k2);
			prom_escape(f, v2, true);
		}
		fputs("\"}", f);
	}
	fprintf(f, " %llu\n", v);
}

void sl_prom_one(FILE *f, const char *name, const char *type,
		 const char *help, unsigned long long v)
{
	sl_prom_family(f, name, type, help);
	sl_prom_sample(f, name, NULL, NULL, NULL, NULL, v);
}

void sl_prom_by_name(FILE *f, const char *name, const char *type,
		     const char *help, const char *label,
		     const char *const *names, const __u64 *vals, int n)
{
	int i;

	sl_prom_family(f, name, type, help);
	for (i = 0; i < n; i++)
		sl_prom_sample(f, name, label, names[i], NULL, NULL, vals[i]);
}
