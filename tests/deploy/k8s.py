"""Shared helpers of the deploy/ tests: find the tools, render the overlays,
walk the rendered objects, read the binaries' --help.

Every test here is offline: kubectl (Debian's kubernetes-client 1.20, with
its built-in kustomize) and the npm packages of tools/k8s-validate were put
in place by scripts/install-deps.sh.
"""
import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
OVERLAYS = {"dev": K8S / "overlays" / "dev", "prod": K8S / "overlays" / "prod"}
VALIDATOR = ROOT / "tools" / "k8s-validate" / "validate.js"
LOCAL_KUBECTL = ROOT / "tools" / "k8s-validate" / "kubernetes-client" / "usr" / "bin" / "kubectl"

# Which binary each image runs: the image's last path component without the
# tag, with or without the iotca- prefix (base: iotca-edge; overlays:
# .../iotca/edge:TAG). "etcd" is Debian's etcd (checked separately).
IMAGE_BINARIES = {
    "registry": "services/registry/iotca-registry",
    "association": "services/association/iotca-association",
    "edge": "services/mqtt-edge/iotca-edge",
    "cli": "tools/iotca",
}
ETCD_IMAGE = "etcd"


class Failure(Exception):
    pass


def fail(msg):
    raise Failure(msg)


def run_main(main):
    """Runs main(); prints FAIL and exits 1 on Failure."""
    try:
        main()
    except Failure as e:
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)


# ---------------------------------------------------------------------------
# Tools.
# ---------------------------------------------------------------------------

def dpkg_owner(path):
    r = subprocess.run(["dpkg-query", "-S", str(path)], capture_output=True, text=True)
    if r.returncode != 0:
        return None
    return r.stdout.split(":", 1)[0].strip()


def kubectl():
    """Debian 12's kubectl (package kubernetes-client): /usr/bin/kubectl, or
    where scripts/install-deps.sh unpacked it when another package owns
    /usr/bin/kubectl. Never some other kubectl on PATH: the manifests must
    render with this old kustomize."""
    if dpkg_owner("/usr/bin/kubectl") == "kubernetes-client":
        return "/usr/bin/kubectl"
    if LOCAL_KUBECTL.is_file():
        return str(LOCAL_KUBECTL)
    fail("kubectl from Debian's kubernetes-client not found (neither /usr/bin/kubectl owned by "
         f"kubernetes-client nor {LOCAL_KUBECTL}); run scripts/install-deps.sh")


def kubectl_version(kc):
    out = subprocess.run([kc, "version", "--client", "-o", "json"], capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out)["clientVersion"]["gitVersion"]


def render(path):
    """kubectl kustomize PATH -> the list of objects."""
    kc = kubectl()
    r = subprocess.run([kc, "kustomize", str(path)], capture_output=True, text=True)
    if r.returncode != 0:
        fail(f"kubectl kustomize {path} failed:\n{r.stderr.strip()}")
    objs = [o for o in yaml.safe_load_all(r.stdout) if o is not None]
    if not objs:
        fail(f"kubectl kustomize {path} rendered nothing")
    return objs


def render_overlays():
    return {name: render(path) for name, path in OVERLAYS.items()}


def build_dir():
    d = os.environ.get("IOTCA_BUILD_DIR")
    if not d:
        fail("IOTCA_BUILD_DIR is not set (ctest sets it)")
    return Path(d)


def binary(rel):
    p = build_dir() / rel
    if not os.access(p, os.X_OK):
        fail(f"{p} is not built")
    return p


# ---------------------------------------------------------------------------
# Rendered objects.
# ---------------------------------------------------------------------------

def name_of(o):
    return f"{o['kind']}/{o['metadata']['name']}"


