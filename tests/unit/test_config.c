/*
 * test_config.c - environment and flag configuration with validation.
 *
 * The option table below has one option of every iotca_config_type. Each
 * test starts from an environment without any of its variables and leaves
 * it that way; temporary files are made with mkstemp and removed.
 */
#include "config/config.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test.h"

static const iotca_config_opt opts[] = {
    {"IOTCA_NAME", "name", IOTCA_CFG_STRING, "iotca", "service name", 0, 0},
    {"IOTCA_WORKERS", "workers", IOTCA_CFG_INT, "4", "worker threads", 1, 64},
    {"IOTCA_VERBOSE", "verbose", IOTCA_CFG_BOOL, "false", "chatty", 0, 0},
    {"IOTCA_LISTEN", "listen", IOTCA_CFG_HOSTPORT, "127.0.0.1:50051",
     "gRPC address", 0, 0},
    {"IOTCA_ETCD_ENDPOINTS", "etcd-endpoints", IOTCA_CFG_URLS,
     "http://127.0.0.1:2379", "etcd URLs", 0, 0},
    {"IOTCA_CA_FILE", "ca-file", IOTCA_CFG_FILE, NULL, "CA bundle", 0, 0},
    IOTCA_CONFIG_OPT_LOG_LEVEL,
    {"IOTCA_TOKEN", "token", IOTCA_CFG_SECRET, NULL, "API token", 0, 0},
    {"IOTCA_BUS", "bus", IOTCA_CFG_NNGURL, "inproc://bus", "event bus", 0, 0},
};

#define NOPTS (sizeof(opts) / sizeof(opts[0]))

/* A pointer a failed or --help load must leave alone. */
static char untouched_mark;
#define UNTOUCHED ((iotca_config *)(void *)&untouched_mark)

static void
clear_env(void)
{
	char name[128];
	size_t i;

	for (i = 0; i < NOPTS; i++) {
		unsetenv(opts[i].env);
		snprintf(name, sizeof(name), "%s_FILE", opts[i].env);
		unsetenv(name);
	}
}

/* Loads the table with argv (NULL-terminated, argv[0] included). */
static iotca_err
load(char **argv, int *argi, int *help, iotca_config **cfg, iotca_errbuf *eb)
{
	int argc = 0;

	while (argv[argc] != NULL)
		argc++;
	iotca_errbuf_clear(eb);
	*cfg = UNTOUCHED;
	return iotca_config_load(opts, NOPTS, argc, argv, argi, help, cfg, eb);
}

#define ARGS(...) ((char *[]){"prog", __VA_ARGS__, NULL})
#define NO_ARGS   ((char *[]){"prog", NULL})

/* Writes text to a new temporary file; its path goes to path[32]. */
static int
temp_file(char path[32], const char *text)
{
	int fd;
	size_t len = strlen(text);

	snprintf(path, 32, "/tmp/iotca-test-cfg-XXXXXX");
	if ((fd = mkstemp(path)) < 0)
		return -1;
	if (write(fd, text, len) != (ssize_t)len) {
		close(fd);
		unlink(path);
		return -1;
	}
	close(fd);
	return 0;
}

static void
test_table_covers_every_type(void)
{
	int seen[IOTCA_CFG_NNGURL + 1] = {0};
	size_t i;
	int t;

	for (i = 0; i < NOPTS; i++)
		seen[opts[i].type] = 1;
	for (t = IOTCA_CFG_STRING; t <= IOTCA_CFG_NNGURL; t++)
		CHECK(seen[t]);
}

