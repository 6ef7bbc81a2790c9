/*
 * svc.h - what the gRPC service handlers share: reading etcd records as
 * JSON, one way to paginate, the mapping of etcd failures to call status,
 * input character checks, and small encodings. Handlers call these with
 * their call so failures become the call's status directly.
 */
#ifndef IOTCA_SVC_H
#define IOTCA_SVC_H

#include <stdatomic.h>
#include <stdint.h>

#include <jansson.h>

#include "auth/auth.h"
#include "config/config.h"
#include "etcd/etcd.h"
#include "rpc/rpc.h"

#define IOTCA_SVC_PAGE_DEFAULT 100
#define IOTCA_SVC_PAGE_MAX     1000

/* Fails the call for an etcd error: unreachable or timed out is
 * UNAVAILABLE (retry later); anything else is INTERNAL. doing says what
 * the service was doing ("reading the product"). */
iotca_err iotca_svc_etcd_fail(iotca_rpc_call *call, const iotca_errbuf *eb,
                              const char *doing);

/* Fails the call with eb: codes that mean "etcd or the store failed"
 * (UNAVAILABLE, DEADLINE, a bad or oversized reply, an internal error)
 * go through iotca_svc_etcd_fail; the others (a rule: NOT_FOUND,
 * ALREADY_EXISTS, ...) keep their code and message. */
iotca_err iotca_svc_fail_eb(iotca_rpc_call *call, const iotca_errbuf *eb,
                            const char *doing);

/*
 * Checks an object id from a request, as the contract says: empty is
 * INVALID_ARGUMENT ("<field> is empty"); anything that is not 1 to
 * IOTCA_ID_MAX of [A-Za-z0-9_-] cannot exist, so it is NOT_FOUND with the
 * same message as an unknown id ("no <object> with id '<id>'").
 */
iotca_err iotca_svc_check_id(iotca_rpc_call *call, const char *id,
                             const char *field, const char *object);

/* Reads one key's JSON value. *found 0 when absent. *mod_rev may be NULL.
 * Sets the call's status on failure. */
iotca_err iotca_svc_get_json(iotca_etcd *etcd, iotca_rpc_call *call,
                             const char *key, json_t **out, int *found,
                             int64_t *mod_rev);

/* Reads a page of keys under prefix after page_token (the last key's
 * suffix, as returned in *next; "" at the end). Each key-value goes to fn.
 * page_size 0 means IOTCA_SVC_PAGE_DEFAULT; over IOTCA_SVC_PAGE_MAX is
 * treated as IOTCA_SVC_PAGE_MAX. *next is arena memory. */
typedef iotca_err (*iotca_svc_page_fn)(iotca_rpc_call *call,
                                       const iotca_etcd_kv *kv, void *arg);
iotca_err iotca_svc_page(iotca_etcd *etcd, iotca_rpc_call *call,
                         const char *prefix, int32_t page_size,
                         const char *page_token, iotca_svc_page_fn fn,
                         void *arg, char **next);

/* Compact JSON text of j (malloc'd) or NULL. */
char *iotca_svc_json_text(const json_t *j);

/* Whether s is min..max characters of [A-Za-z0-9_] and the extra ones. */
int iotca_svc_valid_chars(const char *s, size_t min, size_t max,
                          const char *extra);

/* A JSON object's string member ("" when absent) and integer member. */
const char *iotca_svc_json_str(const json_t *j, const char *key);
int64_t iotca_svc_json_int(const json_t *j, const char *key);

/* Base64 of n bytes (malloc'd) or NULL; and back into arena memory. */
char *iotca_svc_b64(const uint8_t *p, size_t n);
iotca_err iotca_svc_unb64(iotca_arena *a, const char *s,
                          ProtobufCBinaryData *out);

/* SHA-256 of n bytes as 64 lowercase hex digits. */
void iotca_svc_sha256_hex(const void *p, size_t n, char out[65]);

/* ------------------------------------------------ a service's main() */

/* The settings every gRPC service reads, for its iotca_config_opt table
 * (then its own, then IOTCA_CONFIG_OPT_LOG_LEVEL). */
