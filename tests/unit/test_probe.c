/*
 * test_probe.c - lib/probe: the request parser on exact-size copies of
 * valid, incomplete and malformed heads; the Prometheus text helpers byte
 * for byte; and a running probe on 127.0.0.1:0 over real sockets: every
 * path and status, a readiness flip, HEAD, requests in pieces, an
 * oversized one, a client that stalls (another is served meanwhile; the
 * staller gets 408 after the timeout), the connection cap, stop with a
 * client connected, bad addresses, and curl as a client nobody here wrote.
 */
#include "probe/probe.h"

#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "test.h"

/* ------------------------------------------------ parser */

/* Parses an exact-size malloc'd copy, so ASan sees any read past len. */
static iotca_err
parse_n(const char *s, size_t n, iotca_probe_request *req, iotca_errbuf *eb)
{
	char *copy = malloc(n > 0 ? n : 1);
	iotca_err rc;

	if (copy == NULL)
		return IOTCA_ENOMEM;
	memcpy(copy, s, n);
	iotca_errbuf_clear(eb);
	rc = iotca_probe_parse_request(copy, n, req, eb);
	free(copy);
	return rc;
}

static iotca_err
parse(const char *s, iotca_probe_request *req, iotca_errbuf *eb)
{
	return parse_n(s, strlen(s), req, eb);
}

static void
test_parse_valid(void)
{
	static const char kube[] = "GET /healthz HTTP/1.1\r\n"
	                           "Host: 10.0.0.7:8080\r\n"
	                           "User-Agent: kube-probe/1.27\r\n"
	                           "Accept: */*\r\n"
	                           "Connection: close\r\n\r\n";
	static const char prom[] =
	    "GET /metrics HTTP/1.1\r\nHost: edge-0:9100\r\n"
	    "User-Agent: Prometheus/2.45.0\r\n"
	    "Accept: application/openmetrics-text;version=1.0.0,"
	    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1\r\n"
	    "Accept-Encoding: gzip\r\nX-Prometheus-Scrape-Timeout-Seconds: "
	    "10\r\n\r\n";
	iotca_probe_request r;
	iotca_errbuf eb;

	CHECK_EQ_INT(parse("GET /healthz HTTP/1.1\r\n\r\n", &r, &eb), IOTCA_OK);
	CHECK_EQ_INT(r.method, IOTCA_PROBE_GET);
	CHECK_EQ_STR(r.path, "/healthz");
	CHECK_EQ_INT(r.minor_version, 1);
	CHECK_EQ_INT(r.len, 25);

	CHECK_EQ_INT(parse(kube, &r, &eb), IOTCA_OK);
	CHECK_EQ_STR(r.path, "/healthz");
	CHECK_EQ_INT(r.len, strlen(kube));
	CHECK_EQ_INT(parse(prom, &r, &eb), IOTCA_OK);
	CHECK_EQ_STR(r.path, "/metrics");
	CHECK_EQ_INT(r.len, strlen(prom));

	/* The query string is not part of the path; HTTP/1.0 is fine. */
	CHECK_EQ_INT(
	    parse("GET /readyz?verbose=1&x=%20 HTTP/1.0\r\n\r\n", &r, &eb),
	    IOTCA_OK);
	CHECK_EQ_STR(r.path, "/readyz");
	CHECK_EQ_INT(r.minor_version, 0);
	CHECK_EQ_INT(parse("GET /? HTTP/1.1\r\n\r\n", &r, &eb), IOTCA_OK);
	CHECK_EQ_STR(r.path, "/");

	/* Methods: HEAD, others (405 later), case matters. */
	CHECK_EQ_INT(parse("HEAD /metrics HTTP/1.1\r\n\r\n", &r, &eb),
	             IOTCA_OK);
	CHECK_EQ_INT(r.method, IOTCA_PROBE_HEAD);
	CHECK_EQ_INT(parse("POST /healthz HTTP/1.1\r\n\r\n", &r, &eb),
	             IOTCA_OK);
	CHECK_EQ_INT(r.method, IOTCA_PROBE_OTHER);
	CHECK_EQ_INT(parse("get /healthz HTTP/1.1\r\n\r\n", &r, &eb), IOTCA_OK);
	CHECK_EQ_INT(r.method, IOTCA_PROBE_OTHER);
	CHECK_EQ_INT(parse("GETX /healthz HTTP/1.1\r\n\r\n", &r, &eb),
	             IOTCA_OK);
	CHECK_EQ_INT(r.method, IOTCA_PROBE_OTHER);

	/* Header values: empty, tabs, obs-text (UTF-8 bytes). */
	CHECK_EQ_INT(parse("GET / HTTP/1.1\r\nX-Empty:\r\nX-Tab:\ta\tb\r\n"
	                   "X-Name: caf\xc3\xa9\r\n\r\n",
	                   &r, &eb),
	             IOTCA_OK);

	/* A body (or anything) after the blank line is not looked at. */
	CHECK_EQ_INT(parse("GET /healthz HTTP/1.1\r\nContent-Length: 3\r\n\r\n"
	                   "a\nb\x01",
	                   &r, &eb),
	             IOTCA_OK);
	CHECK_EQ_INT(r.len, 44);
}

