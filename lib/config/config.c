/*
 * config.c - environment and flag configuration with validation at start.
 */
#include "config/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log/log.h"

#define CONFIG_VALUE_MAX 4096

struct iotca_config {
	const iotca_config_opt *opts;
	size_t nopts;
	char **values; /* values[i] for opts[i]; NULL when unset */
};

/* The "--flag" spelling used in messages. */
static void
config_names(const iotca_config_opt *o, char *out, size_t n)
{
	snprintf(out, n, "%s (--%s)", o->env, o->flag);
}

static iotca_err
check_int(const iotca_config_opt *o, const char *v, iotca_errbuf *eb)
{
	char names[160];
	char *end;
	long n;

	errno = 0;
	n = strtol(v, &end, 10);
	config_names(o, names, sizeof(names));
	if (errno != 0 || end == v || *end != '\0' ||
	    !(isdigit((unsigned char)v[0]) || v[0] == '-'))
		return iotca_errbuf_set(eb, IOTCA_EINVAL,
		                        "%s: '%s' is not a whole number", names,
		                        v);
	if (n < o->min || n > o->max)
		return iotca_errbuf_set(
		    eb, IOTCA_EINVAL, "%s: %ld is out of range; use %ld to %ld",
		    names, n, o->min, o->max);
	return IOTCA_OK;
}

