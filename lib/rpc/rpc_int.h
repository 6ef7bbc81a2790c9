/*
 * rpc_int.h - internals shared by the files of the rpc module.
 * Nothing outside lib/rpc includes this.
 */
#ifndef IOTCA_RPC_INT_H
#define IOTCA_RPC_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>

#include "rpc/rpc.h"

/* What a completion-queue event is about. */
typedef enum rpc_tag_kind {
	RPC_TAG_NEW,      /* request_call slot filled: a call arrived */
	RPC_TAG_RECV,     /* the request message was received */
	RPC_TAG_SEND,     /* the response and status were sent */
	RPC_TAG_CLOSE,    /* the call is over (cancelled or finished) */
	RPC_TAG_STREAM,   /* one streamed message was sent (health Watch) */
	RPC_TAG_SHUTDOWN, /* grpc_server_shutdown_and_notify completed */
} rpc_tag_kind;

typedef struct rpc_tag {
	rpc_tag_kind kind;
	struct iotca_rpc_call *call;
} rpc_tag;

typedef enum rpc_method_kind {
	RPC_METHOD_UNARY,
	RPC_METHOD_HEALTH_WATCH, /* server streaming, handled in health.c */
} rpc_method_kind;

typedef struct rpc_method {
	char *path; /* "/pkg.Service/Method" */
	const ProtobufCMessageDescriptor *input;
	const ProtobufCMessageDescriptor *output;
	iotca_rpc_handler_fn fn;
	void *arg;
	unsigned flags;
	size_t max_request;
	rpc_method_kind kind;
} rpc_method;

typedef struct rpc_cq {
	pthread_t thread;
	grpc_completion_queue *cq;
	struct iotca_rpc_server *srv;
} rpc_cq;

struct iotca_rpc_call {
	struct iotca_rpc_server *srv;
	rpc_cq *cq;
	grpc_call *gcall;
	grpc_call_details details;
	grpc_metadata_array md;
	grpc_byte_buffer *req_bb;  /* received request, ours to destroy */
	grpc_byte_buffer *resp_bb; /* sent response, destroyed after SEND */
	int close_cancelled;       /* written by RECV_CLOSE_ON_SERVER */
	int close_in_send;         /* RECV_CLOSE rides in the SEND batch */
	int on_worker;             /* the handler runs on the worker pool */
	int deferred;              /* an inline handler asked for a worker */
	atomic_int cancelled;
	atomic_int refs; /* one per batch whose tag is still to come */
	const rpc_method *method;
	ProtobufCMessage *req;
	ProtobufCMessage *resp;
	iotca_arena *arena;
	gpr_timespec deadline; /* monotonic */
	char *peer;            /* gpr_free */
	iotca_err status;
	char status_msg[IOTCA_ERRMSG_MAX];
	grpc_slice status_slice;
	long start_ns;
	int initial_md_sent; /* a streamed message already carried it */
	rpc_tag tag_new, tag_recv, tag_send, tag_close, tag_stream;
	struct iotca_rpc_call *next; /* worker queue, health watcher list */
	/* health Watch state, protected by the server's health_mu */
	char *watch_service;
	int watch_sent;    /* last status sent, -1 none */
	int watch_sending; /* a stream message is in flight */
	int watch_ending;  /* the call should end once nothing is in flight */
};

typedef struct rpc_health_entry {
	char *service;
	int serving;
} rpc_health_entry;

struct iotca_rpc_server {
	iotca_rpc_server_opts opts; /* strings below are our copies */
	char *listen, *tls_cert_file, *tls_key_file, *tls_ca_file;
	grpc_server *server;
	rpc_cq *cqs;
	unsigned ncq;
	rpc_method *methods;
	size_t nmethods;
	/* worker pool */
	pthread_mutex_t pool_mu;
	pthread_cond_t pool_cv;
	struct iotca_rpc_call *pool_head, *pool_tail;
	int pool_stop;
	pthread_t *workers;
	unsigned nworkers;
	/* health */
	pthread_mutex_t health_mu;
	rpc_health_entry *health;
	size_t nhealth;
	struct iotca_rpc_call *watchers;
	/* lifecycle */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int started, shutdown_started, shutdown_notified, stopped;
	atomic_int shutting_down;
	rpc_tag tag_shutdown;
	/* stats */
	atomic_uint_fast64_t st_calls, st_failed, st_cancelled, st_unknown;
	atomic_int_fast64_t st_in_flight;
};

/* server.c */
void rpc_init(void); /* grpc_init, once-only setup; pair with grpc_shutdown */
void rpc_call_respond(struct iotca_rpc_call *c, iotca_err rc);
void rpc_call_unref(struct iotca_rpc_call *c);

iotca_err rpc_server_add_internal(struct iotca_rpc_server *srv,
                                  const ProtobufCServiceDescriptor *svc,
                                  const char *method, rpc_method_kind kind,
                                  iotca_rpc_handler_fn fn, unsigned flags,
                                  iotca_errbuf *eb);

/* health.c */
iotca_err rpc_health_register(struct iotca_rpc_server *srv, iotca_errbuf *eb);
void rpc_health_watch_begin(struct iotca_rpc_call *c);
void rpc_health_watch_sent(struct iotca_rpc_call *c, int success);
void rpc_health_watch_closed(struct iotca_rpc_call *c);
void rpc_health_end_watchers(struct iotca_rpc_server *srv);
void rpc_health_free(struct iotca_rpc_server *srv);

/* tls.c */
iotca_err rpc_tls_read_pem(const char *path, const char *what, char **out,
                           iotca_errbuf *eb);
iotca_err rpc_tls_check_pair(const char *cert_pem, const char *key_pem,
                             const char *cert_path, iotca_errbuf *eb);

/* ProtobufC allocator that takes memory from an arena. */
void rpc_arena_allocator(iotca_arena *a, ProtobufCAllocator *out);

/* Packs a message into a new byte buffer; NULL on no memory. */
grpc_byte_buffer *rpc_pack(const ProtobufCMessage *m);

/* Reads a whole byte buffer and unpacks it; NULL if malformed. */
ProtobufCMessage *rpc_unpack(grpc_byte_buffer *bb,
                             const ProtobufCMessageDescriptor *desc,
                             ProtobufCAllocator *alloc);

#endif /* IOTCA_RPC_INT_H */
