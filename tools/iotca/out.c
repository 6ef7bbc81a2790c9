/*
 * out.c - tables, "key: value" lines and JSON, from protobuf-c descriptors.
 */
#include "out.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf/buf.h"

/* Cap of the text of one field: far above anything the contract allows. */
#define OUT_TEXT_CAP (16u << 20)

/* ------------------------------------------------------- field access */

static const void *
field_at(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
	return (const char *)m + f->offset;
}

/* Whether a oneof, optional or message field holds a value. */
static int
field_present(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
	const char *q = (const char *)m + f->quantifier_offset;

	if (f->label == PROTOBUF_C_LABEL_REPEATED)
		return 1;
	if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
		return *(const uint32_t *)(const void *)q == f->id;
	if (f->type == PROTOBUF_C_TYPE_MESSAGE ||
	    f->type == PROTOBUF_C_TYPE_STRING)
		return *(void *const *)field_at(m, f) != NULL;
	if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset != 0)
		return *(const protobuf_c_boolean *)(const void *)q != 0;
	return 1;
}

/* Size of one element of a repeated field. */
static size_t
field_elem_size(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		return 8;
	case PROTOBUF_C_TYPE_FLOAT:
		return sizeof(float);
	case PROTOBUF_C_TYPE_DOUBLE:
		return sizeof(double);
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_STRING:
		return sizeof(char *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(ProtobufCMessage *);
	default:
		return 4; /* 32-bit integers and enums */
	}
}

/* The elements of a repeated field: *n of them from the returned array. */
static const char *
field_elems(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
            size_t *n)
{
	*n = *(const size_t *)(const void *)((const char *)m +
	                                     f->quantifier_offset);
	return *(const char *const *)field_at(m, f);
}

/* Whether the contract calls this field a time (Unix seconds). */
static int
field_is_time(const ProtobufCFieldDescriptor *f)
{
	size_t n = strlen(f->name);

	if (f->type != PROTOBUF_C_TYPE_INT64 &&
	    f->type != PROTOBUF_C_TYPE_UINT64)
		return 0;
	return (n > 3 && strcmp(f->name + n - 3, "_at") == 0) ||
	       strcmp(f->name, "not_before") == 0 ||
	       strcmp(f->name, "not_after") == 0;
}

/* An enum value's name without the enum's prefix: "CA_STATUS_ACTIVE" is
 * "ACTIVE", the prefix being that of the *_UNSPECIFIED zero value. */
static const char *
enum_short_name(const ProtobufCEnumDescriptor *ed, int v)
{
	const ProtobufCEnumValue *ev =
	    protobuf_c_enum_descriptor_get_value(ed, v);
	const ProtobufCEnumValue *zero =
	    protobuf_c_enum_descriptor_get_value(ed, 0);
	size_t plen;

	if (ev == NULL)
		return NULL;
	if (zero == NULL || (plen = strlen(zero->name)) <= 11 ||
	    strcmp(zero->name + plen - 11, "UNSPECIFIED") != 0)
		return ev->name;
	plen -= 11;
	if (strncmp(ev->name, zero->name, plen) != 0 || ev->name[plen] == '\0')
		return ev->name;
	return ev->name + plen;
}

const char *
out_time_iso(long long t, char *buf, size_t n)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t == 0) {
		snprintf(buf, n, "-");
		return buf;
	}
	if (gmtime_r(&tt, &tm) == NULL ||
	    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, n, "%lld", t);
	return buf;
}

/* ------------------------------------------------------------------ text */

/* Appends s with control characters replaced by '?' (newlines kept when
 * keep_nl), so that server text cannot drive the terminal. */
static iotca_err
text_append_clean(iotca_buf *b, const char *s, int keep_nl)
{
	size_t start = b->len, i;
	iotca_err rc;

	if ((rc = iotca_buf_append_str(b, s ? s : "")) != IOTCA_OK)
		return rc;
	for (i = start; i < b->len; i++) {
		unsigned char c = (unsigned char)b->data[i];
		if ((c < 0x20 && !(keep_nl && c == '\n')) || c == 0x7f)
			b->data[i] = '?';
	}
	return IOTCA_OK;
}

static iotca_err
text_append_hex(iotca_buf *b, const ProtobufCBinaryData *d)
{
	static const char hex[] = "0123456789abcdef";
	size_t i;
	iotca_err rc = iotca_buf_append(b, "", 0);

	for (i = 0; i < d->len && rc == IOTCA_OK; i++) {
		char two[2] = {hex[d->data[i] >> 4], hex[d->data[i] & 15]};
		rc = iotca_buf_append(b, two, 2);
	}
	return rc;
}

