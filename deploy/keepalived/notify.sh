#!/bin/sh
# keepalived notify hook for an ftcp gateway host (deploy/keepalived/keepalived.conf):
#   notify.sh MASTER|BACKUP|FAULT
# MASTER: `ftcp gateway takeover` (claims the log epoch, adopts every open connection, then
# forwards); BACKUP, FAULT: `ftcp gateway release` (stops forwarding protected traffic).
# Each transition and its outcome go to syslog (tag ftcp-vrrp). Install as
# /usr/local/lib/ftcp/notify.sh, owned by root, mode 755.
state="$1"
control="${FTCP_CONTROL:-127.0.0.1:7070}"
case "$state" in
  MASTER) verb=takeover ;;
  *) verb=release ;;
esac
logger -t ftcp-vrrp "$state: ftcp gateway $verb --control $control"
out=$(/usr/bin/node /opt/ftcp/bin/ftcp.js gateway "$verb" --control "$control" 2>&1)
rc=$?
logger -t ftcp-vrrp "$state: done (rc=$rc) $out"
exit 0
