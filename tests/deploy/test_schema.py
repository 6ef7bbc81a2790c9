#!/usr/bin/env python3
"""deploy_schema: every object both overlays render is valid against the
Kubernetes API schemas (tools/k8s-validate/validate.js: the npm package
kubernetes-models, offline), unknown fields included. First it shows that
the validator fails where it must: an unknown kind, a misspelt field, a
wrong type, and the `$patch: delete` that kustomize 1.20 leaves in an
object instead of deleting it. deploy/k8s/etcd-restore-pod.yaml (used
only during a restore) is validated too."""
import json
import subprocess

import yaml

from k8s import K8S, VALIDATOR, deepcopy, fail, render_overlays, run_main


def validate(objs):
    r = subprocess.run(["node", str(VALIDATOR)], input=json.dumps(objs), capture_output=True,
                       text=True, timeout=60)
    if r.returncode not in (0, 1):
        fail(f"validate.js exited {r.returncode}: {r.stderr.strip()}")
    return r.returncode == 0, r.stdout


def must_fail(what, objs, expect):
    ok, out = validate(objs)
    if ok or expect not in out:
        fail(f"the validator accepted {what} (expected '{expect}' in):\n{out}")
    print(f"validator refuses {what}: ok")


def self_test(objs):
    dep = next(o for o in objs if o["kind"] == "Deployment")
    must_fail("an unknown kind", [{"apiVersion": "v1", "kind": "NoSuchKind",
                                   "metadata": {"name": "x"}}], "unknown kind")
    bad = deepcopy(dep)
    c = bad["spec"]["template"]["spec"]["containers"][0]
    c["readinesProbe"] = c.pop("readinessProbe")
    must_fail("a misspelt field (readinesProbe)", [bad], "readinesProbe: unknown field")
    bad = deepcopy(dep)
    bad["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "grpc"
    must_fail("a string containerPort", [bad], "must be integer")
    bad = deepcopy(dep)
    bad["$patch"] = "delete"
    must_fail("a leftover $patch", [bad], "$patch: unknown field")


def main():
    rendered = render_overlays()
    self_test(rendered["prod"])
    for name, objs in rendered.items():
        ok, out = validate(objs)
        print(f"--- {name}\n{out.strip()}")
        if not ok:
            fail(f"{name}: some objects are not valid (see above)")
    restore = yaml.safe_load((K8S / "etcd-restore-pod.yaml").read_text().replace("MEMBER", "0"))
    ok, out = validate([restore])
    print(f"--- etcd-restore-pod.yaml (MEMBER=0)\n{out.strip()}")
    if not ok:
        fail("deploy/k8s/etcd-restore-pod.yaml is not valid")
    print("ok")


run_main(main)
