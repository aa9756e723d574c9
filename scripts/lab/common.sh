# Shared helpers for the per-role lab setup scripts (sourced, not run).
# Used inside a lab network namespace (`ip netns exec NS bash role-X.sh ...`) and on the
# Vagrant VMs alike: everything the scripts touch is passed as arguments.
#
# Common options:
#   --if NAME=ADDR/PREFIX   bring NAME up with that address (repeatable; `ip addr replace`)
#   --via GATEWAY           route through GATEWAY: the default route, or with --net only those
#   --net CIDR              route CIDR via GATEWAY instead of the default route (repeatable)
# Idempotent: running a script twice leaves the same state.

set -euo pipefail

LAB_IFS=()
LAB_VIA=""
LAB_NETS=()

lab_die() { echo "$(basename "$0"): $*" >&2; exit 2; }

lab_parse() {
  while [ $# -gt 0 ]; do
    case "$1" in
      --if)  [ $# -ge 2 ] || lab_die "--if needs NAME=ADDR/PREFIX"; LAB_IFS+=("$2"); shift 2 ;;
      --via) [ $# -ge 2 ] || lab_die "--via needs an address"; LAB_VIA="$2"; shift 2 ;;
      --net) [ $# -ge 2 ] || lab_die "--net needs a CIDR"; LAB_NETS+=("$2"); shift 2 ;;
      -h|--help) lab_usage; exit 0 ;;
      *) lab_die "unknown argument '$1' (try --help)" ;;
    esac
  done
  [ ${#LAB_IFS[@]} -gt 0 ] || lab_die "at least one --if NAME=ADDR/PREFIX is required"
  local spec
  for spec in "${LAB_IFS[@]}"; do
    [[ "$spec" =~ ^[A-Za-z0-9_.@-]{1,15}=[0-9]{1,3}(\.[0-9]{1,3}){3}/[0-9]{1,2}$ ]] \
      || lab_die "bad --if '$spec' (expected NAME=ADDR/PREFIX)"
  done
  if [ ${#LAB_NETS[@]} -gt 0 ] && [ -z "$LAB_VIA" ]; then lab_die "--net needs --via"; fi
}

# Writes a sysctl through /proc (no dependency on procps); the value is per network namespace.
lab_sysctl() { # lab_sysctl net/ipv4/ip_forward 1
  local path="/proc/sys/$1"
  [ -e "$path" ] || lab_die "no such sysctl: $1"
  echo "$2" > "$path"
}

lab_links_up() {
  ip link set lo up
  local spec name addr
  for spec in "${LAB_IFS[@]}"; do
    name="${spec%%=*}"; addr="${spec#*=}"
    ip link show dev "$name" >/dev/null 2>&1 || lab_die "no interface '$name'"
    ip addr replace "$addr" dev "$name"
    ip link set dev "$name" up
  done
}

lab_routes() {
  [ -n "$LAB_VIA" ] || return 0
  if [ ${#LAB_NETS[@]} -eq 0 ]; then
    ip route replace default via "$LAB_VIA"
  else
    local net
    for net in "${LAB_NETS[@]}"; do ip route replace "$net" via "$LAB_VIA"; done
  fi
}
