/*
 * test_csv.c - lib/csv: exact records, line numbers, error positions and
 * messages, resynchronisation after every kind of error, a round trip of
 * random records through a reference encoder, and the parse time of a
 * 10,000-row upload.
 *
 * Every input is handed to the reader in a malloc'd buffer of exactly its
 * size, so under ASan any read past the end of the input is caught.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf/buf.h"
#include "csv/csv.h"
#include "test.h"

/* A reader over an exact-size copy of its input. */
typedef struct csvt {
	char *copy;
	size_t len;
	iotca_csv_reader *r;
} csvt;

static int
csvt_open_n(csvt *t, const char *s, size_t n, size_t max_fields,
            size_t max_field_len)
{
	t->copy = malloc(n > 0 ? n : 1);
	t->len = n;
	t->r = NULL;
	if (t->copy == NULL)
		return 0;
	if (n > 0)
		memcpy(t->copy, s, n);
	return iotca_csv_reader_create(t->copy, n, max_fields, max_field_len,
	                               &t->r) == IOTCA_OK;
}

static int
csvt_open(csvt *t, const char *s, size_t max_fields, size_t max_field_len)
{
	return csvt_open_n(t, s, strlen(s), max_fields, max_field_len);
}

static void
csvt_close(csvt *t)
{
	iotca_csv_reader_destroy(t->r);
	free(t->copy);
}

/* Prints a field with C escapes. */
static void
print_field(const char *p, size_t n)
{
	size_t i;

	fputc('"', stderr);
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c == '\r')
			fputs("\\r", stderr);
		else if (c == '\n')
			fputs("\\n", stderr);
		else if (c == '"' || c == '\\')
			fprintf(stderr, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			fprintf(stderr, "\\x%02x", c);
		else
			fputc(c, stderr);
	}
	fputc('"', stderr);
}

static void
print_row(const char *what, const iotca_csv_row *row)
{
	size_t i;

	fprintf(stderr, "  %s: line %zu, %zu fields:", what, row->line,
	        row->nfields);
	for (i = 0; i < row->nfields; i++) {
		fputc(' ', stderr);
		print_field(row->fields[i].data, row->fields[i].len);
	}
	fputc('\n', stderr);
}

/*
 * Whether the next record is at line `line` with the fields in want
 * (NULL-terminated; lens gives lengths for fields with NUL bytes or is
 * NULL). Explains a mismatch, naming the caller's line `at`.
 */
static int
row_is(iotca_csv_reader *r, int at, size_t line, const char *const *want)
{
	iotca_csv_row row;
	iotca_errbuf eb;
	iotca_err rc;
	size_t i, n = 0;
	int ok;

	while (want[n] != NULL)
		n++;
	memset(&row, 0, sizeof(row));
	iotca_errbuf_clear(&eb);
	rc = iotca_csv_reader_next(r, &row, &eb);
	if (rc != IOTCA_OK) {
		fprintf(stderr, "  line %d: expected a record, got %s: %s\n",
		        at, iotca_strerror(rc), eb.msg);
		return 0;
	}
	ok = row.line == line && row.nfields == n &&
	     iotca_csv_reader_error(r)->problem == IOTCA_CSV_NONE;
	for (i = 0; ok && i < n; i++)
		ok =
		    row.fields[i].len == strlen(want[i]) &&
		    memcmp(row.fields[i].data, want[i], row.fields[i].len) == 0;
	if (!ok) {
		fprintf(stderr, "  line %d: expected line %zu, %zu fields:", at,
		        line, n);
		for (i = 0; i < n; i++) {
			fputc(' ', stderr);
			print_field(want[i], strlen(want[i]));
		}
		fputc('\n', stderr);
		print_row("got", &row);
	}
	return ok;
}

#define ROW(r, line, ...)                                                      \
	CHECK(row_is((r), __LINE__, (line),                                    \
	             (const char *const[]){__VA_ARGS__, NULL}))
#define BLANK(r, line)                                                         \
	CHECK(row_is((r), __LINE__, (line), (const char *const[]){NULL}))

/* Whether the next call fails with problem p at line/column, a message
 * "line L, column C: ..." holding `has`, and record_line rec_line. */
static int
err_is(iotca_csv_reader *r, int at, iotca_csv_problem p, size_t line,
       size_t column, size_t rec_line, const char *has)
{
	const iotca_csv_error *e;
	iotca_csv_row row;
	iotca_errbuf eb;
	iotca_err rc;
	char prefix[64];

	iotca_errbuf_clear(&eb);
	rc = iotca_csv_reader_next(r, &row, &eb);
	if (rc != IOTCA_EINVAL) {
		fprintf(stderr, "  line %d: expected EINVAL, got %s\n", at,
		        iotca_strerror(rc));
		if (rc == IOTCA_OK)
			print_row("got", &row);
		return 0;
	}
	e = iotca_csv_reader_error(r);
	if (column > 0)
		snprintf(prefix, sizeof(prefix), "line %zu, column %zu: ", line,
		         column);
	else
		snprintf(prefix, sizeof(prefix), "line %zu: ", line);
	if (eb.code != IOTCA_EINVAL || e->problem != p || e->line != line ||
	    e->column != column || e->record_line != rec_line ||
	    strncmp(eb.msg, prefix, strlen(prefix)) != 0 ||
	    strstr(eb.msg, has) == NULL || strstr(e->reason, has) == NULL ||
	    strstr(eb.msg, e->reason) == NULL) {
		fprintf(
		    stderr,
		    "  line %d: expected %s at line %zu column %zu (record "
		    "line %zu) saying \"%s\"; got %s at line %zu column %zu "
		    "(record line %zu): \"%s\" / reason \"%s\"\n",
		    at, iotca_csv_problem_name(p), line, column, rec_line, has,
		    iotca_csv_problem_name(e->problem), e->line, e->column,
		    e->record_line, eb.msg, e->reason);
		return 0;
	}
	return 1;
}

