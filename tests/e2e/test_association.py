#!/usr/bin/python3
"""iotca-association end to end: Python grpcio stubs generated from proto/,
a real etcd, the registry and the association binaries on loopback ports
picked at run time (tests/e2e/iotca_fixture.py: Suite, Association).

One test per rule of proto/iotca/v1/association.proto and of the CSV rules
of DESIGN.md, each asserting the exact gRPC status, or for a refused file
every row error's line, column (1-based), column_name and RowErrorCode.
All tests share one etcd, one registry and one association process; each
makes its own account(s), so they do not see each other. Crashes in the
middle of a commit and concurrent uploads on two replicas are in
test_association_faults.py.

usage: test_association.py [unittest args]   (IOTCA_BUILD_DIR = build dir)
"""
import os
import random
import secrets
import sys
import time
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import iotca_fixture as fx  # noqa: E402

import grpc  # noqa: E402

S = fx.stubs()
pb = S.association_pb2
rpb = S.registry_pb2
Code = grpc.StatusCode
ENABLED = pb.DEVICE_STATUS_ENABLED
DISABLED = pb.DEVICE_STATUS_DISABLED
MQTT = pb.NET_TYPE_MQTT
LORAWAN = pb.NET_TYPE_LORAWAN
X509 = pb.AUTH_MODE_X509_CERTIFICATE
SECRET = pb.AUTH_MODE_DEVICE_SECRET

MALFORMED_CSV = pb.ROW_ERROR_CODE_MALFORMED_CSV
EMPTY_FILE = pb.ROW_ERROR_CODE_EMPTY_FILE
MISSING_COLUMN = pb.ROW_ERROR_CODE_MISSING_COLUMN
DUPLICATE_COLUMN = pb.ROW_ERROR_CODE_DUPLICATE_COLUMN
TOO_MANY_ROWS = pb.ROW_ERROR_CODE_TOO_MANY_ROWS
MISSING_FIELD = pb.ROW_ERROR_CODE_MISSING_FIELD
PK_MISMATCH = pb.ROW_ERROR_CODE_PRODUCT_KEY_MISMATCH
PRODUCT_NOT_FOUND = pb.ROW_ERROR_CODE_PRODUCT_NOT_FOUND
NOT_PRIVATE_CA = pb.ROW_ERROR_CODE_PRODUCT_NOT_PRIVATE_CA
DN_INVALID = pb.ROW_ERROR_CODE_DEVICE_NAME_INVALID
SN_INVALID = pb.ROW_ERROR_CODE_CERT_SN_INVALID
SN_DUP = pb.ROW_ERROR_CODE_CERT_SN_DUPLICATE_IN_FILE
SN_BOUND = pb.ROW_ERROR_CODE_CERT_SN_ALREADY_BOUND
DEV_DUP = pb.ROW_ERROR_CODE_DEVICE_DUPLICATE_IN_FILE
DEV_BOUND = pb.ROW_ERROR_CODE_DEVICE_ALREADY_BOUND

HEADER = "ProductKey,DeviceName,CertSN"
PK_COL, DN_COL, SN_COL = (1, "ProductKey"), (2, "DeviceName"), (3, "CertSN")

SUITE = None  # etcd + registry + association, shared by every test
A = None      # SUITE.assoc


def setUpModule():
    global SUITE, A
    SUITE = fx.Suite()
    A = SUITE.assoc


def tearDownModule():
    SUITE.close()  # raises unless every service exited 0 on SIGTERM


def csv(pk, rows, header=HEADER, eol="\n", bom=False):
    """A CSV file (bytes): header, then one line per (DeviceName, CertSN)
    of the product pk, or per row given as a ready string."""
    lines = [header] + [r if isinstance(r, str) else "%s,%s,%s" % (pk, *r)
                        for r in rows]
    data = eol.join(lines) + eol
    return (b"\xef\xbb\xbf" if bom else b"") + data.encode()


def dev_rows(n, prefix="dev", sn_base=1):
    """n (DeviceName, CertSN) pairs: prefix-00000, SN hex(sn_base + i)."""
    return [("%s-%05d" % (prefix, i), "%X" % (sn_base + i)) for i in range(n)]


class Case(unittest.TestCase):
    maxDiff = None

    def tenant(self, **kw):
        return SUITE.tenant(**kw)

    def assertCode(self, code, fn, *args, phrase=None, **kw):
        """fn(*args, **kw) fails with this gRPC code; returns the message.
        phrase: a regular expression the message must contain."""
        try:
            r = fn(*args, **kw)
        except grpc.RpcError as e:
            self.assertEqual(e.code(), code, "message: %s" % e.details())
            self.assertTrue(e.details(), "an empty status message")
            if phrase is not None:
                self.assertRegex(e.details(), phrase)
            return e.details()
        self.fail("expected %s, got OK: %r" % (code.name, r))

    def upload(self, t, data, ca_id=None, timeout=60):
        return A.upload(t.key, ca_id or t.ca_id, data, timeout=timeout)

    def committed(self, t, data, rows, unchanged=0, ca_id=None):
        """Uploads data; asserts it was committed with `rows` data rows."""
        r = self.upload(t, data, ca_id)
        self.assertTrue(r.committed, "errors: %s" % list(r.errors)[:5])
        self.assertEqual(r.accepted_rows, rows)
        self.assertEqual(r.unchanged_rows, unchanged)
        self.assertEqual(r.data_rows, rows)
        self.assertEqual(r.total_errors, 0)
        self.assertEqual(len(r.errors), 0)
        return r

    def refused(self, t, data, expected, ca_id=None, total=None):
        """Uploads data; asserts it was not committed and that its errors
        are exactly `expected`: (line, column, column_name, code) each, in
        this order. Returns the errors."""
        r = self.upload(t, data, ca_id)
        self.assertFalse(r.committed)
        self.assertEqual(r.accepted_rows, 0)
        self.assertEqual(r.unchanged_rows, 0)
        got = [(e.line, e.column, e.column_name, e.code) for e in r.errors]
        self.assertEqual(got, list(expected),
                         "messages: %s" % [e.message for e in r.errors])
        self.assertEqual(r.total_errors,
                         total if total is not None else len(expected))
        for e in r.errors:
            self.assertTrue(e.message, "row error without a message: %s" % e)
        return list(r.errors)

    def assoc_map(self, t, ca_id=None, pk=""):
        """{cert_sn: (product_key, device_name, status)} of a CA."""
        out = {}
        for a in A.list_all(t.key, ca_id or t.ca_id, pk):
            self.assertNotIn(a.cert_sn, out, "SN listed twice")
            self.assertEqual(a.ca_id, ca_id or t.ca_id)
            out[a.cert_sn] = (a.product_key, a.device_name, a.device_status)
        return out

    def nothing_bound(self, t, rows, ca_id=None):
        """The CA has no association, and no row's SN or device is bound
        (ResolveDevice and UpdateDeviceStatus say NOT_FOUND)."""
        self.assertEqual(A.list_all(t.key, ca_id or t.ca_id), [])
        for dn, sn in rows:
            self.assertCode(Code.NOT_FOUND, A.resolve, ca_id or t.ca_id, sn,
                            t.account_id)
            self.assertCode(Code.NOT_FOUND, self.set_status, t, t.pk, dn,
                            DISABLED)

    def get(self, t, sn, ca_id=None):
        return A.stub.GetAssociation(
            pb.GetAssociationRequest(ca_id=ca_id or t.ca_id, cert_sn=sn),
            metadata=t.md, timeout=10)

    def delete(self, t, sn, ca_id=None):
        return A.stub.DeleteAssociation(
            pb.DeleteAssociationRequest(ca_id=ca_id or t.ca_id, cert_sn=sn),
            metadata=t.md, timeout=10)

    def set_status(self, t, pk, dn, status):
        return A.stub.UpdateDeviceStatus(
            pb.UpdateDeviceStatusRequest(product_key=pk, device_name=dn,
                                         status=status),
            metadata=t.md, timeout=10)

    def resolves(self, t, sn, want, ca_id=None, within=5.0):
        """ResolveDevice(ca, sn) gives want = (pk, dn, status), or want None:
        NOT_FOUND, within a few seconds (replicas may cache lookups)."""
        deadline = time.monotonic() + within
        while True:
            try:
                r = A.resolve(ca_id or t.ca_id, sn, t.account_id)
                got = (r.product_key, r.device_name, r.device_status)
                self.assertEqual(r.account_id, t.account_id)
            except grpc.RpcError as e:
                if e.code() != Code.NOT_FOUND:
                    raise
                got = None
            if got == want or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(got, want)


