#!/usr/bin/env bash
# Lab role: gateway (a router). Brings lo and every given link up with its address, then:
# ip_forward=1; rp_filter=0 on all/default/each interface (packets re-enter from the TUN);
# no ICMP redirects sent or accepted. Does NOT start ftcp: the caller does. Lab:
#   role-gateway.sh --if gc0=198.18.1.1/24 --if gs0=198.18.2.1/24 --if gl1=198.18.3.1/24 --if gl2=198.18.4.1/24
lab_usage() { sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'; }
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
lab_parse "$@"

# "default" first, so interfaces created later (the gateway's TUN) inherit these values.
for conf in default all /proc/sys/net/ipv4/conf/*; do
  conf="${conf##*/}"
  lab_sysctl "net/ipv4/conf/$conf/rp_filter" 0
  lab_sysctl "net/ipv4/conf/$conf/send_redirects" 0
  lab_sysctl "net/ipv4/conf/$conf/accept_redirects" 0
done
lab_links_up
lab_routes
lab_sysctl net/ipv4/ip_forward 1

# Interfaces created between the loop and now get "default"; check the ones we were given.
for spec in "${LAB_IFS[@]}"; do
  name="${spec%%=*}"
  [ "$(cat "/proc/sys/net/ipv4/conf/$name/rp_filter")" = 0 ] || lab_die "rp_filter still set on $name"
done
