/*
 * csv.h - a generic RFC 4180 reader for uploads held in memory.
 *
 * The reader knows nothing about columns: it hands out records as arrays
 * of byte fields and, for a malformed record, says what is wrong and
 * exactly where (physical line, 1-based field number), then carries on
 * with what follows, so that a caller can report every bad row of a file
 * in one go.
 *
 * What it accepts:
 *   - an optional UTF-8 byte order mark (EF BB BF) at the very start;
 *   - records ending in CRLF, LF or a lone CR (old Mac), mixed freely;
 *     the last record may lack a line break;
 *   - fields separated by ',', quoted fields holding ',', CR, LF and
 *     doubled quotes (""), so one record may span several lines;
 *   - bytes as they are: spaces are kept (trim with iotca_csv_field_trim),
 *     UTF-8 is not checked. A NUL byte anywhere is an error.
 * Blank lines (nothing between two line breaks) in the middle come back as
 * records with nfields == 0; blank lines at the end never come back. A
 * line of spaces or of commas (",,") is a record like any other; see
 * iotca_csv_row_is_blank.
 *
 * Memory: the reader does not copy the input; the caller keeps it alive
 * and unchanged until iotca_csv_reader_destroy. Fields point into the
 * input when they can (unquoted fields, quoted fields without a doubled
 * quote); the others are unquoted into one internal buffer that is reused
 * for every record and never holds more than one record. The field array
 * is reused too. Nothing is allocated per field.
 *
 * A reader is not thread-safe; one thread at a time uses it.
 */
#ifndef IOTCA_CSV_H
#define IOTCA_CSV_H

#include <stddef.h>

#include "err/err.h"

/* One field: bytes, not NUL-terminated. Valid until the next call of
 * iotca_csv_reader_next or iotca_csv_reader_destroy. */
typedef struct iotca_csv_field {
	const char *data;
	size_t len;
} iotca_csv_field;

/* One record. fields (NULL when nfields == 0) has the lifetime of its
 * fields. */
typedef struct iotca_csv_row {
	size_t line;    /* 1-based physical line where the record starts */
	size_t nfields; /* 0 for a blank line in the middle of the data */
	const iotca_csv_field *fields;
} iotca_csv_row;

/* What was wrong with a record that iotca_csv_reader_next refused. */
typedef enum iotca_csv_problem {
	IOTCA_CSV_NONE = 0,
	IOTCA_CSV_BARE_QUOTE,       /* a quote inside an unquoted field */
	IOTCA_CSV_TEXT_AFTER_QUOTE, /* bytes between a closing quote and the
	                               next ',' or line break */
	IOTCA_CSV_UNTERMINATED,     /* a quoted field runs to the end */
	IOTCA_CSV_TOO_MANY_FIELDS,  /* more than max_fields fields */
	IOTCA_CSV_FIELD_TOO_LONG,   /* a field over max_field_len bytes */
	IOTCA_CSV_NUL_BYTE,         /* a NUL byte: not a text file */
	IOTCA_CSV_UTF16,            /* the file starts with a UTF-16 BOM */
} iotca_csv_problem;

#define IOTCA_CSV_REASON_MAX 256

/*
 * Where and why. line is the physical line of the offending byte: the
 * stray quote, the first byte after a closing quote, the NUL, the opening
 * quote of an unterminated field, the first byte of a field that is too
 * long or one too many. column is the 1-based number of the field holding
 * it in its record (0 for IOTCA_CSV_UTF16, which is about the whole file).
 * record_line is where that record starts (== row.line had it parsed);
 * it differs from line only inside records that span lines.
 */
typedef struct iotca_csv_error {
	iotca_csv_problem problem;
	size_t line;
	size_t column;
	size_t record_line;
	/* What is wrong and what to do, without the position:
	 * "a quote inside an unquoted field; quote the whole field and
	 * double the quote". The errbuf message is this with "line L,
	 * column C: " in front ("line L: " when column is 0) and, when
	 * line != record_line, " (the record starts on line R)" after. */
	char reason[IOTCA_CSV_REASON_MAX];
} iotca_csv_error;

typedef struct iotca_csv_reader iotca_csv_reader;

/*
 * Makes a reader over data[0..len) (an upload held whole in memory; data
 * may be NULL when len is 0). A record may have at most max_fields fields
 * and a field at most max_field_len bytes once unquoted; both must be at
 * least 1. IOTCA_EINVAL for bad arguments, IOTCA_ENOMEM. *out is written
 * only on success.
 */
iotca_err iotca_csv_reader_create(const char *data, size_t len,
                                  size_t max_fields, size_t max_field_len,
                                  iotca_csv_reader **out);

/* Frees the reader (not the input). NULL is allowed. */
void iotca_csv_reader_destroy(iotca_csv_reader *r);

/*
 * Reads the next record.
 *   IOTCA_OK      *row is the record;
 *   IOTCA_ENOENT  no more records (also for an empty input, a lone BOM or
 *                 only blank lines); every later call says so again;
 *   IOTCA_EINVAL  the record is malformed: eb->msg says what and where
 *                 ("line 7, column 2: a quote inside an unquoted field;
 *                 quote the whole field and double the quote") and
 *                 iotca_csv_reader_error gives the same as data. The next
 *                 call carries on: after a cap or NUL problem, with the
 *                 record that follows the bad one (its quoting is still
 *                 followed, so its end is known); after a quoting problem,
 *                 at the start of the physical line after the offending
 *                 byte (for an unterminated quote: after the line of the
 *                 opening quote). One problem per record is reported:
 *                 the quoting problem if there is one (it is where
 *                 reading resumes), else the first.
 *   IOTCA_ENOMEM  (or IOTCA_EINTERNAL, a bug) and the reader is unusable:
 *                 every later call fails with IOTCA_ENOMEM.
 * eb may be NULL; it is left alone on IOTCA_OK and IOTCA_ENOENT.
 */
iotca_err iotca_csv_reader_next(iotca_csv_reader *r, iotca_csv_row *row,
                                iotca_errbuf *eb);

/* The problem behind the last IOTCA_EINVAL of iotca_csv_reader_next
 * (problem IOTCA_CSV_NONE when the last call did not fail that way).
 * Valid until the next iotca_csv_reader_next. */
const iotca_csv_error *iotca_csv_reader_error(const iotca_csv_reader *r);

/* A stable lowercase name for a problem ("bare_quote", "field_too_long"),
 * for machine-readable error codes. Never NULL. */
const char *iotca_csv_problem_name(iotca_csv_problem p);

/* f without leading and trailing spaces and tabs. */
iotca_csv_field iotca_csv_field_trim(iotca_csv_field f);

/* 1 when f, trimmed, equals name ignoring ASCII case, else 0
 * ("  productkey " matches "ProductKey"). */
int iotca_csv_field_eq_ci(const iotca_csv_field *f, const char *name);

/* 1 when the record has no field or only fields that trim to nothing
 * (a blank line, "   ", ",,", "\"\",\"\"" as spreadsheets leave behind). */
int iotca_csv_row_is_blank(const iotca_csv_row *row);

#endif /* IOTCA_CSV_H */
