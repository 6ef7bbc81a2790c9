/*
 * devices.c - associations after upload: list, get, delete, device status,
 * and ResolveDevice for the edge.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "association.h"
#include "log/log.h"
#include "x509/x509.h"

iotca_err
assoc_ca_check(assoc_svc *a, iotca_rpc_call *call, const char *ca_id,
               int *active)
{
	Iotca__V1__GetCaCertificateRequest req =
	    IOTCA__V1__GET_CA_CERTIFICATE_REQUEST__INIT;
	Iotca__V1__CaCertificate *ca = NULL;
	char token[IOTCA_API_KEY_LEN + 1];
	const char *tok;
	size_t len;
	iotca_errbuf eb;
	iotca_err rc;

	if (ca_id[0] == '\0')
		return iotca_rpc_call_fail(call, IOTCA_EINVAL,
		                           "ca_id is required");
	/* The caller's own key: the registry decides what it may see. */
	if (iotca_rpc_call_bearer(call, &tok, &len) != 0 ||
	    len >= sizeof(token))
		return iotca_rpc_call_fail(call, IOTCA_EUNAUTH,
		                           "no API key to check the CA with");
	memcpy(token, tok, len);
	token[len] = '\0';
	req.id = (char *)ca_id;
	rc = iotca_rpc_client_call_as(
	    a->registry, &iotca__v1__registry__descriptor, "GetCaCertificate",
	    &req.base, token, iotca_rpc_call_remaining_ms(call),
	    (ProtobufCMessage **)&ca, &eb);
	if (rc == IOTCA_ENOENT || rc == IOTCA_EINVAL)
		return iotca_rpc_call_fail(call, IOTCA_ENOENT,
		                           "no CA certificate with id '%.64s'",
		                           ca_id);
	if (rc != IOTCA_OK)
		return iotca_rpc_call_fail(
		    call, rc == IOTCA_ETIMEDOUT ? IOTCA_EUNAVAIL : rc,
		    "asking the registry about CA %.64s: "
		    "%s",
		    ca_id, iotca_errbuf_msg(&eb));
	*active = ca->status == IOTCA__V1__CA_STATUS__CA_STATUS_ACTIVE;
	protobuf_c_message_free_unpacked(&ca->base, NULL);
	return IOTCA_OK;
}

#define INDEX_WAIT_MS 10000 /* for the index to load or catch up */

static long
index_wait_ms(iotca_rpc_call *call)
{
	long left = iotca_rpc_call_remaining_ms(call);

	return left < 0 || left > INDEX_WAIT_MS ? INDEX_WAIT_MS : left;
}

iotca_err
assoc_index_sync(assoc_svc *a, iotca_rpc_call *call, const char *acc,
                 dev_index **ix, int64_t *rev)
{
	char key[128];
	iotca_etcd_kv kv;
	iotca_errbuf eb;
	long waited = 0;
	int found = 0;

	/* main loads the index as soon as etcd answers */
	while ((*ix = atomic_load(&a->index)) == NULL) {
		if (waited >= index_wait_ms(call))
			return iotca_rpc_call_fail(
			    call, IOTCA_EUNAVAIL,
			    "this replica is still loading its index of "
			    "associations from etcd; retry in a few seconds");
		usleep(50 * 1000);
		waited += 50;
	}
	snprintf(key, sizeof(key), ASSOC_SN_PREFIX "%s", acc);
	if (iotca_etcd_get(a->etcd, key, strlen(key), &kv, &found, &eb) !=
	    IOTCA_OK)
		return iotca_svc_etcd_fail(call, &eb,
		                           "reading the account's version");
	*rev = found ? kv.mod_revision : 0;
	if (found)
		iotca_etcd_kv_free(&kv);
	if (dev_index_wait(*ix, acc, *rev, index_wait_ms(call)) != IOTCA_OK)
		return iotca_rpc_call_fail(
		    call, IOTCA_EUNAVAIL,
		    "this replica's index of associations is behind etcd "
		    "(its watch is reconnecting); retry in a few seconds");
	return IOTCA_OK;
}

