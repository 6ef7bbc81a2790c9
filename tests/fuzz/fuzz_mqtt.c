/*
 * fuzz_mqtt.c - any bytes through the lib/mqtt decoder, as a socket would
 * hand them over, to the first error or the end.
 *
 * The input is the byte stream itself (so captured sessions are seeds as
 * they are). It is decoded three times with a roomy cap - whole, one byte
 * at a time, and in chunk sizes drawn from a generator seeded by the
 * input - and once with a tiny cap. Promises checked: feed never takes
 * more than it was given, takes everything it was given unless a packet
 * is complete or the decoder failed, and only OK, ENOENT, EPROTO,
 * EPRECOND come back (ENOMEM aside); after a failure nothing more is
 * taken and the same code and message come back; every field lies inside
 * the packet body; every run sees the same packets and the same final
 * result whatever the chunking. Decoded data goes back through the
 * encoders: a PUBLISH re-encodes to exactly its body and decodes again
 * to the same fields; a SUBSCRIBE gets a SUBACK the reference rules
 * accept; filters and topics go through the topic helpers. Nothing may
 * crash or leak.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf/buf.h"
#include "mqtt/mqtt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CAP_ROOMY (1u << 20)
#define FUZZ_CAP_TINY  24

/* What one run saw: a digest of the packets and how it ended. */
typedef struct fuzz_run {
	uint64_t digest;
	size_t packets;
	size_t consumed;
	iotca_err end; /* ENOENT: ran out of bytes */
	char msg[IOTCA_ERRMSG_MAX];
} fuzz_run;

static void
fuzz_assert(int cond)
{
	if (!cond)
		abort();
}

