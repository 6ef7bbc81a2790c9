/*
 * test_mqtt.c - lib/mqtt: every client packet type decoded from
 * spec-exact bytes (some captured from mosquitto_pub/mosquitto_sub 2.0),
 * chunking (byte at a time == whole buffer == several packets per
 * buffer), remaining-length boundaries and the size cap, every
 * reserved-flag rule, strings, CONNECT variants, the encoders checked by
 * a reference decoder written here, and topic name/filter tables.
 *
 * Input is copied into a malloc'd buffer of exactly its size before it is
 * fed, so under ASan a read past the end is caught.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf/buf.h"
#include "mqtt/mqtt.h"
#include "test.h"

/* A byte string literal and its length (without the literal's NUL). */
#define B(s) (const uint8_t *)(s), sizeof(s) - 1

#define CAP 4096

/* The decoder of the current test, destroyed by dt_done. */
static iotca_mqtt_decoder *dt;
static uint8_t *dt_copy;

static void
dt_done(void)
{
	iotca_mqtt_decoder_destroy(dt);
	free(dt_copy);
	dt = NULL;
	dt_copy = NULL;
}

/* Feeds data whole to a fresh decoder capped at cap and takes one packet.
 * *consumed gets what feed took. */
static iotca_err
dt_decode_cap(const uint8_t *data, size_t n, size_t cap, iotca_mqtt_packet *p,
              iotca_errbuf *eb, size_t *consumed)
{
	size_t used = 0;

	dt_done();
	iotca_errbuf_clear(eb);
	if (iotca_mqtt_decoder_create(cap, &dt) != IOTCA_OK ||
	    (dt_copy = malloc(n ? n : 1)) == NULL)
		return IOTCA_EINTERNAL;
	if (n > 0)
		memcpy(dt_copy, data, n);
	iotca_mqtt_feed(dt, dt_copy, n, &used);
	if (consumed != NULL)
		*consumed = used;
	return iotca_mqtt_next(dt, p, eb);
}

static iotca_err
dt_decode(const uint8_t *data, size_t n, iotca_mqtt_packet *p, iotca_errbuf *eb)
{
	return dt_decode_cap(data, n, CAP, p, eb, NULL);
}

/* 1 when s (len bytes) equals the C string want. */
static int
str_is(iotca_mqtt_str s, const char *want)
{
	size_t n = strlen(want);

	return s.len == n && (n == 0 || memcmp(s.data, want, n) == 0);
}

static int
bytes_is(iotca_mqtt_bytes s, const char *want)
{
	size_t n = strlen(want);

	return s.len == n && (n == 0 || memcmp(s.data, want, n) == 0);
}

/* Checks that data fails with code and exactly msg. */
static void
check_fails(const uint8_t *data, size_t n, iotca_err code, const char *msg)
{
	iotca_mqtt_packet p;
	iotca_errbuf eb;
	iotca_err rc = dt_decode(data, n, &p, &eb);

	CHECK_EQ_INT(rc, code);
	CHECK_EQ_INT(eb.code, code);
	CHECK_EQ_STR(eb.msg, msg);
	dt_done();
}

#define FAILS(lit, msg) check_fails(B(lit), IOTCA_EPROTO, msg)

/* ---- CONNECT ---- */

static void
test_connect_all_fields(void)
{
	/* will QoS 1 + retain, clean session, user name and password. */
	static const char pkt[] = "\x10\x27\x00\x04MQTT\x04\xee\x00\x3c"
	                          "\x00\x03"
	                          "cid"
	                          "\x00\x05/w/t1"
	                          "\x00\x03"
	                          "bye"
	                          "\x00\x04user"
	                          "\x00\x04\x00\xffpw";
	iotca_mqtt_packet p;
	iotca_errbuf eb;

	REQUIRE(dt_decode(B(pkt), &p, &eb) == IOTCA_OK);
	CHECK_EQ_INT(p.type, IOTCA_MQTT_CONNECT);
	CHECK_EQ_INT(p.size, sizeof(pkt) - 1);
	CHECK_EQ_INT(p.body_len, 0x27);
	CHECK_EQ_INT(p.connect.level, 4);
	CHECK_EQ_INT(p.connect.clean_session, 1);
	CHECK_EQ_INT(p.connect.will_flag, 1);
	CHECK_EQ_INT(p.connect.will_qos, 1);
	CHECK_EQ_INT(p.connect.will_retain, 1);
	CHECK_EQ_INT(p.connect.username_flag, 1);
	CHECK_EQ_INT(p.connect.password_flag, 1);
	CHECK_EQ_INT(p.connect.keep_alive, 60);
	CHECK(str_is(p.connect.client_id, "cid"));
	CHECK(str_is(p.connect.will_topic, "/w/t1"));
	CHECK(bytes_is(p.connect.will_message, "bye"));
	CHECK(str_is(p.connect.username, "user"));
	CHECK_EQ_INT(p.connect.password.len, 4);
	CHECK(memcmp(p.connect.password.data, "\x00\xffpw", 4) == 0);
	/* Later calls: nothing more. */
	CHECK_EQ_INT(iotca_mqtt_next(dt, &p, &eb), IOTCA_ENOENT);
	dt_done();
}

static void
test_connect_mosquitto_pub(void)
{
	/* mosquitto_pub -i pub-q0 -t sensors/temp -m '{"t":21.5}' */
	iotca_mqtt_packet p;
	iotca_errbuf eb;

	REQUIRE(dt_decode(B("\x10\x12\x00\x04MQTT\x04\x02\x00\x3c\x00\x06"
	                    "pub-q0"),
	                  &p, &eb) == IOTCA_OK);
	CHECK(str_is(p.connect.client_id, "pub-q0"));
	CHECK_EQ_INT(p.connect.clean_session, 1);
	CHECK_EQ_INT(p.connect.will_flag, 0);
	CHECK_EQ_INT(p.connect.username_flag, 0);
	CHECK(p.connect.username.data == NULL);
	CHECK(p.connect.will_topic.data == NULL);
	CHECK_EQ_INT(p.connect.keep_alive, 60);
	dt_done();
}

static void
test_connect_alibaba_client_id(void)
{
	iotca_mqtt_packet p;
	iotca_errbuf eb;

	REQUIRE(dt_decode(B("\x10\x22\x00\x04MQTT\x04\x02\x00\x3c\x00\x16"
	                    "PK.DN|securemode=2|"
	                    "abc"),
	                  &p, &eb) == IOTCA_OK);
	CHECK(str_is(p.connect.client_id, "PK.DN|securemode=2|abc"));
	dt_done();
}

