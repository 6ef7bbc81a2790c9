/*
 * client.c - unary gRPC calls over one reused channel.
 *
 * Every call is asynchronous underneath: one batch carries the whole unary
 * exchange, and the client's own thread drains its completion queue and
 * runs the callbacks. A blocking call is an asynchronous one whose callback
 * wakes the caller.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "log/log.h"
#include "rpc/rpc_int.h"

#define CLIENT_DEFAULT_TIMEOUT_MS   10000
#define CLIENT_DEFAULT_MAX_RESPONSE (16u << 20)
#define CLIENT_RECONNECT_MIN_MS     200  /* first reconnect attempt */
#define CLIENT_RECONNECT_MAX_MS     2000 /* reconnect backoff cap */

struct iotca_rpc_client {
	grpc_channel *ch;
	grpc_completion_queue *cq;
	pthread_t thread;
	int thread_started;
	char *auth;        /* "Bearer <token>" or NULL */
	char *server_name; /* TLS name override or NULL */
	long timeout_ms;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	long outstanding; /* calls whose callback has not returned */
};

typedef struct rpc_client_call {
	iotca_rpc_client *c;
	grpc_call *call;
	grpc_slice method;
	grpc_metadata md;
	int has_md;
	grpc_byte_buffer *send_bb;
	grpc_byte_buffer *recv_bb;
	grpc_metadata_array initial_md;
	grpc_metadata_array trailing_md;
	grpc_status_code status;
	grpc_slice details;
	const ProtobufCMessageDescriptor *resp_desc;
	iotca_rpc_done_fn fn;
	void *arg;
} rpc_client_call;

static void
client_call_free(rpc_client_call *cc)
{
	if (cc->call != NULL)
		grpc_call_unref(cc->call);
	grpc_slice_unref(cc->method);
	if (cc->send_bb != NULL)
		grpc_byte_buffer_destroy(cc->send_bb);
	if (cc->recv_bb != NULL)
		grpc_byte_buffer_destroy(cc->recv_bb);
	grpc_metadata_array_destroy(&cc->initial_md);
	grpc_metadata_array_destroy(&cc->trailing_md);
	grpc_slice_unref(cc->details);
	if (cc->has_md)
		grpc_slice_unref(cc->md.value);
	free(cc);
}

/* Turns a finished call into the callback's arguments. */
static void
client_call_complete(rpc_client_call *cc, int success)
{
	iotca_errbuf eb;
	ProtobufCMessage *resp = NULL;

	iotca_errbuf_clear(&eb);
	if (!success)
		iotca_errbuf_set(&eb, IOTCA_EINTERNAL, "call batch failed");
	else if (cc->status != GRPC_STATUS_OK)
		iotca_errbuf_set(
		    &eb, iotca_err_from_grpc_status(cc->status), "%.*s",
		    (int)GRPC_SLICE_LENGTH(cc->details),
		    (const char *)GRPC_SLICE_START_PTR(cc->details));
	else if (cc->recv_bb == NULL)
		iotca_errbuf_set(&eb, IOTCA_EPROTO,
		                 "the server sent no response message");
	else if ((resp = rpc_unpack(cc->recv_bb, cc->resp_desc, NULL)) == NULL)
		iotca_errbuf_set(&eb, IOTCA_EPROTO,
		                 "the response is not a valid %s message",
		                 cc->resp_desc->name);
	if (eb.code != IOTCA_OK && eb.msg[0] == '\0')
		iotca_errbuf_set(&eb, eb.code, "%s", iotca_strerror(eb.code));
	cc->fn(eb.code, resp, &eb, cc->arg);
}