# --------------------------------------------------------------------- flow

class DocumentedFlowTest(Case):
    def test_documented_flow(self):
        """The product page's flow: download the template, fill in three
        rows, upload, see the associations, resolve a device as the edge
        does, disable it, delete its association."""
        t = self.tenant()
        tpl = A.stub.GetCsvTemplate(pb.GetCsvTemplateRequest(), metadata=t.md,
                                    timeout=10)
        self.assertEqual(tpl.file_name, "association_template.csv")
        self.assertEqual(tpl.content, b"ProductKey,DeviceName,CertSN\r\n")
        rows = [("sensor-1", "0A:1B:2C:01"), ("sensor-2", "0a1b2c02"),
                ("sensor-3", "0x0A1B2C03")]
        data = tpl.content + "".join(
            "%s,%s,%s\r\n" % (t.pk, dn, sn) for dn, sn in rows).encode()
        t0 = int(time.time())
        r = self.committed(t, data, 3)
        t1 = int(time.time())
        self.assertEqual(r.product_key, t.pk)
        sns = ["A1B2C01", "A1B2C02", "A1B2C03"]

        # A second product under the same CA, for the product filter.
        p2 = A.new_product(t.key).product_key
        self.committed(t, csv(p2, [("meter-1", "B1"), ("meter-2", "B2")]), 2)

        listed = A.list_all(t.key, t.ca_id)
        self.assertEqual(sorted(a.cert_sn for a in listed),
                         sorted(sns + ["B1", "B2"]))
        for a in listed:
            self.assertEqual(a.ca_id, t.ca_id)
            self.assertEqual(a.device_status, ENABLED)
            self.assertTrue(t0 <= a.created_at <= t1 + 5, a)
        self.assertEqual(self.assoc_map(t, pk=t.pk), {
            sn: (t.pk, dn, ENABLED) for sn, (dn, _) in zip(sns, rows)})
        self.assertEqual(self.assoc_map(t, pk=p2), {
            "B1": (p2, "meter-1", ENABLED), "B2": (p2, "meter-2", ENABLED)})

        g = self.get(t, "0x0a1b2c02")  # any accepted CertSN form
        self.assertEqual((g.ca_id, g.cert_sn, g.product_key, g.device_name,
                          g.device_status),
                         (t.ca_id, "A1B2C02", t.pk, "sensor-2", ENABLED))
        self.assertEqual(g, [a for a in listed if a.cert_sn == "A1B2C02"][0])

        # The edge: ResolveDevice with the internal credential.
        r = A.resolve(t.ca_id, "A1B2C02", t.account_id)
        self.assertEqual((r.account_id, r.product_key, r.device_name,
                          r.device_status),
                         (t.account_id, t.pk, "sensor-2", ENABLED))

        u = self.set_status(t, t.pk, "sensor-2", DISABLED)
        self.assertEqual((u.product_key, u.device_name, u.status),
                         (t.pk, "sensor-2", DISABLED))
        self.resolves(t, "A1B2C02", (t.pk, "sensor-2", DISABLED))
        self.assertEqual(self.get(t, "A1B2C02").device_status, DISABLED)
        # Setting the status it has succeeds and changes nothing.
        self.assertEqual(self.set_status(t, t.pk, "sensor-2", DISABLED).status,
                         DISABLED)
        self.resolves(t, "A1B2C01", (t.pk, "sensor-1", ENABLED))

        self.delete(t, "a1b2c02")
        self.resolves(t, "A1B2C02", None)
        self.assertCode(Code.NOT_FOUND, self.get, t, "A1B2C02")
        self.assertCode(Code.NOT_FOUND, self.delete, t, "A1B2C02")
        self.assertCode(Code.NOT_FOUND, self.set_status, t, t.pk, "sensor-2",
                        ENABLED)
        self.assertEqual(sorted(self.assoc_map(t, pk=t.pk)),
                         ["A1B2C01", "A1B2C03"])
        # The SN and the device are free again; the status is forgotten.
        self.committed(t, csv(t.pk, [("sensor-2", "A1B2C02")]), 1)
        self.resolves(t, "A1B2C02", (t.pk, "sensor-2", ENABLED))

    def test_request_checks(self):
        """Malformed requests are INVALID_ARGUMENT, unknown objects
        NOT_FOUND; pagination returns every association once."""
        t = self.tenant()
        self.committed(t, csv(t.pk, dev_rows(5)), 5)
        self.assertCode(Code.INVALID_ARGUMENT, self.get, t, "xyz")
        self.assertCode(Code.INVALID_ARGUMENT, self.delete, t, "0a::1b")
        self.assertCode(Code.INVALID_ARGUMENT, A.resolve, t.ca_id, "zz",
                        t.account_id)
        self.assertCode(Code.INVALID_ARGUMENT, A.resolve, "", "1",
                        t.account_id)
        self.assertCode(Code.INVALID_ARGUMENT, A.resolve, t.ca_id, "1", "")
        self.assertCode(Code.INVALID_ARGUMENT, A.stub.GetAssociation,
                        pb.GetAssociationRequest(ca_id="", cert_sn="1"),
                        metadata=t.md, timeout=10)
        self.assertCode(Code.INVALID_ARGUMENT, A.stub.ListAssociations,
                        pb.ListAssociationsRequest(ca_id=""), metadata=t.md,
                        timeout=10)
        self.assertCode(Code.INVALID_ARGUMENT, A.stub.ListAssociations,
                        pb.ListAssociationsRequest(ca_id=t.ca_id,
                                                   page_size=-1),
                        metadata=t.md, timeout=10)
        self.assertCode(Code.INVALID_ARGUMENT, self.set_status, t, t.pk,
                        "dev-00000", pb.DEVICE_STATUS_UNSPECIFIED)
        self.assertCode(Code.INVALID_ARGUMENT, self.set_status, t, t.pk,
                        "dev-00000", 7)
        self.assertCode(Code.INVALID_ARGUMENT, self.set_status, t, t.pk, "ab",
                        DISABLED)
        self.assertCode(Code.NOT_FOUND, self.set_status, t, t.pk, "dev-99999",
                        DISABLED)
        self.assertCode(Code.NOT_FOUND, self.set_status, t, "AAAAAAAAAAA",
                        "dev-00000", DISABLED)
        self.assertCode(Code.NOT_FOUND, self.get, t, "FFFF")
        self.assertCode(Code.NOT_FOUND, self.get, t, "1", ca_id="nope")
        self.assertCode(Code.INVALID_ARGUMENT, A.stub.UploadAssociations,
                        pb.UploadAssociationsRequest(
                            ca_id=t.ca_id, csv=csv(t.pk, dev_rows(1)),
                            file_name="x" * 256 + ".csv"),
                        metadata=t.md, timeout=10)
        self.assertCode(Code.INVALID_ARGUMENT, A.upload, t.key, "",
                        csv(t.pk, dev_rows(1)))
        # An unknown product filter matches nothing.
        self.assertEqual(A.list_all(t.key, t.ca_id, "AAAAAAAAAAA"), [])
        # Pages of 2: every association exactly once.
        seen, token, pages = [], "", 0
        while True:
            r = A.stub.ListAssociations(
                pb.ListAssociationsRequest(ca_id=t.ca_id, page_size=2,
                                           page_token=token),
                metadata=t.md, timeout=10)
            self.assertLessEqual(len(r.associations), 2)
            seen += [a.cert_sn for a in r.associations]
            token, pages = r.next_page_token, pages + 1
            if not token:
                break
        self.assertEqual(sorted(seen), sorted(sn for _, sn in dev_rows(5)))
        self.assertGreaterEqual(pages, 3)
        self.assertCode(Code.INVALID_ARGUMENT, A.stub.ListAssociations,
                        pb.ListAssociationsRequest(ca_id=t.ca_id,
                                                   page_token="garbage!"),
                        metadata=t.md, timeout=10)


