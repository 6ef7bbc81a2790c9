#!/usr/bin/env python3
"""deploy_env_ports: the manifests configure the binaries they run.

For every container of both rendered overlays:
- every environment variable it sets is one its binary reads: listed by
  the binary's own --help (the test runs the built binaries); for etcd,
  every --flag is in `etcd --help` and every helper variable is used;
- every listener (the *_LISTEN variables, as set or by default) binds all
  interfaces and is declared as a containerPort, and every containerPort
  is a listener;
- probes hit a declared listener of the right kind: grpc probes the gRPC
  port of a plaintext listener (kubelet's grpc probe has no TLS), httpGet a
  probe listener on a path the probe server answers (lib/probe/probe.c);
- Services and NetworkPolicies select pods and name ports they declare;
  $(VAR) references name variables defined before them.

Then it shows the checker fails: a fixture overlay on disk
(tests/deploy/fixtures/unknown-env, setting IOTCA_NO_SUCH_VAR) and
mutations of the rendered prod objects must each be refused."""
import re
import subprocess
from pathlib import Path

from k8s import (ETCD_IMAGE, IMAGE_BINARIES, ROOT, UNSET, binary, binary_help, containers, deepcopy,
                 env_of, fail, find, hostport, image_key, name_of, pods_selected, render,
                 render_overlays, resolve_port, run_main, the)

FIXTURES = Path(__file__).resolve().parent / "fixtures"
ANY_HOST = ("0.0.0.0", "::", "")
ETCD_MIN = {"--max-txn-ops": 24576, "--max-request-bytes": 16777216}  # docs/etcd.md


def probe_paths():
    """The paths the edge's probe server answers, from its source."""
    src = (ROOT / "lib" / "probe" / "probe.c").read_text()
    paths = set(re.findall(r'strcmp\(req->path, "(/[a-z]+)"\)', src))
    if not paths:
        fail("found no probe paths in lib/probe/probe.c; has it changed?")
    return paths


def etcd_flags():
    r = subprocess.run(["etcd", "--help"], capture_output=True, text=True, timeout=20)
    flags = set(re.findall(r"^\s+(--[a-z0-9-]+)", r.stdout + r.stderr, re.M))
    if "--max-txn-ops" not in flags:
        fail("could not read the flags of `etcd --help`")
    return flags


