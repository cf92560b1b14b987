#!/usr/bin/env bash
# canaryctl against a live canaryd on the real PostgreSQL and Kafka (ctest label integration).
#
#   tests/integration/test_cli.sh CANARYCTL CANARYD
#
# Needs CANARY_PG and CANARY_KAFKA (scripts/lib/services.sh: services_start all; services_env)
# and FAILS without them: an integration test that cannot run is not a pass.
# Starts its own canaryd (fresh consumer group; the offsets themselves live in PostgreSQL) with
# tests/scenarios/plans/deploy-gates.yaml, drives a fresh rollout through the deploy gates with
# `canaryctl emit`, then operates it: status, pause (twice: the second is rejected), resume,
# promote, a cohort kill switch off and on, rollback, history; and checks that input the worker
# rejects becomes a dead letter. Do not run it while another canaryd works on the same database
# (the two would take the shards from each other).
set -euo pipefail

ctl=${1:?usage: test_cli.sh CANARYCTL CANARYD}
daemon=${2:?usage: test_cli.sh CANARYCTL CANARYD}
root=$(cd "$(dirname "$0")/../.." && pwd)
plan=$root/tests/scenarios/plans/deploy-gates.yaml

: "${CANARY_PG:?CANARY_PG is not set: start the services (scripts/lib/services.sh) first}"
: "${CANARY_KAFKA:?CANARY_KAFKA is not set: start the services (scripts/lib/services.sh) first}"
export CANARY_PG CANARY_KAFKA CANARY_PLAN=$plan

started=$(date +%s%N)
tmp=$(mktemp -d)
suffix=$$-$(date +%s)
R=web-cli-$suffix       # the rollout operated on
R2=api-cli-$suffix      # a second one: several active, promote --force
GHOST=ghost-cli-$suffix # never requested: its events become dead letters
WEB=web-$suffix         # services of this run's own: one service has one live rollout, and a
API=api-$suffix         # run that failed half way leaves its rollouts live in the database
pid=
global_off=

