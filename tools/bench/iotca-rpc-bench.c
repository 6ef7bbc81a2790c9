/*
 * iotca-rpc-bench - what lib/rpc itself costs: health Check (inline, no
 * I/O) and the test service's Noop (inline) and Echo (worker pool) against a
 * running server, with server CPU per call when its pid is given.
 *
 *   iotca-rpc-bench --target 127.0.0.1:50051 --server-pid PID \
 *       [--concurrency 16] [--seconds 5] [--echo]
 *
 * Services serve health Check, so this gives the "no-op RPC on the same
 * server framework" figure next to which service benchmarks are read.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "grpc/health/v1/health.pb-c.h"
#include "iotca/test/echo.pb-c.h"
#include "iotca/v1/association.pb-c.h"
#include "iotca/v1/registry.pb-c.h"
#include "rpc_load.h"

static const iotca_config_opt opts[] = {
    {"IOTCA_BENCH_TARGET", "target", IOTCA_CFG_HOSTPORT, "127.0.0.1:50051",
     "server to load", 0, 0},
    {"IOTCA_BENCH_SERVER_PID", "server-pid", IOTCA_CFG_INT, "0",
     "server process id, for CPU per call (0: skip)", 0, 1L << 22},
    {"IOTCA_BENCH_CONCURRENCY", "concurrency", IOTCA_CFG_INT, "16",
     "calls in flight", 1, 1024},
    {"IOTCA_BENCH_SECONDS", "seconds", IOTCA_CFG_INT, "5",
     "measured seconds per method", 1, 600},
    {"IOTCA_BENCH_TOKEN", "token", IOTCA_CFG_SECRET, NULL,
     "bearer token to send (the internal token for ResolveIssuer)", 0, 0},
    {"IOTCA_BENCH_ISSUER_DER", "issuer-der", IOTCA_CFG_FILE, NULL,
     "also load iotca.v1.Registry/ResolveIssuer with this issuer DN (DER)", 0,
     0},
    {"IOTCA_BENCH_RESOLVE_DEVICE", "resolve-device", IOTCA_CFG_STRING, NULL,
     "also load iotca.v1.Association/ResolveDevice: ACCOUNT_ID:CA_ID:SN", 0, 0},
    {"IOTCA_BENCH_ECHO", "echo", IOTCA_CFG_BOOL, "false",
     "also load iotca.test.Echo/Noop and /Echo (rpc_test_server only)", 0, 0},
    IOTCA_CONFIG_OPT_LOG_LEVEL,
};

/* Reads a small file whole (malloc'd); NULL on failure. */
static uint8_t *
read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *p = NULL;
	long n;

	if (f == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 &&
	    n < (1L << 20) && fseek(f, 0, SEEK_SET) == 0 &&
	    (p = malloc((size_t)n)) != NULL &&
	    fread(p, 1, (size_t)n, f) != (size_t)n) {
		free(p);
		p = NULL;
	}
	if (p != NULL)
		*len = (size_t)n;
	fclose(f);
	return p;
}

static int
bench_one(iotca_rpc_client *c, const iotca_config *cfg, const char *label,
          const ProtobufCServiceDescriptor *svc, const char *method,
          const ProtobufCMessage *req)
{
	rpc_load_opts o = {0};
	rpc_load_result r;

	o.client = c;
	o.svc = svc;
	o.method = method;
	o.req = req;
	o.concurrency =
	    (unsigned)iotca_config_int(cfg, "IOTCA_BENCH_CONCURRENCY", 16);
	o.seconds = (double)iotca_config_int(cfg, "IOTCA_BENCH_SECONDS", 5);
	o.warmup_seconds = 0.5;
	o.server_pid =
	    (pid_t)iotca_config_int(cfg, "IOTCA_BENCH_SERVER_PID", 0);
	if (rpc_load_run(&o, &r) != 0)
		return -1;
	rpc_load_print(label, &r);
	return r.errors == 0 ? 0 : -1;
}