static void *
client_main(void *arg)
{
	iotca_rpc_client *c = arg;
	grpc_event ev;
	rpc_client_call *cc;

	for (;;) {
		ev = grpc_completion_queue_next(
		    c->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			return NULL;
		if (ev.type != GRPC_OP_COMPLETE)
			continue;
		cc = ev.tag;
		client_call_complete(cc, ev.success);
		client_call_free(cc);
		pthread_mutex_lock(&c->mu);
		if (--c->outstanding == 0)
			pthread_cond_broadcast(&c->cv);
		pthread_mutex_unlock(&c->mu);
	}
}

static iotca_err
client_creds(const iotca_rpc_client_opts *o, grpc_channel_credentials **out,
             iotca_errbuf *eb)
{
	char *ca = NULL, *cert = NULL, *key = NULL;
	grpc_ssl_pem_key_cert_pair pair;
	iotca_err rc;

	if (o->tls_ca_file == NULL) {
		*out = grpc_insecure_credentials_create();
		return IOTCA_OK;
	}
	if ((o->tls_cert_file == NULL) != (o->tls_key_file == NULL))
		return iotca_errbuf_set(eb, IOTCA_EINVAL,
		                        "a client certificate needs both its "
		                        "certificate and key file");
	if ((rc = rpc_tls_read_pem(o->tls_ca_file, "CA", &ca, eb)) != IOTCA_OK)
		return rc;
	if (o->tls_cert_file != NULL &&
	    ((rc = rpc_tls_read_pem(o->tls_cert_file, "certificate", &cert,
	                            eb)) != IOTCA_OK ||
	     (rc = rpc_tls_read_pem(o->tls_key_file, "key", &key, eb)) !=
	         IOTCA_OK ||
	     (rc = rpc_tls_check_pair(cert, key, o->tls_cert_file, eb)) !=
	         IOTCA_OK))
		goto out;
	pair.private_key = key;
	pair.cert_chain = cert;
	*out = grpc_ssl_credentials_create(ca, cert ? &pair : NULL, NULL, NULL);
	rc = *out != NULL ? IOTCA_OK
	                  : iotca_errbuf_set(eb, IOTCA_EINVAL,
	                                     "gRPC refused the TLS files");
out:
	free(ca);
	free(cert);
	free(key);
	return rc;
}

static iotca_err
client_channel(iotca_rpc_client *c, const iotca_rpc_client_opts *o,
               iotca_errbuf *eb)
{
	grpc_channel_credentials *creds = NULL;
	grpc_arg args[5];
	grpc_channel_args cargs = {0, args};
	iotca_err rc;

	if ((rc = client_creds(o, &creds, eb)) != IOTCA_OK)
		return rc;
	args[cargs.num_args].type = GRPC_ARG_INTEGER;
	args[cargs.num_args].key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
	args[cargs.num_args++].value.integer =
	    (int)(o->max_response ? o->max_response
	                          : CLIENT_DEFAULT_MAX_RESPONSE);
	args[cargs.num_args].type = GRPC_ARG_STRING;
	args[cargs.num_args].key = (char *)GRPC_ARG_PRIMARY_USER_AGENT_STRING;
	args[cargs.num_args++].value.string = (char *)"iotca";
	/* A service that restarts is back within a second or two; gRPC's
	 * default reconnect backoff grows to two minutes, during which every
	 * call fails at once. Our peers are our own services: retry often. */
	args[cargs.num_args].type = GRPC_ARG_INTEGER;
	args[cargs.num_args].key =
	    (char *)GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS;
	args[cargs.num_args++].value.integer = CLIENT_RECONNECT_MIN_MS;
	args[cargs.num_args].type = GRPC_ARG_INTEGER;
	args[cargs.num_args].key = (char *)GRPC_ARG_MAX_RECONNECT_BACKOFF_MS;
	args[cargs.num_args++].value.integer = CLIENT_RECONNECT_MAX_MS;
	if (o->tls_server_name != NULL) {
		if ((c->server_name = strdup(o->tls_server_name)) == NULL) {
			grpc_channel_credentials_release(creds);
			return iotca_errbuf_set(eb, IOTCA_ENOMEM,
			                        "out of memory");
		}
		args[cargs.num_args].type = GRPC_ARG_STRING;
		args[cargs.num_args].key =
		    (char *)GRPC_SSL_TARGET_NAME_OVERRIDE_ARG;
		args[cargs.num_args++].value.string = c->server_name;
	}
	c->ch = grpc_channel_create(o->target, creds, &cargs);
	grpc_channel_credentials_release(creds);
	if (c->ch == NULL)
		return iotca_errbuf_set(
		    eb, IOTCA_EINVAL, "cannot make a channel to %s", o->target);
	return IOTCA_OK;
}

iotca_err
iotca_rpc_client_create(const iotca_rpc_client_opts *opts,
                        iotca_rpc_client **out, iotca_errbuf *eb)
{
	iotca_rpc_client *c;
	iotca_err rc;

	if (opts->target == NULL || opts->target[0] == '\0')
		return iotca_errbuf_set(eb, IOTCA_EINVAL, "no server address");
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return iotca_errbuf_set(eb, IOTCA_ENOMEM, "out of memory");
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	c->timeout_ms =
	    opts->timeout_ms > 0 ? opts->timeout_ms : CLIENT_DEFAULT_TIMEOUT_MS;
	rpc_init();
	if (opts->token != NULL && opts->token[0] != '\0' &&
	    asprintf(&c->auth, "Bearer %s", opts->token) < 0) {
		c->auth = NULL;
		rc = iotca_errbuf_set(eb, IOTCA_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = client_channel(c, opts, eb)) != IOTCA_OK)
		goto out;
	c->cq = grpc_completion_queue_create_for_next(NULL);
	if (pthread_create(&c->thread, NULL, client_main, c) != 0) {
		rc = iotca_errbuf_set(eb, IOTCA_EINTERNAL,
		                      "cannot start a thread: %s",
		                      strerror(errno));
		goto out;
	}
	c->thread_started = 1;
	*out = c;
	return IOTCA_OK;
out:
	iotca_rpc_client_destroy(c);
	return rc;
}

void
iotca_rpc_client_destroy(iotca_rpc_client *c)
{
	if (c == NULL)
		return;
	pthread_mutex_lock(&c->mu);
	while (c->outstanding > 0)
		pthread_cond_wait(&c->cv, &c->mu);
	pthread_mutex_unlock(&c->mu);
	if (c->ch != NULL)
		grpc_channel_destroy(c->ch);
	if (c->cq != NULL) {
		grpc_completion_queue_shutdown(c->cq);
		if (c->thread_started)
			pthread_join(c->thread, NULL);
		grpc_completion_queue_destroy(c->cq);
	}
	free(c->auth);
	free(c->server_name);
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->cv);
	free(c);
	grpc_shutdown();
}

