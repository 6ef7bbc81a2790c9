#!/usr/bin/python3
"""iotca-bench (tools/bench) against mosquitto, so the load generator
cannot rot: counts, not timings.

One mosquitto 2.0 started here with `require_certificate true` on a free
loopback port (bench/edge_vs_mosquitto.py's Mosquitto, the same
configuration the benchmark uses), certificates made with the openssl
command (its BenchPki): 20 RSA device certificates of one CA, two of
another CA, a server certificate for 127.0.0.1. Checks full and resumed
TLS 1.3 and 1.2 handshakes, held sessions, failures counted as failures
with their reason (a device certificate of another CA, a server
certificate that does not verify, a missing identity message), the report
fields and the exit status.

usage: test_bench_smoke.py IOTCA_BENCH [unittest args]
"""
import os
import subprocess
import sys
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "bench"))
import iotca_fixture as fx  # noqa: E402
import edge_vs_mosquitto as ev  # noqa: E402

BENCH = None  # argv[1]
N = 20        # device certificates, and connections per run
PKI = MQ = None
M = None      # paths: device CA, server CA, device and foreign sets


def setUpModule():
    global PKI, MQ, M
    PKI = ev.BenchPki()
    try:
        ca = PKI.ca("device-ca", "Smoke Device CA", key="ec")
        other = PKI.ca("other-ca", "Smoke Device CA", key="ec")  # same name
        server_ca = PKI.ca("server-ca", "Smoke Server CA", key="ec")
        server = PKI.server("server", server_ca, key="ec")
        devices, _ = PKI.devices("devices", ca, N, keys=2)
        foreign, _ = PKI.devices("foreign", other, 2, keys=1)
        MQ = ev.Mosquitto(PKI.dir, ca[0], server[0], server[1])
    except Exception:
        PKI.close()
        raise
    M = dict(device_ca=ca[0], server_ca=server_ca[0], devices=devices,
             foreign=foreign)


def tearDownModule():
    rc = MQ.stop() if MQ is not None else 0
    PKI.close()
    if rc != 0:
        raise AssertionError("mosquitto exited %s; log:\n%s"
                             % (rc, ev._tail(MQ.log_path)))


