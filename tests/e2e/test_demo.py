#!/usr/bin/python3
"""scripts/demo.sh, the guided demo of the README, against a real suite:
etcd, registry, association and edge on free loopback ports, the edge
dialling NNG addresses the demo's iotca-tap listens on. The demo must
finish with exit status 0, narrate every step, and leave no CA behind."""

import os
import re
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import iotca_fixture as fx  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


class Demo(unittest.TestCase):

    def test_demo_walks_the_flow(self):
        with fx.Suite() as suite:
            up = "tcp://127.0.0.1:%d" % fx.free_port()
            down = "tcp://127.0.0.1:%d" % fx.free_port()
            edge = fx.Edge(suite, extra_env={"IOTCA_EDGE_UPSTREAM": up,
                                             "IOTCA_EDGE_DOWNSTREAM": down,
                                             "IOTCA_LOG_LEVEL": "info"})
            pb = suite.reg.s.registry_pb2
            feed = suite.reg.stub.ListCaChanges
            rev = feed(pb.ListCaChangesRequest(after_revision=0),
                       metadata=suite.reg.internal_md(), timeout=10).revision
            try:
                env = dict(os.environ,
                           IOTCA_REGISTRY=suite.reg.addr,
                           IOTCA_ASSOCIATION=suite.assoc.addr,
                           IOTCA_OPERATOR_TOKEN=suite.reg.operator_token,
                           IOTCA_DEMO_EDGE="127.0.0.1:%d" % edge.port,
                           IOTCA_DEMO_EDGE_CA=edge.server_cert.pem_path,
                           IOTCA_EDGE_UPSTREAM=up,
                           IOTCA_EDGE_DOWNSTREAM=down,
                           IOTCA_BUILD_DIR=os.environ["IOTCA_BUILD_DIR"])
                p = subprocess.run([os.path.join(ROOT, "scripts/demo.sh")],
                                   env=env, capture_output=True, text=True,
                                   timeout=180)
                out = p.stdout + p.stderr
                self.assertEqual(p.returncode, 0, out + "\n" +
                                 fx._tail(edge.log_path))
                for text in ("openssl x509 -req -in verificationCert.csr",
                             "DEVICE_NAME_INVALID", "CERT_SN_INVALID",
                             "3 rows associated",
                             "/ext/auth/identity/response "
                             "{\"productKey\":",
                             "\"kind\":\"PUBLISH\"",
                             "the device received:", "==> 15. Done"):
                    self.assertIn(text, out)
                # it cleaned up: the CA it registered was deleted (its
                # last change says inactive, without a subject)
                ca_id = re.search(r"CA id (ca_[0-9a-f]+)", out).group(1)
                last = None
                for _ in range(50):
                    r = feed(pb.ListCaChangesRequest(after_revision=rev),
                             metadata=suite.reg.internal_md(), timeout=10)
                    mine = [c for c in r.changes if c.ca_id == ca_id]
                    if mine and not mine[-1].active and \
                            not mine[-1].subject_der:
                        last = mine[-1]
                        break
                    time.sleep(0.1)
                self.assertIsNotNone(last, "the demo's CA %s was not "
                                     "deleted:\n%s" % (ca_id, out))
            finally:
                edge.close()


if __name__ == "__main__":
    fx.run_tests()