# ----------------------------------------------------------- size of a file

class RowLimitTest(Case):
    def test_too_many_rows(self):
        """10,001 data rows: TOO_MANY_ROWS where the 10,001st row starts
        (line 10,002), nothing written."""
        t = self.tenant()
        rows = dev_rows(10001)
        self.refused(t, csv(t.pk, rows), [(10002, 0, "", TOO_MANY_ROWS)])
        self.nothing_bound(t, [rows[0], rows[5000], rows[9999]])

    def test_exactly_10000_rows(self):
        t = self.tenant()
        rows = dev_rows(10000)
        t0 = time.monotonic()
        r = self.committed(t, csv(t.pk, rows, eol="\r\n"), 10000)
        sys.stderr.write("(10,000-row upload: %.1f s) "
                         % (time.monotonic() - t0))
        self.assertEqual(r.product_key, t.pk)
        got = self.assoc_map(t)
        self.assertEqual(got, {sn: (t.pk, dn, ENABLED) for dn, sn in rows})
        for dn, sn in (rows[0], rows[4321], rows[9999]):
            self.resolves(t, sn, (t.pk, dn, ENABLED))

    def test_one_bad_row_commits_nothing(self):
        """All or nothing: a 10,000-row file whose line 9,999 has a bad
        CertSN commits none of the 9,999 good rows."""
        t = self.tenant()
        rows = dev_rows(10000)
        rows[9997] = (rows[9997][0], "NOT-HEX")  # data row 9998 = line 9999
        self.refused(t, csv(t.pk, rows), [(9999,) + SN_COL + (SN_INVALID,)])
        self.nothing_bound(t, [rows[0], rows[1], rows[9998]])

    def test_one_conflict_commits_nothing(self):
        """The same when the bad row is only found against etcd (its SN is
        already bound): the one-transaction commit writes nothing."""
        t = self.tenant()
        self.committed(t, csv(t.pk, [("taken-1", "ABCDEF0123")]), 1)
        rows = dev_rows(10000)
        rows[9997] = (rows[9997][0], "0xabcdef0123")
        errs = self.refused(t, csv(t.pk, rows),
                            [(9999,) + SN_COL + (SN_BOUND,)])
        self.assertIn("taken-1", errs[0].message)
        self.assertEqual(self.assoc_map(t),
                         {"ABCDEF0123": (t.pk, "taken-1", ENABLED)})
        for dn, sn in (rows[0], rows[1], rows[9999]):
            self.resolves(t, sn, None)
            self.assertCode(Code.NOT_FOUND, self.set_status, t, t.pk, dn,
                            DISABLED)

    def test_oversized_upload(self):
        """csv over 4 MiB: INVALID_ARGUMENT (5 MiB, and 4 MiB + 1 byte);
        over the 8 MiB message limit: RESOURCE_EXHAUSTED; exactly 4 MiB of
        valid CSV is accepted."""
        t = self.tenant()
        big = bytearray(csv(t.pk, dev_rows(3)))
        big += b"#" * (5 * 1024 * 1024 - len(big))
        self.assertCode(Code.INVALID_ARGUMENT, self.upload, t, bytes(big))
        self.assertCode(Code.INVALID_ARGUMENT, self.upload, t,
                        bytes(big[:4 * 1024 * 1024 + 1]))
        self.assertCode(Code.RESOURCE_EXHAUSTED, self.upload, t,
                        bytes(big) * 2)
        self.nothing_bound(t, dev_rows(3))
        # Exactly 4 MiB: rows with four ignored columns of padding, the
        # rest spread over the last rows' Pad4 (a field holds at most
        # 1,024 bytes).
        head = HEADER + ",Pad1,Pad2,Pad3,Pad4\n"
        pad = ",".join(["p" * 1000] * 4)
        rows, lines, size = dev_rows(1100), [], len(head)
        for dn, sn in rows:
            line = "%s,%s,%s,%s\n" % (t.pk, dn, sn, pad)
            if size + len(line) > 4 * 1024 * 1024:
                break
            lines.append(line)
            size += len(line)
        short, i = 4 * 1024 * 1024 - size, len(lines) - 1
        while short > 0:
            add = min(short, 20)
            lines[i] = lines[i][:-1] + "q" * add + "\n"
            short, i = short - add, i - 1
        data = (head + "".join(lines)).encode()
        self.assertEqual(len(data), 4 * 1024 * 1024)
        self.committed(t, data, len(lines))


# ------------------------------------------------------------- the product