class BenchSmokeTest(unittest.TestCase):
    maxDiff = None

    def bench(self, n, *args, certs=None, ca=None, exit_code=0):
        """Runs iotca-bench --json with the server's pid; checks the exit
        status; returns the report."""
        r = ev.run_bench(BENCH, MQ.port, ca or M["server_ca"],
                         certs or M["devices"], n, MQ.pid,
                         ["-c", 4] + list(args), nice=False, timeout=120)
        self.assertEqual(r["exit"], exit_code, r)
        return r

    def counts(self, r):
        return (r["ok"], r["refused"], r["failed"], r["resumed"])

    def assertFigures(self, r):
        """The figures a connected run reports are there and sane."""
        self.assertIsNotNone(r["server_cpu_us_per_connection"])
        self.assertGreaterEqual(r["server_cpu_us_per_connection"], 0)
        self.assertGreater(r["server_rss_kib"], 0)
        self.assertEqual(r["server_pid"], MQ.pid)
        lat = r["connack_ms"]
        self.assertTrue(0 < lat["p50"] <= lat["p90"] <= lat["p99"], lat)
        self.assertGreater(r["connections_per_s"], 0)
        self.assertGreater(r["wall_s"], 0)

    def test_full_handshakes(self):
        """Every connection connects with a full handshake."""
        for tls in ("1.3", "1.2"):
            with self.subTest(tls=tls):
                r = self.bench(N, "--tls", tls)
                self.assertEqual(self.counts(r), (N, 0, 0, 0))
                self.assertEqual((r["tls"], r["certs"], r["connections"],
                                  r["concurrency"], r["warmup"]),
                                 (tls, N, N, 4, 0))
                self.assertEqual((r["failures"], r["refused_codes"]),
                                 ({}, {}))
                self.assertIsNone(r["identity_ms"])
                self.assertNotIn("idle_sessions", r)
                self.assertFigures(r)

    def test_resumed_handshakes(self):
        """--resume: one warm-up connection per certificate gets its
        session, then every measured connection resumes one."""
        for tls in ("1.3", "1.2"):
            with self.subTest(tls=tls):
                r = self.bench(N, "--tls", tls, "--resume")
                self.assertEqual(self.counts(r), (N, 0, 0, N))
                self.assertEqual((r["warmup"], r["warmup_failed"]), (N, 0))
                self.assertTrue(r["resume"])
                self.assertFigures(r)

    def test_warmup_is_not_counted(self):
        r = self.bench(5, "--warmup", 7)
        self.assertEqual(self.counts(r), (5, 0, 0, 0))
        self.assertEqual((r["connections"], r["warmup"]), (5, 7))

    def test_device_of_another_ca_fails(self):
        """A device certificate of a CA mosquitto does not trust (with the
        same subject as the trusted one) counts as failed, not connected,
        with the TLS reason."""
        for tls in ("1.3", "1.2"):
            with self.subTest(tls=tls):
                r = self.bench(4, "--tls", tls, certs=M["foreign"],
                               exit_code=1)
                self.assertEqual(self.counts(r), (0, 0, 4, 0))
                self.assertEqual(sum(r["failures"].values()), 4)
                for reason in r["failures"]:
                    self.assertRegex(reason, r"alert|closed|reset", reason)
                self.assertIsNone(r["connack_ms"])

    def test_untrusted_server_fails(self):
        """--ca that did not sign the server's certificate: every
        connection fails on the server certificate; --insecure skips the
        check."""
        r = self.bench(3, ca=M["device_ca"], exit_code=1)
        self.assertEqual(self.counts(r), (0, 0, 3, 0))
        self.assertEqual(list(r["failures"]), [
            "TLS handshake: server certificate: unable to get local issuer "
            "certificate"])
        argv = [BENCH, "--port", str(MQ.port), "--insecure", "--certs",
                M["devices"], "-n", "3", "--json"]
        out = subprocess.run(argv, stdout=subprocess.PIPE, text=True,
                             timeout=60)
        self.assertEqual(out.returncode, 0, out.stdout)

    def test_missing_identity_fails(self):
        """--identity: CONNACK 0 without the identity PUBLISH (mosquitto
        sends none) is a failure once --timeout-ms has passed."""
        r = self.bench(2, "--identity", "--timeout-ms", 1500, exit_code=1)
        self.assertEqual(self.counts(r), (0, 0, 2, 0))
        self.assertEqual(r["failures"], {"timeout: waiting for identity": 2})
        self.assertIsNotNone(r["connack_ms"])  # CONNACK 0 did come
        self.assertIsNone(r["identity_ms"])

    def test_hold(self):
        """--hold keeps every session open past 1.5 x the keep-alive
        (mosquitto's limit: so PINGREQ went out), reports the server's
        memory per session, then closes them all; the server serves on."""
        r = self.bench(N, "--hold", "--settle-ms", 4500, "--keepalive", 2)
        self.assertEqual(self.counts(r), (N, 0, 0, 0))
        idle = r["idle_sessions"]
        self.assertEqual((idle["sessions"], idle["dropped"]), (N, 0))
        self.assertIsNotNone(idle["kib_per_session"])
        self.assertGreaterEqual(idle["rss_after_kib"], idle["rss_before_kib"])
        self.assertEqual(self.counts(self.bench(4)), (4, 0, 0, 0))

    def test_text_report_and_usage(self):
        out = subprocess.run([BENCH, "--port", str(MQ.port), "--ca",
                              M["server_ca"], "--certs", M["devices"], "-n",
                              "3", "--server-pid", str(MQ.pid)],
                             stdout=subprocess.PIPE, text=True, timeout=60)
        self.assertEqual(out.returncode, 0)
        self.assertRegex(out.stdout, r"ok=3 refused=0 failed=0 resumed=0")
        self.assertRegex(out.stdout, r"connect->CONNACK\s+p50=")
        self.assertRegex(out.stdout, r"cpu=[0-9.]+ us/connection")
        h = subprocess.run([BENCH, "--help"], stdout=subprocess.PIPE,
                           text=True, timeout=10)
        self.assertEqual(h.returncode, 0)
        for opt in ("--host", "--port", "--ca", "--insecure", "--certs",
                    "-n N", "-c C", "--tls", "--resume", "--identity",
                    "--server-pid", "--hold", "--keepalive", "--timeout-ms",
                    "--json"):
            self.assertIn(opt, h.stdout)
        for bad, phrase in ((["--insecure"], "--certs DIR is required"),
                            (["--certs", M["devices"]], "--ca FILE"),
                            (["--certs", M["devices"], "--insecure", "--tls",
                              "1.1"], "--tls takes 1.2 or 1.3"),
                            (["--certs", "/nonexistent", "--insecure"],
                             "/nonexistent")):
            e = subprocess.run([BENCH] + bad, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, timeout=10)
            self.assertEqual(e.returncode, 2, bad)
            self.assertIn(phrase, e.stderr)


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1].startswith("-"):
        sys.exit("usage: test_bench_smoke.py IOTCA_BENCH [unittest args]")
    BENCH = sys.argv.pop(1)
    fx.run_tests()