static void
check_refused(const uint8_t *data, size_t n, uint8_t connack, const char *msg)
{
	iotca_mqtt_packet p;
	iotca_errbuf eb;
	size_t used = 99;

	CHECK_EQ_INT(dt_decode(data, n, &p, &eb), IOTCA_EPRECOND);
	CHECK_EQ_STR(eb.msg, msg);
	CHECK_EQ_INT(iotca_mqtt_decoder_connack_code(dt), connack);
	/* Final: more bytes are refused and the answer stays. */
	CHECK_EQ_INT(iotca_mqtt_feed(dt, (const uint8_t *)"\xc0\x00", 2, &used),
	             IOTCA_EPRECOND);
	CHECK_EQ_INT(used, 0);
	iotca_errbuf_clear(&eb);
	CHECK_EQ_INT(iotca_mqtt_next(dt, &p, &eb), IOTCA_EPRECOND);
	CHECK_EQ_STR(eb.msg, msg);
	dt_done();
}

static void
test_connect_other_levels(void)
{
	/* mosquitto_pub -V mqttv31: protocol MQIsdp, level 3. */
	check_refused(B("\x10\x25\x00\x06MQIsdp\x03\x02\x00\x3c\x00\x17"
	                "mosq-Rt4ng8qbd236kLddpk"),
	              1,
	              "protocol level 3 is not supported, only 4 (MQTT "
	              "3.1.1); answer CONNACK 1");
	check_refused(B("\x10\x0c\x00\x04MQTT\x03\x02\x00\x3c\x00\x00"), 1,
	              "protocol level 3 is not supported, only 4 (MQTT "
	              "3.1.1); answer CONNACK 1");
	/* mosquitto_pub -V mqttv5: properties follow; refused before them. */
	check_refused(B("\x10\x10\x00\x04MQTT\x05\x02\x00\x3c\x03\x21\x00\x14"
	                "\x00\x00"),
	              1,
	              "protocol level 5 is not supported, only 4 (MQTT "
	              "3.1.1); answer CONNACK 1");
	CHECK_EQ_INT(iotca_mqtt_decoder_connack_code(NULL), 0);
}

static void
test_connect_empty_client_id(void)
{
	iotca_mqtt_packet p;
	iotca_errbuf eb;

	/* Clean session 1: accepted (the server assigns an id). */
	REQUIRE(dt_decode(B("\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00"), &p,
	                  &eb) == IOTCA_OK);
	CHECK_EQ_INT(p.connect.client_id.len, 0);
	CHECK_EQ_INT(iotca_mqtt_decoder_connack_code(dt), 0);
	dt_done();
	/* Clean session 0: CONNACK 2. */
	check_refused(B("\x10\x0c\x00\x04MQTT\x04\x00\x00\x3c\x00\x00"), 2,
	              "an empty client identifier needs clean session 1; "
	              "answer CONNACK 2");
}

static void
test_connect_malformed(void)
{
	FAILS("\x10\x0c\x00\x04MQTX\x04\x02\x00\x3c\x00\x00",
	      "CONNECT protocol name must be \"MQTT\"");
	FAILS("\x10\x0c\x00\x04MQTT\x04\x03\x00\x3c\x00\x00",
	      "CONNECT reserved flag must be 0");
	/* Will QoS 1 without the will flag; will retain without it. */
	FAILS("\x10\x0c\x00\x04MQTT\x04\x0a\x00\x3c\x00\x00",
	      "CONNECT will QoS and will retain must be 0 without the will "
	      "flag");
	FAILS("\x10\x0c\x00\x04MQTT\x04\x22\x00\x3c\x00\x00",
	      "CONNECT will QoS and will retain must be 0 without the will "
	      "flag");
	FAILS("\x10\x12\x00\x04MQTT\x04\x1e\x00\x3c\x00\x00\x00\x01t\x00\x01m",
	      "CONNECT will QoS must not be 3");
	FAILS("\x10\x10\x00\x04MQTT\x04\x42\x00\x3c\x00\x00\x00\x02pw",
	      "CONNECT password flag set without the user name flag");
	FAILS("\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c\x00\x00\x00",
	      "1 unexpected bytes at the end of CONNECT");
	FAILS("\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x05",
	      "CONNECT client identifier runs past the end of the packet");
	FAILS("\x10\x08\x00\x04MQTT\x04\x02", "CONNECT is too short");
	FAILS("\x10\x12\x00\x04MQTT\x04\x06\x00\x3c\x00\x00\x00\x01#\x00\x01m",
	      "CONNECT will topic contains a wildcard ('+' or '#')");
	FAILS("\x10\x10\x00\x04MQTT\x04\x06\x00\x3c\x00\x00\x00\x00\x00\x00",
	      "CONNECT will topic is empty");
	FAILS("\x10\x0f\x00\x04MQTT\x04\x06\x00\x3c\x00\x00\x00\x01t",
	      "CONNECT will message runs past the end of the packet");
	FAILS("\x10\x0f\x00\x04MQTT\x04\xc2\x00\x3c\x00\x00\x00\x01u",
	      "CONNECT password runs past the end of the packet");
	FAILS("\x10\x0e\x00\x04MQTT\x04\x02\x00\x3c\x00\x02\xc3\x28",
	      "CONNECT client identifier is not valid UTF-8");
	FAILS("\x10\x10\x00\x04MQTT\x04\x82\x00\x3c\x00\x00\x00\x02u\x00",
	      "CONNECT user name contains U+0000");
}

/* ---- PUBLISH ---- */

static void
test_publish(void)
{
	iotca_mqtt_packet p;
	iotca_errbuf eb;

	REQUIRE(dt_decode(B("\x30\x18\x00\x0csensors/temp{\"t\":21.5}"), &p,
	                  &eb) == IOTCA_OK);
	CHECK_EQ_INT(p.type, IOTCA_MQTT_PUBLISH);
	CHECK_EQ_INT(p.publish.qos, 0);
	CHECK_EQ_INT(p.publish.dup, 0);
	CHECK_EQ_INT(p.publish.retain, 0);
	CHECK_EQ_INT(p.publish.packet_id, 0);
	CHECK(str_is(p.publish.topic, "sensors/temp"));
	CHECK(bytes_is(p.publish.payload, "{\"t\":21.5}"));
	/* mosquitto_pub -q 1 -r */
	REQUIRE(dt_decode(B("\x33\x20\x00\x12/PK/DN/user/update\x00\x01hello "
	                    "qos1"),
	                  &p, &eb) == IOTCA_OK);
	CHECK_EQ_INT(p.publish.qos, 1);
	CHECK_EQ_INT(p.publish.retain, 1);
	CHECK_EQ_INT(p.publish.packet_id, 1);
	CHECK(str_is(p.publish.topic, "/PK/DN/user/update"));
	CHECK(bytes_is(p.publish.payload, "hello qos1"));
	/* QoS 2, DUP, empty payload, UTF-8 topic. */
	REQUIRE(dt_decode(B("\x3c\x0a\x00\x06\xc3\xbc/\xe6\x97\xa5\xff\xfe"),
	                  &p, &eb) == IOTCA_OK);
	CHECK_EQ_INT(p.publish.qos, 2);
	CHECK_EQ_INT(p.publish.dup, 1);
	CHECK_EQ_INT(p.publish.retain, 0);
	CHECK_EQ_INT(p.publish.packet_id, 0xfffe);
	CHECK(str_is(p.publish.topic, "\xc3\xbc/\xe6\x97\xa5"));
	CHECK_EQ_INT(p.publish.payload.len, 0);
	CHECK(p.publish.payload.data == NULL);
	dt_done();
}

