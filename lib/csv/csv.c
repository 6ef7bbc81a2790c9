/*
 * csv.c - RFC 4180 reader over an in-memory upload.
 *
 * One pass over the bytes, driven by a class table: an unquoted field is a
 * run of plain bytes and is handed out in place; a quoted field is handed
 * out in place too unless it holds a doubled quote, in which case it is
 * unquoted into r->unq. Since r->unq may move while a record is read, a
 * copied field remembers its offset and gets its pointer when the record
 * is complete.
 *
 * Problems come in two kinds. A cap or a NUL byte leaves the record's
 * structure intact: the problem is noted (the first one wins), nothing
 * more is stored, and the record is read to its end so that the next call
 * starts at the next record. A quoting problem leaves the structure
 * unknown: it replaces any problem noted before in the record, the record
 * is abandoned at once and reading resumes at the start of the physical
 * line after the offending byte.
 */
#include "csv/csv.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf/buf.h"

#define CSV_NO_COPY    SIZE_MAX /* unq_off: the field points into the input */
#define CSV_MIN_FIELDS 8

/* Byte classes. In a quoted field a comma is plain. */
enum { CSV_PLAIN = 0, CSV_COMMA, CSV_BREAK, CSV_QUOTE, CSV_NUL };

static const unsigned char csv_class[256] = {
    [0] = CSV_NUL,      [','] = CSV_COMMA, ['\r'] = CSV_BREAK,
    ['\n'] = CSV_BREAK, ['"'] = CSV_QUOTE,
};

struct iotca_csv_reader {
	const unsigned char *data; /* the caller's, never copied */
	size_t len;
	size_t pos;  /* next byte to read */
	size_t line; /* physical line of data[pos] */
	size_t max_fields;
	size_t max_field_len;
	iotca_csv_field *fields; /* fields_size entries, reused */
	size_t *unq_off;         /* per field: offset in unq or CSV_NO_COPY */
	size_t fields_size;
	iotca_buf unq; /* unquoted fields of the current record */
	/* data[pos..blank_end) are line breaks known to have a record after
	 * them, so blank lines there are not trailing ones. */
	size_t blank_end;
	int utf16;  /* the input starts with a UTF-16 BOM; not yet said */
	int failed; /* out of memory: the reader is unusable */
	iotca_csv_error err;
};

/* The record being read. */
typedef struct csv_rec {
	size_t line; /* where it starts */
	size_t nf;   /* fields read so far */
} csv_rec;

iotca_err
iotca_csv_reader_create(const char *data, size_t len, size_t max_fields,
                        size_t max_field_len, iotca_csv_reader **out)
{
	const unsigned char *d = (const unsigned char *)data;
	iotca_csv_reader *r;

	if ((data == NULL && len > 0) || max_fields == 0 ||
	    max_field_len == 0 || out == NULL)
		return IOTCA_EINVAL;
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return IOTCA_ENOMEM;
	r->data = d;
	r->len = len;
	r->line = 1;
	r->max_fields = max_fields;
	r->max_field_len = max_field_len;
	/* a record unquotes to fewer bytes than it has in the input */
	iotca_buf_init(&r->unq, len);
	if (len >= 3 && d[0] == 0xEF && d[1] == 0xBB && d[2] == 0xBF)
		r->pos = 3;
	else if (len >= 2 && ((d[0] == 0xFF && d[1] == 0xFE) ||
	                      (d[0] == 0xFE && d[1] == 0xFF)))
		r->utf16 = 1;
	*out = r;
	return IOTCA_OK;
}

void
iotca_csv_reader_destroy(iotca_csv_reader *r)
{
	if (r == NULL)
		return;
	iotca_buf_free(&r->unq);
	free(r->fields);
	free(r->unq_off);
	free(r);
}

const iotca_csv_error *
iotca_csv_reader_error(const iotca_csv_reader *r)
{
	return &r->err;
}

/* Whether a problem leaves the record's structure unknown, so that reading
 * resumes after the offending line: such a problem is the one reported. */
