/*
 * probe.c - the probe's listener and its thread: one poll() loop over an
 * eventfd (stop), the listening socket and up to IOTCA_PROBE_MAX_CLIENTS
 * non-blocking connections.
 *
 * A connection goes READ (collect the request head) -> WRITE (send the
 * response) -> DRAIN (we shut our side down and discard what the client
 * still sends until it closes, so that closing never resets a response the
 * client has not read yet, e.g. after a 400 for an oversized request) ->
 * closed. Each state has a deadline; past it the connection is closed.
 */
#include "probe/probe.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log/log.h"

#define PROBE_BACKLOG        64
#define PROBE_DRAIN_MS       1000
#define PROBE_DRAIN_MAX      (64u << 10) /* bytes discarded before giving up */
#define PROBE_ACCEPT_PAUSE   100 /* ms without accept after EMFILE & co. */
#define PROBE_RESPONSE_EXTRA 512 /* room for the status line and headers */

typedef enum probe_state {
	PROBE_FREE = 0,
	PROBE_READ,
	PROBE_WRITE,
	PROBE_DRAIN,
} probe_state;

typedef struct probe_conn {
	int fd;
	probe_state state;
	int64_t deadline; /* CLOCK_MONOTONIC ms; the state's time is up */
	size_t in_len;    /* bytes of the request head in `in` */
	size_t drained;   /* bytes discarded in PROBE_DRAIN */
	size_t out_off;   /* bytes of `out` already sent */
	iotca_buf out;    /* the whole response */
	char in[IOTCA_PROBE_MAX_REQUEST];
} probe_conn;

/* Everything below is owned by the probe's thread once it runs, except
 * lfd, wakefd and thread, which the owner closes after the join. */
struct iotca_probe {
	int lfd;
	int wakefd;
	pthread_t thread;
	iotca_probe_ready_fn ready;
	iotca_probe_metrics_fn metrics;
	void *arg;
	int64_t accept_resume; /* no accept before this time (ms) */
	probe_conn conns[IOTCA_PROBE_MAX_CLIENTS];
};

static int64_t
probe_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------ responses */

static const char *
probe_reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 500:
		return "Internal Server Error";
	case 503:
		return "Service Unavailable";
	}
	return "Unknown";
}

/* Writes the whole response into out; the body is left out for HEAD. */
static iotca_err
probe_format(iotca_buf *out, int status, const char *ctype, const char *extra,
             const char *body, size_t body_len, int head)
{
	iotca_err rc;

	iotca_buf_reset(out);
	rc = iotca_buf_printf(out,
	                      "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
	                      "Content-Length: %zu\r\nConnection: close\r\n"
	                      "%s\r\n",
	                      status, probe_reason(status), ctype, body_len,
	                      extra);
	if (rc == IOTCA_OK && !head)
		rc = iotca_buf_append(out, body, body_len);
	return rc;
}

#define PROBE_TEXT    "text/plain; charset=utf-8"
#define PROBE_METRICS "text/plain; version=0.0.4; charset=utf-8"

/* A short text/plain response. */
static iotca_err
probe_text(iotca_buf *out, int status, const char *extra, const char *text,
           int head)
{
	return probe_format(out, status, PROBE_TEXT, extra, text, strlen(text),
	                    head);
}

/* The /metrics response: what metrics() appends, whole. */
static iotca_err
probe_format_metrics(iotca_probe *p, iotca_buf *out, int head)
{
	iotca_buf body;
	iotca_err rc;

	iotca_buf_init(&body, IOTCA_PROBE_MAX_METRICS);
	if (p->metrics != NULL)
		p->metrics(&body, p->arg);
	rc = probe_format(out, 200, PROBE_METRICS, "",
	                  body.data != NULL ? body.data : "", body.len, head);
	iotca_buf_free(&body);
	return rc;
}

