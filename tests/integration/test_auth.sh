#!/usr/bin/env bash
# Who may do what, through a live canaryd on the real PostgreSQL and Kafka (ctest label
# integration).
#
#   tests/integration/test_auth.sh CANARYCTL CANARYD
#
# Needs CANARY_PG and CANARY_KAFKA (scripts/lib/services.sh: services_start all; services_env)
# and FAILS without them. Makes four people's keys (canaryctl keygen), writes a policy for them,
# starts its own canaryd with --policy and a fresh rollout, then tries what the policy forbids —
# a force-promote by someone without the role, an unsigned rollback, a kill switch flipped by
# the product owner, an approval by the wrong person (canaryctl approve), a signed rollback
# replayed onto another rollout (canaryctl emit) — and what it allows, signed: each is refused or accepted by canaryd with its reason,
# and `canaryctl audit` lists every one with its actor, signature and outcome. Then SIGHUP: a
# broken policy file is refused and the one in force stays; an edited one gives pat a right. Do not run it
# while another canaryd works on the same database.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
plan=$root/tests/scenarios/plans/deploy-gates.yaml
# shellcheck source=tests/integration/lib.sh
source "$root/tests/integration/lib.sh"
suite_start test_auth.sh "$plan" "$@" # $ctl, $daemon, $tmp, $suffix; $pid stopped on exit
unset CANARY_KEY

R=web-auth-$suffix  # the rollout operated on
R2=api-auth-$suffix # another: a signature made for it is replayed onto R
export CANARY_POLICY=$tmp/policy.yaml # canaryctl reads the same policy as canaryd

audit_has() { "$ctl" audit --rollout "$1" | grep -qF -- "$2"; }

