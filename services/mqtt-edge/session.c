/*
 * session.c - MQTT 3.1.1 on an authenticated TLS connection.
 *
 * After the handshake the device lookup starts at once, in parallel with
 * waiting for CONNECT; CONNACK goes out when both are there. Packets the
 * device sends behind its CONNECT before the CONNACK are kept and handled
 * after it. In the session a device may use only its own topics:
 * "/<pk>/<dn>/...", "/sys/<pk>/<dn>/..." and "/ext/...".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge_int.h"
#include "log/log.h"

#define RESEND_MS      10000 /* QoS 1 downstream without PUBACK */
#define UP_PENDING_MAX 1024  /* QoS 1/2 upstream not yet handed off */
#define Q2_MAX         256   /* QoS 2 ids awaiting PUBREL */

#define KIND(k) IOTCA__V1__DEVICE_MESSAGE_KIND__DEVICE_MESSAGE_KIND_##k

/* ------------------------------------------------------------ topics */

static int
has_prefix(const char *s, size_t n, const char *prefix)
{
	size_t k = strlen(prefix);

	return n > k && memcmp(s, prefix, k) == 0;
}

/* Whether a topic name or filter lies in the device's own space. A filter
 * may use wildcards only below the fixed prefix. */
static int
topic_allowed(const edge_ident *id, const char *t, size_t n)
{
	char own[EDGE_PK_MAX + EDGE_DN_MAX + 8];

	if (has_prefix(t, n, "/ext/"))
		return 1;
	snprintf(own, sizeof(own), "/%s/%s/", id->pk, id->dn);
	if (has_prefix(t, n, own))
		return 1;
	snprintf(own, sizeof(own), "/sys/%s/%s/", id->pk, id->dn);
	return has_prefix(t, n, own);
}

/* ------------------------------------------------------------ output */

/* Queues an encoded packet and writes what TLS takes. -1: closed. */
static int
send_result(edge_conn *c, iotca_err rc)
{
	if (rc != IOTCA_OK) {
		/* the device does not read what it is sent */
		edge_conn_close(c, EDGE_R_CONNECTION_LOST);
		return -1;
	}
	if (edge_conn_flush(c) != 0) {
		edge_conn_close(c, EDGE_R_CONNECTION_LOST);
		return -1;
	}
	return 0;
}

static int
send_ack(edge_conn *c, iotca_mqtt_type type, uint16_t id)
{
	return send_result(c, iotca_mqtt_encode_ack(&c->out, type, id));
}

/* Queues a PUBLISH without writing it. */
static iotca_err
queue_publish(edge_conn *c, const char *topic, const uint8_t *payload,
              size_t len, uint8_t qos, uint16_t pid)
{
	iotca_mqtt_publish p = {0};

	p.qos = qos;
	p.packet_id = pid;
	p.topic.data = topic;
	p.topic.len = strlen(topic);
	p.payload.data = payload;
	p.payload.len = len;
	return iotca_mqtt_encode_publish(&c->out, &p);
}

static int
send_publish(edge_conn *c, const char *topic, const uint8_t *payload,
             size_t len, uint8_t qos, uint16_t pid)
{
	return send_result(c, queue_publish(c, topic, payload, len, qos, pid));
}

/* ------------------------------------------------------------ CONNECT */