static void
test_parse_incomplete(void)
{
	static const char req[] =
	    "GET /metrics?a=b HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n";
	iotca_probe_request r;
	iotca_errbuf eb;
	size_t n;

	/* Every proper prefix of a valid head is "need more", never an
	 * error; the whole is complete. */
	for (n = 0; n < strlen(req); n++) {
		r.len = 12345;
		if (parse_n(req, n, &r, &eb) != IOTCA_ENOENT) {
			fprintf(stderr, "prefix %zu: not ENOENT\n", n);
			CHECK(0);
		}
		CHECK_EQ_INT(r.len, 12345); /* untouched */
	}
	CHECK_EQ_INT(parse_n(req, n, &r, &eb), IOTCA_OK);
	CHECK_EQ_INT(r.len, strlen(req));
}

static void
test_parse_malformed(void)
{
	static const char *const bad[] = {
	    "GET /healthz HTTP/1.1\n\n",             /* bare LF */
	    "GET /healthz HTTP/1.1\r\n\n",           /* bare LF at the end */
	    "GET /healthz HTTP/1.1\rX\r\n\r\n",      /* CR without LF */
	    "\r\nGET /healthz HTTP/1.1\r\n\r\n",     /* leading blank line */
	    "GET  /healthz HTTP/1.1\r\n\r\n",        /* two spaces */
	    "GET /healthz  HTTP/1.1\r\n\r\n",        /* two spaces */
	    "GET /healthz\r\n\r\n",                  /* HTTP/0.9 style */
	    "GET /healthz HTTP/1.1 \r\n\r\n",        /* trailing space */
	    "GET /healthz HTTP/2.0\r\n\r\n",         /* version */
	    "GET /healthz HTTP/1.2\r\n\r\n",         /* version */
	    "GET /healthz http/1.1\r\n\r\n",         /* version case */
	    "GET http://h/healthz HTTP/1.1\r\n\r\n", /* absolute form */
	    "OPTIONS * HTTP/1.1\r\n\r\n",            /* asterisk form */
	    " /healthz HTTP/1.1\r\n\r\n",            /* no method */
	    "G(T /healthz HTTP/1.1\r\n\r\n",         /* not a token */
	    "GET /a\tb HTTP/1.1\r\n\r\n",            /* tab in the line */
	    "GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n",     /* non-ASCII target */
	    "GET / HTTP/1.1\r\nHost x\r\n\r\n",      /* no colon */
	    "GET / HTTP/1.1\r\nHost : x\r\n\r\n",    /* space before colon */
	    "GET / HTTP/1.1\r\n: x\r\n\r\n",         /* empty name */
	    "GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n",  /* folded */
	    "GET / HTTP/1.1\r\nA: b\x01\r\n\r\n",    /* control byte */
	    "GET / HTTP/1.1\r\nA: b\x7f\r\n\r\n",    /* DEL */
	};
	iotca_probe_request r;
	iotca_errbuf eb;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		iotca_err rc = parse(bad[i], &r, &eb);
		if (rc != IOTCA_EINVAL)
			fprintf(stderr, "bad[%zu]: %d\n", i, (int)rc);
		CHECK_EQ_INT(rc, IOTCA_EINVAL);
		CHECK(eb.msg[0] != '\0');
	}
	/* A NUL byte, and bytes the parser must refuse before any CRLF (a
	 * TLS ClientHello sent to the plain port). */
	CHECK_EQ_INT(parse_n("GET /\0 HTTP/1.1\r\n\r\n", 20, &r, &eb),
	             IOTCA_EINVAL);
	CHECK_EQ_INT(parse_n("\x16\x03\x01\x02\x00", 5, &r, &eb), IOTCA_EINVAL);
	CHECK_EQ_INT(parse("GET / HTTP/1.1\n", &r, &eb), IOTCA_EINVAL);
	CHECK_CONTAINS(eb.msg, "LF without CR");
	CHECK_EQ_INT(parse("GET / HTTP/1.1\r\nA: b\r\n c", &r, &eb),
	             IOTCA_EINVAL);
	CHECK_CONTAINS(eb.msg, "line 3");
}

