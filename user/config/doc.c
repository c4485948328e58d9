// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* One YAML document being loaded (see doc.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cyaml/cyaml.h>
#include <yaml.h>
#include <openssl/evp.h>
#include "config/config.h"
#include "config/doc.h"
#include "lib/util.h"

#define DOC_MAX_BYTES (4u << 20)
#define WALK_DEPTH 16

static int vfail(struct doc *d, unsigned int line, const char *what,
		 const char *fmt, va_list ap)
{
	int n;

	if (!d->err || !d->errlen)
		return -EINVAL;
	if (line)
		n = snprintf(d->err, d->errlen, "%s:%u: ", d->name, line);
	else
		n = snprintf(d->err, d->errlen, "%s: ", d->name);
	if (n >= 0 && (size_t)n < d->errlen && what && *what)
		n += snprintf(d->err + n, d->errlen - n, "%s: ", what);
	if (n >= 0 && (size_t)n < d->errlen)
		vsnprintf(d->err + n, d->errlen - n, fmt, ap);
	return -EINVAL;
}

/* "file:line: what: message"; returns -EINVAL. */
int __attribute__((format(printf, 4, 5)))
doc_fail(struct doc *d, unsigned int line, const char *what, const char *fmt,
	  ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfail(d, line, what, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int add_node(struct doc *d, const char *path, unsigned int line)
{
	if (d->n_nodes == d->cap_nodes) {
		size_t cap = d->cap_nodes ? d->cap_nodes * 2 : 64;
		struct node_line *n = realloc(d->nodes, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		d->nodes = n;
		d->cap_nodes = cap;
	}
	d->nodes[d->n_nodes].path = strdup(path);
	if (!d->nodes[d->n_nodes].path)
		return -ENOMEM;
	d->nodes[d->n_nodes++].line = line;
	return 0;
}

long doc_find(const struct doc *d, const char *path, size_t *from)
{
	size_t i;

	for (i = from ? *from : 0; i < d->n_nodes; i++) {
		if (!strcmp(d->nodes[i].path, path)) {
			if (from)
				*from = i;
			return (long)i;
		}
	}
	return -1;
}

int doc_has(const struct doc *d, const char *path)
{
	return doc_find(d, path, NULL) >= 0;
}

/* Line of path; of its closest ancestor in the index when it is not there. */
unsigned int doc_line(const struct doc *d, const char *path)
{
	char p[PATH_LEN];
	long i;

	snprintf(p, sizeof(p), "%s", path);
	for (;;) {
		char *dot, *bracket;

		i = doc_find(d, p, NULL);
		if (i >= 0)
			return d->nodes[i].line;
		if (!*p)
			return 0;
		/* Up one level: drop the last ".key" or "[n]". */
		dot = strrchr(p, '.');
		bracket = strrchr(p, '[');
		if (dot && (!bracket || dot > bracket))
			*dot = '\0';
		else if (bracket)
			*bracket = '\0';
		else
			*p = '\0';
	}
}

/* Line of the last node at path (a repeated key is reported where it
 * repeats).
 */
static unsigned int doc_last_line(const struct doc *d, const char *path)
{
	size_t i;

	for (i = d->n_nodes; i--;)
		if (!strcmp(d->nodes[i].path, path))
			return d->nodes[i].line;
	return doc_line(d, path);
}

/* "policy.rules[2].cidr" -> "rule 3: cidr"; lists of the schema are named
 * by their entries, 1-based as a reader counts them.
 */
static const char *describe(const char *path, char *buf, size_t len)
{
	static const struct {
		const char *list, *entry;
	} names[] = { { "rules[", "rule" }, { "ambassadors[", "ambassador" } };
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		const char *p = strstr(path, names[i].list);
		unsigned int n;
		int used = 0;

		if (!p || (p != path && p[-1] != '.'))
			continue;
		if (sscanf(p + strlen(names[i].list), "%u]%n", &n, &used) != 1 ||
		    !used)
			continue;
		p += strlen(names[i].list) + used;
		snprintf(buf, len, "%s %u%s%s", names[i].entry, n + 1,
			 *p == '.' ? ": " : "", *p == '.' ? p + 1 : p);
		return buf;
	}
	snprintf(buf, len, "%s", path);
	return buf;
}

/* Paths are built by hand: gcc's -Wformat-truncation cannot see that a
 * truncated path is checked for and simply not indexed.
 */
int doc_path_join(char *out, const char *parent, const char *key)
{
	size_t pl = strlen(parent), kl = strlen(key), dot = pl && kl ? 1 : 0;

	if (pl + dot + kl >= PATH_LEN) {
		out[0] = '\0';
		return 0;
	}
	memmove(out, parent, pl);
	out[pl] = '.';
	memcpy(out + pl + dot, key, kl + 1);
	return 1;
}

int doc_path_index(char *out, const char *parent, unsigned int i)
{
	char idx[16];
	int n = snprintf(idx, sizeof(idx), "[%u]", i);
	size_t pl = strlen(parent);

	if (pl + n >= PATH_LEN) {
		out[0] = '\0';
		return 0;
	}
	memmove(out, parent, pl);
	memcpy(out + pl, idx, n + 1);
	return 1;
}

struct walk_frame {
	int is_map, want_key, recorded;
	unsigned int next_entry, key_line;
	char path[PATH_LEN];
	char key[PATH_LEN];
};

/* Pass 1: YAML syntax, and the path -> line index of the first document.
 * One loop over libyaml's events with a case per event type: the stack of
 * open mappings and sequences is what gives each node its path.
 */
static int walk(struct doc *d, const char *buf, size_t len)
{
	struct walk_frame st[WALK_DEPTH];
	unsigned int depth = 0, skip = 0, docs = 0;
	yaml_parser_t parser;
	yaml_event_t ev;
	int err = 0, done = 0;

	if (!yaml_parser_initialize(&parser))
		return -ENOMEM;
	yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
	while (!done && !err) {
		struct walk_frame *top = depth ? &st[depth - 1] : NULL;
		unsigned int line;
		char path[PATH_LEN];
		int ok = 1, start;

		if (!yaml_parser_parse(&parser, &ev)) {
			err = doc_fail(d, (unsigned int)parser.problem_mark.line + 1,
					NULL, "YAML syntax: %s%s%s",
					parser.problem ? parser.problem : "error",
					parser.context ? " " : "",
					parser.context ? parser.context : "");
			break;
		}
		line = (unsigned int)ev.start_mark.line + 1;
		start = ev.type == YAML_MAPPING_START_EVENT ||
			ev.type == YAML_SEQUENCE_START_EVENT;
		switch (ev.type) {
		case YAML_STREAM_END_EVENT:
			done = 1;
			break;
		case YAML_DOCUMENT_START_EVENT:
			if (++docs > 1)
				err = doc_fail(d, line, NULL,
						"more than one YAML document");
			break;
		case YAML_SCALAR_EVENT:
		case YAML_ALIAS_EVENT:
		case YAML_MAPPING_START_EVENT:
		case YAML_SEQUENCE_START_EVENT:
			if (skip) {
				skip += start;
				break;
			}
			if (top && top->is_map && top->want_key) {
				/* A key; a non-scalar one is skipped (libcyaml
				 * refuses it with its own message).
				 */
				top->want_key = 0;
				top->key_line = line;
				snprintf(top->key, sizeof(top->key), "%s",
					 ev.type == YAML_SCALAR_EVENT ?
						 (const char *)ev.data.scalar.value :
						 "?");
				skip = start;
				break;
			}
			if (!top) {
				path[0] = '\0';
			} else if (top->is_map) {
				ok = top->recorded && doc_path_join(path, top->path, top->key);
				line = top->key_line;
				top->want_key = 1;
			} else {
				ok = top->recorded &&
				     doc_path_index(path, top->path, top->next_entry++);
			}
			if (ok)
				err = add_node(d, path, line);
			if (!start)
				break;
			if (depth == WALK_DEPTH) {
				skip = 1; /* deeper than any schema: not indexed */
				break;
			}
			top = &st[depth++];
			memset(top, 0, sizeof(*top));
			top->is_map = ev.type == YAML_MAPPING_START_EVENT;
			top->want_key = top->is_map;
			top->recorded = ok;
			snprintf(top->path, sizeof(top->path), "%s", ok ? path : "");
			break;
		case YAML_MAPPING_END_EVENT:
		case YAML_SEQUENCE_END_EVENT:
			if (skip)
				skip--;
			else if (depth)
				depth--;
			break;
		default:
			break;
		}
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&parser);
	return err;
}

/* libcyaml's log: the first error line is the message, then "Backtrace:"
 * and one "  in ..." line per level, innermost first.
 */
static void cy_log(cyaml_log_t level, void *ctx, const char *fmt, va_list ap)
{
	struct doc *d = ctx;
	struct cy_frame *f;
	char line[256], *s = line;
	size_t n;

	if (level < CYAML_LOG_ERROR)
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	n = strcspn(line, "\n");
	line[n] = '\0';
	if (!strncmp(s, "Load: ", 6))
		s += 6;
	if (!strcmp(s, "Backtrace:")) {
		d->cy_in_backtrace = 1;
		return;
	}
	if (!d->cy_in_backtrace) {
		if (!d->cy_msg[0])
			snprintf(d->cy_msg, sizeof(d->cy_msg), "%s", s);
		return;
	}
	if (d->n_frames == CY_FRAMES)
		return;
	f = &d->frames[d->n_frames];
	memset(f, 0, sizeof(*f));
	if (sscanf(s, " in mapping field '%63[^']'", f->key) == 1)
		f->kind = FRAME_FIELD;
	else if (sscanf(s, " in sequence entry '%u'", &f->entry) == 1)
		f->kind = FRAME_ENTRY;
	else if (!strncmp(s, "  in mapping", 12))
		f->kind = FRAME_MAP;
	else
		return;
	d->n_frames++;
}

/* Turn libcyaml's refusal into "file:line: where: what". */
static int cy_fail(struct doc *d, cyaml_err_t cerr)
{
	unsigned int first = 0, i, line, max;
	char path[PATH_LEN] = "", tmp[PATH_LEN], what[PATH_LEN];
	const char *msg = d->cy_msg[0] ? d->cy_msg : cyaml_strerror(cerr);
	char key[64], got[32], want[32];

	/* The innermost frame names the sibling last read, not the mapping
	 * that lacks a key, and the entry past the allowed count: drop it.
	 */
	if (d->n_frames &&
	    ((cerr == CYAML_ERR_MAPPING_FIELD_MISSING &&
	      d->frames[0].kind == FRAME_FIELD) ||
	     (cerr == CYAML_ERR_SEQUENCE_ENTRIES_MAX &&
	      d->frames[0].kind == FRAME_ENTRY)))
		first = 1;
	for (i = d->n_frames; i-- > first;) {
		const struct cy_frame *f = &d->frames[i];

		snprintf(tmp, sizeof(tmp), "%s", path);
		if (f->kind == FRAME_FIELD)
			doc_path_join(path, tmp, f->key);
		else if (f->kind == FRAME_ENTRY && f->entry)
			doc_path_index(path, tmp, f->entry - 1);
	}
	describe(path, what, sizeof(what));
	line = doc_line(d, path);

	if (sscanf(msg, "Unexpected key: %63[^\n]", key) == 1) {
		snprintf(tmp, sizeof(tmp), "%s", path);
		doc_path_join(path, tmp, key);
		return doc_fail(d, doc_line(d, path), what, "unknown key \"%s\"",
				 key);
	}
	if (sscanf(msg, "Missing required mapping field: %63[^\n]", key) == 1)
		return doc_fail(d, line, what, "missing required key \"%s\"",
				 key);
	if (sscanf(msg, "Mapping field already seen: %63[^\n]", key) == 1) {
		/* The path ends with the repeated key: name its mapping. */
		line = doc_last_line(d, path);
		snprintf(tmp, sizeof(tmp), "%s", path);
		*(strrchr(tmp, '.') ? strrchr(tmp, '.') : tmp) = '\0';
		return doc_fail(d, line, describe(tmp, what, sizeof(what)),
				 "key \"%s\" given twice", key);
	}
	if (sscanf(msg, "Excessive entries (%u max)", &max) == 1)
		return doc_fail(d, line, what, "more than %u entries", max);
	if (sscanf(msg, "Expecting %31[A-Z], got event: %31[A-Z_]", want, got) ==
	    2) {
		const char *w = !strcmp(want, "MAPPING")	? "a mapping" :
				!strcmp(want, "SEQUENCE") ? "a list" :
							    "a single value";
		const char *g = !strcmp(got, "MAPPING_START")	 ? "a mapping" :
				!strcmp(got, "SEQUENCE_START") ? "a list" :
				!strcmp(got, "SCALAR")	       ? "a single value" :
								 got;

		return doc_fail(d, line, what, "expected %s, found %s", w, g);
	}
	if (cerr == CYAML_ERR_ALIAS)
		return doc_fail(d, line, what,
				 "YAML aliases (*name) are not accepted");
	return doc_fail(d, line, what, "%s", msg);
}

void doc_free(struct doc *d)
{
	size_t i;

	for (i = 0; i < d->n_nodes; i++)
		free(d->nodes[i].path);
	free(d->nodes);
	d->nodes = NULL;
	d->n_nodes = d->cap_nodes = 0;
}

static int read_all(struct doc *d, const char *path, char **buf, size_t *len)
{
	int err = sl_read_file(path, DOC_MAX_BYTES, buf, len, NULL);

	if (err == -EFBIG)
		return doc_fail(d, 0, NULL, "larger than %u MiB",
				 DOC_MAX_BYTES >> 20);
	if (err)
		doc_fail(d, 0, NULL, "%s", strerror(-err));
	return err;
}

/* Passes 1 and 2 over one document; *raw NULL for an empty document. */
int doc_load(struct doc *d, const char *path, const char *text,
		    const cyaml_schema_value_t *schema, void **raw)
{
	cyaml_config_t cy = {
		.log_fn = cy_log,
		.log_ctx = d,
		.mem_fn = cyaml_mem,
		.log_level = CYAML_LOG_ERROR,
		/* Every value written at one place, so every message can
		 * name its line.
		 */
		.flags = CYAML_CFG_NO_ALIAS,
	};
	char *buf = NULL;
	size_t len;
	cyaml_err_t cerr;
	int err;

	*raw = NULL;
	if (path) {
		err = read_all(d, path, &buf, &len);
		if (err)
			return err;
		if (!EVP_Digest(buf, len, d->sha256, NULL, EVP_sha256(), NULL)) {
			free(buf);
			return -ENOMEM;
		}
		text = buf;
	} else {
		len = strlen(text);
	}
	err = walk(d, text, len);
	if (!err) {
		cerr = cyaml_load_data((const uint8_t *)text, len, &cy, schema,
				       (cyaml_data_t **)raw, NULL);
		if (cerr == CYAML_ERR_OOM)
			err = -ENOMEM;
		else if (cerr != CYAML_OK)
			err = cy_fail(d, cerr);
	}
	free(buf);
	return err;
}


int sl_config_file_version(const char *path, char *out)
{
	unsigned char md[32];
	char *buf = NULL;
	size_t len;
	int err;

	err = sl_read_file(path, DOC_MAX_BYTES, &buf, &len, NULL);
	if (!err && !EVP_Digest(buf, len, md, NULL, EVP_sha256(), NULL))
		err = -ENOMEM;
	if (!err)
		sl_hex(out, md, SL_CFG_VERSION_LEN / 2);
	free(buf);
	return err;
}
