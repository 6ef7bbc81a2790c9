/*
 * feed.c - the change feed's ring, its revisions, and the thread that
 * probes etcd.
 *
 * Which revision can be answered. `complete`, the revision answered, moves
 * only on the watch's IOTCA_ETCD_EVENT_PROGRESS (etcd.h): every change up
 * to its revision has been delivered, every event of that revision
 * included, and no later event has a revision at or before it. An upload
 * of 10,000 rows is 10,000 events of one revision; a query that runs
 * between two of them still answers the revision before, so its caller,
 * passing that revision next time, gets the whole upload. A PROGRESS
 * follows every message of etcd's stream, so `complete` reaches a change's
 * revision as soon as all of its events are in. When nothing changes
 * under the prefix it stays at the last change (or moves on with etcd's
 * progress notifications, every 10 minutes by default): as good an
 * answer, as no change lies after it. The feed writes nothing to etcd.
 *
 * Every change up to `complete` has therefore been delivered, and each
 * was stored in the ring, or dropped with `floor` raised to its revision
 * (the ring was full, or it could not be stored). `floor` starts at the
 * revision the watch started after. A query from after_revision >= floor
 * lists entries from the ring; from before it, the caller starts over
 * (reset). No change a caller has not seen is ever skipped.
 *
 * Liveness. Queries answer UNAVAILABLE while the feed cannot vouch for
 * being current (the answers would still be right, but stale): while the
 * watch has no stream (it lost it and reconnects, or restarts after a
 * gap), and while etcd's health, asked every FEED_PROBE_MS by the feed's
 * thread, says it is down or does not answer. A stream to a member cut
 * off from the others, which delivers nothing and says nothing, shows
 * only once TCP keepalive ends it.
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

#define FEED_PROBE_MS 2000
#define FEED_KEY_MAX  256

typedef struct feed_entry {
	int64_t rev;
	void *data; /* from parse; freed here */
	size_t size;
} feed_entry;

struct feed {
	/* written by feed_start, then read-only */
	iotca_etcd *etcd;
	char name[32];
	char prefix[FEED_KEY_MAX];
	size_t prefix_len;
	size_t max_entries, max_bytes;
	feed_parse_fn parse;
	void *arg;
	iotca_etcd_watch *watch; /* set before queries run */
	int owns_watch;          /* feed_start's own, not a shared one */
	pthread_t thread;
	int thread_running;

	pthread_mutex_t mu;  /* everything below */
	pthread_cond_t cond; /* wakes the thread: stop */
	feed_entry *ring;    /* max_entries slots; ring[head] is the oldest */
	size_t head, n, bytes;
	int64_t floor;    /* every change seen after it is in the ring */
	int64_t complete; /* every change up to it has been seen */
	int etcd_down;    /* the last health probe failed: down_eb */
	iotca_errbuf down_eb;
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
	f->floor = f->complete = rev;
	pthread_mutex_unlock(&f->mu);
	iotca_log_warn("CHANGE-FEED-RESET",
	               "feed=%s revision=%lld msg=\"the watch restarted after "
	               "a gap; every caller starts over\"",
	               f->name, (long long)rev);
}

static int
feed_is_data(const feed *f, const iotca_etcd_kv *kv)
{
	return kv->key_len > f->prefix_len &&
	       memcmp(kv->key, f->prefix, f->prefix_len) == 0;
}

/* Every change up to rev has been delivered. */
static void
feed_on_progress(feed *f, int64_t rev)
{
	pthread_mutex_lock(&f->mu);
	feed_complete(f, rev);
	pthread_mutex_unlock(&f->mu);
}

