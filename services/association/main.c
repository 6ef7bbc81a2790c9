/*
 * main.c - iotca-association: configuration, wiring and lifecycle.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "association.h"
#include "config/config.h"
#include "log/log.h"
#include "sig/sig.h"

static const iotca_config_opt opts[] = {
    {"IOTCA_LISTEN", "listen", IOTCA_CFG_HOSTPORT, "127.0.0.1:50052",
     "gRPC address to listen on", 0, 0},
    {"IOTCA_ETCD_ENDPOINTS", "etcd-endpoints", IOTCA_CFG_URLS,
     "http://127.0.0.1:2379", "etcd client URLs, comma-separated", 0, 0},
    {"IOTCA_ETCD_TIMEOUT_MS", "etcd-timeout-ms", IOTCA_CFG_INT, "10000",
     "time limit of one etcd request, failover included", 100, 600000},
    {"IOTCA_REGISTRY", "registry", IOTCA_CFG_HOSTPORT, "127.0.0.1:50051",
     "the registry, asked about CA certificates", 0, 0},
    {"IOTCA_OPERATOR_TOKEN", "operator-token", IOTCA_CFG_SECRET, NULL,
     "token of the operator RPCs; unset: they are refused", 0, 0},
    {"IOTCA_INTERNAL_TOKEN", "internal-token", IOTCA_CFG_SECRET, NULL,
     "token the edge sends for ResolveDevice; unset: mTLS only", 0, 0},
    {"IOTCA_INTERNAL_CN", "internal-cn", IOTCA_CFG_STRING, "iotca-edge",
     "client certificate CN accepted as internal (with IOTCA_GRPC_TLS_CA)", 0,
     0},
    {"IOTCA_GRPC_TLS_CERT", "grpc-tls-cert", IOTCA_CFG_FILE, NULL,
     "server certificate (PEM); unset: plaintext", 0, 0},
    {"IOTCA_GRPC_TLS_KEY", "grpc-tls-key", IOTCA_CFG_FILE, NULL,
     "server private key (PEM)", 0, 0},
    {"IOTCA_GRPC_TLS_CA", "grpc-tls-ca", IOTCA_CFG_FILE, NULL,
     "CA of internal clients' certificates, and of the registry's "
     "certificate (PEM)",
     0, 0},
    {"IOTCA_ASSOC_CACHE_ENTRIES", "cache-entries", IOTCA_CFG_INT, "200000",
     "associations ResolveDevice keeps in memory (watched; 0: none)", 0,
     100000000},
    {"IOTCA_GRPC_WORKERS", "grpc-workers", IOTCA_CFG_INT, "16",
     "threads running handlers", 1, 256},
    IOTCA_CONFIG_OPT_LOG_LEVEL,
};

#define NOPTS (sizeof(opts) / sizeof(opts[0]))

static iotca_err
assoc_open(const iotca_config *cfg, assoc_svc *a, iotca_errbuf *eb)
{
	iotca_etcd_opts eo = {0};
	iotca_auth_opts ao = {0};
	iotca_rpc_client_opts co = {0};
	iotca_err rc;

	eo.endpoints = iotca_config_get(cfg, "IOTCA_ETCD_ENDPOINTS");
	eo.timeout_ms = iotca_config_int(cfg, "IOTCA_ETCD_TIMEOUT_MS", 10000);
	eo.max_reply = 64u << 20; /* a 10,000-row upload's read and commit */
	if ((rc = iotca_etcd_create(&eo, &a->etcd, eb)) != IOTCA_OK)
		return rc;
	ao.etcd = a->etcd;
	ao.operator_token = iotca_config_get(cfg, "IOTCA_OPERATOR_TOKEN");
	ao.internal_token = iotca_config_get(cfg, "IOTCA_INTERNAL_TOKEN");
	if (iotca_config_get(cfg, "IOTCA_GRPC_TLS_CA") != NULL)
		ao.internal_cn = iotca_config_get(cfg, "IOTCA_INTERNAL_CN");
	if ((rc = iotca_auth_create(&ao, &a->auth, eb)) != IOTCA_OK)
		return rc;
	co.target = iotca_config_get(cfg, "IOTCA_REGISTRY");
	co.tls_ca_file = iotca_config_get(cfg, "IOTCA_GRPC_TLS_CA");
	co.timeout_ms = 5000;
	return iotca_rpc_client_create(&co, &a->registry, eb);
}

