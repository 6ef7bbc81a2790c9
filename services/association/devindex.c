/*
 * devindex.c - every SN binding of every account in memory, found by
 * (account, SN) and by (account, ProductKey, DeviceName): an upload checks
 * its rows, UpdateDeviceStatus finds a device's SN and ResolveDevice
 * answers without reading etcd, and etcd holds one key per binding.
 *
 * At start the whole of /iotca/sn/ is read at one revision R, then a
 * watch from R+1 keeps the index current: a PUT of /iotca/sn/<acc>/<sn>
 * replaces its entry, a DELETE removes it (neither undoes a newer entry,
 * see dix_store), a RESET (compaction) reloads everything. The watch's PROGRESS
 * events say up to which revision every change is in; dev_index_wait() lets a
 * caller wait for a revision it read from etcd, e.g. an account's version key
 * (association.h), so what it then looks up is at least that current. The
 * replica's own upload, once committed, goes into the index at once
 * (dev_index_wt_*), so its next upload to the account need not wait for the
 * watch to bring it (see dev_index_wt_begin for why that is safe). A binding
 * committed on another replica may not be here yet: ResolveDevice reads etcd
 * when the index has no answer. One mutex guards it; a lookup copies the entry
 * out; a (re)load builds a new table without the mutex and swaps it in.
 *
 * An entry is one allocation: 48 bytes and its strings (account, SN, CA,
 * ProductKey, DeviceName) packed after them, ~140 bytes with typical ids
 * and malloc's rounding, plus 16 to 32 bytes of bucket arrays per entry.
 *
 * tests/unit/test_devindex.c drives it with events (this file included).
 */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "association.h"
#include "log/log.h"

#define DIX_MIN_BUCKETS (1u << 12)
#define DIX_LOAD_PAGE   10000
#define DIX_OWN_SLOTS   64

/* One binding: one allocation, its five strings packed after it. */
typedef struct dix_entry {
	struct dix_entry *sn_next, *dev_next; /* bucket chains */
	unsigned sn_h, dev_h;
	int64_t rev; /* the SN key's mod_revision (a tombstone's: its delete) */
	int st;
	uint8_t dead;           /* a tombstone, see dix_store */
	uint8_t sn, ca, pk, dn; /* offsets in s; the account is at 0 */
	char s[];
} dix_entry;

/* The two hash tables over the same entries, and the tombstones. */
typedef struct dix_table {
	dix_entry **by_sn, **by_dev;
	size_t nbuckets; /* a power of two, the same for both */
	size_t n;
	dix_entry **tombs;
	size_t ntombs, captombs;
} dix_table;

struct dev_index {
	iotca_etcd *etcd;
	pthread_mutex_t mu;
	pthread_cond_t moved; /* progress changed, or a reload ended */
	dix_table t;
	int64_t progress; /* every change up to this revision is in */
	int64_t applied;  /* the newest revision of a change applied */
	int64_t base;     /* the revision of the last (re)load's snapshot */
	int loaded;       /* 0 while (re)loading after a RESET */
	/* Accounts whose associations are in up to a revision past progress:
	 * this replica's own commits, applied at once (dev_index_wt_*). A
	 * slot may be overwritten: then that account waits for the watch. */
	struct {
		char acc[IOTCA_ID_MAX + 1];
		int64_t rev;
	} own[DIX_OWN_SLOTS];
	iotca_etcd_watch *watch;
	feed *changes;     /* ListDeviceChanges' feed, on the same watch */
	dev_parsed parsed; /* the event being delivered, parsed once */
};

static unsigned
dix_hash(const char *a, const char *b, const char *c)
{
	const char *parts[3] = {a, b, c};
	uint32_t h = 2166136261u;
	int i;

	for (i = 0; i < 3 && parts[i] != NULL; i++) {
		const unsigned char *p = (const unsigned char *)parts[i];
		for (; *p; p++)
			h = (h ^ *p) * 16777619u;
		h = (h ^ '/') * 16777619u;
	}
	return h;
}

