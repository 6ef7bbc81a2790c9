/*
 * upload.c - the CSV template and UploadAssociations: parse and verify the
 * whole file, then commit every row in one etcd transaction or nothing.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "association.h"
#include "csv/csv.h"
#include "log/log.h"
#include "x509/x509.h"

#define TEMPLATE_NAME "association_template.csv"
#define TEMPLATE_BODY "ProductKey,DeviceName,CertSN\r\n"
#define COL_PK        0
#define COL_DN        1
#define COL_SN        2
#define NCOLS         3
#define FIELD_MAX     256
#define SET_BITS      15 /* open-addressing set of 32768 slots > 10,000 rows */
#define UP_ATTEMPTS   5  /* checks and commits before ABORTED */

static const char *const col_names[NCOLS] = {"ProductKey", "DeviceName",
                                             "CertSN"};

iotca_err
assoc_get_template(iotca_rpc_call *call, const ProtobufCMessage *req,
                   ProtobufCMessage *resp, void *arg)
{
	Iotca__V1__GetCsvTemplateResponse *out = (void *)resp;
	assoc_svc *a = arg;
	iotca_principal who;
	iotca_err rc;

	(void)req;
	if ((rc = iotca_auth_call(a->auth, call, IOTCA_PRINCIPAL_TENANT,
	                          &who)) != IOTCA_OK)
		return rc;
	out->file_name = TEMPLATE_NAME;
	out->content.data = (uint8_t *)TEMPLATE_BODY;
	out->content.len = strlen(TEMPLATE_BODY);
	return IOTCA_OK;
}

/*
 * One data row that passed the per-row checks, and what the commit does
 * with it. A binding whose CA certificate was deleted in the registry is
 * stale: the commit replaces it, or deletes it when it held the row's
 * device under another SN (each guarded by the record's revision).
 */
typedef struct up_row {
	uint32_t line;
	char sn[IOTCA_X509_SN_HEX_MAX];
	char dn[ASSOC_DN_MAX + 1];
	int unchanged;  /* the same binding exists: nothing to write */
	int64_t sn_rev; /* 0: SN key absent; else the stale record's */
	char old_sn[IOTCA_X509_SN_HEX_MAX]; /* the device's stale binding */
	int64_t old_sn_rev;
} up_row;

/* Everything one upload works with. */
typedef struct upload {
	assoc_svc *a;
	iotca_rpc_call *call;
	const char *acc;
	const char *ca_id;
	Iotca__V1__UploadAssociationsResponse *out;
	int col[NCOLS];     /* field index of each column */
	char pk[FIELD_MAX]; /* the file's ProductKey (of the first row) */
	uint32_t pk_line;
	up_row *rows;
	size_t nrows;
	uint32_t *sn_set, *dn_set; /* row index + 1, 0 = empty */
	size_t errors_cap;         /* room in out->errors */
	uint32_t blank_lines[8];   /* blank rows not yet known to be trailing */
	size_t nblank;
} upload;

/* Length of the longest prefix of s (valid UTF-8), at most max bytes, that
 * ends on a character boundary. */
static size_t
up_utf8_cut(const char *s, size_t max)
{
	size_t n = strnlen(s, max + 1);

	if (n <= max)
		return n;
	n = max;
	while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
		n--; /* s[n] continues a character: cut before it starts */
	return n;
}

/* Whether n bytes are valid UTF-8 (no overlongs, surrogates or NULs). */
static int
up_utf8_valid(const char *p, size_t n)
{
	const unsigned char *s = (const unsigned char *)p;
	size_t i = 0, k, len;
	uint32_t cp;

	while (i < n) {
		if (s[i] == 0)
			return 0;
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		len = s[i] >= 0xF0   ? 4
		      : s[i] >= 0xE0 ? 3
		      : s[i] >= 0xC2 ? 2
		                     : 0;
		if (len == 0 || s[i] > 0xF4 || i + len > n)
			return 0;
		cp = s[i] & (0x7F >> len);
		for (k = 1; k < len; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + k] & 0x3F);
		}
		if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
		    (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
			return 0;
		i += len;
	}
	return 1;
}

/* Adds one row error. Every error is kept (up to a bound far above what a
 * 10,000-row file can make); up_errors_finish sorts and cuts the list. */
