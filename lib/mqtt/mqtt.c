/*
 * mqtt.c - the MQTT 3.1.1 decoder and the topic rules.
 *
 * The decoder has two phases per packet. The fixed header (1 type byte
 * and 1..4 remaining-length bytes) is kept in hdr[] and checked byte by
 * byte as it arrives: the type and its flags on the first byte, the cap
 * and the fixed lengths once the remaining length is known. Then exactly
 * that many bytes are appended to body (an iotca_buf capped at the packet
 * limit) and the packet is ready; iotca_mqtt_next decodes body with a
 * bounds-checked cursor. Handing a packet out marks it delivered; the
 * next call of feed or next forgets it.
 *
 * Encoders are in mqtt_encode.c.
 */
#include "mqtt/mqtt.h"

#include <stdlib.h>
#include <string.h>

#define MQTT_HDR_MAX 5 /* type byte + 4 length bytes */
/* A body buffer bigger than this is freed once its packet is done, so an
 * idle connection does not keep its largest packet's memory. */
#define MQTT_KEEP_BYTES 16384

struct iotca_mqtt_decoder {
	size_t max;                /* whole-packet cap */
	uint8_t hdr[MQTT_HDR_MAX]; /* fixed header so far */
	size_t hdr_len;
	int have_len;         /* remaining length complete */
	size_t remaining;     /* so far / final when have_len */
	iotca_buf body;       /* the remaining bytes, cap max */
	int ready;            /* a complete packet is held */
	int delivered;        /* ... and next() has handed it out */
	iotca_err failed;     /* IOTCA_OK while usable */
	uint8_t connack;      /* with IOTCA_EPRECOND */
	iotca_errbuf err;     /* why it failed */
	iotca_mqtt_sub *subs; /* SUBSCRIBE entries, reused */
	size_t subs_size;
	iotca_mqtt_str *filters; /* UNSUBSCRIBE entries, reused */
	size_t filters_size;
};

/* A bounds-checked reader over one packet body. */
typedef struct mqtt_cur {
	const uint8_t *p;
	size_t len;
	size_t pos;
} mqtt_cur;

static const char *const mqtt_names[16] = {
    "reserved", "CONNECT",  "CONNACK",    "PUBLISH", "PUBACK",      "PUBREC",
    "PUBREL",   "PUBCOMP",  "SUBSCRIBE",  "SUBACK",  "UNSUBSCRIBE", "UNSUBACK",
    "PINGREQ",  "PINGRESP", "DISCONNECT", "reserved"};

const char *
iotca_mqtt_type_name(int type)
{
	if (type < 0 || type > 15)
		return "reserved";
	return mqtt_names[type];
}

/* ---- topics ---- */

/* Length of the UTF-8 sequence led by c and its smallest code point;
 * 0 for a byte that cannot lead one. */
static size_t
utf8_lead(uint8_t c, uint32_t *cp, uint32_t *min)
{
	if ((c & 0xE0) == 0xC0) {
		*cp = c & 0x1Fu;
		*min = 0x80;
		return 2;
	}
	if ((c & 0xF0) == 0xE0) {
		*cp = c & 0x0Fu;
		*min = 0x800;
		return 3;
	}
	if ((c & 0xF8) == 0xF0) {
		*cp = c & 0x07u;
		*min = 0x10000;
		return 4;
	}
	return 0;
}

int
iotca_mqtt_utf8_valid(const char *s, size_t len)
{
	const uint8_t *u = (const uint8_t *)s;
	size_t i = 0, k, n;
	uint32_t cp, min;

	while (i < len) {
		if (u[i] == 0)
			return 0;
		if (u[i] < 0x80) {
			i++;
			continue;
		}
		if ((n = utf8_lead(u[i], &cp, &min)) == 0 || len - i < n)
			return 0;
		for (k = 1; k < n; k++) {
			if ((u[i + k] & 0xC0) != 0x80)
				return 0;
			cp = (cp << 6) | (u[i + k] & 0x3Fu);
		}
		if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return 0;
		i += n;
	}
	return 1;
}

/* End of the level of s that starts at i: the next '/' or len. */
static size_t
topic_level_end(const char *s, size_t len, size_t i)
{
	while (i < len && s[i] != '/')
		i++;
	return i;
}

