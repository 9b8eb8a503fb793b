"""Corosync clusters with corosync-qdevice, and the qnetd they get their vote from.

Only real programs run here: corosync, corosync-qdevice and their tools from the
distribution, and either the distribution's C corosync-qnetd or our multi-call
binary (``--impl rust``), always invoked under the C programs' names and flags.
"""

import os
import re
import shutil
import time

from lab import LabError, SUBNET

QNETD_OCTET = 100
QNETD_ADDR = f"{SUBNET}.{QNETD_OCTET}"

# Short timeouts so that the whole suite fits its budget; every value is within
# what corosync and corosync-qdevice accept (qdevice heartbeat = 0.8 * timeout,
# which must stay >= 1000 ms on both sides).
TOKEN_MS = 1000
CONSENSUS_MS = 1200
QDEVICE_TIMEOUT_MS = 3000
QDEVICE_SYNC_TIMEOUT_MS = 5000

C_QNETD = {
    "corosync-qnetd": "/usr/bin/corosync-qnetd",
    "corosync-qnetd-certutil": "/usr/bin/corosync-qnetd-certutil",
    "corosync-qnetd-tool": "/usr/bin/corosync-qnetd-tool",
}

QNETD_DB = "/etc/corosync/qnetd/nssdb"
NODE_DB = "/etc/corosync/qdevice/net/nssdb"


class CheckFailed(Exception):
    """A check's expectation did not hold. ``diag`` is extra text for the report."""

    def __init__(self, msg, diag=""):
        super().__init__(msg)
        self.diag = diag


# -- output parsers -------------------------------------------------------------

