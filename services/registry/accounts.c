/*
 * accounts.c - accounts and API keys (operator), registration codes
 * (tenants).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log/log.h"
#include "rand/rand.h"
#include "registry.h"

#define ACCOUNT_NAMES_PREFIX "/iotca/account-names/"
#define REGCODES_PREFIX      "/iotca/regcodes/"

static Iotca__V1__Account *
account_from_json(iotca_arena *a, const json_t *j)
{
	Iotca__V1__Account *acc = iotca_arena_zalloc(a, sizeof(*acc));

	if (acc == NULL)
		return NULL;
	iotca__v1__account__init(acc);
	acc->id = iotca_arena_strdup(a, iotca_svc_json_str(j, "id"));
	acc->name = iotca_arena_strdup(a, iotca_svc_json_str(j, "name"));
	acc->created_at = iotca_svc_json_int(j, "created_at");
	return acc->id && acc->name ? acc : NULL;
}

iotca_err
reg_create_account(iotca_rpc_call *call, const ProtobufCMessage *req,
                   ProtobufCMessage *resp, void *arg)
{
	const Iotca__V1__CreateAccountRequest *in = (const void *)req;
	Iotca__V1__Account *out = (void *)resp;
	registry *r = arg;
	iotca_principal who;
	char id[IOTCA_ID_MAX + 1], name_key[160], acc_key[160];
	iotca_etcd_txn *t = NULL;
	iotca_etcd_txn_result res = {0};
	iotca_errbuf eb;
	json_t *j = NULL;
	char *rec = NULL;
	iotca_err rc;

	if ((rc = iotca_auth_call(r->auth, call, IOTCA_PRINCIPAL_OPERATOR,
	                          &who)) != IOTCA_OK)
		return rc;
	if (!iotca_svc_valid_chars(in->name, 1, 64, ".-"))
		return iotca_rpc_call_fail(
		    call, IOTCA_EINVAL,
		    "account name must be 1-64 characters "
		    "of letters, digits and _.-");
	memcpy(id, "acc_", 4);
	if (iotca_rand_hex(id + 4, 8) != IOTCA_OK)
		return iotca_rpc_call_fail(call, IOTCA_EINTERNAL,
		                           "the random generator failed");
	snprintf(name_key, sizeof(name_key), ACCOUNT_NAMES_PREFIX "%s",
	         in->name);
	snprintf(acc_key, sizeof(acc_key), IOTCA_ACCOUNTS_PREFIX "%s", id);
	out->id = iotca_arena_strdup(iotca_rpc_call_arena(call), id);
	out->name = iotca_arena_strdup(iotca_rpc_call_arena(call), in->name);
	out->created_at = (int64_t)time(NULL);
	j = json_pack("{s:s, s:s, s:I}", "id", id, "name", in->name,
	              "created_at", (json_int_t)out->created_at);
	if (j == NULL || (rec = iotca_svc_json_text(j)) == NULL ||
	    iotca_etcd_txn_create(&t) != IOTCA_OK) {
		rc = iotca_rpc_call_fail(call, IOTCA_ENOMEM, "out of memory");
		goto out;
	}
	iotca_etcd_txn_cmp_num(t, name_key, strlen(name_key),
	                       IOTCA_ETCD_CMP_CREATE, IOTCA_ETCD_EQUAL, 0);
	iotca_etcd_txn_put(t, IOTCA_ETCD_SUCCESS, name_key, strlen(name_key),
	                   id, strlen(id), 0);
	iotca_etcd_txn_put(t, IOTCA_ETCD_SUCCESS, acc_key, strlen(acc_key), rec,
	                   strlen(rec), 0);
	if (iotca_etcd_txn_commit(r->etcd, t, &res, &eb) != IOTCA_OK)
		rc = iotca_svc_etcd_fail(call, &eb, "creating the account");
	else if (!res.succeeded)
		rc = iotca_rpc_call_fail(call, IOTCA_EEXIST,
		                         "an account named '%s' already exists",
		                         in->name);
	else
		iotca_log_info("ACCOUNT-CREATED", "account=%s name=%s", id,
		               in->name);
out:
	iotca_etcd_txn_result_free(&res);
	iotca_etcd_txn_destroy(t);
	free(rec);
	json_decref(j);
	return rc;
}

typedef struct account_list {
	Iotca__V1__ListAccountsResponse *out;
} account_list;

static iotca_err
account_list_add(iotca_rpc_call *call, const iotca_etcd_kv *kv, void *arg)
{
	account_list *l = arg;
	iotca_arena *a = iotca_rpc_call_arena(call);
	json_t *j = json_loadb(kv->value, kv->value_len, 0, NULL);
	Iotca__V1__Account *acc = j ? account_from_json(a, j) : NULL;

	json_decref(j);
	if (acc == NULL)
		return iotca_rpc_call_fail(call, IOTCA_EINTERNAL,
		                           "account record %s is corrupt",
		                           kv->key);
	l->out->accounts[l->out->n_accounts++] = acc;
	return IOTCA_OK;
}

iotca_err
reg_list_accounts(iotca_rpc_call *call, const ProtobufCMessage *req,
                  ProtobufCMessage *resp, void *arg)
{
	const Iotca__V1__ListAccountsRequest *in = (const void *)req;
	Iotca__V1__ListAccountsResponse *out = (void *)resp;
	registry *r = arg;
	iotca_principal who;
	account_list l = {out};
	iotca_err rc;

	if ((rc = iotca_auth_call(r->auth, call, IOTCA_PRINCIPAL_OPERATOR,
	                          &who)) != IOTCA_OK)
		return rc;
	out->accounts = iotca_arena_zalloc(iotca_rpc_call_arena(call),
	                                   (IOTCA_SVC_PAGE_MAX + 1) *
	                                       sizeof(*out->accounts));
	if (out->accounts == NULL)
		return iotca_rpc_call_fail(call, IOTCA_ENOMEM, "out of memory");
	return iotca_svc_page(r->etcd, call, IOTCA_ACCOUNTS_PREFIX,
	                      in->page_size, in->page_token, account_list_add,
	                      &l, &out->next_page_token);
}

iotca_err
reg_create_api_key(iotca_rpc_call *call, const ProtobufCMessage *req,
                   ProtobufCMessage *resp, void *arg)
{
	const Iotca__V1__CreateApiKeyRequest *in = (const void *)req;
	Iotca__V1__CreateApiKeyResponse *out = (void *)resp;
	iotca_arena *a = iotca_rpc_call_arena(call);
	registry *r = arg;
	iotca_principal who;
	iotca_api_key key;
	iotca_errbuf eb;
	iotca_err rc;

	if ((rc = iotca_auth_call(r->auth, call, IOTCA_PRINCIPAL_OPERATOR,
	                          &who)) != IOTCA_OK)
		return rc;
	if ((rc = iotca_svc_check_id(call, in->account_id, "account_id",
	                             "account")) != IOTCA_OK)
		return rc;
	if (iotca_auth_key_create(r->auth, in->account_id, in->description,
	                          &key, &eb) != IOTCA_OK)
		return iotca_svc_fail_eb(call, &eb, "creating the API key");
	out->key_id = iotca_arena_strdup(a, key.key_id);
	out->api_key = iotca_arena_strdup(a, key.api_key);
	out->account_id = iotca_arena_strdup(a, in->account_id);
	out->created_at = key.created_at;
	return IOTCA_OK;
}

iotca_err
reg_revoke_api_key(iotca_rpc_call *call, const ProtobufCMessage *req,
                   ProtobufCMessage *resp, void *arg)
{
	const Iotca__V1__RevokeApiKeyRequest *in = (const void *)req;
	registry *r = arg;
	iotca_principal who;
	iotca_errbuf eb;
	iotca_err rc;

	(void)resp;
	if ((rc = iotca_auth_call(r->auth, call, IOTCA_PRINCIPAL_OPERATOR,
	                          &who)) != IOTCA_OK)
		return rc;
	if ((rc = iotca_svc_check_id(call, in->key_id, "key_id", "API key")) !=
	    IOTCA_OK)
		return rc;
	if (iotca_auth_key_revoke(r->auth, in->key_id, &eb) != IOTCA_OK)
		return iotca_svc_fail_eb(call, &eb, "revoking the API key");
	return IOTCA_OK;
}

/* Reads the account's registration code, making one on first use. */
static iotca_err
regcode_read(registry *r, iotca_rpc_call *call, const char *account_id,
             int rotate, char code[65], int64_t *created_at)
{
	char key[160], fresh[65];
	iotca_etcd_txn *t = NULL;
	iotca_etcd_txn_result res = {0};
	iotca_errbuf eb;
	json_t *j = NULL;
	char *rec = NULL;
	iotca_err rc;

	snprintf(key, sizeof(key), REGCODES_PREFIX "%s", account_id);
	if (iotca_rand_hex(fresh, 32) != IOTCA_OK)
		return iotca_rpc_call_fail(call, IOTCA_EINTERNAL,
		                           "the random generator failed");
	*created_at = (int64_t)time(NULL);
	j = json_pack("{s:s, s:I}", "code", fresh, "created_at",
	              (json_int_t)*created_at);
	if (j == NULL || (rec = iotca_svc_json_text(j)) == NULL ||
	    iotca_etcd_txn_create(&t) != IOTCA_OK) {
		rc = iotca_rpc_call_fail(call, IOTCA_ENOMEM, "out of memory");
		goto out;
	}
	/* Get: create if absent, else read. Rotate: always replace. */
	if (!rotate)
		iotca_etcd_txn_cmp_num(t, key, strlen(key),
		                       IOTCA_ETCD_CMP_CREATE, IOTCA_ETCD_EQUAL,
		                       0);
	iotca_etcd_txn_put(t, IOTCA_ETCD_SUCCESS, key, strlen(key), rec,
	                   strlen(rec), 0);
	iotca_etcd_txn_range(t, IOTCA_ETCD_FAILURE, key, strlen(key), NULL, 0);
	if (iotca_etcd_txn_commit(r->etcd, t, &res, &eb) != IOTCA_OK) {
		rc = iotca_svc_etcd_fail(call, &eb,
		                         "reading the registration code");
		goto out;
	}
	rc = IOTCA_OK;
	memcpy(code, fresh, 65);
	if (!res.succeeded) {
		json_t *old = NULL;
		if (res.n == 1 && res.results[0].range.n == 1)
			old = json_loadb(res.results[0].range.kvs[0].value,
			                 res.results[0].range.kvs[0].value_len,
			                 0, NULL);
		if (old == NULL ||
		    strlen(iotca_svc_json_str(old, "code")) != 64)
			rc = iotca_rpc_call_fail(
			    call, IOTCA_EINTERNAL,
			    "registration code record %s is "
			    "corrupt",
			    key);
		else {
			memcpy(code, iotca_svc_json_str(old, "code"), 65);
			*created_at = iotca_svc_json_int(old, "created_at");
		}
		json_decref(old);
	} else if (rotate) {
		iotca_log_info("REGCODE-ROTATED", "account=%s", account_id);
	}
out:
	iotca_etcd_txn_result_free(&res);
	iotca_etcd_txn_destroy(t);
	free(rec);
	json_decref(j);
	return rc;
}

