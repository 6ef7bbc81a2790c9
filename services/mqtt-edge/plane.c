/*
 * plane.c - the NNG message plane (device_message.proto says the wire
 * format): a PUSH socket dialled to IOTCA_EDGE_UPSTREAM carries one
 * packed DeviceMessage per PUBLISH and per session event; a SUB socket
 * dialled to IOTCA_EDGE_DOWNSTREAM brings "<pk>/<dn>\n" + packed
 * DownstreamMessage, routed here to the loop holding that device.
 *
 * Sends never block a loop: every message goes through an aio. The PUSH
 * socket has no send buffer (NNG_OPT_SENDBUF 0), so an aio completes only
 * when a connected consumer's pipe has taken the message: nothing that was
 * acknowledged waits in a queue that closing the socket would drop. QoS
 * 1/2 completions are posted back to the connection's loop, which only
 * then acknowledges the PUBLISH. Events and QoS 0 are dropped and counted
 * when PLANE_INFLIGHT_MAX messages are already waiting (no consumer, or a
 * slow one); QoS 1/2 are then not acknowledged. On shutdown
 * edge_plane_drain waits for what is in flight.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/protocol/pipeline0/push.h>
#include <nng/protocol/pubsub0/sub.h>

#include "edge.h"
#include "iotca/v1/device_message.pb-c.h"
#include "log/log.h"

#define PLANE_INFLIGHT_MAX  8192 /* upstream messages waiting for a pipe */
#define PLANE_PIPE_GRACE_MS 200  /* for the pipes' last writes at close */
#define PLANE_ROUTE_KEY     (EDGE_PK_MAX + EDGE_DN_MAX + 1)

typedef struct route {
	struct route *next;
	char key[PLANE_ROUTE_KEY]; /* "<pk>/<dn>" */
	uint64_t conn_id;
} route;

struct edge_plane {
	edge *e;
	int have_up, have_down;
	nng_socket up, down;
	pthread_t down_thread;
	int down_started;
	atomic_int stop;
	atomic_uint_fast64_t seq;
	atomic_int inflight; /* upstream aios not yet completed */
	pthread_mutex_t route_mu;
	route **routes;
	size_t nroutes; /* buckets, a power of two */
	atomic_uint_fast64_t up_sent, up_dropped, up_failed, events_sent,
	    events_dropped, down_received, down_routed, down_dropped;
};

typedef struct up_send {
	edge_plane *p;
	nng_aio *aio;
	edge_loop *loop; /* NULL: nobody waits for the outcome */
	uint64_t conn_id;
	uint16_t packet_id;
	uint8_t qos;
	int event; /* a session event (counted apart from PUBLISHes) */
} up_send;

static void up_done(void *arg);

/*
 * Hands m to the PUSH socket through an aio (takes m). loop NULL: fire
 * and forget. -1 when too many are waiting already or on no memory (m is
 * freed, nothing is posted).
 */
static int
up_start(edge_plane *p, nng_msg *m, edge_loop *loop, uint64_t conn_id,
         uint16_t packet_id, uint8_t qos, int event)
{
	up_send *u;

	if (atomic_fetch_add(&p->inflight, 1) >= PLANE_INFLIGHT_MAX)
		goto fail;
	if ((u = calloc(1, sizeof(*u))) == NULL)
		goto fail;
	if (nng_aio_alloc(&u->aio, up_done, u) != 0) {
		free(u);
		goto fail;
	}
	u->p = p;
	u->loop = loop;
	u->conn_id = conn_id;
	u->packet_id = packet_id;
	u->qos = qos;
	u->event = event;
	nng_aio_set_msg(u->aio, m);
	nng_aio_set_timeout(u->aio, (nng_duration)p->e->o.upstream_timeout_ms);
	nng_send_aio(p->up, u->aio);
	return 0;
fail:
	atomic_fetch_sub(&p->inflight, 1);
	nng_msg_free(m);
	return -1;
}

/* ------------------------------------------------------------ upstream */

static nng_msg *
plane_pack(edge_plane *p, Iotca__V1__DeviceMessage *dm)
{
	size_t n;
	nng_msg *m;

	dm->edge_id = (char *)p->e->o.edge_id;
	dm->message_id = atomic_fetch_add(&p->seq, 1) + 1;
	dm->time_unix_ms = edge_wall_ms();
	n = protobuf_c_message_get_packed_size(&dm->base);
	if (nng_msg_alloc(&m, n) != 0)
		return NULL;
	protobuf_c_message_pack(&dm->base, nng_msg_body(m));
	return m;
}