class Checker:
    def __init__(self):
        self.helps = {}  # image key -> binary_help(), run once, when used
        self.etcd_flags = etcd_flags()
        self.probe_paths = probe_paths()

    def check(self, objs):
        """Every inconsistency, as a list of messages."""
        self.objs, self.errors = objs, []
        for w, t, c in containers(objs):
            where = f"{name_of(w)} container {c['name']}"
            self.check_refs(where, c)
            key = image_key(c["image"])
            if key == ETCD_IMAGE:
                self.check_etcd(where, c)
            elif key in IMAGE_BINARIES:
                if key not in self.helps:
                    self.helps[key] = binary_help(binary(IMAGE_BINARIES[key]))
                self.check_iotca(where, key, c)
            else:
                self.err(f"{where}: image {c['image']} runs no binary this test knows")
        for s in find(objs, "Service"):
            self.check_selected_ports(name_of(s), s["spec"].get("selector"),
                                      [p.get("targetPort", p["port"]) for p in s["spec"]["ports"]])
        for np in find(objs, "NetworkPolicy"):
            self.check_network_policy(np)
        return self.errors

    def err(self, msg):
        self.errors.append(msg)

    # -- iotca binaries ------------------------------------------------------
    def check_iotca(self, where, key, c):
        helps = self.helps[key]
        binname = IMAGE_BINARIES[key].split("/")[-1]
        env = env_of(self.objs, c)
        for name in env:
            if name not in helps:
                self.err(f"{where}: {name} is not a variable {binname} reads (its --help does not list it)")
        if c.get("command") or c.get("args"):
            self.err(f"{where}: command/args set; configure {binname} by environment")
        listeners = {}  # port -> variable
        for var, default in helps.items():
            if not var.endswith("_LISTEN"):
                continue
            value = env.get(var, UNSET)
            addr = default if value is UNSET else value
            if addr is None:
                continue
            host, port = hostport(addr)
            if host not in ANY_HOST:
                self.err(f"{where}: {var}={addr} listens on {host} only, which other pods and "
                         f"kubelet cannot reach; use 0.0.0.0:{port}")
            listeners[port] = var
        declared = {p["containerPort"] for p in c.get("ports", [])}
        for port in sorted(declared - set(listeners)):
            self.err(f"{where}: containerPort {port} is not a port {binname} listens on "
                     f"({', '.join(f'{v}={p}' for p, v in listeners.items())})")
        for port in sorted(set(listeners) - declared):
            self.err(f"{where}: {listeners[port]} listens on {port}, but no containerPort declares it")
        tls = env.get("IOTCA_GRPC_TLS_CERT", UNSET) is not UNSET
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            if kind in c:
                self.check_probe(f"{where} {kind}", c, c[kind], listeners, tls)

    def check_probe(self, where, c, probe, listeners, tls):
        if "grpc" in probe:
            port = probe["grpc"]["port"]
            if listeners.get(port) != "IOTCA_LISTEN":
                self.err(f"{where}: grpc probe on port {port}, which is not the gRPC listener (IOTCA_LISTEN)")
            if tls:
                self.err(f"{where}: grpc probe on a TLS listener (IOTCA_GRPC_TLS_CERT is set); "
                         "kubelet's grpc probe speaks plaintext only")
        elif "httpGet" in probe:
            port = resolve_port(c, probe["httpGet"]["port"])
            if port is None or not listeners.get(port, "").endswith("PROBE_LISTEN"):
                self.err(f"{where}: httpGet on port {probe['httpGet']['port']}, which is not an HTTP probe listener")
            if probe["httpGet"].get("path") not in self.probe_paths:
                self.err(f"{where}: path {probe['httpGet'].get('path')} is not one the probe server "
                         f"answers ({', '.join(sorted(self.probe_paths))})")
        elif "tcpSocket" in probe:
            port = resolve_port(c, probe["tcpSocket"]["port"])
            if port not in listeners:
                self.err(f"{where}: tcpSocket on port {probe['tcpSocket']['port']}, which is not a listener")

    # -- etcd ----------------------------------------------------------------
    def check_etcd(self, where, c):
        args = c.get("command", [])[1:] + c.get("args", [])
        flags = {}
        for a in args:
            m = re.fullmatch(r"(--[a-z0-9-]+)(?:=(.*))?", a)
            if not m:
                self.err(f"{where}: argument '{a}' is not --flag=value")
                continue
            if m.group(1) not in self.etcd_flags:
                self.err(f"{where}: {m.group(1)} is not a flag of etcd (`etcd --help`)")
            flags[m.group(1)] = m.group(2)
        for flag, least in ETCD_MIN.items():
            value = flags.get(flag)
            if value is None or not value.isdigit() or int(value) < least:
                self.err(f"{where}: {flag}={value}, the association service needs at least {least} (docs/etcd.md)")
        used = " ".join(args + [e.get("value", "") for e in c.get("env", [])])
        for e in c.get("env", []):
            n = e["name"]
            if n.startswith("ETCD_"):
                if "--" + n[5:].lower().replace("_", "-") not in self.etcd_flags:
                    self.err(f"{where}: {n} is not an etcd setting")
            elif f"$({n})" not in used:
                self.err(f"{where}: {n} is set but neither etcd nor the arguments use it")
        declared = {p["containerPort"] for p in c.get("ports", [])}
        for flag in ("--listen-client-urls", "--listen-peer-urls"):
            for url in (flags.get(flag) or "").split(","):
                m = re.fullmatch(r"https?://\[?([^\]/]*)\]?:([0-9]+)", url)
                if not m:
                    self.err(f"{where}: {flag} '{url}' is not scheme://host:port")
                    continue
                if m.group(1) not in ANY_HOST:
                    self.err(f"{where}: {flag} {url} does not listen on all interfaces")
                if int(m.group(2)) not in declared:
                    self.err(f"{where}: {flag} port {m.group(2)} is not a containerPort")
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            for action in ("httpGet", "tcpSocket"):
                if action in c.get(kind, {}) and resolve_port(c, c[kind][action]["port"]) is None:
                    self.err(f"{where} {kind}: port {c[kind][action]['port']} is not declared")

    # -- references between objects ------------------------------------------
    def check_refs(self, where, c):
        defined = []
        for e in c.get("env", []):
            for ref in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", e.get("value", "")):
                if ref not in defined:
                    self.err(f"{where}: {e['name']} uses $({ref}), which is not defined before it")
            defined.append(e["name"])
        for a in c.get("command", []) + c.get("args", []):
            for ref in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", a):
                if ref not in defined:
                    self.err(f"{where}: argument '{a}' uses $({ref}), which is not defined")

    def check_selected_ports(self, what, selector, ports):
        pods = pods_selected(self.objs, selector)
        if not pods:
            self.err(f"{what}: selects no pods")
        for w, t in pods:
            for port in ports:
                if not any(resolve_port(c, port) for c in t["spec"]["containers"]):
                    self.err(f"{what}: port {port} is not declared by {name_of(w)}")

    def check_network_policy(self, np):
        what = name_of(np)
        sel = np["spec"]["podSelector"].get("matchLabels")
        for rule in np["spec"].get("ingress", []):
            self.check_selected_ports(what, sel, [p["port"] for p in rule.get("ports", []) if "port" in p])
            for peer in rule.get("from", []):
                labels = (peer.get("podSelector") or {}).get("matchLabels")
                # iotca.io/api-client: pods the operator adds, none rendered here.
                if labels and "iotca.io/api-client" not in labels and not pods_selected(self.objs, labels):
                    self.err(f"{what}: allows pods {labels}, which nothing here runs")


