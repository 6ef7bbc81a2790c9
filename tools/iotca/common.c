/*
 * common.c - what every verb uses: RPC calls with their error reporting,
 * paginated listings, printing one message, reading input files.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "iotca/v1/association.pb-c.h"
#include "iotca/v1/registry.pb-c.h"

static const struct {
	const char *what; /* for messages */
	const char *env;  /* the setting holding its address */
	const ProtobufCServiceDescriptor *desc;
} cli_services[CLI_SERVICE_COUNT_] = {
    [CLI_REGISTRY] = {"registry", "IOTCA_REGISTRY",
                      &iotca__v1__registry__descriptor},
    [CLI_ASSOCIATION] = {"association", "IOTCA_ASSOCIATION",
                         &iotca__v1__association__descriptor},
};

/* The names of the gRPC status codes, as grpc/status.h spells them. */
static const char *const cli_status_names[] = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
};

int
cli_fail(int status, const char *fmt, ...)
{
	va_list ap;

	fputs("iotca: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return status;
}

/* ---------------------------------------------------------------- calls */

void
cli_ctx_close(cli_ctx *ctx)
{
	size_t i;

	for (i = 0; i < CLI_SERVICE_COUNT_; i++) {
		iotca_rpc_client_destroy(ctx->clients[i]);
		ctx->clients[i] = NULL;
	}
}

/* Makes the client of a service on first use. */
static int
cli_client(cli_ctx *ctx, cli_service svc, iotca_rpc_client **out)
{
	iotca_rpc_client_opts o = {0};
	iotca_errbuf eb;

	if (ctx->clients[svc] != NULL) {
		*out = ctx->clients[svc];
		return CLI_EXIT_OK;
	}
	o.token = iotca_config_get(ctx->cfg, "IOTCA_TOKEN");
	if (o.token == NULL)
		return cli_fail(
		    CLI_EXIT_USAGE,
		    "no credential: set IOTCA_TOKEN (or "
		    "IOTCA_TOKEN_FILE, --token, --token-file) to the "
		    "operator token or an API key");
	o.target = iotca_config_get(ctx->cfg, cli_services[svc].env);
	o.tls_ca_file = iotca_config_get(ctx->cfg, "IOTCA_GRPC_TLS_CA");
	o.tls_cert_file = iotca_config_get(ctx->cfg, "IOTCA_GRPC_TLS_CERT");
	o.tls_key_file = iotca_config_get(ctx->cfg, "IOTCA_GRPC_TLS_KEY");
	o.tls_server_name =
	    iotca_config_get(ctx->cfg, "IOTCA_GRPC_TLS_SERVER_NAME");
	o.timeout_ms = iotca_config_int(ctx->cfg, "IOTCA_TIMEOUT_MS", 10000);
	iotca_errbuf_clear(&eb);
	if (iotca_rpc_client_create(&o, &ctx->clients[svc], &eb) != IOTCA_OK)
		return cli_fail(CLI_EXIT_FAIL,
		                "cannot set up the %s client for %s (%s): %s",
		                cli_services[svc].what, o.target,
		                cli_services[svc].env, iotca_errbuf_msg(&eb));
	*out = ctx->clients[svc];
	return CLI_EXIT_OK;
}

int
cli_call(cli_ctx *ctx, cli_service svc, const char *method,
         const ProtobufCMessage *req, ProtobufCMessage **resp)
{
	return cli_call_ms(ctx, svc, method, req, 0, resp);
}

int
cli_call_ms(cli_ctx *ctx, cli_service svc, const char *method,
            const ProtobufCMessage *req, long default_ms,
            ProtobufCMessage **resp)
{
	iotca_rpc_client *c = NULL;
	iotca_errbuf eb;
	long ms = 0; /* the client's: IOTCA_TIMEOUT_MS or 10 s */
	int rc, st;

	*resp = NULL;
	ctx->last_err = IOTCA_EINTERNAL;
	if ((rc = cli_client(ctx, svc, &c)) != CLI_EXIT_OK)
		return rc;
	if (iotca_config_get(ctx->cfg, "IOTCA_TIMEOUT_MS") == NULL)
		ms = default_ms;
	iotca_errbuf_clear(&eb);
	ctx->last_err = iotca_rpc_client_call(c, cli_services[svc].desc, method,
	                                      req, ms, resp, &eb);
	if (ctx->last_err == IOTCA_OK)
		return CLI_EXIT_OK;
	ctx->last_err = eb.code;
	st = iotca_err_grpc_status(eb.code);
	cli_fail(CLI_EXIT_FAIL, "%s (%s)", iotca_errbuf_msg(&eb),
	         st >= 0 && (size_t)st < CLI_COUNT(cli_status_names)
	             ? cli_status_names[st]
	             : "UNKNOWN");
	if (eb.code == IOTCA_EUNAVAIL || eb.code == IOTCA_ETIMEDOUT)
		fprintf(stderr,
		        "iotca: %s service: %s (%s); if that address and the "
		        "TLS settings are right, retry later\n",
		        cli_services[svc].what,
		        iotca_config_get(ctx->cfg, cli_services[svc].env),
		        cli_services[svc].env);
	return CLI_EXIT_FAIL;
}

/* -------------------------------------------------------------- output */

int
cli_print_json(json_t *j)
{
	int rc = CLI_EXIT_OK;

	if (j == NULL)
		return cli_fail(CLI_EXIT_FAIL, "out of memory");
	if (out_json_write(stdout, j) != 0)
		rc = cli_fail(CLI_EXIT_FAIL, "cannot write the output: %s",
		              strerror(errno));
	json_decref(j);
	return rc;
}

int
cli_print_message(cli_ctx *ctx, const ProtobufCMessage *m)
{
	if (ctx->json)
		return cli_print_json(out_json_message(m));
	if (out_show(stdout, m) != IOTCA_OK)
		return cli_fail(CLI_EXIT_FAIL, "out of memory");
	return CLI_EXIT_OK;
}

int
cli_call_print(cli_ctx *ctx, cli_service svc, const char *method,
               const ProtobufCMessage *req)
{
	ProtobufCMessage *resp;
	int rc;

	if ((rc = cli_call(ctx, svc, method, req, &resp)) != CLI_EXIT_OK)
		return rc;
	rc = cli_print_message(ctx, resp);
	protobuf_c_message_free_unpacked(resp, NULL);
	return rc;
}

/* ------------------------------------------------------------- listings */

/* One listing in progress: its request fields and what it has gathered. */
typedef struct cli_pager {
	ProtobufCMessage *req;
	const ProtobufCFieldDescriptor *size_f, *token_f;
	const char *items; /* name of the response's repeated field */
	out_table *table;  /* text mode */
	json_t *array;     /* JSON mode */
	char *token;       /* page_token of the next request (owned) */
} cli_pager;

static int
pager_fields(cli_pager *p)
{
	const ProtobufCMessageDescriptor *d = p->req->descriptor;

	p->size_f =
	    protobuf_c_message_descriptor_get_field_by_name(d, "page_size");
	p->token_f =
	    protobuf_c_message_descriptor_get_field_by_name(d, "page_token");
	if (p->size_f == NULL || p->size_f->type != PROTOBUF_C_TYPE_INT32 ||
	    p->token_f == NULL || p->token_f->type != PROTOBUF_C_TYPE_STRING)
		return cli_fail(CLI_EXIT_FAIL,
		                "internal: %s is not a list "
		                "request",
		                d->name);
	return CLI_EXIT_OK;
}

/* Adds the items of one response page. */
static int
pager_take(cli_pager *p, const ProtobufCMessage *resp)
{
	const ProtobufCFieldDescriptor *f =
	    protobuf_c_message_descriptor_get_field_by_name(resp->descriptor,
	                                                    p->items);
	const ProtobufCMessage *const *items;
	size_t n, i;

	if (f == NULL || f->label != PROTOBUF_C_LABEL_REPEATED ||
	    f->type != PROTOBUF_C_TYPE_MESSAGE)
		return cli_fail(CLI_EXIT_FAIL, "internal: %s has no list %s",
		                resp->descriptor->name, p->items);
	n = *(const size_t *)(const void *)((const char *)resp +
	                                    f->quantifier_offset);
	items = *(const ProtobufCMessage *const *const
	              *)(const void *)((const char *)resp + f->offset);
	for (i = 0; i < n; i++) {
		if (p->array != NULL
		        ? json_array_append_new(p->array,
		                                out_json_message(items[i])) != 0
		        : out_table_add_message(p->table, items[i]) != IOTCA_OK)
			return cli_fail(CLI_EXIT_FAIL, "out of memory");
	}
	return CLI_EXIT_OK;
}

/* Takes the next_page_token of resp: *more is set when it is not empty. */
static int
pager_next(cli_pager *p, const ProtobufCMessage *resp, int *more)
{
	const ProtobufCFieldDescriptor *f =
	    protobuf_c_message_descriptor_get_field_by_name(resp->descriptor,
	                                                    "next_page_token");
	const char *next;

	*more = 0;
	if (f == NULL || f->type != PROTOBUF_C_TYPE_STRING)
		return cli_fail(CLI_EXIT_FAIL,
		                "internal: %s has no "
		                "next_page_token",
		                resp->descriptor->name);
	next = *(const char *const *)(const void *)((const char *)resp +
	                                            f->offset);
	if (next == NULL || next[0] == '\0')
		return CLI_EXIT_OK;
	if (p->token != NULL && strcmp(next, p->token) == 0)
		return cli_fail(
		    CLI_EXIT_FAIL,
		    "the server returned the same page token twice; "
		    "stopping");
	free(p->token);
	if ((p->token = strdup(next)) == NULL)
		return cli_fail(CLI_EXIT_FAIL, "out of memory");
	*more = 1;
	return CLI_EXIT_OK;
}

/* Fetches pages until the last one, or only one unless all. */
static int
pager_run(cli_ctx *ctx, cli_pager *p, cli_service svc, const char *method,
          int all)
{
	char **token_field =
	    (char **)(void *)((char *)p->req + p->token_f->offset);
	ProtobufCMessage *resp = NULL;
	int rc = CLI_EXIT_FAIL, more = 1;

	while (more) {
		*token_field = p->token ? p->token : (char *)"";
		if ((rc = cli_call(ctx, svc, method, p->req, &resp)) !=
		    CLI_EXIT_OK)
			break;
		if ((rc = pager_take(p, resp)) == CLI_EXIT_OK)
			rc = pager_next(p, resp, &more);
		protobuf_c_message_free_unpacked(resp, NULL);
		if (rc != CLI_EXIT_OK || !all)
			break;
	}
	*token_field = (char *)"";
	if (rc == CLI_EXIT_OK && more)
		fprintf(stderr,
		        "iotca: more items follow: use --all, or --page-token "
		        "%s\n",
		        p->token);
	return rc;
}

int
cli_list(cli_ctx *ctx, const cli_args *a, cli_service svc, const char *method,
         ProtobufCMessage *req, const char *items, const out_column *cols,
         size_t ncols)
{
	cli_pager p = {req, NULL, NULL, items, NULL, NULL, NULL};
	const char *start = cli_arg(a, "page-token");
	long size;
	int rc;

	if ((rc = cli_arg_int(a, "page-size", 1, 1000, 0, &size)) !=
	        CLI_EXIT_OK ||
	    (rc = pager_fields(&p)) != CLI_EXIT_OK)
		return rc;
	*(int32_t *)(void *)((char *)req + p.size_f->offset) = (int32_t)size;
	if (start != NULL && (p.token = strdup(start)) == NULL)
		return cli_fail(CLI_EXIT_FAIL, "out of memory");
	if (ctx->json ? (p.array = json_array()) == NULL
	              : (p.table = out_table_create(cols, ncols)) == NULL) {
		rc = cli_fail(CLI_EXIT_FAIL, "out of memory");
		goto out;
	}
	if ((rc = pager_run(ctx, &p, svc, method, cli_flag(a, "all"))) !=
	    CLI_EXIT_OK)
		goto out;
	if (p.array != NULL) {
		rc = cli_print_json(p.array);
		p.array = NULL;
	} else {
		out_table_print(p.table, stdout);
	}
out:
	json_decref(p.array);
	out_table_destroy(p.table);
	free(p.token);
	return rc;
}

/* ---------------------------------------------------------------- files */

/* Reads fd to its end into b; IOTCA_ETOOBIG past b's cap. */
static iotca_err
cli_read_fd(int fd, iotca_buf *b)
{
	char chunk[8192];
	ssize_t n;
	iotca_err rc;

	for (;;) {
		n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return IOTCA_EINTERNAL;
		if (n == 0)
			return IOTCA_OK;
		if ((rc = iotca_buf_append(b, chunk, (size_t)n)) != IOTCA_OK)
			return rc;
	}
}

/* Refuses a directory, and a regular file over cap before reading it. */
static int
cli_read_precheck(int fd, const char *path, const char *what, size_t cap)
{
	struct stat st;

	if (fstat(fd, &st) != 0)
		return CLI_EXIT_OK; /* read() will say what is wrong */
	if (S_ISDIR(st.st_mode))
		return cli_fail(CLI_EXIT_FAIL,
		                "the %s file '%s' is a directory", what, path);
	if (S_ISREG(st.st_mode) && (unsigned long long)st.st_size > cap)
		return cli_fail(CLI_EXIT_FAIL,
		                "the %s file '%s' is %lld bytes; at most %zu "
		                "bytes (%zu KiB) are accepted",
		                what, path, (long long)st.st_size, cap,
		                cap >> 10);
	return CLI_EXIT_OK;
}

int
cli_read_file(const char *path, const char *what, size_t cap, iotca_buf *b)
{
	int fd, rc;
	iotca_err err;

	iotca_buf_init(b, cap);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return cli_fail(CLI_EXIT_FAIL,
		                "cannot read the %s file '%s': %s", what, path,
		                strerror(errno));
	if ((rc = cli_read_precheck(fd, path, what, cap)) != CLI_EXIT_OK)
		goto out;
	rc = CLI_EXIT_FAIL;
	if ((err = cli_read_fd(fd, b)) == IOTCA_ETOOBIG)
		cli_fail(rc,
		         "the %s file '%s' is larger than %zu bytes (%zu KiB), "
		         "the limit",
		         what, path, cap, cap >> 10);
	else if (err == IOTCA_ENOMEM)
		cli_fail(rc, "out of memory reading '%s'", path);
	else if (err != IOTCA_OK)
		cli_fail(rc, "cannot read the %s file '%s': %s", what, path,
		         strerror(errno));
	else if (b->len == 0)
		cli_fail(rc, "the %s file '%s' is empty", what, path);
	else
		rc = CLI_EXIT_OK;
out:
	close(fd);
	if (rc != CLI_EXIT_OK)
		iotca_buf_free(b);
	return rc;
}
