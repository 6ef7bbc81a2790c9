#!/usr/bin/python3
"""iotca-registry end to end: Python grpcio stubs generated from proto/,
certificates made with the openssl command as the product page shows, a
real etcd and the registry binary, all on loopback ports picked at run time.

One test per rule of proto/iotca/v1/registry.proto, each asserting the exact
gRPC status code. Most tests share one etcd and one registry and make their
own account, so they do not see each other; the etcd-outage test has its
own. The concurrent 10-CA limit is in test_registry_race.py.

usage: test_registry.py [unittest args]   (IOTCA_BUILD_DIR = build dir)
"""
import os
import secrets
import sys
import time
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import iotca_fixture as fx  # noqa: E402

import grpc  # noqa: E402

S = fx.stubs()
pb = S.registry_pb2
ACTIVE = pb.CA_STATUS_ACTIVE
INACTIVE = pb.CA_STATUS_INACTIVE
Code = grpc.StatusCode
DAY = 86400

REG = None  # the shared registry (and its etcd)
PKI = None


def setUpModule():
    global REG, PKI
    PKI = fx.Pki()
    REG = fx.Registry()


def tearDownModule():
    PKI.close()
    REG.close()  # raises unless the registry exited 0 on SIGTERM


def uniq(prefix):
    """A name unique to this run: prefix_<hex>, valid as a CA name."""
    return "%s_%s" % (prefix, secrets.token_hex(4))


class Tenant:
    """An account with an API key on a registry, and shorthand calls."""

    def __init__(self, reg=None):
        self.reg = reg or REG
        self.account_id, self.key = self.reg.new_tenant()
        self.md = fx.bearer(self.key)

    def rpc(self, method, req, timeout=10):
        return getattr(self.reg.stub, method)(req, metadata=self.md,
                                               timeout=timeout)

    def code(self):
        return self.rpc("GetRegistrationCode",
                        pb.GetRegistrationCodeRequest()).registration_code

    def rotate(self):
        return self.rpc("RotateRegistrationCode",
                        pb.RotateRegistrationCodeRequest()).registration_code

    def ca(self, name=None, **kw):
        """An EC CA with a subject unique to this run (fast to make)."""
        kw.setdefault("key", "ec")
        return PKI.make_ca(name or uniq("ca"), **kw)

    def ver(self, ca, cn=None, **kw):
        """A verification certificate with an EC key for the current code."""
        kw.setdefault("key", "ec")
        return PKI.make_verification(ca, cn or self.code(), **kw)

    def register(self, ca, ver=None, name=None, status=0, raw_ca=None,
                 raw_ver=None, der=False):
        ver = ver or self.ver(ca)
        return self.rpc("RegisterCaCertificate", pb.RegisterCaCertificateRequest(
            name=name if name is not None else uniq("ca"),
            ca_certificate=raw_ca if raw_ca is not None else
            (ca.der if der else ca.pem),
            verification_certificate=raw_ver if raw_ver is not None else
            (ver.der if der else ver.pem),
            initial_status=status))

    def get(self, ca_id):
        return self.rpc("GetCaCertificate", pb.GetCaCertificateRequest(id=ca_id))

    def list(self, page_size=0, page_token=""):
        return self.rpc("ListCaCertificates", pb.ListCaCertificatesRequest(
            page_size=page_size, page_token=page_token))

    def ids(self):
        return sorted(c.id for c in self.list().ca_certificates)

    def set_status(self, ca_id, status):
        return self.rpc("UpdateCaCertificateStatus",
                        pb.UpdateCaCertificateStatusRequest(id=ca_id,
                                                            status=status))

    def delete(self, ca_id):
        return self.rpc("DeleteCaCertificate",
                        pb.DeleteCaCertificateRequest(id=ca_id))


class Case(unittest.TestCase):
    def assertCode(self, code, fn, *args, phrase=None, **kw):
        """fn(*args, **kw) fails with this gRPC code; returns the message.
        phrase: a regular expression the message must contain."""
        try:
            r = fn(*args, **kw)
        except grpc.RpcError as e:
            self.assertEqual(e.code(), code, "message: %s" % e.details())
            if phrase is not None:
                self.assertRegex(e.details(), phrase)
            return e.details()
        self.fail("expected %s, got OK: %r" % (code.name, r))

    def resolve(self, issuer_der, md=None, reg=None):
        reg = reg or REG
        return reg.stub.ResolveIssuer(
            pb.ResolveIssuerRequest(issuer_der=issuer_der),
            metadata=md if md is not None else reg.internal_md(), timeout=10)

    def resolves_to(self, issuer_der, ids, reg=None, within=5.0):
        """ResolveIssuer(issuer_der) gives exactly these CA ids within a few
        seconds (the contract lets replicas cache issuers briefly). Returns
        the answer as {ca_id: ResolvedCaCertificate}."""
        deadline = time.monotonic() + within
        while True:
            got = {r.ca_id: r for r in
                   self.resolve(issuer_der, reg=reg).ca_certificates}
            if set(got) == set(ids) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(set(got), set(ids))
        self.assertEqual(len(got), len(ids))
        return got