def keyvals(text):
    """'Key:   value' lines -> dict (first occurrence wins)."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"^\s*([^:\t]+?):\s*(.*?)\s*$", line)
        if m and m.group(1) not in out:
            out[m.group(1)] = m.group(2)
    return out


def parse_quorumtool(text):
    kv = keyvals(text)
    q = {
        "quorate": kv.get("Quorate") == "Yes",
        "nodes": int(kv["Nodes"]) if kv.get("Nodes", "").isdigit() else None,
        "total_votes": int(kv["Total votes"]) if kv.get("Total votes", "").isdigit() else None,
        "expected": int(kv["Expected votes"]) if kv.get("Expected votes", "").isdigit() else None,
        "flags": kv.get("Flags", "").split(),
        "members": [],
        "qdevice_votes": None,
    }
    in_members = False
    for line in text.splitlines():
        if line.strip().startswith("Nodeid"):
            in_members = True
            continue
        if in_members:
            parts = line.split()
            if len(parts) >= 3 and parts[0].isdigit():
                if parts[0] == "0":  # the Qdevice line ("Qdevice (votes N)" when not voting)
                    q["qdevice_votes"] = int(parts[1])
                    q["qdevice_line"] = " ".join(parts[2:])
                else:
                    q["members"].append(int(parts[0]))
    q["members"].sort()
    return q


def parse_qnetd_list(text):
    """corosync-qnetd-tool -l[v] -> {cluster: {"Algorithm": .., "nodes": {id: {k: v}}}}."""
    clusters = {}
    cur = node = None
    for line in text.splitlines():
        m = re.match(r'^Cluster "(.*)":$', line)
        if m:
            cur = clusters.setdefault(m.group(1), {"nodes": {}})
            node = None
            continue
        m = re.match(r"^    Node ID (\d+):$", line)
        if m and cur is not None:
            node = cur["nodes"].setdefault(int(m.group(1)), {})
            continue
        m = re.match(r"^\s+([^:]+):\s*(.*)$", line)
        if m and cur is not None:
            (node if node is not None else cur)[m.group(1)] = m.group(2)
    return clusters


def short(q):
    """One-line summary of a parsed quorumtool status, for diagnostics."""
    if q is None:
        return "down"
    return (f"quorate={'yes' if q['quorate'] else 'no'} members={q['members']} "
            f"votes={q['total_votes']}/{q['expected']} qdevice={q['qdevice_votes']}")


# -- qnetd ------------------------------------------------------------------------

class Qnetd:
    """The qnetd host and the implementation under test running on it."""

    def __init__(self, lab, impl, rust_bin=None, name="qnetd"):
        self.lab = lab
        self.impl = impl
        self.host = lab.add_host(name, QNETD_OCTET)
        self.proc = None
        # What a package install leaves behind: an empty config dir.
        os.makedirs(self.host.path("/etc/corosync/qnetd"), mode=0o770, exist_ok=True)
        if impl == "c":
            self.bins = dict(C_QNETD)
        else:
            # A private copy so the binary is reachable inside the host whatever
            # dir it came from; the three names are symlinks to it (multi-call).
            bindir = "/run/e2e-bin"
            os.makedirs(self.host.path(bindir), exist_ok=True)
            shutil.copy2(rust_bin, self.host.path(f"{bindir}/qnetd"))
            self.bins = {}
            for prog in C_QNETD:
                os.symlink("qnetd", self.host.path(f"{bindir}/{prog}"))
                self.bins[prog] = f"{bindir}/{prog}"

    def certutil(self, *args, check=True):
        return self.host.run([self.bins["corosync-qnetd-certutil"], *args], check=check, timeout=60)

    def tool(self, *args):
        """corosync-qnetd-tool of the implementation under test."""
        return self.host.run([self.bins["corosync-qnetd-tool"], *args], timeout=10)

    def c_tool(self, *args):
        """The distribution's C corosync-qnetd-tool, whatever daemon is running."""
        return self.host.run([C_QNETD["corosync-qnetd-tool"], *args], timeout=10)

    # The checks watch the daemon through the C tool: a fault in our tool then
    # fails the output comparison (and the one check that reads our tool on
    # purpose), not every check that merely needs to see the daemon's state.
    observe = c_tool

    def init_ca(self):
        r = self.certutil("-i")
        ca = f"{QNETD_DB}/qnetd-cacert.crt"
        if not os.path.exists(self.host.path(ca)):
            raise LabError(f"qnetd certutil -i did not produce {ca}:\n{r.stdout}{r.stderr}")
        return ca

    def start(self, *extra):
        if self.proc is not None and self.proc.alive():
            raise LabError("qnetd already running")
        self.proc = self.host.spawn("qnetd", [self.bins["corosync-qnetd"], "-f", "-d", *extra])
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if not self.proc.alive():
                raise LabError(f"qnetd exited with {self.proc.popen.returncode}:\n{self.proc.log_tail()}")
            if self.observe("-s").returncode == 0 or self.tool("-s").returncode == 0:
                return
            time.sleep(0.1)
        raise LabError(f"qnetd did not answer corosync-qnetd-tool -s within 15 s:\n{self.proc.log_tail()}")

    def stop(self):
        if self.proc is not None:
            self.proc.stop()

    def kill(self):
        if self.proc is not None:
            self.proc.kill()

    def clients(self, cluster):
        """Node ids qnetd lists for a cluster."""
        r = self.observe("-l")
        if r.returncode != 0:
            return None
        return sorted(parse_qnetd_list(r.stdout).get(cluster, {}).get("nodes", {}))

    def diag(self):
        out = []
        runs = [("C ", self.observe, ("-s",)), ("C ", self.observe, ("-lv",))]
        if self.impl != "c":
            runs.append(("our ", self.tool, ("-lv",)))
        for who, tool, args in runs:
            r = tool(*args)
            out.append(f"$ {who}corosync-qnetd-tool {' '.join(args)}  (rc {r.returncode})\n{r.stdout}{r.stderr}")
        if self.proc is not None:
            out.append(f"qnetd log tail ({self.proc.log_path}):\n{self.proc.log_tail(15)}")
        return "\n".join(out)


# -- cluster nodes -------------------------------------------------------------------

