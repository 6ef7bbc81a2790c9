/*
 * svc.h - what the gRPC service handlers share: reading etcd records as
 * JSON, one way to paginate, the mapping of etcd failures to call status,
 * input character checks, and small encodings. Handlers call these with
 * their call so failures become the call's status directly.
 */
#ifndef IOTCA_SVC_H
#define IOTCA_SVC_H

#include <stdint.h>

#include <jansson.h>

#include "etcd/etcd.h"
#include "rpc/rpc.h"

#define IOTCA_SVC_PAGE_DEFAULT 100
#define IOTCA_SVC_PAGE_MAX     1000

/* Fails the call for an etcd error: unreachable or timed out is
 * UNAVAILABLE (retry later); anything else is INTERNAL. doing says what
 * the service was doing ("reading the product"). */
iotca_err iotca_svc_etcd_fail(iotca_rpc_call *call, const iotca_errbuf *eb,
                              const char *doing);

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

#endif /* IOTCA_SVC_H */