# --------------------------------------------------------------------- flow

class DocumentedFlowTest(Case):
    def test_documented_flow(self):
        """The product page's flow: account, registration code, CA and
        validation certificate with the page's openssl commands, register,
        get, list, disable, enable, disable, delete."""
        acc = REG.new_account(uniq("acme"))           # operator
        key = REG.new_key(acc.id)
        self.assertTrue(key.api_key and key.key_id)
        self.assertEqual(key.account_id, acc.id)
        md = fx.bearer(key.api_key)
        code = REG.stub.GetRegistrationCode(pb.GetRegistrationCodeRequest(),
                                            metadata=md, timeout=10)
        code = code.registration_code
        org = uniq("Acme")
        ca = PKI.make_ca("yourCA", subject="/C=DE/O=%s/CN=Acme Device CA" % org,
                         key="rsa:2048", days=365)
        # openssl genrsa 2048 / req -new (CN = code) / x509 -req -CA -CAkey
        # -CAcreateserial -days 300 -sha512: the page's commands.
        ver = PKI.make_verification(ca, code)
        t0 = int(time.time())
        c = REG.stub.RegisterCaCertificate(pb.RegisterCaCertificateRequest(
            name="Acme_Device_CA", ca_certificate=ca.pem,
            verification_certificate=ver.pem), metadata=md, timeout=10)
        t1 = int(time.time())
        self.assertRegex(c.id, r"^[A-Za-z0-9_-]{1,64}$")
        self.assertEqual(c.account_id, acc.id)
        self.assertEqual(c.name, "Acme_Device_CA")
        self.assertEqual(c.subject, "CN=Acme Device CA,O=%s,C=DE" % org)
        self.assertEqual(c.subject_der, ca.subject_der)
        self.assertEqual(c.serial_number, ca.serial)
        self.assertEqual(c.sha256_fingerprint, ca.sha256)
        self.assertEqual(c.key_algorithm, "RSA")
        self.assertEqual(c.key_bits, 2048)
        self.assertEqual(c.status, ACTIVE)
        self.assertTrue(t0 <= c.created_at <= t1, (t0, c.created_at, t1))
        self.assertEqual(c.updated_at, c.created_at)
        self.assertTrue(c.not_before <= t1 < c.not_after)
        self.assertEqual(c.not_after - c.not_before, 365 * DAY)
        self.assertEqual(c.pem.encode(), ca.pem)

        get = lambda: REG.stub.GetCaCertificate(  # noqa: E731
            pb.GetCaCertificateRequest(id=c.id), metadata=md, timeout=10)
        self.assertEqual(get(), c)
        lst = REG.stub.ListCaCertificates(pb.ListCaCertificatesRequest(),
                                          metadata=md, timeout=10)
        self.assertEqual(list(lst.ca_certificates), [c])
        self.assertEqual(lst.next_page_token, "")

        def status(s):
            return REG.stub.UpdateCaCertificateStatus(
                pb.UpdateCaCertificateStatusRequest(id=c.id, status=s),
                metadata=md, timeout=10)
        off = status(INACTIVE)
        self.assertEqual(off.status, INACTIVE)
        self.assertGreaterEqual(off.updated_at, c.created_at)
        self.assertEqual(get().status, INACTIVE)
        self.assertEqual(status(INACTIVE).status, INACTIVE)  # no-op is OK
        self.assertEqual(status(ACTIVE).status, ACTIVE)
        self.assertEqual(get().status, ACTIVE)
        self.assertEqual(status(INACTIVE).status, INACTIVE)
        REG.stub.DeleteCaCertificate(pb.DeleteCaCertificateRequest(id=c.id),
                                     metadata=md, timeout=10)
        self.assertCode(Code.NOT_FOUND, get)
        lst = REG.stub.ListCaCertificates(pb.ListCaCertificatesRequest(),
                                          metadata=md, timeout=10)
        self.assertEqual(len(lst.ca_certificates), 0)
        # Deleted: the same CA may be registered again.
        ver = PKI.make_verification(ca, code, key="ec")
        again = REG.stub.RegisterCaCertificate(pb.RegisterCaCertificateRequest(
            name="Acme_Device_CA", ca_certificate=ca.pem,
            verification_certificate=ver.pem), metadata=md, timeout=10)
        self.assertNotEqual(again.id, c.id)


# ---------------------------------------------------------------- the rules