static void
up_error_add(upload *u, uint32_t line, uint32_t column, const char *col_name,
             Iotca__V1__RowErrorCode code, const char *value, char *msg)
{
	iotca_arena *ar = iotca_rpc_call_arena(u->call);
	Iotca__V1__RowError *e;

	u->out->total_errors++;
	if (u->out->n_errors >= u->errors_cap ||
	    (e = iotca_arena_zalloc(ar, sizeof(*e))) == NULL)
		return;
	iotca__v1__row_error__init(e);
	e->line = line;
	e->column = column;
	e->code = code;
	if (col_name != NULL)
		e->column_name = (char *)col_name;
	msg[up_utf8_cut(msg, strlen(msg))] = '\0';
	e->message = iotca_arena_strdup(ar, msg);
	if (value != NULL)
		e->value =
		    iotca_arena_strndup(ar, value, up_utf8_cut(value, 64));
	if (e->message != NULL && (value == NULL || e->value != NULL))
		u->out->errors[u->out->n_errors++] = e;
}

/* Records an error in one of the three columns (col) or about the file or
 * header (col -1; value names the column for MISSING/DUPLICATE_COLUMN). */
static void up_error(upload *u, uint32_t line, int col,
                     Iotca__V1__RowErrorCode code, const char *value,
                     const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static void
up_error(upload *u, uint32_t line, int col, Iotca__V1__RowErrorCode code,
         const char *value, const char *fmt, ...)
{
	const char *name = NULL;
	uint32_t column = 0;
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (col >= 0 && col < NCOLS) {
		column = (uint32_t)(u->col[col] + 1);
		name = col_names[col];
	} else if (
	    code == IOTCA__V1__ROW_ERROR_CODE__ROW_ERROR_CODE_MISSING_COLUMN ||
	    code ==
	        IOTCA__V1__ROW_ERROR_CODE__ROW_ERROR_CODE_DUPLICATE_COLUMN) {
		name = value; /* the column concerned */
	}
	up_error_add(u, line, column, name, code, value, msg);
}

/* Records an error at a raw position (CSV syntax), not a named column. */
static void up_error_at(upload *u, uint32_t line, uint32_t column,
                        Iotca__V1__RowErrorCode code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void
up_error_at(upload *u, uint32_t line, uint32_t column,
            Iotca__V1__RowErrorCode code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	up_error_add(u, line, column, NULL, code, NULL, msg);
}

static int
up_error_cmp(const void *a, const void *b)
{
	const Iotca__V1__RowError *x = *(Iotca__V1__RowError *const *)a;
	const Iotca__V1__RowError *y = *(Iotca__V1__RowError *const *)b;

	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return (x->column > y->column) - (x->column < y->column);
}

/* Orders the errors by line, then column, and keeps the first 1,000. */
static void
up_errors_finish(upload *u)
{
	qsort(u->out->errors, u->out->n_errors, sizeof(*u->out->errors),
	      up_error_cmp);
	if (u->out->n_errors > ASSOC_MAX_ERRORS)
		u->out->n_errors = ASSOC_MAX_ERRORS;
}

/* FNV-1a of a NUL-terminated string. */
static uint32_t
up_hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

/* Adds row i to a set keyed by the string key_of(row); returns the index
 * of an earlier row with the same key, or -1. */
static long
up_set_add(upload *u, uint32_t *set, size_t i, int by_sn)
{
	const char *key = by_sn ? u->rows[i].sn : u->rows[i].dn;
	uint32_t mask = (1u << SET_BITS) - 1, h = up_hash(key) & mask;
	const char *other;

	for (; set[h] != 0; h = (h + 1) & mask) {
		other = by_sn ? u->rows[set[h] - 1].sn : u->rows[set[h] - 1].dn;
		if (strcmp(other, key) == 0)
			return (long)set[h] - 1;
	}
	set[h] = (uint32_t)i + 1;
	return -1;
}

/* A field as a NUL-terminated, trimmed string in buf. */
static const char *
up_field(const iotca_csv_row *row, int idx, char *buf, size_t n)
{
	iotca_csv_field f;

	buf[0] = '\0';
	if (idx < 0 || (size_t)idx >= row->nfields)
		return buf;
	f = iotca_csv_field_trim(row->fields[idx]);
	snprintf(buf, n, "%.*s", (int)(f.len < n ? f.len : n - 1), f.data);
	if (f.len >= n)
		buf[n - 1] = '\0';
	return buf;
}

/* Finds the three columns in the header row. */
static int
up_header(upload *u, const iotca_csv_row *row)
{
	size_t i;
	int c, ok = 1;

	for (c = 0; c < NCOLS; c++)
		u->col[c] = -1;
	for (i = 0; i < row->nfields; i++)
		for (c = 0; c < NCOLS; c++) {
			if (!iotca_csv_field_eq_ci(&row->fields[i],
			                           col_names[c]))
				continue;
			if (u->col[c] >= 0) {
				char msg[256];
				snprintf(
				    msg, sizeof(msg),
				    "the header names %s twice (columns %d and "
				    "%zu); keep one",
				    col_names[c], u->col[c] + 1, i + 1);
				up_error_add(
				    u, (uint32_t)row->line, (uint32_t)(i + 1),
				    col_names[c],
				    IOTCA__V1__ROW_ERROR_CODE__ROW_ERROR_CODE_DUPLICATE_COLUMN,
				    col_names[c], msg);
				ok = 0;
			}
			u->col[c] = (int)i;
		}
	for (c = 0; c < NCOLS; c++)
		if (u->col[c] < 0) {
			up_error(
			    u, (uint32_t)row->line, -1,
			    IOTCA__V1__ROW_ERROR_CODE__ROW_ERROR_CODE_MISSING_COLUMN,
			    col_names[c],
			    "the header has no %s column; the first line "
			    "must be ProductKey,DeviceName,CertSN (get the "
			    "template with 'iotca assoc template')",
			    col_names[c]);
			ok = 0;
		}
	return ok;
}

int
assoc_valid_device_name(const char *s, size_t len)
{
	size_t i;

	if (len < 4 || len > 32)
		return 0;
	for (i = 0; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') ||
		      strchr("-_.@:", s[i]) != NULL) ||
		    s[i] == '\0')
			return 0;
	return 1;
}

/* Checks one data row; adds it to u->rows when it is good. */
static void
up_row_check(upload *u, const iotca_csv_row *row)
{
	char pk[FIELD_MAX], dn[FIELD_MAX], sn_in[FIELD_MAX];
	uint32_t line = (uint32_t)row->line;
	up_row *r = &u->rows[u->nrows];
	iotca_errbuf eb;
	long dup;
	int bad = 0;

	up_field(row, u->col[COL_PK], pk, sizeof(pk));
	up_field(row, u->col[COL_DN], dn, sizeof(dn));
	up_field(row, u->col[COL_SN], sn_in, sizeof(sn_in));
	if (pk[0] == '\0' || dn[0] == '\0' || sn_in[0] == '\0') {
		const char *vals[NCOLS] = {pk, dn, sn_in};
		int c;
		for (c = 0; c < NCOLS; c++)
			if (vals[c][0] == '\0')
				up_error(
				    u, line, c,
				    IOTCA__V1__ROW_ERROR_CODE__ROW_ERROR_CODE_MISSING_FIELD,
				    "",
				    "%s is empty; every row needs ProductKey, "
				    "DeviceName and CertSN",
				    col_names[c]);
		return;
	}
	if (u->pk[0] == '\0') {
		snprintf(u->pk, sizeof(u->pk), "%s", pk);
		u->pk_line = line;
	} else if (strcmp(u->pk, pk) != 0) {
		up_error(
		    u, line, COL_PK,
		    IOTCA__V1__ROW_ERROR_CODE__ROW_ERROR_CODE_PRODUCT_KEY_MISMATCH,
		    pk,
		    "ProductKey %.*s differs from %.*s on line %u; a file "
		    "holds the devices of one product",
		    (int)up_utf8_cut(pk, 40), pk, (int)up_utf8_cut(u->pk, 40),
		    u->pk, u->pk_line);
		bad = 1;
	}
	if (!assoc_valid_device_name(dn, strlen(dn))) {
		up_error(
		    u, line, COL_DN,
		    IOTCA__V1__ROW_ERROR_CODE__ROW_ERROR_CODE_DEVICE_NAME_INVALID,
		    dn,
		    "DeviceName must be 4 to 32 characters of letters, "
		    "digits and -_.@:");
		bad = 1;
	}
	if (iotca_x509_sn_normalize(sn_in, strlen(sn_in), r->sn, &eb) !=
	    IOTCA_OK) {
		up_error(
		    u, line, COL_SN,
		    IOTCA__V1__ROW_ERROR_CODE__ROW_ERROR_CODE_CERT_SN_INVALID,
		    sn_in, "%s", iotca_errbuf_msg(&eb));
		bad = 1;
	}
	if (bad)
		return;
	r->line = line;
	snprintf(r->dn, sizeof(r->dn), "%s", dn);
	if ((dup = up_set_add(u, u->sn_set, u->nrows, 1)) >= 0) {
		up_error(
		    u, line, COL_SN,
		    IOTCA__V1__ROW_ERROR_CODE__ROW_ERROR_CODE_CERT_SN_DUPLICATE_IN_FILE,
		    sn_in, "CertSN %s is also on line %u", r->sn,
		    u->rows[dup].line);
		return;
	}
	if ((dup = up_set_add(u, u->dn_set, u->nrows, 0)) >= 0) {
		up_error(
		    u, line, COL_DN,
		    IOTCA__V1__ROW_ERROR_CODE__ROW_ERROR_CODE_DEVICE_DUPLICATE_IN_FILE,
		    dn,
		    "device %s is also on line %u; a device has one "
		    "certificate SN",
		    dn, u->rows[dup].line);
		return;
	}
	u->nrows++;
}

/* Reports a row whose fields are not all UTF-8 (the reply must be, and so
 * must everything we store); 1 when the row is fine. */
static int
up_row_utf8(upload *u, const iotca_csv_row *row)
{
	size_t i;

	for (i = 0; i < row->nfields; i++)
		if (!up_utf8_valid(row->fields[i].data, row->fields[i].len)) {
			up_error_at(
			    u, (uint32_t)row->line, (uint32_t)(i + 1),
			    IOTCA__V1__ROW_ERROR_CODE__ROW_ERROR_CODE_MALFORMED_CSV,
			    "line %zu, column %zu: not UTF-8 text; save "
			    "the file as CSV UTF-8",
			    row->line, i + 1);
			return 0;
		}
	return 1;
}

/* Blank rows before a data row are rows of empty fields: reports them
 * (each field MISSING_FIELD) and returns how many there were. */
static size_t
up_blank_rows(upload *u)
{
	size_t i, n = u->nblank;
	int c;

	for (i = 0; i < n && i < 8; i++)
		for (c = 0; c < NCOLS; c++)
			up_error(
			    u, u->blank_lines[i], c,
			    IOTCA__V1__ROW_ERROR_CODE__ROW_ERROR_CODE_MISSING_FIELD,
			    "",
			    "%s is empty: a blank row among the data; delete "
			    "it",
			    col_names[c]);
	if (n > 8)
		up_error_at(
		    u, u->blank_lines[7], 0,
		    IOTCA__V1__ROW_ERROR_CODE__ROW_ERROR_CODE_MISSING_FIELD,
		    "%zu more blank rows follow line %u among the data; "
		    "delete them",
		    n - 8, u->blank_lines[7]);
	u->nblank = 0;
	return n;
}

/* Parses the whole file: header, then every row (errors collected). */
static void
up_parse(upload *u, const uint8_t *data, size_t len)
{
	iotca_csv_reader *rd = NULL;
	iotca_csv_row row;
	iotca_errbuf eb;
	size_t data_rows = 0;
	int have_header = 0;
	iotca_err rc;

	if (iotca_csv_reader_create((const char *)data, len, 64, FIELD_MAX * 4,
	                            &rd) != IOTCA_OK) {
		up_error_at(
		    u, 0, 0,
		    IOTCA__V1__ROW_ERROR_CODE__ROW_ERROR_CODE_MALFORMED_CSV,
		    "out of memory reading the file");
		return;
	}
	while ((rc = iotca_csv_reader_next(rd, &row, &eb)) != IOTCA_ENOENT) {
		if (rc != IOTCA_OK) {
			const iotca_csv_error *ce = iotca_csv_reader_error(rd);
			up_error_at(
			    u, (uint32_t)ce->line, (uint32_t)ce->column,
			    IOTCA__V1__ROW_ERROR_CODE__ROW_ERROR_CODE_MALFORMED_CSV,
			    "%s", iotca_errbuf_msg(&eb));
			if (ce->problem == IOTCA_CSV_NUL_BYTE ||
			    ce->problem == IOTCA_CSV_UTF16)
				break; /* not a text file: one error says it */
			continue;
		}
		if (!up_row_utf8(u, &row))
			continue;
		if (iotca_csv_row_is_blank(&row)) {
			/* Trailing blank rows (",," a spreadsheet left) are
			 * ignored; one followed by data is a row of empty
			 * fields. */
			if (have_header && u->nblank < 8)
				u->blank_lines[u->nblank] = (uint32_t)row.line;
			if (have_header)
				u->nblank++;
			continue;
		}
		if (!have_header) {
			have_header = 1;
			if (!up_header(u, &row))
				break;
			continue;
		}
		data_rows += up_blank_rows(u) + 1;
		if (data_rows > ASSOC_MAX_ROWS) {
			up_error(
			    u, (uint32_t)row.line, -1,
			    IOTCA__V1__ROW_ERROR_CODE__ROW_ERROR_CODE_TOO_MANY_ROWS,
			    "",
			    "the file has more than %d data rows; split it "
			    "into files of at most %d",
			    ASSOC_MAX_ROWS, ASSOC_MAX_ROWS);
			break;
		}
		up_row_check(u, &row);
	}
	iotca_csv_reader_destroy(rd);
	u->out->data_rows = (uint32_t)data_rows;
	if (u->out->total_errors == 0 && data_rows == 0)
		up_error(u, 0, -1,
		         IOTCA__V1__ROW_ERROR_CODE__ROW_ERROR_CODE_EMPTY_FILE,
		         "",
		         have_header ? "the file has a header but no data rows"
		                     : "the file is empty; start from the "
		                       "template (iotca assoc template)");
}

static long
up_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The product rules: the account's, X.509 with a private CA. */
static iotca_err
up_check_product(upload *u, int *ok)
{
	json_t *p = NULL;
	int found = 0;
	iotca_err rc;

	*ok = 0;
	if ((rc = assoc_product_read(u->a, u->call, u->acc, u->pk, &p,
	                             &found)) != IOTCA_OK)
		return rc;
	if (!found)
		up_error(
		    u, u->pk_line, COL_PK,
		    IOTCA__V1__ROW_ERROR_CODE__ROW_ERROR_CODE_PRODUCT_NOT_FOUND,
		    u->pk,
		    "no product with ProductKey %.*s in this account; "
		    "create it first (iotca product create)",
		    (int)up_utf8_cut(u->pk, 40), u->pk);
	else if (iotca_svc_json_int(p, "auth_mode") !=
	             IOTCA__V1__AUTH_MODE__AUTH_MODE_X509_CERTIFICATE ||
	         !iotca_svc_json_int(p, "private_ca"))
		up_error(
		    u, u->pk_line, COL_PK,
		    IOTCA__V1__ROW_ERROR_CODE__ROW_ERROR_CODE_PRODUCT_NOT_PRIVATE_CA,
		    u->pk,
		    "product %.*s does not use X.509 certificates with a "
		    "private CA",
		    (int)up_utf8_cut(u->pk, 40), u->pk);
	else
		*ok = 1;
	json_decref(p);
	return IOTCA_OK;
}

static void
up_sn_key(const upload *u, const char *sn, char *out, size_t n)
{
	snprintf(out, n, ASSOC_SN_PREFIX "%s/%s", u->acc, sn);
}

/* Whether a CA id no longer exists in the registry (cached per upload:
 * an account has at most a few CAs). */
typedef struct up_ca_cache {
	char id[8][IOTCA_ID_MAX + 1];
	int gone[8];
	int n;
} up_ca_cache;

static int
up_ca_gone(upload *u, up_ca_cache *cc, const char *ca)
{
	int i, active;
	iotca_err rc;

	if (strcmp(ca, u->ca_id) == 0)
		return 0;
	for (i = 0; i < cc->n; i++)
		if (strcmp(cc->id[i], ca) == 0)
			return cc->gone[i];
	rc = assoc_ca_check(u->a, u->call, ca, &active);
	if (rc != IOTCA_OK && rc != IOTCA_ENOENT)
		return -1; /* the call's status is set */
	if (cc->n < 8) {
		snprintf(cc->id[cc->n], sizeof(cc->id[0]), "%s", ca);
		cc->gone[cc->n++] = rc == IOTCA_ENOENT;
	}
	return rc == IOTCA_ENOENT;
}

/* What the index holds of one row: its SN's binding, its device's. */
typedef struct up_hit {
	dev_binding by_sn, by_dev;
	int has_sn, has_dev;
} up_hit;

/* Decides row r against what is bound: unchanged, new, stale, or an
 * error (CERT_SN_ALREADY_BOUND, DEVICE_ALREADY_BOUND). -1: the registry
 * did not answer (the call's status is set). */
static int
up_check_row(upload *u, up_ca_cache *cc, up_row *r, const up_hit *h)
{
	const dev_binding *b = &h->by_sn;
	int gone;

	r->unchanged = 0;
	r->sn_rev = r->old_sn_rev = 0;
	r->old_sn[0] = '\0';
	if (h->has_sn) {
		if (strcmp(b->ca, u->ca_id) == 0 && strcmp(b->pk, u->pk) == 0 &&
		    strcmp(b->dn, r->dn) == 0) {
			r->unchanged = 1;
			return 0;
		}
		if ((gone = up_ca_gone(u, cc, b->ca)) < 0)
			return -1;
		if (!gone) {
			up_error(
			    u, r->line, COL_SN,
			    IOTCA__V1__ROW_ERROR_CODE__ROW_ERROR_CODE_CERT_SN_ALREADY_BOUND,
			    r->sn,
			    "CertSN %s is already associated with device "
			    "%.40s/%.32s (CA %.64s); an SN is unique in the "
			    "account",
			    r->sn, b->pk, b->dn, b->ca);
			return 0;
		}
		r->sn_rev = b->rev; /* replaced by this row */
	}
	b = &h->by_dev;
	if (!h->has_dev || strcmp(b->sn, r->sn) == 0)
		return 0;
	if ((gone = up_ca_gone(u, cc, b->ca)) < 0)
		return -1;
	if (!gone) {
		up_error(
		    u, r->line, COL_DN,
		    IOTCA__V1__ROW_ERROR_CODE__ROW_ERROR_CODE_DEVICE_ALREADY_BOUND,
		    r->dn,
		    "device %.40s/%s already has CertSN %s; delete "
		    "that association first",
		    u->pk, r->dn, b->sn);
		return 0;
	}
	snprintf(r->old_sn, sizeof(r->old_sn), "%s", b->sn);
	r->old_sn_rev = b->rev;
	return 0;
}

/* Checks every row against the device index, which holds every change
 * up to the account's version the caller read. */
static iotca_err
up_check_existing(upload *u, dev_index *ix)
{
	up_hit *hits = calloc(u->nrows + 1, sizeof(*hits));
	up_ca_cache cc = {.n = 0};
	size_t i;
	iotca_err rc = IOTCA_OK;

	if (hits == NULL)
		return iotca_rpc_call_fail(u->call, IOTCA_ENOMEM,
		                           "out of memory");
	dev_index_lock(ix);
	for (i = 0; i < u->nrows; i++) {
		hits[i].has_sn =
		    dev_index_by_sn(ix, u->acc, u->rows[i].sn, &hits[i].by_sn);
		hits[i].has_dev = dev_index_by_device(
		    ix, u->acc, u->pk, u->rows[i].dn, &hits[i].by_dev);
	}
	dev_index_unlock(ix);
	/* Outside the lock: a stale binding asks the registry. */
	for (i = 0; i < u->nrows && rc == IOTCA_OK; i++)
		if (up_check_row(u, &cc, &u->rows[i], &hits[i]) < 0)
			rc = IOTCA_EUNAVAIL;
	free(hits);
	return rc;
}

/* Whether an SN this upload deletes is one it also writes. */
static int
up_in_file(upload *u, const char *sn)
{
	uint32_t mask = (1u << SET_BITS) - 1, h;

	for (h = up_hash(sn) & mask; u->sn_set[h] != 0; h = (h + 1) & mask)
		if (strcmp(u->rows[u->sn_set[h] - 1].sn, sn) == 0)
			return 1;
	return 0;
}

/* Adds one row's writes to the commit. */
static void
up_commit_row(upload *u, iotca_etcd_txn *t, const up_row *r, int64_t now)
{
	char sk[600], old[600], rec[1024];

	up_sn_key(u, r->sn, sk, sizeof(sk));
	if (r->sn_rev != 0)
		iotca_etcd_txn_cmp_num(t, sk, strlen(sk), IOTCA_ETCD_CMP_MOD,
		                       IOTCA_ETCD_EQUAL, r->sn_rev);
	if (r->old_sn[0] != '\0' && !up_in_file(u, r->old_sn)) {
		up_sn_key(u, r->old_sn, old, sizeof(old));
		iotca_etcd_txn_cmp_num(t, old, strlen(old), IOTCA_ETCD_CMP_MOD,
		                       IOTCA_ETCD_EQUAL, r->old_sn_rev);
		iotca_etcd_txn_delete(t, IOTCA_ETCD_SUCCESS, old, strlen(old),
		                      NULL, 0);
	}
	snprintf(rec, sizeof(rec),
	         "{\"ca\":\"%s\",\"sn\":\"%s\",\"pk\":\"%s\",\"dn\":\"%s\","
	         "\"st\":%d,\"t\":%lld}",
	         u->ca_id, r->sn, u->pk, r->dn,
	         IOTCA__V1__DEVICE_STATUS__DEVICE_STATUS_ENABLED,
	         (long long)now);
	iotca_etcd_txn_put(t, IOTCA_ETCD_SUCCESS, sk, strlen(sk), rec,
	                   strlen(rec), 0);
}

#ifdef IOTCA_FAULT_INJECTION
/* Test builds only: IOTCA_FAULT_ABORT=before-commit|after-commit kills the
 * process at that point of an upload, to show that a commit is atomic. */
static void
up_fault(const char *point)
{
	const char *f = getenv("IOTCA_FAULT_ABORT");

	if (f != NULL && strcmp(f, point) == 0) {
		iotca_log_warn("FAULT-INJECTED", "point=%s", point);
		abort();
	}
}
#else
#define up_fault(point) ((void)0)
#endif

/* Puts what a commit at rev wrote into the device index at once. */
static void
up_write_through(upload *u, dev_index *ix, int64_t rev)
{
	size_t i;

	if (!dev_index_wt_begin(ix, rev))
		return;
	for (i = 0; i < u->nrows; i++) {
		const up_row *r = &u->rows[i];

		if (r->unchanged)
			continue;
		if (r->old_sn[0] != '\0' && !up_in_file(u, r->old_sn))
			dev_index_wt_delete(ix, u->acc, r->old_sn, rev);
		dev_index_wt_put(
		    ix, u->acc, r->sn, u->ca_id, u->pk, r->dn,
		    IOTCA__V1__DEVICE_STATUS__DEVICE_STATUS_ENABLED, rev);
	}
	dev_index_wt_end(ix, u->acc, rev);
}

/* Writes every new row in one transaction guarded by the account's
 * version; *won 0 when another writer moved it (check again). */
static iotca_err
up_commit(upload *u, dev_index *ix, int64_t version, int *won)
{
	iotca_etcd_txn_result res = {0};
	iotca_etcd_txn *t;
	iotca_errbuf eb;
	int64_t now = (int64_t)time(NULL);
	size_t i, n = 0;
	iotca_err rc = IOTCA_OK;

	*won = 0;
	if (iotca_etcd_txn_create(&t) != IOTCA_OK)
		return iotca_rpc_call_fail(u->call, IOTCA_ENOMEM,
		                           "out of memory");
	assoc_version_guard(t, u->acc, version);
	for (i = 0; i < u->nrows; i++)
		if (!u->rows[i].unchanged) {
			up_commit_row(u, t, &u->rows[i], now);
			n++;
		}
	if (n == 0) {
		*won = 1; /* every row is bound as the file says */
	} else {
		up_fault("before-commit");
		if (iotca_etcd_txn_commit(u->a->etcd, t, &res, &eb) != IOTCA_OK)
			rc = iotca_svc_etcd_fail(u->call, &eb,
			                         "committing the associations");
		else if ((*won = res.succeeded) != 0)
			up_write_through(u, ix, res.revision);
		up_fault("after-commit");
	}
	if (rc == IOTCA_OK && *won) {
		u->out->committed = 1;
		u->out->accepted_rows = (uint32_t)u->nrows;
		u->out->unchanged_rows = (uint32_t)(u->nrows - n);
	}
	iotca_etcd_txn_result_free(&res);
	iotca_etcd_txn_destroy(t);
	return rc;
}

/* Checks the rows against what is bound and, when the file has no
 * errors, commits them; again from the start when another writer changed
 * the account's associations in between. */
static iotca_err
up_check_and_commit(upload *u, int *attempts)
{
	dev_index *ix;
	int64_t version;
	int won = 0;
	iotca_err rc = IOTCA_OK;

	for (*attempts = 1; rc == IOTCA_OK; (*attempts)++) {
		if ((rc = assoc_index_sync(u->a, u->call, u->acc, &ix,
		                           &version)) != IOTCA_OK ||
		    (rc = up_check_existing(u, ix)) != IOTCA_OK ||
		    u->out->total_errors > 0 ||
		    iotca_rpc_call_cancelled(u->call))
			break;
		if ((rc = up_commit(u, ix, version, &won)) != IOTCA_OK || won)
			break;
		if (*attempts == UP_ATTEMPTS)
			rc = iotca_rpc_call_fail(
			    u->call, IOTCA_EABORTED,
			    "other requests kept changing this account's "
			    "associations; nothing was committed; upload the "
			    "file again");
	}
	return rc;
}

static iotca_err
up_check_request(iotca_rpc_call *call,
                 const Iotca__V1__UploadAssociationsRequest *in)
{
	if (!iotca_svc_valid_chars(in->ca_id, 1, IOTCA_ID_MAX, "-"))
		return iotca_rpc_call_fail(
		    call, IOTCA_EINVAL,
		    "ca_id '%.64s' is not a CA certificate "
		    "id",
		    in->ca_id);
	if (in->csv.len > ASSOC_CSV_MAX)
		return iotca_rpc_call_fail(call, IOTCA_ETOOBIG,
		                           "the file is %zu bytes; at most %u "
		                           "(4 MiB) are accepted: split it",
		                           in->csv.len, ASSOC_CSV_MAX);
	if (strlen(in->file_name) > 255)
		return iotca_rpc_call_fail(
		    call, IOTCA_EINVAL, "file_name is longer than 255 bytes");
	return IOTCA_OK;
}

/* The working memory of an upload: rows and the two sets. */
static iotca_err
up_alloc(upload *u)
{
	iotca_arena *ar = iotca_rpc_call_arena(u->call);

	u->rows = calloc(ASSOC_MAX_ROWS + 1, sizeof(*u->rows));
	u->sn_set = calloc(1u << SET_BITS, sizeof(uint32_t));
	u->dn_set = calloc(1u << SET_BITS, sizeof(uint32_t));
	/* Every error a file can cause: a few per row (sorted, then cut). */
	u->errors_cap = 4 * (ASSOC_MAX_ROWS + 16);
	u->out->errors =
	    iotca_arena_zalloc(ar, u->errors_cap * sizeof(*u->out->errors));
	if (!u->rows || !u->sn_set || !u->dn_set || !u->out->errors)
		return iotca_rpc_call_fail(u->call, IOTCA_ENOMEM,
		                           "out of memory");
	return IOTCA_OK;
}

iotca_err
assoc_upload(iotca_rpc_call *call, const ProtobufCMessage *req,
             ProtobufCMessage *resp, void *arg)
{
	const Iotca__V1__UploadAssociationsRequest *in = (const void *)req;
	upload u = {.a = arg, .call = call, .out = (void *)resp};
	iotca_principal who;
	int active = 0, product_ok = 0, attempts = 0;
	long t[3];
	iotca_err rc;

	if ((rc = iotca_auth_call(u.a->auth, call, IOTCA_PRINCIPAL_TENANT,
	                          &who)) != IOTCA_OK ||
	    (rc = up_check_request(call, in)) != IOTCA_OK ||
	    (rc = assoc_ca_check(u.a, call, in->ca_id, &active)) != IOTCA_OK)
		return rc;
	if (!active)
		return iotca_rpc_call_fail(
		    call, IOTCA_EPRECOND,
		    "CA certificate %s is INACTIVE; enable "
		    "it first (iotca ca enable %s)",
		    in->ca_id, in->ca_id);
	u.acc = who.account_id;
	u.ca_id = in->ca_id;
	if ((rc = up_alloc(&u)) != IOTCA_OK)
		goto out;
	t[0] = up_ms();
	up_parse(&u, in->csv.data, in->csv.len);
	if (u.pk[0] != '\0' &&
	    (rc = up_check_product(&u, &product_ok)) != IOTCA_OK)
		goto out;
	t[1] = up_ms();
	/* Even a file with errors is checked against what is bound, to
	 * report every row at once; only one without errors is committed. */
	if (product_ok && u.nrows > 0)
		rc = up_check_and_commit(&u, &attempts);
	t[2] = up_ms();
	up_errors_finish(&u);
	u.out->product_key =
	    iotca_arena_strdup(iotca_rpc_call_arena(call), u.pk);
	iotca_log_info("UPLOAD",
	               "account=%s ca=%s rows=%zu errors=%u committed=%d "
	               "parse_ms=%ld commit_ms=%ld attempts=%d",
	               u.acc, u.ca_id, u.nrows, u.out->total_errors,
	               (int)u.out->committed, t[1] - t[0], t[2] - t[1],
	               attempts);
out:
	free(u.rows);
	free(u.sn_set);
	free(u.dn_set);
	return rc;
}
