"""The checks, grouped into scenarios that share one set of hosts.

A scenario builds its hosts, enrols the cluster(s) exactly as an administrator
does, starts qnetd and the cluster(s), then runs its checks in order. Every check
brings the lab into the state it needs first (nodes up, links healed), so any
subset selected with ``-k`` runs on its own. Each wait is bounded; the time it
took is reported.
"""

import os
import time

from cluster import (Cluster, CheckFailed, Qnetd, QNETD_DB, NODE_DB, parse_qnetd_list, short)
import snapshots

POLL = 0.2          # seconds between observations
SETTLE = 20.0    # bound for convergence after a start, stop, cut or heal
HOLD = 1.5          # how long a reached split state must then stay unchanged


class Ctx:
    """What a scenario's checks share."""

    def __init__(self, lab, impl, rust_bin, snaps):
        self.lab = lab
        self.impl = impl
        self.rust_bin = rust_bin
        self.snaps = snaps
        self.qnetd = None
        self.clusters = {}
        self.timings = []  # (label, seconds) of the scenario's setup

    @property
    def cl(self):
        return next(iter(self.clusters.values()))

    def diag(self):
        parts = []
        for c in self.clusters.values():
            parts.append(f"=== cluster {c.name}\n{c.diag()}")
        if self.qnetd is not None:
            parts.append(f"=== qnetd ({self.impl})\n{self.qnetd.diag()}")
        if self.lab.switch is not None:
            parts.append(f"=== switch rules\n{self.lab.switch.rules()}")
        return "\n".join(parts)


# -- waiting ----------------------------------------------------------------------

def wait_for(desc, cond, timeout=SETTLE, invariant=None):
    """Poll cond() -> (ok, observation) until ok; returns seconds taken.

    invariant(observation) -> error text or None is checked at every poll and
    fails the check at once: it is how "stays quorate" or "never both sides"
    is asserted over the whole transition rather than only at its end."""
    t0 = time.monotonic()
    last = None
    while True:
        ok, last = cond()
        if invariant is not None:
            err = invariant(last)
            if err:
                raise CheckFailed(f"{desc}: {err} after {time.monotonic() - t0:.1f}s; saw {fmt(last)}")
        if ok:
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise CheckFailed(f"{desc}: not reached within {timeout:.0f}s; last saw {fmt(last)}")
        time.sleep(POLL)


