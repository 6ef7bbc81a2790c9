/*
 * auth.c - caller authentication and API key records.
 */
#include "auth/auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "log/log.h"
#include "rand/rand.h"

#define AUTH_KEYS_PREFIX    "/iotca/apikeys/"
#define AUTH_KEY_IDS_PREFIX "/iotca/apikey-ids/"
#define AUTH_TOKEN_MAX      4096
#define AUTH_RECORD_MAX     4096

struct iotca_auth {
	iotca_etcd *etcd;
	char *operator_token;
	char *internal_token;
	char *internal_cn;
};

static char *
auth_dup(const char *s)
{
	return s != NULL && s[0] != '\0' ? strdup(s) : NULL;
}

iotca_err
iotca_auth_create(const iotca_auth_opts *opts, iotca_auth **out,
                  iotca_errbuf *eb)
{
	iotca_auth *a = calloc(1, sizeof(*a));

	if (a == NULL)
		return iotca_errbuf_set(eb, IOTCA_ENOMEM, "out of memory");
	a->etcd = opts->etcd;
	a->operator_token = auth_dup(opts->operator_token);
	a->internal_token = auth_dup(opts->internal_token);
	a->internal_cn = auth_dup(opts->internal_cn);
	*out = a;
	return IOTCA_OK;
}

void
iotca_auth_destroy(iotca_auth *a)
{
	if (a == NULL)
		return;
	if (a->operator_token != NULL)
		OPENSSL_cleanse(a->operator_token, strlen(a->operator_token));
	if (a->internal_token != NULL)
		OPENSSL_cleanse(a->internal_token, strlen(a->internal_token));
	free(a->operator_token);
	free(a->internal_token);
	free(a->internal_cn);
	free(a);
}

/* Constant-time comparison of a presented token with a configured one. */
static int
auth_token_equal(const char *want, const char *got, size_t got_len)
{
	size_t wl;

	if (want == NULL)
		return 0;
	wl = strlen(want);
	if (wl != got_len)
		return 0;
	return CRYPTO_memcmp(want, got, wl) == 0;
}