static void
dix_link(dix_table *t, dix_entry *e)
{
	size_t m = t->nbuckets - 1;

	e->sn_next = t->by_sn[e->sn_h & m];
	t->by_sn[e->sn_h & m] = e;
	e->dev_next = t->by_dev[e->dev_h & m];
	t->by_dev[e->dev_h & m] = e;
}

/* Doubles the bucket arrays when the index holds more entries than
 * buckets; stays as is when memory is short (chains only get longer). */
static void
dix_grow(dix_table *t)
{
	dix_entry **sn, **dev, **old_sn = t->by_sn, **old_dev = t->by_dev;
	dix_entry *e, *next;
	size_t i, old = t->nbuckets;

	if (t->n < old)
		return;
	sn = calloc(2 * old, sizeof(*sn));
	dev = calloc(2 * old, sizeof(*dev));
	if (sn == NULL || dev == NULL) {
		free(sn);
		free(dev);
		return;
	}
	/* Every entry is on exactly one chain of each array: walk by_sn. */
	t->by_sn = sn;
	t->by_dev = dev;
	t->nbuckets = 2 * old;
	for (i = 0; i < old; i++)
		for (e = old_sn[i]; e != NULL; e = next) {
			next = e->sn_next;
			dix_link(t, e);
		}
	free(old_sn);
	free(old_dev);
}

/* The entry of (acc, sn), tombstones included; *pp its link. */
static dix_entry *
dix_find_sn(const dix_table *t, const char *acc, const char *sn,
            dix_entry ***pp)
{
	unsigned h = dix_hash(acc, sn, NULL);
	dix_entry **p = &t->by_sn[h & (t->nbuckets - 1)];

	for (; *p != NULL; p = &(*p)->sn_next)
		if ((*p)->sn_h == h && strcmp((*p)->s + (*p)->sn, sn) == 0 &&
		    strcmp((*p)->s, acc) == 0) {
			if (pp != NULL)
				*pp = p;
			return *p;
		}
	return NULL;
}

/* Unlinks e (found through its by_sn link p) and frees it. */
static void
dix_drop(dix_table *t, dix_entry **p, dix_entry *e)
{
	dix_entry **d = &t->by_dev[e->dev_h & (t->nbuckets - 1)];
	size_t i;

	*p = e->sn_next;
	for (; *d != NULL; d = &(*d)->dev_next)
		if (*d == e) {
			*d = e->dev_next;
			break;
		}
	if (e->dead)
		for (i = 0; i < t->ntombs; i++)
			if (t->tombs[i] == e) {
				t->tombs[i] = t->tombs[--t->ntombs];
				break;
			}
	free(e);
	t->n--;
}

/*
 * Stores a binding of revision rev, or with dead a tombstone: "deleted at
 * rev". Nothing happens when the SN has a newer entry already: this
 * replica's own commits go into the index before the watch brings them
 * (dev_index_wt_*), so the watch may still bring older changes of the
 * same keys, which must not undo newer ones; the tombstone of a binding
 * such a commit deleted keeps it deleted until the watch has passed that
 * revision (dix_purge). 0 when it cannot (a field too large, out of
 * memory): the SN then has no entry.
 */
