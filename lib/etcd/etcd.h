/*
 * etcd.h - etcd v3 client over the JSON gateway (libcurl + jansson).
 *
 * One iotca_etcd handle is shared by all threads of a service: it keeps a
 * pool of curl handles (each reusing its HTTP connection) and a list of
 * endpoints. A request goes to the endpoint that last answered; when it
 * cannot be reached, the next one is tried, until the request's timeout is
 * spent. Every reply is read into a buffer capped at max_reply bytes; a
 * larger reply is refused (IOTCA_EOVERFLOW) without being read into memory.
 *
 * Errors:
 *   IOTCA_EUNAVAIL  no endpoint answered within the timeout (or etcd said
 *                   it is unavailable: no leader, shutting down)
 *   IOTCA_ETIMEDOUT the timeout passed while a request was in flight
 *   IOTCA_EOVERFLOW the reply exceeded max_reply
 *   IOTCA_ETOOBIG   etcd refused the request as too large or with too many
 *                   operations (raise --max-request-bytes/--max-txn-ops)
 *   IOTCA_EPROTO    the reply was not what the gateway documents
 *   IOTCA_EINVAL    a bad argument (empty key, ...)
 * The iotca_errbuf says which endpoint and what happened.
 *
 * Keys and values are byte strings (not NUL-terminated in general). Memory
 * returned in results belongs to the result and is freed with its _free.
 */
#ifndef IOTCA_ETCD_H
#define IOTCA_ETCD_H

#include <stddef.h>
#include <stdint.h>

#include "err/err.h"

typedef struct iotca_etcd iotca_etcd;

typedef struct iotca_etcd_opts {
	const char *endpoints; /* "http://a:2379,http://b:2379" (required) */
	long timeout_ms;       /* per request, all retries included; 0: 5000 */
	long connect_timeout_ms; /* per endpoint attempt; 0: 1000 */
	size_t max_reply;        /* reply byte cap; 0: 8 MiB */
	unsigned pool_size;      /* idle curl handles kept; 0: 16 */
} iotca_etcd_opts;

/* Creates a client. Does not contact etcd. */
iotca_err iotca_etcd_create(const iotca_etcd_opts *opts, iotca_etcd **out,
                            iotca_errbuf *eb);

/* Destroys a client. Every watch on it must be stopped first. */
void iotca_etcd_destroy(iotca_etcd *e);

/* One key-value pair. key and value are NUL-terminated for convenience
 * (the NUL is not counted). */
typedef struct iotca_etcd_kv {
	char *key;
	size_t key_len;
	char *value;
	size_t value_len;
	int64_t create_revision;
	int64_t mod_revision;
	int64_t version;
	int64_t lease;
} iotca_etcd_kv;

/* The result of a range read. */
typedef struct iotca_etcd_range_result {
	iotca_etcd_kv *kvs; /* n of them, in key order */
	size_t n;
	int more;         /* more keys matched than were returned */
	int64_t count;    /* keys matched in all */
	int64_t revision; /* store revision the read saw */
} iotca_etcd_range_result;

void iotca_etcd_range_result_free(iotca_etcd_range_result *r);

/* A range request. range_end NULL: the single key; use
 * iotca_etcd_prefix_end() to read a prefix. */
typedef struct iotca_etcd_range_req {
	const char *key;
	size_t key_len;
	const char *range_end;
	size_t range_end_len;
	int64_t limit;    /* 0: no limit */
	int64_t revision; /* 0: latest */
	int keys_only;
	int count_only;
} iotca_etcd_range_req;

/* Reads a range. */
iotca_err iotca_etcd_range(iotca_etcd *e, const iotca_etcd_range_req *req,
                           iotca_etcd_range_result *out, iotca_errbuf *eb);

/* Reads one key. *found is 0 when it does not exist (out untouched). */
iotca_err iotca_etcd_get(iotca_etcd *e, const char *key, size_t key_len,
                         iotca_etcd_kv *out, int *found, iotca_errbuf *eb);

void iotca_etcd_kv_free(iotca_etcd_kv *kv);

/*
 * Calls fn for every key under prefix, reading page_size keys per request
 * at one revision (a consistent snapshot), which *revision (may be NULL)
 * gets: a watch from revision + 1 follows on. fn returning non-zero stops
 * the walk (not an error).
 */
typedef int (*iotca_etcd_kv_fn)(const iotca_etcd_kv *kv, void *arg);
iotca_err iotca_etcd_range_prefix(iotca_etcd *e, const char *prefix,
                                  size_t prefix_len, int64_t page_size,
                                  iotca_etcd_kv_fn fn, void *arg,
                                  int64_t *revision, iotca_errbuf *eb);

