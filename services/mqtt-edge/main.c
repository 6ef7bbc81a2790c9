/*
 * main.c - iotca-edge: configuration, wiring, signals, probes and metrics.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <signal.h>
#include <openssl/async.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nng/nng.h>

#include "edge_int.h"
#include "log/log.h"
#include "probe/probe.h"
#include "sig/sig.h"

static const iotca_config_opt opts[] = {
    {"IOTCA_EDGE_LISTEN", "listen", IOTCA_CFG_HOSTPORT, "0.0.0.0:8883",
     "MQTT over TLS address to listen on (every loop binds it with "
     "SO_REUSEPORT)",
     0, 0},
    {"IOTCA_EDGE_TLS_CERT", "tls-cert", IOTCA_CFG_FILE, NULL,
     "server certificate (PEM, chain allowed; RSA or ECDSA); reloaded on "
     "SIGHUP",
     0, 0},
    {"IOTCA_EDGE_TLS_KEY", "tls-key", IOTCA_CFG_FILE, NULL,
     "server private key (PEM); reloaded on SIGHUP", 0, 0},
    {"IOTCA_EDGE_ID", "edge-id", IOTCA_CFG_STRING, NULL,
     "this instance's name in DeviceMessage.edge_id (default: the host "
     "name)",
     0, 0},
    {"IOTCA_EDGE_THREADS", "threads", IOTCA_CFG_INT, "0",
     "event loops (0: one per core)", 0, 256},
    {"IOTCA_EDGE_MAX_CONNECTIONS", "max-connections", IOTCA_CFG_INT, "100000",
     "connections held at once; more are closed at accept", 1, 10000000},
    {"IOTCA_EDGE_MAX_PACKET", "max-packet", IOTCA_CFG_INT, "262144",
     "largest MQTT packet accepted, in bytes", 64, 268435460},
    {"IOTCA_EDGE_HANDSHAKE_TIMEOUT_MS", "handshake-timeout-ms", IOTCA_CFG_INT,
     "10000", "time allowed for the TLS handshake", 100, 600000},
    {"IOTCA_EDGE_CONNECT_TIMEOUT_MS", "connect-timeout-ms", IOTCA_CFG_INT,
     "10000", "time allowed between the handshake and CONNACK", 100, 600000},
    {"IOTCA_EDGE_LOOKUP_TIMEOUT_MS", "lookup-timeout-ms", IOTCA_CFG_INT, "3000",
     "deadline of a ResolveIssuer/ResolveDevice call", 50, 60000},
    {"IOTCA_EDGE_CACHE_TTL_S", "cache-ttl-s", IOTCA_CFG_INT, "300",
     "how long a positive lookup answer is kept (changes also drop it)", 1,
     86400},
    {"IOTCA_EDGE_NEGATIVE_TTL_S", "negative-ttl-s", IOTCA_CFG_INT, "5",
     "how long a negative lookup answer is kept", 0, 3600},
    {"IOTCA_EDGE_CACHE_ENTRIES", "cache-entries", IOTCA_CFG_INT, "200000",
     "device answers kept (issuer answers: 1/16 of it)", 16, 100000000},
    {"IOTCA_EDGE_TLS_SESSIONS", "tls-sessions", IOTCA_CFG_INT, "20000",
     "TLS sessions kept for resumption (server-side cache, about 6 KiB "
     "each for closed connections; 0: no resumption)",
     0, 10000000},
    {"IOTCA_EDGE_CHANGES_POLL_MS", "changes-poll-ms", IOTCA_CFG_INT, "1000",
     "how often the registry and the association service are asked what "
     "changed (revocation delay)",
     100, 60000},
    {"IOTCA_EDGE_UPSTREAM", "upstream", IOTCA_CFG_NNGURL, NULL,
     "NNG address the PUSH socket dials for DeviceMessages (unset: counted "
     "and dropped)",
     0, 0},
    {"IOTCA_EDGE_UPSTREAM_TIMEOUT_MS", "upstream-timeout-ms", IOTCA_CFG_INT,
     "5000", "how long a QoS 1/2 message waits for the upstream hand-off", 10,
     600000},
    {"IOTCA_EDGE_DOWNSTREAM", "downstream", IOTCA_CFG_NNGURL, NULL,
     "NNG address the SUB socket dials for downstream messages (unset: "
     "none)",
     0, 0},
    {"IOTCA_EDGE_PROBE_LISTEN", "probe-listen", IOTCA_CFG_HOSTPORT,
     "0.0.0.0:9883", "HTTP address for /healthz, /readyz and /metrics", 0, 0},
    {"IOTCA_REGISTRY", "registry", IOTCA_CFG_HOSTPORT, "127.0.0.1:50051",
     "the registry (ResolveIssuer, ListCaChanges)", 0, 0},
    {"IOTCA_ASSOCIATION", "association", IOTCA_CFG_HOSTPORT, "127.0.0.1:50052",
     "the association service (ResolveDevice, "
     "ListDeviceChanges)",
     0, 0},
    {"IOTCA_INTERNAL_TOKEN", "internal-token", IOTCA_CFG_SECRET, NULL,
     "internal credential sent to the services (or use mTLS with "
     "IOTCA_GRPC_TLS_CERT)",
     0, 0},
    {"IOTCA_GRPC_TLS_CA", "grpc-tls-ca", IOTCA_CFG_FILE, NULL,
     "CA of the services' certificates (PEM); unset: plaintext gRPC", 0, 0},
    {"IOTCA_GRPC_TLS_CERT", "grpc-tls-cert", IOTCA_CFG_FILE, NULL,
     "client certificate (PEM) the edge presents to the services (mTLS)", 0, 0},
    {"IOTCA_GRPC_TLS_KEY", "grpc-tls-key", IOTCA_CFG_FILE, NULL,
     "its private key (PEM)", 0, 0},
    IOTCA_CONFIG_OPT_LOG_LEVEL,
};

#define NOPTS (sizeof(opts) / sizeof(opts[0]))

static const char *const reason_words[EDGE_R_COUNT] = {
    [EDGE_R_NONE] = "",
    [EDGE_R_UNKNOWN_ISSUER] = "unknown_issuer",
    [EDGE_R_BAD_SIGNATURE] = "bad_signature",
    [EDGE_R_CERT_EXPIRED] = "cert_expired",
    [EDGE_R_KEY_NOT_RSA] = "key_not_rsa",
    [EDGE_R_UNKNOWN_SN] = "unknown_sn",
    [EDGE_R_DEVICE_DISABLED] = "device_disabled",
    [EDGE_R_LOOKUP_FAILED] = "lookup_failed",
    [EDGE_R_BAD_CERT] = "bad_certificate",
    [EDGE_R_CLIENT_DISCONNECT] = "client_disconnect",
    [EDGE_R_CONNECTION_LOST] = "connection_lost",
    [EDGE_R_KEEPALIVE_TIMEOUT] = "keepalive_timeout",
    [EDGE_R_PROTOCOL_ERROR] = "protocol_error",
    [EDGE_R_TOPIC_DENIED] = "topic_denied",
    [EDGE_R_TAKEN_OVER] = "session_taken_over",
    [EDGE_R_REVOKED] = "revoked",
    [EDGE_R_SHUTDOWN] = "server_shutdown",
};

const char *
edge_reason_word(edge_reason r)
{
	return r >= 0 && r < EDGE_R_COUNT ? reason_words[r] : "unknown";
}

int
edge_parse_hostport(const char *s, int port_override,
                    struct sockaddr_storage *ss, socklen_t *sl)
{
	char host[256];
	const char *colon = strrchr(s, ':');
	struct addrinfo hints = {0}, *ai = NULL;
	char port[16];
	size_t hl;

	if (colon == NULL || (hl = (size_t)(colon - s)) >= sizeof(host))
		return -1;
	memcpy(host, s, hl);
	host[hl] = '\0';
	if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
		memmove(host, host + 1, hl - 2);
		host[hl - 2] = '\0';
	}
	if (port_override > 0)
		snprintf(port, sizeof(port), "%d", port_override);
	else
		snprintf(port, sizeof(port), "%s", colon + 1);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if (getaddrinfo(host[0] != '\0' ? host : NULL, port, &hints, &ai) != 0)
		return -1;
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*sl = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
}

/* ------------------------------------------------------------ metrics */

