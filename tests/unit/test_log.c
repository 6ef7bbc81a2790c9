/*
 * test_log.c - log line format, level filtering, level names, quoting.
 *
 * Log lines go to fd 2, so the tests point fd 2 at a temporary file around
 * each call and read the file back. fd 2 is always restored before any
 * CHECK runs, because the harness reports failures on stderr.
 */
#include "log/log.h"

#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "test.h"

static int capture_fd = -1; /* the temporary file */
static int saved_fd = -1;   /* the real stderr */
static char captured[1 << 20];

/* Points fd 2 at a fresh, already unlinked temporary file. */
static int
capture_begin(void)
{
	char path[] = "/tmp/iotca-test-log-XXXXXX";

	fflush(stderr);
	if ((capture_fd = mkstemp(path)) < 0)
		return -1;
	unlink(path);
	if ((saved_fd = dup(STDERR_FILENO)) < 0 ||
	    dup2(capture_fd, STDERR_FILENO) < 0) {
		close(capture_fd);
		return -1;
	}
	return 0;
}

/* Restores fd 2 and returns what was written meanwhile (in captured). */
static const char *
capture_end(void)
{
	ssize_t n;
	size_t off = 0;

	dup2(saved_fd, STDERR_FILENO);
	close(saved_fd);
	lseek(capture_fd, 0, SEEK_SET);
	while (off < sizeof(captured) - 1 &&
	       (n = read(capture_fd, captured + off,
	                 sizeof(captured) - 1 - off)) > 0)
		off += (size_t)n;
	captured[off] = '\0';
	close(capture_fd);
	capture_fd = saved_fd = -1;
	return captured;
}

static int
all_digits(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!isdigit((unsigned char)s[i]))
			return 0;
	return 1;
}

/*
 * Checks "ts=YYYY-MM-DDTHH:MM:SS.mmmZ " at the start of line with a
 * plausible date, and returns what follows it (or NULL).
 */
static const char *
check_ts(const char *line)
{
	const char *t;
	struct tm now;
	time_t secs = time(NULL);
	int year, mon, day, hh, mm, ss;

	if (strncmp(line, "ts=", 3) != 0)
		return NULL;
	t = line + 3;
	if (strlen(t) < 25)
		return NULL;
	if (!all_digits(t, 4) || t[4] != '-' || !all_digits(t + 5, 2) ||
	    t[7] != '-' || !all_digits(t + 8, 2) || t[10] != 'T' ||
	    !all_digits(t + 11, 2) || t[13] != ':' || !all_digits(t + 14, 2) ||
	    t[16] != ':' || !all_digits(t + 17, 2) || t[19] != '.' ||
	    !all_digits(t + 20, 3) || t[23] != 'Z' || t[24] != ' ')
		return NULL;
	if (sscanf(t, "%4d-%2d-%2dT%2d:%2d:%2d", &year, &mon, &day, &hh, &mm,
	           &ss) != 6)
		return NULL;
	if (mon < 1 || mon > 12 || day < 1 || day > 31 || hh > 23 || mm > 59 ||
	    ss > 60)
		return NULL;
	/* UTC, and now: the year matches (allowing for New Year's Eve). */
	gmtime_r(&secs, &now);
	if (year != now.tm_year + 1900 && year != now.tm_year + 1899)
		return NULL;
	return t + 25;
}

static void
test_line_format(void)
{
	const char *out, *rest;

	REQUIRE(capture_begin() == 0);
	iotca_log_warn("TEST-EVENT", "k=%s n=%d", "v", 3);
	out = capture_end();
	rest = check_ts(out);
	REQUIRE(rest != NULL);
	CHECK_EQ_STR(rest, "level=warn event=TEST-EVENT k=v n=3\n");
	/* Exactly one line. */
	CHECK(strchr(out, '\n') == out + strlen(out) - 1);
}