static void
test_defaults(void)
{
	iotca_config *cfg;
	iotca_errbuf eb;
	int help = 0;

	clear_env();
	REQUIRE(load(NO_ARGS, NULL, &help, &cfg, &eb) == IOTCA_OK);
	REQUIRE(cfg != NULL && cfg != UNTOUCHED);
	CHECK_EQ_INT(help, 0);
	CHECK_EQ_STR(iotca_config_get(cfg, "IOTCA_NAME"), "iotca");
	CHECK_EQ_STR(iotca_config_get(cfg, "IOTCA_WORKERS"), "4");
	CHECK_EQ_STR(iotca_config_get(cfg, "IOTCA_VERBOSE"), "false");
	CHECK_EQ_STR(iotca_config_get(cfg, "IOTCA_LISTEN"), "127.0.0.1:50051");
	CHECK_EQ_STR(iotca_config_get(cfg, "IOTCA_ETCD_ENDPOINTS"),
	             "http://127.0.0.1:2379");
	CHECK_EQ_STR(iotca_config_get(cfg, "IOTCA_LOG_LEVEL"), "info");
	CHECK_EQ_STR(iotca_config_get(cfg, "IOTCA_BUS"), "inproc://bus");
	/* No default: unset, and unset values are not validated. */
	CHECK(iotca_config_get(cfg, "IOTCA_CA_FILE") == NULL);
	CHECK(iotca_config_get(cfg, "IOTCA_TOKEN") == NULL);
	CHECK(iotca_config_get(cfg, "IOTCA_NOT_IN_TABLE") == NULL);
	/* Typed getters, and their fallback for unset settings. */
	CHECK_EQ_INT(iotca_config_int(cfg, "IOTCA_WORKERS", -1), 4);
	CHECK_EQ_INT(iotca_config_int(cfg, "IOTCA_CA_FILE", -7), -7);
	CHECK_EQ_INT(iotca_config_bool(cfg, "IOTCA_VERBOSE", 1), 0);
	CHECK_EQ_INT(iotca_config_bool(cfg, "IOTCA_TOKEN", 1), 1);
	CHECK_EQ_INT(iotca_config_bool(cfg, "IOTCA_NOT_IN_TABLE", 0), 0);
	/* A value that is not a boolean gives the default. */
	CHECK_EQ_INT(iotca_config_bool(cfg, "IOTCA_NAME", 1), 1);
	CHECK_EQ_INT(iotca_config_bool(cfg, "IOTCA_NAME", 0), 0);
	iotca_config_destroy(cfg);
	iotca_config_destroy(NULL);
}

static void
test_env_overrides_default(void)
{
	iotca_config *cfg;
	iotca_errbuf eb;
	int help = 0;

	clear_env();
	setenv("IOTCA_WORKERS", "8", 1);
	setenv("IOTCA_LISTEN", "0.0.0.0:6000", 1);
	setenv("IOTCA_VERBOSE", "yes", 1);
	setenv("IOTCA_LOG_LEVEL", "WARNING", 1);
	setenv("IOTCA_TOKEN", "from-env", 1);
	REQUIRE(load(NO_ARGS, NULL, &help, &cfg, &eb) == IOTCA_OK);
	CHECK_EQ_STR(iotca_config_get(cfg, "IOTCA_WORKERS"), "8");
	CHECK_EQ_INT(iotca_config_int(cfg, "IOTCA_WORKERS", 0), 8);
	CHECK_EQ_STR(iotca_config_get(cfg, "IOTCA_LISTEN"), "0.0.0.0:6000");
	CHECK_EQ_INT(iotca_config_bool(cfg, "IOTCA_VERBOSE", 0), 1);
	CHECK_EQ_STR(iotca_config_get(cfg, "IOTCA_LOG_LEVEL"), "WARNING");
	CHECK_EQ_STR(iotca_config_get(cfg, "IOTCA_TOKEN"), "from-env");
	CHECK_EQ_STR(iotca_config_get(cfg, "IOTCA_NAME"), "iotca");
	iotca_config_destroy(cfg);
	clear_env();
}

static void
test_flag_overrides_env(void)
{
	iotca_config *cfg;
	iotca_errbuf eb;
	int help = 0;

	clear_env();
	setenv("IOTCA_WORKERS", "8", 1);
	setenv("IOTCA_LISTEN", "0.0.0.0:6000", 1);
	setenv("IOTCA_NAME", "from-env", 1);
	REQUIRE(
	    load(ARGS("--workers", "16", "--listen=[::1]:7000", "--name=a=b c"),
	         NULL, &help, &cfg, &eb) == IOTCA_OK);
	CHECK_EQ_INT(iotca_config_int(cfg, "IOTCA_WORKERS", 0), 16);
	CHECK_EQ_STR(iotca_config_get(cfg, "IOTCA_LISTEN"), "[::1]:7000");
	/* Only the first '=' separates the value. */
	CHECK_EQ_STR(iotca_config_get(cfg, "IOTCA_NAME"), "a=b c");
	/* The environment itself is not changed. */
	CHECK_EQ_STR(getenv("IOTCA_WORKERS"), "8");
	iotca_config_destroy(cfg);

	/* The last of repeated flags wins, in either spelling. */
	REQUIRE(load(ARGS("--workers", "2", "--workers=3", "--bus",
	                  "tcp://10.0.0.1:5555"),
	             NULL, &help, &cfg, &eb) == IOTCA_OK);
	CHECK_EQ_STR(iotca_config_get(cfg, "IOTCA_WORKERS"), "3");
	CHECK_EQ_STR(iotca_config_get(cfg, "IOTCA_BUS"), "tcp://10.0.0.1:5555");
	iotca_config_destroy(cfg);

	/* A flag value that looks like a flag is still the value. */
	REQUIRE(load(ARGS("--name", "--workers"), NULL, &help, &cfg, &eb) ==
	        IOTCA_OK);
	CHECK_EQ_STR(iotca_config_get(cfg, "IOTCA_NAME"), "--workers");
	CHECK_EQ_STR(iotca_config_get(cfg, "IOTCA_WORKERS"), "8");
	iotca_config_destroy(cfg);
	clear_env();
}

