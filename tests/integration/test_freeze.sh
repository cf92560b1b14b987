#!/usr/bin/env bash
# canaryctl freeze / unfreeze against a live canaryd on the real PostgreSQL and Kafka (ctest label
# integration).
#
#   tests/integration/test_freeze.sh CANARYCTL CANARYD
#
# Needs CANARY_PG and CANARY_KAFKA (scripts/lib/services.sh: services_start all; services_env)
# and FAILS without them. Hermetic (a database and topics of its own: a freeze left behind by a
# failure cannot stop another suite's canaryd). A rollout is requested and stored; then freeze:
# the worker says it obeys (log, /metrics canaryd_frozen 1), status shows FROZEN, and the
# rollout's deploy gates emitted meanwhile are not applied (the rollout stays pending, the
# consumer does not advance). unfreeze: every one of them is applied — the rollout runs with
# each gate passed — and the audit has both, with actor and reason.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
plan=$root/tests/scenarios/plans/deploy-gates.yaml
# shellcheck source=tests/integration/lib.sh
source "$root/tests/integration/lib.sh"
suite_start test_freeze.sh "$plan" "$@" # $ctl, $daemon, $tmp, $suffix; $pid stopped on exit
suite_own_database freeze                 # dropped on exit
R=web-freeze-$suffix

logged() { grep -qF -- "$1" "$tmp/canaryd.log"; }
metric_is() { curl -s --max-time 5 "http://127.0.0.1:$port/metrics" | grep -qx -- "$1"; }
# The offsets the worker stored (its progress over the input topics, kept in the store).
applied_upto() { psql "$CANARY_PG" -Atc "SELECT coalesce(sum(next_offset), 0) FROM offsets"; }

suite_daemon freeze # $pid, $port; ready

step "usage errors"
run 2 "$ctl" freeze extra
has "$err" "canaryctl freeze: unexpected argument 'extra'"
run 0 "$ctl" unfreeze --help
has "$out" "usage: canaryctl freeze"

step "a rollout is requested and stored"
run 0 "$ctl" emit --id "$R-req" --type rollout.requested --rollout "$R" --service "web-$suffix" \
  --version 2.1.0 --baseline_version 2.0.3 --quiet
wait_for 60 "$R to be stored" status_has "$R" "state           pending" ||
  fail "no $R: $("$ctl" status "$R" 2>&1)"
wait_for 30 "/metrics" metric_is "canaryd_frozen 0" || fail "no canaryd_frozen 0 on /metrics"
run 0 "$ctl" unfreeze --actor alice
has "$err" "canaryctl unfreeze: not frozen: nothing to do"

step "freeze: the worker obeys"
run 0 "$ctl" freeze --reason "incident 42" --actor alice
has "$out" "FROZEN: every worker stops applying events"
wait_for 30 "the worker to obey" logged "frozen by alice (incident 42)" || fail "not obeyed"
wait_for 30 "canaryd_frozen 1" metric_is "canaryd_frozen 1" || fail "/metrics: not frozen"
run 0 "$ctl" freeze --actor bob
has "$err" "canaryctl freeze: already frozen"
run 0 "$ctl" status "$R"
has "$out" "*** FROZEN since "
has "$out" " by alice: incident 42: no event is applied (canaryctl unfreeze) ***"
has "$out" "state           pending"

step "events emitted while frozen wait in Kafka"
before=$(applied_upto)
now=$(date +%s%3N)
run 0 "$ctl" emit <<EOF
{"id":"$R-ci","rollout":"$R","time":$now,"type":"ci.completed","ok":true}
{"id":"$R-deploy","rollout":"$R","time":$now,"type":"deploy.completed","ok":true}
{"id":"$R-health","rollout":"$R","time":$now,"type":"health.checked","ok":true}
EOF
[[ $err == "emitted 3 events (0 bad lines)" ]] || fail "emit summary: '$err'"
# Not applied: the worker would do it within a few hundred milliseconds; give it far longer.
# (A check that something does not happen has to wait; it cannot pass by luck.)
sleep 3
run 0 "$ctl" status "$R"
has "$out" "state           pending"
has "$out" "fail          ci_passed"
[[ $(applied_upto) == "$before" ]] || fail "the stored offsets moved while frozen"

step "unfreeze: every event that waited is applied"
run 0 "$ctl" unfreeze --reason "incident 42 mitigated" --actor alice
has "$out" "unfrozen"
wait_for 60 "$R to start" status_has "$R" "state           running" ||
  fail "$R did not start after unfreeze: $("$ctl" status "$R" 2>&1)"
run 0 "$ctl" status "$R"
has "$out" "pass          ci_passed"
[[ $out != *FROZEN* ]] || fail "status still says FROZEN"
logged "unfrozen by alice (incident 42 mitigated)" || fail "no unfreeze in the log"
wait_for 30 "canaryd_frozen 0" metric_is "canaryd_frozen 0" || fail "/metrics: still frozen"

step "the audit has both, with actor and reason"
run 0 "$ctl" audit --actor alice
has "$out" "freeze"
has "$out" "incident 42"
has "$out" "unfreeze"
has "$out" "incident 42 mitigated"
has "$out" "not frozen"
run 0 "$ctl" audit --actor bob
has "$out" "already frozen"
echo "PASS"