class CaRulesTest(Case):
    def test_leaf_is_not_a_ca(self):
        t = Tenant()
        leaf = t.ca(ca=False)
        self.assertCode(Code.FAILED_PRECONDITION, t.register, leaf,
                        phrase="not a CA")
        no_bc = t.ca(ca=None)  # no basicConstraints at all
        self.assertCode(Code.FAILED_PRECONDITION, t.register, no_bc,
                        phrase="basicConstraints")
        no_sign = t.ca(key_usage="critical,digitalSignature")
        self.assertCode(Code.FAILED_PRECONDITION, t.register, no_sign,
                        phrase="keyCertSign")
        no_ku = t.ca(key_usage="")  # CA:TRUE without keyUsage is a CA
        self.assertEqual(t.register(no_ku).status, ACTIVE)

    def test_expired_ca(self):
        t = Tenant()
        self.assertCode(Code.FAILED_PRECONDITION, t.register,
                        t.ca(expired=True), phrase="expired")

    def test_not_yet_valid_ca(self):
        t = Tenant()
        self.assertCode(Code.FAILED_PRECONDITION, t.register,
                        t.ca(not_yet_valid=True), phrase="not valid until")

    def test_garbage_bytes(self):
        t = Tenant()
        ca = t.ca()
        ver = t.ver(ca)
        junk = secrets.token_bytes(700)
        self.assertCode(Code.INVALID_ARGUMENT, t.register, ca, ver,
                        raw_ca=junk)
        self.assertCode(Code.INVALID_ARGUMENT, t.register, ca, ver,
                        raw_ver=junk)
        self.assertCode(Code.INVALID_ARGUMENT, t.register, ca, ver,
                        raw_ca=b"", phrase="empty")
        with open(ca.key_path, "rb") as f:  # a private key is no certificate
            self.assertCode(Code.INVALID_ARGUMENT, t.register, ca, ver,
                            raw_ca=f.read())
        self.assertEqual(t.ids(), [])

    def test_pem_with_trailing_junk(self):
        t = Tenant()
        ca = t.ca()
        ver = t.ver(ca)
        self.assertCode(Code.INVALID_ARGUMENT, t.register, ca, ver,
                        raw_ca=ca.pem + b"trailing junk\n",
                        phrase="unexpected bytes")
        self.assertCode(Code.INVALID_ARGUMENT, t.register, ca, ver,
                        raw_ver=ver.pem + b"\x00\x01")
        self.assertCode(Code.INVALID_ARGUMENT, t.register, ca, ver,
                        raw_ca=ca.pem + ver.pem, phrase="more than one")
        self.assertCode(Code.INVALID_ARGUMENT, t.register, ca, ver,
                        raw_ca=ca.der + b"\x00")
        # Trailing white space is fine.
        self.assertEqual(t.register(ca, ver, raw_ca=ca.pem + b"\n\n  \n")
                         .sha256_fingerprint, ca.sha256)

    def test_der_input(self):
        t = Tenant()
        ca = t.ca()
        c = t.register(ca, der=True)  # CA and verification both DER
        self.assertEqual(c.sha256_fingerprint, ca.sha256)
        self.assertEqual(c.pem.encode(), ca.pem)  # given back as PEM
        self.assertEqual(c.key_algorithm, "EC")
        self.assertEqual(c.key_bits, 256)
        ca2 = t.ca()
        ver2 = t.ver(ca2)
        mixed = t.register(ca2, raw_ca=ca2.pem, raw_ver=ver2.der)
        self.assertEqual(mixed.sha256_fingerprint, ca2.sha256)

    def test_verification_signed_by_another_key(self):
        t = Tenant()
        ca = t.ca()
        impostor = PKI.make_key(os.path.join(PKI.dir, uniq("other") + ".key"),
                                "ec")
        ver = t.ver(ca, signer_key=impostor)
        self.assertEqual(ver.issuer_der, ca.subject_der)  # the name is right
        self.assertCode(Code.FAILED_PRECONDITION, t.register, ca, ver,
                        phrase="not signed by the CA")
        # Signed by a different CA altogether.
        other = t.ca()
        self.assertCode(Code.FAILED_PRECONDITION, t.register, ca,
                        t.ver(other), phrase="not signed by the CA")
        self.assertEqual(t.ids(), [])

    def test_verification_outside_validity_or_without_cn(self):
        t = Tenant()
        ca = t.ca()
        code = t.code()
        for kw, phrase in ((dict(expired=True), "expired"),
                           (dict(not_yet_valid=True), "is not valid until")):
            ver = PKI.make_ca("ver", subject="/CN=" + code, key="ec",
                              ca=False, issuer=ca, **kw)
            with self.subTest(**kw):
                self.assertCode(Code.FAILED_PRECONDITION, t.register, ca, ver,
                                phrase="verification certificate " + phrase)
        no_cn = PKI.make_ca("ver", subject="/O=" + code, key="ec", ca=False,
                            issuer=ca)
        self.assertCode(Code.FAILED_PRECONDITION, t.register, ca, no_cn,
                        phrase="Common Name")
        self.assertEqual(t.ids(), [])

    def test_old_code_after_rotation(self):
        t = Tenant()
        old = t.code()
        ca = t.ca()
        ver_old = t.ver(ca, old)
        new = t.rotate()
        self.assertNotEqual(new, old)
        self.assertCode(Code.FAILED_PRECONDITION, t.register, ca, ver_old,
                        phrase="registration code")
        self.assertEqual(t.register(ca, t.ver(ca, new)).status, ACTIVE)

    def test_cn_is_another_accounts_code(self):
        a, b = Tenant(), Tenant()
        ca = b.ca()
        self.assertCode(Code.FAILED_PRECONDITION, b.register, ca,
                        b.ver(ca, a.code()), phrase="registration code")
        self.assertCode(Code.FAILED_PRECONDITION, b.register, ca,
                        b.ver(ca, b.code().upper()))
        self.assertEqual(b.ids(), [])

    def test_eleventh_ca(self):
        t = Tenant()
        code = t.code()
        cas = [t.ca() for _ in range(11)]
        made = [t.register(ca, t.ver(ca, code)) for ca in cas[:10]]
        self.assertCode(Code.RESOURCE_EXHAUSTED, t.register, cas[10],
                        t.ver(cas[10], code), phrase="10")
        self.assertEqual(len(t.ids()), 10)
        # INACTIVE ones count too; deleting one makes room.
        t.set_status(made[0].id, INACTIVE)
        self.assertCode(Code.RESOURCE_EXHAUSTED, t.register, cas[10],
                        t.ver(cas[10], code))
        t.delete(made[0].id)
        self.assertEqual(t.register(cas[10], t.ver(cas[10], code)).status,
                         ACTIVE)
        self.assertCode(Code.RESOURCE_EXHAUSTED, t.register, cas[0],
                        t.ver(cas[0], code))

    def test_duplicate_ca(self):
        t = Tenant()
        ca = t.ca()
        first = t.register(ca)
        msg = self.assertCode(Code.ALREADY_EXISTS, t.register, ca,
                              name=uniq("other"))
        self.assertIn(first.id, msg)
        self.assertEqual(t.ids(), [first.id])

    def test_subject_belongs_to_one_account(self):
        a, b = Tenant(), Tenant()
        subject = "/O=%s/CN=Shared Subject CA" % uniq("Org")
        ca_a = a.ca(subject=subject)
        first = a.register(ca_a)
        ca_b = b.ca(subject=subject)  # same subject, other key
        self.assertCode(Code.FAILED_PRECONDITION, b.register, ca_b,
                        phrase="another account")
        self.assertCode(Code.FAILED_PRECONDITION, b.register, ca_a)
        # In one account the same subject may come back (rotation).
        rotated = a.register(a.ca(subject=subject))
        self.assertEqual(rotated.subject_der, first.subject_der)
        self.assertNotEqual(rotated.sha256_fingerprint,
                            first.sha256_fingerprint)
        self.assertEqual(len(a.ids()), 2)
        self.assertEqual(b.ids(), [])
        # Once account A has none left, the subject is free again.
        for c in (first, rotated):
            a.set_status(c.id, INACTIVE)
            a.delete(c.id)
        self.assertEqual(b.register(ca_b).subject_der, first.subject_der)

    def test_subject_compared_as_der(self):
        """The same printed subject in other DER (PrintableString instead of
        UTF8String) is another subject: it may belong to another account."""
        a, b = Tenant(), Tenant()
        subject = "/O=%s/CN=Der Compare CA" % uniq("Org")
        utf8 = a.ca(subject=subject)
        printable = b.ca(subject=subject, string_mask="default")
        self.assertNotEqual(utf8.subject_der, printable.subject_der)
        ca = a.register(utf8)
        cb = b.register(printable)
        self.assertEqual(ca.subject, cb.subject)  # same text, two owners
        self.resolves_to(printable.subject_der, [cb.id])
        self.resolves_to(utf8.subject_der, [ca.id])

    def test_name_rules(self):
        t = Tenant()
        ca = t.ca()
        ver = t.ver(ca)
        for bad in ["abc", "", "a" * 31, "bad-name", "has space", "dot.ted",
                    "caf\u00e9_ca", "semi;colon"]:
            with self.subTest(name=bad):
                self.assertCode(Code.INVALID_ARGUMENT, t.register, ca, ver,
                                name=bad, phrase="4 to 30")
        self.assertEqual(t.ids(), [])
        self.assertEqual(t.register(ca, ver, name="abcd").name, "abcd")
        ca30 = t.ca()
        self.assertEqual(t.register(ca30, name="Z_9" * 10).name, "Z_9" * 10)

    def test_duplicate_name(self):
        t = Tenant()
        t.register(t.ca(), name="Same_Name")
        self.assertCode(Code.ALREADY_EXISTS, t.register, t.ca(),
                        name="Same_Name", phrase="Same_Name")
        # Names are per account.
        self.assertEqual(Tenant().register(t.ca(), name="Same_Name").name,
                         "Same_Name")

    def test_oversized_upload(self):
        t = Tenant()
        ca = t.ca()
        ver = t.ver(ca)
        t0 = time.monotonic()
        self.assertCode(Code.INVALID_ARGUMENT, t.register, ca, ver,
                        raw_ca=b"A" * (1 << 20), phrase="at most")
        self.assertLess(time.monotonic() - t0, 5)
        # Just over 64 KiB: a valid PEM padded with white space.
        self.assertCode(Code.INVALID_ARGUMENT, t.register, ca, ver,
                        raw_ca=ca.pem + b" " * (64 << 10), phrase="65536")
        self.assertCode(Code.INVALID_ARGUMENT, t.register, ca, ver,
                        raw_ver=ver.pem + b"\n" * (64 << 10))
        self.assertEqual(t.ids(), [])
        self.assertEqual(t.register(ca, ver).status, ACTIVE)

    def test_delete_while_active(self):
        t = Tenant()
        c = t.register(t.ca())
        self.assertCode(Code.FAILED_PRECONDITION, t.delete, c.id,
                        phrase="disable it first")
        self.assertEqual(t.get(c.id).status, ACTIVE)
        c = t.register(t.ca(), status=INACTIVE)  # registered INACTIVE
        self.assertEqual(c.status, INACTIVE)
        t.delete(c.id)
        self.assertCode(Code.NOT_FOUND, t.delete, c.id)

    def test_status_and_id_arguments(self):
        t = Tenant()
        c = t.register(t.ca())
        self.assertCode(Code.INVALID_ARGUMENT, t.set_status, c.id,
                        pb.CA_STATUS_UNSPECIFIED)
        self.assertCode(Code.INVALID_ARGUMENT, t.set_status, c.id, 7)
        self.assertCode(Code.INVALID_ARGUMENT, t.register, t.ca(), status=9)
        self.assertCode(Code.INVALID_ARGUMENT, t.get, "")
        self.assertCode(Code.INVALID_ARGUMENT, t.delete, "")
        # A malformed id is an id that does not exist (the contract).
        for bad in ["no/such/id", "x" * 65, "../" + c.id, "ca_0000000000000000"]:
            with self.subTest(id=bad):
                self.assertCode(Code.NOT_FOUND, t.get, bad)
                self.assertCode(Code.NOT_FOUND, t.set_status, bad, INACTIVE)
                self.assertCode(Code.NOT_FOUND, t.delete, bad)

    def test_registration_code(self):
        t = Tenant()
        hex64 = r"^[0-9a-f]{64}$"
        r1 = t.rpc("GetRegistrationCode", pb.GetRegistrationCodeRequest())
        self.assertRegex(r1.registration_code, hex64)
        self.assertLessEqual(abs(r1.created_at - time.time()), 60)
        for _ in range(3):
            r = t.rpc("GetRegistrationCode", pb.GetRegistrationCodeRequest())
            self.assertEqual(r.registration_code, r1.registration_code)
            self.assertEqual(r.created_at, r1.created_at)
        rot = t.rpc("RotateRegistrationCode",
                    pb.RotateRegistrationCodeRequest())
        self.assertRegex(rot.registration_code, hex64)
        self.assertNotEqual(rot.registration_code, r1.registration_code)
        self.assertEqual(t.code(), rot.registration_code)
        self.assertNotEqual(t.rotate(), rot.registration_code)
        # One per account.
        self.assertNotEqual(Tenant().code(), t.code())


