#!/usr/bin/python3
"""iotca-edge end to end, with MQTT clients nobody here wrote.

A real etcd, the registry, the association service and the MQTT edge on
loopback ports picked at run time (tests/e2e/iotca_fixture.py: Suite,
Edge); devices with RSA-2048 certificates of a registered RSA-2048 CA,
associated by a CSV upload. The clients are mosquitto_sub/mosquitto_pub,
paho-mqtt (1.6.1) and, for what no client library sends, Python's ssl
module with raw MQTT bytes. The NNG side (DeviceMessages upstream,
DownstreamMessages downstream) is watched and fed with the operator tool
iotca-tap (tools/tap); the tests that need it are skipped when it is not
built (set IOTCA_TAP to use another build of it).

What is checked (DESIGN.md "MQTT edge behaviour", device_message.proto):
  - the identity PUBLISH on /ext/auth/identity/response, unsubscribed;
  - upstream PUBLISH (QoS 0, 1 and 2, acknowledged after the hand-off)
    and the CONNECTED / DISCONNECTED events, every identity field;
  - downstream delivery only on subscribed topics;
  - refusals: CONNACK 5 (unknown SN, disabled device, deleted
    association, an SN of another account) and TLS alerts (CA INACTIVE,
    EC device key, expired certificate, look-alike CA, no certificate),
    each with its auth-failure counter and AUTH_FAILED message, and the
    identity fields AUTH_FAILED carries "as far as the edge got";
  - revocation without a restart: deleting an association, disabling a
    device or a CA closes its open session within seconds and refuses
    the next connection, a TLS ticket issued before included;
  - topic isolation: SUBACK 0x80, and a foreign PUBLISH closes;
  - malformed MQTT, slow handshakes and silent connections are closed
    and the edge keeps serving; packets sent behind CONNECT are kept;
  - keep-alive, session take-over, TLS 1.2, TLS resumption, SIGTERM
    with sessions open, probes.

All tests share one Suite and one edge (IOTCA_EDGE_MAX_PACKET=1024,
handshake timeout 1 s, connect timeout 1.5 s), except the SIGTERM test,
which has an edge of its own. They run one after the other, so the
metric deltas a test reads are its own.

usage: test_edge.py [unittest args]   (IOTCA_BUILD_DIR = build dir)
"""
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import unittest
import warnings

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import iotca_fixture as fx  # noqa: E402

import paho.mqtt.client as mqtt  # noqa: E402

# paho 1.6.1 makes its context with ssl.PROTOCOL_TLS: not ours to fix
warnings.filterwarnings("ignore", category=DeprecationWarning,
                        module="paho")

S = fx.stubs()
pb = S.association_pb2
rpb = S.registry_pb2

MAX_PACKET = 1024
HANDSHAKE_TIMEOUT_MS = 1000
CONNECT_TIMEOUT_MS = 1500
IDENTITY_TOPIC = "/ext/auth/identity/response"
AUTH_FAILURES = 'iotca_edge_auth_failures_total{reason="%s"}'

W = None  # the shared world: suite, tenant, CA, devices, edge, tap


# ------------------------------------------------------------------ tap

def find_tap():
    """Path of iotca-tap, or None (the tests that need it are skipped)."""
    path = os.environ.get("IOTCA_TAP")
    if path:
        return path
    try:
        return fx.binary("iotca-tap")
    except FileNotFoundError:
        return None


TAP = find_tap()
NO_TAP = ("iotca-tap is not built under %s (cmake --build %s --target "
          "iotca-tap); the NNG side cannot be watched" % (fx.BUILD, fx.BUILD))


def port_listening(port):
    """Whether something listens on TCP port (per /proc/net/tcp*)."""
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    cols = line.split()
                    if (cols[3] == "0A" and
                            int(cols[1].rsplit(":", 1)[1], 16) == port):
                        return True
        except OSError:
            pass
    return False


