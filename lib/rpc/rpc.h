/*
 * rpc.h - a small gRPC server and client on the gRPC C core API.
 *
 * This is the only module that includes gRPC headers: a change of the core
 * API (it breaks between minor releases) touches rpc/ and nothing else.
 * Messages are protobuf-c messages; methods are found by the protoc-c
 * service descriptors, so no code generator beyond protoc-c is needed.
 *
 * Server model: cq_threads threads, each with its own completion queue and
 * slots_per_cq outstanding grpc_server_request_call slots, run the call
 * state machine. A received request is unpacked and its handler runs on a
 * pool of worker threads (handlers may block on etcd), or directly on the
 * completion-queue thread for methods flagged IOTCA_RPC_INLINE (which must
 * never block). The handler fills a response message allocated for it and
 * returns IOTCA_OK, or returns an error set with iotca_rpc_call_fail(),
 * which becomes the gRPC status and message through iotca_err_grpc_status.
 *
 * The grpc.health.v1.Health service (Check and Watch) is built in.
 */
#ifndef IOTCA_RPC_H
#define IOTCA_RPC_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "arena/arena.h"
#include "err/err.h"

/* ---------------------------------------------------------------- server */

typedef struct iotca_rpc_server iotca_rpc_server;
typedef struct iotca_rpc_call iotca_rpc_call;

typedef struct iotca_rpc_server_opts {
	const char *listen;        /* "127.0.0.1:50051"; port 0 picks one */
	const char *tls_cert_file; /* PEM; NULL with key NULL: plaintext */
	const char *tls_key_file;
	const char
	    *tls_ca_file; /* PEM CAs for client certificates; with it,
	                     a client certificate is verified when
	                     presented (required if require_client_cert) */
	int require_client_cert;
	unsigned cq_threads;    /* 0: 2 */
	unsigned slots_per_cq;  /* outstanding request slots; 0: 16 */
	unsigned workers;       /* handler threads; 0: 16 */
	size_t max_request;     /* receive cap in bytes; 0: 4 MiB */
	long default_budget_ms; /* handler time budget when the client set no
	                           deadline; 0: 30000 */
	long shutdown_grace_ms; /* in-flight calls get this long to finish on
	                           shutdown, then are cancelled; 0: 10000 */
} iotca_rpc_server_opts;

/*
 * A handler. req is the unpacked request, resp a zeroed, initialised
 * response of the method's type; fill it with memory from
 * iotca_rpc_call_arena(call) (freed after the response is sent). Return
 * IOTCA_OK to send resp, or the result of iotca_rpc_call_fail().
 */
typedef iotca_err (*iotca_rpc_handler_fn)(iotca_rpc_call *call,
                                          const ProtobufCMessage *req,
                                          ProtobufCMessage *resp, void *arg);

enum {
	IOTCA_RPC_INLINE = 1u << 0, /* run on the completion-queue thread:
	                               only for handlers that never block */
};

/* Creates a server (not yet listening). Registers the health service. */
iotca_err iotca_rpc_server_create(const iotca_rpc_server_opts *opts,
                                  iotca_rpc_server **out, iotca_errbuf *eb);

/*
 * Registers the handler for one method of a protoc-c service descriptor,
 * e.g. (&iotca__v1__registry__descriptor, "GetCaCertificate", ...).
 * max_request (0: the server's cap) is a smaller cap for this method.
 * Must be called before iotca_rpc_server_start.
 */
iotca_err iotca_rpc_server_register(iotca_rpc_server *srv,
                                    const ProtobufCServiceDescriptor *svc,
                                    const char *method, iotca_rpc_handler_fn fn,
                                    void *arg, unsigned flags,
                                    size_t max_request, iotca_errbuf *eb);

/* Binds the listener and starts the threads. *port (may be NULL) gets the
 * bound port. Every service registered is reported SERVING, as is "". */
iotca_err iotca_rpc_server_start(iotca_rpc_server *srv, int *port,
                                 iotca_errbuf *eb);

/*
 * Sets the health of a service name ("" is the whole server). Names not
 * set are unknown to Check (NOT_FOUND). Thread-safe.
 */
void iotca_rpc_server_set_health(iotca_rpc_server *srv, const char *service,
                                 int serving);

/*
 * Graceful stop: health turns NOT_SERVING, no new calls are accepted,
 * in-flight calls finish (up to shutdown_grace_ms, then they are
 * cancelled), then every thread is joined. Idempotent.
 */
void iotca_rpc_server_shutdown(iotca_rpc_server *srv);

/* Shuts down if needed and frees the server. NULL is allowed. */
void iotca_rpc_server_destroy(iotca_rpc_server *srv);

typedef struct iotca_rpc_server_stats {
	uint64_t calls;           /* calls received */
	uint64_t calls_failed;    /* answered with a non-OK status */
	uint64_t calls_cancelled; /* cancelled by the client or deadline */
	uint64_t calls_unknown;   /* UNIMPLEMENTED: unknown method */
	uint64_t in_flight;
} iotca_rpc_server_stats;

void iotca_rpc_server_stats_get(iotca_rpc_server *srv,
                                iotca_rpc_server_stats *out);

/* ------------------------------------------------------- inside a handler */

/* Memory that lives until the call is answered. */
iotca_arena *iotca_rpc_call_arena(iotca_rpc_call *call);

/* The full method path, e.g. "/iotca.v1.Registry/GetCaCertificate". */
const char *iotca_rpc_call_method(const iotca_rpc_call *call);

/* The first value of a request metadata key (lowercase), not
 * NUL-terminated. 0 if found, -1 if not. */