/* Loads ResolveDevice with "ACCOUNT_ID:CA_ID:SN". */
static int
bench_resolve_device(iotca_rpc_client *c, const iotca_config *cfg,
                     const char *spec)
{
	Iotca__V1__ResolveDeviceRequest req =
	    IOTCA__V1__RESOLVE_DEVICE_REQUEST__INIT;
	char *copy = strdup(spec), *sn, *ca;
	int rc = -1;

	if (copy != NULL && (ca = strchr(copy, ':')) != NULL &&
	    (sn = strchr(ca + 1, ':')) != NULL) {
		*ca++ = '\0';
		*sn++ = '\0';
		req.account_id = copy;
		req.ca_id = ca;
		req.cert_sn = sn;
		rc = bench_one(c, cfg, "iotca.v1.Association/ResolveDevice",
		               &iotca__v1__association__descriptor,
		               "ResolveDevice", &req.base);
	} else {
		fprintf(stderr, "iotca-rpc-bench: --resolve-device takes "
		                "ACCOUNT_ID:CA_ID:SN\n");
	}
	free(copy);
	return rc;
}

int
main(int argc, char **argv)
{
	Grpc__Health__V1__HealthCheckRequest hreq =
	    GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
	Iotca__Test__NoopRequest nreq = IOTCA__TEST__NOOP_REQUEST__INIT;
	Iotca__Test__EchoRequest ereq = IOTCA__TEST__ECHO_REQUEST__INIT;
	iotca_rpc_client_opts co = {0};
	iotca_rpc_client *c = NULL;
	iotca_config *cfg;
	iotca_errbuf eb;
	int rc = 0;

	cfg = iotca_config_main("iotca-rpc-bench [options]",
	                        "Measures unary gRPC calls per second against "
	                        "an iotca server.",
	                        opts, sizeof(opts) / sizeof(opts[0]), argc,
	                        argv, NULL);
	co.target = iotca_config_get(cfg, "IOTCA_BENCH_TARGET");
	co.token = iotca_config_get(cfg, "IOTCA_BENCH_TOKEN");
	if (iotca_rpc_client_create(&co, &c, &eb) != IOTCA_OK) {
		fprintf(stderr, "iotca-rpc-bench: %s\n", iotca_errbuf_msg(&eb));
		return 1;
	}
	printf("target=%s concurrency=%ld seconds=%ld\n", co.target,
	       iotca_config_int(cfg, "IOTCA_BENCH_CONCURRENCY", 16),
	       iotca_config_int(cfg, "IOTCA_BENCH_SECONDS", 5));
	rc |= bench_one(c, cfg, "grpc.health.v1.Health/Check",
	                &grpc__health__v1__health__descriptor, "Check",
	                &hreq.base);
	if (iotca_config_get(cfg, "IOTCA_BENCH_ISSUER_DER") != NULL) {
		Iotca__V1__ResolveIssuerRequest rreq =
		    IOTCA__V1__RESOLVE_ISSUER_REQUEST__INIT;
		rreq.issuer_der.data =
		    read_file(iotca_config_get(cfg, "IOTCA_BENCH_ISSUER_DER"),
		              &rreq.issuer_der.len);
		if (rreq.issuer_der.data == NULL) {
			fprintf(stderr, "iotca-rpc-bench: cannot read the "
			                "issuer DER file\n");
			rc = -1;
		} else {
			rc |=
			    bench_one(c, cfg, "iotca.v1.Registry/ResolveIssuer",
			              &iotca__v1__registry__descriptor,
			              "ResolveIssuer", &rreq.base);
		}
		free(rreq.issuer_der.data);
	}
	if (iotca_config_get(cfg, "IOTCA_BENCH_RESOLVE_DEVICE") != NULL)
		rc |= bench_resolve_device(
		    c, cfg,
		    iotca_config_get(cfg, "IOTCA_BENCH_RESOLVE_DEVICE"));
	if (iotca_config_bool(cfg, "IOTCA_BENCH_ECHO", 0)) {
		ereq.text = "0123456789abcdef0123456789abcdef0123456789abcd";
		rc |= bench_one(c, cfg, "iotca.test.Echo/Noop (inline)",
		                &iotca__test__echo__descriptor, "Noop",
		                &nreq.base);
		rc |= bench_one(c, cfg, "iotca.test.Echo/Echo (workers)",
		                &iotca__test__echo__descriptor, "Echo",
		                &ereq.base);
	}
	iotca_rpc_client_destroy(c);
	iotca_config_destroy(cfg);
	return rc == 0 ? 0 : 1;
}
