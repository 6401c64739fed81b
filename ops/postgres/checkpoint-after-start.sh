#!/usr/bin/env bash
# Wakes PostgreSQL's checkpointer once after every start as a primary and after every promotion, so that
# archive_timeout bounds the WAL a crash can lose from the first minute on.
#
# PostgreSQL 15 to 17 start the checkpointer before recovery ends. Its first sleep ignores archive_timeout (not
# applied during recovery) and nothing wakes it when recovery ends, so the first forced WAL switch after a start can
# come up to checkpoint_timeout late (a crash in those minutes lost 75-370 s here, against archive_timeout's 60).
# A CHECKPOINT request wakes it; from then on it sleeps at most archive_timeout.
#
# Runs beside PostgreSQL (the instance pod's sidecar), over the local socket as the postgres user (PGHOST, PGUSER,
# PGPORT; peer authentication). CHECKPOINT_GUARD_INTERVAL: seconds between looks, default 5.
set -uo pipefail

interval="${CHECKPOINT_GUARD_INTERVAL:-5}"
[[ "$interval" =~ ^[1-9][0-9]*$ ]] || { echo "checkpoint-after-start: CHECKPOINT_GUARD_INTERVAL must be a whole number of seconds" >&2; exit 2; }
woken=""
while :; do
  # "<checkpointer start>|<in recovery>": a new start, a crash restart (one backend killed: PostgreSQL restarts every
  # child, the checkpointer too, without a new postmaster), or a promotion is a new state to act on once.
  if state=$(psql -XAtq -v ON_ERROR_STOP=1 -d postgres -c \
               "SELECT (SELECT backend_start FROM pg_stat_activity WHERE backend_type = 'checkpointer'), pg_is_in_recovery()" 2>/dev/null) \
     && [[ "$state" == *"|f" && "$state" != "$woken" ]]; then
    if psql -XAtq -v ON_ERROR_STOP=1 -d postgres -c CHECKPOINT >/dev/null; then
      echo "checkpoint-after-start: checkpointer started at ${state%|*} woken"
      woken="$state"
    fi
  fi
  sleep "$interval"
done
