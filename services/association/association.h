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
 *   /iotca/sn/<account_id>                         the account's version
 *       key {"t"}: rewritten by every write that binds or unbinds an SN
 * One key per association: the SN key makes an SN unique in its account.
 * That a device holds one SN is checked against the device index
 * (devindex.c: every binding in memory, kept by a watch of /iotca/sn/).
 * An upload reads the version key's mod_revision V, waits until the index
 * has every change up to V, checks every row against it, and commits
 * every new SN key in ONE etcd transaction guarded by "the version key is
 * still at V" (and rewrites it): all rows or none, also under concurrent
 * writers on several replicas (a writer that came first moved V: the
 * upload checks again) and a crash at any moment. A 10,000-row file is
 * about 10,000 puts (~2.5 MB); when every row replaces bindings of
 * deleted CAs, up to 20,001 compares and as many operations (~8 MB). So
 * etcd must run with --max-txn-ops >= 20001 and --max-request-bytes >=
 * 8 MiB (scripts/run.sh and deploy/ set 24576 and 16 MiB). Earlier
 * versions also wrote /iotca/devices/<account_id>/<pk>/<dn> per
 * association; nothing reads those any more.
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
#include "x509/x509.h"

#define ASSOC_MAX_ROWS   10000
#define ASSOC_CSV_MAX    (4u << 20)
#define ASSOC_MAX_ERRORS 1000
#define ASSOC_PK_LEN     11

#define ASSOC_PRODUCTS_PREFIX      "/iotca/products/"
#define ASSOC_PRODUCT_KEYS_PREFIX  "/iotca/product-keys/"
#define ASSOC_PRODUCT_NAMES_PREFIX "/iotca/product-names/"
#define ASSOC_SN_PREFIX            "/iotca/sn/"
#define ASSOC_DN_MAX               32

typedef struct dev_index dev_index;

typedef struct assoc_svc {
	iotca_etcd *etcd;
	/* Set once by main when the device index is loaded; NULL until
	 * then: uploads and UpdateDeviceStatus wait for it, ResolveDevice
	 * reads etcd. */
	dev_index *_Atomic index;
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
void dev_changes_opts(feed_opts *o);
iotca_err assoc_list_device_changes(iotca_rpc_call *, const ProtobufCMessage *,
                                    ProtobufCMessage *, void *);

/* The record of the watch event being delivered, parsed once by the
 * device index for itself and for the feed's parse (feed_opts.arg). */
typedef struct dev_parsed {
	const iotca_etcd_event *ev;
	json_t *j; /* NULL: the value is not JSON */
} dev_parsed;

/* devindex.c: every binding in memory, by SN and by device */
typedef struct dev_binding {
	char ca[IOTCA_ID_MAX + 1];
	char sn[IOTCA_X509_SN_HEX_MAX];
	char pk[ASSOC_PK_LEN + 1];
	char dn[ASSOC_DN_MAX + 1];
	int st;      /* Iotca__V1__DeviceStatus */
	int64_t rev; /* the SN key's mod_revision */
} dev_binding;
/* Loads the index at a revision R and starts ListDeviceChanges' feed
 * (*changes_out, opts from dev_changes_opts) at R on the same watch of
 * /iotca/sn/ (one stream, not two, for every upload's events). Stop the
 * index before the feed. */
iotca_err dev_index_start(iotca_etcd *etcd, const feed_opts *changes,
                          feed **changes_out, dev_index **out,
                          iotca_errbuf *eb);
void dev_index_stop(dev_index *ix);
/* Waits until every change of acc's associations up to rev is in the
 * index: IOTCA_OK, or IOTCA_ETIMEDOUT after timeout_ms. */
iotca_err dev_index_wait(dev_index *ix, const char *acc, int64_t rev,
                         long timeout_ms);
/*
 * This replica's own commit at revision rev, into the index at once:
 * begin returns 1 (and holds the lock) unless the watch has already
 * applied a change of rev or later (then it has this commit's changes
 * and must not be overwritten with older ones: returns 0, no lock). Then
 * every binding the commit wrote or deleted, and end records that acc is
 * current up to rev (and unlocks). Only valid for a commit guarded by
 * acc's version key V with the index current for acc up to V: nothing
 * else changed acc's associations between V and rev.
 */
int dev_index_wt_begin(dev_index *ix, int64_t rev);
void dev_index_wt_put(dev_index *ix, const char *acc, const char *sn,
                      const char *ca, const char *pk, const char *dn, int st,
                      int64_t rev);
void dev_index_wt_delete(dev_index *ix, const char *acc, const char *sn,
                         int64_t rev);
void dev_index_wt_end(dev_index *ix, const char *acc, int64_t rev);
/* The lookups run between lock and unlock and copy the binding out. */
void dev_index_lock(dev_index *ix);
void dev_index_unlock(dev_index *ix);
int dev_index_by_sn(dev_index *ix, const char *acc, const char *sn,
                    dev_binding *out);
int dev_index_by_device(dev_index *ix, const char *acc, const char *pk,
                        const char *dn, dev_binding *out);
/* ResolveDevice's lookup (takes the lock): 0 when the index does not
 * know the SN or is (re)loading; then ask etcd. */
int dev_index_resolve(dev_index *ix, const char *acc, const char *sn,
                      dev_binding *out);

/* The account's version key (above) and its mod_revision in *rev (0 when
 * absent); then waits until the index holds every change up to it. Sets
 * the call's status on failure. */
iotca_err assoc_index_sync(assoc_svc *a, iotca_rpc_call *call, const char *acc,
                           dev_index **ix, int64_t *rev);
/* Adds "the version key is still at rev" and its rewrite to t. */
void assoc_version_guard(iotca_etcd_txn *t, const char *acc, int64_t rev);

/* Checks with the registry that ca_id is the caller's CA; *active says
 * whether it is ACTIVE. Sets the call's status on failure (NOT_FOUND for
 * another account's CA). */
iotca_err assoc_ca_check(assoc_svc *a, iotca_rpc_call *call, const char *ca_id,
                         int *active);

/* Whether s is a valid DeviceName: 4-32 of letters, digits and -_.@: */
int assoc_valid_device_name(const char *s, size_t len);

#endif /* IOTCA_ASSOCIATION_H */
