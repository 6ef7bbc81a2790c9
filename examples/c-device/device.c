/*
 * device.c - iotca-device: a device that authenticates to iotca's MQTT edge
 * with nothing but its X.509 certificate (libmosquitto, MQTT 3.1.1 over
 * mutual TLS).
 *
 * The device is not told its ProductKey or DeviceName: the edge finds them
 * from the certificate's issuing CA and serial number and sends them right
 * after CONNACK, on /ext/auth/identity/response. The device keeps them (also
 * across reconnects), subscribes to /PK/DN/user/get and publishes telemetry
 * with QoS 1 on /PK/DN/user/update every --interval seconds. It exits 0 once
 * --count messages were acknowledged (PUBACK). Lost connections and refused
 * ones (CONNACK 3 or 5) are retried with exponential backoff, 1 s to 32 s.
 *
 * One thread: the main loop calls mosquitto_loop(), which runs the
 * callbacks below, so the device state needs no lock.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* sigaction, clock_gettime, getopt_long under -std=c11 */
#endif
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mosquitto.h>

#include "identity.h"

#define IDENTITY_TOPIC  "/ext/auth/identity/response"
#define TOPIC_MAX       96  /* "/" PK "/" DN "/user/update" fits */
#define LOOP_SLICE_MS   100 /* how often timers, signals are looked at */
#define BACKOFF_FIRST_S 1
#define BACKOFF_MAX_S   32
#define PRINT_MAX       200 /* bytes of a received payload shown */

enum { EXIT_DONE = 0, EXIT_FAILED = 1, EXIT_USAGE = 2 };

typedef struct device_config {
	const char *host;      /* IOTCA_EDGE_HOST, --host */
	int port;              /* IOTCA_EDGE_PORT, --port */
	const char *cafile;    /* IOTCA_EDGE_CAFILE, --cafile */
	const char *cert;      /* IOTCA_DEVICE_CERT, --cert */
	const char *key;       /* IOTCA_DEVICE_KEY, --key */
	const char *client_id; /* --client-id; the edge does not use it */
	double interval_s;     /* IOTCA_DEVICE_INTERVAL_S, --interval */
	long count;            /* IOTCA_DEVICE_COUNT, --count; 0: forever */
	double timeout_s;      /* --timeout; 0: none */
	int keepalive_s;       /* --keepalive */
} device_config;

typedef struct device {
	const device_config *cfg;
	struct mosquitto *mosq;
	device_identity id;  /* learned from the edge, kept across sessions */
	bool known;          /* id is set */
	bool connected;      /* CONNACK 0 on the current connection */
	long sent;           /* telemetry messages published */
	long acked;          /* ... and acknowledged with PUBACK */
	double next_publish; /* monotonic seconds */
	int refused;         /* CONNACK code of the last refusal, 0: none */
	bool link;           /* a connection is open (maybe not CONNACKed) */
	bool ever;           /* mosquitto_connect was called once */
	double retry_at;     /* next connection attempt, monotonic seconds */
	double backoff;      /* seconds to wait after the next failure */
} device;

static volatile sig_atomic_t device_stop;

