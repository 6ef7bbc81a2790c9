/*
 * cas.c - CA certificate registration with proof of possession, the 10-CA
 * limit, status changes, deletion, and issuer resolution for the edge.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log/log.h"
#include "rand/rand.h"
#include "registry.h"
#include "x509/x509.h"

#define CAS_PREFIX      "/iotca/cas/"
#define CA_COUNT_PREFIX "/iotca/ca-count/"
#define CA_NAMES_PREFIX "/iotca/ca-names/"
#define CA_FPS_PREFIX   "/iotca/ca-fps/"
#define SUBJECTS_PREFIX "/iotca/subjects/"
#define ISSUERS_PREFIX  "/iotca/issuers/"
#define REGCODES_PREFIX "/iotca/regcodes/"
#define ISSUER_DER_MAX  (64u << 10)

static const char *
ca_status_name(int status)
{
	return status == IOTCA__V1__CA_STATUS__CA_STATUS_INACTIVE ? "INACTIVE"
	                                                          : "ACTIVE";
}

static int
ca_status_value(const char *name)
{
	return strcmp(name, "INACTIVE") == 0
	           ? IOTCA__V1__CA_STATUS__CA_STATUS_INACTIVE
	           : IOTCA__V1__CA_STATUS__CA_STATUS_ACTIVE;
}

/* Fills a CaCertificate message from its etcd record. */
static iotca_err
ca_fill(iotca_rpc_call *call, const json_t *j, Iotca__V1__CaCertificate *out)
{
	iotca_arena *a = iotca_rpc_call_arena(call);

	out->id = iotca_arena_strdup(a, iotca_svc_json_str(j, "id"));
	out->account_id =
	    iotca_arena_strdup(a, iotca_svc_json_str(j, "account_id"));
	out->name = iotca_arena_strdup(a, iotca_svc_json_str(j, "name"));
	out->subject = iotca_arena_strdup(a, iotca_svc_json_str(j, "subject"));
	out->serial_number =
	    iotca_arena_strdup(a, iotca_svc_json_str(j, "serial"));
	out->sha256_fingerprint =
	    iotca_arena_strdup(a, iotca_svc_json_str(j, "fingerprint"));
	out->key_algorithm =
	    iotca_arena_strdup(a, iotca_svc_json_str(j, "key_algorithm"));
	out->pem = iotca_arena_strdup(a, iotca_svc_json_str(j, "pem"));
	out->not_before = iotca_svc_json_int(j, "not_before");
	out->not_after = iotca_svc_json_int(j, "not_after");
	out->key_bits = (uint32_t)iotca_svc_json_int(j, "key_bits");
	out->created_at = iotca_svc_json_int(j, "created_at");
	out->updated_at = iotca_svc_json_int(j, "updated_at");
	out->status = ca_status_value(iotca_svc_json_str(j, "status"));
	if (!out->id || !out->account_id || !out->name || !out->subject ||
	    !out->serial_number || !out->sha256_fingerprint ||
	    !out->key_algorithm || !out->pem ||
	    iotca_svc_unb64(a, iotca_svc_json_str(j, "subject_der"),
	                    &out->subject_der) != IOTCA_OK)
		return iotca_rpc_call_fail(
		    call, IOTCA_EINTERNAL,
		    "CA record %s is corrupt or too large",
		    iotca_svc_json_str(j, "id"));
	return IOTCA_OK;
}

/* The etcd record of a new CA. */
static json_t *
ca_record(const char *id, const char *account_id, const char *name,
          const iotca_x509 *ca, int status, int64_t now, const char *subj_hash)
{
	char subject[2048], serial[IOTCA_X509_SN_HEX_MAX],
	    fp[IOTCA_X509_FP_HEX];
	char alg[16];
	const uint8_t *der;
	size_t der_len;
	char *pem = iotca_x509_to_pem(ca), *der64;
	int bits;
	json_t *j = NULL;

	der = iotca_x509_subject_der(ca, &der_len);
	der64 = iotca_svc_b64(der, der_len);
	if (pem == NULL || der64 == NULL ||
	    iotca_x509_subject_text(ca, subject, sizeof(subject)) != IOTCA_OK)
		goto out;
	iotca_x509_serial(ca, serial);
	iotca_x509_fingerprint(ca, fp);
	iotca_x509_key_info(ca, alg, &bits);
	j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, "
	              "s:s, s:i, s:s, s:I, s:I, s:s}",
	              "id", id, "account_id", account_id, "name", name,
	              "subject", subject, "subject_der", der64, "subject_hash",
	              subj_hash, "serial", serial, "fingerprint", fp,
	              "not_before", (json_int_t)iotca_x509_not_before(ca),
	              "not_after", (json_int_t)iotca_x509_not_after(ca),
	              "key_algorithm", alg, "key_bits", bits, "status",
	              ca_status_name(status), "created_at", (json_int_t)now,
	              "updated_at", (json_int_t)now, "pem", pem);
out:
	free(pem);
	free(der64);
	return j;
}

