/*
 * watch.c - etcd watches, each on a thread of its own.
 *
 * A watch is a long POST to <endpoint>/v3/watch with a create_request; the
 * gateway answers with a chunked stream of newline-separated
 * {"result":{...}} objects, one per WatchResponse. The watch thread
 * assembles lines in a buffer capped at max_reply, hands each message's
 * events to the callback, then an IOTCA_ETCD_EVENT_PROGRESS, and remembers
 * that revision (last_rev). When the stream ends it reconnects with
 * backoff, trying the endpoints in turn, from the revision after last_rev,
 * so that no event is lost or repeated. When etcd says that revision was
 * compacted, the watch restarts from the current revision and delivers an
 * IOTCA_ETCD_EVENT_RESET (kv.mod_revision holds the revision the new watch
 * started after) once the new stream is in place; the same happens when
 * one message exceeds max_reply, as those events cannot be read.
 *
 * What etcd 3.4.23's gateway sends (int64s as strings, defaults left out):
 *   created:  {"result":{"header":{...,"revision":"H"},"created":true}}
 *   events:   {"result":{"header":{...,"revision":"H"},"events":[...]}}
 *   progress: {"result":{"header":{...,"revision":"H"}}}  (progress_notify)
 *   canceled: {"result":{"header":{...},"canceled":true,
 *              "compact_revision":"C"}} or with "cancel_reason"
 *   errors:   {"error":{"grpc_code":14,"message":...}}
 * A message holds all the events of each revision it covers (we never ask
 * for fragments). H is the store's revision, which is a safe progress mark
 * only on a progress notification: on "created" with a start_revision at
 * or before H the events from start_revision on follow it, and a stream
 * catching up sends batches of at most 1000 revisions each headed with the
 * same H (seen: start 5, H 1105, events 5-1004, then 1005-1104). So the
 * PROGRESS after a message carries H only for a progress notification;
 * after events, the newest event's revision; after "created", the
 * revision the stream starts after (H when it starts from now).
 *
 * iotca_etcd_watch_start returns once etcd has created the watch, so a
 * write made after it returns is seen even when start_revision is 0. When
 * no endpoint creates it within timeout_ms it fails with IOTCA_EUNAVAIL;
 * when etcd refuses it (an empty range, ...) with that error at once.
 *
 * The transfer runs on a private curl multi handle so that
 * iotca_etcd_watch_stop can interrupt it at once with curl_multi_wakeup
 * instead of waiting for a progress callback.
 *
 * Threads: the fields under "watch thread" are touched by the watch thread
 * only; the start handshake and last_eb are under lock; stop is atomic.
 */
#include "etcd/etcd_int.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf/buf.h"
#include "log/log.h"

#define WATCH_BACKOFF_MIN_MS 100
#define WATCH_BACKOFF_MAX_MS 2000
#define WATCH_POLL_MS        1000
#define WATCH_KEEPIDLE_S     10
#define WATCH_KEEPINTVL_S    5

struct iotca_etcd_watch {
	iotca_etcd *e;
	char *key, *end;
	size_t key_len, end_len;
	iotca_etcd_watch_fn fn;
	void *arg;
	pthread_t thread;
	int thread_running;
	CURLM *multi;
	CURL *easy;
	atomic_int stop;

	pthread_mutex_t lock; /* the fields below, and cond */
	pthread_cond_t cond;  /* start handshake, stop during a backoff */
	int started;          /* the first stream was created, or failed */
	int up;               /* a stream is in place (created, not ended) */
	iotca_errbuf start_eb;
	iotca_errbuf last_eb; /* why the last stream failed */

	/* watch thread */
	unsigned ep;
	int64_t start_rev; /* asked for by the caller; 0 after a reset */
	int64_t last_rev;  /* the last PROGRESS: every event up to it was
	                      delivered; 0: none yet */
	int64_t req_rev;   /* start_revision of the current stream */
	int created;       /* the current stream was created */
	int reset_pending; /* deliver RESET once the next stream is created */
	int restart_now;   /* reconnect without backoff */
	int fatal;         /* an error that retrying will not fix */
	iotca_buf line;
	iotca_errbuf conn_eb; /* why the current stream ended */
};

/* ---- the start handshake ---- */

static void
watch_signal_started(iotca_etcd_watch *w, const iotca_errbuf *eb)
{
	pthread_mutex_lock(&w->lock);
	if (!w->started) {
		w->started = 1;
		w->start_eb = *eb;
		pthread_cond_broadcast(&w->cond);
	}
	pthread_mutex_unlock(&w->lock);
}

