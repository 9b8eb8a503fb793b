#!/usr/bin/env bash
# apt-need.sh PACKAGE...: install the Debian packages that are not installed yet.
# Does nothing (and runs no `apt-get update`) when all are present, so scripts can
# call it on every run. An `apt-get update` failure, e.g. one stale mirror index,
# does not stop it: the install is what has to succeed.
set -euo pipefail
missing=()
for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || echo "apt-need: apt-get update failed; trying the install anyway" >&2
echo "apt-need: apt-get install ${missing[*]}" >&2
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
