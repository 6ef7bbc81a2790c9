/*
 * main.c - iotca-association: configuration, wiring and lifecycle.
 */
#include <stdio.h>
#include <stdlib.h>

#include "association.h"
#include "config/config.h"
#include "log/log.h"
#include "sig/sig.h"

static const iotca_config_opt opts[] = {
    IOTCA_SVC_CONFIG_OPTS("127.0.0.1:50052", "10000"),
    {"IOTCA_REGISTRY", "registry", IOTCA_CFG_HOSTPORT, "127.0.0.1:50051",
     "the registry, asked about CA certificates (TLS with "
     "IOTCA_GRPC_TLS_CA)",
     0, 0},
    IOTCA_CONFIG_OPT_LOG_LEVEL,
};

#define NOPTS (sizeof(opts) / sizeof(opts[0]))

typedef struct assoc_main {
	assoc_svc a;
	const iotca_config *cfg;
} assoc_main;

static iotca_err
registry_client_open(const iotca_config *cfg, assoc_svc *a, iotca_errbuf *eb)
{
	iotca_rpc_client_opts co = {0};

	co.target = iotca_config_get(cfg, "IOTCA_REGISTRY");
	co.tls_ca_file = iotca_config_get(cfg, "IOTCA_GRPC_TLS_CA");
	co.timeout_ms = 5000;
	return iotca_rpc_client_create(&co, &a->registry, eb);
}

static iotca_err
server_open(const iotca_config *cfg, iotca_svc_base *b, assoc_svc *a,
            iotca_errbuf *eb)
{
	iotca_rpc_server_opts so = {0};
	iotca_err rc;

	iotca_svc_server_opts(cfg, &so);
	/* gRPC's own cap, twice the 4 MiB CSV cap: a larger file is answered
	 * by the method's smaller cap (service.c) with INVALID_ARGUMENT. */
	so.max_request = 8u << 20;
	if ((rc = iotca_rpc_server_create(&so, &b->srv, eb)) != IOTCA_OK ||
	    (rc = assoc_register(a, b->srv, eb)) != IOTCA_OK)
		return rc;
	return iotca_rpc_server_start(b->srv, NULL, eb);
}

/* Loads the device index (uploads, UpdateDeviceStatus and ResolveDevice
 * use it) and starts ListDeviceChanges' feed on its watch, once etcd
 * answers. */
static void
index_try_start(assoc_main *m)
{
	dev_index *ix = NULL;
	feed_opts fo;
	feed *f = NULL;
	iotca_errbuf eb;

	if (atomic_load(&m->a.index) != NULL)
		return;
	dev_changes_opts(&fo);
	if (dev_index_start(m->a.etcd, &fo, &f, &ix, &eb) != IOTCA_OK) {
		iotca_log_warn(
		    "DEVICE-INDEX-UNAVAILABLE",
		    "msg=\"%s\" action=retry effect=\"uploads, "
		    "UpdateDeviceStatus and ListDeviceChanges answer "
		    "UNAVAILABLE\"",
		    iotca_errbuf_msg(&eb));
		return;
	}
	atomic_store(&m->a.changes, f);
	atomic_store(&m->a.index, ix);
}

/* Runs on the main thread every few seconds while etcd answers. */
static void
etcd_reachable(void *arg)
{
	index_try_start(arg);
}

int
main(int argc, char **argv)
{
	iotca_svc_base b = {.name = "iotca.v1.Association"};
	assoc_main m = {.a = {0}};
	iotca_config *cfg;
	iotca_errbuf eb;
	int rc = 1;

	iotca_sig_block_termination();
	cfg = iotca_config_main("iotca-association [options]",
	                        "The iotca association service: products, CSV "
	                        "uploads of certificate SNs, device "
	                        "resolution for the edge.",
	                        opts, NOPTS, argc, argv, NULL);
	m.cfg = cfg;
	iotca_errbuf_clear(&eb);
	/* A 10,000-row upload's commit reply is a few MB. */
	if (iotca_svc_base_open(&b, cfg, 64u << 20, &eb) != IOTCA_OK)
		goto fail;
	m.a.etcd = b.etcd;
	m.a.auth = b.auth;
	if (registry_client_open(cfg, &m.a, &eb) != IOTCA_OK ||
	    server_open(cfg, &b, &m.a, &eb) != IOTCA_OK)
		goto fail;
	iotca_svc_base_run(&b, etcd_reachable, &m);
	rc = 0;
	goto out;
fail:
	iotca_log_error("ASSOCIATION-START-FAILED",
	                "msg=\"%s\" hint=\"check IOTCA_LISTEN, IOTCA_REGISTRY, "
	                "the IOTCA_GRPC_TLS_* files and IOTCA_ETCD_ENDPOINTS\"",
	                iotca_errbuf_msg(&eb));
out:
	iotca_rpc_server_destroy(b.srv); /* no call runs after this */
	b.srv = NULL;
	dev_index_stop(atomic_load(&m.a.index));
	feed_stop(atomic_load(&m.a.changes));
	iotca_rpc_client_destroy(m.a.registry);
	iotca_svc_base_close(&b);
	iotca_config_destroy(cfg);
	return rc;
}
