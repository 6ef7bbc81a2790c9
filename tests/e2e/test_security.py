#!/usr/bin/python3
"""Security review of every RPC, driven by the contract itself: each RPC
of proto/iotca/v1/*.proto is called (through grpcio, generically from the
descriptors) with

  * no credential, a malformed header and an unknown token: UNAUTHENTICATED;
  * a revoked API key: UNAUTHENTICATED;
  * each credential kind its "Caller:" line does not allow: PERMISSION_DENIED
    (a tenant key on operator and internal RPCs, the operator token on
    tenant and internal RPCs);
  * oversize values in every string and bytes field of its request, with
    the right credential: refused (INVALID_ARGUMENT, NOT_FOUND or
    RESOURCE_EXHAUSTED), never OK, never INTERNAL/UNKNOWN, and the server
    stays up.
And another account's key, on every tenant RPC, sees another account's
objects as NOT_FOUND and changes none of them."""

import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import iotca_fixture as fx  # noqa: E402

import grpc  # noqa: E402  (after the fixture: it sets grpc's fork options)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
W = {}


def callers():
    """{"Service/Method": "tenant"|"operator"|"internal"} from the proto
    comments (the "Caller:" line above each rpc)."""
    out = {}
    for name, svc in (("registry.proto", "Registry"),
                      ("association.proto", "Association")):
        with open(os.path.join(ROOT, "proto/iotca/v1", name)) as f:
            text = f.read()
        caller = None
        for line in text.splitlines():
            m = re.search(r"//\s*Caller:\s*(\w+)", line)
            if m:
                caller = m.group(1).lower()
            m = re.match(r"\s*rpc\s+(\w+)\s*\(", line)
            if m:
                assert caller, "rpc %s has no Caller: line" % m.group(1)
                out["%s/%s" % (svc, m.group(1))] = caller
                caller = None
    return out


def setUpModule():
    s = W["suite"] = fx.Suite()
    W["a"] = s.tenant()
    W["b"] = s.tenant()
    acc = s.reg.new_account().id
    pb = s.reg.s.registry_pb2
    # a key made and revoked: it must be refused like an unknown one
    r = s.reg.stub.CreateApiKey(pb.CreateApiKeyRequest(account_id=acc),
                                metadata=s.reg.op_md(), timeout=10)
    s.reg.stub.RevokeApiKey(pb.RevokeApiKeyRequest(key_id=r.key_id),
                            metadata=s.reg.op_md(), timeout=10)
    W["revoked"] = r.api_key
    W["callers"] = callers()


def tearDownModule():
    W["suite"].close()


def methods():
    """(path, "Service/Method", request class, response class, channel)."""
    s = W["suite"]
    out = []
    for mod, svc, chan in ((s.reg.s.registry_pb2, "Registry",
                            s.reg.channel),
                           (s.assoc.s.association_pb2, "Association",
                            s.assoc.channel)):
        sd = mod.DESCRIPTOR.services_by_name[svc]
        for m in sd.methods:
            req = getattr(mod, m.input_type.name)
            resp = getattr(mod, m.output_type.name)
            out.append(("/%s/%s" % (sd.full_name, m.name),
                        "%s/%s" % (svc, m.name), req, resp, chan))
    return out


def call(path, req_cls, resp_cls, chan, req=None, md=None):
    fn = chan.unary_unary(path, request_serializer=req_cls.SerializeToString,
                          response_deserializer=resp_cls.FromString)
    try:
        fn(req if req is not None else req_cls(), metadata=md, timeout=10)
        return grpc.StatusCode.OK
    except grpc.RpcError as e:
        return e.code()


