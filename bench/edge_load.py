#!/usr/bin/python3
"""iotca-edge under QoS 1 load: is anything lost between PUBACK and NNG?

2,000 devices connected at once, each publishing a QoS 1 message every
second for 60 s (options change the three), through one iotca-edge to an
`iotca-tap listen` NNG PULL consumer writing every DeviceMessage to a file.
The load is tools/bench/iotca-bench at `nice -n 19`: --hold --identity
--publish-ms, every connection on /<productKey>/<deviceName>/user/update
with the payload "<connection>:<seq>", every PUBACK written to
--acked-file. Prints

  connected, refused, failed      the bench's connections (CONNACK 0 and
                                  the identity message, or not)
  published, PUBACKed             QoS 1 messages sent and acknowledged
  received at the consumer        PUBLISH lines with qos 1 at the tap
  difference                      PUBACKed - received (must be 0), and
                                  acknowledged payloads not at the tap
  messages/s                      PUBACKed per second of publishing
  edge CPU                        utime+stime of the edge (from /proc)
                                  over the publishing, in % of one core

Setup as bench/edge_vs_mosquitto.py: a device CA and RSA-2048 device
certificates behind 8 keys made with the openssl command (one `openssl ca`
run), etcd + iotca-registry + iotca-association (tests/e2e/iotca_fixture.py)
with the CA registered and every certificate's SN associated by one CSV
upload; the edge's server key is ECDSA P-256, 2 event loops.

usage: bench/edge_load.py [-n DEVICES] [--interval-ms MS] [--duration S]
           [--json FILE]
Needs a build (scripts/build.sh; IOTCA_BUILD_DIR picks another one) with
iotca-edge, iotca-tap and iotca-bench. Exit status 0 when every device
connected and every PUBACKed message reached the consumer, else 1.
"""
import argparse
import collections
import json
import os
import platform
import subprocess
import sys
import time
import types

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
import iotca_fixture as fx  # noqa: E402
import edge_vs_mosquitto as ev  # noqa: E402

EDGE_ID = "bench-edge-load"
CONCURRENCY = 8


def machine_line():
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ssl = subprocess.run(["openssl", "version"], stdout=subprocess.PIPE,
                         text=True).stdout.strip()
    return "%s, %d cores, %s; %s" % (cpu, os.cpu_count(), ssl,
                                     platform.platform())


def proc_cpu_s(pid):
    """utime + stime of pid in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def start_tap(workdir):
    """`iotca-tap listen` on a free loopback port, stdout to a file:
    (process, url, output path)."""
    port = fx.free_port()
    url = "tcp://127.0.0.1:%d" % port
    out_path = os.path.join(workdir, "tap.jsonl")
    with open(out_path, "wb") as out, \
            open(os.path.join(workdir, "tap.stderr"), "wb") as err:
        proc = subprocess.Popen(["setpriv", "--pdeathsig", "KILL", "--",
                                 fx.binary("iotca-tap"), "listen", url],
                                stdin=subprocess.DEVNULL, stdout=out,
                                stderr=err)
    ev._children.append(proc)
    deadline = time.monotonic() + 10
    while not ev._listening(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("iotca-tap listen %s did not start" % url)
        time.sleep(0.05)
    return proc, url, out_path


def wait_quiet(path, quiet_s=2.0, limit_s=60.0):
    """Waits until the file has not grown for quiet_s."""
    deadline = time.monotonic() + limit_s
    size, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        now = os.path.getsize(path)
        if now != size:
            size, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return
        time.sleep(0.2)


def tap_counts(path):
    """(Counter of qos 1 PUBLISH payloads, Counter of kinds) at the tap,
    this edge's messages only."""
    payloads, kinds = collections.Counter(), collections.Counter()
    with open(path) as f:
        for line in f:
            m = json.loads(line)
            if m.get("edge_id") != EDGE_ID:
                continue
            kinds[m.get("kind")] += 1
            if m.get("kind") == "PUBLISH" and m.get("qos") == 1:
                payloads[m.get("payload")] += 1
    return payloads, kinds