static void
test_publish_malformed(void)
{
	iotca_mqtt_packet p;
	iotca_errbuf eb;
	size_t used = 0;

	/* QoS 3 is refused on the first byte. */
	CHECK_EQ_INT(dt_decode_cap(B("\x36"), CAP, &p, &eb, &used),
	             IOTCA_EPROTO);
	CHECK_EQ_INT(used, 1);
	CHECK_EQ_STR(eb.msg, "QoS of PUBLISH must not be 3");
	dt_done();
	FAILS("\x38\x05\x00\x01tab", "DUP of a QoS 0 PUBLISH must be 0");
	FAILS("\x32\x05\x00\x01t\x00\x00",
	      "packet identifier of PUBLISH must not be 0");
	FAILS("\x34\x03\x00\x01t", "PUBLISH has no packet identifier");
	FAILS("\x30\x05\x00\x03\x61/+",
	      "PUBLISH topic name contains a wildcard ('+' or '#')");
	FAILS("\x30\x05\x00\x03\x61/#",
	      "PUBLISH topic name contains a wildcard ('+' or '#')");
	FAILS("\x30\x04\x00\x00xy", "PUBLISH topic name is empty");
	FAILS("\x30\x02\x00\x05",
	      "PUBLISH topic name runs past the end of the packet");
	FAILS("\x30\x01\x00", "PUBLISH topic name runs past the end of the "
	                      "packet");
	FAILS("\x30\x00", "PUBLISH topic name runs past the end of the packet");
	FAILS("\x30\x05\x00\x03\x61\x00\x62", "PUBLISH topic name contains "
	                                      "U+0000");
}

/* Each byte string is invalid UTF-8 in a PUBLISH topic. */
static void
test_publish_bad_utf8(void)
{
	static const char *const bad[] = {
	    "\xc0\x80",         /* overlong U+0000 */
	    "\xc1\xbf",         /* overlong */
	    "\xe0\x80\xaf",     /* overlong '/' */
	    "\xed\xa0\x80",     /* surrogate U+D800 */
	    "\xed\xbf\xbf",     /* surrogate U+DFFF */
	    "\xf4\x90\x80\x80", /* U+110000 */
	    "\xf8\x88\x80\x80\x80",
	    "\x80",      /* stray continuation */
	    "a\xe2\x82", /* truncated */
	    "\xe2\x28\xa1",
	    "\xff",
	};
	uint8_t pkt[32];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t n = strlen(bad[i]);

		pkt[0] = 0x30;
		pkt[1] = (uint8_t)(n + 2);
		pkt[2] = 0;
		pkt[3] = (uint8_t)n;
		memcpy(pkt + 4, bad[i], n);
		check_fails(pkt, n + 4, IOTCA_EPROTO,
		            "PUBLISH topic name is not valid UTF-8");
	}
	/* The largest code points of each length are fine. */
	CHECK(iotca_mqtt_utf8_valid("\x7f\xdf\xbf\xef\xbf\xbf\xf4\x8f\xbf\xbf",
	                            10));
	CHECK(iotca_mqtt_utf8_valid("\xed\x9f\xbf\xee\x80\x80", 6));
	CHECK(!iotca_mqtt_utf8_valid("a\0b", 3));
	CHECK(iotca_mqtt_utf8_valid("", 0));
}

/* ---- acknowledgements, ping, disconnect ---- */

static void
test_acks(void)
{
	static const struct {
		const char *pkt;
		iotca_mqtt_type type;
	} ok[] = {
	    {"\x40\x02\x12\x34", IOTCA_MQTT_PUBACK},
	    {"\x50\x02\x12\x34", IOTCA_MQTT_PUBREC},
	    {"\x62\x02\x12\x34", IOTCA_MQTT_PUBREL},
	    {"\x70\x02\x12\x34", IOTCA_MQTT_PUBCOMP},
	};
	iotca_mqtt_packet p;
	iotca_errbuf eb;
	size_t i;

	for (i = 0; i < 4; i++) {
		REQUIRE(dt_decode((const uint8_t *)ok[i].pkt, 4, &p, &eb) ==
		        IOTCA_OK);
		CHECK_EQ_INT(p.type, ok[i].type);
		CHECK_EQ_INT(p.packet_id, 0x1234);
		CHECK_EQ_INT(p.size, 4);
	}
	FAILS("\x40\x02\x00\x00", "packet identifier of PUBACK must not be 0");
	FAILS("\x62\x02\x00\x00", "packet identifier of PUBREL must not be 0");
	FAILS("\x50\x03\x00\x01\x00",
	      "remaining length of PUBREC must be 2, got 3");
	FAILS("\x70\x01\x00", "remaining length of PUBCOMP must be 2, got 1");
	REQUIRE(dt_decode(B("\xc0\x00"), &p, &eb) == IOTCA_OK);
	CHECK_EQ_INT(p.type, IOTCA_MQTT_PINGREQ);
	CHECK_EQ_INT(p.size, 2);
	CHECK_EQ_INT(p.body_len, 0);
	CHECK(p.body == NULL);
	REQUIRE(dt_decode(B("\xe0\x00"), &p, &eb) == IOTCA_OK);
	CHECK_EQ_INT(p.type, IOTCA_MQTT_DISCONNECT);
	FAILS("\xc0\x01\x00", "remaining length of PINGREQ must be 0, got 1");
	FAILS("\xe0\x02\x00\x00",
	      "remaining length of DISCONNECT must be 0, got 2");
	dt_done();
}

/* ---- SUBSCRIBE, UNSUBSCRIBE ---- */

static void
test_subscribe(void)
{
	/* mosquitto_sub -q 2 -t 'sport/#' -t '+/+/status' -t
	 * '$SYS/broker/uptime' */
	iotca_mqtt_packet p;
	iotca_errbuf eb;

	REQUIRE(dt_decode(B("\x82\x2e\x00\x01\x00\x07sport/#\x02\x00\x0a+/+/"
	                    "status\x02\x00\x12$SYS/broker/uptime\x02"),
	                  &p, &eb) == IOTCA_OK);
	CHECK_EQ_INT(p.type, IOTCA_MQTT_SUBSCRIBE);
	CHECK_EQ_INT(p.subscribe.packet_id, 1);
	REQUIRE(p.subscribe.count == 3);
	CHECK(str_is(p.subscribe.subs[0].filter, "sport/#"));
	CHECK(str_is(p.subscribe.subs[1].filter, "+/+/status"));
	CHECK(str_is(p.subscribe.subs[2].filter, "$SYS/broker/uptime"));
	CHECK_EQ_INT(p.subscribe.subs[0].qos, 2);
	CHECK_EQ_INT(p.subscribe.subs[2].qos, 2);
	REQUIRE(dt_decode(B("\x82\x0a\x00\x07\x00\x01#\x00\x00\x01+\x01"), &p,
	                  &eb) == IOTCA_OK);
	REQUIRE(p.subscribe.count == 2);
	CHECK_EQ_INT(p.subscribe.packet_id, 7);
	CHECK(str_is(p.subscribe.subs[0].filter, "#"));
	CHECK_EQ_INT(p.subscribe.subs[0].qos, 0);
	CHECK(str_is(p.subscribe.subs[1].filter, "+"));
	CHECK_EQ_INT(p.subscribe.subs[1].qos, 1);
	dt_done();
}

