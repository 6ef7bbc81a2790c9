#!/usr/bin/python3
"""bench/tls_session_memory.sh with 50 connections: it makes its
certificates, both TLS versions complete their handshakes, and each
report names a plausible heap per session (OpenSSL's SSL struct alone is
several KiB) with the allocation sites behind it. Counts and shape only,
no thresholds: it keeps the measurement behind docs/benchmarks.md from
rotting.

usage: test_tls_memory_smoke.py   (IOTCA_BUILD_DIR = the build)
"""
import os
import re
import subprocess
import sys
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


class TlsMemorySmoke(unittest.TestCase):
    def test_both_versions_reported(self):
        out = subprocess.run(
            [os.path.join(ROOT, "bench", "tls_session_memory.sh"),
             "-n", "50"], capture_output=True, text=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stderr)
        heads = re.findall(r"^OpenSSL .*?, (TLSv1\.[23]), 50 idle server "
                           r"connections", out.stdout, re.M)
        self.assertEqual(heads, ["TLSv1.3", "TLSv1.2"], out.stdout)
        kib = [float(x) for x in re.findall(
            r"^OpenSSL heap per connection: ([0-9.]+) KiB", out.stdout,
            re.M)]
        self.assertEqual(len(kib), 2, out.stdout)
        for k in kib:
            self.assertGreater(k, 4.0)
            self.assertLess(k, 200.0)
        sites = re.findall(r"^\s+\d+\s+[0-9.]+\s+\S+:\d+$", out.stdout,
                           re.M)
        self.assertGreaterEqual(len(sites), 10, out.stdout)
        self.assertEqual(out.stdout.count("kernel TLS (kTLS): "), 2)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0]], verbosity=2)
