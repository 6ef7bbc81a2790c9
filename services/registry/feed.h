/*
 * feed.h - a change feed: the recent changes under one etcd prefix, kept
 * in a bounded in-memory ring that a watch fills, so that "every change
 * after revision R" is answered under a mutex, without I/O. The registry's
 * ListCaChanges and the association service's ListDeviceChanges are built
 * on it.
 *
 * It knows neither service: the service turns each watch event into an
 * entry (one malloc'd block, laid out as it likes) and each entry into a
 * response element. The association service compiles this file from here.
 * (Its place is lib/; it lives here until it moves there.)
 *
 * The revision a feed answers is one up to which it has seen every change
 * (the watch's PROGRESS says so; feed.c explains); the ring holds every
 * change it has seen after its "floor". Capacity is bounded by entries and
 * by bytes; the oldest entries go first, raising the floor. A feed only
 * reads etcd: it writes nothing.
 *
 * Threads: the watch thread adds entries and moves the revision; a thread
 * of the feed's own probes etcd's health; handlers query. One mutex guards
 * the ring and the revisions.
 */
#ifndef IOTCA_FEED_H
#define IOTCA_FEED_H

#include <stddef.h>
#include <stdint.h>

#include "err/err.h"
#include "etcd/etcd.h"
#include "rpc/rpc.h"

typedef struct feed feed;

/*
 * Turns a PUT or DELETE of a key under the prefix into an entry. name is
 * the key after the prefix (not NUL-terminated). Sets *data to a malloc'd
 * block (the feed frees it) and *size to the bytes to count against the
 * cap, or leaves *data NULL when the event is no change worth reporting.
 * IOTCA_ENOMEM when it cannot: the feed then makes every caller that has
 * not seen this revision start over (reset). On the watch thread, without
 * the feed's lock.
 */
typedef iotca_err (*feed_parse_fn)(const iotca_etcd_event *ev, const char *name,
                                   size_t name_len, void **data, size_t *size,
                                   void *arg);

typedef struct feed_opts {
	const char *name;   /* for logs: "ca-changes" */
	const char *prefix; /* the watched prefix: "/iotca/cas/" */
	size_t max_entries; /* changes kept */
	size_t max_bytes;   /* their sizes (as parse says) kept */
	feed_parse_fn parse;
	void *arg;
} feed_opts;

/*
 * Reads the current revision R0 and watches the prefix from R0 + 1: the
 * feed answers for changes after R0. IOTCA_EUNAVAIL (and others) when
 * etcd cannot be read or watched; try again later.
 */
iotca_err feed_start(iotca_etcd *etcd, const feed_opts *opts, feed **out,
                     iotca_errbuf *eb);

/*
 * A feed on a watch its caller owns and shares with other consumers of
 * the prefix: it answers for changes after `from`, the caller passes it
 * every event of a watch of the prefix started at from + 1 (feed_event is
 * an iotca_etcd_watch_fn), and attaches that watch, whose status the feed
 * reports, before any query. The caller stops the watch before the feed.
 */
iotca_err feed_start_shared(iotca_etcd *etcd, const feed_opts *opts,
                            int64_t from, feed **out, iotca_errbuf *eb);
void feed_event(const iotca_etcd_event *ev, void *f);
void feed_attach_watch(feed *f, iotca_etcd_watch *w);

/* Stops the watch (its own) and the feed's thread and frees everything.
 * NULL is allowed. No query may run during or after it. */
void feed_stop(feed *f);

/* Called for each entry of an answer, oldest first, under the feed's lock:
 * copy what you need, do not block. A non-zero return stops the query and
 * is returned by it. */
typedef iotca_err (*feed_emit_fn)(const void *data, int64_t revision,
                                  void *arg);

typedef struct feed_answer {
	int64_t revision; /* every change <= it was seen by this feed */
	int reset;        /* the changes after after_revision cannot be
	                     listed: the caller starts over */
	size_t n;         /* entries passed to emit */
} feed_answer;

/*
 * Answers "every change after after_revision": emit runs for each change
 * with after_revision < revision <= ans->revision, unless after_revision
 * is 0 (the current revision only), is at or past ans->revision (nothing
 * to add; ans->revision is this feed's own, never more), or the changes
 * cannot all be listed: the ring does not reach back that far, or there
 * are more than max_n of them, or more than max_bytes -> ans->reset.
 * IOTCA_EUNAVAIL (eb says why) while the feed cannot vouch for being
 * current: etcd's health probe fails, or the watch has no stream (it
 * reconnects, or restarts after a gap).
 */
iotca_err feed_query(feed *f, int64_t after_revision, size_t max_n,
                     size_t max_bytes, feed_emit_fn emit, void *arg,
                     feed_answer *ans, iotca_errbuf *eb);

/*
 * What a List...Changes handler does after its credential check: refuses
 * a negative after_revision (INVALID_ARGUMENT), answers UNAVAILABLE while
 * the feed f (named name) is not there yet or cannot vouch for being
 * current, and queries it. The call's status is set on failure.
 */
iotca_err feed_rpc_query(feed *f, const char *name, iotca_rpc_call *call,
                         int64_t after_revision, size_t max_n, size_t max_bytes,
                         feed_emit_fn emit, void *arg, feed_answer *ans);

#endif /* IOTCA_FEED_H */
