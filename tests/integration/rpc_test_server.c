/*
 * rpc_test_server.c - a C gRPC server with the Echo test service, for
 * clients nobody here wrote (Python grpcio) and for benchmarks.
 * Prints "PORT=<n>" on stdout once it listens; stops on SIGTERM/SIGINT.
 */
#include <stdio.h>
#include <stdlib.h>

#include "config/config.h"
#include "echo_service.h"
#include "log/log.h"
#include "sig/sig.h"

static const iotca_config_opt opts[] = {
    {"IOTCA_LISTEN", "listen", IOTCA_CFG_HOSTPORT, "127.0.0.1:0",
     "address to listen on (port 0 picks one)", 0, 0},
    {"IOTCA_GRPC_TLS_CERT", "tls-cert", IOTCA_CFG_FILE, NULL,
     "server certificate (PEM); unset: plaintext", 0, 0},
    {"IOTCA_GRPC_TLS_KEY", "tls-key", IOTCA_CFG_FILE, NULL,
     "server private key (PEM)", 0, 0},
    {"IOTCA_GRPC_TLS_CA", "tls-ca", IOTCA_CFG_FILE, NULL,
     "CA for client certificates (PEM)", 0, 0},
    {"IOTCA_TEST_MAX_REQUEST", "max-request", IOTCA_CFG_INT, "65536",
     "receive cap in bytes", 1024, 64L << 20},
    {"IOTCA_TEST_ECHO_MAX", "echo-max", IOTCA_CFG_INT, "0",
     "cap for the Echo method only (0: the server's)", 0, 64L << 20},
    IOTCA_CONFIG_OPT_LOG_LEVEL,
};

int
main(int argc, char **argv)
{
	iotca_config *cfg;
	iotca_rpc_server_opts so = {0};
	iotca_rpc_server *srv = NULL;
	iotca_errbuf eb;
	int port = 0, rc = 1;

	iotca_sig_block_termination();
	cfg =
	    iotca_config_main("rpc_test_server [options]",
	                      "Serves iotca.test.Echo for rpc tests.", opts,
	                      sizeof(opts) / sizeof(opts[0]), argc, argv, NULL);
	so.listen = iotca_config_get(cfg, "IOTCA_LISTEN");
	so.tls_cert_file = iotca_config_get(cfg, "IOTCA_GRPC_TLS_CERT");
	so.tls_key_file = iotca_config_get(cfg, "IOTCA_GRPC_TLS_KEY");
	so.tls_ca_file = iotca_config_get(cfg, "IOTCA_GRPC_TLS_CA");
	so.max_request =
	    (size_t)iotca_config_int(cfg, "IOTCA_TEST_MAX_REQUEST", 65536);
	if (iotca_rpc_server_create(&so, &srv, &eb) != IOTCA_OK ||
	    echo_service_register(
	        srv, (size_t)iotca_config_int(cfg, "IOTCA_TEST_ECHO_MAX", 0),
	        &eb) != IOTCA_OK ||
	    iotca_rpc_server_start(srv, &port, &eb) != IOTCA_OK) {
		fprintf(stderr, "rpc_test_server: %s\n", iotca_errbuf_msg(&eb));
		goto out;
	}
	printf("PORT=%d\n", port);
	fflush(stdout);
	iotca_sig_wait_termination(-1);
	rc = 0;
out:
	iotca_rpc_server_destroy(srv);
	iotca_config_destroy(cfg);
	return rc;
}
