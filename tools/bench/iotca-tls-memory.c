/*
 * iotca-tls-memory - how much heap OpenSSL itself holds per idle,
 * authenticated server-side TLS connection, and where.
 *
 * It makes N mutual-TLS handshakes in this process over socketpairs, with
 * the TLS settings of iotca-edge that bear on memory (released idle
 * buffers, no session cache, no tickets, client certificate required),
 * frees each client side, and keeps the N server SSL objects: what they
 * hold is counted exactly by allocator hooks (CRYPTO_set_mem_functions),
 * without malloc's own overhead, and summed by the line of OpenSSL that
 * allocated it. This is the floor below which no server built on OpenSSL
 * can hold an idle TLS session, whatever it does around it. It also says
 * whether the kernel offers TLS (kTLS), the one way to drop the SSL
 * object of an idle connection.
 *
 * usage: iotca-tls-memory --cert SRV.pem --key SRV.key --client-cert C.pem
 *                         --client-key C.key [--tls 1.2|1.3] [-n N]
 * bench/tls_session_memory.sh makes the certificates and runs it.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#define SLOTS    (1u << 20) /* live allocations tracked at once */
#define SITES    4096
#define TOP      12
#define HS_TURNS 50

/* One live allocation: open addressing by address; TOMB marks a freed
 * slot so that probing goes on past it. */
typedef struct mem_rec {
	void *p;
	size_t n;
	const char *file;
	int line;
	int counted; /* made while the measured connections were set up */
} mem_rec;

#define TOMB ((void *)1)

static mem_rec *recs;
static int counting;
static size_t live_counted;

static size_t
rec_slot(const void *p)
{
	return (size_t)(((uintptr_t)p >> 4) * 2654435761u) & (SLOTS - 1);
}

static void
rec_add(void *p, size_t n, const char *file, int line)
{
	size_t i = rec_slot(p);

	while (recs[i].p != NULL && recs[i].p != TOMB)
		i = (i + 1) & (SLOTS - 1);
	recs[i] = (mem_rec){p, n, file, line, counting};
	if (counting)
		live_counted += n;
}

static void
rec_del(void *p)
{
	size_t i = rec_slot(p);

	for (; recs[i].p != NULL; i = (i + 1) & (SLOTS - 1))
		if (recs[i].p == p) {
			if (recs[i].counted)
				live_counted -= recs[i].n;
			recs[i].p = TOMB;
			return;
		}
}

static void *
hook_malloc(size_t n, const char *file, int line)
{
	void *p = malloc(n);

	if (p != NULL)
		rec_add(p, n, file, line);
	return p;
}

static void *
hook_realloc(void *q, size_t n, const char *file, int line)
{
	void *p;

	if (q != NULL)
		rec_del(q);
	if ((p = realloc(q, n)) != NULL)
		rec_add(p, n, file, line);
	else if (q != NULL)
		rec_add(q, 0, file, line); /* still there, size unknown */
	return p;
}

static void
hook_free(void *q, const char *file, int line)
{
	(void)file;
	(void)line;
	if (q != NULL)
		rec_del(q);
	free(q);
}

static int
accept_any(int ok, X509_STORE_CTX *ctx)
{
	(void)ok;
	(void)ctx;
	return 1; /* what is measured is the session, not the trust */
}

static SSL_CTX *
ctx_new(int server, const char *cert, const char *key, int tls13)
{
	SSL_CTX *ctx =
	    SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	int v = tls13 ? TLS1_3_VERSION : TLS1_2_VERSION;

	if (ctx == NULL || SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		ERR_print_errors_fp(stderr);
		exit(2);
	}
	SSL_CTX_set_min_proto_version(ctx, v);
	SSL_CTX_set_max_proto_version(ctx, v);
	if (server) {
		SSL_CTX_set_verify(
		    ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
		    accept_any);
		SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
		SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
		SSL_CTX_set_num_tickets(ctx, 0);
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	}
	return ctx;
}

/* One handshake; returns the server side, idle, its peer gone. */
static SSL *
handshake(SSL_CTX *sc, SSL_CTX *cc)
{
	SSL *s = SSL_new(sc), *c = SSL_new(cc);
	char none[1];
	int sv[2], i, a = 0, b = 0;

	if (s == NULL || c == NULL ||
	    socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
		perror("socketpair");
		exit(2);
	}
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	SSL_set_fd(s, sv[0]);
	SSL_set_fd(c, sv[1]);
	SSL_set_accept_state(s);
	SSL_set_connect_state(c);
	for (i = 0; i < HS_TURNS && !(a == 1 && b == 1); i++) {
		a = SSL_do_handshake(c);
		b = SSL_do_handshake(s);
	}
	SSL_read(c, none, 0);
	if (a != 1 || b != 1) {
		fprintf(stderr, "handshake failed\n");
		ERR_print_errors_fp(stderr);
		exit(2);
	}
	SSL_free(c);
	close(sv[1]);
	return s;
}

