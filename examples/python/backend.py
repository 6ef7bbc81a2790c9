#!/usr/bin/python3
"""A tenant's backend talking to iotca over gRPC, in Python (grpcio).

usage: backend.py COMMAND [ARGS]

  regcode                             the registration code (the CN of a
                                      validation certificate)
  cas                                 the account's CA certificates
  create-product NAME                 an X.509 / private-CA / MQTT product
  upload CA_ID FILE.csv               associate certificate SNs with devices
                                      (ProductKey,DeviceName,CertSN)
  associations CA_ID [PRODUCT_KEY]    the associations of a CA
  disable PRODUCT_KEY DEVICE_NAME     refuse the device at the edge
  enable PRODUCT_KEY DEVICE_NAME      accept it again

environment:
  IOTCA_API_KEY      the tenant API key (required)
  IOTCA_REGISTRY     registry address, default 127.0.0.1:50051
  IOTCA_ASSOCIATION  association address, default 127.0.0.1:50052
  IOTCA_PROTO_DIR    the proto/ folder, default ../../proto beside this file

Exit status: 0 done, 1 the server refused (or the file was refused),
2 the command line is wrong.

The gRPC stubs are generated from proto/ at start, into a temporary folder,
with python3-grpc-tools (grpc_tools.protoc). In your own project, generate
them once instead (see README.md) and import them.
"""
import argparse
import atexit
import os
import shutil
import sys
import tempfile
import time

import grpc

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_DIR = os.environ.get("IOTCA_PROTO_DIR",
                           os.path.join(HERE, "..", "..", "proto"))
PROTOS = ["iotca/v1/registry.proto", "iotca/v1/association.proto"]

TIMEOUT_S = 10         # the contract's advice: always set a deadline
UPLOAD_TIMEOUT_S = 30  # ... and 30 s for UploadAssociations
RETRIES = 4            # tries of an idempotent call that may be retried


def load_stubs():
    """Generates the Python stubs from PROTO_DIR and imports them."""
    from grpc_tools import protoc

    out = tempfile.mkdtemp(prefix="iotca-stubs-")
    atexit.register(shutil.rmtree, out, True)
    rc = protoc.main(["grpc_tools.protoc", "-I" + PROTO_DIR,
                      "--python_out=" + out, "--grpc_python_out=" + out]
                     + PROTOS)
    if rc != 0:
        sys.exit("error: protoc could not compile %s (rc %d); set "
                 "IOTCA_PROTO_DIR to the proto/ folder" % (PROTO_DIR, rc))
    sys.path.insert(0, out)
    global rpb, rpb_grpc, apb, apb_grpc
    from iotca.v1 import registry_pb2 as rpb
    from iotca.v1 import registry_pb2_grpc as rpb_grpc
    from iotca.v1 import association_pb2 as apb
    from iotca.v1 import association_pb2_grpc as apb_grpc


# ------------------------------------------------------------- errors

# What each status code means for a tenant, and what to do about it. The
# server's message (e.details()) says what exactly was wrong; branch on
# the code, never on that text.
HINTS = {
    grpc.StatusCode.UNAUTHENTICATED:
        "the API key was refused: check IOTCA_API_KEY (revoked keys are "
        "refused too)",
    grpc.StatusCode.PERMISSION_DENIED:
        "this credential may not do that: use a tenant API key, not the "
        "operator token",
    grpc.StatusCode.NOT_FOUND:
        "no such object in this account",
    grpc.StatusCode.INVALID_ARGUMENT:
        "the request is malformed",
    grpc.StatusCode.ALREADY_EXISTS:
        "it exists already",
    grpc.StatusCode.FAILED_PRECONDITION:
        "not possible in the object's current state",
    grpc.StatusCode.RESOURCE_EXHAUSTED:
        "a limit was reached",
    grpc.StatusCode.ABORTED:
        "a concurrent change got in the way: send the same request again",
    grpc.StatusCode.UNAVAILABLE:
        "the service cannot be reached, or its etcd has no quorum: is it "
        "running at that address? Retry later",
    grpc.StatusCode.DEADLINE_EXCEEDED:
        "no answer in time: the outcome of a write is unknown",
}

