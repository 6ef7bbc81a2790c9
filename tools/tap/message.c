/*
 * message.c - the bytes iotca-tap reads and writes: a DeviceMessage as a
 * JSON line, the downstream body, and the checks of what an operator
 * types for it.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "iotca/v1/device_message.pb-c.h"
#include "mqtt/mqtt.h"
#include "tap.h"

/* s with every byte that does not start a valid UTF-8 sequence replaced
 * by U+FFFD (jansson refuses strings that are not UTF-8); malloc'd. */
static char *
msg_utf8_clean(const char *s)
{
	size_t n = strlen(s), i = 0, o = 0, k;
	char *out;

	if (iotca_mqtt_utf8_valid(s, n))
		return strdup(s);
	if ((out = malloc(n * 3 + 1)) == NULL)
		return NULL;
	while (i < n) {
		unsigned char c = (unsigned char)s[i];

		k = c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
		if (k <= n - i && iotca_mqtt_utf8_valid(s + i, k)) {
			memcpy(out + o, s + i, k);
			o += k;
			i += k;
		} else {
			memcpy(out + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
		}
	}
	out[o] = '\0';
	return out;
}

/* Sets obj[key] to v (taking it); -1 when v is NULL or on no memory. */
static int
msg_set(json_t *obj, const char *key, json_t *v)
{
	return v == NULL ? -1 : json_object_set_new(obj, key, v);
}

static int
msg_set_str(json_t *obj, const char *key, const char *s)
{
	char *clean = msg_utf8_clean(s != NULL ? s : "");
	int rc;

	if (clean == NULL)
		return -1;
	rc = msg_set(obj, key, json_string(clean));
	free(clean);
	return rc;
}

/* "PUBLISH" for DEVICE_MESSAGE_KIND_PUBLISH; the number when unknown. */
static json_t *
msg_kind(int kind)
{
	static const char prefix[] = "DEVICE_MESSAGE_KIND_";
	const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(
	    &iotca__v1__device_message_kind__descriptor, kind);

	if (v == NULL)
		return json_integer(kind);
	if (strncmp(v->name, prefix, sizeof(prefix) - 1) == 0)
		return json_string(v->name + sizeof(prefix) - 1);
	return json_string(v->name);
}

/* The payload as "payload" (UTF-8 text without NUL) or "payload_b64". */
static int
msg_set_payload(json_t *obj, const ProtobufCBinaryData *p)
{
	char *b64;
	int rc;

	if (p->len == 0 || iotca_mqtt_utf8_valid((const char *)p->data, p->len))
		return msg_set(
		    obj, "payload",
		    json_stringn(p->len ? (const char *)p->data : "", p->len));
	if (p->len > (size_t)INT32_MAX / 4 * 3 - 3)
		return -1;
	if ((b64 = malloc((p->len + 2) / 3 * 4 + 1)) == NULL)
		return -1;
	EVP_EncodeBlock((unsigned char *)b64, p->data, (int)p->len);
	rc = msg_set(obj, "payload_b64", json_string(b64));
	free(b64);
	return rc;
}

/* The fields in proto order. */
static int
msg_fill(json_t *o, const Iotca__V1__DeviceMessage *m)
{
	char id[24];

	/* A message_id past what JSON readers hold exactly as an integer
	 * (2^63 here) goes out as a string of digits rather than wrong. */
	snprintf(id, sizeof(id), "%" PRIu64, m->message_id);
	if (msg_set(o, "kind", msg_kind((int)m->kind)) != 0 ||
	    msg_set_str(o, "edge_id", m->edge_id) != 0 ||
	    msg_set_str(o, "account_id", m->account_id) != 0 ||
	    msg_set_str(o, "product_key", m->product_key) != 0 ||
	    msg_set_str(o, "device_name", m->device_name) != 0 ||
	    msg_set_str(o, "client_id", m->client_id) != 0 ||
	    msg_set_str(o, "topic", m->topic) != 0 ||
	    msg_set_payload(o, &m->payload) != 0 ||
	    msg_set(o, "qos", json_integer(m->qos)) != 0 ||
	    msg_set(o, "message_id",
	            m->message_id <= INT64_MAX
	                ? json_integer((json_int_t)m->message_id)
	                : json_string(id)) != 0 ||
	    msg_set(o, "time_unix_ms", json_integer(m->time_unix_ms)) != 0 ||
	    msg_set_str(o, "reason", m->reason) != 0 ||
	    msg_set_str(o, "peer_address", m->peer_address) != 0 ||
	    msg_set_str(o, "ca_id", m->ca_id) != 0 ||
	    msg_set_str(o, "cert_sn", m->cert_sn) != 0)
		return -1;
	return 0;
}

char *
tap_device_message_json(const uint8_t *body, size_t len, iotca_errbuf *eb)
{
	Iotca__V1__DeviceMessage *m;
	json_t *o = NULL;
	char *line = NULL;

	m = iotca__v1__device_message__unpack(NULL, len, body);
	if (m == NULL) {
		iotca_errbuf_set(eb, IOTCA_EINVAL,
		                 "a message of %zu bytes is not a packed "
		                 "DeviceMessage",
		                 len);
		return NULL;
	}
	if ((o = json_object()) != NULL && msg_fill(o, m) == 0)
		line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (line == NULL)
		iotca_errbuf_set(eb, IOTCA_ENOMEM, "out of memory");
	json_decref(o);
	iotca__v1__device_message__free_unpacked(m, NULL);
	return line;
}

/* ------------------------------------------------ downstream */

static int
msg_is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9');
}