static void
ident_fill(Iotca__V1__DeviceMessage *dm, const edge_ident *id,
           const char *client_id, const char *peer)
{
	if (id != NULL) {
		dm->account_id = (char *)id->account_id;
		dm->product_key = (char *)id->pk;
		dm->device_name = (char *)id->dn;
		dm->ca_id = (char *)id->ca_id;
		dm->cert_sn = (char *)id->sn;
	}
	dm->client_id = (char *)(client_id != NULL ? client_id : "");
	dm->peer_address = (char *)(peer != NULL ? peer : "");
}

void
edge_plane_event(edge_plane *p, int kind, const edge_ident *id,
                 const char *client_id, const char *peer, edge_reason reason)
{
	Iotca__V1__DeviceMessage dm = IOTCA__V1__DEVICE_MESSAGE__INIT;
	nng_msg *m;

	if (!p->have_up) {
		atomic_fetch_add(&p->events_dropped, 1);
		return;
	}
	dm.kind = (Iotca__V1__DeviceMessageKind)kind;
	ident_fill(&dm, id, client_id, peer);
	dm.reason =
	    (char *)(reason != EDGE_R_NONE ? edge_reason_word(reason) : "");
	if ((m = plane_pack(p, &dm)) == NULL ||
	    up_start(p, m, NULL, 0, 0, 0, 1) != 0)
		atomic_fetch_add(&p->events_dropped, 1);
}

static void
up_done(void *arg)
{
	up_send *u = arg;
	edge_plane *p = u->p;
	int rv = nng_aio_result(u->aio);
	edge_msg *m;

	if (rv != 0)
		nng_msg_free(nng_aio_get_msg(u->aio));
	if (u->event)
		atomic_fetch_add(rv == 0 ? &p->events_sent : &p->events_dropped,
		                 1);
	else
		atomic_fetch_add(rv == 0 ? &p->up_sent : &p->up_failed, 1);
	if (u->loop != NULL &&
	    (m = edge_msg_new(EDGE_MSG_UP_DONE, u->conn_id)) != NULL) {
		m->ok = rv == 0;
		m->packet_id = u->packet_id;
		m->qos = u->qos;
		edge_loop_post(u->loop, m);
	}
	nng_aio_reap(u->aio);
	free(u);
	atomic_fetch_sub(&p->inflight, 1); /* last: drain may free p */
}

int
edge_plane_publish(edge_plane *p, const edge_ident *id, const char *client_id,
                   const char *peer, const char *topic, size_t topic_len,
                   const uint8_t *payload, size_t len, uint8_t qos,
                   edge_loop *loop, uint64_t conn_id, uint16_t packet_id)
{
	Iotca__V1__DeviceMessage dm = IOTCA__V1__DEVICE_MESSAGE__INIT;
	char *t = strndup(topic, topic_len);
	nng_msg *m = NULL;
	edge_msg *done;

	if (!p->have_up) {
		free(t);
		atomic_fetch_add(&p->up_dropped, 1);
		if (qos == 0)
			return 0;
		if ((done = edge_msg_new(EDGE_MSG_UP_DONE, conn_id)) == NULL)
			return -1;
		done->ok = 1;
		done->packet_id = packet_id;
		done->qos = qos;
		edge_loop_post(loop, done);
		return 0;
	}
	if (t == NULL)
		goto fail;
	dm.kind = IOTCA__V1__DEVICE_MESSAGE_KIND__DEVICE_MESSAGE_KIND_PUBLISH;
	ident_fill(&dm, id, client_id, peer);
	dm.topic = t;
	dm.payload.data = (uint8_t *)payload;
	dm.payload.len = len;
	dm.qos = qos;
	m = plane_pack(p, &dm);
	free(t);
	if (m == NULL)
		goto fail;
	if (up_start(p, m, qos > 0 ? loop : NULL, conn_id, packet_id, qos, 0) !=
	    0)
		goto fail_counted;
	return 0;
fail:
	nng_msg_free(m);
fail_counted:
	atomic_fetch_add(&p->up_dropped, 1);
	return -1;
}

/* ------------------------------------------------------------ routes */

static size_t
route_bucket(const edge_plane *p, const char *key)
{
	uint64_t h = 1469598103934665603ull;

	for (; *key != '\0'; key++)
		h = (h ^ (uint8_t)*key) * 1099511628211ull;
	return (size_t)(h & (p->nroutes - 1));
}

uint64_t
edge_plane_route_add(edge_plane *p, const char *pk, const char *dn,
                     uint64_t conn_id)
{
	char key[PLANE_ROUTE_KEY];
	uint64_t old = 0;
	route *r;
	size_t b;

	snprintf(key, sizeof(key), "%s/%s", pk, dn);
	b = route_bucket(p, key);
	pthread_mutex_lock(&p->route_mu);
	for (r = p->routes[b]; r != NULL; r = r->next)
		if (strcmp(r->key, key) == 0)
			break;
	if (r != NULL) {
		old = r->conn_id;
		r->conn_id = conn_id;
	} else if ((r = calloc(1, sizeof(*r))) != NULL) {
		strcpy(r->key, key);
		r->conn_id = conn_id;
		r->next = p->routes[b];
		p->routes[b] = r;
	}
	pthread_mutex_unlock(&p->route_mu);
	return old;
}