static int
dix_store(dix_table *t, const char *acc, const char *sn, const char *ca,
          const char *pk, const char *dn, int st, int64_t rev, int dead)
{
	size_t al = strlen(acc), sl = strlen(sn), cl = strlen(ca),
	       pl = strlen(pk), dl = strlen(dn);
	dix_entry **p, *e = dix_find_sn(t, acc, sn, &p);

	if (e != NULL && e->rev > rev)
		return 1;
	if (e != NULL)
		dix_drop(t, p, e);
	if (al > IOTCA_ID_MAX || sl >= IOTCA_X509_SN_HEX_MAX ||
	    cl > IOTCA_ID_MAX || pl > ASSOC_PK_LEN || dl > ASSOC_DN_MAX)
		return 0;
	if (dead && t->ntombs == t->captombs) {
		size_t cap = t->captombs ? 2 * t->captombs : 64;
		dix_entry **n = realloc(t->tombs, cap * sizeof(*n));
		if (n == NULL)
			return 0;
		t->tombs = n;
		t->captombs = cap;
	}
	if ((e = malloc(sizeof(*e) + al + sl + cl + pl + dl + 5)) == NULL)
		return 0;
	e->sn = (uint8_t)(al + 1);
	e->ca = (uint8_t)(e->sn + sl + 1);
	e->pk = (uint8_t)(e->ca + cl + 1);
	e->dn = (uint8_t)(e->pk + pl + 1);
	memcpy(e->s, acc, al + 1);
	memcpy(e->s + e->sn, sn, sl + 1);
	memcpy(e->s + e->ca, ca, cl + 1);
	memcpy(e->s + e->pk, pk, pl + 1);
	memcpy(e->s + e->dn, dn, dl + 1);
	e->st = st;
	e->rev = rev;
	e->dead = (uint8_t)(dead != 0);
	e->sn_h = dix_hash(acc, sn, NULL);
	e->dev_h = dix_hash(acc, pk, dn);
	if (dead)
		t->tombs[t->ntombs++] = e;
	t->n++;
	dix_grow(t);
	dix_link(t, e);
	return 1;
}

/* Removes the SN's entry unless it is newer than rev. */
static void
dix_delete(dix_table *t, const char *acc, const char *sn, int64_t rev)
{
	dix_entry **p, *e = dix_find_sn(t, acc, sn, &p);

	if (e != NULL && e->rev <= rev)
		dix_drop(t, p, e);
}

/* Drops the tombstones of revisions the watch has passed. */
static void
dix_purge(dix_table *t, int64_t upto)
{
	size_t i = 0;
	dix_entry **p, *e;

	while (i < t->ntombs) {
		e = t->tombs[i];
		if (e->rev > upto) {
			i++;
			continue;
		}
		dix_find_sn(t, e->s, e->s + e->sn, &p); /* e itself */
		dix_drop(t, p, e); /* moves the last tombstone to i */
	}
}

/* Splits /iotca/sn/<acc>/<sn> into acc and sn; 0 if key is not that (an
 * account's version key /iotca/sn/<acc> is not). */
static int
dix_key(const char *key, size_t key_len, char acc[IOTCA_ID_MAX + 1],
        char sn[IOTCA_X509_SN_HEX_MAX])
{
	size_t pl = strlen(ASSOC_SN_PREFIX), al, sl;
	const char *name = key + pl, *slash;

	if (key_len <= pl || memcmp(key, ASSOC_SN_PREFIX, pl) != 0)
		return 0;
	if ((slash = memchr(name, '/', key_len - pl)) == NULL)
		return 0;
	al = (size_t)(slash - name);
	sl = key_len - pl - al - 1;
	if (al == 0 || al > IOTCA_ID_MAX || sl == 0 ||
	    sl >= IOTCA_X509_SN_HEX_MAX || memchr(slash + 1, '/', sl))
		return 0;
	memcpy(acc, name, al);
	acc[al] = '\0';
	memcpy(sn, slash + 1, sl);
	sn[sl] = '\0';
	return 1;
}

/* Applies a PUT of kv (or a loaded key); j is its value parsed (NULL:
 * not JSON). */
static void
dix_put(dix_table *t, const iotca_etcd_kv *kv, const json_t *j)
{
	char acc[IOTCA_ID_MAX + 1], sn[IOTCA_X509_SN_HEX_MAX];

	if (!dix_key(kv->key, kv->key_len, acc, sn))
		return;
	if (!json_is_object(j)) {
		dix_delete(t, acc, sn, kv->mod_revision);
		iotca_log_warn("DEVICE-INDEX-CORRUPT", "key=%s", kv->key);
		return;
	}
	if (!dix_store(t, acc, sn, iotca_svc_json_str(j, "ca"),
	               iotca_svc_json_str(j, "pk"), iotca_svc_json_str(j, "dn"),
	               (int)iotca_svc_json_int(j, "st"), kv->mod_revision, 0))
		iotca_log_warn(
		    "DEVICE-INDEX-SKIPPED",
		    "key=%s msg=\"record too large or out of memory\"",
		    kv->key);
}