/* One sample; with help, its HELP and TYPE lines first. */
static void
metric(iotca_buf *b, const char *name, const char *type, const char *help,
       const char *labels, uint64_t v)
{
	iotca_probe_metric_u64(b, name, help, type, labels, v);
}

static void
edge_metrics(iotca_buf *b, void *arg)
{
	edge *e = arg;
	edge_stats *s = &e->st;
	edge_auth_stats as;
	edge_plane_stats ps;
	char lab[64];
	int r, first;

	edge_auth_stats_get(e->auth, &as);
	edge_plane_stats_get(e->plane, &ps);
	metric(b, "iotca_edge_connections", "gauge", "TCP connections open now",
	       NULL, (uint64_t)atomic_load(&s->connections));
	metric(b, "iotca_edge_sessions", "gauge",
	       "authenticated MQTT sessions open now", NULL,
	       (uint64_t)atomic_load(&s->sessions));
	metric(b, "iotca_edge_accepted_total", "counter",
	       "connections accepted", NULL, atomic_load(&s->accepted));
	metric(b, "iotca_edge_refused_capacity_total", "counter",
	       "connections closed at accept: IOTCA_EDGE_MAX_CONNECTIONS", NULL,
	       atomic_load(&s->refused_cap));
	metric(b, "iotca_edge_handshakes_total", "counter",
	       "TLS handshakes by result", "result=\"ok\"",
	       atomic_load(&s->handshakes_ok));
	metric(b, "iotca_edge_handshakes_total", "counter", NULL,
	       "result=\"failed\"", atomic_load(&s->handshakes_failed));
	metric(b, "iotca_edge_handshakes_total", "counter", NULL,
	       "result=\"timeout\"", atomic_load(&s->handshake_timeouts));
	metric(b, "iotca_edge_handshakes_resumed_total", "counter",
	       "TLS sessions resumed by ticket", NULL,
	       atomic_load(&s->resumed));
	metric(b, "iotca_edge_sessions_opened_total", "counter",
	       "CONNACK 0 sent", NULL, atomic_load(&s->sessions_opened));
	for (r = 1, first = 1; r <= EDGE_R_BAD_CERT; r++) {
		snprintf(lab, sizeof(lab), "reason=\"%s\"",
		         edge_reason_word((edge_reason)r));
		metric(b, "iotca_edge_auth_failures_total", "counter",
		       first ? "devices refused, by reason" : NULL, lab,
		       atomic_load(&s->auth_failed[r]));
		first = 0;
	}
	for (r = EDGE_R_CLIENT_DISCONNECT, first = 1; r < EDGE_R_COUNT; r++) {
		snprintf(lab, sizeof(lab), "reason=\"%s\"",
		         edge_reason_word((edge_reason)r));
		metric(b, "iotca_edge_closed_total", "counter",
		       first ? "connections closed, by reason" : NULL, lab,
		       atomic_load(&s->closed[r]));
		first = 0;
	}
	metric(b, "iotca_edge_messages_up_total", "counter",
	       "PUBLISH received from devices", NULL, atomic_load(&s->msgs_up));
	metric(b, "iotca_edge_messages_down_total", "counter",
	       "PUBLISH sent to devices (downstream)", NULL,
	       atomic_load(&s->msgs_down));
	metric(b, "iotca_edge_protocol_errors_total", "counter",
	       "malformed MQTT: connection closed", NULL,
	       atomic_load(&s->protocol_errors));
	metric(b, "iotca_edge_upstream_total", "counter",
	       "upstream DeviceMessages by result", "result=\"sent\"",
	       ps.up_sent + ps.events_sent);
	metric(b, "iotca_edge_upstream_total", "counter", NULL,
	       "result=\"dropped\"", ps.up_dropped + ps.events_dropped);
	metric(b, "iotca_edge_upstream_total", "counter", NULL,
	       "result=\"failed\"", ps.up_failed);
	metric(b, "iotca_edge_downstream_total", "counter",
	       "downstream NNG messages by result", "result=\"routed\"",
	       ps.down_routed);
	metric(b, "iotca_edge_downstream_total", "counter", NULL,
	       "result=\"not_here\"", ps.down_dropped);
	metric(b, "iotca_edge_cache_total", "counter",
	       "lookups answered by the caches",
	       "cache=\"issuer\",result=\"hit\"", as.issuer_hits);
	metric(b, "iotca_edge_cache_total", "counter", NULL,
	       "cache=\"issuer\",result=\"miss\"", as.issuer_misses);
	metric(b, "iotca_edge_cache_total", "counter", NULL,
	       "cache=\"device\",result=\"hit\"", as.device_hits);
	metric(b, "iotca_edge_cache_total", "counter", NULL,
	       "cache=\"device\",result=\"miss\"", as.device_misses);
	metric(b, "iotca_edge_lookups_total", "counter",
	       "ResolveIssuer/ResolveDevice calls by result",
	       "result=\"started\"", as.lookups);
	metric(b, "iotca_edge_lookups_total", "counter", NULL,
	       "result=\"failed\"", as.lookup_failures);
}