class TapListen:
    """`iotca-tap listen tcp://127.0.0.1:<free port>` for the whole run:
    every DeviceMessage it prints (one JSON line each) is kept, in order.
    mark() / wait(pred, after=mark) look only at what came after a mark."""

    def __init__(self):
        self.port = fx.free_port()
        self.url = "tcp://127.0.0.1:%d" % self.port
        self.dir = fx._mkdtemp("iotca-tap-")
        self.err_path = os.path.join(self.dir, "tap.stderr")
        self.msgs = []
        self.bad = []
        self.cv = threading.Condition()
        fx._track(self)
        with open(self.err_path, "wb") as err:
            self.proc = fx._popen([TAP, "listen", self.url],
                                  stdout=subprocess.PIPE, stderr=err)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        deadline = time.monotonic() + 10
        while not port_listening(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("iotca-tap listen %s did not listen "
                                   "(exit %s): %s" % (self.url,
                                                      self.proc.poll(),
                                                      self.stderr()))
            time.sleep(0.02)

    def _read(self):
        for line in self.proc.stdout:
            try:
                m = json.loads(line)
            except ValueError:
                with self.cv:
                    self.bad.append(line)
                continue
            with self.cv:
                self.msgs.append(m)
                self.cv.notify_all()

    def stderr(self):
        try:
            with open(self.err_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def mark(self):
        with self.cv:
            return len(self.msgs)

    def all(self, pred=lambda m: True, after=0):
        with self.cv:
            return [m for m in self.msgs[after:] if pred(m)]

    def wait(self, pred, after=0, timeout=5.0):
        """The first message after `after` that pred accepts, or None."""
        deadline = time.monotonic() + timeout
        with self.cv:
            while True:
                for m in self.msgs[after:]:
                    if pred(m):
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cv.wait(left)

    def close(self):
        fx._terminate(self.proc, timeout=5)
        self.reader.join(5)
        self.proc.stdout.close()
        fx._untrack(self)

    _cleanup = close


def tap_send(url, pk, dn, topic, payload, qos=0):
    """`iotca-tap send`: one DownstreamMessage for pk/dn; returns the
    CompletedProcess (the edge dials url with its SUB socket)."""
    return subprocess.run(
        [TAP, "send", url, "--pk", pk, "--dn", dn, "--topic", topic,
         "--payload", payload, "--qos", str(qos), "--wait-ms", "5000"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, timeout=20)


def kind(k, **fields):
    """A predicate for tap messages: kind k and the fields given."""
    def pred(m):
        return m.get("kind") == k and all(m.get(f) == v
                                          for f, v in fields.items())
    return pred


# ------------------------------------------------------------ raw MQTT

def mqtt_len(n):
    out = bytearray()
    while True:
        b, n = n % 128, n // 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def mqtt_str(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack(">H", len(b)) + b


def pkt(first, body):
    return bytes([first]) + mqtt_len(len(body)) + body


def connect_pkt(client_id="raw|securemode=2|", keepalive=60, first=0x10,
                level=4):
    return pkt(first, mqtt_str("MQTT") + bytes([level, 0x02]) +
               struct.pack(">H", keepalive) + mqtt_str(client_id))


def publish_pkt(topic, payload, qos=0, pid=1):
    body = mqtt_str(topic) + (struct.pack(">H", pid) if qos else b"")
    return pkt(0x30 | qos << 1, body + payload)


def subscribe_pkt(pid, filters, first=0x82):
    return pkt(first, struct.pack(">H", pid) + b"".join(
        mqtt_str(f) + bytes([q]) for f, q in filters))


PINGREQ = b"\xc0\x00"
DISCONNECT = b"\xe0\x00"
CONNACK_OK = (0x20, b"\x00\x00")


def client_ctx(edge, dev):
    """A TLS client context trusting the edge's certificate, presenting
    dev's certificate (None: none)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(edge.server_cert.pem_path)
    if dev is not None:
        ctx.load_cert_chain(dev.pem_path, dev.key_path)
    return ctx


CLOSED_ERRORS = (ConnectionError, ssl.SSLEOFError, ssl.SSLZeroReturnError,
                 ssl.SSLError, BrokenPipeError)


class Raw:
    """MQTT bytes over TLS with Python's ssl module. tls=False: the TCP
    connection only (no handshake)."""

    def __init__(self, edge, dev, tls=True, timeout=5.0, ctx=None,
                 session=None):
        self.tcp = socket.create_connection(("127.0.0.1", edge.port),
                                            timeout)
        self.port = self.tcp.getsockname()[1]
        self.peer = "127.0.0.1:%d" % self.port
        self.buf = b""
        self.s = self.tcp
        if tls:
            ctx = ctx or client_ctx(edge, dev)
            try:
                self.s = ctx.wrap_socket(self.tcp, session=session)
            except BaseException:
                self.tcp.close()
                raise

    def send(self, data):
        """Sends; False when the connection is already gone."""
        try:
            self.s.sendall(data)
            return True
        except CLOSED_ERRORS:
            return False

    def packet(self, timeout=5.0):
        """(first byte, body) of the next packet; None at EOF or reset.
        Raises socket.timeout."""
        self.s.settimeout(timeout)
        while True:
            if len(self.buf) >= 2:
                n, mult, i = 0, 1, 1
                while i < len(self.buf) and i <= 4:
                    n += (self.buf[i] & 0x7f) * mult
                    mult *= 128
                    if not self.buf[i] & 0x80:
                        break
                    i += 1
                if (i < len(self.buf) and not self.buf[i] & 0x80 and
                        len(self.buf) >= i + 1 + n):
                    first, body = self.buf[0], self.buf[i + 1:i + 1 + n]
                    self.buf = self.buf[i + 1 + n:]
                    return first, body
            try:
                data = self.s.recv(65536)
            except socket.timeout:
                raise
            except CLOSED_ERRORS:
                return None
            if not data:
                return None
            self.buf += data

    def until_closed(self, timeout=5.0):
        """Reads until the edge closes; returns (seconds, packets read).
        Fails (AssertionError) when it is still open after timeout."""
        t0 = time.monotonic()
        got = []
        while True:
            left = timeout - (time.monotonic() - t0)
            if left <= 0:
                raise AssertionError("the connection is still open after "
                                     "%.1f s (read %r)" % (timeout, got))
            try:
                p = self.packet(left)
            except socket.timeout:
                continue
            if p is None:
                return time.monotonic() - t0, got
            got.append(p)

    def connect(self, client_id="raw|securemode=2|", keepalive=60):
        """CONNECT; returns the CONNACK and the identity PUBLISH."""
        self.send(connect_pkt(client_id, keepalive))
        connack = self.packet()
        identity = self.packet() if connack == CONNACK_OK else None
        return connack, identity

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


# --------------------------------------------------------------- paho

class Paho:
    """A paho-mqtt 1.6.1 client over mutual TLS, driven by a thread of
    ours (client.loop), so that it never reconnects by itself."""

    def __init__(self, edge, dev, client_id="paho|securemode=2|",
                 keepalive=60):
        self.c = mqtt.Client(client_id=client_id, clean_session=True,
                             protocol=mqtt.MQTTv311)
        self.c.tls_set(ca_certs=edge.server_cert.pem_path,
                       certfile=dev.pem_path, keyfile=dev.key_path)
        self.c.tls_insecure_set(True)
        self.connack = None
        self.connected = threading.Event()
        self.gone = threading.Event()
        self.disconnect_rc = None
        self.messages = []
        self.published = set()
        self.granted = {}
        self.cv = threading.Condition()
        self.c.on_connect = self._on_connect
        self.c.on_disconnect = self._on_disconnect
        self.c.on_message = self._on_message
        self.c.on_publish = self._on_publish
        self.c.on_subscribe = self._on_subscribe
        self.c.connect("127.0.0.1", edge.port, keepalive)
        sock = self.c.socket()
        self.peer = "127.0.0.1:%d" % sock.getsockname()[1]
        self.stop = False
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while not self.stop:
            if self.c.loop(0.05) != mqtt.MQTT_ERR_SUCCESS:
                break
        self.gone.set()

    def _on_connect(self, client, userdata, flags, rc):
        self.connack = rc
        self.connected.set()

    def _on_disconnect(self, client, userdata, rc):
        self.disconnect_rc = rc
        self.gone.set()

    def _on_message(self, client, userdata, msg):
        with self.cv:
            self.messages.append(msg)
            self.cv.notify_all()

    def _on_publish(self, client, userdata, mid):
        with self.cv:
            self.published.add(mid)
            self.cv.notify_all()

    def _on_subscribe(self, client, userdata, mid, granted_qos):
        with self.cv:
            self.granted[mid] = tuple(granted_qos)
            self.cv.notify_all()

    def wait_connack(self, timeout=5.0):
        """The CONNACK return code, or None when none came."""
        self.connected.wait(timeout)
        return self.connack

    def _wait(self, cond, timeout):
        deadline = time.monotonic() + timeout
        with self.cv:
            while not cond():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cv.wait(left)
            return True

    def publish_acked(self, topic, payload, qos=1, timeout=5.0):
        """Publishes; True when on_publish fired (for QoS 1: PUBACK)."""
        info = self.c.publish(topic, payload, qos=qos)
        return self._wait(lambda: info.mid in self.published, timeout)

    def subscribe(self, filters, timeout=5.0):
        """SUBSCRIBE [(filter, qos)]; the granted QoS list (None: no
        SUBACK)."""
        rc, mid = self.c.subscribe(filters)
        if rc != mqtt.MQTT_ERR_SUCCESS:
            return None
        if not self._wait(lambda: mid in self.granted, timeout):
            return None
        return self.granted[mid]

    def wait_message(self, pred, timeout=5.0):
        found = []

        def cond():
            found[:] = [m for m in self.messages if pred(m)]
            return bool(found)
        return found[0] if self._wait(cond, timeout) else None

    def close(self):
        """DISCONNECT (when still connected) and the loop stopped."""
        if not self.gone.is_set():
            self.c.disconnect()
            self.gone.wait(3)
        self.stop = True
        self.thread.join(3)
        sock = self.c.socket()
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass


# ------------------------------------------------------------ the world

def new_serial():
    return "%X" % (secrets.randbits(63) | 1 << 62)


def new_dn():
    return "dev-" + secrets.token_hex(5)


def upload(key, ca_id, rows):
    """Associates [(pk, dn, sn)] with ca_id; asserts the commit."""
    text = "ProductKey,DeviceName,CertSN\n" + "".join(
        "%s,%s,%s\n" % r for r in rows)
    r = W.suite.assoc.upload(key, ca_id, text)
    if not r.committed:
        raise AssertionError("upload refused: %s" % r)


class Device:
    """A device certificate (Cert) with its ProductKey and DeviceName."""

    def __init__(self, cert, pk, dn):
        self.cert, self.pk, self.dn = cert, pk, dn
        self.sn = cert.serial
        self.pem_path, self.key_path = cert.pem_path, cert.key_path

    def topic(self, rest="user/update"):
        return "/%s/%s/%s" % (self.pk, self.dn, rest)


def make_devices(n, ca=None, key="rsa:2048", associate=True):
    """n devices of the main tenant's product, signed by ca (default the
    main CA), associated in one upload unless associate is False."""
    ca = ca or W.ca
    devs = []
    for _ in range(n):
        dn, sn = new_dn(), new_serial()
        devs.append(Device(W.suite.pki.make_device(ca, dn, sn, key=key),
                           W.pk, dn))
    if associate:
        upload(W.key, W.ca_id, [(d.pk, d.dn, d.sn) for d in devs])
    return devs


def disabled_device():
    """An associated device set DISABLED (UpdateDeviceStatus)."""
    dev, = make_devices(1)
    set_status(dev, pb.DEVICE_STATUS_DISABLED)
    return dev


def set_status(dev, status):
    W.suite.assoc.stub.UpdateDeviceStatus(
        pb.UpdateDeviceStatusRequest(product_key=dev.pk, device_name=dev.dn,
                                     status=status),
        metadata=fx.bearer(W.key), timeout=10)


def expired_device():
    """An associated device of the main CA whose certificate expired
    yesterday (Pki.make_ca signs leaves too: ca=False, issuer=...)."""
    dn = new_dn()
    cert = W.suite.pki.make_ca("expired-" + dn, subject="/CN=" + dn,
                               key="rsa:2048", ca=False, issuer=W.ca,
                               expired=True)
    dev = Device(cert, W.pk, dn)
    upload(W.key, W.ca_id, [(dev.pk, dev.dn, dev.sn)])
    return dev


def register_ca(status=0):
    """A new RSA-2048 CA of the main tenant: (ca_id, Cert)."""
    name = "edge_ca_" + secrets.token_hex(4)
    ca = W.suite.pki.make_ca(name, key="rsa:2048")
    ver = W.suite.pki.make_verification(ca, W.suite.reg.regcode(W.key))
    return W.suite.reg.register(W.key, name, ca, ver,
                                initial_status=status).id, ca


def setUpModule():
    global W
    W = type("World", (), {})()
    W.suite = fx.Suite()
    W.account_id, W.key = W.suite.reg.new_tenant()
    W.ca_id, W.ca = register_ca()
    W.ca_name = W.ca.name
    W.pk = W.suite.assoc.new_product(W.key).product_key
    W.d1, W.d2, W.draw = make_devices(3)
    W.tap = TapListen() if TAP else None
    W.down_url = "tcp://127.0.0.1:%d" % fx.free_port()
    env = {"IOTCA_EDGE_ID": "e2e-edge-main",
           "IOTCA_EDGE_MAX_PACKET": str(MAX_PACKET),
           "IOTCA_EDGE_HANDSHAKE_TIMEOUT_MS": str(HANDSHAKE_TIMEOUT_MS),
           "IOTCA_EDGE_CONNECT_TIMEOUT_MS": str(CONNECT_TIMEOUT_MS)}
    if W.tap:
        env["IOTCA_EDGE_UPSTREAM"] = W.tap.url
        env["IOTCA_EDGE_DOWNSTREAM"] = W.down_url
    W.edge = fx.Edge(W.suite, extra_env=env, wait_ready=True)


def tearDownModule():
    errors = []
    for close in (lambda: W.edge.close(), lambda: W.tap and W.tap.close(),
                  lambda: W.suite.close()):
        try:
            close()
        except AssertionError as e:
            errors.append(str(e))
    if errors:
        raise AssertionError("\n".join(errors))


class EdgeCase(unittest.TestCase):
    """Helpers shared by the tests; every test uses W.edge unless it says
    otherwise."""

    maxDiff = None

    def tearDown(self):
        # the edge's log tail under a failed test (or subtest)
        result = getattr(getattr(self, "_outcome", None), "result", None)
        if result is None or not any(
                getattr(t, "test_case", t) is self
                for t, _ in result.failures + result.errors):
            return
        sys.stderr.write("--- iotca-edge log tail (%s):\n%s\n"
                         % (self.id(), fx._tail(W.edge.log_path, 25)))

    def need_tap(self):
        if W.tap is None:
            self.skipTest(NO_TAP)

    def metric(self, key, edge=None):
        return (edge or W.edge).metrics().get(key, 0.0)

    def assertMetricDelta(self, key, before, delta, edge=None, within=3.0):
        """key reaches before + delta within `within` s, not more."""
        deadline = time.monotonic() + within
        while True:
            now = self.metric(key, edge)
            if now >= before + delta or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(now - before, delta, "metric %s" % key)

    def good_device_connects(self, dev=None):
        """A well-behaved device still gets CONNACK 0 (and its identity)."""
        dev = dev or W.draw
        r = Raw(W.edge, dev)
        try:
            connack, ident = r.connect("after|securemode=2|")
            self.assertEqual(connack, CONNACK_OK,
                             "a good device after the bad one")
            self.assertIsNotNone(ident)
            r.send(DISCONNECT)
        finally:
            r.close()
        self.assertIsNone(W.edge.proc.poll(), "the edge exited")

    def connack_code(self, dev, client_id="refused|securemode=2|"):
        """paho's view of the CONNACK (its return code) for dev; waits
        until the edge closed the refused connection."""
        c = Paho(W.edge, dev, client_id=client_id)
        try:
            rc = c.wait_connack()
            if rc != 0:
                self.assertTrue(c.gone.wait(5), "still open after "
                                "CONNACK %s" % rc)
            return rc, c.peer
        finally:
            c.close()

    def assertConnack5(self, dev, reason, within=0.0):
        """A new connection of dev gets CONNACK 5 (paho's return code),
        counted under reason. within > 0: a change made just before
        reaches the edge with its next poll of the change feeds, and a
        connection may be accepted until then; try again for that long.
        Returns the refused connection's peer address."""
        key = AUTH_FAILURES % reason
        deadline = time.monotonic() + within
        tries = 0
        while True:
            before = self.metric(key)
            rc, peer = self.connack_code(dev)
            tries += 1
            if rc != 0 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertEqual(rc, 5, "CONNACK of attempt %d (%.1f s allowed)"
                         % (tries, within))
        self.assertMetricDelta(key, before, 1)
        return peer

    def tls_refused(self, dev, edge=None, ctx=None):
        """Handshakes with dev's certificate and reads: the edge must
        answer with a TLS alert. Returns (peer, error text)."""
        edge = edge or W.edge
        ctx = ctx or client_ctx(edge, dev)
        tcp = socket.create_connection(("127.0.0.1", edge.port), 5)
        peer = "127.0.0.1:%d" % tcp.getsockname()[1]
        s = None
        try:
            s = ctx.wrap_socket(tcp)
            s.settimeout(5)
            data = s.recv(1)  # TLS 1.3: the alert comes after Finished
        except ssl.SSLError as e:
            return peer, str(e)
        except socket.timeout:
            self.fail("no TLS alert within 5 s: the session stays open")
        except OSError as e:
            self.fail("closed without a TLS alert: %r" % e)
        finally:
            (s or tcp).close()
        self.fail("the TLS connection was accepted (read %r) instead of "
                  "a TLS alert" % data)

    def assertAlert(self, text):
        self.assertIn("ALERT", text.upper(), "expected a TLS alert")

    def auth_failed_event(self, mark, peer, reason):
        """The AUTH_FAILED DeviceMessage for peer (checked when the tap
        runs), with the reason given."""
        if W.tap is None:
            return None
        m = W.tap.wait(kind("AUTH_FAILED", peer_address=peer), after=mark)
        self.assertIsNotNone(m, "no AUTH_FAILED DeviceMessage for %s "
                             "(got %r)" % (peer, W.tap.all(after=mark)))
        self.assertEqual(m["reason"], reason, m)
        self.assertEqual(m["edge_id"], "e2e-edge-main", m)
        return m


# ------------------------------------------------------------- 1 identity

class T01Identity(EdgeCase):

    def test_mosquitto_receives_identity_without_subscribing(self):
        """mosquitto_sub subscribes only to its own /PK/DN/user/get and
        still gets {"productKey","deviceName"} on the identity topic:
        the associated values."""
        d = W.d1
        p = subprocess.run(
            ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(W.edge.port),
             "--cafile", W.edge.server_cert.pem_path, "--insecure",
             "--cert", d.pem_path, "--key", d.key_path,
             "-i", "mosq-id|securemode=2|", "-q", "1",
             "-t", d.topic("user/get"), "-C", "1", "-W", "10", "-v"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, timeout=20)
        self.assertEqual(p.returncode, 0, "mosquitto_sub: %s" % p.stderr)
        topic, _, payload = p.stdout.strip().partition(" ")
        self.assertEqual(topic, IDENTITY_TOPIC)
        self.assertEqual(json.loads(payload),
                         {"productKey": W.pk, "deviceName": d.dn})


# ------------------------------------------------------------- 2 upstream

class T02Upstream(EdgeCase):

    def test_publish_and_session_events_reach_the_tap(self):
        """paho: QoS 1 PUBLISH on /PK/DN/user/update is PUBACKed and
        arrives upstream as a PUBLISH DeviceMessage with every identity
        field; so do a QoS 0 one and a QoS 2 one (once); CONNECTED
        before, DISCONNECTED client_disconnect after."""
        self.need_tap()
        d, mark, t0 = W.d1, W.tap.mark(), time.time()
        c = Paho(W.edge, d, client_id="up-1|securemode=2|")
        try:
            self.assertEqual(c.wait_connack(), 0)
            self.assertTrue(c.publish_acked(d.topic(), b'{"t":21.5}', 1),
                            "no PUBACK for the QoS 1 PUBLISH")
            self.assertTrue(c.publish_acked(d.topic(), b"q0", 0))
            self.assertTrue(c.publish_acked(d.topic(), b"q2", 2),
                            "no PUBREC/PUBCOMP for the QoS 2 PUBLISH")
        finally:
            c.close()
        ident = dict(account_id=W.account_id, product_key=W.pk,
                     device_name=d.dn, ca_id=W.ca_id, cert_sn=d.sn,
                     client_id="up-1|securemode=2|", peer_address=c.peer,
                     edge_id="e2e-edge-main")
        conn = W.tap.wait(kind("CONNECTED", peer_address=c.peer), mark)
        q1 = W.tap.wait(kind("PUBLISH", peer_address=c.peer, qos=1), mark)
        q0 = W.tap.wait(kind("PUBLISH", peer_address=c.peer, qos=0), mark)
        q2 = W.tap.wait(kind("PUBLISH", peer_address=c.peer, qos=2), mark)
        disc = W.tap.wait(kind("DISCONNECTED", peer_address=c.peer), mark)
        for name, m in (("CONNECTED", conn), ("PUBLISH qos 1", q1),
                        ("PUBLISH qos 0", q0), ("PUBLISH qos 2", q2),
                        ("DISCONNECTED", disc)):
            self.assertIsNotNone(m, "no %s DeviceMessage; the tap got %r"
                                 % (name, W.tap.all(after=mark)))
            for f, v in ident.items():
                self.assertEqual(m[f], v, "%s.%s: %r" % (name, f, m))
            self.assertGreater(m["message_id"], 0, m)
            self.assertLess(abs(m["time_unix_ms"] / 1000 - t0), 30, m)
        self.assertEqual((q1["topic"], q1["payload"]),
                         (d.topic(), '{"t":21.5}'))
        self.assertEqual((q0["topic"], q0["payload"]), (d.topic(), "q0"))
        self.assertEqual((q2["topic"], q2["payload"]), (d.topic(), "q2"))
        self.assertEqual(disc["reason"], "client_disconnect", disc)
        for m in (conn, disc):
            self.assertEqual((m["topic"], m["payload"], m["qos"]),
                             ("", "", 0), m)
        self.assertEqual(conn["reason"], "", conn)
        self.assertLess(conn["message_id"], q1["message_id"])
        self.assertLess(q1["message_id"], disc["message_id"])
        self.assertEqual(len(W.tap.all(kind("PUBLISH", peer_address=c.peer),
                                       mark)), 3, "each PUBLISH once")


# ----------------------------------------------------------- 3 downstream

class T03Downstream(EdgeCase):

    def test_downstream_only_on_subscribed_topics(self):
        """paho subscribes to /PK/DN/user/get; iotca-tap send on that
        topic is delivered (payload, QoS 1); one on /PK/DN/user/other
        (not subscribed) is not, though a later one on the subscribed
        topic is."""
        self.need_tap()
        d = W.d2
        c = Paho(W.edge, d, client_id="down|securemode=2|")
        try:
            self.assertEqual(c.wait_connack(), 0)
            self.assertEqual(c.subscribe([(d.topic("user/get"), 1)]), (1,))
            r = tap_send(W.down_url, d.pk, d.dn, d.topic("user/get"),
                         "down-1", qos=1)
            self.assertEqual(r.returncode, 0, "iotca-tap send: " + r.stderr)
            m = c.wait_message(lambda m: m.payload == b"down-1")
            self.assertIsNotNone(m, "the subscribed message did not come")
            self.assertEqual((m.topic, m.qos), (d.topic("user/get"), 1))
            r = tap_send(W.down_url, d.pk, d.dn, d.topic("user/other"),
                         "down-2")
            self.assertEqual(r.returncode, 0, "iotca-tap send: " + r.stderr)
            r = tap_send(W.down_url, d.pk, d.dn, d.topic("user/get"),
                         "down-3")
            self.assertEqual(r.returncode, 0, "iotca-tap send: " + r.stderr)
            self.assertIsNotNone(
                c.wait_message(lambda m: m.payload == b"down-3"),
                "the second subscribed message did not come")
            self.assertEqual([m.payload for m in c.messages
                              if m.topic != IDENTITY_TOPIC],
                             [b"down-1", b"down-3"])
        finally:
            c.close()


# ------------------------------------------------------------- 4 refused

class T04Refused(EdgeCase):

    def test_unknown_sn_connack_5(self):
        """A certificate of the registered CA whose SN has no association:
        CONNACK 5 (mosquitto_pub says not authorised), unknown_sn counted
        and reported with ca_id and cert_sn but no product_key."""
        dev, = make_devices(1, associate=False)
        key = AUTH_FAILURES % "unknown_sn"
        before, mark = self.metric(key), W.tap.mark() if W.tap else 0
        p = subprocess.run(
            ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(W.edge.port),
             "--cafile", W.edge.server_cert.pem_path, "--insecure",
             "--cert", dev.pem_path, "--key", dev.key_path,
             "-i", "unknown|securemode=2|", "-t", dev.topic(), "-m", "x"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, timeout=20)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("not authori", p.stderr.lower(), p.stderr)
        self.assertMetricDelta(key, before, 1)
        if W.tap:
            m = W.tap.wait(kind("AUTH_FAILED", cert_sn=dev.sn), mark)
            self.assertIsNotNone(m, W.tap.all(after=mark))
            self.assertEqual(
                (m["reason"], m["ca_id"], m["account_id"], m["product_key"],
                 m["device_name"], m["client_id"]),
                ("unknown_sn", W.ca_id, W.account_id, "", "",
                 "unknown|securemode=2|"), m)

    def test_disabled_device_connack_5(self):
        """An associated device set DISABLED (UpdateDeviceStatus):
        CONNACK 5, device_disabled."""
        dev = disabled_device()
        mark = W.tap.mark() if W.tap else 0
        peer = self.assertConnack5(dev, "device_disabled", within=5)
        m = self.auth_failed_event(mark, peer, "device_disabled")
        if m:
            self.assertEqual((m["ca_id"], m["cert_sn"]), (W.ca_id, dev.sn))

    def assertRevoked(self, dev, revoke, refused_reason):
        """dev has a session open; revoke() closes it (DISCONNECTED
        revoked) within 5 s, and then new connections get CONNACK 5 for
        refused_reason, without a restart."""
        mark = W.tap.mark() if W.tap else 0
        c = Paho(W.edge, dev, client_id="revoke|securemode=2|")
        try:
            self.assertEqual(c.wait_connack(), 0, "before the change")
            revoke()
            self.assertTrue(c.gone.wait(5), "the session is still open "
                            "5 s after the change")
        finally:
            c.close()
        if W.tap:
            m = W.tap.wait(kind("DISCONNECTED", peer_address=c.peer), mark)
            self.assertIsNotNone(m, W.tap.all(after=mark))
            self.assertEqual(m["reason"], "revoked", m)
        self.assertConnack5(dev, refused_reason, within=5)

    def test_deleted_association_revoked_and_connack_5(self):
        """DeleteAssociation of a device with a session open: the session
        is closed (revoked), new connections get CONNACK 5 (unknown_sn)."""
        dev, = make_devices(1)
        self.assertRevoked(dev, lambda: W.suite.assoc.stub.DeleteAssociation(
            pb.DeleteAssociationRequest(ca_id=W.ca_id, cert_sn=dev.sn),
            metadata=fx.bearer(W.key), timeout=10), "unknown_sn")

    def test_disabling_revokes_the_session(self):
        """UpdateDeviceStatus DISABLED of a device with a session open: the
        session is closed (revoked), new connections get CONNACK 5
        (device_disabled)."""
        dev, = make_devices(1)
        self.assertRevoked(dev, lambda: set_status(
            dev, pb.DEVICE_STATUS_DISABLED), "device_disabled")

    def test_deactivating_the_ca_revokes_sessions_and_tickets(self):
        """A CA set INACTIVE (UpdateCaCertificateStatus): its device's open
        session is closed (revoked); a TLS session ticket issued before
        no longer gets CONNACK 0; a full handshake gets a TLS alert
        (unknown_issuer)."""
        ca_id, ca = register_ca()
        dev, = make_devices(1, ca=ca, associate=False)
        upload(W.key, ca_id, [(dev.pk, dev.dn, dev.sn)])
        ctx = client_ctx(W.edge, dev)
        r = Raw(W.edge, dev, ctx=ctx)
        try:
            self.assertEqual(r.connect("ticket|securemode=2|")[0],
                             CONNACK_OK)
            ticket = r.s.session
            r.send(DISCONNECT)
        finally:
            r.close()
        mark = W.tap.mark() if W.tap else 0
        c = Paho(W.edge, dev, client_id="ca-off|securemode=2|")
        try:
            self.assertEqual(c.wait_connack(), 0)
            W.suite.reg.stub.UpdateCaCertificateStatus(
                rpb.UpdateCaCertificateStatusRequest(
                    id=ca_id, status=rpb.CA_STATUS_INACTIVE),
                metadata=fx.bearer(W.key), timeout=10)
            self.assertTrue(c.gone.wait(5), "the session of a CA set "
                            "INACTIVE is still open after 5 s")
        finally:
            c.close()
        if W.tap:
            m = W.tap.wait(kind("DISCONNECTED", peer_address=c.peer), mark)
            self.assertIsNotNone(m, W.tap.all(after=mark))
            self.assertEqual(m["reason"], "revoked", m)
        try:
            r = Raw(W.edge, dev, ctx=ctx, session=ticket)
        except ssl.SSLError:
            pass  # refused in the handshake: fine too
        else:
            try:
                reused = r.s.session_reused
                r.send(connect_pkt("resumed|securemode=2|"))
                _, got = r.until_closed(5)
            finally:
                r.close()
            self.assertNotIn(CONNACK_OK, got, "a resumed TLS session "
                             "(reused=%s) of a CA set INACTIVE" % reused)
        key = AUTH_FAILURES % "unknown_issuer"
        before = self.metric(key)
        peer, err = self.tls_refused(dev)
        self.assertAlert(err)
        self.assertMetricDelta(key, before, 1)

    def test_sn_of_another_account_connack_5(self):
        """Account B associates SN X with its own CA; a certificate of
        account A's CA with serial X gets CONNACK 5 (unknown_sn), with
        nothing of B's device reported. B's own device with X connects."""
        b = W.suite.tenant()
        dn_b, sn = new_dn(), new_serial()
        b_dev = Device(W.suite.pki.make_device(b.ca_cert, dn_b, sn),
                       b.pk, dn_b)
        W.suite.assoc.upload(b.key, b.ca_id, "ProductKey,DeviceName,CertSN"
                             "\n%s,%s,%s\n" % (b.pk, dn_b, sn))
        dn_a = new_dn()
        a_dev = Device(W.suite.pki.make_device(W.ca, dn_a, sn), W.pk, dn_a)
        self.assertEqual(a_dev.sn, b_dev.sn)
        c = Paho(W.edge, b_dev, client_id="b|securemode=2|")
        try:
            self.assertEqual(c.wait_connack(), 0, "account B's own device")
        finally:
            c.close()
        mark = W.tap.mark() if W.tap else 0
        peer = self.assertConnack5(a_dev, "unknown_sn")
        m = self.auth_failed_event(mark, peer, "unknown_sn")
        if m:
            self.assertEqual(
                (m["account_id"], m["ca_id"], m["cert_sn"],
                 m["product_key"], m["device_name"]),
                (W.account_id, W.ca_id, sn, "", ""), m)

    def tls_case(self, dev, reason):
        key = AUTH_FAILURES % reason
        before, mark = self.metric(key), W.tap.mark() if W.tap else 0
        sessions = self.metric("iotca_edge_sessions_opened_total")
        peer, err = self.tls_refused(dev)
        self.assertAlert(err)
        self.assertMetricDelta(key, before, 1)
        self.assertEqual(self.metric("iotca_edge_sessions_opened_total"),
                         sessions)
        self.auth_failed_event(mark, peer, reason)
        return err

    def test_inactive_ca_tls_alert(self):
        """A CA registered INACTIVE: its device's handshake fails with a
        TLS alert (unknown_issuer)."""
        _, ca = register_ca(rpb.CA_STATUS_INACTIVE)
        dev, = make_devices(1, ca=ca, associate=False)
        self.tls_case(dev, "unknown_issuer")

    def test_ec_device_key_tls_alert(self):
        """An associated device of the registered CA with an EC key: TLS
        alert, key_not_rsa."""
        dev, = make_devices(1, key="ec")
        self.tls_case(dev, "key_not_rsa")

    def test_expired_certificate_tls_alert(self):
        """An associated device whose certificate expired yesterday: TLS
        alert, cert_expired."""
        self.tls_case(expired_device(), "cert_expired")

    def test_look_alike_ca_tls_alert(self):
        """A CA with the registered CA's subject but another key (never
        registered) signs a certificate whose SN is associated: TLS
        alert, bad_signature."""
        fake = W.suite.pki.make_ca("lookalike_" + secrets.token_hex(4),
                                   subject="/CN=" + W.ca_name,
                                   key="rsa:2048")
        self.assertEqual(fake.subject_der, W.ca.subject_der)
        dev, = make_devices(1, ca=fake, associate=False)
        upload(W.key, W.ca_id, [(dev.pk, dev.dn, dev.sn)])
        self.tls_case(dev, "bad_signature")

    def test_no_client_certificate_tls_alert(self):
        """No client certificate: TLS alert; a failed handshake, no
        session, no AUTH_FAILED (nothing was presented)."""
        key = 'iotca_edge_handshakes_total{result="failed"}'
        before, mark = self.metric(key), W.tap.mark() if W.tap else 0
        opened = self.metric("iotca_edge_sessions_opened_total")
        peer, err = self.tls_refused(None)
        self.assertAlert(err)
        self.assertMetricDelta(key, before, 1)
        self.assertEqual(self.metric("iotca_edge_sessions_opened_total"),
                         opened)
        if W.tap:
            self.assertIsNone(W.tap.wait(kind("AUTH_FAILED",
                                              peer_address=peer),
                                         mark, timeout=0.5))


# ------------------------------------------------------------ 5 isolation

class T05Isolation(EdgeCase):

    def test_subscribe_to_foreign_topics_refused(self):
        """SUBSCRIBE to another device's topics (and to wildcards above
        the own prefix) gets 0x80 for those filters, the own filter its
        QoS; the session stays."""
        me, other = W.d1, W.d2
        c = Paho(W.edge, me, client_id="iso-sub|securemode=2|")
        try:
            self.assertEqual(c.wait_connack(), 0)
            granted = c.subscribe([
                (other.topic("user/get"), 1),
                ("/sys/%s/%s/thing/#" % (other.pk, other.dn), 0),
                ("/%s/+/user/get" % me.pk, 0),
                ("#", 0),
                (me.topic("user/get"), 1),
                ("/sys/%s/%s/#" % (me.pk, me.dn), 0)])
            self.assertEqual(granted, (128, 128, 128, 128, 1, 0))
            self.assertTrue(c.publish_acked(me.topic(), b"still here", 0))
            self.assertFalse(c.gone.wait(0.3), "closed after SUBACK")
        finally:
            c.close()

    def test_publish_to_foreign_topic_closes(self):
        """PUBLISH on another device's topic closes the connection; the
        message is not forwarded (DISCONNECTED topic_denied)."""
        me, other = W.d1, W.d2
        mark = W.tap.mark() if W.tap else 0
        c = Paho(W.edge, me, client_id="iso-pub|securemode=2|")
        try:
            self.assertEqual(c.wait_connack(), 0)
            c.c.publish(other.topic(), b"spoof", qos=0)
            self.assertTrue(c.gone.wait(5), "still connected after "
                            "publishing on %s" % other.topic())
            self.assertNotEqual(c.disconnect_rc, 0)
        finally:
            c.close()
        if W.tap:
            m = W.tap.wait(kind("DISCONNECTED", peer_address=c.peer), mark)
            self.assertIsNotNone(m, W.tap.all(after=mark))
            self.assertEqual(m["reason"], "topic_denied", m)
            self.assertEqual(W.tap.all(kind("PUBLISH", topic=other.topic()),
                                       mark), [])


# ------------------------------------------------------------ 6 malformed

class T06Malformed(EdgeCase):

    def closes(self, raw, what, data=None, malformed=True,
               reason="protocol_error", within=5.0):
        """Sends data (if any) on raw, then expects the edge to close it,
        counted in iotca_edge_closed_total{reason} (and, when malformed,
        in iotca_edge_protocol_errors_total); then a good device still
        connects. Returns (seconds, packets read)."""
        bad, closed = ("iotca_edge_protocol_errors_total",
                       'iotca_edge_closed_total{reason="%s"}' % reason)
        m = W.edge.metrics()
        before_bad, before_closed = m.get(bad, 0.0), m.get(closed, 0.0)
        try:
            if data is not None:
                raw.send(data)
            secs, got = raw.until_closed(within)
        finally:
            raw.close()
        self.assertNotIn(CONNACK_OK, got, what)
        self.assertMetricDelta(closed, before_closed, 1)
        self.assertMetricDelta(bad, before_bad, 1 if malformed else 0)
        self.good_device_connects()
        return secs, got

    def session(self):
        r = Raw(W.edge, W.draw)
        connack, _ = r.connect("bad|securemode=2|")
        self.assertEqual(connack, CONNACK_OK)
        return r

    def test_bad_remaining_length(self):
        """A remaining length of five bytes (before CONNECT) closes."""
        r = Raw(W.edge, W.draw)
        self.closes(r, "5-byte remaining length",
                    b"\x10\xff\xff\xff\xff\x01")

    def test_bad_fixed_header_flags(self):
        """CONNECT with flags 0001, and in a session SUBSCRIBE with flags
        0000 instead of 0010: closed."""
        with self.subTest("CONNECT 0x11"):
            r = Raw(W.edge, W.draw)
            self.closes(r, "CONNECT 0x11", connect_pkt(first=0x11))
        with self.subTest("SUBSCRIBE 0x80"):
            r = self.session()
            _, got = self.closes(r, "SUBSCRIBE 0x80", subscribe_pkt(
                1, [(W.draw.topic("user/get"), 0)], first=0x80))
            self.assertNotIn(0x90, [p[0] for p in got], "SUBACK sent")

    def test_oversize_packet(self):
        """A PUBLISH larger than IOTCA_EDGE_MAX_PACKET closes and is not
        forwarded."""
        mark = W.tap.mark() if W.tap else 0
        r = self.session()
        big = publish_pkt(W.draw.topic(), b"x" * (2 * MAX_PACKET))
        self.assertGreater(len(big), MAX_PACKET)
        self.closes(r, "oversize PUBLISH", big)
        if W.tap:
            self.assertEqual(W.tap.all(kind("PUBLISH", peer_address=r.peer),
                                       mark), [])

    def test_connect_twice(self):
        """A second CONNECT in a session closes (protocol_error)."""
        mark = W.tap.mark() if W.tap else 0
        r = self.session()
        # not counted as a decoding error: the packet itself is valid
        self.closes(r, "second CONNECT", connect_pkt("again|securemode=2|"),
                    malformed=False)
        if W.tap:
            m = W.tap.wait(kind("DISCONNECTED", peer_address=r.peer), mark)
            self.assertIsNotNone(m, W.tap.all(after=mark))
            self.assertEqual(m["reason"], "protocol_error", m)

    def test_packet_before_connect(self):
        """PINGREQ before CONNECT closes without PINGRESP."""
        r = Raw(W.edge, W.draw)
        _, got = self.closes(r, "PINGREQ first", PINGREQ)
        self.assertEqual(got, [])

    def test_wrong_protocol_level(self):
        """CONNECT with protocol level 3: CONNACK 1, then closed."""
        r = Raw(W.edge, W.draw)
        _, got = self.closes(r, "level 3", connect_pkt(level=3),
                             malformed=False)
        self.assertEqual(got, [(0x20, b"\x00\x01")])

    def test_slow_loris_handshake(self):
        """TCP connect and silence: closed after the handshake timeout
        (1 s), counted as a handshake timeout."""
        key = 'iotca_edge_handshakes_total{result="timeout"}'
        before = self.metric(key)
        r = Raw(W.edge, None, tls=False)
        secs, _ = self.closes(r, "silent TCP", malformed=False,
                              reason="connection_lost")
        self.assertGreaterEqual(secs, HANDSHAKE_TIMEOUT_MS / 1000 - 0.1)
        self.assertLess(secs, HANDSHAKE_TIMEOUT_MS / 1000 + 2.0)
        self.assertMetricDelta(key, before, 1)

    def test_silent_after_handshake(self):
        """TLS done, no CONNECT: closed after the connect timeout."""
        r = Raw(W.edge, W.draw)
        secs, got = self.closes(r, "no CONNECT", malformed=False,
                                reason="connection_lost")
        self.assertEqual(got, [])
        self.assertGreaterEqual(secs, CONNECT_TIMEOUT_MS / 1000 - 0.3)
        self.assertLess(secs, CONNECT_TIMEOUT_MS / 1000 + 2.0)


# ------------------------------------------------------------ 7 keep-alive

class T07KeepAlive(EdgeCase):

    def test_pings_keep_the_session(self):
        """keep-alive 1 s with a PINGREQ every 0.5 s: every PINGRESP
        comes and the session lasts 2.5 s."""
        r = Raw(W.edge, W.draw)
        try:
            self.assertEqual(r.connect("ka-ping|securemode=2|", 1)[0],
                             CONNACK_OK)
            for _ in range(5):
                time.sleep(0.5)
                self.assertTrue(r.send(PINGREQ), "closed while pinging")
                self.assertEqual(r.packet(2), (0xd0, b""), "PINGRESP")
            r.send(DISCONNECT)
        finally:
            r.close()

    def test_silence_closes_after_one_and_a_half_keepalives(self):
        """keep-alive 1 s and silence: closed within ~1.5-3 s
        (DISCONNECTED keepalive_timeout)."""
        mark = W.tap.mark() if W.tap else 0
        r = Raw(W.edge, W.draw)
        try:
            self.assertEqual(r.connect("ka|securemode=2|", 1)[0],
                             CONNACK_OK)
            secs, _ = r.until_closed(6)
        finally:
            r.close()
        self.assertGreaterEqual(secs, 1.4)
        self.assertLessEqual(secs, 3.0)
        if W.tap:
            m = W.tap.wait(kind("DISCONNECTED", peer_address=r.peer), mark)
            self.assertIsNotNone(m, W.tap.all(after=mark))
            self.assertEqual(m["reason"], "keepalive_timeout", m)


# ------------------------------------------------------------ 8 take-over

class T08TakeOver(EdgeCase):

    def test_second_connection_takes_over(self):
        """The same device connects twice: the first connection is
        closed (session_taken_over), the second keeps working."""
        d = W.d2
        mark = W.tap.mark() if W.tap else 0
        first = Paho(W.edge, d, client_id="first|securemode=2|")
        second = None
        try:
            self.assertEqual(first.wait_connack(), 0)
            second = Paho(W.edge, d, client_id="second|securemode=2|")
            self.assertEqual(second.wait_connack(), 0)
            self.assertTrue(first.gone.wait(5), "the first connection is "
                            "still open")
            self.assertFalse(second.gone.wait(0.5), "the second was closed")
            self.assertEqual(second.subscribe([(d.topic("user/get"), 1)]),
                             (1,))
        finally:
            first.close()
            if second is not None:
                second.close()
        if W.tap:
            m = W.tap.wait(kind("DISCONNECTED", peer_address=first.peer),
                           mark)
            self.assertIsNotNone(m, W.tap.all(after=mark))
            self.assertEqual(m["reason"], "session_taken_over", m)


# ------------------------------------------------------------ 9 SIGTERM

class T09Shutdown(EdgeCase):

    def test_sigterm_with_sessions_open(self):
        """An edge of its own with two sessions: SIGTERM ends it with exit
        status 0 within a few seconds; both devices see the connection
        end (DISCONNECTED server_shutdown)."""
        env = {"IOTCA_EDGE_ID": "e2e-edge-term"}
        if W.tap:
            env["IOTCA_EDGE_UPSTREAM"] = W.tap.url
        edge = fx.Edge(W.suite, extra_env=env, wait_ready=True)
        mark = W.tap.mark() if W.tap else 0
        clients = []
        try:
            for d in (W.d1, W.d2):
                clients.append(Paho(edge, d, client_id="term|securemode=2|"))
                self.assertEqual(clients[-1].wait_connack(), 0)
            self.assertEqual(self.metric("iotca_edge_sessions", edge), 2)
            t0 = time.monotonic()
            rc = edge.stop(signal.SIGTERM, timeout=10)
            secs = time.monotonic() - t0
            self.assertEqual(rc, 0, fx._tail(edge.log_path))
            self.assertLess(secs, 5.0, "SIGTERM took %.1f s" % secs)
            for c in clients:
                self.assertTrue(c.gone.wait(3), "a session outlived the "
                                "edge")
        finally:
            for c in clients:
                c.close()
            edge.close()
        if W.tap:
            for c in clients:
                m = W.tap.wait(kind("DISCONNECTED", peer_address=c.peer,
                                    edge_id="e2e-edge-term"), mark)
                self.assertIsNotNone(m, W.tap.all(after=mark))
                self.assertEqual(m["reason"], "server_shutdown", m)


# -------------------------------------------------------------- 10 probes

class T10Probes(EdgeCase):

    def test_probes(self):
        """/healthz and /readyz 200, /metrics with iotca_edge_sessions,
        an unknown path 404."""
        port = W.edge.probe_port
        self.assertEqual(fx.http_get(port, "/healthz")[0], 200)
        self.assertEqual(fx.http_get(port, "/readyz")[0], 200)
        status, body = fx.http_get(port, "/metrics")
        self.assertEqual(status, 200)
        self.assertRegex(body.decode(), r"(?m)^iotca_edge_sessions \d+$")
        self.assertIn("iotca_edge_sessions", W.edge.metrics())
        self.assertEqual(fx.http_get(port, "/no-such-probe")[0], 404)


# ----------------------------------------------------- 11 TLS variants

class T11Tls(EdgeCase):

    def test_tls12_client(self):
        """A TLS 1.2 client: CONNACK 0 for a good device; a device of a CA
        nobody registered is refused in the handshake itself (alert,
        unknown_issuer)."""
        ctx = client_ctx(W.edge, W.draw)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        r = Raw(W.edge, W.draw, ctx=ctx)
        try:
            self.assertEqual(r.s.version(), "TLSv1.2")
            self.assertEqual(r.connect("tls12|securemode=2|")[0],
                             CONNACK_OK)
            r.send(DISCONNECT)
        finally:
            r.close()
        stranger = W.suite.pki.make_ca("stranger_" + secrets.token_hex(4),
                                       key="ec")
        dev, = make_devices(1, ca=stranger, associate=False)
        ctx = client_ctx(W.edge, dev)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        key = AUTH_FAILURES % "unknown_issuer"
        before = self.metric(key)
        peer, err = self.tls_refused(dev, ctx=ctx)
        self.assertAlert(err)
        self.assertMetricDelta(key, before, 1)

    def test_old_tls_versions_refused(self):
        """TLS 1.0 and 1.1 clients are refused in the handshake (the edge
        speaks TLS 1.2 and 1.3 only)."""
        for version in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
            with self.subTest(version=version.name):
                ctx = client_ctx(W.edge, W.draw)
                ctx.minimum_version = version
                ctx.maximum_version = version
                try:
                    ctx.set_ciphers("ALL:@SECLEVEL=0")
                except ssl.SSLError:
                    pass
                with self.assertRaises(CLOSED_ERRORS):
                    r = Raw(W.edge, W.draw, ctx=ctx)
                    r.close()

    def test_weak_tls12_ciphers_refused(self):
        """A TLS 1.2 client offering only suites without forward secrecy
        or without AEAD (RSA key exchange, CBC, 3DES) is refused in the
        handshake; the same client with an ECDHE-GCM suite gets in."""
        for suite in ("AES128-SHA", "AES256-GCM-SHA384",
                      "ECDHE-RSA-AES128-SHA", "DES-CBC3-SHA"):
            with self.subTest(cipher=suite):
                ctx = client_ctx(W.edge, W.draw)
                ctx.maximum_version = ssl.TLSVersion.TLSv1_2
                try:
                    ctx.set_ciphers(suite + ":@SECLEVEL=0")
                except ssl.SSLError:
                    continue  # this OpenSSL cannot even offer it
                with self.assertRaises(CLOSED_ERRORS):
                    r = Raw(W.edge, W.draw, ctx=ctx)
                    r.close()
        ctx = client_ctx(W.edge, W.draw)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers("ECDHE-RSA-AES128-GCM-SHA256")
        r = Raw(W.edge, W.draw, ctx=ctx)
        try:
            self.assertEqual(r.s.cipher()[0], "ECDHE-RSA-AES128-GCM-SHA256")
        finally:
            r.close()

    def test_sighup_reloads_the_server_certificate(self):
        """New certificate files and SIGHUP: the next handshake presents the
        new certificate, sessions keep working, no restart."""
        edge = fx.Edge(W.suite, wait_ready=True)
        try:
            def served():
                tcp = socket.create_connection(("127.0.0.1", edge.port), 5)
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                ctx.load_cert_chain(W.draw.pem_path, W.draw.key_path)
                with ctx.wrap_socket(tcp) as s:
                    return s.getpeercert(binary_form=True)
            before = served()
            kept = Raw(edge, W.draw)
            self.assertEqual(kept.connect("hup|securemode=2|")[0],
                             CONNACK_OK)
            new = W.suite.pki.make_ca("edge-new-" + secrets.token_hex(4),
                                      subject="/CN=127.0.0.1", key="ec",
                                      ca=False)
            shutil.copyfile(new.pem_path, edge.server_cert.pem_path)
            shutil.copyfile(new.key_path, edge.server_cert.key_path)
            edge.proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 5
            after = before
            while after == before and time.monotonic() < deadline:
                time.sleep(0.1)
                after = served()
            with open(new.pem_path) as f:
                want = ssl.PEM_cert_to_DER_cert(f.read())
            self.assertEqual(after, want, "SIGHUP did not swap the "
                             "certificate:\n" + fx._tail(edge.log_path))
            self.assertIn("EDGE-TLS-RELOADED", edge.log_text())
            kept.send(PINGREQ)
            self.assertEqual(kept.packet(), (0xd0, b""))
            kept.close()
        finally:
            edge.close()

    def test_resumed_session_connects(self):
        """A TLS 1.3 session resumed with the edge's ticket: CONNACK 0 and
        the identity again; counted as resumed."""
        ctx = client_ctx(W.edge, W.draw)
        r = Raw(W.edge, W.draw, ctx=ctx)
        try:
            self.assertEqual(r.connect("full|securemode=2|")[0], CONNACK_OK)
            ticket = r.s.session
            r.send(DISCONNECT)
        finally:
            r.close()
        self.assertIsNotNone(ticket, "no session ticket")
        key = "iotca_edge_handshakes_resumed_total"
        before = self.metric(key)
        r = Raw(W.edge, W.draw, ctx=ctx, session=ticket)
        try:
            self.assertTrue(r.s.session_reused, "the ticket was not used")
            connack, ident = r.connect("resumed|securemode=2|")
            self.assertEqual(connack, CONNACK_OK)
            self.assertIsNotNone(ident)
            self.assertIn(IDENTITY_TOPIC.encode(), ident[1])
            r.send(DISCONNECT)
        finally:
            r.close()
        self.assertMetricDelta(key, before, 1)


# ---------------------------------- 12 AUTH_FAILED: the identity known

class T12AuthFailedIdentity(EdgeCase):
    """device_message.proto, DEVICE_MESSAGE_KIND_AUTH_FAILED: "Identity
    fields are set as far as the edge got (e.g. ca_id and cert_sn but no
    product_key for "unknown_sn")"."""

    def test_disabled_device_names_the_device(self):
        """device_disabled: the association was found, so product_key and
        device_name are known (with ca_id, cert_sn, account_id)."""
        self.need_tap()
        dev = disabled_device()
        mark = W.tap.mark()
        peer = self.assertConnack5(dev, "device_disabled", within=5)
        m = self.auth_failed_event(mark, peer, "device_disabled")
        self.assertEqual(
            {f: m[f] for f in ("account_id", "ca_id", "cert_sn",
                               "product_key", "device_name")},
            {"account_id": W.account_id, "ca_id": W.ca_id,
             "cert_sn": dev.sn, "product_key": dev.pk,
             "device_name": dev.dn})

    def test_tls_refusals_after_the_signature_name_the_ca(self):
        """cert_expired and key_not_rsa are decided after the certificate
        verified against a registered CA: account_id, ca_id and cert_sn
        are known."""
        self.need_tap()
        for reason, dev in (("cert_expired", expired_device()),
                            ("key_not_rsa", make_devices(1, key="ec")[0])):
            with self.subTest(reason):
                mark = W.tap.mark()
                peer, err = self.tls_refused(dev)
                self.assertAlert(err)
                m = self.auth_failed_event(mark, peer, reason)
                self.assertEqual(
                    {f: m[f] for f in ("account_id", "ca_id", "cert_sn")},
                    {"account_id": W.account_id, "ca_id": W.ca_id,
                     "cert_sn": dev.sn})



# ------------------------------------------------- 13 pipelined packets

class T13Pipelined(EdgeCase):

    def test_packets_behind_connect_are_kept(self):
        """CONNECT, SUBSCRIBE and PINGREQ in one write (before any
        CONNACK): CONNACK 0, the identity PUBLISH (QoS 0, exactly the
        JSON of DESIGN.md), SUBACK and PINGRESP, in that order."""
        d = W.draw
        r = Raw(W.edge, d)
        try:
            r.send(connect_pkt("pipe|securemode=2|") +
                   subscribe_pkt(7, [(d.topic("user/get"), 1)]) + PINGREQ)
            got = [r.packet() for _ in range(4)]
            r.send(DISCONNECT)
        finally:
            r.close()
        identity = ('{"productKey":"%s","deviceName":"%s"}'
                    % (d.pk, d.dn)).encode()
        self.assertEqual(got, [
            CONNACK_OK,
            (0x30, mqtt_str(IDENTITY_TOPIC) + identity),
            (0x90, b"\x00\x07\x01"),
            (0xd0, b"")])


if __name__ == "__main__":
    fx.run_tests()