/* What ResolveIssuer needs of a CA, kept under its subject's hash. */
static char *
ca_issuer_entry(const json_t *rec)
{
	json_t *j =
	    json_pack("{s:s, s:s, s:s, s:s, s:I, s:s}", "ca_id",
	              iotca_svc_json_str(rec, "id"), "account_id",
	              iotca_svc_json_str(rec, "account_id"), "status",
	              iotca_svc_json_str(rec, "status"), "fingerprint",
	              iotca_svc_json_str(rec, "fingerprint"), "not_after",
	              (json_int_t)iotca_svc_json_int(rec, "not_after"), "pem",
	              iotca_svc_json_str(rec, "pem"));
	char *s = j ? iotca_svc_json_text(j) : NULL;

	json_decref(j);
	return s;
}

/* Parses and checks the CA and the verification certificate; on success
 * *ca and *ver are the parsed certificates and cn the verification CN. */
static iotca_err
ca_check_inputs(iotca_rpc_call *call,
                const Iotca__V1__RegisterCaCertificateRequest *in,
                iotca_x509 **ca, iotca_x509 **ver, char *cn, size_t cn_len)
{
	time_t now = time(NULL);
	iotca_errbuf eb;

	*ca = *ver = NULL;
	if (iotca_x509_parse(in->ca_certificate.data, in->ca_certificate.len,
	                     "the CA certificate", ca, &eb) != IOTCA_OK ||
	    iotca_x509_check_ca(*ca, "the CA certificate", &eb) != IOTCA_OK ||
	    iotca_x509_check_validity(*ca, now, "the CA certificate", &eb) !=
	        IOTCA_OK ||
	    iotca_x509_parse(in->verification_certificate.data,
	                     in->verification_certificate.len,
	                     "the verification certificate", ver,
	                     &eb) != IOTCA_OK ||
	    iotca_x509_check_validity(*ver, now, "the verification certificate",
	                              &eb) != IOTCA_OK ||
	    iotca_x509_check_signed_by(
	        *ver, *ca, "the verification certificate", &eb) != IOTCA_OK)
		return iotca_rpc_call_fail_eb(call, &eb);
	if (iotca_x509_subject_cn(*ver, cn, cn_len) != IOTCA_OK)
		return iotca_rpc_call_fail(
		    call, IOTCA_EPRECOND,
		    "the verification certificate has no "
		    "usable Common Name; set its CN to your "
		    "registration code (iotca regcode)");
	return IOTCA_OK;
}

/* The keys one registration reads and writes. */
typedef struct ca_keys {
	char count[160], owner[160], fp[256], name[160], regcode[160];
	char rec[200], issuer[256];
} ca_keys;

static void
ca_keys_make(ca_keys *k, const char *acc, const char *id, const char *name,
             const char *fp, const char *subj_hash)
{
	snprintf(k->count, sizeof(k->count), CA_COUNT_PREFIX "%s", acc);
	snprintf(k->owner, sizeof(k->owner), SUBJECTS_PREFIX "%s", subj_hash);
	snprintf(k->fp, sizeof(k->fp), CA_FPS_PREFIX "%s/%s", acc, fp);
	snprintf(k->name, sizeof(k->name), CA_NAMES_PREFIX "%s/%s", acc, name);
	snprintf(k->regcode, sizeof(k->regcode), REGCODES_PREFIX "%s", acc);
	snprintf(k->rec, sizeof(k->rec), CAS_PREFIX "%s/%s", acc, id);
	snprintf(k->issuer, sizeof(k->issuer), ISSUERS_PREFIX "%s/%s",
	         subj_hash, id);
}

/* What the registration read, at one revision. */
typedef struct ca_snapshot {
	int64_t count, count_rev; /* rev 0: key absent */
	char owner_acc[IOTCA_ID_MAX + 1];
	int64_t owner_count, owner_rev;
	char dup_fp[IOTCA_ID_MAX + 1], dup_name[IOTCA_ID_MAX + 1];
	char code[65];
	int64_t code_rev;
} ca_snapshot;

static const iotca_etcd_kv *
ca_snap_kv(const iotca_etcd_txn_result *res, size_t i)
{
	if (i >= res->n || res->results[i].range.n != 1)
		return NULL;
	return &res->results[i].range.kvs[0];
}

static void
ca_snap_text(const iotca_etcd_kv *kv, char *out, size_t n)
{
	out[0] = '\0';
	if (kv != NULL)
		snprintf(out, n, "%.*s", (int)kv->value_len, kv->value);
}

