#!/usr/bin/env bash
# Full peer benchmark: setup, physical limits, W1/W2/W2-iso/W2-orm/W3 (and W2-async on request) for every
# adapter in harness/adapters/peer_*.py, then RESULTS.md.
# Takes ~17 minutes with the defaults on the 2-CPU machine before W2-orm, which
# adds ~3-4 min (estimated) (REPS=2: ~12 min before W2-orm, estimated).
#
#   ./run_all.sh                      # REPS=3, all peers, all workloads
#   REPS=1 PEERS=rq,celery ./run_all.sh
#   WORKLOADS=W1,W3 SKIP_PHYS=1 ./run_all.sh
#   WORKLOADS=W2-orm SKIP_PHYS=1 ./run_all.sh   # only the ORM-job drain
#   WORKLOADS=W2-async SKIP_PHYS=1 ./run_all.sh # jobs awaiting 100 ms of I/O (not in the default list)
#   EXTRA=yes ./run_all.sh            # also the secondary variants (+~5 min)
#   EXTRA=only SKIP_PHYS=1 ./run_all.sh   # only the secondary variants
#
# Raw results are appended to results/raw.jsonl (one JSON line per run);
# RESULTS.md is regenerated from this session's lines only.
set -euo pipefail
cd "$(dirname "$0")"
VENV=${VENV:-/tmp/peers/venv}
REPS=${REPS:-3}
SESSION=${SESSION:-$(date -u +%Y%m%dT%H%M%SZ)}
export PYTHONDONTWRITEBYTECODE=1  # no __pycache__ in the repo (site-packages keeps pip's)

./setup.sh
PY="$VENV/bin/python"
echo "session $SESSION, reps $REPS"

if [ -z "${SKIP_PHYS:-}" ]; then
  timeout 600 "$PY" -m harness.physical --reps "$REPS" --session "$SESSION"
fi
timeout 2400 "$PY" -m harness.bench --reps "$REPS" --session "$SESSION" --extra "${EXTRA:-no}" \
  ${PEERS:+--peers "$PEERS"} ${WORKLOADS:+--workloads "$WORKLOADS"}
CMD="REPS=$REPS${PEERS:+ PEERS=$PEERS}${WORKLOADS:+ WORKLOADS=$WORKLOADS}${EXTRA:+ EXTRA=$EXTRA}${SKIP_PHYS:+ SKIP_PHYS=1} ./run_all.sh"
# REPORT_SESSIONS: extra earlier sessions to merge into RESULTS.md (comma list)
"$PY" -m harness.report --sessions "$SESSION${REPORT_SESSIONS:+,$REPORT_SESSIONS}" --command "$CMD"