/* Frees every entry and the bucket arrays. */
static void
dix_table_free(dix_table *t)
{
	dix_entry *e, *next;
	size_t i;

	for (i = 0; t->by_sn != NULL && i < t->nbuckets; i++)
		for (e = t->by_sn[i]; e != NULL; e = next) {
			next = e->sn_next;
			free(e);
		}
	free(t->by_sn);
	free(t->by_dev);
	free(t->tombs);
	memset(t, 0, sizeof(*t));
}

static iotca_err
dix_table_init(dix_table *t, iotca_errbuf *eb)
{
	memset(t, 0, sizeof(*t));
	t->nbuckets = DIX_MIN_BUCKETS;
	t->by_sn = calloc(t->nbuckets, sizeof(*t->by_sn));
	t->by_dev = calloc(t->nbuckets, sizeof(*t->by_dev));
	if (t->by_sn == NULL || t->by_dev == NULL) {
		dix_table_free(t);
		return iotca_errbuf_set(eb, IOTCA_ENOMEM, "out of memory");
	}
	return IOTCA_OK;
}

static int
dix_load_kv(const iotca_etcd_kv *kv, void *arg)
{
	json_t *j = json_loadb(kv->value, kv->value_len, 0, NULL);

	dix_put(arg, kv, j);
	json_decref(j);
	return 0;
}

/* Reads the whole prefix at one revision into a new table, without the
 * mutex (lookups meanwhile see the old one, or nothing while `loaded` is
 * 0), and swaps it in; *rev gets that revision. */
static iotca_err
dix_load(dev_index *ix, int64_t *rev, iotca_errbuf *eb)
{
	dix_table t, old;
	iotca_err rc;

	if ((rc = dix_table_init(&t, eb)) != IOTCA_OK)
		return rc;
	rc = iotca_etcd_range_prefix(ix->etcd, ASSOC_SN_PREFIX,
	                             strlen(ASSOC_SN_PREFIX), DIX_LOAD_PAGE,
	                             dix_load_kv, &t, rev, eb);
	if (rc != IOTCA_OK) {
		dix_table_free(&t);
		return rc;
	}
	pthread_mutex_lock(&ix->mu);
	old = ix->t;
	ix->t = t;
	ix->progress = ix->applied = ix->base = *rev;
	memset(ix->own, 0, sizeof(ix->own));
	ix->loaded = 1;
	pthread_cond_broadcast(&ix->moved);
	pthread_mutex_unlock(&ix->mu);
	dix_table_free(&old);
	malloc_trim(0); /* the pages of JSON read meanwhile */
	return IOTCA_OK;
}