static void
test_subscribe_many(void)
{
	/* 100 filters: the entry array grows. */
	uint8_t pkt[3 + 2 + 100 * 6];
	iotca_mqtt_packet p;
	iotca_errbuf eb;
	size_t i, n = 0;

	pkt[n++] = 0x82;
	pkt[n++] = (uint8_t)(0x80 | ((2 + 600) & 0x7f));
	pkt[n++] = (uint8_t)((2 + 600) >> 7);
	pkt[n++] = 0;
	pkt[n++] = 9;
	for (i = 0; i < 100; i++) {
		pkt[n++] = 0;
		pkt[n++] = 3;
		pkt[n++] = 'a';
		pkt[n++] = '/';
		pkt[n++] = (uint8_t)('0' + i % 10);
		pkt[n++] = (uint8_t)(i % 3);
	}
	REQUIRE(dt_decode(pkt, n, &p, &eb) == IOTCA_OK);
	REQUIRE(p.subscribe.count == 100);
	CHECK(str_is(p.subscribe.subs[99].filter, "a/9"));
	CHECK_EQ_INT(p.subscribe.subs[98].qos, 2);
	dt_done();
}

static void
test_subscribe_malformed(void)
{
	FAILS("\x80\x06\x00\x01\x00\x01#\x00",
	      "reserved flags of SUBSCRIBE must be 0010, got 0000");
	FAILS("\x82\x02\x00\x01", "SUBSCRIBE has no topic filter");
	FAILS("\x82\x06\x00\x00\x00\x01#\x00",
	      "packet identifier of SUBSCRIBE must not be 0");
	FAILS("\x82\x06\x00\x01\x00\x01#\x03",
	      "SUBSCRIBE requested QoS 1 must be 0, 1 or 2 with reserved "
	      "bits 0, got 0x03");
	FAILS("\x82\x06\x00\x01\x00\x01#\x04",
	      "SUBSCRIBE requested QoS 1 must be 0, 1 or 2 with reserved "
	      "bits 0, got 0x04");
	FAILS("\x82\x05\x00\x01\x00\x01#", "SUBSCRIBE topic filter 1 has no "
	                                   "QoS");
	FAILS("\x82\x0b\x00\x01\x00\x01#\x00\x00\x02x#\x01",
	      "SUBSCRIBE topic filter 2 has a '#' that is not the whole last "
	      "level");
	FAILS("\x82\x08\x00\x01\x00\x03#/x\x00",
	      "SUBSCRIBE topic filter 1 has a '#' that is not the whole last "
	      "level");
	FAILS("\x82\x08\x00\x01\x00\x03s+/\x00",
	      "SUBSCRIBE topic filter 1 has a '+' that is not a whole level");
	FAILS("\x82\x05\x00\x01\x00\x00\x00",
	      "SUBSCRIBE topic filter 1 is empty");
	FAILS("\x82\x06\x00\x01\x00\x05#\x00",
	      "SUBSCRIBE topic filter runs past the end of the packet");
	FAILS("\x82\x07\x00\x01\x00\x02\xc0\xaf\x00",
	      "SUBSCRIBE topic filter is not valid UTF-8");
	FAILS("\x82\x01\x00", "SUBSCRIBE has no packet identifier");
}

static void
test_unsubscribe(void)
{
	iotca_mqtt_packet p;
	iotca_errbuf eb;

	/* mosquitto_sub -U '/PK/DN/#' -U 'sport/+' */
	REQUIRE(dt_decode(B("\xa2\x15\x00\x03\x00\x08/PK/DN/#\x00\x07sport/+"),
	                  &p, &eb) == IOTCA_OK);
	CHECK_EQ_INT(p.type, IOTCA_MQTT_UNSUBSCRIBE);
	CHECK_EQ_INT(p.unsubscribe.packet_id, 3);
	REQUIRE(p.unsubscribe.count == 2);
	CHECK(str_is(p.unsubscribe.filters[0], "/PK/DN/#"));
	CHECK(str_is(p.unsubscribe.filters[1], "sport/+"));
	dt_done();
	FAILS("\xa0\x05\x00\x01\x00\x01#",
	      "reserved flags of UNSUBSCRIBE must be 0010, got 0000");
	FAILS("\xa2\x02\x00\x01", "UNSUBSCRIBE has no topic filter");
	FAILS("\xa2\x05\x00\x00\x00\x01#",
	      "packet identifier of UNSUBSCRIBE must not be 0");
	FAILS("\xa2\x06\x00\x01\x00\x02#x",
	      "UNSUBSCRIBE topic filter 1 has a '#' that is not the whole "
	      "last level");
	FAILS("\xa2\x06\x00\x01\x00\x01#\x00",
	      "UNSUBSCRIBE topic filter runs past the end of the packet");
}

/* ---- fixed header ---- */

static void
bits4(unsigned f, char out[5])
{
	snprintf(out, 5, "%u%u%u%u", (f >> 3) & 1, (f >> 2) & 1, (f >> 1) & 1,
	         f & 1);
}

static void
test_reserved_flags_every_type(void)
{
	static const struct {
		unsigned type;
		const char *name;
		unsigned flags;
	} t[] = {
	    {1, "CONNECT", 0},      {4, "PUBACK", 0},   {5, "PUBREC", 0},
	    {6, "PUBREL", 2},       {7, "PUBCOMP", 0},  {8, "SUBSCRIBE", 2},
	    {10, "UNSUBSCRIBE", 2}, {12, "PINGREQ", 0}, {14, "DISCONNECT", 0},
	};
	size_t i;
	unsigned f;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		for (f = 0; f < 16; f++) {
			uint8_t b = (uint8_t)(t[i].type << 4 | f);
			char msg[128], want[5], got[5];

			if (f == t[i].flags)
				continue;
			bits4(t[i].flags, want);
			bits4(f, got);
			snprintf(msg, sizeof(msg),
			         "reserved flags of %s must be %s, got %s",
			         t[i].name, want, got);
			/* Refused on the first byte alone. */
			check_fails(&b, 1, IOTCA_EPROTO, msg);
		}
	}
}

static void
test_server_only_types(void)
{
	FAILS("\x00\x00", "packet type 0 (reserved) may not be sent by a "
	                  "client");
	FAILS("\x20\x02\x00\x00", "packet type 2 (CONNACK) may not be sent by "
	                          "a client");
	FAILS("\x90\x03\x00\x01\x00", "packet type 9 (SUBACK) may not be sent "
	                              "by a client");
	FAILS("\xb0\x02\x00\x01", "packet type 11 (UNSUBACK) may not be sent "
	                          "by a client");
	FAILS("\xd0\x00", "packet type 13 (PINGRESP) may not be sent by a "
	                  "client");
	FAILS("\xf0\x00", "packet type 15 (reserved) may not be sent by a "
	                  "client");
}