static void
refuse(edge_conn *c, uint8_t code, edge_reason why)
{
	edge *e = c->loop->e;

	if (c->dev_state == 2 && c->dev.found &&
	    strcmp(c->dev.ca_id, c->ident.ca_id) == 0) {
		/* as far as the edge got: the device is known */
		strcpy(c->ident.pk, c->dev.pk);
		strcpy(c->ident.dn, c->dev.dn);
	}
	atomic_fetch_add(&e->st.connack_refused, 1);
	atomic_fetch_add(&e->st.auth_failed[why], 1);
	edge_plane_event(e->plane, KIND(AUTH_FAILED), &c->ident, c->client_id,
	                 c->peer, why);
	iotca_log_info(
	    "EDGE-AUTH-FAILED", "peer=%s reason=%s connack=%u ca_id=%s sn=%s",
	    c->peer, edge_reason_word(why), code, c->ident.ca_id, c->ident.sn);
	if (iotca_mqtt_encode_connack(&c->out, 0, code) != IOTCA_OK) {
		edge_conn_close(c, EDGE_R_CONNECTION_LOST);
		return;
	}
	edge_conn_close_after_flush(c, EDGE_R_CONNECTION_LOST);
}

static int session_replay(edge_conn *c);

/* Accepts the session: CONNACK 0, the identity, the route. -1: closed. */
static int
accept_session(edge_conn *c)
{
	edge *e = c->loop->e;
	char json[EDGE_PK_MAX + EDGE_DN_MAX + 48];
	uint64_t old;
	iotca_err rc;
	int n;

	strcpy(c->ident.pk, c->dev.pk);
	strcpy(c->ident.dn, c->dev.dn);
	if (c->will_topic != NULL &&
	    !topic_allowed(&c->ident, c->will_topic, strlen(c->will_topic))) {
		refuse(c, IOTCA_MQTT_CONNACK_NOT_AUTHORIZED,
		       EDGE_R_TOPIC_DENIED);
		return -1;
	}
	c->state = CS_SESSION;
	atomic_fetch_add(&e->st.sessions, 1);
	atomic_fetch_add(&e->st.sessions_opened, 1);
	old = edge_plane_route_add(e->plane, c->ident.pk, c->ident.dn, c->cid);
	if (old != 0 && old != c->cid) {
		edge_msg *m = edge_msg_new(EDGE_MSG_KICK, old);

		if (m != NULL) {
			m->reason = EDGE_R_TAKEN_OVER;
			edge_loop_post(e->loops[EDGE_CONN_LOOP(old)], m);
		}
	}
	edge_plane_event(e->plane, KIND(CONNECTED), &c->ident, c->client_id,
	                 c->peer, EDGE_R_NONE);
	iotca_log_debug("EDGE-SESSION", "peer=%s pk=%s dn=%s ca_id=%s sn=%s",
	                c->peer, c->ident.pk, c->ident.dn, c->ident.ca_id,
	                c->ident.sn);
	/* CONNACK and the identity go out in one TLS record and one write */
	n = snprintf(json, sizeof(json),
	             "{\"productKey\":\"%s\",\"deviceName\":\"%s\"}",
	             c->ident.pk, c->ident.dn);
	rc = iotca_mqtt_encode_connack(&c->out, 0, IOTCA_MQTT_CONNACK_ACCEPTED);
	if (rc == IOTCA_OK)
		rc = queue_publish(c, "/ext/auth/identity/response",
		                   (uint8_t *)json, (size_t)n, 0, 0);
	if (send_result(c, rc) != 0)
		return -1;
	return session_replay(c);
}

/* CONNACK once both CONNECT and the device answer are in. -1: closed. */
static int
try_connack(edge_conn *c)
{
	if (!c->have_connect || c->dev_state != 2 || c->closing)
		return 0;
	if (c->dev_failed) {
		refuse(c, IOTCA_MQTT_CONNACK_UNAVAILABLE, EDGE_R_LOOKUP_FAILED);
		return -1;
	}
	if (!c->dev.found || strcmp(c->dev.ca_id, c->ident.ca_id) != 0) {
		refuse(c, IOTCA_MQTT_CONNACK_NOT_AUTHORIZED, EDGE_R_UNKNOWN_SN);
		return -1;
	}
	if (!c->dev.enabled) {
		refuse(c, IOTCA_MQTT_CONNACK_NOT_AUTHORIZED,
		       EDGE_R_DEVICE_DISABLED);
		return -1;
	}
	return accept_session(c);
}