static void
test_bool_flag(void)
{
	iotca_config *cfg;
	iotca_errbuf eb;
	int help = 0;

	clear_env();
	/* A bare bool flag is true and does not take the next argument. */
	REQUIRE(load(ARGS("--verbose", "--workers", "5"), NULL, &help, &cfg,
	             &eb) == IOTCA_OK);
	CHECK_EQ_STR(iotca_config_get(cfg, "IOTCA_VERBOSE"), "true");
	CHECK_EQ_INT(iotca_config_bool(cfg, "IOTCA_VERBOSE", 0), 1);
	CHECK_EQ_INT(iotca_config_int(cfg, "IOTCA_WORKERS", 0), 5);
	iotca_config_destroy(cfg);

	/* --flag=value sets it false, over the environment. */
	setenv("IOTCA_VERBOSE", "on", 1);
	REQUIRE(load(ARGS("--verbose=off"), NULL, &help, &cfg, &eb) ==
	        IOTCA_OK);
	CHECK_EQ_INT(iotca_config_bool(cfg, "IOTCA_VERBOSE", 1), 0);
	iotca_config_destroy(cfg);
	clear_env();

	/* Every spelling, any case. */
	{
		static const char *const yes[] = {"1",   "true", "TRUE", "yes",
		                                  "Yes", "on",   "ON"};
		static const char *const no[] = {"0",  "false", "False", "no",
		                                 "NO", "off",   "Off"};
		size_t i;
		for (i = 0; i < 7; i++) {
			setenv("IOTCA_VERBOSE", yes[i], 1);
			REQUIRE(load(NO_ARGS, NULL, &help, &cfg, &eb) ==
			        IOTCA_OK);
			CHECK_EQ_INT(iotca_config_bool(cfg, "IOTCA_VERBOSE", 0),
			             1);
			iotca_config_destroy(cfg);
			setenv("IOTCA_VERBOSE", no[i], 1);
			REQUIRE(load(NO_ARGS, NULL, &help, &cfg, &eb) ==
			        IOTCA_OK);
			CHECK_EQ_INT(iotca_config_bool(cfg, "IOTCA_VERBOSE", 1),
			             0);
			iotca_config_destroy(cfg);
		}
	}
	clear_env();
}

static void
test_unknown_flag(void)
{
	iotca_config *cfg;
	iotca_errbuf eb;
	int help = 0;

	clear_env();
	CHECK_EQ_INT(
	    load(ARGS("--workers", "5", "--nope"), NULL, &help, &cfg, &eb),
	    IOTCA_EINVAL);
	CHECK(cfg == UNTOUCHED);
	CHECK_EQ_INT(eb.code, IOTCA_EINVAL);
	CHECK_CONTAINS(eb.msg, "--nope");
	CHECK_CONTAINS(eb.msg, "--help");

	CHECK_EQ_INT(load(ARGS("--lisen=1.2.3.4:5"), NULL, &help, &cfg, &eb),
	             IOTCA_EINVAL);
	CHECK(cfg == UNTOUCHED);
	CHECK_CONTAINS(eb.msg, "--lisen");
	/* A prefix of a flag is not that flag. */
	CHECK_EQ_INT(load(ARGS("--work", "5"), NULL, &help, &cfg, &eb),
	             IOTCA_EINVAL);
	CHECK_CONTAINS(eb.msg, "--work");
	/* Only the exact "-file" suffix names a secret file. */
	CHECK_EQ_INT(
	    load(ARGS("--token-fyle", "/etc/hostname"), NULL, &help, &cfg, &eb),
	    IOTCA_EINVAL);
	CHECK_CONTAINS(eb.msg, "--token-fyle");
	CHECK_EQ_INT(
	    load(ARGS("--tokex-file", "/etc/hostname"), NULL, &help, &cfg, &eb),
	    IOTCA_EINVAL);
	CHECK_CONTAINS(eb.msg, "--tokex-file");
	/* "-file" is only for secrets. */
	CHECK_EQ_INT(
	    load(ARGS("--name-file", "/etc/hostname"), NULL, &help, &cfg, &eb),
	    IOTCA_EINVAL);
	CHECK_CONTAINS(eb.msg, "--name-file");
	CHECK_EQ_INT(help, 0);
}

