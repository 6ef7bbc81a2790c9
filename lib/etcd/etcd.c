/*
 * etcd.c - the etcd client handle: endpoints, the pool of curl handles,
 * one request with failover, and the KV, txn, lease and health calls.
 *
 * A request is a JSON POST to <endpoint>/v3/... with a time budget of
 * timeout_ms for all its attempts. It starts at the endpoint that last
 * answered; when that endpoint cannot be reached it moves on to the next,
 * round after round with a short backoff, until the budget is spent.
 * A request that may have reached etcd (it was sent, then the connection
 * broke or the time ran out) is only sent again when it is idempotent
 * (reads, keepalives): a put, delete or write txn could otherwise be
 * applied twice.
 *
 * Locking: the pool is under e->lock; the endpoint in use and the warning
 * rate limit are atomics; the rest of the handle is read-only.
 */
#include "etcd/etcd_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf/buf.h"
#include "log/log.h"

#define ETCD_POOL_MAX         1024
#define ETCD_BACKOFF_FIRST_MS 50
#define ETCD_BACKOFF_MAX_MS   500
#define ETCD_WARN_EVERY_MS    5000
#define ETCD_KEEPIDLE_S       30
#define ETCD_KEEPINTVL_S      10

static pthread_once_t etcd_curl_once = PTHREAD_ONCE_INIT;
static CURLcode etcd_curl_init_rc;

static void
etcd_curl_global_init(void)
{
	etcd_curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int64_t
etcd_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
etcd_curl_defaults(const iotca_etcd *e, CURL *h)
{
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE, (long)ETCD_KEEPIDLE_S);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL, (long)ETCD_KEEPINTVL_S);
	curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
	/* etcd is reached directly: an http_proxy meant for the outside
	 * world must not capture it */
	curl_easy_setopt(h, CURLOPT_PROXY, "");
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, e->headers);
	curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE,
	                 (curl_off_t)e->max_reply);
}

/* ---- create, destroy ---- */

/* Adds one endpoint of n bytes (already trimmed). */
static iotca_err
etcd_endpoint_add(iotca_etcd *e, const char *p, size_t n, iotca_errbuf *eb)
{
	while (n > 0 && p[n - 1] == '/')
		n--;
	if (n == 0)
		return IOTCA_OK; /* an empty item, as in "a,,b": skip it */
	if (n >= ETCD_ENDPOINT_MAX || e->n_endpoints >= ETCD_MAX_ENDPOINTS)
		return iotca_errbuf_set(eb, IOTCA_EINVAL,
		                        "etcd endpoints: too many or too long "
		                        "(at most %d of %d bytes each)",
		                        ETCD_MAX_ENDPOINTS,
		                        ETCD_ENDPOINT_MAX - 1);
	if (!((n > 7 && strncmp(p, "http://", 7) == 0) ||
	      (n > 8 && strncmp(p, "https://", 8) == 0)))
		return iotca_errbuf_set(eb, IOTCA_EINVAL,
		                        "etcd endpoint \"%.*s\" is not an "
		                        "http:// or https:// URL (write it as "
		                        "http://host:2379)",
		                        (int)n, p);
	if ((e->endpoints[e->n_endpoints] = strndup(p, n)) == NULL)
		return iotca_errbuf_set(eb, IOTCA_ENOMEM,
		                        "etcd endpoints: out of memory");
	e->n_endpoints++;
	return IOTCA_OK;
}