/* Rewrites the account's version key (association.h). */
static void
assoc_version_bump(iotca_etcd_txn *t, const char *acc)
{
	char key[128], val[48];

	snprintf(key, sizeof(key), ASSOC_SN_PREFIX "%s", acc);
	snprintf(val, sizeof(val), "{\"t\":%lld}", (long long)time(NULL));
	iotca_etcd_txn_put(t, IOTCA_ETCD_SUCCESS, key, strlen(key), val,
	                   strlen(val), 0);
}

void
assoc_version_guard(iotca_etcd_txn *t, const char *acc, int64_t rev)
{
	char key[128];

	snprintf(key, sizeof(key), ASSOC_SN_PREFIX "%s", acc);
	iotca_etcd_txn_cmp_num(t, key, strlen(key),
	                       rev ? IOTCA_ETCD_CMP_MOD : IOTCA_ETCD_CMP_CREATE,
	                       IOTCA_ETCD_EQUAL, rev);
	assoc_version_bump(t, acc);
}

/* Fills a DeviceAssociation from an SN record. */
static iotca_err
assoc_fill(iotca_rpc_call *call, const json_t *j,
           Iotca__V1__DeviceAssociation *o)
{
	iotca_arena *ar = iotca_rpc_call_arena(call);

	o->ca_id = iotca_arena_strdup(ar, iotca_svc_json_str(j, "ca"));
	o->cert_sn = iotca_arena_strdup(ar, iotca_svc_json_str(j, "sn"));
	o->product_key = iotca_arena_strdup(ar, iotca_svc_json_str(j, "pk"));
	o->device_name = iotca_arena_strdup(ar, iotca_svc_json_str(j, "dn"));
	o->device_status = (Iotca__V1__DeviceStatus)iotca_svc_json_int(j, "st");
	o->created_at = iotca_svc_json_int(j, "t");
	if (!o->ca_id || !o->cert_sn || !o->product_key || !o->device_name)
		return iotca_rpc_call_fail(call, IOTCA_ENOMEM, "out of memory");
	return IOTCA_OK;
}

/* Reads the account's association of (ca_id, sn): NOT_FOUND when absent
 * or bound under another CA. */
static iotca_err
assoc_read(assoc_svc *a, iotca_rpc_call *call, const char *acc,
           const char *ca_id, const char *sn_in, json_t **out, int64_t *rev,
           char sn[IOTCA_X509_SN_HEX_MAX])
{
	char key[256];
	iotca_errbuf eb;
	int found = 0;
	iotca_err rc;

	if (ca_id[0] == '\0' || sn_in[0] == '\0')
		return iotca_rpc_call_fail(call, IOTCA_EINVAL,
		                           "ca_id and cert_sn are required");
	if (iotca_x509_sn_normalize(sn_in, strlen(sn_in), sn, &eb) != IOTCA_OK)
		return iotca_rpc_call_fail(call, IOTCA_EINVAL, "cert_sn: %s",
		                           iotca_errbuf_msg(&eb));
	snprintf(key, sizeof(key), ASSOC_SN_PREFIX "%s/%s", acc, sn);
	if ((rc = iotca_svc_get_json(a->etcd, call, key, out, &found, rev)) !=
	    IOTCA_OK)
		return rc;
	if (!found || strcmp(iotca_svc_json_str(*out, "ca"), ca_id) != 0) {
		if (found)
			json_decref(*out);
		*out = NULL;
		return iotca_rpc_call_fail(
		    call, IOTCA_ENOENT,
		    "no association of CertSN %s with CA "
		    "%.64s",
		    sn, ca_id);
	}
	return IOTCA_OK;
}

