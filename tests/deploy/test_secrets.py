#!/usr/bin/env python3
"""deploy_secrets: deploy/k8s/make-secrets.sh makes the Secrets each overlay
mounts, and the files the manifests point the binaries at exist in them.

For each overlay, with make-secrets.sh --print (no cluster) in a temporary
directory:
- every Secret a pod mounts or refers to is made, with the keys used;
- every variable whose value is a file path names a key of the Secret
  mounted there (a typo in a path or a key fails here, not at start-up);
- tokens are 64 hex digits; each certificate matches its key;
- prod: the services' certificates verify against the CA the edge trusts,
  for the host names the edge dials (IOTCA_REGISTRY, IOTCA_ASSOCIATION);
  the edge's client certificate verifies against the services' CA, has
  CN = their IOTCA_INTERNAL_CN and is for client authentication."""
import base64
import os
import re
import subprocess
import tempfile
from pathlib import Path

import yaml

from k8s import (K8S, UNSET, Failure, containers, deepcopy, env_of, fail, hostport, kubectl, name_of,
                 render_overlays, run_main, the)

SCRIPT = K8S / "make-secrets.sh"


def make_secrets(mode, ns, workdir):
    env = dict(os.environ, KUBECTL=kubectl())
    r = subprocess.run([str(SCRIPT), f"--{mode}", "--namespace", ns, "--dir", str(workdir / mode),
                        "--print"], capture_output=True, text=True, env=env, timeout=60)
    if r.returncode != 0:
        fail(f"make-secrets.sh --{mode} failed: {r.stderr.strip()}")
    secrets = {}
    for o in yaml.safe_load_all(r.stdout):
        if o and o["kind"] == "Secret":
            if o["metadata"].get("namespace") != ns:
                fail(f"make-secrets.sh: Secret {o['metadata']['name']} is not in namespace {ns}")
            secrets[o["metadata"]["name"]] = {k: base64.b64decode(v) for k, v in o["data"].items()}
    return secrets


def check_mounts(overlay, objs, secrets):
    """Secret references and file paths; returns {container name: {var: bytes}}
    with the content of every file variable."""
    files = {}
    for w, t, c in containers(objs):
        where = f"{overlay}: {name_of(w)} container {c['name']}"
        vols = {v["name"]: v for v in t["spec"].get("volumes", [])}
        for claim in w["spec"].get("volumeClaimTemplates", []):
            vols[claim["metadata"]["name"]] = {"persistentVolumeClaim": claim}
        mounts = {}
        for m in c.get("volumeMounts", []):
            v = vols.get(m["name"])
            if v is None:
                fail(f"{where}: mounts volume {m['name']}, which the pod does not define")
            if "secret" in v:
                name = v["secret"]["secretName"]
                if name not in secrets:
                    fail(f"{where}: mounts Secret {name}, which make-secrets.sh does not make")
                for item in v["secret"].get("items", []):
                    if item["key"] not in secrets[name]:
                        fail(f"{where}: Secret {name} has no key {item['key']}")
                mounts[m["mountPath"].rstrip("/")] = secrets[name]
        for e in c.get("env", []):
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref and ref["key"] not in secrets.get(ref["name"], {}):
                fail(f"{where}: {e['name']} refers to Secret {ref['name']} key {ref['key']}, which is not made")
        got = {}
        for var, value in env_of(objs, c).items():
            if value in (None, UNSET) or not value.startswith("/"):
                continue
            d, key = os.path.split(value)
            if d not in mounts:
                if c["name"] != "etcd":
                    fail(f"{where}: {var}={value} is in no mounted Secret")
                continue
            if key not in mounts[d]:
                fail(f"{where}: {var}={value}, but the Secret mounted at {d} has no key {key} "
                     f"(it has {', '.join(sorted(mounts[d]))})")
            got[var] = mounts[d][key]
        files[w["metadata"]["name"]] = got
    return files


def openssl(*args, data=None):
    r = subprocess.run(["openssl", *args], input=data, capture_output=True, timeout=30)
    return r.returncode, r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")


def write(tmp, name, data):
    p = Path(tmp) / name
    p.write_bytes(data)
    return str(p)


def check_pair(tmp, what, cert, key):
    _, a = openssl("x509", "-noout", "-pubkey", "-in", write(tmp, "c.pem", cert))
    _, b = openssl("pkey", "-pubout", "-in", write(tmp, "k.pem", key))
    if "BEGIN PUBLIC KEY" not in a or a.strip() != b.strip():
        fail(f"{what}: the certificate does not match its key")