# ---------------------------------------------------------------------------
# The checker must fail where it should.
# ---------------------------------------------------------------------------

def container(objs, kind, name):
    return the(objs, kind, name)["spec"]["template"]["spec"]["containers"][0]


def mutations():
    """(description, expected text in a message, function changing objs)."""
    def add_env(kind, name, var, value):
        return lambda o: container(o, kind, name).setdefault("env", []).append({"name": var, "value": value})

    def set_env(kind, name, var, value):
        def f(o):
            for e in container(o, kind, name)["env"]:
                if e["name"] == var:
                    e.clear()
                    e.update(name=var, value=value)
                    return
            fail(f"mutation: {var} not found")
        return f

    def set_port(kind, name, value):
        return lambda o: container(o, kind, name)["ports"][0].update(containerPort=value)

    def grpc_readiness(o):
        container(o, "Deployment", "iotca-registry")["readinessProbe"] = {"grpc": {"port": 50051}}

    def etcd_arg(o):
        container(o, "StatefulSet", "iotca-etcd")["args"].append("--max-txn-opz=1")

    def svc_target(o):
        the(o, "Service", "iotca-association")["spec"]["ports"][0]["targetPort"] = "grpcx"

    return [
        ("an unknown variable", "IOTCA_NO_SUCH_VAR is not a variable iotca-edge reads",
         add_env("Deployment", "iotca-edge", "IOTCA_NO_SUCH_VAR", "1")),
        ("another binary's variable", "IOTCA_EDGE_UPSTREAM is not a variable iotca-registry reads",
         add_env("Deployment", "iotca-registry", "IOTCA_EDGE_UPSTREAM", "tcp://x:1")),
        ("a containerPort nothing listens on", "containerPort 50053 is not a port",
         set_port("Deployment", "iotca-registry", 50053)),
        ("a loopback listener", "listens on 127.0.0.1 only",
         set_env("Deployment", "iotca-association", "IOTCA_LISTEN", "127.0.0.1:50052")),
        ("a moved probe listener", "containerPort 9883 is not a port",
         set_env("Deployment", "iotca-edge", "IOTCA_EDGE_PROBE_LISTEN", "0.0.0.0:9884")),
        ("a grpc probe on a TLS listener", "speaks plaintext only", grpc_readiness),
        ("an unknown etcd flag", "--max-txn-opz is not a flag of etcd", etcd_arg),
        ("a Service port no pod declares", "port grpcx is not declared", svc_target),
    ]


def main():
    checker = Checker()
    rendered = render_overlays()
    for name, objs in rendered.items():
        errors = checker.check(objs)
        if errors:
            fail(f"{name}:\n  " + "\n  ".join(errors))
        n = sum(1 for _ in containers(objs))
        print(f"{name}: {n} containers consistent with their binaries")

    fixture = FIXTURES / "unknown-env"
    errors = checker.check(render(fixture))
    if not any("IOTCA_NO_SUCH_VAR" in e for e in errors):
        fail(f"fixture {fixture} (IOTCA_NO_SUCH_VAR) passed the check: {errors}")
    print(f"fixture {fixture.name}: refused: {errors[0]}")

    for what, expect, mutate in mutations():
        objs = deepcopy(rendered["prod"])
        mutate(objs)
        errors = checker.check(objs)
        if not any(expect in e for e in errors):
            fail(f"{what}: the checker did not say '{expect}'; it said {errors}")
        print(f"refused {what}: ok")
    print("ok")


run_main(main)