class ProductRuleTest(Case):
    def test_two_products_in_one_file(self):
        t = self.tenant()
        p2 = A.new_product(t.key).product_key
        rows = ["%s,dev-1,01" % t.pk, "%s,dev-2,02" % t.pk,
                "%s,dev-3,03" % p2, "%s,dev-4,04" % t.pk]
        errs = self.refused(t, csv(None, rows),
                            [(4,) + PK_COL + (PK_MISMATCH,)])
        self.assertEqual(errs[0].value, p2)
        self.assertIn(t.pk, errs[0].message)
        self.assertIn("2", errs[0].message)  # the line of the first one
        self.nothing_bound(t, [("dev-1", "1"), ("dev-2", "2")])

    def test_unknown_and_foreign_product(self):
        """An unknown ProductKey and another account's product get the
        same PRODUCT_NOT_FOUND (reported once, on the first data row) and
        the same message: no leak."""
        t, other = self.tenant(), self.tenant()
        unknown = "Zz9" + secrets.token_hex(4)[:8]
        msgs = []
        for pk in (unknown, other.pk):
            errs = self.refused(t, csv(pk, dev_rows(3)),
                                [(2,) + PK_COL + (PRODUCT_NOT_FOUND,)])
            self.assertEqual(errs[0].value, pk)
            msgs.append(errs[0].message.replace(pk, "<PK>"))
        self.assertEqual(msgs[0], msgs[1])
        # Not even a well-formed key.
        self.refused(t, csv("no-such-pk", dev_rows(1)),
                     [(2,) + PK_COL + (PRODUCT_NOT_FOUND,)])
        self.assertEqual(A.list_all(t.key, t.ca_id), [])
        self.assertEqual(A.list_all(other.key, other.ca_id), [])

    def test_product_rules_at_creation(self):
        t = self.tenant(ca=False, product=False)
        self.assertCode(Code.FAILED_PRECONDITION, A.new_product, t.key,
                        net_type=LORAWAN, phrase="LoRaWAN")
        self.assertCode(Code.FAILED_PRECONDITION, A.new_product, t.key,
                        auth_mode=SECRET)
        self.assertCode(Code.INVALID_ARGUMENT, A.new_product, t.key,
                        net_type=9)
        self.assertCode(Code.INVALID_ARGUMENT, A.new_product, t.key,
                        name="abc")
        self.assertCode(Code.INVALID_ARGUMENT, A.new_product, t.key,
                        name="bad name")
        p = A.new_product(t.key, name="Lora_1", private_ca=False,
                          net_type=LORAWAN)
        self.assertEqual((p.net_type, p.use_private_ca, p.auth_mode),
                         (LORAWAN, False, X509))
        self.assertRegex(p.product_key, r"^[A-Za-z0-9]{11}$")
        self.assertEqual(p.account_id, t.account_id)
        self.assertCode(Code.ALREADY_EXISTS, A.new_product, t.key,
                        name="Lora_1")
        # Defaults: X.509, MQTT.
        d = A.stub.CreateProduct(pb.CreateProductRequest(
            name="defaults", use_private_ca=True), metadata=t.md, timeout=10)
        self.assertEqual((d.auth_mode, d.net_type, d.use_private_ca),
                         (X509, MQTT, True))
        self.assertEqual(A.stub.GetProduct(
            pb.GetProductRequest(product_key=d.product_key), metadata=t.md,
            timeout=10), d)
        listed = A.stub.ListProducts(pb.ListProductsRequest(), metadata=t.md,
                                     timeout=10).products
        self.assertEqual(sorted(x.product_key for x in listed),
                         sorted([p.product_key, d.product_key]))

    def test_product_not_private_ca(self):
        t = self.tenant()
        plain = A.new_product(t.key, private_ca=False).product_key
        lora = A.new_product(t.key, private_ca=False,
                             net_type=LORAWAN).product_key
        secret = A.new_product(t.key, private_ca=False,
                               auth_mode=SECRET).product_key
        for pk in (plain, lora, secret):
            with self.subTest(pk=pk):
                errs = self.refused(t, csv(pk, dev_rows(3)),
                                    [(2,) + PK_COL + (NOT_PRIVATE_CA,)])
                self.assertEqual(errs[0].value, pk)
        self.assertEqual(A.list_all(t.key, t.ca_id), [])


# ------------------------------------------------------------------ the CA

class CaRuleTest(Case):
    def test_inactive_ca(self):
        t = self.tenant()
        off, _ = SUITE.register_ca(t.key, status=rpb.CA_STATUS_INACTIVE)
        data = csv(t.pk, dev_rows(2))
        self.assertCode(Code.FAILED_PRECONDITION, self.upload, t, data,
                        ca_id=off.id, phrase="INACTIVE")
        self.assertEqual(A.list_all(t.key, off.id), [])
        SUITE.reg.stub.UpdateCaCertificateStatus(
            rpb.UpdateCaCertificateStatusRequest(id=off.id,
                                                 status=rpb.CA_STATUS_ACTIVE),
            metadata=t.md, timeout=10)
        self.committed(t, data, 2, ca_id=off.id)
        # And back: an active CA disabled refuses the next file.
        SUITE.reg.stub.UpdateCaCertificateStatus(
            rpb.UpdateCaCertificateStatusRequest(
                id=off.id, status=rpb.CA_STATUS_INACTIVE),
            metadata=t.md, timeout=10)
        self.assertCode(Code.FAILED_PRECONDITION, self.upload, t,
                        csv(t.pk, dev_rows(2, "more", 100)), ca_id=off.id)
        self.assertEqual(len(A.list_all(t.key, off.id)), 2)

    def test_foreign_and_unknown_ca(self):
        t, other = self.tenant(), self.tenant()
        data = csv(t.pk, dev_rows(2))
        self.assertCode(Code.NOT_FOUND, self.upload, t, data,
                        ca_id=other.ca_id)
        self.assertCode(Code.NOT_FOUND, self.upload, t, data,
                        ca_id="ca_0000000000000000")
        self.assertEqual(A.list_all(other.key, other.ca_id), [])
        self.assertEqual(A.list_all(t.key, t.ca_id), [])


# ------------------------------------------------------------- the fields