iotca_err
assoc_get(iotca_rpc_call *call, const ProtobufCMessage *req,
          ProtobufCMessage *resp, void *arg)
{
	const Iotca__V1__GetAssociationRequest *in = (const void *)req;
	assoc_svc *a = arg;
	char sn[IOTCA_X509_SN_HEX_MAX];
	iotca_principal who;
	json_t *j = NULL;
	iotca_err rc;

	int active;

	if ((rc = iotca_auth_call(a->auth, call, IOTCA_PRINCIPAL_TENANT,
	                          &who)) != IOTCA_OK ||
	    (rc = assoc_ca_check(a, call, in->ca_id, &active)) != IOTCA_OK ||
	    (rc = assoc_read(a, call, who.account_id, in->ca_id, in->cert_sn,
	                     &j, NULL, sn)) != IOTCA_OK)
		return rc;
	rc = assoc_fill(call, j, (void *)resp);
	json_decref(j);
	return rc;
}

iotca_err
assoc_delete(iotca_rpc_call *call, const ProtobufCMessage *req,
             ProtobufCMessage *resp, void *arg)
{
	const Iotca__V1__DeleteAssociationRequest *in = (const void *)req;
	assoc_svc *a = arg;
	char sn[IOTCA_X509_SN_HEX_MAX], sk[256];
	iotca_etcd_txn_result res = {0};
	iotca_etcd_txn *t = NULL;
	iotca_principal who;
	iotca_errbuf eb;
	json_t *j = NULL;
	int64_t rev = 0;
	iotca_err rc;

	int active;

	(void)resp;
	/* A deleted CA's associations are gone for the tenant too. */
	if ((rc = iotca_auth_call(a->auth, call, IOTCA_PRINCIPAL_TENANT,
	                          &who)) != IOTCA_OK ||
	    (rc = assoc_ca_check(a, call, in->ca_id, &active)) != IOTCA_OK ||
	    (rc = assoc_read(a, call, who.account_id, in->ca_id, in->cert_sn,
	                     &j, &rev, sn)) != IOTCA_OK)
		return rc;
	snprintf(sk, sizeof(sk), ASSOC_SN_PREFIX "%s/%s", who.account_id, sn);
	if (iotca_etcd_txn_create(&t) != IOTCA_OK) {
		rc = iotca_rpc_call_fail(call, IOTCA_ENOMEM, "out of memory");
		goto out;
	}
	iotca_etcd_txn_cmp_num(t, sk, strlen(sk), IOTCA_ETCD_CMP_MOD,
	                       IOTCA_ETCD_EQUAL, rev);
	iotca_etcd_txn_delete(t, IOTCA_ETCD_SUCCESS, sk, strlen(sk), NULL, 0);
	assoc_version_bump(t, who.account_id); /* uploads check again */
	if (iotca_etcd_txn_commit(a->etcd, t, &res, &eb) != IOTCA_OK)
		rc = iotca_svc_etcd_fail(call, &eb, "deleting the association");
	else if (!res.succeeded)
		rc = iotca_rpc_call_fail(call, IOTCA_EABORTED,
		                         "the association changed meanwhile; "
		                         "retry");
	else
		iotca_log_info("ASSOCIATION-DELETED", "account=%s ca=%s sn=%s",
		               who.account_id, in->ca_id, sn);
out:
	iotca_etcd_txn_result_free(&res);
	iotca_etcd_txn_destroy(t);
	json_decref(j);
	return rc;
}

typedef struct assoc_list_state {
	Iotca__V1__ListAssociationsResponse *out;
	const char *ca_id;
	const char *pk; /* "" for every product */
} assoc_list_state;

static iotca_err
assoc_list_add(iotca_rpc_call *call, const iotca_etcd_kv *kv, void *arg)
{
	assoc_list_state *l = arg;
	Iotca__V1__DeviceAssociation *d;
	json_t *j = json_loadb(kv->value, kv->value_len, 0, NULL);
	iotca_err rc = IOTCA_OK;

	if (j == NULL)
		return iotca_rpc_call_fail(call, IOTCA_EINTERNAL,
		                           "association record %s is corrupt",
		                           kv->key);
	if (strcmp(iotca_svc_json_str(j, "ca"), l->ca_id) == 0 &&
	    (l->pk[0] == '\0' ||
	     strcmp(iotca_svc_json_str(j, "pk"), l->pk) == 0)) {
		d = iotca_arena_zalloc(iotca_rpc_call_arena(call), sizeof(*d));
		if (d == NULL) {
			json_decref(j);
			return iotca_rpc_call_fail(call, IOTCA_ENOMEM,
			                           "out of memory");
		}
		iotca__v1__device_association__init(d);
		if ((rc = assoc_fill(call, j, d)) == IOTCA_OK)
			l->out->associations[l->out->n_associations++] = d;
	}
	json_decref(j);
	return rc;
}

