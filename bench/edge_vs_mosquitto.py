#!/usr/bin/python3
"""MQTT connections over mutual TLS: iotca-edge next to mosquitto.

Makes a PKI with the openssl command in a temporary directory (a device
CA, RSA-2048 device certificates signed by it, RSA-2048 and ECDSA P-256
server certificates for 127.0.0.1 and localhost), then for each server --
mosquitto 2.0 with `require_certificate true`, and iotca-edge when it is
built -- runs tools/bench/iotca-bench at `nice -n 19` with the server's
pid, so that every figure is the server's own CPU time per connection
(from /proc), not the load generator's:

  TLS 1.3 and 1.2, full and resumed handshakes, with the server's key RSA
  and then ECDSA (a fresh server process for each key); 8 connections
  being opened at once, rotating through the device certificates, after a
  warm-up of one connection per certificate (which also gets each
  certificate its session for the resumed cases);
  idle sessions: 10,000 connections held open at once (one certificate
  each), the server's RSS growth per session.

and prints the figures side by side as a Markdown table. iotca-edge needs
etcd, iotca-registry and iotca-association (tests/e2e/iotca_fixture.py
starts them): the device CA is registered with proof of possession, a
product is created and every device certificate's SN is associated with a
device of it; the edge's connections also wait for its identity PUBLISH.
Only the edge's CPU is counted: lookups the edge makes in the registry
and the association service are not (after the warm-up they are cached,
except in the idle-sessions case, where every device connects once).

usage: bench/edge_vs_mosquitto.py [--quick] [--only mosquitto|iotca]
           [--json FILE] [--bench PATH] [--edge PATH]
  --quick   small counts, for a smoke run (a minute)
Needs a build (scripts/build.sh); IOTCA_BUILD_DIR picks another one.
The full run takes about 5 minutes for both servers on a 2-core machine
(half a minute of it making 10,000 certificates).
"""
import argparse
import atexit
import json
import os
import platform
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import types

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "tests", "e2e"))
import iotca_fixture as fx  # noqa: E402

IDENTITY_TOPIC = "/ext/auth/identity/response"
CONCURRENCY = 8
DEVICE_KEYS = 8  # distinct RSA keys behind the device certificates

# devices: certificates the connection cases rotate through (and warm-up
# connections per case); idle: sessions held open in the memory case, one
# certificate each; full, resumed: measured connections per case.
FULL = types.SimpleNamespace(devices=200, idle=10000, full=2000,
                             resumed=4000, settle_ms=3000)
QUICK = types.SimpleNamespace(devices=50, idle=500, full=200, resumed=400,
                              settle_ms=1000)

# (id, label, --tls, --resume)
CASES = [
    ("tls13-full", "TLS 1.3 full", "1.3", False),
    ("tls12-full", "TLS 1.2 full", "1.2", False),
    ("tls13-resumed", "TLS 1.3 resumed", "1.3", True),
    ("tls12-resumed", "TLS 1.2 resumed", "1.2", True),
]
KEYS = [("rsa", "RSA-2048 server key"), ("ecdsa", "ECDSA P-256 server key")]

# ----------------------------------------------------------------- children

_children = []


def _spawn(argv, log_path, env=None):
    """Starts argv with its output in log_path. The child gets
    PR_SET_PDEATHSIG=SIGKILL (setpriv), so it dies with this script even
    when the script is killed; it is also stopped at exit."""
    with open(log_path, "ab") as log:
        p = subprocess.Popen(["setpriv", "--pdeathsig", "KILL", "--"] + argv,
                             stdin=subprocess.DEVNULL, stdout=log,
                             stderr=subprocess.STDOUT,
                             env=dict(os.environ, **(env or {})))
    _children.append(p)
    return p


def _stop(p, timeout=10):
    """SIGTERM, then SIGKILL after timeout s; returns the exit code."""
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    if p in _children:
        _children.remove(p)
    return p.returncode


@atexit.register
def _stop_all():
    for p in list(_children):
        _stop(p, 5)


def _tail(path, n=30):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError as e:
        return "(no log: %s)" % e