static int
csv_structural(iotca_csv_problem p)
{
	return p == IOTCA_CSV_BARE_QUOTE || p == IOTCA_CSV_TEXT_AFTER_QUOTE ||
	       p == IOTCA_CSV_UNTERMINATED;
}

/* Notes a problem unless the record already has one (the first wins, but
 * a quoting problem beats a cap or NUL problem: its position is where
 * reading resumes). */
__attribute__((format(printf, 6, 7))) static void
csv_problem(iotca_csv_reader *r, iotca_csv_problem p, size_t line,
            size_t column, const csv_rec *rec, const char *fmt, ...)
{
	va_list ap;

	if (r->err.problem != IOTCA_CSV_NONE && !csv_structural(p))
		return;
	r->err.problem = p;
	r->err.line = line;
	r->err.column = column;
	r->err.record_line = rec != NULL ? rec->line : line;
	va_start(ap, fmt);
	vsnprintf(r->err.reason, sizeof(r->err.reason), fmt, ap);
	va_end(ap);
}

/* Steps over the line break at data[pos]: CRLF, LF or a lone CR. */
static void
csv_skip_break(iotca_csv_reader *r)
{
	if (r->data[r->pos] == '\r' && r->pos + 1 < r->len &&
	    r->data[r->pos + 1] == '\n')
		r->pos += 2;
	else
		r->pos++;
	r->line++;
}

/* Carries on at the start of the physical line after data[p], which is on
 * line r->line. */
static void
csv_resync(iotca_csv_reader *r, size_t p)
{
	r->pos = p;
	while (r->pos < r->len && csv_class[r->data[r->pos]] != CSV_BREAK)
		r->pos++;
	if (r->pos < r->len)
		csv_skip_break(r);
}

/* Whether data[from..to) holds only spaces and tabs. */
static int
csv_all_blank(const unsigned char *d, size_t from, size_t to)
{
	for (; from < to; from++)
		if (d[from] != ' ' && d[from] != '\t')
			return 0;
	return 1;
}

static iotca_err
csv_grow_fields(iotca_csv_reader *r)
{
	size_t n = r->fields_size ? r->fields_size * 2 : CSV_MIN_FIELDS;
	iotca_csv_field *f;
	size_t *o;

	if (n > r->max_fields)
		n = r->max_fields;
	if (n <= r->fields_size) /* csv_check_count stops at max_fields */
		return IOTCA_EINTERNAL;
	if (n > SIZE_MAX / sizeof(*f))
		return IOTCA_ENOMEM;
	if ((f = realloc(r->fields, n * sizeof(*f))) == NULL)
		return IOTCA_ENOMEM;
	r->fields = f;
	if ((o = realloc(r->unq_off, n * sizeof(*o))) == NULL)
		return IOTCA_ENOMEM;
	r->unq_off = o;
	r->fields_size = n;
	return IOTCA_OK;
}

/* Stores field number rec->nf (0-based) unless the record has a problem:
 * then nothing of it will be handed out. */
static iotca_err
csv_store(iotca_csv_reader *r, const csv_rec *rec, const unsigned char *p,
          size_t len, size_t off)
{
	iotca_err rc;

	if (r->err.problem != IOTCA_CSV_NONE)
		return IOTCA_OK;
	if (rec->nf == r->fields_size && (rc = csv_grow_fields(r)) != IOTCA_OK)
		return rc;
	r->fields[rec->nf].data = (const char *)p;
	r->fields[rec->nf].len = len;
	r->unq_off[rec->nf] = off;
	return IOTCA_OK;
}

/* Notes a field beyond max_fields; its first byte is at data[pos]. */
static void
csv_check_count(iotca_csv_reader *r, const csv_rec *rec)
{
	if (rec->nf == r->max_fields)
		csv_problem(
		    r, IOTCA_CSV_TOO_MANY_FIELDS, r->line, rec->nf + 1, rec,
		    "more than %zu field%s; remove the extra commas, "
		    "or put quotes around a field that contains a comma",
		    r->max_fields, r->max_fields == 1 ? "" : "s");
}

