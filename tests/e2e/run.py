#!/usr/bin/env python3
"""End-to-end suite: real corosync clusters with real corosync-qdevice get their vote from a qnetd.

    tests/e2e/run.py [--impl c|rust] [-k NAME ...] [--keep] [-v] [--update-golden]
    tests/e2e/run.py --list
    tests/e2e/run.py --cleanup BASE

--impl c     the distribution's corosync-qnetd, -certutil and -tool (default, or $QNETD_IMPL)
--impl rust  our multi-call binary from $QNETD_BIN (or --qnetd-bin), run under the names
             corosync-qnetd, corosync-qnetd-certutil and corosync-qnetd-tool with the C flags

Each host (the qnetd host and every cluster node) is a network namespace plus a mount
namespace with its own /etc/corosync, /var/lib/corosync, /var/log, /run, /dev/shm and /tmp;
the hosts share a bridge in a separate namespace where partitions are nftables drops.
Nothing outside those namespaces is touched. Needs root, Python 3 stdlib only.

Prints one line per check (PASS/FAIL, measured time, what was observed), a short
diagnostic for each failure, and last `N passed, N failed`. Exit status 1 if any check
failed, 2 if prerequisites are missing, 130 if interrupted.
"""

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import checks  # noqa: E402
from cluster import C_QNETD, CheckFailed  # noqa: E402
from lab import Lab, LabError, cleanup_recorded  # noqa: E402
from snapshots import Snapshots  # noqa: E402

NEEDED = {
    # program: Debian package
    "corosync": "corosync",
    "corosync-quorumtool": "corosync",
    "corosync-qdevice": "corosync-qdevice",
    "corosync-qdevice-tool": "corosync-qdevice",
    "corosync-qdevice-net-certutil": "corosync-qdevice",
    "certutil": "libnss3-tools",
    "pk12util": "libnss3-tools",
    "nft": "nftables",
    "ip": "iproute2",
    "unshare": "util-linux",
    "nsenter": "util-linux",
    "mount": "mount",
}

DIAG_LINES = 80


class Interrupted(BaseException):
    """SIGTERM/SIGHUP: like Ctrl-C, not caught by the per-check `except Exception`."""


def _on_signal(signum, _frame):
    raise Interrupted(f"signal {signum}")


def missing_prerequisites(impl, rust_bin):
    missing = []
    if os.geteuid() != 0:
        missing.append("root (namespaces, bind mounts, nftables)")
    for prog, pkg in NEEDED.items():
        if shutil.which(prog) is None:
            missing.append(f"{prog} (Debian package {pkg})")
    for prog, path in C_QNETD.items():
        # In rust mode the C tool is still needed: it reads our daemon's IPC for comparison.
        if (impl == "c" or prog == "corosync-qnetd-tool") and not os.access(path, os.X_OK):
            missing.append(f"{path} (Debian package corosync-qnetd)")
    if impl == "rust":
        if not rust_bin:
            missing.append("QNETD_BIN (path of our qnetd binary) for --impl rust")
        elif not os.access(rust_bin, os.X_OK):
            missing.append(f"executable QNETD_BIN {rust_bin}")
    for d in ("/etc/corosync", "/var/lib/corosync", "/var/log", "/run", "/dev/shm", "/tmp"):
        if not os.path.isdir(d):
            missing.append(f"directory {d} (mount point for per-host copies)")
    return missing


def indent(text, n=DIAG_LINES):
    lines = text.rstrip("\n").splitlines()
    if len(lines) > n:
        lines = lines[:n] + [f"... ({len(lines) - n} more lines)"]
    return "\n".join("      " + ln for ln in lines)


class Report:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.rows = []

    def line(self, name, ok, seconds, detail, diag=""):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        self.rows.append((name, ok, seconds))
        print(f"{'PASS' if ok else 'FAIL'}  {name:<20} {seconds:6.1f}s  {detail}", flush=True)
        if diag:
            print(indent(diag), flush=True)


