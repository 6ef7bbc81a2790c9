#!/usr/bin/python3
"""ResolveIssuer throughput next to a no-op RPC on the same server.

Starts a throwaway etcd and one iotca-registry, registers a CA for a new
tenant, then runs iotca-rpc-bench against that registry process: first
grpc.health.v1.Health/Check (inline, no I/O: the framework's no-op), then
iotca.v1.Registry/ResolveIssuer for the CA's subject, both with the same
concurrency, reading the registry's CPU time from /proc. The ratio of the
two call rates is what the service itself costs (goal: >= 0.7).

usage: bench/registry_resolve.py [--concurrency 16] [--seconds 5]
       [--no-cache]   (ResolveIssuer reads etcd on every call)
Needs a build (scripts/build.sh); IOTCA_BUILD_DIR picks another one.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "tests", "e2e"))
from iotca_fixture import Pki, Registry, binary  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--no-cache", action="store_true")
    a = ap.parse_args()
    env = {"IOTCA_LOG_LEVEL": "warn"}
    if a.no_cache:
        env["IOTCA_REGISTRY_ISSUER_CACHE"] = "false"
    pki = Pki()
    reg = Registry(extra_env=env)
    try:
        _, key = reg.new_tenant()
        ca = pki.make_ca("bench_ca", subject="/O=Bench/CN=Bench Device CA",
                         key="ec")
        ver = pki.make_verification(ca, reg.regcode(key))
        cert = reg.register(key, "bench_ca", ca, ver)
        with tempfile.NamedTemporaryFile(suffix=".der") as f:
            f.write(cert.subject_der)
            f.flush()
            out = subprocess.run(
                ["nice", "-n", "19", binary("iotca-rpc-bench"),
                 "--target", reg.addr, "--server-pid", str(reg.svc.proc.pid),
                 "--token", reg.internal_token, "--issuer-der", f.name,
                 "--concurrency", str(a.concurrency),
                 "--seconds", str(a.seconds)],
                check=True, stdout=subprocess.PIPE, text=True).stdout
        print(out, end="")
        rates = dict(re.findall(r"^(\S+)\s+calls/s=\s*(\d+)", out, re.M))
        noop = float(rates["grpc.health.v1.Health/Check"])
        resolve = float(rates["iotca.v1.Registry/ResolveIssuer"])
        print("ResolveIssuer / no-op = %.2f  (cache %s)"
              % (resolve / noop, "off" if a.no_cache else "on"))
    finally:
        reg.close()
        pki.close()


if __name__ == "__main__":
    main()