/* Starts the one batch that carries a whole unary call. */
static iotca_err
client_call_start(rpc_client_call *cc, long timeout_ms, iotca_errbuf *eb)
{
	iotca_rpc_client *c = cc->c;
	gpr_timespec deadline = gpr_time_add(
	    gpr_now(GPR_CLOCK_MONOTONIC),
	    gpr_time_from_millis(timeout_ms > 0 ? timeout_ms : c->timeout_ms,
	                         GPR_TIMESPAN));
	grpc_op ops[6];

	cc->call =
	    grpc_channel_create_call(c->ch, NULL, GRPC_PROPAGATE_DEFAULTS,
	                             c->cq, cc->method, NULL, deadline, NULL);
	if (cc->call == NULL)
		return iotca_errbuf_set(eb, IOTCA_EINTERNAL,
		                        "cannot create a call");
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	if (cc->has_md) {
		ops[0].data.send_initial_metadata.count = 1;
		ops[0].data.send_initial_metadata.metadata = &cc->md;
	}
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = cc->send_bb;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata =
	    &cc->initial_md;
	ops[4].op = GRPC_OP_RECV_MESSAGE;
	ops[4].data.recv_message.recv_message = &cc->recv_bb;
	ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[5].data.recv_status_on_client.trailing_metadata = &cc->trailing_md;
	ops[5].data.recv_status_on_client.status = &cc->status;
	ops[5].data.recv_status_on_client.status_details = &cc->details;
	if (grpc_call_start_batch(cc->call, ops, 6, cc, NULL) != GRPC_CALL_OK)
		return iotca_errbuf_set(eb, IOTCA_EINTERNAL,
		                        "cannot start the call");
	return IOTCA_OK;
}

/* auth: the whole authorization value, or NULL for none. */
static iotca_err
client_call_path_async(iotca_rpc_client *c, const char *path,
                       const ProtobufCMessage *req,
                       const ProtobufCMessageDescriptor *resp_desc,
                       const char *auth, long timeout_ms, iotca_rpc_done_fn fn,
                       void *arg, iotca_errbuf *eb)
{
	rpc_client_call *cc = calloc(1, sizeof(*cc));
	iotca_err rc;

	if (cc == NULL)
		return iotca_errbuf_set(eb, IOTCA_ENOMEM, "out of memory");
	cc->c = c;
	cc->resp_desc = resp_desc;
	cc->fn = fn;
	cc->arg = arg;
	cc->method = grpc_slice_from_copied_string(path);
	cc->details = grpc_empty_slice();
	grpc_metadata_array_init(&cc->initial_md);
	grpc_metadata_array_init(&cc->trailing_md);
	if (auth != NULL) {
		cc->md.key = grpc_slice_from_static_string("authorization");
		cc->md.value = grpc_slice_from_copied_string(auth);
		cc->has_md = 1;
	}
	if ((cc->send_bb = rpc_pack(req)) == NULL) {
		client_call_free(cc);
		return iotca_errbuf_set(eb, IOTCA_ENOMEM, "out of memory");
	}
	pthread_mutex_lock(&c->mu);
	c->outstanding++;
	pthread_mutex_unlock(&c->mu);
	if ((rc = client_call_start(cc, timeout_ms, eb)) != IOTCA_OK) {
		client_call_free(cc);
		pthread_mutex_lock(&c->mu);
		if (--c->outstanding == 0)
			pthread_cond_broadcast(&c->cv);
		pthread_mutex_unlock(&c->mu);
	}
	return rc;
}

