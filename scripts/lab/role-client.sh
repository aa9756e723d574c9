#!/usr/bin/env bash
# Lab role: client. Brings lo and the client link up, sets its address and routes via the
# gateway. Lab:     role-client.sh --if c0=198.18.1.2/24 --via 198.18.1.1
#          VM:      role-client.sh --if eth1=198.18.1.2/24 --via 198.18.1.1 --net 198.18.0.0/15
# (On a VM keep the default route of the management NIC: route only the lab range.)
lab_usage() { sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'; }
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
lab_parse "$@"
lab_links_up
lab_routes
