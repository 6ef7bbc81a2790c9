#!/usr/bin/python3
"""The edge under faults of what it depends on, with real processes:

  * the association service SIGKILLed: devices the edge has cached still
    connect; a device it never saw is refused cleanly (CONNACK 3, "server
    unavailable", and an auth-failure count); once the service is back on
    its address, that device connects;
  * the registry SIGKILLed: the same for a CA the edge has cached and one
    it has not (refused in the TLS handshake);
  * etcd stopped: cached devices still connect, unknown ones are refused,
    nothing crashes; after etcd returns, new associations work again.
In every case the edge process keeps running and exits 0 at the end."""

import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import iotca_fixture as fx  # noqa: E402

W = {}


def connack(edge, dev, timeout=8):
    """The CONNACK code mosquitto_sub reports for dev (0 on success), or
    "tls" when the connection failed before any CONNACK."""
    p = subprocess.run(
        ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(edge.port),
         "--cafile", edge.server_cert.pem_path, "--insecure",
         "--cert", dev.pem_path, "--key", dev.key_path,
         "-i", "fault|securemode=2|", "-t", "/ext/#", "-C", "1",
         "-W", str(timeout), "-d"],
        capture_output=True, text=True, timeout=timeout + 5)
    out = p.stdout + p.stderr
    if "received CONNACK (0)" in out and "/ext/auth/identity/response" \
            in out:
        return 0
    for line in out.splitlines():
        if "received CONNACK (" in line:
            return int(line.split("CONNACK (")[1].split(")")[0])
    return "tls"


def until(pred, timeout=15.0, step=0.3):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(step)


def setUpModule():
    s = W["suite"] = fx.Suite()
    t = W["t"] = s.tenant(ca=False)
    W["cas"] = []
    for name in ("faultca1", "faultca2"):
        ca = s.pki.make_ca(name + os.urandom(3).hex(), key="rsa:2048")
        ver = s.pki.make_verification(ca, s.reg.regcode(t.key))
        reg = s.reg.register(t.key, name, ca, ver)
        W["cas"].append((ca, reg.id))
    W["serial"] = 0x7000
    # Devices associated before any edge runs: an edge learns about
    # associations made while it runs from the change feed (and caches
    # them), so a device "the edge never saw" must predate it.
    W["fresh_a"] = device(0, "fresh-a1")
    W["other_r"] = device(1, "other-r1")


def device(ca_index, name, associate=True):
    ca, ca_id = W["cas"][ca_index]
    W["serial"] += 1
    sn = "%X" % W["serial"]
    dev = W["suite"].pki.make_device(ca, name, sn)
    if associate:
        r = W["suite"].assoc.upload(
            W["t"].key, ca_id,
            "ProductKey,DeviceName,CertSN\n%s,%s,%s\n" % (W["t"].pk, name,
                                                          sn))
        assert r.committed, r
    return dev


def tearDownModule():
    W["suite"].close()


class EdgeFaults(unittest.TestCase):

    def setUp(self):
        self.edge = fx.Edge(W["suite"], extra_env={
            "IOTCA_EDGE_NEGATIVE_TTL_S": "0",
            "IOTCA_EDGE_LOOKUP_TIMEOUT_MS": "1500",
            "IOTCA_LOG_LEVEL": "info"})

    def tearDown(self):
        self.edge.close()  # asserts exit status 0

    def failures(self, reason):
        return self.edge.metrics().get(
            'iotca_edge_auth_failures_total{reason="%s"}' % reason, 0)

    def test_association_killed(self):
        known = device(0, "known-a1")
        fresh = W["fresh_a"]
        self.assertEqual(connack(self.edge, known), 0)
        svc = W["suite"].assoc.svc
        svc.kill()
        try:
            self.assertEqual(connack(self.edge, known), 0,
                             "a cached device must still connect")
            before = self.failures("lookup_failed")
            self.assertEqual(connack(self.edge, fresh), 3,
                             fx._tail(self.edge.log_path))
            self.assertGreater(self.failures("lookup_failed"), before)
        finally:
            svc.restart()
        self.assertEqual(until(lambda: connack(self.edge, fresh) == 0), True,
                         "the device did not connect after the association "
                         "service returned:\n" + fx._tail(self.edge.log_path))

    def test_registry_killed(self):
        known = device(0, "known-r1")
        other = W["other_r"]  # its CA is not cached by this edge
        self.assertEqual(connack(self.edge, known), 0)
        svc = W["suite"].reg.svc
        svc.kill()
        try:
            self.assertEqual(connack(self.edge, known), 0)
            self.assertEqual(connack(self.edge, other), "tls")
            self.assertGreaterEqual(self.failures("lookup_failed"), 1)
        finally:
            svc.restart()
        self.assertEqual(until(lambda: connack(self.edge, other) == 0), True,
                         fx._tail(self.edge.log_path))

    def test_etcd_stopped(self):
        known = device(0, "known-e1")
        self.assertEqual(connack(self.edge, known), 0)
        etcd = W["suite"].reg.etcd
        etcd.stop()
        try:
            self.assertEqual(connack(self.edge, known), 0,
                             "a cached device must connect without etcd")
            # a device the services cannot look up is refused, cleanly
            stranger = W["suite"].pki.make_device(W["cas"][0][0],
                                                  "stranger-e1", "7FFFF1")
            self.assertIn(connack(self.edge, stranger), (3, 5))
            self.assertIsNone(self.edge.proc.poll(), "the edge died")
        finally:
            etcd.restart()
        later = until(lambda: W["suite"].assoc.svc and
                      self._upload_ok(), timeout=30)
        self.assertTrue(later, "uploads did not recover after etcd")
        self.assertEqual(until(lambda: connack(self.edge, later) == 0), True,
                         fx._tail(self.edge.log_path))

    def _upload_ok(self):
        try:
            return device(0, "late-e%d" % W["serial"])
        except Exception:
            return None


if __name__ == "__main__":
    fx.run_tests()
