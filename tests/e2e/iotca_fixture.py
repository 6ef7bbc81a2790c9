"""Shared fixture of the iotca end-to-end tests (Python 3, grpcio, openssl).

Every test script in tests/e2e imports this module. It starts real
processes on loopback, on ports picked at run time, and makes sure none of
them outlives the test:

  free_port()              a free TCP port on 127.0.0.1
  Etcd(extra_args=())      a throwaway single-node etcd; .endpoint, .stop(),
                           .restart(), .close()
  Service(binary, env)     any iotca service; waits for its gRPC health
                           Check to say SERVING; .addr, .proc, .log_path,
                           .stop(sig, timeout), .kill(), .log_text()
  stubs()                  Python stubs generated from REPO/proto (once per
                           process): registry_pb2, registry_pb2_grpc,
                           association_pb2, association_pb2_grpc,
                           health_pb2, health_pb2_grpc
  Registry(...)            one etcd (its own unless given) + one
                           iotca-registry, with a RegistryStub and
                           credential helpers
  Association(registry)    one iotca-association on a Registry's etcd and
                           tokens, with an AssociationStub and helpers
                           (new_product, upload, list_all, resolve)
  Suite(replicas)          etcd + registry + association(s) + Pki, and
                           tenant(): an account with an ACTIVE CA and a
                           private-CA product
  Pki()                    certificates made with the `openssl` command
                           exactly as the product page does it
  REPO, BUILD, binary(name)

Children get PR_SET_PDEATHSIG=SIGKILL, so they die with the test even when
it is killed; everything still running is also stopped at exit (atexit, and
SIGTERM is turned into a normal exit so that atexit runs). Note that
PDEATHSIG fires when the *thread* that started the child ends: start
processes from the main thread (or from a thread that outlives them).

Set IOTCA_E2E_KEEP=1 to keep the temporary directories (logs, certificates,
etcd data) for a post-mortem; their paths are printed at exit.

The build directory is IOTCA_BUILD_DIR (ctest sets it) or REPO/build.
"""
import atexit
import base64
import glob
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import types
import urllib.error
import urllib.request

# grpcio's fork handlers pause its threads around fork(); with calls in
# flight on other threads that can deadlock the fork that starts a service
# (seen: a test hung in __run_prefork_handlers). Tests never use gRPC in a
# child, so switch them off before grpc is imported.
os.environ["GRPC_ENABLE_FORK_SUPPORT"] = "false"

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
BUILD = os.environ.get("IOTCA_BUILD_DIR") or os.path.join(REPO, "build")

_KEEP = os.environ.get("IOTCA_E2E_KEEP", "") not in ("", "0")

# ------------------------------------------------------------ housekeeping

_live = []          # objects with a _cleanup() method, newest last
_tempdirs = []
_lock = threading.Lock()


def _track(obj):
    with _lock:
        _live.append(obj)


def _untrack(obj):
    with _lock:
        if obj in _live:
            _live.remove(obj)


def _mkdtemp(prefix):
    d = tempfile.mkdtemp(prefix=prefix)
    with _lock:
        _tempdirs.append(d)
    return d


def _rmtree(d):
    if _KEEP:
        return
    shutil.rmtree(d, ignore_errors=True)
    with _lock:
        if d in _tempdirs:
            _tempdirs.remove(d)


@atexit.register
def _cleanup_all():
    while True:
        with _lock:
            obj = _live.pop() if _live else None
        if obj is None:
            break
        try:
            obj._cleanup()
        except Exception as e:  # keep cleaning the others
            sys.stderr.write("iotca_fixture: cleanup of %r failed: %s\n"
                             % (obj, e))
    with _lock:
        dirs = list(_tempdirs)
        del _tempdirs[:]
    for d in dirs:
        if _KEEP:
            sys.stderr.write("iotca_fixture: kept %s\n" % d)
        else:
            shutil.rmtree(d, ignore_errors=True)


def _sigterm(signum, frame):
    raise SystemExit(128 + signum)  # so that atexit runs (ctest timeout)


try:
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _sigterm)
except ValueError:  # imported outside the main thread: leave it be
    pass


def _popen(argv, **kw):
    # The child dies with us: setpriv (util-linux) sets PR_SET_PDEATHSIG
    # and execs argv, so the pid is the service's own. No preexec_fn: it
    # forces a fork() that runs grpcio's fork handlers, which can deadlock
    # while other threads have calls in flight; without it Python spawns
    # with vfork, which runs none.
    return subprocess.Popen(["setpriv", "--pdeathsig", "KILL", "--"]
                            + list(argv), stdin=subprocess.DEVNULL, **kw)


def _tail(path, n=40):
    try:
        with open(path, "r", errors="replace") as f:
            lines = f.readlines()
    except OSError as e:
        return "(no log: %s)" % e
    return "".join(lines[-n:])