#define IOTCA_SVC_CONFIG_OPTS(listen_default, etcd_timeout_ms)                 \
	{"IOTCA_LISTEN",                                                       \
	 "listen",                                                             \
	 IOTCA_CFG_HOSTPORT,                                                   \
	 listen_default,                                                       \
	 "gRPC address to listen on",                                          \
	 0,                                                                    \
	 0},                                                                   \
	    {"IOTCA_ETCD_ENDPOINTS",                                           \
	     "etcd-endpoints",                                                 \
	     IOTCA_CFG_URLS,                                                   \
	     "http://127.0.0.1:2379",                                          \
	     "etcd client URLs, comma-separated",                              \
	     0,                                                                \
	     0},                                                               \
	    {"IOTCA_ETCD_TIMEOUT_MS",                                          \
	     "etcd-timeout-ms",                                                \
	     IOTCA_CFG_INT,                                                    \
	     etcd_timeout_ms,                                                  \
	     "time limit of one etcd request, failover included",              \
	     100,                                                              \
	     600000},                                                          \
	    {"IOTCA_OPERATOR_TOKEN",                                           \
	     "operator-token",                                                 \
	     IOTCA_CFG_SECRET,                                                 \
	     NULL,                                                             \
	     "token of the operator RPCs; unset: they are refused",            \
	     0,                                                                \
	     0},                                                               \
	    {"IOTCA_INTERNAL_TOKEN",                                           \
	     "internal-token",                                                 \
	     IOTCA_CFG_SECRET,                                                 \
	     NULL,                                                             \
	     "token the edge sends for internal RPCs; unset: mTLS only",       \
	     0,                                                                \
	     0},                                                               \
	    {"IOTCA_INTERNAL_CN",                                              \
	     "internal-cn",                                                    \
	     IOTCA_CFG_STRING,                                                 \
	     "iotca-edge",                                                     \
	     "client certificate CN accepted as internal (with "               \
	     "IOTCA_GRPC_TLS_CA)",                                             \
	     0,                                                                \
	     0},                                                               \
	    {"IOTCA_GRPC_TLS_CERT",                                            \
	     "grpc-tls-cert",                                                  \
	     IOTCA_CFG_FILE,                                                   \
	     NULL,                                                             \
	     "server certificate (PEM); unset: plaintext",                     \
	     0,                                                                \
	     0},                                                               \
	    {"IOTCA_GRPC_TLS_KEY",                                             \
	     "grpc-tls-key",                                                   \
	     IOTCA_CFG_FILE,                                                   \
	     NULL,                                                             \
	     "server private key (PEM)",                                       \
	     0,                                                                \
	     0},                                                               \
	    {"IOTCA_GRPC_TLS_CA",                                              \
	     "grpc-tls-ca",                                                    \
	     IOTCA_CFG_FILE,                                                   \
	     NULL,                                                             \
	     "CA of internal clients' (and other services') certificates "     \
	     "(PEM)",                                                          \
	     0,                                                                \
	     0},                                                               \
	    {"IOTCA_GRPC_WORKERS",                                             \
	     "grpc-workers",                                                   \
	     IOTCA_CFG_INT,                                                    \
	     "16",                                                             \
	     "threads running handlers",                                       \
	     1,                                                                \
	     256},                                                             \
	{                                                                      \
		"IOTCA_PROBE_LISTEN", "probe-listen", IOTCA_CFG_HOSTPORT,      \
		    NULL,                                                      \
		    "plain HTTP address for /healthz, /readyz and /metrics "   \
		    "(unset: none)",                                           \
		    0, 0                                                       \
	}

/* What every service holds: etcd, credentials, its gRPC server. */
typedef struct iotca_svc_base {
	const char *name; /* health service name, e.g. "iotca.v1.Registry" */
	iotca_etcd *etcd;
	iotca_auth *auth;
	iotca_rpc_server *srv;
	atomic_int healthy;        /* etcd answered the last check */
	atomic_int started;        /* etcd answered once: start-up done */
	const iotca_config *cfg;   /* set by iotca_svc_base_open */
	struct iotca_probe *probe; /* IOTCA_PROBE_LISTEN, or NULL */
} iotca_svc_base;

/* Opens etcd (reply cap etcd_max_reply; 0: the default) and the
 * credentials from the common settings. */
iotca_err iotca_svc_base_open(iotca_svc_base *b, const iotca_config *cfg,
                              size_t etcd_max_reply, iotca_errbuf *eb);

/* Server options from the common settings (listen, TLS, workers). */
void iotca_svc_server_opts(const iotca_config *cfg, iotca_rpc_server_opts *so);

/*
 * Runs until SIGINT or SIGTERM (SIGHUP is ignored). Every 2 s it asks
 * etcd for its health: while etcd cannot be reached the server reports
 * NOT_SERVING; while it can, tick(arg) runs (NULL: none), e.g. to start a
 * cache that needs etcd. Returns the signal.
 */
int iotca_svc_base_run(iotca_svc_base *b, void (*tick)(void *arg), void *arg);

/* Destroys the server (if still there), the credentials and etcd. */
void iotca_svc_base_close(iotca_svc_base *b);

#endif /* IOTCA_SVC_H */
