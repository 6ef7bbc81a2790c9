/*
 * log.c - structured logging to stderr.
 */
#include "log/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 4096

static _Atomic int log_min_level = IOTCA_LOG_INFO;

static const char *const log_level_names[] = {
    [IOTCA_LOG_DEBUG] = "debug",
    [IOTCA_LOG_INFO] = "info",
    [IOTCA_LOG_WARN] = "warn",
    [IOTCA_LOG_ERROR] = "error",
};

void
iotca_log_set_level(iotca_log_level level)
{
	atomic_store(&log_min_level, (int)level);
}

int
iotca_log_level_parse(const char *s, iotca_log_level *out)
{
	if (strcasecmp(s, "debug") == 0)
		*out = IOTCA_LOG_DEBUG;
	else if (strcasecmp(s, "info") == 0)
		*out = IOTCA_LOG_INFO;
	else if (strcasecmp(s, "warn") == 0 || strcasecmp(s, "warning") == 0)
		*out = IOTCA_LOG_WARN;
	else if (strcasecmp(s, "error") == 0)
		*out = IOTCA_LOG_ERROR;
	else
		return -1;
	return 0;
}

int
iotca_log_enabled(iotca_log_level level)
{
	return (int)level >= atomic_load(&log_min_level);
}

void
iotca_log(iotca_log_level level, const char *event, const char *fields, ...)
{
	char line[LOG_LINE_MAX];
	struct timespec ts;
	struct tm tm;
	size_t off;
	int n;
	va_list ap;

	if ((unsigned)level > IOTCA_LOG_ERROR)
		level = IOTCA_LOG_ERROR;
	if (!iotca_log_enabled(level))
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(
	    line, sizeof(line),
	    "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s event=%s",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
	    tm.tm_sec, ts.tv_nsec / 1000000L, log_level_names[level], event);
	off = n > 0 ? (size_t)n : 0;
	if (fields != NULL && fields[0] != '\0' && off < sizeof(line) - 2) {
		line[off++] = ' ';
		va_start(ap, fields);
		n = vsnprintf(line + off, sizeof(line) - off, fields, ap);
		va_end(ap);
		if (n > 0)
			off += (size_t)n;
	}
	if (off > sizeof(line) - 2)
		off = sizeof(line) - 2; /* truncated: keep the newline */
	line[off++] = '\n';
	/* One write per line: lines from threads do not interleave. */
	if (write(STDERR_FILENO, line, off) < 0)
		return;
}

static int
log_bare_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || strchr("._:/@+-,", c) != NULL;
}

/* Bytes the escaped form of s takes between the quotes. */
static size_t
log_escaped_len(const unsigned char *p)
{
	size_t len = 0;

	for (; *p; p++) {
		if (*p == '"' || *p == '\\' || *p == '\n' || *p == '\t')
			len += 2;
		else if (*p < 0x20 || *p == 0x7f)
			len += 4;
		else
			len += 1;
	}
	return len;
}

const char *
iotca_log_quote(char *out, size_t n, const char *s)
{
	const unsigned char *p;
	size_t o = 0;
	int bare = s[0] != '\0';
	int whole; /* the quoted value fits: never cut */
	char esc[8];
	size_t elen;

	if (n < 8) {
		if (n > 0)
			out[0] = '\0';
		return out;
	}
	for (p = (const unsigned char *)s; *p && bare; p++)
		bare = log_bare_char(*p);
	if (bare && strlen(s) < n) {
		memcpy(out, s, strlen(s) + 1);
		return out;
	}
	whole = log_escaped_len((const unsigned char *)s) + 3 <= n;
	out[o++] = '"';
	for (p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			elen = (size_t)snprintf(esc, sizeof(esc), "\\%c", *p);
		else if (*p == '\n')
			elen = (size_t)snprintf(esc, sizeof(esc), "\\n");
		else if (*p == '\t')
			elen = (size_t)snprintf(esc, sizeof(esc), "\\t");
		else if (*p < 0x20 || *p == 0x7f)
			elen =
			    (size_t)snprintf(esc, sizeof(esc), "\\x%02x", *p);
		else {
			esc[0] = (char)*p;
			elen = 1;
		}
		if (!whole && o + elen + 5 > n) { /* room for ..." and NUL */
			memcpy(out + o, "...", 3);
			o += 3;
			break;
		}
		memcpy(out + o, esc, elen);
		o += elen;
	}
	out[o++] = '"';
	out[o] = '\0';
	return out;
}
