/*
 * test_etcd.c - the etcd client against a real etcd 3.4 (etcd_proc).
 *
 * One etcd serves the whole binary; each test works under its own key
 * prefix. The tests that stop etcd (outage, watch across a restart) run
 * last and start it again; every test first makes sure it runs. main()
 * destroys the etcd (and its data) whatever the checks said.
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "etcd/etcd.h"
#include "etcd_proc.h"
#include "log/log.h"
#include "test.h"

/* Sanitizer allocators keep freed memory (quarantine), so a peak RSS
 * says nothing under them. */
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define TEST_SANITIZER 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TEST_SANITIZER 1
#endif

static etcd_proc *g_etcd;
static iotca_etcd *g_cli;

/* ---- helpers ---- */

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static iotca_etcd *
client_new(const char *endpoints, long timeout_ms, size_t max_reply)
{
	iotca_etcd_opts o = {.endpoints = endpoints,
	                     .timeout_ms = timeout_ms,
	                     .max_reply = max_reply};
	iotca_etcd *e = NULL;
	iotca_errbuf eb;

	if (iotca_etcd_create(&o, &e, &eb) != IOTCA_OK)
		fprintf(stderr, "iotca_etcd_create: %s\n", eb.msg);
	return e;
}

/* Every test starts with a running etcd, whatever the one before did. */
static int
etcd_up(void)
{
	if (etcd_proc_running(g_etcd))
		return 1;
	return etcd_proc_restart(g_etcd) == 0;
}

static iotca_err
put_str(iotca_etcd *e, const char *k, const char *v, int64_t *rev)
{
	iotca_errbuf eb;
	iotca_err rc =
	    iotca_etcd_put(e, k, strlen(k), v, strlen(v), 0, rev, &eb);

	if (rc != IOTCA_OK)
		fprintf(stderr, "put %s: %s\n", k, eb.msg);
	return rc;
}

static void
delete_prefix(const char *prefix)
{
	char end[64];
	size_t n = iotca_etcd_prefix_end(prefix, strlen(prefix), end);

	iotca_etcd_delete(g_cli, prefix, strlen(prefix), end, n, NULL, NULL);
}

