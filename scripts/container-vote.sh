#!/usr/bin/env bash
# The image test's vote step (scripts/container-test.sh sets the QNETD_* variables):
# enrol a cluster exactly as a user does against the daemon in the container
# (a CSR made on the "node", signed by the container's own corosync-qnetd-certutil),
# then two qdevice-like clients must get their ACK over TLS.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cluster=ctest
openssl req -new -newkey rsa:2048 -nodes -subj "/CN=$cluster" -keyout "$work/key.pem" \
    -outform DER -out "$work/req.crq" 2>/dev/null
nssdb="$QNETD_VOLUME_DIR/qnetd/nssdb"
install -m 0644 "$work/req.crq" "$nssdb/$cluster.crq"
podman exec "$QNETD_CONTAINER" corosync-qnetd-certutil -s -c "/etc/corosync/qnetd/nssdb/$cluster.crq" -n "$cluster" >/dev/null
openssl x509 -inform DER -in "$nssdb/cluster-$cluster.crt" -out "$work/cert.pem"
python3 "$here/qnetd-vote-client.py" "$QNETD_HOST" "$QNETD_PORT" "$QNETD_CA" "$work/cert.pem" "$work/key.pem" "$cluster"