static void
test_missing_value(void)
{
	iotca_config *cfg;
	iotca_errbuf eb;
	int help = 0;

	clear_env();
	CHECK_EQ_INT(load(ARGS("--workers"), NULL, &help, &cfg, &eb),
	             IOTCA_EINVAL);
	CHECK(cfg == UNTOUCHED);
	CHECK_CONTAINS(eb.msg, "--workers");
	CHECK_CONTAINS(eb.msg, "needs a value");
	/* Secret files need a path, never an implied "true". */
	CHECK_EQ_INT(load(ARGS("--token-file"), NULL, &help, &cfg, &eb),
	             IOTCA_EINVAL);
	CHECK(cfg == UNTOUCHED);
	CHECK_CONTAINS(eb.msg, "--token-file");
	CHECK_CONTAINS(eb.msg, "needs a value");
	/* An explicit empty value is a value, and then invalid. */
	CHECK_EQ_INT(load(ARGS("--workers="), NULL, &help, &cfg, &eb),
	             IOTCA_EINVAL);
	CHECK_CONTAINS(eb.msg, "IOTCA_WORKERS");
	CHECK_CONTAINS(eb.msg, "whole number");
}

static void
test_positional(void)
{
	iotca_config *cfg;
	iotca_errbuf eb;
	int help = 0, argi = -1;
	char **argv =
	    ARGS("--workers", "5", "input.csv", "--listen", "bad-address");

	clear_env();
	/* With argi: parsing stops at the first non-option. */
	REQUIRE(load(argv, &argi, &help, &cfg, &eb) == IOTCA_OK);
	CHECK_EQ_INT(argi, 3);
	CHECK_EQ_STR(argv[argi], "input.csv");
	CHECK_EQ_INT(iotca_config_int(cfg, "IOTCA_WORKERS", 0), 5);
	/* What follows it is left to the caller, not parsed. */
	CHECK_EQ_STR(iotca_config_get(cfg, "IOTCA_LISTEN"), "127.0.0.1:50051");
	iotca_config_destroy(cfg);

	/* Without argi: a positional argument is an error naming it. */
	CHECK_EQ_INT(load(argv, NULL, &help, &cfg, &eb), IOTCA_EINVAL);
	CHECK(cfg == UNTOUCHED);
	CHECK_CONTAINS(eb.msg, "input.csv");

	/* A single dash is not an option either. */
	CHECK_EQ_INT(load(ARGS("-v"), NULL, &help, &cfg, &eb), IOTCA_EINVAL);
	CHECK_CONTAINS(eb.msg, "-v");

	/* No positional arguments: argi is argc. */
	argi = -1;
	REQUIRE(load(ARGS("--workers=6"), &argi, &help, &cfg, &eb) == IOTCA_OK);
	CHECK_EQ_INT(argi, 2);
	iotca_config_destroy(cfg);
	argi = -1;
	REQUIRE(load(NO_ARGS, &argi, &help, &cfg, &eb) == IOTCA_OK);
	CHECK_EQ_INT(argi, 1);
	iotca_config_destroy(cfg);
}

static void
test_double_dash(void)
{
	iotca_config *cfg;
	iotca_errbuf eb;
	int help = 0, argi = -1;
	char **argv = ARGS("--workers=5", "--", "--listen", "x");

	clear_env();
	REQUIRE(load(argv, &argi, &help, &cfg, &eb) == IOTCA_OK);
	CHECK_EQ_INT(argi, 3); /* first argument after "--" */
	CHECK_EQ_STR(argv[argi], "--listen");
	CHECK_EQ_INT(iotca_config_int(cfg, "IOTCA_WORKERS", 0), 5);
	CHECK_EQ_STR(iotca_config_get(cfg, "IOTCA_LISTEN"), "127.0.0.1:50051");
	iotca_config_destroy(cfg);

	/* "--help" after "--" is an argument, not a request for help. */
	argi = -1;
	REQUIRE(load(ARGS("--", "--help"), &argi, &help, &cfg, &eb) ==
	        IOTCA_OK);
	CHECK_EQ_INT(help, 0);
	CHECK_EQ_INT(argi, 2);
	iotca_config_destroy(cfg);

	/* Without argi, arguments after "--" are errors ... */
	CHECK_EQ_INT(load(argv, NULL, &help, &cfg, &eb), IOTCA_EINVAL);
	CHECK_CONTAINS(eb.msg, "--listen");
	/* ... but a trailing "--" alone is fine. */
	argi = -1;
	REQUIRE(load(ARGS("--workers=5", "--"), &argi, &help, &cfg, &eb) ==
	        IOTCA_OK);
	CHECK_EQ_INT(argi, 3);
	iotca_config_destroy(cfg);
	REQUIRE(load(ARGS("--"), NULL, &help, &cfg, &eb) == IOTCA_OK);
	iotca_config_destroy(cfg);
}