def _terminate(proc, sig=signal.SIGTERM, timeout=10):
    """Signals proc, waits up to timeout, then SIGKILLs. Returns the code."""
    if proc.poll() is None:
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def binary(name):
    """Path of a built program (iotca-registry, iotca, ...) under BUILD."""
    pats = [os.path.join(BUILD, "services", "*", name),
            os.path.join(BUILD, "tools", name),
            os.path.join(BUILD, "tools", "*", name),
            os.path.join(BUILD, "tests", "*", name),
            os.path.join(BUILD, name)]
    for pat in pats:
        for p in sorted(glob.glob(pat)):
            if os.path.isfile(p) and os.access(p, os.X_OK):
                return p
    raise FileNotFoundError(
        "%s is not built under %s (looked in services/*/, tools/, tests/*/); "
        "build it with: cmake --build %s --target %s, or point "
        "IOTCA_BUILD_DIR at the build directory" % (name, BUILD, BUILD, name))


# -------------------------------------------------------------------- stubs

_stubs = None
_stubs_lock = threading.Lock()


def stubs():
    """Generates (once per process) and imports the Python gRPC stubs."""
    global _stubs
    with _stubs_lock:
        if _stubs is not None:
            return _stubs
        out = _mkdtemp("iotca-stubs-")
        proto = os.path.join(REPO, "proto")
        protos = ["grpc/health/v1/health.proto"]
        protos += ["iotca/v1/" + f for f in sorted(
            os.listdir(os.path.join(proto, "iotca/v1"))) if f.endswith(".proto")]
        r = subprocess.run(
            ["protoc", "-I", proto, "--python_out", out, "--grpc_out", out,
             "--plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin"] + protos,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            raise RuntimeError("protoc failed:\n" + r.stdout)
        sys.path.insert(0, out)
        # The generated grpc/health/v1 lives inside the installed grpcio
        # package's name: let the package find it there too.
        import grpc
        gen = os.path.join(out, "grpc")
        if gen not in grpc.__path__:
            grpc.__path__.append(gen)
        if "grpc.health" in sys.modules:  # grpcio-health-checking present
            sys.modules["grpc.health"].__path__.append(
                os.path.join(gen, "health"))
        from grpc.health.v1 import health_pb2, health_pb2_grpc
        from iotca.v1 import registry_pb2, registry_pb2_grpc
        from iotca.v1 import association_pb2, association_pb2_grpc
        _stubs = types.SimpleNamespace(
            registry_pb2=registry_pb2, registry_pb2_grpc=registry_pb2_grpc,
            association_pb2=association_pb2,
            association_pb2_grpc=association_pb2_grpc,
            health_pb2=health_pb2, health_pb2_grpc=health_pb2_grpc,
            dir=out)
        return _stubs


def health_status(addr, service="", timeout=2.0):
    """The health Check status name of addr ("SERVING", "NOT_SERVING", ...),
    or the gRPC status code name when the call fails ("UNAVAILABLE")."""
    import grpc
    s = stubs()
    with grpc.insecure_channel(addr) as ch:
        try:
            r = s.health_pb2_grpc.HealthStub(ch).Check(
                s.health_pb2.HealthCheckRequest(service=service),
                timeout=timeout)
        except grpc.RpcError as e:
            return e.code().name
        return s.health_pb2.HealthCheckResponse.ServingStatus.Name(r.status)


# --------------------------------------------------------------------- etcd

class Etcd:
    """A throwaway single-node etcd on two free loopback ports."""

    HEALTH_WAIT = 20.0

    def __init__(self, extra_args=()):
        self.extra_args = list(extra_args)
        self.dir = _mkdtemp("iotca-etcd-")
        self.data_dir = os.path.join(self.dir, "data")
        self.log_path = os.path.join(self.dir, "etcd.log")
        self.proc = None
        _track(self)
        last = None
        for _ in range(5):  # ports are free when picked, not when bound
            self.client_port, self.peer_port = free_port(), free_port()
            if self.client_port == self.peer_port:
                continue
            self.endpoint = "http://127.0.0.1:%d" % self.client_port
            try:
                self._start()
                return
            except RuntimeError as e:
                last = e
                shutil.rmtree(self.data_dir, ignore_errors=True)
        self.close()
        raise last

    def _argv(self):
        peer = "http://127.0.0.1:%d" % self.peer_port
        return ["etcd", "--name", "iotca-test",
                "--data-dir", self.data_dir,
                "--listen-client-urls", self.endpoint,
                "--advertise-client-urls", self.endpoint,
                "--listen-peer-urls", peer,
                "--initial-advertise-peer-urls", peer,
                "--initial-cluster", "iotca-test=" + peer,
                "--logger", "zap", "--log-level", "error",
                # What the association service's one-transaction commit of
                # a 10,000-row file needs (as scripts/run.sh and deploy/).
                "--max-txn-ops", "24576",
                "--max-request-bytes", "16777216"] + self.extra_args

    def _start(self):
        with open(self.log_path, "ab") as log:
            self.proc = _popen(self._argv(), stdout=log,
                               stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.HEALTH_WAIT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("etcd exited with %s:\n%s"
                                   % (self.proc.returncode,
                                      _tail(self.log_path)))
            if self.healthy():
                return
            time.sleep(0.05)
        _terminate(self.proc, timeout=5)
        raise RuntimeError("etcd at %s not healthy after %.0f s:\n%s"
                           % (self.endpoint, self.HEALTH_WAIT,
                              _tail(self.log_path)))

    def healthy(self):
        """Whether GET /health says "health":"true"."""
        try:
            with urllib.request.urlopen(self.endpoint + "/health",
                                        timeout=1) as r:
                return json.loads(r.read().decode()).get("health") == "true"
        except (OSError, ValueError):
            return False

    def count(self, prefix):
        """How many keys start with prefix (the v3 JSON gateway)."""
        p = prefix.encode()
        end = p[:-1] + bytes([p[-1] + 1])
        body = json.dumps({"key": base64.b64encode(p).decode(),
                           "range_end": base64.b64encode(end).decode(),
                           "count_only": True}).encode()
        req = urllib.request.Request(self.endpoint + "/v3/kv/range",
                                     data=body, method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            return int(json.loads(r.read().decode()).get("count", 0))

    def stop(self):
        """SIGTERM, then SIGKILL after 5 s. The data stays."""
        if self.proc is not None:
            _terminate(self.proc, timeout=5)

    def restart(self):
        """Starts it again with the same ports and data."""
        self.stop()
        self._start()

    def close(self):
        """Stops it and removes its data."""
        self.stop()
        _untrack(self)
        _rmtree(self.dir)

    _cleanup = close

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ------------------------------------------------------------------ service

class Service:
    """An iotca service process, ready when its gRPC health says SERVING.

    binary is a path (or an argv list); env (a dict, updated in place) is
    added to this process's environment, with env[addr_var] set to the
    address picked here; args are extra command-line arguments."""

    START_WAIT = 15.0

    def __init__(self, binary, env, addr_var="IOTCA_LISTEN", args=()):
        self.argv = ([binary] if isinstance(binary, str) else list(binary))
        self.argv += list(args)
        self.env = env
        self.addr_var = addr_var
        self.dir = _mkdtemp("iotca-svc-")
        self.log_path = os.path.join(
            self.dir, os.path.basename(self.argv[0]) + ".log")
        self.proc = None
        _track(self)
        for attempt in range(5):
            self.port = free_port()
            self.addr = "127.0.0.1:%d" % self.port
            self.env[addr_var] = self.addr
            if self._start(last=attempt == 4):
                return

    def _start(self, last):
        with open(self.log_path, "ab") as log:
            self.proc = _popen(self.argv, env=dict(os.environ, **self.env),
                               stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.START_WAIT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                text = self.log_text()
                if not last and "in use" in text:
                    return False  # lost a port race: try another port
                raise RuntimeError("%s exited with %s before serving:\n%s"
                                   % (self.argv[0], self.proc.returncode,
                                      _tail(self.log_path)))
            if health_status(self.addr, timeout=1.0) == "SERVING":
                return True
            time.sleep(0.05)
        self.kill()
        raise RuntimeError("%s not SERVING on %s after %.0f s:\n%s"
                           % (self.argv[0], self.addr, self.START_WAIT,
                              _tail(self.log_path)))

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Sends sig, waits timeout s (then SIGKILL). Returns the exit code
        (negative: killed by that signal)."""
        rc = _terminate(self.proc, sig, timeout) if self.proc else None
        _untrack(self)
        return rc

    def kill(self):
        return self.stop(signal.SIGKILL, 5)

    def restart(self):
        """Starts the process again on the same address (after stop or
        kill), so that clients configured with it find it again."""
        _track(self)
        deadline = time.monotonic() + 10
        while not self._start(last=time.monotonic() > deadline):
            time.sleep(0.2)  # the port may not be free yet

    def log_text(self):
        try:
            with open(self.log_path, "r", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def _cleanup(self):
        self.kill()

    def __repr__(self):
        return "Service(%s at %s)" % (os.path.basename(self.argv[0]),
                                     getattr(self, "addr", "?"))


# ----------------------------------------------------------------- registry

def bearer(token):
    return [("authorization", "Bearer " + token)]


class Registry:
    """One iotca-registry (and its own etcd unless one is given)."""

    def __init__(self, etcd=None, operator_token=None, internal_token=None,
                 extra_env=None):
        import grpc
        self.s = stubs()
        self.operator_token = operator_token or "op-" + secrets.token_hex(16)
        self.internal_token = internal_token or "in-" + secrets.token_hex(16)
        self.own_etcd = etcd is None
        self.etcd = etcd or Etcd()
        self.svc = self.channel = None
        _track(self)
        env = {"IOTCA_ETCD_ENDPOINTS": self.etcd.endpoint,
               "IOTCA_OPERATOR_TOKEN": self.operator_token,
               "IOTCA_INTERNAL_TOKEN": self.internal_token,
               "IOTCA_LOG_LEVEL": "info"}
        env.update(extra_env or {})
        try:
            self.svc = Service(binary("iotca-registry"), env)
        except Exception:
            self._cleanup()
            _untrack(self)
            raise
        self.addr = self.svc.addr
        self.channel = grpc.insecure_channel(self.addr)
        self.stub = self.s.registry_pb2_grpc.RegistryStub(self.channel)

    def op_md(self):
        return bearer(self.operator_token)

    def internal_md(self):
        return bearer(self.internal_token)

    @staticmethod
    def key_md(api_key):
        return bearer(api_key)

    def new_account(self, name=None):
        """CreateAccount as operator; returns the Account."""
        name = name or "t_" + secrets.token_hex(6)
        return self.stub.CreateAccount(
            self.s.registry_pb2.CreateAccountRequest(name=name),
            metadata=self.op_md(), timeout=10)

    def new_key(self, account_id):
        """CreateApiKey as operator; returns the CreateApiKeyResponse."""
        return self.stub.CreateApiKey(
            self.s.registry_pb2.CreateApiKeyRequest(account_id=account_id,
                                                    description="e2e"),
            metadata=self.op_md(), timeout=10)

    def new_tenant(self, name=None):
        """A new account and an API key for it: (account_id, api_key)."""
        acc = self.new_account(name)
        return acc.id, self.new_key(acc.id).api_key

    def regcode(self, api_key):
        return self.stub.GetRegistrationCode(
            self.s.registry_pb2.GetRegistrationCodeRequest(),
            metadata=self.key_md(api_key), timeout=10).registration_code

    def register(self, api_key, name, ca, ver, initial_status=0, der=False,
                 timeout=10):
        """RegisterCaCertificate with two Pki certificates (PEM or DER)."""
        return self.stub.RegisterCaCertificate(
            self.s.registry_pb2.RegisterCaCertificateRequest(
                name=name,
                ca_certificate=ca.der if der else ca.pem,
                verification_certificate=ver.der if der else ver.pem,
                initial_status=initial_status),
            metadata=self.key_md(api_key), timeout=timeout)

    def stop(self, timeout=10):
        """Stops the registry process (not etcd); returns its exit code."""
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        return self.svc.stop(timeout=timeout) if self.svc else None

    def close(self):
        """Stops what this object started. Raises if the registry did not
        exit 0 on SIGTERM (e.g. a sanitizer report), after cleaning up."""
        rc = self.stop()
        if self.own_etcd:
            self.etcd.close()
        _untrack(self)
        if rc not in (0, None):
            raise AssertionError("iotca-registry exited %s on SIGTERM; log "
                                 "tail:\n%s" % (rc, _tail(self.svc.log_path,
                                                           60)))

    def _cleanup(self):
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        if self.svc is not None:
            self.svc.kill()
        if self.own_etcd:
            self.etcd.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# -------------------------------------------------------------- association

class Association:
    """One iotca-association against a Registry: the same etcd and the same
    operator and internal tokens, IOTCA_REGISTRY = the registry's address.

    extra_env: more environment (e.g. {"IOTCA_FAULT_ABORT":
    "before-commit"} in test builds). The channel accepts messages of up to
    16 MiB both ways, so that oversized uploads reach the server."""

    MAX_MSG = 16 << 20

    def __init__(self, registry, extra_env=None):
        import grpc
        self.s = stubs()
        self.registry = registry
        self.svc = self.channel = None
        _track(self)
        env = {"IOTCA_ETCD_ENDPOINTS": registry.etcd.endpoint,
               "IOTCA_REGISTRY": registry.addr,
               "IOTCA_OPERATOR_TOKEN": registry.operator_token,
               "IOTCA_INTERNAL_TOKEN": registry.internal_token,
               "IOTCA_LOG_LEVEL": "info"}
        env.update(extra_env or {})
        try:
            self.svc = Service(binary("iotca-association"), env)
        except Exception:
            self._cleanup()
            _untrack(self)
            raise
        self.addr = self.svc.addr
        self.channel = grpc.insecure_channel(self.addr, options=[
            ("grpc.max_send_message_length", self.MAX_MSG),
            ("grpc.max_receive_message_length", self.MAX_MSG)])
        self.stub = self.s.association_pb2_grpc.AssociationStub(self.channel)

    def internal_md(self):
        return bearer(self.registry.internal_token)

    def new_product(self, api_key, name=None, private_ca=True, net_type=None,
                    auth_mode=0, timeout=10):
        """CreateProduct; net_type None means NET_TYPE_MQTT. Returns the
        Product."""
        pb = self.s.association_pb2
        if net_type is None:
            net_type = pb.NET_TYPE_MQTT
        name = name or "p_" + secrets.token_hex(6)
        return self.stub.CreateProduct(
            pb.CreateProductRequest(name=name, use_private_ca=private_ca,
                                    net_type=net_type, auth_mode=auth_mode),
            metadata=bearer(api_key), timeout=timeout)

    def upload(self, api_key, ca_id, csv_bytes, file_name="x.csv",
               timeout=60):
        """UploadAssociations; returns the UploadAssociationsResponse."""
        pb = self.s.association_pb2
        if isinstance(csv_bytes, str):
            csv_bytes = csv_bytes.encode()
        return self.stub.UploadAssociations(
            pb.UploadAssociationsRequest(ca_id=ca_id, csv=csv_bytes,
                                         file_name=file_name),
            metadata=bearer(api_key), timeout=timeout)

    def list_all(self, api_key, ca_id, product_key="", page_size=1000,
                 timeout=30):
        """Every association of ca_id (following next_page_token)."""
        pb = self.s.association_pb2
        out, token = [], ""
        while True:
            r = self.stub.ListAssociations(
                pb.ListAssociationsRequest(ca_id=ca_id,
                                           product_key=product_key,
                                           page_size=page_size,
                                           page_token=token),
                metadata=bearer(api_key), timeout=timeout)
            out.extend(r.associations)
            token = r.next_page_token
            if not token:
                return out

    def resolve(self, ca_id, cert_sn, account_id, md=None, timeout=10):
        """ResolveDevice with the internal token (or md)."""
        pb = self.s.association_pb2
        return self.stub.ResolveDevice(
            pb.ResolveDeviceRequest(ca_id=ca_id, cert_sn=cert_sn,
                                    account_id=account_id),
            metadata=md if md is not None else self.internal_md(),
            timeout=timeout)

    def stop(self, timeout=20):
        """Stops the process; returns its exit code (negative: killed by
        that signal, e.g. -6 after an injected abort())."""
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        return self.svc.stop(timeout=timeout) if self.svc else None

    def close(self, check=True):
        """Stops it. Unless check is False, raises if it did not exit 0 on
        SIGTERM (e.g. a sanitizer report), after cleaning up."""
        rc = self.stop()
        _untrack(self)
        if check and rc not in (0, None):
            raise AssertionError("iotca-association exited %s on SIGTERM; "
                                 "log tail:\n%s"
                                 % (rc, _tail(self.svc.log_path, 60)))
        return rc

    def _cleanup(self):
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        if self.svc is not None:
            self.svc.kill()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Suite:
    """etcd + registry + `replicas` association processes, a Pki, and
    tenants: an account with an API key, a registered ACTIVE CA (EC key)
    and a private-CA MQTT product.

      s = Suite(); t = s.tenant()
      s.assoc.upload(t.key, t.ca_id, "ProductKey,...")
    """

    def __init__(self, replicas=1, assoc_env=None):
        self.pki = self.reg = None
        self.assocs = []
        _track(self)
        try:
            self.pki = Pki()
            self.reg = Registry()
            for _ in range(replicas):
                self.assocs.append(Association(self.reg, assoc_env))
        except Exception:
            self._cleanup()
            _untrack(self)
            raise
        self.assoc = self.assocs[0]

    def register_ca(self, api_key, status=0, name=None):
        """Registers a fresh EC CA (subject unique to this run) for the
        key's account; returns (CaCertificate, Cert)."""
        name = name or "ca_" + secrets.token_hex(6)
        ca = self.pki.make_ca(name, key="ec")
        ver = self.pki.make_verification(ca, self.reg.regcode(api_key),
                                         key="ec")
        return self.reg.register(api_key, name, ca, ver,
                                 initial_status=status), ca

    def tenant(self, ca=True, product=True):
        """A new account: .account_id, .key, .md and, when asked, .ca
        (the CaCertificate), .ca_id, .ca_cert (Pki Cert), .product,
        .pk."""
        t = types.SimpleNamespace()
        t.account_id, t.key = self.reg.new_tenant()
        t.md = bearer(t.key)
        t.ca = t.ca_id = t.ca_cert = t.product = t.pk = None
        if ca:
            t.ca, t.ca_cert = self.register_ca(t.key)
            t.ca_id = t.ca.id
        if product:
            t.product = self.assoc.new_product(t.key)
            t.pk = t.product.product_key
        return t

    def close(self):
        """Stops everything; raises if a service did not exit 0."""
        errors = []
        for a in self.assocs:
            try:
                a.close()
            except AssertionError as e:
                errors.append(str(e))
        self.assocs = []
        if self.reg is not None:
            try:
                self.reg.close()
            except AssertionError as e:
                errors.append(str(e))
            self.reg = None
        if self.pki is not None:
            self.pki.close()
            self.pki = None
        _untrack(self)
        if errors:
            raise AssertionError("\n".join(errors))

    def _cleanup(self):
        for a in self.assocs:
            a._cleanup()
        if self.reg is not None:
            self.reg._cleanup()
        if self.pki is not None:
            self.pki.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------------- PKI

def _der_tlv(buf, pos):
    """(tag, start of value, end of value) of the DER element at pos."""
    tag = buf[pos]
    n = buf[pos + 1]
    pos += 2
    if n & 0x80:
        k = n & 0x7f
        n = int.from_bytes(buf[pos:pos + k], "big")
        pos += k
    return tag, pos, pos + n


def _der_children(buf, start, end):
    out = []
    while start < end:
        tag, vs, ve = _der_tlv(buf, start)
        out.append((tag, start, vs, ve))
        start = ve
    return out


class Cert:
    """A certificate made by Pki: files, PEM and DER bytes, and the DER of
    its subject and issuer Names (parsed from the DER, not printed)."""

    def __init__(self, name, pem_path, key_path):
        self.name = name
        self.pem_path = pem_path
        self.key_path = key_path
        with open(pem_path, "rb") as f:
            self.pem = f.read()
        self.der = ssl.PEM_cert_to_DER_cert(self.pem.decode())

    def _tbs_fields(self):
        _, vs, ve = _der_tlv(self.der, 0)              # Certificate
        _, tvs, tve = _der_tlv(self.der, vs)           # tbsCertificate
        f = _der_children(self.der, tvs, tve)
        if f and f[0][0] == 0xa0:                      # [0] version
            f = f[1:]
        return f  # serial, sigalg, issuer, validity, subject, spki, ...

    def _name(self, i):
        _, start, _, end = self._tbs_fields()[i]
        return self.der[start:end]

    @property
    def issuer_der(self):
        return self._name(2)

    @property
    def subject_der(self):
        return self._name(4)

    @property
    def serial(self):
        """The serial number as uppercase hex without leading zeros."""
        _, _, vs, ve = self._tbs_fields()[0]
        return "%X" % int.from_bytes(self.der[vs:ve], "big")

    @property
    def sha256(self):
        import hashlib
        return hashlib.sha256(self.der).hexdigest()

    def __repr__(self):
        return "Cert(%s)" % self.name


class Pki:
    """Certificates made with the openssl command, in a temporary directory.

    Keys are spelt like `openssl req -newkey`: "rsa:2048" (or another size)
    or "ec" (P-256; "ec:secp384r1" for another curve). RSA key generation
    takes about a second here, EC a few milliseconds: use EC wherever the
    rule under test does not need RSA.
    """

    def __init__(self):
        self.dir = _mkdtemp("iotca-pki-")
        self._n = 0
        self._lock = threading.Lock()
        _track(self)

    def close(self):
        _untrack(self)
        _rmtree(self.dir)

    _cleanup = close

    def _path(self, stem):
        with self._lock:
            self._n += 1
            return os.path.join(self.dir, "%03d-%s" % (self._n, stem))

    def _run(self, *argv):
        r = subprocess.run(list(argv), cwd=self.dir, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
        if r.returncode != 0:
            raise RuntimeError("%s failed (%d):\n%s"
                               % (" ".join(argv), r.returncode, r.stdout))
        return r.stdout

    def make_key(self, path, key="rsa:2048"):
        """Writes a private key (PEM). "rsa:N" uses the page's genrsa."""
        kind, _, arg = key.partition(":")
        if kind == "rsa":
            self._run("openssl", "genrsa", "-out", path, arg or "2048")
        elif kind == "ec":
            self._run("openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                      "ec_paramgen_curve:" + (arg or "P-256"), "-out", path)
        elif kind in ("ed25519", "ed448"):
            self._run("openssl", "genpkey", "-algorithm", kind, "-out", path)
        else:
            raise ValueError("unknown key kind %r" % key)
        return path

    @staticmethod
    def _ext_config(path, ca, key_usage, extra="", string_mask=None):
        lines = ["[req]", "distinguished_name = dn"]
        if string_mask:
            lines.append("string_mask = " + string_mask)
        lines += ["[dn]", "[ext]", "subjectKeyIdentifier = hash"]
        if ca is True:
            lines.append("basicConstraints = critical,CA:TRUE")
        elif ca is False:
            lines.append("basicConstraints = critical,CA:FALSE")
        if key_usage is None:
            key_usage = ("critical,keyCertSign,cRLSign" if ca
                         else "critical,digitalSignature")
        if key_usage:
            lines.append("keyUsage = " + key_usage)
        if extra:
            lines.append(extra)
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def make_ca(self, name, subject=None, key="rsa:2048", days=30, ca=True,
                key_usage=None, not_yet_valid=False, expired=False,
                issuer=None, string_mask=None):
        """A CA certificate (self-signed, or signed by issuer, a Cert).

        subject: openssl -subj form, default "/CN=<name>".
        ca: True -> basicConstraints critical,CA:TRUE; False -> CA:FALSE
            (a leaf); None -> no basicConstraints at all.
        key_usage: None -> the usual one for the kind (CA:
            "critical,keyCertSign,cRLSign", else
            "critical,digitalSignature"); "" -> no keyUsage extension;
            anything else is written as given.
        expired / not_yet_valid: OpenSSL 3.0's `req -x509` and `x509 -req`
            cannot set the validity start (no -not_before; `-days` must be
            >= -1), so such certificates are signed by `openssl ca` with
            explicit -startdate/-enddate and a minimal CA database in a
            scratch directory: expired = valid from now-(days+2) to
            now-1 day, not yet valid = from now+1 day to now+(days+1).
            Either way the certificate carries the same extensions.
        string_mask: the `req` string_mask for the subject's string types:
            None is openssl's default here (UTF8String); "default" makes
            ASCII names PrintableString: the same text, other DER bytes.
        """
        subject = subject or "/CN=" + name
        stem = self._path(name)
        key_path = self.make_key(stem + ".key", key)
        pem_path = stem + ".pem"
        cfg = self._ext_config(stem + ".cnf", ca, key_usage,
                               "authorityKeyIdentifier = keyid:always"
                               if issuer is not None else "", string_mask)
        if expired or not_yet_valid:
            day = 86400
            now = time.time()
            if expired:
                start, end = now - (days + 2) * day, now - day
            else:
                start, end = now + day, now + (days + 1) * day
            self._openssl_ca(stem, key_path, subject, cfg, start, end,
                             issuer, pem_path)
        elif issuer is None:
            self._run("openssl", "req", "-x509", "-new", "-key", key_path,
                      "-subj", subject, "-days", str(days), "-sha256",
                      "-config", cfg, "-extensions", "ext", "-out", pem_path)
        else:
            csr = stem + ".csr"
            self._run("openssl", "req", "-new", "-key", key_path, "-subj",
                      subject, "-config", cfg, "-out", csr)
            self._run("openssl", "x509", "-req", "-in", csr, "-CA",
                      issuer.pem_path, "-CAkey", issuer.key_path,
                      "-set_serial", "0x" + secrets.token_hex(12),
                      "-days", str(days), "-sha256", "-extfile", cfg,
                      "-extensions", "ext", "-out", pem_path)
        return Cert(name, pem_path, key_path)

    def _openssl_ca(self, stem, key_path, subject, ext_cfg, start, end,
                    issuer, pem_path):
        db = stem + ".cadb"
        os.mkdir(db)
        open(os.path.join(db, "index.txt"), "w").close()
        with open(os.path.join(db, "serial"), "w") as f:
            f.write(secrets.token_hex(12) + "\n")
        with open(ext_cfg) as f:
            ext = f.read()
        cfg = os.path.join(db, "ca.cnf")
        with open(cfg, "w") as f:
            f.write("[ca]\ndefault_ca = ca_default\n"
                    "[ca_default]\ndir = %s\ndatabase = $dir/index.txt\n"
                    "new_certs_dir = $dir\nserial = $dir/serial\n"
                    "default_md = sha256\npolicy = policy_any\n"
                    "unique_subject = no\ncopy_extensions = none\n"
                    "[policy_any]\ncommonName = optional\n"
                    "countryName = optional\nstateOrProvinceName = optional\n"
                    "localityName = optional\norganizationName = optional\n"
                    "organizationalUnitName = optional\n"
                    "emailAddress = optional\n" % db + ext)
        csr = stem + ".csr"
        self._run("openssl", "req", "-new", "-key", key_path, "-subj",
                  subject, "-config", cfg, "-out", csr)

        def stamp(t):
            return time.strftime("%y%m%d%H%M%SZ", time.gmtime(t))
        signer = (["-selfsign", "-keyfile", key_path] if issuer is None else
                  ["-cert", issuer.pem_path, "-keyfile", issuer.key_path])
        self._run("openssl", "ca", "-batch", "-notext", "-preserveDN",
                  "-config", cfg, "-extensions", "ext", "-in", csr,
                  "-startdate", stamp(start), "-enddate", stamp(end),
                  "-out", pem_path, *signer)

    def make_verification(self, ca, cn, signer_key=None, days=300,
                          key="rsa:2048", key_path=None):
        """The validation certificate, with the page's three commands:

          openssl genrsa -out verificationCert.key 2048
          openssl req -new -key verificationCert.key -out verificationCert.csr
              (CN = cn, given with -subj instead of the prompt)
          openssl x509 -req -in verificationCert.csr -CA yourCA.cer
              -CAkey yourPrivateKey.key -CAcreateserial
              -out verificationCert.crt -days 300 -sha512

        key: the verification key's kind ("rsa:2048" is the page's genrsa;
            "ec" is much faster); key_path: reuse an existing key instead.
        signer_key: sign with this other private key (a path or a Cert)
            instead of the CA's. `openssl x509 -req` refuses a -CAkey that
            does not match -CA, so the CA certificate is first re-signed
            with that key (`openssl x509 -signkey`: same subject, other
            public key) and used as -CA: the issuer name is right, the
            signature is not the CA's.
        """
        stem = self._path("verificationCert")
        if key_path is None:
            key_path = self.make_key(stem + ".key", key)
        csr, crt = stem + ".csr", stem + ".crt"
        self._run("openssl", "req", "-new", "-key", key_path, "-out", csr,
                  "-subj", "/CN=" + cn)
        ca_pem, ca_key = ca.pem_path, ca.key_path
        if signer_key is not None:
            ca_key = getattr(signer_key, "key_path", signer_key)
            ca_pem = stem + ".fakeca.pem"
            self._run("openssl", "x509", "-in", ca.pem_path, "-signkey",
                      ca_key, "-days", "30", "-out", ca_pem)
        self._run("openssl", "x509", "-req", "-in", csr, "-CA", ca_pem,
                  "-CAkey", ca_key, "-CAcreateserial", "-out", crt,
                  "-days", str(days), "-sha512")
        return Cert("verificationCert", crt, key_path)

    def make_device(self, ca, cn, serial_hex, key="rsa:2048", days=30):
        """A device (leaf, clientAuth) certificate with serial 0x<serial_hex>,
        signed by ca. RSA keys are written in the traditional "BEGIN RSA
        PRIVATE KEY" form, as the product page shows device keys."""
        stem = self._path("device-" + cn)
        key_path = stem + ".key"
        kind, _, bits = key.partition(":")
        if kind == "rsa":
            self._run("openssl", "genrsa", "-traditional", "-out", key_path,
                      bits or "2048")
        else:
            self.make_key(key_path, key)
        cfg = self._ext_config(stem + ".cnf", False,
                               "critical,digitalSignature,keyEncipherment",
                               "extendedKeyUsage = clientAuth\n"
                               "authorityKeyIdentifier = keyid:always")
        csr, pem = stem + ".csr", stem + ".pem"
        self._run("openssl", "req", "-new", "-key", key_path, "-subj",
                  "/CN=" + cn, "-config", cfg, "-out", csr)
        self._run("openssl", "x509", "-req", "-in", csr, "-CA", ca.pem_path,
                  "-CAkey", ca.key_path, "-set_serial", "0x" + serial_hex,
                  "-days", str(days), "-sha256", "-extfile", cfg,
                  "-extensions", "ext", "-out", pem)
        return Cert(cn, pem, key_path)


# ---------------------------------------------------------------------- edge

def http_get(port, path, timeout=2.0):
    """(status, body) of GET http://127.0.0.1:<port><path>; (0, b"") when
    nothing answers."""
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path),
                                    timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return 0, b""


class Edge:
    """One iotca-edge in front of a Suite: MQTT over TLS on a free loopback
    port (.port), its probe endpoint on another (.probe_port), a server
    certificate made here (.server_cert, a Cert: clients trust its PEM),
    the Suite's internal token. Ready when /readyz answers 200 (both
    change feeds answered once). extra_env: more environment, e.g.
    {"IOTCA_EDGE_UPSTREAM": "tcp://127.0.0.1:5555"}."""

    START_WAIT = 20.0

    def __init__(self, suite, extra_env=None, server_key="rsa:2048",
                 wait_ready=True):
        self.suite = suite
        self.proc = None
        self.dir = _mkdtemp("iotca-edge-")
        self.log_path = os.path.join(self.dir, "iotca-edge.log")
        _track(self)
        stem = "edge-server-" + secrets.token_hex(4)
        self.server_cert = suite.pki.make_ca(
            stem, subject="/CN=127.0.0.1", key=server_key, ca=False)
        self.env = {
            "IOTCA_EDGE_TLS_CERT": self.server_cert.pem_path,
            "IOTCA_EDGE_TLS_KEY": self.server_cert.key_path,
            "IOTCA_REGISTRY": suite.reg.addr,
            "IOTCA_ASSOCIATION": suite.assoc.addr,
            "IOTCA_INTERNAL_TOKEN": suite.reg.internal_token,
            "IOTCA_EDGE_THREADS": "2",
            "IOTCA_EDGE_CHANGES_POLL_MS": "300",
            "IOTCA_LOG_LEVEL": "debug",
        }
        self.env.update(extra_env or {})
        self.start(wait_ready)

    def start(self, wait_ready=True):
        """(Re)starts the process on new ports."""
        self.port = free_port()
        self.probe_port = free_port()
        self.env["IOTCA_EDGE_LISTEN"] = "127.0.0.1:%d" % self.port
        self.env["IOTCA_EDGE_PROBE_LISTEN"] = "127.0.0.1:%d" % self.probe_port
        with open(self.log_path, "ab") as log:
            self.proc = _popen([binary("iotca-edge")],
                               env=dict(os.environ, **self.env),
                               stdout=log, stderr=subprocess.STDOUT)
        path = "/readyz" if wait_ready else "/healthz"
        deadline = time.monotonic() + self.START_WAIT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("iotca-edge exited with %s:\n%s"
                                   % (self.proc.returncode,
                                      _tail(self.log_path)))
            if http_get(self.probe_port, path, 0.5)[0] == 200:
                return
            time.sleep(0.05)
        raise RuntimeError("iotca-edge not answering %s after %.0f s:\n%s"
                           % (path, self.START_WAIT, _tail(self.log_path)))

    def metrics(self):
        """The /metrics samples as {"name{labels}": value}."""
        status, body = http_get(self.probe_port, "/metrics")
        out = {}
        for line in body.decode().splitlines():
            if line and not line.startswith("#"):
                k, _, v = line.rpartition(" ")
                out[k] = float(v)
        return out

    def stop(self, sig=signal.SIGTERM, timeout=10):
        rc = _terminate(self.proc, sig, timeout) if self.proc else None
        self.proc = None
        return rc

    def log_text(self):
        try:
            with open(self.log_path, "r", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def close(self):
        """Stops with SIGTERM; asserts the edge exited 0."""
        rc = self.stop()
        _untrack(self)
        if rc not in (0, None):
            raise AssertionError("iotca-edge exited with %s:\n%s"
                                 % (rc, _tail(self.log_path)))
        _rmtree(self.dir)

    def _cleanup(self):
        self.stop(signal.SIGKILL, 5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ------------------------------------------------------------------ running

def run_tests(argv=None):
    """Runs the unittest cases of __main__ verbosely, prints
    "N passed, M failed" and exits non-zero on failure."""
    import unittest
    argv = argv if argv is not None else sys.argv
    t0 = time.monotonic()
    result = unittest.main(argv=[argv[0], "-v"] + argv[1:], exit=False).result
    # A test counts once however many of its subtests failed; an error in
    # setUpModule/tearDownModule or a class fixture counts as a failure.
    failed, fixture = set(), set()
    for test, _ in result.failures + result.errors:
        test = getattr(test, "test_case", test)
        (failed if isinstance(test, unittest.TestCase)
         else fixture).add(test.id())
    _cleanup_all()
    sys.stderr.write("(%.1f s)\n" % (time.monotonic() - t0))
    print("%d passed, %d failed" % (result.testsRun - len(failed),
                                    len(failed) + len(fixture)))
    sys.stdout.flush()
    sys.exit(0 if result.wasSuccessful() and result.testsRun > 0 else 1)
