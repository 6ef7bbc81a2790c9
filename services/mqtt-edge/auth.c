/*
 * auth.c - who a device certificate belongs to, asked of the registry
 * (ResolveIssuer) and the association service (ResolveDevice), with both
 * answers cached.
 *
 * Two caches of the same shape, each under its own mutex: a hash table
 * with an LRU list, bounded in entries, every entry with an expiry
 * (negative answers expire sooner). An entry is PENDING while its lookup
 * runs; connections that need it meanwhile join its waiter list, so a
 * reconnect storm of one CA's devices costs one ResolveIssuer. When the
 * answer comes (on the gRPC client thread) it is stored and handed to
 * every waiter's loop as a message carrying the answer itself.
 *
 * Invalidation (the change poller) drops READY entries and bumps the
 * cache's generation; a lookup that was in flight across a bump is asked
 * again, so an answer older than a revocation is never handed out.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "edge_int.h"
#include "iotca/v1/association.pb-c.h"
#include "iotca/v1/registry.pb-c.h"
#include "log/log.h"

#define AUTH_MAX_CAS 16 /* candidates per issuer DN kept */

struct edge_iss {
	atomic_int refs;
	size_t n;
	struct {
		char ca_id[EDGE_ID_MAX];
		char account_id[EDGE_ID_MAX];
		X509 *cert;
		EVP_PKEY *key; /* X509_get0_pubkey(cert) */
		uint8_t fp[EDGE_FP_LEN];
	} ca[AUTH_MAX_CAS];
};

typedef struct waiter {
	edge_loop *loop;
	uint64_t conn_id;
} waiter;

typedef enum ent_state { ENT_PENDING, ENT_READY } ent_state;

typedef struct ent {
	struct ent *hnext;         /* hash chain */
	struct ent *lprev, *lnext; /* LRU, most recent first (READY only) */
	uint64_t hash;
	uint8_t *key;
	size_t klen;
	ent_state state;
	int64_t expires_ms;
	uint64_t gen; /* the cache generation the lookup started in */
	void *val;    /* READY: edge_iss * (issuers) or edge_dev * */
	waiter *w;
	size_t nw, capw;
	/* what the lookup needs to be asked again */
	char ca_id[EDGE_ID_MAX], account_id[EDGE_ID_MAX], sn[EDGE_SN_MAX];
} ent;

typedef struct cache {
	pthread_mutex_t mu;
	ent **buckets;
	size_t nbuckets; /* power of two */
	size_t count, cap;
	ent *lru_head, *lru_tail;
	uint64_t gen;
	int is_issuer;
	uint64_t hits, misses;
} cache;

struct edge_auth {
	edge *e;
	cache iss, dev;
	atomic_uint_fast64_t lookups, failures;
};

typedef struct lookup {
	edge_auth *a;
	cache *c;
	ent *en;
	int attempt;
} lookup;

static void lookup_start(edge_auth *a, cache *c, ent *en, int attempt);

/* ------------------------------------------------------------ values */

void
edge_iss_unref(edge_iss *iss)
{
	size_t i;

	if (iss == NULL || atomic_fetch_sub(&iss->refs, 1) != 1)
		return;
	for (i = 0; i < iss->n; i++)
		X509_free(iss->ca[i].cert);
	free(iss);
}

static void
val_free(cache *c, void *v)
{
	if (c->is_issuer)
		edge_iss_unref(v);
	else
		free(v);
}

/* ------------------------------------------------------------ cache */

static uint64_t
hash_bytes(const uint8_t *p, size_t n)
{
	uint64_t h = 1469598103934665603ull;

	while (n-- > 0)
		h = (h ^ *p++) * 1099511628211ull;
	return h;
}

static iotca_err
cache_init(cache *c, size_t cap, int is_issuer)
{
	size_t nb = 64;

	while (nb < cap && nb < (1u << 22))
		nb <<= 1;
	memset(c, 0, sizeof(*c));
	if ((c->buckets = calloc(nb, sizeof(*c->buckets))) == NULL)
		return IOTCA_ENOMEM;
	c->nbuckets = nb;
	c->cap = cap > 0 ? cap : 1;
	c->is_issuer = is_issuer;
	pthread_mutex_init(&c->mu, NULL);
	return IOTCA_OK;
}

