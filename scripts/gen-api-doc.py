#!/usr/bin/python3
"""Generate docs/api.md, the iotca API reference, from the proto comments.

Usage:
  scripts/gen-api-doc.py               write the Markdown to stdout
  scripts/gen-api-doc.py -o FILE       write it to FILE
  scripts/gen-api-doc.py --check FILE  regenerate and compare with FILE;
                                       exit 1 (with a unified diff) if they
                                       differ

Runs protoc (with source info) on the iotca.v1 protos and renders the
FileDescriptorSet. The output is deterministic: it depends only on the protos.
Works from any working directory; the repository root is found from this
script's location.
"""

import argparse
import difflib
import os
import re
import shutil
import subprocess
import sys
import tempfile

from google.protobuf import descriptor_pb2

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROTO_DIR = os.path.join(REPO_ROOT, "proto")
PROTO_FILES = [
    "iotca/v1/registry.proto",
    "iotca/v1/association.proto",
    "iotca/v1/device_message.proto",
]
REGEN_CMD = "scripts/gen-api-doc.py -o docs/api.md"

# gRPC status code names (google.rpc.Code), in numeric order.
STATUS_CODES = [
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
    "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
    "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
]
STATUS_RE = re.compile(r"\b(" + "|".join(STATUS_CODES) + r")\b")

FDP = descriptor_pb2.FieldDescriptorProto
SCALAR_NAMES = {
    FDP.TYPE_DOUBLE: "double", FDP.TYPE_FLOAT: "float",
    FDP.TYPE_INT64: "int64", FDP.TYPE_UINT64: "uint64",
    FDP.TYPE_INT32: "int32", FDP.TYPE_FIXED64: "fixed64",
    FDP.TYPE_FIXED32: "fixed32", FDP.TYPE_BOOL: "bool",
    FDP.TYPE_STRING: "string", FDP.TYPE_BYTES: "bytes",
    FDP.TYPE_UINT32: "uint32", FDP.TYPE_SFIXED32: "sfixed32",
    FDP.TYPE_SFIXED64: "sfixed64", FDP.TYPE_SINT32: "sint32",
    FDP.TYPE_SINT64: "sint64",
}

# SourceCodeInfo path components (descriptor.proto field numbers).
FILE_MESSAGE, FILE_ENUM, FILE_SERVICE, FILE_SYNTAX = 4, 5, 6, 12
MSG_FIELD, MSG_NESTED, MSG_ENUM = 2, 3, 4
ENUM_VALUE = 2
SERVICE_METHOD = 2


# --------------------------------------------------------------- loading

def load_descriptor_set():
    protoc = shutil.which("protoc")
    if protoc is None:
        sys.exit("gen-api-doc: protoc not found in PATH (apt install protobuf-compiler)")
    with tempfile.TemporaryDirectory(prefix="iotca-apidoc-") as tmp:
        out = os.path.join(tmp, "descriptors.pb")
        cmd = [protoc, "--include_source_info", "--include_imports",
               "--descriptor_set_out=" + out, "-I", PROTO_DIR] + PROTO_FILES
        res = subprocess.run(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, universal_newlines=True)
        if res.returncode != 0:
            sys.exit("gen-api-doc: protoc failed:\n" + res.stdout + res.stderr)
        fds = descriptor_pb2.FileDescriptorSet()
        with open(out, "rb") as f:
            fds.ParseFromString(f.read())
    return fds


class Comments:
    """Leading (and leading detached) comments of one file, by path."""

    def __init__(self, fd):
        self.leading = {}
        self.detached = {}
        for loc in fd.source_code_info.location:
            path = tuple(loc.path)
            if loc.HasField("leading_comments"):
                self.leading[path] = clean(loc.leading_comments)
            if loc.leading_detached_comments:
                self.detached[path] = [clean(c) for c in loc.leading_detached_comments]

    def get(self, path):
        return self.leading.get(tuple(path), "")

    def get_detached(self, path):
        return self.detached.get(tuple(path), [])


def clean(comment):
    """Comment text as written: strip one leading space per line."""
    lines = comment.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    out = [ln[1:] if ln.startswith(" ") else ln for ln in lines]
    return "\n".join(ln.rstrip() for ln in out).strip("\n")


# ------------------------------------------------------------- rendering

def anchor(full_name):
    """Stable HTML anchor id for a fully qualified name."""
    return re.sub(r"[^a-z0-9]+", "-", full_name.strip(".").lower()).strip("-")