static int
edge_ready(void *arg)
{
	edge *e = arg;

	return !atomic_load(&e->stopping) && edge_changes_ready(e->changes);
}

/* ------------------------------------------------------------ wiring */

static void
opts_read(const iotca_config *cfg, edge *e)
{
	edge_opts *o = &e->o;
	static char host[256];
	long threads = iotca_config_int(cfg, "IOTCA_EDGE_THREADS", 0);

	o->listen = iotca_config_get(cfg, "IOTCA_EDGE_LISTEN");
	o->tls_cert = iotca_config_get(cfg, "IOTCA_EDGE_TLS_CERT");
	o->tls_key = iotca_config_get(cfg, "IOTCA_EDGE_TLS_KEY");
	o->edge_id = iotca_config_get(cfg, "IOTCA_EDGE_ID");
	if (o->edge_id == NULL) {
		if (gethostname(host, sizeof(host) - 1) != 0)
			strcpy(host, "iotca-edge");
		o->edge_id = host;
	}
	if (threads <= 0)
		threads = sysconf(_SC_NPROCESSORS_ONLN);
	o->threads = threads > 0 ? (unsigned)threads : 1;
	o->max_connections =
	    iotca_config_int(cfg, "IOTCA_EDGE_MAX_CONNECTIONS", 100000);
	o->max_packet =
	    (size_t)iotca_config_int(cfg, "IOTCA_EDGE_MAX_PACKET", 262144);
	o->handshake_timeout_ms =
	    iotca_config_int(cfg, "IOTCA_EDGE_HANDSHAKE_TIMEOUT_MS", 10000);
	o->connect_timeout_ms =
	    iotca_config_int(cfg, "IOTCA_EDGE_CONNECT_TIMEOUT_MS", 10000);
	o->lookup_timeout_ms =
	    iotca_config_int(cfg, "IOTCA_EDGE_LOOKUP_TIMEOUT_MS", 3000);
	o->cache_ttl_s = iotca_config_int(cfg, "IOTCA_EDGE_CACHE_TTL_S", 300);
	o->negative_ttl_s =
	    iotca_config_int(cfg, "IOTCA_EDGE_NEGATIVE_TTL_S", 5);
	o->cache_entries =
	    iotca_config_int(cfg, "IOTCA_EDGE_CACHE_ENTRIES", 200000);
	o->tls_sessions =
	    iotca_config_int(cfg, "IOTCA_EDGE_TLS_SESSIONS", 20000);
	o->changes_poll_ms =
	    iotca_config_int(cfg, "IOTCA_EDGE_CHANGES_POLL_MS", 1000);
	o->upstream = iotca_config_get(cfg, "IOTCA_EDGE_UPSTREAM");
	o->upstream_timeout_ms =
	    iotca_config_int(cfg, "IOTCA_EDGE_UPSTREAM_TIMEOUT_MS", 5000);
	o->downstream = iotca_config_get(cfg, "IOTCA_EDGE_DOWNSTREAM");
	o->probe_listen = iotca_config_get(cfg, "IOTCA_EDGE_PROBE_LISTEN");
	e->nloops = o->threads;
}