#define ERR(r, p, line, column, has)                                           \
	CHECK(err_is((r), __LINE__, (p), (line), (column), (line), (has)))
#define ERR_IN(r, p, line, column, rec_line, has)                              \
	CHECK(err_is((r), __LINE__, (p), (line), (column), (rec_line), (has)))

/* Whether the reader is at its end, and stays there. */
static int
end_is(iotca_csv_reader *r, int at)
{
	iotca_csv_row row;
	iotca_err a, b;

	memset(&row, 0, sizeof(row));
	a = iotca_csv_reader_next(r, &row, NULL);
	b = iotca_csv_reader_next(r, &row, NULL);
	if (a != IOTCA_ENOENT || b != IOTCA_ENOENT) {
		fprintf(stderr, "  line %d: expected the end, got %s then %s\n",
		        at, iotca_strerror(a), iotca_strerror(b));
		if (a == IOTCA_OK)
			print_row("got", &row);
		return 0;
	}
	return 1;
}

#define END(r) CHECK(end_is((r), __LINE__))

#define HEADER "ProductKey,DeviceName,CertSN"

static void
test_simple_lf(void)
{
	csvt t;

	REQUIRE(csvt_open(&t,
	                  HEADER "\n"
	                         "a1B2c3D4e5,device-0001,01AB\n"
	                         "a1B2c3D4e5,device-0002,0x02:cd\n",
	                  16, 256));
	ROW(t.r, 1, "ProductKey", "DeviceName", "CertSN");
	ROW(t.r, 2, "a1B2c3D4e5", "device-0001", "01AB");
	ROW(t.r, 3, "a1B2c3D4e5", "device-0002", "0x02:cd");
	END(t.r);
	csvt_close(&t);
}

static void
test_crlf(void)
{
	csvt t;

	REQUIRE(
	    csvt_open(&t, HEADER "\r\npk,dev1,01\r\npk,dev2,02\r\n", 16, 256));
	ROW(t.r, 1, "ProductKey", "DeviceName", "CertSN");
	ROW(t.r, 2, "pk", "dev1", "01"); /* no CR left in the last field */
	ROW(t.r, 3, "pk", "dev2", "02");
	END(t.r);
	csvt_close(&t);
}

static void
test_lone_cr_and_mixed(void)
{
	csvt t;

	REQUIRE(csvt_open(&t, "a,b\rc,d\re", 16, 256));
	ROW(t.r, 1, "a", "b");
	ROW(t.r, 2, "c", "d");
	ROW(t.r, 3, "e");
	END(t.r);
	csvt_close(&t);

	/* CRLF, LF and CR in one file; "\n\r" is two line breaks */
	REQUIRE(csvt_open(&t, "a\r\nb\nc\rd\n\re\r\n", 16, 256));
	ROW(t.r, 1, "a");
	ROW(t.r, 2, "b");
	ROW(t.r, 3, "c");
	ROW(t.r, 4, "d");
	BLANK(t.r, 5);
	ROW(t.r, 6, "e");
	END(t.r);
	csvt_close(&t);
}

static void
test_bom(void)
{
	csvt t;

	REQUIRE(csvt_open(&t, "\xEF\xBB\xBF" HEADER "\r\npk,d,1\r\n", 16, 256));
	ROW(t.r, 1, "ProductKey", "DeviceName", "CertSN");
	ROW(t.r, 2, "pk", "d", "1");
	END(t.r);
	csvt_close(&t);

	/* a BOM before a quoted header field */
	REQUIRE(csvt_open(&t, "\xEF\xBB\xBF\"ProductKey\",x\n", 16, 256));
	ROW(t.r, 1, "ProductKey", "x");
	END(t.r);
	csvt_close(&t);

	/* only a leading BOM is skipped; elsewhere it is field bytes */
	REQUIRE(csvt_open(&t,
	                  "a\n\xEF\xBB\xBF"
	                  "b\n",
	                  16, 256));
	ROW(t.r, 1, "a");
	ROW(t.r, 2,
	    "\xEF\xBB\xBF"
	    "b");
	END(t.r);
	csvt_close(&t);

	/* a partial BOM is not one */
	REQUIRE(csvt_open(&t, "\xEF\xBBx\n", 16, 256));
	ROW(t.r, 1, "\xEF\xBBx");
	END(t.r);
	csvt_close(&t);
}

static void
test_quoted(void)
{
	csvt t;

	REQUIRE(csvt_open(&t,
	                  "\"a,b\",\"say \"\"hi\"\"\",\"x\r\ny\"\r\n"
	                  "next,row\r\n"
	                  "\"multi\nline\n\",z\n"
	                  "last",
	                  16, 256));
	ROW(t.r, 1, "a,b", "say \"hi\"", "x\r\ny");
	ROW(t.r, 3, "next", "row");
	ROW(t.r, 4, "multi\nline\n", "z");
	ROW(t.r, 7, "last");
	END(t.r);
	csvt_close(&t);

	/* empty fields, quoted and not; a field that is one quote */
	REQUIRE(csvt_open(&t, ",,\n\"\",\"\"\"\",\"\"\"\"\"\"\"\"\n\"\"\n", 16,
	                  256));
	ROW(t.r, 1, "", "", "");
	ROW(t.r, 2, "", "\"", "\"\"\"");
	ROW(t.r, 3, "");
	END(t.r);
	csvt_close(&t);

	/* a lone CR inside quotes counts as a line, CR CR LF as two */
	REQUIRE(csvt_open(&t, "\"a\rb\",\"c\r\r\nd\"\nnext\n", 16, 256));
	ROW(t.r, 1, "a\rb", "c\r\r\nd");
	ROW(t.r, 5, "next");
	END(t.r);
	csvt_close(&t);
}