static void
test_parse_path_cap(void)
{
	char req[IOTCA_PROBE_PATH_MAX + 64];
	char path[IOTCA_PROBE_PATH_MAX + 1];
	iotca_probe_request r;
	iotca_errbuf eb;

	memset(path, 'a', sizeof(path));
	path[0] = '/';
	path[IOTCA_PROBE_PATH_MAX - 1] = '\0'; /* the longest that fits */
	snprintf(req, sizeof(req), "GET %s?q HTTP/1.1\r\n\r\n", path);
	CHECK_EQ_INT(parse(req, &r, &eb), IOTCA_OK);
	CHECK_EQ_INT(strlen(r.path), IOTCA_PROBE_PATH_MAX - 1);
	path[IOTCA_PROBE_PATH_MAX - 1] = 'a';
	path[IOTCA_PROBE_PATH_MAX] = '\0'; /* one more */
	snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\n\r\n", path);
	CHECK_EQ_INT(parse(req, &r, &eb), IOTCA_ETOOBIG);
	CHECK_CONTAINS(eb.msg, "longer than 255");
}

/* ------------------------------------------------ Prometheus text */

static void
test_metric_text(void)
{
	iotca_buf b;

	iotca_buf_init(&b, 4096);
	CHECK_EQ_INT(
	    iotca_probe_metric_u64(&b, "iotca_edge_auth_failures_total",
	                           "Refused device authentications.", "counter",
	                           "reason=\"unknown_sn\"", 3),
	    IOTCA_OK);
	CHECK_EQ_INT(
	    iotca_probe_metric_u64(&b, "iotca_edge_auth_failures_total", NULL,
	                           NULL, "reason=\"bad_signature\"", 0),
	    IOTCA_OK);
	CHECK_EQ_INT(iotca_probe_metric(&b, "iotca_edge_sessions",
	                                "Sessions\\now\nopen.", "gauge", NULL,
	                                42),
	             IOTCA_OK);
	CHECK_EQ_STR(b.data,
	             "# HELP iotca_edge_auth_failures_total Refused device "
	             "authentications.\n"
	             "# TYPE iotca_edge_auth_failures_total counter\n"
	             "iotca_edge_auth_failures_total{reason=\"unknown_sn\"} 3\n"
	             "iotca_edge_auth_failures_total{reason=\"bad_signature\"} "
	             "0\n"
	             "# HELP iotca_edge_sessions Sessions\\\\now\\nopen.\n"
	             "# TYPE iotca_edge_sessions gauge\n"
	             "iotca_edge_sessions 42\n");
	iotca_buf_free(&b);
}

/* The sample line for one double value. */
static void
check_value(double v, const char *want)
{
	iotca_buf b;
	char line[64];

	iotca_buf_init(&b, 256);
	snprintf(line, sizeof(line), "x %s\n", want);
	CHECK_EQ_INT(iotca_probe_metric(&b, "x", NULL, NULL, "", v), IOTCA_OK);
	CHECK_EQ_STR(b.data, line);
	iotca_buf_free(&b);
}

