/*
 * listen.c - iotca-tap listen: the platform's side of IOTCA_EDGE_UPSTREAM.
 * A PULL socket listens on URL; every message an edge pushes is printed as
 * one JSON line on stdout and flushed at once, so the output can be piped
 * into jq or a test while the tap runs.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/pipeline0/pull.h>

#include "sig/sig.h"
#include "tap.h"

#define LISTEN_SLICE_MS 200 /* how often signals and the deadline are seen */

static const char listen_help[] =
    "usage: iotca-tap listen URL [--count N] [--timeout-ms MS]\n"
    "\n"
    "Listens with an NNG PULL socket on URL, the address edges dial as\n"
    "IOTCA_EDGE_UPSTREAM (e.g. tcp://0.0.0.0:5555), and prints every\n"
    "DeviceMessage as one JSON line on stdout, flushed at once:\n"
    "\n"
    "  {\"kind\":\"PUBLISH\",\"edge_id\":\"edge-0\",\"account_id\":\"...\","
    "\"product_key\":\"...\",\n"
    "   \"device_name\":\"...\",\"client_id\":\"...\",\"topic\":\"...\","
    "\"payload\":\"...\",\"qos\":1,\n"
    "   \"message_id\":7,\"time_unix_ms\":1764201600000,\"reason\":\"\","
    "\"peer_address\":\"...\",\n"
    "   \"ca_id\":\"...\",\"cert_sn\":\"...\"}\n"
    "\n"
    "kind is the enum name without DEVICE_MESSAGE_KIND_ (a number when "
    "unknown);\n"
    "payload is text when it is valid UTF-8 without NUL, else base64 in\n"
    "\"payload_b64\". A message that is not a DeviceMessage is reported "
    "on stderr\nand skipped. Messages over 16 MiB are refused by NNG.\n"
    "\n"
    "options:\n"
    "  --count N        exit 0 after N messages\n"
    "  --timeout-ms MS  stop after MS ms: exit 1 if --count messages have "
    "not all\n"
    "                   arrived, else exit 0\n"
    "  -h, --help       this text\n"
    "\n"
    "SIGINT or SIGTERM stop it like the timeout.\n";

static const struct option listen_opts[] = {
    {"count", required_argument, NULL, 'c'},
    {"timeout-ms", required_argument, NULL, 't'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

typedef struct listen_args {
	const char *url;
	long count;      /* 0: no --count */
	long timeout_ms; /* 0: no --timeout-ms */
} listen_args;

/* TAP_EXIT_OK with *a filled, or with *help set; else a usage error. */
static int
listen_parse(int argc, char **argv, listen_args *a, int *help)
{
	int c;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", listen_opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			if (tap_parse_long(optarg, 1, LONG_MAX, &a->count) != 0)
				return tap_usage_error(
				    "listen",
				    "--count '%s': use a number from 1",
				    optarg);
			break;
		case 't':
			if (tap_parse_long(optarg, 1, INT_MAX,
			                   &a->timeout_ms) != 0)
				return tap_usage_error(
				    "listen",
				    "--timeout-ms '%s': use milliseconds "
				    "from 1",
				    optarg);
			break;
		case 'h':
			*help = 1;
			return TAP_EXIT_OK;
		case ':':
			return tap_usage_error("listen", "%s needs a value",
			                       argv[optind - 1]);
		default:
			return tap_usage_error("listen", "unknown option '%s'",
			                       argv[optind - 1]);
		}
	}
	if (optind != argc - 1)
		return tap_usage_error("listen", "give exactly one URL");
	a->url = argv[optind];
	if (strstr(a->url, "://") == NULL)
		return tap_usage_error("listen",
		                       "'%s' is not an NNG address; use e.g. "
		                       "tcp://0.0.0.0:5555",
		                       a->url);
	return TAP_EXIT_OK;
}

/* Prints one message as a JSON line. 0 printed, 1 skipped, -1 stdout is
 * gone (errno says why). */
static int
listen_print(const void *body, size_t len)
{
	iotca_errbuf eb;
	char *line;
	int rc = 0;

	iotca_errbuf_clear(&eb);
	if ((line = tap_device_message_json(body, len, &eb)) == NULL) {
		fprintf(stderr, "iotca-tap: %s; skipped\n",
		        iotca_errbuf_msg(&eb));
		return 1;
	}
	if (fputs(line, stdout) == EOF || fputc('\n', stdout) == EOF ||
	    fflush(stdout) == EOF)
		rc = -1;
	free(line);
	return rc;
}

/* Receives until the count, the deadline, a signal or an error. */
static int
listen_loop(nng_socket s, const listen_args *a)
{
	int64_t deadline = a->timeout_ms ? tap_now_ms() + a->timeout_ms : 0;
	long got = 0, slice;
	size_t n;
	void *buf;
	int rv;

	for (;;) {
		if (a->count > 0 && got >= a->count)
			return TAP_EXIT_OK;
		slice = LISTEN_SLICE_MS;
		if (deadline && deadline - tap_now_ms() < slice)
			slice = (long)(deadline - tap_now_ms());
		if (slice <= 0 || iotca_sig_wait_termination(0) != 0)
			break;
		nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, (nng_duration)slice);
		rv = nng_recv(s, &buf, &n, NNG_FLAG_ALLOC);
		if (rv == NNG_ETIMEDOUT)
			continue;
		if (rv != 0) {
			fprintf(stderr, "iotca-tap: receiving: %s\n",
			        nng_strerror(rv));
			return TAP_EXIT_FAIL;
		}
		rv = listen_print(buf, n);
		nng_free(buf, n);
		if (rv < 0 && errno == EPIPE)
			return TAP_EXIT_OK; /* e.g. "| head -1" is done */
		if (rv < 0) {
			fprintf(stderr, "iotca-tap: writing stdout: %s\n",
			        strerror(errno));
			return TAP_EXIT_FAIL;
		}
		got += rv == 0;
	}
	if (a->count > 0) {
		fprintf(stderr,
		        "iotca-tap: stopped with %ld of %ld messages on %s\n",
		        got, a->count, a->url);
		return TAP_EXIT_FAIL;
	}
	return TAP_EXIT_OK;
}

int
tap_listen_main(int argc, char **argv)
{
	listen_args a = {0};
	nng_socket s;
	int help = 0, rc, rv;

	if ((rc = listen_parse(argc, argv, &a, &help)) != TAP_EXIT_OK)
		return rc;
	if (help) {
		fputs(listen_help, stdout);
		return TAP_EXIT_OK;
	}
	if ((rv = nng_pull0_open(&s)) != 0) {
		fprintf(stderr, "iotca-tap: cannot open a PULL socket: %s\n",
		        nng_strerror(rv));
		return TAP_EXIT_FAIL;
	}
	nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, TAP_RECV_MAX);
	if ((rv = nng_listen(s, a.url, NULL, 0)) != 0) {
		fprintf(stderr, "iotca-tap: cannot listen on %s: %s\n", a.url,
		        nng_strerror(rv));
		nng_close(s);
		return TAP_EXIT_FAIL;
	}
	fprintf(stderr, "iotca-tap: listening on %s (PULL)\n", a.url);
	rc = listen_loop(s, &a);
	nng_close(s);
	return rc;
}
