/*
 * issuers.c - the in-memory copy of /iotca/issuers/ that ResolveIssuer
 * answers from, so a device's first connect costs the registry no etcd
 * round trip.
 *
 * At start the whole prefix is read at one revision R, then a watch from
 * R+1 keeps the copy current (a PUT replaces an entry, a DELETE removes
 * it; a RESET after compaction reloads everything). Entries are built
 * whole and swapped in under the write lock; lookups take the read lock
 * and copy what they need into the call's arena.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log/log.h"
#include "registry.h"

#define ISSUERS_PREFIX   "/iotca/issuers/"
#define ISSUER_BUCKETS   4096
#define ISSUER_LOAD_PAGE 500

typedef struct issuer_entry {
	struct issuer_entry *next;
	char *etcd_key; /* /iotca/issuers/<hash>/<ca_id> */
	char hash[65];
	int active;
	char *ca_id, *account_id, *pem, *fingerprint;
	int64_t not_after;
} issuer_entry;

struct issuer_cache {
	iotca_etcd *etcd;
	pthread_rwlock_t lock;
	issuer_entry *buckets[ISSUER_BUCKETS];
	size_t count;
	iotca_etcd_watch *watch;
};

static unsigned
issuer_bucket(const char *hash)
{
	/* The hash is SHA-256 hex: its first digits are already uniform. */
	return (unsigned)strtoul((char[4]){hash[0], hash[1], hash[2], 0}, NULL,
	                         16) %
	       ISSUER_BUCKETS;
}

static void
issuer_entry_free(issuer_entry *e)
{
	if (e == NULL)
		return;
	free(e->etcd_key);
	free(e->ca_id);
	free(e->account_id);
	free(e->pem);
	free(e->fingerprint);
	free(e);
}

/* Builds an entry from an etcd key-value; NULL if it is not one. */
static issuer_entry *
issuer_entry_parse(const iotca_etcd_kv *kv)
{
	size_t pl = strlen(ISSUERS_PREFIX);
	issuer_entry *e;
	json_t *j;

	if (kv->key_len < pl + 65 || kv->key[pl + 64] != '/')
		return NULL;
	if ((j = json_loadb(kv->value, kv->value_len, 0, NULL)) == NULL)
		return NULL;
	if ((e = calloc(1, sizeof(*e))) != NULL) {
		memcpy(e->hash, kv->key + pl, 64);
		e->hash[64] = '\0';
		e->etcd_key = strndup(kv->key, kv->key_len);
		e->active =
		    strcmp(iotca_svc_json_str(j, "status"), "ACTIVE") == 0;
		e->ca_id = strdup(iotca_svc_json_str(j, "ca_id"));
		e->account_id = strdup(iotca_svc_json_str(j, "account_id"));
		e->pem = strdup(iotca_svc_json_str(j, "pem"));
		e->fingerprint = strdup(iotca_svc_json_str(j, "fingerprint"));
		e->not_after = iotca_svc_json_int(j, "not_after");
		if (!e->etcd_key || !e->ca_id || !e->account_id || !e->pem ||
		    !e->fingerprint) {
			issuer_entry_free(e);
			e = NULL;
		}
	}
	json_decref(j);
	return e;
}

/* Removes the entry stored under key. Under the write lock. */
static void
issuer_remove(issuer_cache *c, const char *key, size_t key_len)
{
	size_t pl = strlen(ISSUERS_PREFIX);
	issuer_entry **pp, *e;

	if (key_len < pl + 64)
		return;
	pp = &c->buckets[issuer_bucket(key + pl)];
	for (; (e = *pp) != NULL; pp = &e->next)
		if (strlen(e->etcd_key) == key_len &&
		    memcmp(e->etcd_key, key, key_len) == 0) {
			*pp = e->next;
			issuer_entry_free(e);
			c->count--;
			return;
		}
}

/* Replaces (or adds) an entry. Under the write lock. */
static void
issuer_put(issuer_cache *c, issuer_entry *e)
{
	unsigned b = issuer_bucket(e->hash);

	issuer_remove(c, e->etcd_key, strlen(e->etcd_key));
	e->next = c->buckets[b];
	c->buckets[b] = e;
	c->count++;
}

static void
issuer_clear(issuer_cache *c)
{
	issuer_entry *e, *next;
	size_t i;

	for (i = 0; i < ISSUER_BUCKETS; i++) {
		for (e = c->buckets[i]; e != NULL; e = next) {
			next = e->next;
			issuer_entry_free(e);
		}
		c->buckets[i] = NULL;
	}
	c->count = 0;
}

static int
issuer_load_kv(const iotca_etcd_kv *kv, void *arg)
{
	issuer_entry *e;

	if ((e = issuer_entry_parse(kv)) != NULL)
		issuer_put(arg, e);
	return 0;
}

/* Reads the whole prefix at one revision into the table (replacing it);
 * *rev gets that revision. */