static void
csv_check_len(iotca_csv_reader *r, const csv_rec *rec, size_t line, size_t len)
{
	if (len > r->max_field_len)
		csv_problem(r, IOTCA_CSV_FIELD_TOO_LONG, line, rec->nf + 1, rec,
		            "field longer than %zu bytes", r->max_field_len);
}

static void
csv_nul(iotca_csv_reader *r, const csv_rec *rec)
{
	csv_problem(r, IOTCA_CSV_NUL_BYTE, r->line, rec->nf + 1, rec,
	            "NUL byte; the file must be text (save it as CSV UTF-8)");
}

/* An unquoted field starting at data[pos]; leaves pos at the ',', the
 * line break or the end after it. IOTCA_EINVAL after a stray quote. */
static iotca_err
csv_unquoted(iotca_csv_reader *r, const csv_rec *rec)
{
	const unsigned char *d = r->data;
	size_t start = r->pos, p = r->pos;

	csv_check_count(r, rec);
	for (;;) {
		while (p < r->len && csv_class[d[p]] == CSV_PLAIN)
			p++;
		if (p == r->len || csv_class[d[p]] == CSV_COMMA ||
		    csv_class[d[p]] == CSV_BREAK)
			break;
		if (csv_class[d[p]] == CSV_NUL) {
			csv_nul(r, rec);
			p++;
			continue;
		}
		if (csv_all_blank(d, start, p))
			csv_problem(r, IOTCA_CSV_BARE_QUOTE, r->line,
			            rec->nf + 1, rec,
			            "spaces before the opening quote; remove "
			            "them");
		else
			csv_problem(
			    r, IOTCA_CSV_BARE_QUOTE, r->line, rec->nf + 1, rec,
			    "a quote inside an unquoted field; quote the "
			    "whole field and double the quote");
		csv_resync(r, p);
		return IOTCA_EINVAL;
	}
	r->pos = p;
	csv_check_len(r, rec, r->line, p - start);
	return csv_store(r, rec, d + start, p - start, CSV_NO_COPY);
}

/* Appends data[from..to) to the copy of the current quoted field, which
 * starts at *off in r->unq (set on the first call). Nothing is copied once
 * the record has a problem. */
static iotca_err
csv_copy(iotca_csv_reader *r, size_t *off, size_t from, size_t to)
{
	iotca_err rc;

	if (r->err.problem != IOTCA_CSV_NONE)
		return IOTCA_OK;
	if (*off == CSV_NO_COPY)
		*off = r->unq.len;
	rc = iotca_buf_append(&r->unq, r->data + from, to - from);
	return rc == IOTCA_ETOOBIG ? IOTCA_EINTERNAL : rc; /* cannot be */
}

/* After the closing quote at data[pos - 1]: only ',', a line break or the
 * end may follow. */
static iotca_err
csv_after_quote(iotca_csv_reader *r, const csv_rec *rec)
{
	const unsigned char *d = r->data;
	size_t p = r->pos;

	if (p == r->len || csv_class[d[p]] == CSV_COMMA ||
	    csv_class[d[p]] == CSV_BREAK)
		return IOTCA_OK;
	while (p < r->len && (d[p] == ' ' || d[p] == '\t'))
		p++;
	if (p == r->len || csv_class[d[p]] == CSV_COMMA ||
	    csv_class[d[p]] == CSV_BREAK)
		csv_problem(r, IOTCA_CSV_TEXT_AFTER_QUOTE, r->line, rec->nf + 1,
		            rec, "spaces after the closing quote; remove them");
	else
		csv_problem(r, IOTCA_CSV_TEXT_AFTER_QUOTE, r->line, rec->nf + 1,
		            rec,
		            "text after the closing quote; quote the whole "
		            "field and double any quote inside it");
	csv_resync(r, r->pos);
	return IOTCA_EINVAL;
}