void
edge_plane_route_del(edge_plane *p, const char *pk, const char *dn,
                     uint64_t conn_id)
{
	char key[PLANE_ROUTE_KEY];
	route **pp, *r;

	snprintf(key, sizeof(key), "%s/%s", pk, dn);
	pthread_mutex_lock(&p->route_mu);
	for (pp = &p->routes[route_bucket(p, key)]; (r = *pp) != NULL;
	     pp = &r->next)
		if (strcmp(r->key, key) == 0) {
			if (r->conn_id == conn_id) {
				*pp = r->next;
				free(r);
			}
			break;
		}
	pthread_mutex_unlock(&p->route_mu);
}

static uint64_t
route_find(edge_plane *p, const char *key)
{
	uint64_t id = 0;
	route *r;

	pthread_mutex_lock(&p->route_mu);
	for (r = p->routes[route_bucket(p, key)]; r != NULL; r = r->next)
		if (strcmp(r->key, key) == 0) {
			id = r->conn_id;
			break;
		}
	pthread_mutex_unlock(&p->route_mu);
	return id;
}

/* ------------------------------------------------------------ downstream */

/* Routes one downstream body; 0 if handed to a loop. */
static int
down_route(edge_plane *p, const uint8_t *body, size_t len)
{
	const uint8_t *nl =
	    memchr(body, '\n', len < PLANE_ROUTE_KEY ? len : PLANE_ROUTE_KEY);
	char key[PLANE_ROUTE_KEY], want[PLANE_ROUTE_KEY];
	Iotca__V1__DownstreamMessage *dm;
	edge_msg *m = NULL;
	uint64_t conn_id;
	size_t klen;

	if (nl == NULL)
		return -1;
	klen = (size_t)(nl - body);
	memcpy(key, body, klen);
	key[klen] = '\0';
	if ((conn_id = route_find(p, key)) == 0)
		return -1; /* not here: the common case with many edges */
	dm =
	    iotca__v1__downstream_message__unpack(NULL, len - klen - 1, nl + 1);
	if (dm == NULL)
		return -1;
	snprintf(want, sizeof(want), "%s/%s", dm->product_key, dm->device_name);
	if (strcmp(want, key) == 0 && dm->topic[0] != '\0' &&
	    (m = edge_msg_new(EDGE_MSG_DOWN, conn_id)) != NULL) {
		m->s1 = strdup(dm->topic);
		m->qos = dm->qos == 1 ? 1 : 0;
		if (dm->payload.len > 0 &&
		    (m->payload = malloc(dm->payload.len)) != NULL) {
			memcpy(m->payload, dm->payload.data, dm->payload.len);
			m->payload_len = dm->payload.len;
		}
		if (m->s1 == NULL ||
		    (dm->payload.len > 0 && m->payload == NULL)) {
			edge_msg_free(m);
			m = NULL;
		}
	}
	iotca__v1__downstream_message__free_unpacked(dm, NULL);
	if (m == NULL)
		return -1;
	edge_loop_post(p->e->loops[EDGE_CONN_LOOP(conn_id)], m);
	return 0;
}

static void *
down_main(void *arg)
{
	edge_plane *p = arg;
	nng_msg *msg;
	int rv;

	while (!atomic_load(&p->stop)) {
		rv = nng_recvmsg(p->down, &msg, 0);
		if (rv == NNG_ETIMEDOUT)
			continue;
		if (rv != 0)
			break; /* closed */
		atomic_fetch_add(&p->down_received, 1);
		if (down_route(p, nng_msg_body(msg), nng_msg_len(msg)) == 0)
			atomic_fetch_add(&p->down_routed, 1);
		else
			atomic_fetch_add(&p->down_dropped, 1);
		nng_msg_free(msg);
	}
	return NULL;
}

/* ------------------------------------------------------------ lifecycle */

static iotca_err
plane_nng_fail(iotca_errbuf *eb, const char *what, const char *env,
               const char *url, int rv)
{
	return iotca_errbuf_set(eb, IOTCA_EINVAL,
	                        "cannot %s '%s' (%s): check %s", what,
	                        url != NULL ? url : "", nng_strerror(rv), env);
}

