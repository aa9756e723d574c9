#!/usr/bin/env bash
# Lab role: server. Brings lo and the server link up, sets its address and routes via the
# gateway. Lab:     role-server.sh --if s0=198.18.2.2/24 --via 198.18.2.1
#          VM:      role-server.sh --if eth1=198.18.2.2/24 --via 198.18.2.1 --net 198.18.0.0/15
# (On a VM keep the default route of the management NIC: route only the lab range.)
lab_usage() { sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'; }
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
lab_parse "$@"
lab_links_up
lab_routes