static iotca_err
ca_snapshot_read(registry *r, iotca_rpc_call *call, const ca_keys *k,
                 ca_snapshot *s)
{
	const char *keys[5] = {k->count, k->owner, k->fp, k->name, k->regcode};
	iotca_etcd_txn_result res = {0};
	const iotca_etcd_kv *kv;
	iotca_etcd_txn *t;
	iotca_errbuf eb;
	json_t *j;
	size_t i;

	memset(s, 0, sizeof(*s));
	if (iotca_etcd_txn_create(&t) != IOTCA_OK)
		return iotca_rpc_call_fail(call, IOTCA_ENOMEM, "out of memory");
	for (i = 0; i < 5; i++)
		iotca_etcd_txn_range(t, IOTCA_ETCD_SUCCESS, keys[i],
		                     strlen(keys[i]), NULL, 0);
	if (iotca_etcd_txn_commit(r->etcd, t, &res, &eb) != IOTCA_OK) {
		iotca_etcd_txn_destroy(t);
		return iotca_svc_etcd_fail(call, &eb,
		                           "reading the account's CAs");
	}
	iotca_etcd_txn_destroy(t);
	if ((kv = ca_snap_kv(&res, 0)) != NULL) {
		s->count = strtoll(kv->value, NULL, 10);
		s->count_rev = kv->mod_revision;
	}
	if ((kv = ca_snap_kv(&res, 1)) != NULL &&
	    (j = json_loadb(kv->value, kv->value_len, 0, NULL)) != NULL) {
		snprintf(s->owner_acc, sizeof(s->owner_acc), "%s",
		         iotca_svc_json_str(j, "account_id"));
		s->owner_count = iotca_svc_json_int(j, "count");
		s->owner_rev = kv->mod_revision;
		json_decref(j);
	}
	ca_snap_text(ca_snap_kv(&res, 2), s->dup_fp, sizeof(s->dup_fp));
	ca_snap_text(ca_snap_kv(&res, 3), s->dup_name, sizeof(s->dup_name));
	if ((kv = ca_snap_kv(&res, 4)) != NULL &&
	    (j = json_loadb(kv->value, kv->value_len, 0, NULL)) != NULL) {
		snprintf(s->code, sizeof(s->code), "%s",
		         iotca_svc_json_str(j, "code"));
		s->code_rev = kv->mod_revision;
		json_decref(j);
	}
	iotca_etcd_txn_result_free(&res);
	return IOTCA_OK;
}

/* The rules that depend on the account's current state. */
static iotca_err
ca_snapshot_check(iotca_rpc_call *call, const ca_snapshot *s, const char *acc,
                  const char *name, const char *cn, const char *subject)
{
	if (s->dup_fp[0] != '\0')
		return iotca_rpc_call_fail(call, IOTCA_EEXIST,
		                           "this CA certificate is already "
		                           "registered as %s",
		                           s->dup_fp);
	if (s->dup_name[0] != '\0')
		return iotca_rpc_call_fail(
		    call, IOTCA_EEXIST,
		    "a CA certificate named '%s' already "
		    "exists (%s); choose another name",
		    name, s->dup_name);
	if (s->code[0] == '\0')
		return iotca_rpc_call_fail(
		    call, IOTCA_EPRECOND,
		    "this account has no registration code "
		    "yet: get it (iotca regcode) and make "
		    "the verification certificate with it "
		    "as its CN");
	if (strcmp(s->code, cn) != 0)
		return iotca_rpc_call_fail(
		    call, IOTCA_EPRECOND,
		    "the verification certificate's CN "
		    "'%.80s' is not this account's current "
		    "registration code; make a new one with "
		    "the code from 'iotca regcode'",
		    cn);
	if (s->owner_acc[0] != '\0' && strcmp(s->owner_acc, acc) != 0)
		return iotca_rpc_call_fail(
		    call, IOTCA_EPRECOND,
		    "another account has registered a CA "
		    "certificate with the subject '%.200s'; "
		    "a subject may belong to one account "
		    "only, so issue your CA with another "
		    "subject",
		    subject);
	if (s->count >= REG_MAX_CAS)
		return iotca_rpc_call_fail(
		    call, IOTCA_ELIMIT,
		    "this account has %lld CA certificates, "
		    "the maximum of %d; delete one first",
		    (long long)s->count, REG_MAX_CAS);
	return IOTCA_OK;
}

/* Guards a key on the revision read (absent: must still be absent). */
static void
ca_txn_guard(iotca_etcd_txn *t, const char *key, int64_t rev)
{
	iotca_etcd_txn_cmp_num(t, key, strlen(key),
	                       rev ? IOTCA_ETCD_CMP_MOD : IOTCA_ETCD_CMP_CREATE,
	                       IOTCA_ETCD_EQUAL, rev);
}

static void
ca_txn_put_str(iotca_etcd_txn *t, const char *key, const char *val)
{
	iotca_etcd_txn_put(t, IOTCA_ETCD_SUCCESS, key, strlen(key), val,
	                   strlen(val), 0);
}

