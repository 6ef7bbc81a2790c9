/*
 * echo_service.c - handlers of the iotca.test.Echo service.
 */
#include "echo_service.h"

#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "iotca/test/echo.pb-c.h"

static atomic_ulong echo_sleeps_cancelled;

static iotca_rpc_server *echo_server;

static iotca_err
echo_echo(iotca_rpc_call *call, const ProtobufCMessage *req,
          ProtobufCMessage *resp, void *arg)
{
	const Iotca__Test__EchoRequest *r = (const void *)req;
	Iotca__Test__EchoResponse *out = (void *)resp;
	iotca_arena *a = iotca_rpc_call_arena(call);
	const char *tok;
	size_t len;
	char cn[256];

	(void)arg;
	if (r->fail_with != 0)
		return iotca_rpc_call_fail(
		    call, iotca_err_from_grpc_status(r->fail_with),
		    "failing as asked (%d)", r->fail_with);
	out->text = iotca_arena_strdup(a, r->text);
	out->payload_len = r->payload.len;
	if (iotca_rpc_call_bearer(call, &tok, &len) == 0)
		out->bearer = iotca_arena_strndup(a, tok, len);
	out->peer_authenticated = iotca_rpc_call_peer_authenticated(call);
	if (iotca_rpc_call_peer_property(call, "x509_common_name", cn,
	                                 sizeof(cn)) == 0)
		out->peer_cn = iotca_arena_strdup(a, cn);
	if (out->text == NULL)
		return iotca_rpc_call_fail(call, IOTCA_ENOMEM, "out of memory");
	return IOTCA_OK;
}

static iotca_err
echo_sleep(iotca_rpc_call *call, const ProtobufCMessage *req,
           ProtobufCMessage *resp, void *arg)
{
	const Iotca__Test__SleepRequest *r = (const void *)req;
	Iotca__Test__SleepResponse *out = (void *)resp;
	struct timespec tick = {0, 5 * 1000000L};
	int slept = 0;

	(void)arg;
	while (slept < r->sleep_ms) {
		if (iotca_rpc_call_cancelled(call)) {
			out->saw_cancel = 1;
			atomic_fetch_add(&echo_sleeps_cancelled, 1);
			break;
		}
		nanosleep(&tick, NULL);
		slept += 5;
	}
	out->slept_ms = slept;
	return IOTCA_OK;
}

static iotca_err
echo_stats(iotca_rpc_call *call, const ProtobufCMessage *req,
           ProtobufCMessage *resp, void *arg)
{
	Iotca__Test__StatsResponse *out = (void *)resp;
	iotca_rpc_server_stats st;

	(void)call;
	(void)req;
	(void)arg;
	iotca_rpc_server_stats_get(echo_server, &st);
	out->calls = st.calls;
	out->calls_failed = st.calls_failed;
	out->calls_cancelled = st.calls_cancelled;
	out->calls_unknown = st.calls_unknown;
	out->in_flight = st.in_flight;
	out->sleeps_cancelled = atomic_load(&echo_sleeps_cancelled);
	return IOTCA_OK;
}

static iotca_err
echo_set_health(iotca_rpc_call *call, const ProtobufCMessage *req,
                ProtobufCMessage *resp, void *arg)
{
	const Iotca__Test__SetHealthRequest *r = (const void *)req;

	(void)call;
	(void)resp;
	(void)arg;
	iotca_rpc_server_set_health(echo_server, r->service, r->serving);
	return IOTCA_OK;
}

static iotca_err
echo_noop(iotca_rpc_call *call, const ProtobufCMessage *req,
          ProtobufCMessage *resp, void *arg)
{
	(void)call;
	(void)req;
	(void)resp;
	(void)arg;
	return IOTCA_OK;
}

static iotca_err
echo_deferred(iotca_rpc_call *call, const ProtobufCMessage *req,
              ProtobufCMessage *resp, void *arg)
{
	Iotca__Test__EchoResponse *out = (void *)resp;

	(void)req;
	(void)arg;
	if (iotca_rpc_call_defer(call))
		return IOTCA_OK; /* on the completion-queue thread: not here */
	out->text = "worker";
	return IOTCA_OK;
}

iotca_err
echo_service_register(iotca_rpc_server *srv, size_t echo_max_request,
                      iotca_errbuf *eb)
{
	const ProtobufCServiceDescriptor *d = &iotca__test__echo__descriptor;
	iotca_err rc;

	echo_server = srv;
	if ((rc = iotca_rpc_server_register(srv, d, "Echo", echo_echo, NULL, 0,
	                                    echo_max_request, eb)) !=
	        IOTCA_OK ||
	    (rc = iotca_rpc_server_register(srv, d, "Sleep", echo_sleep, NULL,
	                                    0, 0, eb)) != IOTCA_OK ||
	    (rc = iotca_rpc_server_register(srv, d, "Stats", echo_stats, NULL,
	                                    IOTCA_RPC_INLINE, 0, eb)) !=
	        IOTCA_OK ||
	    (rc = iotca_rpc_server_register(
	         srv, d, "SetHealth", echo_set_health, NULL, IOTCA_RPC_INLINE,
	         0, eb)) != IOTCA_OK)
		return rc;
	if ((rc = iotca_rpc_server_register(srv, d, "Deferred", echo_deferred,
	                                    NULL, IOTCA_RPC_INLINE, 0, eb)) !=
	    IOTCA_OK)
		return rc;
	return iotca_rpc_server_register(srv, d, "Noop", echo_noop, NULL,
	                                 IOTCA_RPC_INLINE, 0, eb);
}