/* Answers the request in c->in (parse result rc) into c->out. */
static void
probe_answer(iotca_probe *p, probe_conn *c, iotca_err rc,
             const iotca_probe_request *req, const iotca_errbuf *eb)
{
	char q[IOTCA_LOG_QUOTE_MAX];
	int head = rc == IOTCA_OK && req->method == IOTCA_PROBE_HEAD;
	const char *why;

	if (rc != IOTCA_OK) {
		why = rc == IOTCA_ENOENT ? "the request head is over its cap"
		                         : iotca_errbuf_msg(eb);
		iotca_log_debug("PROBE-BAD-REQUEST", "msg=%s",
		                iotca_log_quote(q, sizeof(q), why));
		rc = probe_text(&c->out, 400, "", "bad request\n", 0);
	} else if (req->method == IOTCA_PROBE_OTHER) {
		rc = probe_text(&c->out, 405, "Allow: GET, HEAD\r\n",
		                "method not allowed\n", 0);
	} else if (strcmp(req->path, "/healthz") == 0) {
		rc = probe_text(&c->out, 200, "", "ok\n", head);
	} else if (strcmp(req->path, "/readyz") == 0) {
		if (p->ready == NULL || p->ready(p->arg) == 1)
			rc = probe_text(&c->out, 200, "", "ready\n", head);
		else
			rc = probe_text(&c->out, 503, "", "not ready\n", head);
	} else if (strcmp(req->path, "/metrics") == 0) {
		rc = probe_format_metrics(p, &c->out, head);
	} else {
		rc = probe_text(&c->out, 404, "", "not found\n", head);
	}
	if (rc != IOTCA_OK) {
		iotca_log_warn(
		    "PROBE-RESPONSE-FAIL", "err=%s",
		    iotca_log_quote(q, sizeof(q), iotca_strerror(rc)));
		probe_text(&c->out, 500, "", "internal error\n", head);
	}
}

/* ------------------------------------------------ connections */

static void
probe_conn_close(probe_conn *c)
{
	close(c->fd);
	iotca_buf_free(&c->out);
	c->fd = -1;
	c->state = PROBE_FREE;
}

/* Sends what is left of the response; then shuts down and drains. */
static void
probe_conn_write(probe_conn *c)
{
	while (c->out_off < c->out.len) {
		ssize_t n =
		    send(c->fd, c->out.data + c->out_off,
		         c->out.len - c->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			probe_conn_close(c);
			return;
		}
		c->out_off += (size_t)n;
	}
	shutdown(c->fd, SHUT_WR);
	iotca_buf_free(&c->out);
	c->state = PROBE_DRAIN;
	c->drained = 0;
	c->deadline = probe_now_ms() + PROBE_DRAIN_MS;
}

/* Reads more of the request head; answers once it is complete, refused
 * or over the cap. */