/* A quoted field whose opening quote is at data[pos]; leaves pos after
 * the closing quote. IOTCA_EINVAL when it is never closed or is followed
 * by text. */
static iotca_err
csv_quoted(iotca_csv_reader *r, const csv_rec *rec)
{
	const unsigned char *d = r->data;
	size_t qpos = r->pos, qline = r->line;
	size_t seg = qpos + 1, p = seg, off = CSV_NO_COPY, copied = 0;
	iotca_err rc;

	csv_check_count(r, rec);
	for (;;) {
		while (p < r->len && (csv_class[d[p]] == CSV_PLAIN ||
		                      csv_class[d[p]] == CSV_COMMA))
			p++;
		if (p == r->len)
			break;
		if (d[p] == '"') {
			if (p + 1 == r->len || d[p + 1] != '"')
				break;
			/* a doubled quote: copy up to and with the first */
			csv_check_len(r, rec, qline, copied + p + 1 - seg);
			if ((rc = csv_copy(r, &off, seg, p + 1)) != IOTCA_OK)
				return rc;
			copied += p + 1 - seg;
			p += 2;
			seg = p;
		} else if (d[p] == '\0') {
			csv_nul(r, rec);
			p++;
		} else { /* a line break inside the field */
			r->pos = p;
			csv_skip_break(r);
			p = r->pos;
		}
	}
	if (p == r->len) {
		r->line = qline;
		csv_problem(r, IOTCA_CSV_UNTERMINATED, qline, rec->nf + 1, rec,
		            "unterminated quoted field (it starts on line %zu "
		            "and runs to the end of the file); add the closing "
		            "quote",
		            qline);
		csv_resync(r, qpos);
		return IOTCA_EINVAL;
	}
	r->pos = p + 1;
	csv_check_len(r, rec, qline, copied + p - seg);
	if ((rc = csv_after_quote(r, rec)) != IOTCA_OK)
		return rc;
	if (off == CSV_NO_COPY)
		return csv_store(r, rec, d + seg, p - seg, CSV_NO_COPY);
	if ((rc = csv_copy(r, &off, seg, p)) != IOTCA_OK)
		return rc;
	return csv_store(r, rec, NULL, copied + p - seg, off);
}

/* The message for the problem in r->err, in eb. */
static iotca_err
csv_fail(iotca_csv_reader *r, iotca_errbuf *eb)
{
	const iotca_csv_error *e = &r->err;

	if (e->column == 0)
		return iotca_errbuf_set(eb, IOTCA_EINVAL, "line %zu: %s",
		                        e->line, e->reason);
	if (e->line != e->record_line)
		return iotca_errbuf_set(eb, IOTCA_EINVAL,
		                        "line %zu, column %zu: %s (the record "
		                        "starts on line %zu)",
		                        e->line, e->column, e->reason,
		                        e->record_line);
	return iotca_errbuf_set(eb, IOTCA_EINVAL, "line %zu, column %zu: %s",
	                        e->line, e->column, e->reason);
}

/* A blank line at data[pos]: a record without fields, unless only blank
 * lines follow. */
static iotca_err
csv_blank(iotca_csv_reader *r, iotca_csv_row *row)
{
	size_t q;

	if (r->pos >= r->blank_end) {
		for (q = r->pos;
		     q < r->len && csv_class[r->data[q]] == CSV_BREAK; q++)
			;
		if (q == r->len) {
			r->pos = r->len;
			return IOTCA_ENOENT;
		}
		r->blank_end = q;
	}
	row->line = r->line;
	row->nfields = 0;
	row->fields = NULL;
	csv_skip_break(r);
	return IOTCA_OK;
}

