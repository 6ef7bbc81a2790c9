/*
 * test_rpc.c - lib/rpc: a real C server and the C client over loopback
 * sockets (plaintext, TLS and mutual TLS with OpenSSL-made certificates).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "echo_service.h"
#include "grpc/health/v1/health.pb-c.h"
#include "iotca/test/echo.pb-c.h"
#include "test.h"

static char cert_dir[256];

static char *
cert_path(const char *name)
{
	static char paths[8][320];
	static int next;
	char *p = paths[next++ % 8];

	snprintf(p, sizeof(paths[0]), "%s/%s", cert_dir, name);
	return p;
}

static iotca_rpc_server *
start_server(const iotca_rpc_server_opts *in, int *port)
{
	iotca_rpc_server_opts o = *in;
	iotca_rpc_server *srv = NULL;
	iotca_errbuf eb;

	if (o.listen == NULL)
		o.listen = "127.0.0.1:0";
	if (iotca_rpc_server_create(&o, &srv, &eb) != IOTCA_OK ||
	    echo_service_register(srv, 1024, &eb) != IOTCA_OK ||
	    iotca_rpc_server_start(srv, port, &eb) != IOTCA_OK) {
		fprintf(stderr, "server: %s\n", iotca_errbuf_msg(&eb));
		iotca_rpc_server_destroy(srv);
		return NULL;
	}
	return srv;
}

static iotca_rpc_client *
make_client(int port, const char *token, const char *ca, const char *cert,
            const char *key)
{
	char target[64];
	iotca_rpc_client_opts o = {0};
	iotca_rpc_client *c = NULL;
	iotca_errbuf eb;

	snprintf(target, sizeof(target), "%s:%d",
	         ca ? "localhost" : "127.0.0.1", port);
	o.target = target;
	o.token = token;
	o.tls_ca_file = ca;
	o.tls_cert_file = cert;
	o.tls_key_file = key;
	o.timeout_ms = 5000;
	if (iotca_rpc_client_create(&o, &c, &eb) != IOTCA_OK)
		fprintf(stderr, "client: %s\n", iotca_errbuf_msg(&eb));
	return c;
}

static iotca_err
echo(iotca_rpc_client *c, const char *text, size_t payload,
     Iotca__Test__EchoResponse **out, iotca_errbuf *eb)
{
	Iotca__Test__EchoRequest req = IOTCA__TEST__ECHO_REQUEST__INIT;
	iotca_err rc;

	req.text = (char *)text;
	req.payload.len = payload;
	req.payload.data = payload ? calloc(1, payload) : NULL;
	rc = iotca_rpc_client_call(c, &iotca__test__echo__descriptor, "Echo",
	                           &req.base, 0, (ProtobufCMessage **)out, eb);
	free(req.payload.data);
	return rc;
}

static void
test_echo_plaintext(void)
{
	iotca_rpc_server_opts so = {0};
	Iotca__Test__EchoResponse *r = NULL;
	iotca_rpc_client *c;
	iotca_rpc_server *srv;
	iotca_errbuf eb;
	int port;

	REQUIRE((srv = start_server(&so, &port)) != NULL);
	CHECK(port > 0);
	c = make_client(port, "tok-123", NULL, NULL, NULL);
	REQUIRE(c != NULL);
	CHECK_EQ_INT(echo(c, "hello", 0, &r, &eb), IOTCA_OK);
	if (r != NULL) {
		CHECK_EQ_STR(r->text, "hello");
		CHECK_EQ_STR(r->bearer, "tok-123");
		CHECK(!r->peer_authenticated);
		protobuf_c_message_free_unpacked(&r->base, NULL);
	}
	iotca_rpc_client_destroy(c);
	iotca_rpc_server_destroy(srv);
}

static void
test_error_status_and_message(void)
{
	Iotca__Test__EchoRequest req = IOTCA__TEST__ECHO_REQUEST__INIT;
	iotca_rpc_server_opts so = {0};
	ProtobufCMessage *r = NULL;
	iotca_rpc_client *c;
	iotca_rpc_server *srv;
	iotca_errbuf eb;
	int port;

	REQUIRE((srv = start_server(&so, &port)) != NULL);
	REQUIRE((c = make_client(port, NULL, NULL, NULL, NULL)) != NULL);
	req.text = "x";
	req.fail_with = 9; /* FAILED_PRECONDITION */
	CHECK_EQ_INT(iotca_rpc_client_call(c, &iotca__test__echo__descriptor,
	                                   "Echo", &req.base, 0, &r, &eb),
	             IOTCA_EPRECOND);
	CHECK_CONTAINS(eb.msg, "failing as asked (9)");
	iotca_rpc_client_destroy(c);
	iotca_rpc_server_destroy(srv);
}