static void
test_spaces_kept(void)
{
	csvt t;

	REQUIRE(csvt_open(&t, " a , b ,\t\n\" q \", x\n", 16, 256));
	ROW(t.r, 1, " a ", " b ", "\t");
	ROW(t.r, 2, " q ", " x");
	END(t.r);
	csvt_close(&t);
}

static void
test_trailing_blank_lines(void)
{
	static const char *const inputs[] = {
	    "a,b\n\n",
	    "a,b\r\n\r\n",
	    "a,b\n\n\n\n",
	    "a,b\r\n\r\n\r\n\r\n",
	    "a,b\n\r\n\r\r\n\n\r",
	    "a,b\r",
	};
	size_t i;
	csvt t;

	for (i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
		REQUIRE(csvt_open(&t, inputs[i], 16, 256));
		ROW(t.r, 1, "a", "b");
		END(t.r);
		csvt_close(&t);
	}
}

static void
test_blank_middle(void)
{
	csvt t;

	REQUIRE(csvt_open(&t, "a\n\nb\r\n\r\n\r\nc\n\n", 16, 256));
	ROW(t.r, 1, "a");
	BLANK(t.r, 2);
	ROW(t.r, 3, "b");
	BLANK(t.r, 4);
	BLANK(t.r, 5);
	ROW(t.r, 6, "c");
	END(t.r);
	csvt_close(&t);

	/* blank lines before the header are blank records too */
	REQUIRE(csvt_open(&t, "\xEF\xBB\xBF\n\nh\n", 16, 256));
	BLANK(t.r, 1);
	BLANK(t.r, 2);
	ROW(t.r, 3, "h");
	END(t.r);
	csvt_close(&t);
}

static void
test_no_final_newline(void)
{
	csvt t;

	REQUIRE(csvt_open(&t, "a,b\nc,d", 16, 256));
	ROW(t.r, 1, "a", "b");
	ROW(t.r, 2, "c", "d");
	END(t.r);
	csvt_close(&t);

	REQUIRE(csvt_open(&t, "a,b\n\"c\"", 16, 256));
	ROW(t.r, 1, "a", "b");
	ROW(t.r, 2, "c");
	END(t.r);
	csvt_close(&t);

	/* a trailing comma makes an empty last field */
	REQUIRE(csvt_open(&t, "a,", 16, 256));
	ROW(t.r, 1, "a", "");
	END(t.r);
	csvt_close(&t);
}

static void
test_empty_inputs(void)
{
	static const char *const inputs[] = {
	    "", "\xEF\xBB\xBF", "\xEF\xBB\xBF\r\n\n", "\n", "\r\n\r\n", "\r",
	};
	iotca_csv_reader *r = NULL;
	iotca_csv_row row;
	size_t i;
	csvt t;

	for (i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
		REQUIRE(csvt_open(&t, inputs[i], 16, 256));
		END(t.r);
		csvt_close(&t);
	}
	REQUIRE(iotca_csv_reader_create(NULL, 0, 1, 1, &r) == IOTCA_OK);
	CHECK_EQ_INT(iotca_csv_reader_next(r, &row, NULL), IOTCA_ENOENT);
	iotca_csv_reader_destroy(r);
}

static void
test_create_args(void)
{
	iotca_csv_reader *r = (iotca_csv_reader *)&r; /* must stay as is */
	iotca_csv_reader *before = r;

	CHECK_EQ_INT(iotca_csv_reader_create("a", 1, 0, 10, &r), IOTCA_EINVAL);
	CHECK_EQ_INT(iotca_csv_reader_create("a", 1, 3, 0, &r), IOTCA_EINVAL);
	CHECK_EQ_INT(iotca_csv_reader_create(NULL, 1, 3, 10, &r), IOTCA_EINVAL);
	CHECK_EQ_INT(iotca_csv_reader_create("a", 1, 3, 10, NULL),
	             IOTCA_EINVAL);
	CHECK(r == before);
	iotca_csv_reader_destroy(NULL);
}

static void
test_unterminated(void)
{
	csvt t;

	REQUIRE(csvt_open(&t, "h\n\"abc\n", 16, 256));
	ROW(t.r, 1, "h");
	ERR(t.r, IOTCA_CSV_UNTERMINATED, 2, 1,
	    "unterminated quoted field (it starts on line 2 and runs to the "
	    "end of the file)");
	END(t.r);
	csvt_close(&t);

	/* a stray opening quote: the next line is read again as records */
	REQUIRE(csvt_open(&t, "a,\"b\nc,d\r\ne,f", 16, 256));
	ERR(t.r, IOTCA_CSV_UNTERMINATED, 1, 2, "add the closing quote");
	ROW(t.r, 2, "c", "d");
	ROW(t.r, 3, "e", "f");
	END(t.r);
	csvt_close(&t);

	/* a quoted field opening on the second line of a record */
	REQUIRE(csvt_open(&t, "\"x\ny\",\"z\nnext\n", 16, 256));
	ERR_IN(t.r, IOTCA_CSV_UNTERMINATED, 2, 2, 1, "starts on line 2");
	ROW(t.r, 3, "next");
	END(t.r);
	csvt_close(&t);

	/* an opening quote as the very last byte */
	REQUIRE(csvt_open(&t, "a,\"", 16, 256));
	ERR(t.r, IOTCA_CSV_UNTERMINATED, 1, 2, "unterminated");
	END(t.r);
	csvt_close(&t);
}

