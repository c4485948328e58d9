#!/usr/bin/env python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""The shape of what sidelane shows operators, without its values: metric
families, types and label sets; JSON key paths; `status` text lines; access
log keys by kind. tests/integ/admin.c compares each with tests/golden/*.txt,
so a rename, a lost counter or a moved key fails the suite and a change to
an output is a change to a golden file, reviewed as such.

  shape.py GOLDEN metrics URL       /metrics
  shape.py GOLDEN json URL|FILE     /stats or `status --json` output
  shape.py GOLDEN text FILE [OLD=NEW ...]   `status` output, OLD replaced
  shape.py GOLDEN alog FILE         the access log (JSON lines)

Exit 0 when the shape equals GOLDEN, 1 with a diff when not. With
SIDELANE_GOLDEN_UPDATE=1 in the environment GOLDEN is rewritten instead.
"""
import difflib
import json
import os
import re
import sys
import urllib.request

# label values that depend on the machine, not on sidelane
VOLATILE_LABELS = {"worker", "version"}


def fetch(src):
    if src.startswith("http://"):
        with urllib.request.urlopen(src, timeout=5) as r:
            return r.read().decode()
    with open(src) as f:
        return f.read()


def metrics(text):
    out = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            out.add("TYPE %s %s" % (name, kind))
        elif line and not line.startswith("#"):
            m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s", line)
            labels = []
            for k, v in re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""):
                labels.append("%s=%s" % (k, "*" if k in VOLATILE_LABELS else v))
            out.add("%s{%s}" % (m.group(1), ",".join(sorted(labels))))
    return sorted(out)


# what these hold depends on what else runs on the host
MACHINE_KEYS = {"coexist"}


def paths(o, p, out):
    if isinstance(o, dict):
        if not o:
            out.add(p + "{}")
        for k, v in o.items():
            q = p + "." + k if p else k
            if k in MACHINE_KEYS:
                out.add(q)
                continue
            paths(v, q, out)
    elif isinstance(o, list):
        out.add(p + "[]")
        for v in o:
            paths(v, p + "[]", out)
    else:
        out.add(p)


def jsonshape(text):
    out = set()
    paths(json.loads(text), "", out)
    return sorted(out)


# what follows these depends on the kernel or on what else runs on the
# host (other programs on the cgroups), not on sidelane's output format
MACHINE_TAILS = ("redirect: ", "backlog bound: ", "admission: app_sockets ",
                 "kTLS: ", "coexist: ")


def textshape(text, subs):
    out = []
    in_coexist = False
    for line in text.splitlines():
        if in_coexist and line.startswith(" "):
            continue
        in_coexist = line.startswith("coexist:")
        for old, new in subs:
            line = line.replace(old, new)
        for tail in MACHINE_TAILS:
            i = line.find(tail)
            if i >= 0:
                line = line[:i + len(tail)] + "..."
        # a config's version is its file's hash
        line = re.sub(r"version [0-9a-f]{16}\b", "version V", line)
        line = re.sub(r"\d+(\.\d+)?", "N", line)
        # lists of what happened (reason=N ...) depend on the traffic
        line = re.sub(r"\s+[\w.-]+=N\b", "", line).rstrip()
        out.append(line)
    return out


def alog(text):
    out = set()
    for line in text.splitlines():
        e = json.loads(line)
        out.add("%s: %s" % (e.get("kind"), " ".join(sorted(e))))
    return sorted(out)


def main():
    golden, kind, src = sys.argv[1:4]
    text = fetch(src)
    if kind == "metrics":
        got = metrics(text)
    elif kind == "json":
        got = jsonshape(text)
    elif kind == "text":
        got = textshape(text, [a.split("=", 1) for a in sys.argv[4:]])
    elif kind == "alog":
        got = alog(text)
    else:
        sys.exit("unknown kind " + kind)
    got = [l + "\n" for l in got]
    if os.environ.get("SIDELANE_GOLDEN_UPDATE") == "1":
        with open(golden, "w") as f:
            f.writelines(got)
        print("wrote %s (%d lines)" % (golden, len(got)))
        return 0
    with open(golden) as f:
        want = f.readlines()
    if got == want:
        return 0
    sys.stdout.writelines(difflib.unified_diff(want, got, golden, "now"))
    return 1


if __name__ == "__main__":
    sys.exit(main())