/* POSTs a raw JSON body (for calls the client does not offer). */
static long
raw_post(const char *path, const char *body)
{
	char url[128];
	long status = 0;
	CURL *h = curl_easy_init();
	FILE *devnull = fopen("/dev/null", "w");

	snprintf(url, sizeof(url), "%s%s", etcd_proc_endpoint(g_etcd), path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, devnull);
	curl_easy_setopt(h, CURLOPT_PROXY, "");
	if (curl_easy_perform(h) == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(h);
	fclose(devnull);
	return status;
}

/* ---- key-value basics ---- */

static void
test_put_get_delete_binary(void)
{
	static const char key[] = "bin/\0\xff\x01k";
	static const char val[] = "\0\xff\0v\xff";
	iotca_etcd_kv kv;
	iotca_errbuf eb;
	int64_t rev = 0, deleted = -1;
	int found = -1;

	REQUIRE(etcd_up());
	REQUIRE(iotca_etcd_put(g_cli, key, sizeof(key) - 1, val,
	                       sizeof(val) - 1, 0, &rev, &eb) == IOTCA_OK);
	CHECK(rev > 0);
	REQUIRE(iotca_etcd_get(g_cli, key, sizeof(key) - 1, &kv, &found, &eb) ==
	        IOTCA_OK);
	REQUIRE(found == 1);
	CHECK_EQ_INT(kv.key_len, sizeof(key) - 1);
	CHECK(memcmp(kv.key, key, sizeof(key) - 1) == 0);
	CHECK(kv.key[kv.key_len] == '\0');
	CHECK_EQ_INT(kv.value_len, sizeof(val) - 1);
	CHECK(memcmp(kv.value, val, sizeof(val) - 1) == 0);
	CHECK_EQ_INT(kv.create_revision, rev);
	CHECK_EQ_INT(kv.mod_revision, rev);
	CHECK_EQ_INT(kv.version, 1);
	iotca_etcd_kv_free(&kv);

	/* an empty value round-trips as "" */
	REQUIRE(iotca_etcd_put(g_cli, key, sizeof(key) - 1, "", 0, 0, NULL,
	                       &eb) == IOTCA_OK);
	REQUIRE(iotca_etcd_get(g_cli, key, sizeof(key) - 1, &kv, &found, &eb) ==
	        IOTCA_OK);
	CHECK(found == 1 && kv.value_len == 0 && kv.value[0] == '\0');
	CHECK_EQ_INT(kv.version, 2);
	iotca_etcd_kv_free(&kv);

	REQUIRE(iotca_etcd_delete(g_cli, key, sizeof(key) - 1, NULL, 0,
	                          &deleted, &eb) == IOTCA_OK);
	CHECK_EQ_INT(deleted, 1);
	REQUIRE(iotca_etcd_get(g_cli, key, sizeof(key) - 1, &kv, &found, &eb) ==
	        IOTCA_OK);
	CHECK_EQ_INT(found, 0);
	REQUIRE(iotca_etcd_delete(g_cli, key, sizeof(key) - 1, NULL, 0,
	                          &deleted, &eb) == IOTCA_OK);
	CHECK_EQ_INT(deleted, 0);
	CHECK_EQ_INT(iotca_etcd_put(g_cli, "", 0, "v", 1, 0, NULL, &eb),
	             IOTCA_EINVAL);
}

static void
test_range_limit_more_count(void)
{
	static const char *const keys[] = {"rl/a", "rl/b", "rl/c", "rl/d",
	                                   "rl/e"};
	iotca_etcd_range_req req = {.key = "rl/", .key_len = 3};
	iotca_etcd_range_result r;
	iotca_errbuf eb;
	char end[8];
	int64_t rev1 = 0;
	size_t i;

	REQUIRE(etcd_up());
	for (i = 0; i < 5; i++)
		REQUIRE(put_str(g_cli, keys[i], keys[i], i ? NULL : &rev1) ==
		        IOTCA_OK);
	REQUIRE(put_str(g_cli, "rl0", "outside", NULL) == IOTCA_OK);
	req.range_end = end;
	req.range_end_len = iotca_etcd_prefix_end("rl/", 3, end);
	req.limit = 2;
	REQUIRE(iotca_etcd_range(g_cli, &req, &r, &eb) == IOTCA_OK);
	CHECK_EQ_INT(r.n, 2);
	CHECK_EQ_INT(r.more, 1);
	CHECK_EQ_INT(r.count, 5);
	CHECK(r.revision > rev1);
	if (r.n == 2) {
		CHECK_EQ_STR(r.kvs[0].key, "rl/a");
		CHECK_EQ_STR(r.kvs[1].key, "rl/b");
	}
	iotca_etcd_range_result_free(&r);

	req.limit = 0;
	req.count_only = 1;
	REQUIRE(iotca_etcd_range(g_cli, &req, &r, &eb) == IOTCA_OK);
	CHECK_EQ_INT(r.n, 0);
	CHECK_EQ_INT(r.count, 5);
	iotca_etcd_range_result_free(&r);

	req.count_only = 0;
	req.keys_only = 1;
	REQUIRE(iotca_etcd_range(g_cli, &req, &r, &eb) == IOTCA_OK);
	CHECK_EQ_INT(r.n, 5);
	CHECK_EQ_INT(r.more, 0);
	for (i = 0; i < r.n; i++) {
		CHECK_EQ_STR(r.kvs[i].key, keys[i]);
		CHECK_EQ_INT(r.kvs[i].value_len, 0);
	}
	iotca_etcd_range_result_free(&r);

	/* an old revision still shows the old value */
	REQUIRE(put_str(g_cli, "rl/a", "new", NULL) == IOTCA_OK);
	req.keys_only = 0;
	req.range_end = NULL;
	req.range_end_len = 0;
	req.key = "rl/a";
	req.key_len = 4;
	req.revision = rev1;
	REQUIRE(iotca_etcd_range(g_cli, &req, &r, &eb) == IOTCA_OK);
	REQUIRE(r.n == 1);
	CHECK_EQ_STR(r.kvs[0].value, "rl/a");
	iotca_etcd_range_result_free(&r);
	delete_prefix("rl");
}

/* ---- range_prefix ---- */

#define WALK_KEYS 1000

typedef struct walk_state {
	int next;    /* the index expected next */
	int errors;  /* keys out of order or unexpected */
	int stop_at; /* return 1 at this count (0: never) */
	int added;   /* a key was added during the walk */
} walk_state;

static int
walk_fn(const iotca_etcd_kv *kv, void *arg)
{
	walk_state *w = arg;
	char want[32];

	snprintf(want, sizeof(want), "rp/%04d", w->next);
	if (kv->key_len != strlen(want) || memcmp(kv->key, want, 7) != 0 ||
	    strcmp(kv->value, want + 3) != 0)
		w->errors++;
	w->next++;
	if (w->next == 150 && !w->added) {
		/* after the first page: must not show up in this walk */
		w->added = 1;
		put_str(g_cli, "rp/0500x", "late", NULL);
	}
	return w->stop_at > 0 && w->next == w->stop_at;
}

static int
count_fn(const iotca_etcd_kv *kv, void *arg)
{
	(void)kv;
	(*(int *)arg)++;
	return 0;
}

static void
test_range_prefix_1000_keys(void)
{
	walk_state w = {0};
	iotca_etcd_txn *t;
	iotca_etcd_kv kv;
	iotca_errbuf eb;
	int64_t snap = 0;
	char k[32];
	int i, j, found = 0;

	REQUIRE(etcd_up());
	for (i = 0; i < WALK_KEYS / 100; i++) {
		REQUIRE(iotca_etcd_txn_create(&t) == IOTCA_OK);
		for (j = 0; j < 100; j++) {
			snprintf(k, sizeof(k), "rp/%04d", i * 100 + j);
			iotca_etcd_txn_put(t, IOTCA_ETCD_SUCCESS, k, 7, k + 3,
			                   4, 0);
		}
		CHECK_EQ_INT(iotca_etcd_txn_commit(g_cli, t, NULL, &eb),
		             IOTCA_OK);
		iotca_etcd_txn_destroy(t);
	}
	REQUIRE(put_str(g_cli, "rp0", "outside", NULL) == IOTCA_OK);
	REQUIRE(put_str(g_cli, "ro/x", "outside", NULL) == IOTCA_OK);

	CHECK_EQ_INT(iotca_etcd_range_prefix(g_cli, "rp/", 3, 100, walk_fn, &w,
	                                     &snap, &eb),
	             IOTCA_OK);
	CHECK_EQ_INT(w.next, WALK_KEYS); /* every key once, the late one not */
	CHECK_EQ_INT(w.errors, 0);
	CHECK_EQ_INT(w.added, 1);
	/* the snapshot's revision: before the late key, after the others */
	REQUIRE(iotca_etcd_get(g_cli, "rp/0500x", 8, &kv, &found, &eb) ==
	        IOTCA_OK);
	CHECK(found && kv.mod_revision == snap + 1);
	if (found)
		iotca_etcd_kv_free(&kv);

	memset(&w, 0, sizeof(w));
	w.added = 1;
	w.stop_at = 250;
	CHECK_EQ_INT(iotca_etcd_range_prefix(g_cli, "rp/", 3, 100, walk_fn, &w,
	                                     NULL, &eb),
	             IOTCA_OK);
	CHECK_EQ_INT(w.next, 250);
	CHECK_EQ_INT(
	    iotca_etcd_range_prefix(g_cli, "rp/", 3, 0, walk_fn, &w, NULL, &eb),
	    IOTCA_EINVAL);
	/* the empty prefix walks every key */
	w.next = 0;
	CHECK_EQ_INT(iotca_etcd_range_prefix(g_cli, "", 0, 7, count_fn, &w.next,
	                                     NULL, &eb),
	             IOTCA_OK);
	CHECK(w.next >= WALK_KEYS + 2);
	delete_prefix("rp");
	delete_prefix("ro/");
}

/* ---- transactions ---- */

static void
test_txn_create_if_absent(void)
{
	static const char key[] = "tx/lock";
	iotca_etcd_txn_result r;
	iotca_etcd_txn *t;
	iotca_errbuf eb;
	int64_t first_rev = 0;
	const char *owner[2] = {"owner1", "owner2"};
	int i;

	REQUIRE(etcd_up());
	delete_prefix("tx/");
	for (i = 0; i < 2; i++) {
		REQUIRE(iotca_etcd_txn_create(&t) == IOTCA_OK);
		iotca_etcd_txn_cmp_num(t, key, 7, IOTCA_ETCD_CMP_CREATE,
		                       IOTCA_ETCD_EQUAL, 0);
		iotca_etcd_txn_put(t, IOTCA_ETCD_SUCCESS, key, 7, owner[i], 6,
		                   0);
		iotca_etcd_txn_range(t, IOTCA_ETCD_FAILURE, key, 7, NULL, 0);
		CHECK_EQ_INT(iotca_etcd_txn_ops(t), 1);
		CHECK(iotca_etcd_txn_bytes(t) > 0);
		REQUIRE(iotca_etcd_txn_commit(g_cli, t, &r, &eb) == IOTCA_OK);
		iotca_etcd_txn_destroy(t);
		REQUIRE(r.n == 1);
		if (i == 0) {
			CHECK_EQ_INT(r.succeeded, 1);
			CHECK_EQ_INT(r.results[0].type, IOTCA_ETCD_OP_PUT);
			first_rev = r.revision;
		} else {
			CHECK_EQ_INT(r.succeeded, 0);
			CHECK_EQ_INT(r.results[0].type, IOTCA_ETCD_OP_RANGE);
			REQUIRE(r.results[0].range.n == 1);
			CHECK_EQ_STR(r.results[0].range.kvs[0].value, "owner1");
			CHECK_EQ_INT(r.results[0].range.kvs[0].create_revision,
			             first_rev);
		}
		iotca_etcd_txn_result_free(&r);
	}
}

static void
test_txn_value_compare(void)
{
	iotca_etcd_txn_result r;
	iotca_etcd_txn *t;
	iotca_errbuf eb;
	iotca_etcd_kv kv;
	int found, i;

	REQUIRE(etcd_up());
	REQUIRE(put_str(g_cli, "tx/v", "A", NULL) == IOTCA_OK);
	REQUIRE(iotca_etcd_txn_create(&t) == IOTCA_OK);
	iotca_etcd_txn_cmp_value(t, "tx/v", 4, IOTCA_ETCD_EQUAL, "A", 1);
	iotca_etcd_txn_cmp_num(t, "tx/v", 4, IOTCA_ETCD_CMP_VERSION,
	                       IOTCA_ETCD_GREATER, 0);
	iotca_etcd_txn_put(t, IOTCA_ETCD_SUCCESS, "tx/v", 4, "B", 1, 0);
	iotca_etcd_txn_range(t, IOTCA_ETCD_SUCCESS, "tx/other", 8, NULL, 0);
	iotca_etcd_txn_delete(t, IOTCA_ETCD_FAILURE, "tx/v", 4, NULL, 0);
	for (i = 0; i < 2; i++) {
		REQUIRE(iotca_etcd_txn_commit(g_cli, t, &r, &eb) == IOTCA_OK);
		if (i == 0) { /* value was A: success branch */
			CHECK_EQ_INT(r.succeeded, 1);
			REQUIRE(r.n == 2);
			CHECK_EQ_INT(r.results[0].type, IOTCA_ETCD_OP_PUT);
			CHECK_EQ_INT(r.results[1].type, IOTCA_ETCD_OP_RANGE);
			CHECK_EQ_INT(r.results[1].range.n, 0);
		} else { /* now B: failure branch deletes */
			CHECK_EQ_INT(r.succeeded, 0);
			REQUIRE(r.n == 1);
			CHECK_EQ_INT(r.results[0].type, IOTCA_ETCD_OP_DELETE);
			CHECK_EQ_INT(r.results[0].deleted, 1);
		}
		iotca_etcd_txn_result_free(&r);
	}
	iotca_etcd_txn_destroy(t);
	REQUIRE(iotca_etcd_get(g_cli, "tx/v", 4, &kv, &found, &eb) == IOTCA_OK);
	CHECK_EQ_INT(found, 0);
}

static void
test_txn_too_many_ops(void)
{
	iotca_etcd_txn *t;
	iotca_errbuf eb;
	char k[32];
	int i;

	REQUIRE(etcd_up());
	REQUIRE(iotca_etcd_txn_create(&t) == IOTCA_OK);
	for (i = 0; i < 129; i++) {
		snprintf(k, sizeof(k), "tm/%03d", i);
		iotca_etcd_txn_put(t, IOTCA_ETCD_SUCCESS, k, strlen(k), "v", 1,
		                   0);
	}
	CHECK_EQ_INT(iotca_etcd_txn_ops(t), 129);
	CHECK_EQ_INT(iotca_etcd_txn_commit(g_cli, t, NULL, &eb), IOTCA_ETOOBIG);
	CHECK_CONTAINS(eb.msg, "--max-txn-ops");
	CHECK_CONTAINS(eb.msg, etcd_proc_endpoint(g_etcd));
	iotca_etcd_txn_destroy(t);

	/* 128 is etcd's default limit, and fine */
	REQUIRE(iotca_etcd_txn_create(&t) == IOTCA_OK);
	for (i = 0; i < 128; i++) {
		snprintf(k, sizeof(k), "tm/%03d", i);
		iotca_etcd_txn_put(t, IOTCA_ETCD_SUCCESS, k, strlen(k), "v", 1,
		                   0);
	}
	CHECK_EQ_INT(iotca_etcd_txn_commit(g_cli, t, NULL, &eb), IOTCA_OK);
	iotca_etcd_txn_destroy(t);
	delete_prefix("tm/");
}

/* ---- leases ---- */

static void
test_lease_grant_keepalive_revoke(void)
{
	iotca_etcd_kv kv;
	iotca_errbuf eb;
	int64_t id = 0, ttl = 0;
	int found = 0;

	REQUIRE(etcd_up());
	REQUIRE(iotca_etcd_lease_grant(g_cli, 5, &id, &eb) == IOTCA_OK);
	CHECK(id != 0);
	REQUIRE(iotca_etcd_put(g_cli, "ls/k", 4, "v", 1, id, NULL, &eb) ==
	        IOTCA_OK);
	REQUIRE(iotca_etcd_get(g_cli, "ls/k", 4, &kv, &found, &eb) == IOTCA_OK);
	CHECK(found == 1 && kv.lease == id);
	if (found)
		iotca_etcd_kv_free(&kv);
	CHECK_EQ_INT(iotca_etcd_lease_keepalive(g_cli, id, &ttl, &eb),
	             IOTCA_OK);
	CHECK(ttl > 0 && ttl <= 5);
	CHECK_EQ_INT(iotca_etcd_lease_revoke(g_cli, id, &eb), IOTCA_OK);
	REQUIRE(iotca_etcd_get(g_cli, "ls/k", 4, &kv, &found, &eb) == IOTCA_OK);
	CHECK_EQ_INT(found, 0); /* the key went with its lease */
	CHECK_EQ_INT(iotca_etcd_lease_keepalive(g_cli, id, &ttl, &eb),
	             IOTCA_ENOENT);
	CHECK_EQ_INT(iotca_etcd_lease_revoke(g_cli, id, &eb), IOTCA_ENOENT);
	CHECK_EQ_INT(iotca_etcd_put(g_cli, "ls/k", 4, "v", 1, id, NULL, &eb),
	             IOTCA_ENOENT);
	CHECK_EQ_INT(iotca_etcd_lease_grant(g_cli, 0, &id, &eb), IOTCA_EINVAL);
}

/* ---- watches ---- */

#define REC_MAX 128

typedef struct rec_event {
	iotca_etcd_event_type type;
	char key[32];
	char value[32];
	char prev[32];
	int has_prev;
	int64_t mod_revision;
} rec_event;

/* Records the callbacks of a watch: the first REC_MAX events (PROGRESS
 * too when keep_progress) in ev, and checks what PROGRESS promises on
 * every callback (rec_destroy reports). */
typedef struct recorder {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	rec_event ev[REC_MAX];
	int n;             /* callbacks counted (kept in ev up to REC_MAX) */
	int keep_progress; /* count and keep PROGRESS like the others */
	int64_t progress;  /* the last PROGRESS (or RESET) revision */
	int n_progress;
	int early;   /* events at or before a PROGRESS already delivered */
	int regress; /* PROGRESS below the one before */
	atomic_int after_stop; /* callbacks seen after watch_stop returned */
	atomic_int stopped;
} recorder;

static void
rec_init(recorder *r)
{
	memset(r, 0, sizeof(*r));
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->cond, NULL);
}