/* Why s is not a valid filter (without its UTF-8), or NULL. */
static const char *
filter_problem(const char *s, size_t len)
{
	size_t i;

	if (len == 0)
		return "is empty";
	if (len > 65535)
		return "is longer than 65535 bytes";
	for (i = 0; i < len; i++) {
		int alone = (i == 0 || s[i - 1] == '/') &&
		            (i + 1 == len || s[i + 1] == '/');

		if (s[i] == '#' && (!alone || i + 1 != len))
			return "has a '#' that is not the whole last level";
		if (s[i] == '+' && !alone)
			return "has a '+' that is not a whole level";
	}
	return NULL;
}

int
iotca_mqtt_topic_valid_name(const char *s, size_t len)
{
	if (len == 0 || len > 65535 || !iotca_mqtt_utf8_valid(s, len))
		return 0;
	return memchr(s, '+', len) == NULL && memchr(s, '#', len) == NULL;
}

int
iotca_mqtt_filter_valid(const char *s, size_t len)
{
	return filter_problem(s, len) == NULL && iotca_mqtt_utf8_valid(s, len);
}

/* The level matching of iotca_mqtt_filter_match, on valid input. */
static int
filter_match_levels(const char *f, size_t flen, const char *t, size_t tlen)
{
	size_t fi = 0, ti = 0;

	for (;;) {
		size_t fe = topic_level_end(f, flen, fi);
		size_t te = topic_level_end(t, tlen, ti);
		size_t fl = fe - fi;

		if (fl == 1 && f[fi] == '#')
			return 1;
		if (!(fl == 1 && f[fi] == '+') &&
		    (fl != te - ti || memcmp(f + fi, t + ti, fl) != 0))
			return 0;
		if (fe == flen)
			return te == tlen;
		if (te == tlen) /* "a/#" matches "a" */
			return flen - fe == 2 && f[fe + 1] == '#';
		fi = fe + 1;
		ti = te + 1;
	}
}

int
iotca_mqtt_filter_match(const char *filter, size_t filter_len,
                        const char *topic, size_t topic_len)
{
	if (!iotca_mqtt_filter_valid(filter, filter_len) ||
	    !iotca_mqtt_topic_valid_name(topic, topic_len))
		return 0;
	if (topic[0] == '$' && (filter[0] == '+' || filter[0] == '#'))
		return 0;
	return filter_match_levels(filter, filter_len, topic, topic_len);
}

/* ---- decoder state ---- */

iotca_err
iotca_mqtt_decoder_create(size_t max_packet, iotca_mqtt_decoder **out)
{
	iotca_mqtt_decoder *d;

	if (out == NULL || max_packet < 2 ||
	    max_packet > (size_t)IOTCA_MQTT_MAX_REMAINING + MQTT_HDR_MAX)
		return IOTCA_EINVAL;
	if ((d = calloc(1, sizeof(*d))) == NULL)
		return IOTCA_ENOMEM;
	d->max = max_packet;
	iotca_buf_init(&d->body, max_packet);
	*out = d;
	return IOTCA_OK;
}

void
iotca_mqtt_decoder_destroy(iotca_mqtt_decoder *d)
{
	if (d == NULL)
		return;
	iotca_buf_free(&d->body);
	free(d->subs);
	free(d->filters);
	free(d);
}

uint8_t
iotca_mqtt_decoder_connack_code(const iotca_mqtt_decoder *d)
{
	return d != NULL && d->failed == IOTCA_EPRECOND ? d->connack : 0;
}

/* Forgets a packet already handed out, ready for the next one. */
static void
decoder_release(iotca_mqtt_decoder *d)
{
	if (!d->delivered)
		return;
	d->delivered = 0;
	d->ready = 0;
	d->have_len = 0;
	d->hdr_len = 0;
	d->remaining = 0;
	if (d->body.size > MQTT_KEEP_BYTES)
		iotca_buf_free(&d->body);
	else
		iotca_buf_reset(&d->body);
}

/* Puts the decoder in its final failed state; returns code. */
static iotca_err
decoder_fail(iotca_mqtt_decoder *d, iotca_err code)
{
	d->failed = code;
	d->err.code = code;
	return code;
}