static void
device_on_signal(int sig)
{
	(void)sig;
	device_stop = 1;
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double
min_s(double a, double b)
{
	return a < b ? a : b;
}

static void
sleep_s(double s)
{
	struct timespec ts;

	if (s <= 0)
		return;
	ts.tv_sec = (time_t)s;
	ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
	nanosleep(&ts, NULL); /* EINTR: the caller looks at device_stop */
}

/* What the device does, on stdout, one line each. */
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

/* "/PK/DN/rest" into buf (TOPIC_MAX bytes); the identity was validated,
 * so it holds no wildcard and no '/'. */
static void
device_topic(const device *d, const char *rest, char *buf)
{
	snprintf(buf, TOPIC_MAX, "/%s/%s/%s", d->id.product_key,
	         d->id.device_name, rest);
}

/* ------------------------------------------------------------ callbacks */

static void
device_on_connect(struct mosquitto *mosq, void *obj, int rc)
{
	device *d = obj;

	(void)mosq;
	if (rc != 0) {
		d->refused = rc;
		say("edge refused the connection: CONNACK %d (%s)%s", rc,
		    mosquitto_connack_string(rc),
		    rc == 5 ? ": is the certificate's SN associated, and the "
		              "device enabled?"
		            : "");
		return;
	}
	d->connected = true;
	d->refused = 0;
	say("connected (CONNACK 0); waiting for the identity on %s",
	    IDENTITY_TOPIC);
}

static void
device_on_disconnect(struct mosquitto *mosq, void *obj, int rc)
{
	device *d = obj;

	(void)mosq;
	(void)rc; /* the main loop reports why */
	d->connected = false;
}

/* The identity: learn it (or check it) and subscribe to the commands. */
static void
device_on_identity(device *d, const struct mosquitto_message *msg)
{
	device_identity id;
	const char *why = NULL;
	char topic[TOPIC_MAX];
	int rc;

	if (identity_parse(msg->payload, (size_t)msg->payloadlen, &id, &why) !=
	    0) {
		say("ignored a bad identity message: %s", why);
		return;
	}
	if (!d->known) {
		say("identity: productKey=%s deviceName=%s", id.product_key,
		    id.device_name);
	} else if (strcmp(id.product_key, d->id.product_key) != 0 ||
	           strcmp(id.device_name, d->id.device_name) != 0) {
		say("identity changed: productKey=%s deviceName=%s (was %s/%s)",
		    id.product_key, id.device_name, d->id.product_key,
		    d->id.device_name);
	} else {
		say("identity confirmed: productKey=%s deviceName=%s",
		    id.product_key, id.device_name);
	}
	d->id = id;
	d->known = true;
	device_topic(d, "user/get", topic);
	rc = mosquitto_subscribe(d->mosq, NULL, topic, 1);
	if (rc != MOSQ_ERR_SUCCESS)
		say("subscribe to %s failed: %s", topic,
		    mosquitto_strerror(rc));
}

/* A payload as text: printable ASCII, at most PRINT_MAX bytes. */
static void
device_print_message(const struct mosquitto_message *msg)
{
	char text[PRINT_MAX + 1];
	const unsigned char *p = msg->payload;
	int i, n = msg->payloadlen < PRINT_MAX ? msg->payloadlen : PRINT_MAX;

	for (i = 0; i < n; i++)
		text[i] = (p[i] >= 0x20 && p[i] < 0x7f) ? (char)p[i] : '.';
	text[n] = '\0';
	say("received on %s: %s%s", msg->topic, text,
	    msg->payloadlen > n ? "..." : "");
}

static void
device_on_message(struct mosquitto *mosq, void *obj,
                  const struct mosquitto_message *msg)
{
	device *d = obj;

	(void)mosq;
	if (strcmp(msg->topic, IDENTITY_TOPIC) == 0)
		device_on_identity(d, msg);
	else
		device_print_message(msg);
}

static void
device_on_subscribe(struct mosquitto *mosq, void *obj, int mid, int n,
                    const int *granted)
{
	device *d = obj;
	char topic[TOPIC_MAX];

	(void)mosq;
	(void)mid;
	device_topic(d, "user/get", topic);
	if (n < 1 || granted[0] > 2)
		say("subscription to %s refused by the edge", topic);
	else
		say("subscribed to %s (QoS %d)", topic, granted[0]);
}

/* For QoS 1, libmosquitto calls this when the PUBACK arrived. */
static void
device_on_publish(struct mosquitto *mosq, void *obj, int mid)
{
	device *d = obj;

	(void)mosq;
	d->acked++;
	if (d->cfg->count > 0)
		say("PUBACK for mid %d (%ld/%ld acknowledged)", mid, d->acked,
		    d->cfg->count);
	else
		say("PUBACK for mid %d (%ld acknowledged)", mid, d->acked);
}

/* libmosquitto's own errors and warnings (TLS failures say why here). */
static void
device_on_log(struct mosquitto *mosq, void *obj, int level, const char *str)
{
	(void)mosq;
	(void)obj;
	if (level & (MOSQ_LOG_ERR | MOSQ_LOG_WARNING))
		fprintf(stderr, "libmosquitto: %s\n", str);
}

/* --------------------------------------------------------------- device */

/* One telemetry message on /PK/DN/user/update, QoS 1. */
static void
device_publish_telemetry(device *d)
{
	char topic[TOPIC_MAX], payload[96];
	long seq = d->sent + 1;
	int mid = 0, n, rc;

	device_topic(d, "user/update", topic);
	n = snprintf(payload, sizeof(payload),
	             "{\"seq\":%ld,\"temperature\":%.1f}", seq,
	             20.0 + (double)(seq % 10) * 0.5);
	rc = mosquitto_publish(d->mosq, &mid, topic, n, payload, 1, false);
	if (rc != MOSQ_ERR_SUCCESS) {
		say("publish on %s failed: %s", topic, mosquitto_strerror(rc));
		return;
	}
	d->sent++;
	say("published #%ld on %s (QoS 1, mid %d): %s", seq, topic, mid,
	    payload);
}

/* Whether a new telemetry message is due now. */
static bool
device_publish_due(const device *d, double now)
{
	if (!d->connected || !d->known || now < d->next_publish)
		return false;
	return d->cfg->count == 0 || d->sent < d->cfg->count;
}

/* Creates the client with TLS and the callbacks. 0, or -1 after saying
 * why. */
static int
device_create(device *d, const device_config *cfg)
{
	int rc;

	memset(d, 0, sizeof(*d));
	d->cfg = cfg;
	d->mosq = mosquitto_new(cfg->client_id, true, d);
	if (d->mosq == NULL) {
		fprintf(stderr, "iotca-device: mosquitto_new: %s\n",
		        strerror(errno));
		return -1;
	}
	mosquitto_int_option(d->mosq, MOSQ_OPT_PROTOCOL_VERSION,
	                     MQTT_PROTOCOL_V311);
	rc = mosquitto_tls_set(d->mosq, cfg->cafile, NULL, cfg->cert, cfg->key,
	                       NULL);
	if (rc != MOSQ_ERR_SUCCESS) {
		fprintf(stderr,
		        "iotca-device: TLS files: %s (check --cafile, --cert "
		        "and --key)\n",
		        mosquitto_strerror(rc));
		return -1;
	}
	mosquitto_connect_callback_set(d->mosq, device_on_connect);
	mosquitto_disconnect_callback_set(d->mosq, device_on_disconnect);
	mosquitto_message_callback_set(d->mosq, device_on_message);
	mosquitto_subscribe_callback_set(d->mosq, device_on_subscribe);
	mosquitto_publish_callback_set(d->mosq, device_on_publish);
	mosquitto_log_callback_set(d->mosq, device_on_log);
	return 0;
}

/* Why a connection attempt or a session ended, in words. */
static const char *
device_why(const device *d, int rc)
{
	if (rc == MOSQ_ERR_ERRNO)
		return strerror(errno);
	if (rc == MOSQ_ERR_CONN_REFUSED && d->refused != 0)
		return mosquitto_connack_string(d->refused);
	return mosquitto_strerror(rc);
}

/* After a failed attempt or a lost connection: says why, and when the next
 * attempt is (the delay doubles up to BACKOFF_MAX_S). */
static void
device_backoff(device *d, const char *what, int rc)
{
	d->link = false;
	d->connected = false;
	say("%s (%s), retrying in %.0f s", what, device_why(d, rc), d->backoff);
	d->retry_at = now_s() + d->backoff;
	d->backoff = min_s(d->backoff * 2, BACKOFF_MAX_S);
}

/* Without a connection: connects once the backoff delay has passed. */
static void
device_connect_step(device *d, double now)
{
	const device_config *cfg = d->cfg;
	int rc;

	if (now < d->retry_at) {
		sleep_s(min_s(d->retry_at - now, LOOP_SLICE_MS / 1000.0));
		return;
	}
	d->refused = 0;
	rc = d->ever ? mosquitto_reconnect(d->mosq)
	             : mosquitto_connect(d->mosq, cfg->host, cfg->port,
	                                 cfg->keepalive_s);
	d->ever = true;
	if (rc == MOSQ_ERR_SUCCESS)
		d->link = true;
	else
		device_backoff(d, "connection failed", rc);
}

/* With a connection: one slice of network I/O (the callbacks run in it),
 * then telemetry when it is due. */
static void
device_loop_step(device *d)
{
	double now;
	int rc;

	rc = mosquitto_loop(d->mosq, LOOP_SLICE_MS, 1);
	if (rc != MOSQ_ERR_SUCCESS) {
		device_backoff(d, "connection closed", rc);
		return;
	}
	if (d->connected)
		d->backoff = BACKOFF_FIRST_S;
	now = now_s();
	if (device_publish_due(d, now)) {
		device_publish_telemetry(d);
		d->next_publish = now + d->cfg->interval_s;
	}
}

/* Connects, runs and reconnects until --count PUBACKs, --timeout or a
 * signal. Returns the exit status. */
static int
device_run(device *d)
{
	const device_config *cfg = d->cfg;
	double start = now_s();

	say("connecting to %s:%d with certificate %s", cfg->host, cfg->port,
	    cfg->cert);
	d->backoff = BACKOFF_FIRST_S;
	while (!device_stop) {
		if (cfg->timeout_s > 0 && now_s() - start >= cfg->timeout_s) {
			say("gave up after %.0f s: %ld of %ld messages "
			    "acknowledged",
			    cfg->timeout_s, d->acked, cfg->count);
			return EXIT_FAILED;
		}
		if (!d->link) {
			device_connect_step(d, now_s());
			continue;
		}
		device_loop_step(d);
		if (cfg->count > 0 && d->acked >= cfg->count) {
			say("done: %ld message%s acknowledged", d->acked,
			    d->acked == 1 ? "" : "s");
			mosquitto_disconnect(d->mosq);
			mosquitto_loop(d->mosq, LOOP_SLICE_MS, 1);
			return EXIT_DONE;
		}
	}
	say("stopped by a signal: %ld messages acknowledged", d->acked);
	if (d->link)
		mosquitto_disconnect(d->mosq);
	return cfg->count > 0 && d->acked < cfg->count ? EXIT_FAILED
	                                               : EXIT_DONE;
}

/* --------------------------------------------------------------- config */

static const char device_help[] =
    "usage: iotca-device --cafile FILE --cert FILE --key FILE [options]\n"
    "\n"
    "A device for iotca's MQTT edge: connects over mutual TLS with its\n"
    "certificate, learns its ProductKey and DeviceName from\n" IDENTITY_TOPIC
    ", subscribes to /PK/DN/user/get\n"
    "and publishes telemetry (QoS 1) on /PK/DN/user/update.\n"
    "\n"
    "options (each also read from the environment variable shown):\n"
    "  --host HOST         IOTCA_EDGE_HOST     edge host (127.0.0.1)\n"
    "  --port PORT         IOTCA_EDGE_PORT     edge port (8883)\n"
    "  --cafile FILE       IOTCA_EDGE_CAFILE   CA (or the certificate) of the "
    "edge's\n"
    "                                          server certificate (PEM)\n"
    "  --cert FILE         IOTCA_DEVICE_CERT   device certificate (PEM)\n"
    "  --key FILE          IOTCA_DEVICE_KEY    its RSA private key (PEM)\n"
    "  --interval SECONDS  IOTCA_DEVICE_INTERVAL_S  between messages (5)\n"
    "  --count N           IOTCA_DEVICE_COUNT  exit 0 after N PUBACKs (0: "
    "run until\n"
    "                                          SIGINT/SIGTERM)\n"
    "  --timeout SECONDS   give up (exit 1) after this long (0: never)\n"
    "  --keepalive SECONDS MQTT keep-alive (60)\n"
    "  --client-id ID      MQTT client id (iotca-device|securemode=2|)\n"
    "  -h, --help          this text\n"
    "\n"
    "Exit status: 0 done, 1 failed or gave up, 2 bad arguments.\n";

static const struct option device_opts[] = {
    {"host", required_argument, NULL, 'H'},
    {"port", required_argument, NULL, 'p'},
    {"cafile", required_argument, NULL, 'a'},
    {"cert", required_argument, NULL, 'c'},
    {"key", required_argument, NULL, 'k'},
    {"interval", required_argument, NULL, 'i'},
    {"count", required_argument, NULL, 'n'},
    {"timeout", required_argument, NULL, 't'},
    {"keepalive", required_argument, NULL, 'K'},
    {"client-id", required_argument, NULL, 'I'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* text as a whole number in [min, max] into *out; 0 or -1. */
static int
config_long(const char *what, const char *text, long min, long max, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0' || v < min || v > max) {
		fprintf(stderr,
		        "iotca-device: %s '%s': use a whole number from %ld to "
		        "%ld\n",
		        what, text, min, max);
		return -1;
	}
	*out = v;
	return 0;
}

/* text as seconds in [min, max] into *out; 0 or -1. */
static int
config_seconds(const char *what, const char *text, double min, double max,
               double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(text, &end);
	if (errno != 0 || end == text || *end != '\0' || !(v >= min) ||
	    !(v <= max)) {
		fprintf(stderr,
		        "iotca-device: %s '%s': use seconds from %g to %g\n",
		        what, text, min, max);
		return -1;
	}
	*out = v;
	return 0;
}

/* One option (from the command line or the environment) into *cfg. */
static int
config_set(device_config *cfg, int opt, const char *val)
{
	long v;

	switch (opt) {
	case 'H':
		cfg->host = val;
		return 0;
	case 'a':
		cfg->cafile = val;
		return 0;
	case 'c':
		cfg->cert = val;
		return 0;
	case 'k':
		cfg->key = val;
		return 0;
	case 'I':
		cfg->client_id = val;
		return 0;
	case 'p':
		if (config_long("--port", val, 1, 65535, &v) != 0)
			return -1;
		cfg->port = (int)v;
		return 0;
	case 'K':
		if (config_long("--keepalive", val, 5, 65535, &v) != 0)
			return -1;
		cfg->keepalive_s = (int)v;
		return 0;
	case 'n':
		return config_long("--count", val, 0, LONG_MAX, &cfg->count);
	case 'i':
		return config_seconds("--interval", val, 0.01, 86400,
		                      &cfg->interval_s);
	case 't':
		return config_seconds("--timeout", val, 0, 86400 * 365,
		                      &cfg->timeout_s);
	default:
		return -1;
	}
}

/* Defaults, then the environment, then the command line. Returns 0, 1 for
 * --help, or -1 after printing what is wrong. */
static int
config_load(device_config *cfg, int argc, char **argv)
{
	static const struct {
		const char *name;
		int opt;
	} env[] = {
	    {"IOTCA_EDGE_HOST", 'H'},    {"IOTCA_EDGE_PORT", 'p'},
	    {"IOTCA_EDGE_CAFILE", 'a'},  {"IOTCA_DEVICE_CERT", 'c'},
	    {"IOTCA_DEVICE_KEY", 'k'},   {"IOTCA_DEVICE_INTERVAL_S", 'i'},
	    {"IOTCA_DEVICE_COUNT", 'n'},
	};
	const char *val;
	size_t i;
	int c;

	*cfg = (device_config){.host = "127.0.0.1",
	                       .port = 8883,
	                       .client_id = "iotca-device|securemode=2|",
	                       .interval_s = 5,
	                       .keepalive_s = 60};
	for (i = 0; i < sizeof(env) / sizeof(env[0]); i++) {
		val = getenv(env[i].name);
		if (val != NULL && *val != '\0' &&
		    config_set(cfg, env[i].opt, val) != 0) {
			fprintf(stderr, "iotca-device: (from %s)\n",
			        env[i].name);
			return -1;
		}
	}
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", device_opts, NULL)) != -1) {
		if (c == 'h')
			return 1;
		if (c == '?' || c == ':') {
			fprintf(stderr,
			        "iotca-device: bad or incomplete option '%s' "
			        "(try --help)\n",
			        argv[optind - 1]);
			return -1;
		}
		if (config_set(cfg, c, optarg) != 0)
			return -1;
	}
	if (optind < argc) {
		fprintf(stderr, "iotca-device: unexpected argument '%s'\n",
		        argv[optind]);
		return -1;
	}
	if (cfg->cafile == NULL || cfg->cert == NULL || cfg->key == NULL) {
		fprintf(stderr, "iotca-device: --cafile, --cert and --key are "
		                "required (try --help)\n");
		return -1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	device_config cfg;
	device d;
	struct sigaction sa;
	int rc = EXIT_USAGE;

	switch (config_load(&cfg, argc, argv)) {
	case 0:
		break;
	case 1:
		fputs(device_help, stdout);
		return EXIT_DONE;
	default:
		return EXIT_USAGE;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = device_on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	mosquitto_lib_init();
	if (device_create(&d, &cfg) != 0)
		goto out;
	rc = device_run(&d);
out:
	if (d.mosq != NULL)
		mosquitto_destroy(d.mosq);
	mosquitto_lib_cleanup();
	return rc;
}
