/*
 * probe_http.c - the pure parts of lib/probe: the strict HTTP/1.x request
 * head parser and the Prometheus text format helpers. No I/O here, so the
 * fuzz target and unit tests reach all of it.
 */
#include "probe/probe.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------ request parser */

static int
http_is_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9');
}

/* RFC 9110 tchar: the bytes of a method or a header name. */
static int
http_is_tchar(unsigned char c)
{
	return http_is_alnum(c) ||
	       (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* Whether c may appear in the request line (SP and visible ASCII) or in
 * a header line (also HTAB and obs-text, bytes 0x80-0xFF). */
static int
http_byte_ok(unsigned char c, int request_line)
{
	if (c >= 0x20 && c <= 0x7e)
		return 1;
	if (request_line)
		return 0;
	return c == '\t' || c >= 0x80;
}

/*
 * Finds the CRLF that ends the line starting at pos, checking every byte
 * on the way. IOTCA_OK with *end at the CR; IOTCA_ENOENT when the data
 * ends first (the bytes so far are fine); IOTCA_EINVAL for a bare CR or
 * LF or a byte a line may not hold.
 */
static iotca_err
http_line_end(const char *data, size_t len, size_t pos, size_t lineno,
              size_t *end, iotca_errbuf *eb)
{
	size_t i;

	for (i = pos; i < len; i++) {
		unsigned char c = (unsigned char)data[i];

		if (c == '\r') {
			if (i + 1 == len)
				return IOTCA_ENOENT;
			if (data[i + 1] != '\n')
				return iotca_errbuf_set(
				    eb, IOTCA_EINVAL,
				    "line %zu: CR not followed by LF", lineno);
			*end = i;
			return IOTCA_OK;
		}
		if (c == '\n')
			return iotca_errbuf_set(
			    eb, IOTCA_EINVAL,
			    "line %zu: LF without CR; lines "
			    "end in CRLF",
			    lineno);
		if (!http_byte_ok(c, lineno == 1))
			return iotca_errbuf_set(eb, IOTCA_EINVAL,
			                        "line %zu: byte 0x%02x is not "
			                        "allowed there",
			                        lineno, c);
	}
	return IOTCA_ENOENT;
}

/* Parses "METHOD SP target SP HTTP/1.x" (n bytes, all 0x20-0x7e). */
static iotca_err
http_request_line(const char *s, size_t n, iotca_probe_request *r,
                  iotca_errbuf *eb)
{
	size_t m = 0, t, tlen = 0, plen;

	while (m < n && http_is_tchar((unsigned char)s[m]))
		m++;
	if (m == 0 || m == n || s[m] != ' ')
		return iotca_errbuf_set(eb, IOTCA_EINVAL,
		                        "the request line is not \"METHOD "
		                        "/path HTTP/1.x\"");
	t = m + 1;
	while (t + tlen < n && s[t + tlen] != ' ')
		tlen++;
	if (tlen == 0 || s[t] != '/')
		return iotca_errbuf_set(eb, IOTCA_EINVAL,
		                        "the request target is not a path "
		                        "starting with '/'");
	if (n - (t + tlen) != 9 || memcmp(s + t + tlen, " HTTP/1.", 8) != 0 ||
	    (s[n - 1] != '0' && s[n - 1] != '1'))
		return iotca_errbuf_set(eb, IOTCA_EINVAL,
		                        "the request line does not end in "
		                        "\" HTTP/1.0\" or \" HTTP/1.1\"");
	for (plen = 0; plen < tlen && s[t + plen] != '?'; plen++)
		;
	if (plen >= IOTCA_PROBE_PATH_MAX)
		return iotca_errbuf_set(eb, IOTCA_ETOOBIG,
		                        "the path is longer than %d bytes",
		                        IOTCA_PROBE_PATH_MAX - 1);
	if (m == 3 && memcmp(s, "GET", 3) == 0)
		r->method = IOTCA_PROBE_GET;
	else if (m == 4 && memcmp(s, "HEAD", 4) == 0)
		r->method = IOTCA_PROBE_HEAD;
	else
		r->method = IOTCA_PROBE_OTHER;
	r->minor_version = s[n - 1] - '0';
	memcpy(r->path, s + t, plen);
	r->path[plen] = '\0';
	return IOTCA_OK;
}

/* Checks "name:value" (n > 0 bytes, already checked one by one, not
 * starting with SP or HTAB). */
static iotca_err
http_header_line(const char *s, size_t n, size_t lineno, iotca_errbuf *eb)
{
	size_t i = 0;

	while (i < n && http_is_tchar((unsigned char)s[i]))
		i++;
	if (i == 0 || i == n || s[i] != ':')
		return iotca_errbuf_set(eb, IOTCA_EINVAL,
		                        "line %zu: not a header \"name: "
		                        "value\"",
		                        lineno);
	return IOTCA_OK;
}

iotca_err
iotca_probe_parse_request(const char *data, size_t len,
                          iotca_probe_request *req, iotca_errbuf *eb)
{
	iotca_probe_request r;
	size_t pos = 0, end = 0, lineno = 1;
	iotca_err rc;

	for (;;) {
		/* Refused as soon as seen, not only once the line is whole. */
		if (lineno > 1 && pos < len &&
		    (data[pos] == ' ' || data[pos] == '\t'))
			return iotca_errbuf_set(eb, IOTCA_EINVAL,
			                        "line %zu: folded header lines "
			                        "are not accepted",
			                        lineno);
		if ((rc = http_line_end(data, len, pos, lineno, &end, eb)) !=
		    IOTCA_OK)
			return rc;
		if (lineno == 1) {
			rc = http_request_line(data, end, &r, eb);
		} else if (end == pos) {
			r.len = end + 2;
			*req = r;
			return IOTCA_OK;
		} else {
			rc =
			    http_header_line(data + pos, end - pos, lineno, eb);
		}
		if (rc != IOTCA_OK)
			return rc;
		pos = end + 2;
		lineno++;
	}
}

/* ------------------------------------------------ Prometheus text format */

static int
metric_name_valid(const char *s)
{
	size_t i;

	if (s == NULL || s[0] == '\0' || (s[0] >= '0' && s[0] <= '9'))
		return 0;
	for (i = 0; s[i] != '\0'; i++)
		if (!http_is_alnum((unsigned char)s[i]) && s[i] != '_' &&
		    s[i] != ':')
			return 0;
	return 1;
}

/* Checks 'name="value",name="value"' with values escaped as \\ \" \n. */
static int
metric_labels_valid(const char *s)
{
	size_t i = 0;

	for (;;) {
		size_t start = i;

		while (http_is_alnum((unsigned char)s[i]) || s[i] == '_')
			i++;
		if (i == start || (s[start] >= '0' && s[start] <= '9') ||
		    s[i] != '=' || s[i + 1] != '"')
			return 0;
		for (i += 2; s[i] != '"'; i++) {
			if (s[i] == '\0' || s[i] == '\n')
				return 0;
			if (s[i] == '\\') {
				if (s[i + 1] != '\\' && s[i + 1] != '"' &&
				    s[i + 1] != 'n')
					return 0;
				i++;
			}
		}
		i++;
		if (s[i] == '\0')
			return 1;
		if (s[i] != ',')
			return 0;
		i++;
	}
}

/* HELP text with '\' and line feeds escaped. */
static iotca_err
metric_help(iotca_buf *out, const char *name, const char *help)
{
	const char *p;
	iotca_err rc;

	if ((rc = iotca_buf_printf(out, "# HELP %s ", name)) != IOTCA_OK)
		return rc;
	for (p = help; *p != '\0' && rc == IOTCA_OK; p++) {
		if (*p == '\\')
			rc = iotca_buf_append(out, "\\\\", 2);
		else if (*p == '\n')
			rc = iotca_buf_append(out, "\\n", 2);
		else
			rc = iotca_buf_append(out, p, 1);
	}
	return rc != IOTCA_OK ? rc : iotca_buf_append(out, "\n", 1);
}

/* Validates, then appends the lines; on failure out is as it was. */
static iotca_err
metric_emit(iotca_buf *out, const char *name, const char *help,
            const char *type, const char *labels, const char *value)
{
	size_t saved = out->len;
	iotca_err rc;

	if (!metric_name_valid(name))
		return IOTCA_EINVAL;
	if (help != NULL && (type == NULL || (strcmp(type, "counter") != 0 &&
	                                      strcmp(type, "gauge") != 0 &&
	                                      strcmp(type, "untyped") != 0)))
		return IOTCA_EINVAL;
	if (labels != NULL && labels[0] != '\0' && !metric_labels_valid(labels))
		return IOTCA_EINVAL;
	rc = IOTCA_OK;
	if (help != NULL && (rc = metric_help(out, name, help)) == IOTCA_OK)
		rc = iotca_buf_printf(out, "# TYPE %s %s\n", name, type);
	if (rc == IOTCA_OK && labels != NULL && labels[0] != '\0')
		rc = iotca_buf_printf(out, "%s{%s} %s\n", name, labels, value);
	else if (rc == IOTCA_OK)
		rc = iotca_buf_printf(out, "%s %s\n", name, value);
	if (rc != IOTCA_OK) {
		out->len = saved;
		if (out->data != NULL)
			out->data[saved] = '\0';
	}
	return rc;
}

iotca_err
iotca_probe_metric(iotca_buf *out, const char *name, const char *help,
                   const char *type, const char *labels, double value)
{
	char v[40];

	if (isnan(value))
		snprintf(v, sizeof(v), "NaN");
	else if (isinf(value))
		snprintf(v, sizeof(v), "%s", value > 0 ? "+Inf" : "-Inf");
	else {
		/* The shortest of %.15g and %.17g that reads back exactly. */
		snprintf(v, sizeof(v), "%.15g", value);
		if (strtod(v, NULL) != value)
			snprintf(v, sizeof(v), "%.17g", value);
	}
	return metric_emit(out, name, help, type, labels, v);
}

iotca_err
iotca_probe_metric_u64(iotca_buf *out, const char *name, const char *help,
                       const char *type, const char *labels, uint64_t value)
{
	char v[24];

	snprintf(v, sizeof(v), "%" PRIu64, value);
	return metric_emit(out, name, help, type, labels, v);
}
