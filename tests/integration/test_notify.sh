#!/usr/bin/env bash
# `canaryd notify` against local stand-ins for Slack, PagerDuty, Statuspage and SMTP
# (tests/integration/notify_sinks.py), with a real canaryd worker, Kafka and PostgreSQL.
#
#   tests/integration/test_notify.sh CANARYCTL CANARYD
#
# Needs CANARY_PG and CANARY_KAFKA and FAILS without them. A database, topics (prefix) and
# consumer groups of its own. Checks properties, never timings:
#   - every kind is delivered with its payload: Slack Block Kit with the decision's evidence
#     and the commands to act,
#     PagerDuty trigger and resolve (dedup_key = the rollout), a Statuspage incident created and
#     resolved, the executive briefing by SMTP;
#   - a sink answering 503, one too slow for the relay's timeout and one answering 400: the first
#     two retried up to --max-attempts, the third not at all; all three dead-lettered with why;
#     a 429 with Retry-After is retried no sooner than it says, then delivered;
#   - a kill -9 of the relay during deliveries: afterwards no notification was accepted twice by
#     any sink, and each is either delivered or dead-lettered as "outcome unknown".
set -euo pipefail

ctl=${1:?usage: test_notify.sh CANARYCTL CANARYD}
daemon=${2:?usage: test_notify.sh CANARYCTL CANARYD}
root=$(cd "$(dirname "$0")/../.." && pwd)

: "${CANARY_PG:?CANARY_PG is not set: start the services (scripts/lib/services.sh) first}"
: "${CANARY_KAFKA:?CANARY_KAFKA is not set: start the services (scripts/lib/services.sh) first}"

