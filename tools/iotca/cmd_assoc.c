/*
 * cmd_assoc.c - iotca assoc template | upload | list | show | delete: the
 * associations between device-certificate SNs and devices, under one of
 * the account's CA certificates (tenant API key).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "iotca/v1/association.pb-c.h"

/* The contract's limit on an uploaded CSV file (4 MiB). */
#define ASSOC_CSV_MAX (4u << 20)
/* UploadAssociations' time limit unless IOTCA_TIMEOUT_MS says otherwise:
 * the contract's advice for a 10,000-row file. */
#define ASSOC_UPLOAD_TIMEOUT_MS 30000
/* The contract's limit on UploadAssociationsRequest.file_name. */
#define ASSOC_FILE_NAME_MAX 255
#define ASSOC_TEMPLATE_NAME "association_template.csv"

/* ------------------------------------------------------------- template */

/* Writes n bytes to fd. 0, or -1 with errno. */
static int
assoc_write_all(int fd, const uint8_t *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* The server's suggested file name if it is a plain file name, else the
 * usual one: it must not lead out of the directory it is saved in. */
static const char *
assoc_template_name(const char *s)
{
	const char *p;

	if (s == NULL || s[0] == '\0' || strcmp(s, ".") == 0 ||
	    strcmp(s, "..") == 0 || strlen(s) > ASSOC_FILE_NAME_MAX)
		return ASSOC_TEMPLATE_NAME;
	for (p = s; *p; p++)
		if (*p == '/' || (unsigned char)*p < 0x20 || *p == 0x7f)
			return ASSOC_TEMPLATE_NAME;
	return s;
}

/* Writes the template into path (a file, or a directory that gets the
 * server's file name), refusing to overwrite unless force. *written gets
 * the path written (malloc'd). */
static int
assoc_template_save(const Iotca__V1__GetCsvTemplateResponse *t,
                    const char *path, int force, char **written)
{
	struct stat st;
	int fd, flags = O_WRONLY | O_CREAT | O_CLOEXEC, err;
	size_t n;

	*written = NULL;
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
		const char *name = assoc_template_name(t->file_name);
		n = strlen(path) + 1 + strlen(name) + 1;
		if ((*written = malloc(n)) == NULL)
			return cli_fail(CLI_EXIT_FAIL, "out of memory");
		snprintf(*written, n, "%s%s%s", path,
		         path[strlen(path) - 1] == '/' ? "" : "/", name);
	} else if ((*written = strdup(path)) == NULL) {
		return cli_fail(CLI_EXIT_FAIL, "out of memory");
	}
	flags |= force ? O_TRUNC : O_EXCL;
	if ((fd = open(*written, flags, 0666)) < 0) {
		if (errno == EEXIST)
			return cli_fail(CLI_EXIT_FAIL,
			                "'%s' exists; use --force to overwrite "
			                "it",
			                *written);
		return cli_fail(CLI_EXIT_FAIL, "cannot create '%s': %s",
		                *written, strerror(errno));
	}
	err = assoc_write_all(fd, t->content.data, t->content.len) != 0 ? errno
	                                                                : 0;
	if (close(fd) != 0 && err == 0)
		err = errno;
	if (err == 0)
		return CLI_EXIT_OK;
	if (!force)
		unlink(*written); /* ours, and incomplete */
	return cli_fail(CLI_EXIT_FAIL, "cannot write '%s': %s", *written,
	                strerror(err));
}

static int
assoc_template_print(cli_ctx *ctx, const cli_args *a,
                     const Iotca__V1__GetCsvTemplateResponse *t)
{
	const char *path = cli_arg(a, "output");
	char *written = NULL;
	int rc;

	if (path == NULL || strcmp(path, "-") == 0) {
		if (ctx->json)
			return cli_print_message(ctx, &t->base);
		if (t->content.len > 0 &&
		    fwrite(t->content.data, 1, t->content.len, stdout) !=
		        t->content.len)
			return cli_fail(CLI_EXIT_FAIL,
			                "cannot write the output: %s",
			                strerror(errno));
		return CLI_EXIT_OK;
	}
	rc = assoc_template_save(t, path, cli_flag(a, "force"), &written);
	if (rc == CLI_EXIT_OK && ctx->json)
		rc = cli_print_json(json_pack("{s:s, s:I}", "file", written,
		                              "bytes",
		                              (json_int_t)t->content.len));
	else if (rc == CLI_EXIT_OK)
		printf("CSV template written to %s (%zu bytes).\n", written,
		       t->content.len);
	free(written);
	return rc;
}