def escape_text(text):
    """Escape Markdown/HTML outside `code spans` (for prose and table cells)."""
    parts = text.split("`")
    if len(parts) % 2 == 0:  # unbalanced backticks: treat all as text
        parts = [text.replace("`", "\\`")]
    for i in range(0, len(parts), 2):
        parts[i] = (parts[i].replace("\\", "\\\\").replace("&", "&amp;").replace("<", "&lt;")
                    .replace(">", "&gt;").replace("*", "\\*"))
    return "`".join(parts)


def cell(text):
    """A comment as one Markdown table cell."""
    if not text:
        return ""
    lines = [escape_text(ln.strip()) for ln in text.split("\n")]
    return "<br>".join(lines).replace("|", "\\|")


def block(text):
    """A comment as Markdown: prose if it is plain, else a verbatim block."""
    if not text:
        return []
    lines = text.split("\n")
    plain = all(not ln.startswith((" ", "\t", "-", "*", "#", ">")) and
                not re.match(r"^\d+\.", ln) for ln in lines)
    if plain:
        out = []
        for ln in lines:
            out.append(escape_text(ln) if ln else "")
        return out + [""]
    fence = "~~~" if "```" in text else "```"
    return [fence + "text"] + lines + [fence, ""]


class Doc:
    def __init__(self, fds):
        self.files = [fd for fd in fds.file if fd.name in PROTO_FILES]
        self.files.sort(key=lambda fd: PROTO_FILES.index(fd.name))
        self.known = set()  # fully qualified names of messages and enums
        self.map_entries = {}  # full name -> (key field, value field)
        for fd in self.files:
            prefix = "." + fd.package if fd.package else ""
            for m in fd.message_type:
                self._collect(prefix, m)
            for e in fd.enum_type:
                self.known.add(prefix + "." + e.name)

    def _collect(self, prefix, m):
        name = prefix + "." + m.name
        self.known.add(name)
        if m.options.map_entry:
            self.map_entries[name] = (m.field[0], m.field[1])
        for n in m.nested_type:
            self._collect(name, n)
        for e in m.enum_type:
            self.known.add(name + "." + e.name)

    # -- types

    def type_ref(self, type_name):
        short = type_name.rsplit(".", 1)[-1]
        if type_name in self.known:
            return "[%s](#%s)" % (short, anchor(type_name))
        return "`%s`" % type_name.lstrip(".")

    def field_type(self, f):
        if f.type in (FDP.TYPE_MESSAGE, FDP.TYPE_ENUM):
            if f.type_name in self.map_entries:
                k, v = self.map_entries[f.type_name]
                return "map&lt;%s, %s&gt;" % (self.field_type(k), self.field_type(v))
            base = self.type_ref(f.type_name)
        else:
            base = SCALAR_NAMES.get(f.type, "?")
        if f.label == FDP.LABEL_REPEATED:
            return "repeated " + base
        if f.proto3_optional:
            return "optional " + base
        return base

    # -- sections

    def render(self):
        out = []
        out += [
            "# iotca API reference (iotca.v1)",
            "",
            "This file is generated by `scripts/gen-api-doc.py` from the comments in "
            "`proto/iotca/v1/` (" + ", ".join("`%s`" % os.path.basename(p) for p in PROTO_FILES) +
            "); do not edit it by hand. After changing a proto, regenerate it with "
            "`/usr/bin/python3 " + REGEN_CMD + "` (the `api_doc_drift` test fails "
            "while it is out of date). The proto files remain the contract: where this "
            "page and a proto disagree, the proto is right.",
            "",
        ]
        out += self.render_toc()
        out += self.render_files()
        out += self.render_services()
        out += self.render_status_table()
        out += self.render_messages()
        out += self.render_enums()
        while out and out[-1] == "":
            out.pop()
        return "\n".join(out) + "\n"

    def services(self):
        for fd in self.files:
            c = Comments(fd)
            for si, s in enumerate(fd.service):
                yield fd, c, si, s

    def messages(self):
        for fd in self.files:
            c = Comments(fd)
            prefix = fd.package
            for mi, m in enumerate(fd.message_type):
                yield from self._walk_msg(fd, c, prefix, m, [FILE_MESSAGE, mi])

    def _walk_msg(self, fd, c, prefix, m, path):
        name = prefix + "." + m.name
        if not m.options.map_entry:
            yield fd, c, name, m, path
        for ni, n in enumerate(m.nested_type):
            yield from self._walk_msg(fd, c, name, n, path + [MSG_NESTED, ni])

    def enums(self):
        for fd in self.files:
            c = Comments(fd)
            for ei, e in enumerate(fd.enum_type):
                yield fd, c, fd.package + "." + e.name, e, [FILE_ENUM, ei]
            for _, _, mname, m, mpath in self.messages_of(fd, c):
                for ei, e in enumerate(m.enum_type):
                    yield fd, c, mname + "." + e.name, e, mpath + [MSG_ENUM, ei]

    def messages_of(self, fd, c):
        for mi, m in enumerate(fd.message_type):
            yield from self._walk_msg(fd, c, fd.package, m, [FILE_MESSAGE, mi])

    def render_toc(self):
        out = ["## Contents", ""]
        out.append("- [Files](#files)")
        out.append("- [Services](#services)")
        for fd, _, _, s in self.services():
            full = fd.package + "." + s.name
            out.append("  - [%s](#%s)" % (s.name, anchor(full)))
        out.append("- [Status codes by RPC](#status-codes-by-rpc)")
        out.append("- [Messages](#messages)")
        out.append("- [Enums](#enums)")
        return out + [""]

    def render_files(self):
        out = ["## Files", ""]
        for fd in self.files:
            c = Comments(fd)
            out += ['<a id="%s"></a>' % anchor("file." + fd.name), ""]
            out += ["### %s" % fd.name, ""]
            kinds = []
            if fd.service:
                kinds.append(("service " if len(fd.service) == 1 else "services ") + ", ".join(
                    "[%s](#%s)" % (s.name, anchor(fd.package + "." + s.name)) for s in fd.service))
            kinds.append("%s, %s" % (
                plural(sum(1 for _ in self.messages_of(fd, c)), "message"),
                plural(len(fd.enum_type), "enum")))
            out += ["Package `%s`; %s." % (fd.package, "; ".join(kinds)), ""]
            # The file comment is the detached comment before `syntax`.
            for text in c.get_detached([FILE_SYNTAX]) + ([c.get([FILE_SYNTAX])] if c.get([FILE_SYNTAX]) else []):
                out += block_verbatim(text)
        return out

    def render_services(self):
        out = ["## Services", ""]
        for fd, c, si, s in self.services():
            full = fd.package + "." + s.name
            out += ['<a id="%s"></a>' % anchor(full), ""]
            out += ["### %s" % s.name, ""]
            out += ["Service `%s`, defined in `proto/%s`." % (full, fd.name), ""]
            out += block(c.get([FILE_SERVICE, si]))
            out += ["| RPC | Request | Response |", "| --- | --- | --- |"]
            for m in s.method:
                out.append("| [%s](#%s) | %s | %s |" % (
                    m.name, anchor(full + "." + m.name),
                    self.stream_ref(m.client_streaming, m.input_type),
                    self.stream_ref(m.server_streaming, m.output_type)))
            out.append("")
            for mi, m in enumerate(s.method):
                out += ['<a id="%s"></a>' % anchor(full + "." + m.name), ""]
                out += ["#### %s.%s" % (s.name, m.name), ""]
                out += ["`rpc %s(%s%s) returns (%s%s)`" % (
                    m.name, "stream " if m.client_streaming else "",
                    m.input_type.rsplit(".", 1)[-1],
                    "stream " if m.server_streaming else "",
                    m.output_type.rsplit(".", 1)[-1]), ""]
                out += ["%s → %s" % (self.type_ref(m.input_type),
                                     self.type_ref(m.output_type)), ""]
                out += block_verbatim(c.get([FILE_SERVICE, si, SERVICE_METHOD, mi]))
        return out

    def stream_ref(self, streaming, type_name):
        return ("stream " if streaming else "") + self.type_ref(type_name)

    def render_status_table(self):
        out = ["## Status codes by RPC", ""]
        out += [
            "Extracted from each RPC's comment: the codes listed under `Errors:` "
            "with their reason, then any other code the comment mentions. Every RPC "
            "can also fail with the common codes described in the file comments "
            "(see [Files](#files)).",
            "",
            "| RPC | Status codes |",
            "| --- | --- |",
        ]
        for fd, c, si, s in self.services():
            full = fd.package + "." + s.name
            for mi, m in enumerate(s.method):
                entries = status_codes(c.get([FILE_SERVICE, si, SERVICE_METHOD, mi]))
                items = []
                for code, reason in entries:
                    if reason is None:
                        items.append("`%s` (mentioned in the text, not under `Errors:`)" % code)
                    elif reason:
                        items.append("`%s`: %s" % (code, cell(reason)))
                    else:
                        items.append("`%s`" % code)
                out.append("| [%s.%s](#%s) | %s |" % (
                    s.name, m.name, anchor(full + "." + m.name),
                    "<br>".join(items) if items else "only the common codes"))
        return out + [""]

    def render_messages(self):
        out = ["## Messages", ""]
        for fd, c, name, m, path in self.messages():
            out += ['<a id="%s"></a>' % anchor(name), ""]
            out += ["### %s" % name[len(fd.package) + 1:], ""]
            out += ["`%s`, defined in `proto/%s`." % (name, fd.name), ""]
            out += block(c.get(path))
            if not m.field:
                out += ["No fields.", ""]
                continue
            out += ["| Field | Type | Number | Description |",
                    "| --- | --- | --- | --- |"]
            for fi, f in enumerate(m.field):
                out.append("| `%s` | %s | %d | %s |" % (
                    f.name, self.field_type(f), f.number,
                    cell(c.get(path + [MSG_FIELD, fi]))))
            out.append("")
        return out

    def render_enums(self):
        out = ["## Enums", ""]
        for fd, c, name, e, path in self.enums():
            out += ['<a id="%s"></a>' % anchor(name), ""]
            out += ["### %s" % name[len(fd.package) + 1:], ""]
            out += ["`%s`, defined in `proto/%s`." % (name, fd.name), ""]
            out += block(c.get(path))
            header = ["| Name | Number | Description |", "| --- | --- | --- |"]
            out += header
            for vi, v in enumerate(e.value):
                vpath = path + [ENUM_VALUE, vi]
                detached = c.get_detached(vpath)
                if detached and vi > 0:
                    # A comment standing between values introduces a group.
                    out.append("")
                    for text in detached:
                        out += block(text)
                    out += header
                out.append("| `%s` | %d | %s |" % (v.name, v.number, cell(c.get(vpath))))
            out.append("")
        return out