class Node:
    def __init__(self, cluster, host, nodeid):
        self.cluster = cluster
        self.host = host
        self.nodeid = nodeid
        self.name = host.name
        self.corosync = None
        self.qdevice = None

    def running(self):
        return self.corosync is not None and self.corosync.alive()

    def start_corosync(self):
        self.corosync = self.host.spawn("corosync", ["corosync", "-f"])

    def corosync_ready(self):
        r = self.host.run(["corosync-quorumtool", "-s"], timeout=10)
        return r.returncode in (0, 2) and "Quorum information" in r.stdout

    def start_qdevice(self):
        self.qdevice = self.host.spawn("qdevice", ["corosync-qdevice", "-f", "-d"])

    def stop(self):
        """Orderly shutdown, as an admin stopping the services does it."""
        if self.qdevice is not None:
            self.qdevice.stop()
        if self.corosync is not None:
            self.corosync.stop(timeout=15)

    def crash(self):
        """Power loss: the node's links go silent, then its processes die."""
        self.cluster.lab.switch.isolate(self.host)
        for p in (self.corosync, self.qdevice):
            if p is not None:
                p.kill()

    def quorum(self):
        """Parsed `corosync-quorumtool -s`, or None when corosync does not answer."""
        if not self.running():
            return None
        r = self.host.run(["corosync-quorumtool", "-s"], timeout=10)
        if "Quorum information" not in r.stdout:
            return None
        q = parse_quorumtool(r.stdout)
        q["raw"] = r.stdout
        return q

    def qdevice_status(self):
        r = self.host.run(["corosync-qdevice-tool", "-sv"], timeout=10)
        kv = keyvals(r.stdout) if r.returncode == 0 else {}
        kv["raw"] = r.stdout + r.stderr
        kv["rc"] = r.returncode
        return kv

    def qdevice_state(self):
        """The 'State:' line of the qdevice-net section."""
        r = self.host.run(["corosync-qdevice-tool", "-sv"], timeout=10)
        if r.returncode != 0:
            return None
        m = re.search(r"^State:\s*(.*)$", r.stdout, re.M)
        return m.group(1) if m else None

    def diag(self):
        out = [f"--- {self.name} (node {self.nodeid}, corosync "
               f"{'up' if self.running() else 'down'}, qdevice "
               f"{'up' if self.qdevice is not None and self.qdevice.alive() else 'down'})"]
        if self.running():
            r = self.host.run(["corosync-quorumtool", "-s"], timeout=10)
            out.append(f"$ corosync-quorumtool -s  (rc {r.returncode})\n{r.stdout}{r.stderr}")
            r = self.host.run(["corosync-qdevice-tool", "-sv"], timeout=10)
            out.append(f"$ corosync-qdevice-tool -sv  (rc {r.returncode})\n{r.stdout}{r.stderr}")
        if self.qdevice is not None:
            out.append(f"qdevice log tail ({self.qdevice.log_path}):\n{self.qdevice.log_tail(12)}")
        return "\n".join(out)