static ent *
cache_find(cache *c, const uint8_t *key, size_t klen, uint64_t h)
{
	ent *en;

	for (en = c->buckets[h & (c->nbuckets - 1)]; en != NULL; en = en->hnext)
		if (en->hash == h && en->klen == klen &&
		    memcmp(en->key, key, klen) == 0)
			return en;
	return NULL;
}

static void
lru_unlink(cache *c, ent *en)
{
	if (en->lprev != NULL)
		en->lprev->lnext = en->lnext;
	else if (c->lru_head == en)
		c->lru_head = en->lnext;
	if (en->lnext != NULL)
		en->lnext->lprev = en->lprev;
	else if (c->lru_tail == en)
		c->lru_tail = en->lprev;
	en->lprev = en->lnext = NULL;
}

static void
lru_push(cache *c, ent *en)
{
	en->lnext = c->lru_head;
	en->lprev = NULL;
	if (c->lru_head != NULL)
		c->lru_head->lprev = en;
	c->lru_head = en;
	if (c->lru_tail == NULL)
		c->lru_tail = en;
}

/* Unlinks and frees a READY entry. */
static void
cache_drop(cache *c, ent *en)
{
	ent **pp = &c->buckets[en->hash & (c->nbuckets - 1)];

	while (*pp != en)
		pp = &(*pp)->hnext;
	*pp = en->hnext;
	lru_unlink(c, en);
	val_free(c, en->val);
	free(en->w);
	free(en->key);
	free(en);
	c->count--;
}

static ent *
cache_add(cache *c, const uint8_t *key, size_t klen, uint64_t h)
{
	ent *en = calloc(1, sizeof(*en));
	size_t b = h & (c->nbuckets - 1);

	if (en == NULL || (en->key = malloc(klen)) == NULL) {
		free(en);
		return NULL;
	}
	while (c->count >= c->cap && c->lru_tail != NULL)
		cache_drop(c, c->lru_tail);
	memcpy(en->key, key, klen);
	en->klen = klen;
	en->hash = h;
	en->state = ENT_PENDING;
	en->gen = c->gen;
	en->hnext = c->buckets[b];
	c->buckets[b] = en;
	c->count++;
	return en;
}

static int
ent_wait(ent *en, edge_loop *loop, uint64_t conn_id)
{
	waiter *w;

	if (en->nw == en->capw) {
		size_t n = en->capw ? 2 * en->capw : 4;

		if ((w = realloc(en->w, n * sizeof(*w))) == NULL)
			return -1;
		en->w = w;
		en->capw = n;
	}
	en->w[en->nw].loop = loop;
	en->w[en->nw].conn_id = conn_id;
	en->nw++;
	return 0;
}

/* Drops every READY entry and makes running lookups ask again. */
static void
cache_forget_all(cache *c)
{
	ent *en, *next;

	pthread_mutex_lock(&c->mu);
	c->gen++;
	for (en = c->lru_head; en != NULL; en = next) {
		next = en->lnext;
		cache_drop(c, en);
	}
	pthread_mutex_unlock(&c->mu);
}

/*
 * Looks key up. READY and fresh: copies/refs the value into *val and
 * returns EDGE_OK. Otherwise joins or starts a lookup (fill is called to
 * set the new entry's lookup fields) and returns EDGE_WAIT.
 */