# -------------------------------------------------------------- credentials

class CredentialsTest(Case):
    def test_no_or_bad_credentials(self):
        t = Tenant()
        req = pb.GetRegistrationCodeRequest()
        call = REG.stub.GetRegistrationCode
        self.assertCode(Code.UNAUTHENTICATED, call, req, timeout=10,
                        phrase="no credentials")
        self.assertCode(Code.UNAUTHENTICATED, REG.stub.ListAccounts,
                        pb.ListAccountsRequest(), timeout=10)
        for md in (fx.bearer("garbage"),
                   fx.bearer("iok_" + secrets.token_hex(32)),  # unknown key
                   fx.bearer(REG.operator_token + "x"),
                   [("authorization", "Basic " + t.key)],
                   [("authorization", t.key)],
                   [("authorization", "Bearer ")]):
            with self.subTest(md=md[0][1][:24]):
                self.assertCode(Code.UNAUTHENTICATED, call, req, metadata=md,
                                timeout=10)
        self.assertEqual(len(t.code()), 64)  # the real key still works

    def test_revoked_key_on_two_replicas(self):
        t = Tenant()
        other = REG.new_key(t.account_id)  # a second key of the account
        second = fx.Registry(etcd=REG.etcd, operator_token=REG.operator_token,
                             internal_token=REG.internal_token)
        try:
            victim = REG.new_key(t.account_id)
            md = fx.bearer(victim.api_key)
            req = pb.ListCaCertificatesRequest()
            REG.stub.ListCaCertificates(req, metadata=md, timeout=10)
            second.stub.ListCaCertificates(req, metadata=md, timeout=10)
            REG.stub.RevokeApiKey(pb.RevokeApiKeyRequest(key_id=victim.key_id),
                                  metadata=REG.op_md(), timeout=10)
            for stub in (REG.stub, second.stub):  # immediately, both replicas
                self.assertCode(Code.UNAUTHENTICATED, stub.ListCaCertificates,
                                req, metadata=md, timeout=10,
                                phrase="revoked")
            self.assertCode(Code.NOT_FOUND, REG.stub.RevokeApiKey,
                            pb.RevokeApiKeyRequest(key_id=victim.key_id),
                            metadata=REG.op_md(), timeout=10)
            # The account's other keys still work.
            second.stub.ListCaCertificates(req, metadata=fx.bearer(
                other.api_key), timeout=10)
            self.assertEqual(len(t.code()), 64)
        finally:
            second.close()

    def test_tenant_key_on_operator_rpcs(self):
        t = Tenant()
        for method, req in [
                ("CreateAccount", pb.CreateAccountRequest(name=uniq("x"))),
                ("ListAccounts", pb.ListAccountsRequest()),
                ("CreateApiKey", pb.CreateApiKeyRequest(
                    account_id=t.account_id)),
                ("RevokeApiKey", pb.RevokeApiKeyRequest(key_id="k_1"))]:
            with self.subTest(method=method):
                self.assertCode(Code.PERMISSION_DENIED, t.rpc, method, req,
                                phrase="operator")

    def test_resolve_issuer_is_internal(self):
        t = Tenant()
        ca = t.ca()
        c = t.register(ca)
        for md in (t.md, REG.op_md()):
            self.assertCode(Code.PERMISSION_DENIED, self.resolve,
                            ca.subject_der, md, phrase="internal")
        self.assertCode(Code.UNAUTHENTICATED, self.resolve, ca.subject_der,
                        [])
        self.assertCode(Code.UNAUTHENTICATED, self.resolve, ca.subject_der,
                        fx.bearer(REG.internal_token + "x"))
        self.assertEqual(len(self.resolves_to(ca.subject_der, [c.id])), 1)

    def test_operator_and_internal_tokens_on_tenant_rpcs(self):
        t = Tenant()
        c = t.register(t.ca())
        calls = [
            ("GetRegistrationCode", pb.GetRegistrationCodeRequest()),
            ("RotateRegistrationCode", pb.RotateRegistrationCodeRequest()),
            ("RegisterCaCertificate", pb.RegisterCaCertificateRequest(
                name="abcd", ca_certificate=b"x",
                verification_certificate=b"x")),
            ("GetCaCertificate", pb.GetCaCertificateRequest(id=c.id)),
            ("ListCaCertificates", pb.ListCaCertificatesRequest()),
            ("UpdateCaCertificateStatus", pb.UpdateCaCertificateStatusRequest(
                id=c.id, status=INACTIVE)),
            ("DeleteCaCertificate", pb.DeleteCaCertificateRequest(id=c.id))]
        for md in (REG.op_md(), REG.internal_md()):
            for method, req in calls:
                with self.subTest(method=method, token=md[0][1][7:10]):
                    self.assertCode(Code.PERMISSION_DENIED,
                                    getattr(REG.stub, method), req,
                                    metadata=md, timeout=10,
                                    phrase="tenant API key")
        self.assertEqual(t.get(c.id).status, ACTIVE)  # nothing changed

    def test_operator_rpcs(self):
        name = uniq("acct")
        acc = REG.new_account(name)
        self.assertRegex(acc.id, r"^[A-Za-z0-9_-]{1,64}$")
        self.assertEqual(acc.name, name)
        self.assertCode(Code.ALREADY_EXISTS, REG.new_account, name)
        for bad in ("", "has space", "x" * 65, "sl/ash"):
            with self.subTest(name=bad):
                self.assertCode(Code.INVALID_ARGUMENT, REG.stub.CreateAccount,
                                pb.CreateAccountRequest(name=bad),
                                metadata=REG.op_md(), timeout=10)
        seen, token = {}, ""
        while True:
            page = REG.stub.ListAccounts(pb.ListAccountsRequest(
                page_size=2, page_token=token), metadata=REG.op_md(),
                timeout=10)
            self.assertLessEqual(len(page.accounts), 2)
            for a in page.accounts:
                self.assertNotIn(a.id, seen)
                seen[a.id] = a
            token = page.next_page_token
            if not token:
                break
        self.assertEqual(seen[acc.id], acc)

    def test_secrets_not_stored_or_logged(self):
        """API keys live in etcd only as hashes; no secret is logged."""
        import base64
        import json
        import urllib.request
        acc, key = REG.new_tenant()
        Tenant().code()
        body = json.dumps({"key": base64.b64encode(b"\0").decode(),
                           "range_end": base64.b64encode(b"\0").decode()})
        with urllib.request.urlopen(urllib.request.Request(
                REG.etcd.endpoint + "/v3/kv/range", body.encode()),
                timeout=10) as r:
            kvs = json.loads(r.read().decode()).get("kvs", [])
        dump = b"".join(base64.b64decode(kv["key"]) +
                        base64.b64decode(kv.get("value", ""))
                        for kv in kvs)
        self.assertIn(acc.encode(), dump)  # the dump is real
        log = REG.svc.log_text()
        for secret in (key, key[4:], REG.operator_token, REG.internal_token):
            self.assertNotIn(secret.encode(), dump)
            self.assertNotIn(secret, log)

    def test_create_api_key_for_unknown_account(self):
        for acc in ("acc_0000000000000000", "no/such/account"):
            with self.subTest(account=acc):
                self.assertCode(Code.NOT_FOUND, REG.stub.CreateApiKey,
                                pb.CreateApiKeyRequest(account_id=acc),
                                metadata=REG.op_md(), timeout=10)
        self.assertCode(Code.INVALID_ARGUMENT, REG.stub.CreateApiKey,
                        pb.CreateApiKeyRequest(account_id=""),
                        metadata=REG.op_md(), timeout=10)
        self.assertCode(Code.NOT_FOUND, REG.stub.RevokeApiKey,
                        pb.RevokeApiKeyRequest(key_id="key_0000000000000000"),
                        metadata=REG.op_md(), timeout=10)
        self.assertCode(Code.INVALID_ARGUMENT, REG.stub.RevokeApiKey,
                        pb.RevokeApiKeyRequest(key_id=""),
                        metadata=REG.op_md(), timeout=10)


