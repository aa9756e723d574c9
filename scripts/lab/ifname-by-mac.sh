#!/usr/bin/env bash
# Prints the name of the interface with MAC address $1 (used by the Vagrantfile, whose VMs
# may name their NICs eth1 or enp0s8: the lab networks are given fixed MACs instead).
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 <mac>" >&2; exit 2; }
want="$(echo "$1" | tr 'A-F' 'a-f')"
for dev in /sys/class/net/*; do
  if [ "$(cat "$dev/address" 2>/dev/null)" = "$want" ]; then basename "$dev"; exit 0; fi
done
echo "$0: no interface with MAC $1" >&2
exit 1
