/*
 * iotca-bench - MQTT 3.1.1 over mutual TLS connection load.
 *
 * Opens N connections at concurrency C, each with the next device
 * certificate of a directory, waits for CONNACK (and, on iotca-edge, for the
 * identity PUBLISH), and reports connections/s, connect-to-CONNACK
 * percentiles and, given the server's pid, the server's CPU time per
 * connection and its memory per idle session, read from /proc so that the
 * load generator's own cost is left out. Run it at `nice -n 19` next to the
 * server (see docs/benchmarks.md).
 *
 * One thread, one epoll set, non-blocking sockets and OpenSSL client
 * connections. One SSL_CTX holds the TLS settings; each connection gets its
 * device certificate and key with SSL_use_cert_and_key from objects parsed
 * once at start. A connection moves through
 *
 *   TCP connect -> TLS handshake -> CONNECT sent -> CONNACK
 *     [-> identity PUBLISH] -> DISCONNECT and close   (or held, --hold)
 *
 * and its outcome is counted once: ok, refused (CONNACK return code not 0)
 * or failed, with a short reason.
 *
 * With --publish-ms, once all N are held, every held connection publishes
 * QoS 1 messages on the topic its identity message names, spread evenly
 * over the interval, for --duration seconds; then the run waits for the
 * PUBACKs still due. Each connection keeps a window of BENCH_WINDOW
 * messages awaiting PUBACK (a bitmap over the sequence numbers), so every
 * PUBACK is matched to exactly one message and counted once. A held
 * connection the server closes is counted as lost and the run goes on.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define BENCH_PKT_MAX     2048 /* largest MQTT packet taken from a server */
#define BENCH_OUT_MAX     512  /* queued outgoing bytes per connection */
#define BENCH_REASONS_MAX 32   /* distinct failure reasons kept */
#define BENCH_REASON_LEN  128
#define BENCH_EVENTS      256
#define BENCH_CPU_SETTLE  100 /* ms given to the server before reading CPU */
#define BENCH_SPARE_FDS   32  /* files the process needs besides sockets */
#define IDENTITY_TOPIC    "/ext/auth/identity/response"

/* --publish-ms */
#define BENCH_TOPIC_MAX 128   /* the publish topic, with its NUL */
#define BENCH_WINDOW    64    /* QoS 1 messages awaiting PUBACK, per conn */
#define BENCH_DRAIN_MS  10000 /* wait for due PUBACKs after --duration */
#define BENCH_LAT_MAX   (1UL << 22)    /* PUBACK latencies kept (32 MiB) */
#define PUBLISH_SUFFIX  "/user/update" /* after /<productKey>/<deviceName> */

/* MQTT 3.1.1 control packet types (high nibble of the first byte). */
enum {
	MQTT_CONNECT = 1,
	MQTT_CONNACK = 2,
	MQTT_PUBLISH = 3,
	MQTT_PUBACK = 4,
	MQTT_PINGREQ = 12,
	MQTT_PINGRESP = 13,
	MQTT_DISCONNECT = 14,
};

typedef struct bench_opts {
	const char *host;
	const char *port;
	const char *ca_file; /* NULL with --insecure */
	int insecure;
	const char *certs_dir;
	unsigned long n;      /* measured connections */
	unsigned long c;      /* connections being opened at once */
	unsigned long warmup; /* unmeasured connections first */
	int tls_version;      /* TLS1_2_VERSION or TLS1_3_VERSION */
	int resume, identity, hold, json;
	long server_pid; /* 0: no server figures */
	unsigned keepalive;
	long timeout_ms;
	long settle_ms;
	long publish_ms;          /* 0: no publishing */
	unsigned long duration_s; /* publishing time with --publish-ms */
	const char *acked_file;   /* NULL: no list of acknowledged messages */
} bench_opts;

/* A device certificate and its key, parsed once; session is the newest
 * resumable session the server gave a connection with this certificate. */
typedef struct bench_cert {
	X509 *x509;
	EVP_PKEY *key;
	SSL_SESSION *session;
} bench_cert;

typedef struct bench_reason {
	char text[BENCH_REASON_LEN];
	unsigned long count;
} bench_reason;

/* Counts by reason; other counts those past BENCH_REASONS_MAX kinds. */
typedef struct bench_reasons {
	bench_reason r[BENCH_REASONS_MAX];
	size_t n;
	unsigned long other;
} bench_reasons;

/* Outcomes of one phase (warm-up or measured). */
typedef struct bench_stats {
	unsigned long attempted, ok, refused, failed, resumed, dropped;
	unsigned long refused_rc[256];    /* by CONNACK return code */
	bench_reasons failures;           /* why connections failed */
	bench_reasons drops;              /* why held connections ended */
	double *connack_ms, *identity_ms; /* NULL in the warm-up phase */
	size_t nconnack, nidentity;
} bench_stats;

/* The --publish-ms phase: its schedule and its counts. The schedule is
 * round r, position k of order: t0 + r * interval + k * interval / norder,
 * so the connections' publishes are spread evenly over each interval. */
typedef struct bench_pub {
	int active;    /* publishing now */
	size_t *order; /* slots of the held connections */
	size_t norder, cursor;
	uint64_t round;
	int64_t t0_ns, stop_ns; /* publishes are due from t0 to before stop */
	double wall_s;          /* publishing time */
	unsigned long published, acked, skipped, unexpected, released;
	unsigned long pending; /* awaiting PUBACK on open connections */
	double *ack_ms;        /* publish -> PUBACK, up to BENCH_LAT_MAX */
	size_t nack_ms, cap_ack_ms;
	FILE *acked_out; /* --acked-file, or NULL */
} bench_pub;

typedef enum conn_state {
	CONN_FREE,
	CONN_TCP,      /* non-blocking connect in progress */
	CONN_TLS,      /* TLS handshake */
	CONN_CONNACK,  /* CONNECT queued or sent, waiting for CONNACK */
	CONN_IDENTITY, /* CONNACK 0, waiting for the identity PUBLISH */
	CONN_HELD,     /* connected and kept open (--hold) */
} conn_state;

typedef struct conn {
	struct conn *prev, *next; /* on bench.busy or bench.held */
	conn_state state;
	int fd;
	SSL *ssl;
	size_t cert;
	unsigned long id;
	int hold;        /* keep open after connecting */
	bench_stats *st; /* where the outcome is counted */
	int64_t t0_ns;   /* connect() called */
	int64_t due_ns;  /* timeout (opening) or next PINGREQ (held) */
	/* --publish-ms, by sequence number (1, 2, ...; the packet id is seq,
	 * wrapped past 65535): pub_seq is the last one sent, every one up
	 * to ack_low is acknowledged, and bit i of ack_bits is set when
	 * ack_low + 1 + i is. */
	uint32_t pub_seq, ack_low;
	uint64_t ack_bits;
	unsigned inflight;             /* sent and not acknowledged */
	int64_t sent_ns[BENCH_WINDOW]; /* by seq % BENCH_WINDOW */
	char topic[BENCH_TOPIC_MAX];   /* from the identity, or "" */
	size_t inlen, outlen;
	uint8_t in[BENCH_PKT_MAX];
	uint8_t out[BENCH_OUT_MAX];
} conn;

typedef struct conn_list {
	conn *head, *tail;
} conn_list;

typedef struct bench {
	bench_opts o;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	SSL_CTX *ctx;
	bench_cert *certs;
	size_t ncerts;
	conn *slots;
	size_t nslots;
	size_t *free_slots;
	size_t nfree;
	int ep;
	conn_list busy; /* being opened, oldest first */
	conn_list held; /* held open, next PINGREQ first */
	unsigned long nbusy;
	unsigned long next_id; /* connection number, across phases */
	bench_stats warm, meas;
	double wall_s;
	double cpu0_us, cpu1_us; /* server utime+stime; -1 unknown */
	long rss0_kib, rss1_kib; /* server VmRSS around the measured phase */
	long rss_held_kib;       /* with --hold, after the settle delay */
	unsigned long held_sessions;
	bench_pub pub;
} bench;