def find(objs, kind, name=None):
    out = [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    return out


def the(objs, kind, name):
    found = find(objs, kind, name)
    if len(found) != 1:
        fail(f"expected one {kind}/{name}, found {len(found)}")
    return found[0]


WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")


def pod_template(o):
    spec = o["spec"]
    if o["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]


def containers(objs):
    """(workload, pod template, container) for every container."""
    for o in objs:
        if o["kind"] in WORKLOADS:
            t = pod_template(o)
            for c in t["spec"].get("initContainers", []) + t["spec"]["containers"]:
                yield o, t, c


def image_key(image):
    """iotca/edge:dev, registry.example.com/iotca/edge:1, iotca-edge -> edge."""
    last = image.split("/")[-1].split("@")[0].split(":")[0]
    return last[len("iotca-"):] if last.startswith("iotca-") else last


def config_maps(objs):
    return {o["metadata"]["name"]: o.get("data") or {} for o in objs if o["kind"] == "ConfigMap"}


UNSET = object()


def env_of(objs, c):
    """The container's environment as {NAME: value}, values resolved from
    the rendered ConfigMaps; UNSET for an optional reference to a missing
    key; None for values only known at run time (Secrets, fieldRef)."""
    cms = config_maps(objs)
    env = {}
    for src in c.get("envFrom", []):
        if "configMapRef" in src:
            ref = src["configMapRef"]
            if ref["name"] not in cms:
                fail(f"container {c['name']}: envFrom ConfigMap {ref['name']} is not rendered")
            for k, v in cms[ref["name"]].items():
                env[src.get("prefix", "") + k] = v
        else:
            fail(f"container {c['name']}: envFrom {list(src)}: the variable names cannot be checked")
    for e in c.get("env", []):
        name = e["name"]
        if "valueFrom" not in e:
            env[name] = e.get("value", "")
            continue
        vf = e["valueFrom"]
        if "configMapKeyRef" in vf:
            ref = vf["configMapKeyRef"]
            data = cms.get(ref["name"])
            if data is None or ref["key"] not in data:
                if not ref.get("optional"):
                    fail(f"container {c['name']}: {name} refers to ConfigMap {ref['name']} key "
                         f"{ref['key']}, which is not rendered and not optional")
                env[name] = UNSET
            else:
                env[name] = data[ref["key"]]
        else:
            env[name] = None
    return env


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in (selector or {}).items())


def pods_selected(objs, selector):
    return [(o, t) for o in objs if o["kind"] in WORKLOADS
            for t in [pod_template(o)] if selects(selector, t["metadata"].get("labels", {}))]


def resolve_port(c, port):
    """A probe/Service/NetworkPolicy port (number or name) -> containerPort
    number, or None when the container declares no such port."""
    for p in c.get("ports", []):
        if port == p["containerPort"] or port == p.get("name"):
            return p["containerPort"]
    return None


# ---------------------------------------------------------------------------
# The binaries' --help.
# ---------------------------------------------------------------------------

HELP_ENV = re.compile(r"\benv (IOTCA_[A-Z0-9_]+)(?: \(or (IOTCA_[A-Z0-9_]+_FILE) /[^)]*\))?(?:; default (\S+))?")


def binary_help(path):
    """{variable: default or None} for every variable --help lists."""
    r = subprocess.run([str(path), "--help"], capture_output=True, text=True, timeout=20)
    if r.returncode != 0:
        fail(f"{path} --help exited {r.returncode}: {r.stderr.strip()}")
    out = {}
    for m in HELP_ENV.finditer(r.stdout):
        out[m.group(1)] = m.group(3)
        if m.group(2):
            out[m.group(2)] = None
    if not out:
        fail(f"{path} --help lists no IOTCA_ variable; has its format changed?")
    return out


def hostport(addr):
    """'0.0.0.0:8883' / '[::]:1' -> (host, port)."""
    m = re.fullmatch(r"\[?([^\]]*)\]?:([0-9]+)", addr)
    if not m:
        fail(f"'{addr}' is not host:port")
    return m.group(1), int(m.group(2))


def deepcopy(x):
    return copy.deepcopy(x)