static void
test_unknown_method(void)
{
	Iotca__Test__EchoRequest req = IOTCA__TEST__ECHO_REQUEST__INIT;
	iotca_rpc_server_opts so = {0};
	iotca_rpc_server_stats st;
	ProtobufCMessage *r = NULL;
	iotca_rpc_client *c;
	iotca_rpc_server *srv;
	iotca_errbuf eb;
	int port;

	REQUIRE((srv = start_server(&so, &port)) != NULL);
	REQUIRE((c = make_client(port, NULL, NULL, NULL, NULL)) != NULL);
	CHECK_EQ_INT(iotca_rpc_client_call_path(
	                 c, "/iotca.test.Echo/Nope", &req.base,
	                 &iotca__test__echo_response__descriptor, 0, &r, &eb),
	             IOTCA_ENOTSUP);
	CHECK_CONTAINS(eb.msg, "/iotca.test.Echo/Nope");
	iotca_rpc_server_stats_get(srv, &st);
	CHECK_EQ_INT(st.calls_unknown, 1);
	iotca_rpc_client_destroy(c);
	iotca_rpc_server_destroy(srv);
}

static void
test_malformed_request(void)
{
	Iotca__Test__BadEchoRequest bad = IOTCA__TEST__BAD_ECHO_REQUEST__INIT;
	iotca_rpc_server_opts so = {0};
	ProtobufCMessage *r = NULL;
	iotca_rpc_client *c;
	iotca_rpc_server *srv;
	iotca_errbuf eb;
	int port;

	REQUIRE((srv = start_server(&so, &port)) != NULL);
	REQUIRE((c = make_client(port, NULL, NULL, NULL, NULL)) != NULL);
	bad.text = 42;
	CHECK_EQ_INT(iotca_rpc_client_call_path(
	                 c, "/iotca.test.Echo/Echo", &bad.base,
	                 &iotca__test__echo_response__descriptor, 0, &r, &eb),
	             IOTCA_EINVAL);
	CHECK_CONTAINS(eb.msg, "not a valid iotca.test.EchoRequest");
	iotca_rpc_client_destroy(c);
	iotca_rpc_server_destroy(srv);
}

static void
test_request_caps(void)
{
	iotca_rpc_server_opts so = {.max_request = 64 * 1024};
	Iotca__Test__EchoResponse *r = NULL;
	iotca_rpc_client *c;
	iotca_rpc_server *srv;
	iotca_errbuf eb;
	int port;

	REQUIRE((srv = start_server(&so, &port)) != NULL);
	REQUIRE((c = make_client(port, NULL, NULL, NULL, NULL)) != NULL);
	/* Over the server's receive cap: refused by gRPC itself. */
	CHECK_EQ_INT(echo(c, "big", 1 << 20, &r, &eb), IOTCA_ELIMIT);
	CHECK_CONTAINS(eb.msg, "larger than max");
	/* Over the Echo method's own cap (1024): our message. */
	CHECK_EQ_INT(echo(c, "mid", 2000, &r, &eb), IOTCA_EINVAL);
	CHECK_CONTAINS(eb.msg, "accepts at most 1024");
	/* The server still serves. */
	CHECK_EQ_INT(echo(c, "small", 10, &r, &eb), IOTCA_OK);
	if (r != NULL)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	iotca_rpc_client_destroy(c);
	iotca_rpc_server_destroy(srv);
}