/* Splits "a, b,c" into e->endpoints. */
static iotca_err
etcd_endpoints_parse(iotca_etcd *e, const char *list, iotca_errbuf *eb)
{
	const char *p = list, *comma, *end;
	iotca_err rc;

	e->endpoints = calloc(ETCD_MAX_ENDPOINTS, sizeof(char *));
	if (e->endpoints == NULL)
		return iotca_errbuf_set(eb, IOTCA_ENOMEM,
		                        "etcd endpoints: out of memory");
	while (*p != '\0') {
		comma = strchr(p, ',');
		end = comma ? comma : p + strlen(p);
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		if ((rc = etcd_endpoint_add(e, p, (size_t)(end - p), eb)))
			return rc;
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	if (e->n_endpoints == 0)
		return iotca_errbuf_set(
		    eb, IOTCA_EINVAL,
		    "etcd endpoints \"%s\" name no endpoint "
		    "(write them as http://host:2379,...)",
		    list);
	return IOTCA_OK;
}

/* Joins the endpoints for messages. */
static iotca_err
etcd_endpoint_list_make(iotca_etcd *e)
{
	iotca_buf b;
	unsigned i;

	iotca_buf_init(&b, ETCD_MAX_ENDPOINTS * ETCD_ENDPOINT_MAX);
	for (i = 0; i < e->n_endpoints; i++)
		if (iotca_buf_printf(&b, "%s%s", i ? "," : "",
		                     e->endpoints[i]) != IOTCA_OK) {
			iotca_buf_free(&b);
			return IOTCA_ENOMEM;
		}
	e->endpoint_list = iotca_buf_take(&b, NULL);
	return IOTCA_OK;
}

/* Copies opts into e with defaults for the zeroes. */
static iotca_err
etcd_opts_apply(iotca_etcd *e, const iotca_etcd_opts *o, iotca_errbuf *eb)
{
	if (o->timeout_ms < 0 || o->connect_timeout_ms < 0)
		return iotca_errbuf_set(
		    eb, IOTCA_EINVAL,
		    "etcd: timeout_ms and connect_timeout_ms "
		    "must not be negative");
	e->timeout_ms = o->timeout_ms ? o->timeout_ms : ETCD_DEFAULT_TIMEOUT_MS;
	e->connect_timeout_ms = o->connect_timeout_ms
	                            ? o->connect_timeout_ms
	                            : ETCD_DEFAULT_CONNECT_TIMEOUT_MS;
	e->max_reply = o->max_reply ? o->max_reply : ETCD_DEFAULT_MAX_REPLY;
	e->pool_size = o->pool_size ? o->pool_size : ETCD_DEFAULT_POOL_SIZE;
	if (e->pool_size > ETCD_POOL_MAX)
		e->pool_size = ETCD_POOL_MAX;
	return IOTCA_OK;
}

iotca_err
iotca_etcd_create(const iotca_etcd_opts *opts, iotca_etcd **out,
                  iotca_errbuf *eb)
{
	iotca_etcd *e = NULL;
	iotca_err rc = IOTCA_EINVAL;

	if (opts == NULL || out == NULL || opts->endpoints == NULL)
		return iotca_errbuf_set(eb, rc,
		                        "etcd: no endpoints given (set "
		                        "them, e.g. http://127.0.0.1:2379)");
	pthread_once(&etcd_curl_once, etcd_curl_global_init);
	if (etcd_curl_init_rc != CURLE_OK)
		return iotca_errbuf_set(eb, IOTCA_EINTERNAL,
		                        "etcd: curl_global_init failed: %s",
		                        curl_easy_strerror(etcd_curl_init_rc));
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return iotca_errbuf_set(eb, IOTCA_ENOMEM,
		                        "etcd: out of memory");
	pthread_mutex_init(&e->lock, NULL);
	if ((rc = etcd_opts_apply(e, opts, eb)) ||
	    (rc = etcd_endpoints_parse(e, opts->endpoints, eb)))
		goto out;
	rc = IOTCA_ENOMEM;
	e->headers = curl_slist_append(NULL, "Content-Type: application/json");
	if (e->headers == NULL ||
	    curl_slist_append(e->headers, "Expect:") == NULL ||
	    (e->pool = calloc(e->pool_size, sizeof(CURL *))) == NULL ||
	    etcd_endpoint_list_make(e) != IOTCA_OK) {
		iotca_errbuf_set(eb, rc, "etcd: out of memory");
		goto out;
	}
	*out = e;
	rc = IOTCA_OK;
out:
	if (rc != IOTCA_OK)
		iotca_etcd_destroy(e);
	return rc;
}

void
iotca_etcd_destroy(iotca_etcd *e)
{
	unsigned i;

	if (e == NULL)
		return;
	for (i = 0; i < e->n_pool; i++)
		curl_easy_cleanup(e->pool[i]);
	free(e->pool);
	for (i = 0; i < e->n_endpoints; i++)
		free(e->endpoints[i]);
	free(e->endpoints);
	free(e->endpoint_list);
	curl_slist_free_all(e->headers);
	pthread_mutex_destroy(&e->lock);
	free(e);
}

/* ---- the curl handle pool ---- */

static CURL *
etcd_pool_get(iotca_etcd *e)
{
	CURL *h = NULL;

	pthread_mutex_lock(&e->lock);
	if (e->n_pool > 0)
		h = e->pool[--e->n_pool];
	pthread_mutex_unlock(&e->lock);
	if (h == NULL && (h = curl_easy_init()) != NULL)
		etcd_curl_defaults(e, h);
	return h;
}

/* Keeps h (and its open connection) for the next request, if there is
 * room. */
static void
etcd_pool_put(iotca_etcd *e, CURL *h)
{
	pthread_mutex_lock(&e->lock);
	if (e->n_pool < e->pool_size) {
		e->pool[e->n_pool++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&e->lock);
	if (h != NULL)
		curl_easy_cleanup(h);
}

/* ---- one request ---- */

typedef struct etcd_call {
	const char *what;   /* "range", for messages and logs */
	const char *path;   /* "/v3/kv/range" */
	char *body;         /* request JSON (owned); NULL: a GET */
	int idempotent;     /* may be sent again after it may have arrived */
	int stream;         /* a streamed reply: errors come with HTTP 200 */
	int raw;            /* the caller reads any HTTP status's body */
	unsigned ep;        /* endpoint of the last attempt */
	long status;        /* its HTTP status */
	iotca_buf reply;    /* capped at max_reply */
	iotca_err write_rc; /* why the write callback refused */
	char curl_err[CURL_ERROR_SIZE];
} etcd_call;

static void
etcd_call_init(etcd_call *c, const iotca_etcd *e, const char *what,
               const char *path, int idempotent)
{
	memset(c, 0, sizeof(*c));
	c->what = what;
	c->path = path;
	c->idempotent = idempotent;
	iotca_buf_init(&c->reply, e->max_reply);
}

static void
etcd_call_free(etcd_call *c)
{
	free(c->body);
	iotca_buf_free(&c->reply);
}

/* Collects the reply; refuses (which aborts the transfer) past the cap. */
static size_t
etcd_call_write(char *p, size_t size, size_t n, void *arg)
{
	etcd_call *c = arg;
	iotca_err rc = iotca_buf_append(&c->reply, p, size * n);

	if (rc != IOTCA_OK) {
		c->write_rc = rc;
		return 0;
	}
	return size * n;
}

static void
etcd_call_setopts(const iotca_etcd *e, CURL *h, etcd_call *c, const char *url,
                  long left_ms)
{
	long connect_ms = e->connect_timeout_ms;

	if (connect_ms > left_ms)
		connect_ms = left_ms;
	curl_easy_setopt(h, CURLOPT_URL, url);
	if (c->body != NULL) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, c->body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
		                 (curl_off_t)strlen(c->body));
	} else {
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
	}
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, etcd_call_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->curl_err);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, left_ms);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
}