static void
ask_device(edge_conn *c)
{
	edge_verdict v = edge_auth_device(c->loop->e->auth, &c->ident, c->loop,
	                                  c->cid, &c->dev);

	c->dev_failed = 0;
	c->dev_state = v == EDGE_OK ? 2 : 1;
}

int
edge_session_tls_ready(edge_conn *c)
{
	if (iotca_mqtt_decoder_create(c->loop->e->o.max_packet, &c->dec) !=
	    IOTCA_OK) {
		edge_conn_close(c, EDGE_R_CONNECTION_LOST);
		return -1;
	}
	ask_device(c);
	return 0;
}

static char *
dup_str(const iotca_mqtt_str *s)
{
	return strndup(s->data != NULL ? s->data : "", s->len);
}

static int
on_connect(edge_conn *c, const iotca_mqtt_connect *k)
{
	c->have_connect = 1;
	c->keepalive_s = k->keep_alive;
	if ((c->client_id = dup_str(&k->client_id)) == NULL)
		return -1;
	if (k->will_flag) {
		c->will_qos = k->will_qos;
		if ((c->will_topic = dup_str(&k->will_topic)) == NULL)
			return -1;
		if (k->will_message.len > 0) {
			if ((c->will_msg = malloc(k->will_message.len)) == NULL)
				return -1;
			memcpy(c->will_msg, k->will_message.data,
			       k->will_message.len);
			c->will_len = k->will_message.len;
		}
	}
	return 0;
}

/* ------------------------------------------------------------ session */

static int
q2_find(const edge_conn *c, uint16_t id)
{
	size_t i;

	for (i = 0; i < c->nq2; i++)
		if (c->q2_ids[i] == id)
			return (int)i;
	return -1;
}

static void
q2_remove(edge_conn *c, uint16_t id)
{
	int i = q2_find(c, id);

	if (i >= 0)
		c->q2_ids[i] = c->q2_ids[--c->nq2];
	if (c->nq2 == 0) {
		free(c->q2_ids);
		c->q2_ids = NULL;
	}
}

static int
q2_add(edge_conn *c, uint16_t id)
{
	uint16_t *ids;

	if (q2_find(c, id) >= 0)
		return 0;
	if (c->nq2 >= Q2_MAX ||
	    (ids = realloc(c->q2_ids, (c->nq2 + 1) * sizeof(*ids))) == NULL)
		return -1;
	c->q2_ids = ids;
	c->q2_ids[c->nq2++] = id;
	return 0;
}

static int
on_publish(edge_conn *c, const iotca_mqtt_publish *p)
{
	edge *e = c->loop->e;

	if (!topic_allowed(&c->ident, p->topic.data, p->topic.len)) {
		iotca_log_info("EDGE-TOPIC-DENIED",
		               "pk=%s dn=%s op=publish topic_len=%zu",
		               c->ident.pk, c->ident.dn, p->topic.len);
		edge_conn_close(c, EDGE_R_TOPIC_DENIED);
		return -1;
	}
	atomic_fetch_add(&e->st.msgs_up, 1);
	if (p->qos == 2 && q2_find(c, p->packet_id) >= 0)
		return send_ack(c, IOTCA_MQTT_PUBREC, p->packet_id); /* dup */
	if (p->qos > 0 && c->up_pending >= UP_PENDING_MAX) {
		edge_conn_close(c, EDGE_R_PROTOCOL_ERROR);
		return -1;
	}
	if (edge_plane_publish(e->plane, &c->ident, c->client_id, c->peer,
	                       p->topic.data, p->topic.len, p->payload.data,
	                       p->payload.len, p->qos, c->loop, c->cid,
	                       p->packet_id) == 0 &&
	    p->qos > 0)
		c->up_pending++;
	return 0;
}