def _listening(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class Server:
    """A server process listening on a loopback port picked at run time:
    argv_for(port) gives its command line, env_for(port) its extra
    environment. Ready when the port accepts TCP connections."""

    START_WAIT = 15.0

    def __init__(self, name, workdir, argv_for, env_for=None):
        self.name = name
        self.log_path = os.path.join(workdir, name + ".log")
        for attempt in range(5):  # ports are free when picked, not bound
            self.port = fx.free_port()
            self.proc = _spawn(argv_for(self.port), self.log_path,
                               env_for(self.port) if env_for else None)
            if self._wait(last=attempt == 4):
                return

    def _wait(self, last):
        deadline = time.monotonic() + self.START_WAIT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                _stop(self.proc)
                text = _tail(self.log_path)
                if not last and "in use" in text:
                    return False
                raise RuntimeError("%s exited with %s before listening:\n%s"
                                   % (self.name, self.proc.returncode, text))
            if _listening(self.port):
                return True
            time.sleep(0.05)
        _stop(self.proc)
        raise RuntimeError("%s not listening on port %d after %.0f s:\n%s"
                           % (self.name, self.port, self.START_WAIT,
                              _tail(self.log_path)))

    @property
    def pid(self):
        return self.proc.pid

    def stop(self):
        """Stops it; returns its exit code."""
        return _stop(self.proc)


def mosquitto_conf(path, port, cafile, certfile, keyfile):
    """A mosquitto 2.0 configuration: one TLS listener on 127.0.0.1:port
    that requires a client certificate chaining to cafile."""
    lines = ["persistence false",
             "set_tcp_nodelay true",
             "log_dest stderr",
             "log_type error",
             "listener %d 127.0.0.1" % port,
             "allow_anonymous true",
             "cafile " + cafile,
             "certfile " + certfile,
             "keyfile " + keyfile,
             "require_certificate true"]
    if os.geteuid() == 0:
        # Run as root, mosquitto drops to the mosquitto user before it
        # reads the key, which then sits in a directory it cannot read.
        lines.insert(0, "user root")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


class Mosquitto(Server):
    """mosquitto on a free loopback port with require_certificate true."""

    def __init__(self, workdir, cafile, certfile, keyfile, name="mosquitto"):
        def argv(port):
            conf = mosquitto_conf(os.path.join(workdir, name + ".conf"),
                                  port, cafile, certfile, keyfile)
            return ["mosquitto", "-c", conf]
        super().__init__(name, workdir, argv)


# ---------------------------------------------------------------------- PKI

_CA_EXT = ("basicConstraints = critical,CA:TRUE\n"
           "keyUsage = critical,keyCertSign,cRLSign\n"
           "subjectKeyIdentifier = hash\n")
_SERVER_EXT = ("basicConstraints = critical,CA:FALSE\n"
               "keyUsage = critical,digitalSignature\n"
               "extendedKeyUsage = serverAuth\n"
               "subjectAltName = IP:127.0.0.1,DNS:localhost\n"
               "authorityKeyIdentifier = keyid:always\n")
_DEVICE_EXT = ("basicConstraints = critical,CA:FALSE\n"
               "keyUsage = critical,digitalSignature,keyEncipherment\n"
               "extendedKeyUsage = clientAuth\n"
               "subjectKeyIdentifier = hash\n"
               "authorityKeyIdentifier = keyid:always\n")


class BenchPki:
    """Certificates made with the openssl command in a temporary directory
    (removed by close()). Keys: "rsa:2048" or "ec" (P-256)."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="iotca-mqtt-bench-")
        self._n = 0

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def path(self, stem):
        self._n += 1
        return os.path.join(self.dir, "%03d-%s" % (self._n, stem))

    def _run(self, *argv, cwd=None):
        r = subprocess.run(list(argv), cwd=cwd or self.dir,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            raise RuntimeError("%s failed (%d):\n%s"
                               % (" ".join(argv[:6]), r.returncode, r.stdout))
        return r.stdout

    def key(self, path, kind="rsa:2048"):
        """A private key in PEM; RSA in the traditional form devices get."""
        if kind.startswith("rsa"):
            self._run("openssl", "genrsa", "-traditional", "-out", path,
                      kind.partition(":")[2] or "2048")
        else:
            self._run("openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                      "ec_paramgen_curve:P-256", "-out", path)
        return path

    def _cnf(self, path, ext):
        with open(path, "w") as f:
            f.write("[req]\ndistinguished_name = dn\n[dn]\n[ext]\n" + ext)
        return path

    def ca(self, name, cn, key="rsa:2048"):
        """A self-signed CA certificate: (pem path, key path)."""
        stem = self.path(name)
        k = self.key(stem + ".key", key)
        self._run("openssl", "req", "-x509", "-new", "-key", k, "-subj",
                  "/O=iotca bench/CN=" + cn, "-days", "30", "-sha256",
                  "-config", self._cnf(stem + ".cnf", _CA_EXT),
                  "-extensions", "ext", "-out", stem + ".pem")
        return stem + ".pem", k

    def server(self, name, ca, key="rsa:2048"):
        """A server certificate for 127.0.0.1 and localhost signed by ca
        (pem, key): (pem path, key path)."""
        stem = self.path(name)
        k = self.key(stem + ".key", key)
        cnf = self._cnf(stem + ".cnf", _SERVER_EXT)
        self._run("openssl", "req", "-new", "-key", k, "-subj",
                  "/CN=localhost", "-config", cnf, "-out", stem + ".csr")
        self._run("openssl", "x509", "-req", "-in", stem + ".csr", "-CA",
                  ca[0], "-CAkey", ca[1], "-set_serial",
                  "0x" + secrets.token_hex(8), "-days", "30", "-sha256",
                  "-extfile", cnf, "-extensions", "ext", "-out",
                  stem + ".pem")
        return stem + ".pem", k

    def devices(self, name, ca, count, keys=DEVICE_KEYS):
        """count RSA-2048 device certificates signed by ca, behind `keys`
        distinct keys (the server's work does not depend on which key),
        with consecutive serial numbers from a random start, all signed by
        one `openssl ca` run. Returns (dir, serials): dir holds
        dev-NNNNN.crt with dev-NNNNN.key, serials their SNs as upper-case
        hex without leading zeros, in name order."""
        stem = self.path(name)
        os.mkdir(stem)
        db = os.path.join(stem, "db")
        os.mkdir(db)
        open(os.path.join(db, "index.txt"), "w").close()
        first = secrets.randbits(60) | 1 << 60
        with open(os.path.join(db, "serial"), "w") as f:
            f.write("%X\n" % first)
        with open(os.path.join(stem, "ca.cnf"), "w") as f:
            f.write("[ca]\ndefault_ca = d\n[d]\ndir = db\n"
                    "database = $dir/index.txt\nnew_certs_dir = $dir\n"
                    "serial = $dir/serial\ndefault_md = sha256\n"
                    "default_days = 30\npolicy = p\nunique_subject = no\n"
                    "copy_extensions = none\nx509_extensions = ext\n"
                    "[p]\ncommonName = supplied\n[ext]\n" + _DEVICE_EXT)
        nkeys = min(keys, count)
        key_paths = []
        for k in range(nkeys):
            kp = self.key(os.path.join(stem, "k%d.key" % k))
            self._run("openssl", "req", "-new", "-key", kp, "-subj",
                      "/CN=bench-device-%d" % k, "-out", "k%d.csr" % k,
                      cwd=stem)
            key_paths.append(kp)
        self._run("openssl", "ca", "-batch", "-notext", "-config", "ca.cnf",
                  "-cert", ca[0], "-keyfile", ca[1], "-out", "all.pem",
                  "-infiles", *["k%d.csr" % (i % nkeys) for i in range(count)],
                  cwd=stem)
        serials = sorted((int(f[:-4], 16) for f in os.listdir(db)
                          if f.endswith(".pem")))
        if len(serials) != count or serials[0] != first:
            raise RuntimeError("openssl ca made %d certificates, not %d"
                               % (len(serials), count))
        out = os.path.join(stem, "certs")
        os.mkdir(out)
        for i, sn in enumerate(serials):
            pem = [f for f in ("%X.pem" % sn, "0%X.pem" % sn)
                   if os.path.exists(os.path.join(db, f))][0]
            os.symlink(os.path.join(db, pem),
                       os.path.join(out, "dev-%05d.crt" % i))
            os.symlink(key_paths[i % nkeys],
                       os.path.join(out, "dev-%05d.key" % i))
        return out, ["%X" % sn for sn in serials]

    def subset(self, name, certs_dir, count):
        """A directory with the first count certificates of certs_dir."""
        out = self.path(name)
        os.mkdir(out)
        for i in range(count):
            for ext in (".crt", ".key"):
                f = "dev-%05d%s" % (i, ext)
                os.symlink(os.path.realpath(os.path.join(certs_dir, f)),
                           os.path.join(out, f))
        return out


# ------------------------------------------------------------ load generator

def run_bench(bench, port, ca, certs, n, server_pid=None, args=(),
              nice=True, timeout=900):
    """Runs iotca-bench --json against 127.0.0.1:port; returns its report
    (a dict) with "exit" = its exit status (1: some connection failed).
    Raises when it could not run (exit 2, a crash or a timeout)."""
    argv = (["nice", "-n", "19"] if nice else []) + [
        bench, "--host", "127.0.0.1", "--port", str(port), "--ca", ca,
        "--certs", certs, "-n", str(n), "--json"]
    if server_pid:
        argv += ["--server-pid", str(server_pid)]
    argv += [str(a) for a in args]
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=timeout)
    if r.returncode not in (0, 1):
        raise RuntimeError("%s exited %d:\n%s%s" % (" ".join(argv),
                                                     r.returncode, r.stdout,
                                                     r.stderr))
    out = json.loads(r.stdout)
    out["exit"] = r.returncode
    out["argv"] = argv
    return out


def raise_nofile():
    """The soft open-files limit up to the hard one, for the servers this
    script starts (10,000 sessions need more than the usual 1,024)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


# ---------------------------------------------------------------- the runs

def make_material(pki, sizes):
    """The device CA, the server certificates and the device sets."""
    t0 = time.monotonic()
    m = types.SimpleNamespace()
    m.device_ca = pki.ca("device-ca", "Bench Device CA")
    m.server_ca = pki.ca("server-ca", "Bench Server CA")
    m.server = {"rsa": pki.server("server-rsa", m.server_ca, "rsa:2048"),
                "ecdsa": pki.server("server-ecdsa", m.server_ca, "ec")}
    m.idle_dir, m.serials = pki.devices("devices", m.device_ca, sizes.idle)
    m.devices_dir = pki.subset("devices-rotate", m.idle_dir, sizes.devices)
    print("PKI: %d device certificates (%d keys), 2 server certificates "
          "in %.1f s" % (sizes.idle, min(DEVICE_KEYS, sizes.idle),
                         time.monotonic() - t0), flush=True)
    return m


def describe(r):
    """One progress line for a report."""
    s = ("%6.0f us/conn  %7.1f conn/s  p50 %.2f  p99 %.2f ms  ok %d/%d"
         % (r["server_cpu_us_per_connection"] or -1,
            r["connections_per_s"], (r["connack_ms"] or {}).get("p50", -1),
            (r["connack_ms"] or {}).get("p99", -1), r["ok"],
            r["connections"]))
    if r["resume"]:
        s += "  resumed %d" % r["resumed"]
    if r.get("idle_sessions"):
        kib = r["idle_sessions"]["kib_per_session"]
        s = ("%d sessions held, %s KiB/session, %d dropped, ok %d/%d"
             % (r["idle_sessions"]["sessions"],
                "%.2f" % kib if kib is not None else "n/a",
                r["idle_sessions"]["dropped"], r["ok"], r["connections"]))
    if r["failed"] or r["refused"]:
        s += "  failures %s refused %s" % (r["failures"],
                                            r["refused_codes"])
    return s


def run_server(name, start, bench, m, sizes, extra, results):
    """Every case against one kind of server: start(key) starts one with
    the "rsa" or "ecdsa" server certificate and returns a Server."""
    for key, key_label in KEYS:
        srv = start(key)
        try:
            for cid, label, tls, resume in CASES:
                n = sizes.resumed if resume else sizes.full
                args = ["-c", CONCURRENCY, "--tls", tls, "--warmup",
                        sizes.devices] + extra
                if resume:
                    args.append("--resume")
                r = run_bench(bench, srv.port, m.server_ca[0],
                              m.devices_dir, n, srv.pid, args)
                results[(cid, key)] = r
                print("%-10s %-16s %-6s %s" % (name, label, key, describe(r)),
                      flush=True)
        finally:
            srv.stop()
    srv = start("rsa")  # a fresh process: its RSS has not grown before
    try:
        r = run_bench(bench, srv.port, m.server_ca[0], m.idle_dir,
                      sizes.idle, srv.pid,
                      ["-c", CONCURRENCY, "--tls", "1.3", "--warmup",
                       sizes.devices, "--hold", "--keepalive", 600,
                       "--settle-ms", sizes.settle_ms] + extra)
        results[("idle", "rsa")] = r
        print("%-10s %-16s %-6s %s" % (name, "idle sessions", "rsa",
                                        describe(r)), flush=True)
    finally:
        srv.stop()


def run_mosquitto(bench, m, sizes, workdir):
    results = {}

    def start(key):
        cert, k = m.server[key]
        return Mosquitto(workdir, m.device_ca[0], cert, k,
                         name="mosquitto-" + key)
    run_server("mosquitto", start, bench, m, sizes, [], results)
    return results


def iotca_backend(m):
    """etcd, registry and association with the device CA registered (proof
    of possession with a verification certificate), a product, and every
    device certificate's SN associated with a device: the Suite."""
    t0 = time.monotonic()
    suite = fx.Suite()
    _, key = suite.reg.new_tenant()
    ca = fx.Cert("bench_device_ca", m.device_ca[0], m.device_ca[1])
    ver = suite.pki.make_verification(ca, suite.reg.regcode(key), key="ec")
    ca_id = suite.reg.register(key, "bench_device_ca", ca, ver).id
    pk = suite.assoc.new_product(key).product_key
    rows = "".join("%s,bench-%05d,%s\n" % (pk, i, sn)
                   for i, sn in enumerate(m.serials))
    r = suite.assoc.upload(key, ca_id, "ProductKey,DeviceName,CertSN\n" + rows,
                           timeout=120)
    if not r.committed:
        suite.close()
        raise RuntimeError("association upload refused: %s"
                           % list(r.errors)[:3])
    print("iotca: etcd, registry, association; CA %s, product %s, %d "
          "devices associated in %.1f s"
          % (ca_id, pk, r.accepted_rows, time.monotonic() - t0), flush=True)
    return suite


def run_iotca(bench, edge, m, sizes, workdir):
    results = {}
    suite = iotca_backend(m)
    try:
        def start(key):
            cert, k = m.server[key]

            def env(port):
                return {"IOTCA_EDGE_LISTEN": "127.0.0.1:%d" % port,
                        "IOTCA_EDGE_TLS_CERT": cert,
                        "IOTCA_EDGE_TLS_KEY": k,
                        "IOTCA_REGISTRY": suite.reg.addr,
                        "IOTCA_ASSOCIATION": suite.assoc.addr,
                        "IOTCA_INTERNAL_TOKEN": suite.reg.internal_token,
                        "IOTCA_EDGE_PROBE_LISTEN": "127.0.0.1:0",
                        "IOTCA_EDGE_THREADS": "2",
                        "IOTCA_LOG_LEVEL": "warn"}
            return Server("iotca-edge-" + key, workdir, lambda port: [edge],
                          env)
        run_server("iotca", start, bench, m, sizes, ["--identity"], results)
    finally:
        suite.close()
    return results


# ------------------------------------------------------------------ report

def _cpu(r):
    v = r and r.get("server_cpu_us_per_connection")
    return v if v is not None else None


def _fmt(v, f="{:,.0f}"):
    return f.format(v) if v is not None else "pending"


def _lat(r):
    if not r or not r.get("connack_ms"):
        return "pending"
    return "%.1f / %.1f" % (r["connack_ms"]["p50"], r["connack_ms"]["p99"])


def _ok(r):
    """" (ok N/M)" when not every measured connection connected."""
    if r and r["ok"] != r["connections"]:
        return " (ok %d/%d)" % (r["ok"], r["connections"])
    return ""


def _ratio(a, b):
    return "%.2f" % (b / a) if a and b is not None else "—"


def print_table(mq, io, sizes):
    print()
    print("| case | mosquitto µs/conn | iotca µs/conn | iotca / mosquitto "
          "| conn/s mosquitto | conn/s iotca | p50 / p99 ms mosquitto "
          "| p50 / p99 ms iotca |")
    print("|---|---|---|---|---|---|---|---|")
    for key, key_label in KEYS:
        for cid, label, _, _ in CASES:
            a, b = mq.get((cid, key)), io.get((cid, key))
            print("| %s, %s | %s%s | %s%s | %s | %s | %s | %s | %s |"
                  % (label, key_label, _fmt(_cpu(a)), _ok(a), _fmt(_cpu(b)),
                     _ok(b), _ratio(_cpu(a), _cpu(b)),
                     _fmt(a and a["connections_per_s"]),
                     _fmt(b and b["connections_per_s"]), _lat(a), _lat(b)))
    print()
    a, b = mq.get(("idle", "rsa")), io.get(("idle", "rsa"))

    def kib(r):
        return r and r.get("idle_sessions", {}).get("kib_per_session")
    print("| %s idle sessions (TLS 1.3, RSA-2048 server key) | mosquitto "
          "| iotca | iotca / mosquitto |" % "{:,}".format(sizes.idle))
    print("|---|---|---|---|")
    print("| server RSS growth, KiB per session | %s%s | %s%s | %s |"
          % (_fmt(kib(a), "{:.2f}"), _ok(a), _fmt(kib(b), "{:.2f}"), _ok(b),
             _ratio(kib(a), kib(b))))
    print()
    print("Goals: iotca / mosquitto <= 0.5 for CPU per connection and for "
          "memory per idle session.")


def machine_line():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    ver = subprocess.run(["openssl", "version"], stdout=subprocess.PIPE,
                         text=True).stdout.strip()
    mq = subprocess.run(["mosquitto", "-h"], stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT, text=True).stdout
    mq = mq.splitlines()[0] if mq else "mosquitto ?"
    return "%s, %d cores, %s; %s; %s" % (cpu, os.cpu_count(), ver, mq,
                                        platform.platform())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="small counts, for a smoke run")
    ap.add_argument("--only", choices=("mosquitto", "iotca"))
    ap.add_argument("--json", metavar="FILE",
                    help="also write every iotca-bench report to FILE")
    ap.add_argument("--bench", help="iotca-bench (default: the build's)")
    ap.add_argument("--edge", help="iotca-edge (default: "
                    "$IOTCA_BUILD_DIR/services/mqtt-edge/iotca-edge)")
    a = ap.parse_args()
    sizes = QUICK if a.quick else FULL
    bench = a.bench or fx.binary("iotca-bench")
    edge = a.edge or os.path.join(fx.BUILD, "services", "mqtt-edge",
                                  "iotca-edge")
    if raise_nofile() < sizes.idle + 100:
        sys.exit("the open-files hard limit is below %d" % (sizes.idle + 100))
    print(machine_line())
    print("load generator: %s at nice 19, %d connections being opened at "
          "once" % (bench, CONCURRENCY), flush=True)
    t0 = time.monotonic()
    pki = BenchPki()
    mq, io, notes = {}, {}, []
    try:
        m = make_material(pki, sizes)
        if a.only in (None, "mosquitto"):
            mq = run_mosquitto(bench, m, sizes, pki.dir)
        if a.only in (None, "iotca"):
            if os.access(edge, os.X_OK):
                io = run_iotca(bench, edge, m, sizes, pki.dir)
            else:
                notes.append("iotca-edge is not built (no %s): its columns "
                             "are pending. Build it, or pass --edge PATH."
                             % edge)
        print_table(mq, io, sizes)
        for n in notes:
            print("Note: " + n)
        print("(%.0f s)" % (time.monotonic() - t0))
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"mosquitto": {"%s/%s" % k: v
                                         for k, v in mq.items()},
                           "iotca": {"%s/%s" % k: v for k, v in io.items()}},
                          f, indent=2)
    finally:
        _stop_all()
        pki.close()


if __name__ == "__main__":
    main()