class FieldRuleTest(Case):
    def test_bad_device_name(self):
        t = self.tenant()
        bad = ["abc", "a" * 33, "dev#1", "dev 1", "dév-1"]
        rows = [(dn, "%X" % (i + 1)) for i, dn in enumerate(bad)]
        errs = self.refused(t, csv(t.pk, rows),
                            [(i + 2,) + DN_COL + (DN_INVALID,)
                             for i in range(len(bad))])
        self.assertEqual([e.value for e in errs], bad)
        self.nothing_bound(t, [])
        # The limits themselves are fine; surrounding spaces are trimmed.
        good = [("abcd", "A1"), ("b" * 32, "A2"), ("a-_.@:Z9", "A3"),
                (" \tpadded-1 ", "A4")]
        self.committed(t, csv(t.pk, good), 4)
        self.assertEqual(self.assoc_map(t), {
            "A1": (t.pk, "abcd", ENABLED), "A2": (t.pk, "b" * 32, ENABLED),
            "A3": (t.pk, "a-_.@:Z9", ENABLED),
            "A4": (t.pk, "padded-1", ENABLED)})

    def test_bad_cert_sn(self):
        t = self.tenant()
        bad = ["xyz1", "FF" * 21, "0a::1b", "0a:1b:", ":0a", "0x", "0a:123",
               "12 34", "-1"]
        rows = [("dev-%d" % i, sn) for i, sn in enumerate(bad)]
        errs = self.refused(t, csv(t.pk, rows),
                            [(i + 2,) + SN_COL + (SN_INVALID,)
                             for i in range(len(bad))])
        self.assertEqual([e.value for e in errs], bad)
        self.nothing_bound(t, [])
        # 20 octets is the limit, leading zeros do not count.
        self.committed(t, csv(t.pk, [("max-1", "FF" * 20),
                                     ("max-2", "00" + "EE" * 20)]), 2)
        self.assertEqual(sorted(self.assoc_map(t)), ["EE" * 20, "FF" * 20])

    def test_cert_sn_forms_normalised(self):
        t = self.tenant()
        rows = [("norm-1", "0x00ff"), ("norm-2", "0a:1b:2c"),
                ("norm-3", "abcdef"), ("norm-4", "0X1"), ("norm-5", "00:00"),
                ("norm-6", "a:b:c")]
        self.committed(t, csv(t.pk, rows), 6)
        want = {"FF": "norm-1", "A1B2C": "norm-2", "ABCDEF": "norm-3",
                "1": "norm-4", "0": "norm-5", "A0B0C": "norm-6"}
        self.assertEqual(self.assoc_map(t),
                         {sn: (t.pk, dn, ENABLED) for sn, dn in want.items()})
        for form in ("ff", "0xFF", "00:FF", "0X00ff"):
            self.assertEqual(self.get(t, form).cert_sn, "FF")
        self.resolves(t, "0x0a1b2c", (t.pk, "norm-2", ENABLED))
        # The same SN in another form is the same SN.
        errs = self.refused(t, csv(t.pk, [("norm-7", "0XFF")]),
                            [(2,) + SN_COL + (SN_BOUND,)])
        self.assertIn("norm-1", errs[0].message)

    def test_cert_sn_prefix_with_separators(self):
        """association.proto's own example: "0x01:A3:ff" (a 0x prefix and
        ':' separators) is accepted and normalised to "1A3FF"."""
        t = self.tenant()
        self.committed(t, csv(t.pk, [("both-1", "0x01:A3:ff")]), 1)
        self.assertEqual(self.get(t, "1a3ff").cert_sn, "1A3FF")

    def test_duplicate_sn_in_file(self):
        """Every later occurrence is reported; the message names the line
        of the first."""
        t = self.tenant()
        rows = [("dup-1", "0a1b"), ("dup-2", "0c"), ("dup-3", "0x0A1B"),
                ("dup-4", "0a:1b")]
        errs = self.refused(t, csv(t.pk, rows),
                            [(4,) + SN_COL + (SN_DUP,),
                             (5,) + SN_COL + (SN_DUP,)])
        for e in errs:
            self.assertRegex(e.message, r"\bline 2\b")
            self.assertIn("A1B", e.message)
        self.assertEqual([e.value for e in errs], ["0x0A1B", "0a:1b"])
        self.nothing_bound(t, [("dup-1", "A1B"), ("dup-2", "C")])

    def test_duplicate_device_in_file(self):
        t = self.tenant()
        rows = [("twin", "01"), ("other", "02"), ("twin", "03")]
        errs = self.refused(t, csv(t.pk, rows), [(4,) + DN_COL + (DEV_DUP,)])
        self.assertRegex(errs[0].message, r"\bline 2\b")
        self.assertEqual(errs[0].value, "twin")
        self.nothing_bound(t, [("twin", "1"), ("other", "2")])

    def test_sn_already_bound(self):
        """An SN is unique in the account: bound to another device, or
        under another CA of the account, it is refused, naming the
        device."""
        t = self.tenant()
        self.committed(t, csv(t.pk, [("owner-1", "5A")]), 1)
        errs = self.refused(t, csv(t.pk, [("intruder", "0x5a"),
                                          ("fine-1", "5B")]),
                            [(2,) + SN_COL + (SN_BOUND,)])
        self.assertIn("owner-1", errs[0].message)
        self.assertIn(t.pk, errs[0].message)
        ca2, _ = SUITE.register_ca(t.key)
        errs = self.refused(t, csv(t.pk, [("intruder", "5A")]),
                            [(2,) + SN_COL + (SN_BOUND,)], ca_id=ca2.id)
        self.assertIn("owner-1", errs[0].message)
        self.assertEqual(A.list_all(t.key, ca2.id), [])
        self.assertEqual(self.assoc_map(t), {"5A": (t.pk, "owner-1", ENABLED)})
        self.assertCode(Code.NOT_FOUND, self.set_status, t, t.pk, "intruder",
                        DISABLED)
        self.assertCode(Code.NOT_FOUND, self.set_status, t, t.pk, "fine-1",
                        DISABLED)

    def test_device_already_bound(self):
        t = self.tenant()
        self.committed(t, csv(t.pk, [("owner-2", "6A")]), 1)
        errs = self.refused(t, csv(t.pk, [("new-1", "6C"),
                                          ("owner-2", "6B")]),
                            [(3,) + DN_COL + (DEV_BOUND,)])
        self.assertIn("6A", errs[0].message)
        self.assertEqual(errs[0].value, "owner-2")
        self.assertEqual(self.assoc_map(t), {"6A": (t.pk, "owner-2", ENABLED)})
        self.resolves(t, "6B", None)
        self.resolves(t, "6C", None)

    def test_reupload_is_idempotent(self):
        """Re-sending a file (after an unknown outcome) is accepted and
        changes nothing; a file that adds rows to it keeps the old ones."""
        t = self.tenant()
        rows = dev_rows(5)
        self.committed(t, csv(t.pk, rows), 5)
        before = {a.cert_sn: a for a in A.list_all(t.key, t.ca_id)}
        self.set_status(t, t.pk, rows[0][0], DISABLED)
        self.committed(t, csv(t.pk, rows), 5, unchanged=5)
        after = {a.cert_sn: a for a in A.list_all(t.key, t.ca_id)}
        self.assertEqual(after[rows[0][1]].device_status, DISABLED)
        for sn in before:
            self.assertEqual(after[sn].created_at, before[sn].created_at)
        more = rows + dev_rows(3, "new", 100)
        self.committed(t, csv(t.pk, more), 8, unchanged=5)
        self.assertEqual(len(self.assoc_map(t)), 8)

    def test_missing_fields(self):
        t = self.tenant()
        rows = ["%s,dev-1,01" % t.pk,
                "%s,,02" % t.pk,        # empty DeviceName
                "%s,dev-3" % t.pk,      # too few fields
                ",dev-4,04",            # empty ProductKey
                "%s,dev-5,  " % t.pk]   # blank CertSN
        self.refused(t, csv(None, rows),
                     [(3,) + DN_COL + (MISSING_FIELD,),
                      (4,) + SN_COL + (MISSING_FIELD,),
                      (5,) + PK_COL + (MISSING_FIELD,),
                      (6,) + SN_COL + (MISSING_FIELD,)])

    def test_missing_fields_one_error_each(self):
        """A row may have several errors, one per offending field."""
        t = self.tenant()
        self.refused(t, csv(None, ["%s,dev-1,01" % t.pk, "%s,," % t.pk]),
                     [(3,) + DN_COL + (MISSING_FIELD,),
                      (3,) + SN_COL + (MISSING_FIELD,)])

    def test_every_bad_row_reported(self):
        """Three different bad rows: three errors on the right lines; a
        row with two bad fields: two errors, by column."""
        t = self.tenant()
        p2 = A.new_product(t.key).product_key
        rows = ["%s,good-1,01" % t.pk,
                "%s,x,02" % t.pk,            # line 3: DeviceName
                "%s,good-3,03" % t.pk,
                "%s,good-4,0xZZ" % t.pk,     # line 5: CertSN
                "%s,good-5,05" % p2,         # line 6: ProductKey
                "%s,good-6,06" % t.pk,
                "%s,b@d!,G7" % t.pk]         # line 8: both
        self.refused(t, csv(None, rows),
                     [(3,) + DN_COL + (DN_INVALID,),
                      (5,) + SN_COL + (SN_INVALID,),
                      (6,) + PK_COL + (PK_MISMATCH,),
                      (8,) + DN_COL + (DN_INVALID,),
                      (8,) + SN_COL + (SN_INVALID,)])
        self.nothing_bound(t, [("good-1", "1"), ("good-6", "6")])

    def test_errors_ordered_across_checks(self):
        """Errors found against etcd (SN already bound) and in the file
        come out together, ordered by line."""
        t = self.tenant()
        self.committed(t, csv(t.pk, [("first", "F1")]), 1)
        rows = [("ord-1", "F2"), ("ord-2", "F1"), ("x", "F3"),
                ("ord-4", "F4")]
        self.refused(t, csv(t.pk, rows), [(3,) + SN_COL + (SN_BOUND,),
                                          (4,) + DN_COL + (DN_INVALID,)])

    def test_error_cap(self):
        """Over 1,000 bad rows: the first 1,000 errors, in line order, and
        the exact total."""
        t = self.tenant()
        rows = [("cap-%d" % i, "zz%d" % i) for i in range(1500)]
        r = self.upload(t, csv(t.pk, rows))
        self.assertFalse(r.committed)
        self.assertEqual(r.total_errors, 1500)
        self.assertEqual(len(r.errors), 1000)
        self.assertEqual(r.data_rows, 1500)
        self.assertEqual([(e.line, e.column, e.column_name, e.code)
                          for e in r.errors],
                         [(i + 2,) + SN_COL + (SN_INVALID,)
                          for i in range(1000)])

    def test_row_error_value_is_cut(self):
        """RowError.value is the raw value cut to at most 64 bytes."""
        t = self.tenant()
        long_dn = "d" * 200
        errs = self.refused(t, csv(t.pk, [(long_dn, "01")]),
                            [(2,) + DN_COL + (DN_INVALID,)])
        self.assertLessEqual(len(errs[0].value.encode()), 64)
        self.assertTrue(long_dn.startswith(errs[0].value))