/* ---- fixed header ---- */

/* The flags a client must send with type t, or -1 when a client may not
 * send t at all. PUBLISH (any flags) is checked apart. */
static int
header_client_flags(unsigned t)
{
	switch (t) {
	case IOTCA_MQTT_PUBREL:
	case IOTCA_MQTT_SUBSCRIBE:
	case IOTCA_MQTT_UNSUBSCRIBE:
		return 2;
	case IOTCA_MQTT_CONNECT:
	case IOTCA_MQTT_PUBACK:
	case IOTCA_MQTT_PUBREC:
	case IOTCA_MQTT_PUBCOMP:
	case IOTCA_MQTT_PINGREQ:
	case IOTCA_MQTT_DISCONNECT:
		return 0;
	default:
		return -1;
	}
}

/* The four flag bits as "0010". */
static void
header_flag_bits(unsigned f, char out[5])
{
	int i;

	for (i = 0; i < 4; i++)
		out[i] = (char)('0' + ((f >> (3 - i)) & 1u));
	out[4] = '\0';
}

/* Checks the first byte: a type a client may send, with its flags. */
static iotca_err
header_check_type(iotca_mqtt_decoder *d, uint8_t b)
{
	unsigned t = b >> 4, f = b & 0x0Fu, qos = (f >> 1) & 3u;
	int want = header_client_flags(t);
	char got[5], need[5];

	if (t == IOTCA_MQTT_PUBLISH) {
		if (qos == 3)
			return iotca_errbuf_set(&d->err, IOTCA_EPROTO,
			                        "QoS of PUBLISH must not be 3");
		if (qos == 0 && (f & 8u))
			return iotca_errbuf_set(
			    &d->err, IOTCA_EPROTO,
			    "DUP of a QoS 0 PUBLISH must be 0");
		return IOTCA_OK;
	}
	if (want < 0)
		return iotca_errbuf_set(&d->err, IOTCA_EPROTO,
		                        "packet type %u (%s) may not be sent "
		                        "by a client",
		                        t, iotca_mqtt_type_name((int)t));
	if (f == (unsigned)want)
		return IOTCA_OK;
	header_flag_bits((unsigned)want, need);
	header_flag_bits(f, got);
	return iotca_errbuf_set(&d->err, IOTCA_EPROTO,
	                        "reserved flags of %s must be %s, got %s",
	                        iotca_mqtt_type_name((int)t), need, got);
}

/* The remaining length a type must have, or -1 when it varies. */
static long
header_fixed_len(unsigned t)
{
	switch (t) {
	case IOTCA_MQTT_PUBACK:
	case IOTCA_MQTT_PUBREC:
	case IOTCA_MQTT_PUBREL:
	case IOTCA_MQTT_PUBCOMP:
		return 2;
	case IOTCA_MQTT_PINGREQ:
	case IOTCA_MQTT_DISCONNECT:
		return 0;
	default:
		return -1;
	}
}

/* Checks a complete remaining length: the cap and the fixed lengths. */
static iotca_err
header_check_len(iotca_mqtt_decoder *d)
{
	unsigned t = d->hdr[0] >> 4;
	long fixed = header_fixed_len(t);
	size_t total = d->hdr_len + d->remaining;

	if (total > d->max)
		return iotca_errbuf_set(&d->err, IOTCA_EPROTO,
		                        "packet of %zu bytes exceeds the limit "
		                        "of %zu",
		                        total, d->max);
	if (fixed >= 0 && d->remaining != (size_t)fixed)
		return iotca_errbuf_set(&d->err, IOTCA_EPROTO,
		                        "remaining length of %s must be %ld, "
		                        "got %zu",
		                        iotca_mqtt_type_name((int)t), fixed,
		                        d->remaining);
	return IOTCA_OK;
}

/* Takes one fixed-header byte. */
static iotca_err
header_take(iotca_mqtt_decoder *d, uint8_t b)
{
	size_t i = d->hdr_len;

	d->hdr[d->hdr_len++] = b;
	if (i == 0)
		return header_check_type(d, b);
	d->remaining |= (size_t)(b & 0x7Fu) << (7 * (i - 1));
	if (b & 0x80u) {
		if (d->hdr_len == MQTT_HDR_MAX)
			return iotca_errbuf_set(&d->err, IOTCA_EPROTO,
			                        "remaining length uses more "
			                        "than 4 bytes");
		return IOTCA_OK;
	}
	d->have_len = 1;
	return header_check_len(d);
}