static void
feed_on_event(const iotca_etcd_event *ev, void *arg)
{
	feed *f = arg;
	int64_t rev = ev->kv.mod_revision;
	void *data = NULL;
	size_t size = 0;
	iotca_err rc = IOTCA_OK;

	if (ev->type == IOTCA_ETCD_EVENT_RESET) {
		feed_reset(f, rev);
		return;
	}
	if (ev->type == IOTCA_ETCD_EVENT_PROGRESS) {
		feed_on_progress(f, rev);
		return;
	}
	if (ev->type != IOTCA_ETCD_EVENT_PUT &&
	    ev->type != IOTCA_ETCD_EVENT_DELETE)
		return;
	if (feed_is_data(f, &ev->kv))
		rc = f->parse(ev, ev->kv.key + f->prefix_len,
		              ev->kv.key_len - f->prefix_len, &data, &size,
		              f->arg);
	/* Not counted in `complete` before its revision's PROGRESS: queries
	 * list the ring up to `complete` only. */
	pthread_mutex_lock(&f->mu);
	if (rc != IOTCA_OK)
		feed_raise_floor(f, rev); /* not stored: start over */
	else if (data != NULL)
		feed_push(f, rev, data, size);
	pthread_mutex_unlock(&f->mu);
}

/* ---- the feed's thread: probes ---- */

/* Asks etcd for its health, without the lock meanwhile. */
static void
feed_probe(feed *f)
{
	iotca_errbuf eb;
	int ok;

	pthread_mutex_unlock(&f->mu);
	ok = iotca_etcd_health(f->etcd, &eb) == IOTCA_OK;
	pthread_mutex_lock(&f->mu);
	if (ok && f->etcd_down)
		iotca_log_info("CHANGE-FEED-ETCD-OK", "feed=%s", f->name);
	else if (!ok && !f->etcd_down)
		iotca_log_warn("CHANGE-FEED-ETCD-DOWN",
		               "feed=%s msg=\"%s\" effect=\"queries answer "
		               "UNAVAILABLE until etcd answers\"",
		               f->name, iotca_errbuf_msg(&eb));
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
	int64_t next_probe = 0;

	pthread_mutex_lock(&f->mu);
	while (!f->stop) {
		if (feed_now_ms() >= next_probe) {
			feed_probe(f);
			next_probe = feed_now_ms() + FEED_PROBE_MS;
		}
		if (!f->stop)
			feed_wait_until(f, next_probe);
	}
	pthread_mutex_unlock(&f->mu);
	return NULL;
}

/* ---- start, stop, query ---- */

static iotca_err
feed_new(iotca_etcd *etcd, const feed_opts *o, feed **out, iotca_errbuf *eb)
{
	pthread_condattr_t ca;
	feed *f;

	if (o->prefix == NULL || o->parse == NULL || strlen(o->prefix) == 0 ||
	    strlen(o->prefix) >= FEED_KEY_MAX || o->max_entries == 0)
		return iotca_errbuf_set(
		    eb, IOTCA_EINVAL,
		    "change feed: needs a prefix (under %d bytes), a parse "
		    "function, and a ring that holds something",
		    FEED_KEY_MAX);
	if ((f = calloc(1, sizeof(*f))) == NULL ||
	    (f->ring = calloc(o->max_entries, sizeof(*f->ring))) == NULL) {
		free(f);
		return iotca_errbuf_set(eb, IOTCA_ENOMEM, "out of memory");
	}
	f->etcd = etcd;
	snprintf(f->name, sizeof(f->name), "%s", o->name ? o->name : "");
	f->prefix_len =
	    (size_t)snprintf(f->prefix, sizeof(f->prefix), "%s", o->prefix);
	f->max_entries = o->max_entries;
	f->max_bytes = o->max_bytes;
	f->parse = o->parse;
	f->arg = o->arg;
	pthread_mutex_init(&f->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&f->cond, &ca);
	pthread_condattr_destroy(&ca);
	*out = f;
	return IOTCA_OK;
}

/* Reads the current revision (with the key that is the prefix itself:
 * a count of the whole prefix could be slow): the watch starts after it. */
static iotca_err
feed_base(feed *f, iotca_errbuf *eb)
{
	iotca_etcd_range_req req = {0};
	iotca_etcd_range_result res = {0};
	iotca_err rc;

	req.key = f->prefix;
	req.key_len = f->prefix_len;
	req.count_only = 1;
	if ((rc = iotca_etcd_range(f->etcd, &req, &res, eb)) != IOTCA_OK)
		return rc;
	f->floor = f->complete = res.revision;
	iotca_etcd_range_result_free(&res);
	return IOTCA_OK;
}