static iotca_err text_append_message(iotca_buf *b, const ProtobufCMessage *m);

static iotca_err
text_append_int(iotca_buf *b, const ProtobufCFieldDescriptor *f, long long v)
{
	char t[64];

	if (field_is_time(f))
		return iotca_buf_append_str(b, out_time_iso(v, t, sizeof(t)));
	return iotca_buf_printf(b, "%lld", v);
}

/* Appends the text of one value of field f stored at p. */
static iotca_err
text_append_value(iotca_buf *b, const ProtobufCFieldDescriptor *f,
                  const void *p, int keep_nl)
{
	const char *name;

	switch (f->type) {
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		return iotca_buf_printf(b, "%u", *(const uint32_t *)p);
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		return text_append_int(b, f, *(const int32_t *)p);
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		return text_append_int(b, f, (long long)*(const int64_t *)p);
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		return iotca_buf_printf(
		    b, "%llu", (unsigned long long)*(const uint64_t *)p);
	case PROTOBUF_C_TYPE_FLOAT:
		return iotca_buf_printf(b, "%g", (double)*(const float *)p);
	case PROTOBUF_C_TYPE_DOUBLE:
		return iotca_buf_printf(b, "%g", *(const double *)p);
	case PROTOBUF_C_TYPE_BOOL:
		return iotca_buf_append_str(
		    b, *(const protobuf_c_boolean *)p ? "true" : "false");
	case PROTOBUF_C_TYPE_ENUM:
		name = enum_short_name(f->descriptor, *(const int32_t *)p);
		return name ? iotca_buf_append_str(b, name)
		            : iotca_buf_printf(b, "%d", *(const int32_t *)p);
	case PROTOBUF_C_TYPE_STRING:
		return text_append_clean(b, *(const char *const *)p, keep_nl);
	case PROTOBUF_C_TYPE_BYTES:
		return text_append_hex(b, p);
	case PROTOBUF_C_TYPE_MESSAGE:
		return text_append_message(b,
		                           *(const ProtobufCMessage *const *)p);
	}
	return IOTCA_EINTERNAL;
}

/* Appends a field's text: repeated values joined with ", ". */
static iotca_err
text_append_field(iotca_buf *b, const ProtobufCMessage *m,
                  const ProtobufCFieldDescriptor *f, int keep_nl)
{
	const char *elems;
	size_t n, i, sz = field_elem_size(f->type);
	iotca_err rc = iotca_buf_append(b, "", 0);

	if (rc != IOTCA_OK || !field_present(m, f))
		return rc;
	if (f->label != PROTOBUF_C_LABEL_REPEATED)
		return text_append_value(b, f, field_at(m, f), keep_nl);
	elems = field_elems(m, f, &n);
	for (i = 0; i < n && rc == IOTCA_OK; i++) {
		if (i > 0)
			rc = iotca_buf_append_str(b, ", ");
		if (rc == IOTCA_OK)
			rc = text_append_value(b, f, elems + i * sz, keep_nl);
	}
	return rc;
}

/* A nested message as compact JSON: rare in listings, but never lost. */
static iotca_err
text_append_message(iotca_buf *b, const ProtobufCMessage *m)
{
	json_t *j;
	char *s;
	iotca_err rc;

	if (m == NULL)
		return iotca_buf_append_str(b, "-");
	if ((j = out_json_message(m)) == NULL)
		return IOTCA_ENOMEM;
	s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (s == NULL)
		return IOTCA_ENOMEM;
	rc = text_append_clean(b, s, 0);
	free(s);
	return rc;
}

static char *
field_text(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
           int keep_nl)
{
	iotca_buf b;

	iotca_buf_init(&b, OUT_TEXT_CAP);
	if (text_append_field(&b, m, f, keep_nl) != IOTCA_OK) {
		iotca_buf_free(&b);
		return NULL;
	}
	return iotca_buf_take(&b, NULL);
}

char *
out_field_text(const ProtobufCMessage *m, const char *field)
{
	const ProtobufCFieldDescriptor *f =
	    protobuf_c_message_descriptor_get_field_by_name(m->descriptor,
	                                                    field);

	return f != NULL ? field_text(m, f, 0) : strdup("?");
}

/* ------------------------------------------------------------------ show */