static edge_verdict
cache_get(edge_auth *a, cache *c, const uint8_t *key, size_t klen,
          edge_loop *loop, uint64_t conn_id, void (*fill)(ent *, void *),
          void *fill_arg, void (*take)(void *val, void *out), void *out)
{
	uint64_t h = hash_bytes(key, klen);
	int64_t now = edge_now_ms();
	int start = 0;
	ent *en;

	pthread_mutex_lock(&c->mu);
	en = cache_find(c, key, klen, h);
	if (en != NULL && en->state == ENT_READY && en->expires_ms <= now) {
		cache_drop(c, en);
		en = NULL;
	}
	if (en != NULL && en->state == ENT_READY) {
		lru_unlink(c, en);
		lru_push(c, en);
		take(en->val, out);
		c->hits++;
		pthread_mutex_unlock(&c->mu);
		return EDGE_OK;
	}
	c->misses++;
	if (en == NULL) {
		if ((en = cache_add(c, key, klen, h)) == NULL)
			goto nomem;
		fill(en, fill_arg);
		start = 1;
	}
	if (ent_wait(en, loop, conn_id) != 0)
		goto nomem;
	pthread_mutex_unlock(&c->mu);
	if (start)
		lookup_start(a, c, en, 0);
	return EDGE_WAIT;
nomem:
	pthread_mutex_unlock(&c->mu);
	{
		edge_msg *m = edge_msg_new(c->is_issuer ? EDGE_MSG_ISSUER_DONE
		                                        : EDGE_MSG_DEVICE_DONE,
		                           conn_id);
		if (m != NULL)
			edge_loop_post(loop, m); /* ok = 0: lookup failed */
	}
	return EDGE_WAIT;
}

/* ------------------------------------------------------------ answers */

/* The value for one waiter's message. */
static void *
val_for_waiter(cache *c, void *v)
{
	edge_dev *d;

	if (v == NULL)
		return NULL;
	if (c->is_issuer) {
		atomic_fetch_add(&((edge_iss *)v)->refs, 1);
		return v;
	}
	if ((d = malloc(sizeof(*d))) != NULL)
		*d = *(edge_dev *)v;
	return d;
}

/*
 * Ends a lookup of en: stores val (NULL: failed, nothing stored) and
 * tells the waiters. If the cache was invalidated while it ran, asks
 * again instead (a few times, then the answer is handed out uncached).
 */
static void
lookup_end(edge_auth *a, cache *c, ent *en, int attempt, void *val,
           int64_t ttl_ms)
{
	waiter *w;
	size_t nw, i;
	edge_msg *m;
	int kept = 0;

	pthread_mutex_lock(&c->mu);
	if (en->gen != c->gen && attempt < 3) {
		en->gen = c->gen;
		pthread_mutex_unlock(&c->mu);
		val_free(c, val);
		lookup_start(a, c, en, attempt + 1);
		return;
	}
	w = en->w;
	nw = en->nw;
	en->w = NULL;
	en->nw = en->capw = 0;
	en->state = ENT_READY;
	en->expires_ms = edge_now_ms() + ttl_ms;
	if (val != NULL && en->gen == c->gen) {
		en->val = val;
		lru_push(c, en);
		kept = 1;
	} else {
		en->val = NULL; /* failed or stale: not kept */
		cache_drop(c, en);
	}
	for (i = 0; i < nw; i++) {
		m = edge_msg_new(c->is_issuer ? EDGE_MSG_ISSUER_DONE
		                              : EDGE_MSG_DEVICE_DONE,
		                 w[i].conn_id);
		if (m == NULL)
			continue;
		m->val = val_for_waiter(c, val);
		m->ok = m->val != NULL;
		edge_loop_post(w[i].loop, m);
	}
	pthread_mutex_unlock(&c->mu);
	if (!kept)
		val_free(c, val);
	free(w);
}

/* An edge_iss from a ResolveIssuer answer; NULL on no memory. Candidates
 * that do not parse are skipped (and logged): they cannot verify
 * anything. */