typedef struct site {
	const char *file;
	int line;
	size_t bytes, count;
} site;

static int
site_cmp(const void *a, const void *b)
{
	const site *x = a, *y = b;

	return x->bytes < y->bytes ? 1 : x->bytes > y->bytes ? -1 : 0;
}

/* Sums what the counted allocations still hold, by site. */
static void
report_sites(int n)
{
	static site s[SITES];
	size_t i, ns = 0, k;

	for (i = 0; i < SLOTS; i++) {
		mem_rec *r = &recs[i];
		if (r->p == NULL || r->p == TOMB || !r->counted)
			continue;
		for (k = 0; k < ns; k++)
			if (s[k].file == r->file && s[k].line == r->line)
				break;
		if (k == ns && ns < SITES)
			s[ns++] = (site){r->file, r->line, 0, 0};
		if (k < ns) {
			s[k].bytes += r->n;
			s[k].count++;
		}
	}
	qsort(s, ns, sizeof(*s), site_cmp);
	printf("bytes/conn  allocs/conn  allocated at\n");
	for (k = 0; k < ns && k < TOP; k++)
		printf("%10.0f  %11.1f  %s:%d\n", (double)s[k].bytes / n,
		       (double)s[k].count / n, s[k].file ? s[k].file : "?",
		       s[k].line);
}

static void
report_ktls(void)
{
	char ulp[256] = "";
	FILE *f = fopen("/proc/sys/net/ipv4/tcp_available_ulp", "r");

	if (f != NULL) {
		if (fgets(ulp, sizeof(ulp), f) == NULL)
			ulp[0] = '\0';
		fclose(f);
	}
	ulp[strcspn(ulp, "\n")] = '\0';
	printf("kernel TLS (kTLS): %s (tcp_available_ulp: \"%s\")\n",
	       strstr(ulp, "tls") ? "available" : "not available", ulp);
}

static const char *
arg(int argc, char **argv, const char *name, const char *def)
{
	int i;

	for (i = 1; i + 1 < argc; i++)
		if (strcmp(argv[i], name) == 0)
			return argv[i + 1];
	return def;
}

int
main(int argc, char **argv)
{
	const char *cert = arg(argc, argv, "--cert", NULL),
	           *key = arg(argc, argv, "--key", NULL),
	           *ccert = arg(argc, argv, "--client-cert", NULL),
	           *ckey = arg(argc, argv, "--client-key", NULL);
	int n = atoi(arg(argc, argv, "-n", "1000")),
	    tls13 = strcmp(arg(argc, argv, "--tls", "1.3"), "1.2") != 0, i;
	struct rlimit fds;
	SSL_CTX *sc, *cc;
	SSL **keep;

	if (!cert || !key || !ccert || !ckey || n < 1 || n > 10000) {
		fprintf(
		    stderr,
		    "usage: iotca-tls-memory --cert SRV.pem --key SRV.key "
		    "--client-cert C.pem --client-key C.key [--tls 1.2|1.3] "
		    "[-n 1..10000]\n");
		return 2;
	}
	if (getrlimit(RLIMIT_NOFILE, &fds) == 0) { /* one socket a connection */
		fds.rlim_cur = fds.rlim_max;
		setrlimit(RLIMIT_NOFILE, &fds);
	}
	if ((recs = calloc(SLOTS, sizeof(*recs))) == NULL ||
	    (keep = calloc((size_t)n, sizeof(*keep))) == NULL ||
	    !CRYPTO_set_mem_functions(hook_malloc, hook_realloc, hook_free)) {
		fprintf(stderr, "cannot set up the allocator hooks\n");
		return 2;
	}
	sc = ctx_new(1, cert, key, tls13);
	cc = ctx_new(0, ccert, ckey, tls13);
	for (i = 0; i < 20; i++) /* warm-up: caches of the library */
		SSL_free(handshake(sc, cc));
	counting = 1;
	for (i = 0; i < n; i++)
		keep[i] = handshake(sc, cc);
	counting = 0;
	printf("%s, %s, %d idle server connections (client certificate "
	       "required, idle buffers released, no session cache or "
	       "tickets)\n",
	       OpenSSL_version(OPENSSL_VERSION), SSL_get_version(keep[0]), n);
	printf("OpenSSL heap per connection: %.2f KiB (exact, without "
	       "malloc's overhead)\n",
	       (double)live_counted / n / 1024.0);
	report_sites(n);
	report_ktls();
	for (i = 0; i < n; i++)
		SSL_free(keep[i]);
	free(keep);
	SSL_CTX_free(sc);
	SSL_CTX_free(cc);
	return 0; /* recs stays: OpenSSL frees through the hooks at exit */
}