static int
sub_find(const edge_conn *c, const iotca_mqtt_str *f)
{
	size_t i;

	for (i = 0; i < c->nsubs; i++)
		if (strlen(c->subs[i]) == f->len &&
		    memcmp(c->subs[i], f->data, f->len) == 0)
			return (int)i;
	return -1;
}

static int
on_subscribe(edge_conn *c, const iotca_mqtt_subscribe *s)
{
	uint8_t codes[64], *rc = codes;
	size_t i;
	int k, r;

	if (s->count > sizeof(codes) && (rc = malloc(s->count)) == NULL)
		return send_result(c, IOTCA_ENOMEM);
	for (i = 0; i < s->count; i++) {
		const iotca_mqtt_sub *sub = &s->subs[i];
		uint8_t q = sub->qos > 1 ? 1 : sub->qos;

		rc[i] = IOTCA_MQTT_SUBACK_FAILURE;
		if (!topic_allowed(&c->ident, sub->filter.data,
		                   sub->filter.len))
			continue;
		if ((k = sub_find(c, &sub->filter)) < 0) {
			if (c->nsubs == EDGE_SUB_MAX ||
			    (c->subs[c->nsubs] = dup_str(&sub->filter)) == NULL)
				continue;
			k = (int)c->nsubs++;
		}
		c->sub_qos[k] = q;
		rc[i] = q;
	}
	r = send_result(
	    c, iotca_mqtt_encode_suback(&c->out, s->packet_id, rc, s->count));
	if (rc != codes)
		free(rc);
	return r;
}

static int
on_unsubscribe(edge_conn *c, const iotca_mqtt_unsubscribe *u)
{
	size_t i;
	int k;

	for (i = 0; i < u->count; i++)
		if ((k = sub_find(c, &u->filters[i])) >= 0) {
			free(c->subs[k]);
			c->subs[k] = c->subs[c->nsubs - 1];
			c->sub_qos[k] = c->sub_qos[c->nsubs - 1];
			c->nsubs--;
		}
	return send_ack(c, IOTCA_MQTT_UNSUBACK, u->packet_id);
}

static void
inflight_ack(edge_conn *c, uint16_t id)
{
	size_t i;

	for (i = 0; i < c->ninflight; i++)
		if (c->inflight[i].packet_id == id) {
			free(c->inflight[i].pkt);
			c->inflight[i] = c->inflight[--c->ninflight];
			break;
		}
	if (c->ninflight == 0) {
		free(c->inflight);
		c->inflight = NULL;
	}
}

/* One packet of an established session. -1: closed. */
static int
on_session_packet(edge_conn *c, const iotca_mqtt_packet *pk)
{
	switch (pk->type) {
	case IOTCA_MQTT_PUBLISH:
		return on_publish(c, &pk->publish);
	case IOTCA_MQTT_PUBACK:
		inflight_ack(c, pk->packet_id);
		return 0;
	case IOTCA_MQTT_PUBREL:
		q2_remove(c, pk->packet_id);
		return send_ack(c, IOTCA_MQTT_PUBCOMP, pk->packet_id);
	case IOTCA_MQTT_PUBREC:
	case IOTCA_MQTT_PUBCOMP:
		return 0; /* the edge never sends QoS 2: nothing to do */
	case IOTCA_MQTT_SUBSCRIBE:
		return on_subscribe(c, &pk->subscribe);
	case IOTCA_MQTT_UNSUBSCRIBE:
		return on_unsubscribe(c, &pk->unsubscribe);
	case IOTCA_MQTT_PINGREQ:
		return send_result(c, iotca_mqtt_encode_pingresp(&c->out));
	case IOTCA_MQTT_DISCONNECT:
		free(c->will_topic); /* a clean end: no will */
		c->will_topic = NULL;
		edge_conn_close(c, EDGE_R_CLIENT_DISCONNECT);
		return -1;
	default: /* a second CONNECT */
		edge_conn_close(c, EDGE_R_PROTOCOL_ERROR);
		return -1;
	}
}