/* A record starting at data[pos], which is not a line break. */
static iotca_err
csv_record(iotca_csv_reader *r, iotca_csv_row *row, iotca_errbuf *eb)
{
	csv_rec rec = {.line = r->line, .nf = 0};
	iotca_err rc;
	size_t i;

	iotca_buf_reset(&r->unq);
	for (;;) {
		if (r->pos < r->len && r->data[r->pos] == '"')
			rc = csv_quoted(r, &rec);
		else
			rc = csv_unquoted(r, &rec);
		if (rc == IOTCA_EINVAL)
			return csv_fail(r, eb);
		if (rc != IOTCA_OK) {
			r->failed = 1;
			return iotca_errbuf_set(
			    eb, rc, "%s reading line %zu of the CSV file",
			    iotca_strerror(rc), rec.line);
		}
		rec.nf++;
		if (r->pos == r->len)
			break;
		if (r->data[r->pos] != ',') {
			csv_skip_break(r);
			break;
		}
		r->pos++;
	}
	if (r->err.problem != IOTCA_CSV_NONE)
		return csv_fail(r, eb);
	for (i = 0; i < rec.nf; i++)
		if (r->unq_off[i] != CSV_NO_COPY)
			r->fields[i].data = r->unq.data + r->unq_off[i];
	row->line = rec.line;
	row->nfields = rec.nf;
	row->fields = r->fields;
	return IOTCA_OK;
}

iotca_err
iotca_csv_reader_next(iotca_csv_reader *r, iotca_csv_row *row, iotca_errbuf *eb)
{
	memset(&r->err, 0, sizeof(r->err));
	if (r->failed)
		return iotca_errbuf_set(eb, IOTCA_ENOMEM,
		                        "the CSV reader failed before (out of "
		                        "memory); start again");
	if (r->utf16) {
		r->utf16 = 0;
		r->pos = r->len;
		csv_problem(r, IOTCA_CSV_UTF16, 1, 0, NULL,
		            "the file is UTF-16 text; save it as \"CSV UTF-8 "
		            "(comma delimited)\" and upload that");
		return csv_fail(r, eb);
	}
	if (r->pos >= r->len)
		return IOTCA_ENOENT;
	if (csv_class[r->data[r->pos]] == CSV_BREAK)
		return csv_blank(r, row);
	return csv_record(r, row, eb);
}

const char *
iotca_csv_problem_name(iotca_csv_problem p)
{
	switch (p) {
	case IOTCA_CSV_NONE:
		return "none";
	case IOTCA_CSV_BARE_QUOTE:
		return "bare_quote";
	case IOTCA_CSV_TEXT_AFTER_QUOTE:
		return "text_after_quote";
	case IOTCA_CSV_UNTERMINATED:
		return "unterminated_quote";
	case IOTCA_CSV_TOO_MANY_FIELDS:
		return "too_many_fields";
	case IOTCA_CSV_FIELD_TOO_LONG:
		return "field_too_long";
	case IOTCA_CSV_NUL_BYTE:
		return "nul_byte";
	case IOTCA_CSV_UTF16:
		return "utf16";
	}
	return "unknown";
}

iotca_csv_field
iotca_csv_field_trim(iotca_csv_field f)
{
	while (f.len > 0 && (f.data[0] == ' ' || f.data[0] == '\t')) {
		f.data++;
		f.len--;
	}
	while (f.len > 0 &&
	       (f.data[f.len - 1] == ' ' || f.data[f.len - 1] == '\t'))
		f.len--;
	return f;
}

static unsigned char
csv_lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

int
iotca_csv_field_eq_ci(const iotca_csv_field *f, const char *name)
{
	iotca_csv_field t;
	size_t i;

	if (f == NULL || name == NULL)
		return 0;
	t = iotca_csv_field_trim(*f);
	if (t.len != strlen(name))
		return 0;
	for (i = 0; i < t.len; i++)
		if (csv_lower((unsigned char)t.data[i]) !=
		    csv_lower((unsigned char)name[i]))
			return 0;
	return 1;
}

int
iotca_csv_row_is_blank(const iotca_csv_row *row)
{
	size_t i;

	for (i = 0; i < row->nfields; i++)
		if (iotca_csv_field_trim(row->fields[i]).len > 0)
			return 0;
	return 1;
}
