/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Counters declared once, rendered by one function per format (counters.c):
 * a table row names a __u64 of some struct by its offset, with its JSON key
 * (also its row in `status`'s tables), its Prometheus family and labels,
 * and what it counts. `status`, /stats and /metrics walk the same table.
 * And the Prometheus text format's primitives, for what is not a table
 * (values computed on the fly, one sample per map or worker).
 */
#ifndef SL_COUNTERS_H
#define SL_COUNTERS_H

#include <stddef.h>
#include <stdio.h>
#include <linux/types.h>

enum sl_ctr_type {
	SL_CTR_COUNTER,
	SL_CTR_GAUGE,
	SL_CTR_FLAG, /* a 0/1 gauge: true/false in JSON */
};

struct sl_ctr {
	const char *key; /* JSON key; NULL: in /metrics only */
	const char *metric; /* Prometheus family; NULL: in JSON only */
	const char *labels; /* the sample's, as written: dir="up"; or NULL */
	enum sl_ctr_type type;
	/* the family's HELP, on the row that opens it: rows of the same
	 * family follow it with NULL
	 */
	const char *help;
	size_t off; /* of the __u64 in the struct the table reads */
};

#define SL_CTR_N(t) (sizeof(t) / sizeof((t)[0]))

/* "key":value for each row with a key, comma-separated, no braces. */
void sl_ctr_json(FILE *f, const struct sl_ctr *t, size_t n, const void *base);
/* Each row with a metric a sample; a row with help opens its family. */
void sl_ctr_prom(FILE *f, const struct sl_ctr *t, size_t n, const void *base);
/* "  key  value" lines, keys padded to width. */
void sl_ctr_text(FILE *f, const struct sl_ctr *t, size_t n, const void *base,
		 int width);

#define SL_PROM_COUNTER "counter"
#define SL_PROM_GAUGE "gauge"

/* # HELP and # TYPE of a family (help escaped). */
void sl_prom_family(FILE *f, const char *name, const char *type,
		    const char *help);
/* name{k1="v1",k2="v2"} v; k1, k2 may be NULL (values escaped). */
void sl_prom_sample(FILE *f, const char *name, const char *k1, const char *v1,
		    const char *k2, const char *v2, unsigned long long v);
/* A family of one sample without labels. */
void sl_prom_one(FILE *f, const char *name, const char *type,
		 const char *help, unsigned long long v);
/* A family with one sample per name: name{label="names[i]"} vals[i]. */
void sl_prom_by_name(FILE *f, const char *name, const char *type,
		     const char *help, const char *label,
		     const char *const *names, const __u64 *vals, int n);

#endif /* SL_COUNTERS_H */