static const char usage_text[] =
    "usage: iotca-bench --certs DIR (--ca FILE | --insecure) [options]\n"
    "\n"
    "Opens N MQTT 3.1.1 connections over mutual TLS, C at a time, each with\n"
    "the next device certificate of DIR, and reports connections/s,\n"
    "connect-to-CONNACK latency and, with --server-pid, the server's CPU\n"
    "time per connection and memory (from /proc, so this program's own cost\n"
    "is left out: run it at `nice -n 19`).\n"
    "\n"
    "  --host HOST        server address (default 127.0.0.1)\n"
    "  -p, --port PORT    server port (default 8883)\n"
    "  --ca FILE          CA certificate(s) the server's certificate must\n"
    "                     chain to; its name must match HOST\n"
    "  --insecure         do not verify the server's certificate\n"
    "  --certs DIR        device certificates: every *.cer or *.crt (PEM or\n"
    "                     DER) with its key in the same-named *.key; used in\n"
    "                     turn, connection i taking certificate i mod count\n"
    "  -n N               connections to measure (default 1000)\n"
    "  -c C               connections being opened at once (default 8)\n"
    "  --warmup W         connections made first and not measured\n"
    "                     (default 0; with --resume at least one per\n"
    "                     certificate, to get its session)\n"
    "  --tls 1.2|1.3      TLS version (default 1.3)\n"
    "  --resume           resume the newest session of each certificate\n"
    "                     (TLS 1.3 tickets arrive after the handshake: a\n"
    "                     connection ends only after CONNACK)\n"
    "  --identity         after CONNACK 0 also wait for the PUBLISH on\n"
    "                     " IDENTITY_TOPIC "\n"
    "                     and check it is JSON with productKey and\n"
    "                     deviceName (iotca-edge)\n"
    "  --server-pid PID   server process: CPU us per connection from\n"
    "                     utime+stime in /proc/PID/stat around the measured\n"
    "                     phase, memory from VmRSS in /proc/PID/status\n"
    "  --hold             keep the N connections open once connected,\n"
    "                     sending PINGREQ every keep-alive; after\n"
    "                     --settle-ms report the server's RSS growth per\n"
    "                     session, then close them all with DISCONNECT\n"
    "  --settle-ms MS     wait before reading memory with --hold\n"
    "                     (default 2000)\n"
    "  --publish-ms MS    with --hold and --identity: once all N are held,\n"
    "                     each publishes one QoS 1 PUBLISH every MS ms on\n"
    "                     /<productKey>/<deviceName>" PUBLISH_SUFFIX "\n"
    "                     (from its identity message), payload\n"
    "                     \"<i>:<seq>\" (i as in its client id, seq from 1,\n"
    "                     also the packet id), the connections' publishes\n"
    "                     spread over the interval; at most 64 awaiting\n"
    "                     PUBACK per connection (more are skipped, and\n"
    "                     counted). Takes the place of --settle-ms\n"
    "  --duration S       publish for S seconds (default 10), then wait up\n"
    "                     to 10 s for the PUBACKs still due\n"
    "  --acked-file FILE  write one line \"<i>:<seq>\" per PUBACK to FILE\n"
    "  --keepalive S      MQTT keep-alive in CONNECT (default 60, 0 = off)\n"
    "  --timeout-ms MS    limit from connect() to CONNACK (and identity)\n"
    "                     for each connection (default 10000)\n"
    "  --json             print the report as one JSON object\n"
    "  --help             this text\n"
    "\n"
    "Each connection: TCP connect (TCP_NODELAY), TLS handshake, CONNECT\n"
    "(clean session, client id \"bench-<i>|securemode=2|\"), CONNACK,\n"
    "[identity], DISCONNECT and close. CONNACK with a return code other\n"
    "than 0 counts as refused; anything else that stops a connection\n"
    "(TCP or TLS error, close, timeout, bad identity) as failed, with the\n"
    "reason. The soft open-files limit is raised to the hard one.\n"
    "\n"
    "A held connection that ends (the server closed it, say on SIGTERM)\n"
    "counts as lost, with the reason, and the run goes on without it; with\n"
    "--publish-ms its messages awaiting PUBACK count as unacknowledged.\n"
    "\n"
    "Exit status: 0 when every measured connection got CONNACK 0 (and its\n"
    "identity), none was lost and every message published was\n"
    "acknowledged, 1 when not, 2 when the run could not be made.\n";

/* ------------------------------------------------------------ utilities */

static int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void
die(const char *fmt, ...)
{
	va_list ap;

	fputs("iotca-bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

/* A whole decimal number in [min, max], or exit with the option's name. */
static unsigned long
parse_num(const char *opt, const char *s, unsigned long min, unsigned long max)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < min ||
	    v > max)
		die("%s takes a number from %lu to %lu, not \"%s\"", opt, min,
		    max, s);
	return v;
}

/* utime + stime of a process in microseconds; -1 if unknown. */
static double
proc_cpu_us(long pid)
{
	char path[64], buf[2048], *p;
	unsigned long ut, stt;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* After the ")" that ends the command name, utime and stime are the
	 * 12th and 13th fields. */
	if ((p = strrchr(buf, ')')) == NULL ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
	           &ut, &stt) != 2)
		return -1;
	return (double)(ut + stt) * 1e6 / (double)sysconf(_SC_CLK_TCK);
}

