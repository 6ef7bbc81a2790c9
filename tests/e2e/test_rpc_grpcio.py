#!/usr/bin/python3
"""lib/rpc from a client nobody here wrote: Python grpcio stubs generated
from proto/ (and the test service in tests/proto/) at test time, calling the
C server tests/integration/rpc_test_server over loopback.

usage: test_rpc_grpcio.py SERVER_BINARY REPO_ROOT
"""
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

# See iotca_fixture.py: no grpcio fork handlers around our own forks.
os.environ["GRPC_ENABLE_FORK_SUPPORT"] = "false"

SERVER = sys.argv[1] if len(sys.argv) > 1 else None
ROOT = sys.argv[2] if len(sys.argv) > 2 else None


def generate_stubs(out):
    protos = ["grpc/health/v1/health.proto", "iotca/test/echo.proto"]
    protos += ["iotca/v1/" + f for f in sorted(
        os.listdir(os.path.join(ROOT, "proto/iotca/v1"))) if f.endswith(".proto")]
    subprocess.run(
        ["protoc", "-I", os.path.join(ROOT, "proto"),
         "-I", os.path.join(ROOT, "tests/proto"),
         "--python_out", out, "--grpc_out", out,
         "--plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin"] + protos,
        check=True)
    sys.path.insert(0, out)
    # The generated grpc/health/v1 lives inside the grpcio package's name:
    # let the installed package find it there too.
    import grpc
    grpc.__path__.append(os.path.join(out, "grpc"))


class Server:
    """The C server as a child process; stops it at the end."""

    def __init__(self, env=None):
        e = dict(os.environ, IOTCA_LISTEN="127.0.0.1:0",
                 IOTCA_TEST_MAX_REQUEST="65536", IOTCA_LOG_LEVEL="warn")
        e.update(env or {})
        # setpriv: the server dies with this test (PR_SET_PDEATHSIG).
        self.proc = subprocess.Popen(
            ["setpriv", "--pdeathsig", "KILL", "--", SERVER], env=e,
            stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("PORT="):
            self.proc.kill()
            raise RuntimeError("server did not start: %r" % line)
        self.port = int(line.strip().split("=")[1])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        return self.proc.returncode


class RpcTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server()
        cls.channel = grpc.insecure_channel("127.0.0.1:%d" % cls.server.port)
        cls.health = health_pb2_grpc.HealthStub(cls.channel)
        cls.echo = echo_pb2_grpc.EchoStub(cls.channel)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        assert cls.server.stop() == 0

    def test_health_serving(self):
        r = self.health.Check(health_pb2.HealthCheckRequest(service=""),
                              timeout=5)
        self.assertEqual(r.status, health_pb2.HealthCheckResponse.SERVING)
        r = self.health.Check(
            health_pb2.HealthCheckRequest(service="iotca.test.Echo"),
            timeout=5)
        self.assertEqual(r.status, health_pb2.HealthCheckResponse.SERVING)

    def test_health_unknown_service(self):
        with self.assertRaises(grpc.RpcError) as cm:
            self.health.Check(health_pb2.HealthCheckRequest(service="nope"),
                              timeout=5)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)

    def test_unknown_method(self):
        call = self.channel.unary_unary("/iotca.test.Echo/NoSuchMethod")
        with self.assertRaises(grpc.RpcError) as cm:
            call(b"", timeout=5)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNIMPLEMENTED)
        # A method of the real contract this server does not serve.
        stub = registry_pb2_grpc.RegistryStub(self.channel)
        with self.assertRaises(grpc.RpcError) as cm:
            stub.ListAccounts(registry_pb2.ListAccountsRequest(), timeout=5)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNIMPLEMENTED)

    def test_deadline_exceeded_and_cancelled_on_server(self):
        before = self.echo.Stats(echo_pb2.StatsRequest(), timeout=5)
        t0 = time.monotonic()
        with self.assertRaises(grpc.RpcError) as cm:
            self.echo.Sleep(echo_pb2.SleepRequest(sleep_ms=5000), timeout=0.3)
        self.assertEqual(cm.exception.code(),
                         grpc.StatusCode.DEADLINE_EXCEEDED)
        self.assertLess(time.monotonic() - t0, 2.0)
        for _ in range(100):
            after = self.echo.Stats(echo_pb2.StatsRequest(), timeout=5)
            if after.sleeps_cancelled > before.sleeps_cancelled:
                break
            time.sleep(0.02)
        self.assertEqual(after.calls_cancelled, before.calls_cancelled + 1)
        self.assertEqual(after.sleeps_cancelled, before.sleeps_cancelled + 1)

    def test_bearer_metadata(self):
        r = self.echo.Echo(echo_pb2.EchoRequest(text="hi"), timeout=5,
                           metadata=[("authorization", "Bearer abc.def")])
        self.assertEqual(r.text, "hi")
        self.assertEqual(r.bearer, "abc.def")

    def test_error_status(self):
        with self.assertRaises(grpc.RpcError) as cm:
            self.echo.Echo(echo_pb2.EchoRequest(text="x", fail_with=5),
                           timeout=5)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)
        self.assertIn("failing as asked", cm.exception.details())

    def test_request_over_cap(self):
        with self.assertRaises(grpc.RpcError) as cm:
            self.echo.Echo(echo_pb2.EchoRequest(payload=b"x" * 200000),
                           timeout=5)
        self.assertEqual(cm.exception.code(),
                         grpc.StatusCode.RESOURCE_EXHAUSTED)
        r = self.echo.Echo(echo_pb2.EchoRequest(text="after"), timeout=5)
        self.assertEqual(r.text, "after")

    def test_health_watch(self):
        name = "iotca.test.Watched"
        self.echo.SetHealth(echo_pb2.SetHealthRequest(service=name,
                                                      serving=True), timeout=5)
        stream = self.health.Watch(health_pb2.HealthCheckRequest(service=name),
                                   timeout=10)
        first = next(stream)
        self.assertEqual(first.status, health_pb2.HealthCheckResponse.SERVING)
        self.echo.SetHealth(echo_pb2.SetHealthRequest(service=name,
                                                      serving=False),
                            timeout=5)
        second = next(stream)
        self.assertEqual(second.status,
                         health_pb2.HealthCheckResponse.NOT_SERVING)
        stream.cancel()
        unknown = self.health.Watch(
            health_pb2.HealthCheckRequest(service="never.set"), timeout=10)
        self.assertEqual(next(unknown).status,
                         health_pb2.HealthCheckResponse.SERVICE_UNKNOWN)
        unknown.cancel()

    def test_concurrent_calls(self):
        errors = []

        def worker(n):
            try:
                for i in range(50):
                    r = self.echo.Echo(echo_pb2.EchoRequest(text="%d-%d" % (n, i)),
                                       timeout=5)
                    if r.text != "%d-%d" % (n, i):
                        errors.append(r.text)
            except grpc.RpcError as e:
                errors.append(str(e))
        threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])


