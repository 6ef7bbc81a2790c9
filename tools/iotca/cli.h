/*
 * cli.h - what the iotca command files share: the command tables, the
 * parsed arguments of a verb, and the context through which a verb calls
 * the services and prints its result.
 *
 * A command group (`ca`) is a table of verbs (`register`, `list`, ...).
 * Each verb declares its options and positional arguments; main.c parses
 * them, answers --help, and calls the verb's run function, which returns
 * the process exit status (CLI_EXIT_*). Run functions print their own
 * result on stdout and every error on stderr as "iotca: ...".
 */
#ifndef IOTCA_CLI_H
#define IOTCA_CLI_H

#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

#include "buf/buf.h"
#include "config/config.h"
#include "out.h"
#include "rpc/rpc.h"

/* Exit statuses. */
enum {
	CLI_EXIT_OK = 0,
	CLI_EXIT_FAIL = 1,  /* the server or the system refused */
	CLI_EXIT_USAGE = 2, /* the command line is wrong */
};

/* The services iotca talks to. */
typedef enum cli_service {
	CLI_REGISTRY,
	CLI_ASSOCIATION,
	CLI_SERVICE_COUNT_
} cli_service;

/* One option of a verb: "--name VALUE", or a flag ("--all") when value is
 * NULL; also "-c VALUE" (or "-cVALUE") when it has a short name c. */
typedef struct cli_opt {
	const char *name;  /* without the dashes */
	const char *value; /* placeholder for --help ("FILE"); NULL: a flag */
	const char *help;  /* one line */
	int required;
	char short_name; /* 'o' for "-o"; 0: none */
} cli_opt;

/* The options every list verb takes (see cli_list). */
/* clang-format off */
#define CLI_OPTS_PAGING                                                      \
	{"page-size", "N", "items per request, 1-1000 (server default 100)", \
	 0, 0},                                                              \
	{"page-token", "TOKEN", "start at this page (from a previous list)", \
	 0, 0},                                                              \
	{"all", NULL, "follow next_page_token until the last page", 0, 0}
/* clang-format on */

#define CLI_OPTS_MAX 16
#define CLI_POS_MAX  4

typedef struct cli_verb cli_verb;

/* A verb's parsed command line. The strings point into argv. */
typedef struct cli_args {
	const cli_verb *verb;
	const char *path;                 /* "ca register", for messages */
	const char *values[CLI_OPTS_MAX]; /* by index in verb->opts; flags
	                                     that are set hold "" */
	const char *pos[CLI_POS_MAX];     /* positional arguments */
	int npos;
	int json; /* --json given after the verb */
} cli_args;

typedef struct cli_ctx cli_ctx;

struct cli_verb {
	const char *name;    /* NULL: the group itself is the verb (regcode) */
	const char *usage;   /* arguments after the verb, for --help */
	const char *summary; /* one line */
	const char *details; /* more text for the verb's --help, or NULL */
	const cli_opt *opts;
	size_t nopts;
	int min_pos, max_pos;
	int (*run)(cli_ctx *ctx, const cli_args *a);
};

typedef struct cli_group {
	const char *name;    /* "ca" */
	const char *summary; /* one line, with the credential it needs */
	const cli_verb *verbs;
	size_t nverbs;
} cli_group;

#define CLI_COUNT(a) (sizeof(a) / sizeof((a)[0]))

#define CLI_GROUP(name) extern const cli_group cmd_##name##_group;
#include "cli_groups.h"
#undef CLI_GROUP

/* ------------------------------------------------------------ arguments */

/*
 * Parses the arguments after a verb (argv[0] is the first one). Options
 * and positional arguments may be mixed; "--" ends the options. Sets
 * *help when --help or -h is seen. On a usage error prints it and returns
 * CLI_EXIT_USAGE.
 */
int cli_args_parse(const cli_verb *v, const char *path, int argc,
                   char *const argv[], cli_args *a, int *help);

/* The value of an option by name; NULL when not given. */
const char *cli_arg(const cli_args *a, const char *name);

/* Whether a flag was given. */
int cli_flag(const cli_args *a, const char *name);

/* An integer option within [min, max]; def when not given. On a bad value
 * prints a usage error and returns CLI_EXIT_USAGE. */
int cli_arg_int(const cli_args *a, const char *name, long min, long max,
                long def, long *out);

/* Prints a verb's --help. path is "ca register". */
void cli_verb_help(const cli_verb *v, const char *path);

/* ---------------------------------------------------- calls and output */

/* Global settings and lazily made clients, one per service. */
struct cli_ctx {
	const iotca_config *cfg;
	int json;
	iotca_rpc_client *clients[CLI_SERVICE_COUNT_];
	iotca_err last_err; /* of the last call: IOTCA_OK, or why it failed
	                       (IOTCA_EPRECOND: FAILED_PRECONDITION ...) */
};

/* Frees the clients. */
void cli_ctx_close(cli_ctx *ctx);

/*
 * Calls method of a service. On success *resp is the response (free it
 * with protobuf_c_message_free_unpacked(*resp, NULL)) and CLI_EXIT_OK is
 * returned; otherwise the error is printed ("iotca: <message> (<STATUS>)")
 * and the exit status is returned.
 */
int cli_call(cli_ctx *ctx, cli_service svc, const char *method,
             const ProtobufCMessage *req, ProtobufCMessage **resp);

/*
 * cli_call with its own time limit for slow methods: default_ms when
 * IOTCA_TIMEOUT_MS is not set (which otherwise applies, as for every call).
 */
int cli_call_ms(cli_ctx *ctx, cli_service svc, const char *method,
                const ProtobufCMessage *req, long default_ms,
                ProtobufCMessage **resp);

/*
 * Runs a paginated list RPC and prints the items: a table of cols, or a
 * JSON array. req is the method's request with every field but page_size
 * and page_token set; items is the name of the response's repeated field.
 * Honours --page-size, --page-token and --all (CLI_OPTS_PAGING).
 */
int cli_list(cli_ctx *ctx, const cli_args *a, cli_service svc,
             const char *method, ProtobufCMessage *req, const char *items,
             const out_column *cols, size_t ncols);

/* cli_call, then prints the response with cli_print_message. */
int cli_call_print(cli_ctx *ctx, cli_service svc, const char *method,
                   const ProtobufCMessage *req);

/* Prints one message: "key: value" lines, or a JSON object. */
int cli_print_message(cli_ctx *ctx, const ProtobufCMessage *m);

/* Prints a JSON document on stdout (ctx->json mode) and frees it. */
int cli_print_json(json_t *j);

/*
 * Reads a whole file of at most cap bytes into b (initialised here; free
 * with iotca_buf_free). what names it in messages ("CA certificate").
 * Prints the problem and returns CLI_EXIT_FAIL when it cannot.
 */
int cli_read_file(const char *path, const char *what, size_t cap, iotca_buf *b);

/* Prints "iotca: <message>" on stderr and returns status. */
int cli_fail(int status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif /* IOTCA_CLI_H */