/* VmRSS of a process in KiB; -1 if unknown. */
static long
proc_rss_kib(long pid)
{
	char path[64], line[256];
	long kib = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/status", pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

/* Whether host is an IPv4 or IPv6 address (not a name). */
static int
host_is_ip(const char *host)
{
	unsigned char addr[16];

	return inet_pton(AF_INET, host, addr) == 1 ||
	       inet_pton(AF_INET6, host, addr) == 1;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Raises the soft open-files limit to the hard one; returns the limit. */
static unsigned long
raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 1024;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	return rl.rlim_cur == RLIM_INFINITY ? 1UL << 20
	                                    : (unsigned long)rl.rlim_cur;
}

/* ---------------------------------------------------------- conn lists */

static void
list_push(conn_list *l, conn *c)
{
	c->next = NULL;
	c->prev = l->tail;
	if (l->tail != NULL)
		l->tail->next = c;
	else
		l->head = c;
	l->tail = c;
}

static void
list_remove(conn_list *l, conn *c)
{
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		l->head = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	else
		l->tail = c->prev;
	c->prev = c->next = NULL;
}

/* ----------------------------------------------------------- MQTT wire */

/* Appends a remaining-length field; returns its size. */
static size_t
mqtt_put_len(uint8_t *p, size_t n)
{
	size_t i = 0;

	do {
		uint8_t b = (uint8_t)(n % 128);

		n /= 128;
		p[i++] = (uint8_t)(n > 0 ? b | 0x80 : b);
	} while (n > 0 && i < 4);
	return i;
}

/* CONNECT, MQTT 3.1.1, clean session, no will, user name or password.
 * Returns its size, 0 if it does not fit in cap. */
static size_t
mqtt_connect(uint8_t *p, size_t cap, const char *client_id, unsigned keepalive)
{
	static const uint8_t vh[] = {0, 4, 'M', 'Q', 'T', 'T', 4, 0x02};
	size_t idlen = strlen(client_id), rem = sizeof(vh) + 2 + 2 + idlen;
	size_t off;

	if (rem + 5 > cap || idlen > 65535)
		return 0;
	p[0] = MQTT_CONNECT << 4;
	off = 1 + mqtt_put_len(p + 1, rem);
	memcpy(p + off, vh, sizeof(vh));
	off += sizeof(vh);
	p[off++] = (uint8_t)(keepalive >> 8);
	p[off++] = (uint8_t)keepalive;
	p[off++] = (uint8_t)(idlen >> 8);
	p[off++] = (uint8_t)idlen;
	memcpy(p + off, client_id, idlen);
	return off + idlen;
}

/* Size of the first whole packet in buf and, in *hdr, of its fixed
 * header; 0 if more bytes are needed; -1 if malformed or over cap. */
static long
mqtt_frame(const uint8_t *buf, size_t len, size_t cap, size_t *hdr)
{
	size_t rem = 0, mul = 1, i;

	for (i = 1; i < 5; i++) {
		if (i >= len)
			return 0;
		rem += (size_t)(buf[i] & 0x7f) * mul;
		mul *= 128;
		if ((buf[i] & 0x80) == 0)
			break;
	}
	if (i == 5)
		return -1;
	*hdr = i + 1;
	if (*hdr + rem > cap)
		return -1;
	return *hdr + rem <= len ? (long)(*hdr + rem) : 0;
}

/* Whether an identity payload is a JSON object with non-empty string
 * productKey and deviceName; if so, topic gets the device's publish topic
 * ("" when it does not fit in cap). */
static int
identity_parse(const uint8_t *payload, size_t len, char *topic, size_t cap)
{
	json_t *root = json_loadb((const char *)payload, len, 0, NULL);
	const char *pk, *dn;
	int ok, n;

	if (root == NULL)
		return 0;
	pk = json_string_value(json_object_get(root, "productKey"));
	dn = json_string_value(json_object_get(root, "deviceName"));
	ok = pk != NULL && dn != NULL && pk[0] != '\0' && dn[0] != '\0';
	if (ok) {
		n = snprintf(topic, cap, "/%s/%s" PUBLISH_SUFFIX, pk, dn);
		if (n < 0 || (size_t)n >= cap)
			topic[0] = '\0';
	}
	json_decref(root);
	return ok;
}

/* A QoS 1 PUBLISH; returns its size, 0 if it does not fit in cap. */
static size_t
mqtt_publish_qos1(uint8_t *p, size_t cap, const char *topic, uint16_t id,
                  const char *payload)
{
	size_t tlen = strlen(topic), plen = strlen(payload);
	size_t rem = 2 + tlen + 2 + plen, off;

	if (rem + 5 > cap)
		return 0;
	p[0] = MQTT_PUBLISH << 4 | 1 << 1;
	off = 1 + mqtt_put_len(p + 1, rem);
	p[off++] = (uint8_t)(tlen >> 8);
	p[off++] = (uint8_t)tlen;
	memcpy(p + off, topic, tlen);
	off += tlen;
	p[off++] = (uint8_t)(id >> 8);
	p[off++] = (uint8_t)id;
	memcpy(p + off, payload, plen);
	return off + plen;
}

/* ------------------------------------------------------------ outcomes */

static void
reasons_count(bench_reasons *rs, const char *text)
{
	size_t i;

	for (i = 0; i < rs->n; i++)
		if (strcmp(rs->r[i].text, text) == 0) {
			rs->r[i].count++;
			return;
		}
	if (rs->n == BENCH_REASONS_MAX) {
		rs->other++;
		return;
	}
	snprintf(rs->r[rs->n].text, BENCH_REASON_LEN, "%s", text);
	rs->r[rs->n++].count = 1;
}

/* Takes the connection off its list and frees its slot; the socket is
 * closed and the SSL freed. Sends DISCONNECT and close_notify first when
 * clean (best effort: a full socket buffer drops them). */
static void
conn_release(bench *b, conn *c, int clean)
{
	static const uint8_t disconnect[] = {MQTT_DISCONNECT << 4, 0};

	if (c->state == CONN_HELD) {
		list_remove(&b->held, c);
	} else {
		list_remove(&b->busy, c);
		b->nbusy--;
	}
	b->pub.pending -= c->inflight; /* those will not be acknowledged */
	if (c->ssl != NULL) {
		if (clean) {
			SSL_write(c->ssl, disconnect, sizeof(disconnect));
			SSL_shutdown(c->ssl);
		}
		ERR_clear_error();
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	close(c->fd);
	c->fd = -1;
	c->state = CONN_FREE;
	b->free_slots[b->nfree++] = (size_t)(c - b->slots);
}

/* Counts a failure with its reason and releases the connection; a held
 * connection that breaks counts as dropped (lost). */
static void
conn_fail(bench *b, conn *c, const char *fmt, ...)
{
	char text[BENCH_REASON_LEN];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (c->state == CONN_HELD) {
		c->st->dropped++;
		reasons_count(&c->st->drops, text);
	} else {
		c->st->failed++;
		reasons_count(&c->st->failures, text);
	}
	conn_release(b, c, 0);
}

/* Fails a connection after an SSL call returned ret: the OpenSSL reason,
 * the certificate check's result or the socket's errno. */
static void
conn_fail_tls(bench *b, conn *c, int ret, const char *stage)
{
	int err = SSL_get_error(c->ssl, ret), syserr = errno;
	unsigned long e = ERR_peek_error();
	const char *why;
	long vr;

	if (err == SSL_ERROR_SSL &&
	    ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
		vr = SSL_get_verify_result(c->ssl);
		conn_fail(b, c, "%s: server certificate: %s", stage,
		          X509_verify_cert_error_string(vr));
	} else if (err == SSL_ERROR_SSL && e != 0 &&
	           (why = ERR_reason_error_string(e)) != NULL) {
		conn_fail(b, c, "%s: %s", stage, why);
	} else if (err == SSL_ERROR_ZERO_RETURN ||
	           (err == SSL_ERROR_SYSCALL && syserr == 0) ||
	           (err == SSL_ERROR_SSL && e == 0)) {
		conn_fail(b, c, "%s: closed by the server", stage);
	} else if (err == SSL_ERROR_SYSCALL) {
		conn_fail(b, c, "%s: %s", stage, strerror(syserr));
	} else {
		conn_fail(b, c, "%s: SSL error %d", stage, err);
	}
}

/* The connection got CONNACK 0 (and its identity): count it, then hold
 * it or close it. */
static void
conn_connected(bench *b, conn *c)
{
	c->st->ok++;
	if (SSL_session_reused(c->ssl))
		c->st->resumed++;
	if (!c->hold) {
		conn_release(b, c, 1);
		return;
	}
	list_remove(&b->busy, c);
	b->nbusy--;
	c->state = CONN_HELD;
	c->due_ns = b->o.keepalive > 0
	                ? now_ns() + (int64_t)b->o.keepalive * 1000000000
	                : INT64_MAX;
	list_push(&b->held, c);
}

static double
elapsed_ms(const conn *c)
{
	return (double)(now_ns() - c->t0_ns) / 1e6;
}

/* ------------------------------------------------------ connection I/O */

/* Queues bytes for the server; 0, or -1 if the queue is full. */
static int
conn_queue(conn *c, const uint8_t *p, size_t n)
{
	if (c->outlen + n > sizeof(c->out))
		return -1;
	memcpy(c->out + c->outlen, p, n);
	c->outlen += n;
	return 0;
}

/* Writes what is queued; 0 (written or waiting), -1 if released. The
 * buffer's address stays the same and only grows between retries, as
 * SSL_write wants. */
static int
conn_flush(bench *b, conn *c)
{
	int n;

	if (c->outlen == 0)
		return 0;
	ERR_clear_error();
	n = SSL_write(c->ssl, c->out, (int)c->outlen);
	if (n > 0) {
		memmove(c->out, c->out + n, c->outlen - (size_t)n);
		c->outlen -= (size_t)n;
		return 0;
	}
	switch (SSL_get_error(c->ssl, n)) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		return 0;
	default:
		conn_fail_tls(b, c, n, "write");
		return -1;
	}
}

/* Where a connection is, for failure reasons. */
static const char *
conn_stage(const conn *c)
{
	switch (c->state) {
	case CONN_TCP:
		return "TCP connect";
	case CONN_TLS:
		return "TLS handshake";
	case CONN_CONNACK:
		return "waiting for CONNACK";
	case CONN_IDENTITY:
		return "waiting for identity";
	case CONN_HELD:
		return "held session";
	default:
		return "?";
	}
}

/* A PUBLISH from the server: acknowledged at QoS 1; the identity message
 * completes a connection waiting for it. Returns -1 if released. */
static int
conn_on_publish(bench *b, conn *c, const uint8_t *p, size_t hdr, size_t n)
{
	const uint8_t *body = p + hdr;
	size_t blen = n - hdr, tlen, off;
	unsigned qos = (p[0] >> 1) & 3;

	if (blen < 2 || (tlen = (size_t)body[0] << 8 | body[1]) + 2 > blen ||
	    (qos > 0 && tlen + 4 > blen)) {
		conn_fail(b, c, "protocol: malformed PUBLISH");
		return -1;
	}
	off = 2 + tlen + (qos > 0 ? 2 : 0);
	if (qos == 1) {
		uint8_t ack[4] = {MQTT_PUBACK << 4, 2, body[2 + tlen],
		                  body[3 + tlen]};

		if (conn_queue(c, ack, sizeof(ack)) != 0) {
			conn_fail(b, c, "protocol: output queue full");
			return -1;
		}
	}
	if (c->state != CONN_IDENTITY || tlen != strlen(IDENTITY_TOPIC) ||
	    memcmp(body + 2, IDENTITY_TOPIC, tlen) != 0)
		return 0;
	if (!identity_parse(body + off, blen - off, c->topic,
	                    sizeof(c->topic))) {
		conn_fail(b, c,
		          "identity: not JSON with productKey and "
		          "deviceName");
		return -1;
	}
	if (b->o.publish_ms > 0 && c->topic[0] == '\0') {
		conn_fail(b, c, "identity: productKey and deviceName too long");
		return -1;
	}
	if (c->st->identity_ms != NULL)
		c->st->identity_ms[c->st->nidentity++] = elapsed_ms(c);
	conn_connected(b, c);
	return c->state == CONN_HELD ? 0 : -1;
}

/* The packet id of sequence number seq: 1 to 65535, then 1 again. */
static uint16_t
pub_packet_id(uint32_t seq)
{
	return (uint16_t)((seq - 1) % 65535 + 1);
}

/* Counts the acknowledgement of seq (bit i of the window) on c. */
static void
conn_acked(bench *b, conn *c, uint32_t seq, unsigned i)
{
	bench_pub *p = &b->pub;
	double *grown;

	c->ack_bits |= (uint64_t)1 << i;
	c->inflight--;
	p->pending--;
	p->acked++;
	if (p->nack_ms == p->cap_ack_ms && p->cap_ack_ms < BENCH_LAT_MAX) {
		p->cap_ack_ms = p->cap_ack_ms ? p->cap_ack_ms * 2 : 4096;
		if ((grown = realloc(p->ack_ms,
		                     p->cap_ack_ms * sizeof(*grown))) == NULL)
			die("out of memory");
		p->ack_ms = grown;
	}
	if (p->nack_ms < p->cap_ack_ms)
		p->ack_ms[p->nack_ms++] =
		    (double)(now_ns() - c->sent_ns[seq % BENCH_WINDOW]) / 1e6;
	if (p->acked_out != NULL)
		fprintf(p->acked_out, "%lu:%u\n", c->id, seq);
	while (c->ack_bits & 1) {
		c->ack_bits >>= 1;
		c->ack_low++;
	}
}

/* PUBACK: matched to the message awaiting it with that packet id; one
 * that matches none (a repeat, or never sent) is counted as unexpected.
 * Returns -1 if released. */
static int
conn_on_puback(bench *b, conn *c, const uint8_t *p, size_t hdr, size_t n)
{
	uint16_t id;
	uint32_t seq;
	unsigned i;

	if (n - hdr != 2) {
		conn_fail(b, c, "protocol: malformed PUBACK");
		return -1;
	}
	id = (uint16_t)(p[hdr] << 8 | p[hdr + 1]);
	for (i = 0; i < BENCH_WINDOW; i++) {
		seq = c->ack_low + 1 + i;
		if (seq > c->pub_seq)
			break;
		if (pub_packet_id(seq) == id && (c->ack_bits >> i & 1) == 0) {
			conn_acked(b, c, seq, i);
			return 0;
		}
	}
	b->pub.unexpected++;
	return 0;
}

/* CONNACK: 0 connects (or waits for the identity), anything else is
 * counted as refused. Returns -1 if released. */
static int
conn_on_connack(bench *b, conn *c, const uint8_t *p, size_t hdr, size_t n)
{
	uint8_t rc;

	if ((p[0] >> 4) != MQTT_CONNACK || n - hdr != 2) {
		conn_fail(b, c, "protocol: packet type %u before CONNACK",
		          (unsigned)(p[0] >> 4));
		return -1;
	}
	rc = p[hdr + 1];
	if (rc != 0) {
		c->st->refused++;
		c->st->refused_rc[rc]++;
		conn_release(b, c, 0);
		return -1;
	}
	if (c->st->connack_ms != NULL)
		c->st->connack_ms[c->st->nconnack++] = elapsed_ms(c);
	if (b->o.identity) {
		c->state = CONN_IDENTITY;
		return 0;
	}
	conn_connected(b, c);
	return c->state == CONN_HELD ? 0 : -1;
}

/* Handles every whole packet in c->in; -1 if the connection was released
 * (done or failed). */
static int
conn_parse(bench *b, conn *c)
{
	size_t hdr = 0, n;
	long len;
	int r;

	while ((len = mqtt_frame(c->in, c->inlen, sizeof(c->in), &hdr)) != 0) {
		if (len < 0) {
			conn_fail(b, c,
			          "protocol: malformed or oversized "
			          "packet");
			return -1;
		}
		n = (size_t)len;
		if (c->state == CONN_CONNACK)
			r = conn_on_connack(b, c, c->in, hdr, n);
		else if ((c->in[0] >> 4) == MQTT_PUBLISH)
			r = conn_on_publish(b, c, c->in, hdr, n);
		else if ((c->in[0] >> 4) == MQTT_PUBACK)
			r = conn_on_puback(b, c, c->in, hdr, n);
		else
			r = 0; /* PINGRESP and anything else: ignored */
		if (r < 0)
			return -1;
		memmove(c->in, c->in + n, c->inlen - n);
		c->inlen -= n;
	}
	return 0;
}

/* After the handshake: writes what is queued and reads until the socket
 * has nothing more. */
static void
conn_io(bench *b, conn *c)
{
	int n;

	for (;;) {
		if (conn_flush(b, c) < 0)
			return;
		ERR_clear_error();
		n = SSL_read(c->ssl, c->in + c->inlen,
		             (int)(sizeof(c->in) - c->inlen));
		if (n <= 0) {
			int err = SSL_get_error(c->ssl, n);

			if (err != SSL_ERROR_WANT_READ &&
			    err != SSL_ERROR_WANT_WRITE)
				conn_fail_tls(b, c, n, conn_stage(c));
			return;
		}
		c->inlen += (size_t)n;
		if (conn_parse(b, c) < 0)
			return;
	}
}

/* Runs the handshake; 0 when done (CONNECT queued), 1 when waiting for
 * the socket, -1 if the connection was released. */
static int
conn_handshake(bench *b, conn *c)
{
	char client_id[64];
	size_t n;
	int r;

	ERR_clear_error();
	r = SSL_do_handshake(c->ssl);
	if (r != 1) {
		int err = SSL_get_error(c->ssl, r);

		if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
			return 1;
		conn_fail_tls(b, c, r, "TLS handshake");
		return -1;
	}
	snprintf(client_id, sizeof(client_id), "bench-%lu|securemode=2|",
	         c->id);
	n = mqtt_connect(c->out, sizeof(c->out), client_id, b->o.keepalive);
	c->outlen = n;
	c->state = CONN_CONNACK;
	return 0;
}

/* The non-blocking connect finished: start TLS on it. 0 on success, -1
 * if the connection was released. */
static int
conn_start_tls(bench *b, conn *c)
{
	bench_cert *bc = &b->certs[c->cert];
	int soerr = 0;
	socklen_t sl = sizeof(soerr);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
		soerr = errno;
	if (soerr != 0) {
		conn_fail(b, c, "TCP connect: %s", strerror(soerr));
		return -1;
	}
	if ((c->ssl = SSL_new(b->ctx)) == NULL ||
	    SSL_use_cert_and_key(c->ssl, bc->x509, bc->key, NULL, 1) != 1 ||
	    SSL_set_fd(c->ssl, c->fd) != 1 ||
	    (b->o.resume && bc->session != NULL &&
	     SSL_set_session(c->ssl, bc->session) != 1)) {
		conn_fail(b, c, "TLS setup: %s",
		          ERR_reason_error_string(ERR_peek_error()));
		return -1;
	}
	SSL_set_app_data(c->ssl, c);
	SSL_set_connect_state(c->ssl);
	if (!host_is_ip(b->o.host))
		SSL_set_tlsext_host_name(c->ssl, b->o.host);
	c->state = CONN_TLS;
	return 0;
}

/* Advances a connection as far as its socket allows. */
static void
conn_drive(bench *b, conn *c)
{
	if (c->state == CONN_TCP && conn_start_tls(b, c) != 0)
		return;
	if (c->state == CONN_TLS && conn_handshake(b, c) != 0)
		return;
	conn_io(b, c);
}

/* Opens one connection counted in st. */
static void
conn_open(bench *b, bench_stats *st, int hold)
{
	conn *c = &b->slots[b->free_slots[--b->nfree]];
	int one = 1, fd;

	memset(c, 0, offsetof(conn, in));
	c->st = st;
	c->hold = hold;
	c->id = b->next_id++;
	c->cert = c->id % b->ncerts;
	c->t0_ns = now_ns();
	c->due_ns = c->t0_ns + (int64_t)b->o.timeout_ms * 1000000;
	c->state = CONN_TCP;
	c->fd = -1;
	st->attempted++;
	list_push(&b->busy, c);
	b->nbusy++;
	fd = socket(b->addr.ss_family,
	            SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	c->fd = fd;
	if (fd < 0) {
		conn_fail(b, c, "socket: %s", strerror(errno));
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&b->addr, b->addrlen) != 0 &&
	    errno != EINPROGRESS) {
		conn_fail(b, c, "TCP connect: %s", strerror(errno));
		return;
	}
	if (epoll_ctl(b->ep, EPOLL_CTL_ADD, fd,
	              &(struct epoll_event){.events = EPOLLIN | EPOLLOUT |
	                                              EPOLLRDHUP | EPOLLET,
	                                    .data.ptr = c}) != 0) {
		conn_fail(b, c, "epoll: %s", strerror(errno));
		return;
	}
}

/* Sends PINGREQ on held connections that are due. */
static void
bench_ping(bench *b, int64_t now)
{
	static const uint8_t ping[] = {MQTT_PINGREQ << 4, 0};
	conn *c;

	while ((c = b->held.head) != NULL && c->due_ns <= now) {
		list_remove(&b->held, c);
		c->due_ns = now + (int64_t)b->o.keepalive * 1000000000;
		list_push(&b->held, c);
		if (conn_queue(c, ping, sizeof(ping)) == 0)
			conn_flush(b, c);
	}
}

/* Publishes the next QoS 1 message of a held connection, unless its
 * window or its output queue is full (counted as skipped). */
static void
conn_publish(bench *b, conn *c, int64_t now)
{
	uint8_t pkt[BENCH_OUT_MAX];
	char payload[48];
	uint32_t seq = c->pub_seq + 1;
	size_t n = 0;

	if (seq - c->ack_low <= BENCH_WINDOW) {
		snprintf(payload, sizeof(payload), "%lu:%u", c->id, seq);
		n = mqtt_publish_qos1(pkt, sizeof(pkt), c->topic,
		                      pub_packet_id(seq), payload);
	}
	if (n == 0 || conn_queue(c, pkt, n) != 0) {
		b->pub.skipped++;
		return;
	}
	c->pub_seq = seq;
	c->sent_ns[seq % BENCH_WINDOW] = now;
	c->inflight++;
	b->pub.pending++;
	b->pub.published++;
	conn_flush(b, c);
}

/* When the next publish is due. */
static int64_t
pub_due_ns(const bench *b)
{
	const bench_pub *p = &b->pub;
	double iv = (double)b->o.publish_ms * 1e6;

	return p->t0_ns + (int64_t)((double)p->round * iv +
	                            iv * (double)p->cursor / (double)p->norder);
}

/* Makes the publishes that are due, in schedule order. A connection lost
 * meanwhile keeps its place in the schedule, unused: no connection is
 * opened while publishing, so its slot stays free. */
static void
bench_publish(bench *b, int64_t now)
{
	bench_pub *p = &b->pub;
	conn *c;

	while (p->active && pub_due_ns(b) <= now &&
	       pub_due_ns(b) < p->stop_ns) {
		c = &b->slots[p->order[p->cursor]];
		if (c->state == CONN_HELD)
			conn_publish(b, c, now);
		if (++p->cursor == p->norder) {
			p->cursor = 0;
			p->round++;
		}
	}
}

/* Fails connections past their deadline (the busy list is in deadline
 * order). */
static void
bench_expire(bench *b, int64_t now)
{
	conn *c;

	while ((c = b->busy.head) != NULL && c->due_ns <= now)
		conn_fail(b, c, "timeout: %s", conn_stage(c));
}

/* One round of the event loop: waits at most until the next deadline,
 * and at most until stop_ns. */
static void
bench_poll(bench *b, int64_t stop_ns)
{
	struct epoll_event ev[BENCH_EVENTS];
	int64_t now = now_ns(), next = stop_ns;
	int i, n, ms;

	if (b->busy.head != NULL && b->busy.head->due_ns < next)
		next = b->busy.head->due_ns;
	if (b->held.head != NULL && b->held.head->due_ns < next)
		next = b->held.head->due_ns;
	if (b->pub.active && pub_due_ns(b) < next)
		next = pub_due_ns(b);
	ms = next <= now ? 0
	     : next - now > 1000000000LL
	         ? 1000
	         : (int)((next - now + 999999) / 1000000);
	n = epoll_wait(b->ep, ev, BENCH_EVENTS, ms);
	/* A connection released while handling this batch frees its slot,
	 * but new connections start only after the batch, so no event
	 * below can point to a reused slot. */
	for (i = 0; i < n; i++) {
		conn *c = ev[i].data.ptr;

		if (c->state != CONN_FREE)
			conn_drive(b, c);
	}
	now = now_ns();
	bench_expire(b, now);
	bench_ping(b, now);
	bench_publish(b, now);
}

/* Makes count connections counted in st, c at a time, and returns when
 * each is done, failed or held. */
static void
bench_phase(bench *b, unsigned long count, bench_stats *st, int hold)
{
	unsigned long started = 0;

	while (started < count || b->nbusy > 0) {
		while (started < count && b->nbusy < b->o.c) {
			conn_open(b, st, hold);
			started++;
		}
		bench_poll(b, INT64_MAX);
	}
}

/* Services held connections (pings, replies) for ms milliseconds. */
static void
bench_idle(bench *b, long ms)
{
	int64_t stop = now_ns() + (int64_t)ms * 1000000;

	while (now_ns() < stop)
		bench_poll(b, stop);
}

/* Closes every held connection with DISCONNECT. */
static void
bench_release_held(bench *b)
{
	while (b->held.head != NULL) {
		conn_release(b, b->held.head, 1);
		b->pub.released++;
	}
}

/* --publish-ms: every held connection publishes for --duration, then the
 * PUBACKs still due get up to BENCH_DRAIN_MS. Ends early when no
 * connection is left. */
static void
bench_publish_run(bench *b)
{
	bench_pub *p = &b->pub;
	int64_t drain;
	conn *c;

	if ((p->order = calloc(b->nslots, sizeof(*p->order))) == NULL)
		die("out of memory");
	for (c = b->held.head; c != NULL; c = c->next)
		p->order[p->norder++] = (size_t)(c - b->slots);
	if (p->norder == 0)
		return;
	p->t0_ns = now_ns();
	p->stop_ns = p->t0_ns + (int64_t)b->o.duration_s * 1000000000;
	p->active = 1;
	while (now_ns() < p->stop_ns && b->held.head != NULL)
		bench_poll(b, p->stop_ns);
	p->active = 0;
	p->wall_s = (double)(now_ns() - p->t0_ns) / 1e9;
	drain = now_ns() + (int64_t)BENCH_DRAIN_MS * 1000000;
	while (p->pending > 0 && b->held.head != NULL && now_ns() < drain)
		bench_poll(b, drain);
}

/* ----------------------------------------------------------- TLS setup */

/* Keeps the newest resumable session of each certificate (the connection
 * is the SSL's app data). Returns 1: the session is ours now. */
static int
bench_new_session(SSL *ssl, SSL_SESSION *sess)
{
	bench *b = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
	conn *c = SSL_get_app_data(ssl);
	bench_cert *bc;

	if (b == NULL || c == NULL || !SSL_SESSION_is_resumable(sess))
		return 0;
	bc = &b->certs[c->cert];
	SSL_SESSION_free(bc->session);
	bc->session = sess;
	return 1;
}

static void
ssl_die(const char *what)
{
	unsigned long e = ERR_get_error();

	die("%s: %s", what,
	    e != 0 ? ERR_reason_error_string(e) : "unknown OpenSSL error");
}

/* The client context: version, server verification, session keeping. */
static SSL_CTX *
bench_ssl_ctx(bench *b)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	X509_VERIFY_PARAM *vp;

	if (ctx == NULL ||
	    SSL_CTX_set_min_proto_version(ctx, b->o.tls_version) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, b->o.tls_version) != 1)
		ssl_die("TLS context");
	SSL_CTX_set_app_data(ctx, b);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if (b->o.ca_file != NULL) {
		if (SSL_CTX_load_verify_locations(ctx, b->o.ca_file, NULL) != 1)
			ssl_die("--ca");
		vp = SSL_CTX_get0_param(ctx);
		if (host_is_ip(b->o.host)) {
			if (X509_VERIFY_PARAM_set1_ip_asc(vp, b->o.host) != 1)
				ssl_die("--host");
		} else if (X509_VERIFY_PARAM_set1_host(vp, b->o.host, 0) != 1) {
			ssl_die("--host");
		}
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	} else {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	}
	if (b->o.resume) {
		SSL_CTX_set_session_cache_mode(
		    ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL);
		SSL_CTX_sess_set_new_cb(ctx, bench_new_session);
	} else {
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	}
	return ctx;
}

