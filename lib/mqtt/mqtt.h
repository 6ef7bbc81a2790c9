/*
 * mqtt.h - the server side of MQTT 3.1.1 (OASIS mqtt-v3.1.1): an
 * incremental decoder for what clients send, encoders for what a server
 * sends, and the topic name / topic filter rules.
 *
 * Decoding. Bytes go in with iotca_mqtt_feed as they arrive from the
 * socket (one byte at a time or many packets at once); packets come out
 * with iotca_mqtt_next. The decoder holds at most one packet: feed stops
 * consuming at the end of a complete packet until next has handed it out,
 * so a caller loops
 *
 *     while (len > 0) {
 *             rc = iotca_mqtt_feed(d, p, len, &n);  p += n; len -= n;
 *             rc = iotca_mqtt_next(d, &pkt, &eb);
 *             if (rc == IOTCA_OK) handle(&pkt);
 *             else if (rc != IOTCA_ENOENT) close the connection;
 *     }
 *
 * The decoder is strict, as a server must be: every fixed-header flag,
 * length, string and packet identifier is checked, and anything the spec
 * calls malformed or a protocol violation fails with IOTCA_EPROTO and a
 * message saying what ("reserved flags of SUBSCRIBE must be 0010, got
 * 0000"). The size cap is applied as soon as the remaining length is
 * known, before any of the body is buffered. After any failure the
 * decoder stays failed: every later call returns the same code and
 * message, and the caller closes the connection.
 *
 * Memory: decoded strings and payloads point into the decoder's buffer
 * and stay valid until the next iotca_mqtt_feed, iotca_mqtt_next or
 * iotca_mqtt_decoder_destroy. Strings are NOT NUL-terminated. The buffer
 * grows with the packet as its bytes arrive (never past the cap, never
 * ahead of the bytes), is reused for small packets and freed after one
 * over 16 KiB, so an idle connection holds little.
 *
 * Not thread-safe; one connection, one decoder, one thread at a time.
 */
#ifndef IOTCA_MQTT_H
#define IOTCA_MQTT_H

#include <stddef.h>
#include <stdint.h>

#include "buf/buf.h"
#include "err/err.h"

/* The largest remaining length the 4-byte encoding can carry. */
#define IOTCA_MQTT_MAX_REMAINING 268435455u

/* Control packet types (the high nibble of the first byte). */
typedef enum iotca_mqtt_type {
	IOTCA_MQTT_CONNECT = 1,
	IOTCA_MQTT_CONNACK = 2,
	IOTCA_MQTT_PUBLISH = 3,
	IOTCA_MQTT_PUBACK = 4,
	IOTCA_MQTT_PUBREC = 5,
	IOTCA_MQTT_PUBREL = 6,
	IOTCA_MQTT_PUBCOMP = 7,
	IOTCA_MQTT_SUBSCRIBE = 8,
	IOTCA_MQTT_SUBACK = 9,
	IOTCA_MQTT_UNSUBSCRIBE = 10,
	IOTCA_MQTT_UNSUBACK = 11,
	IOTCA_MQTT_PINGREQ = 12,
	IOTCA_MQTT_PINGRESP = 13,
	IOTCA_MQTT_DISCONNECT = 14,
} iotca_mqtt_type;

/* CONNACK return codes. */
enum {
	IOTCA_MQTT_CONNACK_ACCEPTED = 0,
	IOTCA_MQTT_CONNACK_BAD_PROTOCOL = 1,  /* unacceptable protocol level */
	IOTCA_MQTT_CONNACK_BAD_CLIENT_ID = 2, /* identifier rejected */
	IOTCA_MQTT_CONNACK_UNAVAILABLE = 3,
	IOTCA_MQTT_CONNACK_BAD_CREDENTIALS = 4,
	IOTCA_MQTT_CONNACK_NOT_AUTHORIZED = 5,
};

/* The SUBACK return code for a refused subscription. */
#define IOTCA_MQTT_SUBACK_FAILURE 0x80