static int
protocol_error(edge_conn *c, const iotca_errbuf *eb)
{
	atomic_fetch_add(&c->loop->e->st.protocol_errors, 1);
	iotca_log_info("EDGE-PROTOCOL-ERROR", "peer=%s pk=%s msg=\"%s\"",
	               c->peer, c->ident.pk, iotca_errbuf_msg(eb));
	edge_conn_close(c, EDGE_R_PROTOCOL_ERROR);
	return -1;
}

/* Keeps bytes that came behind CONNECT until the CONNACK is out. */
static iotca_buf *
pending_buf(edge_conn *c)
{
	return &c->pend;
}

int
edge_session_input(edge_conn *c, const uint8_t *p, size_t n)
{
	iotca_mqtt_packet pk;
	iotca_errbuf eb;
	size_t used;
	iotca_err rc;

	if (c->state == CS_CONNECT && c->have_connect) {
		/* waiting for the device answer: keep the bytes */
		if (iotca_buf_append(pending_buf(c), p, n) != IOTCA_OK) {
			edge_conn_close(c, EDGE_R_PROTOCOL_ERROR);
			return -1;
		}
		return 0;
	}
	for (;;) {
		used = 0;
		iotca_mqtt_feed(c->dec, p, n, &used);
		p += used;
		n -= used;
		iotca_errbuf_clear(&eb);
		rc = iotca_mqtt_next(c->dec, &pk, &eb);
		if (rc == IOTCA_ENOENT) {
			if (n == 0)
				return 0;
			continue;
		}
		if (rc == IOTCA_EPRECOND) {
			iotca_mqtt_encode_connack(
			    &c->out, 0,
			    iotca_mqtt_decoder_connack_code(c->dec));
			edge_conn_close_after_flush(c, EDGE_R_PROTOCOL_ERROR);
			return -1;
		}
		if (rc != IOTCA_OK)
			return protocol_error(c, &eb);
		if (c->state == CS_SESSION) {
			if (on_session_packet(c, &pk) != 0)
				return -1;
			continue;
		}
		/* CS_CONNECT: the first packet must be CONNECT */
		if (pk.type != IOTCA_MQTT_CONNECT) {
			iotca_errbuf_set(&eb, IOTCA_EPROTO, "%s before CONNECT",
			                 iotca_mqtt_type_name((int)pk.type));
			return protocol_error(c, &eb);
		}
		if (on_connect(c, &pk.connect) != 0) {
			edge_conn_close(c, EDGE_R_CONNECTION_LOST);
			return -1;
		}
		if (n > 0 &&
		    iotca_buf_append(pending_buf(c), p, n) != IOTCA_OK) {
			edge_conn_close(c, EDGE_R_PROTOCOL_ERROR);
			return -1;
		}
		return try_connack(c);
	}
}

/* Handles what arrived behind CONNECT. */
static int
session_replay(edge_conn *c)
{
	size_t len;
	char *data;
	int r;

	if (c->pend.len == 0)
		return 0;
	data = iotca_buf_take(&c->pend, &len);
	r = edge_session_input(c, (const uint8_t *)data, len);
	free(data);
	return r;
}

/* ------------------------------------------------------------ messages */

