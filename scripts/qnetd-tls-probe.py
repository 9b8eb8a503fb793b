#!/usr/bin/env python3
"""TLS probe for a running qnetd: speaks the plaintext start of the qdevice protocol
(PREINIT, then STARTTLS), then does a real TLS handshake on the same socket, as
corosync-qdevice does (wire.md §1; byte layout as in
reference-output/wire-preinit-and-tls-hello.txt).

Why not `openssl s_client`: qnetd's STARTTLS is its own framed message, which
s_client cannot send.

Usage: qnetd-tls-probe.py HOST PORT [CA_FILE]
With CA_FILE (PEM), the server's certificate chain must verify against it.
Prints one line and exits 0 on success, 1 on failure.
"""
import socket
import ssl
import struct
import sys

PREINIT, PREINIT_REPLY, STARTTLS = 0, 1, 2
OPT_SEQ, OPT_CLUSTER_NAME, OPT_TLS_SUPPORTED = 0, 1, 2


def tlv(opt, value):
    return struct.pack(">HH", opt, len(value)) + value


def frame(msg_type, body):
    return struct.pack(">HI", msg_type, len(body)) + body


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def options(body):
    out, i = {}, 0
    while i + 4 <= len(body):
        opt, length = struct.unpack(">HH", body[i : i + 4])
        out[opt] = body[i + 4 : i + 4 + length]
        i += 4 + length
    return out


def main():
    if len(sys.argv) not in (3, 4):
        print(__doc__, file=sys.stderr)
        return 2
    host, port = sys.argv[1], int(sys.argv[2])
    cafile = sys.argv[3] if len(sys.argv) == 4 else None
    sock = socket.create_connection((host, port), timeout=60)
    sock.sendall(frame(PREINIT, tlv(OPT_SEQ, struct.pack(">I", 1)) + tlv(OPT_CLUSTER_NAME, b"probe")))
    # Read exactly one frame: whatever follows belongs to TLS.
    msg_type, length = struct.unpack(">HI", recv_exact(sock, 6))
    opts = options(recv_exact(sock, length))
    if msg_type != PREINIT_REPLY:
        raise RuntimeError(f"expected PREINIT_REPLY (1), got message type {msg_type}")
    tls = opts.get(OPT_TLS_SUPPORTED, b"\0")[0]
    if tls == 0:
        raise RuntimeError("server does not offer TLS (started with -s off?)")
    sock.sendall(frame(STARTTLS, tlv(OPT_SEQ, struct.pack(">I", 2))))

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False  # the server certificate is CN=Qnetd Server, not the host
    if cafile:
        ctx.load_verify_locations(cafile=cafile)
    else:
        ctx.verify_mode = ssl.CERT_NONE
    # SNI as the real client sends it.
    tsock = ctx.wrap_socket(sock, server_hostname="Qnetd Server")
    cert = tsock.getpeercert(binary_form=True) or b""
    print(
        f"TLS OK: {tsock.version()} {tsock.cipher()[0]}, server certificate {len(cert)} bytes"
        + (f", verified against {cafile}" if cafile else ", not verified (no CA file given)")
    )
    tsock.close()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # one line for the test log, whatever went wrong
        print(f"TLS FAILED: {type(e).__name__}: {e}")
        sys.exit(1)