static void
test_bare_quote(void)
{
	csvt t;
	iotca_errbuf eb;
	iotca_csv_row row;

	REQUIRE(csvt_open(&t, "h1,h2\na,b\"c,d\nok,1\n", 16, 256));
	ROW(t.r, 1, "h1", "h2");
	iotca_errbuf_clear(&eb);
	CHECK_EQ_INT(iotca_csv_reader_next(t.r, &row, &eb), IOTCA_EINVAL);
	CHECK_EQ_STR(eb.msg, "line 2, column 2: a quote inside an unquoted "
	                     "field; quote the whole field and double the "
	                     "quote");
	CHECK_EQ_STR(iotca_csv_reader_error(t.r)->reason,
	             "a quote inside an unquoted field; quote the whole field "
	             "and double the quote");
	CHECK_EQ_STR(
	    iotca_csv_problem_name(iotca_csv_reader_error(t.r)->problem),
	    "bare_quote");
	ROW(t.r, 3, "ok", "1");
	/* the problem is forgotten once a record reads fine */
	CHECK_EQ_INT(iotca_csv_reader_error(t.r)->problem, IOTCA_CSV_NONE);
	END(t.r);
	csvt_close(&t);

	/* spaces before an opening quote get their own advice */
	REQUIRE(csvt_open(&t, "x, \"y\"\nz", 16, 256));
	ERR(t.r, IOTCA_CSV_BARE_QUOTE, 1, 2, "spaces before the opening quote");
	ROW(t.r, 2, "z");
	END(t.r);
	csvt_close(&t);

	/* a quote ending an unquoted field, on the last line */
	REQUIRE(csvt_open(&t, "a\nb\"", 16, 256));
	ROW(t.r, 1, "a");
	ERR(t.r, IOTCA_CSV_BARE_QUOTE, 2, 1, "a quote inside an unquoted");
	END(t.r);
	csvt_close(&t);
}

static void
test_text_after_quote(void)
{
	csvt t;

	REQUIRE(csvt_open(&t, "\"a\"b,c\nok\n", 16, 256));
	ERR(t.r, IOTCA_CSV_TEXT_AFTER_QUOTE, 1, 1,
	    "text after the closing quote");
	ROW(t.r, 2, "ok");
	END(t.r);
	csvt_close(&t);

	REQUIRE(csvt_open(&t, "x,\"a\" ,c\r\nok\r\n", 16, 256));
	ERR(t.r, IOTCA_CSV_TEXT_AFTER_QUOTE, 1, 2,
	    "spaces after the closing quote; remove them");
	ROW(t.r, 2, "ok");
	END(t.r);
	csvt_close(&t);

	/* in a record that spans lines: the line of the text, and where the
	 * record starts */
	REQUIRE(csvt_open(&t, "r,\"a\nb\"x\nok\n", 16, 256));
	ERR_IN(t.r, IOTCA_CSV_TEXT_AFTER_QUOTE, 2, 2, 1,
	       "text after the closing quote");
	ROW(t.r, 3, "ok");
	END(t.r);
	csvt_close(&t);

	{
		iotca_errbuf eb;
		iotca_csv_row row;

		REQUIRE(csvt_open(&t, "r,\"a\nb\"x\n", 16, 256));
		CHECK_EQ_INT(iotca_csv_reader_next(t.r, &row, &eb),
		             IOTCA_EINVAL);
		CHECK_CONTAINS(eb.msg, "line 2, column 2: text after the "
		                       "closing quote");
		CHECK_CONTAINS(eb.msg, "(the record starts on line 1)");
		csvt_close(&t);
	}
}

static void
test_too_many_fields(void)
{
	csvt t;

	REQUIRE(csvt_open(&t, "a,b,c\na,b,c,d\nx,y,z\na,b,c,\n", 3, 256));
	ROW(t.r, 1, "a", "b", "c");
	ERR(t.r, IOTCA_CSV_TOO_MANY_FIELDS, 2, 4, "more than 3 fields");
	ROW(t.r, 3, "x", "y", "z");
	/* an empty fourth field is one too many as well */
	ERR(t.r, IOTCA_CSV_TOO_MANY_FIELDS, 4, 4, "more than 3 fields");
	END(t.r);
	csvt_close(&t);

	/* the record is read to its end, quotes and all: the extra field
	 * spans two lines, and reading resumes after it */
	REQUIRE(csvt_open(&t, "a,b,c,\"d\ne,f\",g\nx\n", 3, 256));
	ERR(t.r, IOTCA_CSV_TOO_MANY_FIELDS, 1, 4, "more than 3 fields");
	ROW(t.r, 3, "x");
	END(t.r);
	csvt_close(&t);

	/* the extra field starts on the record's second line */
	REQUIRE(csvt_open(&t, "\"a\nb\",c\nx\n", 1, 256));
	ERR_IN(t.r, IOTCA_CSV_TOO_MANY_FIELDS, 2, 2, 1, "more than 1 field;");
	ROW(t.r, 3, "x");
	END(t.r);
	csvt_close(&t);
}