static void
watch_abs_time(struct timespec *ts, long ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* Waits for the first stream; IOTCA_EUNAVAIL when none came in time. */
static iotca_err
watch_wait_started(iotca_etcd_watch *w, iotca_errbuf *eb)
{
	struct timespec until;
	iotca_err rc;

	watch_abs_time(&until, w->e->timeout_ms);
	pthread_mutex_lock(&w->lock);
	while (!w->started &&
	       pthread_cond_timedwait(&w->cond, &w->lock, &until) == 0)
		;
	if (w->started) {
		rc = w->start_eb.code;
		if (rc != IOTCA_OK && eb != NULL)
			*eb = w->start_eb;
	} else {
		rc = iotca_errbuf_set(eb, IOTCA_EUNAVAIL,
		                      "etcd watch: no stream within %ld ms "
		                      "(last: %s); check that etcd runs at %s",
		                      w->e->timeout_ms,
		                      w->last_eb.msg[0] ? w->last_eb.msg
		                                        : "no answer",
		                      w->e->endpoint_list);
	}
	pthread_mutex_unlock(&w->lock);
	return rc;
}

/* Sleeps ms unless stopped first. */
static void
watch_sleep(iotca_etcd_watch *w, long ms)
{
	struct timespec until;

	watch_abs_time(&until, ms);
	pthread_mutex_lock(&w->lock);
	while (!atomic_load(&w->stop) &&
	       pthread_cond_timedwait(&w->cond, &w->lock, &until) == 0)
		;
	pthread_mutex_unlock(&w->lock);
}

/* ---- one message ---- */

/* Ends the current stream with an error. */
static int
watch_fail(iotca_etcd_watch *w, iotca_err rc, const char *msg)
{
	iotca_errbuf_set(&w->conn_eb, rc, "etcd watch at %s: %s",
	                 w->e->endpoints[w->ep], msg);
	return -1;
}

/* Delivers a RESET or a PROGRESS of last_rev. */
static void
watch_deliver_mark(iotca_etcd_watch *w, iotca_etcd_event_type type)
{
	static char empty[1];
	iotca_etcd_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.type = type;
	ev.kv.key = empty;
	ev.kv.value = empty;
	ev.kv.mod_revision = w->last_rev;
	ev.prev_kv.key = empty;
	ev.prev_kv.value = empty;
	w->fn(&ev, w->arg);
}

/* The stream is in place: where it starts, and the RESET if one is due. */
static void
watch_created(iotca_etcd_watch *w, const etcd_watch_msg *m)
{
	w->created = 1;
	if (w->req_rev > 0) {
		if (w->last_rev < w->req_rev - 1)
			w->last_rev = w->req_rev - 1;
	} else if (w->last_rev < m->revision) {
		w->last_rev = m->revision; /* "from now": after this one */
	}
	if (w->reset_pending) {
		w->reset_pending = 0;
		watch_deliver_mark(w, IOTCA_ETCD_EVENT_RESET);
	}
}

/* After the created message's PROGRESS: the stream counts as up. */
static void
watch_up(iotca_etcd_watch *w)
{
	iotca_errbuf ok;

	pthread_mutex_lock(&w->lock);
	w->up = 1;
	pthread_mutex_unlock(&w->lock);
	if (w->started)
		iotca_log_info(
		    "ETCD-WATCH-RECONNECTED", "endpoint=%s from_revision=%lld",
		    w->e->endpoints[w->ep], (long long)w->last_rev + 1);
	iotca_errbuf_clear(&ok);
	watch_signal_started(w, &ok);
}

/* The stream ended (conn_eb says why): down until the next is created. */
static void
watch_down(iotca_etcd_watch *w)
{
	pthread_mutex_lock(&w->lock);
	w->up = 0;
	w->last_eb = w->conn_eb;
	pthread_mutex_unlock(&w->lock);
}

/* A compaction restarts the watch from now; other reasons end it. */
static int
watch_canceled(iotca_etcd_watch *w, const etcd_watch_msg *m)
{
	char q[IOTCA_LOG_QUOTE_MAX];

	if (m->compact_revision > 0) {
		iotca_log_warn("ETCD-WATCH-COMPACTED",
		               "endpoint=%s from_revision=%lld "
		               "compact_revision=%lld action=reset",
		               w->e->endpoints[w->ep], (long long)w->req_rev,
		               (long long)m->compact_revision);
		watch_fail(w, IOTCA_EUNAVAIL,
		           "etcd compacted the revisions the watch needed; "
		           "restarting from the current revision");
		w->last_rev = 0;
		w->start_rev = 0;
		w->reset_pending = 1;
		w->restart_now = 1;
		return -1;
	}
	if (!w->started)
		w->fatal = 1; /* etcd refused the watch itself */
	iotca_log_error("ETCD-WATCH-CANCELED", "endpoint=%s reason=%s",
	                w->e->endpoints[w->ep],
	                iotca_log_quote(q, sizeof(q), m->cancel_reason));
	return watch_fail(w, IOTCA_EINVAL,
	                  m->cancel_reason[0] ? m->cancel_reason
	                                      : "etcd canceled the watch");
}

/* Delivers a message's events, then its PROGRESS (unless stopped in
 * between): the newest event's revision, or on a progress notification
 * (no events, not "created") the header's. */
static void
watch_dispatch(iotca_etcd_watch *w, const etcd_watch_msg *m)
{
	int64_t rev = 0;
	size_t i;

	for (i = 0; i < m->n_events; i++) {
		if (atomic_load(&w->stop))
			return;
		w->fn(&m->events[i], w->arg);
		if (m->events[i].kv.mod_revision > rev)
			rev = m->events[i].kv.mod_revision;
	}
	if (m->n_events == 0 && !m->created)
		rev = m->revision;
	if (rev > w->last_rev)
		w->last_rev = rev;
	if (!atomic_load(&w->stop))
		watch_deliver_mark(w, IOTCA_ETCD_EVENT_PROGRESS);
}

/* Handles one line of the stream; -1 ends the stream. */
static int
watch_line(iotca_etcd_watch *w, const char *p, size_t n)
{
	etcd_watch_msg m;
	iotca_errbuf eb;
	iotca_err rc;
	int ret = 0;

	if (n > 0 && p[n - 1] == '\r')
		n--;
	if (n == 0)
		return 0;
	if ((rc = etcd_parse_watch(p, n, &m, &eb)) != IOTCA_OK) {
		if (!w->started && rc != IOTCA_EUNAVAIL && rc != IOTCA_ENOMEM)
			w->fatal = 1; /* not etcd, or it refused the request */
		return watch_fail(w, rc, eb.msg);
	}
	if (m.canceled) {
		ret = watch_canceled(w, &m);
	} else {
		if (m.created)
			watch_created(w, &m);
		watch_dispatch(w, &m);
		if (m.created)
			watch_up(w);
	}
	etcd_watch_msg_free(&m);
	return ret;
}

/* Handles every complete line in the buffer; keeps the rest. */
static int
watch_lines(iotca_etcd_watch *w)
{
	char *p = w->line.data, *nl;
	size_t left = w->line.len, n;

	while ((nl = memchr(p, '\n', left)) != NULL) {
		n = (size_t)(nl - p);
		if (watch_line(w, p, n) != 0)
			return -1;
		p = nl + 1;
		left -= n + 1;
	}
	memmove(w->line.data, p, left);
	w->line.len = left;
	w->line.data[left] = '\0';
	return 0;
}

/* A message larger than the cap cannot be read: restart from now. */
static size_t
watch_overflow(iotca_etcd_watch *w)
{
	iotca_log_error("ETCD-WATCH-OVERFLOW",
	                "endpoint=%s max_reply=%zu revision=%lld action=reset "
	                "msg=\"a watch message exceeds max_reply; raise it\"",
	                w->e->endpoints[w->ep], w->e->max_reply,
	                (long long)w->last_rev);
	watch_fail(w, IOTCA_EOVERFLOW,
	           "a message exceeded max_reply; restarting from the "
	           "current revision");
	w->last_rev = 0;
	w->start_rev = 0;
	w->reset_pending = 1;
	w->restart_now = 1;
	return 0;
}

static size_t
watch_write(char *p, size_t size, size_t n, void *arg)
{
	iotca_etcd_watch *w = arg;
	iotca_err rc;

	if (atomic_load(&w->stop))
		return 0;
	rc = iotca_buf_append(&w->line, p, size * n);
	if (rc == IOTCA_ETOOBIG)
		return watch_overflow(w);
	if (rc != IOTCA_OK) {
		watch_fail(w, rc, "out of memory");
		return 0;
	}
	return watch_lines(w) == 0 ? size * n : 0;
}

/* ---- one stream ---- */

static void
watch_setopts(iotca_etcd_watch *w, const char *url, const char *body)
{
	CURL *h = w->easy;

	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
	                 (curl_off_t)strlen(body));
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
	                 w->e->connect_timeout_ms);
}