static iotca_err
plane_open_up(edge_plane *p, const char *url, iotca_errbuf *eb)
{
	int rv;

	if ((rv = nng_push0_open(&p->up)) != 0)
		return plane_nng_fail(eb, "open a PUSH socket for", "NNG", url,
		                      rv);
	/* no buffer: a send completes when a consumer's pipe took it */
	nng_socket_set_int(p->up, NNG_OPT_SENDBUF, 0);
	if ((rv = nng_dial(p->up, url, NULL, NNG_FLAG_NONBLOCK)) != 0) {
		nng_close(p->up);
		return plane_nng_fail(eb, "dial", "IOTCA_EDGE_UPSTREAM", url,
		                      rv);
	}
	p->have_up = 1;
	return IOTCA_OK;
}

static iotca_err
plane_open_down(edge_plane *p, const char *url, iotca_errbuf *eb)
{
	int rv;

	if ((rv = nng_sub0_open(&p->down)) != 0)
		return plane_nng_fail(eb, "open a SUB socket for", "NNG", url,
		                      rv);
	nng_socket_set(p->down, NNG_OPT_SUB_SUBSCRIBE, "", 0);
	nng_socket_set_ms(p->down, NNG_OPT_RECVTIMEO, 500);
	if ((rv = nng_dial(p->down, url, NULL, NNG_FLAG_NONBLOCK)) != 0) {
		nng_close(p->down);
		return plane_nng_fail(eb, "dial", "IOTCA_EDGE_DOWNSTREAM", url,
		                      rv);
	}
	p->have_down = 1;
	if (pthread_create(&p->down_thread, NULL, down_main, p) != 0)
		return iotca_errbuf_set(eb, IOTCA_EINTERNAL,
		                        "cannot start the downstream thread");
	p->down_started = 1;
	return IOTCA_OK;
}

iotca_err
edge_plane_create(edge *e, edge_plane **out, iotca_errbuf *eb)
{
	edge_plane *p = calloc(1, sizeof(*p));
	size_t n = 1024;
	iotca_err rc = IOTCA_ENOMEM;

	if (p == NULL)
		return iotca_errbuf_set(eb, rc, "out of memory");
	p->e = e;
	while (n < (size_t)e->o.max_connections && n < (1u << 22))
		n <<= 1;
	pthread_mutex_init(&p->route_mu, NULL);
	if ((p->routes = calloc(n, sizeof(*p->routes))) == NULL) {
		iotca_errbuf_set(eb, rc, "out of memory");
		goto fail;
	}
	p->nroutes = n;
	if (e->o.upstream != NULL &&
	    (rc = plane_open_up(p, e->o.upstream, eb)) != IOTCA_OK)
		goto fail;
	if (e->o.downstream != NULL &&
	    (rc = plane_open_down(p, e->o.downstream, eb)) != IOTCA_OK)
		goto fail;
	*out = p;
	return IOTCA_OK;
fail:
	edge_plane_destroy(p);
	return rc;
}

void
edge_plane_drain(edge_plane *p, long timeout_ms)
{
	int64_t end = edge_now_ms() + timeout_ms;
	struct timespec ts = {0, 10 * 1000000};

	if (p == NULL || !p->have_up)
		return;
	while (atomic_load(&p->inflight) > 0 && edge_now_ms() < end)
		nanosleep(&ts, NULL);
	if (atomic_load(&p->inflight) > 0)
		iotca_log_warn("EDGE-UPSTREAM-UNDRAINED",
		               "pending=%d msg=\"the consumer did not take "
		               "them in time; they were not acknowledged\"",
		               atomic_load(&p->inflight));
	/* the pipes may still be writing the last messages they took */
	ts.tv_nsec = PLANE_PIPE_GRACE_MS * 1000000L;
	nanosleep(&ts, NULL);
}

/* After the loops stopped and edge_plane_drain: no publish is started
 * any more. */
void
edge_plane_destroy(edge_plane *p)
{
	size_t i;
	route *r, *next;

	if (p == NULL)
		return;
	atomic_store(&p->stop, 1);
	if (p->have_down)
		nng_close(p->down);
	if (p->down_started)
		pthread_join(p->down_thread, NULL);
	if (p->have_up)
		nng_close(p->up); /* pending aios complete with NNG_ECLOSED */
	for (i = 0; i < p->nroutes; i++)
		for (r = p->routes[i]; r != NULL; r = next) {
			next = r->next;
			free(r);
		}
	free(p->routes);
	pthread_mutex_destroy(&p->route_mu);
	free(p);
}

void
edge_plane_stats_get(edge_plane *p, edge_plane_stats *out)
{
	out->up_sent = atomic_load(&p->up_sent);
	out->up_dropped = atomic_load(&p->up_dropped);
	out->up_failed = atomic_load(&p->up_failed);
	out->events_sent = atomic_load(&p->events_sent);
	out->events_dropped = atomic_load(&p->events_dropped);
	out->down_received = atomic_load(&p->down_received);
	out->down_routed = atomic_load(&p->down_routed);
	out->down_dropped = atomic_load(&p->down_dropped);
}
