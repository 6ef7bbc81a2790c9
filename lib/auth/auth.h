/*
 * auth.h - who is calling: tenant API keys, the operator token and the
 * internal credential, shared by every gRPC service.
 *
 * Credentials (DESIGN "Identity and isolation"):
 *   tenant    "authorization: Bearer <API key>"; etcd holds only the
 *             key's SHA-256, so a revoked key stops working on every
 *             replica at the next call.
 *   operator  "authorization: Bearer <IOTCA_OPERATOR_TOKEN>"
 *   internal  "authorization: Bearer <IOTCA_INTERNAL_TOKEN>", or a verified
 *             mTLS client certificate whose CN is the configured internal
 *             CN (the edge).
 * Tokens are compared in constant time. A call without credentials is
 * UNAUTHENTICATED; a valid credential of a kind the RPC does not accept is
 * PERMISSION_DENIED. An RPC that accepts no tenant keys answers any API
 * key with PERMISSION_DENIED without looking it up.
 *
 * etcd layout owned by this module:
 *   /iotca/apikeys/<sha256 hex of key>  {"key_id","account_id","created_at",
 *                                        "description"}
 *   /iotca/apikey-ids/<key_id>          <sha256 hex of key>
 * It reads /iotca/accounts/<id> (owned by the registry) to refuse keys for
 * accounts that do not exist.
 */
#ifndef IOTCA_AUTH_H
#define IOTCA_AUTH_H

#include <stdint.h>

#include "err/err.h"
#include "etcd/etcd.h"
#include "rpc/rpc.h"

#define IOTCA_ID_MAX          64
#define IOTCA_API_KEY_PREFIX  "iok_"
#define IOTCA_API_KEY_LEN     (4 + 64) /* prefix and 32 random bytes in hex */
#define IOTCA_ACCOUNTS_PREFIX "/iotca/accounts/"

typedef enum iotca_principal_kind {
	IOTCA_PRINCIPAL_TENANT = 1u << 0,
	IOTCA_PRINCIPAL_OPERATOR = 1u << 1,
	IOTCA_PRINCIPAL_INTERNAL = 1u << 2,
} iotca_principal_kind;

typedef struct iotca_principal {
	iotca_principal_kind kind;
	char account_id[IOTCA_ID_MAX + 1]; /* tenants only */
	char key_id[IOTCA_ID_MAX + 1];     /* tenants only */
} iotca_principal;

typedef struct iotca_auth_opts {
	iotca_etcd *etcd;           /* borrowed; outlives the auth handle */
	const char *operator_token; /* NULL: operator RPCs refused */
	const char *internal_token; /* NULL: only mTLS is internal */
	const char *internal_cn;    /* NULL: mTLS grants nothing */
} iotca_auth_opts;

typedef struct iotca_auth iotca_auth;

iotca_err iotca_auth_create(const iotca_auth_opts *opts, iotca_auth **out,
                            iotca_errbuf *eb);
void iotca_auth_destroy(iotca_auth *a);

/*
 * Authenticates the caller of call. allowed is a mask of
 * iotca_principal_kind the RPC accepts. On failure the call's status is
 * set (UNAUTHENTICATED, PERMISSION_DENIED, or UNAVAILABLE when etcd cannot
 * be asked) and the code is returned.
 */
iotca_err iotca_auth_call(iotca_auth *a, iotca_rpc_call *call, unsigned allowed,
                          iotca_principal *out);

typedef struct iotca_api_key {
	char key_id[IOTCA_ID_MAX + 1];
	char api_key[IOTCA_API_KEY_LEN + 1]; /* shown once, never stored */
	int64_t created_at;
} iotca_api_key;

/* Makes a new API key for an existing account (IOTCA_ENOENT if none). */
iotca_err iotca_auth_key_create(iotca_auth *a, const char *account_id,
                                const char *description, iotca_api_key *out,
                                iotca_errbuf *eb);

/* Revokes a key by id; IOTCA_ENOENT if there is none. */
iotca_err iotca_auth_key_revoke(iotca_auth *a, const char *key_id,
                                iotca_errbuf *eb);

#endif /* IOTCA_AUTH_H */