def plural(n, word):
    return "%d %s%s" % (n, word, "" if n == 1 else "s")


def block_verbatim(text):
    if not text:
        return []
    fence = "~~~" if "```" in text else "```"
    return [fence + "text"] + text.split("\n") + [fence, ""]


def status_codes(comment):
    """[(code, reason)] for one RPC comment.

    Codes listed in the `Errors:` block come first, in order, each with its
    reason (the rest of its line plus continuation lines indented further).
    Then every other code the comment mentions, with no reason.
    """
    lines = comment.split("\n")
    entries = []
    seen = set()
    i = 0
    while i < len(lines):
        if re.match(r"^Errors\b[^:]*:", lines[i]):
            i += 1
            cur = None
            entry_indent = None  # set by the first entry; deeper = continuation
            while i < len(lines) and lines[i].startswith((" ", "\t")):
                ln = lines[i]
                indent = len(ln) - len(ln.lstrip())
                m = re.match(r"^\s+([A-Z_]+)\b\s*(.*)$", ln)
                if (m and m.group(1) in STATUS_CODES and
                        (entry_indent is None or indent == entry_indent)):
                    entry_indent = indent
                    cur = [m.group(1), m.group(2).strip()]
                    entries.append(cur)
                elif cur is not None and indent > entry_indent:
                    cur[1] = (cur[1] + " " + ln.strip()).strip()
                i += 1
            continue
        i += 1
    result = []
    for code, reason in entries:
        if code not in seen:
            seen.add(code)
            result.append((code, reason))
    for m in STATUS_RE.finditer(comment):
        code = m.group(1)
        if code != "OK" and code not in seen:
            seen.add(code)
            result.append((code, None))
    return result


# ------------------------------------------------------------------ main

def main():
    ap = argparse.ArgumentParser(description="Generate the iotca API reference (Markdown).")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    g.add_argument("--check", metavar="FILE",
                   help="compare FILE with freshly generated output; exit 1 if it differs")
    args = ap.parse_args()

    text = Doc(load_descriptor_set()).render()

    if args.check:
        try:
            with open(args.check, encoding="utf-8") as f:
                current = f.read()
        except OSError as e:
            current = ""
            print("cannot read %s: %s" % (args.check, e))
        if current != text:
            diff = difflib.unified_diff(
                current.splitlines(keepends=True), text.splitlines(keepends=True),
                fromfile="docs/api.md (committed)", tofile="docs/api.md (generated)")
            sys.stdout.writelines(diff)
            print()
            print("docs/api.md is out of date: run " + REGEN_CMD)
            print("0 passed, 1 failed")
            return 1
        print("1 passed, 0 failed")
        return 0
    if args.output:
        with open(args.output, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
