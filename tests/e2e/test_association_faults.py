#!/usr/bin/python3
"""iotca-association end to end, the hard cases of the all-or-nothing
upload (association.h: every row of a file in ONE etcd transaction,
guarded by the account's version key):

  * a crash just before and just after the commit (test builds compile in
    IOTCA_FAULT_ABORT=before-commit|after-commit, which abort() the
    process at that point of an upload): before, nothing of the file is in
    etcd; after, all of it is, and re-sending the file is accepted as
    unchanged;
  * SIGKILL from outside at several moments of an upload, spread over
    its duration (while the file is parsed and checked, while the
    transaction is on its way to etcd or being applied, after etcd
    answered): after a restart all of the file is visible or none of it,
    and sending it again commits it;
  * concurrent uploads of overlapping files on two replicas: an SN (and a
    device) is bound at most once, and every upload is either wholly
    committed or wholly refused.

Uses tests/e2e/iotca_fixture.py (Suite, Association) on loopback ports
picked at run time. Under sanitizers the injected abort() is reported by
ASan as a deadly signal: expected for those processes only.

usage: test_association_faults.py [unittest args]  (IOTCA_BUILD_DIR = build)
"""
import os
import sys
import threading
import time
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import iotca_fixture as fx  # noqa: E402

import grpc  # noqa: E402

S = fx.stubs()
pb = S.association_pb2
Code = grpc.StatusCode
ENABLED = pb.DEVICE_STATUS_ENABLED
DISABLED = pb.DEVICE_STATUS_DISABLED
SN_BOUND = pb.ROW_ERROR_CODE_CERT_SN_ALREADY_BOUND
DEV_BOUND = pb.ROW_ERROR_CODE_DEVICE_ALREADY_BOUND
HEADER = "ProductKey,DeviceName,CertSN"

SUITE = None


def setUpModule():
    global SUITE
    SUITE = fx.Suite(replicas=2)


def tearDownModule():
    SUITE.close()  # raises unless every service exited 0 on SIGTERM


def csv(pk, rows):
    return (HEADER + "\r\n" + "".join("%s,%s,%s\r\n" % (pk, dn, sn)
                                      for dn, sn in rows)).encode()


class Case(unittest.TestCase):
    maxDiff = None

    def assoc_map(self, assoc, t):
        """{cert_sn: (product_key, device_name)} of t's CA, asserting that
        no SN is listed twice."""
        out = {}
        for a in assoc.list_all(t.key, t.ca_id):
            self.assertNotIn(a.cert_sn, out, "SN %s listed twice" % a.cert_sn)
            self.assertEqual(a.ca_id, t.ca_id)
            out[a.cert_sn] = (a.product_key, a.device_name)
        return out

    def stored(self, t):
        """How many associations (SN keys) t's account has in etcd."""
        return SUITE.reg.etcd.count("/iotca/sn/%s/" % t.account_id)


# ------------------------------------------------------------------ crashes

