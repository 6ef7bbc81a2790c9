/*
 * server.c - the gRPC server: completion-queue threads, the per-call state
 * machine, the worker pool, and graceful shutdown.
 *
 * A call moves through: NEW (slot filled) -> RECV (request read) -> handler
 * (worker or inline) -> SEND (response + status). A separate CLOSE batch
 * (RECV_CLOSE_ON_SERVER) started at NEW tells us when the client cancels or
 * the deadline passes. The call is freed when both SEND and CLOSE are done
 * (refs counts the batches still to complete).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/support/alloc.h>
#include <grpc/support/log.h>
#include <grpc/support/time.h>

#include "log/log.h"
#include "rpc/rpc_int.h"

#define RPC_DEFAULT_CQ_THREADS  2
#define RPC_DEFAULT_SLOTS       16
#define RPC_DEFAULT_WORKERS     16
#define RPC_DEFAULT_MAX_REQUEST (4u << 20)
#define RPC_DEFAULT_BUDGET_MS   30000
#define RPC_DEFAULT_GRACE_MS    10000
/* Unpacking may need more memory than the wire bytes (structs, pointers):
 * a call's arena may use this many times its request cap, plus a base. */
#define RPC_ARENA_FACTOR 16
#define RPC_ARENA_BASE   (1u << 20)

static long
rpc_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

/* ------------------------------------------------------------- helpers */

/* gRPC's own log lines go through our logger, as event GRPC-LOG. */
static void
rpc_gpr_log(gpr_log_func_args *args)
{
	char msg[IOTCA_LOG_QUOTE_MAX];
	iotca_log_level lvl = args->severity == GPR_LOG_SEVERITY_ERROR
	                          ? IOTCA_LOG_WARN
	                          : IOTCA_LOG_DEBUG;

	if (!iotca_log_enabled(lvl))
		return;
	iotca_log(lvl, "GRPC-LOG", "src=%s:%d msg=%s", args->file, args->line,
	          iotca_log_quote(msg, sizeof(msg), args->message));
}

static pthread_once_t rpc_once = PTHREAD_ONCE_INIT;

static void
rpc_init_once(void)
{
	gpr_set_log_function(rpc_gpr_log);
}

void
rpc_init(void)
{
	pthread_once(&rpc_once, rpc_init_once);
	grpc_init();
}

static void *
rpc_arena_alloc_cb(void *data, size_t n)
{
	return iotca_arena_alloc(data, n);
}

static void
rpc_arena_free_cb(void *data, void *p)
{
	(void)data;
	(void)p; /* freed with the arena */
}

void
rpc_arena_allocator(iotca_arena *a, ProtobufCAllocator *out)
{
	out->alloc = rpc_arena_alloc_cb;
	out->free = rpc_arena_free_cb;
	out->allocator_data = a;
}

grpc_byte_buffer *
rpc_pack(const ProtobufCMessage *m)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	grpc_slice s = grpc_slice_malloc(n);
	grpc_byte_buffer *bb;

	protobuf_c_message_pack(m, GRPC_SLICE_START_PTR(s));
	bb = grpc_raw_byte_buffer_create(&s, 1);
	grpc_slice_unref(s);
	return bb;
}

ProtobufCMessage *
rpc_unpack(grpc_byte_buffer *bb, const ProtobufCMessageDescriptor *desc,
           ProtobufCAllocator *alloc)
{
	grpc_byte_buffer_reader r;
	grpc_slice all;
	ProtobufCMessage *m;

	if (!grpc_byte_buffer_reader_init(&r, bb))
		return NULL;
	all = grpc_byte_buffer_reader_readall(&r);
	grpc_byte_buffer_reader_destroy(&r);
	m = protobuf_c_message_unpack(desc, alloc, GRPC_SLICE_LENGTH(all),
	                              GRPC_SLICE_START_PTR(all));
	grpc_slice_unref(all);
	return m;
}