static void
test_deadline_cancels_server_call(void)
{
	Iotca__Test__SleepRequest req = IOTCA__TEST__SLEEP_REQUEST__INIT;
	iotca_rpc_server_opts so = {0};
	iotca_rpc_server_stats st;
	ProtobufCMessage *r = NULL;
	struct timespec a, b, tick = {0, 20000000L};
	iotca_rpc_client *c;
	iotca_rpc_server *srv;
	iotca_errbuf eb;
	int port, i;
	long ms;

	REQUIRE((srv = start_server(&so, &port)) != NULL);
	REQUIRE((c = make_client(port, NULL, NULL, NULL, NULL)) != NULL);
	req.sleep_ms = 3000;
	clock_gettime(CLOCK_MONOTONIC, &a);
	CHECK_EQ_INT(iotca_rpc_client_call(c, &iotca__test__echo__descriptor,
	                                   "Sleep", &req.base, 300, &r, &eb),
	             IOTCA_ETIMEDOUT);
	clock_gettime(CLOCK_MONOTONIC, &b);
	ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
	CHECK(ms < 1500);
	for (i = 0; i < 100; i++) { /* the server learns it within moments */
		iotca_rpc_server_stats_get(srv, &st);
		if (st.calls_cancelled >= 1 && st.in_flight == 0)
			break;
		nanosleep(&tick, NULL);
	}
	CHECK_EQ_INT(st.calls_cancelled, 1);
	CHECK_EQ_INT(st.in_flight, 0);
	iotca_rpc_client_destroy(c);
	iotca_rpc_server_destroy(srv);
}

static iotca_err
health_check(iotca_rpc_client *c, const char *service, int *status,
             iotca_errbuf *eb)
{
	Grpc__Health__V1__HealthCheckRequest req =
	    GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
	Grpc__Health__V1__HealthCheckResponse *r = NULL;
	iotca_err rc;

	req.service = (char *)service;
	rc = iotca_rpc_client_call(c, &grpc__health__v1__health__descriptor,
	                           "Check", &req.base, 0,
	                           (ProtobufCMessage **)&r, eb);
	if (rc == IOTCA_OK) {
		*status = (int)r->status;
		protobuf_c_message_free_unpacked(&r->base, NULL);
	}
	return rc;
}

static void
test_health_check(void)
{
	iotca_rpc_server_opts so = {0};
	iotca_rpc_client *c;
	iotca_rpc_server *srv;
	iotca_errbuf eb;
	int port, st = -1;

	REQUIRE((srv = start_server(&so, &port)) != NULL);
	REQUIRE((c = make_client(port, NULL, NULL, NULL, NULL)) != NULL);
	CHECK_EQ_INT(health_check(c, "", &st, &eb), IOTCA_OK);
	CHECK_EQ_INT(st, 1); /* SERVING */
	CHECK_EQ_INT(health_check(c, "iotca.test.Echo", &st, &eb), IOTCA_OK);
	CHECK_EQ_INT(st, 1);
	CHECK_EQ_INT(health_check(c, "no.such.Service", &st, &eb),
	             IOTCA_ENOENT);
	iotca_rpc_server_set_health(srv, "iotca.test.Echo", 0);
	CHECK_EQ_INT(health_check(c, "iotca.test.Echo", &st, &eb), IOTCA_OK);
	CHECK_EQ_INT(st, 2); /* NOT_SERVING */
	iotca_rpc_client_destroy(c);
	iotca_rpc_server_destroy(srv);
}

static void
test_tls_and_mtls(void)
{
	iotca_rpc_server_opts so = {0};
	Iotca__Test__EchoResponse *r = NULL;
	iotca_rpc_client *c;
	iotca_rpc_server *srv;
	iotca_errbuf eb;
	int port;

	so.tls_cert_file = cert_path("server.pem");
	so.tls_key_file = cert_path("server.key");
	so.tls_ca_file = cert_path("ca.pem");
	REQUIRE((srv = start_server(&so, &port)) != NULL);
	/* TLS without a client certificate: allowed, not authenticated. */
	c = make_client(port, "k", cert_path("ca.pem"), NULL, NULL);
	REQUIRE(c != NULL);
	CHECK_EQ_INT(echo(c, "tls", 0, &r, &eb), IOTCA_OK);
	if (r != NULL) {
		CHECK(!r->peer_authenticated);
		protobuf_c_message_free_unpacked(&r->base, NULL);
	}
	iotca_rpc_client_destroy(c);
	/* mTLS: the server sees the client certificate's CN. */
	c = make_client(port, NULL, cert_path("ca.pem"),
	                cert_path("client.pem"), cert_path("client.key"));
	REQUIRE(c != NULL);
	CHECK_EQ_INT(echo(c, "mtls", 0, &r, &eb), IOTCA_OK);
	if (r != NULL) {
		CHECK(r->peer_authenticated);
		CHECK_EQ_STR(r->peer_cn, "iotca-edge");
		protobuf_c_message_free_unpacked(&r->base, NULL);
	}
	iotca_rpc_client_destroy(c);
	/* A client certificate from another CA is refused in the handshake. */
	c = make_client(port, NULL, cert_path("ca.pem"),
	                cert_path("rogue-client.pem"),
	                cert_path("rogue-client.key"));
	REQUIRE(c != NULL);
	CHECK_EQ_INT(echo(c, "rogue", 0, &r, &eb), IOTCA_EUNAVAIL);
	iotca_rpc_client_destroy(c);
	/* Plaintext against the TLS port fails. */
	c = make_client(port, NULL, NULL, NULL, NULL);
	REQUIRE(c != NULL);
	CHECK_EQ_INT(echo(c, "plain", 0, &r, &eb), IOTCA_EUNAVAIL);
	iotca_rpc_client_destroy(c);
	iotca_rpc_server_destroy(srv);
}