static iotca_err
server_open(const iotca_config *cfg, assoc_svc *a, iotca_rpc_server **srv,
            iotca_errbuf *eb)
{
	iotca_rpc_server_opts so = {0};
	iotca_err rc;

	so.listen = iotca_config_get(cfg, "IOTCA_LISTEN");
	so.tls_cert_file = iotca_config_get(cfg, "IOTCA_GRPC_TLS_CERT");
	so.tls_key_file = iotca_config_get(cfg, "IOTCA_GRPC_TLS_KEY");
	so.tls_ca_file = iotca_config_get(cfg, "IOTCA_GRPC_TLS_CA");
	so.workers = (unsigned)iotca_config_int(cfg, "IOTCA_GRPC_WORKERS", 16);
	/* Twice the 4 MiB CSV cap: a larger file gets INVALID_ARGUMENT from
	 * the upload's own check instead of gRPC's RESOURCE_EXHAUSTED. */
	so.max_request = 8u << 20;
	if ((rc = iotca_rpc_server_create(&so, srv, eb)) != IOTCA_OK ||
	    (rc = assoc_register(a, *srv, eb)) != IOTCA_OK)
		return rc;
	return iotca_rpc_server_start(*srv, NULL, eb);
}

/* Starts ResolveDevice's cache once etcd can be watched. */
static void
cache_try_start(assoc_svc *a, const iotca_config *cfg)
{
	long cap = iotca_config_int(cfg, "IOTCA_ASSOC_CACHE_ENTRIES", 200000);
	dev_cache *c = NULL;
	iotca_errbuf eb;

	if (cap == 0 || atomic_load(&a->devices) != NULL)
		return;
	if (dev_cache_start(a->etcd, (size_t)cap, &c, &eb) != IOTCA_OK) {
		iotca_log_warn("DEVICE-CACHE-UNAVAILABLE",
		               "msg=\"%s\" fallback=etcd",
		               iotca_errbuf_msg(&eb));
		return;
	}
	atomic_store(&a->devices, c);
}

/* Reports NOT_SERVING while etcd cannot be reached. */
static void
health_tick(assoc_svc *a, const iotca_config *cfg, iotca_rpc_server *srv,
            int *healthy)
{
	iotca_errbuf eb;
	int ok = iotca_etcd_health(a->etcd, &eb) == IOTCA_OK;

	if (ok)
		cache_try_start(a, cfg);
	if (ok == *healthy)
		return;
	*healthy = ok;
	iotca_rpc_server_set_health(srv, "", ok);
	iotca_rpc_server_set_health(srv, "iotca.v1.Association", ok);
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
	assoc_svc a = {0};
	iotca_errbuf eb;
	int sig, healthy = 1, rc = 1;

	iotca_sig_block_termination();
	cfg = iotca_config_main("iotca-association [options]",
	                        "The iotca association service: products, CSV "
	                        "uploads of certificate SNs, device "
	                        "resolution for the edge.",
	                        opts, NOPTS, argc, argv, NULL);
	iotca_errbuf_clear(&eb);
	if (assoc_open(cfg, &a, &eb) != IOTCA_OK ||
	    server_open(cfg, &a, &srv, &eb) != IOTCA_OK) {
		iotca_log_error(
		    "ASSOCIATION-START-FAILED",
		    "msg=\"%s\" hint=\"check IOTCA_LISTEN, "
		    "IOTCA_REGISTRY, the IOTCA_GRPC_TLS_* files and "
		    "IOTCA_ETCD_ENDPOINTS\"",
		    iotca_errbuf_msg(&eb));
		goto out;
	}
	health_tick(&a, cfg, srv, &healthy);
	while ((sig = iotca_sig_wait_termination(2000)) == 0 || sig == SIGHUP)
		health_tick(&a, cfg, srv, &healthy);
	iotca_log_info("ASSOCIATION-STOPPING", "signal=%d", sig);
	rc = 0;
out:
	iotca_rpc_server_destroy(srv);
	dev_cache_stop(atomic_load(&a.devices));
	iotca_rpc_client_destroy(a.registry);
	iotca_auth_destroy(a.auth);
	iotca_etcd_destroy(a.etcd);
	iotca_config_destroy(cfg);
	return rc;
}