static void
show_print(FILE *f, const ProtobufCMessageDescriptor *d, char **texts,
           size_t width)
{
	size_t i, len;

	for (i = 0; i < d->n_fields; i++)
		if (strchr(texts[i], '\n') == NULL)
			fprintf(f, "%s:%*s%s\n", d->fields[i].name,
			        (int)(width - strlen(d->fields[i].name) + 1),
			        "", texts[i]);
	for (i = 0; i < d->n_fields; i++) {
		if (strchr(texts[i], '\n') == NULL)
			continue;
		len = strlen(texts[i]);
		fprintf(f, "%s:\n%s%s", d->fields[i].name, texts[i],
		        texts[i][len - 1] == '\n' ? "" : "\n");
	}
}

iotca_err
out_show(FILE *f, const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	char **texts = calloc(d->n_fields ? d->n_fields : 1, sizeof(char *));
	size_t i, width = 0;
	iotca_err rc = IOTCA_ENOMEM;

	if (texts == NULL)
		return rc;
	for (i = 0; i < d->n_fields; i++) {
		if ((texts[i] = field_text(m, &d->fields[i], 1)) == NULL)
			goto out;
		if (strlen(d->fields[i].name) > width)
			width = strlen(d->fields[i].name);
	}
	show_print(f, d, texts, width);
	rc = IOTCA_OK;
out:
	for (i = 0; i < d->n_fields; i++)
		free(texts[i]);
	free(texts);
	return rc;
}

/* ----------------------------------------------------------------- table */

struct out_table {
	const out_column *cols;
	size_t ncols;
	size_t nrows, cap; /* rows held, rows allocated */
	char **cells;      /* nrows * ncols, row by row */
};

out_table *
out_table_create(const out_column *cols, size_t ncols)
{
	out_table *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return NULL;
	t->cols = cols;
	t->ncols = ncols;
	return t;
}

static iotca_err
table_grow(out_table *t)
{
	size_t ncap = t->cap ? t->cap * 2 : 16;
	char **p;

	if (t->nrows < t->cap)
		return IOTCA_OK;
	if (ncap > ((size_t)-1) / sizeof(char *) / t->ncols)
		return IOTCA_ENOMEM;
	if ((p = realloc(t->cells, ncap * t->ncols * sizeof(char *))) == NULL)
		return IOTCA_ENOMEM;
	t->cells = p;
	t->cap = ncap;
	return IOTCA_OK;
}

iotca_err
out_table_add_message(out_table *t, const ProtobufCMessage *m)
{
	char **row;
	size_t c;

	if (t->ncols == 0 || table_grow(t) != IOTCA_OK)
		return IOTCA_ENOMEM;
	row = t->cells + t->nrows * t->ncols;
	for (c = 0; c < t->ncols; c++) {
		if ((row[c] = out_field_text(m, t->cols[c].field)) == NULL) {
			while (c > 0)
				free(row[--c]);
			return IOTCA_ENOMEM;
		}
	}
	t->nrows++;
	return IOTCA_OK;
}

iotca_err
out_table_add_row(out_table *t, const char *const *cells)
{
	char **row;
	size_t c;

	if (t->ncols == 0 || table_grow(t) != IOTCA_OK)
		return IOTCA_ENOMEM;
	row = t->cells + t->nrows * t->ncols;
	for (c = 0; c < t->ncols; c++) {
		if ((row[c] = strdup(cells[c] ? cells[c] : "-")) == NULL) {
			while (c > 0)
				free(row[--c]);
			return IOTCA_ENOMEM;
		}
	}
	t->nrows++;
	return IOTCA_OK;
}

/* Columns a UTF-8 string takes (one per code point). */
static size_t
text_width(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += ((unsigned char)*s & 0xc0) != 0x80;
	return n;
}

static void
table_print_row(const out_table *t, FILE *f, const char *const *cells,
                const size_t *width)
{
	size_t c;

	for (c = 0; c < t->ncols; c++) {
		fputs(cells[c], f);
		if (c + 1 < t->ncols)
			fprintf(f, "%*s",
			        (int)(width[c] - text_width(cells[c]) + 2), "");
	}
	fputc('\n', f);
}

void
out_table_print(const out_table *t, FILE *f)
{
	const char **hdr = calloc(t->ncols ? t->ncols : 1, sizeof(char *));
	size_t *width = calloc(t->ncols ? t->ncols : 1, sizeof(size_t));
	size_t r, c, w;

	if (hdr == NULL || width == NULL)
		goto out;
	for (c = 0; c < t->ncols; c++) {
		hdr[c] = t->cols[c].header;
		width[c] = text_width(hdr[c]);
		for (r = 0; r < t->nrows; r++)
			if ((w = text_width(t->cells[r * t->ncols + c])) >
			    width[c])
				width[c] = w;
	}
	table_print_row(t, f, hdr, width);
	for (r = 0; r < t->nrows; r++)
		table_print_row(
		    t, f, (const char *const *)&t->cells[r * t->ncols], width);
out:
	free(hdr);
	free(width);
}