/* SHA-256 of the key as 64 lowercase hex digits. */
static void
auth_key_hash(const char *key, size_t len, char out[65])
{
	unsigned char md[32];
	unsigned int n = 0, i;

	EVP_Digest(key, len, md, &n, EVP_sha256(), NULL);
	for (i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static int
auth_looks_like_key(const char *tok, size_t len)
{
	size_t i, pl = strlen(IOTCA_API_KEY_PREFIX);

	if (len != IOTCA_API_KEY_LEN ||
	    memcmp(tok, IOTCA_API_KEY_PREFIX, pl) != 0)
		return 0;
	for (i = pl; i < len; i++)
		if (!((tok[i] >= '0' && tok[i] <= '9') ||
		      (tok[i] >= 'a' && tok[i] <= 'f')))
			return 0;
	return 1;
}

/* Reads the key record for a tenant key into out. */
static iotca_err
auth_tenant(iotca_auth *a, iotca_rpc_call *call, const char *tok, size_t len,
            iotca_principal *out)
{
	char hash[65], key[128];
	iotca_etcd_kv kv;
	iotca_errbuf eb;
	json_t *j;
	const char *acc = NULL, *kid = NULL;
	int found = 0;
	iotca_err rc;

	auth_key_hash(tok, len, hash);
	snprintf(key, sizeof(key), AUTH_KEYS_PREFIX "%s", hash);
	if ((rc = iotca_etcd_get(a->etcd, key, strlen(key), &kv, &found,
	                         &eb)) != IOTCA_OK)
		return iotca_rpc_call_fail(call, IOTCA_EUNAVAIL,
		                           "cannot check the API key: %s",
		                           iotca_errbuf_msg(&eb));
	if (!found)
		return iotca_rpc_call_fail(call, IOTCA_EUNAUTH,
		                           "unknown or revoked API key; ask "
		                           "the operator for a new one");
	j = json_loadb(kv.value, kv.value_len, 0, NULL);
	rc = IOTCA_EINTERNAL;
	if (j != NULL &&
	    json_unpack(j, "{s:s, s:s}", "account_id", &acc, "key_id", &kid) ==
	        0 &&
	    strlen(acc) <= IOTCA_ID_MAX && strlen(kid) <= IOTCA_ID_MAX) {
		out->kind = IOTCA_PRINCIPAL_TENANT;
		snprintf(out->account_id, sizeof(out->account_id), "%s", acc);
		snprintf(out->key_id, sizeof(out->key_id), "%s", kid);
		rc = IOTCA_OK;
	}
	json_decref(j);
	iotca_etcd_kv_free(&kv);
	if (rc != IOTCA_OK)
		return iotca_rpc_call_fail(call, rc,
		                           "API key record %s is corrupt", key);
	return IOTCA_OK;
}

/* Works out who is calling, before looking at what is allowed. */
static iotca_err
auth_identify(iotca_auth *a, iotca_rpc_call *call, unsigned allowed,
              iotca_principal *out)
{
	char cn[256];
	const char *tok;
	size_t len;

	memset(out, 0, sizeof(*out));
	if (a->internal_cn != NULL && iotca_rpc_call_peer_authenticated(call) &&
	    iotca_rpc_call_peer_property(call, "x509_common_name", cn,
	                                 sizeof(cn)) == 0 &&
	    strcmp(cn, a->internal_cn) == 0) {
		out->kind = IOTCA_PRINCIPAL_INTERNAL;
		return IOTCA_OK;
	}
	if (iotca_rpc_call_bearer(call, &tok, &len) != 0)
		return iotca_rpc_call_fail(call, IOTCA_EUNAUTH,
		                           "no credentials: send the header "
		                           "'authorization: Bearer <API key>'");
	if (len > AUTH_TOKEN_MAX)
		return iotca_rpc_call_fail(call, IOTCA_EUNAUTH,
		                           "the bearer token is too long");
	if (auth_token_equal(a->operator_token, tok, len)) {
		out->kind = IOTCA_PRINCIPAL_OPERATOR;
		return IOTCA_OK;
	}
	if (auth_token_equal(a->internal_token, tok, len)) {
		out->kind = IOTCA_PRINCIPAL_INTERNAL;
		return IOTCA_OK;
	}
	if (!auth_looks_like_key(tok, len))
		return iotca_rpc_call_fail(
		    call, IOTCA_EUNAUTH,
		    "the bearer token is not a valid API "
		    "key or service token");
	/* An RPC that takes no tenant keys refuses every key alike, without
	 * asking etcd: internal RPCs stay cheap and reveal nothing. */
	if (!(allowed & IOTCA_PRINCIPAL_TENANT)) {
		out->kind = IOTCA_PRINCIPAL_TENANT;
		return IOTCA_OK;
	}
	return auth_tenant(a, call, tok, len, out);
}

static const char *
auth_kind_name(unsigned allowed)
{
	if (allowed == IOTCA_PRINCIPAL_OPERATOR)
		return "the operator token only";
	if (allowed == IOTCA_PRINCIPAL_INTERNAL)
		return "the internal service credential only";
	if (allowed == IOTCA_PRINCIPAL_TENANT)
		return "a tenant API key only";
	return "other credentials";
}

iotca_err
iotca_auth_call(iotca_auth *a, iotca_rpc_call *call, unsigned allowed,
                iotca_principal *out)
{
	iotca_err rc = auth_identify(a, call, allowed, out);

	if (rc != IOTCA_OK)
		return rc;
	if (!(out->kind & allowed))
		return iotca_rpc_call_fail(call, IOTCA_EPERM, "%s accepts %s",
		                           iotca_rpc_call_method(call),
		                           auth_kind_name(allowed));
	return IOTCA_OK;
}

static char *
auth_key_record(const char *key_id, const char *account_id,
                const char *description, int64_t now)
{
	json_t *j =
	    json_pack("{s:s, s:s, s:I, s:s}", "key_id", key_id, "account_id",
	              account_id, "created_at", (json_int_t)now, "description",
	              description ? description : "");
	char *s = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;

	json_decref(j);
	return s;
}

iotca_err
iotca_auth_key_create(iotca_auth *a, const char *account_id,
                      const char *description, iotca_api_key *out,
                      iotca_errbuf *eb)
{
	char acc_key[128], hash_key[128], id_key[128], hash[65];
	iotca_etcd_txn *t = NULL;
	iotca_etcd_txn_result res = {0};
	char *rec = NULL;
	iotca_err rc;

	if (strlen(account_id) == 0 || strlen(account_id) > IOTCA_ID_MAX ||
	    (description && strlen(description) > 256))
		return iotca_errbuf_set(
		    eb, IOTCA_EINVAL,
		    "account_id must be 1-%d characters and "
		    "the description at most 256",
		    IOTCA_ID_MAX);
	memcpy(out->api_key, IOTCA_API_KEY_PREFIX, 4);
	if (iotca_rand_hex(out->api_key + 4, 32) != IOTCA_OK ||
	    iotca_rand_hex(out->key_id, 8) != IOTCA_OK)
		return iotca_errbuf_set(eb, IOTCA_EINTERNAL,
		                        "the random generator failed");
	out->created_at = (int64_t)time(NULL);
	auth_key_hash(out->api_key, strlen(out->api_key), hash);
	snprintf(acc_key, sizeof(acc_key), IOTCA_ACCOUNTS_PREFIX "%s",
	         account_id);
	snprintf(hash_key, sizeof(hash_key), AUTH_KEYS_PREFIX "%s", hash);
	snprintf(id_key, sizeof(id_key), AUTH_KEY_IDS_PREFIX "%s", out->key_id);
	rec = auth_key_record(out->key_id, account_id, description,
	                      out->created_at);
	if (rec == NULL || iotca_etcd_txn_create(&t) != IOTCA_OK) {
		rc = iotca_errbuf_set(eb, IOTCA_ENOMEM, "out of memory");
		goto out;
	}
	/* Only for an account that exists. */
	iotca_etcd_txn_cmp_num(t, acc_key, strlen(acc_key),
	                       IOTCA_ETCD_CMP_CREATE, IOTCA_ETCD_GREATER, 0);
	iotca_etcd_txn_put(t, IOTCA_ETCD_SUCCESS, hash_key, strlen(hash_key),
	                   rec, strlen(rec), 0);
	iotca_etcd_txn_put(t, IOTCA_ETCD_SUCCESS, id_key, strlen(id_key), hash,
	                   64, 0);
	if ((rc = iotca_etcd_txn_commit(a->etcd, t, &res, eb)) != IOTCA_OK)
		goto out;
	if (!res.succeeded)
		rc = iotca_errbuf_set(eb, IOTCA_ENOENT,
		                      "no account with id '%s'", account_id);
	else
		iotca_log_info("API-KEY-CREATED", "account=%s key_id=%s",
		               account_id, out->key_id);
out:
	iotca_etcd_txn_result_free(&res);
	iotca_etcd_txn_destroy(t);
	free(rec);
	return rc;
}

iotca_err
iotca_auth_key_revoke(iotca_auth *a, const char *key_id, iotca_errbuf *eb)
{
	char id_key[128], hash_key[128];
	iotca_etcd_kv kv;
	iotca_etcd_txn *t = NULL;
	iotca_etcd_txn_result res = {0};
	int found = 0;
	iotca_err rc;

	if (strlen(key_id) == 0 || strlen(key_id) > IOTCA_ID_MAX)
		return iotca_errbuf_set(eb, IOTCA_EINVAL,
		                        "key_id must be 1-%d characters",
		                        IOTCA_ID_MAX);
	snprintf(id_key, sizeof(id_key), AUTH_KEY_IDS_PREFIX "%s", key_id);
	if ((rc = iotca_etcd_get(a->etcd, id_key, strlen(id_key), &kv, &found,
	                         eb)) != IOTCA_OK)
		return rc;
	if (!found)
		return iotca_errbuf_set(eb, IOTCA_ENOENT,
		                        "no API key with id '%s'", key_id);
	snprintf(hash_key, sizeof(hash_key), AUTH_KEYS_PREFIX "%.*s",
	         (int)(kv.value_len < 64 ? kv.value_len : 64), kv.value);
	if (iotca_etcd_txn_create(&t) != IOTCA_OK) {
		iotca_etcd_kv_free(&kv);
		return iotca_errbuf_set(eb, IOTCA_ENOMEM, "out of memory");
	}
	/* Unchanged since we read it: a concurrent revoke cannot half-run. */
	iotca_etcd_txn_cmp_num(t, id_key, strlen(id_key), IOTCA_ETCD_CMP_MOD,
	                       IOTCA_ETCD_EQUAL, kv.mod_revision);
	iotca_etcd_txn_delete(t, IOTCA_ETCD_SUCCESS, hash_key, strlen(hash_key),
	                      NULL, 0);
	iotca_etcd_txn_delete(t, IOTCA_ETCD_SUCCESS, id_key, strlen(id_key),
	                      NULL, 0);
	iotca_etcd_kv_free(&kv);
	rc = iotca_etcd_txn_commit(a->etcd, t, &res, eb);
	if (rc == IOTCA_OK && !res.succeeded)
		rc = iotca_errbuf_set(eb, IOTCA_ENOENT,
		                      "API key '%s' was revoked meanwhile",
		                      key_id);
	if (rc == IOTCA_OK)
		iotca_log_info("API-KEY-REVOKED", "key_id=%s", key_id);
	iotca_etcd_txn_result_free(&res);
	iotca_etcd_txn_destroy(t);
	return rc;
}