def hold(desc, cond, seconds=HOLD):
    """The state cond() describes must persist for `seconds` (sampled)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        ok, last = cond()
        if not ok:
            raise CheckFailed(f"{desc}: did not hold, changed after {time.monotonic() - t0:.1f}s to {fmt(last)}")
        time.sleep(POLL)


def fmt(obs):
    if isinstance(obs, dict):
        return "{" + ", ".join(f"node{k}: {short(v) if isinstance(v, (dict, type(None))) else v}"
                               for k, v in obs.items()) + "}"
    return str(obs)


def quorum_of(nodes):
    return {n.nodeid: n.quorum() for n in nodes}


def all_quorate(cluster, votes):
    """Every node of the cluster up, in one membership, quorate with `votes` votes."""
    ids = [n.nodeid for n in cluster.nodes]

    def cond():
        st = quorum_of(cluster.nodes)
        ok = all(q is not None and q["quorate"] and q["members"] == ids and q["total_votes"] == votes
                 for q in st.values())
        return ok, st
    return cond


def split_decided(winners, losers, win_votes):
    """Each side sees only itself; the winners are quorate with win_votes, no loser is."""
    w_ids = sorted(n.nodeid for n in winners)
    l_ids = sorted(n.nodeid for n in losers)

    def cond():
        st = quorum_of(winners + losers)
        ok = (all(st[n.nodeid] is not None and st[n.nodeid]["members"] == w_ids
                  and st[n.nodeid]["quorate"] and st[n.nodeid]["total_votes"] == win_votes for n in winners)
              and all(st[n.nodeid] is not None and st[n.nodeid]["members"] == l_ids
                      and not st[n.nodeid]["quorate"] for n in losers))
        return ok, st
    return cond


def never_both_sides(side_a, side_b):
    """Safety: no moment at which both halves of a split are quorate on their own."""
    a_ids = sorted(n.nodeid for n in side_a)
    b_ids = sorted(n.nodeid for n in side_b)

    def inv(st):
        qa = [st.get(n.nodeid) for n in side_a]
        qb = [st.get(n.nodeid) for n in side_b]
        a_alone = any(q and q["members"] == a_ids and q["quorate"] for q in qa)
        b_alone = any(q and q["members"] == b_ids and q["quorate"] for q in qb)
        return "both sides of the split quorate at once" if a_alone and b_alone else None
    return inv


def stays_quorate(nodes):
    ids = {n.nodeid for n in nodes}

    def inv(st):
        bad = [k for k in ids if st.get(k) is None or not st[k]["quorate"]]
        return f"node(s) {bad} lost quorum" if bad else None
    return inv


def restore(cluster, votes, cond=None):
    """Bring a cluster back to all nodes up and quorate (precondition of a check)."""
    lab = cluster.lab
    lab.switch.heal()
    down = [n for n in cluster.nodes if not n.running()]
    if down:
        cluster.start(down)
    if cluster.qnetd.proc is None or not cluster.qnetd.proc.alive():
        cluster.qnetd.start()
    return wait_for(f"{cluster.name} all nodes quorate with {votes} votes", cond or all_quorate(cluster, votes))


def qnetd_lists(qnetd, cluster, ids, acked=True):
    """qnetd's tool lists exactly these node ids for the cluster (each with an ACK vote)."""
    def cond():
        r = qnetd.observe("-l")
        nodes = parse_qnetd_list(r.stdout).get(cluster, {}).get("nodes", {}) if r.returncode == 0 else {}
        ok = sorted(nodes) == sorted(ids)
        if ok and acked:
            ok = all("(ACK)" in v.get("Vote", "") or v.get("Vote", "") == "ACK" for v in nodes.values())
        return ok, f"rc={r.returncode} clients={ {k: v.get('Vote') for k, v in nodes.items()} }"
    return cond


# -- scenario setups ---------------------------------------------------------------------

def _setup(ctx, clusters, start_qnetd_args=(), staged=False):
    """clusters: list of (name, octets, kwargs, enrol). One qnetd for all of them."""
    lab = ctx.lab
    t = time.monotonic()
    ctx.qnetd = Qnetd(lab, ctx.impl, ctx.rust_bin)
    made = []
    for name, octets, kw, _ in clusters:
        hosts = [lab.add_host(f"node{o}", o) for o in octets]
        made.append(Cluster(lab, ctx.qnetd, name, hosts, **kw))
    ctx.timings.append(("hosts", time.monotonic() - t))
    first = True
    for c, (_, _, _, enrol) in zip(made, clusters):
        ctx.clusters[c.name] = c
        if enrol:
            t = time.monotonic()
            c.enrol_steps = c.enrol(init_qnetd=first)
            first = False
            ctx.timings.append((f"enrol {c.name}", time.monotonic() - t))
    t = time.monotonic()
    ctx.qnetd.start(*start_qnetd_args)
    ctx.timings.append(("qnetd start", time.monotonic() - t))
    t = time.monotonic()
    for c in made:
        if staged:
            # The first node alone first, until it holds the qdevice vote.
            first = c.nodes[0]
            c.start([first])

            def alone():
                s = first.quorum()
                return bool(s and s["quorate"] and s["qdevice_votes"]), {first.nodeid: s}
            wait_for(f"{first.name} alone quorate with the qdevice vote", alone)
            c.start(c.nodes[1:])
        else:
            c.start()
    ctx.timings.append(("corosync+qdevice start", time.monotonic() - t))