int iotca_rpc_call_metadata(const iotca_rpc_call *call, const char *key,
                            const char **value, size_t *len);

/* The token of an "authorization: Bearer <token>" header. 0 if a
 * well-formed one is present, -1 if not. */
int iotca_rpc_call_bearer(const iotca_rpc_call *call, const char **token,
                          size_t *len);

/* Whether the peer presented a client certificate that verified. */
int iotca_rpc_call_peer_authenticated(iotca_rpc_call *call);

/* Copies a property of the peer's auth context ("x509_common_name",
 * "x509_subject", "x509_pem_cert", ...) into out. 0 if found, -1 if not
 * (or it did not fit). */
int iotca_rpc_call_peer_property(iotca_rpc_call *call, const char *name,
                                 char *out, size_t n);

/* The peer's address ("ipv4:127.0.0.1:53422"), for logs. */
const char *iotca_rpc_call_peer(iotca_rpc_call *call);

/* Milliseconds left before the call's deadline (the server's default
 * budget when the client set none); 0 when it has passed. */
long iotca_rpc_call_remaining_ms(const iotca_rpc_call *call);

/* Whether the client cancelled the call or its deadline passed. */
int iotca_rpc_call_cancelled(const iotca_rpc_call *call);

/*
 * From an IOTCA_RPC_INLINE handler that finds it would have to block (a
 * cache miss): asks for the handler to run again, from the start, on a
 * worker thread. Call it before touching the response and return IOTCA_OK
 * at once. On a worker thread it does nothing and returns 0; else 1.
 */
int iotca_rpc_call_defer(iotca_rpc_call *call);

/* Sets the call's error status and message; returns code. */
iotca_err iotca_rpc_call_fail(iotca_rpc_call *call, iotca_err code,
                              const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Sets the call's error from an iotca_errbuf; returns its code. */
iotca_err iotca_rpc_call_fail_eb(iotca_rpc_call *call, const iotca_errbuf *eb);

/* ---------------------------------------------------------------- client */

typedef struct iotca_rpc_client iotca_rpc_client;

typedef struct iotca_rpc_client_opts {
	const char *target;        /* "127.0.0.1:50051" or "dns:///host:port" */
	const char *tls_ca_file;   /* NULL: plaintext */
	const char *tls_cert_file; /* client certificate for mTLS (optional) */
	const char *tls_key_file;
	const char *tls_server_name; /* name to check instead of the target's */
	const char *token;   /* sent as "authorization: Bearer <token>" */
	long timeout_ms;     /* default per call; 0: 10000 */
	size_t max_response; /* receive cap; 0: 16 MiB */
} iotca_rpc_client_opts;

/* Creates a client with one channel, reused by every call, and one
 * completion-queue thread. Does not connect until the first call. */
iotca_err iotca_rpc_client_create(const iotca_rpc_client_opts *opts,
                                  iotca_rpc_client **out, iotca_errbuf *eb);

/* Waits for outstanding calls to finish (their callbacks run), then frees
 * the client. NULL is allowed. */
void iotca_rpc_client_destroy(iotca_rpc_client *c);

/*
 * Called once per asynchronous call on the client's thread. On success rc
 * is IOTCA_OK and resp is the unpacked response, which the callback owns
 * (protobuf_c_message_free_unpacked(resp, NULL)). On failure resp is NULL
 * and eb holds the code (mapped from the gRPC status) and the server's
 * message. Must not block.
 */
typedef void (*iotca_rpc_done_fn)(iotca_err rc, ProtobufCMessage *resp,
                                  const iotca_errbuf *eb, void *arg);

/* Starts a unary call to svc/method; timeout_ms 0 uses the default. */
iotca_err iotca_rpc_client_call_async(iotca_rpc_client *c,
                                      const ProtobufCServiceDescriptor *svc,
                                      const char *method,
                                      const ProtobufCMessage *req,
                                      long timeout_ms, iotca_rpc_done_fn fn,
                                      void *arg, iotca_errbuf *eb);

/* A blocking unary call. On success *resp is the response (free with
 * protobuf_c_message_free_unpacked(*resp, NULL)). */
iotca_err iotca_rpc_client_call(iotca_rpc_client *c,
                                const ProtobufCServiceDescriptor *svc,
                                const char *method, const ProtobufCMessage *req,
                                long timeout_ms, ProtobufCMessage **resp,
                                iotca_errbuf *eb);

/* Like iotca_rpc_client_call but sends token (a bearer token; NULL: none)
 * instead of the client's own: for a service forwarding its caller's
 * credential to another service. */
iotca_err iotca_rpc_client_call_as(iotca_rpc_client *c,
                                   const ProtobufCServiceDescriptor *svc,
                                   const char *method,
                                   const ProtobufCMessage *req,
                                   const char *token, long timeout_ms,
                                   ProtobufCMessage **resp, iotca_errbuf *eb);

/* Like iotca_rpc_client_call but by full path and response type, for
 * methods without a descriptor at hand (tests, tools). */
iotca_err iotca_rpc_client_call_path(
    iotca_rpc_client *c, const char *path, const ProtobufCMessage *req,
    const ProtobufCMessageDescriptor *resp_desc, long timeout_ms,
    ProtobufCMessage **resp, iotca_errbuf *eb);

/* Finds a method of a service descriptor; NULL if it has none by that name. */
const ProtobufCMethodDescriptor *
iotca_rpc_find_method(const ProtobufCServiceDescriptor *svc, const char *name);

#endif /* IOTCA_RPC_H */