# ---------------------------------------------------------------- isolation

class IsolationTest(Case):
    def test_other_accounts_ca_is_not_found(self):
        a, b = Tenant(), Tenant()
        ca_a = a.register(a.ca())
        off_a = a.register(a.ca(), status=INACTIVE)  # deletable if reachable
        mine = b.register(b.ca())
        made_up = "ca_" + secrets.token_hex(8)
        for ca_id in (ca_a.id, off_a.id):
            for fn, args in ((b.get, ()), (b.set_status, (INACTIVE,)),
                             (b.set_status, (ACTIVE,)), (b.delete, ())):
                with self.subTest(ca=ca_id, rpc=fn.__name__):
                    msg = self.assertCode(Code.NOT_FOUND, fn, ca_id, *args)
                    # Exactly what a made-up id gets: no hint it exists.
                    other = self.assertCode(Code.NOT_FOUND, fn, made_up,
                                            *args)
                    self.assertEqual(msg.replace(ca_id, "ID"),
                                     other.replace(made_up, "ID"))
        self.assertEqual(b.ids(), [mine.id])
        self.assertEqual(a.ids(), sorted([ca_a.id, off_a.id]))
        self.assertEqual(a.get(ca_a.id).status, ACTIVE)
        self.assertEqual(a.get(off_a.id).status, INACTIVE)