def verify(tmp, what, ca, cert, *opts):
    rc, out = openssl("verify", "-CAfile", write(tmp, "ca.pem", ca), *opts, write(tmp, "leaf.pem", cert))
    if rc != 0:
        fail(f"{what}: openssl verify {' '.join(opts)} failed: {out.strip()}")


def check_tokens(overlay, files):
    for name, got in files.items():
        for var, data in got.items():
            if var.endswith("TOKEN_FILE") and not re.fullmatch(rb"[0-9a-f]{64}\n?", data):
                fail(f"{overlay}: {name} {var}: not a 64-hex-digit token")


def check_prod_pki(objs, files, tmp):
    edge = files["iotca-edge"]
    for var in ("IOTCA_EDGE_TLS_CERT", "IOTCA_GRPC_TLS_CERT"):
        key = var.replace("_CERT", "_KEY")
        check_pair(tmp, f"prod: iotca-edge {var}", edge[var], edge[key])
    _, subject = openssl("x509", "-noout", "-subject", "-ext", "extendedKeyUsage",
                         "-in", write(tmp, "e.pem", edge["IOTCA_GRPC_TLS_CERT"]))
    edge_env = env_of(objs, the(objs, "Deployment", "iotca-edge")["spec"]["template"]["spec"]["containers"][0])
    for svc, addr_var in (("iotca-registry", "IOTCA_REGISTRY"), ("iotca-association", "IOTCA_ASSOCIATION")):
        got = files[svc]
        check_pair(tmp, f"prod: {svc}", got["IOTCA_GRPC_TLS_CERT"], got["IOTCA_GRPC_TLS_KEY"])
        host, _ = hostport(edge_env[addr_var])
        verify(tmp, f"prod: {svc}'s certificate for {host}, with the edge's CA", edge["IOTCA_GRPC_TLS_CA"],
               got["IOTCA_GRPC_TLS_CERT"], "-verify_hostname", host, "-purpose", "sslserver")
        verify(tmp, f"prod: the edge's client certificate, with {svc}'s CA", got["IOTCA_GRPC_TLS_CA"],
               edge["IOTCA_GRPC_TLS_CERT"], "-purpose", "sslclient")
        cn = env_of(objs, the(objs, "Deployment", svc)["spec"]["template"]["spec"]["containers"][0])
        cn = cn.get("IOTCA_INTERNAL_CN")
        if not re.search(rf"CN\s*=\s*{re.escape(cn)}\s*$", subject, re.M):
            fail(f"prod: the edge's client certificate subject ({subject.strip()}) is not CN={cn}")
    if "TLS Web Client Authentication" not in subject:
        fail("prod: the edge's client certificate is not for client authentication")
    print("prod: the mTLS certificates verify for the names and CN the manifests use")


def self_test(objs, secrets):
    """A path that names no key of the mounted Secret is refused."""
    bad = deepcopy(objs)
    c = the(bad, "Deployment", "iotca-edge")["spec"]["template"]["spec"]["containers"][0]
    for e in c["env"]:
        if e["name"] == "IOTCA_GRPC_TLS_CERT":
            e["value"] = e["value"].replace("tls.crt", "tls.pem")
    try:
        check_mounts("prod", bad, secrets)
    except Failure as e:
        if "has no key tls.pem" not in str(e):
            fail(f"self-test: refused for another reason: {e}")
        print("refuses a file path that names no key of its Secret: ok")
        return
    fail("self-test: accepted IOTCA_GRPC_TLS_CERT=.../tls.pem")


def main():
    rendered = render_overlays()
    namespaces = {"dev": "iotca-dev", "prod": "iotca"}
    with tempfile.TemporaryDirectory(prefix="iotca-secrets-") as tmp:
        work = Path(tmp)
        for overlay, objs in rendered.items():
            secrets = make_secrets(overlay, namespaces[overlay], work)
            files = check_mounts(overlay, objs, secrets)
            check_tokens(overlay, files)
            check_pair(tmp, f"{overlay}: the edge's server certificate",
                       files["iotca-edge"]["IOTCA_EDGE_TLS_CERT"], files["iotca-edge"]["IOTCA_EDGE_TLS_KEY"])
            n = sum(len(v) for v in files.values())
            print(f"{overlay}: {len(secrets)} Secrets; {n} file variables name keys of mounted Secrets")
            if overlay == "prod":
                check_prod_pki(objs, files, tmp)
                self_test(objs, secrets)
        # make-secrets.sh reuses what exists: a second run changes nothing.
        before = make_secrets("prod", "iotca", work)
        again = make_secrets("prod", "iotca", work)
        if before != again:
            fail("make-secrets.sh made new material on a second run instead of reusing it")
    print("ok")


run_main(main)
