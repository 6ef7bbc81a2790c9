/*
 * config.h - configuration from the environment with command-line overrides.
 *
 * A binary describes its settings in a table of iotca_config_opt. Each one
 * has an environment variable (IOTCA_LISTEN) and a flag (--listen); the flag
 * wins. Every value is validated once at start, and an invalid one stops the
 * program with a message that names the variable to fix. A secret setting X
 * may instead name a file in X_FILE (or --flag-file) whose first line is the
 * value, for Kubernetes Secrets mounted as files.
 *
 * A loaded iotca_config is immutable and may be read from any thread.
 */
#ifndef IOTCA_CONFIG_H
#define IOTCA_CONFIG_H

#include <stdio.h>

#include "err/err.h"

typedef enum iotca_config_type {
	IOTCA_CFG_STRING, /* any non-empty text */
	IOTCA_CFG_INT,    /* decimal integer within [min, max] */
	IOTCA_CFG_BOOL, /* true/false/1/0/yes/no/on/off; a bare flag is true */
	IOTCA_CFG_HOSTPORT, /* host:port or [v6]:port, port 0..65535 */
	IOTCA_CFG_URLS,     /* comma-separated http:// or https:// URLs */
	IOTCA_CFG_FILE,     /* path of a readable regular file */
	IOTCA_CFG_LOGLEVEL, /* debug, info, warn, error */
	IOTCA_CFG_SECRET,   /* text never printed; also accepted from X_FILE */
	IOTCA_CFG_NNGURL,   /* an NNG address: tcp://, ipc://, inproc:// ... */
} iotca_config_type;

typedef struct iotca_config_opt {
	const char *env;  /* environment variable, e.g. "IOTCA_LISTEN" */
	const char *flag; /* long flag without dashes, e.g. "listen" */
	iotca_config_type type;
	const char *defval; /* default, or NULL for "unset" */
	const char *help;   /* one line for --help */
	long min, max;      /* bounds for IOTCA_CFG_INT */
} iotca_config_opt;

typedef struct iotca_config iotca_config;

/*
 * Loads and validates every option from the environment and argv.
 * Parsing stops at the first argument that is not an option (or after
 * "--"); its index goes to *argi when argi is not NULL, otherwise a
 * positional argument is an error. "--help" sets *help_asked (when
 * help_asked is NULL, --help is an error) and returns
 * IOTCA_OK with no config. On success *out holds the config.
 */
iotca_err iotca_config_load(const iotca_config_opt *opts, size_t nopts,
                            int argc, char *const argv[], int *argi,
                            int *help_asked, iotca_config **out,
                            iotca_errbuf *eb);

/* Frees a config. NULL is allowed. */
void iotca_config_destroy(iotca_config *cfg);

/* The value of a setting (by env name), or NULL when unset. */
const char *iotca_config_get(const iotca_config *cfg, const char *env);

/* Integer and boolean values; def when unset. */
long iotca_config_int(const iotca_config *cfg, const char *env, long def);
int iotca_config_bool(const iotca_config *cfg, const char *env, int def);

/* Writes a --help text: usage line, summary, then one line per option. */
void iotca_config_usage(FILE *f, const char *usage, const char *summary,
                        const iotca_config_opt *opts, size_t nopts);

/*
 * For a program's main(): loads the config; on --help prints the usage and
 * exits 0; on error prints the message and exits 2. Also applies
 * IOTCA_LOG_LEVEL when the table has it.
 */
iotca_config *iotca_config_main(const char *usage, const char *summary,
                                const iotca_config_opt *opts, size_t nopts,
                                int argc, char *const argv[], int *argi);

/* Splits "a,b,c" into a NULL-terminated array of trimmed strings (free with
 * iotca_config_list_free). Empty items are skipped. NULL on no memory. */
char **iotca_config_split_list(const char *s, size_t *count);
void iotca_config_list_free(char **list);

/* Common settings every binary carries. */
#define IOTCA_CONFIG_OPT_LOG_LEVEL                                             \
	{                                                                      \
		"IOTCA_LOG_LEVEL", "log-level", IOTCA_CFG_LOGLEVEL, "info",    \
		    "lowest log level written: debug, info, warn, error", 0, 0 \
	}

#endif /* IOTCA_CONFIG_H */