static void
test_tls_config_errors(void)
{
	iotca_rpc_server_opts so = {.listen = "127.0.0.1:0"};
	iotca_rpc_server *srv = NULL;
	iotca_errbuf eb;

	/* A key that does not match its certificate is caught at start. */
	so.tls_cert_file = cert_path("server.pem");
	so.tls_key_file = cert_path("client.key");
	REQUIRE(iotca_rpc_server_create(&so, &srv, &eb) == IOTCA_OK);
	CHECK_EQ_INT(iotca_rpc_server_start(srv, NULL, &eb), IOTCA_EINVAL);
	CHECK_CONTAINS(eb.msg, "does not match");
	iotca_rpc_server_destroy(srv);
	so.tls_key_file = "/nonexistent/key.pem";
	REQUIRE(iotca_rpc_server_create(&so, &srv, &eb) == IOTCA_OK);
	CHECK_EQ_INT(iotca_rpc_server_start(srv, NULL, &eb), IOTCA_EINVAL);
	CHECK_CONTAINS(eb.msg, "/nonexistent/key.pem");
	iotca_rpc_server_destroy(srv);
	so.tls_key_file = NULL;
	CHECK_EQ_INT(iotca_rpc_server_create(&so, &srv, &eb), IOTCA_EINVAL);
}

static void
test_port_in_use(void)
{
	iotca_rpc_server_opts so = {0};
	iotca_rpc_server *a, *b = NULL;
	iotca_errbuf eb;
	char addr[64];
	int port;

	REQUIRE((a = start_server(&so, &port)) != NULL);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	so.listen = addr;
	REQUIRE(iotca_rpc_server_create(&so, &b, &eb) == IOTCA_OK);
	CHECK_EQ_INT(iotca_rpc_server_start(b, NULL, &eb), IOTCA_EINVAL);
	CHECK_CONTAINS(eb.msg, addr);
	iotca_rpc_server_destroy(b);
	iotca_rpc_server_destroy(a);
}

struct sleeper {
	iotca_rpc_client *c;
	iotca_err rc;
	int slept;
};

static void *
sleeper_main(void *arg)
{
	struct sleeper *s = arg;
	Iotca__Test__SleepRequest req = IOTCA__TEST__SLEEP_REQUEST__INIT;
	Iotca__Test__SleepResponse *r = NULL;
	iotca_errbuf eb;

	req.sleep_ms = 600;
	s->rc = iotca_rpc_client_call(s->c, &iotca__test__echo__descriptor,
	                              "Sleep", &req.base, 5000,
	                              (ProtobufCMessage **)&r, &eb);
	if (r != NULL) {
		s->slept = r->slept_ms;
		protobuf_c_message_free_unpacked(&r->base, NULL);
	}
	return NULL;
}

static void
test_graceful_shutdown(void)
{
	iotca_rpc_server_opts so = {0};
	Iotca__Test__EchoResponse *r = NULL;
	struct sleeper s = {0};
	struct timespec wait = {0, 200000000L};
	iotca_rpc_server *srv;
	iotca_errbuf eb;
	pthread_t th;
	int port;

	REQUIRE((srv = start_server(&so, &port)) != NULL);
	REQUIRE((s.c = make_client(port, NULL, NULL, NULL, NULL)) != NULL);
	pthread_create(&th, NULL, sleeper_main, &s);
	nanosleep(&wait, NULL); /* the Sleep call is in flight */
	iotca_rpc_server_shutdown(srv);
	pthread_join(th, NULL);
	CHECK_EQ_INT(s.rc, IOTCA_OK); /* the in-flight call finished */
	CHECK(s.slept >= 600);
	CHECK_EQ_INT(echo(s.c, "late", 0, &r, &eb), IOTCA_EUNAVAIL);
	iotca_rpc_client_destroy(s.c);
	iotca_rpc_server_destroy(srv);
}