/* A reply the write callback refused: over max_reply, or no memory. */
static iotca_err
etcd_call_refused(const iotca_etcd *e, const etcd_call *c, CURLcode cc,
                  iotca_errbuf *eb)
{
	const char *ep = e->endpoints[c->ep];

	if (cc == CURLE_WRITE_ERROR && c->write_rc != IOTCA_ETOOBIG)
		return iotca_errbuf_set(eb, IOTCA_ENOMEM,
		                        "etcd %s at %s: out of memory for the "
		                        "reply",
		                        c->what, ep);
	return iotca_errbuf_set(
	    eb, IOTCA_EOVERFLOW,
	    "etcd %s at %s: the reply is larger than max_reply (%zu "
	    "bytes) and was refused; read less per request (a limit, "
	    "smaller pages) or raise max_reply",
	    c->what, ep, e->max_reply);
}

/* The connection failed during the exchange. Whether the request may be
 * sent elsewhere depends on whether any of it left. */
static iotca_err
etcd_call_lost(const iotca_etcd *e, CURL *h, const etcd_call *c, CURLcode cc,
               const char *why, int *retry, iotca_errbuf *eb)
{
	const char *ep = e->endpoints[c->ep];
	int timeout = cc == CURLE_OPERATION_TIMEDOUT;
	long sent = 0;

	curl_easy_getinfo(h, CURLINFO_REQUEST_SIZE, &sent);
	if (sent == 0) {
		*retry = 1; /* nothing reached etcd: safe for any request */
		return iotca_errbuf_set(eb, IOTCA_EUNAVAIL,
		                        "etcd %s: no connection to %s (%s)",
		                        c->what, ep, why);
	}
	*retry = c->idempotent;
	return iotca_errbuf_set(
	    eb, timeout ? IOTCA_ETIMEDOUT : IOTCA_EUNAVAIL,
	    "etcd %s at %s: the request was sent but %s (%s)%s", c->what, ep,
	    timeout ? "no reply came in time" : "the connection broke", why,
	    c->idempotent ? "" : "; it may or may not have been applied");
}

/* Classifies a failed transfer; *retry says another endpoint may be
 * tried. */
static iotca_err
etcd_call_curl_failed(const iotca_etcd *e, CURL *h, etcd_call *c, CURLcode cc,
                      int *retry, iotca_errbuf *eb)
{
	const char *why = c->curl_err[0] ? c->curl_err : curl_easy_strerror(cc);

	switch (cc) {
	case CURLE_FILESIZE_EXCEEDED:
	case CURLE_WRITE_ERROR:
		return etcd_call_refused(e, c, cc, eb);
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_SSL_CONNECT_ERROR:
		*retry = 1;
		return iotca_errbuf_set(eb, IOTCA_EUNAVAIL,
		                        "etcd %s: cannot connect to %s (%s)",
		                        c->what, e->endpoints[c->ep], why);
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
		return etcd_call_lost(e, h, c, cc, why, retry, eb);
	default:
		return iotca_errbuf_set(eb, IOTCA_EINTERNAL,
		                        "etcd %s at %s: %s", c->what,
		                        e->endpoints[c->ep], why);
	}
}

