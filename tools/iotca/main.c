/*
 * main.c - iotca, the operator and tenant command line: global options,
 * --help, and dispatch to the command groups listed in cli_groups.h.
 *
 *   iotca [global options] COMMAND [VERB] [options] [arguments]
 *
 * Exit status: 0 success, 1 the server (or the system) refused, 2 the
 * command line is wrong.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "log/log.h"

static const iotca_config_opt cli_opts[] = {
    {"IOTCA_REGISTRY", "registry", IOTCA_CFG_HOSTPORT, "127.0.0.1:50051",
     "address of the registry service", 0, 0},
    {"IOTCA_ASSOCIATION", "association", IOTCA_CFG_HOSTPORT, "127.0.0.1:50052",
     "address of the association service", 0, 0},
    {"IOTCA_TOKEN", "token", IOTCA_CFG_SECRET, NULL,
     "operator token or tenant API key", 0, 0},
    {"IOTCA_GRPC_TLS_CA", "tls-ca", IOTCA_CFG_FILE, NULL,
     "CAs (PEM) of the services' certificates: use TLS", 0, 0},
    {"IOTCA_GRPC_TLS_CERT", "tls-cert", IOTCA_CFG_FILE, NULL,
     "client certificate (PEM) for mutual TLS", 0, 0},
    {"IOTCA_GRPC_TLS_KEY", "tls-key", IOTCA_CFG_FILE, NULL,
     "private key (PEM) of the client certificate", 0, 0},
    {"IOTCA_GRPC_TLS_SERVER_NAME", "tls-server-name", IOTCA_CFG_STRING, NULL,
     "name to check in the services' certificates", 0, 0},
    {"IOTCA_TIMEOUT_MS", "timeout-ms", IOTCA_CFG_INT, NULL,
     "ms per request; unset: 10000, 30000 for assoc upload", 1, 3600000},
    {"IOTCA_JSON", "json", IOTCA_CFG_BOOL, NULL,
     "print one JSON document instead of text", 0, 0},
    {"IOTCA_LOG_LEVEL", "log-level", IOTCA_CFG_LOGLEVEL, "error",
     "lowest level of diagnostic logs on stderr", 0, 0},
};

#define CLI_USAGE "iotca [global options] COMMAND [VERB] [options] [arguments]"
#define CLI_SUMMARY                                                            \
	"The iotca command line: accounts and API keys (operator token); the " \
	"registration\ncode, CA certificates, products, device associations "  \
	"and devices (tenant API\nkey). Pass the token in IOTCA_TOKEN_FILE "   \
	"rather than --token, which other users\ncan see in ps. Without "      \
	"--tls-ca the connection is plaintext, for loopback\ndevelopment "     \
	"only."

#define CLI_GROUP(name) &cmd_##name##_group,
static const cli_group *const cli_groups[] = {
#include "cli_groups.h"
};
#undef CLI_GROUP

static void
cli_help_top(void)
{
	char path[64];
	size_t g, v;

	iotca_config_usage(stdout, CLI_USAGE, CLI_SUMMARY, cli_opts,
	                   CLI_COUNT(cli_opts));
	printf("\ncommands:\n");
	for (g = 0; g < CLI_COUNT(cli_groups); g++)
		for (v = 0; v < cli_groups[g]->nverbs; v++) {
			const cli_verb *vb = &cli_groups[g]->verbs[v];
			snprintf(path, sizeof(path), "%s%s%s",
			         cli_groups[g]->name, vb->name ? " " : "",
			         vb->name ? vb->name : "");
			printf("  %-18s %s\n", path, vb->summary);
		}
	printf(
	    "\nRun 'iotca COMMAND --help' or 'iotca COMMAND VERB --help' for "
	    "their options.\nExit status: 0 success; 1 refused, with "
	    "\"iotca: <message> (<gRPC status>)\"\non stderr; 2 usage "
	    "error.\n");
}

static void
cli_help_group(const cli_group *g)
{
	size_t v;

	printf("usage: iotca [global options] %s VERB [options] "
	       "[arguments]\n\n%s\n\nverbs:\n",
	       g->name, g->summary);
	for (v = 0; v < g->nverbs; v++)
		printf("  %-10s %s\n", g->verbs[v].name, g->verbs[v].summary);
	printf("\nRun 'iotca %s VERB --help' for the options of a verb.\n",
	       g->name);
}

static const cli_group *
cli_find_group(const char *name)
{
	size_t g;

	for (g = 0; g < CLI_COUNT(cli_groups); g++)
		if (strcmp(cli_groups[g]->name, name) == 0)
			return cli_groups[g];
	return NULL;
}

static const cli_verb *
cli_find_verb(const cli_group *g, const char *name)
{
	size_t v;

	for (v = 0; v < g->nverbs; v++)
		if (g->verbs[v].name != NULL &&
		    strcmp(g->verbs[v].name, name) == 0)
			return &g->verbs[v];
	return NULL;
}

static int
cli_group_error(const cli_group *g, const char *what, const char *arg)
{
	fprintf(stderr, "iotca %s: %s%s%s%s; see 'iotca %s --help'\n", g->name,
	        what, arg ? " '" : "", arg ? arg : "", arg ? "'" : "", g->name);
	return CLI_EXIT_USAGE;
}

/* Parses a verb's arguments and runs it. argv[0] is its first argument. */
static int
cli_run_verb(cli_ctx *ctx, const cli_verb *v, const char *path, int argc,
             char *const argv[])
{
	cli_args a;
	int help, rc;

	if ((rc = cli_args_parse(v, path, argc, argv, &a, &help)) !=
	    CLI_EXIT_OK)
		return rc;
	if (help) {
		cli_verb_help(v, path);
		return CLI_EXIT_OK;
	}
	ctx->json |= a.json;
	return v->run(ctx, &a);
}