/* PUBLISH of remaining length rem to topic "t" (rem >= 3). */
static uint8_t *
make_publish(size_t rem, size_t *n)
{
	uint8_t *p = malloc(rem + 5);
	size_t i = 0, r = rem;

	if (p == NULL)
		return NULL;
	p[i++] = 0x30;
	do {
		p[i] = (uint8_t)(r & 0x7f);
		r >>= 7;
		if (r)
			p[i] |= 0x80;
		i++;
	} while (r);
	p[i++] = 0;
	p[i++] = 1;
	p[i++] = 't';
	memset(p + i, 'x', rem - 3);
	*n = i + rem - 3;
	return p;
}

static void
test_remaining_length_boundaries(void)
{
	static const struct {
		size_t rem;
		size_t hdr;
	} t[] = {{127, 2},   {128, 3},     {16383, 3},
	         {16384, 4}, {2097151, 4}, {2097152, 5}};
	iotca_mqtt_packet p;
	iotca_errbuf eb;
	size_t i, n;

	REQUIRE(dt_decode(B("\xc0\x00"), &p, &eb) == IOTCA_OK); /* 0 */
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		uint8_t *pkt = make_publish(t[i].rem, &n);

		REQUIRE(pkt != NULL);
		CHECK_EQ_INT(n, t[i].hdr + t[i].rem);
		CHECK_EQ_INT(dt_decode_cap(pkt, n, n, &p, &eb, NULL), IOTCA_OK);
		CHECK_EQ_INT(p.body_len, t[i].rem);
		CHECK_EQ_INT(p.size, n);
		CHECK_EQ_INT(p.publish.payload.len, t[i].rem - 3);
		/* One byte under the cap: refused, with both sizes. */
		CHECK_EQ_INT(dt_decode_cap(pkt, n, n - 1, &p, &eb, NULL),
		             IOTCA_EPROTO);
		free(pkt);
	}
	dt_done();
}

static void
test_remaining_length_max(void)
{
	iotca_mqtt_packet p;
	iotca_errbuf eb;
	size_t used = 0;

	/* 268,435,455: the header is read and measured, nothing buffered. */
	CHECK_EQ_INT(dt_decode_cap(B("\x30\xff\xff\xff\x7f\x00\x01t"), 1000, &p,
	                           &eb, &used),
	             IOTCA_EPROTO);
	CHECK_EQ_STR(eb.msg,
	             "packet of 268435460 bytes exceeds the limit of 1000");
	CHECK_EQ_INT(used, 5);
	/* Under the largest cap it is accepted and waits for its body. */
	CHECK_EQ_INT(dt_decode_cap(B("\x30\xff\xff\xff\x7f\x00\x01t"),
	                           268435460, &p, &eb, &used),
	             IOTCA_ENOENT);
	CHECK_EQ_INT(used, 8);
	/* A fifth length byte. */
	FAILS("\x30\xff\xff\xff\xff\x01", "remaining length uses more than 4 "
	                                  "bytes");
	FAILS("\xc0\x80\x80\x80\x80\x00", "remaining length uses more than 4 "
	                                  "bytes");
	dt_done();
}

static void
test_cap_refused_before_buffering(void)
{
	uint8_t *pkt;
	iotca_mqtt_packet p;
	iotca_errbuf eb;
	size_t n, used = 0;

	pkt = make_publish(200, &n); /* 203 bytes */
	REQUIRE(pkt != NULL);
	CHECK_EQ_INT(dt_decode_cap(pkt, n, 100, &p, &eb, &used), IOTCA_EPROTO);
	CHECK_EQ_STR(eb.msg, "packet of 203 bytes exceeds the limit of 100");
	CHECK_EQ_INT(used, 3); /* the header, none of the body */
	CHECK_EQ_INT(dt_decode_cap(pkt, n, 203, &p, &eb, &used), IOTCA_OK);
	CHECK_EQ_INT(iotca_mqtt_decoder_create(1, &dt), IOTCA_EINVAL);
	CHECK_EQ_INT(iotca_mqtt_decoder_create(268435461, &dt), IOTCA_EINVAL);
	free(pkt);
	dt_done();
}

static void
test_big_then_small(void)
{
	iotca_mqtt_packet p;
	iotca_errbuf eb;
	size_t n, used = 0, i;
	uint8_t *big = make_publish(20000, &n);

	REQUIRE(big != NULL);
	REQUIRE(iotca_mqtt_decoder_create(CAP * 8, &dt) == IOTCA_OK);
	for (i = 0; i < 2; i++) {
		/* Its buffer is freed once done; the next packet still works.
		 */
		CHECK_EQ_INT(iotca_mqtt_feed(dt, big, n, &used), IOTCA_OK);
		CHECK_EQ_INT(used, n);
		REQUIRE(iotca_mqtt_next(dt, &p, &eb) == IOTCA_OK);
		CHECK_EQ_INT(p.publish.payload.len, 19997);
		CHECK_EQ_INT(p.publish.payload.data[19996], 'x');
		CHECK_EQ_INT(iotca_mqtt_feed(dt, B("\xc0\x00"), &used),
		             IOTCA_OK);
		REQUIRE(iotca_mqtt_next(dt, &p, &eb) == IOTCA_OK);
		CHECK_EQ_INT(p.type, IOTCA_MQTT_PINGREQ);
	}
	free(big);
	dt_done();
}

/* ---- chunking ---- */

/* A stream of every kind of client packet. */
static const char stream[] =
    "\x10\x27\x00\x04MQTT\x04\xee\x00\x3c\x00\x03"
    "cid\x00\x05/w/t1\x00\x03"
    "bye\x00\x04user\x00\x04\x00\xffpw"
    "\x30\x18\x00\x0csensors/temp{\"t\":21.5}"
    "\x33\x20\x00\x12/PK/DN/user/update\x00\x01hello qos1"
    "\x30\x03\x00\x01t"
    "\x40\x02\x00\x01\x50\x02\x00\x02\x62\x02\x00\x02\x70\x02\x00\x02"
    "\x82\x2e\x00\x01\x00\x07sport/#\x02\x00\x0a+/+/status\x02\x00\x12"
    "$SYS/broker/uptime\x02"
    "\xa2\x15\x00\x03\x00\x08/PK/DN/#\x00\x07sport/+"
    "\xc0\x00\xe0\x00";

#define STREAM_PACKETS 12

/* Decodes stream in chunks of chunk bytes (0: whole) into out: for each
 * packet its type and body. Returns the number of packets. */