/* An error etcd reported in the body. */
static iotca_err
etcd_call_etcd_error(const iotca_etcd *e, etcd_call *c, int code,
                     const char *msg, int *retry, iotca_errbuf *eb)
{
	const char *ep = e->endpoints[c->ep];
	iotca_err rc = etcd_error_map(code, msg);

	if (rc == IOTCA_ETOOBIG)
		return iotca_errbuf_set(
		    eb, rc,
		    "etcd %s at %s refused the request: %s; split it into "
		    "smaller requests or raise etcd's --max-txn-ops / "
		    "--max-request-bytes",
		    c->what, ep, msg);
	if (rc == IOTCA_EUNAVAIL)
		*retry = c->idempotent;
	return iotca_errbuf_set(eb, rc, "etcd %s at %s: %s (gRPC code %d)",
	                        c->what, ep, msg, code);
}

static iotca_err
etcd_call_http_result(const iotca_etcd *e, etcd_call *c, int *retry,
                      iotca_errbuf *eb)
{
	const char *ep = e->endpoints[c->ep];
	char msg[256];
	int code;

	if (c->raw)
		return IOTCA_OK;
	if ((c->status != 200 || c->stream) &&
	    etcd_parse_error(c->reply.data, c->reply.len, &code, msg,
	                     sizeof(msg)))
		return etcd_call_etcd_error(e, c, code, msg, retry, eb);
	if (c->status == 200)
		return IOTCA_OK;
	if (c->status == 503) {
		*retry = c->idempotent;
		return iotca_errbuf_set(eb, IOTCA_EUNAVAIL,
		                        "etcd %s at %s: HTTP 503", c->what, ep);
	}
	return iotca_errbuf_set(eb, IOTCA_EPROTO,
	                        "etcd %s at %s: unexpected HTTP %ld (is it the "
	                        "client URL of etcd 3.4 or newer?)",
	                        c->what, ep, c->status);
}

/* One attempt on endpoint c->ep with left_ms to go. */
static iotca_err
etcd_call_attempt(const iotca_etcd *e, CURL *h, etcd_call *c, long left_ms,
                  int *retry, iotca_errbuf *eb)
{
	char url[ETCD_URL_MAX];
	CURLcode cc;

	*retry = 0;
	iotca_buf_reset(&c->reply);
	c->write_rc = IOTCA_OK;
	c->curl_err[0] = '\0';
	c->status = 0;
	snprintf(url, sizeof(url), "%s%s", e->endpoints[c->ep], c->path);
	etcd_call_setopts(e, h, c, url, left_ms);
	cc = curl_easy_perform(h);
	/* the handle outlives c in the pool: no pointer into it may stay */
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, NULL);
	if (cc != CURLE_OK)
		return etcd_call_curl_failed(e, h, c, cc, retry, eb);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &c->status);
	return etcd_call_http_result(e, c, retry, eb);
}

/* Sleeps before the next round; -1 when the budget does not allow it. */
static int
etcd_call_backoff(int64_t deadline, int round)
{
	int64_t left = deadline - etcd_now_ms(), ms;
	struct timespec ts;

	if (left <= 0)
		return -1;
	ms = (int64_t)ETCD_BACKOFF_FIRST_MS << (round < 4 ? round : 4);
	if (ms > ETCD_BACKOFF_MAX_MS)
		ms = ETCD_BACKOFF_MAX_MS;
	if (ms > left)
		ms = left;
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (long)(ms % 1000) * 1000000L;
	nanosleep(&ts, NULL);
	return 0;
}

/* Records the endpoint that answered; logs when it changed. */
static void
etcd_call_note_success(iotca_etcd *e, unsigned from, unsigned to)
{
	if (from == to ||
	    !atomic_compare_exchange_strong(&e->current, &from, to))
		return;
	iotca_log_warn("ETCD-ENDPOINT-FAILOVER", "from=%s to=%s",
	               e->endpoints[from], e->endpoints[to]);
}

/* eb's message without its leading "etcd <what>: ". */
static const char *
etcd_msg_unprefixed(const iotca_errbuf *eb, const etcd_call *c)
{
	size_t n = strlen(c->what);

	if (strncmp(eb->msg, "etcd ", 5) == 0 &&
	    strncmp(eb->msg + 5, c->what, n) == 0 &&
	    strncmp(eb->msg + 5 + n, ": ", 2) == 0)
		return eb->msg + 5 + n + 2;
	return eb->msg;
}

