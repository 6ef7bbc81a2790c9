#!/usr/bin/python3
"""The 10-CA limit under concurrency: two iotca-registry replicas on one
etcd, 20 RegisterCaCertificate calls at once, split across both replicas.

The registry keeps the account's CA count in one etcd key and commits each
registration in a transaction guarded by that key's revision, retrying
when another writer got there first; so however the calls interleave,
exactly as many succeed as there are free slots and the rest are
RESOURCE_EXHAUSTED. ABORTED ("too many concurrent changes; retry") exists
only for a retry loop that runs out of its call's deadline; with the 30 s
deadlines used here it would mean a livelock, so it fails the test.

usage: test_registry_race.py [unittest args]   (IOTCA_BUILD_DIR = build dir)
"""
import collections
import concurrent.futures
import os
import secrets
import sys
import threading
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import iotca_fixture as fx  # noqa: E402

import grpc  # noqa: E402

S = fx.stubs()
pb = S.registry_pb2
Code = grpc.StatusCode
RACERS = 20

R1 = R2 = PKI = None


def setUpModule():
    global R1, R2, PKI
    PKI = fx.Pki()
    R1 = fx.Registry()
    R2 = fx.Registry(etcd=R1.etcd, operator_token=R1.operator_token,
                     internal_token=R1.internal_token)


def tearDownModule():
    PKI.close()
    try:
        R2.close()
    finally:
        R1.close()  # and the etcd; raises unless both exited 0


def make_pairs(code, n):
    """n (CA, verification) pairs with EC keys, made 4 at a time."""
    def one(_):
        ca = PKI.make_ca("race_" + secrets.token_hex(5), key="ec")
        return ca, PKI.make_verification(ca, code, key="ec")
    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        return list(ex.map(one, range(n)))


class RaceTest(unittest.TestCase):
    def tenant(self):
        acc, key = R1.new_tenant()
        md = fx.bearer(key)
        code = R2.stub.GetRegistrationCode(pb.GetRegistrationCodeRequest(),
                                           metadata=md, timeout=10)
        return acc, md, code.registration_code

    @staticmethod
    def request(ca, ver):
        return pb.RegisterCaCertificateRequest(
            name="n_" + secrets.token_hex(6), ca_certificate=ca.pem,
            verification_certificate=ver.pem)

    def race(self, md, pairs):
        """All pairs registered at once, alternating replicas. Returns a
        Counter of status code names and the ids registered."""
        barrier = threading.Barrier(len(pairs))
        results = [None] * len(pairs)

        def go(i):
            stub = (R1, R2)[i % 2].stub
            req = self.request(*pairs[i])
            barrier.wait(30)
            try:
                c = stub.RegisterCaCertificate(req, metadata=md, timeout=30)
                results[i] = ("OK", c.id)
            except grpc.RpcError as e:
                results[i] = (e.code().name, e.details())
        threads = [threading.Thread(target=go, args=(i,))
                   for i in range(len(pairs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertTrue(all(r is not None for r in results), results)
        return (collections.Counter(r[0] for r in results),
                {r[1] for r in results if r[0] == "OK"}, results)

    def listed(self, reg, md):
        r = reg.stub.ListCaCertificates(pb.ListCaCertificatesRequest(),
                                        metadata=md, timeout=10)
        return {c.id for c in r.ca_certificates}

    def test_last_slot(self):
        """9 CAs registered, then 20 at once: exactly 1 wins."""
        acc, md, code = self.tenant()
        pairs = make_pairs(code, 9 + RACERS)
        for i, (ca, ver) in enumerate(pairs[:9]):
            (R1, R2)[i % 2].stub.RegisterCaCertificate(
                self.request(ca, ver), metadata=md, timeout=10)
        counts, won, results = self.race(md, pairs[9:])
        self.assertEqual(counts, {"OK": 1, "RESOURCE_EXHAUSTED": RACERS - 1},
                         results)
        for reg in (R1, R2):
            ids = self.listed(reg, md)
            self.assertEqual(len(ids), 10)
            self.assertTrue(won <= ids)
        # The count is right afterwards: one deleted, one fits again.
        victim = sorted(won)[0]
        R2.stub.UpdateCaCertificateStatus(pb.UpdateCaCertificateStatusRequest(
            id=victim, status=pb.CA_STATUS_INACTIVE), metadata=md, timeout=10)
        R1.stub.DeleteCaCertificate(pb.DeleteCaCertificateRequest(id=victim),
                                    metadata=md, timeout=10)
        spare = [p for p, r in zip(pairs[9:], results) if r[0] != "OK"]
        R2.stub.RegisterCaCertificate(self.request(*spare[0]), metadata=md,
                                      timeout=10)
        with self.assertRaises(grpc.RpcError) as cm:
            R1.stub.RegisterCaCertificate(self.request(*spare[1]),
                                          metadata=md, timeout=10)
        self.assertEqual(cm.exception.code(), Code.RESOURCE_EXHAUSTED)
        self.assertEqual(len(self.listed(R1, md)), 10)

    def test_empty_account(self):
        """0 CAs, then 20 at once: exactly 10 win."""
        acc, md, code = self.tenant()
        pairs = make_pairs(code, RACERS)
        counts, won, results = self.race(md, pairs)
        self.assertEqual(counts, {"OK": 10, "RESOURCE_EXHAUSTED": RACERS - 10},
                         results)
        for reg in (R1, R2):
            self.assertEqual(self.listed(reg, md), won)
        for status, detail in results:
            if status != "OK":
                self.assertIn("10", detail)


if __name__ == "__main__":
    fx.run_tests()