static void
rec_destroy(recorder *r)
{
	CHECK_EQ_INT(r->early, 0);
	CHECK_EQ_INT(r->regress, 0);
	pthread_cond_destroy(&r->cond);
	pthread_mutex_destroy(&r->lock);
}

static void
rec_copy(char *dst, const char *src, size_t n)
{
	if (n > 31)
		n = 31;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* What PROGRESS promises: no later event at or before it, and (between
 * RESETs) it never goes down. Under the lock. */
static void
rec_check_progress(recorder *r, const iotca_etcd_event *ev)
{
	int64_t rev = ev->kv.mod_revision;

	switch (ev->type) {
	case IOTCA_ETCD_EVENT_PROGRESS:
		r->regress += rev < r->progress;
		r->progress = rev;
		r->n_progress++;
		break;
	case IOTCA_ETCD_EVENT_RESET:
		r->progress = rev;
		break;
	default:
		r->early += rev <= r->progress;
		break;
	}
}

static void
rec_fn(const iotca_etcd_event *ev, void *arg)
{
	recorder *r = arg;
	rec_event *e;

	if (atomic_load(&r->stopped))
		atomic_fetch_add(&r->after_stop, 1);
	pthread_mutex_lock(&r->lock);
	rec_check_progress(r, ev);
	if (ev->type == IOTCA_ETCD_EVENT_PROGRESS && !r->keep_progress) {
		/* counted apart */
	} else if (r->n++ < REC_MAX) {
		e = &r->ev[r->n - 1];
		e->type = ev->type;
		e->mod_revision = ev->kv.mod_revision;
		e->has_prev = ev->has_prev;
		rec_copy(e->key, ev->kv.key, ev->kv.key_len);
		rec_copy(e->value, ev->kv.value, ev->kv.value_len);
		if (ev->has_prev)
			rec_copy(e->prev, ev->prev_kv.value,
			         ev->prev_kv.value_len);
	}
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

/* Waits until n events arrived (or ms passed); returns how many did. */
static int
rec_wait(recorder *r, int n, long ms)
{
	int64_t until = now_ms() + ms;
	int got;

	for (;;) {
		pthread_mutex_lock(&r->lock);
		got = r->n;
		pthread_mutex_unlock(&r->lock);
		if (got >= n || now_ms() >= until)
			return got;
		sleep_ms(10);
	}
}

/* Waits until a PROGRESS at or after rev arrived (or ms passed); returns
 * the last one. */
static int64_t
rec_wait_progress(recorder *r, int64_t rev, long ms)
{
	int64_t until = now_ms() + ms, got;

	for (;;) {
		pthread_mutex_lock(&r->lock);
		got = r->progress;
		pthread_mutex_unlock(&r->lock);
		if (got >= rev || now_ms() >= until)
			return got;
		sleep_ms(10);
	}
}

static void
test_watch_put_delete_prev_kv(void)
{
	iotca_etcd_watch *w = NULL;
	iotca_etcd_txn *t;
	iotca_errbuf eb;
	recorder r;
	int64_t t0;

	REQUIRE(etcd_up());
	rec_init(&r);
	REQUIRE(iotca_etcd_watch_start(g_cli, "wt/", 3, "wt0", 3, 0, rec_fn, &r,
	                               &w, &eb) == IOTCA_OK);
	put_str(g_cli, "wt/a", "1", NULL);
	put_str(g_cli, "wt/a", "2", NULL);
	put_str(g_cli, "wu", "outside", NULL);
	iotca_etcd_delete(g_cli, "wt/a", 4, NULL, 0, NULL, &eb);
	REQUIRE(iotca_etcd_txn_create(&t) == IOTCA_OK);
	iotca_etcd_txn_put(t, IOTCA_ETCD_SUCCESS, "wt/b", 4, "3", 1, 0);
	iotca_etcd_txn_put(t, IOTCA_ETCD_SUCCESS, "wt/c", 4, "4", 1, 0);
	CHECK_EQ_INT(iotca_etcd_txn_commit(g_cli, t, NULL, &eb), IOTCA_OK);
	iotca_etcd_txn_destroy(t);
	CHECK_EQ_INT(rec_wait(&r, 5, 5000), 5);

	t0 = now_ms();
	iotca_etcd_watch_stop(w);
	CHECK(now_ms() - t0 < 500); /* stop interrupts the stream at once */
	atomic_store(&r.stopped, 1);
	put_str(g_cli, "wt/d", "5", NULL);
	sleep_ms(200);
	CHECK_EQ_INT(r.n, 5);
	CHECK_EQ_INT(atomic_load(&r.after_stop), 0);

	CHECK(r.ev[0].type == IOTCA_ETCD_EVENT_PUT && r.ev[0].has_prev == 0);
	CHECK_EQ_STR(r.ev[0].key, "wt/a");
	CHECK_EQ_STR(r.ev[0].value, "1");
	CHECK(r.ev[1].type == IOTCA_ETCD_EVENT_PUT && r.ev[1].has_prev == 1);
	CHECK_EQ_STR(r.ev[1].value, "2");
	CHECK_EQ_STR(r.ev[1].prev, "1");
	CHECK(r.ev[2].type == IOTCA_ETCD_EVENT_DELETE && r.ev[2].has_prev);
	CHECK_EQ_STR(r.ev[2].key, "wt/a");
	CHECK_EQ_STR(r.ev[2].prev, "2");
	CHECK_EQ_STR(r.ev[3].key, "wt/b");
	CHECK_EQ_STR(r.ev[4].key, "wt/c");
	CHECK(r.ev[0].mod_revision < r.ev[1].mod_revision);
	CHECK(r.ev[1].mod_revision + 1 < r.ev[2].mod_revision);   /* "wu" */
	CHECK_EQ_INT(r.ev[3].mod_revision, r.ev[4].mod_revision); /* one txn */
	rec_destroy(&r);
	delete_prefix("wt/");
}

/* From a past revision the history is replayed. */
static void
test_watch_from_revision(void)
{
	iotca_etcd_watch *w = NULL;
	iotca_errbuf eb;
	recorder r;
	int64_t rev = 0;

	REQUIRE(etcd_up());
	rec_init(&r);
	REQUIRE(put_str(g_cli, "wh/x", "old", &rev) == IOTCA_OK);
	REQUIRE(put_str(g_cli, "wh/x", "new", NULL) == IOTCA_OK);
	REQUIRE(iotca_etcd_watch_start(g_cli, "wh/x", 4, NULL, 0, rev, rec_fn,
	                               &r, &w, &eb) == IOTCA_OK);
	CHECK_EQ_INT(rec_wait(&r, 2, 5000), 2);
	iotca_etcd_watch_stop(w);
	CHECK_EQ_STR(r.ev[0].value, "old");
	CHECK_EQ_INT(r.ev[0].mod_revision, rev);
	CHECK_EQ_STR(r.ev[1].value, "new");
	rec_destroy(&r);

	/* etcd refuses an empty range: the start fails, naming why */
	rec_init(&r);
	CHECK_EQ_INT(iotca_etcd_watch_start(g_cli, "b", 1, "a", 1, 0, rec_fn,
	                                    &r, &w, &eb),
	             IOTCA_EINVAL);
	CHECK_CONTAINS(eb.msg, "range is empty");
	rec_destroy(&r);
}

/* A watch from a compacted revision restarts from now with a RESET. */
static void
test_watch_compaction_reset(void)
{
	iotca_etcd_watch *w = NULL;
	iotca_errbuf eb;
	recorder r;
	int64_t rev1 = 0, rev2 = 0;
	char body[64];

	REQUIRE(etcd_up());
	rec_init(&r);
	REQUIRE(put_str(g_cli, "wc/a", "1", &rev1) == IOTCA_OK);
	REQUIRE(put_str(g_cli, "wc/a", "2", &rev2) == IOTCA_OK);
	snprintf(body, sizeof(body), "{\"revision\":%lld}", (long long)rev2);
	REQUIRE(raw_post("/v3/kv/compaction", body) == 200);
	REQUIRE(iotca_etcd_watch_start(g_cli, "wc/", 3, "wc0", 3, rev1, rec_fn,
	                               &r, &w, &eb) == IOTCA_OK);
	CHECK_EQ_INT(rec_wait(&r, 1, 5000), 1);
	CHECK_EQ_INT(iotca_etcd_watch_status(w, &eb), IOTCA_OK);
	put_str(g_cli, "wc/b", "3", NULL);
	CHECK_EQ_INT(rec_wait(&r, 2, 5000), 2);
	iotca_etcd_watch_stop(w);
	CHECK_EQ_INT(r.ev[0].type, IOTCA_ETCD_EVENT_RESET);
	CHECK(r.ev[0].mod_revision >= rev2);
	CHECK_EQ_INT(r.ev[1].type, IOTCA_ETCD_EVENT_PUT);
	CHECK_EQ_STR(r.ev[1].key, "wc/b");
	CHECK_EQ_INT(r.n, 2);
	rec_destroy(&r);
}

/* The 50 puts of one txn: 50 events, then one PROGRESS of their revision,
 * never one before them. (etcd's progress notifications, every second
 * here, may add PROGRESSes of earlier revisions before, later ones
 * after.) */
static void
test_watch_progress_after_txn(void)
{
	iotca_etcd_watch *w = NULL;
	iotca_etcd_txn_result res;
	iotca_etcd_txn *t;
	iotca_errbuf eb;
	recorder r;
	char k[16];
	int64_t rev0 = 0;
	int i, p = 0, puts = 0, before = 0, after = 0;

	REQUIRE(etcd_up());
	rec_init(&r);
	r.keep_progress = 1;
	REQUIRE(put_str(g_cli, "wq", "outside", &rev0) == IOTCA_OK);
	REQUIRE(iotca_etcd_watch_start(g_cli, "wp/", 3, "wp0", 3, 0, rec_fn, &r,
	                               &w, &eb) == IOTCA_OK);
	CHECK_EQ_INT(iotca_etcd_watch_status(w, &eb), IOTCA_OK);
	/* created, from now: a PROGRESS of the stream's revision at once */
	CHECK(rec_wait(&r, 1, 0) >= 1);
	CHECK_EQ_INT(r.ev[0].type, IOTCA_ETCD_EVENT_PROGRESS);
	CHECK(r.ev[0].mod_revision >= rev0);
	REQUIRE(iotca_etcd_txn_create(&t) == IOTCA_OK);
	for (i = 0; i < 50; i++) {
		snprintf(k, sizeof(k), "wp/%02d", i);
		iotca_etcd_txn_put(t, IOTCA_ETCD_SUCCESS, k, strlen(k), "v", 1,
		                   0);
	}
	REQUIRE(iotca_etcd_txn_commit(g_cli, t, &res, &eb) == IOTCA_OK);
	iotca_etcd_txn_destroy(t);
	CHECK(rec_wait_progress(&r, res.revision, 5000) >= res.revision);
	sleep_ms(200); /* anything extra would arrive now */
	iotca_etcd_watch_stop(w);
	REQUIRE(r.n >= 52 && r.n <= REC_MAX);
	while (p < r.n && r.ev[p].type == IOTCA_ETCD_EVENT_PROGRESS)
		before += r.ev[p++].mod_revision < res.revision;
	CHECK_EQ_INT(before, p);
	for (i = p; i < p + 50 && i < r.n; i++)
		puts += r.ev[i].type == IOTCA_ETCD_EVENT_PUT &&
		        r.ev[i].mod_revision == res.revision;
	CHECK_EQ_INT(puts, 50);
	REQUIRE(p + 50 < r.n);
	CHECK_EQ_INT(r.ev[p + 50].type, IOTCA_ETCD_EVENT_PROGRESS);
	CHECK_EQ_INT(r.ev[p + 50].mod_revision, res.revision);
	for (i = p + 51; i < r.n; i++)
		after += r.ev[i].type == IOTCA_ETCD_EVENT_PROGRESS &&
		         r.ev[i].mod_revision >= res.revision;
	CHECK_EQ_INT(after, r.n - p - 51);
	iotca_etcd_txn_result_free(&res);
	rec_destroy(&r);
	delete_prefix("wp/");
}

/*
 * From a past revision etcd's "created" and catch-up messages carry the
 * store's revision before their events: the first catch-up batch holds
 * at most 1000 revisions yet says the store's. PROGRESS must not repeat
 * it: the recorder counts every event at or before a PROGRESS already
 * seen. Then an idle watch moves on with etcd's progress notifications
 * (this etcd sends them every second).
 */
static void
test_watch_progress_catch_up(void)
{
	iotca_etcd_watch *w = NULL;
	iotca_errbuf eb;
	recorder r;
	char k[16];
	int64_t first = 0, last = 0, outside = 0, got;
	int i;

	REQUIRE(etcd_up());
	rec_init(&r);
	for (i = 0; i < 1100; i++) {
		snprintf(k, sizeof(k), "wm/%04d", i);
		REQUIRE(put_str(g_cli, k, "v", i == 0 ? &first : &last) ==
		        IOTCA_OK);
	}
	REQUIRE(put_str(g_cli, "wn", "outside", &outside) == IOTCA_OK);
	REQUIRE(iotca_etcd_watch_start(g_cli, "wm/", 3, "wm0", 3, first, rec_fn,
	                               &r, &w, &eb) == IOTCA_OK);
	CHECK_EQ_INT(rec_wait(&r, 1100, 10000), 1100);
	got = rec_wait_progress(&r, last, 5000);
	CHECK(got >= last && got <= outside); /* a notification: outside */
	CHECK(r.n_progress >= 3); /* created, two batches at least */
	/* idle: the next notification tells of the write outside */
	REQUIRE(put_str(g_cli, "wn", "later", &outside) == IOTCA_OK);
	CHECK(rec_wait_progress(&r, outside, 5000) >= outside);
	iotca_etcd_watch_stop(w);
	CHECK_EQ_INT(r.n, 1100);
	CHECK_EQ_INT(r.ev[0].mod_revision, first);
	rec_destroy(&r);
	delete_prefix("wm/");
}

/* ---- two threads race to create the same keys ---- */

#define RACE_KEYS 500

typedef struct race {
	pthread_barrier_t barrier;
	atomic_int wins[RACE_KEYS];
	int winner[RACE_KEYS];
	atomic_int errors;
} race;

typedef struct race_arg {
	race *r;
	int id;
} race_arg;

/* One attempt to create key i; 1 if this thread won. */
static int
race_try(int i, int id, atomic_int *errors)
{
	iotca_etcd_txn_result res;
	iotca_etcd_txn *t;
	iotca_errbuf eb;
	char k[32], v[8];
	int won = 0;

	snprintf(k, sizeof(k), "race/%03d", i);
	snprintf(v, sizeof(v), "t%d", id);
	if (iotca_etcd_txn_create(&t) != IOTCA_OK)
		return 0;
	iotca_etcd_txn_cmp_num(t, k, strlen(k), IOTCA_ETCD_CMP_CREATE,
	                       IOTCA_ETCD_EQUAL, 0);
	iotca_etcd_txn_put(t, IOTCA_ETCD_SUCCESS, k, strlen(k), v, 2, 0);
	if (iotca_etcd_txn_commit(g_cli, t, &res, &eb) != IOTCA_OK) {
		fprintf(stderr, "race: %s\n", eb.msg);
		atomic_fetch_add(errors, 1);
	} else {
		won = res.succeeded;
		iotca_etcd_txn_result_free(&res);
	}
	iotca_etcd_txn_destroy(t);
	return won;
}

static void *
race_thread(void *p)
{
	race_arg *a = p;
	int i;

	for (i = 0; i < RACE_KEYS; i++) {
		pthread_barrier_wait(&a->r->barrier);
		if (race_try(i, a->id, &a->r->errors)) {
			atomic_fetch_add(&a->r->wins[i], 1);
			a->r->winner[i] = a->id;
		}
	}
	return NULL;
}

static void
test_race_create_exactly_once(void)
{
	static race r;
	race_arg a[2] = {{&r, 0}, {&r, 1}};
	pthread_t th[2];
	iotca_etcd_kv kv;
	iotca_errbuf eb;
	char k[32], v[8];
	int i, total = 0, bad = 0, found;

	REQUIRE(etcd_up());
	delete_prefix("race/");
	memset(&r, 0, sizeof(r));
	pthread_barrier_init(&r.barrier, NULL, 2);
	for (i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, race_thread, &a[i]);
	for (i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&r.barrier);
	for (i = 0; i < RACE_KEYS; i++) {
		total += atomic_load(&r.wins[i]);
		bad += atomic_load(&r.wins[i]) != 1;
	}
	CHECK_EQ_INT(atomic_load(&r.errors), 0);
	CHECK_EQ_INT(total, RACE_KEYS);
	CHECK_EQ_INT(bad, 0);
	for (i = 0; i < RACE_KEYS; i += 50) { /* the winner's value stuck */
		snprintf(k, sizeof(k), "race/%03d", i);
		snprintf(v, sizeof(v), "t%d", r.winner[i]);
		REQUIRE(iotca_etcd_get(g_cli, k, strlen(k), &kv, &found, &eb) ==
		            IOTCA_OK &&
		        found);
		CHECK_EQ_STR(kv.value, v);
		iotca_etcd_kv_free(&kv);
	}
	delete_prefix("race/");
}

/* ---- failover, oversize, health ---- */

static void
test_failover_dead_endpoint_first(void)
{
	char eps[160];
	iotca_etcd *e;
	iotca_etcd_kv kv;
	iotca_errbuf eb;
	int64_t t0;
	int i, found = 0, ok = 0;

	REQUIRE(etcd_up());
	snprintf(eps, sizeof(eps), "http://127.0.0.1:%d,%s",
	         etcd_proc_free_port(), etcd_proc_endpoint(g_etcd));
	REQUIRE((e = client_new(eps, 2000, 0)) != NULL);
	t0 = now_ms();
	CHECK_EQ_INT(put_str(e, "fo/k", "v", NULL), IOTCA_OK);
	CHECK(now_ms() - t0 < 1000);
	for (i = 0; i < 50; i++) {
		if (iotca_etcd_get(e, "fo/k", 4, &kv, &found, &eb) ==
		        IOTCA_OK &&
		    found) {
			ok++;
			iotca_etcd_kv_free(&kv);
		}
	}
	CHECK_EQ_INT(ok, 50);
	CHECK_EQ_INT(iotca_etcd_health(e, &eb), IOTCA_OK);
	iotca_etcd_destroy(e);

	/* every endpoint dead: UNAVAILABLE within the timeout */
	snprintf(eps, sizeof(eps), "http://127.0.0.1:%d,http://127.0.0.1:%d",
	         etcd_proc_free_port(), etcd_proc_free_port());
	REQUIRE((e = client_new(eps, 500, 0)) != NULL);
	t0 = now_ms();
	CHECK_EQ_INT(put_str(e, "fo/k", "v", NULL), IOTCA_EUNAVAIL);
	CHECK(now_ms() - t0 < 1000);
	CHECK_EQ_INT(iotca_etcd_health(e, &eb), IOTCA_EUNAVAIL);
	CHECK_CONTAINS(eb.msg, "http://127.0.0.1:");
	iotca_etcd_destroy(e);
}

/* VmHWM (peak RSS) in KiB, after resetting it when the kernel allows. */
static long
vm_kib(const char *field)
{
	char line[256];
	long v = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, field, strlen(field)) == 0)
			v = atol(line + strlen(field));
	fclose(f);
	return v;
}