/* Rewrites eb after the budget ran out; logs at most every few s. */
static void
etcd_call_gave_up(iotca_etcd *e, const etcd_call *c, iotca_errbuf *eb)
{
	char last[IOTCA_ERRMSG_MAX], q[IOTCA_LOG_QUOTE_MAX];
	int64_t now = etcd_now_ms();
	long long prev = atomic_load(&e->last_warn_ms);

	snprintf(last, sizeof(last), "%s", etcd_msg_unprefixed(eb, c));
	iotca_errbuf_set(eb, IOTCA_EUNAVAIL,
	                 "etcd %s: no endpoint answered within %ld ms (last: "
	                 "%s); check that etcd runs at %s",
	                 c->what, e->timeout_ms, last, e->endpoint_list);
	if (now - prev < ETCD_WARN_EVERY_MS ||
	    !atomic_compare_exchange_strong(&e->last_warn_ms, &prev, now))
		return;
	iotca_log_warn("ETCD-UNAVAILABLE", "op=%s endpoints=%s msg=%s", c->what,
	               e->endpoint_list, iotca_log_quote(q, sizeof(q), last));
}

/* Runs a request with failover; on success the reply is in c->reply. */
static iotca_err
etcd_call_run(iotca_etcd *e, etcd_call *c, iotca_errbuf *eb)
{
	int64_t deadline = etcd_now_ms() + e->timeout_ms, left;
	unsigned start = atomic_load(&e->current) % e->n_endpoints, i;
	iotca_err rc = IOTCA_EUNAVAIL;
	int retry = 1, round, tries = 0;
	iotca_errbuf own; /* also when eb is NULL: the log needs it */
	CURL *h = etcd_pool_get(e);

	if (h == NULL)
		return iotca_errbuf_set(eb, IOTCA_ENOMEM,
		                        "etcd: out of memory");
	iotca_errbuf_clear(&own);
	for (round = 0; retry; round++) {
		for (i = 0; i < e->n_endpoints && retry; i++, tries++) {
			left = deadline - etcd_now_ms();
			if (left <= 0 && tries > 0)
				goto out;
			c->ep = (start + i) % e->n_endpoints;
			rc = etcd_call_attempt(
			    e, h, c, left > 0 ? (long)left : 1, &retry, &own);
		}
		if (retry && etcd_call_backoff(deadline, round) != 0)
			break;
	}
out:
	etcd_pool_put(e, h);
	if (rc == IOTCA_OK) {
		etcd_call_note_success(e, start, c->ep);
		return rc;
	}
	if (rc == IOTCA_EUNAVAIL && retry)
		etcd_call_gave_up(e, c, &own);
	if (eb != NULL)
		*eb = own;
	return rc;
}

/* Sends a request whose body was built with build_rc. */
static iotca_err
etcd_call_send(iotca_etcd *e, etcd_call *c, iotca_err build_rc,
               iotca_errbuf *eb)
{
	if (build_rc != IOTCA_OK)
		return iotca_errbuf_set(eb, build_rc,
		                        "etcd %s: cannot build the request: %s",
		                        c->what, iotca_strerror(build_rc));
	return etcd_call_run(e, c, eb);
}

/* Names the endpoint in a parser's message. */
static iotca_err
etcd_call_parsed(const iotca_etcd *e, const etcd_call *c, iotca_err rc,
                 iotca_errbuf *eb)
{
	char msg[IOTCA_ERRMSG_MAX];

	if (rc == IOTCA_OK || eb == NULL)
		return rc;
	snprintf(msg, sizeof(msg), "%s", eb->msg);
	return iotca_errbuf_set(
	    eb, rc, "etcd %s at %s: %s%s", c->what, e->endpoints[c->ep], msg,
	    rc == IOTCA_EPROTO ? " (not what etcd's JSON gateway sends)" : "");
}

static iotca_err
etcd_check_key(const char *what, const char *key, size_t key_len,
               iotca_errbuf *eb)
{
	if (key == NULL || key_len == 0)
		return iotca_errbuf_set(eb, IOTCA_EINVAL,
		                        "etcd %s: the key is empty", what);
	return IOTCA_OK;
}

/* ---- key-value calls ---- */

iotca_err
iotca_etcd_range(iotca_etcd *e, const iotca_etcd_range_req *req,
                 iotca_etcd_range_result *out, iotca_errbuf *eb)
{
	etcd_call c;
	iotca_err rc;

	if (e == NULL || req == NULL || out == NULL)
		return iotca_errbuf_set(eb, IOTCA_EINVAL, "etcd range: no %s",
		                        e ? "request or result" : "client");
	if ((rc = etcd_check_key("range", req->key, req->key_len, eb)))
		return rc;
	etcd_call_init(&c, e, "range", "/v3/kv/range", 1);
	rc = etcd_call_send(e, &c, etcd_json_range_req(req, &c.body), eb);
	if (rc == IOTCA_OK)
		rc = etcd_call_parsed(
		    e, &c, etcd_parse_range(c.reply.data, c.reply.len, out, eb),
		    eb);
	etcd_call_free(&c);
	return rc;
}

