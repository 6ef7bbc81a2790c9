#!/usr/bin/python3
"""The change feeds end to end: Registry.ListCaChanges and
Association.ListDeviceChanges, as the MQTT edge polls them, with Python
grpcio stubs generated from proto/, a real etcd, the registry and two
association replicas on loopback ports picked at run time
(tests/e2e/iotca_fixture.py: Suite).

What is checked: revision 0 answers the current revision only; every CA
status change, registration and deletion, every association upload,
status change and deletion appears once, oldest first, with a revision
after the one passed; the changes of one etcd revision (an upload) are
never split across answers; more than 1,000 changes is a reset; only the
internal credential is accepted; two replicas answer alike; a feed whose
etcd is gone answers UNAVAILABLE and comes back with it.

Most tests share one Suite and make their own accounts, and look only at
their own accounts' changes (the feeds list everyone's). The etcd-outage
test has a Suite of its own.

usage: test_changes.py [unittest args]   (IOTCA_BUILD_DIR = build dir)
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
rpb = S.registry_pb2
Code = grpc.StatusCode
ENABLED = pb.DEVICE_STATUS_ENABLED
DISABLED = pb.DEVICE_STATUS_DISABLED
UNSPECIFIED = pb.DEVICE_STATUS_UNSPECIFIED
INACTIVE = rpb.CA_STATUS_INACTIVE
ACTIVE = rpb.CA_STATUS_ACTIVE

SUITE = None  # etcd + registry + two association replicas


def setUpModule():
    global SUITE
    SUITE = fx.Suite(replicas=2)
    wait_ready(SUITE)


def wait_ready(suite, timeout=15.0):
    """Waits for every feed of the suite to answer. A service is SERVING
    before its feed runs (the feed starts once etcd has answered): until
    then the feed says UNAVAILABLE, "not started yet"."""
    fetches = [lambda: ca_changes(0, suite=suite)]
    fetches += [lambda a=a: dev_changes(0, a) for a in suite.assocs]
    deadline = time.monotonic() + timeout
    for fetch in fetches:
        while True:
            try:
                fetch()
                break
            except grpc.RpcError as e:
                if (e.code() != Code.UNAVAILABLE or
                        "not started yet" not in e.details() or
                        time.monotonic() > deadline):
                    raise
                time.sleep(0.05)


def tearDownModule():
    SUITE.close()  # raises unless every service exited 0 on SIGTERM


def csv(pk, rows):
    return ("ProductKey,DeviceName,CertSN\n" + "".join(
        "%s,%s,%s\n" % (pk, dn, sn) for dn, sn in rows)).encode()


def rows_of(n, prefix, sn_base):
    return [("%s-%05d" % (prefix, i), "%X" % (sn_base + i))
            for i in range(n)]


def ca_changes(after, md=None, suite=None, timeout=10):
    suite = suite or SUITE
    return suite.reg.stub.ListCaChanges(
        rpb.ListCaChangesRequest(after_revision=after),
        metadata=md if md is not None else suite.reg.internal_md(),
        timeout=timeout)


def dev_changes(after, assoc=None, md=None, timeout=10):
    assoc = assoc or SUITE.assoc
    return assoc.stub.ListDeviceChanges(
        pb.ListDeviceChangesRequest(after_revision=after),
        metadata=md if md is not None else assoc.internal_md(),
        timeout=timeout)


def ca_key(c):
    return (c.ca_id, c.account_id, c.active, c.subject_der)


def dev_key(c):
    return (c.account_id, c.cert_sn, c.ca_id, c.product_key, c.device_name,
            c.device_status)


class Case(unittest.TestCase):
    maxDiff = None

    def assertCode(self, code, fn, *args, **kw):
        try:
            r = fn(*args, **kw)
        except grpc.RpcError as e:
            self.assertEqual(e.code(), code, "message: %s" % e.details())
            self.assertTrue(e.details(), "an empty status message")
            return e.details()
        self.fail("expected %s, got OK: %r" % (code.name, r))

    def check_answer(self, r, after, prev_revision):
        """The rules every answer of one replica follows."""
        self.assertGreaterEqual(r.revision, prev_revision,
                                "one replica's revision went backwards")
        if r.reset:
            self.assertEqual(len(r.changes), 0)
        last = after
        for c in r.changes:
            self.assertGreater(c.revision, after)
            self.assertLessEqual(c.revision, r.revision)
            self.assertGreaterEqual(c.revision, last, "not oldest first")
            last = c.revision

    def follow(self, fetch, after, done, mine, timeout=15.0):
        """Polls fetch(after), passing each answer's revision on, as the
        edge does, until done(changes) holds for the changes mine() keeps.
        Returns (those changes, the last revision). No reset allowed."""
        got, rev, prev = [], after, 0
        deadline = time.monotonic() + timeout
        while True:
            r = fetch(rev)
            self.check_answer(r, rev, prev)
            self.assertFalse(r.reset, "reset from %d" % rev)
            prev = r.revision
            got += [c for c in r.changes if mine(c)]
            rev = max(rev, r.revision)
            if done(got):
                return got, rev
            self.assertLess(time.monotonic(), deadline,
                            "not there after %.0f s; got %s" % (timeout, got))
            time.sleep(0.05)

    def quiet(self, fetch, after, mine, settle=0.5):
        """No change of mine() after `after` for `settle` seconds of
        polling; returns the revision reached."""
        rev, prev = after, 0
        deadline = time.monotonic() + settle
        while time.monotonic() < deadline:
            r = fetch(rev)
            self.check_answer(r, rev, prev)
            self.assertFalse(r.reset)
            prev = r.revision
            self.assertEqual([c for c in r.changes if mine(c)], [])
            rev = max(rev, r.revision)
            time.sleep(0.05)
        return rev

    def caught_up(self, fetch, rev, timeout=15.0):
        """Waits until the replica's current revision is at least rev;
        returns it."""
        deadline = time.monotonic() + timeout
        while True:
            now = self.now(fetch)
            if now >= rev:
                return now
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.05)

    def now(self, fetch):
        """The replica's current revision: after_revision 0."""
        r = fetch(0)
        self.assertEqual(len(r.changes), 0)
        self.assertFalse(r.reset)
        self.assertGreater(r.revision, 0)
        return r.revision


