/*
 * edge.h - iotca-edge, the MQTT 3.1.1 over mutual TLS front door.
 *
 * Threads:
 *   - loops (loop.c): one per core, each with its own epoll set, its own
 *     SO_REUSEPORT listener and its own connections. A connection lives on
 *     one loop from accept to close; only that loop touches it.
 *   - the gRPC client thread (lib/rpc): lookup answers arrive there, go
 *     into the caches (auth.c) and are handed to the waiting loops as
 *     messages.
 *   - NNG threads (plane.c): upstream hand-off completions and downstream
 *     messages, also handed to loops as messages.
 *   - the change poller (changes.c): asks the registry and the association
 *     service what changed, drops what the caches hold about it, and tells
 *     every loop to close the sessions it revokes.
 *   - main: signals (SIGTERM stops, SIGHUP reloads the server certificate).
 * A loop never blocks on anything but epoll_wait. Other threads reach a
 * loop only through edge_loop_post (a locked list and an eventfd).
 */
#ifndef IOTCA_EDGE_H
#define IOTCA_EDGE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "buf/buf.h"
#include "config/config.h"
#include "err/err.h"
#include "mqtt/mqtt.h"
#include "rpc/rpc.h"

typedef struct edge edge;
typedef struct edge_loop edge_loop;
typedef struct edge_conn edge_conn;
typedef struct edge_auth edge_auth;
typedef struct edge_plane edge_plane;
typedef struct edge_changes edge_changes;

#define EDGE_ID_MAX       65 /* account, CA ids: 64 characters */
#define EDGE_PK_MAX       12 /* ProductKey: 11 characters */
#define EDGE_DN_MAX       33 /* DeviceName: 32 characters */
#define EDGE_SN_MAX       41 /* 20 octets as hex */
#define EDGE_SUB_MAX      16 /* subscriptions one session may hold */
#define EDGE_INFLIGHT_MAX 32 /* unacknowledged QoS 1/2 either way */

/* Why an authentication failed or a session ended: the DeviceMessage
 * reason words (device_message.proto). */
typedef enum edge_reason {
	EDGE_R_NONE = 0,
	/* AUTH_FAILED */
	EDGE_R_UNKNOWN_ISSUER,
	EDGE_R_BAD_SIGNATURE,
	EDGE_R_CERT_EXPIRED,
	EDGE_R_KEY_NOT_RSA,
	EDGE_R_UNKNOWN_SN,
	EDGE_R_DEVICE_DISABLED,
	EDGE_R_LOOKUP_FAILED,
	EDGE_R_BAD_CERT, /* unusable certificate (serial, encoding) */
	/* DISCONNECTED */
	EDGE_R_CLIENT_DISCONNECT,
	EDGE_R_CONNECTION_LOST,
	EDGE_R_KEEPALIVE_TIMEOUT,
	EDGE_R_PROTOCOL_ERROR,
	EDGE_R_TOPIC_DENIED,
	EDGE_R_TAKEN_OVER,
	EDGE_R_REVOKED,
	EDGE_R_SHUTDOWN,
	EDGE_R_COUNT
} edge_reason;

const char *edge_reason_word(edge_reason r);

/* ------------------------------------------------------------- settings */

typedef struct edge_opts {
	const char *listen;
	const char *tls_cert, *tls_key;
	const char *edge_id;
	unsigned threads;
	long max_connections;
	size_t max_packet;
	long handshake_timeout_ms;
	long connect_timeout_ms;
	long lookup_timeout_ms;
	long cache_ttl_s, negative_ttl_s;
	long cache_entries;
	long tls_sessions; /* server-side TLS session cache; 0: off */
	long changes_poll_ms;
	long upstream_timeout_ms;
	const char *upstream, *downstream; /* NULL: not configured */
	const char *probe_listen;
} edge_opts;

/* ---------------------------------------------------------------- tls.c */

/* Builds a server context from the certificate and key files. Client
 * certificates are required and checked by verify (see loop.c). */
iotca_err edge_tls_ctx_create(const edge_opts *o,
                              int (*verify)(X509_STORE_CTX *, void *),
                              void *arg, SSL_CTX **out, iotca_errbuf *eb);
/* Frees the library context the server contexts are made in; call from
 * the main thread after the last SSL_CTX (and the CA cache) is gone. */
void edge_tls_libctx_free(void);
/* The SSL_SESSION ex_data index under which loop.c keeps the fingerprint
 * of the CA that verified the session's certificate (EDGE_FP_LEN bytes,
 * malloc'd; copied with the session, freed with it). -1 before the first
 * edge_tls_ctx_create. */
int edge_tls_fp_index(void);

/* ------------------------------------------------------------- messages */