/* Runs the transfer until it ends or the watch is stopped. */
static CURLcode
watch_transfer(iotca_etcd_watch *w)
{
	CURLcode cc = CURLE_OK;
	CURLMsg *m;
	int running = 1, queued;

	curl_multi_add_handle(w->multi, w->easy);
	while (running && !atomic_load(&w->stop)) {
		if (curl_multi_perform(w->multi, &running) != CURLM_OK)
			break;
		if (running)
			curl_multi_poll(w->multi, NULL, 0, WATCH_POLL_MS, NULL);
	}
	while ((m = curl_multi_info_read(w->multi, &queued)) != NULL)
		if (m->msg == CURLMSG_DONE)
			cc = m->data.result;
	curl_multi_remove_handle(w->multi, w->easy);
	return cc;
}

/* Says why a stream ended, if the line handler did not. */
static void
watch_stream_ended(iotca_etcd_watch *w, CURLcode cc, const char *curl_err)
{
	char q[IOTCA_LOG_QUOTE_MAX];

	if (w->conn_eb.code == IOTCA_OK)
		watch_fail(w, IOTCA_EUNAVAIL,
		           cc == CURLE_OK ? "etcd closed the stream"
		           : curl_err[0]  ? curl_err
		                          : curl_easy_strerror(cc));
	watch_down(w);
	if (w->created)
		iotca_log_warn("ETCD-WATCH-DISCONNECTED",
		               "endpoint=%s revision=%lld msg=%s",
		               w->e->endpoints[w->ep], (long long)w->last_rev,
		               iotca_log_quote(q, sizeof(q), w->conn_eb.msg));
	else
		iotca_log_debug("ETCD-WATCH-CONNECT-FAILED",
		                "endpoint=%s msg=%s", w->e->endpoints[w->ep],
		                iotca_log_quote(q, sizeof(q), w->conn_eb.msg));
}