# ------------------------------------------------------------------ CAs

class CaChangesTest(Case):
    def test_revision_zero(self):
        r = ca_changes(0)
        self.assertGreater(r.revision, 0)
        self.assertFalse(r.reset)
        self.assertEqual(len(r.changes), 0)
        # A revision at or past the replica's own: nothing to add, and
        # the replica's own revision, never more.
        r2 = ca_changes(r.revision + 1000)
        self.assertEqual(len(r2.changes), 0)
        self.assertFalse(r2.reset)
        self.assertGreaterEqual(r2.revision, r.revision)
        self.assertLess(r2.revision, r.revision + 1000)

    def test_ca_lifecycle(self):
        """Register (active, with the subject), disable, enable, disable,
        delete: one change each, in order, each with a later revision."""
        reg = SUITE.reg
        acc, key = reg.new_tenant()
        md = fx.bearer(key)

        def mine(c):
            return c.account_id == acc

        rev0 = self.now(ca_changes)
        ca, cert = SUITE.register_ca(key)
        got, rev = self.follow(ca_changes, rev0, lambda g: len(g) >= 1,
                               mine)
        self.assertEqual([ca_key(c) for c in got],
                         [(ca.id, acc, True, cert.subject_der)])
        self.assertEqual(ca.subject_der, cert.subject_der)
        last = got[0].revision
        self.assertGreater(last, rev0)

        def status(s):
            reg.stub.UpdateCaCertificateStatus(
                rpb.UpdateCaCertificateStatusRequest(id=ca.id, status=s),
                metadata=md, timeout=10)

        for s, active in ((INACTIVE, False), (ACTIVE, True),
                          (INACTIVE, False)):
            with self.subTest(status=s):
                status(s)
                got, rev2 = self.follow(ca_changes, rev,
                                        lambda g: len(g) >= 1, mine)
                self.assertEqual([ca_key(c) for c in got],
                                 [(ca.id, acc, active, cert.subject_der)])
                self.assertGreater(got[0].revision, last)
                self.assertGreater(got[0].revision, rev)
                last, rev = got[0].revision, rev2
        # Setting the status it has is no change.
        status(INACTIVE)
        rev = self.quiet(ca_changes, rev, mine)
        reg.stub.DeleteCaCertificate(
            rpb.DeleteCaCertificateRequest(id=ca.id), metadata=md,
            timeout=10)
        got, rev = self.follow(ca_changes, rev, lambda g: len(g) >= 1, mine)
        self.assertEqual([ca_key(c) for c in got], [(ca.id, acc, False, b"")])
        self.assertGreater(got[0].revision, last)

    def test_new_ca_inactive_is_no_change(self):
        """A CA registered INACTIVE is nothing the edge needs; a second,
        ACTIVE one is, and both are seen from one revision."""
        acc, key = SUITE.reg.new_tenant()

        def mine(c):
            return c.account_id == acc

        rev0 = self.now(ca_changes)
        off, _ = SUITE.register_ca(key, status=INACTIVE)
        on, cert = SUITE.register_ca(key)
        got, _ = self.follow(ca_changes, rev0, lambda g: len(g) >= 1, mine)
        self.assertEqual([ca_key(c) for c in got],
                         [(on.id, acc, True, cert.subject_der)])
        self.assertNotEqual(off.id, on.id)

    def test_credentials_and_arguments(self):
        acc, key = SUITE.reg.new_tenant()
        for name, md in (("none", []), ("unknown", fx.bearer("in-wrong")),
                         ("garbage", fx.bearer("k_" + "0" * 40))):
            with self.subTest(token=name):
                self.assertCode(Code.UNAUTHENTICATED, ca_changes, 0, md=md)
        for name, md in (("tenant", fx.bearer(key)),
                         ("operator", SUITE.reg.op_md())):
            with self.subTest(token=name):
                msg = self.assertCode(Code.PERMISSION_DENIED, ca_changes, 0,
                                      md=md)
                self.assertIn("internal", msg)
        for after in (-1, -(1 << 62)):
            with self.subTest(after=after):
                msg = self.assertCode(Code.INVALID_ARGUMENT, ca_changes,
                                      after)
                self.assertIn("after_revision", msg)


