/*
 * svc_main.c - what every service's main() shares: opening etcd and the
 * credentials from the common settings, the server options, and the run
 * loop that reports NOT_SERVING while etcd is unreachable.
 */
#include <signal.h>

#include "log/log.h"
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

int
iotca_svc_base_run(iotca_svc_base *b, void (*tick)(void *arg), void *arg)
{
	int sig;

	svc_health_tick(b, tick, arg);
	while ((sig = iotca_sig_wait_termination(SVC_TICK_MS)) == 0 ||
	       sig == SIGHUP)
		svc_health_tick(b, tick, arg);
	iotca_log_info("SERVICE-STOPPING", "service=%s signal=%d", b->name,
	               sig);
	return sig;
}

void
iotca_svc_base_close(iotca_svc_base *b)
{
	iotca_rpc_server_destroy(b->srv);
	b->srv = NULL;
	iotca_auth_destroy(b->auth);
	b->auth = NULL;
	iotca_etcd_destroy(b->etcd);
	b->etcd = NULL;
}
