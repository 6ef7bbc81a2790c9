#!/usr/bin/python3
"""The client examples of examples/, run as their READMEs say, against a
live suite: a real etcd, the registry, the association service and the
MQTT edge on loopback ports picked at run time (iotca_fixture: Suite,
Edge), the edge's upstream watched by `iotca-tap listen` and its
downstream fed by `iotca-tap send`.

  examples/python/backend.py   a tenant's backend (grpcio, Debian's
                               python3-grpcio and python3-grpc-tools)
  examples/node/backend.js     the same in Node.js (@grpc/grpc-js and
                               @grpc/proto-loader from
                               examples/node/node_modules: npm ci)
  iotca-device                 the C device (libmosquitto), built from
                               examples/c-device

The two backends walk the same flow with an API key: the registration
code, the CA list, a new product, a CSV upload (accepted; re-sent; a bad
file refused row by row, nothing changed), the association list, a
device disabled and enabled again. Every step's effect is checked with
our own stubs, not only the example's output, and so are the errors
(unknown key, unknown CA, a product name taken).

The device is associated under a DeviceName that appears neither in its
certificate nor on its command line: it must learn it from the edge,
print it, subscribe to its /PK/DN/user/get (a downstream message must
reach it), publish QoS 1 telemetry on /PK/DN/user/update that the tap
sees, and exit 0 after --count PUBACKs. A device that is not associated
yet is refused (CONNACK 5), retries with backoff and gets in once its
association is uploaded; one that never is gives up at --timeout.

The Node tests are skipped only when `node` is not installed.

usage: test_examples.py [unittest args]   (IOTCA_BUILD_DIR = build dir)
"""
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import iotca_fixture as fx  # noqa: E402

S = fx.stubs()
apb = S.association_pb2

EXAMPLES = os.path.join(fx.REPO, "examples")
PYTHON_EXAMPLE = os.path.join(EXAMPLES, "python", "backend.py")
NODE_DIR = os.path.join(EXAMPLES, "node")
NODE_EXAMPLE = os.path.join(NODE_DIR, "backend.js")
NODE = shutil.which("node")
DEVICE = os.path.join(fx.BUILD, "examples", "c-device", "iotca-device")

W = None  # the shared world: suite, tenant, tap, edge


# ------------------------------------------------------------------ tap

def port_listening(port):
    """Whether something listens on TCP port 127.0.0.1:port."""
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            cols = line.split()
            if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1],
                                        16) == port:
                return True
    return False


