#!/usr/bin/env python3
"""deploy_image: deploy/Dockerfile's runtime images hold what their
binaries need, checked without Docker on the machine that built them.

For every runtime target (a stage with an ENTRYPOINT):
- ENTRYPOINT is exec form (no shell at run time), USER is a numeric
  non-root uid, and no stage has a HEALTHCHECK (Kubernetes probes);
- every library `ldd` lists for the binary it starts belongs (dpkg -S) to
  a package the image holds: the stage's `apt-get install` packages, the
  Debian base image (Essential and required packages, apt) and all their
  dependencies; every library the binary names itself (NEEDED) to a
  package the stage installs or the base image has;
and for every container both overlays render: its image is a target of
the Dockerfile, runs as the Dockerfile's uid, and every command it execs
(preStop hooks, exec probes) is in its image and is not a shell."""
import contextlib
import json
import os
import re
import subprocess

from k8s import (DEPLOY, IMAGE_BINARIES, Failure, binary, containers, fail, image_key, name_of,
                 render_overlays, run_main)

DOCKERFILE = DEPLOY / "Dockerfile"
SHELLS = {"sh", "bash", "dash", "ash", "zsh"}
# Sanitizer runtimes of IOTCA_SANITIZE builds; image builds never use them.
SANITIZER_LIBS = re.compile(r"lib(asan|ubsan|lsan|tsan)\.so")


# ---------------------------------------------------------------------------
# The Dockerfile.
# ---------------------------------------------------------------------------

def instructions(text):
    """Logical lines (continuations joined, comments dropped)."""
    out, buf = [], ""
    for raw in text.splitlines():
        s = raw.strip()
        if not s or s.startswith("#"):
            continue
        if s.endswith("\\"):
            buf += s[:-1] + " "
            continue
        out.append(buf + s)
        buf = ""
    if buf:
        out.append(buf)
    return out


def apt_packages(cmd):
    pkgs = []
    for part in re.split(r"&&|;|\|\|", cmd):
        words = part.split()
        if len(words) >= 2 and words[0] == "apt-get" and "install" in words:
            pkgs += [w for w in words[words.index("install") + 1:] if not w.startswith("-")]
    return pkgs