iotca_err
assoc_list(iotca_rpc_call *call, const ProtobufCMessage *req,
           ProtobufCMessage *resp, void *arg)
{
	const Iotca__V1__ListAssociationsRequest *in = (const void *)req;
	Iotca__V1__ListAssociationsResponse *out = (void *)resp;
	assoc_list_state l = {out, in->ca_id, in->product_key};
	assoc_svc *a = arg;
	iotca_principal who;
	char prefix[160];
	int active;
	iotca_err rc;

	if ((rc = iotca_auth_call(a->auth, call, IOTCA_PRINCIPAL_TENANT,
	                          &who)) != IOTCA_OK)
		return rc;
	if (in->ca_id[0] == '\0')
		return iotca_rpc_call_fail(call, IOTCA_EINVAL,
		                           "ca_id is required");
	if ((rc = assoc_ca_check(a, call, in->ca_id, &active)) != IOTCA_OK)
		return rc;
	snprintf(prefix, sizeof(prefix), ASSOC_SN_PREFIX "%s/", who.account_id);
	out->associations = iotca_arena_zalloc(iotca_rpc_call_arena(call),
	                                       (IOTCA_SVC_PAGE_MAX + 1) *
	                                           sizeof(*out->associations));
	if (out->associations == NULL)
		return iotca_rpc_call_fail(call, IOTCA_ENOMEM, "out of memory");
	/* A page is a window of the account's SNs, filtered: it may hold
	 * fewer than page_size; go on while next_page_token is set. */
	return iotca_svc_page(a->etcd, call, prefix, in->page_size,
	                      in->page_token, assoc_list_add, &l,
	                      &out->next_page_token);
}

/* Rewrites an SN record with a new status if unchanged since rev. */
static iotca_err
assoc_status_write(assoc_svc *a, iotca_rpc_call *call, const char *key,
                   int64_t rev, json_t *j, int *won)
{
	iotca_etcd_txn_result res = {0};
	iotca_etcd_txn *t;
	iotca_errbuf eb;
	char *rec = iotca_svc_json_text(j);
	iotca_err rc = IOTCA_OK;

	if (rec == NULL || iotca_etcd_txn_create(&t) != IOTCA_OK) {
		free(rec);
		return iotca_rpc_call_fail(call, IOTCA_ENOMEM, "out of memory");
	}
	iotca_etcd_txn_cmp_num(t, key, strlen(key), IOTCA_ETCD_CMP_MOD,
	                       IOTCA_ETCD_EQUAL, rev);
	iotca_etcd_txn_put(t, IOTCA_ETCD_SUCCESS, key, strlen(key), rec,
	                   strlen(rec), 0);
	if (iotca_etcd_txn_commit(a->etcd, t, &res, &eb) != IOTCA_OK)
		rc = iotca_svc_etcd_fail(call, &eb, "updating the device");
	*won = res.succeeded;
	iotca_etcd_txn_result_free(&res);
	iotca_etcd_txn_destroy(t);
	free(rec);
	return rc;
}