static iotca_err
issuer_load(issuer_cache *c, int64_t *rev, iotca_errbuf *eb)
{
	iotca_err rc;

	pthread_rwlock_wrlock(&c->lock);
	issuer_clear(c);
	rc = iotca_etcd_range_prefix(c->etcd, ISSUERS_PREFIX,
	                             strlen(ISSUERS_PREFIX), ISSUER_LOAD_PAGE,
	                             issuer_load_kv, c, rev, eb);
	pthread_rwlock_unlock(&c->lock);
	return rc;
}

static void
issuer_on_event(const iotca_etcd_event *ev, void *arg)
{
	issuer_cache *c = arg;
	issuer_entry *e;
	iotca_errbuf eb;
	int64_t rev;

	if (ev->type != IOTCA_ETCD_EVENT_PUT &&
	    ev->type != IOTCA_ETCD_EVENT_DELETE &&
	    ev->type != IOTCA_ETCD_EVENT_RESET)
		return; /* PROGRESS: nothing to do */
	if (ev->type == IOTCA_ETCD_EVENT_RESET) {
		if (issuer_load(c, &rev, &eb) != IOTCA_OK)
			iotca_log_warn("ISSUER-CACHE-RELOAD-FAILED",
			               "msg=\"%s\"", iotca_errbuf_msg(&eb));
		return;
	}
	pthread_rwlock_wrlock(&c->lock);
	if (ev->type == IOTCA_ETCD_EVENT_DELETE)
		issuer_remove(c, ev->kv.key, ev->kv.key_len);
	else if ((e = issuer_entry_parse(&ev->kv)) != NULL)
		issuer_put(c, e);
	pthread_rwlock_unlock(&c->lock);
}

iotca_err
issuer_cache_start(iotca_etcd *etcd, issuer_cache **out, iotca_errbuf *eb)
{
	issuer_cache *c = calloc(1, sizeof(*c));
	char end[64];
	size_t pl = strlen(ISSUERS_PREFIX);
	int64_t rev = 0;
	iotca_err rc;

	if (c == NULL)
		return iotca_errbuf_set(eb, IOTCA_ENOMEM, "out of memory");
	c->etcd = etcd;
	pthread_rwlock_init(&c->lock, NULL);
	if ((rc = issuer_load(c, &rev, eb)) != IOTCA_OK ||
	    (rc = iotca_etcd_watch_start(
	         etcd, ISSUERS_PREFIX, pl, end,
	         iotca_etcd_prefix_end(ISSUERS_PREFIX, pl, end), rev + 1,
	         issuer_on_event, c, &c->watch, eb)) != IOTCA_OK) {
		issuer_cache_stop(c);
		return rc;
	}
	iotca_log_info("ISSUER-CACHE-READY", "entries=%zu revision=%lld",
	               c->count, (long long)rev);
	*out = c;
	return IOTCA_OK;
}

void
issuer_cache_stop(issuer_cache *c)
{
	if (c == NULL)
		return;
	if (c->watch != NULL)
		iotca_etcd_watch_stop(c->watch);
	issuer_clear(c);
	pthread_rwlock_destroy(&c->lock);
	free(c);
}

iotca_err
issuer_cache_lookup(issuer_cache *c, iotca_rpc_call *call, const char *hash,
                    Iotca__V1__ResolveIssuerResponse *out)
{
	iotca_arena *a = iotca_rpc_call_arena(call);
	Iotca__V1__ResolvedCaCertificate *r;
	issuer_entry *e;
	iotca_err rc = IOTCA_OK;

	pthread_rwlock_rdlock(&c->lock);
	for (e = c->buckets[issuer_bucket(hash)]; e != NULL && rc == IOTCA_OK;
	     e = e->next) {
		if (!e->active || strcmp(e->hash, hash) != 0 ||
		    out->n_ca_certificates >= REG_MAX_CAS)
			continue;
		if ((r = iotca_arena_zalloc(a, sizeof(*r))) == NULL) {
			rc = IOTCA_ENOMEM;
			break;
		}
		iotca__v1__resolved_ca_certificate__init(r);
		r->ca_id = iotca_arena_strdup(a, e->ca_id);
		r->account_id = iotca_arena_strdup(a, e->account_id);
		r->pem = iotca_arena_strdup(a, e->pem);
		r->sha256_fingerprint = iotca_arena_strdup(a, e->fingerprint);
		r->not_after = e->not_after;
		if (!r->ca_id || !r->account_id || !r->pem ||
		    !r->sha256_fingerprint)
			rc = IOTCA_ENOMEM;
		else
			out->ca_certificates[out->n_ca_certificates++] = r;
	}
	pthread_rwlock_unlock(&c->lock);
	return rc == IOTCA_OK ? rc
	                      : iotca_rpc_call_fail(call, rc, "out of memory");
}
