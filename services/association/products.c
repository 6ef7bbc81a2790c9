/*
 * products.c - products: create, get, list.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "association.h"
#include "log/log.h"
#include "rand/rand.h"

static iotca_err
product_fill(iotca_rpc_call *call, const json_t *j, Iotca__V1__Product *out)
{
	iotca_arena *ar = iotca_rpc_call_arena(call);

	out->product_key = iotca_arena_strdup(ar, iotca_svc_json_str(j, "pk"));
	out->account_id =
	    iotca_arena_strdup(ar, iotca_svc_json_str(j, "account_id"));
	out->name = iotca_arena_strdup(ar, iotca_svc_json_str(j, "name"));
	out->auth_mode =
	    (Iotca__V1__AuthMode)iotca_svc_json_int(j, "auth_mode");
	out->use_private_ca = iotca_svc_json_int(j, "private_ca") != 0;
	out->net_type = (Iotca__V1__NetType)iotca_svc_json_int(j, "net_type");
	out->created_at = iotca_svc_json_int(j, "created_at");
	if (!out->product_key || !out->account_id || !out->name)
		return iotca_rpc_call_fail(call, IOTCA_ENOMEM, "out of memory");
	return IOTCA_OK;
}

/* Checks the request; fills in the defaults. */
static iotca_err
product_check(iotca_rpc_call *call, const Iotca__V1__CreateProductRequest *in,
              int *auth_mode, int *net_type)
{
	*auth_mode = in->auth_mode
	                 ? (int)in->auth_mode
	                 : IOTCA__V1__AUTH_MODE__AUTH_MODE_X509_CERTIFICATE;
	*net_type = in->net_type ? (int)in->net_type
	                         : IOTCA__V1__NET_TYPE__NET_TYPE_MQTT;
	if (!iotca_svc_valid_chars(in->name, 4, 30, "@()-"))
		return iotca_rpc_call_fail(call, IOTCA_EINVAL,
		                           "the product name must be 4 to 30 "
		                           "characters of letters, digits and "
		                           "_@()-");
	if (*auth_mode != IOTCA__V1__AUTH_MODE__AUTH_MODE_X509_CERTIFICATE &&
	    *auth_mode != IOTCA__V1__AUTH_MODE__AUTH_MODE_DEVICE_SECRET)
		return iotca_rpc_call_fail(call, IOTCA_EINVAL,
		                           "unknown auth_mode %d", *auth_mode);
	if (*net_type != IOTCA__V1__NET_TYPE__NET_TYPE_MQTT &&
	    *net_type != IOTCA__V1__NET_TYPE__NET_TYPE_LORAWAN)
		return iotca_rpc_call_fail(call, IOTCA_EINVAL,
		                           "unknown net_type %d", *net_type);
	if (in->use_private_ca &&
	    *auth_mode != IOTCA__V1__AUTH_MODE__AUTH_MODE_X509_CERTIFICATE)
		return iotca_rpc_call_fail(call, IOTCA_EPRECOND,
		                           "a private CA needs the X.509 "
		                           "certificate authentication mode");
	if (in->use_private_ca &&
	    *net_type == IOTCA__V1__NET_TYPE__NET_TYPE_LORAWAN)
		return iotca_rpc_call_fail(call, IOTCA_EPRECOND,
		                           "private CA certificates are not "
		                           "applicable to products that use "
		                           "LoRaWAN; use MQTT");
	return IOTCA_OK;
}

/* One attempt with a fresh ProductKey; *won 1 when written, *name_taken 1
 * when the name is in use. */