/* Reads the device's SN record: the device index names the SN. */
static iotca_err
assoc_device_read(assoc_svc *a, iotca_rpc_call *call, const char *acc,
                  const char *pk, const char *dn, char *sn_key, size_t n,
                  json_t **out, int64_t *rev)
{
	dev_index *ix;
	dev_binding b;
	int64_t version;
	int found;
	iotca_err rc;

	*out = NULL;
	if ((rc = assoc_index_sync(a, call, acc, &ix, &version)) != IOTCA_OK)
		return rc;
	dev_index_lock(ix);
	found = dev_index_by_device(ix, acc, pk, dn, &b);
	dev_index_unlock(ix);
	if (found) {
		snprintf(sn_key, n, ASSOC_SN_PREFIX "%s/%s", acc, b.sn);
		if (iotca_svc_get_json(a->etcd, call, sn_key, out, &found,
		                       rev) != IOTCA_OK)
			return IOTCA_EUNAVAIL;
		/* the SN was rebound since the index saw it */
		if (found &&
		    (strcmp(iotca_svc_json_str(*out, "pk"), pk) != 0 ||
		     strcmp(iotca_svc_json_str(*out, "dn"), dn) != 0)) {
			json_decref(*out);
			*out = NULL;
			found = 0;
		}
	}
	if (!found)
		return iotca_rpc_call_fail(
		    call, IOTCA_ENOENT,
		    "product %.32s has no associated device "
		    "named %.32s",
		    pk, dn);
	return IOTCA_OK;
}

iotca_err
assoc_update_device_status(iotca_rpc_call *call, const ProtobufCMessage *req,
                           ProtobufCMessage *resp, void *arg)
{
	const Iotca__V1__UpdateDeviceStatusRequest *in = (const void *)req;
	Iotca__V1__UpdateDeviceStatusResponse *out = (void *)resp;
	assoc_svc *a = arg;
	iotca_principal who;
	char key[256];
	json_t *j = NULL;
	int64_t rev;
	int attempt, won = 0, active;
	iotca_err rc;

	if ((rc = iotca_auth_call(a->auth, call, IOTCA_PRINCIPAL_TENANT,
	                          &who)) != IOTCA_OK)
		return rc;
	if (in->status != IOTCA__V1__DEVICE_STATUS__DEVICE_STATUS_ENABLED &&
	    in->status != IOTCA__V1__DEVICE_STATUS__DEVICE_STATUS_DISABLED)
		return iotca_rpc_call_fail(
		    call, IOTCA_EINVAL, "status must be ENABLED or DISABLED");
	if (!iotca_svc_valid_chars(in->product_key, ASSOC_PK_LEN, ASSOC_PK_LEN,
	                           "") ||
	    !assoc_valid_device_name(in->device_name, strlen(in->device_name)))
		return iotca_rpc_call_fail(call, IOTCA_EINVAL,
		                           "product_key must be 11 letters and "
		                           "digits and device_name 4-32 of "
		                           "letters, digits and -_.@:");
	for (attempt = 0; attempt < 8 && !won && rc == IOTCA_OK; attempt++) {
		json_decref(j);
		if ((rc = assoc_device_read(a, call, who.account_id,
		                            in->product_key, in->device_name,
		                            key, sizeof(key), &j, &rev)) !=
		    IOTCA_OK)
			break;
		if (attempt == 0 &&
		    (rc = assoc_ca_check(a, call, iotca_svc_json_str(j, "ca"),
		                         &active)) != IOTCA_OK) {
			if (rc == IOTCA_ENOENT) /* its CA was deleted */
				rc = iotca_rpc_call_fail(
				    call, IOTCA_ENOENT,
				    "product %s has no associated device named "
				    "%s",
				    in->product_key, in->device_name);
			break;
		}
		if (iotca_svc_json_int(j, "st") == (int64_t)in->status) {
			won = 1; /* already so */
			break;
		}
		json_object_set_new(j, "st", json_integer(in->status));
		rc = assoc_status_write(a, call, key, rev, j, &won);
	}
	json_decref(j);
	if (rc == IOTCA_OK && !won)
		rc = iotca_rpc_call_fail(call, IOTCA_EABORTED,
		                         "the device kept changing; retry");
	if (rc != IOTCA_OK)
		return rc;
	iotca_log_info("DEVICE-STATUS", "account=%s pk=%s dn=%s status=%d",
	               who.account_id, in->product_key, in->device_name,
	               (int)in->status);
	out->product_key = in->product_key;
	out->device_name = in->device_name;
	out->status = in->status;
	return IOTCA_OK;
}

/* The association of (acc, sn) from the device index, or from etcd when
 * the index does not know it (yet). *deferred 1: an etcd read is needed
 * on the completion-queue thread; the handler runs again on a worker and
 * must return at once. */