/* Writes prefix's range end (prefix with its last byte incremented) into
 * out (at least prefix_len bytes); returns its length. A prefix of all 0xff
 * bytes gives "\0" (every key from prefix on). */
size_t iotca_etcd_prefix_end(const char *prefix, size_t prefix_len, char *out);

/* Puts a key. lease 0: none. *revision (may be NULL) gets the new revision. */
iotca_err iotca_etcd_put(iotca_etcd *e, const char *key, size_t key_len,
                         const char *value, size_t value_len, int64_t lease,
                         int64_t *revision, iotca_errbuf *eb);

/* Deletes a key or range (range_end NULL: one key). *deleted may be NULL. */
iotca_err iotca_etcd_delete(iotca_etcd *e, const char *key, size_t key_len,
                            const char *range_end, size_t range_end_len,
                            int64_t *deleted, iotca_errbuf *eb);

/* ---- transactions ---- */

typedef enum iotca_etcd_cmp_target {
	IOTCA_ETCD_CMP_VERSION,
	IOTCA_ETCD_CMP_CREATE, /* create_revision; 0 means "absent" */
	IOTCA_ETCD_CMP_MOD,
	IOTCA_ETCD_CMP_VALUE,
	IOTCA_ETCD_CMP_LEASE,
} iotca_etcd_cmp_target;

typedef enum iotca_etcd_cmp_op {
	IOTCA_ETCD_EQUAL,
	IOTCA_ETCD_NOT_EQUAL,
	IOTCA_ETCD_GREATER,
	IOTCA_ETCD_LESS,
} iotca_etcd_cmp_op;

typedef enum iotca_etcd_branch {
	IOTCA_ETCD_SUCCESS,
	IOTCA_ETCD_FAILURE,
} iotca_etcd_branch;

typedef struct iotca_etcd_txn iotca_etcd_txn;

/* A transaction under construction. The builder copies every key and
 * value it is given. Builder calls fail only on no memory; the first
 * failure is kept and returned by commit. */
iotca_err iotca_etcd_txn_create(iotca_etcd_txn **out);
void iotca_etcd_txn_destroy(iotca_etcd_txn *t);

/* Compare a number (version, create/mod revision, lease) of a key. */
void iotca_etcd_txn_cmp_num(iotca_etcd_txn *t, const char *key, size_t key_len,
                            iotca_etcd_cmp_target target, iotca_etcd_cmp_op op,
                            int64_t n);

/* Compare a key's value. */
void iotca_etcd_txn_cmp_value(iotca_etcd_txn *t, const char *key,
                              size_t key_len, iotca_etcd_cmp_op op,
                              const char *value, size_t value_len);

void iotca_etcd_txn_put(iotca_etcd_txn *t, iotca_etcd_branch b, const char *key,
                        size_t key_len, const char *value, size_t value_len,
                        int64_t lease);
void iotca_etcd_txn_delete(iotca_etcd_txn *t, iotca_etcd_branch b,
                           const char *key, size_t key_len,
                           const char *range_end, size_t range_end_len);
void iotca_etcd_txn_range(iotca_etcd_txn *t, iotca_etcd_branch b,
                          const char *key, size_t key_len,
                          const char *range_end, size_t range_end_len);

/* Number of operations in the larger branch (etcd's --max-txn-ops applies
 * to it) and the approximate request size in bytes. */
size_t iotca_etcd_txn_ops(const iotca_etcd_txn *t);
size_t iotca_etcd_txn_bytes(const iotca_etcd_txn *t);

/* One response of the branch that ran, in the order its ops were added. */
typedef enum iotca_etcd_op_type {
	IOTCA_ETCD_OP_PUT,
	IOTCA_ETCD_OP_DELETE,
	IOTCA_ETCD_OP_RANGE,
} iotca_etcd_op_type;

typedef struct iotca_etcd_op_result {
	iotca_etcd_op_type type;
	iotca_etcd_range_result range; /* for IOTCA_ETCD_OP_RANGE */
	int64_t deleted;               /* for IOTCA_ETCD_OP_DELETE */
} iotca_etcd_op_result;

typedef struct iotca_etcd_txn_result {
	int succeeded; /* 1: the compares held and the success branch ran */
	int64_t revision;
	iotca_etcd_op_result *results;
	size_t n;
} iotca_etcd_txn_result;

void iotca_etcd_txn_result_free(iotca_etcd_txn_result *r);

/* Sends the transaction. out may be NULL when the results are not needed.
 * A transaction whose compares fail is not an error: out->succeeded is 0. */
iotca_err iotca_etcd_txn_commit(iotca_etcd *e, const iotca_etcd_txn *t,
                                iotca_etcd_txn_result *out, iotca_errbuf *eb);

/* ---- leases ---- */