iotca_err
iotca_etcd_get(iotca_etcd *e, const char *key, size_t key_len,
               iotca_etcd_kv *out, int *found, iotca_errbuf *eb)
{
	iotca_etcd_range_req req = {.key = key, .key_len = key_len};
	iotca_etcd_range_result r;
	iotca_err rc;

	if (out == NULL || found == NULL)
		return iotca_errbuf_set(eb, IOTCA_EINVAL,
		                        "etcd get: no result given");
	if ((rc = iotca_etcd_range(e, &req, &r, eb)) != IOTCA_OK)
		return rc;
	*found = r.n > 0;
	if (r.n > 0) {
		*out = r.kvs[0];
		memset(&r.kvs[0], 0, sizeof(r.kvs[0]));
	}
	iotca_etcd_range_result_free(&r);
	return IOTCA_OK;
}

/* Calls fn for each kv of a page; 1 when fn asked to stop. */
static int
etcd_walk_page(const iotca_etcd_range_result *r, iotca_etcd_kv_fn fn, void *arg)
{
	size_t i;

	for (i = 0; i < r->n; i++)
		if (fn(&r->kvs[i], arg) != 0)
			return 1;
	return 0;
}

/* The smallest key after kv's: its key with a NUL byte appended. */
static char *
etcd_key_after(const iotca_etcd_kv *kv, size_t *len)
{
	char *p = malloc(kv->key_len + 1);

	if (p == NULL)
		return NULL;
	memcpy(p, kv->key, kv->key_len);
	p[kv->key_len] = '\0';
	*len = kv->key_len + 1;
	return p;
}

/* One page of a prefix walk; a compacted snapshot becomes EABORTED. */
static iotca_err
etcd_prefix_page(iotca_etcd *e, const iotca_etcd_range_req *req,
                 iotca_etcd_range_result *r, iotca_errbuf *eb)
{
	iotca_errbuf own;
	iotca_err rc = iotca_etcd_range(e, req, r, &own);

	if (rc == IOTCA_EINVAL && req->revision > 0 &&
	    strstr(own.msg, "compacted") != NULL)
		return iotca_errbuf_set(eb, IOTCA_EABORTED,
		                        "etcd range_prefix: revision %lld was "
		                        "compacted during the walk; walk again",
		                        (long long)req->revision);
	if (rc != IOTCA_OK && eb != NULL)
		*eb = own;
	return rc;
}

/* The first request of a prefix walk; *end (malloc'd) backs range_end. */
static iotca_err
etcd_prefix_req_init(iotca_etcd_range_req *req, const char *prefix,
                     size_t prefix_len, int64_t page_size, char **end)
{
	memset(req, 0, sizeof(*req));
	req->limit = page_size;
	*end = NULL;
	if (prefix_len == 0) { /* every key: from "\0" to the end ("\0") */
		req->key = req->range_end = "";
		req->key_len = req->range_end_len = 1;
		return IOTCA_OK;
	}
	if ((*end = malloc(prefix_len)) == NULL)
		return IOTCA_ENOMEM;
	req->key = prefix;
	req->key_len = prefix_len;
	req->range_end = *end;
	req->range_end_len = iotca_etcd_prefix_end(prefix, prefix_len, *end);
	return IOTCA_OK;
}

/* Reads page after page from req on, all at the first page's revision. */
static iotca_err
etcd_prefix_walk(iotca_etcd *e, iotca_etcd_range_req *req, iotca_etcd_kv_fn fn,
                 void *arg, iotca_errbuf *eb)
{
	iotca_etcd_range_result r;
	char *next = NULL;
	int done;
	iotca_err rc;

	for (;;) {
		if ((rc = etcd_prefix_page(e, req, &r, eb)) != IOTCA_OK)
			break;
		if (req->revision == 0)
			req->revision = r.revision; /* the snapshot to walk */
		done = etcd_walk_page(&r, fn, arg) || !r.more || r.n == 0;
		free(next);
		next = done ? NULL
		            : etcd_key_after(&r.kvs[r.n - 1], &req->key_len);
		iotca_etcd_range_result_free(&r);
		if (done)
			break;
		if (next == NULL) {
			rc = iotca_errbuf_set(
			    eb, IOTCA_ENOMEM,
			    "etcd range_prefix: out of memory");
			break;
		}
		req->key = next;
	}
	free(next);
	return rc;
}

iotca_err
iotca_etcd_range_prefix(iotca_etcd *e, const char *prefix, size_t prefix_len,
                        int64_t page_size, iotca_etcd_kv_fn fn, void *arg,
                        int64_t *revision, iotca_errbuf *eb)
{
	iotca_etcd_range_req req;
	char *end = NULL;
	iotca_err rc;

	if (fn == NULL || page_size <= 0 || (prefix == NULL && prefix_len))
		return iotca_errbuf_set(eb, IOTCA_EINVAL,
		                        "etcd range_prefix: no callback, or "
		                        "page_size %lld not positive",
		                        (long long)page_size);
	rc = etcd_prefix_req_init(&req, prefix, prefix_len, page_size, &end);
	if (rc != IOTCA_OK)
		rc = iotca_errbuf_set(eb, rc,
		                      "etcd range_prefix: out of memory");
	else
		rc = etcd_prefix_walk(e, &req, fn, arg, eb);
	if (rc == IOTCA_OK && revision != NULL)
		*revision = req.revision;
	free(end);
	return rc;
}

