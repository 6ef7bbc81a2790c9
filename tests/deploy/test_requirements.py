#!/usr/bin/env python3
"""deploy_requirements: the rendered overlays are what the deployment
promises (issue 6, DESIGN "Running it", docs/operations.md).

prod: 3-member etcd with volumes, in step with IOTCA_ETCD_ENDPOINTS; the
registry and the association service with 2+ replicas, anti-affinity and a
PodDisruptionBudget; the edge behind a LoadBalancer on 8883 with a
HorizontalPodAutoscaler that owns its replica count; mTLS (and no token)
between the edge and the services; NetworkPolicies that let only the edge
(and the association service, and labelled API clients) reach the
services, and only the services reach etcd.
dev: one replica each, one etcd member, plaintext gRPC, the internal token.
Both: operator token from a Secret; every container non-root with a
read-only root filesystem, no privilege escalation, no capabilities,
requests and limits, liveness and readiness probes."""
import contextlib
import os
import re

import yaml

from k8s import (K8S, Failure, containers, deepcopy, env_of, fail, find, name_of, render_overlays,
                 resolve_port, run_main, selects, the)

SERVICES = ("iotca-registry", "iotca-association")
ALL = SERVICES + ("iotca-edge",)


def container(objs, kind, name):
    return the(objs, kind, name)["spec"]["template"]["spec"]["containers"][0]


def labels(objs, kind, name):
    return the(objs, kind, name)["spec"]["template"]["metadata"]["labels"]


# ---------------------------------------------------------------------------
# Both overlays.
# ---------------------------------------------------------------------------

def check_hardening(overlay, objs):
    check_pods(overlay, objs)
    for name in SERVICES:
        env = env_of(objs, container(objs, "Deployment", name))
        path = env.get("IOTCA_OPERATOR_TOKEN_FILE")
        if "IOTCA_OPERATOR_TOKEN" in env or not path:
            fail(f"{overlay}: {name} must read the operator token from a Secret file (IOTCA_OPERATOR_TOKEN_FILE)")
    ns = find(objs, "Namespace")
    if len(ns) != 1 or ns[0]["metadata"].get("labels", {}).get("pod-security.kubernetes.io/enforce") != "restricted":
        fail(f"{overlay}: the namespace does not enforce the 'restricted' Pod Security Standard")


def check_pods(overlay, objs):
    """Every container: non-root, read-only, no privileges, resources,
    probes; pods without service account tokens and service links."""
    for w, t, c in containers(objs):
        where = f"{overlay}: {name_of(w)} container {c['name']}"
        pod = t["spec"].get("securityContext", {})
        sc = c.get("securityContext", {})
        if not (sc.get("runAsNonRoot") or pod.get("runAsNonRoot")):
            fail(f"{where}: runAsNonRoot is not set")
        if (sc.get("runAsUser") or pod.get("runAsUser") or 0) == 0:
            fail(f"{where}: no non-zero runAsUser")
        if sc.get("readOnlyRootFilesystem") is not True:
            fail(f"{where}: the root filesystem is writable")
        if sc.get("allowPrivilegeEscalation") is not False:
            fail(f"{where}: allowPrivilegeEscalation is not false")
        if sc.get("capabilities", {}).get("drop") != ["ALL"] or sc["capabilities"].get("add"):
            fail(f"{where}: capabilities are not drop [ALL]")
        seccomp = sc.get("seccompProfile") or pod.get("seccompProfile") or {}
        if seccomp.get("type") != "RuntimeDefault":
            fail(f"{where}: no RuntimeDefault seccomp profile (Pod Security 'restricted')")
        for kind in ("requests", "limits"):
            r = c.get("resources", {}).get(kind, {})
            if "cpu" not in r or "memory" not in r:
                fail(f"{where}: no cpu and memory {kind}")
        for probe in ("readinessProbe", "livenessProbe"):
            if probe not in c:
                fail(f"{where}: no {probe}")
        if t["spec"].get("automountServiceAccountToken") is not False:
            fail(f"{where}: the pod mounts a service account token it never uses")
        # Service links would put IOTCA_<SERVICE>_* variables (e.g.
        # IOTCA_EDGE_PORT=tcp://...) into every container.
        if t["spec"].get("enableServiceLinks") is not False:
            fail(f"{where}: enableServiceLinks is not false")