def run(a, workdir):
    t_start = time.monotonic()
    pki = ev.BenchPki()
    suite = None
    try:
        m = types.SimpleNamespace()
        m.device_ca = pki.ca("device-ca", "Load Device CA")
        m.server_ca = pki.ca("server-ca", "Load Server CA", key="ec")
        m.server = pki.server("server", m.server_ca, key="ec")
        m.devices, m.serials = pki.devices("devices", m.device_ca,
                                           a.devices)
        print("PKI: %d device certificates (%d keys) in %.1f s"
              % (a.devices, min(ev.DEVICE_KEYS, a.devices),
                 time.monotonic() - t_start), flush=True)
        suite = ev.iotca_backend(m)
        tap, tap_url, tap_out = start_tap(workdir)
        edge = fx.Edge(suite, extra_env={
            "IOTCA_EDGE_TLS_CERT": m.server[0],
            "IOTCA_EDGE_TLS_KEY": m.server[1],
            "IOTCA_EDGE_UPSTREAM": tap_url,
            "IOTCA_EDGE_ID": EDGE_ID,
            "IOTCA_LOG_LEVEL": "warn"})
        acked_path = os.path.join(workdir, "acked.txt")
        argv = ["nice", "-n", "19", fx.binary("iotca-bench"),
                "--host", "127.0.0.1", "--port", str(edge.port),
                "--ca", m.server_ca[0], "--certs", m.devices,
                "-n", str(a.devices), "-c", str(CONCURRENCY),
                "--timeout-ms", "30000", "--identity", "--hold",
                "--publish-ms", str(a.interval_ms),
                "--duration", str(a.duration), "--acked-file", acked_path,
                "--json"]
        print("load: " + " ".join(argv[3:]), flush=True)
        bench = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        # The publishing starts when the last device has its identity;
        # the edge's CPU is read from then for --duration.
        t0 = time.monotonic()
        while (edge.metrics().get("iotca_edge_sessions", 0) < a.devices and
               bench.poll() is None and time.monotonic() - t0 < 300):
            time.sleep(0.1)
        t_pub, cpu0 = time.monotonic(), proc_cpu_s(edge.proc.pid)
        connect_s = t_pub - t0
        if bench.poll() is None:  # else it failed: report at once
            time.sleep(max(0.0, a.duration - 0.2))
        t_end, cpu1 = time.monotonic(), proc_cpu_s(edge.proc.pid)
        rss = proc_rss_kib(edge.proc.pid)
        out, err = bench.communicate(timeout=a.duration + 300)
        if bench.returncode not in (0, 1):
            raise RuntimeError("iotca-bench exited %d:\n%s%s"
                               % (bench.returncode, out, err))
        r = json.loads(out)
        metrics = edge.metrics()
        wait_quiet(tap_out)
        rc = edge.stop()
        ev._stop(tap)
        payloads, kinds = tap_counts(tap_out)
        with open(acked_path) as f:
            acked = [line.strip() for line in f if line.strip()]
        return types.SimpleNamespace(
            r=r, acked=acked, payloads=payloads, kinds=kinds,
            connect_s=connect_s, cpu_pct=100.0 * (cpu1 - cpu0) /
            (t_end - t_pub), edge_rss_kib=rss, edge_rc=rc, metrics=metrics,
            argv=argv)
    finally:
        if suite is not None:
            suite.close()
        pki.close()


def report(a, x):
    r, p = x.r, x.r["publish"]
    received = sum(x.payloads.values())
    missing = [k for k in x.acked if k not in x.payloads]
    dup = sum(n - 1 for n in x.payloads.values() if n > 1)
    lat = p["puback_ms"] or {}
    print()
    print("devices              %d, QoS 1 every %d ms for %d s"
          % (a.devices, a.interval_ms, a.duration))
    print("connected            %d (in %.1f s)   refused %d   failed %d"
          % (r["ok"], x.connect_s, r["refused"], r["failed"]))
    if r["failures"] or r["refused_codes"]:
        print("                     %s %s" % (r["failures"],
                                              r["refused_codes"]))
    print("published            %d" % p["published"])
    print("PUBACKed             %d   (unacknowledged %d, skipped %d)"
          % (p["acked"], p["unacked"], p["skipped"]))
    print("received (consumer)  %d   (duplicates %d)" % (received, dup))
    print("difference           %d   (PUBACKed, not at the consumer: %d)"
          % (p["acked"] - received, len(missing)))
    print("messages/s           %.1f PUBACKed per s of publishing (%.1f s)"
          % (p["acked_per_s"], p["wall_s"]))
    if lat:
        print("publish->PUBACK      p50 %.2f ms   p90 %.2f ms   p99 %.2f ms"
              % (lat["p50"], lat["p90"], lat["p99"]))
    print("edge CPU             %.1f %% of one core while publishing; RSS "
          "%d KiB" % (x.cpu_pct, x.edge_rss_kib))
    print("sessions             lost %d, released %d; edge exit %s; "
          "upstream dropped %d failed %d"
          % (p["lost"], p["released"], x.edge_rc,
             x.metrics.get('iotca_edge_upstream_total{result="dropped"}', 0),
             x.metrics.get('iotca_edge_upstream_total{result="failed"}', 0)))
    ok = (r["ok"] == a.devices and r["refused"] == 0 and r["failed"] == 0
          and p["acked"] == received and not missing)
    print("result               %s" % ("OK: nothing lost" if ok else
                                       "NOT OK"))
    return ok, dict(devices=a.devices, interval_ms=a.interval_ms,
                    duration_s=a.duration, connected=r["ok"],
                    refused=r["refused"], failed=r["failed"],
                    published=p["published"], acked=p["acked"],
                    received=received, difference=p["acked"] - received,
                    missing=len(missing), duplicates=dup,
                    acked_per_s=p["acked_per_s"], puback_ms=lat,
                    edge_cpu_pct=x.cpu_pct, edge_rss_kib=x.edge_rss_kib,
                    bench=r)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", "--devices", type=int, default=2000)
    ap.add_argument("--interval-ms", type=int, default=1000,
                    help="QoS 1 PUBLISH per device every MS (default 1000)")
    ap.add_argument("--duration", type=int, default=60,
                    help="seconds of publishing (default 60)")
    ap.add_argument("--json", metavar="FILE",
                    help="also write the figures to FILE")
    a = ap.parse_args()
    if ev.raise_nofile() < a.devices + 200:
        sys.exit("the open-files hard limit is below %d" % (a.devices + 200))
    print(machine_line())
    workdir = fx._mkdtemp("iotca-edge-load-")
    t0 = time.monotonic()
    try:
        x = run(a, workdir)
        ok, figures = report(a, x)
        print("(%.0f s)" % (time.monotonic() - t0))
        if a.json:
            with open(a.json, "w") as f:
                json.dump(figures, f, indent=2)
    finally:
        ev._stop_all()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