static int
vm_reset_peak(void)
{
	FILE *f = fopen("/proc/self/clear_refs", "w");
	int ok;

	if (f == NULL)
		return 0;
	ok = fputs("5", f) >= 0;
	return fclose(f) == 0 && ok;
}

#define MIB (1024 * 1024)

static void
test_oversize_reply_refused(void)
{
	iotca_etcd_range_req req = {.key = "big/",
	                            .key_len = 4,
	                            .range_end = "big0",
	                            .range_end_len = 4};
	iotca_etcd_range_result r;
	iotca_etcd *small;
	iotca_etcd_kv kv;
	iotca_errbuf eb;
	char *v = malloc(MIB), k[16];
	long before, peak;
	int i, found;

	REQUIRE(etcd_up());
	REQUIRE(v != NULL);
	memset(v, 'x', MIB);
	/* 12 values of 1 MiB: the range reply is ~16 MiB of base64 */
	for (i = 0; i < 12; i++) {
		snprintf(k, sizeof(k), "big/%02d", i);
		CHECK_EQ_INT(
		    iotca_etcd_put(g_cli, k, strlen(k), v, MIB, 0, NULL, &eb),
		    IOTCA_OK);
	}
	free(v);
	/* a client capped at 1 MiB cannot read one of them */
	REQUIRE((small = client_new(etcd_proc_endpoint(g_etcd), 5000, MIB)));
	CHECK_EQ_INT(iotca_etcd_get(small, "big/00", 6, &kv, &found, &eb),
	             IOTCA_EOVERFLOW);
	CHECK_CONTAINS(eb.msg, "max_reply");
	CHECK_CONTAINS(eb.msg, "1048576");
	iotca_etcd_destroy(small);

	/* the default client (8 MiB) refuses the ~16 MiB range... */
	before = vm_kib("VmRSS:");
	if (!vm_reset_peak())
		fprintf(stderr, "note: cannot reset VmHWM; using VmRSS\n");
	CHECK_EQ_INT(iotca_etcd_range(g_cli, &req, &r, &eb), IOTCA_EOVERFLOW);
	CHECK_CONTAINS(eb.msg, "larger than max_reply");
	CHECK_CONTAINS(eb.msg, "8388608");
	peak = vm_kib("VmHWM:");
	printf("     RSS before %ld KiB, peak during the refused range %ld "
	       "KiB (+%ld KiB)\n",
	       before, peak, peak - before);
#ifndef TEST_SANITIZER
	/* ...without holding the 16 MiB (at most the 8 MiB cap, briefly) */
	CHECK(peak - before < 12 * 1024);
#else
	printf("     (sanitizer build: the RSS bound is not checked)\n");
#endif
	/* ...and still reads a part of it */
	req.limit = 2;
	CHECK_EQ_INT(iotca_etcd_range(g_cli, &req, &r, &eb), IOTCA_OK);
	CHECK_EQ_INT(r.n, 2);
	CHECK_EQ_INT(r.more, 1);
	CHECK(r.n == 2 && r.kvs[1].value_len == MIB);
	iotca_etcd_range_result_free(&r);
	delete_prefix("big/");
}