/* Opens one stream from the revision after the last delivered and reads
 * it until it ends. */
static void
watch_stream_run(iotca_etcd_watch *w)
{
	char url[ETCD_URL_MAX], curl_err[CURL_ERROR_SIZE] = "";
	char *body = NULL;
	CURLcode cc;

	w->created = 0;
	w->restart_now = 0;
	iotca_buf_reset(&w->line);
	iotca_errbuf_clear(&w->conn_eb);
	w->req_rev = w->last_rev > 0 ? w->last_rev + 1 : w->start_rev;
	if (etcd_json_watch_req(w->key, w->key_len, w->end, w->end_len,
	                        w->req_rev, &body) != IOTCA_OK) {
		watch_fail(w, IOTCA_ENOMEM, "out of memory for the request");
		watch_stream_ended(w, CURLE_OK, curl_err);
		return;
	}
	snprintf(url, sizeof(url), "%s/v3/watch", w->e->endpoints[w->ep]);
	watch_setopts(w, url, body);
	curl_easy_setopt(w->easy, CURLOPT_ERRORBUFFER, curl_err);
	cc = watch_transfer(w);
	/* a complete reply that did not end in a newline (an error body);
	 * what is left after a broken connection is just cut short */
	if (cc == CURLE_OK && !atomic_load(&w->stop) &&
	    w->conn_eb.code == IOTCA_OK && !w->restart_now && w->line.len > 0)
		watch_line(w, w->line.data, w->line.len);
	curl_easy_setopt(w->easy, CURLOPT_ERRORBUFFER, NULL);
	if (!atomic_load(&w->stop) && !w->restart_now)
		watch_stream_ended(w, cc, curl_err);
	else if (!atomic_load(&w->stop))
		watch_down(w); /* a restart after a gap: logged already */
	free(body);
}

static void *
watch_main(void *arg)
{
	iotca_etcd_watch *w = arg;
	long backoff = WATCH_BACKOFF_MIN_MS;

	while (!atomic_load(&w->stop) && !w->fatal) {
		watch_stream_run(w);
		if (atomic_load(&w->stop) || w->fatal)
			break;
		if (w->restart_now)
			continue;
		if (w->created)
			backoff =
			    WATCH_BACKOFF_MIN_MS; /* it worked: start over */
		else
			w->ep = (w->ep + 1) % w->e->n_endpoints;
		watch_sleep(w, backoff);
		backoff = backoff * 2 > WATCH_BACKOFF_MAX_MS
		              ? WATCH_BACKOFF_MAX_MS
		              : backoff * 2;
	}
	if (w->fatal)
		watch_signal_started(w, &w->conn_eb);
	return NULL;
}

/* ---- start, stop ---- */

static void
watch_free(iotca_etcd_watch *w)
{
	if (w == NULL)
		return;
	if (w->easy != NULL)
		curl_easy_cleanup(w->easy);
	if (w->multi != NULL)
		curl_multi_cleanup(w->multi);
	iotca_buf_free(&w->line);
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
	free(w->key);
	free(w->end);
	free(w);
}