/* Takes body bytes from data[0..len); returns how many. */
static size_t
body_take(iotca_mqtt_decoder *d, const uint8_t *data, size_t len, iotca_err *rc)
{
	size_t want = d->remaining - d->body.len;
	size_t n = len < want ? len : want;

	*rc = iotca_buf_append(&d->body, data, n);
	if (*rc != IOTCA_OK) {
		iotca_errbuf_set(
		    &d->err, IOTCA_ENOMEM,
		    "out of memory buffering a packet of %zu bytes",
		    d->remaining);
		*rc = IOTCA_ENOMEM;
		return 0;
	}
	return n;
}

iotca_err
iotca_mqtt_feed(iotca_mqtt_decoder *d, const uint8_t *data, size_t len,
                size_t *consumed)
{
	iotca_err rc = IOTCA_OK;
	size_t n = 0;

	if (d == NULL || consumed == NULL || (data == NULL && len > 0))
		return IOTCA_EINVAL;
	*consumed = 0;
	decoder_release(d);
	while (!d->failed && !d->ready) {
		if (!d->have_len && n < len)
			rc = header_take(d, data[n++]);
		else if (d->have_len && d->body.len < d->remaining && n < len)
			n += body_take(d, data + n, len - n, &rc);
		else if (d->have_len && d->body.len == d->remaining)
			d->ready = 1;
		else
			break;
		if (rc != IOTCA_OK)
			decoder_fail(d, rc);
	}
	*consumed = n;
	return d->failed;
}

/* ---- body cursor ---- */

static int
cur_u8(mqtt_cur *c, uint8_t *v)
{
	if (c->len - c->pos < 1)
		return 0;
	*v = c->p[c->pos++];
	return 1;
}

static int
cur_u16(mqtt_cur *c, uint16_t *v)
{
	if (c->len - c->pos < 2)
		return 0;
	*v = (uint16_t)((c->p[c->pos] << 8) | c->p[c->pos + 1]);
	c->pos += 2;
	return 1;
}

/* A length-prefixed field, binary. */
static int
cur_field(mqtt_cur *c, iotca_mqtt_bytes *out)
{
	uint16_t n;

	if (!cur_u16(c, &n) || c->len - c->pos < n)
		return 0;
	out->data = c->p + c->pos;
	out->len = n;
	c->pos += n;
	return 1;
}

/* Malformed: "<what> <why>". */
static iotca_err
body_bad(iotca_mqtt_decoder *d, const char *what, const char *why)
{
	return iotca_errbuf_set(&d->err, IOTCA_EPROTO, "%s %s", what, why);
}

/* A length-prefixed binary field called what. */
static iotca_err
cur_bytes(iotca_mqtt_decoder *d, mqtt_cur *c, const char *what,
          iotca_mqtt_bytes *out)
{
	if (!cur_field(c, out))
		return body_bad(d, what, "runs past the end of the packet");
	return IOTCA_OK;
}

/* A length-prefixed UTF-8 string called what. */
static iotca_err
cur_str(iotca_mqtt_decoder *d, mqtt_cur *c, const char *what,
        iotca_mqtt_str *out)
{
	iotca_mqtt_bytes b;

	if (!cur_field(c, &b))
		return body_bad(d, what, "runs past the end of the packet");
	if (b.len > 0 && memchr(b.data, 0, b.len) != NULL)
		return body_bad(d, what, "contains U+0000");
	if (!iotca_mqtt_utf8_valid((const char *)b.data, b.len))
		return body_bad(d, what, "is not valid UTF-8");
	out->data = (const char *)b.data;
	out->len = b.len;
	return IOTCA_OK;
}

