/*
 * test_devindex.c - the association service's device index, driven with
 * watch events and this replica's own commits (write-through), without
 * etcd: which binding each lookup finds, that older changes never undo
 * newer ones, when an account counts as current, and growth.
 *
 * The index's file is included so its static functions are reachable.
 */
#include "../../services/association/devindex.c"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

#define ACC "acc_0123456789abcdef"

static dev_index *
ix_new(void)
{
	dev_index *ix = calloc(1, sizeof(*ix));
	iotca_errbuf eb;

	if (ix == NULL || dix_table_init(&ix->t, &eb) != IOTCA_OK)
		abort();
	pthread_mutex_init(&ix->mu, NULL);
	pthread_cond_init(&ix->moved, NULL);
	ix->loaded = 1;
	return ix;
}

static void
ix_free(dev_index *ix)
{
	dev_index_stop(ix); /* no watch: frees the table */
}

/* A watch event of /iotca/sn/<acc>/<sn> (value NULL: a DELETE). */
static void
ev_sn(dev_index *ix, const char *acc, const char *sn, const char *pk,
      const char *dn, int64_t rev)
{
	char key[256], val[256];
	iotca_etcd_event ev;

	memset(&ev, 0, sizeof(ev));
	snprintf(key, sizeof(key), ASSOC_SN_PREFIX "%s/%s", acc, sn);
	ev.type = pk != NULL ? IOTCA_ETCD_EVENT_PUT : IOTCA_ETCD_EVENT_DELETE;
	ev.kv.key = key;
	ev.kv.key_len = strlen(key);
	if (pk != NULL) {
		snprintf(val, sizeof(val),
		         "{\"ca\":\"ca_1\",\"sn\":\"%s\",\"pk\":\"%s\","
		         "\"dn\":\"%s\",\"st\":1,\"t\":1}",
		         sn, pk, dn);
		ev.kv.value = val;
		ev.kv.value_len = strlen(val);
	} else {
		ev.kv.value = "";
	}
	ev.kv.mod_revision = rev;
	dix_on_event(&ev, ix);
}

static void
ev_raw(dev_index *ix, const char *key, const char *val, int64_t rev)
{
	iotca_etcd_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.type = IOTCA_ETCD_EVENT_PUT;
	ev.kv.key = (char *)key;
	ev.kv.key_len = strlen(key);
	ev.kv.value = (char *)val;
	ev.kv.value_len = strlen(val);
	ev.kv.mod_revision = rev;
	dix_on_event(&ev, ix);
}

static void
ev_progress(dev_index *ix, int64_t rev)
{
	iotca_etcd_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.type = IOTCA_ETCD_EVENT_PROGRESS;
	ev.kv.key = ev.kv.value = "";
	ev.kv.mod_revision = rev;
	dix_on_event(&ev, ix);
}

/* The DeviceName bound to sn, "" when none. */
static const char *
dn_of(dev_index *ix, const char *acc, const char *sn)
{
	static dev_binding b;

	dev_index_lock(ix);
	if (!dev_index_by_sn(ix, acc, sn, &b))
		b.dn[0] = '\0';
	dev_index_unlock(ix);
	return b.dn;
}

/* The SN bound to the device, "" when none. */
static const char *
sn_of(dev_index *ix, const char *acc, const char *pk, const char *dn)
{
	static dev_binding b;

	dev_index_lock(ix);
	if (!dev_index_by_device(ix, acc, pk, dn, &b))
		b.sn[0] = '\0';
	dev_index_unlock(ix);
	return b.sn;
}

static void
test_put_delete_and_lookups(void)
{
	dev_index *ix = ix_new();
	dev_binding b;

	ev_sn(ix, ACC, "A1", "PK000000001", "dev-1", 10);
	ev_sn(ix, ACC, "A2", "PK000000001", "dev-2", 10);
	ev_sn(ix, "acc_other", "A1", "PK000000009", "dev-9", 11);
	CHECK_EQ_STR(dn_of(ix, ACC, "A1"), "dev-1");
	CHECK_EQ_STR(dn_of(ix, "acc_other", "A1"), "dev-9");
	CHECK_EQ_STR(sn_of(ix, ACC, "PK000000001", "dev-2"), "A2");
	CHECK_EQ_STR(sn_of(ix, ACC, "PK000000009", "dev-9"), "");
	REQUIRE(dev_index_resolve(ix, ACC, "A1", &b));
	CHECK_EQ_STR(b.ca, "ca_1");
	CHECK_EQ_INT(b.st, 1);
	CHECK_EQ_INT(b.rev, 10);
	/* the device moves to another SN */
	ev_sn(ix, ACC, "A1", NULL, NULL, 12);
	ev_sn(ix, ACC, "A3", "PK000000001", "dev-1", 12);
	CHECK_EQ_STR(dn_of(ix, ACC, "A1"), "");
	CHECK_EQ_STR(sn_of(ix, ACC, "PK000000001", "dev-1"), "A3");
	CHECK(!dev_index_resolve(ix, ACC, "A1", &b));
	ix_free(ix);
}

