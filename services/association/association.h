/*
 * association.h - the association service: products, the CSV template,
 * all-or-nothing CSV ingestion, and device resolution for the edge.
 *
 * etcd layout (values JSON unless noted):
 *   /iotca/products/<account_id>/<product_key>     product record
 *   /iotca/product-keys/<product_key>              <account_id> (text):
 *                                                  keys are global
 *   /iotca/product-names/<account_id>/<name>       <product_key> (text)
 *   /iotca/sn/<account_id>/<cert_sn>               the association:
 *       {"ca","sn","pk","dn","st":1|2,"t"}         (st: ENABLED/DISABLED)
 *   /iotca/devices/<account_id>/<pk>/<dn>          <cert_sn> (text)
 * The SN key makes an SN unique in its account; the device key makes a
 * device hold one SN. An upload writes both keys of every row in ONE etcd
 * transaction, guarded by "absent" compares on each: all rows or none,
 * also under concurrent uploads on several replicas and a crash at any
 * moment. A 10,000-row file is 20,000 compares and 20,000 puts (~8 MB), so
 * etcd must run with --max-txn-ops >= 20000 and --max-request-bytes >=
 * 16 MiB (scripts/run.sh and deploy/ set 24576 and 16 MiB).
 *
 * CA ownership and status come from the registry over gRPC
 * (GetCaCertificate with the caller's own API key).
 */
#ifndef IOTCA_ASSOCIATION_H
#define IOTCA_ASSOCIATION_H

#include <stdatomic.h>

#include "auth/auth.h"
#include "../registry/feed.h" /* generic; compiled from there */
#include "etcd/etcd.h"
#include "iotca/v1/association.pb-c.h"
#include "iotca/v1/registry.pb-c.h"
#include "rpc/rpc.h"
#include "svc/svc.h"

#define ASSOC_MAX_ROWS   10000
#define ASSOC_CSV_MAX    (4u << 20)
#define ASSOC_MAX_ERRORS 1000
#define ASSOC_PK_LEN     11

#define ASSOC_PRODUCTS_PREFIX      "/iotca/products/"
#define ASSOC_PRODUCT_KEYS_PREFIX  "/iotca/product-keys/"
#define ASSOC_PRODUCT_NAMES_PREFIX "/iotca/product-names/"
#define ASSOC_SN_PREFIX            "/iotca/sn/"
#define ASSOC_DEVICES_PREFIX       "/iotca/devices/"

typedef struct dev_cache dev_cache;

typedef struct assoc_svc {
	iotca_etcd *etcd;
	/* Set once by main when the watch is up; NULL until then, and
	 * ResolveDevice reads etcd on every call. */
	dev_cache *_Atomic devices;
	/* Set once by main when the device change feed runs; NULL until
	 * then, and ListDeviceChanges answers UNAVAILABLE. */
	feed *_Atomic changes;
	iotca_auth *auth;
	iotca_rpc_client *registry; /* for CA ownership and status */
	int fault_abort;            /* test builds: abort() at a commit point */
} assoc_svc;

/* Registers every Association method on srv. */
iotca_err assoc_register(assoc_svc *a, iotca_rpc_server *srv, iotca_errbuf *eb);

/* products.c */
iotca_err assoc_create_product(iotca_rpc_call *, const ProtobufCMessage *,
                               ProtobufCMessage *, void *);
iotca_err assoc_get_product(iotca_rpc_call *, const ProtobufCMessage *,
                            ProtobufCMessage *, void *);
iotca_err assoc_list_products(iotca_rpc_call *, const ProtobufCMessage *,
                              ProtobufCMessage *, void *);
/* Reads the account's product; *found 0 when absent. */
iotca_err assoc_product_read(assoc_svc *a, iotca_rpc_call *call,
                             const char *account_id, const char *pk,
                             json_t **out, int *found);

/* upload.c */
iotca_err assoc_get_template(iotca_rpc_call *, const ProtobufCMessage *,
                             ProtobufCMessage *, void *);
iotca_err assoc_upload(iotca_rpc_call *, const ProtobufCMessage *,
                       ProtobufCMessage *, void *);

/* devices.c */
iotca_err assoc_list(iotca_rpc_call *, const ProtobufCMessage *,
                     ProtobufCMessage *, void *);
iotca_err assoc_get(iotca_rpc_call *, const ProtobufCMessage *,
                    ProtobufCMessage *, void *);
iotca_err assoc_delete(iotca_rpc_call *, const ProtobufCMessage *,
                       ProtobufCMessage *, void *);
iotca_err assoc_update_device_status(iotca_rpc_call *, const ProtobufCMessage *,
                                     ProtobufCMessage *, void *);
iotca_err assoc_resolve_device(iotca_rpc_call *, const ProtobufCMessage *,
                               ProtobufCMessage *, void *);

/* devchanges.c: ListDeviceChanges, from a change feed of /iotca/sn/ */
iotca_err dev_changes_start(iotca_etcd *etcd, feed **out, iotca_errbuf *eb);
iotca_err assoc_list_device_changes(iotca_rpc_call *, const ProtobufCMessage *,
                                    ProtobufCMessage *, void *);

/* devcache.c: ResolveDevice's cache of association records */
typedef struct dev_record {
	char ca[IOTCA_ID_MAX + 1];
	char pk[ASSOC_PK_LEN + 1];
	char dn[33];
	int st;
} dev_record;
iotca_err dev_cache_start(iotca_etcd *etcd, size_t cap, dev_cache **out,
                          iotca_errbuf *eb);
void dev_cache_stop(dev_cache *c);
/* 1 and *out filled when key's record is cached, else 0. */
int dev_cache_get(dev_cache *c, const char *key, dev_record *out);
/* Stores a record read from etcd, unless something newer is known. */
void dev_cache_put(dev_cache *c, const iotca_etcd_kv *kv);

/* Checks with the registry that ca_id is the caller's CA; *active says
 * whether it is ACTIVE. Sets the call's status on failure (NOT_FOUND for
 * another account's CA). */
iotca_err assoc_ca_check(assoc_svc *a, iotca_rpc_call *call, const char *ca_id,
                         int *active);

/* Whether s is a valid DeviceName: 4-32 of letters, digits and -_.@: */
int assoc_valid_device_name(const char *s, size_t len);

#endif /* IOTCA_ASSOCIATION_H */
