#!/usr/bin/python3
"""The iotca command line against a real iotca-registry and etcd.

The product page's flow, driven only through the `iotca` binary (run with
subprocess, as an operator and a tenant would): create an account and an
API key, read the registration code, make the CA and the validation
certificate with the page's openssl commands, register, list, show,
disable, enable, disable, delete. Then the error cases: a wrong CN (the
server's message on stderr, exit 1), missing and oversized files, usage
errors (exit 2) and --help at every level (exit 0).

Every CLI run is also checked for sanitizer reports on stderr (the
sanitizer build runs this with leak detection).

usage: test_cli_registry.py [unittest args]   (IOTCA_BUILD_DIR = build dir)
"""
import calendar
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from iotca_fixture import Registry, binary, run_tests  # noqa: E402

IOTCA = binary("iotca")
REG = None   # the shared registry (and its etcd)
WORK = None  # scratch directory for certificates

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
SANITIZER = re.compile(r"(Address|Leak|UndefinedBehavior)Sanitizer|"
                       r"runtime error:")


def setUpModule():
    global REG, WORK
    WORK = tempfile.mkdtemp(prefix="iotca-cli-")
    REG = Registry()


def tearDownModule():
    shutil.rmtree(WORK, ignore_errors=True)
    REG.close()  # raises unless the registry exited 0 on SIGTERM


def uniq(prefix):
    """A name unique to this run, valid for accounts and CA names."""
    return "%s_%s" % (prefix, secrets.token_hex(4))


class Result:
    def __init__(self, argv, proc):
        self.argv = argv
        self.code = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr

    def json(self):
        return json.loads(self.out)

    def __str__(self):
        return "iotca %s -> exit %d\nstdout:\n%s\nstderr:\n%s" % (
            " ".join(self.argv), self.code, self.out, self.err)