def setup_pair(ctx):
    _setup(ctx, [("labcluster", [1, 2], {}, True)])


def setup_quad(ctx):
    _setup(ctx, [("labcluster", [1, 2, 3, 4], {}, True)])


def setup_wrongcert(ctx):
    _setup(ctx, [("labcluster", [1, 2], {"cert_cluster_name": "wrongcluster"}, True)])


def setup_tls(ctx):
    # Same node ids in both clusters on purpose: qnetd keys clients by cluster.
    # The tls:off cluster is not enrolled at all: it must need no NSS database.
    _setup(ctx, [("alpha", [1, 2], {"tls": "required"}, True),
                 ("beta", [3, 4], {"tls": "off"}, False)])


def setup_lms(ctx):
    _setup(ctx, [("labcluster", [1, 2, 3], {"algorithm": "lms", "votes": None}, True)])


def setup_2nodelms(ctx):
    # Staged start: node 1 must hold a stored 2nodelms ACK before node 2 appears,
    # otherwise the start race described in _2nodelms_up can leave node 1 without
    # a stored result, and then a later split gives NACK to both halves.
    _setup(ctx, [("labcluster", [1, 2], {"algorithm": "2nodelms"}, True)], staged=True)


HEUR_FLAG = "/tmp/heuristics-fail"


def setup_heuristics(ctx):
    heur = {"mode": "sync", "exec_check": f"/usr/bin/test ! -e {HEUR_FLAG}"}
    _setup(ctx, [("labcluster", [1, 2], {"heuristics": heur}, True)])


# -- checks -------------------------------------------------------------------------------

def check_enrolment(ctx):
    cl, q = ctx.cl, ctx.qnetd
    problems = []
    ca = q.host.path(f"{QNETD_DB}/qnetd-cacert.crt")
    with open(ca, "rb") as f:
        if b"-----BEGIN CERTIFICATE-----" not in f.read():
            problems.append("qnetd-cacert.crt has no PEM block")
    crt = q.host.path(f"{QNETD_DB}/cluster-{cl.name}.crt")
    if not os.path.exists(crt):
        problems.append(f"no {QNETD_DB}/cluster-{cl.name}.crt on the qnetd host")
    else:
        with open(crt, "rb") as f:
            if f.read(1) != b"\x30":
                problems.append("cluster certificate is not DER")
    for n in cl.nodes:
        r = n.host.run(["certutil", "-L", "-d", NODE_DB])
        for nick in ("QNet CA", "Cluster Cert"):
            if nick not in r.stdout:
                problems.append(f"{n.name}: NSS db lacks '{nick}'")
    if problems:
        raise CheckFailed("; ".join(problems))
    steps = ", ".join(f"{s} {d:.2f}s" for s, d in cl.enrol_steps)
    return steps, sum(d for _, d in cl.enrol_steps)


def check_quorate_2node(ctx):
    cl, q = ctx.cl, ctx.qnetd
    t1 = wait_for("both nodes quorate with 3 votes", all_quorate(cl, 3))
    t2 = wait_for("qnetd lists 2 clients with ACK votes", qnetd_lists(q, cl.name, [1, 2]))
    # What the administrator sees, with the tool under test.
    r = q.tool("-s")
    if "Connected clients:\t\t2" not in r.stdout:
        raise CheckFailed(f"corosync-qnetd-tool -s does not say 2 connected clients:\n{r.stdout}{r.stderr}")
    r = q.tool("-l")
    if sorted(parse_qnetd_list(r.stdout).get(cl.name, {}).get("nodes", {})) != [1, 2]:
        raise CheckFailed(f"corosync-qnetd-tool -l does not list nodes 1 and 2:\n{r.stdout}{r.stderr}")
    ctx.snaps.capture("pair-steady", q, [["-s"], ["-sv"], ["-l"], ["-lv"],
                                         ["-l", "-c", cl.name], ["-l", "-c", "nosuchcluster"]])
    return f"quorate with 3 votes after {t1:.1f}s, qnetd lists 2 clients after {t2:.1f}s more"