tmp=$(mktemp -d)
suffix=$$-$(date +%s)
worker= relay= sinks=
psql=$(command -v psql || echo "${CANARY_PG_BIN:-/usr/lib/postgresql/15/bin}/psql")
db=canary_notify_${suffix//-/_}
maintenance=$CANARY_PG

cleanup() {
  local rc=$?
  for p in $relay $worker $sinks; do
    kill -TERM "$p" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  if ((rc != 0)); then
    for f in canaryd relay relay2 sinks; do
      [[ -f $tmp/$f.log ]] || continue
      echo "--- $f log (last 30 lines) ---" >&2
      tail -n 30 "$tmp/$f.log" >&2
    done
  fi
  "$psql" "$maintenance" -XAtqc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  exit 1
}
step() { printf '== %s\n' "$*"; }

# wait_for SECONDS DESCRIPTION CMD...: retry CMD every 0.2 s until it succeeds.
wait_for() {
  local limit=$1 what=$2
  shift 2
  local end=$(($(date +%s) + limit))
  until "$@" >/dev/null 2>&1; do
    (($(date +%s) < end)) || fail "timed out after ${limit}s waiting for $what"
    sleep 0.2
  done
}

"$psql" "$maintenance" -XAtqc "CREATE DATABASE $db" >/dev/null || fail "cannot create $db"
export CANARY_PG="$CANARY_PG dbname=$db"
export CANARY_TOPIC_PREFIX=notify$suffix.
export CANARY_PLAN=$root/tests/scenarios/plans/deploy-gates.yaml
sql() { "$psql" "$CANARY_PG" -XAtqc "$1"; }

step "sinks"
python3 "$root/tests/integration/notify_sinks.py" "$tmp" >"$tmp/sinks.log" 2>&1 &
sinks=$!
wait_for 20 "the sinks' ports" test -s "$tmp/smtp.port"
wait_for 20 "the sinks' ports" test -s "$tmp/http.port"
http=http://127.0.0.1:$(cat "$tmp/http.port")
export CANARY_SLACK_WEBHOOK_URL=$http/slack/T000/B000/XXXX
export CANARY_PAGERDUTY_URL=$http/v2/enqueue
echo "pd-routing-key-$suffix" >"$tmp/pd.key"
export CANARY_PAGERDUTY_ROUTING_KEY_FILE=$tmp/pd.key # a secret as a file
export CANARY_STATUSPAGE_URL=$http CANARY_STATUSPAGE_PAGE_ID=page1 CANARY_STATUSPAGE_API_KEY=sp-key
export CANARY_SMTP_URL=smtp://127.0.0.1:$(cat "$tmp/smtp.port") CANARY_SMTP_FROM=canaryd@example.com

step "worker and relay"
"$daemon" --group "w-$suffix" --partitions 1 >"$tmp/canaryd.log" 2>&1 &
worker=$!
# the worker creates the test's topics as it starts: the relay and canaryctl need them
wait_for 60 "the worker's topics" grep -q "joined\|assigned\|shard" "$tmp/canaryd.log"
start_relay() { # LOG (a short session: after the kill, the group gives the partition on sooner)
  "$daemon" notify --group "n-$suffix" --max-attempts 3 --backoff-ms 100 --backoff-max-ms 400 \
    --timeout-ms 1000 --kafka-conf session.timeout.ms=6000 >"$tmp/$1.log" 2>&1 &
  relay=$!
}
start_relay relay

now() { date +%s%3N; }
gates() { # ROLLOUT: requested, then the deploy gates: the rollout starts (a #releases message)
  local r=$1 t
  t=$(now)
  "$ctl" emit --quiet >/dev/null <<JSONL
{"id":"$r-req","rollout":"$r","time":$t,"type":"rollout.requested","service":"svc-$r","version":"2.1.0","baseline_version":"2.0.3"}
{"id":"$r-ci","rollout":"$r","time":$t,"type":"ci.completed","ok":true}
{"id":"$r-deploy","rollout":"$r","time":$t,"type":"deploy.completed","ok":true}
{"id":"$r-health","rollout":"$r","time":$t,"type":"health.checked","ok":true}
JSONL
}
emit1() { "$ctl" emit --quiet >/dev/null <<<"$1"; }
# all the deliveries of rollouts matching LIKE are settled, and there are at least N
settled() { # LIKE N
  [[ $(sql "SELECT count(*) FILTER (WHERE state IN ('new','sending','retry')) = 0
              AND count(*) >= $2 FROM notify_deliveries WHERE rollout LIKE '$1'") == t ]]
}
state_of() { sql "SELECT state FROM notify_deliveries WHERE rollout = '$1' AND sink = '$2'"; }

R=ok-$suffix
step "every kind of notification ($R)"
gates "$R"
wait_for 90 "$R to start" settled "$R" 1
emit1 "{\"id\":\"$R-alert\",\"rollout\":\"$R\",\"time\":$(now),\"type\":\"alert.raised\",\"kind\":\"security\",\"detail\":\"CVE in the canary\"}"
wait_for 60 "the page" settled "$R" 3
emit1 "{\"id\":\"$R-resume\",\"rollout\":\"$R\",\"time\":$(now),\"type\":\"command\",\"action\":\"resume\",\"actor\":\"alice\",\"reason\":\"false alarm\"}"
wait_for 60 "the resolve" settled "$R" 5
emit1 "{\"id\":\"$R-inc\",\"rollout\":\"$R\",\"time\":$(now),\"type\":\"incident.opened\",\"incident\":\"INC-7\",\"severity\":1,\"kind\":\"bug\"}"
wait_for 60 "the incident's notifications" settled "$R" 8
emit1 "{\"id\":\"$R-incr\",\"rollout\":\"$R\",\"time\":$(now),\"type\":\"incident.resolved\",\"incident\":\"INC-7\"}"
wait_for 60 "the status page's all-clear" settled "$R" 9
emit1 "{\"id\":\"$R-rb\",\"rollout\":\"$R\",\"time\":$(now),\"type\":\"command\",\"action\":\"rollback\",\"actor\":\"alice\",\"reason\":\"enough\"}"
wait_for 60 "the rollback's notifications" settled "$R" 12

step "failing endpoints"
for k in fail5xx slowpoke refuse ratelimit; do gates "$k-$suffix"; done
for k in fail5xx slowpoke refuse ratelimit; do
  wait_for 120 "$k to settle" settled "$k-$suffix" 1
done

step "kill -9 of the relay during deliveries"
for i in 1 2 3 4 5 6; do gates "slowok$i-$suffix"; done
slowok_requests() { python3 - "$tmp/requests.jsonl" <<'PY'
import json, sys
print(sum(1 for l in open(sys.argv[1]) if "slowok" in json.loads(l)["body"]))
PY
}
two_slowok() { (($(slowok_requests) >= 2)); }
wait_for 120 "two slowok requests" two_slowok
kill -KILL "$relay"
wait "$relay" 2>/dev/null || true
echo "   killed after $(slowok_requests) slowok requests"
start_relay relay2
wait_for 120 "the slowok deliveries to settle" settled "slowok%-$suffix" 6

step "dead letters"
"$ctl" watch --topic dlq --from-beginning --until-idle 2000 --json >"$tmp/dlq.jsonl" 2>/dev/null
sql "SELECT notification_id, sink, rollout, state, attempts, coalesce(detail,'') FROM notify_deliveries" \
  >"$tmp/deliveries.txt"
sql "SELECT notification_id, sink, attempt, coalesce(outcome,'') FROM notify_attempts" >"$tmp/attempts.txt"

step "checking"
python3 - "$tmp" "$suffix" <<'PY' || fail "see above"
import json, sys
tmp, suffix = sys.argv[1], sys.argv[2]
reqs = [json.loads(l) for l in open(tmp + "/requests.jsonl")]
dels = {}
for line in open(tmp + "/deliveries.txt"):
    nid, sink, rollout, state, attempts, detail = line.rstrip("\n").split("|", 5)
    dels[(nid, sink)] = dict(rollout=rollout, state=state, attempts=int(attempts), detail=detail)
dlq = [json.loads(l)["value"] for l in open(tmp + "/dlq.jsonl") if l.strip()]
bad = []
def check(cond, what):
    if not cond:
        bad.append(what)

def sink_of(r):
    return {"SMTP": "smtp"}.get(r["method"]) or ("slack" if r["path"].startswith("/slack") else
            "pagerduty" if r["path"] == "/v2/enqueue" else "statuspage")

def nid_of(r):
    if r["method"] == "SMTP":
        return next(l.split(": ", 1)[1].strip() for l in r["body"].splitlines()
                    if l.startswith("X-Canary-Notification-Id:"))
    return r["id"]

# -- nothing accepted twice, anywhere; every delivered one accepted exactly once
accepted = {}
for r in reqs:
    if 200 <= r["status"] < 300:
        k = (nid_of(r), sink_of(r))
        accepted[k] = accepted.get(k, 0) + 1
for k, n in accepted.items():
    check(n == 1, "accepted %d times: %s" % (n, k))
for k, d in dels.items():
    if d["state"] == "delivered":
        check(accepted.get(k) == 1, "delivered but accepted %s times: %s" % (accepted.get(k), k))
    check(d["state"] in ("delivered", "skipped", "dead"), "not settled: %s %s" % (k, d))

R = "ok-" + suffix
mine = [r for r in reqs if R in r["body"] or R in r.get("path", "")]
# -- Slack: Block Kit with the commands to act
slack = [r for r in mine if sink_of(r) == "slack"]
check(len(slack) >= 4, "slack messages for %s: %d" % (R, len(slack)))
for r in slack:
    b = json.loads(r["body"])
    types = [x["type"] for x in b["blocks"]]
    check(types[0] == "header" and "section" in types and "context" in types, "blocks %s" % types)
    check(("canaryctl rollback " + R) in json.dumps(b), "no rollback command in %s" % r["body"][:200])
halt = [json.loads(r["body"]) for r in slack if "halted" in r["body"] or "halt" in r["body"]]
check(any("Security alert" in r["body"] for r in slack), "the halt's message")
# the evidence of the decision it reports, from the transition log: a section of fields
check(any(any("fields" in blk and "*exposure_percent:* 0.5" in json.dumps(blk["fields"])
              for blk in h["blocks"]) for h in halt), "the halt's evidence: %s" % halt[:1])
check(any("evidence" in p["payload"]["custom_details"] for p in
          [json.loads(r["body"]) for r in mine if sink_of(r) == "pagerduty"]
          if p["event_action"] == "trigger"), "the page's evidence")
# -- PagerDuty: trigger, resolve, trigger, resolve, all with dedup_key = the rollout
pd = [json.loads(r["body"]) for r in mine if sink_of(r) == "pagerduty"]
check([p["event_action"] for p in pd] == ["trigger", "resolve", "trigger", "resolve"],
      "pagerduty actions %s" % [p["event_action"] for p in pd])
check(all(p["dedup_key"] == R and p["routing_key"] == "pd-routing-key-" + suffix for p in pd),
      "pagerduty keys %s" % pd)
trig = [p for p in pd if p["event_action"] == "trigger"]
check(all(p["payload"]["severity"] == "critical" and p["payload"]["source"] == "canaryd" and
          p["payload"]["summary"] for p in trig), "pagerduty payloads %s" % trig)
check(any("Security alert" in p["payload"]["summary"] for p in trig), "the page names the rule")
# -- Statuspage: created, then resolved, the same incident
sp = [r for r in reqs if sink_of(r) == "statuspage" and R in r["body"]]
check([r["method"] for r in sp] == ["POST", "PATCH"], "statuspage %s" % [(r["method"], r["path"]) for r in sp])
if len(sp) == 2:
    created, resolved = json.loads(sp[0]["body"]), json.loads(sp[1]["body"])
    check(sp[0]["path"] == "/v1/pages/page1/incidents", sp[0]["path"])
    check(sp[1]["path"].startswith("/v1/pages/page1/incidents/inc"), sp[1]["path"])
    check(created["incident"]["status"] == "investigating" and "INC-7" in created["incident"]["body"],
          "created %s" % created)
    check(resolved["incident"]["status"] == "resolved", "resolved %s" % resolved)
    check(all(r["auth"] == "OAuth sp-key" for r in sp), "statuspage auth")
# -- SMTP: the executive briefing
mail = [r for r in reqs if r["method"] == "SMTP" and R in r["body"]]
check(len(mail) == 1, "mails %d" % len(mail))
if mail:
    m = mail[0]
    check(m["to"] == ["<exec-briefing@example.com>"] and m["from"] == "<canaryd@example.com>",
          "mail envelope %s %s" % (m["from"], m["to"]))
    check("Subject: [canaryd] Executive briefing: Sev 1 incident" in m["body"], "subject")
    check("INC-7" in m["body"] and "Message-ID: <" in m["body"], "mail body")

# -- failing endpoints
def only(kind):
    ks = [k for k in dels if dels[k]["rollout"] == kind + "-" + suffix]
    check(len(ks) == 1, "%s deliveries %s" % (kind, ks))
    return ks[0] if ks else ("", ""), dels[ks[0]] if ks else {}
def tries(nid):
    return [r for r in reqs if r.get("id") == nid]
def dead_letter(nid):
    return [d for d in dlq if d.get("topic", "").endswith("canary.notifications") and nid in json.dumps(d)]
for kind, n, why in (("fail5xx", 3, "failed 3 attempts; the last: slack: HTTP 503"),
                     ("slowpoke", 3, "failed 3 attempts; the last: slack: "),
                     ("refuse", 1, "slack: HTTP 400: invalid_payload")):
    k, d = only(kind)
    check(d.get("state") == "dead" and d.get("attempts") == n, "%s: %s" % (kind, d))
    check(len(tries(k[0])) == n, "%s: %d requests" % (kind, len(tries(k[0]))))
    check(why in d.get("detail", ""), "%s: reason %s" % (kind, d.get("detail")))
    check(len(dead_letter(k[0])) >= 1 and any(why in x.get("reason", "") for x in dead_letter(k[0])),
          "%s: dead letter %s" % (kind, dead_letter(k[0])))
k, d = only("ratelimit")
t = tries(k[0])
check(d.get("state") == "delivered" and [r["status"] for r in t] == [429, 200], "ratelimit %s" % t)
if len(t) == 2:
    check(t[1]["t"] - t[0]["t"] >= 0.9, "Retry-After: 1 not obeyed (%.3f s)" % (t[1]["t"] - t[0]["t"]))

# -- after the kill: delivered, or dead as unknown, never twice
slow = [k for k in dels if dels[k]["rollout"].startswith("slowok")]
check(len(slow) == 6, "slowok deliveries %d" % len(slow))
for k in slow:
    d = dels[k]
    check(d["state"] == "delivered" or (d["state"] == "dead" and "outcome unknown" in d["detail"]),
          "slowok %s %s" % (k, d))
    if d["state"] == "dead":
        check(len(dead_letter(k[0])) >= 1, "no dead letter for %s" % (k,))
unknown = sum(dels[k]["state"] == "dead" for k in slow)
print("   %d requests; %d deliveries; kill: %d of 6 dead-lettered as outcome unknown" %
      (len(reqs), len(dels), unknown))
for b in bad:
    print("FAIL:", b)
sys.exit(1 if bad else 0)
PY

step "the record is pruned: settled deliveries past --retention-hours go, dead letters stay"
# rows as an old relay left them: delivered 20 days ago (with its attempt), dead-lettered as long
# ago, delivered an hour ago; a page closed 20 days ago, one still open
sql "INSERT INTO notify_deliveries (notification_id, sink, rollout, state, attempts, updated_at) VALUES
       ('old-$suffix', 'slack', 'old', 'delivered', 1, now() - interval '20 days'),
       ('olddead-$suffix', 'slack', 'old', 'dead', 3, now() - interval '20 days'),
       ('recent-$suffix', 'slack', 'old', 'delivered', 1, now() - interval '1 hour');
     INSERT INTO notify_attempts (notification_id, sink, attempt, outcome)
       VALUES ('old-$suffix', 'slack', 1, 'delivered');
     INSERT INTO notify_alerts (sink, alert_key, open, opened_by, updated_at) VALUES
       ('pagerduty', 'closed-$suffix', false, 'x', now() - interval '20 days'),
       ('pagerduty', 'open-$suffix', true, 'x', now() - interval '20 days')" >/dev/null
before=$(sql "SELECT count(*) FROM notify_deliveries")
kill -TERM "$relay"
wait "$relay" 2>/dev/null || true
start_relay relay3 # prunes as it starts, with the default retention (360 hours)
wait_for 60 "the relay to prune" grep -qF "notify: pruned 1 deliveries settled more than 360 h ago" "$tmp/relay3.log" ||
  fail "no prune: $(tail -5 "$tmp/relay3.log")"
[[ $(sql "SELECT count(*) FROM notify_deliveries") == $((before - 1)) ]] || fail "more than one pruned"
[[ $(sql "SELECT count(*) FROM notify_deliveries WHERE notification_id LIKE 'old%-$suffix' OR notification_id = 'recent-$suffix'") == 2 ]] ||
  fail "the dead letter or the recent delivery was pruned"
[[ $(sql "SELECT count(*) FROM notify_attempts WHERE notification_id = 'old-$suffix'") == 0 ]] ||
  fail "the pruned delivery's attempt is left"
[[ $(sql "SELECT string_agg(alert_key, ',') FROM notify_alerts WHERE alert_key IN ('open-$suffix', 'closed-$suffix')") == "open-$suffix" ]] ||
  fail "alerts: closed old ones go, open ones stay"
echo "PASS"