class ShutdownTest(unittest.TestCase):
    def test_sigterm_finishes_in_flight_call_and_exits_0(self):
        server = Server()
        channel = grpc.insecure_channel("127.0.0.1:%d" % server.port)
        echo = echo_pb2_grpc.EchoStub(channel)
        future = echo.Sleep.future(echo_pb2.SleepRequest(sleep_ms=800),
                                   timeout=10)
        time.sleep(0.3)
        server.proc.send_signal(signal.SIGTERM)
        r = future.result()
        self.assertGreaterEqual(r.slept_ms, 800)
        self.assertFalse(r.saw_cancel)
        self.assertEqual(server.proc.wait(10), 0)
        self.assertEqual(server.stop(), 0)
        channel.close()


class MutualTlsTest(unittest.TestCase):
    def test_mtls_peer_identity(self):
        certs = tempfile.mkdtemp(prefix="iotca-grpcio-certs-")
        subprocess.run([os.path.join(ROOT, "tests/support/make-grpc-certs.sh"),
                        certs], check=True)
        p = lambda n: os.path.join(certs, n)
        server = Server({"IOTCA_GRPC_TLS_CERT": p("server.pem"),
                         "IOTCA_GRPC_TLS_KEY": p("server.key"),
                         "IOTCA_GRPC_TLS_CA": p("ca.pem")})
        try:
            def read(n):
                with open(p(n), "rb") as f:
                    return f.read()
            creds = grpc.ssl_channel_credentials(read("ca.pem"),
                                                 read("client.key"),
                                                 read("client.pem"))
            with grpc.secure_channel("localhost:%d" % server.port,
                                     creds) as ch:
                r = echo_pb2_grpc.EchoStub(ch).Echo(
                    echo_pb2.EchoRequest(text="m"), timeout=5)
                self.assertTrue(r.peer_authenticated)
                self.assertEqual(r.peer_cn, "iotca-edge")
            plain = grpc.ssl_channel_credentials(read("ca.pem"))
            with grpc.secure_channel("localhost:%d" % server.port,
                                     plain) as ch:
                r = echo_pb2_grpc.EchoStub(ch).Echo(
                    echo_pb2.EchoRequest(text="t"), timeout=5)
                self.assertFalse(r.peer_authenticated)
        finally:
            self.assertEqual(server.stop(), 0)
            subprocess.run(["rm", "-rf", certs], check=True)


if __name__ == "__main__":
    if not SERVER or not ROOT:
        sys.exit(__doc__)
    stubs = tempfile.mkdtemp(prefix="iotca-grpcio-stubs-")
    generate_stubs(stubs)
    import grpc  # noqa: E402
    from grpc.health.v1 import health_pb2, health_pb2_grpc  # noqa: E402
    from iotca.test import echo_pb2, echo_pb2_grpc  # noqa: E402,F811
    from iotca.v1 import registry_pb2, registry_pb2_grpc  # noqa: E402
    result = unittest.main(argv=[sys.argv[0], "-v"], exit=False).result
    subprocess.run(["rm", "-rf", stubs])
    run = result.testsRun
    bad = len(result.failures) + len(result.errors)
    print("%d passed, %d failed" % (run - bad, bad))
    sys.exit(0 if result.wasSuccessful() else 1)