# --------------------------------------------------------------- CSV syntax

class CsvFormatTest(Case):
    def test_quoted_fields(self):
        """RFC 4180 quoting: a quoted comma or doubled quote is part of
        the DeviceName (and makes it invalid); a quoted field may span
        lines (line numbers are physical lines); quoted valid values are
        fine."""
        t = self.tenant()
        data = ("%s\n"
                "%s,dev-m1,0B,\"two\nlines\"\n"      # lines 2-3
                "%s,\"dev,1\",01\n"                 # line 4
                "%s,\"dev\"\"x\",02\n"              # line 5
                % (HEADER + ",Note", t.pk, t.pk, t.pk)).encode()
        errs = self.refused(t, data, [(4,) + DN_COL + (DN_INVALID,),
                                      (5,) + DN_COL + (DN_INVALID,)])
        self.assertEqual([e.value for e in errs], ["dev,1", 'dev"x'])
        self.nothing_bound(t, [("dev-m1", "B")])
        data = ('"ProductKey","DeviceName","CertSN"\r\n'
                '"%s","dev-q1","0A"\r\n'
                '%s,"dev-q2",0B\r\n'
                '"%s","dev.q3",""\r\n' % (t.pk, t.pk, t.pk)).encode()
        # "" is an empty quoted field: a missing CertSN.
        self.refused(t, data, [(4,) + SN_COL + (MISSING_FIELD,)])
        self.committed(t, data.rsplit(b"\r\n", 2)[0] + b"\r\n", 2)
        self.assertEqual(self.assoc_map(t), {
            "A": (t.pk, "dev-q1", ENABLED), "B": (t.pk, "dev-q2", ENABLED)})

    def test_malformed_quoting(self):
        t = self.tenant()
        data = ("%s\n%s,dev-1,01\n%s,de\"v,02\n%s,dev-3,03\n"
                "%s,\"dev-4,04\n" % (HEADER, t.pk, t.pk, t.pk, t.pk)).encode()
        r = self.upload(t, data)
        self.assertFalse(r.committed)
        got = [(e.line, e.column, e.code) for e in r.errors]
        self.assertEqual(got, [(3, 2, MALFORMED_CSV), (5, 2, MALFORMED_CSV)],
                         [e.message for e in r.errors])
        self.assertRegex(r.errors[0].message, "quote")
        self.nothing_bound(t, [("dev-1", "1"), ("dev-3", "3")])

    def test_bom_and_line_ends(self):
        """A UTF-8 BOM, CRLF, LF and a mix of both are all accepted."""
        t = self.tenant()
        self.committed(t, csv(t.pk, dev_rows(3, "bom", 0x100), eol="\r\n",
                              bom=True), 3)
        self.committed(t, csv(t.pk, dev_rows(3, "lf", 0x200), eol="\n"), 3)
        self.committed(t, csv(t.pk, dev_rows(3, "crlf", 0x300),
                              eol="\r\n"), 3)
        mixed = ("%s\r\n%s,mix-1,401\n%s,mix-2,402\r\n%s,mix-3,403"
                 % (HEADER, t.pk, t.pk, t.pk)).encode()  # no final EOL
        self.committed(t, mixed, 3)
        self.assertEqual(len(self.assoc_map(t)), 12)
        self.resolves(t, "100", (t.pk, "bom-00000", ENABLED))
        # The BOM shifts no line or column.
        rows = [("bomx-1", "501"), ("bomx-2", "nothex")]
        self.refused(t, csv(t.pk, rows, eol="\r\n", bom=True),
                     [(3,) + SN_COL + (SN_INVALID,)])

    def test_header_order_and_case(self):
        """Columns are found by name, in any order and case, with spaces
        around; row errors name the column by its place in this header."""
        t = self.tenant()
        data = (" certsn ,PRODUCTKEY,\tdevicename\r\n"
                "0D01,%s,hdr-1\r\n0D02,%s,hdr-2\r\n" % (t.pk, t.pk)).encode()
        self.committed(t, data, 2)
        self.assertEqual(self.assoc_map(t), {
            "D01": (t.pk, "hdr-1", ENABLED), "D02": (t.pk, "hdr-2", ENABLED)})
        data = ("certSN,productKey,deviceName\n0D03,%s,hdr-3\nQQ,%s,h\n"
                % (t.pk, t.pk)).encode()
        # Errors are ordered by line, then column (of this header).
        self.refused(t, data, [(3, 1, "CertSN", SN_INVALID),
                               (3, 3, "DeviceName", DN_INVALID)])

    def test_missing_column(self):
        t = self.tenant()
        cases = [("ProductKey,DeviceName", ["CertSN"]),
                 ("DeviceName", ["ProductKey", "CertSN"]),
                 ("Product Key,DeviceName,CertSN", ["ProductKey"]),
                 ("ProductKey;DeviceName;CertSN",
                  ["ProductKey", "DeviceName", "CertSN"])]
        for header, missing in cases:
            with self.subTest(header=header):
                data = ("%s\n%s,dev-1,01\n" % (header, t.pk)).encode()
                errs = self.refused(t, data, [(1, 0, name, MISSING_COLUMN)
                                              for name in missing])
                for e, name in zip(errs, missing):
                    self.assertIn(name, e.message)
        self.assertEqual(A.list_all(t.key, t.ca_id), [])

    def test_duplicate_column(self):
        t = self.tenant()
        data = ("ProductKey,DeviceName,CertSN,certsn\n%s,dev-1,01,02\n"
                % t.pk).encode()
        self.refused(t, data, [(1, 4, "CertSN", DUPLICATE_COLUMN)])

    def test_extra_columns_ignored(self):
        t = self.tenant()
        header = "Note,ProductKey,Batch,DeviceName,CertSN,Extra"
        rows = ["anything,%s,b1,ext-1,E1,x" % t.pk,
                ",%s,,ext-2,E2," % t.pk,
                "\"a, b\",%s,b3,ext-3,E3,\"y\"\"z\"" % t.pk]
        self.committed(t, csv(None, rows, header=header), 3)
        self.assertEqual(len(self.assoc_map(t)), 3)
        rows = ["n,%s,b,ext-4,nothex,x" % t.pk]
        self.refused(t, csv(None, rows, header=header),
                     [(2, 5, "CertSN", SN_INVALID)])

    def test_empty_file(self):
        t = self.tenant()
        for data in (b"", b"\xef\xbb\xbf", b"\n\n", HEADER.encode(),
                     (HEADER + "\r\n").encode(),
                     (HEADER + "\r\n\r\n\n").encode(),
                     b"\xef\xbb\xbf" + (HEADER + "\n").encode()):
            with self.subTest(data=data):
                r = self.upload(t, data)
                self.assertFalse(r.committed)
                self.assertEqual([(e.line, e.column, e.column_name, e.code)
                                  for e in r.errors],
                                 [(0, 0, "", EMPTY_FILE)])
                self.assertEqual(r.total_errors, 1)
                self.assertEqual(r.data_rows, 0)
                self.assertEqual(r.product_key, "")
                self.assertTrue(r.errors[0].message)

    def test_binary_garbage(self):
        """Not a CSV file at all: refused with a clear file-level error."""
        t = self.tenant()
        rnd = random.Random(20240611)
        blobs = {
            "random": bytes(rnd.getrandbits(8) for _ in range(8192)),
            "random-no-nul": bytes(rnd.randrange(1, 256) for _ in range(8192)),
            "png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200),
            "utf16": "ProductKey,DeviceName,CertSN\r\n".encode("utf-16"),
        }
        for name, data in blobs.items():
            with self.subTest(blob=name):
                r = self.upload(t, data)
                self.assertFalse(r.committed)
                self.assertGreaterEqual(r.total_errors, 1)
                self.assertEqual(r.accepted_rows, 0)
                codes = {e.code for e in r.errors}
                self.assertTrue(codes <= {MALFORMED_CSV, MISSING_COLUMN},
                                [(e.line, e.code, e.message)
                                 for e in r.errors])
                for e in r.errors:
                    self.assertGreater(len(e.message), 10)
        self.assertEqual(A.list_all(t.key, t.ca_id), [])

    def test_invalid_utf8(self):
        """Bytes that are not UTF-8 (a Latin-1 "caf\xe9" as spreadsheets
        save it) are MALFORMED_CSV, in a checked or an ignored column, and
        the answer stays readable (proto3 strings must be UTF-8)."""
        t = self.tenant()
        pk = t.pk.encode()
        data = (HEADER + ",Note\n").encode() + pk + b",utf-1,01,ok\n" + \
            pk + b",caf\xe9,02,x\n" + pk + b",utf-3,03,na\xefve\n"
        r = self.upload(t, data)  # INTERNAL here: a response Python
        self.assertFalse(r.committed)  # could not decode
        self.assertEqual([(e.line, e.code) for e in r.errors],
                         [(3, MALFORMED_CSV), (4, MALFORMED_CSV)])
        self.nothing_bound(t, [("utf-1", "1")])

    def test_answers_are_utf8(self):
        """Values and messages quoting what the file holds are cut at
        character boundaries, so a client can decode them."""
        t = self.tenant()
        pk2 = "a" + "\u00e9" * 30  # 61 bytes: cut at 40 in the message
        rows = ["%s,utf-1,01" % t.pk, "%s,utf-2,02" % pk2,
                "%s,%s,03" % (t.pk, "\u00e9" * 40)]
        errs = self.refused(t, csv(None, rows),
                            [(3,) + PK_COL + (PK_MISMATCH,),
                             (4,) + DN_COL + (DN_INVALID,)])
        self.assertTrue(pk2.startswith(errs[0].value))
        self.assertTrue(("\u00e9" * 40).startswith(errs[1].value))

    def test_blank_trailing_lines_ignored(self):
        t = self.tenant()
        data = csv(t.pk, dev_rows(3), eol="\r\n") + b"\r\n\n\r\n\n"
        self.committed(t, data, 3)

    def test_blank_line_in_the_middle(self):
        """A blank line that is not at the end is a row with missing
        fields."""
        t = self.tenant()
        data = ("%s\n%s,mid-1,01\n\n%s,mid-2,02\n"
                % (HEADER, t.pk, t.pk)).encode()
        r = self.upload(t, data)
        self.assertFalse(r.committed)
        self.assertTrue(r.errors, "a blank line in the middle was accepted")
        self.assertEqual({(e.line, e.code) for e in r.errors},
                         {(3, MISSING_FIELD)})
        self.nothing_bound(t, [("mid-1", "1"), ("mid-2", "2")])