static void
deliver(edge_conn *c, const edge_msg *m)
{
	edge *e = c->loop->e;
	size_t tl = strlen(m->s1), i;
	int best = -1;
	uint8_t qos;
	iotca_mqtt_publish p = {0};
	iotca_buf one;
	edge_inflight *fl;

	if (!topic_allowed(&c->ident, m->s1, tl))
		return;
	for (i = 0; i < c->nsubs; i++)
		if (iotca_mqtt_filter_match(c->subs[i], strlen(c->subs[i]),
		                            m->s1, tl) &&
		    (int)c->sub_qos[i] > best)
			best = c->sub_qos[i];
	if (best < 0)
		return;
	qos = m->qos < (uint8_t)best ? m->qos : (uint8_t)best;
	atomic_fetch_add(&e->st.msgs_down, 1);
	if (qos == 0) {
		send_publish(c, m->s1, m->payload, m->payload_len, 0, 0);
		return;
	}
	if (c->ninflight >= EDGE_INFLIGHT_MAX)
		return; /* the device is not acknowledging: drop */
	if (++c->next_pid == 0)
		c->next_pid = 1;
	p.qos = 1;
	p.packet_id = c->next_pid;
	p.topic.data = m->s1;
	p.topic.len = tl;
	p.payload.data = m->payload;
	p.payload.len = m->payload_len;
	iotca_buf_init(&one, e->o.max_packet + 65536);
	fl = realloc(c->inflight, (c->ninflight + 1) * sizeof(*fl));
	if (fl == NULL || iotca_mqtt_encode_publish(&one, &p) != IOTCA_OK) {
		if (fl != NULL)
			c->inflight = fl;
		iotca_buf_free(&one);
		return;
	}
	c->inflight = fl;
	fl = &c->inflight[c->ninflight++];
	fl->packet_id = p.packet_id;
	fl->sent_ms = edge_now_ms();
	fl->pkt = (uint8_t *)iotca_buf_take(&one, &fl->len);
	send_result(c, iotca_buf_append(&c->out, fl->pkt, fl->len));
}

static void
recheck_done(edge_conn *c)
{
	c->rechecking = 0;
	if (c->dev_failed)
		return; /* cannot tell: keep the session */
	if (!c->dev.found || !c->dev.enabled ||
	    strcmp(c->dev.ca_id, c->ident.ca_id) != 0 ||
	    strcmp(c->dev.pk, c->ident.pk) != 0 ||
	    strcmp(c->dev.dn, c->ident.dn) != 0) {
		iotca_log_info("EDGE-REVOKED", "pk=%s dn=%s ca_id=%s sn=%s",
		               c->ident.pk, c->ident.dn, c->ident.ca_id,
		               c->ident.sn);
		edge_conn_close(c, EDGE_R_REVOKED);
	}
}

void
edge_session_msg(edge_conn *c, edge_msg *m)
{
	switch (m->kind) {
	case EDGE_MSG_DEVICE_DONE:
		c->dev_failed = !m->ok;
		if (m->ok)
			c->dev = *(edge_dev *)m->val;
		c->dev_state = 2;
		if (c->state == CS_SESSION)
			recheck_done(c);
		else if (c->state == CS_CONNECT)
			try_connack(c);
		break;
	case EDGE_MSG_UP_DONE:
		if (c->state != CS_SESSION)
			break;
		if (c->up_pending > 0)
			c->up_pending--;
		if (!m->ok)
			break; /* not handed off: no acknowledgement */
		if (m->qos == 1)
			send_ack(c, IOTCA_MQTT_PUBACK, m->packet_id);
		else if (q2_add(c, m->packet_id) == 0)
			send_ack(c, IOTCA_MQTT_PUBREC, m->packet_id);
		break;
	case EDGE_MSG_DOWN:
		if (c->state == CS_SESSION && !c->closing)
			deliver(c, m);
		break;
	case EDGE_MSG_KICK:
		edge_conn_close(c, m->reason);
		break;
	default:
		break;
	}
}

void
edge_session_issuer_done(edge_conn *c)
{
	X509 *cert = SSL_get0_peer_certificate(c->ssl);
	edge_ident id = c->ident;
	edge_reason r;
	int ok;

	if (c->state != CS_SESSION || c->iss == NULL) {
		edge_iss_unref(c->iss); /* a late answer */
		c->iss = NULL;
		return;
	}
	ok = cert != NULL &&
	     edge_auth_check(c->iss, cert, NULL, &id, &r, NULL) == EDGE_OK &&
	     strcmp(id.ca_id, c->ident.ca_id) == 0;
	edge_iss_unref(c->iss);
	c->iss = NULL;
	if (!ok)
		edge_conn_close(c, EDGE_R_REVOKED);
}