# Worth another try, with backoff, when the call is safe to repeat.
TRANSIENT = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.ABORTED,
             grpc.StatusCode.DEADLINE_EXCEEDED)


class Failed(Exception):
    """A call the server refused: the message is for the user."""


class Client:
    """Both services behind one API key."""

    def __init__(self, api_key, registry_addr, association_addr):
        self.metadata = [("authorization", "Bearer " + api_key)]
        self.addrs = {"Registry": registry_addr,
                      "Association": association_addr}
        self.registry = rpb_grpc.RegistryStub(
            grpc.insecure_channel(registry_addr))
        self.association = apb_grpc.AssociationStub(
            grpc.insecure_channel(association_addr))

    def call(self, stub, method, request, timeout=TIMEOUT_S,
             idempotent=True):
        """stub.method(request) with the key and a deadline; retries
        transient failures of idempotent calls. Raises Failed."""
        service = "Registry" if stub is self.registry else "Association"
        delay = 0.5
        for attempt in range(1, RETRIES + 1):
            try:
                return getattr(stub, method)(request, metadata=self.metadata,
                                             timeout=timeout)
            except grpc.RpcError as e:
                code = e.code()
                if idempotent and code in TRANSIENT and attempt < RETRIES:
                    time.sleep(delay)
                    delay *= 2
                    continue
                raise Failed("%s.%s at %s: %s: %s\n  (%s)" % (
                    service, method, self.addrs[service], code.name,
                    e.details() or "no message",
                    HINTS.get(code, "unexpected status")))


def short(enum, value, prefix):
    """CA_STATUS_ACTIVE -> ACTIVE; a value newer than our stubs: 7."""
    try:
        return enum.Name(value)[len(prefix):]
    except ValueError:
        return str(value)


# ----------------------------------------------------------- commands

def cmd_regcode(c, args):
    r = c.call(c.registry, "GetRegistrationCode",
               rpb.GetRegistrationCodeRequest())
    print("registration code: %s" % r.registration_code)
    print("use it as the CN of the validation certificate:\n"
          "  openssl req -new -key verificationCert.key -subj /CN=%s "
          "-out verificationCert.csr" % r.registration_code)


def cmd_cas(c, args):
    token, n = "", 0
    while True:
        r = c.call(c.registry, "ListCaCertificates",
                   rpb.ListCaCertificatesRequest(page_token=token))
        for ca in r.ca_certificates:
            n += 1
            print("%s  %-8s  %s  SN %s  %s" % (
                ca.id, short(rpb.CaStatus, ca.status, "CA_STATUS_"),
                ca.name, ca.serial_number, ca.subject))
        token = r.next_page_token
        if not token:
            break
    print("%d CA certificate%s" % (n, "" if n == 1 else "s"))


def cmd_create_product(c, args):
    # CreateProduct is not repeated on failure: a retry after an unknown
    # outcome could meet ALREADY_EXISTS for our own product.
    request = apb.CreateProductRequest(
        name=args.name, use_private_ca=True,
        auth_mode=apb.AUTH_MODE_X509_CERTIFICATE, net_type=apb.NET_TYPE_MQTT)
    p = c.call(c.association, "CreateProduct", request, idempotent=False)
    print("product created: ProductKey %s (name %s)"
          % (p.product_key, p.name))