/* A topic name called what: a string, not empty, no wildcards. */
static iotca_err
cur_topic(iotca_mqtt_decoder *d, mqtt_cur *c, const char *what,
          iotca_mqtt_str *out)
{
	iotca_err rc = cur_str(d, c, what, out);

	if (rc != IOTCA_OK)
		return rc;
	if (out->len == 0)
		return body_bad(d, what, "is empty");
	if (!iotca_mqtt_topic_valid_name(out->data, out->len))
		return body_bad(d, what, "contains a wildcard ('+' or '#')");
	return IOTCA_OK;
}

/* A non-zero packet identifier of a packet called what. */
static iotca_err
cur_packet_id(iotca_mqtt_decoder *d, mqtt_cur *c, const char *what,
              uint16_t *out)
{
	if (!cur_u16(c, out))
		return body_bad(d, what, "has no packet identifier");
	if (*out == 0)
		return iotca_errbuf_set(&d->err, IOTCA_EPROTO,
		                        "packet identifier of %s must not be 0",
		                        what);
	return IOTCA_OK;
}

/* Nothing may follow the last field. */
static iotca_err
cur_end(iotca_mqtt_decoder *d, const mqtt_cur *c, const char *what)
{
	if (c->pos == c->len)
		return IOTCA_OK;
	return iotca_errbuf_set(&d->err, IOTCA_EPROTO,
	                        "%zu unexpected bytes at the end of %s",
	                        c->len - c->pos, what);
}

/* ---- packets ---- */

/* Protocol name and level: only "MQTT" 4 goes on. */
static iotca_err
connect_protocol(iotca_mqtt_decoder *d, mqtt_cur *c, uint8_t *level)
{
	iotca_mqtt_bytes name;

	if (!cur_field(c, &name) || !cur_u8(c, level))
		return body_bad(d, "CONNECT", "is too short");
	if (name.len == 4 && memcmp(name.data, "MQTT", 4) == 0) {
		if (*level == 4)
			return IOTCA_OK;
	} else if (!(name.len == 6 && memcmp(name.data, "MQIsdp", 6) == 0)) {
		return body_bad(d, "CONNECT", "protocol name must be \"MQTT\"");
	}
	d->connack = IOTCA_MQTT_CONNACK_BAD_PROTOCOL;
	return iotca_errbuf_set(&d->err, IOTCA_EPRECOND,
	                        "protocol level %u is not supported, only 4 "
	                        "(MQTT 3.1.1); answer CONNACK 1",
	                        *level);
}

/* The connect flags byte and what it implies. */
static iotca_err
connect_flags(iotca_mqtt_decoder *d, uint8_t f, iotca_mqtt_connect *p)
{
	p->clean_session = (f >> 1) & 1;
	p->will_flag = (f >> 2) & 1;
	p->will_qos = (uint8_t)((f >> 3) & 3);
	p->will_retain = (f >> 5) & 1;
	p->password_flag = (f >> 6) & 1;
	p->username_flag = (f >> 7) & 1;
	if (f & 1)
		return body_bad(d, "CONNECT", "reserved flag must be 0");
	if (!p->will_flag && (p->will_qos || p->will_retain))
		return body_bad(d, "CONNECT",
		                "will QoS and will retain must be 0 without "
		                "the will flag");
	if (p->will_qos == 3)
		return body_bad(d, "CONNECT", "will QoS must not be 3");
	if (p->password_flag && !p->username_flag)
		return body_bad(d, "CONNECT",
		                "password flag set without the user name flag");
	return IOTCA_OK;
}

/* The payload: client id, will, user name, password. */
static iotca_err
connect_payload(iotca_mqtt_decoder *d, mqtt_cur *c, iotca_mqtt_connect *p)
{
	iotca_err rc =
	    cur_str(d, c, "CONNECT client identifier", &p->client_id);

	if (rc == IOTCA_OK && p->will_flag)
		rc = cur_topic(d, c, "CONNECT will topic", &p->will_topic);
	if (rc == IOTCA_OK && p->will_flag)
		rc = cur_bytes(d, c, "CONNECT will message", &p->will_message);
	if (rc == IOTCA_OK && p->username_flag)
		rc = cur_str(d, c, "CONNECT user name", &p->username);
	if (rc == IOTCA_OK && p->password_flag)
		rc = cur_bytes(d, c, "CONNECT password", &p->password);
	return rc;
}