static iotca_err
regcode_handle(iotca_rpc_call *call, registry *r, int rotate, char **code_out,
               int64_t *created_at)
{
	iotca_principal who;
	char code[65];
	iotca_err rc;

	if ((rc = iotca_auth_call(r->auth, call, IOTCA_PRINCIPAL_TENANT,
	                          &who)) != IOTCA_OK)
		return rc;
	if ((rc = regcode_read(r, call, who.account_id, rotate, code,
	                       created_at)) != IOTCA_OK)
		return rc;
	*code_out = iotca_arena_strdup(iotca_rpc_call_arena(call), code);
	return *code_out
	           ? IOTCA_OK
	           : iotca_rpc_call_fail(call, IOTCA_ENOMEM, "out of memory");
}

iotca_err
reg_get_regcode(iotca_rpc_call *call, const ProtobufCMessage *req,
                ProtobufCMessage *resp, void *arg)
{
	Iotca__V1__GetRegistrationCodeResponse *out = (void *)resp;

	(void)req;
	return regcode_handle(call, arg, 0, &out->registration_code,
	                      &out->created_at);
}

iotca_err
reg_rotate_regcode(iotca_rpc_call *call, const ProtobufCMessage *req,
                   ProtobufCMessage *resp, void *arg)
{
	Iotca__V1__RotateRegistrationCodeResponse *out = (void *)resp;

	(void)req;
	return regcode_handle(call, arg, 1, &out->registration_code,
	                      &out->created_at);
}