static size_t
decode_stream(size_t chunk, iotca_buf *out)
{
	iotca_mqtt_decoder *d = NULL;
	iotca_mqtt_packet p;
	size_t pos = 0, len = sizeof(stream) - 1, k = 0, used;
	uint8_t *copy = malloc(len);
	iotca_err rc;

	if (copy == NULL || iotca_mqtt_decoder_create(CAP, &d) != IOTCA_OK)
		goto out;
	memcpy(copy, stream, len);
	while (pos < len) {
		size_t n = chunk && len - pos > chunk ? chunk : len - pos;

		if (iotca_mqtt_feed(d, copy + pos, n, &used) != IOTCA_OK ||
		    used > n)
			break;
		pos += used;
		while ((rc = iotca_mqtt_next(d, &p, NULL)) == IOTCA_OK) {
			uint8_t t = (uint8_t)p.type;

			iotca_buf_append(out, &t, 1);
			if (p.body_len)
				iotca_buf_append(out, p.body, p.body_len);
			k++;
		}
		if (rc != IOTCA_ENOENT)
			break;
	}
out:
	iotca_mqtt_decoder_destroy(d);
	free(copy);
	return k;
}

static void
test_chunking_equal(void)
{
	static const size_t chunks[] = {1, 2, 3, 7, 64};
	iotca_buf whole, part;
	size_t i;

	iotca_buf_init(&whole, 1u << 16);
	iotca_buf_init(&part, 1u << 16);
	CHECK_EQ_INT(decode_stream(0, &whole), STREAM_PACKETS);
	for (i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		iotca_buf_reset(&part);
		CHECK_EQ_INT(decode_stream(chunks[i], &part), STREAM_PACKETS);
		CHECK_EQ_INT(part.len, whole.len);
		CHECK(part.len == whole.len &&
		      memcmp(part.data, whole.data, part.len) == 0);
	}
	iotca_buf_free(&whole);
	iotca_buf_free(&part);
}

static void
test_several_packets_one_buffer(void)
{
	static const uint8_t three[] = {0xc0, 0x00, 0x40, 0x02, 0x00,
	                                0x05, 0xe0, 0x00, 0x30};
	iotca_mqtt_packet p;
	iotca_errbuf eb;
	size_t used = 0, pos;

	REQUIRE(iotca_mqtt_decoder_create(CAP, &dt) == IOTCA_OK);
	CHECK_EQ_INT(iotca_mqtt_next(dt, &p, &eb), IOTCA_ENOENT);
	/* feed stops at the end of each packet. */
	CHECK_EQ_INT(iotca_mqtt_feed(dt, three, sizeof(three), &used),
	             IOTCA_OK);
	CHECK_EQ_INT(used, 2);
	/* Still holding one: takes nothing more. */
	CHECK_EQ_INT(iotca_mqtt_feed(dt, three + 2, 7, &used), IOTCA_OK);
	CHECK_EQ_INT(used, 0);
	REQUIRE(iotca_mqtt_next(dt, &p, &eb) == IOTCA_OK);
	CHECK_EQ_INT(p.type, IOTCA_MQTT_PINGREQ);
	CHECK_EQ_INT(iotca_mqtt_next(dt, &p, &eb), IOTCA_ENOENT);
	pos = 2;
	CHECK_EQ_INT(iotca_mqtt_feed(dt, three + pos, 7, &used), IOTCA_OK);
	CHECK_EQ_INT(used, 4);
	REQUIRE(iotca_mqtt_next(dt, &p, &eb) == IOTCA_OK);
	CHECK_EQ_INT(p.type, IOTCA_MQTT_PUBACK);
	CHECK_EQ_INT(p.packet_id, 5);
	pos += used;
	CHECK_EQ_INT(iotca_mqtt_feed(dt, three + pos, 3, &used), IOTCA_OK);
	CHECK_EQ_INT(used, 2);
	REQUIRE(iotca_mqtt_next(dt, &p, &eb) == IOTCA_OK);
	CHECK_EQ_INT(p.type, IOTCA_MQTT_DISCONNECT);
	pos += used;
	/* A partial PUBLISH header: consumed, no packet yet. */
	CHECK_EQ_INT(iotca_mqtt_feed(dt, three + pos, 1, &used), IOTCA_OK);
	CHECK_EQ_INT(used, 1);
	CHECK_EQ_INT(iotca_mqtt_next(dt, &p, &eb), IOTCA_ENOENT);
	CHECK_EQ_INT(iotca_mqtt_feed(dt, NULL, 0, &used), IOTCA_OK);
	CHECK_EQ_INT(iotca_mqtt_feed(dt, NULL, 1, &used), IOTCA_EINVAL);
	dt_done();
}

static void
test_failed_stays_failed(void)
{
	iotca_mqtt_packet p;
	iotca_errbuf eb;
	size_t used = 7;

	/* A good PINGREQ, then a bad PUBACK, then good bytes. */
	REQUIRE(iotca_mqtt_decoder_create(CAP, &dt) == IOTCA_OK);
	CHECK_EQ_INT(iotca_mqtt_feed(dt, B("\xc0\x00\x41"), &used), IOTCA_OK);
	REQUIRE(iotca_mqtt_next(dt, &p, &eb) == IOTCA_OK);
	CHECK_EQ_INT(iotca_mqtt_feed(dt, B("\x41\x02"), &used), IOTCA_EPROTO);
	CHECK_EQ_INT(used, 1);
	CHECK_EQ_INT(iotca_mqtt_next(dt, &p, &eb), IOTCA_EPROTO);
	CHECK_EQ_STR(eb.msg, "reserved flags of PUBACK must be 0000, got 0001");
	CHECK_EQ_INT(iotca_mqtt_feed(dt, B("\xc0\x00"), &used), IOTCA_EPROTO);
	CHECK_EQ_INT(used, 0);
	iotca_errbuf_clear(&eb);
	CHECK_EQ_INT(iotca_mqtt_next(dt, &p, &eb), IOTCA_EPROTO);
	CHECK_EQ_STR(eb.msg, "reserved flags of PUBACK must be 0000, got 0001");
	CHECK_EQ_INT(iotca_mqtt_decoder_connack_code(dt), 0);
	dt_done();
}

/* ---- encoders and the reference decoder ---- */

/* A server packet as the reference decoder sees it. */
typedef struct ref_pkt {
	unsigned type, flags;
	size_t rem, hdr;
	const uint8_t *body;
} ref_pkt;

/* Reads one packet at b[0..n) the way a client would; 0 when it is not
 * exactly one whole packet. */
static int
ref_decode(const uint8_t *b, size_t n, ref_pkt *r)
{
	size_t i = 1, mult = 1;

	if (n < 2)
		return 0;
	r->type = b[0] >> 4;
	r->flags = b[0] & 15u;
	r->rem = 0;
	do {
		if (i >= n || i > 4)
			return 0;
		r->rem += (b[i] & 127u) * mult;
		mult *= 128;
	} while (b[i++] & 128u);
	r->hdr = i;
	r->body = b + i;
	return n - i == r->rem;
}

static unsigned
ref_u16(const uint8_t *p)
{
	return (unsigned)p[0] << 8 | p[1];
}