def parse_dockerfile(text):
    stages, cur = {}, None
    for line in instructions(text):
        instr, _, rest = line.partition(" ")
        instr, rest = instr.upper(), rest.strip()
        if instr == "FROM":
            m = re.fullmatch(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", rest, re.I)
            if not m:
                fail(f"Dockerfile: cannot read 'FROM {rest}'")
            parent = m.group(1) if m.group(1) in stages else None
            cur = {"name": m.group(2) or m.group(1), "parent": parent, "packages": [],
                   "copies": [], "entrypoint": None, "user": None, "healthcheck": False}
            stages[cur["name"]] = cur
        elif cur is None:
            continue
        elif instr == "RUN":
            cur["packages"] += apt_packages(rest)
        elif instr == "COPY" and "--from=" in rest:
            words = [w for w in rest.split() if not w.startswith("--")]
            cur["copies"].append((words[:-1], words[-1]))
        elif instr == "ENTRYPOINT":
            cur["entrypoint"] = json.loads(rest) if rest.startswith("[") else rest
        elif instr == "USER":
            cur["user"] = rest
        elif instr == "HEALTHCHECK":
            cur["healthcheck"] = True
    return stages


def chain(stages, st):
    while st is not None:
        yield st
        st = stages.get(st["parent"]) if st["parent"] else None


# ---------------------------------------------------------------------------
# Debian packages.
# ---------------------------------------------------------------------------

class Dpkg:
    def __init__(self):
        fmt = "${Package}\t${db:Status-Abbrev}\t${Essential}\t${Priority}\t${Depends}\t${Pre-Depends}\t${Provides}\n"
        out = subprocess.run(["dpkg-query", "-W", "-f", fmt], capture_output=True, text=True,
                             check=True).stdout
        self.deps, self.providers, self.base_roots = {}, {}, {"apt"}
        for line in out.splitlines():
            pkg, status, essential, prio, dep, predep, provides = line.split("\t")
            if not status.startswith("ii"):
                continue
            pkg = pkg.split(":")[0]
            self.deps[pkg] = [alt for d in (dep, predep) if d for alt in d.split(",")]
            for p in provides.split(","):
                if p.strip():
                    self.providers.setdefault(p.split("(")[0].strip(), []).append(pkg)
            if essential == "yes" or prio == "required":
                self.base_roots.add(pkg)
        self.base = self.closure(self.base_roots)

    def resolve(self, alternatives):
        """'a (>= 1) | b:any' -> an installed package satisfying it, or None."""
        for alt in alternatives.split("|"):
            name = alt.split("(")[0].strip().split(":")[0]
            if name in self.deps:
                return name
            for p in self.providers.get(name, []):
                return p
        return None

    def closure(self, roots):
        seen, todo = set(), list(roots)
        while todo:
            p = todo.pop()
            if p in seen:
                continue
            if p not in self.deps:
                fail(f"package {p} is not installed here; cannot follow its dependencies "
                     "(run scripts/install-deps.sh)")
            seen.add(p)
            for d in self.deps[p]:
                r = self.resolve(d)
                if r and r not in seen:
                    todo.append(r)
        return seen


def path_variants(p):
    real = os.path.realpath(p)
    out = []
    for q in (p, real):
        out.append(q)
        out.append(q[4:] if q.startswith("/usr/") else "/usr" + q)
    return list(dict.fromkeys(out))


def owners(paths):
    """{path: package} for every path dpkg knows (merged-/usr aware)."""
    result, todo = {}, {p: path_variants(p) for p in paths}
    for i in range(4):
        batch = {v[i]: p for p, v in todo.items() if p not in result and i < len(v)}
        if not batch:
            break
        r = subprocess.run(["dpkg-query", "-S"] + list(batch), capture_output=True, text=True)
        for line in r.stdout.splitlines():
            if line.startswith("diversion "):
                continue
            pkgs, _, path = line.partition(": ")
            if path in batch:
                result.setdefault(batch[path], pkgs.split(",")[0].strip().split(":")[0])
    return result


def ldd(path):
    out = subprocess.run(["ldd", str(path)], capture_output=True, text=True, check=True).stdout
    libs = {}
    for line in out.splitlines():
        m = re.match(r"\s*(\S+)\s+=>\s+(\S+)\s+\(", line) or re.match(r"\s*(/\S+)\s+\(", line)
        if not m:
            if "not found" in line:
                fail(f"ldd {path}: {line.strip()}")
            continue
        soname, lib = (m.group(1), m.group(2)) if m.lastindex == 2 else (os.path.basename(m.group(1)), m.group(1))
        if not SANITIZER_LIBS.search(soname):
            libs[soname] = lib
    return libs


def sanitized(path):
    out = subprocess.run(["objdump", "-p", str(path)], capture_output=True, text=True, check=True).stdout
    return bool(re.search(r"NEEDED\s+lib(asan|ubsan|tsan)\.so", out))


def needed(path):
    out = subprocess.run(["objdump", "-p", str(path)], capture_output=True, text=True, check=True).stdout
    return [l.split()[1] for l in out.splitlines() if l.strip().startswith("NEEDED")
            and not SANITIZER_LIBS.search(l)]


# ---------------------------------------------------------------------------
# The checks.
# ---------------------------------------------------------------------------

def entry_binary(stages, st):
    """(path in the build tree or on this machine, is_built) of what the
    target's ENTRYPOINT starts."""
    exe = st["entrypoint"][0]
    for s in chain(stages, st):
        for srcs, dest in s["copies"]:
            for src in srcs:
                if dest == exe or dest.rstrip("/") + "/" + os.path.basename(src) == exe:
                    name = os.path.basename(src)
                    rel = next((r for r in IMAGE_BINARIES.values() if r.endswith("/" + name)), None)
                    if rel is None:
                        fail(f"Dockerfile target {st['name']}: copies {src}, which is no iotca binary")
                    return binary(rel), True
    return exe, False


def check_target(stages, st, dpkg):
    name = st["name"]
    if not isinstance(st["entrypoint"], list):
        fail(f"target {name}: ENTRYPOINT {st['entrypoint']} is shell form (needs /bin/sh); use [\"...\"]")
    user = next((s["user"] for s in chain(stages, st) if s["user"]), None)
    if not user or not re.fullmatch(r"[1-9][0-9]*(:[0-9]+)?", user):
        fail(f"target {name}: USER {user} is not a numeric non-root uid (runAsNonRoot needs one)")
    pkgs = [p for s in chain(stages, st) for p in s["packages"]]
    if not pkgs:
        fail(f"target {name}: installs no packages")
    image = dpkg.closure(pkgs) | dpkg.base
    exe, built = entry_binary(stages, st)
    if not built:
        owner = owners([exe]).get(exe)
        if owner not in pkgs:
            fail(f"target {name}: ENTRYPOINT {exe} belongs to package {owner}, which it does not install")
    if built and sanitized(exe):
        print(f"target {name}: NOTE: {exe} is a sanitizer build, linked unlike the image's; "
              "its libraries are checked in non-sanitizer builds (CI's first pass)")
        return image, int(user.split(":")[0])
    libs = ldd(exe)
    own = owners(libs.values())
    for soname, lib in sorted(libs.items()):
        pkg = own.get(lib)
        if pkg is None:
            fail(f"target {name}: {exe} links {lib}, which no Debian package ships")
        if pkg not in image:
            fail(f"target {name}: {exe} links {soname} from package {pkg}, which the image lacks; "
                 f"add {pkg} to its apt-get install")
    for soname in needed(exe):
        pkg = own.get(libs.get(soname))
        if pkg not in set(pkgs) | dpkg.base:
            fail(f"target {name}: {exe} needs {soname} itself (package {pkg}); install {pkg} "
                 "explicitly rather than through another package's dependencies")
    print(f"target {name}: {exe}: {len(libs)} libraries, all from its {len(pkgs)} packages "
          f"({' '.join(pkgs)}) and the base image")
    return image, int(user.split(":")[0])


def exec_commands(c):
    for hook in ("preStop", "postStart"):
        h = c.get("lifecycle", {}).get(hook, {})
        if "exec" in h:
            yield hook, h["exec"]["command"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        if "exec" in c.get(probe, {}):
            yield probe, c[probe]["exec"]["command"]


def check_dockerfile(text, dpkg):
    """{target: (packages in the image, uid)}; fails on the first problem."""
    stages = parse_dockerfile(text)
    for st in stages.values():
        if st["healthcheck"]:
            fail(f"Dockerfile stage {st['name']} has a HEALTHCHECK; Kubernetes probes the containers")
    return {st["name"]: check_target(stages, st, dpkg)
            for st in stages.values() if st["entrypoint"] is not None}


def self_test(text, dpkg):
    """The check fails on broken Dockerfiles."""
    def edit(old, new):
        if old not in text:
            fail(f"self-test: '{old}' not in deploy/Dockerfile")
        return text.replace(old, new, 1)

    edge_pkgs = "libgrpc29 libprotobuf-c1 libssl3 libnng1"
    broken = [] if sanitized(binary(IMAGE_BINARIES["edge"])) else [
        ("the edge without libnng1", "which the image lacks", edit(edge_pkgs, edge_pkgs.replace(" libnng1", ""))),
    ]
    broken += [
        ("a shell-form ENTRYPOINT", "shell form",
         edit('ENTRYPOINT ["/usr/local/bin/iotca-edge"]', "ENTRYPOINT /usr/local/bin/iotca-edge")),
        ("a HEALTHCHECK", "HEALTHCHECK", edit("USER 10001:10001", "HEALTHCHECK CMD true\nUSER 10001:10001")),
        ("a root USER", "non-root", edit("USER 10001:10001", "USER root")),
    ]
    for what, expect, bad in broken:
        try:
            with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
                check_dockerfile(bad, dpkg)
        except Failure as e:
            if expect not in str(e):
                fail(f"self-test, {what}: failed for another reason: {e}")
            print(f"refuses {what}: ok")
            continue
        fail(f"self-test: the check accepted {what}")


def main():
    text = DOCKERFILE.read_text()
    dpkg = Dpkg()
    self_test(text, dpkg)
    targets = check_dockerfile(text, dpkg)
    for overlay, objs in render_overlays().items():
        for w, t, c in containers(objs):
            where = f"{overlay}: {name_of(w)} container {c['name']}"
            key = image_key(c["image"])
            if key not in targets:
                fail(f"{where}: image {c['image']} is no target of deploy/Dockerfile")
            image, uid = targets[key]
            run_as = c.get("securityContext", {}).get("runAsUser",
                                                      t["spec"].get("securityContext", {}).get("runAsUser"))
            if run_as != uid:
                fail(f"{where}: runAsUser {run_as}, but the image's USER is {uid}")
            for what, cmd in exec_commands(c):
                if os.path.basename(cmd[0]) in SHELLS:
                    fail(f"{where}: {what} runs a shell ({cmd[0]}); the images need none")
                pkg = owners([cmd[0]]).get(cmd[0])
                if pkg not in image:
                    fail(f"{where}: {what} runs {cmd[0]} (package {pkg}), which image {key} lacks")
        print(f"{overlay}: every container's image, user and exec commands match deploy/Dockerfile")
    print("ok")


run_main(main)