static iotca_err
clients_open(const iotca_config *cfg, edge *e, iotca_errbuf *eb)
{
	iotca_rpc_client_opts co = {0};
	iotca_err rc;

	co.tls_ca_file = iotca_config_get(cfg, "IOTCA_GRPC_TLS_CA");
	co.tls_cert_file = iotca_config_get(cfg, "IOTCA_GRPC_TLS_CERT");
	co.tls_key_file = iotca_config_get(cfg, "IOTCA_GRPC_TLS_KEY");
	co.token = iotca_config_get(cfg, "IOTCA_INTERNAL_TOKEN");
	co.timeout_ms = e->o.lookup_timeout_ms;
	co.target = iotca_config_get(cfg, "IOTCA_REGISTRY");
	if ((rc = iotca_rpc_client_create(&co, &e->registry, eb)) != IOTCA_OK)
		return rc;
	co.target = iotca_config_get(cfg, "IOTCA_ASSOCIATION");
	return iotca_rpc_client_create(&co, &e->association, eb);
}

static void
reload_tls(edge *e)
{
	SSL_CTX *ctx = NULL;
	iotca_errbuf eb;

	iotca_errbuf_clear(&eb);
	if (edge_tls_load(e, &ctx, &eb) != IOTCA_OK) {
		iotca_log_error("EDGE-TLS-RELOAD-FAILED",
		                "msg=\"%s\" effect=\"the previous certificate "
		                "stays in use\"",
		                iotca_errbuf_msg(&eb));
		return;
	}
	edge_tls_swap(e, ctx);
	iotca_log_info("EDGE-TLS-RELOADED", "cert=\"%s\"", e->o.tls_cert);
}