/*
 * A change of this device's association, as the association service
 * reported it (ok: ENABLED; val: the edge_dev after the change). It is
 * newer than any answer held, so it is applied as it is: asking again
 * could reach a replica that has not seen it yet.
 */
static void
apply_change(edge_conn *c, const edge_msg *m)
{
	const edge_dev *d = m->val;

	if (d == NULL)
		return;
	if (c->state == CS_CONNECT) {
		if (c->dev_state == 2 && !c->dev_failed)
			c->dev = *d;
		return;
	}
	c->dev = *d;
	c->dev_failed = 0;
	recheck_done(c);
}

/* Asks again about the CA of a session (after a registry reset). */
static void
recheck_issuer(edge_conn *c)
{
	X509 *cert = SSL_get0_peer_certificate(c->ssl);
	const unsigned char *der;
	size_t len;

	if (cert == NULL ||
	    X509_NAME_get0_der(X509_get_issuer_name(cert), &der, &len) != 1)
		return;
	if (edge_auth_issuer(c->loop->e->auth, der, len, c->loop, c->cid,
	                     &c->iss) == EDGE_OK)
		edge_session_issuer_done(c);
}

void
edge_session_recheck(edge_conn *c, const edge_msg *m)
{
	if (c->closing || (c->state != CS_SESSION && c->state != CS_CONNECT))
		return;
	switch (m->kind) {
	case EDGE_MSG_CA_OFF:
		if (strcmp(c->ident.ca_id, m->s1) == 0)
			edge_conn_close(c, EDGE_R_REVOKED);
		return;
	case EDGE_MSG_DEVICE_CHG:
		if (strcmp(c->ident.account_id, m->s1) == 0 &&
		    strcmp(c->ident.sn, m->s2) == 0)
			apply_change(c, m);
		return;
	case EDGE_MSG_RESET:
		if (m->ok) { /* the registry's: the CA may be gone */
			if (c->state == CS_SESSION)
				recheck_issuer(c);
			return;
		}
		break;
	default:
		return;
	}
	if (c->state == CS_CONNECT && c->dev_state != 2)
		return; /* its answer is on the way, after the change */
	ask_device(c);
	if (c->dev_state != 2)
		return;
	if (c->state == CS_SESSION)
		recheck_done(c);
	else
		try_connack(c);
}

void
edge_session_tick(edge_conn *c, int64_t now)
{
	size_t i;

	if (c->keepalive_s > 0 &&
	    now - c->last_rx_ms > (int64_t)c->keepalive_s * 1500) {
		edge_conn_close(c, EDGE_R_KEEPALIVE_TIMEOUT);
		return;
	}
	for (i = 0; i < c->ninflight; i++) {
		edge_inflight *f = &c->inflight[i];

		if (now - f->sent_ms < RESEND_MS)
			continue;
		f->pkt[0] |= 0x08; /* DUP */
		f->sent_ms = now;
		if (send_result(c, iotca_buf_append(&c->out, f->pkt, f->len)) !=
		    0)
			return;
	}
}

void
edge_session_end(edge_conn *c, edge_reason reason)
{
	edge *e = c->loop->e;

	edge_plane_route_del(e->plane, c->ident.pk, c->ident.dn, c->cid);
	if (c->will_topic != NULL && reason != EDGE_R_CLIENT_DISCONNECT)
		edge_plane_publish(e->plane, &c->ident, c->client_id, c->peer,
		                   c->will_topic, strlen(c->will_topic),
		                   c->will_msg, c->will_len, 0, c->loop, c->cid,
		                   0);
	edge_plane_event(e->plane, KIND(DISCONNECTED), &c->ident, c->client_id,
	                 c->peer, reason);
}
