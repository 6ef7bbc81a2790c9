/*
 * main.c - iotca-registry: configuration, wiring and lifecycle.
 */
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>

#include "config/config.h"
#include "log/log.h"
#include "registry.h"
#include "sig/sig.h"

static const iotca_config_opt opts[] = {
    {"IOTCA_LISTEN", "listen", IOTCA_CFG_HOSTPORT, "127.0.0.1:50051",
     "gRPC address to listen on", 0, 0},
    {"IOTCA_ETCD_ENDPOINTS", "etcd-endpoints", IOTCA_CFG_URLS,
     "http://127.0.0.1:2379", "etcd client URLs, comma-separated", 0, 0},
    {"IOTCA_ETCD_TIMEOUT_MS", "etcd-timeout-ms", IOTCA_CFG_INT, "5000",
     "time limit of one etcd request, failover included", 100, 600000},
    {"IOTCA_OPERATOR_TOKEN", "operator-token", IOTCA_CFG_SECRET, NULL,
     "token of the operator RPCs; unset: they are refused", 0, 0},
    {"IOTCA_INTERNAL_TOKEN", "internal-token", IOTCA_CFG_SECRET, NULL,
     "token the edge sends for ResolveIssuer; unset: mTLS only", 0, 0},
    {"IOTCA_INTERNAL_CN", "internal-cn", IOTCA_CFG_STRING, "iotca-edge",
     "client certificate CN accepted as internal (with IOTCA_GRPC_TLS_CA)", 0,
     0},
    {"IOTCA_GRPC_TLS_CERT", "grpc-tls-cert", IOTCA_CFG_FILE, NULL,
     "server certificate (PEM); unset: plaintext", 0, 0},
    {"IOTCA_GRPC_TLS_KEY", "grpc-tls-key", IOTCA_CFG_FILE, NULL,
     "server private key (PEM)", 0, 0},
    {"IOTCA_GRPC_TLS_CA", "grpc-tls-ca", IOTCA_CFG_FILE, NULL,
     "CA that signs internal clients' certificates (PEM)", 0, 0},
    {"IOTCA_REGISTRY_ISSUER_CACHE", "issuer-cache", IOTCA_CFG_BOOL, "true",
     "answer ResolveIssuer from a watched in-memory copy of etcd", 0, 0},
    {"IOTCA_GRPC_WORKERS", "grpc-workers", IOTCA_CFG_INT, "16",
     "threads running handlers", 1, 256},
    IOTCA_CONFIG_OPT_LOG_LEVEL,
};

#define NOPTS (sizeof(opts) / sizeof(opts[0]))

static iotca_err
registry_open(const iotca_config *cfg, registry *r, iotca_errbuf *eb)
{
	iotca_etcd_opts eo = {0};
	iotca_auth_opts ao = {0};
	iotca_err rc;

	eo.endpoints = iotca_config_get(cfg, "IOTCA_ETCD_ENDPOINTS");
	eo.timeout_ms = iotca_config_int(cfg, "IOTCA_ETCD_TIMEOUT_MS", 5000);
	if ((rc = iotca_etcd_create(&eo, &r->etcd, eb)) != IOTCA_OK)
		return rc;
	ao.etcd = r->etcd;
	ao.operator_token = iotca_config_get(cfg, "IOTCA_OPERATOR_TOKEN");
	ao.internal_token = iotca_config_get(cfg, "IOTCA_INTERNAL_TOKEN");
	if (iotca_config_get(cfg, "IOTCA_GRPC_TLS_CA") != NULL)
		ao.internal_cn = iotca_config_get(cfg, "IOTCA_INTERNAL_CN");
	if (ao.operator_token == NULL)
		iotca_log_warn("OPERATOR-TOKEN-UNSET",
		               "msg=\"operator RPCs are refused; set "
		               "IOTCA_OPERATOR_TOKEN\"");
	return iotca_auth_create(&ao, &r->auth, eb);
}

