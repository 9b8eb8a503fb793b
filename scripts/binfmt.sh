#!/usr/bin/env bash
# Register qemu-user for aarch64 and arm ELF binaries with the kernel (binfmt_misc),
# so arm binaries, and arm images under podman, run on this x86_64 machine.
#
# Why by hand: Debian's qemu-user-static ships /usr/lib/binfmt.d/qemu-*.conf, which
# systemd-binfmt would load at boot; this machine has no systemd, so nothing does.
# The entries have flags OPF: F makes the kernel open the interpreter now, so it
# also works inside a FROM-scratch container that has no qemu of its own.
# Idempotent: mounts binfmt_misc only if needed and skips registered entries.
# Undo: echo -1 > /proc/sys/fs/binfmt_misc/qemu-aarch64 (resp. qemu-arm).
set -euo pipefail
dir=/proc/sys/fs/binfmt_misc
if [ ! -e "$dir/register" ]; then
    mount -t binfmt_misc binfmt_misc "$dir"
fi
for name in qemu-aarch64 qemu-arm; do
    conf=/usr/lib/binfmt.d/$name.conf
    [ -f "$conf" ] || { echo "binfmt: $conf missing (apt-get install qemu-user-static)" >&2; exit 1; }
    if [ -e "$dir/$name" ]; then
        # Registered earlier (maybe by someone else): make sure it is enabled.
        head -n1 "$dir/$name" | grep -qx enabled || echo 1 > "$dir/$name"
    else
        cat "$conf" > "$dir/register"
    fi
done
echo "binfmt: qemu-aarch64 and qemu-arm registered" >&2
