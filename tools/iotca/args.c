/*
 * args.c - the options and arguments after a verb, and the verb's --help.
 *
 * lib/config parses the global options (which also come from the
 * environment); a verb's options exist only on its command line, so they
 * get this small parser: "--name VALUE", "--name=VALUE", flags, positional
 * arguments in any order, "--" to end the options. An option with a short
 * name also takes "-c VALUE" and "-cVALUE"; any other argument starting
 * with one dash stays positional (a DeviceName may start with '-').
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Prints a usage error about the verb at path and returns CLI_EXIT_USAGE. */
static int
args_usage_error(const char *path, const char *what, const char *arg)
{
	fprintf(stderr, "iotca %s: %s%s%s%s; see 'iotca %s --help'\n", path,
	        what, arg ? " '" : "", arg ? arg : "", arg ? "'" : "", path);
	return CLI_EXIT_USAGE;
}

/* Finds "--name" (len bytes of name) among the verb's options. */
static int
args_find(const cli_verb *v, const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < v->nopts; i++)
		if (strlen(v->opts[i].name) == len &&
		    strncmp(v->opts[i].name, name, len) == 0)
			return (int)i;
	return -1;
}

/* Parses the option at argv[*i]; advances *i past its value. */
static int
args_option(const cli_verb *v, const char *path, int argc, char *const argv[],
            int *i, cli_args *a)
{
	const char *name = argv[*i] + 2, *eq = strchr(name, '=');
	size_t len = eq ? (size_t)(eq - name) : strlen(name);
	int k = args_find(v, name, len);

	if (k < 0 && len == 4 && strncmp(name, "json", 4) == 0 && eq == NULL) {
		a->json = 1;
		return CLI_EXIT_OK;
	}
	if (k < 0)
		return args_usage_error(path, "unknown option", argv[*i]);
	if (v->opts[k].value == NULL) {
		if (eq != NULL)
			return args_usage_error(
			    path, "this flag takes no value:", argv[*i]);
		a->values[k] = "";
	} else if (eq != NULL) {
		a->values[k] = eq + 1;
	} else if (*i + 1 < argc) {
		a->values[k] = argv[++*i];
	} else {
		return args_usage_error(path,
		                        "this option needs a value:", argv[*i]);
	}
	return CLI_EXIT_OK;
}

/* The option with short name c, or -1. */
static int
args_find_short(const cli_verb *v, char c)
{
	size_t i;

	for (i = 0; i < v->nopts; i++)
		if (c != 0 && v->opts[i].short_name == c)
			return (int)i;
	return -1;
}

/* Parses "-c VALUE", "-cVALUE" or the flag "-c" at argv[*i], whose option
 * is k; advances *i past its value. */
static int
args_short_option(const cli_verb *v, const char *path, int argc,
                  char *const argv[], int *i, int k, cli_args *a)
{
	const char *rest = argv[*i] + 2;

	if (v->opts[k].value == NULL) {
		if (*rest != '\0')
			return args_usage_error(
			    path, "this flag takes no value:", argv[*i]);
		a->values[k] = "";
	} else if (*rest != '\0') {
		a->values[k] = rest;
	} else if (*i + 1 < argc) {
		a->values[k] = argv[++*i];
	} else {
		return args_usage_error(path,
		                        "this option needs a value:", argv[*i]);
	}
	return CLI_EXIT_OK;
}

/* Checks the required options and the number of positional arguments. */
static int
args_check(const cli_verb *v, const char *path, const cli_args *a)
{
	char msg[160];
	size_t i;

	for (i = 0; i < v->nopts; i++)
		if (v->opts[i].required && a->values[i] == NULL) {
			snprintf(msg, sizeof(msg), "--%s is required",
			         v->opts[i].name);
			return args_usage_error(path, msg, NULL);
		}
	if (a->npos < v->min_pos)
		return args_usage_error(path,
		                        "missing argument; usage:", v->usage);
	return CLI_EXIT_OK;
}

int
cli_args_parse(const cli_verb *v, const char *path, int argc,
               char *const argv[], cli_args *a, int *help)
{
	int i, k, opts_done = 0, rc;

	memset(a, 0, sizeof(*a));
	a->verb = v;
	a->path = path;
	*help = 0;
	for (i = 0; i < argc; i++) {
		if (!opts_done && (strcmp(argv[i], "--help") == 0 ||
		                   strcmp(argv[i], "-h") == 0)) {
			*help = 1;
			return CLI_EXIT_OK;
		}
		if (!opts_done && strcmp(argv[i], "--") == 0) {
			opts_done = 1;
		} else if (!opts_done && strncmp(argv[i], "--", 2) == 0) {
			if ((rc = args_option(v, path, argc, argv, &i, a)) !=
			    CLI_EXIT_OK)
				return rc;
		} else if (!opts_done && argv[i][0] == '-' &&
		           (k = args_find_short(v, argv[i][1])) >= 0) {
			/* Other "-x" stay positional: a DeviceName may
			 * start with '-'. */
			if ((rc = args_short_option(v, path, argc, argv, &i, k,
			                            a)) != CLI_EXIT_OK)
				return rc;
		} else if (a->npos < v->max_pos && a->npos < CLI_POS_MAX) {
			a->pos[a->npos++] = argv[i];
		} else {
			return args_usage_error(path, "unexpected argument",
			                        argv[i]);
		}
	}
	return args_check(v, path, a);
}

const char *
cli_arg(const cli_args *a, const char *name)
{
	int k = args_find(a->verb, name, strlen(name));

	return k >= 0 ? a->values[k] : NULL;
}

int
cli_flag(const cli_args *a, const char *name)
{
	return cli_arg(a, name) != NULL;
}

int
cli_arg_int(const cli_args *a, const char *name, long min, long max, long def,
            long *out)
{
	const char *v = cli_arg(a, name);
	char *end;
	long n;

	*out = def;
	if (v == NULL)
		return CLI_EXIT_OK;
	errno = 0;
	n = strtol(v, &end, 10);
	if (errno != 0 || end == v || *end != '\0' || n < min || n > max) {
		fprintf(stderr,
		        "iotca %s: --%s: '%s' is not a whole number from %ld "
		        "to %ld; see 'iotca %s --help'\n",
		        a->path, name, v, min, max, a->path);
		return CLI_EXIT_USAGE;
	}
	*out = n;
	return CLI_EXIT_OK;
}

void
cli_verb_help(const cli_verb *v, const char *path)
{
	char flag[64], sh[8];
	size_t i;

	printf("usage: iotca [global options] %s%s%s\n\n%s\n", path,
	       v->usage[0] ? " " : "", v->usage, v->summary);
	if (v->details != NULL)
		printf("\n%s\n", v->details);
	printf("\noptions:\n");
	for (i = 0; i < v->nopts; i++) {
		sh[0] = '\0';
		if (v->opts[i].short_name != 0)
			snprintf(sh, sizeof(sh), "-%c, ",
			         v->opts[i].short_name);
		snprintf(flag, sizeof(flag), "%s--%s%s%s", sh, v->opts[i].name,
		         v->opts[i].value ? " " : "",
		         v->opts[i].value ? v->opts[i].value : "");
		printf("  %-22s %s%s\n", flag, v->opts[i].help,
		       v->opts[i].required ? " (required)" : "");
	}
	printf("  %-22s %s\n", "--json",
	       "print JSON instead of text (also a global option)");
	printf("  %-22s %s\n", "--help", "show this help and exit");
	printf("\nGlobal options (server addresses, credential, TLS): "
	       "see 'iotca --help'.\n");
}
