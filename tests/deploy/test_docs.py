#!/usr/bin/env python3
"""deploy_docs: docs/operations.md stays true to the code.

- It explains every log event the services log (iotca_log_* in services/
  and lib/) and every metric the edge exports, and names no event or
  metric that does not exist.
- Every command in its sh blocks is a standard tool (kubectl, etcdctl,
  openssl, docker, curl, sed, grep) or one the project provides
  (deploy/k8s/make-secrets.sh, build/tools/iotca); the iotca verbs and
  make-secrets.sh options it uses exist (their --help), and so do the
  kubectl and etcdctl subcommands (kubectl 1.20, etcdctl 3.4) and the
  etcdctl flags."""
import contextlib
import functools
import os
import re
import shlex
import subprocess

from k8s import IMAGE_BINARIES, K8S, ROOT, Failure, binary, fail, kubectl, run_main

DOC = ROOT / "docs" / "operations.md"
TOOLS = {"kubectl", "etcdctl", "openssl", "docker", "curl", "sed", "grep",
         "deploy/k8s/make-secrets.sh", "build/tools/iotca"}
SHELL_WORDS = {"export", "for", "do", "done"}
KUBECTL_VALUE_FLAGS = {"-n", "--namespace", "-l", "--selector", "-o", "-p", "-f", "-k", "-c"}


def source_events():
    events = set()
    for path in list((ROOT / "services").rglob("*.c")) + list((ROOT / "lib").rglob("*.c")):
        events |= set(re.findall(r'iotca_log_(?:debug|info|warn|error)\(\s*"([A-Z0-9-]+)"', path.read_text()))
    if len(events) < 20:
        fail(f"found only {len(events)} log events in services/ and lib/; has logging changed?")
    return events


def source_metrics():
    src = (ROOT / "services" / "mqtt-edge" / "main.c").read_text()
    metrics = set(re.findall(r'metric\(b,\s*"(iotca_edge_[a-z_]+)"', src))
    if len(metrics) < 10:
        fail("found too few metrics in services/mqtt-edge/main.c; has it changed?")
    return metrics


def check_coverage(doc):
    prose = re.sub(r"```.*?```", "", doc, flags=re.S)
    quoted = set(re.findall(r"`([^`]+)`", prose))
    events, metrics = source_events(), source_metrics()
    # EVENT-NAMES; one-word names (UPLOAD) only when they are events.
    doc_events = {q for q in quoted if re.fullmatch(r"[A-Z][A-Z0-9]*(-[A-Z0-9]+)*", q)
                  and ("-" in q or q in events)}
    doc_metrics = set(re.findall(r"\b(iotca_edge_[a-z_]+)\b", doc))
    problems = [f"log event {e} is not explained" for e in sorted(events - doc_events)]
    problems += [f"log event {e} does not exist in services/ or lib/" for e in sorted(doc_events - events)]
    problems += [f"metric {m} is not explained" for m in sorted(metrics - doc_metrics)]
    problems += [f"metric {m} does not exist" for m in sorted(doc_metrics - metrics)]
    if problems:
        fail("docs/operations.md:\n  " + "\n  ".join(problems))
    print(f"{len(events)} log events and {len(metrics)} metrics explained")


def commands(doc):
    """Every command line of the sh blocks, continuations joined."""
    out = []
    for block in re.findall(r"```sh\n(.*?)```", doc, re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line:
                out.append(line)
    return out


def words(line):
    line = re.sub(r"\$\(([^()]*)\)", "X", line)  # $(...) -> a word
    return shlex.split(line.replace("<", "").replace(">", ""), posix=True)


def first_args(argv, value_flags=()):
    args, skip = [], False
    for a in argv[1:]:
        if skip:
            skip = False
        elif a.startswith("-"):
            skip = a in value_flags
        else:
            args.append(a)
    return args


@functools.lru_cache(maxsize=None)
def _help(argv):
    r = subprocess.run(list(argv), capture_output=True, text=True, timeout=20)
    return r.returncode == 0, r.stdout + r.stderr


def help_ok(argv):
    return _help(tuple(argv))


def check_commands(doc):
    kc = kubectl()
    iotca = binary(IMAGE_BINARIES["cli"])
    checked = 0
    for line in commands(doc):
        for part in re.split(r"\s*(?:\||&&|;)\s*", line.rstrip("&").strip()):
            if not part:
                continue
            argv = words(part)
            tool = argv[0]
            if tool in SHELL_WORDS:
                continue
            if tool not in TOOLS:
                fail(f"docs/operations.md runs '{tool}' ({part}), neither a standard tool nor the project's")
            checked += 1
            if tool == "kubectl":
                sub = first_args(argv, KUBECTL_VALUE_FLAGS)[:2]
                two = sub if sub and sub[0] in ("rollout", "create") else sub[:1]
                ok, out = help_ok([kc, *two, "--help"])
                if not ok or ("Usage:" not in out):
                    fail(f"kubectl {' '.join(two)} is not a command of kubectl 1.20 ({part})")
            elif tool == "etcdctl":
                sub = first_args(argv, {"-w", "--endpoints"})
                sub = sub[:2] if sub and sub[0] in ("snapshot", "endpoint") else sub[:1]
                ok, out = help_ok(["etcdctl", *sub, "--help"])
                if not ok:
                    fail(f"etcdctl {' '.join(sub)} is not an etcdctl command ({part})")
                for flag in re.findall(r"(?<!\S)(--[a-z-]+)", part):
                    if flag not in out:
                        fail(f"etcdctl {' '.join(sub)} has no flag {flag} ({part})")
            elif tool == "build/tools/iotca":
                verbs = first_args(argv)[:2]
                ok, _ = help_ok([str(iotca), *verbs, "--help"])
                if not ok:
                    fail(f"iotca {' '.join(verbs)} is not an iotca command ({part})")
            elif tool == "deploy/k8s/make-secrets.sh":
                _, out = help_ok([str(K8S / "make-secrets.sh"), "--help"])
                for flag in re.findall(r"(?<!\S)(--[a-z-]+)", part):
                    if flag not in out:
                        fail(f"make-secrets.sh has no option {flag} ({part})")
    return checked


def self_test(doc):
    """The checks fail on a wrong doc."""
    broken = [
        ("an unexplained event", "UPLOAD is not explained", lambda: check_coverage(doc.replace("`UPLOAD`", "upload"))),
        ("a kubectl typo", "not a command of kubectl", lambda: check_commands("```sh\nkubectl -n x rollot status a\n```")),
        ("an iotca typo", "not an iotca command", lambda: check_commands("```sh\nbuild/tools/iotca acount create x\n```")),
        ("an etcdctl flag", "has no flag --bogus", lambda: check_commands("```sh\netcdctl snapshot save --bogus x\n```")),
        ("a foreign tool", "neither a standard tool", lambda: check_commands("```sh\nhelm install x\n```")),
    ]
    for what, expect, run in broken:
        try:
            with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
                run()
        except Failure as e:
            if expect not in str(e):
                fail(f"self-test, {what}: failed for another reason: {e}")
            print(f"refuses {what}: ok")
            continue
        fail(f"self-test: accepted {what}")


def main():
    doc = DOC.read_text()
    self_test(doc)
    check_coverage(doc)
    n = check_commands(doc)
    print(f"{n} commands use standard or project tools, with subcommands and flags that exist")
    print("ok")


run_main(main)