class Credentials(unittest.TestCase):

    def test_every_rpc_has_a_caller_line(self):
        names = {name for _, name, _, _, _ in methods()}
        self.assertEqual(names, set(W["callers"]))

    def test_no_or_bad_credential(self):
        """No credential, a malformed header or an unknown token:
        UNAUTHENTICATED. An unknown or revoked API key: UNAUTHENTICATED on
        tenant RPCs; the others answer anything shaped like an API key
        with PERMISSION_DENIED without looking it up (registry.proto,
        Authentication)."""
        cases = {"none": (None, None),
                 "malformed": ([("authorization", "Basic abc")], None),
                 "unknown token": (fx.bearer("not-a-credential"), None),
                 "unknown key": (fx.bearer("iok_" + "0" * 64), "key"),
                 "revoked key": (fx.bearer(W["revoked"]), "key")}
        for path, name, req, resp, chan in methods():
            tenant_rpc = W["callers"][name] == "tenant"
            for what, (md, shape) in cases.items():
                want = grpc.StatusCode.UNAUTHENTICATED
                if shape == "key" and not tenant_rpc:
                    want = grpc.StatusCode.PERMISSION_DENIED
                with self.subTest(rpc=name, credential=what):
                    self.assertEqual(call(path, req, resp, chan, md=md),
                                     want)

    def test_wrong_kind_of_credential(self):
        s = W["suite"]
        creds = {"tenant": fx.bearer(W["a"].key), "operator": s.reg.op_md(),
                 "internal": s.reg.internal_md()}
        for path, name, req, resp, chan in methods():
            allowed = W["callers"][name]
            for kind, md in creds.items():
                if kind == allowed:
                    continue
                if kind == "internal" and allowed != "internal":
                    continue  # the internal credential is not a user's
                with self.subTest(rpc=name, credential=kind):
                    self.assertEqual(call(path, req, resp, chan, md=md),
                                     grpc.StatusCode.PERMISSION_DENIED)


class Oversize(unittest.TestCase):

    REFUSED = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
               grpc.StatusCode.RESOURCE_EXHAUSTED,
               grpc.StatusCode.FAILED_PRECONDITION}

    def test_oversize_fields(self):
        s = W["suite"]
        creds = {"tenant": fx.bearer(W["a"].key), "operator": s.reg.op_md(),
                 "internal": s.reg.internal_md()}
        for path, name, req_cls, resp, chan in methods():
            md = creds[W["callers"][name]]
            for f in req_cls.DESCRIPTOR.fields:
                if f.label == f.LABEL_REPEATED or f.type not in (
                        f.TYPE_STRING, f.TYPE_BYTES):
                    continue
                for size in (70 << 10, 5 << 20):
                    req = req_cls()
                    big = "A" * size
                    setattr(req, f.name,
                            big if f.type == f.TYPE_STRING else big.encode())
                    with self.subTest(rpc=name, field=f.name, size=size):
                        code = call(path, req_cls, resp, chan, req, md)
                        self.assertIn(code, self.REFUSED)
        for svc in (s.reg.svc, s.assoc.svc):
            self.assertIsNone(svc.proc.poll(), "%r died" % svc)