/* UTF-8 text, checked: valid UTF-8 without U+0000. Not NUL-terminated. */
typedef struct iotca_mqtt_str {
	const char *data; /* NULL when the field is absent */
	size_t len;
} iotca_mqtt_str;

/* Binary data (will message, password, payload), not checked. */
typedef struct iotca_mqtt_bytes {
	const uint8_t *data; /* NULL when absent, and for an empty payload */
	size_t len;
} iotca_mqtt_bytes;

/* CONNECT. Only protocol "MQTT" level 4 comes back as a packet. */
typedef struct iotca_mqtt_connect {
	uint8_t level; /* always 4 */
	int clean_session;
	int will_flag;
	uint8_t will_qos; /* 0 without the will flag */
	int will_retain;  /* 0 without the will flag */
	int username_flag;
	int password_flag; /* only with username_flag */
	uint16_t keep_alive;
	iotca_mqtt_str client_id;  /* may be empty only with clean_session */
	iotca_mqtt_str will_topic; /* a valid topic name with will_flag */
	iotca_mqtt_bytes will_message; /* with will_flag; may be empty */
	iotca_mqtt_str username;       /* with username_flag */
	iotca_mqtt_bytes password;     /* with password_flag */
} iotca_mqtt_connect;

/* PUBLISH, both ways. */
typedef struct iotca_mqtt_publish {
	uint8_t qos; /* 0, 1 or 2 */
	int dup;     /* 0 with QoS 0 */
	int retain;
	uint16_t packet_id;   /* non-zero with QoS 1 and 2, 0 with QoS 0 */
	iotca_mqtt_str topic; /* a valid topic name: no wildcards, not empty */
	iotca_mqtt_bytes payload; /* may be empty */
} iotca_mqtt_publish;

/* One topic filter of a SUBSCRIBE. */
typedef struct iotca_mqtt_sub {
	iotca_mqtt_str filter; /* a valid topic filter */
	uint8_t qos;           /* requested: 0, 1 or 2 */
} iotca_mqtt_sub;

typedef struct iotca_mqtt_subscribe {
	uint16_t packet_id; /* non-zero */
	size_t count;       /* at least 1 */
	const iotca_mqtt_sub *subs;
} iotca_mqtt_subscribe;

typedef struct iotca_mqtt_unsubscribe {
	uint16_t packet_id; /* non-zero */
	size_t count;       /* at least 1 */
	const iotca_mqtt_str *filters;
} iotca_mqtt_unsubscribe;

/* One decoded client packet. PINGREQ and DISCONNECT have no fields. */
typedef struct iotca_mqtt_packet {
	iotca_mqtt_type type;
	uint8_t flags;       /* low nibble of the first byte */
	const uint8_t *body; /* the remaining bytes (NULL when none) */
	size_t body_len;     /* the remaining length */
	size_t size;         /* the whole packet, fixed header included */
	union {
		iotca_mqtt_connect connect;
		iotca_mqtt_publish publish;
		uint16_t
		    packet_id; /* PUBACK, PUBREC, PUBREL, PUBCOMP: non-zero */
		iotca_mqtt_subscribe subscribe;
		iotca_mqtt_unsubscribe unsubscribe;
	};
} iotca_mqtt_packet;

typedef struct iotca_mqtt_decoder iotca_mqtt_decoder;

/*
 * Makes a decoder refusing packets over max_packet bytes (fixed header
 * included; at least 2, at most IOTCA_MQTT_MAX_REMAINING + 5).
 * IOTCA_EINVAL, IOTCA_ENOMEM. *out is written only on success.
 */
iotca_err iotca_mqtt_decoder_create(size_t max_packet,
                                    iotca_mqtt_decoder **out);

/* Frees the decoder. NULL is allowed. */
void iotca_mqtt_decoder_destroy(iotca_mqtt_decoder *d);

/*
 * Takes bytes from data[0..len) up to the end of the next packet and sets
 * *consumed (always <= len) to how many. Takes none while a complete
 * packet waits for iotca_mqtt_next, and none once the decoder has failed.
 * Checks the fixed header as it arrives (type, flags, remaining length,
 * the cap). Returns IOTCA_OK, or the decoder's failure (see
 * iotca_mqtt_next, which reports it too), or IOTCA_EINVAL for bad
 * arguments.
 */
