/*
 * out.h - how iotca prints: aligned tables and "key: value" lines for
 * people, JSON for scripts.
 *
 * Messages are printed generically from their protobuf-c descriptors, so a
 * new RPC needs no printing code of its own:
 *   - JSON objects carry the proto's snake_case field names; integers are
 *     numbers (Unix seconds stay numbers), enums their full value names
 *     ("CA_STATUS_ACTIVE"), bytes base64, repeated fields arrays.
 *   - Text shows times (fields named *_at, not_before, not_after, by the
 *     contract's convention) as ISO 8601 UTC, enums without their prefix
 *     ("ACTIVE"), bytes as hex. Control characters from the server are
 *     replaced with '?' so that they cannot drive the terminal.
 */
#ifndef IOTCA_CLI_OUT_H
#define IOTCA_CLI_OUT_H

#include <stddef.h>
#include <stdio.h>

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>

#include "err/err.h"

/* A table column: its header and the message field it shows. */
typedef struct out_column {
	const char *header;
	const char *field;
} out_column;

typedef struct out_table out_table;

/* Creates an empty table; the column array must outlive it. NULL on no
 * memory. */
out_table *out_table_create(const out_column *cols, size_t ncols);

/* Adds a row made of the columns' fields of m (copied). */
iotca_err out_table_add_message(out_table *t, const ProtobufCMessage *m);

/* Adds a row of ready-made cells, one per column (copied; NULL is "-"). */
iotca_err out_table_add_row(out_table *t, const char *const *cells);

/* Prints the header and the rows, columns two spaces apart. */
void out_table_print(const out_table *t, FILE *f);

/* Frees the table. NULL is allowed. */
void out_table_destroy(out_table *t);

/* Prints every field of m as "key: value", keys aligned; multi-line
 * strings (PEM) come last, as "key:" followed by the text. */
iotca_err out_show(FILE *f, const ProtobufCMessage *m);

/* The text of one field of m (see above). malloc'd; NULL on no memory. */
char *out_field_text(const ProtobufCMessage *m, const char *field);

/* m as a JSON object (new reference); NULL on no memory. */
json_t *out_json_message(const ProtobufCMessage *m);

/* Writes j indented, with a final newline. 0, or -1 if writing failed. */
int out_json_write(FILE *f, const json_t *j);

/* Unix seconds as "2026-01-31T12:00:00Z" ("-" for 0) into buf. */
const char *out_time_iso(long long t, char *buf, size_t n);

#endif /* IOTCA_CLI_OUT_H */