/* One optimistic attempt; *won is 1 when the transaction ran. */
static iotca_err
ca_register_try(registry *r, iotca_rpc_call *call, const ca_keys *k,
                const ca_snapshot *s, const char *acc, const json_t *rec,
                int *won)
{
	char count[32], *rec_s = iotca_svc_json_text(rec),
	                *iss = ca_issuer_entry(rec);
	char *owner_s = NULL;
	json_t *owner = json_pack("{s:s, s:I}", "account_id", acc, "count",
	                          (json_int_t)(s->owner_count + 1));
	iotca_etcd_txn_result res = {0};
	iotca_etcd_txn *t = NULL;
	iotca_errbuf eb;
	iotca_err rc = IOTCA_OK;

	if (owner == NULL || rec_s == NULL || iss == NULL ||
	    (owner_s = iotca_svc_json_text(owner)) == NULL ||
	    iotca_etcd_txn_create(&t) != IOTCA_OK) {
		rc = iotca_rpc_call_fail(call, IOTCA_ENOMEM, "out of memory");
		goto out;
	}
	ca_txn_guard(t, k->count, s->count_rev);
	ca_txn_guard(t, k->owner, s->owner_rev);
	ca_txn_guard(t, k->fp, 0);
	ca_txn_guard(t, k->name, 0);
	ca_txn_guard(t, k->regcode, s->code_rev);
	snprintf(count, sizeof(count), "%lld", (long long)s->count + 1);
	ca_txn_put_str(t, k->count, count);
	ca_txn_put_str(t, k->owner, owner_s);
	ca_txn_put_str(t, k->fp, iotca_svc_json_str(rec, "id"));
	ca_txn_put_str(t, k->name, iotca_svc_json_str(rec, "id"));
	ca_txn_put_str(t, k->rec, rec_s);
	ca_txn_put_str(t, k->issuer, iss);
	if (iotca_etcd_txn_commit(r->etcd, t, &res, &eb) != IOTCA_OK)
		rc = iotca_svc_etcd_fail(call, &eb,
		                         "registering the CA certificate");
	*won = res.succeeded;
out:
	iotca_etcd_txn_result_free(&res);
	iotca_etcd_txn_destroy(t);
	json_decref(owner);
	free(owner_s);
	free(rec_s);
	free(iss);
	return rc;
}

/* Sleeps a little, more with each attempt, jittered so racers spread. */
static void
ca_backoff(int attempt)
{
	struct timespec ts;
	char hex[3];
	long jitter = 0, us;

	if (iotca_rand_hex(hex, 1) == IOTCA_OK)
		jitter = strtol(hex, NULL, 16);
	us = (1L << (attempt < 6 ? attempt : 6)) * 500 + jitter * 20;
	ts.tv_sec = 0;
	ts.tv_nsec = us * 1000;
	nanosleep(&ts, NULL);
}

/* Commits a checked registration under the account-state rules. */
static iotca_err
ca_register_commit(registry *r, iotca_rpc_call *call, const char *acc,
                   const char *name, const iotca_x509 *ca, const char *cn,
                   int status, Iotca__V1__CaCertificate *out)
{
	char id[IOTCA_ID_MAX + 1], fp[IOTCA_X509_FP_HEX], hash[65];
	const uint8_t *der;
	size_t der_len;
	ca_keys k;
	ca_snapshot s;
	json_t *rec;
	int attempt, won = 0;
	iotca_err rc = IOTCA_OK;

	memcpy(id, "ca_", 3);
	if (iotca_rand_hex(id + 3, 8) != IOTCA_OK)
		return iotca_rpc_call_fail(call, IOTCA_EINTERNAL,
		                           "the random generator failed");
	der = iotca_x509_subject_der(ca, &der_len);
	iotca_svc_sha256_hex(der, der_len, hash);
	iotca_x509_fingerprint(ca, fp);
	ca_keys_make(&k, acc, id, name, fp, hash);
	rec = ca_record(id, acc, name, ca, status, (int64_t)time(NULL), hash);
	if (rec == NULL)
		return iotca_rpc_call_fail(call, IOTCA_ENOMEM, "out of memory");
	for (attempt = 0; !won && rc == IOTCA_OK; attempt++) {
		if (attempt > 0 && iotca_rpc_call_remaining_ms(call) < 50) {
			rc = iotca_rpc_call_fail(
			    call, IOTCA_EABORTED,
			    "too many concurrent changes to "
			    "this account's CAs; retry");
			break;
		}
		if (attempt > 0)
			ca_backoff(attempt);
		if ((rc = ca_snapshot_read(r, call, &k, &s)) != IOTCA_OK ||
		    (rc = ca_snapshot_check(
		         call, &s, acc, name, cn,
		         iotca_svc_json_str(rec, "subject"))) != IOTCA_OK)
			break;
		rc = ca_register_try(r, call, &k, &s, acc, rec, &won);
	}
	if (won) {
		rc = ca_fill(call, rec, out);
		iotca_log_info("CA-REGISTERED",
		               "account=%s ca=%s fingerprint=%s attempts=%d",
		               acc, id, fp, attempt);
	}
	json_decref(rec);
	return rc;
}

iotca_err
reg_register_ca(iotca_rpc_call *call, const ProtobufCMessage *req,
                ProtobufCMessage *resp, void *arg)
{
	const Iotca__V1__RegisterCaCertificateRequest *in = (const void *)req;
	registry *r = arg;
	iotca_principal who;
	iotca_x509 *ca = NULL, *ver = NULL;
	char cn[256];
	int status = in->initial_status;
	iotca_err rc;

	if ((rc = iotca_auth_call(r->auth, call, IOTCA_PRINCIPAL_TENANT,
	                          &who)) != IOTCA_OK)
		return rc;
	if (!iotca_svc_valid_chars(in->name, 4, 30, ""))
		return iotca_rpc_call_fail(
		    call, IOTCA_EINVAL,
		    "the CA certificate name must be 4 to "
		    "30 characters of letters, digits and "
		    "underscores");
	if (status == IOTCA__V1__CA_STATUS__CA_STATUS_UNSPECIFIED)
		status = IOTCA__V1__CA_STATUS__CA_STATUS_ACTIVE;
	if (status != IOTCA__V1__CA_STATUS__CA_STATUS_ACTIVE &&
	    status != IOTCA__V1__CA_STATUS__CA_STATUS_INACTIVE)
		return iotca_rpc_call_fail(call, IOTCA_EINVAL,
		                           "initial_status must be ACTIVE or "
		                           "INACTIVE");
	if ((rc = ca_check_inputs(call, in, &ca, &ver, cn, sizeof(cn))) ==
	    IOTCA_OK)
		rc = ca_register_commit(r, call, who.account_id, in->name, ca,
		                        cn, status, (void *)resp);
	iotca_x509_free(ca);
	iotca_x509_free(ver);
	return rc;
}