static void
probe_conn_read(iotca_probe *p, probe_conn *c)
{
	iotca_probe_request req;
	iotca_errbuf eb;
	iotca_err rc;
	ssize_t n;

	n = recv(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len,
	         MSG_DONTWAIT);
	if (n < 0 &&
	    (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0) { /* gone before the request was complete */
		probe_conn_close(c);
		return;
	}
	c->in_len += (size_t)n;
	iotca_errbuf_clear(&eb);
	rc = iotca_probe_parse_request(c->in, c->in_len, &req, &eb);
	if (rc == IOTCA_ENOENT && c->in_len < sizeof(c->in))
		return;
	probe_answer(p, c, rc, &req, &eb);
	c->state = PROBE_WRITE;
	c->out_off = 0;
	c->deadline = probe_now_ms() + IOTCA_PROBE_TIMEOUT_MS;
	probe_conn_write(c);
}

/* Discards what the client still sends after the response. */
static void
probe_conn_drain(probe_conn *c)
{
	ssize_t n;

	n = recv(c->fd, c->in, sizeof(c->in), MSG_DONTWAIT);
	if (n < 0 &&
	    (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0 || (c->drained += (size_t)n) > PROBE_DRAIN_MAX)
		probe_conn_close(c);
}

/* The state's time is up. A client that sent part of a request gets a
 * best-effort 408 (one non-blocking send) before the close. */
static void
probe_conn_expire(probe_conn *c)
{
	if (c->state == PROBE_READ && c->in_len > 0 &&
	    probe_text(&c->out, 408, "", "request timeout\n", 0) == IOTCA_OK) {
		ssize_t n = send(c->fd, c->out.data, c->out.len,
		                 MSG_NOSIGNAL | MSG_DONTWAIT);
		(void)n;
	}
	probe_conn_close(c);
}

static void
probe_conn_io(iotca_probe *p, probe_conn *c)
{
	switch (c->state) {
	case PROBE_READ:
		probe_conn_read(p, c);
		break;
	case PROBE_WRITE:
		probe_conn_write(c);
		break;
	case PROBE_DRAIN:
		probe_conn_drain(c);
		break;
	case PROBE_FREE:
		break;
	}
}

/* Accepts while there is a free slot and a pending connection. */
static void
probe_accept(iotca_probe *p)
{
	size_t i;
	int fd;

	for (i = 0; i < IOTCA_PROBE_MAX_CLIENTS; i++) {
		probe_conn *c = &p->conns[i];

		if (c->state != PROBE_FREE)
			continue;
		do
			fd = accept4(p->lfd, NULL, NULL,
			             SOCK_NONBLOCK | SOCK_CLOEXEC);
		while (fd < 0 && (errno == EINTR || errno == ECONNABORTED));
		if (fd < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			/* EMFILE, ENFILE, ENOBUFS, ENOMEM: the pending
			 * connection stays ready, so wait a little. */
			iotca_log_warn("PROBE-ACCEPT-FAIL",
			               "errno=%d msg=\"%s\"", errno,
			               strerror(errno));
			p->accept_resume = probe_now_ms() + PROBE_ACCEPT_PAUSE;
			return;
		}
		c->fd = fd;
		c->state = PROBE_READ;
		c->in_len = 0;
		c->out_off = 0;
		c->deadline = probe_now_ms() + IOTCA_PROBE_TIMEOUT_MS;
		iotca_buf_init(&c->out,
		               IOTCA_PROBE_MAX_METRICS + PROBE_RESPONSE_EXTRA);
	}
}

/* ------------------------------------------------ the thread */

/* Fills pfd: wakefd first, then the connections (their slot goes to idx),
 * then the listener when a slot is free (*listening 1). Returns the count
 * and the poll timeout (ms, -1: none) in *timeout. */
static nfds_t
probe_poll_set(iotca_probe *p, struct pollfd *pfd, size_t *idx, int *listening,
               int *timeout)
{
	int64_t now = probe_now_ms(), wait = -1;
	nfds_t n = 0;
	size_t i, busy = 0;

	pfd[n++] = (struct pollfd){.fd = p->wakefd, .events = POLLIN};
	for (i = 0; i < IOTCA_PROBE_MAX_CLIENTS; i++) {
		probe_conn *c = &p->conns[i];
		int64_t left;

		if (c->state == PROBE_FREE)
			continue;
		busy++;
		left = c->deadline > now ? c->deadline - now : 0;
		if (wait < 0 || left < wait)
			wait = left;
		idx[n] = i;
		pfd[n++] = (struct pollfd){
		    .fd = c->fd,
		    .events = c->state == PROBE_WRITE ? POLLOUT : POLLIN};
	}
	*listening = 0;
	if (busy < IOTCA_PROBE_MAX_CLIENTS && now >= p->accept_resume) {
		*listening = 1;
		pfd[n++] = (struct pollfd){.fd = p->lfd, .events = POLLIN};
	} else if (busy < IOTCA_PROBE_MAX_CLIENTS &&
	           (wait < 0 || p->accept_resume - now < wait)) {
		wait = p->accept_resume - now;
	}
	*timeout = (int)wait;
	return n;
}

static void *
probe_main(void *arg)
{
	iotca_probe *p = arg;
	struct pollfd pfd[2 + IOTCA_PROBE_MAX_CLIENTS];
	size_t idx[2 + IOTCA_PROBE_MAX_CLIENTS];
	int listening, timeout;
	nfds_t n, k;
	size_t i;

	for (;;) {
		n = probe_poll_set(p, pfd, idx, &listening, &timeout);
		if (poll(pfd, n, timeout) < 0 && errno != EINTR) {
			iotca_log_error("PROBE-POLL-FAIL",
			                "errno=%d msg=\"%s\"", errno,
			                strerror(errno));
			break;
		}
		if (pfd[0].revents != 0)
			break;
		for (k = 1; k < n - (nfds_t)listening; k++)
			if (pfd[k].revents != 0)
				probe_conn_io(p, &p->conns[idx[k]]);
		if (listening && pfd[n - 1].revents != 0)
			probe_accept(p);
		for (i = 0; i < IOTCA_PROBE_MAX_CLIENTS; i++)
			if (p->conns[i].state != PROBE_FREE &&
			    probe_now_ms() >= p->conns[i].deadline)
				probe_conn_expire(&p->conns[i]);
	}
	for (i = 0; i < IOTCA_PROBE_MAX_CLIENTS; i++)
		if (p->conns[i].state != PROBE_FREE)
			probe_conn_close(&p->conns[i]);
	return NULL;
}

/* ------------------------------------------------ start and stop */

/* Splits "host:port" or "[v6]:port" into host (size n) and port text. */
static iotca_err
probe_split(const char *addr, char *host, size_t n, const char **port,
            iotca_errbuf *eb)
{
	const char *h = addr, *colon, *p;
	size_t hlen;

	if (addr[0] == '[') {
		const char *rb = strchr(addr, ']');
		if (rb == NULL || rb[1] != ':')
			goto bad;
		h = addr + 1;
		hlen = (size_t)(rb - h);
		colon = rb + 1;
	} else {
		if ((colon = strrchr(addr, ':')) == NULL)
			goto bad;
		hlen = (size_t)(colon - addr);
	}
	if (hlen == 0 || hlen >= n || colon[1] == '\0' || strlen(colon + 1) > 5)
		goto bad;
	for (p = colon + 1; *p != '\0'; p++)
		if (*p < '0' || *p > '9')
			goto bad;
	if (atoi(colon + 1) > 65535)
		goto bad;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	*port = colon + 1;
	return IOTCA_OK;
bad:
	return iotca_errbuf_set(eb, IOTCA_EINVAL,
	                        "probe address '%s' is not host:port or "
	                        "[v6]:port with a port 0-65535",
	                        addr);
}

/* A listening non-blocking socket on the first address of host:port that
 * binds. */
static iotca_err
probe_listen(const char *addr, int *fd_out, int *port_out, iotca_errbuf *eb)
{
	struct addrinfo hints = {0}, *res = NULL, *ai;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[256];
	const char *port = NULL;
	int fd = -1, one = 1, gai, err = 0;
	iotca_err rc;

	if ((rc = probe_split(addr, host, sizeof(host), &port, eb)) != IOTCA_OK)
		return rc;
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((gai = getaddrinfo(host, port, &hints, &res)) != 0)
		return iotca_errbuf_set(eb, IOTCA_EINVAL,
		                        "probe address '%s': %s", addr,
		                        gai_strerror(gai));
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family,
		            ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
		            ai->ai_protocol);
		if (fd < 0) {
			err = errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
		    listen(fd, PROBE_BACKLOG) == 0)
			break;
		err = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return iotca_errbuf_set(eb, IOTCA_EUNAVAIL,
		                        "cannot listen on probe address '%s': "
		                        "%s",
		                        addr, strerror(err));
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
		close(fd);
		return iotca_errbuf_set(eb, IOTCA_EINTERNAL, "getsockname: %s",
		                        strerror(errno));
	}
	*port_out = ntohs(ss.ss_family == AF_INET6
	                      ? ((struct sockaddr_in6 *)&ss)->sin6_port
	                      : ((struct sockaddr_in *)&ss)->sin_port);
	*fd_out = fd;
	return IOTCA_OK;
}

