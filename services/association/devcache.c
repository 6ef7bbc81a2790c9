/*
 * devcache.c - a bounded, watch-invalidated cache of association records
 * for ResolveDevice, so a device's connect usually costs no etcd read.
 *
 * Entries are keyed by the etcd key (/iotca/sn/<account>/<sn>) and hold
 * the record's fields with its mod_revision. A watch on /iotca/sn/ writes
 * every change into the cache: a PUT stores the new value, a DELETE a
 * tombstone with its revision. A value read from etcd is stored only when
 * nothing newer is known for its key, so a read that raced with a change
 * can never put an older value back. A RESET (compaction) empties it. The
 * least recently used entries go when it is full. One mutex guards it.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "association.h"
#include "log/log.h"

#define DEV_BUCKETS 65536

typedef struct dev_entry {
	struct dev_entry *hnext;         /* bucket chain */
	struct dev_entry *lprev, *lnext; /* LRU list, most recent first */
	char *key;
	int64_t rev;
	int deleted;
	char ca[IOTCA_ID_MAX + 1];
	char pk[ASSOC_PK_LEN + 1];
	char dn[33];
	int st;
} dev_entry;

struct dev_cache {
	pthread_mutex_t mu;
	dev_entry *buckets[DEV_BUCKETS];
	dev_entry *lru_head, *lru_tail;
	size_t n, cap;
	iotca_etcd_watch *watch;
	unsigned long hits, misses;
};