typedef enum edge_msg_kind {
	EDGE_MSG_ISSUER_DONE, /* conn_id: its issuer lookup ended (ok) */
	EDGE_MSG_DEVICE_DONE, /* conn_id: its device lookup ended (ok) */
	EDGE_MSG_UP_DONE,     /* conn_id: upstream hand-off of packet_id */
	EDGE_MSG_DOWN,        /* conn_id: deliver topic/payload at qos */
	EDGE_MSG_KICK,        /* conn_id: close with reason */
	EDGE_MSG_CA_OFF,      /* s1 = ca_id: close its sessions */
	EDGE_MSG_DEVICE_CHG,  /* s1 = account, s2 = sn: re-check sessions */
	EDGE_MSG_RESET,       /* re-check every session */
} edge_msg_kind;

typedef struct edge_msg {
	struct edge_msg *next;
	edge_msg_kind kind;
	uint64_t conn_id;
	int ok;
	uint8_t qos;
	uint16_t packet_id;
	edge_reason reason;
	void *val;        /* ISSUER_DONE: edge_iss; DEVICE_DONE: edge_dev */
	char *s1, *s2;    /* malloc'd or NULL */
	uint8_t *payload; /* malloc'd or NULL */
	size_t payload_len;
} edge_msg;

/* Frees a message and what it owns. */
void edge_msg_free(edge_msg *m);

/* A zeroed message (NULL on no memory). */
edge_msg *edge_msg_new(edge_msg_kind kind, uint64_t conn_id);

/* --------------------------------------------------------------- loop.c */

/* Conn ids: the loop index in the top 8 bits, then the slot, then a
 * generation, so that a stale id never finds a new connection. */
#define EDGE_CONN_LOOP(id) ((unsigned)((id) >> 56))

iotca_err edge_loops_start(edge *e, iotca_errbuf *eb);
/* Stops accepting, closes every session with reason SHUTDOWN, joins. */
void edge_loops_stop(edge *e);
/* Hands m to the loop (takes ownership; frees it if the loop is gone). */
void edge_loop_post(edge_loop *l, edge_msg *m);
/* Posts a copy of m to every loop and frees m. */
void edge_loop_broadcast(edge *e, edge_msg *m);
/* Swaps in a new server context for new connections (takes a reference). */
void edge_tls_swap(edge *e, SSL_CTX *ctx);

/* --------------------------------------------------------------- auth.c */

/* What a lookup or a check concluded. */
typedef enum edge_verdict {
	EDGE_OK = 0,  /* answered from the cache */
	EDGE_WAIT,    /* a lookup runs; its answer comes as a message */
	EDGE_REFUSED, /* refused: see the reason */
} edge_verdict;

/* The identity a verified certificate gives. */
typedef struct edge_ident {
	char account_id[EDGE_ID_MAX];
	char ca_id[EDGE_ID_MAX];
	char sn[EDGE_SN_MAX];
	char pk[EDGE_PK_MAX];
	char dn[EDGE_DN_MAX];
} edge_ident;

/* The registered, active CAs with one subject DN, parsed once and shared
 * (reference counted) by the cache and the connections using it. */
typedef struct edge_iss edge_iss;
void edge_iss_unref(edge_iss *iss);

/* What ResolveDevice said about (account, CA, SN). */
typedef struct edge_dev {
	int found;   /* 0: no association */
	int enabled; /* ENABLED */
	char ca_id[EDGE_ID_MAX];
	char pk[EDGE_PK_MAX];
	char dn[EDGE_DN_MAX];
} edge_dev;

iotca_err edge_auth_create(edge *e, edge_auth **out, iotca_errbuf *eb);
void edge_auth_destroy(edge_auth *a);

/*
 * The CAs for an issuer DN (DER). EDGE_OK: *out holds a reference.
 * EDGE_WAIT: a lookup runs; EDGE_MSG_ISSUER_DONE reaches (loop, conn_id)
 * with ok and, when ok, val = an edge_iss reference.
 */
edge_verdict edge_auth_issuer(edge_auth *a, const uint8_t *der, size_t len,
                              edge_loop *loop, uint64_t conn_id,
                              edge_iss **out);

/* SHA-256 of a CA certificate: names the CA that verified a device
 * certificate, kept with the TLS session (loop.c). */
#define EDGE_FP_LEN 32

/*
 * Checks cert against the CAs of iss: signature by one of them, both
 * within validity, an RSA device key, a usable serial. EDGE_OK sets
 * id->account_id, ca_id and sn, and, when fp is not NULL, fp to the CA
 * that signed cert. known_fp (or NULL) names the CA that verified the
 * very same cert before (a resumed session): while iss still holds that
 * CA certificate, its signature is not verified again.
 */
edge_verdict edge_auth_check(const edge_iss *iss, X509 *cert,
                             const uint8_t *known_fp, edge_ident *id,
                             edge_reason *reason, uint8_t *fp);

