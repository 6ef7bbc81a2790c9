#!/usr/bin/python3
"""IOTCA_PROBE_LISTEN on the gRPC services: plain HTTP /healthz (alive),
/readyz (200 once start-up is done, also through a later etcd outage) and
/metrics (Prometheus text with the gRPC call counters and etcd's
reachability), for Kubernetes probes where the gRPC port speaks TLS."""

import os
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import iotca_fixture as fx  # noqa: E402


def until(pred, timeout=15.0):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


class ServiceProbes(unittest.TestCase):

    def test_registry_and_association_probes(self):
        rport, aport = fx.free_port(), fx.free_port()
        reg = fx.Registry(extra_env={
            "IOTCA_PROBE_LISTEN": "127.0.0.1:%d" % rport})
        try:
            assoc = fx.Association(reg, {
                "IOTCA_PROBE_LISTEN": "127.0.0.1:%d" % aport})
            try:
                for port in (rport, aport):
                    self.assertEqual(fx.http_get(port, "/healthz")[0], 200)
                    self.assertTrue(until(
                        lambda: fx.http_get(port, "/readyz")[0] == 200))
                reg.new_account()  # one call the counters must show
                status, body = fx.http_get(rport, "/metrics")
                self.assertEqual(status, 200)
                m = re.search(r'(?m)^iotca_rpc_calls_total\{result="received"'
                              r'\} (\d+)$', body.decode())
                self.assertIsNotNone(m, body)
                self.assertGreaterEqual(int(m.group(1)), 1)
                self.assertIn("iotca_etcd_reachable 1", body.decode())
                reg.etcd.stop()
                try:
                    # etcd's outage shows in the metrics; the pods stay
                    # ready (every replica shares that etcd, and lookups
                    # are answered from memory) and alive
                    self.assertTrue(until(lambda: "iotca_etcd_reachable 0"
                                          in fx.http_get(rport,
                                                         "/metrics")[1]
                                          .decode()))
                    for port in (rport, aport):
                        self.assertEqual(fx.http_get(port, "/readyz")[0],
                                         200, "unready without etcd")
                        self.assertEqual(fx.http_get(port, "/healthz")[0],
                                         200, "alive without etcd")
                finally:
                    reg.etcd.restart()
                for port in (rport, aport):
                    self.assertTrue(until(
                        lambda: fx.http_get(port, "/readyz")[0] == 200))
            finally:
                assoc.close()
        finally:
            reg.close()


if __name__ == "__main__":
    fx.run_tests()