static iotca_err
ca_key_for(iotca_rpc_call *call, const char *acc, const char *id, char *key,
           size_t n)
{
	iotca_err rc = iotca_svc_check_id(call, id, "id", "CA certificate");

	if (rc != IOTCA_OK)
		return rc;
	snprintf(key, n, CAS_PREFIX "%s/%s", acc, id);
	return IOTCA_OK;
}

iotca_err
reg_get_ca(iotca_rpc_call *call, const ProtobufCMessage *req,
           ProtobufCMessage *resp, void *arg)
{
	const Iotca__V1__GetCaCertificateRequest *in = (const void *)req;
	registry *r = arg;
	iotca_principal who;
	char key[256];
	json_t *j = NULL;
	int found;
	iotca_err rc;

	if ((rc = iotca_auth_call(r->auth, call, IOTCA_PRINCIPAL_TENANT,
	                          &who)) != IOTCA_OK ||
	    (rc = ca_key_for(call, who.account_id, in->id, key, sizeof(key))) !=
	        IOTCA_OK ||
	    (rc = iotca_svc_get_json(r->etcd, call, key, &j, &found, NULL)) !=
	        IOTCA_OK)
		return rc;
	if (!found)
		return iotca_rpc_call_fail(call, IOTCA_ENOENT,
		                           "no CA certificate with id '%s'",
		                           in->id);
	rc = ca_fill(call, j, (void *)resp);
	json_decref(j);
	return rc;
}

typedef struct ca_list {
	Iotca__V1__ListCaCertificatesResponse *out;
} ca_list;

static iotca_err
ca_list_add(iotca_rpc_call *call, const iotca_etcd_kv *kv, void *arg)
{
	ca_list *l = arg;
	Iotca__V1__CaCertificate *c =
	    iotca_arena_zalloc(iotca_rpc_call_arena(call), sizeof(*c));
	json_t *j = json_loadb(kv->value, kv->value_len, 0, NULL);
	iotca_err rc;

	if (c == NULL || j == NULL) {
		json_decref(j);
		return iotca_rpc_call_fail(call, IOTCA_EINTERNAL,
		                           "CA record %s is corrupt", kv->key);
	}
	iotca__v1__ca_certificate__init(c);
	rc = ca_fill(call, j, c);
	json_decref(j);
	if (rc == IOTCA_OK)
		l->out->ca_certificates[l->out->n_ca_certificates++] = c;
	return rc;
}

iotca_err
reg_list_cas(iotca_rpc_call *call, const ProtobufCMessage *req,
             ProtobufCMessage *resp, void *arg)
{
	const Iotca__V1__ListCaCertificatesRequest *in = (const void *)req;
	Iotca__V1__ListCaCertificatesResponse *out = (void *)resp;
	registry *r = arg;
	iotca_principal who;
	ca_list l = {out};
	char prefix[160];
	iotca_err rc;

	if ((rc = iotca_auth_call(r->auth, call, IOTCA_PRINCIPAL_TENANT,
	                          &who)) != IOTCA_OK)
		return rc;
	snprintf(prefix, sizeof(prefix), CAS_PREFIX "%s/", who.account_id);
	out->ca_certificates = iotca_arena_zalloc(
	    iotca_rpc_call_arena(call),
	    (IOTCA_SVC_PAGE_MAX + 1) * sizeof(*out->ca_certificates));
	if (out->ca_certificates == NULL)
		return iotca_rpc_call_fail(call, IOTCA_ENOMEM, "out of memory");
	return iotca_svc_page(r->etcd, call, prefix, in->page_size,
	                      in->page_token, ca_list_add, &l,
	                      &out->next_page_token);
}

/* Rewrites a CA record and its issuer entry if it is unchanged since rev. */
static iotca_err
ca_update_try(registry *r, iotca_rpc_call *call, const char *key, int64_t rev,
              json_t *rec, int *won)
{
	char issuer[256], *rec_s = iotca_svc_json_text(rec),
	                  *iss = ca_issuer_entry(rec);
	iotca_etcd_txn_result res = {0};
	iotca_etcd_txn *t = NULL;
	iotca_errbuf eb;
	iotca_err rc = IOTCA_OK;

	snprintf(issuer, sizeof(issuer), ISSUERS_PREFIX "%s/%s",
	         iotca_svc_json_str(rec, "subject_hash"),
	         iotca_svc_json_str(rec, "id"));
	if (rec_s == NULL || iss == NULL ||
	    iotca_etcd_txn_create(&t) != IOTCA_OK) {
		rc = iotca_rpc_call_fail(call, IOTCA_ENOMEM, "out of memory");
		goto out;
	}
	ca_txn_guard(t, key, rev);
	ca_txn_put_str(t, key, rec_s);
	ca_txn_put_str(t, issuer, iss);
	if (iotca_etcd_txn_commit(r->etcd, t, &res, &eb) != IOTCA_OK)
		rc = iotca_svc_etcd_fail(call, &eb,
		                         "updating the CA certificate");
	*won = res.succeeded;
out:
	iotca_etcd_txn_result_free(&res);
	iotca_etcd_txn_destroy(t);
	free(rec_s);
	free(iss);
	return rc;
}