# ------------------------------------------------------------ ResolveIssuer

class ResolveIssuerTest(Case):
    def test_resolve_issuer(self):
        a = Tenant()
        subject = "/O=%s/CN=Rotating CA" % uniq("Org")
        ca1, ca2 = a.ca(subject=subject), a.ca(subject=subject)
        c1 = a.register(ca1)
        c2 = a.register(ca2)
        lone = a.ca()
        c3 = a.register(lone, status=INACTIVE)
        both = self.resolves_to(ca1.subject_der, [c1.id, c2.id])
        for c, cert in ((c1, ca1), (c2, ca2)):
            r = both[c.id]
            self.assertEqual(r.account_id, a.account_id)
            self.assertEqual(r.pem.encode(), cert.pem)
            self.assertEqual(r.sha256_fingerprint, cert.sha256)
            self.assertEqual(r.not_after, c.not_after)
        # A device certificate's issuer DN finds its CA.
        dev = PKI.make_device(ca2, "dev1", "0A1B2C3D", key="ec")
        self.assertEqual(dev.issuer_der, ca2.subject_der)
        self.resolves_to(dev.issuer_der, [c1.id, c2.id])
        # INACTIVE CAs are not returned; active again, they are.
        self.resolves_to(lone.subject_der, [])
        a.set_status(c1.id, INACTIVE)
        self.resolves_to(ca1.subject_der, [c2.id])
        a.set_status(c3.id, ACTIVE)
        self.resolves_to(lone.subject_der, [c3.id])
        a.set_status(c1.id, ACTIVE)
        self.resolves_to(ca1.subject_der, [c1.id, c2.id])
        # Deleted: gone.
        a.set_status(c3.id, INACTIVE)
        a.delete(c3.id)
        self.resolves_to(lone.subject_der, [])

    def test_resolve_on_another_replica(self):
        """A change made through one replica reaches the other's answers."""
        second = fx.Registry(etcd=REG.etcd, operator_token=REG.operator_token,
                             internal_token=REG.internal_token)
        try:
            a = Tenant()
            ca = a.ca()
            c = a.register(ca)
            self.resolves_to(ca.subject_der, [c.id], reg=second)
            a.set_status(c.id, INACTIVE)
            self.resolves_to(ca.subject_der, [], reg=second)
            a.set_status(c.id, ACTIVE)
            self.resolves_to(ca.subject_der, [c.id], reg=second)
        finally:
            second.close()

    def test_unknown_and_bad_issuer(self):
        unknown = PKI.make_ca(uniq("never_registered"), key="ec")
        self.assertEqual(len(self.resolve(unknown.subject_der)
                             .ca_certificates), 0)
        self.assertEqual(len(self.resolve(b"\x30\x00").ca_certificates), 0)
        self.assertCode(Code.INVALID_ARGUMENT, self.resolve, b"")