static void
test_health(void)
{
	iotca_errbuf eb;

	REQUIRE(etcd_up());
	CHECK_EQ_INT(iotca_etcd_health(g_cli, &eb), IOTCA_OK);
}

/* Not a check: how fast one client goes, for the report. */
static void
test_measure_sequential(void)
{
	iotca_errbuf eb;
	iotca_etcd_kv kv;
	char k[32];
	int64_t t0, t1;
	int i, n = 500, fails = 0, found;

	REQUIRE(etcd_up());
	t0 = now_ms();
	for (i = 0; i < n; i++) {
		snprintf(k, sizeof(k), "bench/%04d", i);
		fails += iotca_etcd_put(g_cli, k, strlen(k), "value", 5, 0,
		                        NULL, &eb) != IOTCA_OK;
	}
	t1 = now_ms();
	for (i = 0; i < n; i++) {
		snprintf(k, sizeof(k), "bench/%04d", i);
		if (iotca_etcd_get(g_cli, k, strlen(k), &kv, &found, &eb) ==
		        IOTCA_OK &&
		    found)
			iotca_etcd_kv_free(&kv);
		else
			fails++;
	}
	printf("     %d sequential puts: %.0f/s; gets: %.0f/s\n", n,
	       n * 1000.0 / (double)(t1 - t0 ? t1 - t0 : 1),
	       n * 1000.0 / (double)(now_ms() - t1 ? now_ms() - t1 : 1));
	CHECK_EQ_INT(fails, 0);
	delete_prefix("bench/");
}