static uint64_t
fuzz_mix(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;
	size_t i;

	for (i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return h;
}

/* 1 when [p, p+n) lies inside the body of pkt (n == 0 and p NULL is
 * fine). */
static int
fuzz_inside(const iotca_mqtt_packet *pkt, const void *p, size_t n)
{
	const uint8_t *u = p;

	if (p == NULL)
		return n == 0;
	return pkt->body != NULL && u >= pkt->body && n <= pkt->body_len &&
	       (size_t)(u - pkt->body) <= pkt->body_len - n;
}

/* A PUBLISH re-encodes to its own body and decodes again the same. */
static void
fuzz_publish(const iotca_mqtt_packet *pkt)
{
	const iotca_mqtt_publish *p = &pkt->publish;
	iotca_mqtt_decoder *d = NULL;
	iotca_mqtt_packet q;
	iotca_buf b;
	size_t used, hdr;

	fuzz_assert(fuzz_inside(pkt, p->topic.data, p->topic.len));
	fuzz_assert(fuzz_inside(pkt, p->payload.data, p->payload.len));
	fuzz_assert(iotca_mqtt_topic_valid_name(p->topic.data, p->topic.len));
	fuzz_assert(p->qos <= 2 && (p->qos == 0) == (p->packet_id == 0));
	iotca_buf_init(&b, FUZZ_CAP_ROOMY + 8);
	fuzz_assert(iotca_mqtt_encode_publish(&b, p) == IOTCA_OK);
	hdr = b.len - pkt->body_len;
	fuzz_assert(b.len > pkt->body_len &&
	            (uint8_t)b.data[0] ==
	                (IOTCA_MQTT_PUBLISH << 4 | pkt->flags));
	fuzz_assert(memcmp(b.data + hdr, pkt->body, pkt->body_len) == 0);
	fuzz_assert(iotca_mqtt_decoder_create(b.len, &d) == IOTCA_OK);
	fuzz_assert(iotca_mqtt_feed(d, (uint8_t *)b.data, b.len, &used) ==
	            IOTCA_OK);
	fuzz_assert(used == b.len);
	fuzz_assert(iotca_mqtt_next(d, &q, NULL) == IOTCA_OK);
	fuzz_assert(q.publish.qos == p->qos && q.publish.dup == p->dup &&
	            q.publish.retain == p->retain &&
	            q.publish.packet_id == p->packet_id &&
	            q.publish.topic.len == p->topic.len &&
	            q.publish.payload.len == p->payload.len);
	iotca_mqtt_decoder_destroy(d);
	iotca_buf_free(&b);
}

/* A SUBSCRIBE: valid filters inside the body; a SUBACK granting them. */
static void
fuzz_subscribe(const iotca_mqtt_packet *pkt)
{
	const iotca_mqtt_subscribe *s = &pkt->subscribe;
	uint8_t *codes = malloc(s->count);
	iotca_buf b;
	size_t i;

	fuzz_assert(codes != NULL && s->count > 0 && s->packet_id != 0);
	for (i = 0; i < s->count; i++) {
		const iotca_mqtt_str *f = &s->subs[i].filter;

		fuzz_assert(fuzz_inside(pkt, f->data, f->len));
		fuzz_assert(iotca_mqtt_filter_valid(f->data, f->len));
		fuzz_assert(s->subs[i].qos <= 2);
		/* A filter without wildcards matches exactly itself. */
		if (iotca_mqtt_topic_valid_name(f->data, f->len))
			fuzz_assert(iotca_mqtt_filter_match(f->data, f->len,
			                                    f->data, f->len));
		codes[i] =
		    (i % 4 == 3) ? IOTCA_MQTT_SUBACK_FAILURE : s->subs[i].qos;
	}
	iotca_buf_init(&b, FUZZ_CAP_ROOMY + 8);
	fuzz_assert(iotca_mqtt_encode_suback(&b, s->packet_id, codes,
	                                     s->count) == IOTCA_OK);
	fuzz_assert((uint8_t)b.data[0] == 0x90 &&
	            memcmp(b.data + b.len - s->count, codes, s->count) == 0);
	iotca_buf_free(&b);
	free(codes);
}

/* CONNECT: flags consistent, present fields inside, absent ones NULL. */
static void
fuzz_connect(const iotca_mqtt_packet *pkt)
{
	const iotca_mqtt_connect *c = &pkt->connect;

	fuzz_assert(c->level == 4);
	fuzz_assert(!c->password_flag || c->username_flag);
	fuzz_assert(c->will_flag || (c->will_qos == 0 && !c->will_retain));
	fuzz_assert(c->will_qos <= 2);
	fuzz_assert(c->client_id.len > 0 || c->clean_session);
	fuzz_assert(fuzz_inside(pkt, c->client_id.data, c->client_id.len) ||
	            c->client_id.len == 0);
	fuzz_assert(fuzz_inside(pkt, c->will_topic.data, c->will_topic.len));
	fuzz_assert(c->will_flag == (c->will_topic.data != NULL));
	fuzz_assert(c->username_flag == (c->username.data != NULL));
	fuzz_assert(c->password_flag == (c->password.data != NULL));
	if (c->will_flag)
		fuzz_assert(iotca_mqtt_topic_valid_name(c->will_topic.data,
		                                        c->will_topic.len));
}

/* Checks one packet and adds it to the digest. */
static void
fuzz_packet(fuzz_run *r, const iotca_mqtt_packet *pkt)
{
	size_t i;

	fuzz_assert(pkt->size >= 2 && pkt->size <= pkt->body_len + 5);
	fuzz_assert((pkt->body == NULL) == (pkt->body_len == 0));
	r->digest = fuzz_mix(r->digest, &pkt->type, sizeof(pkt->type));
	if (pkt->body_len)
		r->digest = fuzz_mix(r->digest, pkt->body, pkt->body_len);
	r->packets++;
	switch (pkt->type) {
	case IOTCA_MQTT_CONNECT:
		fuzz_connect(pkt);
		break;
	case IOTCA_MQTT_PUBLISH:
		fuzz_publish(pkt);
		break;
	case IOTCA_MQTT_SUBSCRIBE:
		fuzz_subscribe(pkt);
		break;
	case IOTCA_MQTT_UNSUBSCRIBE:
		fuzz_assert(pkt->unsubscribe.count > 0);
		for (i = 0; i < pkt->unsubscribe.count; i++) {
			const iotca_mqtt_str *f = &pkt->unsubscribe.filters[i];

			fuzz_assert(fuzz_inside(pkt, f->data, f->len));
			fuzz_assert(iotca_mqtt_filter_valid(f->data, f->len));
		}
		break;
	case IOTCA_MQTT_PUBACK:
	case IOTCA_MQTT_PUBREC:
	case IOTCA_MQTT_PUBREL:
	case IOTCA_MQTT_PUBCOMP:
		fuzz_assert(pkt->packet_id != 0 && pkt->body_len == 2);
		break;
	case IOTCA_MQTT_PINGREQ:
	case IOTCA_MQTT_DISCONNECT:
		fuzz_assert(pkt->body_len == 0);
		break;
	default:
		abort(); /* a server-only type came out */
	}
}

/* After a failure: nothing taken, the same answer. */
static void
fuzz_failed(iotca_mqtt_decoder *d, const fuzz_run *r, const uint8_t *data,
            size_t len)
{
	iotca_mqtt_packet pkt;
	iotca_errbuf eb;
	size_t used = 1;

	fuzz_assert(iotca_mqtt_feed(d, data, len, &used) == r->end);
	fuzz_assert(used == 0);
	fuzz_assert(iotca_mqtt_next(d, &pkt, &eb) == r->end);
	fuzz_assert(strcmp(eb.msg, r->msg) == 0);
}

/* The next chunk size: 0 for the rest, else 1..64 from the generator. */
static size_t
fuzz_chunk(uint64_t *state, int mode, size_t left)
{
	size_t n;

	if (mode == 0)
		return left;
	if (mode == 1)
		return left > 0 ? 1 : 0;
	*state ^= *state << 13;
	*state ^= *state >> 7;
	*state ^= *state << 17;
	n = (size_t)(*state % 64) + 1;
	return n < left ? n : left;
}

/* Decodes data[0..size) with cap in chunks chosen by mode. */
static void
fuzz_decode(const uint8_t *data, size_t size, size_t cap, int mode, fuzz_run *r)
{
	iotca_mqtt_decoder *d = NULL;
	iotca_mqtt_packet pkt;
	iotca_errbuf eb;
	uint64_t state =
	    fuzz_mix(0xcbf29ce484222325ull, data, size < 16 ? size : 16) | 1;
	size_t pos = 0;

	memset(r, 0, sizeof(*r));
	r->end = IOTCA_ENOENT;
	fuzz_assert(iotca_mqtt_decoder_create(cap, &d) == IOTCA_OK);
	for (;;) {
		size_t n = fuzz_chunk(&state, mode, size - pos), used = n + 1;
		iotca_err frc = iotca_mqtt_feed(d, data + pos, n, &used);
		iotca_err rc;

		fuzz_assert(used <= n);
		pos += used;
		rc = iotca_mqtt_next(d, &pkt, &eb);
		fuzz_assert(frc == IOTCA_OK || frc == rc);
		if (rc == IOTCA_OK) {
			fuzz_packet(r, &pkt);
			continue;
		}
		if (rc == IOTCA_ENOENT) {
			fuzz_assert(used == n); /* nothing held back */
			if (pos == size)
				break;
			continue;
		}
		fuzz_assert(rc == IOTCA_EPROTO || rc == IOTCA_EPRECOND ||
		            rc == IOTCA_ENOMEM);
		fuzz_assert(eb.code == rc && eb.msg[0] != '\0');
		fuzz_assert((rc == IOTCA_EPRECOND) ==
		            (iotca_mqtt_decoder_connack_code(d) != 0));
		r->end = rc;
		memcpy(r->msg, eb.msg, sizeof(r->msg));
		fuzz_failed(d, r, data, size);
		break;
	}
	r->consumed = pos;
	iotca_mqtt_decoder_destroy(d);
}

static int
fuzz_same(const fuzz_run *a, const fuzz_run *b)
{
	return a->digest == b->digest && a->packets == b->packets &&
	       a->consumed == b->consumed && a->end == b->end &&
	       strcmp(a->msg, b->msg) == 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_run whole, one, some, tiny, tiny1;

	fuzz_decode(data, size, FUZZ_CAP_ROOMY, 0, &whole);
	fuzz_decode(data, size, FUZZ_CAP_ROOMY, 2, &some);
	fuzz_assert(fuzz_same(&whole, &some));
	if (size <= 4096) {
		fuzz_decode(data, size, FUZZ_CAP_ROOMY, 1, &one);
		fuzz_assert(fuzz_same(&whole, &one));
	}
	fuzz_decode(data, size, FUZZ_CAP_TINY, 0, &tiny);
	fuzz_decode(data, size, FUZZ_CAP_TINY, 2, &tiny1);
	fuzz_assert(fuzz_same(&tiny, &tiny1));
	/* The tiny cap sees a prefix of what the roomy one sees. */
	fuzz_assert(tiny.packets <= whole.packets);
	return 0;
}