def cmd_upload(c, args):
    with open(args.file, "rb") as f:
        data = f.read()
    # Re-sending the same file is safe (identical rows are left
    # unchanged), so transient failures are retried.
    r = c.call(c.association, "UploadAssociations",
               apb.UploadAssociationsRequest(
                   ca_id=args.ca_id, csv=data,
                   file_name=os.path.basename(args.file)),
               timeout=UPLOAD_TIMEOUT_S)
    if r.committed:
        print("uploaded %s: %d row%s accepted (%d unchanged) for product %s"
              % (args.file, r.accepted_rows,
                 "" if r.accepted_rows == 1 else "s", r.unchanged_rows,
                 r.product_key))
        return 0
    print("%s refused: %d problem%s, nothing was changed"
          % (args.file, r.total_errors, "" if r.total_errors == 1 else "s"))
    for e in r.errors:
        where = "line %d" % e.line
        if e.column_name:
            where += ", %s" % e.column_name
        value = ' (value "%s")' % e.value if e.value else ""
        print("  %s: %s: %s%s" % (
            where, short(apb.RowErrorCode, e.code, "ROW_ERROR_CODE_"),
            e.message, value))
    if r.total_errors > len(r.errors):
        print("  ... and %d more" % (r.total_errors - len(r.errors)))
    return 1


def cmd_associations(c, args):
    token, n = "", 0
    while True:
        r = c.call(c.association, "ListAssociations",
                   apb.ListAssociationsRequest(ca_id=args.ca_id,
                                               product_key=args.product_key,
                                               page_token=token))
        for a in r.associations:
            n += 1
            print("%s  %s/%s  %s" % (
                a.cert_sn, a.product_key, a.device_name,
                short(apb.DeviceStatus, a.device_status, "DEVICE_STATUS_")))
        token = r.next_page_token
        if not token:
            break
    print("%d association%s" % (n, "" if n == 1 else "s"))


def set_status(c, args, status):
    r = c.call(c.association, "UpdateDeviceStatus",
               apb.UpdateDeviceStatusRequest(product_key=args.product_key,
                                             device_name=args.device_name,
                                             status=status))
    print("device %s/%s is %s" % (
        r.product_key, r.device_name,
        short(apb.DeviceStatus, r.status, "DEVICE_STATUS_")))


def cmd_disable(c, args):
    set_status(c, args, apb.DEVICE_STATUS_DISABLED)


def cmd_enable(c, args):
    set_status(c, args, apb.DEVICE_STATUS_ENABLED)


# --------------------------------------------------------------- main

def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="backend.py", description=__doc__.split("\n")[0],
        epilog="environment: IOTCA_API_KEY (required), IOTCA_REGISTRY, "
               "IOTCA_ASSOCIATION, IOTCA_PROTO_DIR")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("regcode", help="the registration code").set_defaults(
        run=cmd_regcode)
    sub.add_parser("cas", help="list the CA certificates").set_defaults(
        run=cmd_cas)
    s = sub.add_parser("create-product", help="create a private-CA product")
    s.add_argument("name")
    s.set_defaults(run=cmd_create_product)
    s = sub.add_parser("upload", help="upload a CSV of associations")
    s.add_argument("ca_id")
    s.add_argument("file")
    s.set_defaults(run=cmd_upload)
    s = sub.add_parser("associations", help="list a CA's associations")
    s.add_argument("ca_id")
    s.add_argument("product_key", nargs="?", default="")
    s.set_defaults(run=cmd_associations)
    for name, run in (("disable", cmd_disable), ("enable", cmd_enable)):
        s = sub.add_parser(name, help="%s a device" % name)
        s.add_argument("product_key")
        s.add_argument("device_name")
        s.set_defaults(run=run)
    return p.parse_args(argv)


def main(argv):
    args = parse_args(argv)
    api_key = os.environ.get("IOTCA_API_KEY", "")
    if not api_key:
        print("error: set IOTCA_API_KEY to the tenant API key",
              file=sys.stderr)
        return 2
    load_stubs()
    c = Client(api_key,
               os.environ.get("IOTCA_REGISTRY", "127.0.0.1:50051"),
               os.environ.get("IOTCA_ASSOCIATION", "127.0.0.1:50052"))
    try:
        return args.run(c, args) or 0
    except Failed as e:
        print("error: %s" % e, file=sys.stderr)
        return 1
    except OSError as e:
        print("error: %s" % e, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
