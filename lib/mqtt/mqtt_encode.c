/*
 * mqtt_encode.c - the packets an MQTT 3.1.1 server sends.
 *
 * Each encoder checks its arguments, works out the whole size, then
 * appends the fixed header and the fields to the caller's iotca_buf. If
 * an append fails half-way (the cap, memory) the buffer is cut back to
 * where it was, so a packet is appended whole or not at all.
 */
#include "mqtt/mqtt.h"

#include <string.h>

/* The fixed header of a packet: first byte, remaining length. */
static size_t
enc_header(uint8_t out[5], uint8_t first, size_t rem)
{
	size_t n = 0;

	out[n++] = first;
	do {
		uint8_t b = (uint8_t)(rem & 0x7Fu);

		rem >>= 7;
		out[n++] = rem ? (uint8_t)(b | 0x80u) : b;
	} while (rem > 0);
	return n;
}

/* Cuts b back to len after a failed append; returns rc. */
static iotca_err
enc_undo(iotca_buf *b, size_t len, iotca_err rc)
{
	if (rc != IOTCA_OK && b->data != NULL) {
		b->len = len;
		b->data[len] = '\0';
	}
	return rc;
}

/* Appends the fixed header after checking the whole packet fits b. */
static iotca_err
enc_begin(iotca_buf *b, uint8_t first, size_t rem)
{
	uint8_t hdr[5];
	size_t n;

	if (rem > IOTCA_MQTT_MAX_REMAINING)
		return IOTCA_ETOOBIG;
	n = enc_header(hdr, first, rem);
	if (b->len > b->cap || b->cap - b->len < n + rem)
		return IOTCA_ETOOBIG;
	return iotca_buf_append(b, hdr, n);
}

/* Appends a 2-byte big-endian integer. */
static iotca_err
enc_u16(iotca_buf *b, uint16_t v)
{
	uint8_t x[2] = {(uint8_t)(v >> 8), (uint8_t)(v & 0xFFu)};

	return iotca_buf_append(b, x, 2);
}

/* A packet of a fixed header and two bytes a, b. */
static iotca_err
enc_two(iotca_buf *b, uint8_t first, uint8_t x, uint8_t y)
{
	size_t start = b->len;
	uint8_t v[2] = {x, y};
	iotca_err rc = enc_begin(b, first, 2);

	if (rc == IOTCA_OK)
		rc = iotca_buf_append(b, v, 2);
	return enc_undo(b, start, rc);
}

iotca_err
iotca_mqtt_encode_connack(iotca_buf *b, int session_present,
                          uint8_t return_code)
{
	if (b == NULL || return_code > IOTCA_MQTT_CONNACK_NOT_AUTHORIZED ||
	    (session_present && return_code != 0))
		return IOTCA_EINVAL;
	return enc_two(b, IOTCA_MQTT_CONNACK << 4, session_present ? 1 : 0,
	               return_code);
}

iotca_err
iotca_mqtt_encode_ack(iotca_buf *b, iotca_mqtt_type type, uint16_t packet_id)
{
	uint8_t first = (uint8_t)(type << 4);

	if (b == NULL || packet_id == 0)
		return IOTCA_EINVAL;
	switch (type) {
	case IOTCA_MQTT_PUBREL:
		first |= 2;
		break;
	case IOTCA_MQTT_PUBACK:
	case IOTCA_MQTT_PUBREC:
	case IOTCA_MQTT_PUBCOMP:
	case IOTCA_MQTT_UNSUBACK:
		break;
	default:
		return IOTCA_EINVAL;
	}
	return enc_two(b, first, (uint8_t)(packet_id >> 8),
	               (uint8_t)(packet_id & 0xFFu));
}

iotca_err
iotca_mqtt_encode_pingresp(iotca_buf *b)
{
	size_t start;

	if (b == NULL)
		return IOTCA_EINVAL;
	start = b->len;
	return enc_undo(b, start, enc_begin(b, IOTCA_MQTT_PINGRESP << 4, 0));
}

/* 1 when the PUBLISH fields are ones a server may send. */
static int
enc_publish_valid(const iotca_mqtt_publish *p)
{
	if (!iotca_mqtt_topic_valid_name(p->topic.data, p->topic.len) ||
	    p->qos > 2 || (p->qos > 0 && p->packet_id == 0) ||
	    (p->qos == 0 && p->dup))
		return 0;
	return p->payload.len == 0 || p->payload.data != NULL;
}

iotca_err
iotca_mqtt_encode_publish(iotca_buf *b, const iotca_mqtt_publish *p)
{
	size_t start, rem;
	uint8_t first;
	iotca_err rc;

	if (b == NULL || p == NULL || !enc_publish_valid(p))
		return IOTCA_EINVAL;
	if (p->payload.len > IOTCA_MQTT_MAX_REMAINING)
		return IOTCA_ETOOBIG;
	rem = 2 + p->topic.len + (p->qos ? 2 : 0) + p->payload.len;
	first = (uint8_t)(IOTCA_MQTT_PUBLISH << 4 | (p->dup ? 8 : 0) |
	                  p->qos << 1 | (p->retain ? 1 : 0));
	start = b->len;
	rc = enc_begin(b, first, rem);
	if (rc == IOTCA_OK)
		rc = enc_u16(b, (uint16_t)p->topic.len);
	if (rc == IOTCA_OK)
		rc = iotca_buf_append(b, p->topic.data, p->topic.len);
	if (rc == IOTCA_OK && p->qos > 0)
		rc = enc_u16(b, p->packet_id);
	if (rc == IOTCA_OK && p->payload.len > 0)
		rc = iotca_buf_append(b, p->payload.data, p->payload.len);
	return enc_undo(b, start, rc);
}

iotca_err
iotca_mqtt_encode_suback(iotca_buf *b, uint16_t packet_id, const uint8_t *codes,
                         size_t n)
{
	size_t i, start;
	iotca_err rc;

	if (b == NULL || packet_id == 0 || codes == NULL || n == 0)
		return IOTCA_EINVAL;
	for (i = 0; i < n; i++)
		if (codes[i] > 2 && codes[i] != IOTCA_MQTT_SUBACK_FAILURE)
			return IOTCA_EINVAL;
	if (n > IOTCA_MQTT_MAX_REMAINING - 2)
		return IOTCA_ETOOBIG;
	start = b->len;
	rc = enc_begin(b, IOTCA_MQTT_SUBACK << 4, 2 + n);
	if (rc == IOTCA_OK)
		rc = enc_u16(b, packet_id);
	if (rc == IOTCA_OK)
		rc = iotca_buf_append(b, codes, n);
	return enc_undo(b, start, rc);
}