static unsigned
dev_hash(const char *s, size_t n)
{
	uint32_t h = 2166136261u;
	size_t i;

	for (i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 16777619u;
	return h % DEV_BUCKETS;
}

static void
dev_lru_unlink(dev_cache *c, dev_entry *e)
{
	if (e->lprev)
		e->lprev->lnext = e->lnext;
	else
		c->lru_head = e->lnext;
	if (e->lnext)
		e->lnext->lprev = e->lprev;
	else
		c->lru_tail = e->lprev;
	e->lprev = e->lnext = NULL;
}

static void
dev_lru_front(dev_cache *c, dev_entry *e)
{
	e->lnext = c->lru_head;
	if (c->lru_head)
		c->lru_head->lprev = e;
	c->lru_head = e;
	if (c->lru_tail == NULL)
		c->lru_tail = e;
}

static dev_entry *
dev_find(dev_cache *c, const char *key, size_t n)
{
	dev_entry *e;

	for (e = c->buckets[dev_hash(key, n)]; e != NULL; e = e->hnext)
		if (strlen(e->key) == n && memcmp(e->key, key, n) == 0)
			return e;
	return NULL;
}

static void
dev_remove(dev_cache *c, dev_entry *e)
{
	dev_entry **pp = &c->buckets[dev_hash(e->key, strlen(e->key))];

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	dev_lru_unlink(c, e);
	free(e->key);
	free(e);
	c->n--;
}

/* Fills an entry's fields from a record value; 0 if it is not one. */
static int
dev_parse(dev_entry *e, const char *val, size_t len)
{
	json_t *j = json_loadb(val, len, 0, NULL);
	int ok = j != NULL;

	if (ok) {
		snprintf(e->ca, sizeof(e->ca), "%s",
		         iotca_svc_json_str(j, "ca"));
		snprintf(e->pk, sizeof(e->pk), "%s",
		         iotca_svc_json_str(j, "pk"));
		snprintf(e->dn, sizeof(e->dn), "%s",
		         iotca_svc_json_str(j, "dn"));
		e->st = (int)iotca_svc_json_int(j, "st");
	}
	json_decref(j);
	return ok;
}

/* Stores (key, value or tombstone, rev) unless something newer is known.
 * Under the lock. */
static void
dev_store(dev_cache *c, const char *key, size_t n, const char *val, size_t vlen,
          int64_t rev, int deleted)
{
	dev_entry *e = dev_find(c, key, n);

	if (e != NULL && e->rev > rev)
		return;
	if (e == NULL) {
		if ((e = calloc(1, sizeof(*e))) == NULL ||
		    (e->key = strndup(key, n)) == NULL) {
			free(e);
			return;
		}
		e->hnext = c->buckets[dev_hash(key, n)];
		c->buckets[dev_hash(key, n)] = e;
		c->n++;
	} else {
		dev_lru_unlink(c, e);
	}
	dev_lru_front(c, e);
	e->rev = rev;
	e->deleted = deleted || !dev_parse(e, val, vlen);
	while (c->n > c->cap && c->lru_tail != NULL && c->lru_tail != e)
		dev_remove(c, c->lru_tail);
}

static void
dev_clear(dev_cache *c)
{
	while (c->lru_head != NULL)
		dev_remove(c, c->lru_head);
}

static void
dev_on_event(const iotca_etcd_event *ev, void *arg)
{
	dev_cache *c = arg;

	if (ev->type != IOTCA_ETCD_EVENT_PUT &&
	    ev->type != IOTCA_ETCD_EVENT_DELETE &&
	    ev->type != IOTCA_ETCD_EVENT_RESET)
		return; /* PROGRESS: nothing to do */
	pthread_mutex_lock(&c->mu);
	if (ev->type == IOTCA_ETCD_EVENT_RESET)
		dev_clear(c);
	else
		dev_store(c, ev->kv.key, ev->kv.key_len, ev->kv.value,
		          ev->kv.value_len, ev->kv.mod_revision,
		          ev->type == IOTCA_ETCD_EVENT_DELETE);
	pthread_mutex_unlock(&c->mu);
}

iotca_err
dev_cache_start(iotca_etcd *etcd, size_t cap, dev_cache **out, iotca_errbuf *eb)
{
	dev_cache *c = calloc(1, sizeof(*c));
	size_t pl = strlen(ASSOC_SN_PREFIX);
	char end[64];
	iotca_err rc;

	if (c == NULL)
		return iotca_errbuf_set(eb, IOTCA_ENOMEM, "out of memory");
	pthread_mutex_init(&c->mu, NULL);
	c->cap = cap;
	if ((rc = iotca_etcd_watch_start(
	         etcd, ASSOC_SN_PREFIX, pl, end,
	         iotca_etcd_prefix_end(ASSOC_SN_PREFIX, pl, end), 0,
	         dev_on_event, c, &c->watch, eb)) != IOTCA_OK) {
		pthread_mutex_destroy(&c->mu);
		free(c);
		return rc;
	}
	iotca_log_info("DEVICE-CACHE-READY", "capacity=%zu", cap);
	*out = c;
	return IOTCA_OK;
}

void
dev_cache_stop(dev_cache *c)
{
	if (c == NULL)
		return;
	iotca_etcd_watch_stop(c->watch);
	dev_clear(c);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

int
dev_cache_get(dev_cache *c, const char *key, dev_record *out)
{
	dev_entry *e;
	int hit = 0;

	pthread_mutex_lock(&c->mu);
	if ((e = dev_find(c, key, strlen(key))) != NULL && !e->deleted) {
		dev_lru_unlink(c, e);
		dev_lru_front(c, e);
		memcpy(out->ca, e->ca, sizeof(out->ca));
		memcpy(out->pk, e->pk, sizeof(out->pk));
		memcpy(out->dn, e->dn, sizeof(out->dn));
		out->st = e->st;
		hit = 1;
		c->hits++;
	} else {
		c->misses++;
	}
	pthread_mutex_unlock(&c->mu);
	return hit;
}

void
dev_cache_put(dev_cache *c, const iotca_etcd_kv *kv)
{
	pthread_mutex_lock(&c->mu);
	dev_store(c, kv->key, kv->key_len, kv->value, kv->value_len,
	          kv->mod_revision, 0);
	pthread_mutex_unlock(&c->mu);
}