def check_node2_stopped(ctx):
    cl, q = ctx.cl, ctx.qnetd
    restore(cl, 3)
    n1, n2 = cl.node(1), cl.node(2)
    t0 = time.monotonic()
    n2.stop()
    stop_s = time.monotonic() - t0
    cond = split_decided([n1], [], 2)  # node 1 alone in its membership, quorate with 2 votes
    t1 = wait_for("node1 alone quorate with its own + qdevice vote", cond, invariant=stays_quorate([n1]))
    t2 = wait_for("qnetd lists node 1 only", qnetd_lists(q, cl.name, [1]))
    hold("node1 stays quorate", cond)
    t3 = restore(cl, 3)
    return (f"node2 stopped in {stop_s:.1f}s; node1 quorate alone (2 votes) after {t1:.1f}s, "
            f"qnetd dropped node 2 after {t2:.1f}s more; rejoin {t3:.1f}s")


def check_node2_crashed(ctx):
    cl, q = ctx.cl, ctx.qnetd
    restore(cl, 3)
    n1, n2 = cl.node(1), cl.node(2)
    n2.crash()  # links cut first, then SIGKILL: qnetd sees no FIN, only silence
    cond = split_decided([n1], [], 2)
    t1 = wait_for("node1 alone quorate with its own + qdevice vote", cond, invariant=stays_quorate([n1]))
    # qnetd only learns of the crash by dead-peer detection (1.5 heartbeats).
    t2 = wait_for("qnetd drops the silent node 2", qnetd_lists(q, cl.name, [1]),
                  invariant=lambda _: stays_quorate([n1])(quorum_of([n1])))
    hold("node1 stays quorate", cond)
    t3 = restore(cl, 3)
    return (f"node1 quorate alone after {t1:.1f}s; qnetd dropped node 2 after {t2:.1f}s more; "
            f"rejoin {t3:.1f}s")


def check_partition_1_2(ctx):
    cl, q = ctx.cl, ctx.qnetd
    restore(cl, 3)
    n1, n2 = cl.node(1), cl.node(2)
    ctx.lab.switch.cut([[n1.host], [n2.host]])
    t1 = wait_for("node1 side quorate, node2 side not (tie_breaker lowest)",
                  split_decided([n1], [n2], 2), invariant=never_both_sides([n1], [n2]))
    hold("split decision", split_decided([n1], [n2], 2))
    # Both halves still reach qnetd: it must list both, with node 2's vote a NACK.
    r = q.observe("-l")
    nodes = parse_qnetd_list(r.stdout).get(cl.name, {}).get("nodes", {})
    if sorted(nodes) != [1, 2]:
        raise CheckFailed(f"qnetd should still list both clients during the split:\n{r.stdout}")
    ctx.snaps.capture("pair-partition", q, [["-lv"]])
    ctx.lab.switch.heal()
    t2 = wait_for("both quorate with 3 votes after heal", all_quorate(cl, 3))
    return f"split decided after {t1:.1f}s (held {HOLD}s), healed after {t2:.1f}s"


