/*
 * feed.c - the change feed's ring, its revisions, and the thread that
 * keeps them moving.
 *
 * Which revision can be answered. etcd sends a watcher all the events of
 * one revision in one message, and the messages in revision order. lib/etcd
 * hands them to the callback one event at a time and does not say where a
 * message ends (nor its header revision). So when the callback sees an
 * event of revision r, every revision before r is complete, but r itself
 * may have more events to come: an upload of 10,000 rows is 10,000 events
 * of one revision, and a query that ran between two of them must not
 * answer r, or its caller, passing r next time, would never see the rest.
 *
 * So `complete`, the revision answered, only moves:
 *   - to r - 1 when an event of revision r arrives;
 *   - to m when a put of the mark key arrives at revision m. The mark
 *     is written only by plain puts: the only event of its revision. (A
 *     delete of it may be part of a larger one, e.g. a range delete, and
 *     counts as any other event.)
 * When a change is pending (its revision r is not complete yet) and no
 * later event comes to complete it, the feed's thread puts the mark key
 * a few ms later; its revision m is after r, so its arrival completes r.
 * Replicas may each put a mark for the same change; any one completes it
 * for all.
 *
 * Every change up to `complete` has therefore been delivered, and each
 * was stored in the ring, or dropped with `floor` raised to its revision
 * (the ring was full, or it could not be stored). `floor` starts at the
 * revision the watch started after. A query from after_revision >= floor
 * lists entries from the ring; from before it, the caller starts over
 * (reset). No change a caller has not seen is ever skipped.
 *
 * Liveness. The thread asks etcd for its health every FEED_PROBE_MS, and
 * a mark put but not delivered within FEED_STALL_MS means the watch is
 * stuck (a stream to an etcd member cut off from the others delivers
 * nothing and says nothing); either, or a mark that cannot be written,
 * makes queries UNAVAILABLE until it clears: the answers would still be
 * right, but stale. So that a stuck watch shows when nothing changes
 * too, a feed that has seen no event for FEED_IDLE_MARK_MS puts a mark;
 * the replicas of a service see each other's, so an idle service writes
 * about one mark per FEED_IDLE_MARK_MS.
 *
 * A watch that restarts after a gap (etcd compacted the revisions it
 * needed) resets the feed: the ring empties and the floor moves to where
 * the new watch starts, so every caller starts over.
 */
#include "feed.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log/log.h"
#include "rand/rand.h"

#define FEED_MARK_DELAY_MS 20 /* plus 0-31 ms, per replica */
#define FEED_RETRY_MS      1000
#define FEED_PROBE_MS      2000
#define FEED_STALL_MS      5000
#define FEED_IDLE_MARK_MS  10000
#define FEED_KEY_MAX       256
#define FEED_NEVER         INT64_MAX

typedef struct feed_entry {
	int64_t rev;
	void *data; /* from parse; freed here */
	size_t size;
} feed_entry;

struct feed {
	/* written by feed_start, then read-only */
	iotca_etcd *etcd;
	char name[32];
	char prefix[FEED_KEY_MAX], mark[FEED_KEY_MAX];
	size_t prefix_len, mark_len;
	size_t max_entries, max_bytes;
	feed_parse_fn parse;
	void *arg;
	long mark_delay_ms;
	iotca_etcd_watch *watch;
	pthread_t thread;
	int thread_running;

	pthread_mutex_t mu;  /* everything below */
	pthread_cond_t cond; /* wakes the thread: a new revision, a mark
	                        delivered, stop */
	feed_entry *ring;    /* max_entries slots; ring[head] is the oldest */
	size_t head, n, bytes;
	int64_t floor;    /* every change seen after it is in the ring */
	int64_t complete; /* every change up to it has been seen */
	int64_t newest;   /* the revision of the newest event seen */
	int64_t mark_rev; /* the mark put and not yet seen; 0: none */
	int64_t mark_at;  /* when it was put (ms) */
	int64_t mark_due; /* when to put one (ms); 0: not decided */
	int64_t retry_at; /* no mark before (ms): the last put failed */
	int64_t event_at; /* when the last event arrived (ms) */
	int etcd_down;    /* the last health probe failed: down_eb */
	int mark_failed;  /* the last mark put failed: mark_eb */
	int stalled;      /* mark_rev was not delivered in time */
	iotca_errbuf down_eb, mark_eb;
	int stop;
};