static void
test_line_without_fields(void)
{
	const char *out;

	REQUIRE(capture_begin() == 0);
	iotca_log_error("NO-FIELDS", NULL);
	out = capture_end();
	CHECK_EQ_STR(check_ts(out), "level=error event=NO-FIELDS\n");

	REQUIRE(capture_begin() == 0);
	iotca_log_info("EMPTY-FIELDS", "%s", "");
	out = capture_end();
	/* An empty expansion leaves a trailing space but one line. */
	CHECK(strncmp(check_ts(out) ? check_ts(out) : "",
	              "level=info event=EMPTY-FIELDS", 29) == 0);
	CHECK(out[strlen(out) - 1] == '\n');

	REQUIRE(capture_begin() == 0);
	iotca_log(IOTCA_LOG_WARN, "EMPTY-FORMAT", "%s", "");
	iotca_log(IOTCA_LOG_INFO, "ONE", "a=1");
	out = capture_end();
	CHECK_CONTAINS(out, "level=info event=ONE a=1\n");
}

static void
test_every_level_name(void)
{
	static const struct {
		iotca_log_level level;
		const char *text;
	} levels[] = {
	    {IOTCA_LOG_DEBUG, "level=debug event=L x=1\n"},
	    {IOTCA_LOG_INFO, "level=info event=L x=1\n"},
	    {IOTCA_LOG_WARN, "level=warn event=L x=1\n"},
	    {IOTCA_LOG_ERROR, "level=error event=L x=1\n"},
	};
	const char *out;
	size_t i;

	iotca_log_set_level(IOTCA_LOG_DEBUG);
	for (i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
		REQUIRE(capture_begin() == 0);
		iotca_log(levels[i].level, "L", "x=%d", 1);
		out = capture_end();
		CHECK_EQ_STR(check_ts(out), levels[i].text);
	}
	iotca_log_set_level(IOTCA_LOG_INFO);
}

static void
test_level_filtering(void)
{
	const char *out;

	/* The default is info: debug is hidden, the rest written. */
	CHECK(!iotca_log_enabled(IOTCA_LOG_DEBUG));
	CHECK(iotca_log_enabled(IOTCA_LOG_INFO));
	CHECK(iotca_log_enabled(IOTCA_LOG_WARN));
	CHECK(iotca_log_enabled(IOTCA_LOG_ERROR));
	REQUIRE(capture_begin() == 0);
	iotca_log_debug("HIDDEN", "a=1");
	iotca_log_info("SHOWN-INFO", "a=2");
	out = capture_end();
	CHECK(strstr(out, "HIDDEN") == NULL);
	CHECK_CONTAINS(out, "level=info event=SHOWN-INFO a=2\n");

	iotca_log_set_level(IOTCA_LOG_ERROR);
	CHECK(!iotca_log_enabled(IOTCA_LOG_INFO));
	CHECK(!iotca_log_enabled(IOTCA_LOG_WARN));
	CHECK(iotca_log_enabled(IOTCA_LOG_ERROR));
	REQUIRE(capture_begin() == 0);
	iotca_log_info("HIDDEN-INFO", NULL);
	iotca_log_warn("HIDDEN-WARN", NULL);
	iotca_log_error("SHOWN-ERROR", NULL);
	out = capture_end();
	CHECK(strstr(out, "HIDDEN") == NULL);
	CHECK_CONTAINS(out, "event=SHOWN-ERROR\n");

	iotca_log_set_level(IOTCA_LOG_DEBUG);
	CHECK(iotca_log_enabled(IOTCA_LOG_DEBUG));
	REQUIRE(capture_begin() == 0);
	iotca_log_debug("SHOWN-DEBUG", "d=%d", 4);
	out = capture_end();
	CHECK_CONTAINS(out, "level=debug event=SHOWN-DEBUG d=4\n");

	iotca_log_set_level(IOTCA_LOG_INFO);
	REQUIRE(capture_begin() == 0);
	iotca_log_debug("HIDDEN-AGAIN", NULL);
	out = capture_end();
	CHECK_EQ_STR(out, "");
}

static void
test_long_line_truncated(void)
{
	char *big = malloc(10000);
	const char *out;
	size_t len;

	REQUIRE(big != NULL);
	memset(big, 'x', 9999);
	big[9999] = '\0';
	REQUIRE(capture_begin() == 0);
	iotca_log_warn("BIG", "v=%s", big);
	iotca_log_warn("AFTER", NULL);
	out = capture_end();
	free(big);
	/* The first line is cut but still ends in a newline. */
	len = strcspn(out, "\n");
	CHECK(len > 1000 && len < 4096);
	REQUIRE(out[len] == '\n');
	CHECK(strncmp(check_ts(out) ? check_ts(out) : "",
	              "level=warn event=BIG v=xxxx", 27) == 0);
	CHECK(out[len - 1] == 'x');
	/* The next event starts on its own line. */
	CHECK_EQ_STR(check_ts(out + len + 1), "level=warn event=AFTER\n");
}