def check_qnetd_killed(ctx):
    cl, q = ctx.cl, ctx.qnetd
    restore(cl, 3)
    q.kill()
    ctx.snaps.capture("qnetd-down", q, [["-s"], ["-l"]])
    nodes = cl.nodes

    def disconnected():
        states = {n.nodeid: n.qdevice_state() for n in nodes}
        return all(s is not None and s != "Connected" for s in states.values()), states
    t1 = wait_for("every qdevice shows the qnetd connection gone", disconnected,
                  invariant=lambda _: stays_quorate(nodes)(quorum_of(nodes)))

    def quorate_2():
        st = quorum_of(nodes)
        return all(s and s["quorate"] and s["members"] == [1, 2] and s["total_votes"] == 2
                   for s in st.values()), st
    t2 = wait_for("cluster quorate on its own 2 votes", quorate_2, invariant=stays_quorate(nodes))
    hold("cluster stays quorate without qnetd", quorate_2)
    q.start()

    def connected():
        states = {n.nodeid: n.qdevice_state() for n in nodes}
        return all(s == "Connected" for s in states.values()), states
    t3 = wait_for("every qdevice reconnected", connected,
                  invariant=lambda _: stays_quorate(nodes)(quorum_of(nodes)))
    t4 = wait_for("qdevice vote back (3 votes)", all_quorate(cl, 3))
    t5 = wait_for("qnetd lists 2 clients again", qnetd_lists(q, cl.name, [1, 2]))
    return (f"qdevices saw the loss after {t1:.1f}s, quorate with 2 votes after {t2:.1f}s more; "
            f"after restart reconnected in {t3:.1f}s, 3 votes after {t4:.1f}s, listed after {t5:.1f}s")


def check_partition_2_2(ctx):
    cl, q = ctx.cl, ctx.qnetd
    restore(cl, 5)
    a = [cl.node(1), cl.node(2)]
    b = [cl.node(3), cl.node(4)]
    ctx.lab.switch.cut([[n.host for n in a], [n.host for n in b]])
    t1 = wait_for("nodes 1+2 quorate, nodes 3+4 not", split_decided(a, b, 3),
                  invariant=never_both_sides(a, b))
    hold("split decision", split_decided(a, b, 3))
    ctx.snaps.capture("quad-partition", q, [["-lv"]])
    ctx.lab.switch.heal()
    t2 = wait_for("all 4 quorate with 5 votes after heal", all_quorate(cl, 5))
    return f"split decided after {t1:.1f}s (held {HOLD}s), healed after {t2:.1f}s"


def _count(path, needle):
    try:
        with open(path, errors="replace") as f:
            return f.read().count(needle)
    except OSError:
        return 0


def check_wrong_cert(ctx):
    cl, q = ctx.cl, ctx.qnetd
    n1, n2 = cl.node(1), cl.node(2)
    ctx.lab.switch.heal()
    for n in cl.nodes:
        if not n.running():
            cl.start([n])
    # Evidence that qnetd turned the clients away: each qdevice logs the server
    # closing the connection right after it sent its certificate.
    rejected = "Server closed connection"
    base = {n.nodeid: _count(n.qdevice.log_path, rejected) for n in cl.nodes}

    def no_vote(st):
        voted = [k for k, s in st.items() if s and s["qdevice_votes"]]
        return f"qdevice vote counted on node(s) {voted}" if voted else None

    def no_ack():
        r = q.observe("-l")
        for nid, v in parse_qnetd_list(r.stdout).get(cl.name, {}).get("nodes", {}).items():
            if "ACK" in v.get("Vote", "").replace("NACK", ""):
                return f"qnetd lists node {nid} with vote {v['Vote']}"
        return None

    def rejections(k):
        def cond():
            seen = {n.nodeid: _count(n.qdevice.log_path, rejected) - base[n.nodeid] for n in cl.nodes}
            return all(c >= k for c in seen.values()), {"rejections": seen, **quorum_of(cl.nodes)}
        return cond

    def inv(obs):
        return no_vote({k: v for k, v in obs.items() if isinstance(k, int)}) or no_ack()
    t1 = wait_for("both qdevices turned away 3 times", rejections(3), invariant=inv)
    # With node 2 gone, node 1 is quorate only if the qdevice votes: it must not be.
    n2.stop()

    def alone_inquorate():
        st = quorum_of([n1])
        return bool(st[1] and st[1]["members"] == [1] and not st[1]["quorate"]), st
    t2 = wait_for("node1 alone, not quorate", alone_inquorate)
    base1 = _count(n1.qdevice.log_path, rejected)

    def two_more():
        c = _count(n1.qdevice.log_path, rejected) - base1
        return c >= 2, {"rejections": c, **quorum_of([n1])}
    t3 = wait_for("two more rejections while node1 is alone", two_more,
                  invariant=lambda obs: no_vote({1: obs.get(1)}) or no_ack() or
                  (None if obs.get(1) is None or not obs[1]["quorate"] else "node1 alone became quorate"))
    state = n1.qdevice_state()
    if state == "Connected":
        raise CheckFailed("qdevice on node1 reports State: Connected")
    return (f"3 rejections per node after {t1:.1f}s, no vote ever; node1 alone inquorate after "
            f"{t2:.1f}s and through 2 more rejections ({t3:.1f}s); qdevice state '{state}'")


