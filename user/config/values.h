/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Typed values at a path of a document (values.c): each parses one scalar
 * of the file into config.h's types, and a bad one becomes "file:line:
 * path: reason" in the document's error (-EINVAL). Internal to
 * user/config/.
 */
#ifndef SL_CONFIG_VALUES_H
#define SL_CONFIG_VALUES_H

#include <stdint.h>
#include "config/config.h"
#include "config/doc.h"

int parse_num(const char *s, uint64_t min, uint64_t max, int hex_ok,
	      uint64_t *out);
int get_num(struct doc *d, const char *path, const char *s,
	    uint64_t min, uint64_t max, int hex_ok, uint64_t *out);
int get_uint(struct doc *d, const char *path, const char *s,
	     unsigned int min, unsigned int max, unsigned int *out);
int get_bool(struct doc *d, const char *path, const char *s, int *out);
int get_string(struct doc *d, const char *path, const char *s,
	       char *out, size_t len);
int get_action(struct doc *d, const char *path, const char *what,
	       const char *s, enum sl_action *out);
int get_cidrs(struct doc *d, const char *path, char **items,
	      unsigned int n, struct sl_cidr *out, unsigned int *n_out);
int get_port_ranges(struct doc *d, const char *path, char **items,
		    unsigned int n, struct sl_port_range *out,
		    unsigned int *n_out);
int get_endpoint(struct doc *d, const char *path, const char *what,
		 const char *label, const char *s,
		 struct sl_endpoint *out);

#endif /* SL_CONFIG_VALUES_H */
