#!/usr/bin/python3
"""The iotca command line's association verbs against real processes
(etcd, iotca-registry, iotca-association).

The product page's association flow, driven only through the `iotca`
binary as an operator and a tenant would: the operator creates an account
and an API key; the tenant reads the registration code, registers a CA
(EC key, made with openssl), creates a product, downloads the CSV template
with `assoc template -o`, fills in three rows and uploads them, then lists,
shows, disables and enables a device, and deletes an association. Then the
error cases: a file with bad rows (the table of LINE COLUMN CODE MESSAGE,
exit 1, nothing associated), over a thousand errors (the count is the
server's total), an oversized file refused before anything is sent, an
inactive or unknown CA, usage errors (exit 2) and --help at every level.
--json output is parsed wherever a verb has one.

Every CLI run is also checked for sanitizer reports on stderr (the
sanitizer build runs this with leak detection), and both services must
exit 0 on SIGTERM at the end.

usage: test_cli_association.py [unittest args]   (IOTCA_BUILD_DIR = build)
"""
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import iotca_fixture  # noqa: E402
from iotca_fixture import Pki, Registry, binary, run_tests  # noqa: E402

IOTCA = binary("iotca")
REG = None    # the shared registry (and its etcd)
ASSOC = None  # the association service on the same etcd
PKI = None
WORK = None   # scratch directory for CSV files

TEMPLATE = b"ProductKey,DeviceName,CertSN\r\n"
CSV_MAX = 4 << 20
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
SANITIZER = re.compile(r"(Address|Leak|UndefinedBehavior)Sanitizer|"
                       r"runtime error:")


class _Association:
    """iotca-association on REG's etcd and tokens: a stand-in for the
    fixture's Association class where it does not exist."""

    def __init__(self, reg):
        env = {"IOTCA_ETCD_ENDPOINTS": reg.etcd.endpoint,
               "IOTCA_REGISTRY": reg.addr,
               "IOTCA_OPERATOR_TOKEN": reg.operator_token,
               "IOTCA_INTERNAL_TOKEN": reg.internal_token,
               "IOTCA_LOG_LEVEL": "info"}
        self.svc = iotca_fixture.Service(binary("iotca-association"), env)
        self.addr = self.svc.addr

    def close(self):
        rc = self.svc.stop()
        if rc not in (0, None):
            raise AssertionError("iotca-association exited %s on SIGTERM; "
                                 "log tail:\n%s" % (rc, self.svc.log_text()))


def setUpModule():
    global REG, ASSOC, PKI, WORK
    WORK = tempfile.mkdtemp(prefix="iotca-cli-assoc-")
    PKI = Pki()
    REG = Registry()
    ASSOC = getattr(iotca_fixture, "Association", _Association)(REG)


def tearDownModule():
    shutil.rmtree(WORK, ignore_errors=True)
    try:
        ASSOC.close()  # raises unless it exited 0 on SIGTERM
    finally:
        REG.close()


def uniq(prefix):
    """A name unique to this run, valid for accounts, CAs and products."""
    return "%s_%s" % (prefix, secrets.token_hex(4))


class Result:
    def __init__(self, argv, proc, raw):
        self.argv = argv
        self.code = proc.returncode
        self.raw = proc.stdout if raw else None
        self.out = proc.stdout.decode("utf-8", "replace") if raw \
            else proc.stdout
        self.err = proc.stderr.decode("utf-8", "replace") if raw \
            else proc.stderr

    def json(self):
        return json.loads(self.out)

    def lines(self):
        return self.out.rstrip("\n").split("\n")

    def __str__(self):
        return "iotca %s -> exit %d\nstdout:\n%s\nstderr:\n%s" % (
            " ".join(self.argv), self.code, self.out, self.err)