static iotca_err
decode_connect(iotca_mqtt_decoder *d, mqtt_cur *c, iotca_mqtt_connect *p)
{
	uint8_t flags;
	iotca_err rc;

	if ((rc = connect_protocol(d, c, &p->level)) != IOTCA_OK)
		return rc;
	if (!cur_u8(c, &flags) || !cur_u16(c, &p->keep_alive))
		return body_bad(d, "CONNECT", "is too short");
	if ((rc = connect_flags(d, flags, p)) != IOTCA_OK ||
	    (rc = connect_payload(d, c, p)) != IOTCA_OK ||
	    (rc = cur_end(d, c, "CONNECT")) != IOTCA_OK)
		return rc;
	if (p->client_id.len == 0 && !p->clean_session) {
		d->connack = IOTCA_MQTT_CONNACK_BAD_CLIENT_ID;
		return iotca_errbuf_set(
		    &d->err, IOTCA_EPRECOND,
		    "an empty client identifier needs clean "
		    "session 1; answer CONNACK 2");
	}
	return IOTCA_OK;
}

static iotca_err
decode_publish(iotca_mqtt_decoder *d, mqtt_cur *c, uint8_t flags,
               iotca_mqtt_publish *p)
{
	iotca_err rc;

	p->qos = (uint8_t)((flags >> 1) & 3);
	p->dup = (flags >> 3) & 1;
	p->retain = flags & 1;
	if ((rc = cur_topic(d, c, "PUBLISH topic name", &p->topic)) != IOTCA_OK)
		return rc;
	if (p->qos > 0 &&
	    (rc = cur_packet_id(d, c, "PUBLISH", &p->packet_id)) != IOTCA_OK)
		return rc;
	p->payload.len = c->len - c->pos;
	p->payload.data = p->payload.len ? c->p + c->pos : NULL;
	c->pos = c->len;
	return IOTCA_OK;
}

/* arr (capacity *size entries of each bytes) with room for n entries,
 * or NULL (arr untouched) when out of memory. */
static void *
decoder_grow(void *arr, size_t *size, size_t n, size_t each)
{
	size_t want = *size ? *size : 8;
	void *p;

	if (n <= *size)
		return arr;
	while (want < n)
		want *= 2;
	if ((p = realloc(arr, want * each)) != NULL)
		*size = want;
	return p;
}

/* Out of memory for n topic filters. */
static iotca_err
decoder_nomem(iotca_mqtt_decoder *d, size_t n)
{
	return iotca_errbuf_set(&d->err, IOTCA_ENOMEM,
	                        "out of memory for %zu topic filters", n);
}

/* One topic filter of a SUBSCRIBE or UNSUBSCRIBE called what. */
static iotca_err
cur_filter(iotca_mqtt_decoder *d, mqtt_cur *c, const char *what, size_t i,
           iotca_mqtt_str *out)
{
	const char *why;
	iotca_err rc = cur_str(d, c, what, out);

	if (rc != IOTCA_OK)
		return rc;
	if ((why = filter_problem(out->data, out->len)) != NULL)
		return iotca_errbuf_set(&d->err, IOTCA_EPROTO, "%s %zu %s",
		                        what, i + 1, why);
	return IOTCA_OK;
}

/* One requested QoS byte. */
static iotca_err
cur_sub_qos(iotca_mqtt_decoder *d, mqtt_cur *c, size_t i, uint8_t *qos)
{
	if (!cur_u8(c, qos))
		return iotca_errbuf_set(&d->err, IOTCA_EPROTO,
		                        "SUBSCRIBE topic filter %zu has no QoS",
		                        i + 1);
	if (*qos > 2)
		return iotca_errbuf_set(
		    &d->err, IOTCA_EPROTO,
		    "SUBSCRIBE requested QoS %zu must be 0, "
		    "1 or 2 with reserved bits 0, got 0x%02x",
		    i + 1, *qos);
	return IOTCA_OK;
}