static edge_iss *
iss_from_response(const Iotca__V1__ResolveIssuerResponse *r)
{
	edge_iss *iss = calloc(1, sizeof(*iss));
	size_t i;

	if (iss == NULL)
		return NULL;
	atomic_init(&iss->refs, 1);
	for (i = 0; i < r->n_ca_certificates && iss->n < AUTH_MAX_CAS; i++) {
		const Iotca__V1__ResolvedCaCertificate *rc =
		    r->ca_certificates[i];
		BIO *bio = BIO_new_mem_buf(rc->pem, -1);
		X509 *x = bio != NULL ? PEM_read_bio_X509(bio, NULL, NULL, NULL)
		                      : NULL;
		unsigned fplen = 0;

		BIO_free(bio);
		if (x == NULL || X509_get0_pubkey(x) == NULL ||
		    X509_digest(x, EVP_sha256(), iss->ca[iss->n].fp, &fplen) !=
		        1 ||
		    fplen != EDGE_FP_LEN || strlen(rc->ca_id) >= EDGE_ID_MAX ||
		    strlen(rc->account_id) >= EDGE_ID_MAX) {
			X509_free(x);
			ERR_clear_error();
			iotca_log_warn("EDGE-CA-UNUSABLE", "ca_id=%.64s",
			               rc->ca_id);
			continue;
		}
		strcpy(iss->ca[iss->n].ca_id, rc->ca_id);
		strcpy(iss->ca[iss->n].account_id, rc->account_id);
		iss->ca[iss->n].cert = x;
		iss->ca[iss->n].key = X509_get0_pubkey(x);
		iss->n++;
	}
	return iss;
}

static void
issuer_done(iotca_err rc, ProtobufCMessage *resp, const iotca_errbuf *eb,
            void *arg)
{
	lookup *lk = arg;
	edge_iss *iss = NULL;
	const edge_opts *o = &lk->a->e->o;

	if (rc == IOTCA_OK)
		iss = iss_from_response((void *)resp);
	else {
		atomic_fetch_add(&lk->a->failures, 1);
		iotca_log_warn("EDGE-LOOKUP-FAILED",
		               "rpc=ResolveIssuer code=\"%s\" msg=\"%s\"",
		               iotca_strerror(rc), iotca_errbuf_msg(eb));
	}
	if (resp != NULL)
		protobuf_c_message_free_unpacked(resp, NULL);
	lookup_end(
	    lk->a, lk->c, lk->en, lk->attempt, iss,
	    (iss != NULL && iss->n == 0 ? o->negative_ttl_s : o->cache_ttl_s) *
	        1000);
	free(lk);
}

static void
device_done(iotca_err rc, ProtobufCMessage *resp, const iotca_errbuf *eb,
            void *arg)
{
	lookup *lk = arg;
	const Iotca__V1__ResolveDeviceResponse *r = (const void *)resp;
	const edge_opts *o = &lk->a->e->o;
	edge_dev *d = NULL;

	if (rc == IOTCA_OK || rc == IOTCA_ENOENT) {
		d = calloc(1, sizeof(*d));
	} else {
		atomic_fetch_add(&lk->a->failures, 1);
		iotca_log_warn("EDGE-LOOKUP-FAILED",
		               "rpc=ResolveDevice code=\"%s\" msg=\"%s\"",
		               iotca_strerror(rc), iotca_errbuf_msg(eb));
	}
	if (d != NULL && rc == IOTCA_OK &&
	    strlen(r->product_key) < EDGE_PK_MAX &&
	    strlen(r->device_name) < EDGE_DN_MAX) {
		d->found = 1;
		d->enabled = r->device_status ==
		             IOTCA__V1__DEVICE_STATUS__DEVICE_STATUS_ENABLED;
		strcpy(d->ca_id, lk->en->ca_id);
		strcpy(d->pk, r->product_key);
		strcpy(d->dn, r->device_name);
	}
	if (resp != NULL)
		protobuf_c_message_free_unpacked(resp, NULL);
	lookup_end(lk->a, lk->c, lk->en, lk->attempt, d,
	           (d != NULL && d->found && d->enabled ? o->cache_ttl_s
	                                                : o->negative_ttl_s) *
	               1000);
	free(lk);
}