static void
test_field_too_long(void)
{
	csvt t;

	REQUIRE(csvt_open(&t, "abcd,abcde\nabcd\n", 16, 4));
	ERR(t.r, IOTCA_CSV_FIELD_TOO_LONG, 1, 2, "field longer than 4 bytes");
	ROW(t.r, 2, "abcd");
	END(t.r);
	csvt_close(&t);

	/* the cap is on the unquoted bytes: "ab""c" is 4 bytes, "ab""cd" 5 */
	REQUIRE(csvt_open(&t,
	                  "\"ab\"\"c\"\n\"ab\"\"cd\"\n\"\"\"\"\"\"\"\"\"\"\n"
	                  "\"abcd\",\"abcde\"\nz\n",
	                  16, 4));
	ROW(t.r, 1, "ab\"c");
	ERR(t.r, IOTCA_CSV_FIELD_TOO_LONG, 2, 1, "longer than 4 bytes");
	ROW(t.r, 3, "\"\"\"\"");
	ERR(t.r, IOTCA_CSV_FIELD_TOO_LONG, 4, 2, "longer than 4 bytes");
	ROW(t.r, 5, "z");
	END(t.r);
	csvt_close(&t);

	/* a long quoted field over several lines: reported where it starts,
	 * and reading resumes after the record */
	REQUIRE(csvt_open(&t, "x,\"ab\ncd\"\"ef\ngh\",y\nok\n", 16, 4));
	ERR(t.r, IOTCA_CSV_FIELD_TOO_LONG, 1, 2, "longer than 4 bytes");
	ROW(t.r, 4, "ok");
	END(t.r);
	csvt_close(&t);
}

static void
test_nul_byte(void)
{
	static const char in1[] = "a\0b,c\nok\n";
	static const char in2[] = "x,\"a\nb\0c\"\nok";
	static const char in3[] = "\0";
	csvt t;

	REQUIRE(csvt_open_n(&t, in1, sizeof(in1) - 1, 16, 256));
	ERR(t.r, IOTCA_CSV_NUL_BYTE, 1, 1, "NUL byte; the file must be text");
	ROW(t.r, 2, "ok");
	END(t.r);
	csvt_close(&t);

	/* inside a quoted field on the record's second line: the structure
	 * holds, so reading resumes after the record */
	REQUIRE(csvt_open_n(&t, in2, sizeof(in2) - 1, 16, 256));
	ERR_IN(t.r, IOTCA_CSV_NUL_BYTE, 2, 2, 1, "NUL byte");
	ROW(t.r, 3, "ok");
	END(t.r);
	csvt_close(&t);

	REQUIRE(csvt_open_n(&t, in3, sizeof(in3) - 1, 16, 256));
	ERR(t.r, IOTCA_CSV_NUL_BYTE, 1, 1, "NUL byte");
	END(t.r);
	csvt_close(&t);
}

static void
test_utf16(void)
{
	static const char le[] = "\xFF\xFEP\0K\0,\0D\0\r\0\n\0";
	static const char be[] = "\xFE\xFF\0P\0K";
	csvt t;

	REQUIRE(csvt_open_n(&t, le, sizeof(le) - 1, 16, 256));
	ERR(t.r, IOTCA_CSV_UTF16, 1, 0, "the file is UTF-16 text; save it as");
	END(t.r);
	csvt_close(&t);

	REQUIRE(csvt_open_n(&t, be, sizeof(be) - 1, 16, 256));
	ERR(t.r, IOTCA_CSV_UTF16, 1, 0, "UTF-16");
	END(t.r);
	csvt_close(&t);
}

/* One record with several problems: a quoting problem wins, since reading
 * resumes from its position; among the others, the first. */
static void
test_which_problem(void)
{
	static const char in[] = "a\0,\"b\nok\n";
	csvt t;

	REQUIRE(csvt_open(&t, "a,b,c\"d\nok\n", 2, 256));
	ERR(t.r, IOTCA_CSV_BARE_QUOTE, 1, 3, "a quote inside");
	ROW(t.r, 2, "ok");
	END(t.r);
	csvt_close(&t);

	REQUIRE(csvt_open_n(&t, in, sizeof(in) - 1, 16, 256));
	ERR(t.r, IOTCA_CSV_UNTERMINATED, 1, 2, "unterminated");
	ROW(t.r, 2, "ok");
	END(t.r);
	csvt_close(&t);

	REQUIRE(csvt_open(&t, "abcdef,1,2,3\nok\n", 2, 4));
	ERR(t.r, IOTCA_CSV_FIELD_TOO_LONG, 1, 1, "longer than 4");
	ROW(t.r, 2, "ok");
	END(t.r);
	csvt_close(&t);
}

/* Every kind of problem in one upload; each good line after a bad one
 * comes back with its own line number. */
static void
test_resync_all_kinds(void)
{
	/* clang-format off */
	static const char in[] =
	    HEADER "\r\n"                                /* 1 */
	    "pk,dev1,01\r\n"                             /* 2 */
	    "pk,de\"v2,02\r\n"                           /* 3 */
	    "pk,dev3,03\r\n"                             /* 4 */
	    "pk,\"dev4\"x,04\r\n"                        /* 5 */
	    "pk,dev5,05\r\n"                             /* 6 */
	    "pk,dev6,06,extra\r\n"                       /* 7 */
	    "pk,dev7,07\r\n"                             /* 8 */
	    "pk,dev8,0123456789abcdef0123456789\r\n"     /* 9 */
	    "pk,dev9,09\r\n"                             /* 10 */
	    "pk,dev\0" "10,10\r\n"                       /* 11 */
	    "pk,\"dev\r\n11\",11\r\n"                    /* 12-13 */
	    "\r\n"                                       /* 14 */
	    "pk,dev12,12\r\n"                            /* 15 */
	    "pk,dev13,\"13\r\n"                          /* 16 */
	    "pk,dev14,14\r\n"                            /* 17 */
	    "\r\n\r\n";
	/* clang-format on */
	csvt t;

	REQUIRE(csvt_open_n(&t, in, sizeof(in) - 1, 3, 20));
	ROW(t.r, 1, "ProductKey", "DeviceName", "CertSN");
	ROW(t.r, 2, "pk", "dev1", "01");
	ERR(t.r, IOTCA_CSV_BARE_QUOTE, 3, 2, "a quote inside");
	ROW(t.r, 4, "pk", "dev3", "03");
	ERR(t.r, IOTCA_CSV_TEXT_AFTER_QUOTE, 5, 2, "text after");
	ROW(t.r, 6, "pk", "dev5", "05");
	ERR(t.r, IOTCA_CSV_TOO_MANY_FIELDS, 7, 4, "more than 3 fields");
	ROW(t.r, 8, "pk", "dev7", "07");
	ERR(t.r, IOTCA_CSV_FIELD_TOO_LONG, 9, 3, "longer than 20 bytes");
	ROW(t.r, 10, "pk", "dev9", "09");
	ERR(t.r, IOTCA_CSV_NUL_BYTE, 11, 2, "NUL byte");
	ROW(t.r, 12, "pk", "dev\r\n11", "11");
	BLANK(t.r, 14);
	ROW(t.r, 15, "pk", "dev12", "12");
	ERR(t.r, IOTCA_CSV_UNTERMINATED, 16, 3, "starts on line 16");
	ROW(t.r, 17, "pk", "dev14", "14");
	END(t.r);
	csvt_close(&t);
}