def _tls_lines(node):
    st = node.qdevice_status()
    return st.get("TLS"), st.get("TLS active")


def check_tls_required(ctx):
    c, q = ctx.clusters["alpha"], ctx.qnetd
    t1 = wait_for("alpha quorate with 3 votes", all_quorate(c, 3))
    t2 = wait_for("qnetd lists alpha's 2 clients", qnetd_lists(q, "alpha", [1, 2]))
    tls, active = _tls_lines(c.node(1))
    if tls != "Required" or not (active or "").startswith("Yes"):
        raise CheckFailed(f"qdevice on alpha/node1 says TLS: {tls!r}, TLS active: {active!r}")
    r = q.observe("-lv", "-c", "alpha")
    nodes = parse_qnetd_list(r.stdout).get("alpha", {}).get("nodes", {})
    bad = {k: v.get("TLS active") for k, v in nodes.items()
           if v.get("TLS active") != "Yes (client certificate verified)"}
    if bad:
        raise CheckFailed(f"qnetd -lv shows alpha clients without verified TLS: {bad}")
    return f"quorate after {t1:.1f}s, listed after {t2:.1f}s; qdevice TLS {tls}/{active}"


def check_tls_off(ctx):
    c, q = ctx.clusters["beta"], ctx.qnetd
    t1 = wait_for("beta quorate with 3 votes", all_quorate(c, 3))
    t2 = wait_for("qnetd lists beta's 2 clients", qnetd_lists(q, "beta", [1, 2]))
    tls, active = _tls_lines(c.node(1))
    if not (active or "").startswith("No"):
        raise CheckFailed(f"qdevice on beta/node1 says TLS: {tls!r}, TLS active: {active!r}")
    r = q.observe("-lv", "-c", "beta")
    nodes = parse_qnetd_list(r.stdout).get("beta", {}).get("nodes", {})
    bad = {k: v.get("TLS active") for k, v in nodes.items() if v.get("TLS active") != "No"}
    if bad:
        raise CheckFailed(f"qnetd -lv shows beta clients with TLS: {bad}")
    if any(os.path.exists(n.host.path(NODE_DB)) for n in c.nodes):
        raise CheckFailed("beta nodes were meant to run without any NSS database")
    return f"quorate after {t1:.1f}s, listed after {t2:.1f}s; qdevice TLS {tls}/{active}; no NSS db on beta"