/* Starts the feed's probe thread and logs that it is ready. */
static iotca_err
feed_run(feed *f, int64_t from, iotca_errbuf *eb)
{
	if (pthread_create(&f->thread, NULL, feed_main, f) != 0)
		return iotca_errbuf_set(eb, IOTCA_EINTERNAL,
		                        "change feed: cannot start a thread");
	f->thread_running = 1;
	iotca_log_info("CHANGE-FEED-READY",
	               "feed=%s prefix=%s from_revision=%lld capacity=%zu",
	               f->name, f->prefix, (long long)from, f->max_entries);
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
	f->owns_watch = 1;
	if ((rc = iotca_etcd_watch_start(etcd, f->prefix, f->prefix_len, end,
	                                 end_len, from + 1, feed_on_event, f,
	                                 &f->watch, eb)) != IOTCA_OK ||
	    (rc = feed_run(f, from, eb)) != IOTCA_OK)
		goto fail;
	*out = f;
	return IOTCA_OK;
fail:
	feed_stop(f);
	return rc;
}

iotca_err
feed_start_shared(iotca_etcd *etcd, const feed_opts *opts, int64_t from,
                  feed **out, iotca_errbuf *eb)
{
	feed *f = NULL;
	iotca_err rc;

	if ((rc = feed_new(etcd, opts, &f, eb)) != IOTCA_OK)
		return rc;
	f->floor = f->complete = from;
	if ((rc = feed_run(f, from, eb)) != IOTCA_OK) {
		feed_stop(f);
		return rc;
	}
	*out = f;
	return IOTCA_OK;
}

void
feed_event(const iotca_etcd_event *ev, void *f)
{
	feed_on_event(ev, f);
}

void
feed_attach_watch(feed *f, iotca_etcd_watch *w)
{
	pthread_mutex_lock(&f->mu);
	f->watch = w;
	pthread_mutex_unlock(&f->mu);
}

void
feed_stop(feed *f)
{
	if (f == NULL)
		return;
	if (f->watch != NULL && f->owns_watch)
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
	iotca_errbuf web;

	if (f->etcd_down)
		return iotca_errbuf_set(eb, IOTCA_EUNAVAIL,
		                        "%s: etcd does not answer (%s); retry "
		                        "later or ask another replica",
		                        f->name, iotca_errbuf_msg(&f->down_eb));
	if (iotca_etcd_watch_status(f->watch, &web) != IOTCA_OK)
		return iotca_errbuf_set(eb, IOTCA_EUNAVAIL,
		                        "%s: the etcd watch is reconnecting "
		                        "(%s); retry later or ask another "
		                        "replica",
		                        f->name, iotca_errbuf_msg(&web));
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

iotca_err
feed_rpc_query(feed *f, const char *name, iotca_rpc_call *call,
               int64_t after_revision, size_t max_n, size_t max_bytes,
               feed_emit_fn emit, void *arg, feed_answer *ans)
{
	iotca_errbuf eb;
	iotca_err rc;

	if (after_revision < 0)
		return iotca_rpc_call_fail(
		    call, IOTCA_EINVAL,
		    "after_revision is %lld: pass 0, or the revision of the "
		    "previous answer",
		    (long long)after_revision);
	if (f == NULL)
		return iotca_rpc_call_fail(
		    call, IOTCA_EUNAVAIL,
		    "%s: not started yet, etcd has not been reachable since "
		    "this replica started (check IOTCA_ETCD_ENDPOINTS) or it "
		    "is still loading; retry later or ask another replica",
		    name);
	rc = feed_query(f, after_revision, max_n, max_bytes, emit, arg, ans,
	                &eb);
	if (rc == IOTCA_EUNAVAIL)
		return iotca_rpc_call_fail_eb(call, &eb);
	if (rc != IOTCA_OK)
		return iotca_rpc_call_fail(call, rc, "out of memory");
	return IOTCA_OK;
}
