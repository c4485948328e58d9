/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* One YAML document being loaded (doc.c): passes 1 and 2 of config.c's
 * three. libyaml's events give every node's path and line (libcyaml gives
 * its caller none), libcyaml loads the document against a schema, and its
 * messages and backtrace become "file:line: path: reason". Internal to
 * user/config/.
 */
#ifndef SL_CONFIG_DOC_H
#define SL_CONFIG_DOC_H

#include <stddef.h>
#include <cyaml/cyaml.h>

#define PATH_LEN 192 /* a node's path: "policy.rules[2].cidr" */
#define CY_FRAMES 16

struct node_line {
	char *path; /* "capture.include_cidrs[1]"; "" is the document */
	unsigned int line; /* of the key for mapping values, else of the node */
};

struct cy_frame {
	enum { FRAME_MAP, FRAME_FIELD, FRAME_ENTRY } kind;
	unsigned int entry; /* 1-based, as libcyaml counts */
	char key[64];
};

struct doc {
	const char *name; /* file name, or "<default>" */
	char *err;
	size_t errlen;
	struct node_line *nodes; /* in document order */
	size_t n_nodes, cap_nodes;
	/* libcyaml's error message and backtrace, innermost frame first */
	char cy_msg[256];
	int cy_in_backtrace;
	unsigned int n_frames;
	struct cy_frame frames[CY_FRAMES];
	/* SHA-256 of the file's bytes, exactly those parsed (path only) */
	unsigned char sha256[32];
};

/* "file:line: what: message" into d->err (line 0: no line); -EINVAL. */
int __attribute__((format(printf, 4, 5)))
doc_fail(struct doc *d, unsigned int line, const char *what, const char *fmt,
	 ...);
/* Index of path's first node at or after *from (updated), or -1. Callers
 * going through a list in order pass a cursor, keeping the walk linear.
 */
long doc_find(const struct doc *d, const char *path, size_t *from);
/* Is there a node at path? Its line (the key's, for a mapping value), or
 * the nearest enclosing node's; 0 for none.
 */
int doc_has(const struct doc *d, const char *path);
unsigned int doc_line(const struct doc *d, const char *path);
/* "parent.key" and "parent[i]" into a PATH_LEN buffer; 0 or -ENAMETOOLONG */
int doc_path_join(char *out, const char *parent, const char *key);
int doc_path_index(char *out, const char *parent, unsigned int i);
/* Passes 1 and 2 over the file at path (NULL: the string text) against
 * schema; *raw is NULL for an empty document. 0 or -errno, with d->err
 * filled.
 */
int doc_load(struct doc *d, const char *path, const char *text,
	     const cyaml_schema_value_t *schema, void **raw);
void doc_free(struct doc *d);

#endif /* SL_CONFIG_DOC_H */
