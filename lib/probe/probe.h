/*
 * probe.h - a tiny HTTP/1.x endpoint for Kubernetes probes and Prometheus.
 *
 * One thread of its own serves, on one TCP listener:
 *   GET /healthz   200 "ok\n" while the process runs (liveness);
 *   GET /readyz    200 "ready\n" when ready(arg) returns 1, else 503
 *                  "not ready\n" (readiness);
 *   GET /metrics   200, Content-Type "text/plain; version=0.0.4;
 *                  charset=utf-8", the body metrics(arg) appends;
 * anything else 404, a method other than GET or HEAD 405, a malformed or
 * oversized request 400. HEAD gets the headers of the GET. Every response
 * has Content-Length and "Connection: close"; the connection closes after
 * it. A query string is ignored.
 *
 * Limits: at most IOTCA_PROBE_MAX_CLIENTS connections at once (more wait in
 * the listen backlog); a request (request line and headers) of at most
 * IOTCA_PROBE_MAX_REQUEST bytes, which must arrive within
 * IOTCA_PROBE_TIMEOUT_MS of the accept (else the connection is closed after
 * a best-effort 408); a response that the client does not take within
 * IOTCA_PROBE_TIMEOUT_MS is dropped. Sockets are non-blocking and served
 * from one poll() loop, so a slow client delays no other; only ready() and
 * metrics() run inline, and they must be quick.
 *
 * Threads: ready() and metrics() run on the probe's thread, concurrently
 * with the rest of the program; they read what they need under the
 * program's own locks or atomics. iotca_probe_start and iotca_probe_stop are
 * called from one thread (the owner); nothing else touches the handle.
 */
#ifndef IOTCA_PROBE_H
#define IOTCA_PROBE_H

#include <stddef.h>
#include <stdint.h>

#include "buf/buf.h"
#include "err/err.h"

#define IOTCA_PROBE_MAX_CLIENTS 16
#define IOTCA_PROBE_MAX_REQUEST 4096
#define IOTCA_PROBE_TIMEOUT_MS  2000
/* Cap of the /metrics body. Appends past it fail whole (every helper below
 * appends a complete line or nothing), so what is served stays valid. */
#define IOTCA_PROBE_MAX_METRICS (1u << 20)
/* Longest path (without the query string) the parser keeps, NUL included.
 */
#define IOTCA_PROBE_PATH_MAX 256

typedef struct iotca_probe iotca_probe;

/* 1: ready. Runs on the probe's thread. NULL: always ready. */
typedef int (*iotca_probe_ready_fn)(void *arg);

/* Appends the metrics in the Prometheus text format (version 0.0.4) to
 * out, e.g. with iotca_probe_metric. Runs on the probe's thread. */
typedef void (*iotca_probe_metrics_fn)(iotca_buf *out, void *arg);

/*
 * Listens on addr ("host:port" or "[v6]:port"; port 0 picks a free one,
 * written to *port when port is not NULL) and starts the probe's thread.
 * ready and metrics may be NULL (always ready; an empty body); arg goes to
 * both and must stay valid until iotca_probe_stop returns. On success *out is
 * the probe; on failure nothing is left running and eb says what to fix.
 */
iotca_err iotca_probe_start(const char *addr, iotca_probe_ready_fn ready,
                            iotca_probe_metrics_fn metrics, void *arg,
                            iotca_probe **out, int *port, iotca_errbuf *eb);

/* Stops the thread (joins it, within a poll round), closes the listener
 * and every client connection, frees the probe. NULL is allowed. */
void iotca_probe_stop(iotca_probe *p);

/* ------------------------------------------------ the request parser */

typedef enum iotca_probe_method {
	IOTCA_PROBE_GET = 0,
	IOTCA_PROBE_HEAD,
	IOTCA_PROBE_OTHER, /* any other valid method token: 405 */
} iotca_probe_method;

/* One parsed request. */
typedef struct iotca_probe_request {
	iotca_probe_method method;
	int minor_version;               /* HTTP/1.<minor_version>: 0 or 1 */
	char path[IOTCA_PROBE_PATH_MAX]; /* the target up to '?', NUL-ended */
	size_t len; /* bytes up to and including the blank line */
} iotca_probe_request;

/*
 * Parses the start of data[0..len) as an HTTP/1.0 or HTTP/1.1 request
 * head, strictly: "METHOD SP /path[?query] SP HTTP/1.x CRLF", then header
 * lines "name:value CRLF" (name a token, value without control bytes but
 * tab), then CRLF. The target is printable ASCII starting with '/'. No
 * bare CR or LF, no leading blank lines, no folded headers. Bytes after
 * the blank line (a body) are not looked at; never reads past len.
 *
 * Returns IOTCA_OK with *req filled for a complete request; IOTCA_ENOENT
 * when everything so far is valid but the head is not complete (call again
 * with more bytes); IOTCA_EINVAL for a malformed request; IOTCA_ETOOBIG
 * when the path does not fit IOTCA_PROBE_PATH_MAX. Once a prefix is
 * refused, no longer input is accepted. *req is written only on success.
 */
iotca_err iotca_probe_parse_request(const char *data, size_t len,
                                    iotca_probe_request *req, iotca_errbuf *eb);

/* ------------------------------------------------ Prometheus text format */

/*
 * Appends one sample "name{labels} value\n" to out, preceded by
 * "# HELP name help\n# TYPE name type\n" when help is not NULL: call once
 * with help and type, then with help NULL for more labelled samples of
 * the same metric.
 *
 * name: [A-Za-z_:][A-Za-z0-9_:]*. type: "counter", "gauge" or "untyped"
 * (ignored when help is NULL). labels: NULL or the text between the
 * braces, e.g. "reason=\"revoked\"" (label values already escaped; no
 * line breaks). help: any text; '\' and line feeds are escaped. Values
 * print exactly (NaN, +Inf, -Inf as Prometheus spells them).
 *
 * Appends everything or nothing: IOTCA_EINVAL for a bad name, type or
 * labels, IOTCA_ETOOBIG past the buffer's cap, IOTCA_ENOMEM.
 */
iotca_err iotca_probe_metric(iotca_buf *out, const char *name, const char *help,
                             const char *type, const char *labels,
                             double value);

/* The same with an integer value (a counter past 2^53 stays exact). */
iotca_err iotca_probe_metric_u64(iotca_buf *out, const char *name,
                                 const char *help, const char *type,
                                 const char *labels, uint64_t value);

#endif /* IOTCA_PROBE_H */