iotca_err
iotca_probe_start(const char *addr, iotca_probe_ready_fn ready,
                  iotca_probe_metrics_fn metrics, void *arg, iotca_probe **out,
                  int *port, iotca_errbuf *eb)
{
	char q[IOTCA_LOG_QUOTE_MAX];
	iotca_probe *p;
	sigset_t all, old;
	iotca_err rc = IOTCA_ENOMEM;
	int bound = 0, perr;
	size_t i;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return iotca_errbuf_set(eb, rc, "out of memory");
	p->lfd = p->wakefd = -1;
	p->ready = ready;
	p->metrics = metrics;
	p->arg = arg;
	for (i = 0; i < IOTCA_PROBE_MAX_CLIENTS; i++)
		p->conns[i].fd = -1;
	if ((rc = probe_listen(addr, &p->lfd, &bound, eb)) != IOTCA_OK)
		goto out;
	if ((p->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
		rc = iotca_errbuf_set(eb, IOTCA_EINTERNAL, "eventfd: %s",
		                      strerror(errno));
		goto out;
	}
	/* No signal is ever delivered to the probe's thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	perr = pthread_create(&p->thread, NULL, probe_main, p);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (perr != 0) {
		rc = iotca_errbuf_set(eb, IOTCA_EINTERNAL,
		                      "cannot start the probe thread: %s",
		                      strerror(perr));
		goto out;
	}
	iotca_log_info("PROBE-LISTEN", "listen=%s port=%d",
	               iotca_log_quote(q, sizeof(q), addr), bound);
	if (port != NULL)
		*port = bound;
	*out = p;
	return IOTCA_OK;
out:
	if (p->lfd >= 0)
		close(p->lfd);
	if (p->wakefd >= 0)
		close(p->wakefd);
	free(p);
	return rc;
}

void
iotca_probe_stop(iotca_probe *p)
{
	uint64_t one = 1;
	ssize_t n;

	if (p == NULL)
		return;
	n = write(p->wakefd, &one, sizeof(one));
	(void)n; /* cannot fail: the counter is far from its maximum */
	pthread_join(p->thread, NULL);
	close(p->lfd);
	close(p->wakefd);
	free(p);
}