static int
assoc_template_run(cli_ctx *ctx, const cli_args *a)
{
	Iotca__V1__GetCsvTemplateRequest req =
	    IOTCA__V1__GET_CSV_TEMPLATE_REQUEST__INIT;
	const char *path = cli_arg(a, "output");
	ProtobufCMessage *resp;
	int rc;

	if (path != NULL && path[0] == '\0') {
		fprintf(stderr,
		        "iotca %s: --output: the file name is empty; see "
		        "'iotca %s --help'\n",
		        a->path, a->path);
		return CLI_EXIT_USAGE;
	}
	if ((rc = cli_call(ctx, CLI_ASSOCIATION, "GetCsvTemplate", &req.base,
	                   &resp)) != CLI_EXIT_OK)
		return rc;
	rc = assoc_template_print(
	    ctx, a, (const Iotca__V1__GetCsvTemplateResponse *)(void *)resp);
	protobuf_c_message_free_unpacked(resp, NULL);
	return rc;
}

/* --------------------------------------------------------------- upload */

/* The last component of path, cut to the contract's 255 bytes at a UTF-8
 * character boundary, into buf. */
static const char *
assoc_file_name(const char *path, char *buf, size_t size)
{
	const char *base = strrchr(path, '/');
	size_t n;

	base = base ? base + 1 : path;
	n = strlen(base);
	if (n >= size) {
		n = size - 1;
		while (n > 0 && ((unsigned char)base[n] & 0xc0) == 0x80)
			n--;
	}
	memcpy(buf, base, n);
	buf[n] = '\0';
	return buf;
}

static const out_column row_error_columns[] = {
    {"LINE", "line"},
    {"COLUMN", "column"},
    {"CODE", "code"},
    {"MESSAGE", "message"},
};

/* A row error's cells: "-" for line 0, the column as "CertSN (3)". */
static iotca_err
assoc_error_row(out_table *t, const Iotca__V1__RowError *e)
{
	char line[16], *name = out_field_text(&e->base, "column_name");
	char *code = out_field_text(&e->base, "code");
	char *msg = out_field_text(&e->base, "message");
	char *column = NULL;
	const char *cells[4];
	iotca_err rc = IOTCA_ENOMEM;
	size_t n;

	if (name == NULL || code == NULL || msg == NULL)
		goto out;
	n = strlen(name) + 16;
	if ((column = malloc(n)) == NULL)
		goto out;
	if (name[0] != '\0' && e->column > 0)
		snprintf(column, n, "%s (%u)", name, e->column);
	else if (name[0] != '\0')
		snprintf(column, n, "%s", name);
	else if (e->column > 0)
		snprintf(column, n, "%u", e->column);
	else
		snprintf(column, n, "-");
	snprintf(line, sizeof(line), "%u", e->line);
	cells[0] = e->line > 0 ? line : "-";
	cells[1] = column;
	cells[2] = code;
	cells[3] = msg;
	rc = out_table_add_row(t, cells);
out:
	free(name);
	free(code);
	free(msg);
	free(column);
	return rc;
}

/* A file that was not committed: the table of its problems (text mode)
 * and the count on stderr. */
static int
assoc_upload_rejected(cli_ctx *ctx,
                      const Iotca__V1__UploadAssociationsResponse *r)
{
	out_table *t;
	size_t i, total;
	int rc = CLI_EXIT_FAIL;

	if (ctx->json) {
		if ((rc = cli_print_json(out_json_message(&r->base))) !=
		    CLI_EXIT_OK)
			return rc;
		rc = CLI_EXIT_FAIL;
	} else if (r->n_errors > 0) {
		if ((t = out_table_create(row_error_columns,
		                          CLI_COUNT(row_error_columns))) ==
		    NULL)
			return cli_fail(CLI_EXIT_FAIL, "out of memory");
		for (i = 0; i < r->n_errors; i++)
			if (assoc_error_row(t, r->errors[i]) != IOTCA_OK) {
				out_table_destroy(t);
				return cli_fail(CLI_EXIT_FAIL, "out of memory");
			}
		out_table_print(t, stdout);
		out_table_destroy(t);
	}
	total = r->total_errors > r->n_errors ? r->total_errors : r->n_errors;
	if (total == 0)
		return cli_fail(rc,
		                "the file was not committed (the server gave "
		                "no reason); nothing was associated");
	if (r->n_errors < total)
		return cli_fail(rc,
		                "%zu error%s; nothing was associated (showing "
		                "the first %zu)",
		                total, total == 1 ? "" : "s", r->n_errors);
	return cli_fail(rc, "%zu error%s; nothing was associated", total,
	                total == 1 ? "" : "s");
}