static int
check_required(const edge *e, iotca_errbuf *eb)
{
	if (e->o.tls_cert == NULL || e->o.tls_key == NULL)
		return iotca_errbuf_set(eb, IOTCA_EINVAL,
		                        "the edge needs a server certificate: "
		                        "set IOTCA_EDGE_TLS_CERT and "
		                        "IOTCA_EDGE_TLS_KEY"),
		       -1;
	return 0;
}

int
main(int argc, char **argv)
{
	static edge e; /* zeroed */
	iotca_probe *probe = NULL;
	iotca_config *cfg;
	iotca_errbuf eb;
	SSL_CTX *ctx = NULL;
	int rc = 1, sig, probe_port = 0;

	iotca_sig_block_termination();
	cfg = iotca_config_main("iotca-edge [options]",
	                        "The iotca MQTT edge: MQTT 3.1.1 over mutual "
	                        "TLS for devices with certificates of "
	                        "registered private CAs.",
	                        opts, NOPTS, argc, argv, NULL);
	e.cfg = cfg;
	opts_read(cfg, &e);
	pthread_mutex_init(&e.ctx_mu, NULL);
	iotca_errbuf_clear(&eb);
	if (check_required(&e, &eb) != 0 ||
	    edge_tls_load(&e, &ctx, &eb) != IOTCA_OK)
		goto fail;
	edge_tls_swap(&e, ctx);
	if (clients_open(cfg, &e, &eb) != IOTCA_OK ||
	    edge_auth_create(&e, &e.auth, &eb) != IOTCA_OK ||
	    edge_plane_create(&e, &e.plane, &eb) != IOTCA_OK ||
	    edge_changes_start(&e, &e.changes, &eb) != IOTCA_OK ||
	    edge_loops_start(&e, &eb) != IOTCA_OK ||
	    iotca_probe_start(e.o.probe_listen, edge_ready, edge_metrics, &e,
	                      &probe, &probe_port, &eb) != IOTCA_OK)
		goto fail;
	iotca_log_info("EDGE-STARTED",
	               "listen=%s port=%d loops=%u probe_port=%d edge_id=%s "
	               "upstream=%s downstream=%s",
	               e.o.listen, e.port, e.nloops, probe_port, e.o.edge_id,
	               e.o.upstream ? e.o.upstream : "-",
	               e.o.downstream ? e.o.downstream : "-");
	while ((sig = iotca_sig_wait_termination(-1)) == SIGHUP)
		reload_tls(&e);
	iotca_log_info("EDGE-STOPPING", "signal=%d", sig);
	rc = 0;
	goto out;
fail:
	iotca_log_error("EDGE-START-FAILED", "msg=\"%s\"",
	                iotca_errbuf_msg(&eb));
out:
	atomic_store(&e.stopping, 1);
	edge_changes_stop(e.changes);
	edge_loops_stop(&e);
	iotca_probe_stop(probe);
	/* the sessions' last messages and DISCONNECTED events, at most the
	 * upstream timeout */
	edge_plane_drain(e.plane, e.o.upstream_timeout_ms);
	edge_plane_destroy(e.plane);
	iotca_rpc_client_destroy(e.registry);
	iotca_rpc_client_destroy(e.association);
	edge_loops_free(&e);
	edge_auth_destroy(e.auth);
	edge_tls_swap(&e, NULL);
	edge_tls_libctx_free();
	iotca_config_destroy(cfg);
	nng_fini();
	if (rc == 0)
		iotca_log_info("EDGE-STOPPED", "msg=\"bye\"");
	return rc;
}
