#!/usr/bin/env bash
# Lab role: log server. Brings lo and both log links up with their addresses (the gateway is
# directly connected on each, so no routes). Lab:
#   role-log.sh --if l1=198.18.3.2/24 --if l2=198.18.4.2/24
lab_usage() { sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//'; }
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
lab_parse "$@"
lab_links_up
lab_routes
