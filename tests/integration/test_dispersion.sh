#!/usr/bin/env bash
# canaryctl dispersion and dispersion --check against a live canaryd on the real PostgreSQL and
# Kafka (ctest label integration).
#
#   tests/integration/test_dispersion.sh CANARYCTL CANARYD
#
# Needs CANARY_PG and CANARY_KAFKA (scripts/lib/services.sh: services_start all; services_env)
# and FAILS without them. Hermetic (a database and topics of its own). One release of a service
# whose baseline errors come in bursts (5 and 15 in turn, of 20,000 requests every 10 s: each
# step of the dispersion estimate is 5.0) is rolled back, so finished; then `dispersion` learns
# 5 from it, and `--check` calls a plan that says 1 STALE (exit 1), 5 current and 20 high
# (exit 0), lists an entry nothing can check, and says that the built-in assumption (3) is under
# what this service shows.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
plan=$root/config/rollout.yaml
# shellcheck source=tests/integration/lib.sh
source "$root/tests/integration/lib.sh"
suite_start test_dispersion.sh "$plan" "$@" # $ctl, $daemon, $tmp, $suffix; $pid stopped on exit
suite_own_database dispersion              # dropped on exit
R=web-disp-$suffix
S=websvc-$suffix

suite_daemon disp # $pid, $port; ready

step "usage"
run 0 "$ctl" dispersion --help
has "$out" "--check          instead: the plan's values against what the releases show now."
run 2 "$ctl" dispersion --plan "$plan"
has "$err" "canaryctl dispersion: --plan goes with --check"
run 2 "$ctl" dispersion --check --format yaml
has "$err" "canaryctl dispersion: --check prints text or json, not yaml"
run 1 "$ctl" dispersion --check --plan "$tmp/missing.yaml"
has "$err" "missing.yaml"

step "nothing finished yet: nothing to learn, nothing to check against"
run 1 "$ctl" dispersion --service "$S"
has "$err" "nothing learned yet"
run 0 "$ctl" dispersion --check --service "$S"
has "$err" "nothing to check against yet: no finished release of '$S' has baseline reports"

step "a release with bursty baseline errors, rolled back"
# Event time: 20 minutes ago, so that every report is applied at once.
t0=$((($(date +%s%3N) - 20 * 60000) / 60000 * 60000))
{
  cat <<EOF
{"id":"$R-req","rollout":"$R","time":$t0,"type":"rollout.requested","service":"$S","version":"2.1.0","baseline_version":"2.0.3"}
{"id":"$R-ci","rollout":"$R","time":$t0,"type":"ci.completed","ok":true}
{"id":"$R-deploy","rollout":"$R","time":$t0,"type":"deploy.completed","ok":true}
{"id":"$R-health","rollout":"$R","time":$t0,"type":"health.checked","ok":true}
EOF
  for ((i = 1; i <= 96; i++)); do
    t=$((t0 + i * 10000))
    e=$((i % 2 ? 5 : 15))
    echo "{\"id\":\"$R-$i-b\",\"rollout\":\"$R\",\"time\":$t,\"type\":\"metrics\",\"cohort\":\"internal_test\",\"variant\":\"baseline\",\"interval_ms\":10000,\"counters\":{\"requests\":20000,\"errors\":$e}}"
    echo "{\"id\":\"$R-$i-c\",\"rollout\":\"$R\",\"time\":$t,\"type\":\"metrics\",\"cohort\":\"internal_test\",\"variant\":\"canary\",\"interval_ms\":10000,\"counters\":{\"requests\":100,\"errors\":0}}"
  done
} >"$tmp/events.jsonl"
run 0 "$ctl" emit --quiet <"$tmp/events.jsonl"
reports_in() { # every event applied and committed: the stored offsets are past all 196
  [[ $(psql "$CANARY_PG" -XAtc "SELECT coalesce(sum(next_offset), 0) FROM offsets") -ge 196 ]]
}
wait_for 60 "every report to be applied" reports_in || fail "reports not applied"
run 0 "$ctl" rollback "$R" --actor alice --reason "dispersion test"
has "$out" " $R rollback internal_test rolled_back [manual]"

step "dispersion learns 5 from the baseline's 95 steps"
run 0 "$ctl" dispersion --service "$S"
has "$out" "$S"
grep -Eq "^$S +errors +1 +95 +5$" <<<"$out" || fail "the learned row: $out"
has "$out" "- {counter: errors, service: \"$S\", value: 5, reports: 95}"

step "--check: a plan that says 1 is stale (exit 1)"
plan_with() { # plan_with FILE ENTRY...: the built-in plan with these decisions.dispersion entries
  local file=$1 entries="  dispersion:" entry
  shift
  for entry; do entries+=$'\n'"    - $entry"; done
  awk -v add="$entries" '{ print } /^decisions:/ { print add }' "$plan" >"$file"
  grep -q "^  dispersion:" "$file" || fail "no decisions: in $plan"
}
plan_with "$tmp/stale.yaml" "{counter: errors, service: \"$S\", value: 1, reports: 10000}" \
  "{counter: errors, service: \"nobody-$suffix\", value: 2}"
run 1 "$ctl" dispersion --check --plan "$tmp/stale.yaml" --service "$S"
grep -Eq "^$S +errors +1 \(learned\) +1 +95 +5 \(3\.81-6\.2\) +STALE: re-learn$" <<<"$out" ||
  fail "the stale row: $out"
has "$err" "1 value under what the releases show: healthy releases may be halted"
# another service's entry is not this service's to check
if grep -q "nobody-$suffix" <<<"$out"; then fail "another service's entry listed: $out"; fi
CANARY_PLAN=$tmp/stale.yaml run 1 "$ctl" dispersion --check --format json --service "$S"
has "$out" "{\"service\":\"$S\",\"counter\":\"errors\",\"plan\":1,\"source\":\"learned\",\"releases\":1,\"reports\":95,"
has "$out" "\"verdict\":\"stale\"}],\"unchecked\":[],\"stale\":1}"

step "--check: 5 is current, 20 high (exit 0); no entry: the assumed 3 is under 5 (exit 1)"
plan_with "$tmp/ok.yaml" "{counter: errors, service: \"$S\", value: 5}"
run 0 "$ctl" dispersion --check --plan "$tmp/ok.yaml"
grep -Eq "^$S +errors +5 \(learned\) .* current$" <<<"$out" || fail "the current row: $out"
plan_with "$tmp/high.yaml" "{counter: errors, value: 20}" \
  "{counter: transactions_failed, service: \"nobody-$suffix\", value: 2}"
run 0 "$ctl" dispersion --check --plan "$tmp/high.yaml"
grep -Eq "^$S +errors +20 \(learned, any service\) .* high: re-learn to prove sooner$" <<<"$out" ||
  fail "the high row: $out"
grep -Eq "^nobody-$suffix +transactions_failed +2 .* unchecked: no finished release to check against$" \
  <<<"$out" || fail "the unchecked entry: $out"
run 1 "$ctl" dispersion --check # the built-in plan: no entry, bursts of 3 assumed
grep -Eq "^$S +errors +3 \(assumed\) .* STALE: burstier than assumed; learn it$" <<<"$out" ||
  fail "the assumed row: $out"

echo PASS