iotca_err
reg_update_ca_status(iotca_rpc_call *call, const ProtobufCMessage *req,
                     ProtobufCMessage *resp, void *arg)
{
	const Iotca__V1__UpdateCaCertificateStatusRequest *in =
	    (const void *)req;
	registry *r = arg;
	iotca_principal who;
	char key[256];
	json_t *j = NULL;
	int64_t rev = 0;
	int found, won = 0, attempt;
	iotca_err rc;

	if ((rc = iotca_auth_call(r->auth, call, IOTCA_PRINCIPAL_TENANT,
	                          &who)) != IOTCA_OK ||
	    (rc = ca_key_for(call, who.account_id, in->id, key, sizeof(key))) !=
	        IOTCA_OK)
		return rc;
	if (in->status != IOTCA__V1__CA_STATUS__CA_STATUS_ACTIVE &&
	    in->status != IOTCA__V1__CA_STATUS__CA_STATUS_INACTIVE)
		return iotca_rpc_call_fail(call, IOTCA_EINVAL,
		                           "status must be ACTIVE or INACTIVE");
	for (attempt = 0; !won && attempt < REG_TXN_ATTEMPTS; attempt++) {
		json_decref(j);
		j = NULL;
		if ((rc = iotca_svc_get_json(r->etcd, call, key, &j, &found,
		                             &rev)) != IOTCA_OK)
			return rc;
		if (!found)
			return iotca_rpc_call_fail(call, IOTCA_ENOENT,
			                           "no CA certificate with id "
			                           "'%s'",
			                           in->id);
		if (ca_status_value(iotca_svc_json_str(j, "status")) ==
		    (int)in->status)
			break; /* already so: nothing to write */
		json_object_set_new(j, "status",
		                    json_string(ca_status_name(in->status)));
		json_object_set_new(j, "updated_at",
		                    json_integer((json_int_t)time(NULL)));
		if ((rc = ca_update_try(r, call, key, rev, j, &won)) !=
		    IOTCA_OK)
			break;
		if (won)
			iotca_log_info(
			    "CA-STATUS", "account=%s ca=%s status=%s",
			    who.account_id, in->id, ca_status_name(in->status));
	}
	if (rc == IOTCA_OK && !won && attempt >= REG_TXN_ATTEMPTS)
		rc = iotca_rpc_call_fail(
		    call, IOTCA_EABORTED,
		    "the CA certificate kept changing; retry");
	if (rc == IOTCA_OK)
		rc = ca_fill(call, j, (void *)resp);
	json_decref(j);
	return rc;
}

/* What a deletion read, at one revision. */
typedef struct ca_del_snap {
	json_t *rec;
	int64_t rec_rev;
	int64_t count, count_rev;
	int64_t owner_count, owner_rev;
	char owner_acc[IOTCA_ID_MAX + 1];
} ca_del_snap;

static iotca_err
ca_del_read(registry *r, iotca_rpc_call *call, const char *rec_key,
            const char *count_key, ca_del_snap *s)
{
	iotca_etcd_txn_result res = {0};
	const iotca_etcd_kv *kv;
	iotca_etcd_txn *t;
	iotca_errbuf eb;
	char owner_key[160];
	json_t *o;

	memset(s, 0, sizeof(*s));
	if (iotca_etcd_txn_create(&t) != IOTCA_OK)
		return iotca_rpc_call_fail(call, IOTCA_ENOMEM, "out of memory");
	iotca_etcd_txn_range(t, IOTCA_ETCD_SUCCESS, rec_key, strlen(rec_key),
	                     NULL, 0);
	iotca_etcd_txn_range(t, IOTCA_ETCD_SUCCESS, count_key,
	                     strlen(count_key), NULL, 0);
	if (iotca_etcd_txn_commit(r->etcd, t, &res, &eb) != IOTCA_OK) {
		iotca_etcd_txn_destroy(t);
		return iotca_svc_etcd_fail(call, &eb,
		                           "reading the CA certificate");
	}
	iotca_etcd_txn_destroy(t);
	if ((kv = ca_snap_kv(&res, 0)) != NULL) {
		s->rec = json_loadb(kv->value, kv->value_len, 0, NULL);
		s->rec_rev = kv->mod_revision;
	}
	if ((kv = ca_snap_kv(&res, 1)) != NULL) {
		s->count = strtoll(kv->value, NULL, 10);
		s->count_rev = kv->mod_revision;
	}
	iotca_etcd_txn_result_free(&res);
	if (s->rec == NULL)
		return IOTCA_OK;
	snprintf(owner_key, sizeof(owner_key), SUBJECTS_PREFIX "%s",
	         iotca_svc_json_str(s->rec, "subject_hash"));
	if (iotca_svc_get_json(r->etcd, call, owner_key, &o, &(int){0},
	                       &s->owner_rev) != IOTCA_OK)
		return IOTCA_EUNAVAIL;
	if (s->owner_rev != 0) {
		s->owner_count = iotca_svc_json_int(o, "count");
		snprintf(s->owner_acc, sizeof(s->owner_acc), "%s",
		         iotca_svc_json_str(o, "account_id"));
		json_decref(o);
	}
	return IOTCA_OK;
}