void
out_table_destroy(out_table *t)
{
	size_t i;

	if (t == NULL)
		return;
	for (i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
}

/* ------------------------------------------------------------------ JSON */

/* A JSON string; text that is not UTF-8 gets '?' for its non-ASCII bytes. */
static json_t *
json_text(const char *s)
{
	json_t *j;
	char *copy, *p;

	if ((j = json_string(s ? s : "")) != NULL || s == NULL)
		return j;
	if ((copy = strdup(s)) == NULL)
		return NULL;
	for (p = copy; *p; p++)
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	j = json_string(copy);
	free(copy);
	return j;
}

static json_t *
json_base64(const ProtobufCBinaryData *d)
{
	static const char b64[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *s = malloc((d->len + 2) / 3 * 4 + 1), *o = s;
	size_t i;
	uint32_t v;
	json_t *j;

	if (s == NULL)
		return NULL;
	for (i = 0; i < d->len; i += 3) {
		v = (uint32_t)d->data[i] << 16;
		if (i + 1 < d->len)
			v |= (uint32_t)d->data[i + 1] << 8;
		if (i + 2 < d->len)
			v |= d->data[i + 2];
		*o++ = b64[v >> 18 & 63];
		*o++ = b64[v >> 12 & 63];
		*o++ = i + 1 < d->len ? b64[v >> 6 & 63] : '=';
		*o++ = i + 2 < d->len ? b64[v & 63] : '=';
	}
	*o = '\0';
	j = json_string(s);
	free(s);
	return j;
}

static json_t *
json_enum(const ProtobufCEnumDescriptor *ed, int v)
{
	const ProtobufCEnumValue *ev =
	    protobuf_c_enum_descriptor_get_value(ed, v);

	return ev != NULL ? json_string(ev->name) : json_integer(v);
}

static json_t *
json_u64(uint64_t v)
{
	char s[32];

	if (v <= (uint64_t)INT64_MAX)
		return json_integer((json_int_t)v);
	snprintf(s, sizeof(s), "%llu", (unsigned long long)v);
	return json_string(s);
}

/* One value of field f stored at p. */
static json_t *
json_value(const ProtobufCFieldDescriptor *f, const void *p)
{
	const ProtobufCMessage *sub;

	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		return json_integer(*(const int32_t *)p);
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		return json_integer(*(const uint32_t *)p);
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		return json_integer((json_int_t) * (const int64_t *)p);
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		return json_u64(*(const uint64_t *)p);
	case PROTOBUF_C_TYPE_FLOAT:
		return json_real(*(const float *)p);
	case PROTOBUF_C_TYPE_DOUBLE:
		return json_real(*(const double *)p);
	case PROTOBUF_C_TYPE_BOOL:
		return json_boolean(*(const protobuf_c_boolean *)p);
	case PROTOBUF_C_TYPE_ENUM:
		return json_enum(f->descriptor, *(const int32_t *)p);
	case PROTOBUF_C_TYPE_STRING:
		return json_text(*(const char *const *)p);
	case PROTOBUF_C_TYPE_BYTES:
		return json_base64(p);
	case PROTOBUF_C_TYPE_MESSAGE:
		sub = *(const ProtobufCMessage *const *)p;
		return sub ? out_json_message(sub) : json_null();
	}
	return NULL;
}

static json_t *
json_field(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
	const char *elems;
	size_t n, i, sz = field_elem_size(f->type);
	json_t *arr;

	if (f->label != PROTOBUF_C_LABEL_REPEATED)
		return json_value(f, field_at(m, f));
	if ((arr = json_array()) == NULL)
		return NULL;
	elems = field_elems(m, f, &n);
	for (i = 0; i < n; i++)
		if (json_array_append_new(arr, json_value(f, elems + i * sz)) !=
		    0) {
			json_decref(arr);
			return NULL;
		}
	return arr;
}

json_t *
out_json_message(const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	json_t *obj = json_object();
	size_t i;

	for (i = 0; obj != NULL && i < d->n_fields; i++) {
		if (!field_present(m, &d->fields[i]))
			continue;
		if (json_object_set_new(obj, d->fields[i].name,
		                        json_field(m, &d->fields[i])) != 0) {
			json_decref(obj);
			obj = NULL;
		}
	}
	return obj;
}

int
out_json_write(FILE *f, const json_t *j)
{
	if (json_dumpf(j, f, JSON_INDENT(2) | JSON_ENCODE_ANY) != 0)
		return -1;
	return fputc('\n', f) == EOF ? -1 : 0;
}