static void
test_keys_that_are_not_bindings(void)
{
	dev_index *ix = ix_new();

	/* the account's version key, and a key of another layout */
	ev_raw(ix, ASSOC_SN_PREFIX ACC, "{\"t\":1}", 5);
	ev_raw(ix, ASSOC_SN_PREFIX ACC "/A1/x", "{}", 5);
	CHECK_EQ_INT(ix->t.n, 0);
	/* a value that is not JSON removes what was there */
	ev_sn(ix, ACC, "A1", "PK000000001", "dev-1", 6);
	ev_raw(ix, ASSOC_SN_PREFIX ACC "/A1", "not json", 7);
	CHECK_EQ_STR(dn_of(ix, ACC, "A1"), "");
	CHECK_EQ_INT(ix->t.n, 0);
	ix_free(ix);
}

/* The watch brings this replica's own commit after it was written
 * through, and older changes in between: none undoes the newer state. */
static void
test_write_through_is_not_undone(void)
{
	dev_index *ix = ix_new();

	/* rev 20 (watch): A1 -> dev-1. rev 30 (own commit, its CA gone):
	 * A1 -> dev-5, and A2 deleted. */
	ev_sn(ix, ACC, "A2", "PK000000001", "dev-2", 15);
	ev_sn(ix, ACC, "A1", "PK000000001", "dev-1", 20);
	ev_progress(ix, 20);
	REQUIRE(dev_index_wt_begin(ix, 30));
	dev_index_wt_put(ix, ACC, "A1", "ca_2", "PK000000001", "dev-5", 1, 30);
	dev_index_wt_delete(ix, ACC, "A2", 30);
	dev_index_wt_end(ix, ACC, 30);
	CHECK_EQ_STR(dn_of(ix, ACC, "A1"), "dev-5");
	CHECK_EQ_STR(dn_of(ix, ACC, "A2"), "");
	CHECK_EQ_STR(sn_of(ix, ACC, "PK000000001", "dev-2"), "");
	CHECK_EQ_INT(ix->t.ntombs, 1);
	/* older events arrive late: ignored */
	ev_sn(ix, ACC, "A1", "PK000000001", "dev-1", 25);
	ev_sn(ix, ACC, "A2", "PK000000001", "dev-2", 25);
	ev_sn(ix, ACC, "A1", NULL, NULL, 26);
	CHECK_EQ_STR(dn_of(ix, ACC, "A1"), "dev-5");
	CHECK_EQ_STR(dn_of(ix, ACC, "A2"), "");
	CHECK_EQ_STR(sn_of(ix, ACC, "PK000000001", "dev-2"), "");
	/* the commit itself arrives: same state, tombstone gone */
	ev_sn(ix, ACC, "A2", NULL, NULL, 30);
	ev_sn(ix, ACC, "A1", "PK000000001", "dev-5", 30);
	ev_progress(ix, 30);
	CHECK_EQ_STR(dn_of(ix, ACC, "A1"), "dev-5");
	CHECK_EQ_INT(ix->t.ntombs, 0);
	CHECK_EQ_INT(ix->t.n, 1);
	/* newer changes apply */
	ev_sn(ix, ACC, "A1", NULL, NULL, 31);
	CHECK_EQ_STR(dn_of(ix, ACC, "A1"), "");
	ix_free(ix);
}

/* A tombstone whose delete event never came (the key was put again
 * later) goes when the watch passes its revision. */
static void
test_tombstones_purged_by_progress(void)
{
	dev_index *ix = ix_new();

	ev_progress(ix, 40);
	REQUIRE(dev_index_wt_begin(ix, 41));
	dev_index_wt_delete(ix, ACC, "B1", 41);
	dev_index_wt_delete(ix, ACC, "B2", 41);
	dev_index_wt_end(ix, ACC, 41);
	REQUIRE(dev_index_wt_begin(ix, 45));
	dev_index_wt_delete(ix, ACC, "B3", 45);
	dev_index_wt_end(ix, ACC, 45);
	CHECK_EQ_INT(ix->t.ntombs, 3);
	ev_progress(ix, 44);
	CHECK_EQ_INT(ix->t.ntombs, 1);
	CHECK_EQ_INT(ix->t.n, 1);
	ev_progress(ix, 45);
	CHECK_EQ_INT(ix->t.ntombs, 0);
	CHECK_EQ_INT(ix->t.n, 0);
	ix_free(ix);
}