iotca_err
iotca_etcd_put(iotca_etcd *e, const char *key, size_t key_len,
               const char *value, size_t value_len, int64_t lease,
               int64_t *revision, iotca_errbuf *eb)
{
	etcd_call c;
	iotca_err rc;

	if (e == NULL || (value == NULL && value_len > 0))
		return iotca_errbuf_set(eb, IOTCA_EINVAL,
		                        "etcd put: no client or no value");
	if ((rc = etcd_check_key("put", key, key_len, eb)))
		return rc;
	etcd_call_init(&c, e, "put", "/v3/kv/put", 0);
	rc = etcd_call_send(
	    e, &c,
	    etcd_json_put_req(key, key_len, value, value_len, lease, &c.body),
	    eb);
	if (rc == IOTCA_OK)
		rc = etcd_call_parsed(
		    e, &c,
		    etcd_parse_put(c.reply.data, c.reply.len, revision, eb),
		    eb);
	etcd_call_free(&c);
	return rc;
}

iotca_err
iotca_etcd_delete(iotca_etcd *e, const char *key, size_t key_len,
                  const char *range_end, size_t range_end_len, int64_t *deleted,
                  iotca_errbuf *eb)
{
	etcd_call c;
	iotca_err rc;

	if (e == NULL)
		return iotca_errbuf_set(eb, IOTCA_EINVAL,
		                        "etcd delete: no "
		                        "client");
	if ((rc = etcd_check_key("delete", key, key_len, eb)))
		return rc;
	etcd_call_init(&c, e, "delete", "/v3/kv/deleterange", 0);
	rc = etcd_call_send(e, &c,
	                    etcd_json_delete_req(key, key_len, range_end,
	                                         range_end_len, &c.body),
	                    eb);
	if (rc == IOTCA_OK)
		rc = etcd_call_parsed(
		    e, &c,
		    etcd_parse_delete(c.reply.data, c.reply.len, deleted, eb),
		    eb);
	etcd_call_free(&c);
	return rc;
}

/* ---- transactions ---- */

/* The responses must be those of the branch that ran, in order. */
static iotca_err
etcd_txn_check(const iotca_etcd_txn *t, const iotca_etcd_txn_result *r,
               iotca_errbuf *eb)
{
	iotca_etcd_branch b =
	    r->succeeded ? IOTCA_ETCD_SUCCESS : IOTCA_ETCD_FAILURE;
	size_t i;

	if (r->n != t->n_ops[b])
		return iotca_errbuf_set(eb, IOTCA_EPROTO,
		                        "%zu responses for %zu operations",
		                        r->n, t->n_ops[b]);
	for (i = 0; i < r->n; i++)
		if (r->results[i].type != t->ops[b][i].type)
			return iotca_errbuf_set(eb, IOTCA_EPROTO,
			                        "response %zu is of the wrong "
			                        "type",
			                        i);
	return IOTCA_OK;
}

static iotca_err
etcd_txn_parse(const iotca_etcd *e, const etcd_call *c, const iotca_etcd_txn *t,
               iotca_etcd_txn_result *out, iotca_errbuf *eb)
{
	iotca_etcd_txn_result r;
	iotca_err rc;

	rc = etcd_parse_txn(c->reply.data, c->reply.len, &r, eb);
	if (rc == IOTCA_OK && (rc = etcd_txn_check(t, &r, eb)) != IOTCA_OK)
		iotca_etcd_txn_result_free(&r);
	if (rc != IOTCA_OK)
		return etcd_call_parsed(e, c, rc, eb);
	if (out != NULL)
		*out = r;
	else
		iotca_etcd_txn_result_free(&r);
	return IOTCA_OK;
}

iotca_err
iotca_etcd_txn_commit(iotca_etcd *e, const iotca_etcd_txn *t,
                      iotca_etcd_txn_result *out, iotca_errbuf *eb)
{
	etcd_call c;
	iotca_err rc;

	if (e == NULL || t == NULL)
		return iotca_errbuf_set(eb, IOTCA_EINVAL,
		                        "etcd txn: no client or no txn");
	if (t->err != IOTCA_OK)
		return iotca_errbuf_set(
		    eb, t->err, "etcd txn: building it failed: %s%s",
		    iotca_strerror(t->err),
		    t->err == IOTCA_EINVAL ? " (an empty key or a bad enum)"
		                           : "");
	/* a txn that only reads may be sent again */
	etcd_call_init(&c, e, "txn", "/v3/kv/txn", !t->writes);
	rc = etcd_call_send(e, &c, etcd_json_txn_req(t, &c.body), eb);
	if (rc == IOTCA_OK)
		rc = etcd_txn_parse(e, &c, t, out, eb);
	etcd_call_free(&c);
	return rc;
}

