/*
 * send.c - iotca-tap send: the platform's side of IOTCA_EDGE_DOWNSTREAM.
 * A PUB socket listens on URL; once an edge's SUB socket has connected
 * (pub/sub drops what is published before), the body "PK/DN\n" + packed
 * DownstreamMessage goes out, once or repeatedly.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/pubsub0/pub.h>

#include "sig/sig.h"
#include "tap.h"

#define SEND_POLL_MS 20 /* how often the wait for a subscriber looks */

static const char send_help[] =
    "usage: iotca-tap send URL --pk PK --dn DN --topic TOPIC [--qos 0|1]\n"
    "                 [--payload TEXT | --payload-file FILE]\n"
    "                 [--count N] [--repeat-ms MS] [--wait-ms MS]\n"
    "\n"
    "Listens with an NNG PUB socket on URL, the address edges dial as\n"
    "IOTCA_EDGE_DOWNSTREAM (e.g. tcp://0.0.0.0:5556), waits until a "
    "subscriber\n(an edge) has connected, then publishes the body\n"
    "\n"
    "  PK \"/\" DN \"\\n\" <packed DownstreamMessage{PK, DN, TOPIC, "
    "payload, qos}>\n"
    "\n"
    "to every connected edge; the one holding the device's session "
    "delivers it\nif the device subscribed to a matching filter. "
    "Pub/sub is best effort: an\nedge that connects later does not get "
    "earlier messages.\n"
    "\n"
    "options:\n"
    "  --pk PK            the device's ProductKey: 11 letters and "
    "digits\n"
    "  --dn DN            its DeviceName: 4-32 of letters, digits and "
    "- _ . @ :\n"
    "  --topic TOPIC      in the device's topic space: /PK/DN/..., "
    "/sys/PK/DN/...\n"
    "                     or /ext/...; no wildcards\n"
    "  --qos 0|1          QoS of the PUBLISH to the device (default 0)\n"
    "  --payload TEXT     the payload (default empty)\n"
    "  --payload-file F   the payload from a file, as bytes (256 KiB "
    "at most)\n"
    "  --count N          messages to send (default 1; with --repeat-ms "
    "and no\n"
    "                     --count: until SIGINT or SIGTERM)\n"
    "  --repeat-ms MS     time between messages (default 0)\n"
    "  --wait-ms MS       exit 1 when no subscriber has connected "
    "within MS\n"
    "                     (default: wait until SIGINT or SIGTERM)\n"
    "  -h, --help         this text\n"
    "\n"
    "Exit status: 0 sent (or stopped by a signal while repeating); 1 no "
    "subscriber,\nNNG or file failure; 2 usage error, e.g. a topic "
    "outside the device's space.\n";

