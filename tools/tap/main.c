/*
 * main.c - iotca-tap: --help and dispatch to the verbs, and the small
 * helpers they share.
 *
 *   iotca-tap listen URL [options]
 *   iotca-tap send URL --pk PK --dn DN --topic TOPIC [options]
 *
 * Exit status: 0 done, 1 a timeout or a failure (NNG, files), 2 the
 * command line is wrong.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sig/sig.h"
#include "tap.h"

static void
tap_help(FILE *f)
{
	fprintf(f,
	        "usage: iotca-tap listen URL [--count N] [--timeout-ms MS]\n"
	        "       iotca-tap send URL --pk PK --dn DN --topic TOPIC "
	        "[--qos 0|1]\n"
	        "                 [--payload TEXT | --payload-file FILE]\n"
	        "                 [--count N] [--repeat-ms MS] "
	        "[--wait-ms MS]\n"
	        "       iotca-tap [VERB] --help\n"
	        "\n"
	        "An operator's window on the NNG message plane of iotca-edge "
	        "(see\nproto/iotca/v1/device_message.proto). The tap takes "
	        "the platform's side:\n"
	        "\n"
	        "  listen  listens with PULL where edges dial "
	        "IOTCA_EDGE_UPSTREAM and prints\n"
	        "          every DeviceMessage as one JSON line on stdout\n"
	        "  send    listens with PUB where edges dial "
	        "IOTCA_EDGE_DOWNSTREAM and\n"
	        "          publishes a DownstreamMessage for one device\n"
	        "\n"
	        "URL is an NNG address such as tcp://0.0.0.0:5555. Only one "
	        "process can listen\non it: stop the platform's consumer "
	        "first, or point a test edge at the tap.\n"
	        "Exit status: 0 done; 1 timeout or failure, with "
	        "\"iotca-tap: ...\" on stderr;\n2 usage error.\n");
}

int
tap_usage_error(const char *verb, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "iotca-tap %s: ", verb);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "; see 'iotca-tap %s --help'\n", verb);
	return TAP_EXIT_USAGE;
}

int
tap_parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

int64_t
tap_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
tap_sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000,
	                      .tv_nsec = (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

int
main(int argc, char **argv)
{
	/* Before NNG starts its threads: SIGINT and SIGTERM are waited for,
	 * never delivered asynchronously (the verbs poll for them). */
	iotca_sig_block_termination();
	if (argc < 2) {
		tap_help(stderr);
		return TAP_EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		tap_help(stdout);
		return TAP_EXIT_OK;
	}
	if (strcmp(argv[1], "listen") == 0)
		return tap_listen_main(argc - 1, argv + 1);
	if (strcmp(argv[1], "send") == 0)
		return tap_send_main(argc - 1, argv + 1);
	fprintf(stderr,
	        "iotca-tap: unknown verb '%s'; use listen or send (see "
	        "'iotca-tap --help')\n",
	        argv[1]);
	return TAP_EXIT_USAGE;
}