def check_two_clusters(ctx):
    alpha, beta, q = ctx.clusters["alpha"], ctx.clusters["beta"], ctx.qnetd
    restore(alpha, 3)
    restore(beta, 3)
    wait_for("qnetd lists both clusters", lambda: (
        qnetd_lists(q, "alpha", [1, 2])()[0] and qnetd_lists(q, "beta", [1, 2])()[0], q.observe("-l").stdout))
    r = q.observe("-s")
    if "Connected clients:\t\t4" not in r.stdout or "Connected clusters:\t\t2" not in r.stdout:
        raise CheckFailed(f"corosync-qnetd-tool -s should count 4 clients in 2 clusters:\n{r.stdout}")
    ctx.snaps.capture("two-clusters", q, [["-s"], ["-l"], ["-lv"], ["-l", "-c", "beta"]])
    # A split inside beta is decided for beta alone; alpha does not notice.
    b1, b2 = beta.node(1), beta.node(2)
    ctx.lab.switch.cut([[b1.host], [b2.host]])
    alpha_ok = all_quorate(alpha, 3)
    t1 = wait_for("beta split decided for its node 1", split_decided([b1], [b2], 2),
                  invariant=lambda st: never_both_sides([b1], [b2])(st) or
                  (None if alpha_ok()[0] else "alpha lost its 3 votes"))
    hold("beta split decision", split_decided([b1], [b2], 2))
    if not alpha_ok()[0]:
        raise CheckFailed("alpha changed during beta's split")
    ctx.lab.switch.heal()
    t2 = wait_for("beta healed", all_quorate(beta, 3))
    return f"4 clients in 2 clusters; beta split decided after {t1:.1f}s with alpha untouched; healed {t2:.1f}s"


def check_lms(ctx):
    cl, q = ctx.cl, ctx.qnetd
    restore(cl, 5)  # 3 nodes + qdevice with the default N-1 = 2 votes
    n1, n2, n3 = cl.node(1), cl.node(2), cl.node(3)
    ctx.lab.switch.cut([[n1.host], [n2.host, n3.host]])
    t1 = wait_for("larger partition {2,3} quorate, node1 not", split_decided([n2, n3], [n1], 4),
                  invariant=never_both_sides([n1], [n2, n3]))
    hold("split decision", split_decided([n2, n3], [n1], 4))
    ctx.snaps.capture("lms-partition", q, [["-lv"]])
    ctx.lab.switch.heal()
    t2 = wait_for("all quorate with 5 votes after heal", all_quorate(cl, 5))
    # Last man standing: nodes leave one by one, node1 keeps quorum through qdevice.
    n3.stop()
    t3 = wait_for("nodes 1+2 quorate with 4 votes", lambda: (
        all(s and s["members"] == [1, 2] and s["quorate"] and s["total_votes"] == 4
            for s in quorum_of([n1, n2]).values()), quorum_of([n1, n2])),
        invariant=stays_quorate([n1]))
    n2.stop()

    def last_man():
        st = quorum_of([n1])
        return bool(st[1] and st[1]["members"] == [1] and st[1]["quorate"] and st[1]["total_votes"] == 3), st
    t4 = wait_for("node1 alone quorate with 1 + 2 qdevice votes", last_man, invariant=stays_quorate([n1]))
    hold("last man standing", last_man)
    t5 = restore(cl, 5)
    return (f"split decided after {t1:.1f}s, healed {t2:.1f}s; node3 gone {t3:.1f}s, node2 gone "
            f"{t4:.1f}s, node1 kept quorum throughout; rejoin {t5:.1f}s")


def _2nodelms_up(cl):
    """Both up and quorate, node 1 counting the qdevice vote.

    Not "both with 3 votes": when a 2nodelms client reports the 2-node membership
    before its peer has reported that ring, while the peer still holds an ACK for
    an older ring, qnetd answers NACK without storing a result, and 2nodelms never
    sends a VOTE_INFO to revise it. So a node that joins can stay at 2 votes until
    the next membership change. That is the C qnetd's behaviour (seen here at
    cluster start and after a heal, whichever node reports the new ring first),
    not a failure."""
    def cond():
        st = quorum_of(cl.nodes)
        ok = (all(s and s["quorate"] and s["members"] == [1, 2] for s in st.values())
              and st[1]["total_votes"] == 3)
        return ok, st
    return cond