static iotca_err
product_try(assoc_svc *a, iotca_rpc_call *call, const char *acc,
            const char *name, const char *pk, const char *rec, int *won,
            int *name_taken)
{
	char rec_key[160], pk_key[96], name_key[160];
	iotca_etcd_txn_result res = {0};
	iotca_etcd_txn *t;
	iotca_errbuf eb;
	iotca_err rc = IOTCA_OK;

	snprintf(rec_key, sizeof(rec_key), ASSOC_PRODUCTS_PREFIX "%s/%s", acc,
	         pk);
	snprintf(pk_key, sizeof(pk_key), ASSOC_PRODUCT_KEYS_PREFIX "%s", pk);
	snprintf(name_key, sizeof(name_key), ASSOC_PRODUCT_NAMES_PREFIX "%s/%s",
	         acc, name);
	if (iotca_etcd_txn_create(&t) != IOTCA_OK)
		return iotca_rpc_call_fail(call, IOTCA_ENOMEM, "out of memory");
	iotca_etcd_txn_cmp_num(t, pk_key, strlen(pk_key), IOTCA_ETCD_CMP_CREATE,
	                       IOTCA_ETCD_EQUAL, 0);
	iotca_etcd_txn_cmp_num(t, name_key, strlen(name_key),
	                       IOTCA_ETCD_CMP_CREATE, IOTCA_ETCD_EQUAL, 0);
	iotca_etcd_txn_put(t, IOTCA_ETCD_SUCCESS, pk_key, strlen(pk_key), acc,
	                   strlen(acc), 0);
	iotca_etcd_txn_put(t, IOTCA_ETCD_SUCCESS, name_key, strlen(name_key),
	                   pk, strlen(pk), 0);
	iotca_etcd_txn_put(t, IOTCA_ETCD_SUCCESS, rec_key, strlen(rec_key), rec,
	                   strlen(rec), 0);
	iotca_etcd_txn_range(t, IOTCA_ETCD_FAILURE, name_key, strlen(name_key),
	                     NULL, 0);
	if (iotca_etcd_txn_commit(a->etcd, t, &res, &eb) != IOTCA_OK)
		rc = iotca_svc_etcd_fail(call, &eb, "creating the product");
	*won = res.succeeded;
	*name_taken =
	    !res.succeeded && res.n == 1 && res.results[0].range.n > 0;
	iotca_etcd_txn_result_free(&res);
	iotca_etcd_txn_destroy(t);
	return rc;
}

iotca_err
assoc_create_product(iotca_rpc_call *call, const ProtobufCMessage *req,
                     ProtobufCMessage *resp, void *arg)
{
	const Iotca__V1__CreateProductRequest *in = (const void *)req;
	assoc_svc *a = arg;
	iotca_principal who;
	char pk[ASSOC_PK_LEN + 1], *rec = NULL;
	int auth_mode, net_type, won = 0, taken = 0, attempt;
	json_t *j = NULL;
	iotca_err rc;

	if ((rc = iotca_auth_call(a->auth, call, IOTCA_PRINCIPAL_TENANT,
	                          &who)) != IOTCA_OK ||
	    (rc = product_check(call, in, &auth_mode, &net_type)) != IOTCA_OK)
		return rc;
	for (attempt = 0; attempt < 4 && !won && !taken && rc == IOTCA_OK;
	     attempt++) {
		if (iotca_rand_alnum(pk, ASSOC_PK_LEN) != IOTCA_OK)
			return iotca_rpc_call_fail(
			    call, IOTCA_EINTERNAL,
			    "the random generator failed");
		json_decref(j);
		free(rec);
		j = json_pack("{s:s, s:s, s:s, s:i, s:i, s:i, s:I}", "pk", pk,
		              "account_id", who.account_id, "name", in->name,
		              "auth_mode", auth_mode, "private_ca",
		              in->use_private_ca ? 1 : 0, "net_type", net_type,
		              "created_at", (json_int_t)time(NULL));
		rec = j ? iotca_svc_json_text(j) : NULL;
		if (rec == NULL) {
			rc = iotca_rpc_call_fail(call, IOTCA_ENOMEM,
			                         "out of memory");
			break;
		}
		rc = product_try(a, call, who.account_id, in->name, pk, rec,
		                 &won, &taken);
	}
	if (rc == IOTCA_OK && taken)
		rc = iotca_rpc_call_fail(call, IOTCA_EEXIST,
		                         "a product named '%s' already exists",
		                         in->name);
	else if (rc == IOTCA_OK && !won)
		rc = iotca_rpc_call_fail(
		    call, IOTCA_EABORTED,
		    "could not allocate a ProductKey; retry");
	if (rc == IOTCA_OK) {
		rc = product_fill(call, j, (void *)resp);
		iotca_log_info("PRODUCT-CREATED", "account=%s pk=%s",
		               who.account_id, pk);
	}
	json_decref(j);
	free(rec);
	return rc;
}