static void
lookup_start(edge_auth *a, cache *c, ent *en, int attempt)
{
	lookup *lk = calloc(1, sizeof(*lk));
	long tmo = a->e->o.lookup_timeout_ms;
	iotca_errbuf eb;
	iotca_err rc;

	atomic_fetch_add(&a->lookups, 1);
	if (lk == NULL) {
		iotca_errbuf_set(&eb, IOTCA_ENOMEM, "out of memory");
		goto fail;
	}
	lk->a = a;
	lk->c = c;
	lk->en = en;
	lk->attempt = attempt;
	if (c->is_issuer) {
		Iotca__V1__ResolveIssuerRequest req =
		    IOTCA__V1__RESOLVE_ISSUER_REQUEST__INIT;

		req.issuer_der.data = en->key;
		req.issuer_der.len = en->klen;
		rc = iotca_rpc_client_call_async(
		    a->e->registry, &iotca__v1__registry__descriptor,
		    "ResolveIssuer", &req.base, tmo, issuer_done, lk, &eb);
	} else {
		Iotca__V1__ResolveDeviceRequest req =
		    IOTCA__V1__RESOLVE_DEVICE_REQUEST__INIT;

		req.ca_id = en->ca_id;
		req.cert_sn = en->sn;
		req.account_id = en->account_id;
		rc = iotca_rpc_client_call_async(
		    a->e->association, &iotca__v1__association__descriptor,
		    "ResolveDevice", &req.base, tmo, device_done, lk, &eb);
	}
	if (rc == IOTCA_OK)
		return;
	free(lk);
fail:
	iotca_log_warn("EDGE-LOOKUP-FAILED", "msg=\"%s\"",
	               iotca_errbuf_msg(&eb));
	atomic_fetch_add(&a->failures, 1);
	lookup_end(a, c, en, 3, NULL, 0);
}

/* ------------------------------------------------------------ issuers */

static void
iss_fill(ent *en, void *arg)
{
	(void)en;
	(void)arg;
}

static void
iss_take(void *val, void *out)
{
	edge_iss *iss = val;

	atomic_fetch_add(&iss->refs, 1);
	*(edge_iss **)out = iss;
}

edge_verdict
edge_auth_issuer(edge_auth *a, const uint8_t *der, size_t len, edge_loop *loop,
                 uint64_t conn_id, edge_iss **out)
{
	return cache_get(a, &a->iss, der, len, loop, conn_id, iss_fill, NULL,
	                 iss_take, out);
}

edge_verdict
edge_auth_issuer_peek(edge_auth *a, const uint8_t *der, size_t len,
                      edge_iss **out)
{
	cache *c = &a->iss;
	uint64_t h = hash_bytes(der, len);
	edge_verdict v = EDGE_WAIT;
	ent *en;

	pthread_mutex_lock(&c->mu);
	en = cache_find(c, der, len, h);
	if (en != NULL && en->state == ENT_READY &&
	    en->expires_ms > edge_now_ms()) {
		lru_unlink(c, en);
		lru_push(c, en);
		iss_take(en->val, out);
		c->hits++;
		v = EDGE_OK;
	}
	pthread_mutex_unlock(&c->mu);
	return v;
}

/* The certificate's serial as DeviceMessage.cert_sn wants it: uppercase
 * hex without leading zeros. -1 for a negative or over-long serial. */
static int
cert_serial(X509 *cert, char out[EDGE_SN_MAX])
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
	char *hex = bn != NULL ? BN_bn2hex(bn) : NULL;
	const char *p = hex;
	int rc = -1;

	if (p != NULL && *p != '-') {
		while (p[0] == '0' && p[1] != '\0')
			p++;
		if (strlen(p) < EDGE_SN_MAX) {
			strcpy(out, p);
			rc = 0;
		}
	}
	OPENSSL_free(hex);
	BN_free(bn);
	ERR_clear_error();
	return rc;
}

static int
within_validity(X509 *x)
{
	return X509_cmp_current_time(X509_get0_notBefore(x)) < 0 &&
	       X509_cmp_current_time(X509_get0_notAfter(x)) > 0;
}

/*
 * The CA of iss that signed cert: the first whose key verifies the
 * signature. When iss still holds the CA certificate named known_fp,
 * which verified this very certificate before, the answer is the first
 * CA with that CA's key, found without verifying again (the outcome of a
 * verification depends on nothing but the certificate and the key).
 * -1: none.
 */