static void
test_encode_connack_acks_ping(void)
{
	static const struct {
		iotca_mqtt_type type;
		unsigned first;
	} acks[] = {{IOTCA_MQTT_PUBACK, 0x40},
	            {IOTCA_MQTT_PUBREC, 0x50},
	            {IOTCA_MQTT_PUBREL, 0x62},
	            {IOTCA_MQTT_PUBCOMP, 0x70},
	            {IOTCA_MQTT_UNSUBACK, 0xb0}};
	iotca_buf b;
	ref_pkt r;
	size_t i;

	iotca_buf_init(&b, 64);
	REQUIRE(iotca_mqtt_encode_connack(&b, 1, 0) == IOTCA_OK);
	CHECK(b.len == 4 && memcmp(b.data, "\x20\x02\x01\x00", 4) == 0);
	iotca_buf_reset(&b);
	REQUIRE(iotca_mqtt_encode_connack(&b, 0, 5) == IOTCA_OK);
	REQUIRE(ref_decode((uint8_t *)b.data, b.len, &r));
	CHECK_EQ_INT(r.type, IOTCA_MQTT_CONNACK);
	CHECK_EQ_INT(r.body[0], 0);
	CHECK_EQ_INT(r.body[1], 5);
	CHECK_EQ_INT(iotca_mqtt_encode_connack(&b, 1, 5), IOTCA_EINVAL);
	CHECK_EQ_INT(iotca_mqtt_encode_connack(&b, 0, 6), IOTCA_EINVAL);
	CHECK_EQ_INT(b.len, 4);
	for (i = 0; i < 5; i++) {
		iotca_buf_reset(&b);
		REQUIRE(iotca_mqtt_encode_ack(&b, acks[i].type, 0xbeef) ==
		        IOTCA_OK);
		REQUIRE(ref_decode((uint8_t *)b.data, b.len, &r));
		CHECK_EQ_INT((uint8_t)b.data[0], acks[i].first);
		CHECK_EQ_INT(r.rem, 2);
		CHECK_EQ_INT(ref_u16(r.body), 0xbeef);
	}
	CHECK_EQ_INT(iotca_mqtt_encode_ack(&b, IOTCA_MQTT_PUBACK, 0),
	             IOTCA_EINVAL);
	CHECK_EQ_INT(iotca_mqtt_encode_ack(&b, IOTCA_MQTT_SUBACK, 1),
	             IOTCA_EINVAL);
	iotca_buf_reset(&b);
	REQUIRE(iotca_mqtt_encode_pingresp(&b) == IOTCA_OK);
	CHECK(b.len == 2 && memcmp(b.data, "\xd0\x00", 2) == 0);
	iotca_buf_free(&b);
}

static void
test_encode_suback(void)
{
	static const uint8_t codes[] = {0, 1, 2, IOTCA_MQTT_SUBACK_FAILURE};
	static const uint8_t bad[] = {0, 3};
	iotca_buf b;
	ref_pkt r;

	iotca_buf_init(&b, 64);
	REQUIRE(iotca_mqtt_encode_suback(&b, 7, codes, 4) == IOTCA_OK);
	CHECK(b.len == 8 &&
	      memcmp(b.data, "\x90\x06\x00\x07\x00\x01\x02\x80", 8) == 0);
	REQUIRE(ref_decode((uint8_t *)b.data, b.len, &r));
	CHECK_EQ_INT(r.type, IOTCA_MQTT_SUBACK);
	CHECK_EQ_INT(r.flags, 0);
	CHECK_EQ_INT(ref_u16(r.body), 7);
	CHECK(memcmp(r.body + 2, codes, 4) == 0);
	CHECK_EQ_INT(iotca_mqtt_encode_suback(&b, 7, bad, 2), IOTCA_EINVAL);
	CHECK_EQ_INT(iotca_mqtt_encode_suback(&b, 0, codes, 1), IOTCA_EINVAL);
	CHECK_EQ_INT(iotca_mqtt_encode_suback(&b, 1, codes, 0), IOTCA_EINVAL);
	CHECK_EQ_INT(b.len, 8);
	iotca_buf_free(&b);
}

/* Encodes p, checks it with the reference decoder and with our own. */
static void
check_publish_round_trip(const iotca_mqtt_publish *p, size_t hdr)
{
	iotca_mqtt_packet q;
	iotca_errbuf eb;
	iotca_buf b;
	ref_pkt r;
	size_t off;

	iotca_buf_init(&b, 4u << 20);
	REQUIRE(iotca_mqtt_encode_publish(&b, p) == IOTCA_OK);
	REQUIRE(ref_decode((uint8_t *)b.data, b.len, &r));
	CHECK_EQ_INT(r.hdr, hdr);
	CHECK_EQ_INT(r.type, IOTCA_MQTT_PUBLISH);
	CHECK_EQ_INT(r.flags,
	             (p->dup ? 8u : 0u) | p->qos << 1 | (p->retain ? 1u : 0u));
	CHECK_EQ_INT(ref_u16(r.body), p->topic.len);
	CHECK(memcmp(r.body + 2, p->topic.data, p->topic.len) == 0);
	off = 2 + p->topic.len;
	if (p->qos) {
		CHECK_EQ_INT(ref_u16(r.body + off), p->packet_id);
		off += 2;
	}
	CHECK_EQ_INT(r.rem - off, p->payload.len);
	CHECK(p->payload.len == 0 ||
	      memcmp(r.body + off, p->payload.data, p->payload.len) == 0);
	/* Our decoder reads what our encoder wrote. */
	REQUIRE(dt_decode_cap((uint8_t *)b.data, b.len, b.len, &q, &eb, NULL) ==
	        IOTCA_OK);
	CHECK_EQ_INT(q.publish.qos, p->qos);
	CHECK_EQ_INT(q.publish.packet_id, p->qos ? p->packet_id : 0);
	CHECK_EQ_INT(q.publish.payload.len, p->payload.len);
	iotca_buf_free(&b);
	dt_done();
}