static X509 *
load_x509(const char *path)
{
	FILE *f = fopen(path, "rb");
	X509 *x;

	if (f == NULL)
		return NULL;
	if ((x = PEM_read_X509(f, NULL, NULL, NULL)) == NULL) {
		rewind(f);
		x = d2i_X509_fp(f, NULL);
	}
	fclose(f);
	ERR_clear_error();
	return x;
}

static EVP_PKEY *
load_key(const char *path)
{
	FILE *f = fopen(path, "rb");
	EVP_PKEY *k;

	if (f == NULL)
		return NULL;
	k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	ERR_clear_error();
	return k;
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Whether name ends in .cer or .crt; *stem_len is the part before. */
static int
is_cert_name(const char *name, size_t *stem_len)
{
	size_t n = strlen(name);

	if (n < 5 || (strcmp(name + n - 4, ".cer") != 0 &&
	              strcmp(name + n - 4, ".crt") != 0))
		return 0;
	*stem_len = n - 4;
	return 1;
}

/* The sorted names of the certificate files in dir. */
static char **
list_cert_files(const char *dir, size_t *count)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, cap = 0, stem;

	if (d == NULL)
		die("--certs %s: %s", dir, strerror(errno));
	while ((de = readdir(d)) != NULL) {
		if (!is_cert_name(de->d_name, &stem))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 256;
			if ((names = realloc(names, cap * sizeof(*names))) ==
			    NULL)
				die("out of memory");
		}
		if ((names[n++] = strdup(de->d_name)) == NULL)
			die("out of memory");
	}
	closedir(d);
	if (n > 0)
		qsort(names, n, sizeof(*names), name_cmp);
	*count = n;
	return names;
}

