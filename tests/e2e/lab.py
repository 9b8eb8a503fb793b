"""Lab plumbing: hosts as namespaces, a bridge between them, processes tracked by PID.

A *host* is a long-lived holder process (``unshare --net --mount``) that owns a
network namespace and a mount namespace in which /etc/corosync, /var/lib/corosync,
/var/log, /run, /dev/shm and /tmp are bind mounts of per-host directories under the
lab's base directory. Everything that runs "on" a host is started with
``nsenter -t <holder> -n -m`` which execs the target in place, so the PID the
harness records is the daemon's own PID.

The hosts hang off a bridge that lives in a separate *switch* namespace; partitions
are nftables rules (bridge family, forward hook) in that namespace that drop frames
between two hosts' ports, so a cut link looks like a real one: no RST, no ICMP,
just silence. Nothing here touches the root network namespace.
"""

import ctypes
import os
import select
import shutil
import signal
import subprocess
import time

# Directories each host gets its own copy of (inside path, directory name under
# the host's root). /tmp goes last: the base directory may itself live under /tmp.
HOST_DIRS = [
    ("/etc/corosync", "etc-corosync"),
    ("/var/lib/corosync", "var-lib-corosync"),
    ("/var/log", "var-log"),
    ("/run", "run"),
    ("/dev/shm", "dev-shm"),
    ("/tmp", "tmp"),
]

SUBNET = "10.213.7"
PREFIX = 24

# Environment for everything run on a host: no locale or timezone surprises in
# tool output, nothing inherited from the caller's shell beyond PATH.
HOST_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LC_ALL": "C",
    "TZ": "UTC",
    "HOME": "/root",
}

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def _die_with_parent():
    """preexec_fn: if the harness itself dies hard, its children die too."""
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class LabError(Exception):
    pass


def _ns_id(pid, kind):
    return os.readlink(f"/proc/{pid}/ns/{kind}")