class CrashTest(Case):
    def crash_upload(self, t, point, data):
        """Starts an association that aborts at `point`, uploads data
        through it: the call fails UNAVAILABLE and the process died of the
        injected fault."""
        a = fx.Association(SUITE.reg, {"IOTCA_FAULT_ABORT": point})
        try:
            t0 = time.monotonic()
            with self.assertRaises(grpc.RpcError) as cm:
                a.upload(t.key, t.ca_id, data, timeout=120)
            self.assertEqual(cm.exception.code(), Code.UNAVAILABLE,
                             cm.exception.details())
            rc = a.svc.proc.wait(60)
            sys.stderr.write("(%s: failed after %.1f s, exit %s) "
                             % (point, time.monotonic() - t0, rc))
            self.assertNotEqual(rc, 0)
            self.assertIn("FAULT-INJECTED", a.svc.log_text())
            self.assertIn("point=%s" % point, a.svc.log_text())
        finally:
            a.close(check=False)

    def test_crash_before_and_after_commit(self):
        t = SUITE.tenant()
        rows = [("crash-%05d" % i, "%X" % (0xC0000 + i)) for i in range(10000)]
        data = csv(t.pk, rows)
        sample = rows[:3] + rows[4998:5001] + rows[-3:]

        # Killed just before the commit: none of the file is anywhere.
        self.crash_upload(t, "before-commit", data)
        fresh = fx.Association(SUITE.reg)  # a restart without the switch
        try:
            self.assertEqual(fresh.list_all(t.key, t.ca_id), [])
            self.assertEqual(self.stored(t), 0)
            for dn, sn in sample:
                with self.assertRaises(grpc.RpcError) as cm:
                    fresh.resolve(t.ca_id, sn, t.account_id)
                self.assertEqual(cm.exception.code(), Code.NOT_FOUND)
                with self.assertRaises(grpc.RpcError) as cm:
                    fresh.stub.UpdateDeviceStatus(
                        pb.UpdateDeviceStatusRequest(
                            product_key=t.pk, device_name=dn,
                            status=DISABLED),
                        metadata=t.md, timeout=10)
                self.assertEqual(cm.exception.code(), Code.NOT_FOUND)
        finally:
            fresh.close()

        # Killed just after the commit: all of it is there.
        self.crash_upload(t, "after-commit", data)
        fresh = fx.Association(SUITE.reg)
        try:
            self.assertEqual(self.stored(t), 10000)
            self.assertEqual(self.assoc_map(fresh, t),
                             {sn: (t.pk, dn) for dn, sn in rows})
            for dn, sn in sample:
                r = fresh.resolve(t.ca_id, sn, t.account_id)
                self.assertEqual((r.product_key, r.device_name,
                                  r.device_status), (t.pk, dn, ENABLED))
            # The client saw UNAVAILABLE (outcome unknown): it sends the
            # file again, which is accepted and changes nothing.
            r = fresh.upload(t.key, t.ca_id, data, timeout=120)
            self.assertTrue(r.committed, list(r.errors)[:5])
            self.assertEqual((r.accepted_rows, r.unchanged_rows,
                              r.total_errors), (10000, 10000, 0))
            self.assertEqual(self.stored(t), 10000)
        finally:
            fresh.close()


    def check_all_or_nothing(self, a, t, rows):
        """What a restarted replica shows of the file: "all" or "none",
        asserted to be one of the two (list, etcd keys, resolve)."""
        got = self.assoc_map(a, t)
        stored = self.stored(t)
        if got:
            self.assertEqual(got, {sn: (t.pk, dn) for dn, sn in rows})
            self.assertEqual(stored, len(rows))
            state = "all"
        else:
            self.assertEqual(stored, 0)
            state = "none"
        for dn, sn in rows[:2] + rows[-2:]:
            if state == "all":
                r = a.resolve(t.ca_id, sn, t.account_id)
                self.assertEqual((r.product_key, r.device_name), (t.pk, dn))
            else:
                with self.assertRaises(grpc.RpcError) as cm:
                    a.resolve(t.ca_id, sn, t.account_id)
                self.assertEqual(cm.exception.code(), Code.NOT_FOUND)
        return state

    def test_sigkill_during_upload(self):
        """An upload's duration D is measured on a replica of its own; then
        for each fraction f, a fresh replica receives a 10,000-row file and
        is SIGKILLed f*D after the call was sent. Which phase each kill
        lands in varies with the machine's load; the assertion holds in
        every phase."""
        base = 0xD0000000

        def rows_of(k):
            return [("kill%d-%05d" % (k, i), "%X" % (base + k * 0x10000 + i))
                    for i in range(10000)]

        t = SUITE.tenant()
        a = fx.Association(SUITE.reg)
        try:
            t0 = time.monotonic()
            r = a.upload(t.key, t.ca_id, csv(t.pk, rows_of(0)), timeout=120)
            duration = time.monotonic() - t0
            self.assertTrue(r.committed, list(r.errors)[:3])
        finally:
            a.close()
        seen = []
        for k, frac in enumerate((0.05, 0.3, 0.6, 0.9, 1.2), start=1):
            t = SUITE.tenant()
            rows = rows_of(k)
            data = csv(t.pk, rows)
            a = fx.Association(SUITE.reg)
            result = {}

            def send():
                try:
                    result["r"] = a.upload(t.key, t.ca_id, data, timeout=120)
                except grpc.RpcError as e:
                    result["e"] = e.code()

            th = threading.Thread(target=send)
            th.start()
            time.sleep(frac * duration)
            a.svc.proc.kill()  # SIGKILL
            a.svc.proc.wait(30)
            th.join(60)
            a.close(check=False)
            # The call either finished before the kill or failed with it.
            if "e" in result:
                self.assertEqual(result["e"], Code.UNAVAILABLE)
            fresh = fx.Association(SUITE.reg)
            try:
                state = self.check_all_or_nothing(fresh, t, rows)
                if "r" in result:
                    self.assertEqual(state, "all")
                seen.append("%.2fD:%s" % (frac, state))
                # The client could not know: it sends the file again.
                r = fresh.upload(t.key, t.ca_id, data, timeout=120)
                self.assertTrue(r.committed, list(r.errors)[:3])
                self.assertEqual((r.accepted_rows, r.unchanged_rows),
                                 (10000, 10000 if state == "all" else 0))
                self.assertEqual(self.check_all_or_nothing(fresh, t, rows),
                                 "all")
            finally:
                fresh.close()
        sys.stderr.write("(upload %.2f s; %s) " % (duration, ", ".join(seen)))