/* Loads every certificate of --certs with its key, in name order. */
static void
bench_load_certs(bench *b)
{
	size_t n, i, stem;
	char **names = list_cert_files(b->o.certs_dir, &n);
	char path[4096];

	if (n == 0)
		die("--certs %s: no *.cer or *.crt files", b->o.certs_dir);
	if ((b->certs = calloc(n, sizeof(*b->certs))) == NULL)
		die("out of memory");
	for (i = 0; i < n; i++) {
		bench_cert *bc = &b->certs[i];

		is_cert_name(names[i], &stem);
		snprintf(path, sizeof(path), "%s/%s", b->o.certs_dir, names[i]);
		if ((bc->x509 = load_x509(path)) == NULL)
			die("%s: not a PEM or DER certificate", path);
		snprintf(path, sizeof(path), "%s/%.*s.key", b->o.certs_dir,
		         (int)stem, names[i]);
		if ((bc->key = load_key(path)) == NULL)
			die("%s: missing or not a PEM private key", path);
		if (X509_check_private_key(bc->x509, bc->key) != 1)
			die("%s: does not match %s", path, names[i]);
		free(names[i]);
	}
	free(names);
	b->ncerts = n;
}

static void
bench_free_certs(bench *b)
{
	size_t i;

	for (i = 0; i < b->ncerts; i++) {
		X509_free(b->certs[i].x509);
		EVP_PKEY_free(b->certs[i].key);
		SSL_SESSION_free(b->certs[i].session);
	}
	free(b->certs);
}