static void
test_help(void)
{
	iotca_config *cfg;
	iotca_errbuf eb;
	int help = 0;

	clear_env();
	CHECK_EQ_INT(load(ARGS("--help"), NULL, &help, &cfg, &eb), IOTCA_OK);
	CHECK_EQ_INT(help, 1);
	CHECK(cfg == UNTOUCHED); /* no config */

	help = 0;
	CHECK_EQ_INT(load(ARGS("--workers", "3", "-h"), NULL, &help, &cfg, &eb),
	             IOTCA_OK);
	CHECK_EQ_INT(help, 1);
	CHECK(cfg == UNTOUCHED);

	/* Help is given even when a setting is invalid, or more follows. */
	help = 0;
	setenv("IOTCA_WORKERS", "lots", 1);
	CHECK_EQ_INT(load(ARGS("--help", "--nope", "positional"), NULL, &help,
	                  &cfg, &eb),
	             IOTCA_OK);
	CHECK_EQ_INT(help, 1);
	CHECK(cfg == UNTOUCHED);
	clear_env();
}

static void
test_usage(void)
{
	FILE *f = tmpfile();
	char text[4096];
	size_t n;

	REQUIRE(f != NULL);
	iotca_config_usage(f, "prog [options] FILE", "Does things.", opts,
	                   NOPTS);
	rewind(f);
	n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	CHECK(strncmp(text, "usage: prog [options] FILE\n\nDoes things.\n",
	              41) == 0);
	CHECK_CONTAINS(text, "--listen VALUE");
	CHECK_CONTAINS(text, "gRPC address");
	CHECK_CONTAINS(text, "env IOTCA_LISTEN; default 127.0.0.1:50051\n");
	CHECK_CONTAINS(text, "--verbose ");
	CHECK(strstr(text, "--verbose VALUE") == NULL);
	CHECK_CONTAINS(
	    text, "env IOTCA_TOKEN (or IOTCA_TOKEN_FILE / --token-file)\n");
	CHECK_CONTAINS(text, "env IOTCA_CA_FILE\n"); /* no default */
	CHECK_CONTAINS(text, "--help");
}

/*
 * Sets env=value, loads without flags, and checks the load fails with
 * code and a message that names env and contains hint.
 */
static void
expect_error(const char *env, const char *value, iotca_err code,
             const char *hint)
{
	iotca_config *cfg;
	iotca_errbuf eb;
	int help = 0, before = test_failed_checks;

	clear_env();
	setenv(env, value, 1);
	CHECK_EQ_INT(load(NO_ARGS, NULL, &help, &cfg, &eb), code);
	CHECK(cfg == UNTOUCHED);
	CHECK_EQ_INT(eb.code, code);
	CHECK_CONTAINS(eb.msg, env);
	CHECK_CONTAINS(eb.msg, hint);
	if (test_failed_checks != before)
		fprintf(stderr, "  (with %s='%s')\n", env, value);
	clear_env();
}

/* Sets env=value and checks that it loads. */
static void
expect_ok(const char *env, const char *value)
{
	iotca_config *cfg;
	iotca_errbuf eb;
	int help = 0;
	iotca_err rc;

	clear_env();
	setenv(env, value, 1);
	rc = load(NO_ARGS, NULL, &help, &cfg, &eb);
	CHECK_EQ_INT(rc, IOTCA_OK);
	if (rc == IOTCA_OK) {
		CHECK_EQ_STR(iotca_config_get(cfg, env), value);
		iotca_config_destroy(cfg);
	} else {
		fprintf(stderr, "  %s='%s' refused: %s\n", env, value,
		        iotca_errbuf_msg(&eb));
	}
	clear_env();
}