#define LOG_THREADS    4
#define LOG_PER_THREAD 300

static void *
log_thread(void *arg)
{
	int id = (int)(size_t)arg, i;

	for (i = 0; i < LOG_PER_THREAD; i++)
		iotca_log_info("THREAD", "id=%d i=%d pad=%0100d", id, i, 0);
	return NULL;
}

/* Lines written from several threads at once never interleave. */
static void
test_threads_do_not_interleave(void)
{
	pthread_t th[LOG_THREADS];
	char *all, *line, *save = NULL;
	const char *out, *rest;
	int counts[LOG_THREADS] = {0};
	int i, id, k, in_order, lines = 0, started = 0;

	REQUIRE(capture_begin() == 0);
	for (i = 0; i < LOG_THREADS; i++) {
		if (pthread_create(&th[i], NULL, log_thread,
		                   (void *)(size_t)i) != 0)
			break;
		started++;
	}
	for (i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	out = capture_end();
	REQUIRE(started == LOG_THREADS);
	all = strdup(out);
	REQUIRE(all != NULL);
	for (line = strtok_r(all, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		rest = check_ts(line);
		/* Whole, and in each thread's own order. */
		in_order = rest != NULL &&
		           sscanf(rest, "level=info event=THREAD id=%d i=%d",
		                  &id, &k) == 2 &&
		           id >= 0 && id < LOG_THREADS && k == counts[id];
		CHECK(in_order);
		if (!in_order) {
			fprintf(stderr, "  bad line: %s\n", line);
			break;
		}
		counts[id]++;
		lines++;
	}
	free(all);
	CHECK_EQ_INT(lines, LOG_THREADS * LOG_PER_THREAD);
}

static void
test_level_parse(void)
{
	static const struct {
		const char *text;
		iotca_log_level level;
	} good[] = {
	    {"debug", IOTCA_LOG_DEBUG},  {"DEBUG", IOTCA_LOG_DEBUG},
	    {"info", IOTCA_LOG_INFO},    {"Info", IOTCA_LOG_INFO},
	    {"warn", IOTCA_LOG_WARN},    {"WARN", IOTCA_LOG_WARN},
	    {"warning", IOTCA_LOG_WARN}, {"Warning", IOTCA_LOG_WARN},
	    {"error", IOTCA_LOG_ERROR},  {"ERROR", IOTCA_LOG_ERROR},
	};
	static const char *const bad[] = {
	    "",      "fatal", "err",   "warnings", "inf",
	    " info", "info ", "trace", "0",        "debug\n",
	};
	iotca_log_level lvl;
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		lvl = (iotca_log_level)99;
		CHECK_EQ_INT(iotca_log_level_parse(good[i].text, &lvl), 0);
		CHECK_EQ_INT(lvl, good[i].level);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		lvl = IOTCA_LOG_ERROR;
		CHECK_EQ_INT(iotca_log_level_parse(bad[i], &lvl), -1);
		CHECK_EQ_INT(lvl, IOTCA_LOG_ERROR); /* untouched */
	}
}

static void
test_quote_bare(void)
{
	char out[64];

	CHECK_EQ_STR(iotca_log_quote(out, sizeof(out), "abc"), "abc");
	CHECK(iotca_log_quote(out, sizeof(out), "abc") == out);
	CHECK_EQ_STR(iotca_log_quote(out, sizeof(out), "tcp://127.0.0.1:5555"),
	             "tcp://127.0.0.1:5555");
	CHECK_EQ_STR(iotca_log_quote(out, sizeof(out), "a.b_c-d+e@f/g:h09XZ"),
	             "a.b_c-d+e@f/g:h09XZ");
	/* A bare value that exactly fills the buffer. */
	CHECK_EQ_STR(iotca_log_quote(out, 8, "1234567"), "1234567");
	/* One byte more: quoted and cut, since it cannot be bare. */
	CHECK_EQ_STR(iotca_log_quote(out, 8, "12345678"), "\"12...\"");
}

static void
test_quote_escapes(void)
{
	char out[128];

	CHECK_EQ_STR(iotca_log_quote(out, sizeof(out), "hello world"),
	             "\"hello world\"");
	CHECK_EQ_STR(iotca_log_quote(out, sizeof(out), "say \"hi\""),
	             "\"say \\\"hi\\\"\"");
	CHECK_EQ_STR(iotca_log_quote(out, sizeof(out), "C:\\dir"),
	             "\"C:\\\\dir\"");
	CHECK_EQ_STR(iotca_log_quote(out, sizeof(out), "line1\nline2"),
	             "\"line1\\nline2\"");
	CHECK_EQ_STR(iotca_log_quote(out, sizeof(out), "a\tb"), "\"a\\tb\"");
	CHECK_EQ_STR(iotca_log_quote(out, sizeof(out), "cr\r"), "\"cr\\x0d\"");
	CHECK_EQ_STR(iotca_log_quote(out, sizeof(out), "\x01\x1f\x7f"),
	             "\"\\x01\\x1f\\x7f\"");
	CHECK_EQ_STR(iotca_log_quote(out, sizeof(out), "\x1b[31m"),
	             "\"\\x1b[31m\"");
	/* '=' would break key=value parsing, so it is quoted. */
	CHECK_EQ_STR(iotca_log_quote(out, sizeof(out), "k=v"), "\"k=v\"");
	/* Bytes >= 0x80 (UTF-8) are quoted but passed through. */
	CHECK_EQ_STR(iotca_log_quote(out, sizeof(out), "gr\xc3\xbc\xc3\x9f"),
	             "\"gr\xc3\xbc\xc3\x9f\"");
	CHECK_EQ_STR(iotca_log_quote(out, sizeof(out), " "), "\" \"");
	/* A quoted value that exactly fills the buffer is not cut. */
	CHECK_EQ_STR(iotca_log_quote(out, 8, "a b c"), "\"a b c\"");
	CHECK_EQ_STR(iotca_log_quote(out, 8, "a\"b"), "\"a\\\"b\"");
	CHECK_EQ_STR(iotca_log_quote(out, 8, "a b cd"), "\"a ...\"");
}

static void
test_quote_empty(void)
{
	char out[16];

	CHECK_EQ_STR(iotca_log_quote(out, sizeof(out), ""), "\"\"");
	CHECK_EQ_STR(iotca_log_quote(out, 8, ""), "\"\"");
}

/* Parses a quoted value back; returns its length or -1 if malformed. */
static int
unquote(const char *q, char *out, size_t n)
{
	size_t o = 0, len = strlen(q);
	const char *p, *end;
	unsigned int x;

	if (len < 2 || q[0] != '"' || q[len - 1] != '"')
		return -1;
	end = q + len - 1;
	for (p = q + 1; p < end; p++) {
		if (o + 1 >= n)
			return -1;
		if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == '"')
			return -1; /* must have been escaped */
		if (*p != '\\') {
			out[o++] = *p;
			continue;
		}
		if (++p >= end)
			return -1;
		if (*p == '"' || *p == '\\')
			out[o++] = *p;
		else if (*p == 'n')
			out[o++] = '\n';
		else if (*p == 't')
			out[o++] = '\t';
		else if (*p == 'x' && end - p > 2 &&
		         isxdigit((unsigned char)p[1]) &&
		         isxdigit((unsigned char)p[2]) &&
		         sscanf(p + 1, "%2x", &x) == 1) {
			out[o++] = (char)x;
			p += 2;
		} else
			return -1;
	}
	out[o] = '\0';
	return (int)o;
}

