/*
 * health.c - the built-in grpc.health.v1.Health service.
 *
 * Check answers from a table of service name -> serving, set with
 * iotca_rpc_server_set_health (unknown names are NOT_FOUND, as the health
 * protocol says). Watch streams the current status of one service and
 * every change after it, until the client leaves or the server stops.
 * Everything here is protected by srv->health_mu.
 */
#include <stdlib.h>
#include <string.h>

#include "grpc/health/v1/health.pb-c.h"
#include "log/log.h"
#include "rpc/rpc_int.h"

typedef Grpc__Health__V1__HealthCheckRequest health_req;
typedef Grpc__Health__V1__HealthCheckResponse health_resp;

#define HEALTH_SERVING                                                         \
	GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
#define HEALTH_NOT_SERVING                                                     \
	GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING
#define HEALTH_SERVICE_UNKNOWN                                                 \
	GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN

/* The status of a service name: -1 unknown, 0 not serving, 1 serving. */
static int
health_lookup(const iotca_rpc_server *srv, const char *service)
{
	size_t i;

	for (i = 0; i < srv->nhealth; i++)
		if (strcmp(srv->health[i].service, service) == 0)
			return srv->health[i].serving;
	return -1;
}

static int
health_wire_status(const iotca_rpc_server *srv, const char *service)
{
	int st = health_lookup(srv, service);

	if (st < 0)
		return HEALTH_SERVICE_UNKNOWN;
	return st ? HEALTH_SERVING : HEALTH_NOT_SERVING;
}

static iotca_err
health_check(iotca_rpc_call *call, const ProtobufCMessage *req,
             ProtobufCMessage *resp, void *arg)
{
	iotca_rpc_server *srv = arg;
	const health_req *r = (const health_req *)req;
	health_resp *out = (health_resp *)resp;
	int st;

	pthread_mutex_lock(&srv->health_mu);
	st = health_lookup(srv, r->service);
	pthread_mutex_unlock(&srv->health_mu);
	if (st < 0)
		return iotca_rpc_call_fail(call, IOTCA_ENOENT,
		                           "unknown service '%s'", r->service);
	out->status = st ? HEALTH_SERVING : HEALTH_NOT_SERVING;
	return IOTCA_OK;
}

iotca_err
rpc_health_register(iotca_rpc_server *srv, iotca_errbuf *eb)
{
	iotca_err rc;

	rc = rpc_server_add_internal(srv, &grpc__health__v1__health__descriptor,
	                             "Check", RPC_METHOD_UNARY, health_check,
	                             IOTCA_RPC_INLINE, eb);
	if (rc != IOTCA_OK)
		return rc;
	return rpc_server_add_internal(
	    srv, &grpc__health__v1__health__descriptor, "Watch",
	    RPC_METHOD_HEALTH_WATCH, NULL, 0, eb);
}

/* Sends one status message on a Watch stream. Under health_mu. */
static void
health_watch_send(iotca_rpc_call *c, int status)
{
	health_resp m = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
	grpc_op ops[2];
	size_t n = 0;

	m.status = status;
	if ((c->resp_bb = rpc_pack(&m.base)) == NULL)
		return;
	memset(ops, 0, sizeof(ops));
	if (!c->initial_md_sent)
		ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[n].op = GRPC_OP_SEND_MESSAGE;
	ops[n++].data.send_message.send_message = c->resp_bb;
	atomic_fetch_add(&c->refs, 1);
	if (grpc_call_start_batch(c->gcall, ops, n, &c->tag_stream, NULL) !=
	    GRPC_CALL_OK) {
		atomic_fetch_sub(&c->refs, 1);
		grpc_byte_buffer_destroy(c->resp_bb);
		c->resp_bb = NULL;
		return;
	}
	c->initial_md_sent = 1;
	c->watch_sending = 1;
	c->watch_sent = status;
}

/* Sends the status again if it changed since the last message. */
static void
health_watch_update(iotca_rpc_server *srv, iotca_rpc_call *c)
{
	int st = health_wire_status(srv, c->watch_service);

	if (!c->watch_sending && !c->watch_ending && st != c->watch_sent)
		health_watch_send(c, st);
}