static void
test_invalid_hostport(void)
{
	static const char *const bad[] = {
	    "localhost", "localhost:",   "localhost:99999", ":50051",
	    "host:-1",   "host:80x",     "a b:80",          "[::1]50051",
	    "[]:80",     "[::1]:",       "::1:50051",       "",
	    "host:port", "host/path:80",
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_error("IOTCA_LISTEN", bad[i], IOTCA_EINVAL,
		             "is not host:port; use e.g. 127.0.0.1:50051");
	expect_ok("IOTCA_LISTEN", "localhost:0");
	expect_ok("IOTCA_LISTEN", "my-host.example_1:65535");
	expect_ok("IOTCA_LISTEN", "[::1]:50051");
	expect_ok("IOTCA_LISTEN", "[::]:443");
}

static void
test_invalid_urls(void)
{
	static const char *const bad[] = {
	    "ftp://10.0.0.1:2379",
	    "10.0.0.1:2379",
	    "http://",
	    "https://",
	    "http:///path",
	    "http://a b:2379",
	    "http://a:1,ftp://b:2",
	    "HTTP//a",
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_error("IOTCA_ETCD_ENDPOINTS", bad[i], IOTCA_EINVAL,
		             "is not an http:// or https:// URL; use e.g. "
		             "http://127.0.0.1:2379");
	/* The bad one is named in the message. */
	expect_error("IOTCA_ETCD_ENDPOINTS", "http://ok:1, ftp://bad:2",
	             IOTCA_EINVAL, "'ftp://bad:2'");
	/* An empty list. */
	expect_error("IOTCA_ETCD_ENDPOINTS", "", IOTCA_EINVAL, "no URL given");
	expect_error("IOTCA_ETCD_ENDPOINTS", " , ,", IOTCA_EINVAL,
	             "no URL given; use e.g. http://127.0.0.1:2379");
	expect_ok("IOTCA_ETCD_ENDPOINTS", "https://etcd-0:2379");
	expect_ok("IOTCA_ETCD_ENDPOINTS",
	          " http://10.0.0.1:2379 ,https://10.0.0.2:2379/, ");
}

static void
test_invalid_int(void)
{
	static const char *const nan[] = {
	    "abc", "5x", "", "1.5", "0x10", "99999999999999999999999", "4 2",
	};
	size_t i;

	expect_error("IOTCA_WORKERS", "0", IOTCA_EINVAL,
	             "0 is out of range; use 1 to 64");
	expect_error("IOTCA_WORKERS", "65", IOTCA_EINVAL,
	             "65 is out of range; use 1 to 64");
	expect_error("IOTCA_WORKERS", "-3", IOTCA_EINVAL, "use 1 to 64");
	for (i = 0; i < sizeof(nan) / sizeof(nan[0]); i++)
		expect_error("IOTCA_WORKERS", nan[i], IOTCA_EINVAL,
		             "is not a whole number");
	expect_ok("IOTCA_WORKERS", "1");
	expect_ok("IOTCA_WORKERS", "64");
}

static void
test_invalid_bool_level_nng_string(void)
{
	expect_error("IOTCA_VERBOSE", "maybe", IOTCA_EINVAL,
	             "'maybe' is not a boolean; use true or false");
	expect_error("IOTCA_VERBOSE", "", IOTCA_EINVAL, "use true or false");
	expect_error("IOTCA_VERBOSE", "2", IOTCA_EINVAL, "use true or false");
	expect_error("IOTCA_LOG_LEVEL", "loud", IOTCA_EINVAL,
	             "'loud' is not a log level; use debug, info, warn or "
	             "error");
	expect_error("IOTCA_LOG_LEVEL", "", IOTCA_EINVAL, "not a log level");
	expect_ok("IOTCA_LOG_LEVEL", "debug");
	expect_ok("IOTCA_LOG_LEVEL", "Error");
	expect_error("IOTCA_BUS", "tcp-127.0.0.1:5555", IOTCA_EINVAL,
	             "is not an NNG address; use e.g. tcp://127.0.0.1:5555");
	expect_error("IOTCA_BUS", "tcp://", IOTCA_EINVAL, "NNG address");
	expect_error("IOTCA_BUS", "", IOTCA_EINVAL, "NNG address");
	expect_ok("IOTCA_BUS", "ipc:///tmp/iotca.ipc");
	expect_ok("IOTCA_BUS", "tcp://[::1]:5555");
	expect_error("IOTCA_NAME", "", IOTCA_EINVAL,
	             "is empty; set a value or leave it unset");
	expect_error("IOTCA_TOKEN", "", IOTCA_EINVAL, "is empty");
	expect_ok("IOTCA_NAME", "edge 1");
}

static void
test_value_too_long(void)
{
	char *big = malloc(5000);

	REQUIRE(big != NULL);
	memset(big, 'n', 4999);
	big[4999] = '\0';
	expect_error("IOTCA_NAME", big, IOTCA_ETOOBIG, "longer than");
	big[4096] = '\0'; /* exactly the limit is fine */
	expect_ok("IOTCA_NAME", big);
	free(big);
}

/* A readable file is accepted, from the env or a flag. */
static void
check_file_accepted(char *path)
{
	iotca_config *cfg;
	iotca_errbuf eb;
	int help = 0;

	expect_ok("IOTCA_CA_FILE", path);
	clear_env();
	REQUIRE(load(ARGS("--ca-file", path), NULL, &help, &cfg, &eb) ==
	        IOTCA_OK);
	CHECK_EQ_STR(iotca_config_get(cfg, "IOTCA_CA_FILE"), path);
	iotca_config_destroy(cfg);
}

static void
test_invalid_file(void)
{
	char dir[] = "/tmp/iotca-test-cfgdir-XXXXXX";
	char missing[64], path[32];

	REQUIRE(mkdtemp(dir) != NULL);
	snprintf(missing, sizeof(missing), "%s/no-such.pem", dir);
	expect_error("IOTCA_CA_FILE", missing, IOTCA_EINVAL, missing);
	expect_error("IOTCA_CA_FILE", missing, IOTCA_EINVAL, "cannot use");
	expect_error("IOTCA_CA_FILE", dir, IOTCA_EINVAL,
	             "is not a regular file");
	expect_error("IOTCA_CA_FILE", "", IOTCA_EINVAL, "IOTCA_CA_FILE");
	rmdir(dir);

	REQUIRE(temp_file(path, "-----BEGIN CERTIFICATE-----\n") == 0);
	check_file_accepted(path);
	unlink(path); /* here, not in the check: REQUIRE returns early */
	clear_env();
}

/* An invalid flag value is reported with both names. */
static void
test_invalid_flag_value(void)
{
	iotca_config *cfg;
	iotca_errbuf eb;
	int help = 0;

	clear_env();
	CHECK_EQ_INT(load(ARGS("--workers=0"), NULL, &help, &cfg, &eb),
	             IOTCA_EINVAL);
	CHECK(cfg == UNTOUCHED);
	CHECK_CONTAINS(eb.msg, "IOTCA_WORKERS (--workers)");
	CHECK_CONTAINS(eb.msg, "use 1 to 64");
	/* A valid flag fixes an invalid environment value. */
	setenv("IOTCA_LISTEN", "nonsense", 1);
	REQUIRE(load(ARGS("--listen", "127.0.0.1:1"), NULL, &help, &cfg, &eb) ==
	        IOTCA_OK);
	CHECK_EQ_STR(iotca_config_get(cfg, "IOTCA_LISTEN"), "127.0.0.1:1");
	iotca_config_destroy(cfg);
	clear_env();
}

/* path holds "s3cret value\r\nsecond line\n", path2 "other". */
static void
check_secret_from_file(char *path, char *path2)
{
	char arg[64];
	iotca_config *cfg;
	iotca_errbuf eb;
	int help = 0;

	/* X_FILE in the environment: the first line, without \r\n. */
	setenv("IOTCA_TOKEN_FILE", path, 1);
	REQUIRE(load(NO_ARGS, NULL, &help, &cfg, &eb) == IOTCA_OK);
	CHECK_EQ_STR(iotca_config_get(cfg, "IOTCA_TOKEN"), "s3cret value");
	iotca_config_destroy(cfg);
	clear_env();

	/* --flag-file PATH and --flag-file=PATH. */
	REQUIRE(load(ARGS("--token-file", path2), NULL, &help, &cfg, &eb) ==
	        IOTCA_OK);
	CHECK_EQ_STR(iotca_config_get(cfg, "IOTCA_TOKEN"), "other");
	iotca_config_destroy(cfg);
	snprintf(arg, sizeof(arg), "--token-file=%s", path);
	REQUIRE(load(ARGS(arg), NULL, &help, &cfg, &eb) == IOTCA_OK);
	CHECK_EQ_STR(iotca_config_get(cfg, "IOTCA_TOKEN"), "s3cret value");
	iotca_config_destroy(cfg);

	/* The flag file wins over the environment, and a later flag wins. */
	setenv("IOTCA_TOKEN", "from-env", 1);
	REQUIRE(load(ARGS("--token-file", path2), NULL, &help, &cfg, &eb) ==
	        IOTCA_OK);
	CHECK_EQ_STR(iotca_config_get(cfg, "IOTCA_TOKEN"), "other");
	iotca_config_destroy(cfg);
	REQUIRE(load(ARGS("--token-file", path2, "--token", "inline"), NULL,
	             &help, &cfg, &eb) == IOTCA_OK);
	CHECK_EQ_STR(iotca_config_get(cfg, "IOTCA_TOKEN"), "inline");
	iotca_config_destroy(cfg);
}

static void
test_secret_from_file(void)
{
	char path[32], path2[32];
	int made = 0;

	clear_env();
	made += temp_file(path, "s3cret value\r\nsecond line\n") == 0;
	made += temp_file(path2, "other") == 0; /* no line ending */
	CHECK_EQ_INT(made, 2);
	if (made == 2)
		check_secret_from_file(path, path2);
	clear_env();
	unlink(path);
	unlink(path2);
}

/* empty is an empty file, blank starts with an empty line, missing is not
 * there. */
static void
check_secret_file_errors(char *empty, char *blank, char *missing)
{
	iotca_config *cfg;
	iotca_errbuf eb;
	int help = 0;

	/* An empty file (or an empty first line) is an error, not "". */
	setenv("IOTCA_TOKEN_FILE", empty, 1);
	CHECK_EQ_INT(load(NO_ARGS, NULL, &help, &cfg, &eb), IOTCA_EINVAL);
	CHECK(cfg == UNTOUCHED);
	CHECK_CONTAINS(eb.msg, "IOTCA_TOKEN_FILE");
	CHECK_CONTAINS(eb.msg, "--token-file");
	CHECK_CONTAINS(eb.msg, empty);
	CHECK_CONTAINS(eb.msg, "is empty");
	setenv("IOTCA_TOKEN_FILE", blank, 1);
	CHECK_EQ_INT(load(NO_ARGS, NULL, &help, &cfg, &eb), IOTCA_EINVAL);
	CHECK_CONTAINS(eb.msg, "is empty");
	clear_env();
	CHECK_EQ_INT(load(ARGS("--token-file", empty), NULL, &help, &cfg, &eb),
	             IOTCA_EINVAL);
	CHECK_CONTAINS(eb.msg, "IOTCA_TOKEN_FILE (--token-file)");
	CHECK_CONTAINS(eb.msg, "is empty");

	/* A missing file names the variable and the path. */
	setenv("IOTCA_TOKEN_FILE", missing, 1);
	CHECK_EQ_INT(load(NO_ARGS, NULL, &help, &cfg, &eb), IOTCA_EINVAL);
	CHECK(cfg == UNTOUCHED);
	CHECK_CONTAINS(eb.msg, "IOTCA_TOKEN_FILE");
	CHECK_CONTAINS(eb.msg, "cannot read");
	CHECK_CONTAINS(eb.msg, missing);
	clear_env();
	CHECK_EQ_INT(
	    load(ARGS("--token-file", missing), NULL, &help, &cfg, &eb),
	    IOTCA_EINVAL);
	CHECK_CONTAINS(eb.msg, "--token-file");
	CHECK_CONTAINS(eb.msg, missing);

	/* X_FILE applies to secrets only. */
	setenv("IOTCA_NAME_FILE", empty, 1);
	REQUIRE(load(NO_ARGS, NULL, &help, &cfg, &eb) == IOTCA_OK);
	CHECK_EQ_STR(iotca_config_get(cfg, "IOTCA_NAME"), "iotca");
	iotca_config_destroy(cfg);
}

static void
test_secret_file_errors(void)
{
	char empty[32], blank[32], dir[] = "/tmp/iotca-test-cfgdir-XXXXXX";
	char missing[64];
	int made = 0;

	clear_env();
	made += temp_file(empty, "") == 0;
	made += temp_file(blank, "\r\nsecret on line two\n") == 0;
	made += mkdtemp(dir) != NULL;
	snprintf(missing, sizeof(missing), "%s/token", dir);
	CHECK_EQ_INT(made, 3);
	if (made == 3)
		check_secret_file_errors(empty, blank, missing);
	clear_env();
	rmdir(dir);
	unlink(empty);
	unlink(blank);
}

static void
test_split_list(void)
{
	char **list;
	size_t n = 99;

	list = iotca_config_split_list(" a , b,,c ,\t, d\n", &n);
	REQUIRE(list != NULL);
	CHECK_EQ_INT(n, 4);
	CHECK_EQ_STR(list[0], "a");
	CHECK_EQ_STR(list[1], "b");
	CHECK_EQ_STR(list[2], "c");
	CHECK_EQ_STR(list[3], "d");
	CHECK(list[4] == NULL);
	iotca_config_list_free(list);

	n = 99;
	list = iotca_config_split_list("", &n);
	REQUIRE(list != NULL);
	CHECK_EQ_INT(n, 0);
	CHECK(list[0] == NULL);
	iotca_config_list_free(list);

	n = 99;
	list = iotca_config_split_list(" ,, , ", &n);
	REQUIRE(list != NULL);
	CHECK_EQ_INT(n, 0);
	CHECK(list[0] == NULL);
	iotca_config_list_free(list);

	/* Inner spaces stay; count may be NULL. */
	list = iotca_config_split_list("one item", NULL);
	REQUIRE(list != NULL);
	CHECK_EQ_STR(list[0], "one item");
	CHECK(list[1] == NULL);
	iotca_config_list_free(list);

	iotca_config_list_free(NULL);
}

int
main(void)
{
	RUN(test_table_covers_every_type);
	RUN(test_defaults);
	RUN(test_env_overrides_default);
	RUN(test_flag_overrides_env);
	RUN(test_bool_flag);
	RUN(test_unknown_flag);
	RUN(test_missing_value);
	RUN(test_positional);
	RUN(test_double_dash);
	RUN(test_help);
	RUN(test_usage);
	RUN(test_invalid_hostport);
	RUN(test_invalid_urls);
	RUN(test_invalid_int);
	RUN(test_invalid_bool_level_nng_string);
	RUN(test_value_too_long);
	RUN(test_invalid_file);
	RUN(test_invalid_flag_value);
	RUN(test_secret_from_file);
	RUN(test_secret_file_errors);
	RUN(test_split_list);
	return test_summary();
}