def run_scenario(scn, selected, args, base, report, snaps):
    shutil.rmtree(os.path.join(base, scn.name), ignore_errors=True)
    lab = Lab(os.path.join(base, scn.name), keep=args.keep, verbose=args.verbose)
    ctx = checks.Ctx(lab, args.impl, args.qnetd_bin, snaps)
    t0 = time.monotonic()
    print(f"[{scn.name}] setting up", flush=True)
    try:
        try:
            scn.setup(ctx)
        except Exception as e:  # noqa: BLE001 - any setup error fails the scenario's checks
            if not isinstance(e, (LabError, CheckFailed, OSError)):
                e = f"{e!r}\n{traceback.format_exc()}"
            try:
                diag = ctx.diag() if ctx.qnetd is not None else ""
            except Exception as d:  # noqa: BLE001
                diag = f"(diagnostics failed: {d!r})"
            for name, _ in scn.checks:
                if name in selected:
                    report.line(name, False, 0.0, f"setup of scenario '{scn.name}' failed: {e}",
                                diag if name == scn.checks[0][0] else "")
            return
        setup_s = time.monotonic() - t0
        print(f"[{scn.name}] ready in {setup_s:.1f}s ("
              + ", ".join(f"{k} {v:.1f}s" for k, v in ctx.timings) + ")", flush=True)
        for name, fn in scn.checks:
            if name not in selected:
                continue
            t = time.monotonic()
            try:
                res = fn(ctx)
                detail, shown = (res if isinstance(res, tuple) else (res, time.monotonic() - t))
                report.line(name, True, shown, detail)
            except CheckFailed as e:
                report.line(name, False, time.monotonic() - t, str(e), (e.diag + "\n" if e.diag else "") + ctx.diag())
            except Exception as e:  # noqa: BLE001 - a harness or tool error fails this check only
                report.line(name, False, time.monotonic() - t, f"error: {e!r}",
                            traceback.format_exc() + ctx.diag())
    finally:
        t = time.monotonic()
        if args.keep:
            print(f"[{scn.name}] kept running; enter a host with:", flush=True)
            for h in lab.hosts:
                print(f"      nsenter -t {h.holder.pid} -n -m -- bash    # {h.name} {h.addr}", flush=True)
        else:
            stragglers = lab.cleanup()
            if stragglers:
                print(f"[{scn.name}] note: killed stragglers in lab namespaces: {stragglers}", flush=True)
        print(f"[{scn.name}] done in {time.monotonic() - t0:.1f}s (teardown {time.monotonic() - t:.1f}s)",
              flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--impl", choices=["c", "rust"], default=os.environ.get("QNETD_IMPL", "c") or "c")
    p.add_argument("--qnetd-bin", default=os.environ.get("QNETD_BIN"),
                   help="our binary for --impl rust (default $QNETD_BIN)")
    p.add_argument("-k", action="append", default=[], metavar="NAME",
                   help="run only checks whose name contains NAME, or all checks of scenario NAME "
                        "(repeatable)")
    p.add_argument("--keep", action="store_true",
                   help="leave hosts, daemons and files in place for debugging")
    p.add_argument("--base", help="working directory (default: a new one under /var/tmp)")
    p.add_argument("--update-golden", action="store_true",
                   help="with --impl c: rewrite tests/e2e/golden/ from this run")
    p.add_argument("--list", action="store_true", help="list check names and exit")
    p.add_argument("--cleanup", metavar="BASE", help="stop what a --keep run left in BASE, remove it")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args()

    if args.list:
        for s in checks.SCENARIOS:
            print(f"{s.name}: {', '.join(c for c, _ in s.checks)}")
        print(f"(after all): {checks.TOOL_OUTPUT_CHECK}")
        return 0
    if args.cleanup:
        pids = cleanup_recorded(args.cleanup)
        print(f"stopped {len(pids)} recorded processes, removed {args.cleanup}")
        return 0
    if args.update_golden and args.impl != "c":
        p.error("--update-golden only with --impl c: the golden files are the C tool's output")
    if args.qnetd_bin:
        args.qnetd_bin = os.path.abspath(args.qnetd_bin)

    scenario_of = {c: s.name for s in checks.SCENARIOS for c, _ in s.checks}
    selected = [c for c in checks.ALL_CHECKS
                if not args.k or any(k in c or k == scenario_of.get(c) for k in args.k)]
    if not selected:
        print(f"no check matches {args.k}; checks are: {', '.join(checks.ALL_CHECKS)}")
        print("0 passed, 0 failed")
        return 1

    report = Report()
    missing = missing_prerequisites(args.impl, args.qnetd_bin)
    if missing:
        print("missing prerequisites:\n" + "\n".join(f"  - {m}" for m in missing))
        report.line("prerequisites", False, 0.0, "; ".join(missing))
        print(f"{report.passed} passed, {report.failed} failed")
        return 2

    impl_desc = C_QNETD["corosync-qnetd"] if args.impl == "c" else args.qnetd_bin
    base = args.base or tempfile.mkdtemp(prefix="qnetd-e2e.", dir="/var/tmp")
    os.makedirs(base, exist_ok=True)
    print(f"qnetd e2e: impl={args.impl} ({impl_desc}), {len(selected)} check(s), work dir {base}", flush=True)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    snaps = Snapshots(args.impl, update=args.update_golden)
    t0 = time.monotonic()
    interrupted = False
    try:
        for scn in checks.SCENARIOS:
            if any(name in selected for name, _ in scn.checks):
                run_scenario(scn, selected, args, base, report, snaps)
        if checks.TOOL_OUTPUT_CHECK in selected:
            t = time.monotonic()
            try:
                report.line(checks.TOOL_OUTPUT_CHECK, True, time.monotonic() - t, checks.check_tool_output(snaps))
            except CheckFailed as e:
                report.line(checks.TOOL_OUTPUT_CHECK, False, time.monotonic() - t, str(e), e.diag)
            except Exception as e:  # noqa: BLE001
                report.line(checks.TOOL_OUTPUT_CHECK, False, time.monotonic() - t, f"error: {e!r}",
                            traceback.format_exc())
    except (KeyboardInterrupt, Interrupted) as e:
        interrupted = True
        print(f"interrupted ({e or 'Ctrl-C'}); everything started was stopped", flush=True)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        if args.keep:
            print(f"kept: {base}  (stop with: {sys.argv[0]} --cleanup {base})")
        elif report.failed or interrupted:
            print(f"processes and namespaces are gone; logs and configs left in {base}")
        elif not args.base:
            shutil.rmtree(base, ignore_errors=True)

    total = time.monotonic() - t0
    print(f"total {total:.1f}s; timings: " + ", ".join(f"{n} {s:.1f}s" for n, _, s in report.rows))
    print(f"{report.passed} passed, {report.failed} failed")
    if interrupted:
        return 130
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
