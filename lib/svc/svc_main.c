/*
 * svc_main.c - what every service's main() shares: opening etcd and the
 * credentials from the common settings, the server options, and the run
 * loop that reports NOT_SERVING while etcd is unreachable.
 */
#include <signal.h>

#include "log/log.h"
#include "probe/probe.h"
#include "sig/sig.h"
#include "svc/svc.h"

#define SVC_TICK_MS 2000

iotca_err
iotca_svc_base_open(iotca_svc_base *b, const iotca_config *cfg,
                    size_t etcd_max_reply, iotca_errbuf *eb)
{
	iotca_etcd_opts eo = {0};
	iotca_auth_opts ao = {0};
	iotca_err rc;

	b->cfg = cfg;
	eo.endpoints = iotca_config_get(cfg, "IOTCA_ETCD_ENDPOINTS");
	eo.timeout_ms = iotca_config_int(cfg, "IOTCA_ETCD_TIMEOUT_MS", 5000);
	eo.max_reply = etcd_max_reply;
	if ((rc = iotca_etcd_create(&eo, &b->etcd, eb)) != IOTCA_OK)
		return rc;
	ao.etcd = b->etcd;
	ao.operator_token = iotca_config_get(cfg, "IOTCA_OPERATOR_TOKEN");
	ao.internal_token = iotca_config_get(cfg, "IOTCA_INTERNAL_TOKEN");
	if (iotca_config_get(cfg, "IOTCA_GRPC_TLS_CA") != NULL)
		ao.internal_cn = iotca_config_get(cfg, "IOTCA_INTERNAL_CN");
	if (ao.operator_token == NULL)
		iotca_log_warn("OPERATOR-TOKEN-UNSET",
		               "msg=\"operator RPCs are refused; set "
		               "IOTCA_OPERATOR_TOKEN\"");
	b->healthy = 1;
	return iotca_auth_create(&ao, &b->auth, eb);
}

void
iotca_svc_server_opts(const iotca_config *cfg, iotca_rpc_server_opts *so)
{
	so->listen = iotca_config_get(cfg, "IOTCA_LISTEN");
	so->tls_cert_file = iotca_config_get(cfg, "IOTCA_GRPC_TLS_CERT");
	so->tls_key_file = iotca_config_get(cfg, "IOTCA_GRPC_TLS_KEY");
	so->tls_ca_file = iotca_config_get(cfg, "IOTCA_GRPC_TLS_CA");
	so->workers = (unsigned)iotca_config_int(cfg, "IOTCA_GRPC_WORKERS", 16);
}

/* Asks etcd; turns the health to NOT_SERVING and back as it changes. */
static void
svc_health_tick(iotca_svc_base *b, void (*tick)(void *arg), void *arg)
{
	iotca_errbuf eb;
	int ok = iotca_etcd_health(b->etcd, &eb) == IOTCA_OK;

	if (ok && tick != NULL)
		tick(arg);
	if (ok)
		b->started = 1;
	if (ok == b->healthy)
		return;
	b->healthy = ok;
	iotca_rpc_server_set_health(b->srv, "", ok);
	iotca_rpc_server_set_health(b->srv, b->name, ok);
	if (ok)
		iotca_log_info("ETCD-REACHABLE", "serving=true");
	else
		iotca_log_warn("ETCD-UNREACHABLE", "serving=false msg=\"%s\"",
		               iotca_errbuf_msg(&eb));
}

/*
 * Readiness: start-up is done (etcd answered once, the watched copies
 * started). It does not drop when etcd becomes unreachable later: every
 * replica shares the same etcd, so no other replica would do better, and
 * the edge's lookups are still answered from memory. iotca_etcd_reachable
 * in /metrics (and grpc.health.v1) tell that outage. Liveness is the probe
 * answering at all.
 */
static int
svc_ready(void *arg)
{
	const iotca_svc_base *b = arg;

	return b->started;
}

static void
svc_metrics(iotca_buf *out, void *arg)
{
	iotca_svc_base *b = arg;
	iotca_rpc_server_stats st;

	iotca_rpc_server_stats_get(b->srv, &st);
	iotca_probe_metric_u64(out, "iotca_rpc_calls_total",
	                       "gRPC calls by outcome", "counter",
	                       "result=\"received\"", st.calls);
	iotca_probe_metric_u64(out, "iotca_rpc_calls_total", NULL, "counter",
	                       "result=\"failed\"", st.calls_failed);
	iotca_probe_metric_u64(out, "iotca_rpc_calls_total", NULL, "counter",
	                       "result=\"cancelled\"", st.calls_cancelled);
	iotca_probe_metric_u64(out, "iotca_rpc_calls_total", NULL, "counter",
	                       "result=\"unimplemented\"", st.calls_unknown);
	iotca_probe_metric_u64(out, "iotca_rpc_in_flight",
	                       "gRPC calls being handled now", "gauge", NULL,
	                       st.in_flight);
	iotca_probe_metric_u64(out, "iotca_etcd_reachable",
	                       "1 when etcd answered the last health check",
	                       "gauge", NULL, (uint64_t)b->healthy);
}

/* Starts the HTTP probe endpoint when IOTCA_PROBE_LISTEN is set. */
static iotca_err
svc_probe_start(iotca_svc_base *b, iotca_errbuf *eb)
{
	const char *addr = iotca_config_get(b->cfg, "IOTCA_PROBE_LISTEN");
	int port = 0;

	if (addr == NULL)
		return IOTCA_OK;
	return iotca_probe_start(addr, svc_ready, svc_metrics, b, &b->probe,
	                         &port, eb);
}

int
iotca_svc_base_run(iotca_svc_base *b, void (*tick)(void *arg), void *arg)
{
	iotca_errbuf eb;
	int sig;

	iotca_errbuf_clear(&eb);
	if (svc_probe_start(b, &eb) != IOTCA_OK) {
		iotca_log_error("PROBE-START-FAILED",
		                "msg=\"%s\" hint=\"check IOTCA_PROBE_LISTEN\"",
		                iotca_errbuf_msg(&eb));
		return SIGTERM;
	}
	svc_health_tick(b, tick, arg);
	while ((sig = iotca_sig_wait_termination(SVC_TICK_MS)) == 0 ||
	       sig == SIGHUP)
		svc_health_tick(b, tick, arg);
	iotca_log_info("SERVICE-STOPPING", "service=%s signal=%d", b->name,
	               sig);
	/* the probe reads the server's counters: it goes before the server
	 * does; a pod that stops answering is no longer ready anyway */
	iotca_probe_stop(b->probe);
	b->probe = NULL;
	return sig;
}

void
iotca_svc_base_close(iotca_svc_base *b)
{
	iotca_probe_stop(b->probe);
	b->probe = NULL;
	iotca_rpc_server_destroy(b->srv);
	b->srv = NULL;
	iotca_auth_destroy(b->auth);
	b->auth = NULL;
	iotca_etcd_destroy(b->etcd);
	b->etcd = NULL;
}
