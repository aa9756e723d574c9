#!/bin/sh
# keepalived track_script (deploy/keepalived/keepalived.conf): exit 0 only if this host's
# ftcp gateway is running and ready: its --ready-file (written once it is ready; by a
# --standby gateway once it is warm) names a live process. A gateway killed with -9 leaves
# the file with a stale pid behind, hence kill -0. Install as
# /usr/local/lib/ftcp/check-gateway.sh, owned by root, mode 755.
ready="${FTCP_READY_FILE:-/run/ftcp/gateway.ready}"
pid=$(sed -n 's/.*"pid": *\([0-9][0-9]*\).*/\1/p' "$ready" 2>/dev/null | head -n 1)
[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