# --------------------------------------------------------------- pagination

class PaginationTest(Case):
    def test_list_pages(self):
        t = Tenant()
        code = t.code()
        made = set()
        for _ in range(7):
            ca = t.ca()
            made.add(t.register(ca, t.ver(ca, code)).id)
        sizes, seen, token, tokens = [], [], "", []
        for _ in range(10):
            page = t.list(page_size=3, page_token=token)
            sizes.append(len(page.ca_certificates))
            seen += [c.id for c in page.ca_certificates]
            token = page.next_page_token
            tokens.append(token)
            if not token:
                break
        self.assertEqual(sizes, [3, 3, 1])
        self.assertTrue(tokens[0] and tokens[1] and tokens[0] != tokens[1])
        self.assertEqual(tokens[2], "")
        self.assertEqual(len(seen), len(set(seen)))  # no duplicates
        self.assertEqual(set(seen), made)
        whole = t.list()
        self.assertEqual(len(whole.ca_certificates), 7)
        self.assertEqual(whole.next_page_token, "")
        self.assertEqual(len(t.list(page_size=5000).ca_certificates), 7)
        self.assertCode(Code.INVALID_ARGUMENT, t.list, -1)
        self.assertCode(Code.INVALID_ARGUMENT, t.list, 3, "not a token!")


