/*
 * registry.h - the registry service: accounts and API keys, registration
 * codes, CA certificates, and issuer resolution for the edge.
 *
 * etcd layout (all values JSON unless noted):
 *   /iotca/accounts/<account_id>            account record
 *   /iotca/account-names/<name>             <account_id> (text)
 *   /iotca/regcodes/<account_id>            {"code","created_at"}
 *   /iotca/cas/<account_id>/<ca_id>         CA record (the source of truth)
 *   /iotca/ca-count/<account_id>            number of CAs (text), the 10-CA
 *                                           limit's optimistic-lock key
 *   /iotca/ca-names/<account_id>/<name>     <ca_id>
 *   /iotca/ca-fps/<account_id>/<sha256>     <ca_id>
 *   /iotca/subjects/<sha256(subject DER)>   {"account_id","count"}: which
 *                                           account owns a subject DN
 *   /iotca/issuers/<sha256(subject DER)>/<ca_id>
 *                                           what ResolveIssuer returns
 * Every write that touches several keys is one etcd transaction guarded by
 * compares on the keys it read, retried when another writer got there
 * first: the rules hold across replicas.
 */
#ifndef IOTCA_REGISTRY_H
#define IOTCA_REGISTRY_H

#include <stdatomic.h>

#include <jansson.h>

#include "auth/auth.h"
#include "etcd/etcd.h"
#include "feed.h"
#include "iotca/v1/registry.pb-c.h"
#include "rpc/rpc.h"
#include "svc/svc.h"

#define REG_MAX_CAS      10
#define REG_TXN_ATTEMPTS 8

typedef struct issuer_cache issuer_cache;

typedef struct registry {
	iotca_etcd *etcd;
	iotca_auth *auth;
	/* Set once by main when the copy is loaded; NULL until then, and
	 * ResolveIssuer reads etcd instead. */
	issuer_cache *_Atomic issuers;
	/* Set once by main when the CA change feed runs; NULL until then,
	 * and ListCaChanges answers UNAVAILABLE. */
	feed *_Atomic ca_changes;
} registry;

/* Registers every Registry method on srv. */
iotca_err registry_register(registry *r, iotca_rpc_server *srv,
                            iotca_errbuf *eb);

/* accounts.c */
iotca_err reg_create_account(iotca_rpc_call *, const ProtobufCMessage *,
                             ProtobufCMessage *, void *);
iotca_err reg_list_accounts(iotca_rpc_call *, const ProtobufCMessage *,
                            ProtobufCMessage *, void *);
iotca_err reg_create_api_key(iotca_rpc_call *, const ProtobufCMessage *,
                             ProtobufCMessage *, void *);
iotca_err reg_revoke_api_key(iotca_rpc_call *, const ProtobufCMessage *,
                             ProtobufCMessage *, void *);
iotca_err reg_get_regcode(iotca_rpc_call *, const ProtobufCMessage *,
                          ProtobufCMessage *, void *);
iotca_err reg_rotate_regcode(iotca_rpc_call *, const ProtobufCMessage *,
                             ProtobufCMessage *, void *);

/* cas.c */
iotca_err reg_register_ca(iotca_rpc_call *, const ProtobufCMessage *,
                          ProtobufCMessage *, void *);
iotca_err reg_get_ca(iotca_rpc_call *, const ProtobufCMessage *,
                     ProtobufCMessage *, void *);
iotca_err reg_list_cas(iotca_rpc_call *, const ProtobufCMessage *,
                       ProtobufCMessage *, void *);
iotca_err reg_update_ca_status(iotca_rpc_call *, const ProtobufCMessage *,
                               ProtobufCMessage *, void *);
iotca_err reg_delete_ca(iotca_rpc_call *, const ProtobufCMessage *,
                        ProtobufCMessage *, void *);
iotca_err reg_resolve_issuer(iotca_rpc_call *, const ProtobufCMessage *,
                             ProtobufCMessage *, void *);

/* cachanges.c: ListCaChanges, from a change feed of /iotca/cas/ */
iotca_err ca_changes_start(iotca_etcd *etcd, feed **out, iotca_errbuf *eb);
iotca_err reg_list_ca_changes(iotca_rpc_call *, const ProtobufCMessage *,
                              ProtobufCMessage *, void *);

/* issuers.c: the watch-fed copy of /iotca/issuers/ */
iotca_err issuer_cache_start(iotca_etcd *etcd, issuer_cache **out,
                             iotca_errbuf *eb);
void issuer_cache_stop(issuer_cache *c);
/* Adds the ACTIVE CAs whose subject hashes to hash (64 hex) to out. */
iotca_err issuer_cache_lookup(issuer_cache *c, iotca_rpc_call *call,
                              const char *hash,
                              Iotca__V1__ResolveIssuerResponse *out);

#endif /* IOTCA_REGISTRY_H */
