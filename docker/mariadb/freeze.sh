#!/bin/sh
# Freezes MariaDB's writes with FLUSH TABLES WITH READ LOCK, held for
# FREEZE_SECONDS, every FREEZE_EVERY seconds (or once, with FREEZE_ONCE=1).
# Reads and new connections keep working; INSERTs wait. Used by the compose
# stack's `freezer` service and by `sluice demo` (the same file).
#
# Environment: FREEZE_HOST (127.0.0.1), FREEZE_PORT (3306), FREEZE_USER (root),
# FREEZE_PASSWORD (empty), FREEZE_SECONDS (8), FREEZE_EVERY (60), FREEZE_ONCE (0).
set -eu
host=${FREEZE_HOST:-127.0.0.1}
port=${FREEZE_PORT:-3306}
user=${FREEZE_USER:-root}
secs=${FREEZE_SECONDS:-8}
every=${FREEZE_EVERY:-60}
once=${FREEZE_ONCE:-0}
export MYSQL_PWD="${FREEZE_PASSWORD:-}"

freeze() {
  mariadb --protocol=TCP -h "$host" -P "$port" -u "$user" -N \
    -e "FLUSH TABLES WITH READ LOCK; SELECT SLEEP($secs); UNLOCK TABLES" >/dev/null
}

if [ "$once" = 1 ]; then
  freeze
  exit 0
fi
while true; do
  sleep "$every"
  echo "freeze: writes frozen for ${secs}s"
  if freeze; then echo "freeze: released"; else echo "freeze: cannot reach MariaDB"; fi
done