def iotca(*args, token=None, registry=None, env=None):
    """Runs the CLI with only the settings given here (no IOTCA_* from the
    caller's environment). Fails the test on a sanitizer report."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("IOTCA_")}
    e["IOTCA_REGISTRY"] = registry or REG.svc.addr
    if token is not None:
        e["IOTCA_TOKEN"] = token
    e.update(env or {})
    p = subprocess.run([IOTCA] + list(args), env=e, stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=60)
    r = Result(list(args), p)
    if SANITIZER.search(r.err):
        raise AssertionError("sanitizer report from the CLI:\n%s" % r)
    return r


def op(*args):
    return iotca(*args, token=REG.operator_token)


def sh(*argv, cwd=None):
    """Runs openssl (or another tool) and returns its stdout."""
    p = subprocess.run(list(argv), cwd=cwd or WORK, stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True)
    if p.returncode != 0:
        raise RuntimeError("%s failed:\n%s" % (" ".join(argv), p.stdout))
    return p.stdout


def make_ca(d, cn):
    """The CA key and a self-signed CA certificate (basicConstraints
    CA:TRUE), as yourPrivateKey.key and yourCA.cer in directory d."""
    os.makedirs(d, exist_ok=True)
    sh("openssl", "genrsa", "-out", "yourPrivateKey.key", "2048", cwd=d)
    sh("openssl", "req", "-x509", "-new", "-key", "yourPrivateKey.key",
       "-subj", "/CN=%s/O=Acme/C=DE" % cn, "-days", "365", "-sha256",
       "-addext", "basicConstraints=critical,CA:TRUE",
       "-addext", "keyUsage=critical,keyCertSign,cRLSign",
       "-out", "yourCA.cer", cwd=d)
    return os.path.join(d, "yourCA.cer")


def make_verification(d, code):
    """The page's three commands: verificationCert.crt with CN = code,
    signed by the CA in d."""
    sh("openssl", "genrsa", "-out", "verificationCert.key", "2048", cwd=d)
    sh("openssl", "req", "-new", "-key", "verificationCert.key",
       "-out", "verificationCert.csr", "-subj", "/CN=" + code, cwd=d)
    sh("openssl", "x509", "-req", "-in", "verificationCert.csr",
       "-CA", "yourCA.cer", "-CAkey", "yourPrivateKey.key",
       "-CAcreateserial", "-out", "verificationCert.crt",
       "-days", "300", "-sha512", cwd=d)
    return os.path.join(d, "verificationCert.crt")


def cli_tenant(test):
    """A new account and API key, made with the CLI: (account_id, key)."""
    r = op("--json", "account", "create", uniq("cli"))
    test.assertEqual(r.code, 0, r)
    acc = r.json()["id"]
    r = op("--json", "key", "create", "--account", acc)
    test.assertEqual(r.code, 0, r)
    return acc, r.json()["api_key"]


def regcode(test, key):
    r = iotca("--json", "regcode", token=key)
    test.assertEqual(r.code, 0, r)
    return r.json()["registration_code"]


class DocumentedFlow(unittest.TestCase):
    """The product page, step by step, through the CLI only."""

    def test_documented_flow(self):
        d = os.path.join(WORK, "flow")
        name = uniq("acme")

        # Operator: the account and its API key.
        r = op("account", "create", name)
        self.assertEqual(r.code, 0, r)
        self.assertRegex(r.out, r"(?m)^name: +%s$" % name)
        acc = re.search(r"(?m)^id: +(\S+)$", r.out).group(1)
        r = op("account", "list", "--all")
        self.assertEqual(r.code, 0, r)
        self.assertEqual(r.out.split("\n")[0].split(),
                         ["ID", "NAME", "CREATED_AT"], r)
        self.assertRegex(r.out, r"(?m)^%s +%s +\S+Z$" % (acc, name))
        r = op("--json", "key", "create", "--account", acc,
               "--description", "e2e flow")
        self.assertEqual(r.code, 0, r)
        k = r.json()
        self.assertEqual(k["account_id"], acc)
        self.assertTrue(k["api_key"] and k["key_id"], r)
        self.assertIn("cannot be shown again", r.err)
        key = k["api_key"]

        # Tenant: registration code, then the page's openssl commands.
        code = regcode(self, key)
        self.assertRegex(code, r"^[0-9a-f]{64}$")
        r = iotca("regcode", token=key)
        self.assertEqual(r.code, 0, r)
        self.assertRegex(r.out, r"(?m)^registration_code: +%s$" % code)
        ca_pem = make_ca(d, "Acme Device CA " + name)
        ver = make_verification(d, code)

        ca_id = self.register_and_check(key, name, ca_pem, ver)
        self.check_list(key, ca_id, name, ca_pem)
        self.check_show(key, ca_id, ca_pem)
        self.lifecycle(key, ca_id)

        # The operator revokes the key: the tenant is refused (services
        # may cache a key's validity for a few seconds).
        r = op("key", "revoke", k["key_id"])
        self.assertEqual(r.code, 0, r)
        deadline = time.monotonic() + 15
        while True:
            r = iotca("regcode", token=key)
            if r.code != 0 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        self.assertEqual(r.code, 1, r)
        self.assertIn("(UNAUTHENTICATED)", r.err)

    def register_and_check(self, key, name, ca_pem, ver):
        r = iotca("ca", "register", "--name", name, "--cert", ca_pem,
                  "--verification", ver, token=key)
        self.assertEqual(r.code, 0, r)
        self.assertRegex(r.out, r"(?m)^status: +ACTIVE$")
        self.assertRegex(r.out, r"(?m)^name: +%s$" % name)
        ca_id = re.search(r"(?m)^id: +(\S+)$", r.out).group(1)
        # Cross-check with openssl's own view of the certificate.
        serial = sh("openssl", "x509", "-in", ca_pem, "-noout",
                    "-serial").strip().split("=")[1].lstrip("0") or "0"
        fp = sh("openssl", "x509", "-in", ca_pem, "-noout", "-fingerprint",
                "-sha256").strip().split("=")[1].replace(":", "").lower()
        self.assertRegex(r.out, r"(?m)^serial_number: +%s$" % serial)
        self.assertRegex(r.out, r"(?m)^sha256_fingerprint: +%s$" % fp)
        return ca_id

    def check_list(self, key, ca_id, name, ca_pem):
        r = iotca("ca", "list", token=key)
        self.assertEqual(r.code, 0, r)
        lines = r.out.rstrip("\n").split("\n")
        self.assertEqual(lines[0].split(), ["ID", "NAME", "STATUS", "SUBJECT",
                                            "SERIAL", "NOT_AFTER"], r)
        self.assertEqual(len(lines), 2, r)
        self.assertTrue(lines[1].startswith(ca_id + " "), r)
        self.assertIn(" %s " % name, lines[1])
        self.assertIn(" ACTIVE ", lines[1])
        self.assertIn("CN=Acme Device CA " + name, lines[1])
        self.assertRegex(lines[1].split()[-1], ISO)
        r = iotca("ca", "list", "--json", token=key)
        self.assertEqual(r.code, 0, r)
        cas = r.json()
        self.assertIsInstance(cas, list)
        self.assertEqual([c["id"] for c in cas], [ca_id])
        self.assertEqual(cas[0]["status"], "CA_STATUS_ACTIVE")
        self.assertEqual(cas[0]["name"], name)
        end = sh("openssl", "x509", "-in", ca_pem, "-noout", "-enddate")
        t = time.strptime(end.strip().split("=")[1], "%b %d %H:%M:%S %Y GMT")
        self.assertEqual(cas[0]["not_after"], calendar.timegm(t))
        self.assertEqual(lines[1].split()[-1],
                         time.strftime("%Y-%m-%dT%H:%M:%SZ", t))

    def check_show(self, key, ca_id, ca_pem):
        r = iotca("ca", "show", ca_id, token=key)
        self.assertEqual(r.code, 0, r)
        for field in ("id", "account_id", "name", "subject", "subject_der",
                      "serial_number", "sha256_fingerprint", "not_before",
                      "not_after", "key_algorithm", "key_bits", "status",
                      "created_at", "updated_at"):
            self.assertRegex(r.out, r"(?m)^%s: +\S" % field)
        self.assertRegex(r.out, r"(?m)^key_algorithm: +RSA$")
        self.assertRegex(r.out, r"(?m)^key_bits: +2048$")
        self.assertIn("pem:\n-----BEGIN CERTIFICATE-----\n", r.out)
        with open(ca_pem) as f:
            want = f.read()
        r = iotca("--json", "ca", "show", ca_id, token=key)
        self.assertEqual(r.code, 0, r)
        self.assertEqual(r.json()["pem"], want)

    def status_of(self, key, ca_id):
        r = iotca("--json", "ca", "show", ca_id, token=key)
        self.assertEqual(r.code, 0, r)
        return r.json()["status"]

    def lifecycle(self, key, ca_id):
        r = iotca("ca", "delete", ca_id, token=key)
        self.assertEqual(r.code, 1, r)
        self.assertIn("(FAILED_PRECONDITION)", r.err)
        for verb, want in (("disable", "INACTIVE"), ("enable", "ACTIVE"),
                           ("disable", "INACTIVE")):
            r = iotca("ca", verb, ca_id, token=key)
            self.assertEqual(r.code, 0, r)
            self.assertIn(" is %s." % want, r.out)
            self.assertEqual(self.status_of(key, ca_id), "CA_STATUS_" + want)
        r = iotca("ca", "delete", ca_id, token=key)
        self.assertEqual(r.code, 0, r)
        r = iotca("ca", "show", ca_id, token=key)
        self.assertEqual(r.code, 1, r)
        self.assertIn("(NOT_FOUND)", r.err)
        r = iotca("--json", "ca", "list", token=key)
        self.assertEqual((r.code, r.json()), (0, []), r)


class Errors(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.ca = make_ca(os.path.join(WORK, "errors"),
                         "Error Test CA " + secrets.token_hex(4))

    def test_wrong_cn_shows_server_message(self):
        _, key = cli_tenant(self)
        d = os.path.join(WORK, "wrongcn")
        make_ca(d, "Wrong CN CA " + secrets.token_hex(4))
        ver = make_verification(d, "0" * 64)
        r = iotca("ca", "register", "--name", uniq("bad"), "--cert",
                  os.path.join(d, "yourCA.cer"), "--verification", ver,
                  token=key)
        self.assertEqual(r.code, 1, r)
        self.assertEqual(r.out, "")
        # The message is the server's own: ask it directly to compare.
        import grpc
        s = REG.s.registry_pb2
        with open(os.path.join(d, "yourCA.cer"), "rb") as f:
            ca = f.read()
        with open(ver, "rb") as f:
            vb = f.read()
        with self.assertRaises(grpc.RpcError) as cm:
            REG.stub.RegisterCaCertificate(
                s.RegisterCaCertificateRequest(
                    name=uniq("bad"), ca_certificate=ca,
                    verification_certificate=vb),
                metadata=REG.key_md(key), timeout=10)
        self.assertEqual(cm.exception.code(),
                         grpc.StatusCode.FAILED_PRECONDITION)
        self.assertEqual(r.err, "iotca: %s (FAILED_PRECONDITION)\n"
                         % cm.exception.details())

    def test_missing_and_oversized_files(self):
        _, key = cli_tenant(self)
        missing = os.path.join(WORK, "no-such-file.pem")
        r = iotca("ca", "register", "--name", "Missing_1", "--cert", missing,
                  "--verification", self.ca, token=key)
        self.assertEqual(r.code, 1, r)
        self.assertIn(missing, r.err)
        self.assertIn("No such file", r.err)
        big = os.path.join(WORK, "big.pem")
        with open(big, "wb") as f:
            f.write(b"A" * 65537)
        r = iotca("ca", "register", "--name", "Big_1", "--cert", self.ca,
                  "--verification", big, token=key)
        self.assertEqual(r.code, 1, r)
        self.assertIn("65537 bytes", r.err)
        self.assertIn("64 KiB", r.err)
        r = iotca("--json", "ca", "list", token=key)
        self.assertEqual((r.code, r.json()), (0, []), r)

    def test_der_inactive_and_rotation(self):
        _, key = cli_tenant(self)
        d = os.path.join(WORK, "der")
        make_ca(d, "DER CA " + secrets.token_hex(4))
        ver = make_verification(d, regcode(self, key))
        sh("openssl", "x509", "-in", "yourCA.cer", "-outform", "DER",
           "-out", "yourCA.der.cer", cwd=d)
        r = iotca("--json", "ca", "register", "--name", uniq("der"),
                  "--cert", os.path.join(d, "yourCA.der.cer"),
                  "--verification", ver, "--inactive", token=key)
        self.assertEqual(r.code, 0, r)
        self.assertEqual(r.json()["status"], "CA_STATUS_INACTIVE")
        old = regcode(self, key)
        r = iotca("--json", "regcode", "--rotate", token=key)
        self.assertEqual(r.code, 0, r)
        new = r.json()["registration_code"]
        self.assertNotEqual(new, old)
        self.assertEqual(regcode(self, key), new)

    def test_server_refusals_exit_1(self):
        _, key = cli_tenant(self)
        r = iotca("account", "list", token=key)
        self.assertEqual(r.code, 1, r)
        self.assertIn("(PERMISSION_DENIED)", r.err)
        r = iotca("ca", "list", token="not-a-key")
        self.assertEqual(r.code, 1, r)
        self.assertIn("(UNAUTHENTICATED)", r.err)
        r = iotca("ca", "show", "ca_doesnotexist", token=key)
        self.assertEqual(r.code, 1, r)
        self.assertIn("(NOT_FOUND)", r.err)
        r = op("account", "create", "bad name!")
        self.assertEqual(r.code, 1, r)
        self.assertIn("(INVALID_ARGUMENT)", r.err)
        r = iotca("ca", "list", token=key, registry="127.0.0.1:1",
                  env={"IOTCA_TIMEOUT_MS": "3000"})
        self.assertEqual(r.code, 1, r)
        self.assertIn("(UNAVAILABLE)", r.err)
        self.assertIn("IOTCA_REGISTRY", r.err)


class Pagination(unittest.TestCase):

    def test_page_size_and_all(self):
        names = [uniq("page") for _ in range(3)]
        for n in names:
            self.assertEqual(op("account", "create", n).code, 0)
        r = op("--json", "account", "list", "--page-size", "1", "--all")
        self.assertEqual(r.code, 0, r)
        got = [a["name"] for a in r.json()]
        self.assertEqual(len(got), len(set(got)), "no account twice")
        for n in names:
            self.assertIn(n, got)
        r = op("account", "list", "--page-size", "1")
        self.assertEqual(r.code, 0, r)
        self.assertEqual(len(r.out.rstrip("\n").split("\n")), 2, r)
        m = re.search(r"--page-token (\S+)", r.err)
        self.assertIsNotNone(m, r)
        r2 = op("--json", "account", "list", "--page-size", "1",
                "--page-token", m.group(1))
        self.assertEqual(r2.code, 0, r2)
        self.assertEqual(len(r2.json()), 1)
        self.assertNotIn(r2.json()[0]["id"], r.out)


class Usage(unittest.TestCase):

    def test_help_at_every_level(self):
        cases = [
            ([], ["account create", "key create", "key revoke", "regcode",
                  "ca register", "ca list", "ca show", "ca enable",
                  "ca disable", "ca delete", "--registry", "--token",
                  "--tls-ca", "--json", "IOTCA_REGISTRY"]),
            (["account"], ["create", "list"]),
            (["account", "create"], ["NAME"]),
            (["account", "list"], ["--page-size", "--all"]),
            (["key"], ["create", "revoke"]),
            (["key", "create"], ["--account", "--description"]),
            (["regcode"], ["--rotate", "openssl"]),
            (["ca"], ["register", "list", "show", "enable", "disable",
                      "delete"]),
            (["ca", "register"], ["--name", "--cert", "--verification",
                                  "--inactive", "64 KiB"]),
            (["ca", "list"], ["--all"]),
            (["ca", "show"], ["ID"]),
        ]
        for args, words in cases:
            for flag in ("--help", "-h"):
                r = iotca(*(args + [flag]))
                self.assertEqual(r.code, 0, r)
                self.assertTrue(r.out.startswith("usage: iotca"), r)
                self.assertEqual(r.err, "", r)
                for w in words:
                    self.assertIn(w, r.out, "%s missing in\n%s" % (w, r))

    def test_usage_errors_exit_2(self):
        cases = [
            ["frobnicate"],
            [],
            ["ca"],
            ["ca", "frobnicate"],
            ["--no-such-option", "ca", "list"],
            ["ca", "list", "--no-such-option"],
            ["ca", "show"],
            ["ca", "show", "a", "b"],
            ["ca", "register", "--name", "x", "--cert", "y"],
            ["ca", "list", "--page-size", "zero"],
            ["key", "create"],
        ]
        for args in cases:
            r = iotca(*args, token="whatever")
            self.assertEqual(r.code, 2, r)
            self.assertEqual(r.out, "", r)
            self.assertIn("--help", r.err, r)
        r = iotca("ca", "list")  # no token at all
        self.assertEqual(r.code, 2, r)
        self.assertIn("IOTCA_TOKEN", r.err)


if __name__ == "__main__":
    run_tests()