/* Unquoted fields and quoted ones without a doubled quote point into the
 * input; only a field with a doubled quote is copied. */
static void
test_zero_copy(void)
{
	iotca_csv_row row;
	csvt t;

	REQUIRE(csvt_open(&t, "abc,\"d,e\",\"f\"\"g\"\n", 16, 256));
	REQUIRE(iotca_csv_reader_next(t.r, &row, NULL) == IOTCA_OK);
	REQUIRE(row.nfields == 3);
	CHECK(row.fields[0].data == t.copy);
	CHECK(row.fields[1].data == t.copy + 5);
	CHECK(row.fields[2].data < t.copy ||
	      row.fields[2].data >= t.copy + t.len);
	CHECK(row.fields[2].len == 3 &&
	      memcmp(row.fields[2].data, "f\"g", 3) == 0);
	csvt_close(&t);
}

/* Many copied fields in one record: the internal buffer moves while the
 * record is read, and every field must still be right. */
static void
test_many_copied_fields(void)
{
	enum { NF = 300, FL = 100 };
	iotca_buf in, want;
	iotca_csv_row row;
	iotca_csv_reader *r = NULL;
	size_t i, j, bad = 0;

	iotca_buf_init(&in, 1u << 20);
	iotca_buf_init(&want, FL);
	for (i = 0; i < NF; i++) {
		REQUIRE(iotca_buf_append_str(&in, i ? ",\"" : "\"") ==
		        IOTCA_OK);
		for (j = 0; j < FL / 2; j++)
			REQUIRE(iotca_buf_append(&in, j % 7 ? "x" : "\"\"",
			                         j % 7 ? 1 : 2) == IOTCA_OK);
		REQUIRE(iotca_buf_printf(&in, "%03zu\"", i) == IOTCA_OK);
	}
	REQUIRE(iotca_buf_append_str(&in, "\nnext\n") == IOTCA_OK);
	REQUIRE(iotca_csv_reader_create(in.data, in.len, NF, FL, &r) ==
	        IOTCA_OK);
	REQUIRE(iotca_csv_reader_next(r, &row, NULL) == IOTCA_OK);
	CHECK_EQ_INT(row.nfields, NF);
	for (i = 0; i < row.nfields; i++) {
		iotca_buf_reset(&want);
		for (j = 0; j < FL / 2; j++)
			iotca_buf_append(&want, j % 7 ? "x" : "\"", 1);
		iotca_buf_printf(&want, "%03zu", i);
		if (row.fields[i].len != want.len ||
		    memcmp(row.fields[i].data, want.data, want.len) != 0)
			bad++;
	}
	CHECK_EQ_INT(bad, 0);
	CHECK(row_is(r, __LINE__, 2, (const char *const[]){"next", NULL}));
	CHECK(end_is(r, __LINE__));
	iotca_csv_reader_destroy(r);
	iotca_buf_free(&in);
	iotca_buf_free(&want);
}

static void
test_helpers(void)
{
	iotca_csv_field f = {"  \tProductKey \t", 15}, g;
	iotca_csv_field e = {"", 0}, sp = {" \t ", 3}, x = {"ProductKeyX", 10};
	iotca_csv_field fields[3] = {{" ", 1}, {"", 0}, {"\t", 1}};
	iotca_csv_row row = {1, 3, fields};

	g = iotca_csv_field_trim(f);
	CHECK(g.data == f.data + 3);
	CHECK_EQ_INT(g.len, 10);
	CHECK_EQ_INT(iotca_csv_field_trim(sp).len, 0);
	CHECK_EQ_INT(iotca_csv_field_trim(e).len, 0);
	CHECK_EQ_INT(iotca_csv_field_eq_ci(&f, "ProductKey"), 1);
	CHECK_EQ_INT(iotca_csv_field_eq_ci(&f, "productkey"), 1);
	CHECK_EQ_INT(iotca_csv_field_eq_ci(&f, "PRODUCTKEY"), 1);
	CHECK_EQ_INT(iotca_csv_field_eq_ci(&f, "ProductKe"), 0);
	CHECK_EQ_INT(iotca_csv_field_eq_ci(&f, "ProductKeys"), 0);
	CHECK_EQ_INT(iotca_csv_field_eq_ci(&f, "Product Key"), 0);
	{
		iotca_csv_field az = {"AZaz", 4};
		CHECK_EQ_INT(iotca_csv_field_eq_ci(&az, "azAZ"), 1);
	}
	CHECK_EQ_INT(iotca_csv_field_eq_ci(&x, "ProductKey"), 1); /* len 10 */
	CHECK_EQ_INT(iotca_csv_field_eq_ci(&e, ""), 1);
	CHECK_EQ_INT(iotca_csv_field_eq_ci(&sp, ""), 1);
	CHECK_EQ_INT(iotca_csv_field_eq_ci(&e, "a"), 0);
	CHECK_EQ_INT(iotca_csv_field_eq_ci(NULL, "a"), 0);
	/* not locale folding: only ASCII letters match across case */
	{
		iotca_csv_field u = {"\xC3\xA9", 2}, at = {"@", 1};
		CHECK_EQ_INT(iotca_csv_field_eq_ci(&u, "\xC3\x89"), 0);
		CHECK_EQ_INT(iotca_csv_field_eq_ci(&at, "`"), 0);
	}

	CHECK_EQ_INT(iotca_csv_row_is_blank(&row), 1);
	fields[1].data = "x";
	fields[1].len = 1;
	CHECK_EQ_INT(iotca_csv_row_is_blank(&row), 0);
	row.nfields = 0;
	CHECK_EQ_INT(iotca_csv_row_is_blank(&row), 1);

	CHECK_EQ_STR(iotca_csv_problem_name(IOTCA_CSV_NONE), "none");
	CHECK_EQ_STR(iotca_csv_problem_name(IOTCA_CSV_UNTERMINATED),
	             "unterminated_quote");
	CHECK_EQ_STR(iotca_csv_problem_name(IOTCA_CSV_FIELD_TOO_LONG),
	             "field_too_long");
	CHECK_EQ_STR(iotca_csv_problem_name((iotca_csv_problem)99), "unknown");
}