/* argv[0] is the command (group) name. */
static int
cli_dispatch(cli_ctx *ctx, int argc, char *const argv[])
{
	const cli_group *g;
	const cli_verb *v;
	char path[64];

	if (argc < 1)
		return cli_fail(CLI_EXIT_USAGE,
		                "no command given; see 'iotca --help'");
	if ((g = cli_find_group(argv[0])) == NULL)
		return cli_fail(CLI_EXIT_USAGE,
		                "unknown command '%s'; see 'iotca --help'",
		                argv[0]);
	if (g->nverbs == 1 && g->verbs[0].name == NULL)
		return cli_run_verb(ctx, &g->verbs[0], g->name, argc - 1,
		                    argv + 1);
	if (argc > 1 &&
	    (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		cli_help_group(g);
		return CLI_EXIT_OK;
	}
	if (argc < 2)
		return cli_group_error(g, "a verb is needed", NULL);
	if ((v = cli_find_verb(g, argv[1])) == NULL)
		return cli_group_error(g, "unknown verb", argv[1]);
	snprintf(path, sizeof(path), "%s %s", g->name, v->name);
	return cli_run_verb(ctx, v, path, argc - 2, argv + 2);
}

/* Loads the global options; *cfg stays NULL when --help was asked. */
static int
cli_load(int argc, char **argv, iotca_config **cfg, int *argi)
{
	iotca_errbuf eb;
	iotca_log_level lvl;
	int help = 0;

	iotca_errbuf_clear(&eb);
	if (iotca_config_load(cli_opts, CLI_COUNT(cli_opts), argc, argv, argi,
	                      &help, cfg, &eb) != IOTCA_OK)
		return cli_fail(CLI_EXIT_USAGE, "%s", iotca_errbuf_msg(&eb));
	if (help)
		return CLI_EXIT_OK;
	if ((iotca_config_get(*cfg, "IOTCA_GRPC_TLS_CERT") != NULL ||
	     iotca_config_get(*cfg, "IOTCA_GRPC_TLS_KEY") != NULL) &&
	    iotca_config_get(*cfg, "IOTCA_GRPC_TLS_CA") == NULL)
		return cli_fail(CLI_EXIT_USAGE,
		                "--tls-cert and --tls-key need --tls-ca "
		                "(IOTCA_GRPC_TLS_CA) to use TLS");
	if (iotca_log_level_parse(iotca_config_get(*cfg, "IOTCA_LOG_LEVEL"),
	                          &lvl) == 0)
		iotca_log_set_level(lvl);
	return CLI_EXIT_OK;
}

int
main(int argc, char **argv)
{
	iotca_config *cfg = NULL;
	cli_ctx ctx = {0};
	int argi = argc, rc;

	if ((rc = cli_load(argc, argv, &cfg, &argi)) != CLI_EXIT_OK)
		goto out;
	if (cfg == NULL) {
		cli_help_top();
		goto out;
	}
	ctx.cfg = cfg;
	ctx.json = iotca_config_bool(cfg, "IOTCA_JSON", 0);
	rc = cli_dispatch(&ctx, argc - argi, argv + argi);
	cli_ctx_close(&ctx);
out:
	iotca_config_destroy(cfg);
	if (fflush(stdout) != 0 && rc == CLI_EXIT_OK)
		rc = cli_fail(CLI_EXIT_FAIL, "cannot write the output");
	return rc;
}
