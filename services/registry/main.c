/*
 * main.c - iotca-registry: configuration, wiring and lifecycle.
 */
#include <stdio.h>
#include <stdlib.h>

#include "config/config.h"
#include "log/log.h"
#include "registry.h"
#include "sig/sig.h"

static const iotca_config_opt opts[] = {
    IOTCA_SVC_CONFIG_OPTS("127.0.0.1:50051", "5000"),
    {"IOTCA_REGISTRY_ISSUER_CACHE", "issuer-cache", IOTCA_CFG_BOOL, "true",
     "answer ResolveIssuer from a watched in-memory copy of etcd", 0, 0},
    IOTCA_CONFIG_OPT_LOG_LEVEL,
};

#define NOPTS (sizeof(opts) / sizeof(opts[0]))

typedef struct registry_main {
	registry r;
	const iotca_config *cfg;
} registry_main;

static iotca_err
server_open(const iotca_config *cfg, iotca_svc_base *b, registry *r,
            iotca_errbuf *eb)
{
	iotca_rpc_server_opts so = {0};
	iotca_err rc;

	iotca_svc_server_opts(cfg, &so);
	/* gRPC's own cap; each method has a smaller one (service.c) that
	 * answers INVALID_ARGUMENT with the limit in the message. */
	so.max_request = 4u << 20;
	if ((rc = iotca_rpc_server_create(&so, &b->srv, eb)) != IOTCA_OK ||
	    (rc = registry_register(r, b->srv, eb)) != IOTCA_OK)
		return rc;
	return iotca_rpc_server_start(b->srv, NULL, eb);
}

/* Loads the issuer copy once etcd can be read (at start, or later if etcd
 * was down then). */
static void
issuers_try_start(registry_main *m)
{
	issuer_cache *c = NULL;
	iotca_errbuf eb;

	if (atomic_load(&m->r.issuers) != NULL ||
	    !iotca_config_bool(m->cfg, "IOTCA_REGISTRY_ISSUER_CACHE", 1))
		return;
	if (issuer_cache_start(m->r.etcd, &c, &eb) != IOTCA_OK) {
		iotca_log_warn("ISSUER-CACHE-UNAVAILABLE",
		               "msg=\"%s\" fallback=etcd",
		               iotca_errbuf_msg(&eb));
		return;
	}
	atomic_store(&m->r.issuers, c);
}

/* Starts ListCaChanges' feed once etcd can be watched. */
static void
ca_changes_try_start(registry_main *m)
{
	iotca_errbuf eb;
	feed *f = NULL;

	if (atomic_load(&m->r.ca_changes) != NULL)
		return;
	if (ca_changes_start(m->r.etcd, &f, &eb) != IOTCA_OK) {
		iotca_log_warn("CA-CHANGES-UNAVAILABLE",
		               "msg=\"%s\" action=retry",
		               iotca_errbuf_msg(&eb));
		return;
	}
	atomic_store(&m->r.ca_changes, f);
}

/* Runs on the main thread every few seconds while etcd answers. */
static void
etcd_reachable(void *arg)
{
	issuers_try_start(arg);
	ca_changes_try_start(arg);
}

int
main(int argc, char **argv)
{
	iotca_svc_base b = {.name = "iotca.v1.Registry"};
	registry_main m = {.r = {0}};
	iotca_config *cfg;
	iotca_errbuf eb;
	int rc = 1;

	iotca_sig_block_termination();
	cfg = iotca_config_main("iotca-registry [options]",
	                        "The iotca registry: accounts, API keys, "
	                        "registration codes and CA certificates.",
	                        opts, NOPTS, argc, argv, NULL);
	m.cfg = cfg;
	iotca_errbuf_clear(&eb);
	if (iotca_svc_base_open(&b, cfg, 0, &eb) != IOTCA_OK)
		goto fail;
	m.r.etcd = b.etcd;
	m.r.auth = b.auth;
	if (server_open(cfg, &b, &m.r, &eb) != IOTCA_OK)
		goto fail;
	iotca_svc_base_run(&b, etcd_reachable, &m);
	rc = 0;
	goto out;
fail:
	iotca_log_error("REGISTRY-START-FAILED",
	                "msg=\"%s\" hint=\"check IOTCA_LISTEN, the "
	                "IOTCA_GRPC_TLS_* files and IOTCA_ETCD_ENDPOINTS\"",
	                iotca_errbuf_msg(&eb));
out:
	iotca_rpc_server_destroy(b.srv); /* no call runs after this */
	b.srv = NULL;
	issuer_cache_stop(atomic_load(&m.r.issuers));
	feed_stop(atomic_load(&m.r.ca_changes));
	iotca_svc_base_close(&b);
	iotca_config_destroy(cfg);
	return rc;
}