iotca_err
assoc_product_read(assoc_svc *a, iotca_rpc_call *call, const char *account_id,
                   const char *pk, json_t **out, int *found)
{
	char key[160];

	*found = 0;
	if (!iotca_svc_valid_chars(pk, ASSOC_PK_LEN, ASSOC_PK_LEN, "") ||
	    strchr(pk, '_') != NULL)
		return IOTCA_OK; /* cannot exist */
	snprintf(key, sizeof(key), ASSOC_PRODUCTS_PREFIX "%s/%s", account_id,
	         pk);
	return iotca_svc_get_json(a->etcd, call, key, out, found, NULL);
}

iotca_err
assoc_get_product(iotca_rpc_call *call, const ProtobufCMessage *req,
                  ProtobufCMessage *resp, void *arg)
{
	const Iotca__V1__GetProductRequest *in = (const void *)req;
	assoc_svc *a = arg;
	iotca_principal who;
	json_t *j = NULL;
	int found;
	iotca_err rc;

	if ((rc = iotca_auth_call(a->auth, call, IOTCA_PRINCIPAL_TENANT,
	                          &who)) != IOTCA_OK ||
	    (rc = assoc_product_read(a, call, who.account_id, in->product_key,
	                             &j, &found)) != IOTCA_OK)
		return rc;
	if (!found)
		return iotca_rpc_call_fail(call, IOTCA_ENOENT,
		                           "no product with ProductKey '%.32s'",
		                           in->product_key);
	rc = product_fill(call, j, (void *)resp);
	json_decref(j);
	return rc;
}

static iotca_err
product_list_add(iotca_rpc_call *call, const iotca_etcd_kv *kv, void *arg)
{
	Iotca__V1__ListProductsResponse *out = arg;
	Iotca__V1__Product *p =
	    iotca_arena_zalloc(iotca_rpc_call_arena(call), sizeof(*p));
	json_t *j = json_loadb(kv->value, kv->value_len, 0, NULL);
	iotca_err rc;

	if (p == NULL || j == NULL) {
		json_decref(j);
		return iotca_rpc_call_fail(call, IOTCA_EINTERNAL,
		                           "product record %s is corrupt",
		                           kv->key);
	}
	iotca__v1__product__init(p);
	rc = product_fill(call, j, p);
	json_decref(j);
	if (rc == IOTCA_OK)
		out->products[out->n_products++] = p;
	return rc;
}

iotca_err
assoc_list_products(iotca_rpc_call *call, const ProtobufCMessage *req,
                    ProtobufCMessage *resp, void *arg)
{
	const Iotca__V1__ListProductsRequest *in = (const void *)req;
	Iotca__V1__ListProductsResponse *out = (void *)resp;
	assoc_svc *a = arg;
	iotca_principal who;
	char prefix[160];
	iotca_err rc;

	if ((rc = iotca_auth_call(a->auth, call, IOTCA_PRINCIPAL_TENANT,
	                          &who)) != IOTCA_OK)
		return rc;
	snprintf(prefix, sizeof(prefix), ASSOC_PRODUCTS_PREFIX "%s/",
	         who.account_id);
	out->products = iotca_arena_zalloc(iotca_rpc_call_arena(call),
	                                   (IOTCA_SVC_PAGE_MAX + 1) *
	                                       sizeof(*out->products));
	if (out->products == NULL)
		return iotca_rpc_call_fail(call, IOTCA_ENOMEM, "out of memory");
	return iotca_svc_page(a->etcd, call, prefix, in->page_size,
	                      in->page_token, product_list_add, out,
	                      &out->next_page_token);
}