static void
bench_resolve(bench *b)
{
	struct addrinfo hints = {0}, *ai;
	int r;

	hints.ai_socktype = SOCK_STREAM;
	if ((r = getaddrinfo(b->o.host, b->o.port, &hints, &ai)) != 0)
		die("--host %s --port %s: %s", b->o.host, b->o.port,
		    gai_strerror(r));
	memcpy(&b->addr, ai->ai_addr, ai->ai_addrlen);
	b->addrlen = ai->ai_addrlen;
	freeaddrinfo(ai);
}

/* Connection slots, the epoll set and the latency arrays. */
static void
bench_alloc(bench *b)
{
	unsigned long limit = raise_nofile();
	size_t i;

	b->nslots = b->o.hold && b->o.n > b->o.c ? b->o.n : b->o.c;
	if (b->nslots + BENCH_SPARE_FDS > limit)
		die("%zu connections at once need %zu open files; the limit "
		    "is %lu (ulimit -Hn)",
		    b->nslots, b->nslots + BENCH_SPARE_FDS, limit);
	b->slots = calloc(b->nslots, sizeof(*b->slots));
	b->free_slots = calloc(b->nslots, sizeof(*b->free_slots));
	b->meas.connack_ms = calloc(b->o.n, sizeof(double));
	b->meas.identity_ms = calloc(b->o.n, sizeof(double));
	if (b->slots == NULL || b->free_slots == NULL ||
	    b->meas.connack_ms == NULL || b->meas.identity_ms == NULL)
		die("out of memory");
	for (i = 0; i < b->nslots; i++)
		b->free_slots[i] = b->nslots - 1 - i;
	b->nfree = b->nslots;
	if ((b->ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
		die("epoll_create1: %s", strerror(errno));
}

/* ----------------------------------------------------------- the run */

static int
dbl_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static void
bench_run(bench *b)
{
	unsigned long warmup = b->o.warmup;
	long pid = b->o.server_pid;
	int64_t t0;

	if (b->o.resume && warmup < b->ncerts)
		warmup = b->ncerts;
	b->cpu0_us = b->cpu1_us = -1;
	b->rss0_kib = b->rss1_kib = b->rss_held_kib = -1;
	if (warmup > 0)
		bench_phase(b, warmup, &b->warm, 0);
	if (pid > 0) {
		b->rss0_kib = proc_rss_kib(pid);
		b->cpu0_us = proc_cpu_us(pid);
	}
	t0 = now_ns();
	bench_phase(b, b->o.n, &b->meas, b->o.hold);
	b->wall_s = (double)(now_ns() - t0) / 1e9;
	qsort(b->meas.connack_ms, b->meas.nconnack, sizeof(double), dbl_cmp);
	qsort(b->meas.identity_ms, b->meas.nidentity, sizeof(double), dbl_cmp);
	if (pid > 0) {
		bench_idle(b, BENCH_CPU_SETTLE);
		b->cpu1_us = proc_cpu_us(pid);
		b->rss1_kib = proc_rss_kib(pid);
	}
	if (b->o.hold) {
		if (b->o.publish_ms > 0)
			bench_publish_run(b);
		else
			bench_idle(b, b->o.settle_ms);
		b->held_sessions = b->meas.ok - b->meas.dropped;
		if (pid > 0)
			b->rss_held_kib = proc_rss_kib(pid);
		bench_release_held(b);
		/* Let the server see the closes before it is stopped. */
		sleep_ms(BENCH_CPU_SETTLE);
	}
	if (b->pub.nack_ms > 0)
		qsort(b->pub.ack_ms, b->pub.nack_ms, sizeof(double), dbl_cmp);
}

/* ------------------------------------------------------------- report */

/* Nearest-rank percentile of sorted v; -1 when empty. */
static double
pct(const double *v, size_t n, double q)
{
	size_t k;

	if (n == 0)
		return -1;
	k = (size_t)(q * (double)n + 0.999999);
	return v[k == 0 ? 0 : k - 1];
}

static double
bench_cpu_per_conn(const bench *b)
{
	if (b->cpu0_us < 0 || b->cpu1_us < 0 || b->meas.attempted == 0)
		return -1;
	return (b->cpu1_us - b->cpu0_us) / (double)b->meas.attempted;
}

static double
bench_kib_per_session(const bench *b)
{
	if (b->rss0_kib < 0 || b->rss_held_kib < 0 || b->held_sessions == 0)
		return -1;
	return (double)(b->rss_held_kib - b->rss0_kib) /
	       (double)b->held_sessions;
}

static json_t *
json_num_or_null(double v)
{
	return v < 0 ? json_null() : json_real(v);
}

static json_t *
json_pcts(const double *v, size_t n)
{
	if (n == 0)
		return json_null();
	return json_pack("{s:f,s:f,s:f}", "p50", pct(v, n, 0.50), "p90",
	                 pct(v, n, 0.90), "p99", pct(v, n, 0.99));
}

static json_t *
json_reasons(const bench_reasons *rs)
{
	json_t *o = json_object();
	size_t i;

	for (i = 0; i < rs->n; i++)
		json_object_set_new(o, rs->r[i].text,
		                    json_integer((json_int_t)rs->r[i].count));
	if (rs->other > 0)
		json_object_set_new(o, "(other)",
		                    json_integer((json_int_t)rs->other));
	return o;
}

static json_t *
json_refused(const bench_stats *st)
{
	json_t *o = json_object();
	char key[8];
	int rc;

	for (rc = 1; rc < 256; rc++)
		if (st->refused_rc[rc] > 0) {
			snprintf(key, sizeof(key), "%d", rc);
			json_object_set_new(
			    o, key,
			    json_integer((json_int_t)st->refused_rc[rc]));
		}
	return o;
}

/* The --hold figures. */
static json_t *
json_idle(const bench *b)
{
	return json_pack(
	    "{s:I,s:o,s:o,s:o,s:I}", "sessions", (json_int_t)b->held_sessions,
	    "rss_before_kib",
	    b->rss0_kib >= 0 ? json_integer(b->rss0_kib) : json_null(),
	    "rss_after_kib",
	    b->rss_held_kib >= 0 ? json_integer(b->rss_held_kib) : json_null(),
	    "kib_per_session", json_num_or_null(bench_kib_per_session(b)),
	    "dropped", (json_int_t)b->meas.dropped);
}

/* Acknowledged messages per second of publishing. */
static double
bench_acked_per_s(const bench *b)
{
	return b->pub.wall_s > 0 ? (double)b->pub.acked / b->pub.wall_s : 0;
}

/* The --publish-ms figures. */
static json_t *
json_publish(const bench *b)
{
	const bench_pub *p = &b->pub;
	json_t *o = json_object();

	json_object_set_new(o, "interval_ms", json_integer(b->o.publish_ms));
	json_object_set_new(o, "duration_s",
	                    json_integer((json_int_t)b->o.duration_s));
	json_object_set_new(o, "wall_s", json_real(p->wall_s));
	json_object_set_new(o, "connections",
	                    json_integer((json_int_t)p->norder));
	json_object_set_new(o, "published",
	                    json_integer((json_int_t)p->published));
	json_object_set_new(o, "acked", json_integer((json_int_t)p->acked));
	json_object_set_new(
	    o, "unacked", json_integer((json_int_t)(p->published - p->acked)));
	json_object_set_new(o, "skipped", json_integer((json_int_t)p->skipped));
	json_object_set_new(o, "unexpected_pubacks",
	                    json_integer((json_int_t)p->unexpected));
	json_object_set_new(o, "acked_per_s", json_real(bench_acked_per_s(b)));
	json_object_set_new(o, "puback_ms", json_pcts(p->ack_ms, p->nack_ms));
	json_object_set_new(o, "lost",
	                    json_integer((json_int_t)b->meas.dropped));
	json_object_set_new(o, "lost_reasons", json_reasons(&b->meas.drops));
	json_object_set_new(o, "released",
	                    json_integer((json_int_t)p->released));
	return o;
}

static void
report_json(const bench *b)
{
	const bench_stats *m = &b->meas;
	json_t *o = json_object();
	char server[300];

	snprintf(server, sizeof(server), "%s:%s", b->o.host, b->o.port);
	json_object_set_new(o, "server", json_string(server));
	json_object_set_new(
	    o, "tls",
	    json_string(b->o.tls_version == TLS1_2_VERSION ? "1.2" : "1.3"));
	json_object_set_new(o, "resume", json_boolean(b->o.resume));
	json_object_set_new(o, "identity", json_boolean(b->o.identity));
	json_object_set_new(o, "hold", json_boolean(b->o.hold));
	json_object_set_new(o, "certs", json_integer((json_int_t)b->ncerts));
	json_object_set_new(o, "connections", json_integer((json_int_t)b->o.n));
	json_object_set_new(o, "concurrency", json_integer((json_int_t)b->o.c));
	json_object_set_new(o, "warmup",
	                    json_integer((json_int_t)b->warm.attempted));
	json_object_set_new(
	    o, "warmup_failed",
	    json_integer((json_int_t)(b->warm.failed + b->warm.refused)));
	json_object_set_new(o, "ok", json_integer((json_int_t)m->ok));
	json_object_set_new(o, "refused", json_integer((json_int_t)m->refused));
	json_object_set_new(o, "failed", json_integer((json_int_t)m->failed));
	json_object_set_new(o, "resumed", json_integer((json_int_t)m->resumed));
	json_object_set_new(o, "refused_codes", json_refused(m));
	json_object_set_new(o, "failures", json_reasons(&m->failures));
	json_object_set_new(o, "wall_s", json_real(b->wall_s));
	json_object_set_new(
	    o, "connections_per_s",
	    json_real(b->wall_s > 0 ? (double)m->ok / b->wall_s : 0));
	json_object_set_new(o, "connack_ms",
	                    json_pcts(m->connack_ms, m->nconnack));
	json_object_set_new(o, "identity_ms",
	                    json_pcts(m->identity_ms, m->nidentity));
	json_object_set_new(o, "server_pid",
	                    b->o.server_pid > 0
	                        ? json_integer((json_int_t)b->o.server_pid)
	                        : json_null());
	json_object_set_new(o, "server_cpu_us_per_connection",
	                    json_num_or_null(bench_cpu_per_conn(b)));
	json_object_set_new(o, "server_rss_kib",
	                    b->rss1_kib >= 0 ? json_integer(b->rss1_kib)
	                                     : json_null());
	if (b->o.hold)
		json_object_set_new(o, "idle_sessions", json_idle(b));
	if (b->o.publish_ms > 0)
		json_object_set_new(o, "publish", json_publish(b));
	json_dumpf(o, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	fputc('\n', stdout);
	json_decref(o);
}

static void
print_pcts(const char *label, const double *v, size_t n)
{
	if (n == 0)
		return;
	printf("%-18s p50=%.2f ms  p90=%.2f ms  p99=%.2f ms\n", label,
	       pct(v, n, 0.50), pct(v, n, 0.90), pct(v, n, 0.99));
}

static void
print_reasons(const char *label, const bench_reasons *rs)
{
	size_t i;

	for (i = 0; i < rs->n; i++)
		printf("%-18s %lu x %s\n", label, rs->r[i].count,
		       rs->r[i].text);
	if (rs->other > 0)
		printf("%-18s %lu x (other reasons)\n", label, rs->other);
}

static void
print_outcomes(const char *label, const bench_stats *st)
{
	int rc;

	for (rc = 1; rc < 256; rc++)
		if (st->refused_rc[rc] > 0)
			printf("%-18s %lu x CONNACK return code %d\n", label,
			       st->refused_rc[rc], rc);
	print_reasons(label, &st->failures);
}

/* The --publish-ms lines. */
static void
print_publish(const bench *b)
{
	const bench_pub *p = &b->pub;

	printf("publish            QoS 1 every %ld ms on %zu connections, "
	       "%.3f s\n",
	       b->o.publish_ms, p->norder, p->wall_s);
	printf("messages           published=%lu acked=%lu unacked=%lu "
	       "skipped=%lu unexpected=%lu, %.1f acked/s\n",
	       p->published, p->acked, p->published - p->acked, p->skipped,
	       p->unexpected, bench_acked_per_s(b));
	print_pcts("publish->PUBACK", p->ack_ms, p->nack_ms);
	printf("held connections   lost=%lu released=%lu\n", b->meas.dropped,
	       p->released);
	print_reasons("lost", &b->meas.drops);
}

static void
report_text(const bench *b)
{
	const bench_stats *m = &b->meas;
	double cpu = bench_cpu_per_conn(b), kib = bench_kib_per_session(b);

	printf("iotca-bench        %s:%s TLS %s %s, %zu certificates, n=%lu "
	       "c=%lu warmup=%lu%s%s\n",
	       b->o.host, b->o.port,
	       b->o.tls_version == TLS1_2_VERSION ? "1.2" : "1.3",
	       b->o.resume ? "resumed" : "full", b->ncerts, b->o.n, b->o.c,
	       b->warm.attempted, b->o.identity ? " identity" : "",
	       b->o.hold ? " hold" : "");
	printf("connections        ok=%lu refused=%lu failed=%lu resumed=%lu\n",
	       m->ok, m->refused, m->failed, m->resumed);
	printf("wall               %.3f s, %.1f connections/s\n", b->wall_s,
	       b->wall_s > 0 ? (double)m->ok / b->wall_s : 0);
	print_pcts("connect->CONNACK", m->connack_ms, m->nconnack);
	print_pcts("connect->identity", m->identity_ms, m->nidentity);
	if (b->o.server_pid > 0) {
		printf("server (pid %ld)   ", b->o.server_pid);
		if (cpu >= 0)
			printf("cpu=%.1f us/connection", cpu);
		else
			printf("cpu=n/a");
		printf("  rss=%ld KiB\n", b->rss1_kib);
	}
	if (b->o.hold) {
		printf("idle sessions      %lu held, %lu dropped",
		       b->held_sessions, m->dropped);
		if (kib >= 0)
			printf(", server rss %ld -> %ld KiB, %.2f KiB/session",
			       b->rss0_kib, b->rss_held_kib, kib);
		printf("\n");
	}
	if (b->o.publish_ms > 0)
		print_publish(b);
	print_outcomes("refused/failed", m);
	if (b->warm.failed + b->warm.refused > 0) {
		printf("warm-up            %lu of %lu not connected\n",
		       b->warm.failed + b->warm.refused, b->warm.attempted);
		print_outcomes("warm-up", &b->warm);
	}
}

/* -------------------------------------------------------------- options */

enum {
	OPT_HOST = 256,
	OPT_CA,
	OPT_INSECURE,
	OPT_CERTS,
	OPT_WARMUP,
	OPT_TLS,
	OPT_RESUME,
	OPT_IDENTITY,
	OPT_SERVER_PID,
	OPT_HOLD,
	OPT_SETTLE,
	OPT_PUBLISH,
	OPT_DURATION,
	OPT_ACKED_FILE,
	OPT_KEEPALIVE,
	OPT_TIMEOUT,
	OPT_JSON,
	OPT_HELP,
};

static const struct option long_opts[] = {
    {"host", required_argument, NULL, OPT_HOST},
    {"port", required_argument, NULL, 'p'},
    {"ca", required_argument, NULL, OPT_CA},
    {"insecure", no_argument, NULL, OPT_INSECURE},
    {"certs", required_argument, NULL, OPT_CERTS},
    {"connections", required_argument, NULL, 'n'},
    {"concurrency", required_argument, NULL, 'c'},
    {"warmup", required_argument, NULL, OPT_WARMUP},
    {"tls", required_argument, NULL, OPT_TLS},
    {"resume", no_argument, NULL, OPT_RESUME},
    {"identity", no_argument, NULL, OPT_IDENTITY},
    {"server-pid", required_argument, NULL, OPT_SERVER_PID},
    {"hold", no_argument, NULL, OPT_HOLD},
    {"settle-ms", required_argument, NULL, OPT_SETTLE},
    {"publish-ms", required_argument, NULL, OPT_PUBLISH},
    {"duration", required_argument, NULL, OPT_DURATION},
    {"acked-file", required_argument, NULL, OPT_ACKED_FILE},
    {"keepalive", required_argument, NULL, OPT_KEEPALIVE},
    {"timeout-ms", required_argument, NULL, OPT_TIMEOUT},
    {"json", no_argument, NULL, OPT_JSON},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

static void
parse_opts(bench_opts *o, int argc, char **argv)
{
	int ch, duration = 0;

	o->host = "127.0.0.1";
	o->port = "8883";
	o->n = 1000;
	o->c = 8;
	o->tls_version = TLS1_3_VERSION;
	o->keepalive = 60;
	o->timeout_ms = 10000;
	o->settle_ms = 2000;
	o->duration_s = 10;
	while ((ch = getopt_long(argc, argv, "p:n:c:", long_opts, NULL)) !=
	       -1) {
		switch (ch) {
		case OPT_HOST:
			o->host = optarg;
			break;
		case 'p':
			parse_num("--port", optarg, 1, 65535);
			o->port = optarg;
			break;
		case OPT_CA:
			o->ca_file = optarg;
			break;
		case OPT_INSECURE:
			o->insecure = 1;
			break;
		case OPT_CERTS:
			o->certs_dir = optarg;
			break;
		case 'n':
			o->n = parse_num("-n", optarg, 1, 10000000);
			break;
		case 'c':
			o->c = parse_num("-c", optarg, 1, 100000);
			break;
		case OPT_WARMUP:
			o->warmup = parse_num("--warmup", optarg, 0, 10000000);
			break;
		case OPT_TLS:
			if (strcmp(optarg, "1.2") == 0)
				o->tls_version = TLS1_2_VERSION;
			else if (strcmp(optarg, "1.3") == 0)
				o->tls_version = TLS1_3_VERSION;
			else
				die("--tls takes 1.2 or 1.3, not \"%s\"",
				    optarg);
			break;
		case OPT_RESUME:
			o->resume = 1;
			break;
		case OPT_IDENTITY:
			o->identity = 1;
			break;
		case OPT_SERVER_PID:
			o->server_pid = (long)parse_num("--server-pid", optarg,
			                                1, 1UL << 22);
			break;
		case OPT_HOLD:
			o->hold = 1;
			break;
		case OPT_SETTLE:
			o->settle_ms =
			    (long)parse_num("--settle-ms", optarg, 0, 3600000);
			break;
		case OPT_PUBLISH:
			o->publish_ms =
			    (long)parse_num("--publish-ms", optarg, 1, 3600000);
			break;
		case OPT_DURATION:
			o->duration_s =
			    parse_num("--duration", optarg, 1, 30 * 86400);
			duration = 1;
			break;
		case OPT_ACKED_FILE:
			o->acked_file = optarg;
			break;
		case OPT_KEEPALIVE:
			o->keepalive = (unsigned)parse_num("--keepalive",
			                                   optarg, 0, 65535);
			break;
		case OPT_TIMEOUT:
			o->timeout_ms =
			    (long)parse_num("--timeout-ms", optarg, 1, 3600000);
			break;
		case OPT_JSON:
			o->json = 1;
			break;
		case OPT_HELP:
			fputs(usage_text, stdout);
			exit(0);
		default:
			fputs("Try iotca-bench --help.\n", stderr);
			exit(2);
		}
	}
	if (optind < argc)
		die("unexpected argument \"%s\" (try --help)", argv[optind]);
	if (o->certs_dir == NULL)
		die("--certs DIR is required (try --help)");
	if ((o->ca_file == NULL) == (o->insecure == 0))
		die("give exactly one of --ca FILE and --insecure");
	if (o->publish_ms > 0 && (!o->hold || !o->identity))
		die("--publish-ms needs --hold and --identity (the topic "
		    "comes from the identity message)");
	if (o->publish_ms == 0 && (duration || o->acked_file != NULL))
		die("--duration and --acked-file go with --publish-ms");
}

int
main(int argc, char **argv)
{
	bench *b = calloc(1, sizeof(*b));
	int ok;

	if (b == NULL)
		die("out of memory");
	parse_opts(&b->o, argc, argv);
	signal(SIGPIPE, SIG_IGN);
	bench_resolve(b);
	bench_load_certs(b);
	b->ctx = bench_ssl_ctx(b);
	bench_alloc(b);
	if (b->o.acked_file != NULL &&
	    (b->pub.acked_out = fopen(b->o.acked_file, "w")) == NULL)
		die("--acked-file %s: %s", b->o.acked_file, strerror(errno));
	bench_run(b);
	if (b->pub.acked_out != NULL &&
	    (ferror(b->pub.acked_out) | fclose(b->pub.acked_out)) != 0)
		die("--acked-file %s: write error", b->o.acked_file);
	if (b->o.json)
		report_json(b);
	else
		report_text(b);
	fflush(stdout);
	ok = b->meas.ok == b->o.n && b->meas.dropped == 0 &&
	     b->pub.published == b->pub.acked;
	close(b->ep);
	SSL_CTX_free(b->ctx);
	bench_free_certs(b);
	free(b->slots);
	free(b->free_slots);
	free(b->meas.connack_ms);
	free(b->meas.identity_ms);
	free(b->pub.order);
	free(b->pub.ack_ms);
	free(b);
	return ok ? 0 : 1;
}