static int64_t
feed_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the ring; all under the lock ---- */

static feed_entry *
feed_at(feed *f, size_t i)
{
	return &f->ring[(f->head + i) % f->max_entries];
}

static void
feed_raise_floor(feed *f, int64_t rev)
{
	if (rev > f->floor)
		f->floor = rev;
}

static void
feed_complete(feed *f, int64_t rev)
{
	if (rev > f->complete)
		f->complete = rev;
}

/* Drops the oldest entry: who has not seen it must start over. */
static void
feed_drop_oldest(feed *f)
{
	feed_entry *e = feed_at(f, 0);

	feed_raise_floor(f, e->rev);
	f->bytes -= e->size;
	free(e->data);
	e->data = NULL;
	f->head = (f->head + 1) % f->max_entries;
	f->n--;
}

/* Appends a change, dropping the oldest ones to make room. */
static void
feed_push(feed *f, int64_t rev, void *data, size_t size)
{
	feed_entry *e;

	if (size > f->max_bytes) {
		free(data);
		feed_raise_floor(f, rev);
		return;
	}
	while (f->n > 0 &&
	       (f->n == f->max_entries || f->bytes + size > f->max_bytes))
		feed_drop_oldest(f);
	e = feed_at(f, f->n);
	e->rev = rev;
	e->data = data;
	e->size = size;
	f->n++;
	f->bytes += size;
}

static void
feed_clear(feed *f)
{
	while (f->n > 0)
		feed_drop_oldest(f);
	f->head = 0;
}

/* The index of the first entry of a revision after rev (n if none). The
 * watch delivers in revision order, so the ring is sorted. */