static void
test_encode_publish(void)
{
	static const char json[] =
	    "{\"productKey\":\"PK\",\"deviceName\":\"DN\"}";
	iotca_mqtt_publish p = {0};
	uint8_t *big = malloc(2097152);
	iotca_buf b;

	REQUIRE(big != NULL);
	memset(big, 0xa5, 2097152);
	p.topic.data = "/ext/auth/identity/response";
	p.topic.len = strlen(p.topic.data);
	p.payload.data = (const uint8_t *)json;
	p.payload.len = strlen(json);
	check_publish_round_trip(&p, 2);
	p.qos = 1;
	p.packet_id = 1;
	p.retain = 1;
	check_publish_round_trip(&p, 2);
	p.qos = 2;
	p.dup = 1;
	p.packet_id = 65535;
	p.payload.data = NULL;
	p.payload.len = 0;
	check_publish_round_trip(&p, 2);
	p.payload.data = big;
	p.payload.len = 128 - 2 - p.topic.len - 2; /* rem 128 */
	check_publish_round_trip(&p, 3);
	p.payload.len = 2097152 - 2 - p.topic.len - 2; /* rem 2097152 */
	check_publish_round_trip(&p, 5);
	/* Refused: nothing appended. */
	iotca_buf_init(&b, 64);
	CHECK_EQ_INT(iotca_mqtt_encode_publish(&b, &p), IOTCA_ETOOBIG);
	CHECK_EQ_INT(b.len, 0);
	p.payload.len = 1;
	p.packet_id = 0;
	CHECK_EQ_INT(iotca_mqtt_encode_publish(&b, &p), IOTCA_EINVAL);
	p.packet_id = 1;
	p.qos = 3;
	CHECK_EQ_INT(iotca_mqtt_encode_publish(&b, &p), IOTCA_EINVAL);
	p.qos = 0;
	CHECK_EQ_INT(iotca_mqtt_encode_publish(&b, &p), IOTCA_EINVAL); /* dup */
	p.dup = 0;
	p.topic.data = "a/+";
	p.topic.len = 3;
	CHECK_EQ_INT(iotca_mqtt_encode_publish(&b, &p), IOTCA_EINVAL);
	p.topic.len = 0;
	CHECK_EQ_INT(iotca_mqtt_encode_publish(&b, &p), IOTCA_EINVAL);
	CHECK_EQ_INT(b.len, 0);
	/* Exactly at the cap: fits. A second one does not; the first stays. */
	p.topic.data = "t";
	p.topic.len = 1;
	p.payload.len = 64 - 2 - 3;
	CHECK_EQ_INT(iotca_mqtt_encode_publish(&b, &p), IOTCA_OK);
	CHECK_EQ_INT(b.len, 64);
	CHECK_EQ_INT(iotca_mqtt_encode_pingresp(&b), IOTCA_ETOOBIG);
	CHECK_EQ_INT(b.len, 64);
	iotca_buf_free(&b);
	free(big);
}

/* ---- topics ---- */

static void
test_topic_names(void)
{
	static const struct {
		const char *s;
		int name, filter;
	} t[] = {
	    {"sport/tennis/player1", 1, 1},
	    {"/", 1, 1},
	    {"a//b", 1, 1},
	    {"$SYS/broker", 1, 1},
	    {"#", 0, 1},
	    {"+", 0, 1},
	    {"sport/#", 0, 1},
	    {"sport/+/player1", 0, 1},
	    {"+/+", 0, 1},
	    {"/+", 0, 1},
	    {"+/tennis/#", 0, 1},
	    {"sport/tennis#", 0, 0},
	    {"sport/tennis/#/ranking", 0, 0},
	    {"sport+", 0, 0},
	    {"sp+rt/x", 0, 0},
	    {"##", 0, 0},
	    {"a/++", 0, 0},
	    {"", 0, 0},
	    {"\xc0\x80", 0, 0},
	};
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		size_t n = strlen(t[i].s);

		if (iotca_mqtt_topic_valid_name(t[i].s, n) != t[i].name)
			fprintf(stderr, "name: %s\n", t[i].s);
		if (iotca_mqtt_filter_valid(t[i].s, n) != t[i].filter)
			fprintf(stderr, "filter: %s\n", t[i].s);
		CHECK_EQ_INT(iotca_mqtt_topic_valid_name(t[i].s, n), t[i].name);
		CHECK_EQ_INT(iotca_mqtt_filter_valid(t[i].s, n), t[i].filter);
	}
	CHECK(!iotca_mqtt_topic_valid_name("a\0b", 3));
	CHECK_EQ_STR(iotca_mqtt_type_name(IOTCA_MQTT_SUBSCRIBE), "SUBSCRIBE");
	CHECK_EQ_STR(iotca_mqtt_type_name(99), "reserved");
}

static void
test_filter_match(void)
{
	static const struct {
		const char *filter, *topic;
		int match;
	} t[] = {
	    {"sport/tennis/player1/#", "sport/tennis/player1", 1},
	    {"sport/tennis/player1/#", "sport/tennis/player1/ranking", 1},
	    {"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon",
	     1},
	    {"sport/#", "sport", 1},
	    {"sport/#", "sports", 0},
	    {"#", "sport/tennis", 1},
	    {"#", "/", 1},
	    {"sport/tennis/+", "sport/tennis/player1", 1},
	    {"sport/tennis/+", "sport/tennis/player1/ranking", 0},
	    {"sport/+", "sport", 0},
	    {"sport/+", "sport/", 1},
	    {"+/+", "/finance", 1},
	    {"/+", "/finance", 1},
	    {"+", "/finance", 0},
	    {"+", "finance", 1},
	    {"+/tennis/#", "sport/tennis", 1},
	    {"+/tennis/#", "sport/golf", 0},
	    {"a/b", "a/b", 1},
	    {"a/b", "a/b/c", 0},
	    {"a/b/c", "a/b", 0},
	    {"a//b", "a//b", 1},
	    {"a/+/b", "a//b", 1},
	    {"#", "$SYS/broker/uptime", 0},
	    {"+/monitor/Clients", "$SYS/monitor/Clients", 0},
	    {"$SYS/#", "$SYS/broker/uptime", 1},
	    {"$SYS/monitor/+", "$SYS/monitor/Clients", 1},
	    {"/PK/DN/#", "/PK/DN/user/update", 1},
	    {"/PK/DN/#", "/PK/DX/user/update", 0},
	    {"sport/tennis#", "sport/tennis", 0}, /* invalid filter */
	    {"#", "a/+", 0},                      /* invalid topic */
	};
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		int m =
		    iotca_mqtt_filter_match(t[i].filter, strlen(t[i].filter),
		                            t[i].topic, strlen(t[i].topic));

		if (m != t[i].match)
			fprintf(stderr, "match %s %s\n", t[i].filter,
			        t[i].topic);
		CHECK_EQ_INT(m, t[i].match);
	}
}

int
main(void)
{
	RUN(test_connect_all_fields);
	RUN(test_connect_mosquitto_pub);
	RUN(test_connect_alibaba_client_id);
	RUN(test_connect_other_levels);
	RUN(test_connect_empty_client_id);
	RUN(test_connect_malformed);
	RUN(test_publish);
	RUN(test_publish_malformed);
	RUN(test_publish_bad_utf8);
	RUN(test_acks);
	RUN(test_subscribe);
	RUN(test_subscribe_many);
	RUN(test_subscribe_malformed);
	RUN(test_unsubscribe);
	RUN(test_reserved_flags_every_type);
	RUN(test_server_only_types);
	RUN(test_remaining_length_boundaries);
	RUN(test_remaining_length_max);
	RUN(test_cap_refused_before_buffering);
	RUN(test_big_then_small);
	RUN(test_chunking_equal);
	RUN(test_several_packets_one_buffer);
	RUN(test_failed_stays_failed);
	RUN(test_encode_connack_acks_ping);
	RUN(test_encode_suback);
	RUN(test_encode_publish);
	RUN(test_topic_names);
	RUN(test_filter_match);
	dt_done();
	return test_summary();
}
