/*
 * fuzz_csv.c - any bytes through lib/csv, to the end, errors and all.
 *
 * The input is read twice, with roomy caps and with tiny ones, carrying on
 * after every IOTCA_EINVAL as the association service does. Promises
 * checked: only OK, EINVAL and ENOENT come back, and ENOENT stays; every
 * call moves on (records start on strictly increasing lines, no more
 * calls than bytes); lines stay within the file; fields respect the caps
 * and lie wholly inside the input or wholly outside it (the internal
 * buffer), and every byte of them is read (ASan checks the rest); an
 * error has a position and a message made of it and its reason; and every
 * record, written out again by a plain RFC 4180 encoder, reads back the
 * same. Nothing may crash or leak.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf/buf.h"
#include "csv/csv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Physical lines in the input: one more than its line breaks. */
static size_t
fuzz_lines(const uint8_t *d, size_t n)
{
	size_t i, k = 1;

	for (i = 0; i < n; i++)
		if (d[i] == '\n' ||
		    (d[i] == '\r' && (i + 1 == n || d[i + 1] != '\n')))
			k++;
	return k;
}

/* Every field quoted, quotes doubled, one record, no line break. */
static void
fuzz_encode(iotca_buf *b, const iotca_csv_row *row)
{
	size_t i, j;

	for (i = 0; i < row->nfields; i++) {
		const iotca_csv_field *f = &row->fields[i];

		if (iotca_buf_append(b, i ? ",\"" : "\"", i ? 2 : 1) !=
		    IOTCA_OK)
			abort();
		for (j = 0; j < f->len; j++) {
			int q = f->data[j] == '"';

			if (iotca_buf_append(b, q ? "\"\"" : &f->data[j],
			                     q ? 2 : 1) != IOTCA_OK)
				abort();
		}
		if (iotca_buf_append(b, "\"", 1) != IOTCA_OK)
			abort();
	}
}

/* The record, encoded again, reads back the same with the same caps. */
static void
fuzz_round_trip(const iotca_csv_row *row, size_t maxf, size_t maxl)
{
	iotca_csv_reader *r = NULL;
	iotca_csv_row back;
	iotca_buf b;
	size_t i;

	if (row->nfields == 0)
		return;
	iotca_buf_init(&b, 1u << 24);
	fuzz_encode(&b, row);
	if (iotca_csv_reader_create(b.data, b.len, maxf, maxl, &r) != IOTCA_OK)
		abort();
	if (iotca_csv_reader_next(r, &back, NULL) != IOTCA_OK ||
	    back.line != 1 || back.nfields != row->nfields)
		abort();
	for (i = 0; i < back.nfields; i++)
		if (back.fields[i].len != row->fields[i].len ||
		    memcmp(back.fields[i].data, row->fields[i].data,
		           back.fields[i].len) != 0)
			abort();
	if (iotca_csv_reader_next(r, &back, NULL) != IOTCA_ENOENT)
		abort();
	iotca_csv_reader_destroy(r);
	iotca_buf_free(&b);
}

static void
fuzz_check_row(const uint8_t *data, size_t size, const iotca_csv_row *row,
               size_t maxf, size_t maxl)
{
	const char *in = (const char *)data, *end = in + size;
	volatile unsigned sum = 0;
	size_t i, j;

	if (row->nfields > maxf || (row->nfields > 0 && row->fields == NULL))
		abort();
	for (i = 0; i < row->nfields; i++) {
		const iotca_csv_field *f = &row->fields[i];
		iotca_csv_field t = iotca_csv_field_trim(*f);

		if (f->len > maxl || (f->len > 0 && f->data == NULL))
			abort();
		/* inside the input, or wholly outside it */
		if (f->len > 0 && f->data < end && f->data + f->len > in &&
		    (f->data < in || f->data + f->len > end))
			abort();
		for (j = 0; j < f->len; j++)
			sum += (unsigned char)f->data[j];
		if (t.len > f->len || t.data < f->data ||
		    t.data + t.len > f->data + f->len)
			abort();
		(void)iotca_csv_field_eq_ci(f, "ProductKey");
	}
	(void)sum;
	(void)iotca_csv_row_is_blank(row);
}

static void
fuzz_check_error(const iotca_csv_reader *r, const iotca_errbuf *eb, size_t maxf)
{
	const iotca_csv_error *e = iotca_csv_reader_error(r);

	if (eb->code != IOTCA_EINVAL || e->problem == IOTCA_CSV_NONE ||
	    e->line < e->record_line || e->reason[0] == '\0' ||
	    strncmp(eb->msg, "line ", 5) != 0 ||
	    strstr(eb->msg, e->reason) == NULL)
		abort();
	if ((e->problem == IOTCA_CSV_UTF16) != (e->column == 0))
		abort();
	if (e->problem == IOTCA_CSV_TOO_MANY_FIELDS && e->column != maxf + 1)
		abort();
	if (strcmp(iotca_csv_problem_name(e->problem), "unknown") == 0)
		abort();
}

static void
fuzz_parse(const uint8_t *data, size_t size, size_t maxf, size_t maxl)
{
	iotca_csv_reader *r = NULL;
	iotca_csv_row row;
	iotca_errbuf eb;
	iotca_err rc;
	size_t calls = 0, last = 0, at, lines = fuzz_lines(data, size);

	if (iotca_csv_reader_create((const char *)data, size, maxf, maxl, &r) !=
	    IOTCA_OK)
		abort();
	for (;;) {
		if (++calls > size + 2)
			abort(); /* no progress */
		iotca_errbuf_clear(&eb);
		rc = iotca_csv_reader_next(r, &row, &eb);
		if (rc == IOTCA_ENOENT)
			break;
		if (rc == IOTCA_OK) {
			fuzz_check_row(data, size, &row, maxf, maxl);
			fuzz_round_trip(&row, maxf, maxl);
			at = row.line;
		} else if (rc == IOTCA_EINVAL) {
			fuzz_check_error(r, &eb, maxf);
			at = iotca_csv_reader_error(r)->record_line;
			if (iotca_csv_reader_error(r)->line > lines)
				abort();
		} else {
			abort();
		}
		if (at <= last || at > lines)
			abort();
		last = at;
	}
	if (iotca_csv_reader_next(r, &row, &eb) != IOTCA_ENOENT)
		abort();
	iotca_csv_reader_destroy(r);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_parse(data, size, 8, 64);
	fuzz_parse(data, size, 3, 8);
	return 0;
}