struct hammer {
	iotca_rpc_client *c;
	int ok;
};

static void *
hammer_main(void *arg)
{
	struct hammer *h = arg;
	Iotca__Test__EchoResponse *r;
	iotca_errbuf eb;
	char text[32];
	int i;

	for (i = 0; i < 200; i++) {
		r = NULL;
		snprintf(text, sizeof(text), "m%d", i);
		if (echo(h->c, text, 16, &r, &eb) == IOTCA_OK &&
		    strcmp(r->text, text) == 0)
			h->ok++;
		if (r != NULL)
			protobuf_c_message_free_unpacked(&r->base, NULL);
	}
	return NULL;
}

static void
test_concurrent_calls(void)
{
	iotca_rpc_server_opts so = {0};
	struct hammer h[8];
	pthread_t th[8];
	iotca_rpc_client *c;
	iotca_rpc_server *srv;
	int port, i, total = 0;

	REQUIRE((srv = start_server(&so, &port)) != NULL);
	REQUIRE((c = make_client(port, NULL, NULL, NULL, NULL)) != NULL);
	for (i = 0; i < 8; i++) {
		h[i].c = c;
		h[i].ok = 0;
		pthread_create(&th[i], NULL, hammer_main, &h[i]);
	}
	for (i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		total += h[i].ok;
	}
	CHECK_EQ_INT(total, 1600);
	iotca_rpc_client_destroy(c);
	iotca_rpc_server_destroy(srv);
}

static void
test_inline_handler_defers_to_worker(void)
{
	Iotca__Test__EchoRequest req = IOTCA__TEST__ECHO_REQUEST__INIT;
	Iotca__Test__EchoResponse *r = NULL;
	iotca_rpc_server_opts so = {0};
	iotca_rpc_client *c;
	iotca_rpc_server *srv;
	iotca_errbuf eb;
	int port;

	REQUIRE((srv = start_server(&so, &port)) != NULL);
	REQUIRE((c = make_client(port, NULL, NULL, NULL, NULL)) != NULL);
	req.text = "x";
	CHECK_EQ_INT(iotca_rpc_client_call(c, &iotca__test__echo__descriptor,
	                                   "Deferred", &req.base, 0,
	                                   (ProtobufCMessage **)&r, &eb),
	             IOTCA_OK);
	if (r != NULL) {
		CHECK_EQ_STR(r->text, "worker");
		protobuf_c_message_free_unpacked(&r->base, NULL);
	}
	iotca_rpc_client_destroy(c);
	iotca_rpc_server_destroy(srv);
}

static void
test_server_down(void)
{
	Iotca__Test__EchoResponse *r = NULL;
	iotca_rpc_client *c;
	iotca_errbuf eb;

	/* Nothing listens on port 1 of loopback. */
	REQUIRE((c = make_client(1, NULL, NULL, NULL, NULL)) != NULL);
	CHECK_EQ_INT(echo(c, "x", 0, &r, &eb), IOTCA_EUNAVAIL);
	iotca_rpc_client_destroy(c);
}

int
main(void)
{
	char cmd[512];
	const char *script = getenv("IOTCA_MAKE_CERTS");

	snprintf(cert_dir, sizeof(cert_dir), "/tmp/iotca-test-rpc-XXXXXX");
	if (script == NULL || mkdtemp(cert_dir) == NULL) {
		fprintf(stderr, "set IOTCA_MAKE_CERTS to make-grpc-certs.sh\n");
		return 1;
	}
	snprintf(cmd, sizeof(cmd), "%s %s", script, cert_dir);
	if (system(cmd) != 0) {
		fprintf(stderr, "cannot make test certificates\n");
		return 1;
	}
	RUN(test_echo_plaintext);
	RUN(test_error_status_and_message);
	RUN(test_unknown_method);
	RUN(test_malformed_request);
	RUN(test_request_caps);
	RUN(test_deadline_cancels_server_call);
	RUN(test_health_check);
	RUN(test_tls_and_mtls);
	RUN(test_tls_config_errors);
	RUN(test_port_in_use);
	RUN(test_graceful_shutdown);
	RUN(test_concurrent_calls);
	RUN(test_inline_handler_defers_to_worker);
	RUN(test_server_down);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", cert_dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", cert_dir);
	return test_summary();
}
