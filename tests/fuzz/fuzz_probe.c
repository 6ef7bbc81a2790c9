/*
 * fuzz_probe.c - any bytes through the lib/probe request parser, as a
 * socket would hand them over, and through the Prometheus text helper.
 *
 * The parser sees the input whole and, for inputs up to FUZZ_SWEEP_MAX
 * bytes, every prefix of it, each in an exact-size copy (so a read past
 * len is caught). Promises checked: only OK, ENOENT, EINVAL and ETOOBIG
 * come back, a refusal with a message; the prefixes go "need more"
 * (ENOENT) until the first other answer, which then stays the same for
 * every longer prefix (same request length, or same code and message);
 * an accepted head ends in CRLF CRLF inside the input, its path is
 * printable ASCII starting with '/' without '?', the same bytes parse
 * again to the same request, and one byte less is "need more".
 *
 * When the input holds two NUL bytes, the parts before, between and after
 * them go to iotca_probe_metric as name, help and labels: it appends
 * nothing or exactly HELP, TYPE and one sample line.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "probe/probe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_SWEEP_MAX 512

static void
fuzz_assert(int cond)
{
	if (!cond)
		abort();
}

/* Parses an exact-size copy of data[0..n). */
static iotca_err
fuzz_parse(const uint8_t *data, size_t n, iotca_probe_request *req,
           iotca_errbuf *eb)
{
	char *copy = malloc(n > 0 ? n : 1);
	iotca_err rc;

	fuzz_assert(copy != NULL);
	memcpy(copy, data, n);
	iotca_errbuf_clear(eb);
	rc = iotca_probe_parse_request(copy, n, req, eb);
	free(copy);
	fuzz_assert(rc == IOTCA_OK || rc == IOTCA_ENOENT ||
	            rc == IOTCA_EINVAL || rc == IOTCA_ETOOBIG);
	if (rc == IOTCA_EINVAL || rc == IOTCA_ETOOBIG)
		fuzz_assert(eb->code == rc && eb->msg[0] != '\0');
	return rc;
}

static void
fuzz_check_request(const uint8_t *data, size_t size,
                   const iotca_probe_request *req)
{
	iotca_probe_request again;
	iotca_errbuf eb;
	size_t i, plen = strlen(req->path);

	fuzz_assert(req->len >= 4 && req->len <= size);
	fuzz_assert(memcmp(data + req->len - 4, "\r\n\r\n", 4) == 0);
	fuzz_assert(plen >= 1 && plen < IOTCA_PROBE_PATH_MAX);
	fuzz_assert(req->path[0] == '/');
	for (i = 0; i < plen; i++)
		fuzz_assert(req->path[i] > 0x20 && req->path[i] < 0x7f &&
		            req->path[i] != '?');
	fuzz_assert(req->method == IOTCA_PROBE_GET ||
	            req->method == IOTCA_PROBE_HEAD ||
	            req->method == IOTCA_PROBE_OTHER);
	fuzz_assert(req->minor_version == 0 || req->minor_version == 1);
	fuzz_assert(fuzz_parse(data, req->len, &again, &eb) == IOTCA_OK);
	fuzz_assert(again.len == req->len && again.method == req->method &&
	            again.minor_version == req->minor_version &&
	            strcmp(again.path, req->path) == 0);
	fuzz_assert(fuzz_parse(data, req->len - 1, &again, &eb) ==
	            IOTCA_ENOENT);
}

/* Every prefix: ENOENT until the first other answer, then that one. */
static void
fuzz_sweep(const uint8_t *data, size_t size, iotca_err whole,
           const iotca_probe_request *req, const iotca_errbuf *eb)
{
	iotca_probe_request r;
	iotca_errbuf e;
	iotca_err first = IOTCA_ENOENT, rc;
	size_t n;

	for (n = 0; n <= size; n++) {
		rc = fuzz_parse(data, n, &r, &e);
		if (first == IOTCA_ENOENT) {
			first = rc;
			continue;
		}
		fuzz_assert(rc == first);
		if (rc == IOTCA_OK)
			fuzz_assert(r.len == req->len);
		else
			fuzz_assert(strcmp(e.msg, eb->msg) == 0);
	}
	fuzz_assert(first == whole);
}

/* name NUL help NUL labels: nothing, or exactly three whole lines. */
static void
fuzz_metric(const uint8_t *data, size_t size)
{
	const char *name = (const char *)data, *help, *labels;
	char *copy = malloc(size + 1);
	size_t i, lines = 0;
	iotca_buf b;
	iotca_err rc;

	fuzz_assert(copy != NULL);
	memcpy(copy, data, size);
	copy[size] = '\0';
	name = copy;
	help = name + strlen(name) + 1;
	if (help > copy + size) {
		free(copy);
		return;
	}
	labels = help + strlen(help) + 1;
	if (labels > copy + size) {
		free(copy);
		return;
	}
	iotca_buf_init(&b, 4096);
	rc = iotca_probe_metric(&b, name, help, "gauge", labels, 1.5);
	fuzz_assert(rc == IOTCA_OK || rc == IOTCA_EINVAL ||
	            rc == IOTCA_ETOOBIG || rc == IOTCA_ENOMEM);
	if (rc != IOTCA_OK) {
		fuzz_assert(b.len == 0);
	} else {
		for (i = 0; i < b.len; i++)
			lines += b.data[i] == '\n';
		fuzz_assert(lines == 3 && b.data[b.len - 1] == '\n');
		fuzz_assert(strncmp(b.data, "# HELP ", 7) == 0);
	}
	iotca_buf_free(&b);
	free(copy);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	iotca_probe_request req;
	iotca_errbuf eb;
	iotca_err rc;

	rc = fuzz_parse(data, size, &req, &eb);
	if (rc == IOTCA_OK)
		fuzz_check_request(data, size, &req);
	if (size <= FUZZ_SWEEP_MAX)
		fuzz_sweep(data, size, rc, &req, &eb);
	fuzz_metric(data, size);
	return 0;
}