static iotca_err
server_open(const iotca_config *cfg, registry *r, iotca_rpc_server **srv,
            iotca_errbuf *eb)
{
	iotca_rpc_server_opts so = {0};
	iotca_err rc;

	so.listen = iotca_config_get(cfg, "IOTCA_LISTEN");
	so.tls_cert_file = iotca_config_get(cfg, "IOTCA_GRPC_TLS_CERT");
	so.tls_key_file = iotca_config_get(cfg, "IOTCA_GRPC_TLS_KEY");
	so.tls_ca_file = iotca_config_get(cfg, "IOTCA_GRPC_TLS_CA");
	so.workers = (unsigned)iotca_config_int(cfg, "IOTCA_GRPC_WORKERS", 16);
	/* gRPC itself refuses a message over this cap with RESOURCE_EXHAUSTED
	 * before any handler sees it. Set it above the methods' own cap
	 * (REG_MAX_REQUEST, service.c) so that an oversized upload is
	 * refused by lib/rpc, unread, with INVALID_ARGUMENT as the contract
	 * says ("a certificate ... larger than 64 KiB"). */
	so.max_request = 4u << 20;
	if ((rc = iotca_rpc_server_create(&so, srv, eb)) != IOTCA_OK ||
	    (rc = registry_register(r, *srv, eb)) != IOTCA_OK)
		return rc;
	return iotca_rpc_server_start(*srv, NULL, eb);
}

/* Loads the issuer copy once etcd can be read (at start, or later if
 * etcd was down then). */
static void
issuers_try_start(registry *r, const iotca_config *cfg)
{
	issuer_cache *c = NULL;
	iotca_errbuf eb;

	if (atomic_load(&r->issuers) != NULL ||
	    !iotca_config_bool(cfg, "IOTCA_REGISTRY_ISSUER_CACHE", 1))
		return;
	if (issuer_cache_start(r->etcd, &c, &eb) != IOTCA_OK) {
		iotca_log_warn("ISSUER-CACHE-UNAVAILABLE",
		               "msg=\"%s\" fallback=etcd",
		               iotca_errbuf_msg(&eb));
		return;
	}
	atomic_store(&r->issuers, c);
}

/* Reports NOT_SERVING while etcd cannot be reached. */
static void
health_tick(registry *r, const iotca_config *cfg, iotca_rpc_server *srv,
            int *healthy)
{
	iotca_errbuf eb;
	int ok = iotca_etcd_health(r->etcd, &eb) == IOTCA_OK;

	if (ok)
		issuers_try_start(r, cfg);
	if (ok == *healthy)
		return;
	*healthy = ok;
	iotca_rpc_server_set_health(srv, "", ok);
	iotca_rpc_server_set_health(srv, "iotca.v1.Registry", ok);
	if (ok)
		iotca_log_info("ETCD-REACHABLE", "serving=true");
	else
		iotca_log_warn("ETCD-UNREACHABLE", "serving=false msg=\"%s\"",
		               iotca_errbuf_msg(&eb));
}

int
main(int argc, char **argv)
{
	iotca_config *cfg;
	iotca_rpc_server *srv = NULL;
	registry r = {0};
	iotca_errbuf eb;
	int sig, healthy = 1, rc = 1;

	iotca_sig_block_termination();
	cfg = iotca_config_main("iotca-registry [options]",
	                        "The iotca registry: accounts, API keys, "
	                        "registration codes and CA certificates.",
	                        opts, NOPTS, argc, argv, NULL);
	iotca_errbuf_clear(&eb);
	if (registry_open(cfg, &r, &eb) != IOTCA_OK ||
	    server_open(cfg, &r, &srv, &eb) != IOTCA_OK) {
		iotca_log_error("REGISTRY-START-FAILED",
		                "msg=\"%s\" hint=\"check IOTCA_LISTEN, the "
		                "IOTCA_GRPC_TLS_* files and "
		                "IOTCA_ETCD_ENDPOINTS\"",
		                iotca_errbuf_msg(&eb));
		goto out;
	}
	health_tick(&r, cfg, srv, &healthy);
	while ((sig = iotca_sig_wait_termination(2000)) == 0 || sig == SIGHUP)
		health_tick(&r, cfg, srv, &healthy);
	iotca_log_info("REGISTRY-STOPPING", "signal=%d", sig);
	rc = 0;
out:
	iotca_rpc_server_destroy(srv);
	issuer_cache_stop(atomic_load(&r.issuers));
	iotca_auth_destroy(r.auth);
	iotca_etcd_destroy(r.etcd);
	iotca_config_destroy(cfg);
	return rc;
}