# -------------------------------------------------------------- devices

class DeviceChangesTest(Case):
    def tenant(self):
        return SUITE.tenant()

    def test_revision_zero(self):
        for a in SUITE.assocs:
            with self.subTest(replica=a.addr):
                r = dev_changes(0, a)
                self.assertGreater(r.revision, 0)
                self.assertFalse(r.reset)
                self.assertEqual(len(r.changes), 0)

    def test_upload_status_delete(self):
        """An upload of 3 rows: 3 ENABLED changes of one revision; then
        disable a device (DISABLED), delete an association (UNSPECIFIED,
        with the device it had), enable the device again."""
        t = self.tenant()
        A = SUITE.assoc

        def mine(c):
            return c.account_id == t.account_id

        def fetch(after):
            return dev_changes(after, A)

        rev0 = self.now(fetch)
        rows = [("chg-1", "0C1"), ("chg-2", "C2"), ("chg-3", "0xC3")]
        r = A.upload(t.key, t.ca_id, csv(t.pk, rows))
        self.assertTrue(r.committed, list(r.errors))
        got, rev = self.follow(fetch, rev0, lambda g: len(g) >= 3, mine)
        self.assertEqual(sorted(dev_key(c) for c in got), sorted(
            (t.account_id, sn, t.ca_id, t.pk, dn, ENABLED)
            for dn, sn in (("chg-1", "C1"), ("chg-2", "C2"),
                           ("chg-3", "C3"))))
        self.assertEqual(len({c.revision for c in got}), 1,
                         "one upload is one etcd revision")
        last = got[0].revision
        self.assertGreater(last, rev0)

        A.stub.UpdateDeviceStatus(pb.UpdateDeviceStatusRequest(
            product_key=t.pk, device_name="chg-2", status=DISABLED),
            metadata=t.md, timeout=10)
        got, rev = self.follow(fetch, rev, lambda g: len(g) >= 1, mine)
        self.assertEqual([dev_key(c) for c in got], [
            (t.account_id, "C2", t.ca_id, t.pk, "chg-2", DISABLED)])
        self.assertGreater(got[0].revision, last)
        last = got[0].revision

        A.stub.DeleteAssociation(pb.DeleteAssociationRequest(
            ca_id=t.ca_id, cert_sn="c3"), metadata=t.md, timeout=10)
        got, rev = self.follow(fetch, rev, lambda g: len(g) >= 1, mine)
        self.assertEqual([dev_key(c) for c in got], [
            (t.account_id, "C3", t.ca_id, t.pk, "chg-3", UNSPECIFIED)])
        self.assertGreater(got[0].revision, last)
        last = got[0].revision

        A.stub.UpdateDeviceStatus(pb.UpdateDeviceStatusRequest(
            product_key=t.pk, device_name="chg-2", status=ENABLED),
            metadata=t.md, timeout=10)
        got, rev = self.follow(fetch, rev, lambda g: len(g) >= 1, mine)
        self.assertEqual([dev_key(c) for c in got], [
            (t.account_id, "C2", t.ca_id, t.pk, "chg-2", ENABLED)])
        self.assertGreater(got[0].revision, last)
        # Everything from the start, in one answer, oldest first.
        r = fetch(rev0)
        self.check_answer(r, rev0, 0)
        self.assertEqual([(c.cert_sn, c.device_status)
                          for c in r.changes if mine(c)][3:],
                         [("C2", DISABLED), ("C3", UNSPECIFIED),
                          ("C2", ENABLED)])

    def test_credentials_and_arguments(self):
        t = self.tenant()
        for a in SUITE.assocs:
            for name, md in (("none", []),
                             ("unknown", fx.bearer("in-wrong"))):
                with self.subTest(replica=a.addr, token=name):
                    self.assertCode(Code.UNAUTHENTICATED, dev_changes, 0, a,
                                    md=md)
            for name, md in (("tenant", t.md),
                             ("operator", SUITE.reg.op_md())):
                with self.subTest(replica=a.addr, token=name):
                    msg = self.assertCode(Code.PERMISSION_DENIED,
                                          dev_changes, 0, a, md=md)
                    self.assertIn("internal", msg)
            with self.subTest(replica=a.addr, after=-1):
                msg = self.assertCode(Code.INVALID_ARGUMENT, dev_changes,
                                      -1, a)
                self.assertIn("after_revision", msg)

    def test_large_upload_is_a_reset(self):
        """2,000 rows are 2,000 changes of one revision: asked from before
        them, a replica answers reset (never a part of them); asked from
        the revision it then gives, nothing of them is left."""
        t = self.tenant()

        def mine(c):
            return c.account_id == t.account_id

        top = 0
        for a in SUITE.assocs:
            with self.subTest(replica=a.addr):
                # From after the previous replica's upload, once this
                # replica has seen it too.
                rev0 = self.caught_up(lambda x: dev_changes(x, a), top)
                base = 0x20000 if a is SUITE.assocs[0] else 0x30000
                r = a.upload(t.key, t.ca_id,
                             csv(t.pk, rows_of(2000, "big%x" % base, base)))
                self.assertTrue(r.committed, list(r.errors)[:3])
                deadline = time.monotonic() + 15
                while True:
                    r = dev_changes(rev0, a)
                    self.check_answer(r, rev0, 0)
                    self.assertEqual([c for c in r.changes if mine(c)], [],
                                     "a part of one revision's changes")
                    if r.reset:
                        break
                    self.assertLess(time.monotonic(), deadline)
                    time.sleep(0.05)
                self.assertGreater(r.revision, rev0)
                top = self.quiet(lambda x: dev_changes(x, a), r.revision,
                                 mine, settle=0.3)

    def test_one_revision_is_never_split(self):
        """Pollers hammering both replicas during uploads of 600 rows (one
        revision each, under the 1,000 cap) see each upload whole in one
        answer, never a part now and the rest never."""
        t = self.tenant()
        stop = threading.Event()
        seen = {a.addr: [] for a in SUITE.assocs}
        errors = []
        start = {a.addr: self.now(lambda x, a=a: dev_changes(x, a))
                 for a in SUITE.assocs}

        def poll(a):
            rev = start[a.addr]
            try:
                while not stop.is_set():
                    r = dev_changes(rev, a)
                    if r.reset:
                        errors.append("%s: reset from %d" % (a.addr, rev))
                        return
                    n = sum(1 for c in r.changes
                            if c.account_id == t.account_id)
                    if n:
                        seen[a.addr].append(n)
                    rev = max(rev, r.revision)
            except grpc.RpcError as e:
                errors.append("%s: %s" % (a.addr, e))

        pollers = [threading.Thread(target=poll, args=(a,))
                   for a in SUITE.assocs]
        for p in pollers:
            p.start()
        try:
            for i in range(3):
                r = SUITE.assoc.upload(t.key, t.ca_id, csv(
                    t.pk, rows_of(600, "split%d" % i, 0x40000 + 1000 * i)))
                self.assertTrue(r.committed, list(r.errors)[:3])
            deadline = time.monotonic() + 20
            while (any(sum(v) < 1800 for v in seen.values()) and
                   not errors and time.monotonic() < deadline):
                time.sleep(0.1)
            time.sleep(0.3)  # time for a late, wrong extra answer
        finally:
            stop.set()
            for p in pollers:
                p.join()
        self.assertEqual(errors, [])
        for addr, counts in seen.items():
            self.assertEqual(counts, [600, 600, 600], addr)

    def test_two_replicas_agree(self):
        """Both replicas, asked from the same revision, answer the same
        changes once they have caught up."""
        t = self.tenant()
        A, B = SUITE.assocs

        def mine(c):
            return c.account_id == t.account_id

        rev0 = max(self.now(lambda x: dev_changes(x, A)),
                   self.now(lambda x: dev_changes(x, B)))
        r = A.upload(t.key, t.ca_id, csv(t.pk, rows_of(5, "two", 0x5000)))
        self.assertTrue(r.committed)
        B.stub.UpdateDeviceStatus(pb.UpdateDeviceStatusRequest(
            product_key=t.pk, device_name="two-00001", status=DISABLED),
            metadata=t.md, timeout=10)
        B.stub.DeleteAssociation(pb.DeleteAssociationRequest(
            ca_id=t.ca_id, cert_sn="5004"), metadata=t.md, timeout=10)
        want = 7
        answers = {}
        for a in (A, B):
            got, _ = self.follow(lambda x, a=a: dev_changes(x, a), rev0,
                                 lambda g: len(g) >= want, mine)
            self.assertEqual(len(got), want)
            answers[a.addr] = dev_changes(rev0, a)
        ra, rb = answers[A.addr], answers[B.addr]
        upto = min(ra.revision, rb.revision)

        def listed(r):
            return [(c.revision,) + dev_key(c) for c in r.changes
                    if c.revision <= upto]

        self.assertEqual(listed(ra), listed(rb))
        mine_a = [x[2:] for x in listed(ra) if x[1] == t.account_id]
        self.assertEqual(mine_a[5:], [
            ("5001", t.ca_id, t.pk, "two-00001", DISABLED),
            ("5004", t.ca_id, t.pk, "two-00004", UNSPECIFIED)])
        # An edge moving between replicas, keeping the largest revision,
        # gets the rest from either: here, nothing of this account.
        top = max(ra.revision, rb.revision)
        for a in (A, B):
            r = dev_changes(top, a)
            self.assertFalse(r.reset)
            self.assertEqual([c for c in r.changes if mine(c)], [])