/* Random strings survive quote + unquote, and bare ones are safe. */
static void
test_quote_round_trip(void)
{
	char in[64], out[4 * 64 + 8], back[128];
	unsigned int seed = 12345;
	size_t len, i;
	int k;

	for (k = 0; k < 5000; k++) {
		len = (size_t)(k % 63);
		for (i = 0; i < len; i++) {
			seed = seed * 1103515245u + 12345u;
			/* Mostly letters, some specials and any byte. */
			in[i] = (char)((seed >> 16) % 4 == 0
			                   ? (seed >> 8) % 255 + 1
			                   : 'a' + (seed >> 8) % 26);
		}
		in[len] = '\0';
		iotca_log_quote(out, sizeof(out), in);
		if (out[0] != '"') {
			/* Bare: unchanged and nothing that needs quoting. */
			REQUIRE(strcmp(out, in) == 0);
			REQUIRE(strpbrk(out, " =\"\\") == NULL);
			for (i = 0; i < len; i++)
				REQUIRE((unsigned char)out[i] > 0x20 &&
				        (unsigned char)out[i] < 0x7f);
			continue;
		}
		REQUIRE(unquote(out, back, sizeof(back)) == (int)len);
		REQUIRE(memcmp(back, in, len) == 0);
	}
}

/* Small buffers: never written past n, always terminated, "..." marked. */
static void
test_quote_truncation(void)
{
	static const char *const inputs[] = {
	    "hello world, this is a long value",
	    "abcdefghijklmnopqrstuvwxyz0123456789",
	    "\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"",
	    "\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0c\x0e\x0f\x10",
	    "mixed \\ \n \t \x01 text to fill the buffer up",
	    "\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f",
	    "\t\t\t\t\t\t\t\t\t\t\n\n\n\n\n\n\n\n\n\n\\\\\\\\\\",
	    "a\tb \"q\" c\\d\ne \x7f f \x02 g\rh",
	    "",
	    "short",
	};
	char out[128], full[512], fullq[512], pre[140], tmp[140];
	size_t n, i, k, len, kept;

	for (i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
		iotca_log_quote(full, sizeof(full), inputs[i]);
		/* The quoted form, even for a value that is bare in full. */
		snprintf(fullq, sizeof(fullq), full[0] == '"' ? "%s" : "\"%s\"",
		         full);
		for (n = 0; n <= 64; n++) {
			memset(out, 'G', sizeof(out));
			iotca_log_quote(out, n, inputs[i]);
			/* Nothing written past n. */
			for (k = n; k < sizeof(out); k++)
				REQUIRE(out[k] == 'G');
			if (n == 0)
				continue;
			len = strnlen(out, n);
			REQUIRE(len < n);
			if (n < 8) {
				CHECK_EQ_INT(len, 0);
				continue;
			}
			/* Whatever fits is written whole. */
			if (strlen(full) < n) {
				CHECK_EQ_STR(out, full);
				continue;
			}
			/* Cut: '"', a prefix of the quoting, "...", '"'. */
			REQUIRE(len >= 5);
			REQUIRE(out[0] == '"');
			REQUIRE(strcmp(out + len - 4, "...\"") == 0);
			kept = len - 5;
			REQUIRE(strncmp(out, fullq, kept + 1) == 0);
			/* The kept part does not end in half an escape. */
			memcpy(pre, out, kept + 1);
			pre[kept + 1] = '"';
			pre[kept + 2] = '\0';
			REQUIRE(unquote(pre, tmp, sizeof(tmp)) >= 0);
		}
	}
}

/* The documented maximum holds any input, cut down to size. */
static void
test_quote_max(void)
{
	char big[2000], q[IOTCA_LOG_QUOTE_MAX];

	memset(big, ' ', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	iotca_log_quote(q, sizeof(q), big);
	CHECK(strlen(q) < sizeof(q));
	CHECK(strlen(q) > sizeof(q) - 10);
	CHECK(strcmp(q + strlen(q) - 4, "...\"") == 0);
}

int
main(void)
{
	RUN(test_line_format);
	RUN(test_line_without_fields);
	RUN(test_every_level_name);
	RUN(test_level_filtering);
	RUN(test_long_line_truncated);
	RUN(test_threads_do_not_interleave);
	RUN(test_level_parse);
	RUN(test_quote_bare);
	RUN(test_quote_escapes);
	RUN(test_quote_empty);
	RUN(test_quote_round_trip);
	RUN(test_quote_truncation);
	RUN(test_quote_max);
	return test_summary();
}