iotca_err
tap_check_product_key(const char *pk, iotca_errbuf *eb)
{
	size_t i, n = strlen(pk);

	for (i = 0; i < n; i++)
		if (!msg_is_alnum(pk[i]))
			break;
	if (n != 11 || i != n)
		return iotca_errbuf_set(
		    eb, IOTCA_EINVAL,
		    "--pk '%s' is not a ProductKey: 11 "
		    "letters and digits (it has %zu "
		    "characters%s)",
		    pk, n, i != n ? ", not all letters and digits" : "");
	return IOTCA_OK;
}

iotca_err
tap_check_device_name(const char *dn, iotca_errbuf *eb)
{
	size_t i, n = strlen(dn);

	for (i = 0; i < n; i++)
		if (!msg_is_alnum(dn[i]) && strchr("-_.@:", dn[i]) == NULL)
			break;
	if (n < 4 || n > 32 || i != n)
		return iotca_errbuf_set(eb, IOTCA_EINVAL,
		                        "--dn '%s' is not a DeviceName: 4-32 "
		                        "characters of letters, digits and "
		                        "- _ . @ :",
		                        dn);
	return IOTCA_OK;
}

iotca_err
tap_check_topic(const char *pk, const char *dn, const char *topic,
                iotca_errbuf *eb)
{
	char own[64], sys[64];
	size_t n = strlen(topic), k;
	const char *prefix[3];

	if (!iotca_mqtt_topic_valid_name(topic, n))
		return iotca_errbuf_set(eb, IOTCA_EINVAL,
		                        "--topic '%s' is not an MQTT topic "
		                        "name: 1-65535 bytes of UTF-8, no '+' "
		                        "or '#'",
		                        topic);
	snprintf(own, sizeof(own), "/%s/%s/", pk, dn);
	snprintf(sys, sizeof(sys), "/sys/%s/%s/", pk, dn);
	prefix[0] = own;
	prefix[1] = sys;
	prefix[2] = "/ext/";
	for (k = 0; k < 3; k++)
		if (n > strlen(prefix[k]) &&
		    strncmp(topic, prefix[k], strlen(prefix[k])) == 0)
			return IOTCA_OK;
	return iotca_errbuf_set(eb, IOTCA_EINVAL,
	                        "--topic '%s' is outside the device's topic "
	                        "space; the edge would drop it. Use "
	                        "%s..., %s... or /ext/...",
	                        topic, own, sys);
}

iotca_err
tap_downstream_body(const char *pk, const char *dn, const char *topic,
                    uint32_t qos, const uint8_t *payload, size_t payload_len,
                    iotca_buf *out, iotca_errbuf *eb)
{
	Iotca__V1__DownstreamMessage m = IOTCA__V1__DOWNSTREAM_MESSAGE__INIT;
	uint8_t *packed = NULL;
	size_t n;
	iotca_err rc;

	if ((rc = tap_check_product_key(pk, eb)) != IOTCA_OK ||
	    (rc = tap_check_device_name(dn, eb)) != IOTCA_OK ||
	    (rc = tap_check_topic(pk, dn, topic, eb)) != IOTCA_OK)
		return rc;
	if (qos > 1)
		return iotca_errbuf_set(eb, IOTCA_EINVAL,
		                        "--qos %u: use 0 or 1", qos);
	m.product_key = (char *)pk;
	m.device_name = (char *)dn;
	m.topic = (char *)topic;
	m.qos = qos;
	m.payload.data = (uint8_t *)payload;
	m.payload.len = payload_len;
	n = iotca__v1__downstream_message__get_packed_size(&m);
	if ((packed = malloc(n > 0 ? n : 1)) == NULL)
		return iotca_errbuf_set(eb, IOTCA_ENOMEM, "out of memory");
	iotca__v1__downstream_message__pack(&m, packed);
	rc = iotca_buf_printf(out, "%s/%s\n", pk, dn);
	if (rc == IOTCA_OK)
		rc = iotca_buf_append(out, packed, n);
	free(packed);
	if (rc != IOTCA_OK)
		return iotca_errbuf_set(eb, rc, "the message is too large");
	return IOTCA_OK;
}
