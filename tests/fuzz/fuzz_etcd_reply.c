/*
 * fuzz_etcd_reply.c - feeds one input to every etcd reply parser.
 *
 * The input is taken whole by each unary parser, then split at newlines
 * and fed line by line to the watch parser, as the watch thread does with
 * a stream. Every parser must return a code, never crash or leak.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "etcd/etcd_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_watch_lines(const char *p, size_t size)
{
	const char *nl;
	etcd_watch_msg m;
	iotca_errbuf eb;

	while (size > 0) {
		nl = memchr(p, '\n', size);
		size_t n = nl ? (size_t)(nl - p) : size;
		if (etcd_parse_watch(p, n, &m, &eb) == IOTCA_OK)
			etcd_watch_msg_free(&m);
		if (nl == NULL)
			break;
		size -= n + 1;
		p = nl + 1;
	}
}

static void
fuzz_unary(const char *p, size_t size)
{
	iotca_etcd_range_result r;
	iotca_etcd_txn_result t;
	iotca_errbuf eb;
	int64_t a, b;
	char msg[64];
	int code;

	if (etcd_parse_range(p, size, &r, &eb) == IOTCA_OK)
		iotca_etcd_range_result_free(&r);
	if (etcd_parse_txn(p, size, &t, &eb) == IOTCA_OK)
		iotca_etcd_txn_result_free(&t);
	etcd_parse_put(p, size, &a, &eb);
	etcd_parse_delete(p, size, &a, NULL);
	etcd_parse_lease_grant(p, size, &a, &b, &eb);
	etcd_parse_lease_keepalive(p, size, &a, NULL);
	etcd_parse_health(p, size, &eb);
	if (etcd_parse_error(p, size, &code, msg, sizeof(msg)))
		etcd_error_map(code, msg);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	size_t n;
	char *d;

	fuzz_unary(p, size);
	fuzz_watch_lines(p, size);
	if (etcd_b64_decode(p, size, &d, &n) == IOTCA_OK)
		free(d);
	return 0;
}