/*
 * The device for id (account_id, ca_id, sn). EDGE_OK: *out is the
 * answer. EDGE_WAIT: EDGE_MSG_DEVICE_DONE reaches (loop, conn_id) with ok
 * and, when ok, val = a malloc'd edge_dev.
 */
edge_verdict edge_auth_device(edge_auth *a, const edge_ident *id,
                              edge_loop *loop, uint64_t conn_id, edge_dev *out);

/* Cache invalidation, from the change poller. */
void edge_auth_forget_issuers(edge_auth *a);
void edge_auth_forget_device(edge_auth *a, const char *account, const char *sn);
void edge_auth_forget_devices(edge_auth *a);
/* Stores what a change says about (account, sn): newer than any answer. */
void edge_auth_put_device(edge_auth *a, const char *account, const char *sn,
                          const edge_dev *d);

typedef struct edge_auth_stats {
	uint64_t issuer_hits, issuer_misses, device_hits, device_misses;
	uint64_t lookups, lookup_failures;
	uint64_t issuer_entries, device_entries;
} edge_auth_stats;
void edge_auth_stats_get(edge_auth *a, edge_auth_stats *out);

/* -------------------------------------------------------------- plane.c */

iotca_err edge_plane_create(edge *e, edge_plane **out, iotca_errbuf *eb);
/* Waits up to timeout_ms for every upstream message in flight to be taken
 * by a consumer (or to fail: then it was not acknowledged). */
void edge_plane_drain(edge_plane *p, long timeout_ms);
void edge_plane_destroy(edge_plane *p);

/* Upstream event (kind is a DeviceMessageKind). Never blocks; dropped and
 * counted when the queue is full. */
void edge_plane_event(edge_plane *p, int kind, const edge_ident *id,
                      const char *client_id, const char *peer,
                      edge_reason reason);

/*
 * Upstream PUBLISH. qos 0: sent without waiting (0 on hand-off, -1 when
 * dropped). qos 1/2: the hand-off completes later with EDGE_MSG_UP_DONE
 * to (loop, conn_id) for packet_id; returns 0 if started.
 */
int edge_plane_publish(edge_plane *p, const edge_ident *id,
                       const char *client_id, const char *peer,
                       const char *topic, size_t topic_len,
                       const uint8_t *payload, size_t len, uint8_t qos,
                       edge_loop *loop, uint64_t conn_id, uint16_t packet_id);

/* Where downstream messages for (pk, dn) go. Loops register their
 * sessions; the last registration of a device wins. Register returns the
 * conn id it replaced (0: none) so the caller can close it. */
uint64_t edge_plane_route_add(edge_plane *p, const char *pk, const char *dn,
                              uint64_t conn_id);
void edge_plane_route_del(edge_plane *p, const char *pk, const char *dn,
                          uint64_t conn_id);

typedef struct edge_plane_stats {
	uint64_t up_sent, up_dropped, up_failed, events_sent, events_dropped;
	uint64_t down_received, down_routed, down_dropped;
} edge_plane_stats;
void edge_plane_stats_get(edge_plane *p, edge_plane_stats *out);

/* ------------------------------------------------------------ changes.c */

iotca_err edge_changes_start(edge *e, edge_changes **out, iotca_errbuf *eb);
void edge_changes_stop(edge_changes *c);
/* 1 once both services have answered a first poll. */
int edge_changes_ready(edge_changes *c);

/* -------------------------------------------------------- the process */

typedef struct edge_stats {
	atomic_uint_fast64_t accepted, refused_cap, handshakes_ok,
	    handshakes_failed, handshake_timeouts, resumed, sessions_opened,
	    connack_refused, msgs_up, msgs_down, bytes_in, bytes_out,
	    protocol_errors;
	atomic_uint_fast64_t auth_failed[EDGE_R_COUNT];
	atomic_uint_fast64_t closed[EDGE_R_COUNT];
	atomic_int_fast64_t connections, sessions;
} edge_stats;

struct edge {
	edge_opts o;
	const iotca_config *cfg;
	iotca_rpc_client *registry, *association;
	edge_auth *auth;
	edge_plane *plane;
	edge_changes *changes;
	edge_loop **loops;
	unsigned nloops;
	int port;               /* the MQTT port bound */
	pthread_mutex_t ctx_mu; /* protects ctx */
	SSL_CTX *ctx;
	atomic_int stopping;
	edge_stats st;
};

/* The current server context, with a reference for the caller. */
SSL_CTX *edge_tls_ctx_get(edge *e);

/* Milliseconds of CLOCK_MONOTONIC, and of the wall clock. */
int64_t edge_now_ms(void);
int64_t edge_wall_ms(void);

#endif /* IOTCA_EDGE_H */