/* Errors come back without an errbuf too, through iotca_csv_reader_error. */
static void
test_no_errbuf(void)
{
	iotca_csv_row row;
	csvt t;

	REQUIRE(csvt_open(&t, "a\"\nb\n", 16, 256));
	CHECK_EQ_INT(iotca_csv_reader_next(t.r, &row, NULL), IOTCA_EINVAL);
	CHECK_EQ_INT(iotca_csv_reader_error(t.r)->problem,
	             IOTCA_CSV_BARE_QUOTE);
	CHECK_EQ_INT(iotca_csv_reader_error(t.r)->line, 1);
	CHECK_EQ_INT(iotca_csv_reader_next(t.r, &row, NULL), IOTCA_OK);
	CHECK_EQ_INT(row.line, 2);
	csvt_close(&t);
}

/* ---- round trip of random records ---- */

static uint32_t rng;

static uint32_t
rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 17;
	rng ^= rng << 5;
	return rng;
}

#define RT_MAX_ROWS   24
#define RT_MAX_FIELDS 6
#define RT_MAX_LEN    10

typedef struct rt_row {
	size_t line, nf;
	char f[RT_MAX_FIELDS][RT_MAX_LEN];
	size_t len[RT_MAX_FIELDS];
} rt_row;

/* Physical lines in p[0..n): CRLF, LF and lone CR each end one. */
static size_t
rt_breaks(const char *p, size_t n)
{
	size_t i, k = 0;

	for (i = 0; i < n; i++)
		if (p[i] == '\r') {
			k++;
			if (i + 1 < n && p[i + 1] == '\n')
				i++;
		} else if (p[i] == '\n') {
			k++;
		}
	return k;
}

/* The reference encoder: RFC 4180, quoting what must be (and at random
 * what need not be). A lone empty field is quoted, else it would be a
 * blank line. */
static void
rt_encode_row(iotca_buf *b, const rt_row *row)
{
	size_t i, j;

	for (i = 0; i < row->nf; i++) {
		const char *f = row->f[i];
		size_t n = row->len[i];
		int q = (row->nf == 1 && n == 0) || rnd() % 4 == 0;

		for (j = 0; j < n; j++)
			q |= strchr(",\"\r\n", f[j]) != NULL;
		if (i > 0)
			iotca_buf_append(b, ",", 1);
		if (!q) {
			iotca_buf_append(b, f, n);
			continue;
		}
		iotca_buf_append(b, "\"", 1);
		for (j = 0; j < n; j++)
			iotca_buf_append(b, f[j] == '"' ? "\"\"" : &f[j],
			                 f[j] == '"' ? 2 : 1);
		iotca_buf_append(b, "\"", 1);
	}
}

/* Makes a random file; returns how many records the reader must give. */
static size_t
rt_make(iotca_buf *b, rt_row *rows, size_t *nrows)
{
	static const char alphabet[] = "ab ,\"\r\n\t;\xC3\xA9";
	static const char *const breaks[] = {"\n", "\r\n", "\r"};
	size_t i, j, line = 1, want = 0, start;
	int prev_cr = 0;

	iotca_buf_reset(b);
	if (rnd() % 4 == 0)
		iotca_buf_append(b, "\xEF\xBB\xBF", 3);
	*nrows = 1 + rnd() % RT_MAX_ROWS;
	for (i = 0; i < *nrows; i++) {
		rt_row *row = &rows[i];
		const char *brk;

		row->line = line;
		row->nf = rnd() % 5 == 0 ? 0 : 1 + rnd() % RT_MAX_FIELDS;
		for (j = 0; j < row->nf; j++) {
			size_t k;
			row->len[j] = rnd() % RT_MAX_LEN;
			for (k = 0; k < row->len[j]; k++)
				row->f[j][k] =
				    alphabet[rnd() % (sizeof(alphabet) - 1)];
		}
		start = b->len;
		rt_encode_row(b, row);
		/* after a lone CR, an LF would join it into one CRLF */
		do
			brk = breaks[rnd() % 3];
		while (prev_cr && b->len == start && brk[0] == '\n');
		if (i + 1 < *nrows || rnd() % 2 || row->nf == 0)
			iotca_buf_append_str(b, brk);
		prev_cr = b->data[b->len - 1] == '\r';
		line += rt_breaks(b->data + start, b->len - start);
		if (row->nf > 0)
			want = i + 1;
	}
	return want; /* blank records at the end are not given */
}