# --------------------------------------------------- credentials, isolation

class CredentialTest(Case):
    def tenant_calls(self, t):
        """Every tenant RPC with a valid request, as (name, fn(md))."""
        st = A.stub
        return [
            ("CreateProduct", lambda md: st.CreateProduct(
                pb.CreateProductRequest(name="p_" + secrets.token_hex(4),
                                        use_private_ca=True),
                metadata=md, timeout=10)),
            ("GetProduct", lambda md: st.GetProduct(
                pb.GetProductRequest(product_key=t.pk), metadata=md,
                timeout=10)),
            ("ListProducts", lambda md: st.ListProducts(
                pb.ListProductsRequest(), metadata=md, timeout=10)),
            ("GetCsvTemplate", lambda md: st.GetCsvTemplate(
                pb.GetCsvTemplateRequest(), metadata=md, timeout=10)),
            ("UploadAssociations", lambda md: st.UploadAssociations(
                pb.UploadAssociationsRequest(
                    ca_id=t.ca_id, csv=csv(t.pk, [("cred-9", "C9")])),
                metadata=md, timeout=30)),
            ("ListAssociations", lambda md: st.ListAssociations(
                pb.ListAssociationsRequest(ca_id=t.ca_id), metadata=md,
                timeout=10)),
            ("GetAssociation", lambda md: st.GetAssociation(
                pb.GetAssociationRequest(ca_id=t.ca_id, cert_sn="C1"),
                metadata=md, timeout=10)),
            ("UpdateDeviceStatus", lambda md: st.UpdateDeviceStatus(
                pb.UpdateDeviceStatusRequest(product_key=t.pk,
                                             device_name="cred-1",
                                             status=DISABLED),
                metadata=md, timeout=10)),
            ("DeleteAssociation", lambda md: st.DeleteAssociation(
                pb.DeleteAssociationRequest(ca_id=t.ca_id, cert_sn="C1"),
                metadata=md, timeout=10)),
        ]

    def test_credentials(self):
        t = self.tenant()
        self.committed(t, csv(t.pk, [("cred-1", "C1")]), 1)
        bad = {"none": [], "unknown key": fx.bearer("k_" + "0" * 40),
               "not bearer": [("authorization", "Basic " + t.key)],
               "empty": fx.bearer("")}
        wrong_kind = {"operator": SUITE.reg.op_md(),
                      "internal": A.internal_md()}
        for name, fn in self.tenant_calls(t):
            for kind, md in bad.items():
                with self.subTest(rpc=name, token=kind):
                    self.assertCode(Code.UNAUTHENTICATED, fn, md)
            for kind, md in wrong_kind.items():
                with self.subTest(rpc=name, token=kind):
                    self.assertCode(Code.PERMISSION_DENIED, fn, md)
        # ResolveDevice: internal only.
        self.assertCode(Code.UNAUTHENTICATED, A.resolve, t.ca_id, "C1",
                        t.account_id, md=[])
        self.assertCode(Code.UNAUTHENTICATED, A.resolve, t.ca_id, "C1",
                        t.account_id, md=fx.bearer("in-wrong"))
        self.assertCode(Code.PERMISSION_DENIED, A.resolve, t.ca_id, "C1",
                        t.account_id, md=t.md)
        self.assertCode(Code.PERMISSION_DENIED, A.resolve, t.ca_id, "C1",
                        t.account_id, md=SUITE.reg.op_md())
        # Nothing changed by the refused calls.
        self.assertEqual(self.assoc_map(t), {"C1": (t.pk, "cred-1", ENABLED)})

    def test_revoked_key(self):
        t = self.tenant()
        k2 = SUITE.reg.new_key(t.account_id)
        SUITE.reg.stub.RevokeApiKey(rpb.RevokeApiKeyRequest(key_id=k2.key_id),
                                    metadata=SUITE.reg.op_md(), timeout=10)
        deadline = time.monotonic() + 10
        while True:
            try:
                A.upload(k2.api_key, t.ca_id, csv(t.pk, dev_rows(1)))
                code = Code.OK
            except grpc.RpcError as e:
                code = e.code()
            if code == Code.UNAUTHENTICATED or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.assertEqual(code, Code.UNAUTHENTICATED)