static iotca_err
ca_del_try(registry *r, iotca_rpc_call *call, const char *rec_key,
           const char *count_key, const ca_del_snap *s, int *won)
{
	const json_t *rec = s->rec;
	const char *acc = iotca_svc_json_str(rec, "account_id");
	char owner_key[160], fp_key[256], name_key[160], issuer_key[256];
	char count[32], *owner_s = NULL;
	iotca_etcd_txn_result res = {0};
	iotca_etcd_txn *t = NULL;
	iotca_errbuf eb;
	json_t *owner = NULL;
	iotca_err rc = IOTCA_OK;

	snprintf(owner_key, sizeof(owner_key), SUBJECTS_PREFIX "%s",
	         iotca_svc_json_str(rec, "subject_hash"));
	snprintf(fp_key, sizeof(fp_key), CA_FPS_PREFIX "%s/%s", acc,
	         iotca_svc_json_str(rec, "fingerprint"));
	snprintf(name_key, sizeof(name_key), CA_NAMES_PREFIX "%s/%s", acc,
	         iotca_svc_json_str(rec, "name"));
	snprintf(issuer_key, sizeof(issuer_key), ISSUERS_PREFIX "%s/%s",
	         iotca_svc_json_str(rec, "subject_hash"),
	         iotca_svc_json_str(rec, "id"));
	if (iotca_etcd_txn_create(&t) != IOTCA_OK)
		goto nomem;
	ca_txn_guard(t, rec_key, s->rec_rev);
	ca_txn_guard(t, count_key, s->count_rev);
	ca_txn_guard(t, owner_key, s->owner_rev);
	iotca_etcd_txn_delete(t, IOTCA_ETCD_SUCCESS, rec_key, strlen(rec_key),
	                      NULL, 0);
	iotca_etcd_txn_delete(t, IOTCA_ETCD_SUCCESS, fp_key, strlen(fp_key),
	                      NULL, 0);
	iotca_etcd_txn_delete(t, IOTCA_ETCD_SUCCESS, name_key, strlen(name_key),
	                      NULL, 0);
	iotca_etcd_txn_delete(t, IOTCA_ETCD_SUCCESS, issuer_key,
	                      strlen(issuer_key), NULL, 0);
	snprintf(count, sizeof(count), "%lld",
	         (long long)(s->count > 0 ? s->count - 1 : 0));
	ca_txn_put_str(t, count_key, count);
	if (s->owner_count > 1) {
		owner = json_pack("{s:s, s:I}", "account_id", acc, "count",
		                  (json_int_t)(s->owner_count - 1));
		if (owner == NULL ||
		    (owner_s = iotca_svc_json_text(owner)) == NULL)
			goto nomem;
		ca_txn_put_str(t, owner_key, owner_s);
	} else {
		iotca_etcd_txn_delete(t, IOTCA_ETCD_SUCCESS, owner_key,
		                      strlen(owner_key), NULL, 0);
	}
	if (iotca_etcd_txn_commit(r->etcd, t, &res, &eb) != IOTCA_OK)
		rc = iotca_svc_etcd_fail(call, &eb,
		                         "deleting the CA certificate");
	*won = res.succeeded;
	goto out;
nomem:
	rc = iotca_rpc_call_fail(call, IOTCA_ENOMEM, "out of memory");
out:
	iotca_etcd_txn_result_free(&res);
	iotca_etcd_txn_destroy(t);
	json_decref(owner);
	free(owner_s);
	return rc;
}

iotca_err
reg_delete_ca(iotca_rpc_call *call, const ProtobufCMessage *req,
              ProtobufCMessage *resp, void *arg)
{
	const Iotca__V1__DeleteCaCertificateRequest *in = (const void *)req;
	registry *r = arg;
	iotca_principal who;
	char key[256], count_key[160];
	ca_del_snap s = {0};
	int won = 0, attempt;
	iotca_err rc;

	(void)resp;
	if ((rc = iotca_auth_call(r->auth, call, IOTCA_PRINCIPAL_TENANT,
	                          &who)) != IOTCA_OK ||
	    (rc = ca_key_for(call, who.account_id, in->id, key, sizeof(key))) !=
	        IOTCA_OK)
		return rc;
	snprintf(count_key, sizeof(count_key), CA_COUNT_PREFIX "%s",
	         who.account_id);
	for (attempt = 0; !won && attempt < REG_TXN_ATTEMPTS; attempt++) {
		json_decref(s.rec);
		if ((rc = ca_del_read(r, call, key, count_key, &s)) != IOTCA_OK)
			break;
		if (s.rec == NULL) {
			rc = iotca_rpc_call_fail(
			    call, IOTCA_ENOENT,
			    "no CA certificate with id '%s'", in->id);
			break;
		}
		if (strcmp(iotca_svc_json_str(s.rec, "status"), "INACTIVE") !=
		    0) {
			rc = iotca_rpc_call_fail(call, IOTCA_EPRECOND,
			                         "CA certificate %s is ACTIVE; "
			                         "disable it first (iotca ca "
			                         "disable %s)",
			                         in->id, in->id);
			break;
		}
		if ((rc = ca_del_try(r, call, key, count_key, &s, &won)) !=
		    IOTCA_OK)
			break;
	}
	json_decref(s.rec);
	if (rc == IOTCA_OK && !won)
		rc = iotca_rpc_call_fail(
		    call, IOTCA_EABORTED,
		    "the CA certificate kept changing; retry");
	if (won)
		iotca_log_info("CA-DELETED", "account=%s ca=%s", who.account_id,
		               in->id);
	return rc;
}