# ---- keys and the policy --------------------------------------------------------------------------
step "keygen: four people"
for who in maria omar pat eve; do
  run 0 "$ctl" keygen --actor "$who" --out "$tmp/$who.key"
  [[ $(stat -c %a "$tmp/$who.key") == 600 ]] || fail "$who.key is not 0600"
  has "$err" "wrote the private key of $who to $tmp/$who.key (mode 0600)"
  key=$(sed -n 's/^    keys: \["\(.*\)"\]$/\1/p' <<<"$out")
  [[ ${#key} == 44 ]] || fail "keygen printed no public key: $out"
  declare "pub_$who=$key"
done
run 1 "$ctl" keygen --actor eve --out "$tmp/eve.key"
has "$err" "File exists (--force replaces it)"
run 2 "$ctl" keygen
has "$err" "--actor NAME is required"

cat >"$tmp/policy.yaml" <<EOF
permissions:
  pause: [release_engineer, oncall, release_manager]
  resume: [release_engineer, release_manager]
  promote: [release_engineer, release_manager]
  promote_force: [release_manager]
  rollback: [oncall, release_manager]
  kill_switch: [oncall, release_manager]
  approve_product_owner: [product_owner]
  approve_support: [support_lead]
  approve_docs: [docs]
actors:
  maria: { roles: [release_manager], keys: ["$pub_maria"] }
  omar: { roles: [oncall], keys: ["$pub_omar"] }
  pat: { roles: [product_owner], keys: ["$pub_pat"] }
  eve: { roles: [release_engineer], keys: ["$pub_eve"] }
EOF

step "starting canaryd with --policy (group auth-test-$suffix)"
"$daemon" --plan "$plan" --policy "$tmp/policy.yaml" --group "auth-test-$suffix" \
  --worker-id "auth-test-$suffix" >"$tmp/canaryd.log" 2>&1 &
pid=$!

run 0 "$ctl" emit <<EOF
{"id":"$R-req","rollout":"$R","type":"rollout.requested","service":"web-auth-$suffix","version":"2.1.0","baseline_version":"2.0.3"}
{"id":"$R2-req","rollout":"$R2","type":"rollout.requested","service":"api-auth-$suffix","version":"3.0.0","baseline_version":"2.9.9"}
{"id":"$R-ci","rollout":"$R","type":"ci.completed","ok":true}
{"id":"$R-deploy","rollout":"$R","type":"deploy.completed","ok":true}
{"id":"$R-health","rollout":"$R","type":"health.checked","ok":true}
EOF
wait_for 60 "$R to start" status_has "$R" "state           running" ||
  fail "$R did not start: $("$ctl" status "$R" 2>&1)"
grep -qF "policy: 4 actors, 6 roles" "$tmp/canaryd.log" || fail "canaryd did not report the policy"
# canaryctl says which policy it judges by (the one canaryd was given), and the plan's checklist
run 0 "$ctl" status "$R"
has "$out" "policy: $tmp/policy.yaml (CANARY_POLICY), 4 actors, 6 roles: commands, kill switches and approvals must be signed"
run 0 "$ctl" plan show "$plan"
has "$out" "policy: $tmp/policy.yaml (CANARY_POLICY), 4 actors, 6 roles"
has "$out" "checklist: "
CANARY_POLICY= run 0 "$ctl" status "$R"
has "$out" "policy: none (no CANARY_POLICY, no policy: in $plan): every command"

# ---- refused ---------------------------------------------------------------------------------------
step "promote --force by eve (signed, but a release engineer): refused"
run 1 "$ctl" promote "$R" --force --key "$tmp/eve.key" --reason "ship it"
has "$out" " $R hold internal_test running [unauthorized] promote --force by eve refused: promote_force needs release_manager; eve has release_engineer"
has "$err" "canaryctl promote: promote --force by eve refused"
run 0 "$ctl" status "$R"
has "$out" "  stage           internal_test (1 of 4, 0.5% of users)"

step "rollback by maria without her key: refused, not signed"
run 1 "$ctl" rollback "$R" --actor maria --reason "unsigned"
has "$out" "[unauthorized] rollback by maria refused: not signed"
run 0 "$ctl" status "$R"
has "$out" "  state           running"

step "a kill switch flipped by pat (product owner): refused"
run 1 "$ctl" flag set canary.cohort.internal_test.enabled false "$R" --key "$tmp/pat.key"
has "$out" "[unauthorized] kill switch canary.cohort.internal_test.enabled=false by pat refused: kill_switch needs oncall or release_manager; pat has product_owner"
run 0 "$ctl" status "$R"
has "$out" "  exposure        0.5%"

step "--key of another actor than --actor: refused by canaryctl itself"
run 2 "$ctl" pause "$R" --key "$tmp/eve.key" --actor maria
has "$err" "the key is eve's, the command's actor is 'maria'"

step "the product owner's approval granted by eve: refused"
run 1 "$ctl" approve product_owner "$R" --key "$tmp/eve.key"
has "$out" "$R refused: approve product_owner by eve refused: approve_product_owner needs product_owner; eve has release_engineer"
has "$err" "canaryctl approve: approve product_owner by eve refused"
run 2 "$ctl" approve owner "$R" --key "$tmp/eve.key"
has "$err" "'owner' is not an approval role (product_owner, support, docs)"

step "omar's signed rollback of $R2 replayed onto $R: refused, bad signature"
run 0 "$ctl" emit --dry-run --type command --rollout "$R2" --action rollback --reason replay \
  --key "$tmp/omar.key"
has "$out" "\"actor\":\"omar\""
has "$out" "\"signature\":\""
replayed=${out//\"rollout\":\"$R2\"/\"rollout\":\"$R\"}
run 0 "$ctl" emit --quiet <<<"$replayed"
wait_for 30 "the replay in the audit" audit_has "$R" "omar" || fail "no audit row"
run 0 "$ctl" status "$R"
has "$out" "  state           running"

# ---- accepted, signed ------------------------------------------------------------------------------
step "omar flips the kill switch (signed, on-call): accepted"
run 0 "$ctl" flag set canary.cohort.internal_test.enabled false "$R" --key "$tmp/omar.key"
has "$out" "[kill_switch] canary.cohort.internal_test.enabled set to false by omar: exposure 0%"
run 0 "$ctl" flag set canary.cohort.internal_test.enabled true "$R" --key "$tmp/omar.key"

step "pat approves as product owner (signed): accepted"
run 0 "$ctl" approve product_owner "$R" --key "$tmp/pat.key"
has "$out" "$R accepted: approve product_owner by pat (verified, as product_owner)"
run 1 "$ctl" validate "$R" --cohort beta # not ready, but ga's entry gate has the approval
has "$out" "PASS         entry ga             product_owner_approval   Product owner approval: product_owner approved by pat"

step "promote --force by maria (signed, release manager): accepted"
CANARY_KEY=$tmp/maria.key run 0 "$ctl" promote "$R" --force --reason "signed off"
has "$out" "promoted --force to 100% by maria: signed off"
run 0 "$ctl" status "$R"
has "$out" "  state           completed"

step "a global kill switch by pat: refused everywhere, and not set"
run 1 "$ctl" flag set system.canary.enabled false --key "$tmp/pat.key"
has "$err" "canaryctl flag set: kill switch global system.canary.enabled=false by pat refused: kill_switch needs oncall or release_manager; pat has product_owner"
run 0 "$ctl" flags
# every shard's global switches on (columns are as wide as the longest rollout id)
[[ $(grep -cE "^global shard [0-9]+ +on +on +on +on +on " <<<"$out") == $(grep -c "^global shard" <<<"$out") ]] ||
  fail "a global switch is off:
$out"
grep -q "^global shard 0 " <<<"$out" || fail "no global switches listed:
$out"
run 0 "$ctl" audit --actor pat --last 1
has "$out" "kill switch global system.canary.enabled=false"
has "$out" "refused"

# ---- the audit -------------------------------------------------------------------------------------
step "canaryctl audit: every one of them"
run 0 "$ctl" audit --rollout "$R"
has "$out" "TIME"
grep -qE "^20[0-9T:.-]+Z +$R +eve +promote --force +verified +refused +ship it / promote --force by eve refused" <<<"$out" ||
  fail "eve's force-promote row:
$out"
grep -qE " maria +rollback +unsigned +refused +unsigned / rollback by maria refused: not signed" <<<"$out" ||
  fail "the unsigned rollback row:
$out"
grep -qE " pat +kill switch canary.cohort.internal_test.enabled=false +verified +refused " <<<"$out" ||
  fail "pat's kill switch row:
$out"
grep -qE " eve +approve product_owner +verified +refused " <<<"$out" || fail "eve's approval:
$out"
grep -qE " omar +rollback +bad +refused +replay / rollback by omar refused: the signature does not verify" <<<"$out" ||
  fail "the replayed rollback row:
$out"
grep -qE " pat +approve product_owner +verified +accepted +approve product_owner by pat \(verified, as product_owner\)" <<<"$out" ||
  fail "pat's approval row:
$out"
grep -qE " maria +promote --force +verified +accepted +signed off / " <<<"$out" ||
  fail "maria's force-promote row:
$out"
run 0 "$ctl" audit --rollout "$R" --json
[[ $(grep -c '"outcome":"refused"' <<<"$out") == 5 ]] || fail "5 refused:
$out"
[[ $(grep -c '"outcome":"accepted"' <<<"$out") == 4 ]] || fail "4 accepted:
$out"
[[ $(grep -c '"verified":true' <<<"$out") == 7 ]] || fail "7 verified:
$out"
has "$out" "\"rollout\":\"$R\",\"action\":\"rollback\",\"actor\":\"maria\",\"signature\":\"unsigned\",\"verified\":false,\"outcome\":\"refused\""
run 0 "$ctl" audit --rollout "$R" --last 1
[[ $(wc -l <<<"$out") == 2 ]] || fail "--last 1: $out"
has "$out" "maria"
has "$out" "accepted"
run 0 "$ctl" audit --rollout "$R" --actor eve --json
[[ $(wc -l <<<"$out") == 2 ]] || fail "--actor eve: $out"
run 2 "$ctl" audit --last 0
has "$err" "--last: '0' is not a positive whole number"

# ---- SIGHUP: the policy reloaded without a restart ---------------------------------------------------
step "pat may not pause $R2 (a product owner)"
run 1 "$ctl" pause "$R2" --key "$tmp/pat.key" --reason "before the reload"
has "$out" "pause by pat refused: pause needs release_engineer, oncall or release_manager; pat has product_owner"
cp "$tmp/policy.yaml" "$tmp/policy.good"
hup_logged() { grep -qF -- "$1" "$tmp/canaryd.log"; }

step "SIGHUP with a broken policy file: logged, the policy in force stays"
printf 'actors:\n  pat: { roles: [product_owner, release_engineer], keys: [nope] }\n' >"$tmp/policy.yaml"
kill -HUP "$pid"
wait_for 30 "the refused reload" hup_logged \
  "SIGHUP: policy not reloaded, the one in force stays: $tmp/policy.yaml:1:1: policy needs 'permissions'" ||
  fail "no refused reload in the log"
cp "$tmp/policy.good" "$tmp/policy.yaml" # canaryctl reads it too
run 1 "$ctl" pause "$R2" --key "$tmp/pat.key" --reason "after a bad reload"
has "$out" "pause by pat refused"

step "SIGHUP after pat was made a release engineer too: pat may pause"
sed -i 's/pat: { roles: \[product_owner\]/pat: { roles: [product_owner, release_engineer]/' "$tmp/policy.yaml"
grep -qF "pat: { roles: [product_owner, release_engineer]" "$tmp/policy.yaml" || fail "policy not edited"
kill -HUP "$pid"
wait_for 30 "the reload" hup_logged "policy reloaded from $tmp/policy.yaml: 4 actors, 6 roles" ||
  fail "no reload in the log"
run 0 "$ctl" pause "$R2" --key "$tmp/pat.key" --reason "after the reload"
has "$out" "paused by pat: after the reload"
kill -0 "$pid" || fail "canaryd died on SIGHUP"

step "$R2 rolled back by maria (signed): no pending rollout left behind"
run 0 "$ctl" rollback "$R2" --key "$tmp/maria.key" --reason "test over"

step "ok: refused and accepted as the policy says, every one audited"