iotca_err
iotca_rpc_client_call_async(iotca_rpc_client *c,
                            const ProtobufCServiceDescriptor *svc,
                            const char *method, const ProtobufCMessage *req,
                            long timeout_ms, iotca_rpc_done_fn fn, void *arg,
                            iotca_errbuf *eb)
{
	const ProtobufCMethodDescriptor *md =
	    iotca_rpc_find_method(svc, method);
	char path[512];

	if (md == NULL)
		return iotca_errbuf_set(eb, IOTCA_EINVAL,
		                        "service %s has no method %s",
		                        svc->name, method);
	if (req->descriptor != md->input)
		return iotca_errbuf_set(eb, IOTCA_EINVAL, "%s takes %s, not %s",
		                        method, md->input->name,
		                        req->descriptor->name);
	snprintf(path, sizeof(path), "/%s/%s", svc->name, method);
	return client_call_path_async(c, path, req, md->output, c->auth,
	                              timeout_ms, fn, arg, eb);
}

/* The waiter a blocking call sleeps on. */
typedef struct client_wait {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int done;
	ProtobufCMessage *resp;
	iotca_errbuf eb;
} client_wait;

static void
client_wait_done(iotca_err rc, ProtobufCMessage *resp, const iotca_errbuf *eb,
                 void *arg)
{
	client_wait *w = arg;

	pthread_mutex_lock(&w->mu);
	w->resp = resp;
	w->eb = *eb;
	w->eb.code = rc;
	w->done = 1;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

static iotca_err
client_wait_for(client_wait *w, iotca_err started, ProtobufCMessage **resp,
                iotca_errbuf *eb)
{
	if (started == IOTCA_OK) {
		pthread_mutex_lock(&w->mu);
		while (!w->done)
			pthread_cond_wait(&w->cv, &w->mu);
		pthread_mutex_unlock(&w->mu);
	}
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv);
	if (started != IOTCA_OK)
		return started;
	if (w->eb.code != IOTCA_OK) {
		if (eb != NULL)
			*eb = w->eb;
		return w->eb.code;
	}
	*resp = w->resp;
	return IOTCA_OK;
}

iotca_err
iotca_rpc_client_call(iotca_rpc_client *c,
                      const ProtobufCServiceDescriptor *svc, const char *method,
                      const ProtobufCMessage *req, long timeout_ms,
                      ProtobufCMessage **resp, iotca_errbuf *eb)
{
	client_wait w = {.done = 0};
	iotca_err rc;

	pthread_mutex_init(&w.mu, NULL);
	pthread_cond_init(&w.cv, NULL);
	rc = iotca_rpc_client_call_async(c, svc, method, req, timeout_ms,
	                                 client_wait_done, &w, eb);
	return client_wait_for(&w, rc, resp, eb);
}

iotca_err
iotca_rpc_client_call_path(iotca_rpc_client *c, const char *path,
                           const ProtobufCMessage *req,
                           const ProtobufCMessageDescriptor *resp_desc,
                           long timeout_ms, ProtobufCMessage **resp,
                           iotca_errbuf *eb)
{
	client_wait w = {.done = 0};
	iotca_err rc;

	pthread_mutex_init(&w.mu, NULL);
	pthread_cond_init(&w.cv, NULL);
	rc = client_call_path_async(c, path, req, resp_desc, c->auth,
	                            timeout_ms, client_wait_done, &w, eb);
	return client_wait_for(&w, rc, resp, eb);
}

iotca_err
iotca_rpc_client_call_as(iotca_rpc_client *c,
                         const ProtobufCServiceDescriptor *svc,
                         const char *method, const ProtobufCMessage *req,
                         const char *token, long timeout_ms,
                         ProtobufCMessage **resp, iotca_errbuf *eb)
{
	const ProtobufCMethodDescriptor *md =
	    iotca_rpc_find_method(svc, method);
	client_wait w = {.done = 0};
	char path[512], *auth = NULL;
	iotca_err rc;

	if (md == NULL || req->descriptor != md->input)
		return iotca_errbuf_set(
		    eb, IOTCA_EINVAL, "service %s has no method %s taking %s",
		    svc->name, method, req->descriptor->name);
	if (token != NULL && asprintf(&auth, "Bearer %s", token) < 0)
		return iotca_errbuf_set(eb, IOTCA_ENOMEM, "out of memory");
	snprintf(path, sizeof(path), "/%s/%s", svc->name, method);
	pthread_mutex_init(&w.mu, NULL);
	pthread_cond_init(&w.cv, NULL);
	rc = client_call_path_async(c, path, req, md->output, auth, timeout_ms,
	                            client_wait_done, &w, eb);
	free(auth);
	return client_wait_for(&w, rc, resp, eb);
}