# ------------------------------------------------- the replicas' indexes

class IndexSyncTest(Case):
    """Each replica checks uploads against its in-memory index of the
    associations (devindex.c), which a watch keeps current. What one
    replica committed is what the other checks against at once: the
    account's version key makes it wait until its index has caught up."""

    def test_other_replica_sees_a_commit_at_once(self):
        a0, a1 = SUITE.assocs[0], SUITE.assocs[1]
        for k in range(20):
            t = SUITE.tenant()
            rows = [("sync%d-%04d" % (k, i), "%X" % (0xE0000 + i))
                    for i in range(2000)]
            r = a0.upload(t.key, t.ca_id, csv(t.pk, rows))
            self.assertTrue(r.committed)
            # the device is found on the other replica right away ...
            got = a1.stub.UpdateDeviceStatus(
                pb.UpdateDeviceStatusRequest(product_key=t.pk,
                                             device_name=rows[-1][0],
                                             status=DISABLED),
                metadata=t.md, timeout=10)
            self.assertEqual(got.status, DISABLED)
            # ... and its SN and device are taken there
            r = a1.upload(t.key, t.ca_id,
                          csv(t.pk, [("other-dev", rows[-1][1]),
                                     (rows[0][0], "ABCDEF")]))
            self.assertFalse(r.committed)
            self.assertEqual(sorted((e.line, e.code) for e in r.errors),
                             [(2, SN_BOUND), (3, DEV_BOUND)])
            # a delete on one replica frees the SN on the other at once
            a0.stub.DeleteAssociation(
                pb.DeleteAssociationRequest(ca_id=t.ca_id,
                                            cert_sn=rows[-1][1]),
                metadata=t.md, timeout=10)
            r = a1.upload(t.key, t.ca_id,
                          csv(t.pk, [("other-dev", rows[-1][1])]))
            self.assertTrue(r.committed, list(r.errors))
            self.assertEqual(a1.resolve(t.ca_id, rows[-1][1],
                                        t.account_id).device_name,
                             "other-dev")


# -------------------------------------------------------------------- races