static void
health_watch_unlink(iotca_rpc_server *srv, iotca_rpc_call *c)
{
	iotca_rpc_call **pp;

	for (pp = &srv->watchers; *pp != NULL; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			c->next = NULL;
			return;
		}
}

/* Ends a Watch call with a status. Not under health_mu. */
static void
health_watch_finish(iotca_rpc_call *c)
{
	c->resp = NULL;
	rpc_call_respond(c, iotca_rpc_call_fail(c, IOTCA_EUNAVAIL,
	                                        "health watch ended: the "
	                                        "server is stopping"));
}

void
rpc_health_watch_begin(iotca_rpc_call *c)
{
	iotca_rpc_server *srv = c->srv;
	const health_req *r = (const health_req *)c->req;

	pthread_mutex_lock(&srv->health_mu);
	if (atomic_load(&srv->shutting_down) ||
	    (c->watch_service = strdup(r->service)) == NULL) {
		pthread_mutex_unlock(&srv->health_mu);
		health_watch_finish(c);
		return;
	}
	c->next = srv->watchers;
	srv->watchers = c;
	health_watch_update(srv, c);
	pthread_mutex_unlock(&srv->health_mu);
}

void
rpc_health_watch_sent(iotca_rpc_call *c, int success)
{
	iotca_rpc_server *srv = c->srv;
	int end = 0;

	pthread_mutex_lock(&srv->health_mu);
	if (c->resp_bb != NULL) {
		grpc_byte_buffer_destroy(c->resp_bb);
		c->resp_bb = NULL;
	}
	c->watch_sending = 0;
	if (!success || c->watch_ending) {
		health_watch_unlink(srv, c);
		end = 1;
	} else {
		health_watch_update(srv, c);
	}
	pthread_mutex_unlock(&srv->health_mu);
	if (end)
		health_watch_finish(c);
	rpc_call_unref(c); /* the stream message's reference */
}

void
rpc_health_watch_closed(iotca_rpc_call *c)
{
	iotca_rpc_server *srv = c->srv;
	int end = 0;

	pthread_mutex_lock(&srv->health_mu);
	if (c->watch_service != NULL && !c->watch_ending) {
		c->watch_ending = 1;
		if (!c->watch_sending) {
			health_watch_unlink(srv, c);
			end = 1;
		}
	}
	pthread_mutex_unlock(&srv->health_mu);
	if (end)
		health_watch_finish(c);
}

void
rpc_health_end_watchers(iotca_rpc_server *srv)
{
	iotca_rpc_call *done = NULL, *c, *next;

	pthread_mutex_lock(&srv->health_mu);
	for (c = srv->watchers; c != NULL; c = next) {
		next = c->next;
		c->watch_ending = 1;
		if (!c->watch_sending) {
			health_watch_unlink(srv, c);
			c->next = done;
			done = c;
		}
	}
	pthread_mutex_unlock(&srv->health_mu);
	for (c = done; c != NULL; c = next) {
		next = c->next;
		c->next = NULL;
		health_watch_finish(c);
	}
}

void
iotca_rpc_server_set_health(iotca_rpc_server *srv, const char *service,
                            int serving)
{
	rpc_health_entry *e;
	iotca_rpc_call *c;
	size_t i;

	pthread_mutex_lock(&srv->health_mu);
	for (i = 0; i < srv->nhealth; i++)
		if (service == NULL ||
		    strcmp(srv->health[i].service, service) == 0)
			srv->health[i].serving = serving != 0;
	if (service != NULL && health_lookup(srv, service) < 0) {
		e = realloc(srv->health, (srv->nhealth + 1) * sizeof(*e));
		if (e != NULL) {
			srv->health = e;
			e[srv->nhealth].service = strdup(service);
			e[srv->nhealth].serving = serving != 0;
			if (e[srv->nhealth].service != NULL)
				srv->nhealth++;
		}
	}
	for (c = srv->watchers; c != NULL; c = c->next)
		health_watch_update(srv, c);
	pthread_mutex_unlock(&srv->health_mu);
}

void
rpc_health_free(iotca_rpc_server *srv)
{
	size_t i;

	for (i = 0; i < srv->nhealth; i++)
		free(srv->health[i].service);
	free(srv->health);
	srv->health = NULL;
	srv->nhealth = 0;
}
