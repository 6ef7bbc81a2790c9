/*
 * tap.h - iotca-tap, an operator's window on the NNG message plane between
 * iotca-edge and the platform (proto/iotca/v1/device_message.proto):
 *
 *   listen  takes the platform's side of IOTCA_EDGE_UPSTREAM (PULL,
 *           listening) and prints every DeviceMessage as one JSON line;
 *   send    takes the platform's side of IOTCA_EDGE_DOWNSTREAM (PUB,
 *           listening) and publishes "PK/DN\n" + DownstreamMessage.
 *
 * The verbs live in listen.c and send.c, the message formats (JSON line,
 * downstream body, the identity and topic checks) in message.c.
 */
#ifndef IOTCA_TAP_H
#define IOTCA_TAP_H

#include <stddef.h>
#include <stdint.h>

#include "buf/buf.h"
#include "err/err.h"

/* Exit statuses, as for the iotca CLI. */
enum {
	TAP_EXIT_OK = 0,
	TAP_EXIT_FAIL = 1,  /* a timeout, NNG or the system refused */
	TAP_EXIT_USAGE = 2, /* the command line is wrong */
};

/* Largest NNG message `listen` accepts (NNG_OPT_RECVMAXSZ): a larger one
 * makes NNG drop the connection it came on. */
#define TAP_RECV_MAX (16u << 20)
/* Largest payload `send` publishes; NNG's default receive limit on the
 * edge's SUB socket is 1 MiB for the whole body. */
#define TAP_PAYLOAD_MAX (256u << 10)
/* Time between the first subscriber and the first message, so that the
 * subscriber's side of the connection is up. */
#define TAP_SETTLE_MS 200
/* Time between the last message and closing the socket: NNG drops what is
 * still queued when a socket closes. */
#define TAP_LINGER_MS 300

/* Runs a verb with argv[0] = the verb; returns the exit status. */
int tap_listen_main(int argc, char **argv);
int tap_send_main(int argc, char **argv);

/* Prints "iotca-tap VERB: what; see 'iotca-tap VERB --help'" to stderr;
 * returns TAP_EXIT_USAGE. */
int tap_usage_error(const char *verb, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Parses a decimal integer in [min, max]. 0, or -1 if s is not one. */
int tap_parse_long(const char *s, long min, long max, long *out);

/* Milliseconds on CLOCK_MONOTONIC; sleeping. */
int64_t tap_now_ms(void);
void tap_sleep_ms(long ms);

/*
 * One packed DeviceMessage as a JSON object on one line (no line feed),
 * every field in proto order: kind as its enum name without
 * "DEVICE_MESSAGE_KIND_" (the number when unknown), strings as text (bytes
 * that are not UTF-8 become U+FFFD), payload as text when it is valid
 * UTF-8 without NUL, else base64 in "payload_b64"; numbers as numbers.
 * Returns a malloc'd string, or NULL with eb saying why (IOTCA_EINVAL: not
 * a DeviceMessage).
 */
char *tap_device_message_json(const uint8_t *body, size_t len,
                              iotca_errbuf *eb);

/* ProductKey: 11 letters and digits. */
iotca_err tap_check_product_key(const char *pk, iotca_errbuf *eb);

/* DeviceName: 4-32 characters of letters, digits and - _ . @ : */
iotca_err tap_check_device_name(const char *dn, iotca_errbuf *eb);

/* A topic name (UTF-8, no wildcards) in the device's own topic space:
 * "/PK/DN/...", "/sys/PK/DN/..." or "/ext/...", something after the
 * prefix. */
iotca_err tap_check_topic(const char *pk, const char *dn, const char *topic,
                          iotca_errbuf *eb);

/* Appends the downstream body "PK/DN\n" + packed DownstreamMessage to out.
 * The arguments are checked first. */
iotca_err tap_downstream_body(const char *pk, const char *dn, const char *topic,
                              uint32_t qos, const uint8_t *payload,
                              size_t payload_len, iotca_buf *out,
                              iotca_errbuf *eb);

#endif /* IOTCA_TAP_H */
