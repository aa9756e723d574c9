#!/usr/bin/env bash
# Checks deploy/keepalived/keepalived.conf with keepalived's own parser (`keepalived
# --config-test`) as each host of the pair reads it (config ids gw-a and gw-b). Needs root
# and keepalived (scripts/bootstrap installs it). keepalived checks that the interfaces exist,
# so the test runs in a throwaway network namespace holding an eth1 and an eth2; the hook
# paths are pointed at this folder's scripts. Exit 0 only if both parse without a word.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
ns="ftcp-kacheck-$$"
work="$(mktemp -d)"
trap 'ip netns del "$ns" 2>/dev/null || true; rm -rf "$work"' EXIT
ip netns add "$ns"
ip -n "$ns" link add eth1 type veth peer name eth1p
ip -n "$ns" link add eth2 type veth peer name eth2p
sed "s#/usr/local/lib/ftcp/#$here/#g" "$here/keepalived.conf" >"$work/keepalived.conf"
status=0
for id in gw-a gw-b; do
  out="$(ip netns exec "$ns" keepalived --config-test --config-id "$id" --use-file "$work/keepalived.conf" 2>&1)" || { status=1; }
  if [ -n "$out" ]; then status=1; fi
  echo "$id: ${out:-ok}"
done
exit $status
