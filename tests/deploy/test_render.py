#!/usr/bin/env python3
"""deploy_render: `kubectl kustomize` (Debian's kubectl 1.20) renders
deploy/k8s/base and both overlays; every namespaced object lands in the
overlay's namespace, with no two objects of one kind and name."""
from k8s import K8S, OVERLAYS, fail, kubectl, kubectl_version, render, run_main

CLUSTER_SCOPED = {"Namespace"}
NAMESPACES = {"dev": "iotca-dev", "prod": "iotca"}


def main():
    kc = kubectl()
    version = kubectl_version(kc)
    if not version.startswith("v1.20."):
        fail(f"{kc} is {version}, not kubernetes-client 1.20")
    print(f"kubectl: {kc} ({version})")
    render(K8S / "base")
    for name, path in OVERLAYS.items():
        objs = render(path)
        seen = set()
        for o in objs:
            key = (o["kind"], o["metadata"]["name"])
            if key in seen:
                fail(f"{name}: {key[0]}/{key[1]} rendered twice")
            seen.add(key)
            ns = o["metadata"].get("namespace")
            if o["kind"] in CLUSTER_SCOPED:
                if o["kind"] == "Namespace" and o["metadata"]["name"] != NAMESPACES[name]:
                    fail(f"{name}: Namespace {o['metadata']['name']}, expected {NAMESPACES[name]}")
            elif ns != NAMESPACES[name]:
                fail(f"{name}: {o['kind']}/{o['metadata']['name']} in namespace {ns}, "
                     f"expected {NAMESPACES[name]}")
        kinds = sorted({o["kind"] for o in objs})
        print(f"{name}: {len(objs)} objects ({', '.join(kinds)})")
    print("ok")


run_main(main)