static void
test_round_trip(void)
{
	static rt_row rows[RT_MAX_ROWS];
	iotca_buf b;
	iotca_csv_row row;
	iotca_csv_reader *r;
	size_t iter, i, j, nrows, want, failures = 0;
	uint32_t seed = 0x1234567u;

	iotca_buf_init(&b, 1u << 20);
	for (iter = 0; iter < 5000 && failures < 5; iter++) {
		uint32_t this_seed = seed + (uint32_t)iter * 7919u;
		int ok = 1;

		rng = this_seed ? this_seed : 1;
		want = rt_make(&b, rows, &nrows);
		r = NULL;
		REQUIRE(iotca_csv_reader_create(b.data, b.len, RT_MAX_FIELDS,
		                                RT_MAX_LEN, &r) == IOTCA_OK);
		for (i = 0; ok && i < want; i++) {
			ok = iotca_csv_reader_next(r, &row, NULL) == IOTCA_OK &&
			     row.line == rows[i].line &&
			     row.nfields == rows[i].nf;
			for (j = 0; ok && j < row.nfields; j++)
				ok = row.fields[j].len == rows[i].len[j] &&
				     memcmp(row.fields[j].data, rows[i].f[j],
				            rows[i].len[j]) == 0;
		}
		if (ok)
			ok = iotca_csv_reader_next(r, &row, NULL) ==
			     IOTCA_ENOENT;
		if (!ok) {
			failures++;
			fprintf(stderr,
			        "  round trip seed %u: record %zu: ", this_seed,
			        i);
			print_field(b.data, b.len);
			fputc('\n', stderr);
		}
		iotca_csv_reader_destroy(r);
	}
	CHECK_EQ_INT(failures, 0);
	CHECK_EQ_INT(iter, 5000);
	iotca_buf_free(&b);
}

/* ---- timing ---- */

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Parses the 10,000-row upload in b; the best of 5 runs in ms. */
static double
time_parse(const iotca_buf *b, size_t *records, size_t *last_line)
{
	double best = 1e9, t0, dt;
	iotca_csv_reader *r;
	iotca_csv_row row;
	int run;

	for (run = 0; run < 5; run++) {
		*records = 0;
		t0 = now_ms();
		if (iotca_csv_reader_create(b->data, b->len, 8, 256, &r) !=
		    IOTCA_OK)
			return -1;
		while (iotca_csv_reader_next(r, &row, NULL) == IOTCA_OK) {
			(*records)++;
			*last_line = row.line;
		}
		iotca_csv_reader_destroy(r);
		dt = now_ms() - t0;
		if (dt < best)
			best = dt;
	}
	return best;
}

static void
test_timing_10k(void)
{
	iotca_buf plain, quoted;
	size_t i, records = 0, last = 0;
	double ms;

	iotca_buf_init(&plain, 4u << 20);
	iotca_buf_init(&quoted, 4u << 20);
	REQUIRE(iotca_buf_append_str(&plain, "\xEF\xBB\xBF" HEADER "\r\n") ==
	        IOTCA_OK);
	REQUIRE(iotca_buf_append_str(&quoted, HEADER "\r\n") == IOTCA_OK);
	for (i = 0; i < 10000; i++) {
		REQUIRE(iotca_buf_printf(&plain,
		                         "a1B2c3D4e5,device-%05zu-abcdef,"
		                         "0x%08zX0123456789ABCDEF01234567\r\n",
		                         i, i) == IOTCA_OK);
		REQUIRE(iotca_buf_printf(&quoted,
		                         "\"a1B2c3D4e5\",\"dev \"\"%05zu\"\" "
		                         "abc\",\"%08zX:01:23:45:67:89:AB:CD:"
		                         "EF\"\r\n",
		                         i, i) == IOTCA_OK);
	}
	ms = time_parse(&plain, &records, &last);
	CHECK_EQ_INT(records, 10001);
	CHECK_EQ_INT(last, 10001);
	printf("  10,000 rows, %zu bytes, unquoted: %.3f ms\n", plain.len, ms);
	ms = time_parse(&quoted, &records, &last);
	CHECK_EQ_INT(records, 10001);
	CHECK_EQ_INT(last, 10001);
	printf("  10,000 rows, %zu bytes, all quoted with \"\": %.3f ms\n",
	       quoted.len, ms);
	iotca_buf_free(&plain);
	iotca_buf_free(&quoted);
}

int
main(void)
{
	RUN(test_simple_lf);
	RUN(test_crlf);
	RUN(test_lone_cr_and_mixed);
	RUN(test_bom);
	RUN(test_quoted);
	RUN(test_spaces_kept);
	RUN(test_trailing_blank_lines);
	RUN(test_blank_middle);
	RUN(test_no_final_newline);
	RUN(test_empty_inputs);
	RUN(test_create_args);
	RUN(test_unterminated);
	RUN(test_bare_quote);
	RUN(test_text_after_quote);
	RUN(test_too_many_fields);
	RUN(test_field_too_long);
	RUN(test_nul_byte);
	RUN(test_utf16);
	RUN(test_which_problem);
	RUN(test_resync_all_kinds);
	RUN(test_zero_copy);
	RUN(test_many_copied_fields);
	RUN(test_helpers);
	RUN(test_no_errbuf);
	RUN(test_round_trip);
	RUN(test_timing_10k);
	return test_summary();
}