static int
signer(const edge_iss *iss, X509 *cert, const uint8_t *known_fp)
{
	size_t i, j;

	for (i = 0; known_fp != NULL && i < iss->n; i++) {
		if (memcmp(iss->ca[i].fp, known_fp, EDGE_FP_LEN) != 0)
			continue;
		for (j = 0; j < i; j++)
			if (EVP_PKEY_eq(iss->ca[j].key, iss->ca[i].key) == 1)
				break;
		ERR_clear_error();
		return (int)j;
	}
	for (i = 0; i < iss->n; i++)
		if (X509_verify(cert, iss->ca[i].key) == 1)
			return (int)i;
	ERR_clear_error();
	return -1;
}

edge_verdict
edge_auth_check(const edge_iss *iss, X509 *cert, const uint8_t *known_fp,
                edge_ident *id, edge_reason *reason, uint8_t *fp)
{
	EVP_PKEY *k = X509_get0_pubkey(cert);
	int i;

	*reason = EDGE_R_UNKNOWN_ISSUER;
	if (iss->n == 0)
		return EDGE_REFUSED;
	*reason = EDGE_R_BAD_SIGNATURE;
	if ((i = signer(iss, cert, known_fp)) >= 0) {
		ERR_clear_error();
		/* signed by a registered CA: from here on a refusal can say
		 * whose certificate it was */
		strcpy(id->ca_id, iss->ca[i].ca_id);
		strcpy(id->account_id, iss->ca[i].account_id);
		if (cert_serial(cert, id->sn) != 0) {
			*reason = EDGE_R_BAD_CERT;
			return EDGE_REFUSED;
		}
		if (!within_validity(cert) ||
		    !within_validity(iss->ca[i].cert)) {
			*reason = EDGE_R_CERT_EXPIRED;
			return EDGE_REFUSED;
		}
		if (k == NULL || EVP_PKEY_get_base_id(k) != EVP_PKEY_RSA) {
			*reason = EDGE_R_KEY_NOT_RSA;
			return EDGE_REFUSED;
		}
		if (fp != NULL)
			memcpy(fp, iss->ca[i].fp, EDGE_FP_LEN);
		*reason = EDGE_R_NONE;
		return EDGE_OK;
	}
	ERR_clear_error();
	return EDGE_REFUSED;
}

/* ------------------------------------------------------------ devices */

/* The device cache key: "<account>/<sn>" (an SN is unique per account). */
static size_t
dev_key(const char *account, const char *sn, char *out, size_t n)
{
	int k = snprintf(out, n, "%s/%s", account, sn);

	return k < 0 || (size_t)k >= n ? 0 : (size_t)k;
}

static void
dev_fill(ent *en, void *arg)
{
	const edge_ident *id = arg;

	strcpy(en->account_id, id->account_id);
	strcpy(en->ca_id, id->ca_id);
	strcpy(en->sn, id->sn);
}

static void
dev_take(void *val, void *out)
{
	*(edge_dev *)out = *(const edge_dev *)val;
}

edge_verdict
edge_auth_device(edge_auth *a, const edge_ident *id, edge_loop *loop,
                 uint64_t conn_id, edge_dev *out)
{
	char key[EDGE_ID_MAX + EDGE_SN_MAX + 1];
	size_t n = dev_key(id->account_id, id->sn, key, sizeof(key));
	edge_verdict v;

	v = cache_get(a, &a->dev, (const uint8_t *)key, n, loop, conn_id,
	              dev_fill, (void *)id, dev_take, out);
	/* the entry is per (account, SN); another CA's answer is no answer
	 * for this one: an association of another CA is NOT_FOUND */
	if (v == EDGE_OK && out->found && strcmp(out->ca_id, id->ca_id) != 0)
		out->found = 0;
	return v;
}

void
edge_auth_forget_issuers(edge_auth *a)
{
	cache_forget_all(&a->iss);
}

void
edge_auth_forget_devices(edge_auth *a)
{
	cache_forget_all(&a->dev);
}

