#!/usr/bin/env bash
# Opt-in: the long property-testing campaign (issue 6): every hypothesis property test under
# FASTALIGN_HYPOTHESIS_PROFILE=long, i.e. at least 100,000 examples per op (tests/_profile.py),
# each compared with its reference (TRL 1.16 itself, or the torch path). Hours on 2 cores.
#
#   bash scripts/campaign.sh                         # every property, one after another
#   bash scripts/campaign.sh tests/parity/test_ratios.py    # or the pytest ids given
#
# Each property is its own pytest run; its log, with hypothesis's statistics (the number of
# examples actually run, which is below the target only when hypothesis exhausted the strategy's
# space), goes to $CAMPAIGN_LOGS (default campaign-logs/), and a one-line summary per property
# to $CAMPAIGN_LOGS/summary.txt. Run it niced on a shared machine: `nice -n 19 bash ...`.
set -uo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
[ -x "$py" ] || { echo "run scripts/setup.sh first" >&2; exit 2; }
logs="${CAMPAIGN_LOGS:-campaign-logs}"
mkdir -p "$logs"
export FASTALIGN_HYPOTHESIS_PROFILE=long

if [ $# -gt 0 ]; then
    ids=("$@")
else
    # every test function decorated with @given, as pytest node ids (parametrized ones whole)
    mapfile -t ids < <(for f in tests/*/test_*.py; do
        awk -v F="$f" '/^@given/{g=1} g && /^def /{sub(/^def /,""); sub(/\(.*/,""); print F"::"$0; g=0}' "$f"
    done)
fi

status=0
for id in "${ids[@]}"; do
    name="$(echo "$id" | tr '/:[]' '____')"
    start=$(date +%s)
    "$py" -m pytest -q -p no:cacheprovider -p no:randomly --hypothesis-show-statistics "$id" \
        >"$logs/$name.log" 2>&1
    rc=$?
    [ $rc -eq 0 ] || status=1
    passed="$(grep -Eo '[0-9]+ passed' "$logs/$name.log" | tail -1)"
    failed="$(grep -Eo '[0-9]+ failed' "$logs/$name.log" | tail -1)"
    examples="$(grep -Eo "[0-9]+ passing" "$logs/$name.log" | awk "{s+=\$1} END {print s+0}")"
    printf '%s  rc=%d  %ss  %s %s  passing examples (all cells): %s\n' "$id" "$rc" "$(( $(date +%s) - start ))" \
        "${passed:-0 passed}" "${failed:-}" "$examples" | tee -a "$logs/summary.txt"
done
exit $status