def iotca(*args, token=None, env=None, raw=False, stdin=None):
    """Runs the CLI with only the settings given here (no IOTCA_* from the
    caller's environment). raw: stdout as bytes in .raw; stdin: a file for
    its standard input. Fails the test on a sanitizer report."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("IOTCA_")}
    e["IOTCA_REGISTRY"] = REG.addr
    e["IOTCA_ASSOCIATION"] = ASSOC.addr
    if token is not None:
        e["IOTCA_TOKEN"] = token
    e.update(env or {})
    p = subprocess.run([IOTCA] + list(args), env=e,
                       stdin=stdin or subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=not raw, timeout=120)
    r = Result(list(args), p, raw)
    if SANITIZER.search(r.err):
        raise AssertionError("sanitizer report from the CLI:\n%s" % r)
    return r


def op(*args):
    return iotca(*args, token=REG.operator_token)


def write(name, data):
    path = os.path.join(WORK, name)
    with open(path, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
    return path


def table(r):
    """A text table as a list of rows of cells (two or more spaces apart)."""
    return [re.split(r"  +", line.rstrip()) for line in r.lines()]


def cli_tenant(test):
    """A new account and API key, made with the CLI: (account_id, key)."""
    r = op("--json", "account", "create", uniq("assoc"))
    test.assertEqual(r.code, 0, r)
    acc = r.json()["id"]
    r = op("--json", "key", "create", "--account", acc)
    test.assertEqual(r.code, 0, r)
    return acc, r.json()["api_key"]


def cli_ca(test, key):
    """Registers a fresh EC CA with the CLI; returns its id."""
    r = iotca("--json", "regcode", token=key)
    test.assertEqual(r.code, 0, r)
    code = r.json()["registration_code"]
    name = uniq("ca")
    ca = PKI.make_ca(name, key="ec")
    ver = PKI.make_verification(ca, code, key="ec")
    r = iotca("--json", "ca", "register", "--name", name, "--cert",
              ca.pem_path, "--verification", ver.pem_path, token=key)
    test.assertEqual(r.code, 0, r)
    return r.json()["id"]


def cli_product(test, key, *extra):
    """Creates a product with the CLI; returns its ProductKey."""
    r = iotca("--json", "product", "create", "--name", uniq("prod"), *extra,
              token=key)
    test.assertEqual(r.code, 0, r)
    return r.json()["product_key"]


class DocumentedFlow(unittest.TestCase):
    """Register a CA, create a product, fill the template, upload, manage."""

    def test_documented_flow(self):
        _, key = cli_tenant(self)
        ca_id = cli_ca(self, key)
        pk = self.product(key)
        csv = self.template(key)
        with open(csv, "ab") as f:
            # Three SN spellings the contract accepts.
            f.write(("%s,sensor-0001,01:a3:ff\r\n"
                     "%s,sensor-0002,0x00ab\r\n"
                     "%s,sensor-0003,deadBEEF\r\n" % (pk, pk, pk)).encode())
        r = iotca("assoc", "upload", "--ca", ca_id, csv, token=key)
        self.assertEqual(r.code, 0, r)
        self.assertEqual(r.out, "3 rows associated (0 unchanged)\n", r)
        self.assertEqual(r.err, "", r)
        # Re-sending the same file is safe and says so.
        r = iotca("--json", "assoc", "upload", "--ca", ca_id, csv, token=key)
        self.assertEqual(r.code, 0, r)
        j = r.json()
        self.assertEqual((j["committed"], j["accepted_rows"],
                          j["unchanged_rows"], j["product_key"]),
                         (True, 3, 3, pk), r)

        self.check_list(key, ca_id, pk)
        self.check_show(key, ca_id, pk)
        self.check_device_status(key, ca_id, pk)
        self.check_delete(key, ca_id, pk)

        # Another tenant sees none of it.
        _, other = cli_tenant(self)
        for args in (["assoc", "list", "--ca", ca_id],
                     ["assoc", "show", "--ca", ca_id, "AB"],
                     ["product", "show", pk],
                     ["device", "disable", pk, "sensor-0002"]):
            r = iotca(*args, token=other)
            self.assertEqual(r.code, 1, r)
            self.assertIn("(NOT_FOUND)", r.err)

    def product(self, key):
        name = uniq("meter")
        r = iotca("product", "create", "--name", name, token=key)
        self.assertEqual(r.code, 0, r)
        # The CLI's defaults: X.509 with a private CA, over MQTT.
        self.assertRegex(r.out, r"(?m)^name: +%s$" % name)
        self.assertRegex(r.out, r"(?m)^use_private_ca: +true$")
        self.assertRegex(r.out, r"(?m)^auth_mode: +X509_CERTIFICATE$")
        self.assertRegex(r.out, r"(?m)^net_type: +MQTT$")
        pk = re.search(r"(?m)^product_key: +(\S+)$", r.out).group(1)
        self.assertRegex(pk, r"^[A-Za-z0-9]{11}$")
        r = iotca("product", "list", "--all", token=key)
        self.assertEqual(r.code, 0, r)
        rows = table(r)
        self.assertEqual(rows[0], ["PRODUCT_KEY", "NAME", "AUTH_MODE",
                                   "PRIVATE_CA", "NET_TYPE", "CREATED_AT"])
        self.assertEqual(rows[1][:5], [pk, name, "X509_CERTIFICATE", "true",
                                       "MQTT"], r)
        self.assertRegex(rows[1][5], ISO)
        r = iotca("--json", "product", "show", pk, token=key)
        self.assertEqual(r.code, 0, r)
        p = r.json()
        self.assertEqual((p["product_key"], p["name"], p["auth_mode"],
                          p["use_private_ca"], p["net_type"]),
                         (pk, name, "AUTH_MODE_X509_CERTIFICATE", True,
                          "NET_TYPE_MQTT"))
        return pk

    def template(self, key):
        path = os.path.join(WORK, "flow-" + secrets.token_hex(4) + ".csv")
        r = iotca("assoc", "template", "-o", path, token=key)
        self.assertEqual(r.code, 0, r)
        self.assertIn(path, r.out)
        with open(path, "rb") as f:
            self.assertEqual(f.read(), TEMPLATE)
        return path

    def check_list(self, key, ca_id, pk):
        r = iotca("assoc", "list", "--ca", ca_id, token=key)
        self.assertEqual(r.code, 0, r)
        rows = table(r)
        self.assertEqual(rows[0], ["CERT_SN", "PRODUCT_KEY", "DEVICE_NAME",
                                   "STATUS", "CREATED_AT"], r)
        got = sorted(tuple(row[:4]) for row in rows[1:])
        self.assertEqual(got, [("1A3FF", pk, "sensor-0001", "ENABLED"),
                               ("AB", pk, "sensor-0002", "ENABLED"),
                               ("DEADBEEF", pk, "sensor-0003", "ENABLED")],
                         r)
        for row in rows[1:]:
            self.assertRegex(row[4], ISO)
        r = iotca("--json", "assoc", "list", "--ca", ca_id, "--product", pk,
                  token=key)
        self.assertEqual(r.code, 0, r)
        self.assertEqual(sorted(a["cert_sn"] for a in r.json()),
                         ["1A3FF", "AB", "DEADBEEF"])
        self.assertEqual({a["ca_id"] for a in r.json()}, {ca_id})
        r = iotca("--json", "assoc", "list", "--ca", ca_id, "--product",
                  "NoSuchProdu", token=key)
        self.assertEqual((r.code, r.json()), (0, []), r)
        # Pagination: one page of one, then all of them one at a time.
        r = iotca("assoc", "list", "--ca", ca_id, "--page-size", "1",
                  token=key)
        self.assertEqual(r.code, 0, r)
        self.assertEqual(len(r.lines()), 2, r)
        self.assertIn("--page-token", r.err)
        r = iotca("--json", "assoc", "list", "--ca", ca_id, "--page-size",
                  "1", "--all", token=key)
        self.assertEqual(r.code, 0, r)
        self.assertEqual(sorted(a["cert_sn"] for a in r.json()),
                         ["1A3FF", "AB", "DEADBEEF"])

    def check_show(self, key, ca_id, pk):
        # Any accepted spelling of the SN finds it.
        for sn in ("1A3FF", "0x01a3ff", "01:A3:FF"):
            r = iotca("assoc", "show", "--ca", ca_id, sn, token=key)
            self.assertEqual(r.code, 0, r)
            self.assertRegex(r.out, r"(?m)^cert_sn: +1A3FF$")
            self.assertRegex(r.out, r"(?m)^device_name: +sensor-0001$")
            self.assertRegex(r.out, r"(?m)^product_key: +%s$" % pk)
            self.assertRegex(r.out, r"(?m)^ca_id: +%s$" % ca_id)
        r = iotca("--json", "assoc", "show", "--ca", ca_id, "ab", token=key)
        self.assertEqual(r.code, 0, r)
        self.assertEqual(r.json()["device_name"], "sensor-0002")
        self.assertEqual(r.json()["device_status"], "DEVICE_STATUS_ENABLED")
        r = iotca("assoc", "show", "--ca", ca_id, "not-hex", token=key)
        self.assertEqual(r.code, 1, r)
        self.assertIn("(INVALID_ARGUMENT)", r.err)

    def status(self, key, ca_id, sn):
        r = iotca("--json", "assoc", "show", "--ca", ca_id, sn, token=key)
        self.assertEqual(r.code, 0, r)
        return r.json()["device_status"]

    def check_device_status(self, key, ca_id, pk):
        r = iotca("device", "disable", pk, "sensor-0002", token=key)
        self.assertEqual(r.code, 0, r)
        self.assertEqual(r.out, "Device %s/sensor-0002 is DISABLED.\n" % pk)
        self.assertEqual(self.status(key, ca_id, "AB"),
                         "DEVICE_STATUS_DISABLED")
        r = iotca("assoc", "list", "--ca", ca_id, token=key)
        self.assertIn(["AB", pk, "sensor-0002", "DISABLED"],
                      [row[:4] for row in table(r)], r)
        # Disabling again changes nothing and succeeds.
        r = iotca("--json", "device", "disable", pk, "sensor-0002", token=key)
        self.assertEqual(r.code, 0, r)
        self.assertEqual(r.json(), {"product_key": pk,
                                    "device_name": "sensor-0002",
                                    "status": "DEVICE_STATUS_DISABLED"})
        r = iotca("device", "enable", pk, "sensor-0002", token=key)
        self.assertEqual(r.code, 0, r)
        self.assertEqual(r.out, "Device %s/sensor-0002 is ENABLED.\n" % pk)
        self.assertEqual(self.status(key, ca_id, "AB"),
                         "DEVICE_STATUS_ENABLED")
        r = iotca("device", "enable", pk, "no-such-device", token=key)
        self.assertEqual(r.code, 1, r)
        self.assertIn("(NOT_FOUND)", r.err)

    def check_delete(self, key, ca_id, pk):
        r = iotca("assoc", "delete", "--ca", ca_id, "0xDEADBEEF", token=key)
        self.assertEqual(r.code, 0, r)
        self.assertIn("deleted", r.out)
        r = iotca("assoc", "show", "--ca", ca_id, "DEADBEEF", token=key)
        self.assertEqual(r.code, 1, r)
        self.assertIn("(NOT_FOUND)", r.err)
        r = iotca("--json", "assoc", "delete", "--ca", ca_id, "DEADBEEF",
                  token=key)
        self.assertEqual(r.code, 1, r)
        self.assertIn("(NOT_FOUND)", r.err)
        self.assertEqual(r.out, "")
        r = iotca("--json", "assoc", "delete", "--ca", ca_id, "ab",
                  token=key)
        self.assertEqual(r.code, 0, r)
        self.assertEqual(r.json(), {"ca_id": ca_id, "cert_sn": "ab",
                                    "deleted": True})
        r = iotca("--json", "assoc", "list", "--ca", ca_id, token=key)
        self.assertEqual(r.code, 0, r)
        self.assertEqual([a["cert_sn"] for a in r.json()], ["1A3FF"])
        # The freed SN and device may be associated again: the device
        # starts ENABLED.
        csv = write("again.csv", "ProductKey,DeviceName,CertSN\n"
                                 "%s,sensor-0003,DEADBEEF\n" % pk)
        r = iotca("assoc", "upload", "--ca", ca_id, csv, token=key)
        self.assertEqual((r.code, r.out), (0, "1 row associated "
                                              "(0 unchanged)\n"), r)


class Template(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        _, cls.key = cli_tenant(unittest.TestCase("run"))

    def run_ok(self, *args):
        r = iotca(*args, token=self.key, raw=True)
        self.assertEqual(r.code, 0, r)
        return r

    def test_stdout_is_the_bytes(self):
        r = self.run_ok("assoc", "template")
        self.assertEqual(r.raw, TEMPLATE)
        r = self.run_ok("assoc", "template", "-o", "-")
        self.assertEqual(r.raw, TEMPLATE)
        r = self.run_ok("--json", "assoc", "template")
        j = json.loads(r.out)
        self.assertEqual(j["file_name"], "association_template.csv")
        import base64
        self.assertEqual(base64.b64decode(j["content"]), TEMPLATE)

    def test_output_file_no_overwrite_force(self):
        d = tempfile.mkdtemp(dir=WORK)
        path = os.path.join(d, "mine.csv")
        r = self.run_ok("assoc", "template", "--output", path)
        self.assertIn(path, r.out)
        with open(path, "wb") as f:
            f.write(b"keep me\n")
        r = iotca("assoc", "template", "-o", path, token=self.key)
        self.assertEqual(r.code, 1, r)
        self.assertIn("--force", r.err)
        self.assertEqual(r.out, "")
        with open(path, "rb") as f:
            self.assertEqual(f.read(), b"keep me\n")
        r = self.run_ok("assoc", "template", "-o" + path, "--force")
        with open(path, "rb") as f:
            self.assertEqual(f.read(), TEMPLATE)
        # A directory gets the server's file name.
        r = self.run_ok("--json", "assoc", "template", "-o", d)
        want = os.path.join(d, "association_template.csv")
        self.assertEqual(json.loads(r.out), {"file": want, "bytes": 30})
        with open(want, "rb") as f:
            self.assertEqual(f.read(), TEMPLATE)
        r = iotca("assoc", "template", "-o",
                  os.path.join(d, "no-such-dir", "x.csv"), token=self.key)
        self.assertEqual(r.code, 1, r)
        self.assertIn("No such file", r.err)


class UploadErrors(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        t = unittest.TestCase("run")
        _, cls.key = cli_tenant(t)
        cls.ca_id = cli_ca(t, cls.key)
        cls.pk = cli_product(t, cls.key)

    def assert_nothing_associated(self):
        r = iotca("--json", "assoc", "list", "--ca", self.ca_id,
                  token=self.key)
        self.assertEqual((r.code, r.json()), (0, []), r)

    def test_bad_rows_table(self):
        pk = self.pk
        csv = write("bad.csv",
                    "ProductKey,DeviceName,CertSN\n"
                    "%s,good-0001,0A\n"
                    "%s,x!,0B\n"            # line 3: bad DeviceName
                    "%s,good-0003,0C\n"
                    "%s,good-0004,0x0a\n"   # line 5: the SN of line 2
                    % (pk, pk, pk, pk))
        r = iotca("assoc", "upload", "--ca", self.ca_id, csv, token=self.key)
        self.assertEqual(r.code, 1, r)
        rows = table(r)
        self.assertEqual(rows[0], ["LINE", "COLUMN", "CODE", "MESSAGE"], r)
        self.assertEqual([row[:3] for row in rows[1:]],
                         [["3", "DeviceName (2)", "DEVICE_NAME_INVALID"],
                          ["5", "CertSN (3)", "CERT_SN_DUPLICATE_IN_FILE"]],
                         r)
        self.assertIn("2", rows[2][3], "the message names the first line")
        self.assertEqual(r.err, "iotca: 2 errors; nothing was associated\n")
        self.assert_nothing_associated()
        # --json: the response itself, still exit 1.
        r = iotca("--json", "assoc", "upload", "--ca", self.ca_id, csv,
                  token=self.key)
        self.assertEqual(r.code, 1, r)
        j = r.json()
        self.assertEqual((j["committed"], j["total_errors"], j["data_rows"]),
                         (False, 2, 4), r)
        self.assertEqual([(e["line"], e["column"], e["column_name"],
                           e["code"]) for e in j["errors"]],
                         [(3, 2, "DeviceName",
                           "ROW_ERROR_CODE_DEVICE_NAME_INVALID"),
                          (5, 3, "CertSN",
                           "ROW_ERROR_CODE_CERT_SN_DUPLICATE_IN_FILE")])
        self.assertEqual(j["errors"][0]["value"], "x!")
        self.assertIn("2 errors; nothing was associated", r.err)

    def test_file_level_errors(self):
        csv = write("nocol.csv", "ProductKey,DeviceName\n%s,dev-0001\n"
                    % self.pk)
        r = iotca("assoc", "upload", "--ca", self.ca_id, csv, token=self.key)
        self.assertEqual(r.code, 1, r)
        rows = table(r)
        self.assertEqual(len(rows), 2, r)
        self.assertEqual((rows[1][0], rows[1][2]), ("1", "MISSING_COLUMN"),
                         r)
        self.assertIn("CertSN", rows[1][1] + rows[1][3], r)
        csv = write("header-only.csv", TEMPLATE)
        r = iotca("assoc", "upload", "--ca", self.ca_id, csv, token=self.key)
        self.assertEqual(r.code, 1, r)
        self.assertEqual(table(r)[1][:3], ["-", "-", "EMPTY_FILE"], r)
        self.assertIn("1 error; nothing was associated", r.err)

    def test_over_a_thousand_errors(self):
        # 1200 rows, each with one error: a DeviceName with a '!'.
        rows = "".join("%s,bad!%d,%X\n" % (self.pk, i, i)
                       for i in range(1200))
        csv = write("many.csv", "ProductKey,DeviceName,CertSN\n" + rows)
        r = iotca("assoc", "upload", "--ca", self.ca_id, csv, token=self.key)
        self.assertEqual(r.code, 1, r)
        self.assertEqual(len(r.lines()), 1001, "header + the first 1000")
        self.assertEqual(r.err, "iotca: 1200 errors; nothing was associated "
                                "(showing the first 1000)\n")
        self.assert_nothing_associated()

    def test_oversized_file_refused_before_sending(self):
        big = write("big.csv", b"ProductKey,DeviceName,CertSN\n" +
                    b"x" * (CSV_MAX - 29 + 1))
        self.assertEqual(os.path.getsize(big), CSV_MAX + 1)
        # Nothing listens at the association address: had the CLI sent
        # the file, it would say UNAVAILABLE.
        r = iotca("assoc", "upload", "--ca", self.ca_id, big, token=self.key,
                  env={"IOTCA_ASSOCIATION": "127.0.0.1:1"})
        self.assertEqual(r.code, 1, r)
        self.assertIn("4194305 bytes", r.err)
        self.assertIn("4096 KiB", r.err)
        self.assertNotIn("UNAVAILABLE", r.err)
        # The same through a pipe (no size known in advance).
        cat = subprocess.Popen(["cat", big], stdout=subprocess.PIPE)
        try:
            r = iotca("assoc", "upload", "--ca", self.ca_id, "/dev/stdin",
                      token=self.key, stdin=cat.stdout,
                      env={"IOTCA_ASSOCIATION": "127.0.0.1:1"})
        finally:
            cat.stdout.close()
            cat.kill()
            cat.wait()
        self.assertEqual(r.code, 1, r)
        self.assertIn("larger than 4194304 bytes", r.err)
        self.assertNotIn("UNAVAILABLE", r.err)

    def test_exactly_4_mib_is_sent(self):
        # One row, then blank lines (ignored at the end of a file) up to
        # the limit exactly.
        head = ("ProductKey,DeviceName,CertSN\n"
                "%s,big-0001,B16\n" % self.pk).encode()
        csv = write("exact.csv", head + b"\n" * (CSV_MAX - len(head)))
        self.assertEqual(os.path.getsize(csv), CSV_MAX)
        r = iotca("assoc", "upload", "--ca", self.ca_id, csv, token=self.key)
        self.assertEqual((r.code, r.out), (0, "1 row associated "
                                              "(0 unchanged)\n"), r)
        r = iotca("assoc", "delete", "--ca", self.ca_id, "B16",
                  token=self.key)
        self.assertEqual(r.code, 0, r)

    def test_ca_refusals(self):
        csv = write("one.csv", "ProductKey,DeviceName,CertSN\n"
                               "%s,dev-0009,99\n" % self.pk)
        r = iotca("assoc", "upload", "--ca", "ca_doesnotexist", csv,
                  token=self.key)
        self.assertEqual(r.code, 1, r)
        self.assertIn("(NOT_FOUND)", r.err)
        self.assertEqual(r.out, "")
        ca2 = cli_ca(self, self.key)
        self.assertEqual(iotca("ca", "disable", ca2, token=self.key).code, 0)
        r = iotca("assoc", "upload", "--ca", ca2, csv, token=self.key)
        self.assertEqual(r.code, 1, r)
        self.assertIn("(FAILED_PRECONDITION)", r.err)
        self.assertIn("iotca ca enable", r.err)
        r = iotca("assoc", "upload", "--ca", self.ca_id,
                  os.path.join(WORK, "no-such.csv"), token=self.key)
        self.assertEqual(r.code, 1, r)
        self.assertIn("No such file", r.err)
        self.assert_nothing_associated()


class Products(unittest.TestCase):

    def test_options(self):
        _, key = cli_tenant(self)
        pk = cli_product(self, key, "--net-type", "lorawan",
                         "--no-private-ca")
        r = iotca("--json", "product", "show", pk, token=key)
        self.assertEqual((r.json()["net_type"], r.json()["use_private_ca"]),
                         ("NET_TYPE_LORAWAN", False), r)
        pk2 = cli_product(self, key, "--auth-mode", "secret",
                          "--no-private-ca")
        r = iotca("--json", "product", "show", pk2, token=key)
        self.assertEqual(r.json()["auth_mode"], "AUTH_MODE_DEVICE_SECRET")
        # The CLI's default private CA does not go with LoRaWAN: the
        # server's refusal, and a hint.
        r = iotca("product", "create", "--name", uniq("lora"), "--net-type",
                  "lorawan", token=key)
        self.assertEqual(r.code, 1, r)
        self.assertIn("(FAILED_PRECONDITION)", r.err)
        self.assertIn("--no-private-ca", r.err)
        name = uniq("dup")
        self.assertEqual(iotca("product", "create", "--name", name,
                               token=key).code, 0)
        r = iotca("product", "create", "--name", name, token=key)
        self.assertEqual(r.code, 1, r)
        self.assertIn("(ALREADY_EXISTS)", r.err)
        self.assertNotIn("--no-private-ca", r.err)
        r = iotca("--json", "product", "list", "--page-size", "1", "--all",
                  token=key)
        self.assertEqual(r.code, 0, r)
        self.assertEqual(len(r.json()), 3, r)
        # A product without a private CA cannot have associations.
        ca_id = cli_ca(self, key)
        csv = write("lora.csv", "ProductKey,DeviceName,CertSN\n"
                                "%s,lora-0001,1\n" % pk)
        r = iotca("assoc", "upload", "--ca", ca_id, csv, token=key)
        self.assertEqual(r.code, 1, r)
        self.assertIn("PRODUCT_NOT_PRIVATE_CA", r.out)


class Usage(unittest.TestCase):

    def test_help_at_every_level(self):
        cases = [
            ([], ["product create", "product list", "product show",
                  "assoc template", "assoc upload", "assoc list",
                  "assoc show", "assoc delete", "device enable",
                  "device disable", "--association", "IOTCA_ASSOCIATION",
                  "ca register"]),
            (["product"], ["create", "list", "show"]),
            (["product", "create"], ["--name", "--net-type", "--auth-mode",
                                     "--no-private-ca"]),
            (["product", "list"], ["--all", "--page-size", "--page-token"]),
            (["product", "show"], ["PRODUCT_KEY"]),
            (["assoc"], ["template", "upload", "list", "show", "delete"]),
            (["assoc", "template"], ["-o, --output FILE", "--force"]),
            (["assoc", "upload"], ["--ca ID", "FILE.csv", "4 MiB",
                                   "10,000", "LINE COLUMN CODE MESSAGE"]),
            (["assoc", "list"], ["--ca", "--product", "--all",
                                 "--page-size"]),
            (["assoc", "show"], ["--ca", "SN"]),
            (["assoc", "delete"], ["--ca", "SN"]),
            (["device"], ["enable", "disable"]),
            (["device", "enable"], ["PRODUCT_KEY DEVICE_NAME"]),
            (["device", "disable"], ["PRODUCT_KEY DEVICE_NAME"]),
        ]
        for args, words in cases:
            for flag in ("--help", "-h"):
                r = iotca(*(args + [flag]))
                self.assertEqual(r.code, 0, r)
                self.assertTrue(r.out.startswith("usage: iotca"), r)
                self.assertEqual(r.err, "", r)
                for w in words:
                    self.assertIn(w, r.out, "%s missing in\n%s" % (w, r))
        r = iotca("--help")
        self.assertNotIn("resolve", r.out.lower(), "ResolveDevice is "
                         "internal: no verb")

    def test_usage_errors_exit_2(self):
        csv = write("usage.csv", TEMPLATE)
        cases = [
            ["product"],
            ["product", "frobnicate"],
            ["product", "create"],
            ["product", "create", "--name", "x", "--net-type", "nbiot"],
            ["product", "create", "--name", "x", "--auth-mode", "psk"],
            ["product", "show"],
            ["assoc", "upload", csv],
            ["assoc", "upload", "--ca", "x"],
            ["assoc", "upload", "--ca", "x", csv, csv],
            ["assoc", "list"],
            ["assoc", "list", "--ca", "x", "--page-size", "0"],
            ["assoc", "show", "--ca", "x"],
            ["assoc", "delete", "SN"],
            ["assoc", "template", "-o"],
            ["assoc", "template", "-o", ""],
            ["assoc", "template", "--force=yes"],
            ["assoc", "resolve"],
            ["device", "enable", "PK"],
            ["device", "disable", "PK", "DN", "extra"],
        ]
        for args in cases:
            r = iotca(*args, token="whatever")
            self.assertEqual(r.code, 2, r)
            self.assertEqual(r.out, "", r)
            self.assertIn("--help", r.err, r)
        r = iotca("product", "list")  # no token at all
        self.assertEqual(r.code, 2, r)
        self.assertIn("IOTCA_TOKEN", r.err)

    def test_unreachable_service_names_the_setting(self):
        r = iotca("product", "list", token="whatever",
                  env={"IOTCA_ASSOCIATION": "127.0.0.1:1",
                       "IOTCA_TIMEOUT_MS": "3000"})
        self.assertEqual(r.code, 1, r)
        self.assertIn("(UNAVAILABLE)", r.err)
        self.assertIn("IOTCA_ASSOCIATION", r.err)


if __name__ == "__main__":
    run_tests()