typedef struct ca_resolved {
	iotca_rpc_call *call;
	Iotca__V1__ResolveIssuerResponse *out;
	int nomem;
} ca_resolved;

/* Adds an ACTIVE entry to the answer; skips INACTIVE and corrupt ones
 * (a corrupt entry trusts nothing). */
static int
ca_resolve_add(const iotca_etcd_kv *kv, void *arg)
{
	ca_resolved *l = arg;
	iotca_arena *a = iotca_rpc_call_arena(l->call);
	Iotca__V1__ResolveIssuerResponse *out = l->out;
	json_t *j = json_loadb(kv->value, kv->value_len, 0, NULL);
	Iotca__V1__ResolvedCaCertificate *c;

	if (j == NULL ||
	    strcmp(iotca_svc_json_str(j, "status"), "ACTIVE") != 0 ||
	    out->n_ca_certificates >= REG_MAX_CAS) {
		json_decref(j);
		return 0;
	}
	if ((c = iotca_arena_zalloc(a, sizeof(*c))) == NULL) {
		l->nomem = 1;
		json_decref(j);
		return 1;
	}
	iotca__v1__resolved_ca_certificate__init(c);
	c->ca_id = iotca_arena_strdup(a, iotca_svc_json_str(j, "ca_id"));
	c->account_id =
	    iotca_arena_strdup(a, iotca_svc_json_str(j, "account_id"));
	c->pem = iotca_arena_strdup(a, iotca_svc_json_str(j, "pem"));
	c->sha256_fingerprint =
	    iotca_arena_strdup(a, iotca_svc_json_str(j, "fingerprint"));
	c->not_after = iotca_svc_json_int(j, "not_after");
	json_decref(j);
	if (!c->ca_id || !c->account_id || !c->pem || !c->sha256_fingerprint) {
		l->nomem = 1;
		return 1;
	}
	out->ca_certificates[out->n_ca_certificates++] = c;
	return 0;
}

iotca_err
reg_resolve_issuer(iotca_rpc_call *call, const ProtobufCMessage *req,
                   ProtobufCMessage *resp, void *arg)
{
	const Iotca__V1__ResolveIssuerRequest *in = (const void *)req;
	Iotca__V1__ResolveIssuerResponse *out = (void *)resp;
	registry *r = arg;
	iotca_principal who;
	ca_resolved l = {call, out, 0};
	issuer_cache *cache;
	char hash[65], prefix[160];
	iotca_errbuf eb;
	iotca_err rc;

	if ((rc = iotca_auth_call(r->auth, call, IOTCA_PRINCIPAL_INTERNAL,
	                          &who)) != IOTCA_OK)
		return rc;
	if (in->issuer_der.len == 0 || in->issuer_der.len > ISSUER_DER_MAX)
		return iotca_rpc_call_fail(
		    call, IOTCA_EINVAL,
		    "issuer_der must be 1 to %u bytes of "
		    "DER",
		    ISSUER_DER_MAX);
	/* Inline (no I/O) from the watched copy; before it is loaded, again
	 * on a worker thread, reading etcd. */
	cache = atomic_load(&r->issuers);
	if (cache == NULL && iotca_rpc_call_defer(call))
		return IOTCA_OK;
	iotca_svc_sha256_hex(in->issuer_der.data, in->issuer_der.len, hash);
	snprintf(prefix, sizeof(prefix), ISSUERS_PREFIX "%s/", hash);
	out->ca_certificates = iotca_arena_zalloc(iotca_rpc_call_arena(call),
	                                          REG_MAX_CAS * sizeof(void *));
	if (out->ca_certificates == NULL)
		return iotca_rpc_call_fail(call, IOTCA_ENOMEM, "out of memory");
	if (cache != NULL)
		return issuer_cache_lookup(cache, call, hash, out);
	if (iotca_etcd_range_prefix(r->etcd, prefix, strlen(prefix), 64,
	                            ca_resolve_add, &l, NULL, &eb) != IOTCA_OK)
		return iotca_svc_etcd_fail(call, &eb, "resolving the issuer");
	if (l.nomem)
		return iotca_rpc_call_fail(call, IOTCA_ENOMEM, "out of memory");
	return IOTCA_OK;
}