class Isolation(unittest.TestCase):
    """Account B's key against account A's objects, on every tenant RPC
    (the set is taken from the proto, so a new RPC without a case here
    fails the test): what names one of A's objects answers NOT_FOUND, as
    if it did not exist; lists show only B's own; and afterwards all of
    A's objects are as they were."""

    def test_other_accounts_objects_are_not_found(self):
        s = W["suite"]
        a, b = W["a"], W["b"]
        rpb, apb = s.reg.s.registry_pb2, s.assoc.s.association_pb2
        reg, assoc = s.reg.stub, s.assoc.stub
        md = fx.bearer(b.key)
        dn, sn = "iso-device-a", "1A2B3C4D"
        r = s.assoc.upload(a.key, a.ca_id,
                           ("ProductKey,DeviceName,CertSN\n%s,%s,%s\n"
                            % (a.pk, dn, sn)).encode())
        self.assertTrue(r.committed, list(r.errors))
        a_code = s.reg.regcode(a.key)
        # A's CA certificate, with a verification certificate for B's
        # code that B could make: signed by B's own CA key, not A's.
        forged = s.pki.make_verification(a.ca_cert, s.reg.regcode(b.key),
                                         signer_key=b.ca_cert.key_path,
                                         key="ec")
        not_found = [
            ("Registry/GetCaCertificate", reg.GetCaCertificate,
             rpb.GetCaCertificateRequest(id=a.ca_id)),
            ("Registry/UpdateCaCertificateStatus",
             reg.UpdateCaCertificateStatus,
             rpb.UpdateCaCertificateStatusRequest(
                 id=a.ca_id, status=rpb.CA_STATUS_INACTIVE)),
            ("Registry/DeleteCaCertificate", reg.DeleteCaCertificate,
             rpb.DeleteCaCertificateRequest(id=a.ca_id)),
            ("Association/GetProduct", assoc.GetProduct,
             apb.GetProductRequest(product_key=a.pk)),
            ("Association/UploadAssociations", assoc.UploadAssociations,
             apb.UploadAssociationsRequest(
                 ca_id=a.ca_id,
                 csv=("ProductKey,DeviceName,CertSN\n%s,iso-b,99AA\n"
                      % a.pk).encode())),
            ("Association/ListAssociations", assoc.ListAssociations,
             apb.ListAssociationsRequest(ca_id=a.ca_id)),
            ("Association/GetAssociation", assoc.GetAssociation,
             apb.GetAssociationRequest(ca_id=a.ca_id, cert_sn=sn)),
            ("Association/DeleteAssociation", assoc.DeleteAssociation,
             apb.DeleteAssociationRequest(ca_id=a.ca_id, cert_sn=sn)),
            ("Association/UpdateDeviceStatus", assoc.UpdateDeviceStatus,
             apb.UpdateDeviceStatusRequest(
                 product_key=a.pk, device_name=dn,
                 status=apb.DEVICE_STATUS_DISABLED)),
        ]
        covered = set()
        for name, fn, req in not_found:
            covered.add(name)
            with self.subTest(rpc=name):
                with self.assertRaises(grpc.RpcError) as cm:
                    fn(req, metadata=md, timeout=10)
                self.assertEqual(cm.exception.code(),
                                 grpc.StatusCode.NOT_FOUND,
                                 cm.exception.details())

        # B's own CA with A's ProductKey in the file: the row is refused.
        with self.subTest(rpc="Association/UploadAssociations",
                          product="A's"):
            r = s.assoc.upload(b.key, b.ca_id,
                               ("ProductKey,DeviceName,CertSN\n"
                                "%s,iso-b,99AB\n" % a.pk).encode())
            self.assertFalse(r.committed)
            self.assertEqual(r.accepted_rows, 0)
            self.assertEqual([(e.line, e.code) for e in r.errors],
                             [(2, apb.ROW_ERROR_CODE_PRODUCT_NOT_FOUND)])

        # Lists show B's own objects only.
        covered.add("Registry/ListCaCertificates")
        got = reg.ListCaCertificates(rpb.ListCaCertificatesRequest(),
                                     metadata=md, timeout=10)
        self.assertEqual([c.id for c in got.ca_certificates], [b.ca_id])
        covered.add("Association/ListProducts")
        got = assoc.ListProducts(apb.ListProductsRequest(), metadata=md,
                                 timeout=10)
        self.assertEqual([p.product_key for p in got.products], [b.pk])

        # Calls that name no object act on B's own account only.
        covered.add("Registry/GetRegistrationCode")
        self.assertNotEqual(s.reg.regcode(b.key), a_code)
        covered.add("Registry/RotateRegistrationCode")
        reg.RotateRegistrationCode(rpb.RotateRegistrationCodeRequest(),
                                   metadata=md, timeout=10)
        covered.add("Registry/RegisterCaCertificate")
        with self.assertRaises(grpc.RpcError) as cm:
            s.reg.register(b.key, "stolen", a.ca_cert, forged)
        self.assertEqual(cm.exception.code(),  # no proof of possession
                         grpc.StatusCode.FAILED_PRECONDITION,
                         cm.exception.details())
        covered.add("Association/CreateProduct")
        mine = s.assoc.new_product(b.key)
        with self.assertRaises(grpc.RpcError) as cm:
            assoc.GetProduct(apb.GetProductRequest(
                product_key=mine.product_key), metadata=a.md, timeout=10)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)
        covered.add("Association/GetCsvTemplate")  # the same for everyone

        tenant_rpcs = {n for n, c in W["callers"].items() if c == "tenant"}
        self.assertEqual(covered, tenant_rpcs,
                         "tenant RPCs without an isolation case")

        # A's objects are as they were.
        got = reg.GetCaCertificate(rpb.GetCaCertificateRequest(id=a.ca_id),
                                   metadata=a.md, timeout=10)
        self.assertEqual((got.id, got.status),
                         (a.ca_id, rpb.CA_STATUS_ACTIVE))
        self.assertEqual(s.reg.regcode(a.key), a_code)
        got = assoc.GetProduct(apb.GetProductRequest(product_key=a.pk),
                               metadata=a.md, timeout=10)
        self.assertEqual(got.product_key, a.pk)
        got = s.assoc.resolve(a.ca_id, sn, a.account_id)
        self.assertEqual((got.product_key, got.device_name,
                          got.device_status),
                         (a.pk, dn, apb.DEVICE_STATUS_ENABLED))


if __name__ == "__main__":
    fx.run_tests()