cleanup() {
  local rc=$?
  if [[ -n $global_off && -n $pid ]]; then # do not leave a global switch off behind
    "$ctl" flag set canary.cohort.ga.enabled true --actor test_cli >/dev/null 2>&1 || true
  fi
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null || true
  fi
  if ((rc != 0)); then
    echo "--- canaryd log (last 40 lines) ---" >&2
    tail -n 40 "$tmp/canaryd.log" >&2 || true
  fi
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT

# shellcheck source=tests/integration/lib.sh
source "$root/tests/integration/lib.sh" # fail, run, has, wait_for, step

status_has() { "$ctl" status "$1" | grep -qF -- "$2"; }

# ---- the worker --------------------------------------------------------------------------------
step "starting canaryd (group cli-test-$suffix)"
"$daemon" --plan "$plan" --group "cli-test-$suffix" --worker-id "cli-test-$suffix" \
  >"$tmp/canaryd.log" 2>&1 &
pid=$!

# ---- emit: flags and JSON Lines ----------------------------------------------------------------
step "emit rollout.requested from flags"
run 0 "$ctl" emit --type rollout.requested --rollout "$R" --service "$WEB" --version 2.1.0 \
  --baseline_version 2.0.3
[[ $out =~ ^[A-Za-z0-9._-]+-[0-9]+-[0-9]+-1$ ]] || fail "emit printed '$out', not a generated id"
[[ $err == "emitted 1 events (0 bad lines)" ]] || fail "emit summary: '$err'"
run 0 "$ctl" emit --id "$R2-req" --type rollout.requested --rollout "$R2" --service "$API" \
  --version 3.0.0 --baseline_version 2.9.9 --quiet
[[ $out == "$R2-req" && -z $err ]] || fail "emit --id/--quiet: stdout '$out', stderr '$err'"

step "emit the deploy gates as JSON Lines on stdin"
now=$(date +%s%3N)
run 0 "$ctl" emit <<EOF
# CI, deployment and health checks of $R
{"id":"$R-ci","rollout":"$R","time":$now,"type":"ci.completed","ok":true}

{"id":"$R-deploy","rollout":"$R","time":$now,"type":"deploy.completed","ok":true}
{"id":"$R-health","rollout":"$R","time":$now,"type":"health.checked","ok":true}
EOF
[[ $err == "emitted 3 events (0 bad lines)" ]] || fail "emit summary: '$err'"

step "emit: a JSON line without id and time gets them, as the flags do"
run 0 "$ctl" emit --dry-run <<<'{"rollout":"dry-'"$suffix"'","type":"ci.completed","ok":true}'
[[ $out =~ ^\{\"id\":\"[A-Za-z0-9._-]+-[0-9]+-[0-9]+-1\",\"rollout\":\"dry-$suffix\",\"time\":[0-9]{13},\"type\":\"ci.completed\",\"ok\":true\}$ ]] ||
  fail "emit filled id and time: '$out'"

step "emit: bad flags and bad lines"
run 1 "$ctl" emit --type ci.completed --rollout "$R" --ok yes
[[ $err == "canaryctl emit: ok: expected true or false, got string" ]] || fail "bad --ok: '$err'"
run 2 "$ctl" emit --ok true
has "$err" "canaryctl emit: --ok without --type"
run 1 "$ctl" emit --type ci.completed --rollout "$R" --ok true --sevrity 1
[[ $err == "canaryctl emit: unknown field 'sevrity' for ci.completed" ]] || fail "'$err'"

# ---- the rollout starts -------------------------------------------------------------------------
step "status: $R runs at internal_test"
wait_for 60 "$R to start" status_has "$R" "state           running" ||
  fail "$R did not start: $("$ctl" status "$R" 2>&1)"
run 0 "$ctl" status "$R"
has "$out" "rollout $R: $WEB 2.1.0 (baseline 2.0.3), shard "
has "$out" "  stage           internal_test (1 of 4, 0.5% of users)"
has "$out" "  exposure        0.5%"
has "$out" "exit gate of internal_test (waiting for it): not passed"
has "$out" "  fail          smoke_passed             All smoke tests pass: waiting for smoke.completed"
has "$out" "  pass          ci_passed                All CI checks passed: ci.completed: ok"
has "$out" "  canary.cohort.friendly_gp.enabled        rollout on   global on"
run 0 "$ctl" status "$R" --json
has "$out" "\"id\":\"$R\",\"service\":\"$WEB\",\"version\":\"2.1.0\""
has "$out" "\"state\":\"running\",\"stage\":\"internal_test\""
run 0 "$ctl" status --list
has "$out" "ROLLOUT"
grep -qE "^$R +$WEB +2\.1\.0 +internal_test +running +0\.5% +20[0-9-]+T" <<<"$out" ||
  fail "status table row of $R:
$out"
wait_for 30 "$R2 to be stored" status_has "$R2" "state           pending" || fail "no $R2"

step "validate: what stands between internal_test and friendly_gp"
run 1 "$ctl" validate "$R" --cohort internal_test
has "$out" "validate $R before leaving internal_test for friendly_gp: NOT READY ("
has "$out" "  PASS         exit internal_test   no_crashes               No crashes or panics"
has "$out" "  FAIL         exit internal_test   smoke_passed             All smoke tests pass: waiting for smoke.completed"
has "$out" "  FAIL         entry friendly_gp    internal_test_passed     Internal test successful: internal_test has not passed its exit gate"
run 1 "$ctl" validate "$R" --cohort internal_test --json
has "$out" "{\"rollout\":\"$R\",\"cohort\":\"internal_test\",\"next\":\"friendly_gp\",\"ready\":false,"
has "$out" "\"check\":\"smoke_passed\",\"text\":\"All smoke tests pass\",\"result\":\"FAIL\""
run 0 "$ctl" validate "$R" --cohort ga # the last stage: nothing stands in the way
has "$out" "validate $R before leaving ga: ready"
run 2 "$ctl" validate "$R"
has "$err" "canaryctl validate: --cohort STAGE is required"
run 1 "$ctl" validate "$R" --cohort nope
has "$err" "canaryctl validate: --cohort: 'nope' is no stage of the plan"

step "several active rollouts: a command must name one"
run 1 "$ctl" pause
has "$err" "canaryctl pause: several active rollouts: "
has "$err" "$R"
has "$err" "$R2"
has "$err" "; name one"
run 1 "$ctl" pause "nope-$suffix"
[[ $err == "canaryctl pause: unknown rollout 'nope-$suffix' (canaryctl status lists them)" ]] ||
  fail "'$err'"

# ---- commands ------------------------------------------------------------------------------------
step "pause"
run 0 "$ctl" pause "$R" --reason "db migration" --actor alice
has "$out" " $R pause internal_test paused [manual] paused by alice: db migration"
run 0 "$ctl" status "$R"
has "$out" "  state           paused (resume returns to running)"

step "pause again: rejected"
run 1 "$ctl" pause "$R" --actor alice
has "$out" " $R hold internal_test paused [command_rejected] pause rejected: rollout is paused; already paused"
[[ $err == "canaryctl pause: pause rejected: rollout is paused; already paused" ]] ||
  fail "rejection: '$err'"

step "resume"
run 0 "$ctl" resume "$R" --actor alice --reason "migration done"
has "$out" " $R resume internal_test running [manual] resumed by alice: migration done"

step "promote"
run 0 "$ctl" promote "$R" --actor bob --reason "looks good"
has "$out" " $R promote internal_test->friendly_gp running [manual] promoted by bob: looks good; bypassed: smoke_passed (waiting for smoke.completed)"
run 0 "$ctl" status "$R"
has "$out" "  stage           friendly_gp (2 of 4, 5% of users)"
has "$out" "  exposure        5%"

step "one service, one live rollout: a second request for $WEB is a dead letter"
run 0 "$ctl" emit --id "$R-next-req" --type rollout.requested --rollout "$R-next" --service "$WEB" \
  --version 2.2.0 --baseline_version 2.1.0 --quiet
refused_logged() {
  grep -F "dead letter: service: '$WEB' already has a live rollout, '$R'" "$tmp/canaryd.log"
}
wait_for 30 "the refusal of $R-next" refused_logged || fail "no dead letter for $R-next"
run 1 "$ctl" status "$R-next"

step "checklist: tick an item by hand; status shows what is ticked, by what, and what is open"
run 0 "$ctl" check "$R" prepare_ga_announcement --actor alice --reason "draft in the release doc"
has "$out" " $R check friendly_gp running [checklist] checklist: Prepare GA announcement (prepare_ga_announcement) checked by alice: draft in the release doc"
run 1 "$ctl" check "$R" prepare_ga_announcement --actor bob
has "$err" "canaryctl check: check prepare_ga_announcement rejected: already ticked by person alice"
run 1 "$ctl" check "$R" deploy_canary --actor bob # proven by its event already
has "$err" "already ticked by event deploy.completed"
run 1 "$ctl" check "$R" nope --actor bob
has "$err" "canaryctl check: 'nope' is not an item of the plan's checklist; its items: deploy_canary, prepare_ga_announcement, retrospective"
run 2 "$ctl" check
has "$err" "canaryctl check: name the item"
run 0 "$ctl" check --help
has "$out" "canaryctl check    [ROLLOUT] ITEM"
run 0 "$ctl" status "$R"
has "$out" "checklist: 2 of 3 ticked; every item required before ga is ticked"
has "$out" "  [x] internal_test  deploy_canary            Deploy canary build (required): deploy.completed "
has "$out" "  [x] beta           prepare_ga_announcement  Prepare GA announcement: checked by alice at "
has "$out" ": draft in the release doc (command "
has "$out" "  [ ] ga             retrospective            Schedule retrospective: canaryctl check $R retrospective"
run 0 "$ctl" status "$R" --json
has "$out" "\"checklist\":[{\"id\":\"deploy_canary\",\"text\":\"Deploy canary build\",\"stage\":\"internal_test\",\"required\":true,\"proof\":\"deploy_succeeded\",\"checked\":true,\"by\":\"event\","
has "$out" "\"id\":\"retrospective\",\"text\":\"Schedule retrospective\",\"stage\":\"ga\",\"required\":false,\"proof\":\"manual\",\"checked\":false,\"by\":null"

step "kill switch for the friendly_gp cohort of $R"
run 0 "$ctl" flag set canary.cohort.friendly_gp.enabled false "$R" --actor carol
has "$out" " $R flag friendly_gp running [kill_switch] canary.cohort.friendly_gp.enabled set to false by carol: exposure 0%"
run 0 "$ctl" status "$R"
has "$out" "  exposure        0% (switched off: see kill switches)"
has "$out" "  canary.cohort.friendly_gp.enabled        rollout off  global on"
run 0 "$ctl" flags
grep -qE "^$R +on +on +off +on +on +0% +running friendly_gp \(shard [0-9]+\)$" <<<"$out" ||
  fail "flags row of $R:
$out"
run 0 "$ctl" flag set canary.cohort.friendly_gp.enabled true "$R" --actor carol
has "$out" " $R flag friendly_gp running [kill_switch] canary.cohort.friendly_gp.enabled set to true by carol: exposure 5%"
run 0 "$ctl" status "$R"
has "$out" "  exposure        5%"
run 1 "$ctl" flag set canary.cohort.nope.enabled false "$R"
has "$err" "'canary.cohort.nope.enabled' is not a kill switch of the plan"

step "rollback"
run 0 "$ctl" rollback "$R" --actor alice --reason "error budget"
has "$out" " $R rollback friendly_gp rolled_back [manual] rolled back by alice: error budget"
run 0 "$ctl" status "$R"
has "$out" "  state           rolled_back"
has "$out" "  exposure        0%"
has "$out" "  rollback        verifying: waiting for a green health check of 2.0.3 until "

step "the rollback is verified by a green health check of the stable version"
run 0 "$ctl" emit --type health.checked --rollout "$R" --ok true --quiet
wait_for 30 "the rollback of $R to be verified" status_has "$R" "  rollback        verified: 2.0.3 healthy " ||
  fail "not verified: $("$ctl" status "$R" 2>&1)"
run 0 "$ctl" status "$R" --json
has "$out" '"rollback_verification":"verified"'

step "promote --force the second rollout, then roll it back from completed"
run 0 "$ctl" promote "$R2" --force --actor bob --reason hotfix
has "$out" " $R2 promote internal_test->ga completed [manual_force] promoted --force to 100% by bob: hotfix; ga at 100% of users"
run 0 "$ctl" status "$R2" # beta never passed its exit gate: the status says it was skipped
has "$out" "beta was skipped: promoted --force"
run 1 "$ctl" promote "$R2" --actor bob
has "$err" "canaryctl promote: promote rejected: rollout is completed; it has ended"
run 0 "$ctl" rollback "$R2" --actor bob
has "$out" " $R2 rollback ga rolled_back [manual]"

step "a global kill switch reaches every shard"
global_off=1
run 0 "$ctl" flag set canary.cohort.ga.enabled false --actor carol
[[ $out == *"global canary.cohort.ga.enabled set to false by carol"* ||
  $out == "global canary.cohort.ga.enabled set to false: recorded by all "*" shards (no active rollouts to switch)" ]] ||
  fail "global flag set: '$out'"
run 0 "$ctl" flags --json
globals=${out%%\"rollouts\"*}
[[ $globals == *'"canary.cohort.ga.enabled":false'* && $globals != *'"canary.cohort.ga.enabled":true'* ]] ||
  fail "flags --json after a global switch: $out"
run 0 "$ctl" flags
[[ $(grep -c '^global shard' <<<"$out") -ge 1 ]] || fail "no global rows: $out"
if grep '^global shard' <<<"$out" | awk '{ print $8 }' | grep -qv '^off$'; then
  fail "a shard did not record canary.cohort.ga.enabled=false:
$out"
fi
run 0 "$ctl" flag set canary.cohort.ga.enabled true --actor carol
global_off=
run 0 "$ctl" flags
if grep '^global shard' <<<"$out" | awk '{ print $8 }' | grep -qv '^on$'; then
  fail "a shard did not record canary.cohort.ga.enabled=true:
$out"
fi

step "rollback without a rollout: a service's completed release (the emergency command)"
R3=pay-cli-$suffix
run 0 "$ctl" emit --type rollout.requested --rollout "$R3" --service "pay-$suffix" --version 1.1.0 \
  --baseline_version 1.0.0 --quiet
wait_for 30 "$R3 to be stored" status_has "$R3" "state           pending" || fail "no $R3"
run 0 "$ctl" promote "$R3" --force --actor bob --reason hotfix
has "$out" " $R3 promote internal_test->ga completed [manual_force]"
run 0 "$ctl" rollback --service "pay-$suffix" --actor dana --reason "checkout broken after GA"
has "$out" " $R3 rollback ga rolled_back [manual] rolled back by dana: checkout broken after GA"
run 1 "$ctl" rollback --service "pay-$suffix" --actor dana
[[ $err == "canaryctl rollback: nothing to roll back: no active or completed rollout of service 'pay-$suffix'" ]] ||
  fail "rollback of a rolled-back service: '$err'"
run 2 "$ctl" pause --service "pay-$suffix"
has "$err" "canaryctl pause: --service is for rollback only"
run 2 "$ctl" rollback "$R3" --service "pay-$suffix"
has "$err" "name a rollout or a --service, not both"

# ---- history -------------------------------------------------------------------------------------
step "history: every decision in order, with its evidence"
run 0 "$ctl" history "$R"
actions=$(awk -v r="$R" '$2 == r { print $3 }' <<<"$out" | tr '\n' ' ')
[[ $actions == "hold start pause hold resume promote check hold hold flag flag rollback verify " ]] ||
  fail "history actions: '$actions'
$out"
has "$out" "    trigger: $R-health"
has "$out" "    command: pause"
has "$out" "    accepted: false"
has "$out" "    flag: canary.cohort.friendly_gp.enabled"
grep -qE '^    post_mortem_due_ms: 20[0-9]{2}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z$' <<<"$out" ||
  fail "history: post_mortem_due_ms is not a time: $(grep post_mortem <<<"$out")"
run 0 "$ctl" history "$R" --json
[[ $(wc -l <<<"$out") == 13 ]] || fail "history --json: $(wc -l <<<"$out") lines"
for seq in 1 2 3 4 5 6 7 8 9 10 11 12; do
  sed -n "${seq}p" <<<"$out" | grep -qF "{\"id\":\"$R/$seq\",\"rollout\":\"$R\",\"seq\":$seq," ||
    fail "history --json line $seq: $(sed -n "${seq}p" <<<"$out")"
done

# ---- health --------------------------------------------------------------------------------------
step "health: follows a rollout and exits 1 as soon as a halt fires"
R4=health-cli-$suffix
run 0 "$ctl" emit --type rollout.requested --rollout "$R4" --service "health-$suffix" \
  --version 1.0.1 --baseline_version 1.0.0 --quiet
now=$(date +%s%3N)
run 0 "$ctl" emit <<EOF
{"id":"$R4-ci","rollout":"$R4","time":$now,"type":"ci.completed","ok":true}
{"id":"$R4-deploy","rollout":"$R4","time":$now,"type":"deploy.completed","ok":true}
{"id":"$R4-health","rollout":"$R4","time":$now,"type":"health.checked","ok":true}
EOF
wait_for 60 "$R4 to start" status_has "$R4" "state           running" || fail "$R4 did not start"
run 0 "$ctl" health "$R4" --once
has "$out" "health of $R4 at internal_test: running, 0.5% exposure"
has "$out" "no halt rule evaluated yet on this rollout"
"$ctl" health "$R4" --duration 2m --interval 1s >"$tmp/health.out" 2>&1 &
health_pid=$!
sleep 1
run 0 "$ctl" emit --type alert.raised --rollout "$R4" --kind security --detail "token leak" --quiet
health_rc=0
wait "$health_pid" || health_rc=$?
[[ $health_rc == 1 ]] || fail "health exited $health_rc after a halt (want 1): $(cat "$tmp/health.out")"
grep -qE " $R4 halt internal_test paused \[security_alert\]" "$tmp/health.out" ||
  fail "health did not print the halt: $(cat "$tmp/health.out")"
run 1 "$ctl" health "$R4" --once # a halt that stands is the answer too
has "$out" "[security_alert]"
run 2 "$ctl" health "$R4" --duration soon
has "$err" "canaryctl health: --duration: 'soon' is not a duration such as 90s, 30m or 1h"

# ---- diff ----------------------------------------------------------------------------------------
step "diff: the canary diff of the latest samples, as a histogram, the worst, a verdict"
now=$(date +%s%3N)
# 10 events of 100 samples: every 50th sample 2% off, sample 7 30% off, the rest equal
awk -v r="$R" -v now="$now" 'BEGIN {
  for (e = 0; e < 10; e++) {
    line = sprintf("{\"id\":\"%s-diff-%d\",\"rollout\":\"%s\",\"time\":%d,\"type\":\"diff.samples\",\"cohort\":\"friendly_gp\",\"samples\":[", r, e, r, now + e)
    for (i = 0; i < 100; i++) {
      k = e * 100 + i; st = 10 + k % 37
      c = (k % 50 == 0) ? st * 1.02 : (k == 7 ? st * 1.3 : st)
      line = line sprintf("%s{\"input\":%d,\"stable\":%g,\"canary\":%.10g}", i ? "," : "", k, st, c)
    }
    print line "]}"
  }
}' >"$tmp/diff.jsonl"
run 0 "$ctl" emit --quiet <"$tmp/diff.jsonl"
run 1 "$ctl" diff "$R" --samples 1000 --tolerance 0.005
has "$out" "canary diff of $R: the latest 1000 samples (of 1000, in 10 events), tolerance 0.005"
has "$out" "  0 (equal)                979  ########################################"
has "$out" "  <= 10T                    20  #  (out)"
has "$out" "  > 10T                      1  #  (out)"
has "$out" "over the tolerance: 21 of 1000 = 2.1% "
has "$out" "  verdict: FAIL"
grep -qE '^  1 +7 +17 +22\.1 +0\.3 +60$' <<<"$out" || fail "the worst sample is not input 7:
$out"
run 0 "$ctl" diff "$R" --samples 1000 --tolerance 0.5 --json
has "$out" "\"samples\":1000,\"events\":10,\"tolerance\":0.5,\"over\":0,\"share\":0,"
has "$out" "\"verdict\":\"PASS\""
run 1 "$ctl" diff "$R" --samples 100 --tolerance 0.005 --max-share 0.05
has "$out" "  verdict: INSUFFICIENT"
run 1 "$ctl" diff "ghost-diff-$suffix"
has "$err" "canaryctl diff: no diff.samples for ghost-diff-$suffix in Kafka"
run 2 "$ctl" diff "$R" --tolerance -1
has "$err" "canaryctl diff: --tolerance: '-1' is not a number >= 0"

# ---- dispersion ----------------------------------------------------------------------------------
step "dispersion: nothing learned for a service without finished releases; bad options"
run 1 "$ctl" dispersion --service "nope-$suffix"
[[ $err == "canaryctl dispersion: nothing learned yet: no finished release of 'nope-$suffix' has baseline reports (releases finish when they complete or are rolled back)" ]] ||
  fail "dispersion of an unknown service: '$err'"
run 2 "$ctl" dispersion --format xml
has "$err" "canaryctl dispersion: --format: 'xml' is not text, yaml or json"
run 0 "$ctl" dispersion --help
has "$out" "usage: canaryctl dispersion"

# ---- bad input -----------------------------------------------------------------------------------
step "a malformed line is refused by emit; the good line beside it is still sent"
run 1 "$ctl" emit <<EOF
{"id":"$GHOST-1","rollout":"$GHOST","time":$now,"type":"ci.completed","ok":true}
{"id":"$GHOST-2","rollout":"$GHOST","time":$now,"type":"ci.completed","ok":tru}
EOF
has "$err" "stdin:2:"
has "$err" "emitted 1 events (1 bad lines)"

step "input canaryd rejects (unknown rollout) becomes a dead letter"
psql=$(command -v psql || echo "${CANARY_PG_BIN:-/usr/lib/postgresql/15/bin}/psql")
dlq_rows() {
  "$psql" "$CANARY_PG" -XAtc "select count(*) from outbox where topic = 'canary.dlq' and key = '$GHOST'"
}
dead_letter_logged() { grep -q "dead letter: rollout: '$GHOST' is unknown" "$tmp/canaryd.log"; }
wait_for 30 "a dead letter for $GHOST" dead_letter_logged || fail "no dead letter"
[[ $(dlq_rows) == 1 ]] || fail "outbox rows for canary.dlq with key $GHOST: $(dlq_rows)"
grep -F "dead letter: rollout: '$GHOST' is unknown" "$tmp/canaryd.log" | grep -qF "topic=canary.deploy" ||
  fail "the dead letter log line does not name its topic"

elapsed=$((($(date +%s%N) - started) / 1000000))
echo "test_cli: all checks passed in ${elapsed} ms"