/* ---- a fake endpoint, to see what is sent again and what is not ---- */

typedef enum fake_mode {
	FAKE_CLOSE,  /* read the request, close without a word */
	FAKE_503,    /* HTTP 503 with gRPC code 14, as etcd without leader */
	FAKE_BIGLEN, /* a 200 that announces a 1 GB body */
} fake_mode;

typedef struct fake {
	int fd;
	int port;
	fake_mode mode;
	pthread_t thread;
	atomic_int stop;
	atomic_int requests;
} fake;

static void
fake_answer(fake *f, int c)
{
	static const char unavail_body[] =
	    "{\"error\":\"etcdserver: no leader\",\"message\":"
	    "\"etcdserver: no leader\",\"code\":14}";
	char buf[8192], resp[512];
	struct timeval tv = {1, 0};
	int n;

	setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (recv(c, buf, sizeof(buf), 0) <= 0)
		return;
	atomic_fetch_add(&f->requests, 1);
	if (f->mode == FAKE_503)
		n = snprintf(
		    resp, sizeof(resp),
		    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: "
		    "application/json\r\nContent-Length: %zu\r\n"
		    "Connection: close\r\n\r\n%s",
		    sizeof(unavail_body) - 1, unavail_body);
	else if (f->mode == FAKE_BIGLEN)
		n = snprintf(resp, sizeof(resp),
		             "HTTP/1.1 200 OK\r\nContent-Type: application/json"
		             "\r\nContent-Length: 1000000000\r\n\r\n{");
	else
		return;
	send(c, resp, (size_t)n, MSG_NOSIGNAL);
	if (f->mode == FAKE_BIGLEN)
		sleep_ms(300); /* keep it open: the client must not wait */
}