static void
test_metric_values(void)
{
	iotca_buf b;

	check_value(0, "0");
	check_value(-2, "-2");
	check_value(1.5, "1.5");
	check_value(0.1, "0.1");
	check_value(1e300, "1e+300");
	check_value(9007199254740993.0, "9007199254740992");
	check_value(0.30000000000000004, "0.30000000000000004");
	check_value(NAN, "NaN");
	check_value(INFINITY, "+Inf");
	check_value(-INFINITY, "-Inf");
	iotca_buf_init(&b, 256);
	CHECK_EQ_INT(
	    iotca_probe_metric_u64(&b, "c", NULL, NULL, NULL, UINT64_MAX),
	    IOTCA_OK);
	CHECK_EQ_STR(b.data, "c 18446744073709551615\n");
	iotca_buf_free(&b);
}

static void
test_metric_refused(void)
{
	static const char *const bad_labels[] = {
	    "reason",   "reason=x",       "reason=\"x", "reason=\"x\",",
	    "1a=\"x\"", "a=\"x\"b=\"y\"", "a=\"x\ny\"", "a=\"\\t\"",
	    "=\"x\"",   "a-b=\"x\"",
	};
	iotca_buf b;
	size_t i;

	iotca_buf_init(&b, 64);
	CHECK_EQ_INT(iotca_probe_metric(&b, "ok", NULL, NULL, NULL, 1),
	             IOTCA_OK);
	CHECK_EQ_INT(iotca_probe_metric(&b, "1abc", NULL, NULL, NULL, 1),
	             IOTCA_EINVAL);
	CHECK_EQ_INT(iotca_probe_metric(&b, "a-b", NULL, NULL, NULL, 1),
	             IOTCA_EINVAL);
	CHECK_EQ_INT(iotca_probe_metric(&b, "", NULL, NULL, NULL, 1),
	             IOTCA_EINVAL);
	CHECK_EQ_INT(iotca_probe_metric(&b, "a", "h", "summary", NULL, 1),
	             IOTCA_EINVAL);
	CHECK_EQ_INT(iotca_probe_metric(&b, "a", "h", NULL, NULL, 1),
	             IOTCA_EINVAL);
	for (i = 0; i < sizeof(bad_labels) / sizeof(bad_labels[0]); i++) {
		if (iotca_probe_metric(&b, "a", NULL, NULL, bad_labels[i], 1) !=
		    IOTCA_EINVAL) {
			fprintf(stderr, "labels accepted: %s\n", bad_labels[i]);
			CHECK(0);
		}
	}
	CHECK_EQ_INT(iotca_probe_metric(&b, "a:b_c", NULL, NULL,
	                                "a=\"q\\\"\\\\\\n\",b_2=\"\"", 1),
	             IOTCA_OK);
	/* Past the cap nothing is appended, not even the HELP line. */
	CHECK_EQ_INT(iotca_probe_metric(&b, "long_name_for_the_cap", "help",
	                                "gauge", NULL, 1),
	             IOTCA_ETOOBIG);
	CHECK_EQ_STR(b.data, "ok 1\na:b_c{a=\"q\\\"\\\\\\n\",b_2=\"\"} 1\n");
	iotca_buf_free(&b);
}

/* ------------------------------------------------ a running probe */

static atomic_int ready_flag;
static atomic_int metrics_calls;

static int
test_ready(void *arg)
{
	CHECK(arg == &ready_flag);
	return atomic_load(&ready_flag);
}

static void
test_metrics(iotca_buf *out, void *arg)
{
	CHECK(arg == &ready_flag);
	atomic_fetch_add(&metrics_calls, 1);
	iotca_probe_metric_u64(out, "test_up", "Always 1.", "gauge", NULL, 1);
	iotca_probe_metric_u64(out, "test_events_total", "Events.", "counter",
	                       "kind=\"a\"", 7);
	iotca_probe_metric_u64(out, "test_events_total", NULL, NULL,
	                       "kind=\"b\"", 9);
}