iotca_err iotca_etcd_lease_grant(iotca_etcd *e, int64_t ttl_s, int64_t *id,
                                 iotca_errbuf *eb);
/* Renews a lease once; *ttl_s (may be NULL) gets its remaining TTL.
 * IOTCA_ENOENT when the lease has expired or was revoked. */
iotca_err iotca_etcd_lease_keepalive(iotca_etcd *e, int64_t id, int64_t *ttl_s,
                                     iotca_errbuf *eb);
iotca_err iotca_etcd_lease_revoke(iotca_etcd *e, int64_t id, iotca_errbuf *eb);

/* ---- watch ---- */

typedef enum iotca_etcd_event_type {
	IOTCA_ETCD_EVENT_PUT,
	IOTCA_ETCD_EVENT_DELETE,
	IOTCA_ETCD_EVENT_RESET,    /* the watch was restarted after a gap it
	                              could not replay (compaction): reload
	                              the range */
	IOTCA_ETCD_EVENT_PROGRESS, /* every change up to a revision has been
	                              delivered: see below */
} iotca_etcd_event_type;

/*
 * One callback. For PUT and DELETE, kv (for DELETE only key and
 * mod_revision) and, when has_prev, prev_kv. For RESET and PROGRESS only
 * kv.mod_revision is set (the revision, see below); kv.key and kv.value
 * are empty strings and has_prev is 0.
 */
typedef struct iotca_etcd_event {
	iotca_etcd_event_type type;
	iotca_etcd_kv kv;
	iotca_etcd_kv prev_kv;
	int has_prev;
} iotca_etcd_event;

/* Called on the watch's own thread, in revision order. Must not block
 * for long and must not stop its own watch. A callback that knows only
 * some types must ignore the others: more may be added. */
typedef void (*iotca_etcd_watch_fn)(const iotca_etcd_event *ev, void *arg);

typedef struct iotca_etcd_watch iotca_etcd_watch;

/*
 * Watches a key or range from start_revision (0: from now) on a thread of
 * its own. When the connection breaks, it reconnects (with backoff, trying
 * every endpoint) from the revision after the last one it vouched for, so
 * no event is lost or repeated; if that revision was compacted it delivers
 * a RESET (kv.mod_revision: the revision the new watch starts after) and
 * continues from the current revision.
 *
 * PROGRESS, with r in kv.mod_revision, guarantees: every event in the
 * watched range with mod_revision <= r (and at or after start_revision,
 * or after the last RESET) has been delivered before this call, every
 * event of revision r included; every event delivered later has a
 * mod_revision > r. Between RESETs r never decreases (after a RESET it
 * starts at the RESET's revision). The events of one etcd revision are
 * never split by a PROGRESS, so a consumer that answers "everything up
 * to r" needs no other signal.
 *
 * One PROGRESS follows each message of etcd's stream: the message that
 * creates the stream (r: the revision it starts after; the first one is
 * delivered before iotca_etcd_watch_start returns), each batch of
 * events (r: the newest event's revision) and each of etcd's progress
 * notifications (r: the store's revision, which may be past the newest
 * event in the range). So r moves with every event delivered, but past
 * it only on those notifications: etcd 3.4 sends them to a watch that
 * has been idle for --experimental-watch-progress-notify-interval,
 * 10 minutes by default. (etcd's header revision on the other messages
 * can be ahead of the events actually sent: a stream created from a past
 * revision, or catching up more than 1000 revisions in batches, says the
 * store's revision before its events follow. It is not passed on there.)
 */
iotca_err iotca_etcd_watch_start(iotca_etcd *e, const char *key, size_t key_len,
                                 const char *range_end, size_t range_end_len,
                                 int64_t start_revision, iotca_etcd_watch_fn fn,
                                 void *arg, iotca_etcd_watch **out,
                                 iotca_errbuf *eb);

/*
 * Whether the watch has a stream in place: IOTCA_OK, or IOTCA_EUNAVAIL
 * (eb says why the last stream ended) from the moment a stream ends until
 * the next one is created; so also after a compaction, until the stream
 * that delivers the RESET is in place. Any thread; it takes a lock the
 * callback never holds, so a callback may call it.
 * A stream cut off without a word (a member partitioned from the others)
 * still counts as in place until TCP keepalive notices.
 */
iotca_err iotca_etcd_watch_status(iotca_etcd_watch *w, iotca_errbuf *eb);

/* Stops a watch and joins its thread; no callback runs after it returns. */
void iotca_etcd_watch_stop(iotca_etcd_watch *w);

/* ---- health ---- */

/* Asks the endpoints for /health; IOTCA_OK if one reports healthy. */
iotca_err iotca_etcd_health(iotca_etcd *e, iotca_errbuf *eb);

#endif /* IOTCA_ETCD_H */