static size_t
feed_find(feed *f, int64_t rev)
{
	size_t lo = 0, hi = f->n, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (feed_at(f, mid)->rev <= rev)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* ---- the watch thread ---- */

/* The watch restarted after a gap, from after rev: start over there. */
static void
feed_reset(feed *f, int64_t rev)
{
	pthread_mutex_lock(&f->mu);
	feed_clear(f);
	if (rev < f->complete)
		rev = f->complete;
	f->floor = f->complete = f->newest = rev;
	f->mark_rev = 0;
	f->stalled = 0;
	pthread_cond_signal(&f->cond);
	pthread_mutex_unlock(&f->mu);
	iotca_log_warn("CHANGE-FEED-RESET",
	               "feed=%s revision=%lld msg=\"the watch restarted after "
	               "a gap; every caller starts over\"",
	               f->name, (long long)rev);
}

static int
feed_is_key(const iotca_etcd_kv *kv, const char *key, size_t len)
{
	return kv->key_len == len && memcmp(kv->key, key, len) == 0;
}

static int
feed_is_data(const feed *f, const iotca_etcd_kv *kv)
{
	return kv->key_len > f->prefix_len &&
	       memcmp(kv->key, f->prefix, f->prefix_len) == 0;
}

static void
feed_on_event(const iotca_etcd_event *ev, void *arg)
{
	feed *f = arg;
	int64_t rev = ev->kv.mod_revision;
	void *data = NULL;
	size_t size = 0;
	iotca_err rc = IOTCA_OK;
	int wake = 0;

	if (ev->type == IOTCA_ETCD_EVENT_RESET) {
		feed_reset(f, rev);
		return;
	}
	if (feed_is_data(f, &ev->kv))
		rc = f->parse(ev, ev->kv.key + f->prefix_len,
		              ev->kv.key_len - f->prefix_len, &data, &size,
		              f->arg);
	pthread_mutex_lock(&f->mu);
	f->event_at = feed_now_ms();
	if (rev > f->newest) { /* every revision before rev has arrived */
		feed_complete(f, rev - 1);
		f->newest = rev;
		wake = 1;
	}
	if (ev->type == IOTCA_ETCD_EVENT_PUT &&
	    feed_is_key(&ev->kv, f->mark, f->mark_len)) {
		feed_complete(f, rev); /* a plain put: alone in its revision */
		wake = 1;
	}
	if (rc != IOTCA_OK)
		feed_raise_floor(f, rev); /* not stored: start over */
	else if (data != NULL)
		feed_push(f, rev, data, size);
	if (wake)
		pthread_cond_signal(&f->cond);
	pthread_mutex_unlock(&f->mu);
}

/* ---- the feed's thread: marks and probes ---- */

/* Puts the mark key, without the lock meanwhile. */
static void
feed_put_mark(feed *f)
{
	char val[32];
	iotca_errbuf eb;
	int64_t rev = 0;
	iotca_err rc;

	snprintf(val, sizeof(val), "%lld", (long long)time(NULL));
	pthread_mutex_unlock(&f->mu);
	rc = iotca_etcd_put(f->etcd, f->mark, f->mark_len, val, strlen(val), 0,
	                    &rev, &eb);
	pthread_mutex_lock(&f->mu);
	if (rc == IOTCA_OK) {
		f->mark_rev = rev;
		f->mark_at = feed_now_ms();
		if (f->mark_failed)
			iotca_log_info("CHANGE-FEED-MARK-OK", "feed=%s",
			               f->name);
		f->mark_failed = 0;
		return;
	}
	f->retry_at = feed_now_ms() + FEED_RETRY_MS;
	if (!f->mark_failed)
		iotca_log_warn("CHANGE-FEED-MARK-FAILED",
		               "feed=%s key=%s msg=\"%s\" action=retry",
		               f->name, f->mark, iotca_errbuf_msg(&eb));
	f->mark_failed = 1;
	f->mark_eb = eb;
}

/* Completes a pending revision with a mark when nothing else does (or
 * shows, when idle, that the watch still delivers), and watches for the
 * mark to arrive. Returns when to run again (ms). */
static int64_t
feed_mark_step(feed *f, int64_t now)
{
	int64_t due;

	if (f->mark_rev != 0 && f->complete >= f->mark_rev) {
		f->mark_rev = 0;
		if (f->stalled)
			iotca_log_info("CHANGE-FEED-RECOVERED",
			               "feed=%s revision=%lld", f->name,
			               (long long)f->complete);
		f->stalled = 0;
	}
	if (f->mark_rev != 0) {
		if (now - f->mark_at < FEED_STALL_MS)
			return f->mark_at + FEED_STALL_MS;
		if (!f->stalled)
			iotca_log_warn(
			    "CHANGE-FEED-STALLED",
			    "feed=%s mark_revision=%lld revision=%lld "
			    "msg=\"the watch has not delivered the mark in "
			    "%d ms\"",
			    f->name, (long long)f->mark_rev,
			    (long long)f->complete, FEED_STALL_MS);
		f->stalled = 1;
		return FEED_NEVER; /* until it arrives (a signal) */
	}
	if (f->newest > f->complete) { /* a change waits for a later event */
		if (f->mark_due == 0)
			f->mark_due = now + f->mark_delay_ms;
		due = f->mark_due;
	} else {
		f->mark_due = 0;
		due = f->event_at + FEED_IDLE_MARK_MS;
	}
	if (due < f->retry_at)
		due = f->retry_at;
	if (now < due)
		return due;
	f->mark_due = 0;
	feed_put_mark(f);
	return now; /* look again at once */
}

/* Asks etcd for its health, without the lock meanwhile. */
static void
feed_probe(feed *f)
{
	iotca_errbuf eb;
	int ok;

	pthread_mutex_unlock(&f->mu);
	ok = iotca_etcd_health(f->etcd, &eb) == IOTCA_OK;
	pthread_mutex_lock(&f->mu);
	f->etcd_down = !ok;
	if (!ok)
		f->down_eb = eb;
}

static void
feed_wait_until(feed *f, int64_t ms)
{
	struct timespec ts;

	ts.tv_sec = (time_t)(ms / 1000);
	ts.tv_nsec = (long)(ms % 1000) * 1000000L;
	pthread_cond_timedwait(&f->cond, &f->mu, &ts);
}

static void *
feed_main(void *arg)
{
	feed *f = arg;
	int64_t now, wake, next_probe = 0;

	pthread_mutex_lock(&f->mu);
	while (!f->stop) {
		now = feed_now_ms();
		if (now >= next_probe) {
			feed_probe(f);
			next_probe = feed_now_ms() + FEED_PROBE_MS;
			continue;
		}
		wake = feed_mark_step(f, now);
		if (wake > next_probe)
			wake = next_probe;
		if (!f->stop && wake > feed_now_ms())
			feed_wait_until(f, wake);
	}
	pthread_mutex_unlock(&f->mu);
	return NULL;
}

/* ---- start, stop, query ---- */

static iotca_err
feed_new(iotca_etcd *etcd, const feed_opts *o, feed **out, iotca_errbuf *eb)
{
	pthread_condattr_t ca;
	char hex[3];
	feed *f;

	if (o->prefix == NULL || o->mark_key == NULL || o->parse == NULL ||
	    strlen(o->prefix) == 0 || strlen(o->prefix) >= FEED_KEY_MAX ||
	    strlen(o->mark_key) >= FEED_KEY_MAX ||
	    strcmp(o->mark_key, o->prefix) >= 0 || o->max_entries == 0)
		return iotca_errbuf_set(eb, IOTCA_EINVAL,
		                        "change feed: the mark key must sort "
		                        "before the prefix, and the ring hold "
		                        "something");
	if ((f = calloc(1, sizeof(*f))) == NULL ||
	    (f->ring = calloc(o->max_entries, sizeof(*f->ring))) == NULL) {
		free(f);
		return iotca_errbuf_set(eb, IOTCA_ENOMEM, "out of memory");
	}
	f->etcd = etcd;
	snprintf(f->name, sizeof(f->name), "%s", o->name ? o->name : "");
	f->prefix_len =
	    (size_t)snprintf(f->prefix, sizeof(f->prefix), "%s", o->prefix);
	f->mark_len =
	    (size_t)snprintf(f->mark, sizeof(f->mark), "%s", o->mark_key);
	f->max_entries = o->max_entries;
	f->max_bytes = o->max_bytes;
	f->parse = o->parse;
	f->arg = o->arg;
	f->mark_delay_ms = FEED_MARK_DELAY_MS;
	if (iotca_rand_hex(hex, 1) == IOTCA_OK) /* spread the replicas */
		f->mark_delay_ms += strtol(hex, NULL, 16) % 32;
	pthread_mutex_init(&f->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&f->cond, &ca);
	pthread_condattr_destroy(&ca);
	*out = f;
	return IOTCA_OK;
}

/* Reads the current revision (with the mark key alone: a count of the
 * whole prefix could be slow): the watch starts after it. */
static iotca_err
feed_base(feed *f, iotca_errbuf *eb)
{
	iotca_etcd_range_req req = {0};
	iotca_etcd_range_result res = {0};
	iotca_err rc;

	req.key = f->mark;
	req.key_len = f->mark_len;
	req.count_only = 1;
	if ((rc = iotca_etcd_range(f->etcd, &req, &res, eb)) != IOTCA_OK)
		return rc;
	f->floor = f->complete = f->newest = res.revision;
	f->event_at = feed_now_ms();
	iotca_etcd_range_result_free(&res);
	return IOTCA_OK;
}

iotca_err
feed_start(iotca_etcd *etcd, const feed_opts *opts, feed **out,
           iotca_errbuf *eb)
{
	char end[FEED_KEY_MAX];
	size_t end_len;
	int64_t from;
	feed *f = NULL;
	iotca_err rc;

	if ((rc = feed_new(etcd, opts, &f, eb)) != IOTCA_OK)
		return rc;
	end_len = iotca_etcd_prefix_end(f->prefix, f->prefix_len, end);
	if ((rc = feed_base(f, eb)) != IOTCA_OK)
		goto fail;
	from = f->complete; /* the watch thread owns it from here on */
	if ((rc = iotca_etcd_watch_start(etcd, f->mark, f->mark_len, end,
	                                 end_len, from + 1, feed_on_event, f,
	                                 &f->watch, eb)) != IOTCA_OK)
		goto fail;
	if (pthread_create(&f->thread, NULL, feed_main, f) != 0) {
		rc = iotca_errbuf_set(eb, IOTCA_EINTERNAL,
		                      "change feed: cannot start a thread");
		goto fail;
	}
	f->thread_running = 1;
	iotca_log_info("CHANGE-FEED-READY",
	               "feed=%s prefix=%s from_revision=%lld capacity=%zu",
	               f->name, f->prefix, (long long)from, f->max_entries);
	*out = f;
	return IOTCA_OK;
fail:
	feed_stop(f);
	return rc;
}

void
feed_stop(feed *f)
{
	if (f == NULL)
		return;
	if (f->watch != NULL)
		iotca_etcd_watch_stop(f->watch); /* no callback after this */
	if (f->thread_running) {
		pthread_mutex_lock(&f->mu);
		f->stop = 1;
		pthread_cond_signal(&f->cond);
		pthread_mutex_unlock(&f->mu);
		pthread_join(f->thread, NULL);
	}
	feed_clear(f);
	free(f->ring);
	pthread_cond_destroy(&f->cond);
	pthread_mutex_destroy(&f->mu);
	free(f);
}

/* Whether the feed can vouch for being current; eb says why not. Under
 * the lock. */
static iotca_err
feed_check_live(feed *f, iotca_errbuf *eb)
{
	if (f->etcd_down)
		return iotca_errbuf_set(eb, IOTCA_EUNAVAIL,
		                        "%s: etcd does not answer (%s); retry "
		                        "later or ask another replica",
		                        f->name, iotca_errbuf_msg(&f->down_eb));
	if (f->stalled)
		return iotca_errbuf_set(
		    eb, IOTCA_EUNAVAIL,
		    "%s: the etcd watch is behind (revision "
		    "%lld not delivered after %d ms); retry "
		    "later or ask another replica",
		    f->name, (long long)f->mark_rev, FEED_STALL_MS);
	if (f->mark_failed)
		return iotca_errbuf_set(
		    eb, IOTCA_EUNAVAIL,
		    "%s: cannot write %s to etcd (%s); retry "
		    "later or ask another replica",
		    f->name, f->mark, iotca_errbuf_msg(&f->mark_eb));
	return IOTCA_OK;
}

/* Lists the entries [lo, hi) unless they are too many; under the lock. */
static iotca_err
feed_list(feed *f, size_t lo, size_t hi, size_t max_n, size_t max_bytes,
          feed_emit_fn emit, void *arg, feed_answer *ans)
{
	size_t i, bytes = 0;
	feed_entry *e;
	iotca_err rc;

	if (hi - lo > max_n) {
		ans->reset = 1;
		return IOTCA_OK;
	}
	for (i = lo; i < hi; i++)
		bytes += feed_at(f, i)->size;
	if (bytes > max_bytes) {
		ans->reset = 1;
		return IOTCA_OK;
	}
	for (i = lo; i < hi; i++) {
		e = feed_at(f, i);
		if ((rc = emit(e->data, e->rev, arg)) != IOTCA_OK)
			return rc;
		ans->n++;
	}
	return IOTCA_OK;
}

iotca_err
feed_query(feed *f, int64_t after, size_t max_n, size_t max_bytes,
           feed_emit_fn emit, void *arg, feed_answer *ans, iotca_errbuf *eb)
{
	iotca_err rc;

	memset(ans, 0, sizeof(*ans));
	pthread_mutex_lock(&f->mu);
	if ((rc = feed_check_live(f, eb)) != IOTCA_OK)
		goto out;
	ans->revision = f->complete;
	/* 0: the current revision only. At or past ours (another replica
	 * is ahead): nothing to add, and our own revision, lower, which the
	 * caller ignores: one replica's answers never go backwards. */
	if (after == 0 || after >= f->complete)
		goto out;
	if (after < f->floor) {
		ans->reset = 1;
		goto out;
	}
	rc = feed_list(f, feed_find(f, after), feed_find(f, f->complete), max_n,
	               max_bytes, emit, arg, ans);
out:
	pthread_mutex_unlock(&f->mu);
	return rc;
}