static int
parse_bool(const char *v, int *out)
{
	static const char *const yes[] = {"1", "true", "yes", "on"};
	static const char *const no[] = {"0", "false", "no", "off"};
	size_t i;

	for (i = 0; i < 4; i++) {
		if (strcasecmp(v, yes[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcasecmp(v, no[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	return -1;
}

/* Validates "host:port" or "[v6]:port". */
static int
valid_hostport(const char *v)
{
	const char *colon, *p;
	char *end;
	long port;

	if (v[0] == '[') {
		const char *rb = strchr(v, ']');
		if (rb == NULL || rb == v + 1 || rb[1] != ':')
			return 0;
		colon = rb + 1;
	} else {
		colon = strrchr(v, ':');
		if (colon == NULL || colon == v)
			return 0;
		for (p = v; p < colon; p++)
			if (!isalnum((unsigned char)*p) && *p != '.' &&
			    *p != '-' && *p != '_')
				return 0;
	}
	if (!isdigit((unsigned char)colon[1]))
		return 0;
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	return errno == 0 && end != colon + 1 && *end == '\0' && port >= 0 &&
	       port <= 65535;
}

static int
valid_url(const char *u)
{
	const char *rest;

	if (strncmp(u, "http://", 7) == 0)
		rest = u + 7;
	else if (strncmp(u, "https://", 8) == 0)
		rest = u + 8;
	else
		return 0;
	if (*rest == '\0' || *rest == '/')
		return 0;
	for (; *rest; rest++)
		if (isspace((unsigned char)*rest))
			return 0;
	return 1;
}

static iotca_err
check_urls(const iotca_config_opt *o, const char *v, iotca_errbuf *eb)
{
	char names[160];
	size_t n, i;
	char **list = iotca_config_split_list(v, &n);
	iotca_err rc = IOTCA_OK;

	config_names(o, names, sizeof(names));
	if (list == NULL)
		return iotca_errbuf_set(eb, IOTCA_ENOMEM, "%s: out of memory",
		                        names);
	if (n == 0)
		rc = iotca_errbuf_set(
		    eb, IOTCA_EINVAL,
		    "%s: no URL given; use e.g. "
		    "http://127.0.0.1:2379,http://10.0.0.2:2379",
		    names);
	for (i = 0; i < n && rc == IOTCA_OK; i++)
		if (!valid_url(list[i]))
			rc = iotca_errbuf_set(
			    eb, IOTCA_EINVAL,
			    "%s: '%s' is not an http:// or https:// URL; use "
			    "e.g. http://127.0.0.1:2379",
			    names, list[i]);
	iotca_config_list_free(list);
	return rc;
}

static iotca_err
check_file(const iotca_config_opt *o, const char *v, iotca_errbuf *eb)
{
	char names[160];
	struct stat st;

	config_names(o, names, sizeof(names));
	if (stat(v, &st) != 0)
		return iotca_errbuf_set(eb, IOTCA_EINVAL,
		                        "%s: cannot use '%s': %s", names, v,
		                        strerror(errno));
	if (!S_ISREG(st.st_mode))
		return iotca_errbuf_set(eb, IOTCA_EINVAL,
		                        "%s: '%s' is not a regular file", names,
		                        v);
	if (access(v, R_OK) != 0)
		return iotca_errbuf_set(eb, IOTCA_EINVAL,
		                        "%s: cannot read '%s': %s", names, v,
		                        strerror(errno));
	return IOTCA_OK;
}

static iotca_err
check_value(const iotca_config_opt *o, const char *v, iotca_errbuf *eb)
{
	char names[160];
	iotca_log_level lvl;
	int b;

	config_names(o, names, sizeof(names));
	if (strlen(v) > CONFIG_VALUE_MAX)
		return iotca_errbuf_set(eb, IOTCA_ETOOBIG,
		                        "%s: value longer than %d bytes", names,
		                        CONFIG_VALUE_MAX);
	switch (o->type) {
	case IOTCA_CFG_STRING:
	case IOTCA_CFG_SECRET:
		if (v[0] == '\0')
			return iotca_errbuf_set(eb, IOTCA_EINVAL,
			                        "%s: is empty; set a value or "
			                        "leave it unset",
			                        names);
		return IOTCA_OK;
	case IOTCA_CFG_INT:
		return check_int(o, v, eb);
	case IOTCA_CFG_BOOL:
		if (parse_bool(v, &b) != 0)
			return iotca_errbuf_set(
			    eb, IOTCA_EINVAL,
			    "%s: '%s' is not a boolean; use "
			    "true or false",
			    names, v);
		return IOTCA_OK;
	case IOTCA_CFG_HOSTPORT:
		if (!valid_hostport(v))
			return iotca_errbuf_set(
			    eb, IOTCA_EINVAL,
			    "%s: '%s' is not host:port; use "
			    "e.g. 127.0.0.1:50051 or "
			    "[::1]:50051",
			    names, v);
		return IOTCA_OK;
	case IOTCA_CFG_URLS:
		return check_urls(o, v, eb);
	case IOTCA_CFG_FILE:
		return check_file(o, v, eb);
	case IOTCA_CFG_LOGLEVEL:
		if (iotca_log_level_parse(v, &lvl) != 0)
			return iotca_errbuf_set(
			    eb, IOTCA_EINVAL,
			    "%s: '%s' is not a log level; use "
			    "debug, info, warn or error",
			    names, v);
		return IOTCA_OK;
	case IOTCA_CFG_NNGURL:
		if (strstr(v, "://") == NULL || strstr(v, "://") == v ||
		    strstr(v, "://")[3] == '\0')
			return iotca_errbuf_set(
			    eb, IOTCA_EINVAL,
			    "%s: '%s' is not an NNG address; "
			    "use e.g. tcp://127.0.0.1:5555",
			    names, v);
		return IOTCA_OK;
	}
	return iotca_errbuf_set(eb, IOTCA_EINTERNAL, "%s: unknown type", names);
}

/* Reads the first line of a secret file, without its line ending. */
static iotca_err
read_secret_file(const iotca_config_opt *o, const char *path, char **out,
                 iotca_errbuf *eb)
{
	char line[CONFIG_VALUE_MAX + 2];
	FILE *f;
	size_t n;

	if ((f = fopen(path, "r")) == NULL)
		return iotca_errbuf_set(
		    eb, IOTCA_EINVAL,
		    "%s_FILE (--%s-file): cannot read '%s': %s", o->env,
		    o->flag, path, strerror(errno));
	if (fgets(line, sizeof(line), f) == NULL)
		line[0] = '\0';
	fclose(f);
	n = strcspn(line, "\r\n");
	line[n] = '\0';
	if (n == 0)
		return iotca_errbuf_set(eb, IOTCA_EINVAL,
		                        "%s_FILE (--%s-file): '%s' is empty",
		                        o->env, o->flag, path);
	if ((*out = strdup(line)) == NULL)
		return iotca_errbuf_set(eb, IOTCA_ENOMEM, "out of memory");
	return IOTCA_OK;
}

static iotca_err
config_set(iotca_config *cfg, size_t i, const char *v)
{
	char *copy = strdup(v);

	if (copy == NULL)
		return IOTCA_ENOMEM;
	free(cfg->values[i]);
	cfg->values[i] = copy;
	return IOTCA_OK;
}

/* Takes values from the environment (X, and X_FILE for secrets). */
static iotca_err
config_from_env(iotca_config *cfg, iotca_errbuf *eb)
{
	char fname[128];
	const char *v;
	char *secret;
	size_t i;
	iotca_err rc;

	for (i = 0; i < cfg->nopts; i++) {
		const iotca_config_opt *o = &cfg->opts[i];
		if ((v = getenv(o->env)) != NULL) {
			if (config_set(cfg, i, v) != IOTCA_OK)
				return iotca_errbuf_set(eb, IOTCA_ENOMEM,
				                        "out of memory");
			continue;
		}
		if (o->type != IOTCA_CFG_SECRET)
			continue;
		snprintf(fname, sizeof(fname), "%s_FILE", o->env);
		if ((v = getenv(fname)) == NULL)
			continue;
		if ((rc = read_secret_file(o, v, &secret, eb)) != IOTCA_OK)
			return rc;
		free(cfg->values[i]);
		cfg->values[i] = secret;
	}
	return IOTCA_OK;
}

/* Finds the option for "--name" (or "--name-file" for secrets). */
static const iotca_config_opt *
config_find_flag(const iotca_config *cfg, const char *name, size_t len,
                 size_t *idx, int *is_file)
{
	size_t i, fl;

	for (i = 0; i < cfg->nopts; i++) {
		fl = strlen(cfg->opts[i].flag);
		*is_file = 0;
		if (fl == len && strncmp(cfg->opts[i].flag, name, len) == 0) {
			*idx = i;
			return &cfg->opts[i];
		}
		if (cfg->opts[i].type == IOTCA_CFG_SECRET && len == fl + 5 &&
		    strncmp(cfg->opts[i].flag, name, fl) == 0 &&
		    strncmp(name + fl, "-file", 5) == 0) {
			*idx = i;
			*is_file = 1;
			return &cfg->opts[i];
		}
	}
	return NULL;
}

/* Parses one "--flag[=value]" at argv[*i]; advances *i past its value. */
static iotca_err
config_parse_flag(iotca_config *cfg, int argc, char *const argv[], int *i,
                  iotca_errbuf *eb)
{
	const char *arg = argv[*i] + 2;
	const char *eq = strchr(arg, '=');
	size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
	const iotca_config_opt *o;
	const char *v;
	char *secret;
	size_t idx;
	int is_file;
	iotca_err rc;

	if ((o = config_find_flag(cfg, arg, len, &idx, &is_file)) == NULL)
		return iotca_errbuf_set(eb, IOTCA_EINVAL,
		                        "unknown option '%s'; see --help",
		                        argv[*i]);
	if (eq != NULL)
		v = eq + 1;
	else if (o->type == IOTCA_CFG_BOOL && !is_file)
		v = "true";
	else if (*i + 1 < argc)
		v = argv[++*i];
	else
		return iotca_errbuf_set(
		    eb, IOTCA_EINVAL, "option --%.*s needs a value; see --help",
		    (int)len, arg);
	if (!is_file)
		return config_set(cfg, idx, v) == IOTCA_OK
		           ? IOTCA_OK
		           : iotca_errbuf_set(eb, IOTCA_ENOMEM,
		                              "out of memory");
	if ((rc = read_secret_file(o, v, &secret, eb)) != IOTCA_OK)
		return rc;
	free(cfg->values[idx]);
	cfg->values[idx] = secret;
	return IOTCA_OK;
}

static iotca_err
config_from_args(iotca_config *cfg, int argc, char *const argv[], int *argi,
                 int *help_asked, iotca_errbuf *eb)
{
	int i;
	iotca_err rc;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		}
		if (strcmp(argv[i], "--help") == 0 ||
		    strcmp(argv[i], "-h") == 0) {
			*help_asked = 1;
			return IOTCA_OK;
		}
		if (strncmp(argv[i], "--", 2) != 0)
			break;
		if ((rc = config_parse_flag(cfg, argc, argv, &i, eb)) !=
		    IOTCA_OK)
			return rc;
	}
	if (argi != NULL)
		*argi = i;
	else if (i < argc)
		return iotca_errbuf_set(eb, IOTCA_EINVAL,
		                        "unexpected argument '%s'; see --help",
		                        argv[i]);
	return IOTCA_OK;
}

iotca_err
iotca_config_load(const iotca_config_opt *opts, size_t nopts, int argc,
                  char *const argv[], int *argi, int *help_asked,
                  iotca_config **out, iotca_errbuf *eb)
{
	iotca_config *cfg;
	size_t i;
	int help = 0;
	iotca_err rc = IOTCA_ENOMEM;

	if (help_asked != NULL)
		*help_asked = 0;
	if ((cfg = calloc(1, sizeof(*cfg))) == NULL ||
	    (cfg->values = calloc(nopts ? nopts : 1, sizeof(char *))) == NULL) {
		free(cfg);
		return iotca_errbuf_set(eb, IOTCA_ENOMEM, "out of memory");
	}
	cfg->opts = opts;
	cfg->nopts = nopts;
	for (i = 0; i < nopts; i++)
		if (opts[i].defval != NULL &&
		    config_set(cfg, i, opts[i].defval) != IOTCA_OK)
			goto out;
	if ((rc = config_from_env(cfg, eb)) != IOTCA_OK)
		goto out;
	if ((rc = config_from_args(cfg, argc, argv, argi, &help, eb)) !=
	    IOTCA_OK)
		goto out;
	if (help) {
		if (help_asked == NULL) {
			rc = iotca_errbuf_set(eb, IOTCA_EINVAL,
			                      "--help is not accepted here");
			goto out;
		}
		*help_asked = 1;
		goto out; /* rc is IOTCA_OK, no config */
	}
	for (i = 0; i < nopts; i++)
		if (cfg->values[i] != NULL &&
		    (rc = check_value(&opts[i], cfg->values[i], eb)) !=
		        IOTCA_OK)
			goto out;
	*out = cfg;
	return IOTCA_OK;
out:
	iotca_config_destroy(cfg);
	return rc;
}

void
iotca_config_destroy(iotca_config *cfg)
{
	size_t i;

	if (cfg == NULL)
		return;
	for (i = 0; i < cfg->nopts; i++)
		free(cfg->values[i]);
	free(cfg->values);
	free(cfg);
}

const char *
iotca_config_get(const iotca_config *cfg, const char *env)
{
	size_t i;

	for (i = 0; i < cfg->nopts; i++)
		if (strcmp(cfg->opts[i].env, env) == 0)
			return cfg->values[i];
	return NULL;
}

long
iotca_config_int(const iotca_config *cfg, const char *env, long def)
{
	const char *v = iotca_config_get(cfg, env);

	return v != NULL ? strtol(v, NULL, 10) : def;
}

int
iotca_config_bool(const iotca_config *cfg, const char *env, int def)
{
	const char *v = iotca_config_get(cfg, env);
	int b;

	if (v == NULL || parse_bool(v, &b) != 0)
		return def;
	return b;
}

void
iotca_config_usage(FILE *f, const char *usage, const char *summary,
                   const iotca_config_opt *opts, size_t nopts)
{
	char flag[96];
	size_t i;

	fprintf(f,
	        "usage: %s\n\n%s\n\noptions (each also read from its "
	        "environment variable; the flag wins):\n",
	        usage, summary);
	for (i = 0; i < nopts; i++) {
		snprintf(flag, sizeof(flag), "--%s%s", opts[i].flag,
		         opts[i].type == IOTCA_CFG_BOOL ? "" : " VALUE");
		fprintf(f, "  %-28s %s\n  %-28s   env %s", flag, opts[i].help,
		        "", opts[i].env);
		if (opts[i].type == IOTCA_CFG_SECRET)
			fprintf(f, " (or %s_FILE / --%s-file)", opts[i].env,
			        opts[i].flag);
		if (opts[i].defval != NULL)
			fprintf(f, "; default %s", opts[i].defval);
		fputc('\n', f);
	}
	fprintf(f, "  %-28s %s\n", "--help", "show this help and exit");
}

iotca_config *
iotca_config_main(const char *usage, const char *summary,
                  const iotca_config_opt *opts, size_t nopts, int argc,
                  char *const argv[], int *argi)
{
	iotca_errbuf eb;
	iotca_config *cfg = NULL;
	iotca_log_level lvl;
	const char *level;
	int help = 0;

	iotca_errbuf_clear(&eb);
	if (iotca_config_load(opts, nopts, argc, argv, argi, &help, &cfg,
	                      &eb) != IOTCA_OK) {
		fprintf(stderr, "%s: configuration error: %s\n",
		        argc > 0 ? argv[0] : "iotca", iotca_errbuf_msg(&eb));
		exit(2);
	}
	if (help) {
		iotca_config_usage(stdout, usage, summary, opts, nopts);
		exit(0);
	}
	level = iotca_config_get(cfg, "IOTCA_LOG_LEVEL");
	if (level != NULL && iotca_log_level_parse(level, &lvl) == 0)
		iotca_log_set_level(lvl);
	return cfg;
}

char **
iotca_config_split_list(const char *s, size_t *count)
{
	size_t n = 1, k = 0;
	const char *p, *start, *end;
	char **list;

	for (p = s; *p; p++)
		n += *p == ',';
	if ((list = calloc(n + 1, sizeof(char *))) == NULL)
		return NULL;
	for (start = s;; start = p + 1) {
		p = strchr(start, ',');
		end = p ? p : start + strlen(start);
		while (start < end && isspace((unsigned char)*start))
			start++;
		while (end > start && isspace((unsigned char)end[-1]))
			end--;
		if (end > start &&
		    (list[k++] = strndup(start, (size_t)(end - start))) ==
		        NULL) {
			iotca_config_list_free(list);
			return NULL;
		}
		if (p == NULL)
			break;
	}
	if (count != NULL)
		*count = k;
	return list;
}

void
iotca_config_list_free(char **list)
{
	char **p;

	if (list == NULL)
		return;
	for (p = list; *p; p++)
		free(*p);
	free(list);
}