static int
assoc_upload_result(cli_ctx *ctx,
                    const Iotca__V1__UploadAssociationsResponse *r)
{
	if (!r->committed)
		return assoc_upload_rejected(ctx, r);
	if (ctx->json)
		return cli_print_message(ctx, &r->base);
	printf("%u row%s associated (%u unchanged)\n", r->accepted_rows,
	       r->accepted_rows == 1 ? "" : "s", r->unchanged_rows);
	return CLI_EXIT_OK;
}

static int
assoc_upload_run(cli_ctx *ctx, const cli_args *a)
{
	Iotca__V1__UploadAssociationsRequest req =
	    IOTCA__V1__UPLOAD_ASSOCIATIONS_REQUEST__INIT;
	char name[ASSOC_FILE_NAME_MAX + 1];
	ProtobufCMessage *resp;
	iotca_buf csv;
	int rc;

	if ((rc = cli_read_file(a->pos[0], "CSV", ASSOC_CSV_MAX, &csv)) !=
	    CLI_EXIT_OK)
		return rc;
	req.ca_id = (char *)cli_arg(a, "ca");
	req.csv.data = (uint8_t *)csv.data;
	req.csv.len = csv.len;
	req.file_name = (char *)assoc_file_name(a->pos[0], name, sizeof(name));
	rc = cli_call_ms(ctx, CLI_ASSOCIATION, "UploadAssociations", &req.base,
	                 ASSOC_UPLOAD_TIMEOUT_MS, &resp);
	iotca_buf_free(&csv);
	if (rc != CLI_EXIT_OK)
		return rc;
	rc = assoc_upload_result(
	    ctx, (const Iotca__V1__UploadAssociationsResponse *)(void *)resp);
	protobuf_c_message_free_unpacked(resp, NULL);
	return rc;
}

/* --------------------------------------------------- list, show, delete */

static const out_column assoc_columns[] = {
    {"CERT_SN", "cert_sn"},         {"PRODUCT_KEY", "product_key"},
    {"DEVICE_NAME", "device_name"}, {"STATUS", "device_status"},
    {"CREATED_AT", "created_at"},
};

static int
assoc_list_run(cli_ctx *ctx, const cli_args *a)
{
	Iotca__V1__ListAssociationsRequest req =
	    IOTCA__V1__LIST_ASSOCIATIONS_REQUEST__INIT;

	req.ca_id = (char *)cli_arg(a, "ca");
	if (cli_arg(a, "product") != NULL)
		req.product_key = (char *)cli_arg(a, "product");
	return cli_list(ctx, a, CLI_ASSOCIATION, "ListAssociations", &req.base,
	                "associations", assoc_columns,
	                CLI_COUNT(assoc_columns));
}

static int
assoc_show_run(cli_ctx *ctx, const cli_args *a)
{
	Iotca__V1__GetAssociationRequest req =
	    IOTCA__V1__GET_ASSOCIATION_REQUEST__INIT;

	req.ca_id = (char *)cli_arg(a, "ca");
	req.cert_sn = (char *)a->pos[0];
	return cli_call_print(ctx, CLI_ASSOCIATION, "GetAssociation",
	                      &req.base);
}