class RaceTest(Case):
    ROUNDS = 3
    FILES = 10

    def race(self, t, files):
        """Uploads files[k] concurrently (one thread each, replicas
        alternating, all released at once). Returns per file "committed",
        "refused" (committed false, its errors) or "aborted"."""
        barrier = threading.Barrier(len(files))
        out = [None] * len(files)

        def run(k):
            a = SUITE.assocs[k % len(SUITE.assocs)]
            barrier.wait()
            try:
                r = a.upload(t.key, t.ca_id, csv(t.pk, files[k]), timeout=60)
                out[k] = ("committed", r) if r.committed else ("refused", r)
            except grpc.RpcError as e:
                out[k] = ("aborted" if e.code() == Code.ABORTED
                          else "failed %s: %s" % (e.code(), e.details()), e)

        threads = [threading.Thread(target=run, args=(k,))
                   for k in range(len(files))]
        for th in threads:
            th.start()
        for th in threads:
            th.join(120)
        return out

    def check_outcome(self, k, outcome, rows, allowed_codes):
        kind, r = outcome
        self.assertIn(kind, ("committed", "refused", "aborted"),
                      "file %d: %s" % (k, kind))
        if kind == "committed":
            self.assertEqual((r.accepted_rows, r.unchanged_rows,
                              r.total_errors), (len(rows), 0, 0))
        elif kind == "refused":
            self.assertEqual(r.accepted_rows, 0)
            self.assertGreater(r.total_errors, 0)
            self.assertTrue({e.code for e in r.errors} <= allowed_codes,
                            [(e.line, e.code, e.message) for e in r.errors])

    def check_state(self, t, files, kinds):
        """Every committed file is wholly bound to its devices, every other
        one not at all; no SN and no device is bound twice."""
        got = self.assoc_map(SUITE.assocs[1], t)
        devices = [dn for _, dn in got.values()]
        self.assertEqual(len(devices), len(set(devices)),
                         "a device is bound twice")
        want = {}
        for k, rows in enumerate(files):
            if kinds[k] == "committed":
                for dn, sn in rows:
                    self.assertNotIn(sn, want, "two committed files hold %s"
                                     % sn)
                    want[sn] = (t.pk, dn)
        self.assertEqual(got, want)
        self.assertEqual(self.stored(t), len(want))
        for k, rows in enumerate(files):
            if kinds[k] != "committed":
                self.assertFalse([sn for dn, sn in rows
                                  if got.get(sn) == (t.pk, dn)],
                                 "file %d was refused, yet some of its rows "
                                 "are bound" % k)

    def run_rounds(self, make_files, allowed_codes):
        tally = {"committed": 0, "refused": 0, "aborted": 0}
        for _ in range(self.ROUNDS):
            t = SUITE.tenant()
            files = make_files()
            out = self.race(t, files)
            for k, o in enumerate(out):
                self.assertIsNotNone(o, "upload %d did not finish" % k)
                self.check_outcome(k, o, files[k], allowed_codes)
            kinds = [o[0] for o in out]
            self.assertGreaterEqual(kinds.count("committed"), 1)
            self.check_state(t, files, kinds)
            for kind in kinds:
                tally[kind] += 1
            # ABORTED means "send it again": once more, one at a time.
            for k in [k for k, kind in enumerate(kinds) if kind == "aborted"]:
                r = SUITE.assoc.upload(t.key, t.ca_id, csv(t.pk, files[k]))
                kinds[k] = "committed" if r.committed else "refused"
                self.check_outcome(k, (kinds[k], r), files[k], allowed_codes)
            self.check_state(t, files, kinds)
        sys.stderr.write("(%s) " % ", ".join("%s %d" % kv
                                             for kv in tally.items()))

    def test_overlapping_sns(self):
        """File k holds SNs k*50 .. k*50+99 with devices of its own."""
        def files():
            return [[("f%d-%03d" % (k, i), "%X" % (0x5000 + k * 50 + i))
                     for i in range(100)] for k in range(self.FILES)]
        self.run_rounds(files, {SN_BOUND})

    def test_overlapping_devices(self):
        """File k holds devices k*50 .. k*50+99 with SNs of its own."""
        def files():
            return [[("dev-%04d" % (k * 50 + i), "%X" % (0x9000 + k * 100 + i))
                     for i in range(100)] for k in range(self.FILES)]
        self.run_rounds(files, {DEV_BOUND})


if __name__ == "__main__":
    fx.run_tests()