static void
dix_on_event(const iotca_etcd_event *ev, void *arg)
{
	dev_index *ix = arg;
	char acc[IOTCA_ID_MAX + 1], sn[IOTCA_X509_SN_HEX_MAX];
	iotca_errbuf eb;
	int64_t rev;

	if (ev->type == IOTCA_ETCD_EVENT_PUT) {
		/* One parse of the record for the feed and the index. */
		ix->parsed.ev = ev;
		ix->parsed.j =
		    json_loadb(ev->kv.value, ev->kv.value_len, 0, NULL);
		if (ix->changes != NULL)
			feed_event(ev, ix->changes);
		pthread_mutex_lock(&ix->mu);
		if (ev->kv.mod_revision > ix->base) /* else in the snapshot */
			dix_put(&ix->t, &ev->kv, ix->parsed.j);
		if (ev->kv.mod_revision > ix->applied)
			ix->applied = ev->kv.mod_revision;
		pthread_mutex_unlock(&ix->mu);
		json_decref(ix->parsed.j);
		ix->parsed.ev = NULL;
		ix->parsed.j = NULL;
		return;
	}
	if (ix->changes != NULL)
		feed_event(ev, ix->changes);
	switch (ev->type) {
	case IOTCA_ETCD_EVENT_RESET:
		/* Changes were missed: nothing is vouched for until the
		 * reload is in. The watch goes on from the RESET's revision,
		 * so it may bring changes the reload's snapshot has already:
		 * those of revisions up to `base` are skipped. */
		pthread_mutex_lock(&ix->mu);
		ix->loaded = 0;
		pthread_mutex_unlock(&ix->mu);
		iotca_log_warn(
		    "DEVICE-INDEX-RELOAD",
		    "revision=%lld msg=\"the watch restarted after a "
		    "gap\"",
		    (long long)ev->kv.mod_revision);
		if (dix_load(ix, &rev, &eb) != IOTCA_OK)
			iotca_log_error("DEVICE-INDEX-RELOAD-FAILED",
			                "msg=\"%s\" effect=\"uploads and "
			                "UpdateDeviceStatus answer UNAVAILABLE "
			                "until the service restarts\"",
			                iotca_errbuf_msg(&eb));
		return;
	case IOTCA_ETCD_EVENT_DELETE:
		pthread_mutex_lock(&ix->mu);
		if (ev->kv.mod_revision > ix->base &&
		    dix_key(ev->kv.key, ev->kv.key_len, acc, sn))
			dix_delete(&ix->t, acc, sn, ev->kv.mod_revision);
		if (ev->kv.mod_revision > ix->applied)
			ix->applied = ev->kv.mod_revision;
		pthread_mutex_unlock(&ix->mu);
		return;
	case IOTCA_ETCD_EVENT_PROGRESS:
		pthread_mutex_lock(&ix->mu);
		if (ix->loaded && ev->kv.mod_revision > ix->progress) {
			ix->progress = ev->kv.mod_revision;
			dix_purge(&ix->t, ix->progress);
			pthread_cond_broadcast(&ix->moved);
		}
		pthread_mutex_unlock(&ix->mu);
		return;
	default:
		return;
	}
}

iotca_err
dev_index_start(iotca_etcd *etcd, const feed_opts *changes, feed **changes_out,
                dev_index **out, iotca_errbuf *eb)
{
	dev_index *ix = calloc(1, sizeof(*ix));
	size_t pl = strlen(ASSOC_SN_PREFIX);
	pthread_condattr_t ca;
	feed_opts fo = *changes;
	char end[64];
	int64_t rev = 0;
	iotca_err rc;

	if (ix == NULL)
		return iotca_errbuf_set(eb, IOTCA_ENOMEM, "out of memory");
	ix->etcd = etcd;
	pthread_mutex_init(&ix->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&ix->moved, &ca);
	pthread_condattr_destroy(&ca);
	if ((rc = dix_table_init(&ix->t, eb)) != IOTCA_OK ||
	    (rc = dix_load(ix, &rev, eb)) != IOTCA_OK ||
	    (fo.arg = &ix->parsed,
	     (rc = feed_start_shared(etcd, &fo, rev, &ix->changes, eb))) !=
	        IOTCA_OK ||
	    (rc = iotca_etcd_watch_start(
	         etcd, ASSOC_SN_PREFIX, pl, end,
	         iotca_etcd_prefix_end(ASSOC_SN_PREFIX, pl, end), rev + 1,
	         dix_on_event, ix, &ix->watch, eb)) != IOTCA_OK) {
		feed *f = ix->changes;

		dev_index_stop(ix); /* the watch first: it feeds f */
		feed_stop(f);
		return rc;
	}
	feed_attach_watch(ix->changes, ix->watch);
	iotca_log_info("DEVICE-INDEX-READY", "bindings=%zu revision=%lld",
	               ix->t.n, (long long)rev);
	*changes_out = ix->changes;
	*out = ix;
	return IOTCA_OK;
}

/* Stops the watch; the feed it fed is the caller's to stop after. */
void
dev_index_stop(dev_index *ix)
{
	if (ix == NULL)
		return;
	if (ix->watch != NULL)
		iotca_etcd_watch_stop(ix->watch);
	dix_table_free(&ix->t);
	pthread_cond_destroy(&ix->moved);
	pthread_mutex_destroy(&ix->mu);
	free(ix);
}

/* Whether every change of acc's associations up to rev is in. Under the
 * mutex. */
static int
dix_current(const dev_index *ix, const char *acc, int64_t rev)
{
	unsigned slot = dix_hash(acc, NULL, NULL) % DIX_OWN_SLOTS;

	if (!ix->loaded)
		return 0;
	return ix->progress >= rev || (ix->own[slot].rev >= rev &&
	                               strcmp(ix->own[slot].acc, acc) == 0);
}