# ---------------------------------------------------------------- etcd down

class EtcdDownTest(Case):
    def test_etcd_down_and_back(self):
        reg = fx.Registry()
        try:
            t = Tenant(reg)
            code = t.code()
            reg.etcd.stop()
            t0 = time.monotonic()
            self.assertCode(Code.UNAVAILABLE, t.code)
            self.assertLess(time.monotonic() - t0, 6.5)
            self.assertCode(Code.UNAVAILABLE, t.list)
            deadline = time.monotonic() + 5.5
            while fx.health_status(reg.addr) != "NOT_SERVING":
                self.assertLess(time.monotonic(), deadline,
                                "health still SERVING with etcd down")
                time.sleep(0.1)
            self.assertEqual(fx.health_status(reg.addr, "iotca.v1.Registry"),
                             "NOT_SERVING")
            reg.etcd.restart()
            deadline = time.monotonic() + 15
            while True:
                try:
                    self.assertEqual(t.code(), code)  # data kept
                    break
                except grpc.RpcError as e:
                    self.assertEqual(e.code(), Code.UNAVAILABLE)
                    self.assertLess(time.monotonic(), deadline)
                    time.sleep(0.2)
            deadline = time.monotonic() + 5.5
            while fx.health_status(reg.addr) != "SERVING":
                self.assertLess(time.monotonic(), deadline)
                time.sleep(0.1)
            # Registrations work again and reach ResolveIssuer.
            ca = t.ca()
            c = t.register(ca)
            self.assertEqual(c.status, ACTIVE)
            self.assertEqual([r.ca_id for r in self.resolves_to(
                ca.subject_der, [c.id], reg=reg).values()], [c.id])
        finally:
            reg.close()


if __name__ == "__main__":
    fx.run_tests()