static void *
fake_main(void *arg)
{
	fake *f = arg;
	struct pollfd p = {.fd = f->fd, .events = POLLIN};
	int c;

	while (!atomic_load(&f->stop)) {
		if (poll(&p, 1, 50) <= 0)
			continue;
		if ((c = accept(f->fd, NULL, NULL)) < 0)
			continue;
		fake_answer(f, c);
		close(c);
	}
	return NULL;
}

static int
fake_start(fake *f, fake_mode mode)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);

	memset(f, 0, sizeof(*f));
	f->mode = mode;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((f->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    bind(f->fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    getsockname(f->fd, (struct sockaddr *)&a, &len) != 0 ||
	    listen(f->fd, 16) != 0)
		return -1;
	f->port = ntohs(a.sin_port);
	return pthread_create(&f->thread, NULL, fake_main, f);
}

static void
fake_stop(fake *f)
{
	atomic_store(&f->stop, 1);
	pthread_join(f->thread, NULL);
	close(f->fd);
}

/* A client for "<fake>,<real etcd>". */
static iotca_etcd *
fake_client(const fake *f, int with_real)
{
	char eps[160];

	snprintf(eps, sizeof(eps), "http://127.0.0.1:%d%s%s", f->port,
	         with_real ? "," : "",
	         with_real ? etcd_proc_endpoint(g_etcd) : "");
	return client_new(eps, 2000, 0);
}

/* A put that may have reached etcd is not sent again; a get is. */
static void
test_retry_only_what_is_safe(void)
{
	static const fake_mode modes[] = {FAKE_CLOSE, FAKE_503};
	iotca_etcd *e;
	iotca_etcd_kv kv;
	iotca_errbuf eb;
	fake f;
	size_t m;
	int found = 0;

	REQUIRE(etcd_up());
	for (m = 0; m < 2; m++) {
		REQUIRE(put_str(g_cli, "rt/k", "v1", NULL) == IOTCA_OK);
		REQUIRE(fake_start(&f, modes[m]) == 0);
		REQUIRE((e = fake_client(&f, 1)) != NULL);
		CHECK_EQ_INT(
		    iotca_etcd_put(e, "rt/k", 4, "v2", 2, 0, NULL, &eb),
		    IOTCA_EUNAVAIL);
		CHECK_EQ_INT(atomic_load(&f.requests), 1);
		CHECK_CONTAINS(eb.msg, m == 0
		                           ? "may or may not have been applied"
		                           : "no leader");
		/* the real etcd never saw it */
		REQUIRE(iotca_etcd_get(g_cli, "rt/k", 4, &kv, &found, &eb) ==
		            IOTCA_OK &&
		        found);
		CHECK_EQ_STR(kv.value, "v1");
		iotca_etcd_kv_free(&kv);
		/* a read moves on to the next endpoint */
		CHECK_EQ_INT(iotca_etcd_get(e, "rt/k", 4, &kv, &found, &eb),
		             IOTCA_OK);
		CHECK_EQ_INT(atomic_load(&f.requests), 2);
		if (found)
			iotca_etcd_kv_free(&kv);
		iotca_etcd_destroy(e);
		fake_stop(&f);
	}
	/* a put that could not connect is safe to send elsewhere */
	REQUIRE(fake_start(&f, FAKE_CLOSE) == 0);
	REQUIRE((e = fake_client(&f, 1)) != NULL);
	fake_stop(&f); /* nothing listens any more */
	CHECK_EQ_INT(put_str(e, "rt/k", "v3", NULL), IOTCA_OK);
	iotca_etcd_destroy(e);
	delete_prefix("rt/");
}

/* A reply announcing more than max_reply is refused on its headers. */
static void
test_oversize_content_length_refused_at_once(void)
{
	iotca_etcd *e;
	iotca_etcd_kv kv;
	iotca_errbuf eb;
	fake f;
	int64_t t0;
	int found;

	REQUIRE(fake_start(&f, FAKE_BIGLEN) == 0);
	REQUIRE((e = fake_client(&f, 0)) != NULL);
	t0 = now_ms();
	CHECK_EQ_INT(iotca_etcd_get(e, "k", 1, &kv, &found, &eb),
	             IOTCA_EOVERFLOW);
	CHECK(now_ms() - t0 < 250);
	CHECK_CONTAINS(eb.msg, "max_reply");
	CHECK_EQ_INT(atomic_load(&f.requests), 1);
	iotca_etcd_destroy(e);
	fake_stop(&f);
}

/* ---- etcd goes away ---- */

static void
check_unavail_within(iotca_err rc, int64_t t0, const char *what,
                     const iotca_errbuf *eb)
{
	int64_t ms = now_ms() - t0;

	if (rc != IOTCA_EUNAVAIL || ms > 1500)
		fprintf(stderr, "%s: %s after %lld ms: %s\n", what,
		        iotca_strerror(rc), (long long)ms, eb->msg);
	CHECK_EQ_INT(rc, IOTCA_EUNAVAIL);
	CHECK(ms <= 1500);
}

static void
test_outage_unavailable_then_recovers(void)
{
	iotca_etcd_range_result r;
	iotca_etcd_range_req req = {.key = "ou/k", .key_len = 4};
	iotca_etcd_watch *w = NULL;
	iotca_etcd_txn *t;
	iotca_etcd *e;
	iotca_etcd_kv kv;
	iotca_errbuf eb;
	recorder rec;
	int64_t t0, id;
	int found = 0;

	REQUIRE(etcd_up());
	REQUIRE((e = client_new(etcd_proc_endpoint(g_etcd), 1000, 0)));
	CHECK_EQ_INT(put_str(e, "ou/k", "before", NULL), IOTCA_OK);
	REQUIRE(etcd_proc_stop(g_etcd) == 0);

	t0 = now_ms();
	check_unavail_within(put_str(e, "ou/k", "during", NULL), t0, "put",
	                     &eb);
	t0 = now_ms();
	check_unavail_within(iotca_etcd_get(e, "ou/k", 4, &kv, &found, &eb), t0,
	                     "get", &eb);
	CHECK_CONTAINS(eb.msg, etcd_proc_endpoint(g_etcd));
	t0 = now_ms();
	check_unavail_within(iotca_etcd_range(e, &req, &r, &eb), t0, "range",
	                     &eb);
	REQUIRE(iotca_etcd_txn_create(&t) == IOTCA_OK);
	iotca_etcd_txn_put(t, IOTCA_ETCD_SUCCESS, "ou/k", 4, "txn", 3, 0);
	t0 = now_ms();
	check_unavail_within(iotca_etcd_txn_commit(e, t, NULL, &eb), t0, "txn",
	                     &eb);
	iotca_etcd_txn_destroy(t);
	t0 = now_ms();
	check_unavail_within(iotca_etcd_lease_grant(e, 5, &id, &eb), t0,
	                     "lease", &eb);
	t0 = now_ms();
	check_unavail_within(iotca_etcd_health(e, &eb), t0, "health", &eb);
	rec_init(&rec);
	t0 = now_ms();
	check_unavail_within(iotca_etcd_watch_start(e, "ou/", 3, NULL, 0, 0,
	                                            rec_fn, &rec, &w, &eb),
	                     t0, "watch", &eb);
	rec_destroy(&rec);

	REQUIRE(etcd_proc_restart(g_etcd) == 0);
	CHECK_EQ_INT(put_str(e, "ou/k", "after", NULL), IOTCA_OK);
	REQUIRE(iotca_etcd_get(e, "ou/k", 4, &kv, &found, &eb) == IOTCA_OK);
	CHECK(found && strcmp(kv.value, "after") == 0);
	if (found)
		iotca_etcd_kv_free(&kv);
	iotca_etcd_destroy(e);
}

static void
test_watch_survives_restart(void)
{
	iotca_etcd_watch *w = NULL;
	iotca_errbuf eb;
	recorder r;
	char k[16], want[16];
	int64_t t0;
	int i, dup = 0;

	REQUIRE(etcd_up());
	rec_init(&r);
	REQUIRE(iotca_etcd_watch_start(g_cli, "wr/", 3, "wr0", 3, 0, rec_fn, &r,
	                               &w, &eb) == IOTCA_OK);
	for (i = 0; i < 5; i++) {
		snprintf(k, sizeof(k), "wr/%d", i);
		put_str(g_cli, k, k, NULL);
	}
	CHECK_EQ_INT(rec_wait(&r, 5, 5000), 5);
	CHECK_EQ_INT(iotca_etcd_watch_status(w, &eb), IOTCA_OK);
	REQUIRE(etcd_proc_stop(g_etcd) == 0);
	t0 = now_ms();
	while (iotca_etcd_watch_status(w, &eb) == IOTCA_OK &&
	       now_ms() - t0 < 3000)
		sleep_ms(10);
	CHECK_EQ_INT(iotca_etcd_watch_status(w, &eb), IOTCA_EUNAVAIL);
	CHECK_CONTAINS(eb.msg, "etcd watch at");
	sleep_ms(300);
	REQUIRE(etcd_proc_restart(g_etcd) == 0);
	/* written before the watch is back: it must catch up on them */
	for (i = 5; i < 10; i++) {
		snprintf(k, sizeof(k), "wr/%d", i);
		CHECK_EQ_INT(put_str(g_cli, k, k, NULL), IOTCA_OK);
	}
	CHECK_EQ_INT(rec_wait(&r, 10, 10000), 10);
	sleep_ms(100); /* any duplicate would arrive now */
	CHECK_EQ_INT(iotca_etcd_watch_status(w, &eb), IOTCA_OK);
	iotca_etcd_watch_stop(w);
	CHECK_EQ_INT(r.n, 10);
	for (i = 0; i < r.n && i < 10; i++) {
		snprintf(want, sizeof(want), "wr/%d", i);
		CHECK_EQ_STR(r.ev[i].key, want);
		dup +=
		    i > 0 && r.ev[i].mod_revision <= r.ev[i - 1].mod_revision;
	}
	CHECK_EQ_INT(dup, 0);
	rec_destroy(&r);
	delete_prefix("wr/");
}

int
main(void)
{
	/* progress notifications every second (etcd 3.4's default: 10 min) */
	static const char *const etcd_args[] = {
	    "--experimental-watch-progress-notify-interval", "1s", NULL};
	int rc;

	iotca_log_set_level(IOTCA_LOG_WARN);
	if (etcd_proc_start(&g_etcd, etcd_args) != 0)
		return 1;
	g_cli = client_new(etcd_proc_endpoint(g_etcd), 5000, 0);
	if (g_cli != NULL) {
		RUN(test_put_get_delete_binary);
		RUN(test_range_limit_more_count);
		RUN(test_range_prefix_1000_keys);
		RUN(test_txn_create_if_absent);
		RUN(test_txn_value_compare);
		RUN(test_txn_too_many_ops);
		RUN(test_lease_grant_keepalive_revoke);
		RUN(test_watch_put_delete_prev_kv);
		RUN(test_watch_from_revision);
		RUN(test_watch_compaction_reset);
		RUN(test_watch_progress_after_txn);
		RUN(test_watch_progress_catch_up);
		RUN(test_race_create_exactly_once);
		RUN(test_failover_dead_endpoint_first);
		RUN(test_oversize_reply_refused);
		RUN(test_retry_only_what_is_safe);
		RUN(test_oversize_content_length_refused_at_once);
		RUN(test_health);
		RUN(test_measure_sequential);
		RUN(test_outage_unavailable_then_recovers);
		RUN(test_watch_survives_restart);
	}
	rc = test_summary();
	iotca_etcd_destroy(g_cli);
	etcd_proc_destroy(g_etcd);
	return g_cli ? rc : 1;
}