class IsolationTest(Case):
    def test_other_account_sees_nothing(self):
        a, b = self.tenant(), self.tenant()
        self.committed(a, csv(a.pk, [("iso-1", "1501"), ("iso-2", "1502")]),
                       2)
        self.assertCode(Code.NOT_FOUND, self.get, b, "1501", ca_id=a.ca_id)
        self.assertCode(Code.NOT_FOUND, self.delete, b, "1501", ca_id=a.ca_id)
        self.assertCode(Code.NOT_FOUND, A.list_all, b.key, a.ca_id)
        self.assertCode(Code.NOT_FOUND, A.list_all, b.key, a.ca_id, a.pk)
        self.assertCode(Code.NOT_FOUND, self.set_status, b, a.pk, "iso-1",
                        DISABLED)
        self.assertCode(Code.NOT_FOUND, A.stub.GetProduct,
                        pb.GetProductRequest(product_key=a.pk), metadata=b.md,
                        timeout=10)
        listed = A.stub.ListProducts(pb.ListProductsRequest(), metadata=b.md,
                                     timeout=10).products
        self.assertEqual([p.product_key for p in listed], [b.pk])
        # Uploads: A's CA is unknown to B; A's product too.
        self.assertCode(Code.NOT_FOUND, self.upload, b,
                        csv(b.pk, [("iso-9", "1509")]), ca_id=a.ca_id)
        self.refused(b, csv(a.pk, [("iso-9", "1509")]),
                     [(2,) + PK_COL + (PRODUCT_NOT_FOUND,)])
        # The edge asking with B's account does not find A's device.
        self.assertCode(Code.NOT_FOUND, A.resolve, a.ca_id, "1501",
                        b.account_id)
        # A's associations are untouched, and SNs are unique per account
        # only: B may bind the same SNs to its own devices.
        self.assertEqual(self.assoc_map(a), {
            "1501": (a.pk, "iso-1", ENABLED), "1502": (a.pk, "iso-2",
                                                       ENABLED)})
        self.committed(b, csv(b.pk, [("iso-1", "1501")]), 1)
        self.resolves(a, "1501", (a.pk, "iso-1", ENABLED))
        self.resolves(b, "1501", (b.pk, "iso-1", ENABLED))
        # The edge asking with A's account but B's CA: not found either.
        self.assertCode(Code.NOT_FOUND, A.resolve, b.ca_id, "1501",
                        a.account_id)


# ------------------------------------------------------------- CA deletion

class CaDeletionTest(Case):
    def delete_ca(self, t):
        """Disables and deletes t's CA in the registry."""
        reg, md = SUITE.reg.stub, t.md
        reg.UpdateCaCertificateStatus(rpb.UpdateCaCertificateStatusRequest(
            id=t.ca_id, status=rpb.CA_STATUS_INACTIVE), metadata=md,
            timeout=10)
        reg.DeleteCaCertificate(rpb.DeleteCaCertificateRequest(id=t.ca_id),
                                metadata=md, timeout=10)

    def test_deleting_the_ca_frees_its_sns(self):
        """After its CA is disabled and deleted in the registry, a CA's
        associations are gone: the same SNs can be uploaded under a new CA
        of the account, to the same or to other devices."""
        t = self.tenant()
        rows = dev_rows(6, "cad", 0x7000)
        self.committed(t, csv(t.pk, rows), 6)
        self.set_status(t, t.pk, rows[0][0], DISABLED)
        self.delete_ca(t)
        old = t.ca_id
        self.assertCode(Code.NOT_FOUND, A.list_all, t.key, old)
        self.assertCode(Code.NOT_FOUND, self.upload, t, csv(t.pk, rows),
                        ca_id=old)

        ca2, _ = SUITE.register_ca(t.key)
        # Rows 0-2: the same devices again; rows 3-5: their SNs go to new
        # devices, and the old devices are free.
        again = rows[:3] + [("moved-%d" % i, sn)
                            for i, (_, sn) in enumerate(rows[3:])]
        self.committed(t, csv(t.pk, again), 6, ca_id=ca2.id)
        self.assertEqual(self.assoc_map(t, ca_id=ca2.id),
                         {sn: (t.pk, dn, ENABLED) for dn, sn in again})
        for dn, sn in again:
            self.resolves(t, sn, (t.pk, dn, ENABLED), ca_id=ca2.id)
            self.resolves(t, sn, None, ca_id=old)
        for dn, _ in rows[3:]:
            self.assertCode(Code.NOT_FOUND, self.set_status, t, t.pk, dn,
                            DISABLED)
        # The freed devices can take new SNs.
        self.committed(t, csv(t.pk, [(dn, "%X" % (0x7100 + i))
                                     for i, (dn, _) in enumerate(rows[3:])]),
                       3, ca_id=ca2.id)
        self.assertEqual(len(self.assoc_map(t, ca_id=ca2.id)), 9)

    def test_device_of_deleted_ca_takes_a_new_sn(self):
        """A device whose association was under a deleted CA takes a new
        SN under another CA: its old SN record is removed in the same
        commit (no device holds two SNs), so the old SN is free too."""
        t = self.tenant()
        rows = dev_rows(3, "kept", 0x7300)
        self.committed(t, csv(t.pk, rows), 3)
        self.delete_ca(t)
        ca2, _ = SUITE.register_ca(t.key)
        moved = [(dn, "%X" % (0x7400 + i)) for i, (dn, _) in enumerate(rows)]
        self.committed(t, csv(t.pk, moved), 3, ca_id=ca2.id)
        self.assertEqual(self.assoc_map(t, ca_id=ca2.id),
                         {sn: (t.pk, dn, ENABLED) for dn, sn in moved})
        # the old records went in that commit: 3 SN keys in all, not 6
        self.assertEqual(
            SUITE.reg.etcd.count("/iotca/sn/%s/" % t.account_id), 3)
        for dn, sn in moved:
            self.resolves(t, sn, (t.pk, dn, ENABLED), ca_id=ca2.id)
        # the old SNs are free: other devices take them
        self.committed(t, csv(t.pk, [("new-%d" % i, sn)
                                     for i, (_, sn) in enumerate(rows)]),
                       3, ca_id=ca2.id)
        self.assertEqual(len(self.assoc_map(t, ca_id=ca2.id)), 6)

    def test_deleted_ca_devices_are_gone(self):
        """Deleting a CA deletes its associations (registry.proto): its
        devices no longer exist for UpdateDeviceStatus, and its SNs are
        not found under it."""
        t = self.tenant()
        rows = dev_rows(2, "gone", 0x7200)
        self.committed(t, csv(t.pk, rows), 2)
        self.delete_ca(t)
        self.assertCode(Code.NOT_FOUND, self.get, t, rows[0][1])
        self.assertCode(Code.NOT_FOUND, self.delete, t, rows[0][1])
        self.assertCode(Code.NOT_FOUND, self.set_status, t, t.pk, rows[1][0],
                        DISABLED)


if __name__ == "__main__":
    fx.run_tests()