# ------------------------------------------------------------ etcd down

class EtcdDownTest(Case):
    def test_unavailable_while_etcd_is_down(self):
        """With etcd stopped both feeds answer UNAVAILABLE; when it is back
        they answer again, and changes made then appear."""
        s = fx.Suite()
        try:
            wait_ready(s)
            def reg_fetch(x):
                return ca_changes(x, suite=s)

            def dev_fetch(x):
                return dev_changes(x, s.assoc)

            ca_rev, dev_rev = self.now(reg_fetch), self.now(dev_fetch)
            t = s.tenant()  # its CA's registration is after ca_rev
            s.reg.etcd.stop()
            for name, fetch in (("registry", reg_fetch),
                                ("association", dev_fetch)):
                deadline = time.monotonic() + 12
                while True:
                    try:
                        fetch(0)
                    except grpc.RpcError as e:
                        self.assertEqual(e.code(), Code.UNAVAILABLE,
                                         e.details())
                        self.assertIn("etcd", e.details())
                        break
                    self.assertLess(time.monotonic(), deadline,
                                    "%s still answers" % name)
                    time.sleep(0.2)
            s.reg.etcd.restart()
            for fetch in (reg_fetch, dev_fetch):
                deadline = time.monotonic() + 15
                while True:
                    try:
                        fetch(0)
                        break
                    except grpc.RpcError as e:
                        self.assertEqual(e.code(), Code.UNAVAILABLE)
                        self.assertLess(time.monotonic(), deadline)
                        time.sleep(0.2)
            r = s.assoc.upload(t.key, t.ca_id, csv(t.pk, [("back-1", "B1")]))
            self.assertTrue(r.committed)
            got, _ = self.follow(dev_fetch, dev_rev, lambda g: len(g) >= 1,
                                 lambda c: c.account_id == t.account_id)
            self.assertEqual([dev_key(c) for c in got], [
                (t.account_id, "B1", t.ca_id, t.pk, "back-1", ENABLED)])
            s.reg.stub.UpdateCaCertificateStatus(
                rpb.UpdateCaCertificateStatusRequest(id=t.ca_id,
                                                     status=INACTIVE),
                metadata=t.md, timeout=10)
            got, _ = self.follow(reg_fetch, ca_rev, lambda g: len(g) >= 2,
                                 lambda c: c.account_id == t.account_id)
            self.assertEqual([(c.ca_id, c.active) for c in got],
                             [(t.ca_id, True), (t.ca_id, False)])
        finally:
            s.close()


if __name__ == "__main__":
    fx.run_tests()
