/*
 * etcd_int.h - internals of the etcd client, shared by etcd.c (HTTP,
 * failover, the public calls), etcd_json.c (request JSON, reply parsing,
 * the txn builder) and watch.c. The unit tests and the fuzz target use the
 * parsers declared here directly.
 *
 * Everything in etcd_json.c is pure: it takes bytes and returns results,
 * touches no network and no global state, so it can be fuzzed.
 */
#ifndef IOTCA_ETCD_INT_H
#define IOTCA_ETCD_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#include "err/err.h"
#include "etcd/etcd.h"

#define ETCD_DEFAULT_TIMEOUT_MS         5000
#define ETCD_DEFAULT_CONNECT_TIMEOUT_MS 1000
#define ETCD_DEFAULT_MAX_REPLY          ((size_t)8 << 20)
#define ETCD_DEFAULT_POOL_SIZE          16
#define ETCD_MAX_ENDPOINTS              32
#define ETCD_ENDPOINT_MAX               256 /* bytes of one endpoint URL */
#define ETCD_URL_MAX                    (ETCD_ENDPOINT_MAX + 64)

/*
 * The client handle. Everything but the pool and the failover state is
 * written once by iotca_etcd_create and read-only afterwards, so any
 * thread may read it without the lock.
 */
struct iotca_etcd {
	char **endpoints; /* "http://host:port", no trailing '/' */
	unsigned n_endpoints;
	char *endpoint_list; /* the endpoints joined by ',', for messages */
	long timeout_ms;
	long connect_timeout_ms;
	size_t max_reply;
	unsigned pool_size;
	struct curl_slist *headers; /* Content-Type, no Expect */

	atomic_uint current; /* index of the endpoint that last answered */
	atomic_llong last_warn_ms; /* rate limit of ETCD-UNAVAILABLE */

	pthread_mutex_t lock; /* protects pool and n_pool */
	CURL **pool;          /* idle easy handles, each with its connection */
	unsigned n_pool;
};

/* ---- shared by etcd.c and watch.c ---- */

/* Milliseconds on the monotonic clock. */
int64_t etcd_now_ms(void);

/* Sets the options every request of this client uses on a new handle. */
void etcd_curl_defaults(const iotca_etcd *e, CURL *h);

/* ---- base64 (etcd_json.c) ---- */

/* Standard base64 of n bytes, NUL-terminated, malloc'd; NULL on no memory
 * or when n is too large for OpenSSL. */
char *etcd_b64_encode(const void *p, size_t n, size_t *out_len);

/* Decodes strict standard base64 (length a multiple of 4, '=' only as the
 * last one or two characters) into a malloc'd, NUL-terminated buffer.
 * IOTCA_EPROTO for anything else, IOTCA_ENOMEM. */
iotca_err etcd_b64_decode(const char *s, size_t n, char **out, size_t *out_len);

/* ---- request JSON (etcd_json.c); *out is malloc'd, free() it ---- */

iotca_err etcd_json_range_req(const iotca_etcd_range_req *req, char **out);
iotca_err etcd_json_put_req(const char *key, size_t key_len, const char *value,
                            size_t value_len, int64_t lease, char **out);
iotca_err etcd_json_delete_req(const char *key, size_t key_len,
                               const char *range_end, size_t range_end_len,
                               char **out);
iotca_err etcd_json_txn_req(const iotca_etcd_txn *t, char **out);
/* {"<field>": n}, for the lease calls ("TTL" or "ID"). */
iotca_err etcd_json_num_req(const char *field, int64_t n, char **out);
iotca_err etcd_json_watch_req(const char *key, size_t key_len,
                              const char *range_end, size_t range_end_len,
                              int64_t start_revision, char **out);

/* ---- reply parsing (etcd_json.c) ---- */

/*
 * Whether a reply body is a gRPC-gateway error: {"error":"...","code":N}
 * (unary calls) or {"error":{"grpc_code":N,"message":"..."}} (streams).
 * Returns 1 and fills *code and msg (truncated to msg_size) if it is.
 */
int etcd_parse_error(const char *data, size_t len, int *code, char *msg,
                     size_t msg_size);

/* The iotca_err for a gRPC status code and message from etcd. */
iotca_err etcd_error_map(int code, const char *msg);

iotca_err etcd_parse_range(const char *data, size_t len,
                           iotca_etcd_range_result *out, iotca_errbuf *eb);
iotca_err etcd_parse_put(const char *data, size_t len, int64_t *revision,
                         iotca_errbuf *eb);
iotca_err etcd_parse_delete(const char *data, size_t len, int64_t *deleted,
                            iotca_errbuf *eb);
iotca_err etcd_parse_txn(const char *data, size_t len,
                         iotca_etcd_txn_result *out, iotca_errbuf *eb);
iotca_err etcd_parse_lease_grant(const char *data, size_t len, int64_t *id,
                                 int64_t *ttl, iotca_errbuf *eb);
/* IOTCA_ENOENT when the reply says the lease is gone (TTL missing, <= 0). */
iotca_err etcd_parse_lease_keepalive(const char *data, size_t len, int64_t *ttl,
                                     iotca_errbuf *eb);
/* IOTCA_OK for {"health":"true"}, IOTCA_EUNAVAIL for "false". */
iotca_err etcd_parse_health(const char *data, size_t len, iotca_errbuf *eb);

/* One message of a watch stream: {"result":{...}}. */
typedef struct etcd_watch_msg {
	int64_t revision; /* header revision, 0 if missing */
	int created;
	int canceled;
	int64_t compact_revision;
	char cancel_reason[256];
	iotca_etcd_event *events;
	size_t n_events;
} etcd_watch_msg;

/* Parses one line of the stream. A gateway error object gives its mapped
 * code. Free the message with etcd_watch_msg_free on success. */
iotca_err etcd_parse_watch(const char *data, size_t len, etcd_watch_msg *out,
                           iotca_errbuf *eb);
void etcd_watch_msg_free(etcd_watch_msg *m);

/* ---- the txn builder's contents (etcd_json.c) ---- */

typedef struct etcd_txn_cmp {
	char *key;
	size_t key_len;
	iotca_etcd_cmp_target target;
	iotca_etcd_cmp_op op;
	int64_t n;
	char *value; /* for IOTCA_ETCD_CMP_VALUE */
	size_t value_len;
} etcd_txn_cmp;

typedef struct etcd_txn_op {
	iotca_etcd_op_type type;
	char *key;
	size_t key_len;
	char *arg; /* put: the value; delete, range: range_end (may be NULL) */
	size_t arg_len;
	int64_t lease;
} etcd_txn_op;

struct iotca_etcd_txn {
	etcd_txn_cmp *cmps;
	size_t n_cmps, cap_cmps;
	etcd_txn_op *ops[2]; /* indexed by iotca_etcd_branch */
	size_t n_ops[2], cap_ops[2];
	size_t bytes;  /* running estimate of the request JSON */
	int writes;    /* some op is a put or a delete */
	iotca_err err; /* first failure of a builder call */
};

#endif /* IOTCA_ETCD_INT_H */