/* ---- leases ---- */

iotca_err
iotca_etcd_lease_grant(iotca_etcd *e, int64_t ttl_s, int64_t *id,
                       iotca_errbuf *eb)
{
	etcd_call c;
	iotca_err rc;

	if (e == NULL || id == NULL || ttl_s <= 0)
		return iotca_errbuf_set(eb, IOTCA_EINVAL,
		                        "etcd lease grant: no client, no id or "
		                        "ttl %lld not positive",
		                        (long long)ttl_s);
	etcd_call_init(&c, e, "lease grant", "/v3/lease/grant", 0);
	rc =
	    etcd_call_send(e, &c, etcd_json_num_req("TTL", ttl_s, &c.body), eb);
	if (rc == IOTCA_OK)
		rc = etcd_call_parsed(e, &c,
		                      etcd_parse_lease_grant(c.reply.data,
		                                             c.reply.len, id,
		                                             NULL, eb),
		                      eb);
	etcd_call_free(&c);
	return rc;
}

iotca_err
iotca_etcd_lease_keepalive(iotca_etcd *e, int64_t id, int64_t *ttl_s,
                           iotca_errbuf *eb)
{
	etcd_call c;
	iotca_err rc;

	if (e == NULL)
		return iotca_errbuf_set(eb, IOTCA_EINVAL,
		                        "etcd lease keepalive: no client");
	etcd_call_init(&c, e, "lease keepalive", "/v3/lease/keepalive", 1);
	c.stream = 1;
	rc = etcd_call_send(e, &c, etcd_json_num_req("ID", id, &c.body), eb);
	if (rc == IOTCA_OK)
		rc = etcd_call_parsed(e, &c,
		                      etcd_parse_lease_keepalive(
		                          c.reply.data, c.reply.len, ttl_s, eb),
		                      eb);
	etcd_call_free(&c);
	return rc;
}

iotca_err
iotca_etcd_lease_revoke(iotca_etcd *e, int64_t id, iotca_errbuf *eb)
{
	etcd_call c;
	iotca_err rc;

	if (e == NULL)
		return iotca_errbuf_set(eb, IOTCA_EINVAL,
		                        "etcd lease revoke: no client");
	etcd_call_init(&c, e, "lease revoke", "/v3/lease/revoke", 0);
	rc = etcd_call_send(e, &c, etcd_json_num_req("ID", id, &c.body), eb);
	etcd_call_free(&c);
	return rc;
}

/* ---- health ---- */

/* Asks one endpoint; appends what was wrong to why. */
static iotca_err
etcd_health_one(iotca_etcd *e, CURL *h, unsigned ep, long left_ms,
                iotca_buf *why)
{
	iotca_errbuf one;
	etcd_call c;
	int retry;
	iotca_err rc;

	etcd_call_init(&c, e, "health", "/health", 1);
	c.raw = 1;
	c.ep = ep;
	rc = etcd_call_attempt(e, h, &c, left_ms, &retry, &one);
	if (rc == IOTCA_OK)
		rc = etcd_parse_health(c.reply.data, c.reply.len, &one);
	if (rc != IOTCA_OK)
		iotca_buf_printf(why, "%s%s: %s", why->len ? "; " : "",
		                 e->endpoints[ep], one.msg);
	etcd_call_free(&c);
	return rc;
}

iotca_err
iotca_etcd_health(iotca_etcd *e, iotca_errbuf *eb)
{
	int64_t deadline, left;
	unsigned start, i;
	iotca_buf why;
	iotca_err rc = IOTCA_EUNAVAIL;
	CURL *h;

	if (e == NULL)
		return iotca_errbuf_set(eb, IOTCA_EINVAL,
		                        "etcd health: no "
		                        "client");
	if ((h = etcd_pool_get(e)) == NULL)
		return iotca_errbuf_set(eb, IOTCA_ENOMEM,
		                        "etcd: out of memory");
	iotca_buf_init(&why, IOTCA_ERRMSG_MAX);
	deadline = etcd_now_ms() + e->timeout_ms;
	start = atomic_load(&e->current) % e->n_endpoints;
	for (i = 0; i < e->n_endpoints && rc != IOTCA_OK; i++) {
		if ((left = deadline - etcd_now_ms()) <= 0)
			break;
		rc = etcd_health_one(e, h, (start + i) % e->n_endpoints,
		                     (long)left, &why);
	}
	etcd_pool_put(e, h);
	if (rc != IOTCA_OK)
		iotca_errbuf_set(eb, IOTCA_EUNAVAIL,
		                 "etcd health: no endpoint is healthy (%s)",
		                 why.data ? why.data : "no time left");
	iotca_buf_free(&why);
	return rc == IOTCA_OK ? IOTCA_OK : IOTCA_EUNAVAIL;
}