static const struct option send_opts[] = {
    {"pk", required_argument, NULL, 'p'},
    {"dn", required_argument, NULL, 'd'},
    {"topic", required_argument, NULL, 't'},
    {"qos", required_argument, NULL, 'q'},
    {"payload", required_argument, NULL, 'P'},
    {"payload-file", required_argument, NULL, 'F'},
    {"count", required_argument, NULL, 'c'},
    {"repeat-ms", required_argument, NULL, 'r'},
    {"wait-ms", required_argument, NULL, 'w'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

typedef struct send_args {
	const char *url, *pk, *dn, *topic, *payload, *payload_file;
	long qos;
	long count;     /* 0: not given */
	long repeat_ms; /* -1: not given */
	long wait_ms;   /* -1: not given */
} send_args;

/* One numeric option into *out; a usage error when it is not one. */
static int
send_number(const char *name, long min, long max, long *out)
{
	if (tap_parse_long(optarg, min, max, out) != 0)
		return tap_usage_error("send",
		                       "--%s '%s': use a number from "
		                       "%ld to %ld",
		                       name, optarg, min, max);
	return TAP_EXIT_OK;
}

static int
send_option(int c, char **argv, send_args *a)
{
	switch (c) {
	case 'p':
		a->pk = optarg;
		return TAP_EXIT_OK;
	case 'd':
		a->dn = optarg;
		return TAP_EXIT_OK;
	case 't':
		a->topic = optarg;
		return TAP_EXIT_OK;
	case 'P':
		a->payload = optarg;
		return TAP_EXIT_OK;
	case 'F':
		a->payload_file = optarg;
		return TAP_EXIT_OK;
	case 'q':
		return send_number("qos", 0, 1, &a->qos);
	case 'c':
		return send_number("count", 1, LONG_MAX, &a->count);
	case 'r':
		return send_number("repeat-ms", 0, INT_MAX, &a->repeat_ms);
	case 'w':
		return send_number("wait-ms", 0, INT_MAX, &a->wait_ms);
	case ':':
		return tap_usage_error("send", "%s needs a value",
		                       argv[optind - 1]);
	}
	return tap_usage_error("send", "unknown option '%s'", argv[optind - 1]);
}

/* TAP_EXIT_OK with *a filled (identity and topic not yet checked), or
 * with *help set; else a usage error. */
static int
send_parse(int argc, char **argv, send_args *a, int *help)
{
	int c, rc;

	a->repeat_ms = a->wait_ms = -1;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", send_opts, NULL)) != -1) {
		if (c == 'h') {
			*help = 1;
			return TAP_EXIT_OK;
		}
		if ((rc = send_option(c, argv, a)) != TAP_EXIT_OK)
			return rc;
	}
	if (optind != argc - 1)
		return tap_usage_error("send", "give exactly one URL");
	a->url = argv[optind];
	if (strstr(a->url, "://") == NULL)
		return tap_usage_error("send",
		                       "'%s' is not an NNG address; use e.g. "
		                       "tcp://0.0.0.0:5556",
		                       a->url);
	if (a->pk == NULL || a->dn == NULL || a->topic == NULL)
		return tap_usage_error("send", "--pk, --dn and --topic are "
		                               "required");
	if (a->payload != NULL && a->payload_file != NULL)
		return tap_usage_error("send", "give --payload or "
		                               "--payload-file, not both");
	if (a->payload != NULL && strlen(a->payload) > TAP_PAYLOAD_MAX)
		return tap_usage_error("send", "--payload is over %u bytes",
		                       TAP_PAYLOAD_MAX);
	return TAP_EXIT_OK;
}

/* Reads the payload file into out (capped). */
static int
send_read_file(const char *path, iotca_buf *out)
{
	FILE *f = fopen(path, "rb");
	char chunk[8192];
	size_t n;
	int rc = TAP_EXIT_OK;

	if (f == NULL) {
		fprintf(stderr, "iotca-tap: --payload-file %s: %s\n", path,
		        strerror(errno));
		return TAP_EXIT_FAIL;
	}
	while (rc == TAP_EXIT_OK && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (iotca_buf_append(out, chunk, n) != IOTCA_OK)
			rc = tap_usage_error(
			    "send", "--payload-file %s is over %u bytes", path,
			    TAP_PAYLOAD_MAX);
	if (rc == TAP_EXIT_OK && ferror(f)) {
		fprintf(stderr, "iotca-tap: --payload-file %s: read error\n",
		        path);
		rc = TAP_EXIT_FAIL;
	}
	fclose(f);
	return rc;
}

/* Builds the body from the arguments; a usage error for a bad identity,
 * topic or payload. */
static int
send_body(const send_args *a, iotca_buf *body)
{
	iotca_buf payload;
	iotca_errbuf eb;
	int rc = TAP_EXIT_OK;

	iotca_buf_init(&payload, TAP_PAYLOAD_MAX);
	iotca_errbuf_clear(&eb);
	if (a->payload_file != NULL)
		rc = send_read_file(a->payload_file, &payload);
	else if (a->payload != NULL)
		iotca_buf_append_str(&payload, a->payload); /* length checked */
	if (rc == TAP_EXIT_OK &&
	    tap_downstream_body(a->pk, a->dn, a->topic, (uint32_t)a->qos,
	                        (const uint8_t *)payload.data, payload.len,
	                        body, &eb) != IOTCA_OK)
		rc = tap_usage_error("send", "%s", iotca_errbuf_msg(&eb));
	iotca_buf_free(&payload);
	return rc;
}

/* Subscribers connected (added) and gone (removed). */
typedef struct send_peers {
	atomic_long added, removed;
} send_peers;

static void
send_pipe_event(nng_pipe pipe, nng_pipe_ev ev, void *arg)
{
	send_peers *peers = arg;

	(void)pipe;
	if (ev == NNG_PIPE_EV_ADD_POST)
		atomic_fetch_add(&peers->added, 1);
	else if (ev == NNG_PIPE_EV_REM_POST)
		atomic_fetch_add(&peers->removed, 1);
}

static long
send_peer_count(send_peers *peers)
{
	long n = atomic_load(&peers->added) - atomic_load(&peers->removed);

	return n > 0 ? n : 0;
}

/* Waits for the first subscriber: 0, or -1 after saying why. */
static int
send_wait_peer(const send_args *a, send_peers *peers)
{
	int64_t deadline = a->wait_ms >= 0 ? tap_now_ms() + a->wait_ms : 0;

	fprintf(stderr,
	        "iotca-tap: listening on %s (PUB); waiting for a "
	        "subscriber\n",
	        a->url);
	while (send_peer_count(peers) == 0) {
		if (iotca_sig_wait_termination(SEND_POLL_MS) != 0) {
			fprintf(stderr, "iotca-tap: stopped before any "
			                "subscriber connected\n");
			return -1;
		}
		if (a->wait_ms >= 0 && tap_now_ms() >= deadline) {
			fprintf(stderr,
			        "iotca-tap: no subscriber connected to %s "
			        "within %ld ms\n",
			        a->url, a->wait_ms);
			return -1;
		}
	}
	tap_sleep_ms(TAP_SETTLE_MS);
	return 0;
}

/* Publishes the body count times (0: until a signal). */
static int
send_loop(nng_socket s, const send_args *a, const iotca_buf *body,
          send_peers *peers)
{
	long i, count = a->count;
	int rv;

	if (count == 0 && a->repeat_ms < 0)
		count = 1;
	for (i = 1; count == 0 || i <= count; i++) {
		if ((rv = nng_send(s, body->data, body->len, 0)) != 0) {
			fprintf(stderr, "iotca-tap: sending: %s\n",
			        nng_strerror(rv));
			return TAP_EXIT_FAIL;
		}
		fprintf(stderr,
		        "iotca-tap: sent message %ld (%zu bytes) to %ld "
		        "subscriber(s)\n",
		        i, body->len, send_peer_count(peers));
		if (i == count)
			break;
		if (iotca_sig_wait_termination(a->repeat_ms > 0 ? a->repeat_ms
		                                                : 0) != 0)
			break;
	}
	tap_sleep_ms(TAP_LINGER_MS);
	return TAP_EXIT_OK;
}

int
tap_send_main(int argc, char **argv)
{
	send_args a = {0};
	send_peers peers;
	iotca_buf body;
	nng_socket s;
	int help = 0, rc, rv;

	if ((rc = send_parse(argc, argv, &a, &help)) != TAP_EXIT_OK)
		return rc;
	if (help) {
		fputs(send_help, stdout);
		return TAP_EXIT_OK;
	}
	iotca_buf_init(&body, TAP_PAYLOAD_MAX + 1024);
	if ((rc = send_body(&a, &body)) != TAP_EXIT_OK)
		goto out;
	atomic_init(&peers.added, 0);
	atomic_init(&peers.removed, 0);
	rc = TAP_EXIT_FAIL;
	if ((rv = nng_pub0_open(&s)) != 0) {
		fprintf(stderr, "iotca-tap: cannot open a PUB socket: %s\n",
		        nng_strerror(rv));
		goto out;
	}
	nng_pipe_notify(s, NNG_PIPE_EV_ADD_POST, send_pipe_event, &peers);
	nng_pipe_notify(s, NNG_PIPE_EV_REM_POST, send_pipe_event, &peers);
	if ((rv = nng_listen(s, a.url, NULL, 0)) != 0)
		fprintf(stderr, "iotca-tap: cannot listen on %s: %s\n", a.url,
		        nng_strerror(rv));
	else if (send_wait_peer(&a, &peers) == 0)
		rc = send_loop(s, &a, &body, &peers);
	nng_close(s);
out:
	iotca_buf_free(&body);
	return rc;
}