static char *
rpc_strdup_or_null(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

/* --------------------------------------------------------- call access */

iotca_arena *
iotca_rpc_call_arena(iotca_rpc_call *call)
{
	return call->arena;
}

const char *
iotca_rpc_call_method(const iotca_rpc_call *call)
{
	return call->method != NULL ? call->method->path : "";
}

int
iotca_rpc_call_metadata(const iotca_rpc_call *call, const char *key,
                        const char **value, size_t *len)
{
	size_t i;

	for (i = 0; i < call->md.count; i++) {
		const grpc_metadata *m = &call->md.metadata[i];
		if (grpc_slice_str_cmp(m->key, key) == 0) {
			*value = (const char *)GRPC_SLICE_START_PTR(m->value);
			*len = GRPC_SLICE_LENGTH(m->value);
			return 0;
		}
	}
	return -1;
}

int
iotca_rpc_call_bearer(const iotca_rpc_call *call, const char **token,
                      size_t *len)
{
	const char *v;
	size_t n;

	if (iotca_rpc_call_metadata(call, "authorization", &v, &n) != 0)
		return -1;
	if (n <= 7 || strncasecmp(v, "Bearer ", 7) != 0)
		return -1;
	v += 7;
	n -= 7;
	while (n > 0 && *v == ' ') {
		v++;
		n--;
	}
	if (n == 0)
		return -1;
	*token = v;
	*len = n;
	return 0;
}

int
iotca_rpc_call_peer_authenticated(iotca_rpc_call *call)
{
	grpc_auth_context *ctx = grpc_call_auth_context(call->gcall);
	int ok;

	if (ctx == NULL)
		return 0;
	ok = grpc_auth_context_peer_is_authenticated(ctx);
	grpc_auth_context_release(ctx);
	return ok;
}

int
iotca_rpc_call_peer_property(iotca_rpc_call *call, const char *name, char *out,
                             size_t n)
{
	grpc_auth_context *ctx = grpc_call_auth_context(call->gcall);
	grpc_auth_property_iterator it;
	const grpc_auth_property *p;
	int rc = -1;

	if (ctx == NULL)
		return -1;
	it = grpc_auth_context_find_properties_by_name(ctx, name);
	p = grpc_auth_property_iterator_next(&it);
	if (p != NULL && p->value_length < n) {
		memcpy(out, p->value, p->value_length);
		out[p->value_length] = '\0';
		rc = 0;
	}
	grpc_auth_context_release(ctx);
	return rc;
}

const char *
iotca_rpc_call_peer(iotca_rpc_call *call)
{
	if (call->peer == NULL)
		call->peer = grpc_call_get_peer(call->gcall);
	return call->peer != NULL ? call->peer : "unknown";
}

long
iotca_rpc_call_remaining_ms(const iotca_rpc_call *call)
{
	gpr_timespec now = gpr_now(GPR_CLOCK_MONOTONIC);
	gpr_timespec left;

	if (gpr_time_cmp(call->deadline, now) <= 0)
		return 0;
	left = gpr_time_sub(call->deadline, now);
	return (long)(left.tv_sec * 1000 + left.tv_nsec / 1000000);
}

int
iotca_rpc_call_cancelled(const iotca_rpc_call *call)
{
	return atomic_load(&call->cancelled);
}

int
iotca_rpc_call_defer(iotca_rpc_call *call)
{
	if (call->on_worker)
		return 0;
	call->deferred = 1;
	return 1;
}

iotca_err
iotca_rpc_call_fail(iotca_rpc_call *call, iotca_err code, const char *fmt, ...)
{
	va_list ap;

	call->status = code;
	va_start(ap, fmt);
	vsnprintf(call->status_msg, sizeof(call->status_msg), fmt, ap);
	va_end(ap);
	return code;
}

iotca_err
iotca_rpc_call_fail_eb(iotca_rpc_call *call, const iotca_errbuf *eb)
{
	return iotca_rpc_call_fail(call, eb->code, "%s", iotca_errbuf_msg(eb));
}

/* ---------------------------------------------------------- call cycle */

static void rpc_slot_arm(rpc_cq *q);

static void
rpc_call_free(iotca_rpc_call *c)
{
	if (c->gcall != NULL)
		grpc_call_unref(c->gcall);
	grpc_call_details_destroy(&c->details);
	grpc_metadata_array_destroy(&c->md);
	if (c->req_bb != NULL)
		grpc_byte_buffer_destroy(c->req_bb);
	if (c->resp_bb != NULL)
		grpc_byte_buffer_destroy(c->resp_bb);
	grpc_slice_unref(c->status_slice);
	iotca_arena_destroy(c->arena);
	if (c->peer != NULL)
		gpr_free(c->peer);
	free(c->watch_service);
	free(c);
}

void
rpc_call_unref(iotca_rpc_call *c)
{
	iotca_rpc_server *srv = c->srv;

	if (atomic_fetch_sub(&c->refs, 1) != 1)
		return;
	atomic_fetch_sub(&srv->st_in_flight, 1);
	rpc_call_free(c);
}

static void
rpc_call_log(iotca_rpc_call *c, iotca_err rc)
{
	char msg[IOTCA_LOG_QUOTE_MAX];
	long us = (rpc_now_ns() - c->start_ns) / 1000;
	iotca_log_level lvl = IOTCA_LOG_DEBUG;

	if (rc == IOTCA_EINTERNAL || rc == IOTCA_EPROTO || rc == IOTCA_ENOMEM)
		lvl = IOTCA_LOG_WARN;
	if (!iotca_log_enabled(lvl))
		return;
	iotca_log(lvl, "RPC-CALL", "method=%s status=%d us=%ld msg=%s",
	          c->method ? c->method->path : "?", iotca_err_grpc_status(rc),
	          us, iotca_log_quote(msg, sizeof(msg), c->status_msg));
}

/* Sends the response (when rc is IOTCA_OK) and the status. */
void
rpc_call_respond(iotca_rpc_call *c, iotca_err rc)
{
	grpc_op ops[4];
	size_t n = 0;
	grpc_call_error err;

	memset(ops, 0, sizeof(ops));
	if (rc == IOTCA_OK && c->resp != NULL &&
	    (c->resp_bb = rpc_pack(c->resp)) == NULL)
		rc = iotca_rpc_call_fail(c, IOTCA_ENOMEM,
		                         "out of memory packing the response");
	if (rc != IOTCA_OK) {
		if (c->status != rc || c->status_msg[0] == '\0')
			iotca_rpc_call_fail(c, rc, "%s", iotca_strerror(rc));
		atomic_fetch_add(&c->srv->st_failed, 1);
	}
	rpc_call_log(c, rc);
	if (!c->initial_md_sent)
		ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
	if (rc == IOTCA_OK && c->resp_bb != NULL) {
		ops[n].op = GRPC_OP_SEND_MESSAGE;
		ops[n++].data.send_message.send_message = c->resp_bb;
	}
	c->status_slice =
	    grpc_slice_from_copied_string(rc == IOTCA_OK ? "" : c->status_msg);
	ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	ops[n].data.send_status_from_server.status =
	    (grpc_status_code)iotca_err_grpc_status(rc);
	ops[n++].data.send_status_from_server.status_details = &c->status_slice;
	if (c->close_in_send) {
		ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
		ops[n++].data.recv_close_on_server.cancelled =
		    &c->close_cancelled;
	}
	err = grpc_call_start_batch(c->gcall, ops, n, &c->tag_send, NULL);
	if (err != GRPC_CALL_OK) {
		iotca_log_error("RPC-BATCH-FAILED",
		                "method=%s step=send err=%d",
		                iotca_rpc_call_method(c), (int)err);
		rpc_call_unref(c); /* the SEND tag will never come */
	}
}

static void rpc_pool_push(iotca_rpc_server *srv, iotca_rpc_call *c);

/* Runs the handler and answers. On a worker or the cq thread. */
static void
rpc_call_run(iotca_rpc_call *c)
{
	iotca_err rc;

	if (iotca_rpc_call_cancelled(c)) {
		rpc_call_respond(c, iotca_rpc_call_fail(c, IOTCA_ECANCELED,
		                                        "call cancelled before "
		                                        "it ran"));
		return;
	}
	c->status = IOTCA_OK;
	c->status_msg[0] = '\0';
	rc = c->method->fn(c, c->req, c->resp, c->method->arg);
	if (c->deferred && !c->on_worker) {
		c->deferred = 0;
		rpc_pool_push(c->srv, c); /* again, where it may block */
		return;
	}
	rpc_call_respond(c, rc);
}

static void
rpc_pool_push(iotca_rpc_server *srv, iotca_rpc_call *c)
{
	pthread_mutex_lock(&srv->pool_mu);
	c->next = NULL;
	if (srv->pool_tail != NULL)
		srv->pool_tail->next = c;
	else
		srv->pool_head = c;
	srv->pool_tail = c;
	pthread_cond_signal(&srv->pool_cv);
	pthread_mutex_unlock(&srv->pool_mu);
}

static void *
rpc_worker_main(void *arg)
{
	iotca_rpc_server *srv = arg;
	iotca_rpc_call *c;

	for (;;) {
		pthread_mutex_lock(&srv->pool_mu);
		while (srv->pool_head == NULL && !srv->pool_stop)
			pthread_cond_wait(&srv->pool_cv, &srv->pool_mu);
		if ((c = srv->pool_head) == NULL) { /* stopping, queue empty */
			pthread_mutex_unlock(&srv->pool_mu);
			return NULL;
		}
		srv->pool_head = c->next;
		if (srv->pool_head == NULL)
			srv->pool_tail = NULL;
		pthread_mutex_unlock(&srv->pool_mu);
		c->on_worker = 1;
		rpc_call_run(c);
	}
}

static const rpc_method *
rpc_method_find(const iotca_rpc_server *srv, grpc_slice path)
{
	size_t i;

	for (i = 0; i < srv->nmethods; i++)
		if (grpc_slice_str_cmp(path, srv->methods[i].path) == 0)
			return &srv->methods[i];
	return NULL;
}

static void
rpc_call_set_deadline(iotca_rpc_call *c)
{
	gpr_timespec now = gpr_now(GPR_CLOCK_MONOTONIC);
	gpr_timespec d = c->details.deadline;

	if (gpr_time_cmp(d, gpr_inf_future(d.clock_type)) == 0)
		c->deadline = gpr_time_add(
		    now, gpr_time_from_millis(c->srv->opts.default_budget_ms,
		                              GPR_TIMESPAN));
	else
		c->deadline = gpr_convert_clock_type(d, GPR_CLOCK_MONOTONIC);
}

/* Starts the batch that completes when the call is over. */
static int
rpc_call_start_close(iotca_rpc_call *c)
{
	grpc_op op;

	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	op.data.recv_close_on_server.cancelled = &c->close_cancelled;
	return grpc_call_start_batch(c->gcall, &op, 1, &c->tag_close, NULL) ==
	               GRPC_CALL_OK
	           ? 0
	           : -1;
}

static void
rpc_on_new(iotca_rpc_call *c, int success)
{
	iotca_rpc_server *srv = c->srv;
	char path[256];
	grpc_op op;

	if (!success) { /* the server is shutting down: slot returned */
		rpc_call_free(c);
		return;
	}
	if (!atomic_load(&srv->shutting_down))
		rpc_slot_arm(c->cq);
	c->start_ns = rpc_now_ns();
	atomic_fetch_add(&srv->st_calls, 1);
	atomic_fetch_add(&srv->st_in_flight, 1);
	rpc_call_set_deadline(c);
	c->method = rpc_method_find(srv, c->details.method);
	/* Calls answered at once (inline handlers, unknown methods) learn of
	 * the close in their SEND batch: one completion fewer per call. The
	 * others watch for it from the start, so a worker can see a cancel
	 * while it runs. */
	c->close_in_send =
	    c->method == NULL || (c->method->kind == RPC_METHOD_UNARY &&
	                          (c->method->flags & IOTCA_RPC_INLINE));
	atomic_store(&c->refs, c->close_in_send ? 1 : 2);
	if (!c->close_in_send && rpc_call_start_close(c) != 0)
		atomic_fetch_sub(&c->refs, 1);
	if (c->method == NULL) {
		atomic_fetch_add(&srv->st_unknown, 1);
		snprintf(path, sizeof(path), "%.*s",
		         (int)GRPC_SLICE_LENGTH(c->details.method),
		         (const char *)GRPC_SLICE_START_PTR(c->details.method));
		rpc_call_respond(c, iotca_rpc_call_fail(
		                        c, IOTCA_ENOTSUP,
		                        "unknown method %s: this server does "
		                        "not implement it",
		                        path));
		return;
	}
	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_RECV_MESSAGE;
	op.data.recv_message.recv_message = &c->req_bb;
	if (grpc_call_start_batch(c->gcall, &op, 1, &c->tag_recv, NULL) !=
	    GRPC_CALL_OK)
		rpc_call_respond(c, iotca_rpc_call_fail(c, IOTCA_EINTERNAL,
		                                        "cannot read request"));
}

/* Unpacks the request into the call's arena and prepares the response. */
static iotca_err
rpc_call_unpack(iotca_rpc_call *c)
{
	const rpc_method *m = c->method;
	size_t cap = m->max_request ? m->max_request : c->srv->opts.max_request;
	size_t len = grpc_byte_buffer_length(c->req_bb);
	ProtobufCAllocator alloc;

	if (len > cap)
		return iotca_rpc_call_fail(
		    c, IOTCA_ETOOBIG,
		    "request is %zu bytes; %s accepts at "
		    "most %zu",
		    len, m->path, cap);
	c->arena = iotca_arena_create(cap * RPC_ARENA_FACTOR + RPC_ARENA_BASE);
	if (c->arena == NULL)
		return iotca_rpc_call_fail(c, IOTCA_ENOMEM, "out of memory");
	rpc_arena_allocator(c->arena, &alloc);
	if ((c->req = rpc_unpack(c->req_bb, m->input, &alloc)) == NULL)
		return iotca_rpc_call_fail(c, IOTCA_EINVAL,
		                           "request is not a valid %s message",
		                           m->input->name);
	if ((c->resp = iotca_arena_zalloc(c->arena,
	                                  m->output->sizeof_message)) == NULL)
		return iotca_rpc_call_fail(c, IOTCA_ENOMEM, "out of memory");
	m->output->message_init(c->resp);
	return IOTCA_OK;
}

static void
rpc_on_recv(iotca_rpc_call *c, int success)
{
	iotca_err rc;

	if (!success || c->req_bb == NULL) {
		rpc_call_respond(
		    c, iotca_rpc_call_fail(
		           c, success ? IOTCA_EINVAL : IOTCA_ECANCELED,
		           success ? "request has no message"
		                   : "call ended before its request "
		                     "arrived"));
		return;
	}
	if ((rc = rpc_call_unpack(c)) != IOTCA_OK) {
		rpc_call_respond(c, rc);
		return;
	}
	if (c->method->kind == RPC_METHOD_HEALTH_WATCH)
		rpc_health_watch_begin(c);
	else if (c->method->flags & IOTCA_RPC_INLINE)
		rpc_call_run(c);
	else
		rpc_pool_push(c->srv, c);
}

static void
rpc_note_cancel(iotca_rpc_call *c)
{
	if (c->close_cancelled) {
		atomic_store(&c->cancelled, 1);
		atomic_fetch_add(&c->srv->st_cancelled, 1);
		iotca_log_debug("RPC-CANCELLED", "method=%s",
		                iotca_rpc_call_method(c));
	}
}

static void
rpc_on_close(iotca_rpc_call *c)
{
	rpc_note_cancel(c);
	if (c->method != NULL && c->method->kind == RPC_METHOD_HEALTH_WATCH)
		rpc_health_watch_closed(c);
	rpc_call_unref(c);
}

static void
rpc_on_shutdown(iotca_rpc_server *srv)
{
	pthread_mutex_lock(&srv->mu);
	srv->shutdown_notified = 1;
	pthread_cond_broadcast(&srv->cv);
	pthread_mutex_unlock(&srv->mu);
}

static void
rpc_dispatch(rpc_tag *tag, int success)
{
	iotca_rpc_call *c = tag->call;

	switch (tag->kind) {
	case RPC_TAG_NEW:
		rpc_on_new(c, success);
		break;
	case RPC_TAG_RECV:
		rpc_on_recv(c, success);
		break;
	case RPC_TAG_SEND:
		if (c->close_in_send)
			rpc_note_cancel(c);
		rpc_call_unref(c);
		break;
	case RPC_TAG_CLOSE:
		rpc_on_close(c);
		break;
	case RPC_TAG_STREAM:
		rpc_health_watch_sent(c, success);
		break;
	case RPC_TAG_SHUTDOWN:
		break; /* handled by the caller: tag->call is NULL */
	}
}

static void *
rpc_cq_main(void *arg)
{
	rpc_cq *q = arg;
	grpc_event ev;

	for (;;) {
		ev = grpc_completion_queue_next(
		    q->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			return NULL;
		if (ev.type != GRPC_OP_COMPLETE)
			continue;
		if (((rpc_tag *)ev.tag)->kind == RPC_TAG_SHUTDOWN)
			rpc_on_shutdown(q->srv);
		else
			rpc_dispatch(ev.tag, ev.success);
	}
}

/* Offers one request_call slot on a completion queue. */
static void
rpc_slot_arm(rpc_cq *q)
{
	iotca_rpc_call *c = calloc(1, sizeof(*c));
	grpc_call_error err;

	if (c == NULL) {
		iotca_log_error("RPC-NO-MEMORY", "what=call_slot");
		return;
	}
	c->srv = q->srv;
	c->cq = q;
	c->status_slice = grpc_empty_slice();
	c->watch_sent = -1;
	grpc_call_details_init(&c->details);
	grpc_metadata_array_init(&c->md);
	c->tag_new = (rpc_tag){RPC_TAG_NEW, c};
	c->tag_recv = (rpc_tag){RPC_TAG_RECV, c};
	c->tag_send = (rpc_tag){RPC_TAG_SEND, c};
	c->tag_close = (rpc_tag){RPC_TAG_CLOSE, c};
	c->tag_stream = (rpc_tag){RPC_TAG_STREAM, c};
	err = grpc_server_request_call(q->srv->server, &c->gcall, &c->details,
	                               &c->md, q->cq, q->cq, &c->tag_new);
	if (err != GRPC_CALL_OK) {
		iotca_log_error("RPC-REQUEST-CALL-FAILED", "err=%d", (int)err);
		rpc_call_free(c);
	}
}

/* -------------------------------------------------------- server setup */

static void
rpc_opts_defaults(iotca_rpc_server_opts *o)
{
	if (o->cq_threads == 0)
		o->cq_threads = RPC_DEFAULT_CQ_THREADS;
	if (o->slots_per_cq == 0)
		o->slots_per_cq = RPC_DEFAULT_SLOTS;
	if (o->workers == 0)
		o->workers = RPC_DEFAULT_WORKERS;
	if (o->max_request == 0)
		o->max_request = RPC_DEFAULT_MAX_REQUEST;
	if (o->default_budget_ms <= 0)
		o->default_budget_ms = RPC_DEFAULT_BUDGET_MS;
	if (o->shutdown_grace_ms <= 0)
		o->shutdown_grace_ms = RPC_DEFAULT_GRACE_MS;
}

iotca_err
iotca_rpc_server_create(const iotca_rpc_server_opts *opts,
                        iotca_rpc_server **out, iotca_errbuf *eb)
{
	iotca_rpc_server *srv;
	iotca_err rc = IOTCA_ENOMEM;

	if (opts->listen == NULL)
		return iotca_errbuf_set(eb, IOTCA_EINVAL,
		                        "no listen address given");
	if ((opts->tls_cert_file == NULL) != (opts->tls_key_file == NULL))
		return iotca_errbuf_set(
		    eb, IOTCA_EINVAL,
		    "TLS needs both a certificate and a key "
		    "file; set both or neither");
	if (opts->require_client_cert && opts->tls_ca_file == NULL)
		return iotca_errbuf_set(eb, IOTCA_EINVAL,
		                        "requiring client certificates needs a "
		                        "CA file to verify them");
	if ((srv = calloc(1, sizeof(*srv))) == NULL)
		return iotca_errbuf_set(eb, IOTCA_ENOMEM, "out of memory");
	srv->opts = *opts;
	rpc_opts_defaults(&srv->opts);
	srv->listen = strdup(opts->listen);
	srv->tls_cert_file = rpc_strdup_or_null(opts->tls_cert_file);
	srv->tls_key_file = rpc_strdup_or_null(opts->tls_key_file);
	srv->tls_ca_file = rpc_strdup_or_null(opts->tls_ca_file);
	pthread_mutex_init(&srv->pool_mu, NULL);
	pthread_cond_init(&srv->pool_cv, NULL);
	pthread_mutex_init(&srv->health_mu, NULL);
	pthread_mutex_init(&srv->mu, NULL);
	pthread_cond_init(&srv->cv, NULL);
	srv->tag_shutdown = (rpc_tag){RPC_TAG_SHUTDOWN, NULL};
	rpc_init();
	if (srv->listen == NULL)
		goto out;
	if ((rc = rpc_health_register(srv, eb)) != IOTCA_OK)
		goto out;
	*out = srv;
	return IOTCA_OK;
out:
	iotca_rpc_server_destroy(srv);
	return rc == IOTCA_ENOMEM ? iotca_errbuf_set(eb, rc, "out of memory")
	                          : rc;
}

const ProtobufCMethodDescriptor *
iotca_rpc_find_method(const ProtobufCServiceDescriptor *svc, const char *name)
{
	unsigned i;

	for (i = 0; i < svc->n_methods; i++)
		if (strcmp(svc->methods[i].name, name) == 0)
			return &svc->methods[i];
	return NULL;
}

/* Adds a method entry; used by register and by the health service. */
static iotca_err
rpc_method_add(iotca_rpc_server *srv, const ProtobufCServiceDescriptor *svc,
               const char *method, rpc_method_kind kind, iotca_errbuf *eb,
               rpc_method **out)
{
	const ProtobufCMethodDescriptor *md =
	    iotca_rpc_find_method(svc, method);
	rpc_method *m;
	char path[512];

	if (srv->started)
		return iotca_errbuf_set(eb, IOTCA_EINVAL,
		                        "register %s before starting", method);
	if (md == NULL)
		return iotca_errbuf_set(eb, IOTCA_EINVAL,
		                        "service %s has no method %s",
		                        svc->name, method);
	snprintf(path, sizeof(path), "/%s/%s", svc->name, method);
	m = realloc(srv->methods, (srv->nmethods + 1) * sizeof(*m));
	if (m == NULL)
		return iotca_errbuf_set(eb, IOTCA_ENOMEM, "out of memory");
	srv->methods = m;
	m = &srv->methods[srv->nmethods];
	memset(m, 0, sizeof(*m));
	if ((m->path = strdup(path)) == NULL)
		return iotca_errbuf_set(eb, IOTCA_ENOMEM, "out of memory");
	m->input = md->input;
	m->output = md->output;
	m->kind = kind;
	srv->nmethods++;
	*out = m;
	return IOTCA_OK;
}

iotca_err
rpc_server_add_internal(iotca_rpc_server *srv,
                        const ProtobufCServiceDescriptor *svc,
                        const char *method, rpc_method_kind kind,
                        iotca_rpc_handler_fn fn, unsigned flags,
                        iotca_errbuf *eb)
{
	rpc_method *m;
	iotca_err rc = rpc_method_add(srv, svc, method, kind, eb, &m);

	if (rc == IOTCA_OK) {
		m->fn = fn;
		m->arg = srv;
		m->flags = flags;
		m->max_request = 4096;
	}
	return rc;
}

iotca_err
iotca_rpc_server_register(iotca_rpc_server *srv,
                          const ProtobufCServiceDescriptor *svc,
                          const char *method, iotca_rpc_handler_fn fn,
                          void *arg, unsigned flags, size_t max_request,
                          iotca_errbuf *eb)
{
	rpc_method *m;
	iotca_err rc;
	size_t i;

	for (i = 0; i < srv->nmethods; i++) {
		char path[512];
		snprintf(path, sizeof(path), "/%s/%s", svc->name, method);
		if (strcmp(srv->methods[i].path, path) == 0)
			return iotca_errbuf_set(eb, IOTCA_EEXIST,
			                        "%s registered twice", path);
	}
	if ((rc = rpc_method_add(srv, svc, method, RPC_METHOD_UNARY, eb, &m)) !=
	    IOTCA_OK)
		return rc;
	m->fn = fn;
	m->arg = arg;
	m->flags = flags;
	m->max_request = max_request;
	return IOTCA_OK;
}

/* Makes the listener's credentials from the PEM files in the options. */
static iotca_err
rpc_server_creds(iotca_rpc_server *srv, grpc_server_credentials **out,
                 iotca_errbuf *eb)
{
	char *cert = NULL, *key = NULL, *ca = NULL;
	grpc_ssl_pem_key_cert_pair pair;
	grpc_ssl_client_certificate_request_type req;
	iotca_err rc;

	if (srv->tls_cert_file == NULL) {
		*out = grpc_insecure_server_credentials_create();
		return IOTCA_OK;
	}
	if ((rc = rpc_tls_read_pem(srv->tls_cert_file, "certificate", &cert,
	                           eb)) != IOTCA_OK ||
	    (rc = rpc_tls_read_pem(srv->tls_key_file, "key", &key, eb)) !=
	        IOTCA_OK ||
	    (srv->tls_ca_file != NULL &&
	     (rc = rpc_tls_read_pem(srv->tls_ca_file, "CA", &ca, eb)) !=
	         IOTCA_OK) ||
	    (rc = rpc_tls_check_pair(cert, key, srv->tls_cert_file, eb)) !=
	        IOTCA_OK)
		goto out;
	if (ca == NULL)
		req = GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE;
	else if (srv->opts.require_client_cert)
		req =
		    GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
	else
		req = GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY;
	pair.private_key = key;
	pair.cert_chain = cert;
	*out = grpc_ssl_server_credentials_create_ex(ca, &pair, 1, req, NULL);
	if (*out == NULL)
		rc = iotca_errbuf_set(eb, IOTCA_EINVAL,
		                      "gRPC refused the TLS files %s / %s",
		                      srv->tls_cert_file, srv->tls_key_file);
out:
	free(cert);
	free(key);
	free(ca);
	return rc;
}

static iotca_err
rpc_server_bind(iotca_rpc_server *srv, int *port, iotca_errbuf *eb)
{
	grpc_server_credentials *creds = NULL;
	grpc_arg args[2];
	grpc_channel_args cargs;
	iotca_err rc;
	int p;

	if ((rc = rpc_server_creds(srv, &creds, eb)) != IOTCA_OK)
		return rc;
	args[0].type = GRPC_ARG_INTEGER;
	args[0].key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
	args[0].value.integer = (int)srv->opts.max_request;
	/* Without this, a second server on the same port would silently
	 * share it instead of failing. */
	args[1].type = GRPC_ARG_INTEGER;
	args[1].key = (char *)GRPC_ARG_ALLOW_REUSEPORT;
	args[1].value.integer = 0;
	cargs.num_args = 2;
	cargs.args = args;
	srv->server = grpc_server_create(&cargs, NULL);
	p = grpc_server_add_http2_port(srv->server, srv->listen, creds);
	grpc_server_credentials_release(creds);
	if (p == 0)
		return iotca_errbuf_set(
		    eb, IOTCA_EINVAL,
		    "cannot listen on %s: the address is in "
		    "use or not local",
		    srv->listen);
	if (port != NULL)
		*port = p;
	return IOTCA_OK;
}

static iotca_err
rpc_server_start_threads(iotca_rpc_server *srv, iotca_errbuf *eb)
{
	unsigned i, k;

	for (i = 0; i < srv->ncq; i++) {
		for (k = 0; k < srv->opts.slots_per_cq; k++)
			rpc_slot_arm(&srv->cqs[i]);
		if (pthread_create(&srv->cqs[i].thread, NULL, rpc_cq_main,
		                   &srv->cqs[i]) != 0)
			return iotca_errbuf_set(eb, IOTCA_EINTERNAL,
			                        "cannot start a thread: %s",
			                        strerror(errno));
	}
	srv->workers = calloc(srv->opts.workers, sizeof(pthread_t));
	if (srv->workers == NULL)
		return iotca_errbuf_set(eb, IOTCA_ENOMEM, "out of memory");
	for (i = 0; i < srv->opts.workers; i++) {
		if (pthread_create(&srv->workers[i], NULL, rpc_worker_main,
		                   srv) != 0)
			return iotca_errbuf_set(eb, IOTCA_EINTERNAL,
			                        "cannot start a thread: %s",
			                        strerror(errno));
		srv->nworkers++;
	}
	return IOTCA_OK;
}

iotca_err
iotca_rpc_server_start(iotca_rpc_server *srv, int *port, iotca_errbuf *eb)
{
	unsigned i;
	iotca_err rc;
	int bound = 0;

	if (srv->started)
		return iotca_errbuf_set(eb, IOTCA_EINVAL, "already started");
	if ((rc = rpc_server_bind(srv, &bound, eb)) != IOTCA_OK)
		return rc;
	srv->cqs = calloc(srv->opts.cq_threads, sizeof(rpc_cq));
	if (srv->cqs == NULL)
		return iotca_errbuf_set(eb, IOTCA_ENOMEM, "out of memory");
	for (i = 0; i < srv->opts.cq_threads; i++) {
		srv->cqs[i].cq = grpc_completion_queue_create_for_next(NULL);
		srv->cqs[i].srv = srv;
		grpc_server_register_completion_queue(srv->server,
		                                      srv->cqs[i].cq, NULL);
		srv->ncq++;
	}
	grpc_server_start(srv->server);
	srv->started = 1;
	for (i = 0; i < srv->nmethods; i++) {
		char svc[512];
		const char *slash = strrchr(srv->methods[i].path, '/');
		snprintf(svc, sizeof(svc), "%.*s",
		         (int)(slash - srv->methods[i].path - 1),
		         srv->methods[i].path + 1);
		iotca_rpc_server_set_health(srv, svc, 1);
	}
	iotca_rpc_server_set_health(srv, "", 1);
	if ((rc = rpc_server_start_threads(srv, eb)) != IOTCA_OK)
		return rc;
	if (port != NULL)
		*port = bound;
	iotca_log_info("RPC-SERVER-START",
	               "listen=%s port=%d tls=%s client_cert=%s cq_threads=%u "
	               "workers=%u max_request=%zu",
	               srv->listen, bound, srv->tls_cert_file ? "on" : "off",
	               srv->tls_ca_file == NULL        ? "off"
	               : srv->opts.require_client_cert ? "required"
	                                               : "optional",
	               srv->opts.cq_threads, srv->opts.workers,
	               srv->opts.max_request);
	return IOTCA_OK;
}

/* Waits for grpc_server_shutdown_and_notify, cancelling stragglers after
 * the grace period. */
static void
rpc_server_wait_shutdown(iotca_rpc_server *srv)
{
	struct timespec until;
	int timed_out = 0;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += srv->opts.shutdown_grace_ms / 1000;
	until.tv_nsec += (srv->opts.shutdown_grace_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&srv->mu);
	while (!srv->shutdown_notified && !timed_out)
		timed_out = pthread_cond_timedwait(&srv->cv, &srv->mu,
		                                   &until) == ETIMEDOUT;
	pthread_mutex_unlock(&srv->mu);
	if (!timed_out)
		return;
	iotca_log_warn("RPC-SHUTDOWN-CANCEL", "in_flight=%lld grace_ms=%ld",
	               (long long)atomic_load(&srv->st_in_flight),
	               srv->opts.shutdown_grace_ms);
	grpc_server_cancel_all_calls(srv->server);
	pthread_mutex_lock(&srv->mu);
	while (!srv->shutdown_notified)
		pthread_cond_wait(&srv->cv, &srv->mu);
	pthread_mutex_unlock(&srv->mu);
}

static void
rpc_server_join(iotca_rpc_server *srv)
{
	unsigned i;

	pthread_mutex_lock(&srv->pool_mu);
	srv->pool_stop = 1;
	pthread_cond_broadcast(&srv->pool_cv);
	pthread_mutex_unlock(&srv->pool_mu);
	for (i = 0; i < srv->nworkers; i++)
		pthread_join(srv->workers[i], NULL);
	for (i = 0; i < srv->ncq; i++)
		grpc_completion_queue_shutdown(srv->cqs[i].cq);
	for (i = 0; i < srv->ncq; i++) {
		if (srv->cqs[i].thread)
			pthread_join(srv->cqs[i].thread, NULL);
		grpc_completion_queue_destroy(srv->cqs[i].cq);
	}
}

void
iotca_rpc_server_shutdown(iotca_rpc_server *srv)
{
	if (srv == NULL || !srv->started || srv->shutdown_started)
		return;
	srv->shutdown_started = 1;
	atomic_store(&srv->shutting_down, 1);
	iotca_log_info("RPC-SERVER-STOPPING", "listen=%s in_flight=%lld",
	               srv->listen, (long long)atomic_load(&srv->st_in_flight));
	iotca_rpc_server_set_health(srv, NULL, 0);
	rpc_health_end_watchers(srv);
	grpc_server_shutdown_and_notify(srv->server, srv->cqs[0].cq,
	                                &srv->tag_shutdown);
	rpc_server_wait_shutdown(srv);
	/* Every call is done; the workers only have an empty queue left. */
	rpc_server_join(srv);
	grpc_server_destroy(srv->server);
	srv->server = NULL;
	srv->stopped = 1;
	iotca_log_info("RPC-SERVER-STOPPED", "listen=%s calls=%llu",
	               srv->listen,
	               (unsigned long long)atomic_load(&srv->st_calls));
}

void
iotca_rpc_server_destroy(iotca_rpc_server *srv)
{
	size_t i;

	if (srv == NULL)
		return;
	iotca_rpc_server_shutdown(srv);
	if (srv->server != NULL) /* created but never started */
		grpc_server_destroy(srv->server);
	for (i = 0; i < srv->nmethods; i++)
		free(srv->methods[i].path);
	free(srv->methods);
	rpc_health_free(srv);
	free(srv->cqs);
	free(srv->workers);
	free(srv->listen);
	free(srv->tls_cert_file);
	free(srv->tls_key_file);
	free(srv->tls_ca_file);
	pthread_mutex_destroy(&srv->pool_mu);
	pthread_cond_destroy(&srv->pool_cv);
	pthread_mutex_destroy(&srv->health_mu);
	pthread_mutex_destroy(&srv->mu);
	pthread_cond_destroy(&srv->cv);
	free(srv);
	grpc_shutdown();
}

void
iotca_rpc_server_stats_get(iotca_rpc_server *srv, iotca_rpc_server_stats *out)
{
	out->calls = atomic_load(&srv->st_calls);
	out->calls_failed = atomic_load(&srv->st_failed);
	out->calls_cancelled = atomic_load(&srv->st_cancelled);
	out->calls_unknown = atomic_load(&srv->st_unknown);
	out->in_flight = (uint64_t)atomic_load(&srv->st_in_flight);
}