def _start_time(pid):
    """Kernel start time of a process: with the PID it names one process for good."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return "?" if fields[0] == "Z" else fields[19]  # a zombie is as good as gone
    except (OSError, IndexError):
        return "?"


def _signal(pid, sig):
    try:
        os.kill(pid, sig)
        return True
    except ProcessLookupError:
        return False


def cleanup_recorded(base):
    """Stop what a --keep run left behind, from its recorded PIDs (newest first,
    holders last), then remove its directory. Returns the PIDs signalled."""
    entries = []
    for root, _, files in os.walk(base):
        if "pids" in files:
            with open(os.path.join(root, "pids")) as f:
                for line in f:
                    pid, start, name = line.split(maxsplit=2)
                    entries.append((int(pid), start, name.strip()))
    stopped = []
    daemons = [e for e in entries if not e[2].endswith("/holder")]
    holders = [e for e in entries if e[2].endswith("/holder")]
    for group, sig in ((daemons[::-1], signal.SIGTERM), (holders[::-1], signal.SIGKILL)):
        for pid, start, _ in group:
            if _start_time(pid) == start and _signal(pid, sig):
                stopped.append(pid)
        deadline = time.monotonic() + 10
        while any(_start_time(p) == s for p, s, _ in group) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid, start, _ in group:
            if _start_time(pid) == start:
                _signal(pid, signal.SIGKILL)
    shutil.rmtree(base, ignore_errors=True)
    return stopped


class Proc:
    """A process the harness started, stopped only through its recorded PID."""

    def __init__(self, lab, name, popen, log_path):
        self.lab = lab
        self.name = name
        self.popen = popen
        self.pid = popen.pid
        self.log_path = log_path

    def alive(self):
        return self.popen.poll() is None

    def send(self, sig):
        if self.alive():
            os.kill(self.pid, sig)

    def wait(self, timeout):
        try:
            self.popen.wait(timeout=timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def stop(self, timeout=10.0, sig=signal.SIGTERM):
        """Signal, wait, escalate to SIGKILL. Returns the exit status."""
        if self.alive():
            self.send(sig)
            if not self.wait(timeout):
                self.lab.note(f"{self.name} (pid {self.pid}) ignored signal {sig}; SIGKILL")
                self.send(signal.SIGKILL)
                self.wait(5)
        if self in self.lab.procs:
            self.lab.procs.remove(self)
        return self.popen.returncode

    def kill(self):
        return self.stop(timeout=5, sig=signal.SIGKILL)

    def log_tail(self, lines=25):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError as e:
            return f"(no log: {e})"


class Lab:
    def __init__(self, base, keep=False, verbose=False):
        self.base = base
        self.keep = keep
        self.verbose = verbose
        self.procs = []  # every long-running process, newest last
        self.hosts = []
        self.switch = None
        self.notes = []
        self._ns_ids = set()
        self._root_net = _ns_id("self", "net")
        os.makedirs(base, exist_ok=True)

    def note(self, msg):
        self.notes.append(msg)
        if self.verbose:
            print(f"    [lab] {msg}", flush=True)

    # -- processes -------------------------------------------------------

    def spawn(self, name, argv, log_path, stdout_pipe=False):
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
        log = open(log_path, "ab")
        log.write(f"==== {time.strftime('%H:%M:%S')} start: {' '.join(argv)}\n".encode())
        log.flush()
        popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdout_pipe else log,
            stderr=log,
            env=HOST_ENV,
            cwd="/",
            start_new_session=True,  # a Ctrl-C reaches the harness only; it stops things in order
            preexec_fn=None if self.keep else _die_with_parent,
        )
        log.close()
        proc = Proc(self, name, popen, log_path)
        self.procs.append(proc)
        with open(os.path.join(self.base, "pids"), "a") as f:
            f.write(f"{proc.pid} {_start_time(proc.pid)} {name}\n")
        self.note(f"started {name} pid {proc.pid}")
        return proc

    def _start_holder(self, name, script, log_path):
        argv = ["unshare", "--net", "--mount", "--propagation", "private", "--", "sh", "-c", script]
        proc = self.spawn(f"{name}/holder", argv, log_path, stdout_pipe=True)
        ready, _, _ = select.select([proc.popen.stdout], [], [], 10)
        line = proc.popen.stdout.readline() if ready else b""
        if line.strip() != b"ready":
            proc.kill()
            raise LabError(f"namespace holder for {name} did not come up; see {log_path}")
        net = _ns_id(proc.pid, "net")
        if net == self._root_net:
            proc.kill()
            raise LabError(f"holder for {name} is in the root network namespace; refusing")
        self._ns_ids.add(net)
        return proc

    # -- topology --------------------------------------------------------

    def start_switch(self):
        logs = os.path.join(self.base, "switch")
        self.switch = Switch(self, self._start_holder("switch", "echo ready; exec sleep 2147483647",
                                                      os.path.join(logs, "holder.log")))
        return self.switch

    def add_host(self, name, octet):
        if self.switch is None:
            self.start_switch()
        host = Host(self, name, f"{SUBNET}.{octet}")
        self.hosts.append(host)
        return host

    # -- teardown --------------------------------------------------------

    def cleanup(self):
        """Stop every recorded process (daemons before holders), newest first."""
        # qdevices (and anything else) first, then corosync, then the namespace
        # holders; within a phase all at once, so teardown costs one shutdown.
        holders = [p for p in self.procs if p.name.endswith("/holder")]
        corosyncs = [p for p in self.procs if p.name.endswith("/corosync")]
        rest = [p for p in self.procs if p not in holders and p not in corosyncs]
        for phase, sig, grace in ((rest, signal.SIGTERM, 8), (corosyncs, signal.SIGTERM, 15),
                                  (holders, signal.SIGKILL, 5)):
            for proc in phase:
                proc.send(sig)
            deadline = time.monotonic() + grace
            for proc in phase:
                proc.wait(max(0.0, deadline - time.monotonic()))
            for proc in phase:
                proc.kill()  # SIGKILL if still there; forgets it either way
        leftovers = self._stragglers()
        for pid in leftovers:
            # Started by something we started (a fork of a daemon), found by the
            # namespace we recorded, not by name.
            self.note(f"straggler pid {pid} in a lab namespace; SIGKILL")
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.hosts = []
        self.switch = None
        return leftovers

    def _stragglers(self):
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                if _ns_id(entry, "net") in self._ns_ids:
                    found.append(int(entry))
            except OSError:
                pass
        return found

    def remove_base(self):
        shutil.rmtree(self.base, ignore_errors=True)


def nsenter(pid, net=True, mnt=True):
    argv = ["nsenter", "-t", str(pid)]
    if net:
        argv.append("-n")
    if mnt:
        argv += ["-m", "--wd=/"]
    return argv + ["--"]


class Switch:
    """The bridge all hosts are plugged into, and the partition rules on it."""

    def __init__(self, lab, holder):
        self.lab = lab
        self.holder = holder
        self.run(["ip", "link", "set", "lo", "up"])
        self.run(["ip", "link", "add", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0"])
        self.run(["ip", "link", "set", "br0", "up"])
        self.nft("add table bridge e2e\n"
                 "add chain bridge e2e cut { type filter hook forward priority 0; policy accept; }\n")

    def run(self, argv, input=None):
        r = subprocess.run(nsenter(self.holder.pid, mnt=False) + argv, input=input, env=HOST_ENV,
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise LabError(f"switch: {' '.join(argv)} failed: {r.stderr.strip()}")
        return r.stdout

    def nft(self, script):
        return self.run(["nft", "-f", "-"], input=script)

    def plug(self, host):
        port = f"p-{host.name}"[:15]
        self.run(["ip", "link", "add", port, "type", "veth", "peer", "name", "eth0",
                  "netns", str(host.holder.pid)])
        self.run(["ip", "link", "set", port, "master", "br0", "up"])
        return port

    def cut(self, groups):
        """Drop all frames between hosts of different groups (lists of hosts).

        Hosts not named in any group (the qnetd host) keep every link."""
        rules = ["flush chain bridge e2e cut"]
        for i, ga in enumerate(groups):
            for gb in groups[i + 1:]:
                for a in ga:
                    for b in gb:
                        for x, y in ((a, b), (b, a)):
                            rules.append(f'add rule bridge e2e cut iifname "{x.port}" oifname "{y.port}" drop')
        self.nft("\n".join(rules) + "\n")

    def isolate(self, host):
        """Cut every link of one host (a pulled cable / powered-off box)."""
        self.nft(f'add rule bridge e2e cut iifname "{host.port}" drop\n'
                 f'add rule bridge e2e cut oifname "{host.port}" drop\n')

    def heal(self):
        self.nft("flush chain bridge e2e cut\n")

    def rules(self):
        try:
            return self.run(["nft", "list", "chain", "bridge", "e2e", "cut"])
        except LabError as e:
            return str(e)


class Host:
    """A machine: own network namespace, own config/state/log/run/shm/tmp dirs."""

    def __init__(self, lab, name, addr):
        self.lab = lab
        self.name = name
        self.addr = addr
        self.root = os.path.join(lab.base, name)
        self.logdir = os.path.join(self.root, "logs")  # harness-side, not mounted
        os.makedirs(self.logdir, exist_ok=True)
        mounts = []
        for inside, dirname in HOST_DIRS:
            if not os.path.isdir(inside):
                raise LabError(f"mount point {inside} missing on this machine")
            outside = os.path.join(self.root, dirname)
            os.makedirs(outside, exist_ok=True)
            mounts.append(f"mount --bind '{outside}' '{inside}'")
        os.chmod(os.path.join(self.root, "tmp"), 0o1777)
        os.chmod(os.path.join(self.root, "dev-shm"), 0o1777)
        for sub in ("var-log/corosync", "var-lib-corosync"):
            os.makedirs(os.path.join(self.root, sub), exist_ok=True)
        script = "set -e; " + "; ".join(mounts) + "; echo ready; exec sleep 2147483647"
        self.holder = lab._start_holder(name, script, os.path.join(self.logdir, "holder.log"))
        self.port = lab.switch.plug(self)
        self.sh(f"ip link set lo up && ip addr add {addr}/{PREFIX} dev eth0 && ip link set eth0 up",
                check=True)

    def path(self, inside):
        """Where a path inside this host lives, seen from the harness."""
        for mount, dirname in HOST_DIRS:
            if inside == mount or inside.startswith(mount + "/"):
                return os.path.join(self.root, dirname) + inside[len(mount):]
        raise LabError(f"{inside} is not a per-host path")

    def run(self, argv, timeout=30, check=False, input=None):
        r = subprocess.run(nsenter(self.holder.pid) + list(argv), input=input, env=HOST_ENV,
                           capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise LabError(f"{self.name}: {' '.join(argv)} exited {r.returncode}:\n"
                           f"{r.stdout.strip()}\n{r.stderr.strip()}".rstrip())
        return r

    def sh(self, script, **kw):
        return self.run(["sh", "-c", script], **kw)

    def spawn(self, name, argv):
        return self.lab.spawn(f"{self.name}/{name}", nsenter(self.holder.pid) + list(argv),
                              os.path.join(self.logdir, f"{name}.log"))

    def write(self, inside, text, mode=0o644):
        p = self.path(inside)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(text)
        os.chmod(p, mode)

    def copy_to(self, inside_src, other, inside_dst):
        """scp, in effect: a file from this host to another host."""
        dst = other.path(inside_dst)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copyfile(self.path(inside_src), dst)