def quantity(q):
    """'10Gi', '512Mi', '2G', '1000' -> bytes."""
    m = re.fullmatch(r"([0-9]+)(Ki|Mi|Gi|Ti|k|M|G|T)?", str(q))
    if not m:
        fail(f"cannot read the quantity {q}")
    unit = {None: 1, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40,
            "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}[m.group(2)]
    return int(m.group(1)) * unit


def check_etcd_members(overlay, objs, members):
    sts = the(objs, "StatefulSet", "iotca-etcd")
    if sts["spec"].get("replicas") != members:
        fail(f"{overlay}: etcd has {sts['spec'].get('replicas')} members, expected {members}")
    if not sts["spec"].get("volumeClaimTemplates"):
        fail(f"{overlay}: etcd members have no persistent volumes")
    c = sts["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in c.get("env", [])}
    names = [f"iotca-etcd-{i}" for i in range(members)]
    svc = sts["spec"]["serviceName"]
    want_cluster = ",".join(f"{n}=http://{n}.{svc}:2380" for n in names)
    if env.get("INITIAL_CLUSTER") != want_cluster:
        fail(f"{overlay}: etcd INITIAL_CLUSTER is {env.get('INITIAL_CLUSTER')}, expected {want_cluster}")
    want_endpoints = ",".join(f"http://{n}.{svc}:2379" for n in names)
    endpoints = env_of(objs, container(objs, "Deployment", "iotca-registry"))["IOTCA_ETCD_ENDPOINTS"]
    if endpoints != want_endpoints:
        fail(f"{overlay}: IOTCA_ETCD_ENDPOINTS is {endpoints}, expected every member: {want_endpoints}")
    quota = next((int(a.split("=", 1)[1]) for a in c.get("args", [])
                  if a.startswith("--quota-backend-bytes=")), 2 << 30)
    volume = quantity(sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"])
    if volume < quota + (1 << 30):
        fail(f"{overlay}: etcd volumes of {volume} bytes cannot hold the {quota}-byte backend quota "
             "and the write-ahead log (1 GiB more at least)")
    memory = quantity(c["resources"]["limits"]["memory"])
    if memory < quota:
        fail(f"{overlay}: etcd's memory limit ({memory}) is below its backend quota ({quota})")
    headless = the(objs, "Service", svc)
    if headless["spec"].get("clusterIP") != "None" or not headless["spec"].get("publishNotReadyAddresses"):
        fail(f"{overlay}: Service {svc} must be headless and publish not-ready members (bootstrap)")


# ---------------------------------------------------------------------------
# NetworkPolicies, evaluated.
# ---------------------------------------------------------------------------

def allowed(objs, src_labels, dst, port):
    """May a pod of this namespace labelled src_labels open TCP `port` (a
    number) of the pods of workload dst? src_labels None: from outside
    the cluster."""
    w = next(o for o in objs if o["metadata"]["name"] == dst and o["kind"] in ("Deployment", "StatefulSet"))
    t = w["spec"]["template"]
    c = t["spec"]["containers"][0]
    policies = [np for np in find(objs, "NetworkPolicy")
                if "Ingress" in np["spec"].get("policyTypes", ["Ingress"])
                and selects(np["spec"]["podSelector"].get("matchLabels"), t["metadata"]["labels"])]
    if not policies:
        return True
    for np in policies:
        for rule in np["spec"].get("ingress", []):
            ports = rule.get("ports")
            if ports and not any(resolve_port(c, p.get("port")) == port for p in ports):
                continue
            peers = rule.get("from")
            if not peers:
                return True
            for peer in peers:
                if src_labels is None:
                    continue  # podSelector/namespaceSelector peers are in-cluster
                if "ipBlock" in peer:
                    continue
                pod_sel = peer.get("podSelector")
                if "namespaceSelector" in peer and pod_sel is None:
                    return True
                if pod_sel is not None and selects(pod_sel.get("matchLabels"), src_labels):
                    return True
    return False


def check_network_policies(overlay, objs):
    pods = {n: labels(objs, "Deployment", n) for n in ALL}
    pods["iotca-etcd"] = labels(objs, "StatefulSet", "iotca-etcd")
    stranger = {"app.kubernetes.io/name": "someone-else"}
    client = {"iotca.io/api-client": "true", "app.kubernetes.io/part-of": "iotca"}
    expect = [
        # (source, destination, port, allowed)
        ("iotca-registry", "iotca-etcd", 2379, True),
        ("iotca-association", "iotca-etcd", 2379, True),
        ("iotca-edge", "iotca-etcd", 2379, False),
        ("stranger", "iotca-etcd", 2379, False),
        ("iotca-etcd", "iotca-etcd", 2380, True),
        ("iotca-registry", "iotca-etcd", 2380, False),
        ("iotca-edge", "iotca-registry", 50051, True),
        ("iotca-association", "iotca-registry", 50051, True),
        ("client", "iotca-registry", 50051, True),
        ("stranger", "iotca-registry", 50051, False),
        ("outside", "iotca-registry", 50051, False),
        ("iotca-etcd", "iotca-registry", 50051, False),
        ("iotca-edge", "iotca-association", 50052, True),
        ("client", "iotca-association", 50052, True),
        ("iotca-registry", "iotca-association", 50052, False),
        ("stranger", "iotca-association", 50052, False),
        ("outside", "iotca-edge", 8883, True),
        ("stranger", "iotca-edge", 9883, True),
        ("outside", "iotca-edge", 9883, False),
    ]
    for src, dst, port, want in expect:
        src_labels = None if src == "outside" else {"stranger": stranger, "client": client}.get(src) or pods[src]
        if allowed(objs, src_labels, dst, port) != want:
            fail(f"{overlay}: NetworkPolicies {'refuse' if want else 'allow'} {src} -> {dst}:{port}")
    print(f"{overlay}: {len(expect)} NetworkPolicy paths as intended")


# ---------------------------------------------------------------------------
# Per overlay.
# ---------------------------------------------------------------------------

def check_prod(objs):
    check_etcd_members("prod", objs, 3)
    for name in SERVICES:
        d = the(objs, "Deployment", name)
        if d["spec"].get("replicas", 1) < 2:
            fail(f"prod: {name} has fewer than 2 replicas")
        if "podAntiAffinity" not in d["spec"]["template"]["spec"].get("affinity", {}):
            fail(f"prod: {name} has no pod anti-affinity")
    for kind, name in [("Deployment", n) for n in ALL] + [("StatefulSet", "iotca-etcd")]:
        pdbs = [p for p in find(objs, "PodDisruptionBudget")
                if selects(p["spec"]["selector"]["matchLabels"], labels(objs, kind, name))]
        if len(pdbs) != 1 or pdbs[0]["spec"].get("maxUnavailable") != 1:
            fail(f"prod: {name} needs one PodDisruptionBudget with maxUnavailable 1")
    sts = the(objs, "StatefulSet", "iotca-etcd")
    if "requiredDuringSchedulingIgnoredDuringExecution" not in \
            sts["spec"]["template"]["spec"].get("affinity", {}).get("podAntiAffinity", {}):
        fail("prod: etcd members may share a node (no required anti-affinity)")
    svc = the(objs, "Service", "iotca-edge")
    if svc["spec"].get("type") != "LoadBalancer" or [p["port"] for p in svc["spec"]["ports"]] != [8883]:
        fail("prod: the edge is not behind a LoadBalancer Service on 8883")
    if not selects(svc["spec"]["selector"], labels(objs, "Deployment", "iotca-edge")):
        fail("prod: Service iotca-edge does not select the edge")
    hpa = the(objs, "HorizontalPodAutoscaler", "iotca-edge")
    ref = hpa["spec"]["scaleTargetRef"]
    if (ref["kind"], ref["name"]) != ("Deployment", "iotca-edge") or hpa["spec"].get("minReplicas", 1) < 2:
        fail("prod: the HorizontalPodAutoscaler does not scale the edge from 2 replicas")
    if "replicas" in the(objs, "Deployment", "iotca-edge")["spec"]:
        fail("prod: the edge Deployment sets replicas, which every apply would reset under the HPA")
    for name in ALL:
        env = env_of(objs, container(objs, "Deployment", name))
        missing = [v for v in ("IOTCA_GRPC_TLS_CA", "IOTCA_GRPC_TLS_CERT", "IOTCA_GRPC_TLS_KEY") if v not in env]
        if missing:
            fail(f"prod: {name} is not configured for mTLS (no {', '.join(missing)})")
        if any(v.startswith("IOTCA_INTERNAL_TOKEN") for v in env):
            fail(f"prod: {name} uses an internal token; prod is mTLS only")
        if name in SERVICES and env.get("IOTCA_INTERNAL_CN") != "iotca-edge":
            fail(f"prod: {name} does not accept CN=iotca-edge as the internal client")
    check_network_policies("prod", objs)


def check_dev(objs):
    check_etcd_members("dev", objs, 1)
    for name in ALL:
        if the(objs, "Deployment", name)["spec"].get("replicas") != 1:
            fail(f"dev: {name} does not run one replica")
        env = env_of(objs, container(objs, "Deployment", name))
        if any(v.startswith("IOTCA_GRPC_TLS_") for v in env):
            fail(f"dev: {name} has gRPC TLS settings; dev is plaintext")
        if not env.get("IOTCA_INTERNAL_TOKEN_FILE"):
            fail(f"dev: {name} has no internal token (IOTCA_INTERNAL_TOKEN_FILE)")
    if find(objs, "HorizontalPodAutoscaler"):
        fail("dev: a HorizontalPodAutoscaler would scale the single edge")
    check_network_policies("dev", objs)


def check_restore_pod(objs):
    """deploy/k8s/etcd-restore-pod.yaml mounts member N's volume where etcd
    keeps it, runs the etcd image and is as locked down as the rest."""
    pod = yaml.safe_load((K8S / "etcd-restore-pod.yaml").read_text().replace("MEMBER", "1"))
    sts = the(objs, "StatefulSet", "iotca-etcd")
    claim = sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"]
    etcd = sts["spec"]["template"]["spec"]["containers"][0]
    mount = next(m["mountPath"] for m in etcd["volumeMounts"] if m["name"] == claim)
    c = pod["spec"]["containers"][0]
    vol = next(v for v in pod["spec"]["volumes"] if v["name"] == c["volumeMounts"][0]["name"])
    if vol["persistentVolumeClaim"]["claimName"] != f"{claim}-iotca-etcd-1":
        fail(f"etcd-restore-pod.yaml mounts {vol['persistentVolumeClaim']['claimName']}, "
             f"not member 1's volume {claim}-iotca-etcd-1")
    if c["volumeMounts"][0]["mountPath"] != mount:
        fail(f"etcd-restore-pod.yaml mounts the volume at {c['volumeMounts'][0]['mountPath']}, etcd at {mount}")
    if c["image"] != "iotca-etcd":
        fail("etcd-restore-pod.yaml must name the image iotca-etcd (the docs' sed replaces it)")
    fake = {"kind": "Deployment", "metadata": {"name": "etcd-restore-pod.yaml"},
            "spec": {"template": {"metadata": {}, "spec": pod["spec"]}}}
    c.setdefault("readinessProbe", {})  # a helper pod needs no probes
    c.setdefault("livenessProbe", {})
    check_pods("etcd-restore-pod.yaml", [fake])
    print("etcd-restore-pod.yaml: member volume, mount path, image and hardening as etcd's")


def self_test(objs):
    """check_prod fails on prod objects that break a promise."""
    def drop(kind, name):
        return lambda o: o.remove(the(o, kind, name))

    def one_replica(o):
        the(o, "Deployment", "iotca-association")["spec"]["replicas"] = 1

    def writable(o):
        container(o, "Deployment", "iotca-edge")["securityContext"]["readOnlyRootFilesystem"] = False

    def token(o):
        container(o, "Deployment", "iotca-edge")["env"].append({"name": "IOTCA_INTERNAL_TOKEN", "value": "x"})

    def open_etcd(o):
        the(o, "NetworkPolicy", "iotca-etcd")["spec"]["ingress"] = [{}]

    def no_deny(o):
        drop("NetworkPolicy", "iotca-default-deny-ingress")(o)
        drop("NetworkPolicy", "iotca-registry")(o)

    broken = [
        ("no HPA", "HorizontalPodAutoscaler", drop("HorizontalPodAutoscaler", "iotca-edge")),
        ("one association replica", "fewer than 2 replicas", one_replica),
        ("etcd open to every pod", "allow iotca-edge -> iotca-etcd:2379", open_etcd),
        ("the registry without a policy", "allow stranger -> iotca-registry", no_deny),
        ("a writable root filesystem", "writable", writable),
        ("an internal token besides mTLS", "mTLS only", token),
    ]
    for what, expect, mutate in broken:
        objs2 = deepcopy(objs)
        mutate(objs2)
        try:
            check_hardening("prod", objs2)
            with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
                check_prod(objs2)
        except Failure as e:
            if expect not in str(e):
                fail(f"self-test, {what}: failed for another reason: {e}")
            print(f"refuses {what}: ok")
            continue
        fail(f"self-test: accepted {what}")


def main():
    rendered = render_overlays()
    self_test(rendered["prod"])
    for overlay, objs in rendered.items():
        check_hardening(overlay, objs)
    check_prod(rendered["prod"])
    check_dev(rendered["dev"])
    check_restore_pod(rendered["prod"])
    print("ok")


run_main(main)