void
edge_auth_forget_device(edge_auth *a, const char *account, const char *sn)
{
	char key[EDGE_ID_MAX + EDGE_SN_MAX + 1];
	size_t n = dev_key(account, sn, key, sizeof(key));
	cache *c = &a->dev;
	ent *en;

	pthread_mutex_lock(&c->mu);
	c->gen++; /* a lookup in flight may predate the change */
	en = cache_find(c, (const uint8_t *)key, n,
	                hash_bytes((const uint8_t *)key, n));
	if (en != NULL && en->state == ENT_READY)
		cache_drop(c, en);
	pthread_mutex_unlock(&c->mu);
}

void
edge_auth_put_device(edge_auth *a, const char *account, const char *sn,
                     const edge_dev *d)
{
	char key[EDGE_ID_MAX + EDGE_SN_MAX + 1];
	size_t n = dev_key(account, sn, key, sizeof(key));
	uint64_t h = hash_bytes((const uint8_t *)key, n);
	cache *c = &a->dev;
	edge_dev *v = malloc(sizeof(*v));
	ent *en;

	pthread_mutex_lock(&c->mu);
	c->gen++; /* a lookup in flight may predate the change */
	en = cache_find(c, (const uint8_t *)key, n, h);
	if (en != NULL && en->state == ENT_READY)
		cache_drop(c, en);
	else if (en != NULL)
		goto out; /* pending: it is asked again */
	if (v == NULL ||
	    (en = cache_add(c, (const uint8_t *)key, n, h)) == NULL)
		goto out;
	*v = *d;
	en->state = ENT_READY;
	en->val = v;
	v = NULL;
	en->expires_ms = edge_now_ms() + 1000 * (d->found && d->enabled
	                                             ? a->e->o.cache_ttl_s
	                                             : a->e->o.negative_ttl_s);
	lru_push(c, en);
out:
	pthread_mutex_unlock(&c->mu);
	free(v);
}

/* ------------------------------------------------------------ lifecycle */

iotca_err
edge_auth_create(edge *e, edge_auth **out, iotca_errbuf *eb)
{
	edge_auth *a = calloc(1, sizeof(*a));
	size_t cap = (size_t)e->o.cache_entries;

	if (a == NULL || cache_init(&a->iss, cap / 16 + 64, 1) != IOTCA_OK ||
	    cache_init(&a->dev, cap, 0) != IOTCA_OK) {
		if (a != NULL)
			free(a->iss.buckets);
		free(a);
		return iotca_errbuf_set(eb, IOTCA_ENOMEM,
		                        "out of memory for the caches; lower "
		                        "IOTCA_EDGE_CACHE_ENTRIES");
	}
	a->e = e;
	*out = a;
	return IOTCA_OK;
}

static void
cache_fini(cache *c)
{
	size_t i;
	ent *en, *next;

	for (i = 0; i < c->nbuckets; i++)
		for (en = c->buckets[i]; en != NULL; en = next) {
			next = en->hnext;
			val_free(c, en->val);
			free(en->w);
			free(en->key);
			free(en);
		}
	free(c->buckets);
	pthread_mutex_destroy(&c->mu);
}

/* Called after the gRPC clients are destroyed: no lookup is running. */
void
edge_auth_destroy(edge_auth *a)
{
	if (a == NULL)
		return;
	cache_fini(&a->iss);
	cache_fini(&a->dev);
	free(a);
}

void
edge_auth_stats_get(edge_auth *a, edge_auth_stats *out)
{
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&a->iss.mu);
	out->issuer_hits = a->iss.hits;
	out->issuer_misses = a->iss.misses;
	out->issuer_entries = a->iss.count;
	pthread_mutex_unlock(&a->iss.mu);
	pthread_mutex_lock(&a->dev.mu);
	out->device_hits = a->dev.hits;
	out->device_misses = a->dev.misses;
	out->device_entries = a->dev.count;
	pthread_mutex_unlock(&a->dev.mu);
	out->lookups = atomic_load(&a->lookups);
	out->lookup_failures = atomic_load(&a->failures);
}
