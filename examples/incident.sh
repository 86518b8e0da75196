#!/usr/bin/env bash
# An incident, driven with the sluice CLI: MariaDB saturated, writes queued.
# Look first, keep a copy, hold the drain while MariaDB recovers, let it go,
# watch the queue empty, then check what MariaDB refused.
#
#   SLUICE_URL=http://127.0.0.1:8080 SLUICE_ADMIN_TOKENS=... examples/incident.sh
#
# Environment: SLUICE (the binary; default `sluice`), SLUICE_URL,
# SLUICE_ADMIN_TOKENS, EXPORT (where step 4 writes the queue; default
# ./incident-queue.jsonl), WAIT (seconds to wait for the queue to empty; 120).
set -euo pipefail
SLUICE=${SLUICE:-sluice}
EXPORT=${EXPORT:-incident-queue.jsonl}
WAIT=${WAIT:-120}

step() { printf '\n== %s\n' "$*"; }
depth() { "$SLUICE" queue stats --json | tr -d ' \n' | sed -n 's/.*"depth":\([0-9]*\).*/\1/p'; }

step "1. What is going on? (mode and why, primary, queue, drain)"
"$SLUICE" status

step "2. How much is held, how old, how fast is it draining?"
"$SLUICE" queue stats

step "3. The oldest queued writes"
"$SLUICE" queue list --limit 5

step "4. A copy of the queue before touching anything: $EXPORT"
"$SLUICE" queue export --output "$EXPORT"

step "5. Hold the drain while MariaDB recovers (writes keep being queued)"
"$SLUICE" drain pause
"$SLUICE" status | grep -E '^(mode|drain) '

step "6. MariaDB is back: let the drain go"
"$SLUICE" drain resume

step "7. Watch the queue empty"
deadline=$((SECONDS + WAIT))
while [ "$(depth)" != "0" ]; do
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "the queue did not empty within ${WAIT}s" >&2
    exit 1
  fi
  "$SLUICE" queue watch --iterations 1
  sleep 1
done
"$SLUICE" status

step "8. Anything MariaDB refused? (dead letters: show, retry or drop)"
"$SLUICE" dead list