def check_2nodelms(ctx):
    cl, q = ctx.cl, ctx.qnetd
    restore(cl, 3, _2nodelms_up(cl))
    n1, n2 = cl.node(1), cl.node(2)
    ctx.lab.switch.cut([[n1.host], [n2.host]])
    t1 = wait_for("node1 quorate, node2 not", split_decided([n1], [n2], 2),
                  invariant=never_both_sides([n1], [n2]))
    hold("split decision", split_decided([n1], [n2], 2))
    ctx.snaps.capture("2nodelms-partition", q, [["-lv"]])
    ctx.lab.switch.heal()
    t2 = wait_for("both quorate after heal, node1 with 3 votes", _2nodelms_up(cl))
    n2.stop()

    def alone():
        st = quorum_of([n1])
        return bool(st[1] and st[1]["members"] == [1] and st[1]["quorate"] and st[1]["total_votes"] == 2), st
    t3 = wait_for("node1 alone quorate", alone, invariant=stays_quorate([n1]))
    t4 = restore(cl, 3, _2nodelms_up(cl))
    return f"split decided after {t1:.1f}s, healed {t2:.1f}s; node2 stopped, node1 quorate {t3:.1f}s; rejoin {t4:.1f}s"


def check_heuristics(ctx):
    cl, q = ctx.cl, ctx.qnetd
    n1, n2 = cl.node(1), cl.node(2)
    # Node 1's heuristics fail, node 2's pass: the split must go to node 2 even
    # though the tie-breaker (lowest) would pick node 1.
    n1.host.write(HEUR_FLAG, "fail\n")
    restore(cl, 3)

    def heur_seen():
        r = q.observe("-lv")
        nodes = parse_qnetd_list(r.stdout).get(cl.name, {}).get("nodes", {})
        h = {k: v.get("Heuristics", "") for k, v in nodes.items()}
        return h.get(1, "").startswith("Fail") and h.get(2, "").startswith("Pass"), h
    t0 = wait_for("qnetd sees heuristics Fail on node 1, Pass on node 2", heur_seen)
    ctx.lab.switch.cut([[n1.host], [n2.host]])
    t1 = wait_for("node2 quorate, node1 not", split_decided([n2], [n1], 2),
                  invariant=never_both_sides([n1], [n2]))
    hold("split decision", split_decided([n2], [n1], 2))
    ctx.snaps.capture("heuristics-partition", q, [["-lv"]])
    ctx.lab.switch.heal()
    t2 = wait_for("both quorate after heal", all_quorate(cl, 3))
    os.unlink(n1.host.path(HEUR_FLAG))
    return f"heuristics reported after {t0:.1f}s; split went to node 2 after {t1:.1f}s; healed {t2:.1f}s"


class Scenario:
    def __init__(self, name, setup, checks):
        self.name = name
        self.setup = setup
        self.checks = checks  # [(check name, fn)]


SCENARIOS = [
    Scenario("pair", setup_pair, [
        ("enrolment", check_enrolment),
        ("quorate-2node", check_quorate_2node),
        ("node2-stopped", check_node2_stopped),
        ("node2-crashed", check_node2_crashed),
        ("partition-1-2", check_partition_1_2),
        ("qnetd-killed", check_qnetd_killed),
    ]),
    Scenario("quad", setup_quad, [("partition-2-2", check_partition_2_2)]),
    Scenario("wrongcert", setup_wrongcert, [("wrong-cluster-cert", check_wrong_cert)]),
    Scenario("tls", setup_tls, [
        ("tls-required", check_tls_required),
        ("tls-off", check_tls_off),
        ("two-clusters", check_two_clusters),
    ]),
    Scenario("lms", setup_lms, [("lms-3node", check_lms)]),
    Scenario("2nodelms", setup_2nodelms, [("2nodelms", check_2nodelms)]),
    Scenario("heuristics", setup_heuristics, [("heuristics-ffsplit", check_heuristics)]),
]

# Compared after all scenarios ran, from what they captured.
TOOL_OUTPUT_CHECK = "qnetd-tool-output"
ALL_CHECKS = [c for s in SCENARIOS for c, _ in s.checks] + [TOOL_OUTPUT_CHECK]


def check_tool_output(snaps):
    return snapshots.compare_all(snaps)
