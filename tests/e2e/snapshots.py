"""corosync-qnetd-tool output, captured at fixed points of the scenarios and compared.

Design: at a few settled moments (2-node steady state, a 1|2 split, a 2|2 split,
two clusters at once, lms/2nodelms/heuristics splits, qnetd down) the checks call
``capture``, which runs `corosync-qnetd-tool` with a set of flags and keeps the
exit code, stdout and stderr. Before comparing, the parts that differ from run to
run are masked (see ``normalise``). The result is compared with a *golden* file
under tests/e2e/golden/, written from a run against the C qnetd
(``--impl c --update-golden``). So:

* ``--impl c``: the C tool against the C daemon must reproduce the golden files;
  this proves the captures are deterministic after masking.
* ``--impl rust``: our tool against our daemon must reproduce the same golden files
  byte for byte, and so must the distribution's C tool pointed at our daemon's IPC
  socket (same IPC protocol). A mismatch prints a unified diff.

Besides, some captures are checked against the outputs of a lab run of the C qnetd
(tests/e2e/reference/, copied from the project spec): same cluster name, same
addresses, only the heartbeat interval differs (the lab ran with default timeouts).
"""

import difflib
import os
import re

from cluster import CheckFailed

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN_DIR = os.path.join(HERE, "golden")
REFERENCE_DIR = os.path.join(HERE, "reference")

# (snapshot, tool args) -> reference file of the lab run.
REFERENCE = {
    ("pair-steady", ("-s",)): "qnetd-tool-s.txt",
    ("pair-steady", ("-sv",)): "qnetd-tool-sv.txt",
    ("pair-steady", ("-l",)): "qnetd-tool-l.txt",
    ("pair-steady", ("-lv",)): "qnetd-tool-lv.txt",
    ("pair-steady", ("-l", "-c", "labcluster")): "qnetd-tool-l-c.txt",
    ("pair-partition", ("-lv",)): "partition-qnetd-tool-lv.txt",
    ("quad-partition", ("-lv",)): "partition4-qnetd-tool-lv.txt",
}


def normalise(text):
    """Mask what legitimately differs between runs.

    * client source ports;
    * ring sequence numbers (the ring id's node part stays);
    * the kind of the last reply in `Vote: <last> (<last ACK/NACK>)` when it merely
      restates the vote: whether a client's latest reply carried "ACK" or "No change"
      depends on which qdevice asked first, which is a race. The bracket, the vote
      that is in force, is kept."""
    text = re.sub(r"^(\s+Client address:\t+.*):\d+$", r"\1:PORT", text, flags=re.M)
    text = re.sub(r"^(\s+Ring ID:\t+[0-9a-f]+)\.[0-9a-f]+$", r"\1.SEQ", text, flags=re.M)
    text = re.sub(r"^(\s+Vote:\t+)(?:No change|ACK|NACK) \((ACK|NACK)\)$",
                  lambda m: f"{m.group(1)}(ACK|No change) ({m.group(2)})"
                  if m.group(2) == "ACK" else f"{m.group(1)}(NACK|No change) ({m.group(2)})", text, flags=re.M)
    return text


def normalise_for_reference(text):
    """The lab ran with qdevice's default timeout, so its heartbeat differs."""
    return re.sub(r"^(\s+HB interval:\t+)\d+ms$", r"\1HBms", normalise(text), flags=re.M)


def render(args, result):
    rc, out, err = result
    block = f"$ corosync-qnetd-tool {' '.join(args)}\n[exit {rc}]\n{normalise(out)}"
    if err:
        block += f"[stderr]\n{normalise(err)}"
    return block


class Snapshots:
    def __init__(self, impl, update=False):
        self.impl = impl
        self.update = update
        self.taken = {}  # name -> {"ours": [(args, result)], "c": [...]}

    def capture(self, name, qnetd, argsets):
        ours, c = [], []
        for args in argsets:
            r = qnetd.tool(*args)
            ours.append((tuple(args), (r.returncode, r.stdout, r.stderr)))
            if self.impl != "c":
                r = qnetd.c_tool(*args)
                c.append((tuple(args), (r.returncode, r.stdout, r.stderr)))
        self.taken[name] = {"ours": ours, "c": c}

    def compare_all(self):
        if not self.taken:
            raise CheckFailed("no tool output was captured (the scenarios that capture it failed or were not selected)")
        problems, notes = [], []
        for name, runs in sorted(self.taken.items()):
            text = "".join(render(a, r) for a, r in runs["ours"])
            path = os.path.join(GOLDEN_DIR, f"{name}.txt")
            if self.update and self.impl == "c":
                os.makedirs(GOLDEN_DIR, exist_ok=True)
                with open(path, "w") as f:
                    f.write(text)
                notes.append(f"{name}: golden written")
            elif not os.path.exists(path):
                problems.append(f"{name}: no golden file {os.path.relpath(path, HERE)} "
                                f"(create it with --impl c --update-golden)")
                continue
            else:
                with open(path) as f:
                    golden = f.read()
                who = "C tool vs C qnetd" if self.impl == "c" else "our tool vs our qnetd"
                d = diff(golden, text, f"golden/{name}.txt", f"{name} ({who})")
                if d:
                    problems.append(d)
                if runs["c"]:
                    c_text = "".join(render(a, r) for a, r in runs["c"])
                    d = diff(golden, c_text, f"golden/{name}.txt", f"{name} (C tool vs our qnetd)")
                    if d:
                        problems.append(d)
            for args, (rc, out, err) in runs["ours"]:
                ref = REFERENCE.get((name, args))
                if ref is None:
                    continue
                with open(os.path.join(REFERENCE_DIR, ref)) as f:
                    want = normalise_for_reference(f.read())
                d = diff(want, normalise_for_reference(out), f"reference/{ref}",
                         f"{name}: corosync-qnetd-tool {' '.join(args)}")
                if d:
                    problems.append(d)
                else:
                    notes.append(f"{name} {' '.join(args)} = lab reference")
        if problems:
            raise CheckFailed(f"{len(problems)} output difference(s)", "\n".join(problems))
        checked = sum(len(r["ours"]) + len(r["c"]) for r in self.taken.values())
        return (f"{checked} tool outputs from {len(self.taken)} snapshots match golden; "
                f"{sum(1 for n in notes if n.endswith('reference'))} also match the lab reference")


def diff(want, got, want_name, got_name):
    if want == got:
        return ""
    return "".join(difflib.unified_diff(want.splitlines(True), got.splitlines(True), want_name, got_name))


def compare_all(snaps):
    return snaps.compare_all()