class Cluster:
    """A corosync cluster (knet, static nodelist, votequorum + qdevice model net)."""

    def __init__(self, lab, qnetd, name, hosts, algorithm="ffsplit", tie_breaker="lowest",
                 tls="on", votes=1, heuristics=None, cert_cluster_name=None, first_nodeid=1):
        self.lab = lab
        self.qnetd = qnetd
        self.name = name
        self.algorithm = algorithm
        self.tie_breaker = tie_breaker
        self.tls = tls
        self.votes = votes
        self.heuristics = heuristics
        self.cert_cluster_name = cert_cluster_name or name
        self.nodes = [Node(self, h, first_nodeid + i) for i, h in enumerate(hosts)]
        for node in self.nodes:
            node.host.write("/etc/corosync/corosync.conf", self.corosync_conf())

    def node(self, nodeid):
        return next(n for n in self.nodes if n.nodeid == nodeid)

    def corosync_conf(self):
        dev = ["model: net"]
        if self.votes is not None:
            dev.append(f"votes: {self.votes}")
        dev += [f"timeout: {QDEVICE_TIMEOUT_MS}", f"sync_timeout: {QDEVICE_SYNC_TIMEOUT_MS}"]
        net = [f"host: {QNETD_ADDR}", f"algorithm: {self.algorithm}",
               f"tie_breaker: {self.tie_breaker}", f"tls: {self.tls}"]
        dev_txt = "\n".join(f"        {x}" for x in dev)
        net_txt = "\n".join(f"            {x}" for x in net)
        heur_txt = ""
        if self.heuristics:
            heur_txt = "\n        heuristics {\n" + "\n".join(
                f"            {k}: {v}" for k, v in self.heuristics.items()) + "\n        }"
        nodes_txt = "\n".join(
            f"    node {{\n        ring0_addr: {n.host.addr}\n        nodeid: {n.nodeid}\n"
            f"        name: {n.name}\n    }}" for n in self.nodes)
        return f"""# written by tests/e2e
totem {{
    version: 2
    cluster_name: {self.name}
    transport: knet
    crypto_cipher: none
    crypto_hash: none
    token: {TOKEN_MS}
    token_coefficient: 0
    consensus: {CONSENSUS_MS}
}}

logging {{
    to_stderr: yes
    to_logfile: no
    to_syslog: no
    timestamp: hires
}}

quorum {{
    provider: corosync_votequorum
    device {{
{dev_txt}
        net {{
{net_txt}
        }}{heur_txt}
    }}
}}

nodelist {{
{nodes_txt}
}}
"""

    # -- enrolment, step by step as an administrator does it ----------------------

    def enrol(self, init_qnetd=True):
        """Returns a list of (step, seconds) for the report."""
        steps = []
        q = self.qnetd
        first, others = self.nodes[0], self.nodes[1:]

        def step(label, fn):
            t = time.monotonic()
            fn()
            steps.append((label, time.monotonic() - t))

        ca = f"{QNETD_DB}/qnetd-cacert.crt"
        if init_qnetd:
            step("qnetd-certutil -i", q.init_ca)
        for node in self.nodes:
            def init_node(node=node):
                q.host.copy_to(ca, node.host, "/tmp/qnetd-cacert.crt")
                node.host.run(["corosync-qdevice-net-certutil", "-i", "-c", "/tmp/qnetd-cacert.crt"],
                              check=True, timeout=60)
            step(f"{node.name}: qdevice-net-certutil -i -c", init_node)
        crq = f"{NODE_DB}/qdevice-net-node.crq"

        def request():
            r = first.host.run(["corosync-qdevice-net-certutil", "-r", "-n", self.cert_cluster_name],
                               check=True, timeout=60)
            if not os.path.exists(first.host.path(crq)):
                raise LabError(f"-r did not produce {crq}: {r.stdout}")
        step(f"{first.name}: qdevice-net-certutil -r -n", request)

        signed = {}

        def sign():
            first.host.copy_to(crq, q.host, "/tmp/qdevice-net-node.crq")
            r = q.certutil("-s", "-c", "/tmp/qdevice-net-node.crq", "-n", self.cert_cluster_name)
            # Located the way pcs does it: the "Certificate stored in" line.
            m = re.search(r"^Certificate( request)? stored in (.+)$", r.stdout, re.M)
            if not m:
                raise LabError(f"qnetd-certutil -s printed no 'Certificate stored in' line:\n{r.stdout}")
            signed["path"] = m.group(2).strip()
        step("qnetd-certutil -s -c -n", sign)

        crt = f"{NODE_DB}/cluster-{self.cert_cluster_name}.crt"

        def import_crt():
            q.host.copy_to(signed["path"], first.host, crt)
            first.host.run(["corosync-qdevice-net-certutil", "-M", "-c", crt], check=True, timeout=60)
        step(f"{first.name}: qdevice-net-certutil -M -c", import_crt)

        p12 = f"{NODE_DB}/qdevice-net-node.p12"
        for node in others:
            def import_p12(node=node):
                first.host.copy_to(p12, node.host, p12)
                node.host.run(["corosync-qdevice-net-certutil", "-m", "-c", p12], check=True, timeout=60)
            step(f"{node.name}: qdevice-net-certutil -m -c", import_p12)
        return steps

    # -- running --------------------------------------------------------------------

    def start(self, nodes=None, timeout=20):
        nodes = nodes or self.nodes
        for n in nodes:
            n.start_corosync()
        deadline = time.monotonic() + timeout
        pending = list(nodes)
        while pending:
            for n in list(pending):
                if not n.corosync.alive():
                    raise LabError(f"corosync on {n.name} exited:\n{n.corosync.log_tail()}")
                if n.corosync_ready():
                    pending.remove(n)
            if pending and time.monotonic() > deadline:
                raise LabError(f"corosync IPC not ready on {[n.name for n in pending]}")
            if pending:
                time.sleep(0.1)
        for n in nodes:
            n.start_qdevice()

    def stop(self):
        for n in self.nodes:
            if n.qdevice is not None:
                n.qdevice.stop()
        for n in self.nodes:
            if n.corosync is not None:
                n.corosync.stop(timeout=15)

    def states(self):
        return {n.nodeid: n.quorum() for n in self.nodes}

    def diag(self):
        return "\n".join(n.diag() for n in self.nodes)