static char *
watch_dup(const char *p, size_t n)
{
	char *d = malloc(n + 1);

	if (d != NULL) {
		if (n > 0)
			memcpy(d, p, n);
		d[n] = '\0';
	}
	return d;
}

/* The curl side of a watch: its own handle, no reply cap but the line's,
 * keepalive probes that notice a dead peer within a minute. */
static iotca_err
watch_curl_init(iotca_etcd_watch *w)
{
	if ((w->multi = curl_multi_init()) == NULL ||
	    (w->easy = curl_easy_init()) == NULL)
		return IOTCA_ENOMEM;
	etcd_curl_defaults(w->e, w->easy);
	curl_easy_setopt(w->easy, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)0);
	curl_easy_setopt(w->easy, CURLOPT_TCP_KEEPIDLE, (long)WATCH_KEEPIDLE_S);
	curl_easy_setopt(w->easy, CURLOPT_TCP_KEEPINTVL,
	                 (long)WATCH_KEEPINTVL_S);
	curl_easy_setopt(w->easy, CURLOPT_WRITEFUNCTION, watch_write);
	curl_easy_setopt(w->easy, CURLOPT_WRITEDATA, w);
	return IOTCA_OK;
}

static iotca_err
watch_new(iotca_etcd *e, const char *key, size_t key_len, const char *range_end,
          size_t range_end_len, iotca_etcd_watch **out)
{
	pthread_condattr_t ca;
	iotca_etcd_watch *w = calloc(1, sizeof(*w));

	if (w == NULL)
		return IOTCA_ENOMEM;
	pthread_mutex_init(&w->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w->cond, &ca);
	pthread_condattr_destroy(&ca);
	iotca_buf_init(&w->line, e->max_reply);
	w->e = e;
	w->ep = atomic_load(&e->current) % e->n_endpoints;
	w->key = watch_dup(key, key_len);
	w->key_len = key_len;
	if (range_end != NULL && range_end_len > 0) {
		w->end = watch_dup(range_end, range_end_len);
		w->end_len = range_end_len;
	}
	if (w->key == NULL ||
	    (range_end_len > 0 && range_end != NULL && w->end == NULL) ||
	    watch_curl_init(w) != IOTCA_OK) {
		watch_free(w);
		return IOTCA_ENOMEM;
	}
	*out = w;
	return IOTCA_OK;
}

iotca_err
iotca_etcd_watch_start(iotca_etcd *e, const char *key, size_t key_len,
                       const char *range_end, size_t range_end_len,
                       int64_t start_revision, iotca_etcd_watch_fn fn,
                       void *arg, iotca_etcd_watch **out, iotca_errbuf *eb)
{
	iotca_etcd_watch *w = NULL;
	iotca_err rc;

	if (e == NULL || key == NULL || key_len == 0 || fn == NULL ||
	    out == NULL || start_revision < 0)
		return iotca_errbuf_set(
		    eb, IOTCA_EINVAL,
		    "etcd watch: no client, key, callback or "
		    "result, or a negative revision");
	if (watch_new(e, key, key_len, range_end, range_end_len, &w))
		return iotca_errbuf_set(eb, IOTCA_ENOMEM,
		                        "etcd watch: out of memory");
	w->fn = fn;
	w->arg = arg;
	w->start_rev = start_revision;
	if (pthread_create(&w->thread, NULL, watch_main, w) != 0) {
		watch_free(w);
		return iotca_errbuf_set(eb, IOTCA_EINTERNAL,
		                        "etcd watch: cannot start a thread");
	}
	w->thread_running = 1;
	if ((rc = watch_wait_started(w, eb)) != IOTCA_OK) {
		iotca_etcd_watch_stop(w);
		return rc;
	}
	*out = w;
	return IOTCA_OK;
}

iotca_err
iotca_etcd_watch_status(iotca_etcd_watch *w, iotca_errbuf *eb)
{
	iotca_err rc = IOTCA_OK;

	pthread_mutex_lock(&w->lock);
	if (!w->up)
		rc = iotca_errbuf_set(eb, IOTCA_EUNAVAIL, "%s",
		                      w->last_eb.msg[0]
		                          ? w->last_eb.msg
		                          : "etcd watch: no stream yet");
	pthread_mutex_unlock(&w->lock);
	return rc;
}

void
iotca_etcd_watch_stop(iotca_etcd_watch *w)
{
	if (w == NULL)
		return;
	atomic_store(&w->stop, 1);
	pthread_mutex_lock(&w->lock);
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	curl_multi_wakeup(w->multi);
	if (w->thread_running)
		pthread_join(w->thread, NULL);
	watch_free(w);
}