iotca_err
dev_index_wait(dev_index *ix, const char *acc, int64_t rev, long timeout_ms)
{
	struct timespec until;
	int ok;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (timeout_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&ix->mu);
	while (!(ok = dix_current(ix, acc, rev)))
		if (pthread_cond_timedwait(&ix->moved, &ix->mu, &until) ==
		    ETIMEDOUT)
			break;
	pthread_mutex_unlock(&ix->mu);
	return ok ? IOTCA_OK : IOTCA_ETIMEDOUT;
}

/* Copies a binding out (every field fits: dix_put checked). */
static void
dix_copy(const dix_entry *e, dev_binding *out)
{
	snprintf(out->ca, sizeof(out->ca), "%s", e->s + e->ca);
	snprintf(out->sn, sizeof(out->sn), "%s", e->s + e->sn);
	snprintf(out->pk, sizeof(out->pk), "%s", e->s + e->pk);
	snprintf(out->dn, sizeof(out->dn), "%s", e->s + e->dn);
	out->st = e->st;
	out->rev = e->rev;
}

int
dev_index_wt_begin(dev_index *ix, int64_t rev)
{
	pthread_mutex_lock(&ix->mu);
	/* Once the watch applied a change of rev or later, it has this
	 * commit's changes and maybe newer ones, which must not be undone. */
	if (ix->loaded && ix->applied < rev)
		return 1;
	pthread_mutex_unlock(&ix->mu);
	return 0;
}

void
dev_index_wt_put(dev_index *ix, const char *acc, const char *sn, const char *ca,
                 const char *pk, const char *dn, int st, int64_t rev)
{
	if (!dix_store(&ix->t, acc, sn, ca, pk, dn, st, rev, 0))
		dix_store(&ix->t, acc, sn, "", "", "", 0, rev, 1);
}

void
dev_index_wt_delete(dev_index *ix, const char *acc, const char *sn, int64_t rev)
{
	dix_store(&ix->t, acc, sn, "", "", "", 0, rev, 1);
}

void
dev_index_wt_end(dev_index *ix, const char *acc, int64_t rev)
{
	unsigned slot = dix_hash(acc, NULL, NULL) % DIX_OWN_SLOTS;

	snprintf(ix->own[slot].acc, sizeof(ix->own[slot].acc), "%s", acc);
	ix->own[slot].rev = rev;
	pthread_cond_broadcast(&ix->moved);
	pthread_mutex_unlock(&ix->mu);
}

void
dev_index_lock(dev_index *ix)
{
	pthread_mutex_lock(&ix->mu);
}

void
dev_index_unlock(dev_index *ix)
{
	pthread_mutex_unlock(&ix->mu);
}

int
dev_index_by_sn(dev_index *ix, const char *acc, const char *sn,
                dev_binding *out)
{
	dix_entry *e = dix_find_sn(&ix->t, acc, sn, NULL);

	if (e == NULL || e->dead)
		return 0;
	dix_copy(e, out);
	return 1;
}

int
dev_index_by_device(dev_index *ix, const char *acc, const char *pk,
                    const char *dn, dev_binding *out)
{
	unsigned h = dix_hash(acc, pk, dn);
	dix_entry *e = ix->t.by_dev[h & (ix->t.nbuckets - 1)];

	for (; e != NULL; e = e->dev_next)
		if (e->dev_h == h && !e->dead &&
		    strcmp(e->s + e->dn, dn) == 0 &&
		    strcmp(e->s + e->pk, pk) == 0 && strcmp(e->s, acc) == 0) {
			dix_copy(e, out);
			return 1;
		}
	return 0;
}

int
dev_index_resolve(dev_index *ix, const char *acc, const char *sn,
                  dev_binding *out)
{
	int found;

	pthread_mutex_lock(&ix->mu);
	found = ix->loaded && dev_index_by_sn(ix, acc, sn, out);
	pthread_mutex_unlock(&ix->mu);
	return found;
}