static iotca_err
decode_subscribe(iotca_mqtt_decoder *d, mqtt_cur *c, iotca_mqtt_subscribe *p)
{
	iotca_err rc = cur_packet_id(d, c, "SUBSCRIBE", &p->packet_id);
	size_t n = 0;

	while (rc == IOTCA_OK && c->pos < c->len) {
		iotca_mqtt_sub *a =
		    decoder_grow(d->subs, &d->subs_size, n + 1, sizeof(*a));

		if (a == NULL)
			return decoder_nomem(d, n + 1);
		d->subs = a;
		rc = cur_filter(d, c, "SUBSCRIBE topic filter", n,
		                &d->subs[n].filter);
		if (rc == IOTCA_OK)
			rc = cur_sub_qos(d, c, n, &d->subs[n].qos);
		n++;
	}
	if (rc == IOTCA_OK && n == 0)
		return body_bad(d, "SUBSCRIBE", "has no topic filter");
	p->count = n;
	p->subs = d->subs;
	return rc;
}

static iotca_err
decode_unsubscribe(iotca_mqtt_decoder *d, mqtt_cur *c,
                   iotca_mqtt_unsubscribe *p)
{
	iotca_err rc = cur_packet_id(d, c, "UNSUBSCRIBE", &p->packet_id);
	size_t n = 0;

	while (rc == IOTCA_OK && c->pos < c->len) {
		iotca_mqtt_str *a = decoder_grow(d->filters, &d->filters_size,
		                                 n + 1, sizeof(*a));

		if (a == NULL)
			return decoder_nomem(d, n + 1);
		d->filters = a;
		rc = cur_filter(d, c, "UNSUBSCRIBE topic filter", n,
		                &d->filters[n]);
		n++;
	}
	if (rc == IOTCA_OK && n == 0)
		return body_bad(d, "UNSUBSCRIBE", "has no topic filter");
	p->count = n;
	p->filters = d->filters;
	return rc;
}

/* Decodes the held packet into *p. */
static iotca_err
decode_packet(iotca_mqtt_decoder *d, iotca_mqtt_packet *p)
{
	mqtt_cur c = {(const uint8_t *)d->body.data, d->body.len, 0};
	unsigned t = d->hdr[0] >> 4;
	const char *name = iotca_mqtt_type_name((int)t);
	iotca_err rc = IOTCA_OK;

	memset(p, 0, sizeof(*p));
	p->type = (iotca_mqtt_type)t;
	p->flags = d->hdr[0] & 0x0Fu;
	p->body = d->body.len ? c.p : NULL;
	p->body_len = d->body.len;
	p->size = d->hdr_len + d->body.len;
	switch (t) {
	case IOTCA_MQTT_CONNECT:
		return decode_connect(d, &c, &p->connect);
	case IOTCA_MQTT_PUBLISH:
		return decode_publish(d, &c, p->flags, &p->publish);
	case IOTCA_MQTT_PUBACK:
	case IOTCA_MQTT_PUBREC:
	case IOTCA_MQTT_PUBREL:
	case IOTCA_MQTT_PUBCOMP:
		rc = cur_packet_id(d, &c, name, &p->packet_id);
		break;
	case IOTCA_MQTT_SUBSCRIBE:
		return decode_subscribe(d, &c, &p->subscribe);
	case IOTCA_MQTT_UNSUBSCRIBE:
		return decode_unsubscribe(d, &c, &p->unsubscribe);
	default: /* PINGREQ, DISCONNECT: the header said it all */
		break;
	}
	return rc != IOTCA_OK ? rc : cur_end(d, &c, name);
}

/* Copies the decoder's failure to eb and returns it. */
static iotca_err
decoder_report(const iotca_mqtt_decoder *d, iotca_errbuf *eb)
{
	if (eb != NULL)
		*eb = d->err;
	return d->failed;
}

iotca_err
iotca_mqtt_next(iotca_mqtt_decoder *d, iotca_mqtt_packet *out, iotca_errbuf *eb)
{
	iotca_mqtt_packet p;
	iotca_err rc;

	if (d == NULL || out == NULL)
		return iotca_errbuf_set(eb, IOTCA_EINVAL,
		                        "no decoder or packet");
	decoder_release(d);
	if (d->failed)
		return decoder_report(d, eb);
	if (!d->ready)
		return IOTCA_ENOENT;
	if ((rc = decode_packet(d, &p)) != IOTCA_OK) {
		decoder_fail(d, rc);
		return decoder_report(d, eb);
	}
	d->delivered = 1;
	*out = p;
	return IOTCA_OK;
}