class TapListen:
    """`iotca-tap listen` on a free port for the whole run; every
    DeviceMessage it prints (one JSON line each) is kept in order."""

    def __init__(self):
        self.tap = fx.binary("iotca-tap")
        self.port = fx.free_port()
        self.url = "tcp://127.0.0.1:%d" % self.port
        self.msgs = []
        self.cv = threading.Condition()
        fx._track(self)
        self.proc = fx._popen([self.tap, "listen", self.url],
                              stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        deadline = time.monotonic() + 10
        while not port_listening(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("iotca-tap listen %s did not listen"
                                   % self.url)
            time.sleep(0.02)

    def _read(self):
        for line in self.proc.stdout:
            try:
                m = json.loads(line)
            except ValueError:
                continue
            with self.cv:
                self.msgs.append(m)
                self.cv.notify_all()

    def all(self, pred):
        with self.cv:
            return [m for m in self.msgs if pred(m)]

    def wait_count(self, pred, n, timeout=10.0):
        """The messages pred accepts, once there are n (or at timeout)."""
        deadline = time.monotonic() + timeout
        with self.cv:
            while True:
                found = [m for m in self.msgs if pred(m)]
                left = deadline - time.monotonic()
                if len(found) >= n or left <= 0:
                    return found
                self.cv.wait(left)

    def send(self, url, pk, dn, topic, payload):
        """`iotca-tap send`: one DownstreamMessage to pk/dn (QoS 1)."""
        return subprocess.run(
            [self.tap, "send", url, "--pk", pk, "--dn", dn, "--topic", topic,
             "--payload", payload, "--qos", "1", "--wait-ms", "5000"],
            stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=20)

    def close(self):
        fx._terminate(self.proc, timeout=5)
        self.reader.join(5)
        self.proc.stdout.close()
        fx._untrack(self)

    _cleanup = close


def setUpModule():
    global W
    W = type("World", (), {})()
    W.suite = fx.Suite()
    W.t = W.suite.tenant(product=False)  # account, API key, ACTIVE CA
    W.tap = TapListen()
    W.down_url = "tcp://127.0.0.1:%d" % fx.free_port()
    W.edge = fx.Edge(W.suite, extra_env={
        "IOTCA_EDGE_UPSTREAM": W.tap.url,
        "IOTCA_EDGE_DOWNSTREAM": W.down_url,
        "IOTCA_LOG_LEVEL": "info"})
    W.tmp = tempfile.mkdtemp(prefix="iotca-examples-")


def tearDownModule():
    errors = []
    for close in (W.edge.close, W.tap.close, W.suite.close):
        try:
            close()
        except AssertionError as e:
            errors.append(str(e))
    shutil.rmtree(W.tmp, ignore_errors=True)
    if errors:
        raise AssertionError("\n".join(errors))


def new_sn():
    return "%X" % (secrets.randbits(63) | 1 << 62)


def write_csv(name, rows):
    """A CSV file of [(ProductKey, DeviceName, CertSN)] under W.tmp."""
    path = os.path.join(W.tmp, name)
    with open(path, "w") as f:
        f.write("ProductKey,DeviceName,CertSN\n")
        f.writelines("%s,%s,%s\n" % r for r in rows)
    return path


def resolve_status(sn):
    """The device status the edge would see for sn (ResolveDevice)."""
    r = W.suite.assoc.resolve(W.t.ca_id, sn, W.t.account_id)
    return apb.DeviceStatus.Name(r.device_status)


# -------------------------------------------------------------- backends

class BackendFlow:
    """The backend example's flow; a subclass sets `argv` (the command
    before the example's own arguments) and `lang`."""

    argv = None
    lang = None
    maxDiff = None

    def run_example(self, *args, api_key=None):
        """(exit status, stdout, stderr) of the example."""
        env = dict(os.environ,
                   IOTCA_API_KEY=W.t.key if api_key is None else api_key,
                   IOTCA_REGISTRY=W.suite.reg.addr,
                   IOTCA_ASSOCIATION=W.suite.assoc.addr)
        p = subprocess.run(self.argv + list(args), env=env,
                           stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=60)
        return p.returncode, p.stdout, p.stderr

    def ok(self, *args):
        """The example's stdout; fails unless it exited 0."""
        rc, out, err = self.run_example(*args)
        self.assertEqual(rc, 0, "%s %s exited %d:\n%s%s"
                         % (self.lang, " ".join(args), rc, out, err))
        return out

    def test_flow(self):
        key, ca_id = W.t.key, W.t.ca_id

        out = self.ok("regcode")
        self.assertIn("registration code: %s" % W.suite.reg.regcode(key),
                      out)

        out = self.ok("cas")
        self.assertRegex(out, r"(?m)^%s +ACTIVE +%s " % (
            re.escape(ca_id), re.escape(W.t.ca.name)))
        self.assertIn("1 CA certificate\n", out)

        name = "%s_%s" % (self.lang, secrets.token_hex(4))
        out = self.ok("create-product", name)
        m = re.search(r"product created: ProductKey ([A-Za-z0-9]{11}) "
                      r"\(name %s\)" % name, out)
        self.assertIsNotNone(m, out)
        pk = m.group(1)
        p = W.suite.assoc.stub.GetProduct(
            apb.GetProductRequest(product_key=pk), metadata=W.t.md,
            timeout=10)
        self.assertEqual((p.name, p.use_private_ca, p.net_type, p.auth_mode),
                         (name, True, apb.NET_TYPE_MQTT,
                          apb.AUTH_MODE_X509_CERTIFICATE))

        rows = [(pk, "%s-dev-%d" % (self.lang, i), new_sn())
                for i in range(3)]
        good = write_csv(self.lang + "-good.csv", rows)
        out = self.ok("upload", ca_id, good)
        self.assertIn("uploaded %s: 3 rows accepted (0 unchanged) for "
                      "product %s" % (good, pk), out)
        listed = W.suite.assoc.list_all(key, ca_id, pk)
        self.assertEqual(sorted((a.product_key, a.device_name, a.cert_sn)
                                for a in listed), sorted(rows))
        # re-sending a file is safe
        out = self.ok("upload", ca_id, good)
        self.assertIn("3 rows accepted (3 unchanged)", out)

        # a bad file: refused as a whole, every problem reported
        extra = (pk, "%s-dev-9" % self.lang, new_sn())
        bad = write_csv(self.lang + "-bad.csv",
                        [extra, (pk, "no", new_sn()),
                         (pk, "%s-dev-8" % self.lang, "not-hex")])
        rc, out, err = self.run_example("upload", ca_id, bad)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("%s refused: 2 problems, nothing was changed" % bad,
                      out)
        self.assertRegex(out, r'(?m)^  line 3, DeviceName: '
                         r'DEVICE_NAME_INVALID: .+ \(value "no"\)$')
        self.assertRegex(out, r'(?m)^  line 4, CertSN: CERT_SN_INVALID: '
                         r'.+ \(value "not-hex"\)$')
        self.assertEqual(len(W.suite.assoc.list_all(key, ca_id, pk)), 3,
                         "a refused file changed something")

        out = self.ok("associations", ca_id, pk)
        for r in rows:
            self.assertRegex(out, r"(?m)^%s  %s/%s  ENABLED$"
                             % (r[2], r[0], r[1]))
        self.assertIn("3 associations\n", out)

        dn, sn = rows[1][1], rows[1][2]
        out = self.ok("disable", pk, dn)
        self.assertIn("device %s/%s is DISABLED" % (pk, dn), out)
        self.assertEqual(resolve_status(sn), "DEVICE_STATUS_DISABLED")
        self.assertRegex(self.ok("associations", ca_id),
                         r"(?m)^%s  %s/%s  DISABLED$" % (sn, pk, dn))
        out = self.ok("enable", pk, dn)
        self.assertIn("device %s/%s is ENABLED" % (pk, dn), out)
        self.assertEqual(resolve_status(sn), "DEVICE_STATUS_ENABLED")

    def test_errors_by_status_code(self):
        rc, out, err = self.run_example("cas", api_key="iok_not_a_key")
        self.assertEqual(rc, 1, out + err)
        self.assertIn("UNAUTHENTICATED", err)
        self.assertIn("check IOTCA_API_KEY", err)

        csv = write_csv(self.lang + "-any.csv", [])
        rc, out, err = self.run_example("upload", "ca_no_such_ca", csv)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("NOT_FOUND", err)
        self.assertIn("no such object in this account", err)

        name = "%s_twice_%s" % (self.lang, secrets.token_hex(3))
        self.ok("create-product", name)
        rc, out, err = self.run_example("create-product", name)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("ALREADY_EXISTS", err)

        rc, out, err = self.run_example("disable", "AAAAAAAAAAA", "none1")
        self.assertEqual(rc, 1, out + err)
        self.assertIn("NOT_FOUND", err)

        rc, out, err = self.run_example("regcode", api_key="")
        self.assertEqual(rc, 2, out + err)
        self.assertIn("IOTCA_API_KEY", err)


class PythonExample(BackendFlow, unittest.TestCase):
    argv = ["/usr/bin/python3", PYTHON_EXAMPLE]
    lang = "python"


class NodeExample(BackendFlow, unittest.TestCase):
    argv = [NODE or "node", NODE_EXAMPLE]
    lang = "node"

    @classmethod
    def setUpClass(cls):
        if NODE is None:
            raise unittest.SkipTest(
                "node is not installed (Debian: apt-get install nodejs "
                "npm), so the Node.js example cannot run")
        modules = os.path.join(NODE_DIR, "node_modules", "@grpc")
        if not (os.path.isdir(os.path.join(modules, "grpc-js")) and
                os.path.isdir(os.path.join(modules, "proto-loader"))):
            raise AssertionError(
                "the Node.js example's packages are not installed: run "
                "`npm ci --prefix examples/node` (scripts/install-deps.sh "
                "does)")


# ---------------------------------------------------------------- device

class DeviceRun:
    """iotca-device running with stdout read line by line."""

    def __init__(self, cert, *args):
        if not os.access(DEVICE, os.X_OK):
            raise AssertionError(
                "%s is not built: install libmosquitto-dev, then cmake "
                "-S . -B %s (it adds examples/c-device when pkg-config "
                "finds libmosquitto)" % (DEVICE, fx.BUILD))
        self.argv = [DEVICE, "--host", "127.0.0.1",
                     "--port", str(W.edge.port),
                     "--cafile", W.edge.server_cert.pem_path,
                     "--cert", cert.pem_path, "--key", cert.key_path]
        self.argv += list(args)
        self.lines = []
        self.cv = threading.Condition()
        self.proc = fx._popen(self.argv, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            with self.cv:
                self.lines.append(line.rstrip("\n"))
                self.cv.notify_all()
        with self.cv:
            self.cv.notify_all()

    def output(self):
        with self.cv:
            return "\n".join(self.lines)

    def wait_line(self, pattern, timeout=20.0):
        """The first output line matching the regex, or None."""
        deadline = time.monotonic() + timeout
        with self.cv:
            while True:
                for line in self.lines:
                    if re.search(pattern, line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and
                                 not self.reader.is_alive()):
                    return None
                self.cv.wait(min(left, 0.2))

    def wait(self, timeout=60):
        """The exit status (killed after timeout: then None)."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = None
        self.reader.join(5)
        self.proc.stdout.close()
        return rc


class CDevice(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.pk = W.suite.assoc.new_product(W.t.key).product_key

    def device_cert(self):
        """(certificate, DeviceName, SN): the certificate's CN is not the
        DeviceName, so the device can only learn its name from the edge."""
        sn = new_sn()
        cert = W.suite.pki.make_device(W.t.ca_cert,
                                       "c-dev-cn-" + secrets.token_hex(4), sn)
        return cert, "c-device-" + secrets.token_hex(4), sn

    def associate(self, dn, sn):
        r = W.suite.assoc.upload(W.t.key, W.t.ca_id, "ProductKey,DeviceName,"
                                 "CertSN\n%s,%s,%s\n" % (self.pk, dn, sn))
        self.assertTrue(r.committed, r)

    def fail_with(self, dev, msg):
        self.fail("%s\n--- device output:\n%s\n--- edge log tail:\n%s"
                  % (msg, dev.output(), fx._tail(W.edge.log_path, 20)))

    def test_learns_identity_subscribes_and_publishes(self):
        cert, dn, sn = self.device_cert()
        self.associate(dn, sn)
        pk = self.pk
        dev = DeviceRun(cert, "--interval", "1.5", "--count", "4",
                        "--timeout", "60")
        for arg in dev.argv:
            self.assertNotIn(dn, arg)
            self.assertNotIn(pk, arg)
        get, update = "/%s/%s/user/get" % (pk, dn), \
            "/%s/%s/user/update" % (pk, dn)
        if dev.wait_line(r"^subscribed to %s \(QoS 1\)$" % re.escape(get)) \
                is None:
            dev.wait(5)
            self.fail_with(dev, "the device did not subscribe to " + get)
        r = W.tap.send(W.down_url, pk, dn, get, '{"setpoint":20}')
        self.assertEqual(r.returncode, 0, "iotca-tap send: " + r.stderr)
        got = dev.wait_line(r"^received on %s: \{\"setpoint\":20\}$"
                            % re.escape(get))
        rc = dev.wait(60)
        out = dev.output()
        if rc != 0:
            self.fail_with(dev, "iotca-device exited %s" % rc)
        self.assertIsNotNone(got, "the downstream message did not reach "
                             "the device:\n" + out)
        self.assertIn("identity: productKey=%s deviceName=%s" % (pk, dn),
                      out)
        self.assertIn("done: 4 messages acknowledged", out)
        self.assertEqual(len(re.findall(r"(?m)^PUBACK for mid \d+ \(\d/4 "
                                        r"acknowledged\)$", out)), 4, out)

        def mine(m):
            return (m.get("kind") == "PUBLISH" and m.get("cert_sn") == sn)
        pubs = W.tap.wait_count(mine, 4)
        self.assertEqual(len(pubs), 4, "the tap got %r" % pubs)
        for i, m in enumerate(pubs, 1):
            self.assertEqual((m["product_key"], m["device_name"], m["topic"],
                              m["qos"]), (pk, dn, update, 1), m)
            self.assertEqual(json.loads(m["payload"])["seq"], i, m)
        self.assertTrue(W.tap.all(lambda m: m.get("kind") == "CONNECTED"
                                  and m.get("cert_sn") == sn))

    def test_refused_until_associated_then_gets_in(self):
        cert, dn, sn = self.device_cert()
        dev = DeviceRun(cert, "--interval", "0.5", "--count", "1",
                        "--timeout", "60")
        if dev.wait_line(r"CONNACK 5 .*is the certificate's SN associated")\
                is None or dev.wait_line(r"retrying in 1 s") is None:
            dev.wait(5)
            self.fail_with(dev, "no CONNACK 5 for an unassociated device")
        self.associate(dn, sn)
        rc = dev.wait(60)
        out = dev.output()
        if rc != 0:
            self.fail_with(dev, "iotca-device exited %s" % rc)
        refused = out.index("CONNACK 5")
        learned = out.index("identity: productKey=%s deviceName=%s"
                            % (self.pk, dn))
        self.assertLess(refused, learned, out)
        self.assertIn("done: 1 message acknowledged", out)

    def test_keeps_identity_across_reconnects(self):
        """Disabling the device closes its session; it retries (refused
        while disabled), gets back in once enabled, finds the same
        identity and finishes its count."""
        cert, dn, sn = self.device_cert()
        self.associate(dn, sn)
        pk = self.pk
        dev = DeviceRun(cert, "--interval", "0.5", "--count", "6",
                        "--timeout", "60")

        def set_status(status):
            W.suite.assoc.stub.UpdateDeviceStatus(
                apb.UpdateDeviceStatusRequest(product_key=pk, device_name=dn,
                                              status=status),
                metadata=W.t.md, timeout=10)
        if dev.wait_line(r"^PUBACK for mid \d+ \(2/6 acknowledged\)$") \
                is None:
            dev.wait(5)
            self.fail_with(dev, "no second PUBACK")
        set_status(apb.DEVICE_STATUS_DISABLED)
        try:
            if dev.wait_line(r"^connection closed \(") is None:
                self.fail_with(dev, "the session of the disabled device "
                               "was not closed")
            if dev.wait_line(r"CONNACK 5") is None:
                self.fail_with(dev, "the disabled device was not refused")
        finally:
            set_status(apb.DEVICE_STATUS_ENABLED)
        rc = dev.wait(60)
        out = dev.output()
        if rc != 0:
            self.fail_with(dev, "iotca-device exited %s" % rc)
        self.assertEqual(out.count("identity: "), 1, out)
        self.assertIn("identity confirmed: productKey=%s deviceName=%s"
                      % (pk, dn), out)
        self.assertIn("done: 6 messages acknowledged", out)
        pubs = W.tap.wait_count(lambda m: m.get("kind") == "PUBLISH" and
                                m.get("cert_sn") == sn, 6)
        seqs = {json.loads(m["payload"])["seq"] for m in pubs}
        self.assertEqual(seqs, set(range(1, 7)), pubs)

    def test_gives_up_at_timeout(self):
        cert, dn, sn = self.device_cert()
        dev = DeviceRun(cert, "--count", "1", "--timeout", "3")
        rc = dev.wait(30)
        out = dev.output()
        self.assertEqual(rc, 1, out)
        self.assertIn("CONNACK 5", out)
        self.assertIn("gave up after 3 s: 0 of 1 messages acknowledged", out)
        self.assertNotIn("identity:", out)

    def test_bad_arguments(self):
        for args in ([DEVICE], [DEVICE, "--cafile", "x", "--cert", "y",
                                "--key", "z", "--count", "-1"],
                     [DEVICE, "--nope"]):
            p = subprocess.run(args, capture_output=True, text=True,
                               timeout=10, stdin=subprocess.DEVNULL)
            self.assertEqual(p.returncode, 2, args)
            self.assertIn("iotca-device:", p.stderr)


if __name__ == "__main__":
    fx.run_tests()
