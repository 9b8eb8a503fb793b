#!/usr/bin/env python3
"""Two qdevice-like clients of one 2-node ffsplit cluster against a running qnetd,
over real STARTTLS + TLS with a client certificate: PREINIT, STARTTLS, INIT, the
initial config, membership and quorum lists, then wait until both nodes have been
sent VOTE_INFO ACK (answering every VOTE_INFO as the real client does).

Usage: qnetd-vote-client.py HOST PORT CA_PEM CERT_PEM KEY_PEM CLUSTER
Prints one line; exit 0 only when both nodes got their ACK within 30 s.
Used by scripts/container-vote.sh (the image test); byte layout per wire.md.
"""
import socket
import ssl
import struct
import sys
import time

(PREINIT, PREINIT_REPLY, STARTTLS, INIT, INIT_REPLY, SERVER_ERROR) = range(6)
NODE_LIST, NODE_LIST_REPLY, VOTE_INFO, VOTE_INFO_REPLY = 10, 11, 14, 15
ACK = 1


def tlv(opt, value):
    return struct.pack(">HH", opt, len(value)) + value


def u32(v):
    return struct.pack(">I", v)


def frame(msg_type, *tlvs):
    body = b"".join(tlvs)
    return struct.pack(">HI", msg_type, len(body)) + body


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("server closed the connection")
        buf += chunk
    return buf


def read_msg(sock):
    t, length = struct.unpack(">HI", recv_exact(sock, 6))
    body = recv_exact(sock, length)
    opts, i = {}, 0
    while i + 4 <= len(body):
        o, l = struct.unpack(">HH", body[i : i + 4])
        opts[o] = body[i + 4 : i + 4 + l]
        i += 4 + l
    if t == SERVER_ERROR:
        raise RuntimeError(f"SERVER_ERROR {struct.unpack('>H', opts[6])[0]}")
    return t, opts


class Node:
    def __init__(self, host, port, ctx, cluster, node_id):
        self.node_id = node_id
        sock = socket.create_connection((host, port), timeout=30)
        sock.sendall(frame(PREINIT, tlv(0, u32(1)), tlv(1, cluster.encode())))
        t, _ = read_msg(sock)
        assert t == PREINIT_REPLY, t
        sock.sendall(frame(STARTTLS, tlv(0, u32(2))))
        self.sock = ctx.wrap_socket(sock, server_hostname="Qnetd Server")
        ring = u32(1) + struct.pack(">Q", 1)
        self.sock.sendall(
            frame(
                INIT,
                tlv(0, u32(3)),
                tlv(4, b"".join(struct.pack(">H", i) for i in range(18))),
                tlv(5, b"".join(struct.pack(">H", i) for i in range(24))),
                tlv(9, u32(node_id)),
                tlv(11, struct.pack(">H", 1)),  # ffsplit
                tlv(12, u32(8000)),
                tlv(21, b"\x01" + u32(0)),  # lowest node id
                tlv(13, ring),
            )
        )
        t, opts = read_msg(self.sock)
        if t != INIT_REPLY or struct.unpack(">H", opts[6])[0] != 0:
            raise RuntimeError(f"node {node_id}: INIT refused: {opts.get(6)}")
        nodes = tlv(17, tlv(9, u32(1))) + tlv(17, tlv(9, u32(2)))
        self.sock.sendall(frame(NODE_LIST, tlv(0, u32(4)), tlv(18, b"\x00"), nodes))
        self.sock.sendall(frame(NODE_LIST, tlv(0, u32(5)), tlv(18, b"\x02"), tlv(13, ring), nodes))
        self.sock.sendall(frame(NODE_LIST, tlv(0, u32(6)), tlv(18, b"\x03"), tlv(20, b"\x01"), nodes))
        self.sock.settimeout(0.2)
        self.acked = False

    def poll(self):
        try:
            t, opts = read_msg(self.sock)
        except (socket.timeout, ssl.SSLWantReadError):
            return
        if t == VOTE_INFO:
            self.sock.sendall(frame(VOTE_INFO_REPLY, tlv(0, opts[0])))
            if opts.get(19) == bytes([ACK]):
                self.acked = True


def main():
    if len(sys.argv) != 7:
        print(__doc__, file=sys.stderr)
        return 2
    host, port, ca, cert, key, cluster = sys.argv[1], int(sys.argv[2]), *sys.argv[3:]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False  # CN=Qnetd Server, checked below like NSS does
    ctx.load_verify_locations(cafile=ca)
    ctx.load_cert_chain(cert, key)
    nodes = [Node(host, port, ctx, cluster, 1), Node(host, port, ctx, cluster, 2)]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not all(n.acked for n in nodes):
        for n in nodes:
            n.poll()
    if not all(n.acked for n in nodes):
        print(f"VOTE FAILED: ACK received by nodes {[n.node_id for n in nodes if n.acked]}")
        return 1
    print(f"VOTE OK: nodes 1 and 2 of cluster {cluster!r} hold ACK")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:
        print(f"VOTE FAILED: {type(e).__name__}: {e}")
        sys.exit(1)