static iotca_err
assoc_resolve_read(assoc_svc *a, iotca_rpc_call *call, const char *acc,
                   const char *sn, dev_binding *rec, int *found, int *deferred)
{
	dev_index *ix = atomic_load(&a->index);
	char key[256];
	iotca_etcd_kv kv;
	iotca_errbuf eb;
	json_t *j;

	*found = 0;
	if (ix != NULL && dev_index_resolve(ix, acc, sn, rec)) {
		*found = 1;
		return IOTCA_OK;
	}
	if ((*deferred = iotca_rpc_call_defer(call)) != 0)
		return IOTCA_OK;
	snprintf(key, sizeof(key), ASSOC_SN_PREFIX "%s/%s", acc, sn);
	if (iotca_etcd_get(a->etcd, key, strlen(key), &kv, found, &eb) !=
	    IOTCA_OK)
		return iotca_svc_etcd_fail(call, &eb,
		                           "reading the association");
	if (!*found)
		return IOTCA_OK;
	j = json_loadb(kv.value, kv.value_len, 0, NULL);
	iotca_etcd_kv_free(&kv);
	if (j == NULL)
		return iotca_rpc_call_fail(call, IOTCA_EINTERNAL,
		                           "association record %s is corrupt",
		                           key);
	snprintf(rec->ca, sizeof(rec->ca), "%s", iotca_svc_json_str(j, "ca"));
	snprintf(rec->pk, sizeof(rec->pk), "%s", iotca_svc_json_str(j, "pk"));
	snprintf(rec->dn, sizeof(rec->dn), "%s", iotca_svc_json_str(j, "dn"));
	rec->st = (int)iotca_svc_json_int(j, "st");
	json_decref(j);
	return IOTCA_OK;
}

iotca_err
assoc_resolve_device(iotca_rpc_call *call, const ProtobufCMessage *req,
                     ProtobufCMessage *resp, void *arg)
{
	const Iotca__V1__ResolveDeviceRequest *in = (const void *)req;
	Iotca__V1__ResolveDeviceResponse *out = (void *)resp;
	iotca_arena *ar = iotca_rpc_call_arena(call);
	char sn[IOTCA_X509_SN_HEX_MAX];
	assoc_svc *a = arg;
	iotca_principal who;
	iotca_errbuf eb;
	dev_binding rec;
	int found, deferred = 0;
	iotca_err rc;

	if ((rc = iotca_auth_call(a->auth, call, IOTCA_PRINCIPAL_INTERNAL,
	                          &who)) != IOTCA_OK)
		return rc;
	if (!iotca_svc_valid_chars(in->account_id, 1, IOTCA_ID_MAX, "-") ||
	    in->ca_id[0] == '\0')
		return iotca_rpc_call_fail(
		    call, IOTCA_EINVAL,
		    "ca_id and account_id (the account "
		    "ResolveIssuer returned for the CA) are "
		    "required");
	if (iotca_x509_sn_normalize(in->cert_sn, strlen(in->cert_sn), sn,
	                            &eb) != IOTCA_OK)
		return iotca_rpc_call_fail(call, IOTCA_EINVAL, "cert_sn: %s",
		                           iotca_errbuf_msg(&eb));
	if ((rc = assoc_resolve_read(a, call, in->account_id, sn, &rec, &found,
	                             &deferred)) != IOTCA_OK ||
	    deferred)
		return rc;
	if (!found || strcmp(rec.ca, in->ca_id) != 0)
		return iotca_rpc_call_fail(
		    call, IOTCA_ENOENT,
		    "no association of CertSN %s with CA "
		    "%.64s",
		    sn, in->ca_id);
	out->account_id = iotca_arena_strdup(ar, in->account_id);
	out->product_key = iotca_arena_strdup(ar, rec.pk);
	out->device_name = iotca_arena_strdup(ar, rec.dn);
	out->device_status = (Iotca__V1__DeviceStatus)rec.st;
	if (!out->account_id || !out->product_key || !out->device_name)
		return iotca_rpc_call_fail(call, IOTCA_ENOMEM, "out of memory");
	return IOTCA_OK;
}