iotca_err iotca_mqtt_feed(iotca_mqtt_decoder *d, const uint8_t *data,
                          size_t len, size_t *consumed);

/*
 * Hands out the packet fed so far.
 *   IOTCA_OK       *out is the packet (valid until the next call);
 *   IOTCA_ENOENT   no complete packet yet: feed more bytes;
 *   IOTCA_EPROTO   malformed packet or protocol violation: close the
 *                  connection without a reply (eb->msg says what);
 *   IOTCA_EPRECOND a CONNECT the server must refuse with a CONNACK:
 *                  send iotca_mqtt_decoder_connack_code(d) (1 for a
 *                  protocol level other than 4, 2 for an empty client
 *                  identifier without clean session), then close;
 *   IOTCA_ENOMEM.
 * The last three are final. eb may be NULL; it is left alone on OK and
 * ENOENT. *out is written only on IOTCA_OK.
 */
iotca_err iotca_mqtt_next(iotca_mqtt_decoder *d, iotca_mqtt_packet *out,
                          iotca_errbuf *eb);

/* The CONNACK return code to answer after IOTCA_EPRECOND, else 0. */
uint8_t iotca_mqtt_decoder_connack_code(const iotca_mqtt_decoder *d);

/* Short name of a packet type ("SUBSCRIBE"); "reserved" for 0 and 15. */
const char *iotca_mqtt_type_name(int type);

/*
 * Encoders. Each appends one whole packet to b, or nothing: on failure b
 * is as it was. IOTCA_EINVAL for arguments the spec forbids (noted per
 * function), IOTCA_ETOOBIG past b's cap or the protocol's size limit,
 * IOTCA_ENOMEM.
 */

/* CONNACK. session_present must be 0 unless return_code is 0; return_code
 * 0..5. */
iotca_err iotca_mqtt_encode_connack(iotca_buf *b, int session_present,
                                    uint8_t return_code);

/* PUBLISH. The topic must be a valid topic name, qos 0..2, packet_id
 * non-zero with QoS > 0 (ignored with QoS 0), dup 0 with QoS 0. */
iotca_err iotca_mqtt_encode_publish(iotca_buf *b, const iotca_mqtt_publish *p);

/* PUBACK, PUBREC, PUBREL, PUBCOMP or UNSUBACK (type) for a non-zero
 * packet_id. */
iotca_err iotca_mqtt_encode_ack(iotca_buf *b, iotca_mqtt_type type,
                                uint16_t packet_id);

/* SUBACK with n >= 1 return codes, each 0, 1, 2 or 0x80. */
iotca_err iotca_mqtt_encode_suback(iotca_buf *b, uint16_t packet_id,
                                   const uint8_t *codes, size_t n);

/* PINGRESP. */
iotca_err iotca_mqtt_encode_pingresp(iotca_buf *b);

/*
 * Topics (spec 4.7). Strings are (pointer, length), not NUL-terminated.
 */

/* 1 when s is valid UTF-8 without U+0000 (surrogates, overlong forms and
 * code points past U+10FFFF are not valid), else 0. */
int iotca_mqtt_utf8_valid(const char *s, size_t len);

/* 1 when s may name a topic in a PUBLISH: 1..65535 bytes of valid UTF-8,
 * no '+' and no '#'. */
int iotca_mqtt_topic_valid_name(const char *s, size_t len);

/* 1 when s is a valid topic filter: 1..65535 bytes of valid UTF-8, '#'
 * only as the last level and alone in it, '+' alone in its level. */
int iotca_mqtt_filter_valid(const char *s, size_t len);

/* 1 when the topic filter matches the topic name, else 0. Both must be
 * valid (0 otherwise). A filter starting with a wildcard does not match a
 * topic starting with '$'; "a/#" matches "a". */
int iotca_mqtt_filter_match(const char *filter, size_t filter_len,
                            const char *topic, size_t topic_len);

#endif /* IOTCA_MQTT_H */