static int
assoc_delete_run(cli_ctx *ctx, const cli_args *a)
{
	Iotca__V1__DeleteAssociationRequest req =
	    IOTCA__V1__DELETE_ASSOCIATION_REQUEST__INIT;
	ProtobufCMessage *resp;
	int rc;

	req.ca_id = (char *)cli_arg(a, "ca");
	req.cert_sn = (char *)a->pos[0];
	if ((rc = cli_call(ctx, CLI_ASSOCIATION, "DeleteAssociation", &req.base,
	                   &resp)) != CLI_EXIT_OK)
		return rc;
	protobuf_c_message_free_unpacked(resp, NULL);
	if (ctx->json)
		return cli_print_json(json_pack("{s:s, s:s, s:b}", "ca_id",
		                                req.ca_id, "cert_sn",
		                                req.cert_sn, "deleted", 1));
	printf("Association of CertSN %s (CA certificate %s) deleted.\n",
	       req.cert_sn, req.ca_id);
	return CLI_EXIT_OK;
}

/* ---------------------------------------------------------------- verbs */

static const cli_opt assoc_template_opts[] = {
    {"output", "FILE", "write it to FILE (- is stdout; into a directory)", 0,
     'o'},
    {"force", NULL, "overwrite FILE if it exists", 0, 0},
};

static const cli_opt assoc_upload_opts[] = {
    {"ca", "ID", "the ACTIVE CA that issued the device certificates", 1, 0},
};

static const cli_opt assoc_list_opts[] = {
    {"ca", "ID", "the CA certificate", 1, 0},
    {"product", "PRODUCT_KEY", "only the devices of this product", 0, 0},
    CLI_OPTS_PAGING,
};

static const cli_opt assoc_ca_opts[] = {
    {"ca", "ID", "the CA certificate", 1, 0},
};

static const cli_verb assoc_verbs[] = {
    {"template", "[-o FILE] [--force]",
     "Download the CSV template for 'iotca assoc upload'",
     "Without -o the template's bytes go to stdout. It holds the header "
     "line only:\n  ProductKey,DeviceName,CertSN\nAdd one line per device "
     "below it. An existing FILE is kept unless --force;\na directory "
     "gets the server's file name (association_template.csv). With "
     "--json\nand no FILE, prints the server's response (content in "
     "base64).",
     assoc_template_opts, CLI_COUNT(assoc_template_opts), 0, 0,
     assoc_template_run},
    {"upload", "--ca ID FILE.csv",
     "Associate device-certificate SNs with devices from a CSV file",
     "FILE.csv (at most 4 MiB, UTF-8, CRLF or LF, RFC 4180 quoting) has "
     "a header line\nnaming the columns ProductKey, DeviceName and CertSN "
     "(in any order; others are\nignored), then at most 10,000 rows, all "
     "of one product made with 'iotca\nproduct create' (X.509 with a "
     "private CA). DeviceName: 4-32 characters of\nletters, digits and "
     "-_.@: ; CertSN: the device certificate's serial number in\nhex "
     "(':' separators and a 0x prefix allowed), unique in the account.\n"
     "Either every row is associated or none: on success prints \"N rows "
     "associated\n(M unchanged)\" (re-sending a file is safe); otherwise "
     "prints the problems as\nLINE COLUMN CODE MESSAGE, associates "
     "nothing and exits 1. With --json, prints\nthe server's response "
     "(exit 1 unless committed).",
     assoc_upload_opts, CLI_COUNT(assoc_upload_opts), 1, 1, assoc_upload_run},
    {"list",
     "--ca ID [--product PRODUCT_KEY] [--page-size N] "
     "[--page-token TOKEN] [--all]",
     "List the associations of a CA certificate", NULL, assoc_list_opts,
     CLI_COUNT(assoc_list_opts), 0, 0, assoc_list_run},
    {"show", "--ca ID SN", "Show one association",
     "SN: the device certificate's serial number in hex, in any accepted "
     "form\n(\"0x01:A3:ff\" is 1A3FF).",
     assoc_ca_opts, CLI_COUNT(assoc_ca_opts), 1, 1, assoc_show_run},
    {"delete", "--ca ID SN", "Delete one association",
     "The SN and the device become free to be associated again. A device "
     "connected\nwith this certificate is disconnected within a few "
     "seconds.",
     assoc_ca_opts, CLI_COUNT(assoc_ca_opts), 1, 1, assoc_delete_run},
};

const cli_group cmd_assoc_group = {
    "assoc",
    "Device associations: certificate SN to ProductKey + DeviceName "
    "(tenant API key).",
    assoc_verbs, CLI_COUNT(assoc_verbs)};