static const char metrics_body[] = "# HELP test_up Always 1.\n"
                                   "# TYPE test_up gauge\n"
                                   "test_up 1\n"
                                   "# HELP test_events_total Events.\n"
                                   "# TYPE test_events_total counter\n"
                                   "test_events_total{kind=\"a\"} 7\n"
                                   "test_events_total{kind=\"b\"} 9\n";

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A blocking loopback connection whose reads time out after 5 s. */
static int
tcp_connect(int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	struct timeval tv = {.tv_sec = 5};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int
send_all(int fd, const char *s, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
		if (w <= 0)
			return -1;
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Reads to EOF (or an error or the 5 s timeout); a malloc'd string. */
static char *
read_all(int fd)
{
	size_t len = 0, size = 1024;
	char *p = malloc(size), *np;
	ssize_t n;

	if (p == NULL)
		return NULL;
	for (;;) {
		if (size - len < 512) {
			if ((np = realloc(p, size * 2)) == NULL)
				break;
			p = np;
			size *= 2;
		}
		n = recv(fd, p + len, size - len - 1, 0);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	p[len] = '\0';
	return p;
}

/* One request on a fresh connection; the whole response. */
static char *
exchange(int port, const char *req)
{
	int fd = tcp_connect(port);
	char *resp = NULL;

	if (fd < 0)
		return NULL;
	if (send_all(fd, req, strlen(req)) == 0)
		resp = read_all(fd);
	close(fd);
	return resp;
}

static int
status_of(const char *resp)
{
	if (resp == NULL || strncmp(resp, "HTTP/1.1 ", 9) != 0)
		return -1;
	return atoi(resp + 9);
}

static const char *
body_of(const char *resp)
{
	const char *p = resp != NULL ? strstr(resp, "\r\n\r\n") : NULL;

	return p != NULL ? p + 4 : "(no body)";
}

/* Checks status, Connection: close, an exact Content-Length and body. */
static void
check_response(const char *resp, int status, const char *body)
{
	char cl[64];

	CHECK_EQ_INT(status_of(resp), status);
	CHECK_CONTAINS(resp, "\r\nConnection: close\r\n");
	snprintf(cl, sizeof(cl), "\r\nContent-Length: %zu\r\n", strlen(body));
	CHECK_CONTAINS(resp, cl);
	CHECK_EQ_STR(body_of(resp), body);
}

static iotca_probe *probe;
static int probe_port;

static void
test_paths(void)
{
	char *r;

	atomic_store(&ready_flag, 0);
	r = exchange(probe_port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
	check_response(r, 200, "ok\n");
	CHECK_CONTAINS(r, "\r\nContent-Type: text/plain; charset=utf-8\r\n");
	free(r);
	r = exchange(probe_port, "GET /readyz HTTP/1.1\r\n\r\n");
	check_response(r, 503, "not ready\n");
	free(r);
	atomic_store(&ready_flag, 1);
	r = exchange(probe_port, "GET /readyz HTTP/1.0\r\n\r\n");
	check_response(r, 200, "ready\n");
	free(r);
	atomic_store(&ready_flag, 0);
	r = exchange(probe_port, "GET /readyz?x=1 HTTP/1.1\r\n\r\n");
	check_response(r, 503, "not ready\n");
	free(r);
	r = exchange(probe_port, "GET /metrics HTTP/1.1\r\n\r\n");
	check_response(r, 200, metrics_body);
	CHECK_CONTAINS(r, "\r\nContent-Type: text/plain; version=0.0.4; "
	                  "charset=utf-8\r\n");
	free(r);
	r = exchange(probe_port, "GET /nothing HTTP/1.1\r\n\r\n");
	check_response(r, 404, "not found\n");
	free(r);
	r = exchange(probe_port, "GET /healthz/ HTTP/1.1\r\n\r\n");
	check_response(r, 404, "not found\n");
	free(r);
	r = exchange(probe_port, "POST /healthz HTTP/1.1\r\n"
	                         "Content-Length: 2\r\n\r\nhi");
	check_response(r, 405, "method not allowed\n");
	CHECK_CONTAINS(r, "\r\nAllow: GET, HEAD\r\n");
	free(r);
	r = exchange(probe_port, "GET /healthz\r\n\r\n");
	check_response(r, 400, "bad request\n");
	free(r);
	r = exchange(probe_port, "GET /healthz HTTP/1.1\n\n");
	check_response(r, 400, "bad request\n");
	free(r);
}

static void
test_head(void)
{
	char cl[64], *r;
	int before = atomic_load(&metrics_calls);

	r = exchange(probe_port, "HEAD /metrics HTTP/1.1\r\n\r\n");
	CHECK_EQ_INT(status_of(r), 200);
	snprintf(cl, sizeof(cl), "\r\nContent-Length: %zu\r\n",
	         strlen(metrics_body));
	CHECK_CONTAINS(r, cl);
	CHECK_EQ_STR(body_of(r), "");
	CHECK_EQ_INT(atomic_load(&metrics_calls), before + 1);
	free(r);
	r = exchange(probe_port, "HEAD /healthz HTTP/1.1\r\n\r\n");
	CHECK_EQ_INT(status_of(r), 200);
	CHECK_CONTAINS(r, "\r\nContent-Length: 3\r\n");
	CHECK_EQ_STR(body_of(r), "");
	free(r);
}

/* A request written a few bytes at a time, with pauses. */
static void
test_in_pieces(void)
{
	static const char req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
	int one = 1, fd = tcp_connect(probe_port);
	size_t i;
	char *r;

	REQUIRE(fd >= 0);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	for (i = 0; i < sizeof(req) - 1; i += 5) {
		size_t n = sizeof(req) - 1 - i < 5 ? sizeof(req) - 1 - i : 5;
		CHECK_EQ_INT(send_all(fd, req + i, n), 0);
		usleep(10000);
	}
	r = read_all(fd);
	check_response(r, 200, "ok\n");
	free(r);
	close(fd);
}

/*
 * Over the 4 KiB cap: 400. The client is still sending (48 KiB in 4 KiB
 * pieces) when the probe answers: every send must succeed (the probe
 * drains instead of closing, which would reset the connection) and the
 * client then reads the 400.
 */
static void
test_oversized(void)
{
	size_t n = 12 * IOTCA_PROBE_MAX_REQUEST, off;
	char *req = malloc(n + 1), *r;
	int fd, ok = 1;

	REQUIRE(req != NULL);
	memcpy(req, "GET /healthz HTTP/1.1\r\nX-Big: ", 30);
	memset(req + 30, 'b', n - 30);
	req[n] = '\0';
	fd = tcp_connect(probe_port);
	REQUIRE(fd >= 0);
	for (off = 0; off < n; off += IOTCA_PROBE_MAX_REQUEST) {
		ok &= send_all(fd, req + off, IOTCA_PROBE_MAX_REQUEST) == 0;
		usleep(20000);
	}
	CHECK(ok);
	r = read_all(fd);
	close(fd);
	check_response(r, 400, "bad request\n");
	free(r);
	/* Exactly at the cap is still served. */
	memset(req + 30, 'b', IOTCA_PROBE_MAX_REQUEST - 34);
	memcpy(req + IOTCA_PROBE_MAX_REQUEST - 4, "\r\n\r\n", 5);
	CHECK_EQ_INT(strlen(req), IOTCA_PROBE_MAX_REQUEST);
	r = exchange(probe_port, req);
	check_response(r, 200, "ok\n");
	free(r);
	free(req);
}

/* One client stalls mid-request: another is served at once; the staller
 * gets 408 and the close after the timeout; a silent one just the close.
 */
static void
test_slow_client(void)
{
	int64_t t0, t_other, t_slow;
	int slow = tcp_connect(probe_port), silent = tcp_connect(probe_port);
	char *r;

	REQUIRE(slow >= 0 && silent >= 0);
	t0 = now_ms();
	CHECK_EQ_INT(send_all(slow, "GET /heal", 9), 0);
	usleep(50000);
	r = exchange(probe_port, "GET /healthz HTTP/1.1\r\n\r\n");
	t_other = now_ms() - t0;
	check_response(r, 200, "ok\n");
	free(r);
	CHECK(t_other < 1000);
	r = read_all(slow);
	t_slow = now_ms() - t0;
	check_response(r, 408, "request timeout\n");
	CHECK(t_slow >= IOTCA_PROBE_TIMEOUT_MS - 100);
	CHECK(t_slow < IOTCA_PROBE_TIMEOUT_MS + 1500);
	free(r);
	r = read_all(silent);
	CHECK_EQ_STR(r, "");
	CHECK(now_ms() - t0 < IOTCA_PROBE_TIMEOUT_MS + 1500);
	free(r);
	close(slow);
	close(silent);
}

/* With every slot taken, a new client waits in the backlog; it is served
 * as soon as one slot frees. */
static void
test_connection_cap(void)
{
	int fds[IOTCA_PROBE_MAX_CLIENTS], extra, i;
	struct pollfd pfd;
	char *r;

	for (i = 0; i < IOTCA_PROBE_MAX_CLIENTS; i++) {
		fds[i] = tcp_connect(probe_port);
		CHECK(fds[i] >= 0);
	}
	usleep(100000); /* let the probe accept them all */
	extra = tcp_connect(probe_port);
	REQUIRE(extra >= 0);
	CHECK_EQ_INT(send_all(extra, "GET /healthz HTTP/1.1\r\n\r\n", 25), 0);
	pfd = (struct pollfd){.fd = extra, .events = POLLIN};
	CHECK_EQ_INT(poll(&pfd, 1, 300), 0); /* not served yet */
	close(fds[0]);
	pfd.revents = 0;
	CHECK_EQ_INT(poll(&pfd, 1, 1000), 1); /* served once a slot frees */
	r = read_all(extra);
	check_response(r, 200, "ok\n");
	free(r);
	close(extra);
	for (i = 1; i < IOTCA_PROBE_MAX_CLIENTS; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

/* Stop returns promptly with a client in the middle of a request, and
 * the client sees its connection closed. */
static void
test_stop_with_client(void)
{
	iotca_probe *p = NULL;
	iotca_errbuf eb;
	int port = 0, fd;
	int64_t t0;
	char c;
	ssize_t n;

	REQUIRE(iotca_probe_start("127.0.0.1:0", NULL, NULL, NULL, &p, &port,
	                          &eb) == IOTCA_OK);
	CHECK(port > 0);
	fd = tcp_connect(port);
	REQUIRE(fd >= 0);
	CHECK_EQ_INT(send_all(fd, "GET /hea", 8), 0);
	usleep(100000);
	t0 = now_ms();
	iotca_probe_stop(p);
	CHECK(now_ms() - t0 < 1000);
	n = recv(fd, &c, 1, 0);
	CHECK(n == 0 || (n < 0 && errno == ECONNRESET));
	close(fd);
	/* The port is closed. */
	CHECK_EQ_INT(tcp_connect(port), -1);
	iotca_probe_stop(NULL);
}

/* NULL callbacks: always ready, an empty /metrics; a body or trailing
 * bytes after the head do not reset the response. */
static void
test_null_callbacks(void)
{
	iotca_probe *p = NULL;
	iotca_errbuf eb;
	int port = 0;
	char *r;

	REQUIRE(iotca_probe_start("localhost:0", NULL, NULL, NULL, &p, &port,
	                          &eb) == IOTCA_OK);
	r = exchange(port, "GET /readyz HTTP/1.1\r\n\r\n");
	check_response(r, 200, "ready\n");
	free(r);
	r = exchange(port, "GET /metrics HTTP/1.1\r\nContent-Length: 5\r\n"
	                   "\r\nhello and more bytes");
	check_response(r, 200, "");
	free(r);
	iotca_probe_stop(p);
}

static void
test_bad_addresses(void)
{
	static const char *const bad[] = {
	    "nocolon",       ":8080",     "127.0.0.1:", "127.0.0.1:99999",
	    "127.0.0.1:80a", "[::1]8080", "[]:80",      "127.0.0.1:123456",
	};
	iotca_probe *p = (iotca_probe *)&ready_flag; /* must stay as is */
	iotca_errbuf eb;
	char addr[64];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		iotca_errbuf_clear(&eb);
		CHECK_EQ_INT(
		    iotca_probe_start(bad[i], NULL, NULL, NULL, &p, NULL, &eb),
		    IOTCA_EINVAL);
		CHECK_CONTAINS(eb.msg, bad[i]);
	}
	CHECK_EQ_INT(iotca_probe_start("no-such-host.invalid:0", NULL, NULL,
	                               NULL, &p, NULL, &eb),
	             IOTCA_EINVAL);
	/* The running probe's port is taken. */
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", probe_port);
	CHECK_EQ_INT(iotca_probe_start(addr, NULL, NULL, NULL, &p, NULL, &eb),
	             IOTCA_EUNAVAIL);
	CHECK_CONTAINS(eb.msg, "cannot listen");
	CHECK(p == (iotca_probe *)&ready_flag);
}

/* curl -sS: a client nobody here wrote. */
static char *
run_curl(const char *args)
{
	char cmd[512], *out = malloc(8192);
	size_t n = 0;
	FILE *f;

	if (out == NULL)
		return NULL;
	snprintf(cmd, sizeof(cmd), "curl -sS --max-time 5 %s 2>&1", args);
	if ((f = popen(cmd, "r")) != NULL) {
		n = fread(out, 1, 8191, f);
		pclose(f);
	}
	out[n] = '\0';
	return out;
}

static void
test_curl(void)
{
	char args[256], *out;

	REQUIRE(system("curl --version >/dev/null 2>&1") == 0);
	atomic_store(&ready_flag, 1);
	snprintf(args, sizeof(args), "-i http://127.0.0.1:%d/metrics",
	         probe_port);
	out = run_curl(args);
	CHECK_CONTAINS(out, "HTTP/1.1 200 OK\r\n");
	CHECK_CONTAINS(out, metrics_body);
	free(out);
	snprintf(args, sizeof(args),
	         "-o /dev/null -o /dev/null -w '%%{http_code}' "
	         "http://127.0.0.1:%d/readyz http://127.0.0.1:%d/nope",
	         probe_port, probe_port);
	out = run_curl(args);
	CHECK_EQ_STR(out, "200404");
	free(out);
	snprintf(args, sizeof(args),
	         "-o /dev/null -w '%%{http_code}' -X DELETE "
	         "http://127.0.0.1:%d/healthz",
	         probe_port);
	out = run_curl(args);
	CHECK_EQ_STR(out, "405");
	free(out);
	snprintf(args, sizeof(args), "-I http://127.0.0.1:%d/healthz",
	         probe_port);
	out = run_curl(args);
	CHECK_CONTAINS(out, "HTTP/1.1 200 OK\r\n");
	CHECK_CONTAINS(out, "Content-Length: 3\r\n");
	free(out);
}

int
main(void)
{
	iotca_errbuf eb;

	RUN(test_parse_valid);
	RUN(test_parse_incomplete);
	RUN(test_parse_malformed);
	RUN(test_parse_path_cap);
	RUN(test_metric_text);
	RUN(test_metric_values);
	RUN(test_metric_refused);
	if (iotca_probe_start("127.0.0.1:0", test_ready, test_metrics,
	                      &ready_flag, &probe, &probe_port,
	                      &eb) != IOTCA_OK) {
		fprintf(stderr, "probe start: %s\n", iotca_errbuf_msg(&eb));
		return 1;
	}
	RUN(test_paths);
	RUN(test_head);
	RUN(test_in_pieces);
	RUN(test_oversized);
	RUN(test_slow_client);
	RUN(test_connection_cap);
	RUN(test_stop_with_client);
	RUN(test_null_callbacks);
	RUN(test_bad_addresses);
	RUN(test_curl);
	iotca_probe_stop(probe);
	return test_summary();
}
