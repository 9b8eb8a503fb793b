#!/bin/sh
# Stand-in for our multi-call binary that hands over to the distribution's C
# programs by the name it was invoked under. With it, `--impl rust` can be run
# against known-good programs, which tests the suite's rust-mode plumbing
# (symlinked names, flags, the C tool reading "our" daemon's IPC) by itself:
#   QNETD_BIN=tests/e2e/c-multicall.sh tests/e2e/run.sh --impl rust
name=$(basename "$0")
case "$name" in
    corosync-qnetd|corosync-qnetd-certutil|corosync-qnetd-tool) exec "/usr/bin/$name" "$@" ;;
    *) echo "c-multicall.sh: invoked as '$name', expected a corosync-qnetd* name" >&2; exit 1 ;;
esac