/* Once the watch applied a change at or after a commit's revision, the
 * commit is not written through (it might undo that change). */
static void
test_write_through_skipped_behind_the_watch(void)
{
	dev_index *ix = ix_new();

	ev_sn(ix, ACC, "C1", "PK000000001", "dev-1", 50);
	ev_sn(ix, ACC, "C1", NULL, NULL, 52); /* deleted after commit 51 */
	CHECK(!dev_index_wt_begin(ix, 51));
	CHECK(!dev_index_wt_begin(ix, 52));
	CHECK(dev_index_wt_begin(ix, 53));
	dev_index_wt_end(ix, ACC, 53);
	CHECK_EQ_STR(dn_of(ix, ACC, "C1"), "");
	ix_free(ix);
}

/* An account is current up to rev when the watch's progress is, or when
 * this replica's own commit at rev was written through; not otherwise,
 * nor while (re)loading. */
static void
test_account_current(void)
{
	dev_index *ix = ix_new();

	ev_progress(ix, 60);
	CHECK(dev_index_wait(ix, ACC, 60, 0) == IOTCA_OK);
	CHECK(dev_index_wait(ix, ACC, 61, 0) == IOTCA_ETIMEDOUT);
	REQUIRE(dev_index_wt_begin(ix, 70));
	dev_index_wt_end(ix, ACC, 70);
	CHECK(dev_index_wait(ix, ACC, 70, 0) == IOTCA_OK);
	CHECK(dev_index_wait(ix, ACC, 71, 0) == IOTCA_ETIMEDOUT);
	CHECK(dev_index_wait(ix, "acc_other", 70, 0) == IOTCA_ETIMEDOUT);
	ix->loaded = 0;
	CHECK(dev_index_wait(ix, ACC, 1, 0) == IOTCA_ETIMEDOUT);
	CHECK(!dev_index_wt_begin(ix, 80));
	ix_free(ix);
}

/* 20,000 bindings: the tables grow and every one is found both ways. */
static void
test_growth(void)
{
	dev_index *ix = ix_new();
	char sn[32], dn[32];
	int i, bad = 0;

	for (i = 0; i < 20000; i++) {
		snprintf(sn, sizeof(sn), "%X", 0x100000 + i);
		snprintf(dn, sizeof(dn), "dev-%05d", i);
		ev_sn(ix, i % 2 ? ACC : "acc_other", sn, "PK000000001", dn,
		      100 + i);
	}
	CHECK(ix->t.nbuckets >= 16384);
	CHECK_EQ_INT(ix->t.n, 20000);
	for (i = 0; i < 20000; i++) {
		snprintf(sn, sizeof(sn), "%X", 0x100000 + i);
		snprintf(dn, sizeof(dn), "dev-%05d", i);
		bad +=
		    strcmp(dn_of(ix, i % 2 ? ACC : "acc_other", sn), dn) != 0;
		bad += strcmp(sn_of(ix, i % 2 ? ACC : "acc_other",
		                    "PK000000001", dn),
		              sn) != 0;
		bad += dn_of(ix, i % 2 ? "acc_other" : ACC, sn)[0] != '\0';
	}
	CHECK_EQ_INT(bad, 0);
	ix_free(ix);
}

/* After a (re)load at revision R the watch may bring changes up to R
 * again: the snapshot has them, and a replayed PUT of a key deleted since
 * must not bring it back. */
static void
test_replay_after_reload_skipped(void)
{
	dev_index *ix = ix_new();

	ix->base = ix->progress = ix->applied = 90;
	ev_sn(ix, ACC, "D1", "PK000000001", "dev-1", 85); /* deleted at 88 */
	ev_sn(ix, ACC, "D1", NULL, NULL, 88);
	CHECK_EQ_INT(ix->t.n, 0);
	ev_sn(ix, ACC, "D2", "PK000000001", "dev-2", 91);
	CHECK_EQ_STR(dn_of(ix, ACC, "D2"), "dev-2");
	ix_free(ix);
}

int
main(void)
{
	RUN(test_put_delete_and_lookups);
	RUN(test_keys_that_are_not_bindings);
	RUN(test_write_through_is_not_undone);
	RUN(test_tombstones_purged_by_progress);
	RUN(test_write_through_skipped_behind_the_watch);
	RUN(test_account_current);
	RUN(test_replay_after_reload_skipped);
	RUN(test_growth);
	return test_summary();
}
