#!/usr/bin/env bash
# canaryd --http-listen against the real PostgreSQL and Kafka (ctest label integration).
#
#   tests/integration/test_http.sh CANARYCTL CANARYD
#
# Needs CANARY_PG and CANARY_KAFKA (scripts/lib/services.sh) and FAILS without them.
# Starts canaryd with --http-listen on a free port (fresh consumer group) and checks: a bad
# address is a usage error and a busy port a clear start failure; /healthz answers 200 at once;
# /readyz 503 then 200 once the shards are loaded and caught up; bad paths 404 and methods 405;
# a client that connects and sends nothing does not hold up the others. Then it emits a rollout
# through its deploy gates and an event for a rollout nobody requested with `canaryctl emit`,
# scrapes /metrics, parses it with the Prometheus client's own parser (python3-prometheus-client)
# and checks the series: events applied and decisions counted moved, the dead letter counted,
# the rollout's gauges, the histograms consistent; then a canary interval at 10% errors halts it
# (tests/integration/plans/http.yaml: for: 0s) and the rule's value, limit and firing show; and that every canaryd metric the Grafana
# dashboard and the alert rules use is exported (tests/check_dashboards.py --metrics).
# It uses a database and topic prefix of its own (dropped: the database; the topics stay).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
plan=$root/tests/integration/plans/http.yaml
# shellcheck source=tests/integration/lib.sh
source "$root/tests/integration/lib.sh"
suite_start test_http.sh "$plan" "$@" # $ctl, $daemon, $tmp, $suffix; $pid stopped on exit
# Hermetic: a database and topics of its own, so that offsets stored by other tests (or a
# Kafka whose data was reset under a kept database) cannot make this one's events look old.
suite_own_database http
R=web-http-$suffix
GHOST=ghost-http-$suffix
holder=
suite_pid_vars+=(holder) # the port holder, stopped on exit too

status_of() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@"; }
is_status() { [[ $(status_of "${@:2}") == "$1" ]]; }

port=$(free_port)
base=http://127.0.0.1:$port

step "bad --http-listen values are usage errors (exit 2)"
for bad in localhost:9464 127.0.0.1:0 127.0.0.1:65536 127.0.0.1 "[::1:9464"; do
  rc=0
  "$daemon" --http-listen "$bad" >"$tmp/out" 2>"$tmp/err" || rc=$?
  ((rc == 2)) || fail "--http-listen '$bad': exit $rc, want 2"
  grep -qF -- "canaryd: --http-listen: " "$tmp/err" || fail "'$bad': $(cat "$tmp/err")"
done

step "a busy port stops the start with a clear error (exit 1)"
busy=$(free_port)
/usr/bin/python3 -c 'import socket,sys,time; s=socket.socket(); s.bind(("127.0.0.1",int(sys.argv[1]))); s.listen(); print("up", flush=True); time.sleep(120)' "$busy" >"$tmp/holder" &
holder=$!
wait_for 10 "the port holder" grep -q up "$tmp/holder"
rc=0
timeout 30 "$daemon" --group "http-busy-$suffix" --http-listen "127.0.0.1:$busy" >"$tmp/busy.log" 2>&1 || rc=$?
((rc == 1)) || fail "busy port: exit $rc, want 1: $(cat "$tmp/busy.log")"
grep -qF -- "--http-listen 127.0.0.1:$busy: Address already in use" "$tmp/busy.log" ||
  fail "busy port message: $(cat "$tmp/busy.log")"
kill "$holder"
wait "$holder" 2>/dev/null || true
holder=

step "starting canaryd --http-listen 127.0.0.1:$port (group http-test-$suffix)"
"$daemon" --group "http-test-$suffix" --worker-id "http-test-$suffix" --http-listen "127.0.0.1:$port" \
  >"$tmp/canaryd.log" 2>&1 &
pid=$!
wait_for 10 "/healthz" is_status 200 "$base/healthz"
[[ $(curl -s "$base/healthz") == ok ]] || fail "/healthz body"

step "/readyz: 200 once the shards are loaded and caught up (503 before)"
code=$(status_of "$base/readyz")
[[ $code == 200 || $code == 503 ]] || fail "/readyz answered $code"
wait_for 90 "/readyz 200" is_status 200 "$base/readyz"
grep -q "shard loaded" "$tmp/canaryd.log" || fail "ready before any shard was loaded"

step "bad paths and methods"
[[ $(status_of "$base/nope") == 404 ]] || fail "GET /nope: not 404"
[[ $(status_of "$base/metrics/") == 404 ]] || fail "GET /metrics/: not 404"
[[ $(status_of -X POST "$base/metrics") == 405 ]] || fail "POST /metrics: not 405"
[[ $(status_of -X DELETE "$base/healthz") == 405 ]] || fail "DELETE /healthz: not 405"
curl -s -D "$tmp/headers" -o /dev/null -X PUT "$base/readyz"
grep -qi '^Allow: GET, HEAD' "$tmp/headers" || fail "405 without Allow: $(cat "$tmp/headers")"
[[ $(status_of -I "$base/metrics") == 200 ]] || fail "HEAD /metrics: not 200"

step "a slow client (connected, silent) does not hold up a scrape"
/usr/bin/python3 -c 'import socket,sys,time; s=socket.create_connection(("127.0.0.1",int(sys.argv[1]))); s.send(b"GET /metr"); time.sleep(8)' "$port" &
slow=$!
sleep 0.5
[[ $(status_of "$base/healthz") == 200 ]] || fail "/healthz with a slow client connected"
curl -s --max-time 5 "$base/metrics" -o "$tmp/first.txt" || fail "/metrics with a slow client connected"
kill "$slow" 2>/dev/null || true
wait "$slow" 2>/dev/null || true

metric() { # metric NAME [LABELS]: its value in the latest scrape (0 when absent)
  awk -v m="$1${2:+\{$2\}}" '$1 == m { v = $2 } END { print v == "" ? 0 : v }' "$tmp/scrape.txt"
}
scrape() { curl -sf --max-time 5 "$base/metrics" -o "$tmp/scrape.txt"; }
moved() { # moved NAME LABELS MIN: scrape until NAME{LABELS} >= MIN
  scrape && awk -v v="$(metric "$1" "$2")" -v min="$3" 'BEGIN { exit !(v + 0 >= min + 0) }'
}

applied0=$(awk '$1 == "canaryd_events_applied_total" { print $2 }' "$tmp/first.txt")
dead0=$(awk '$1 == "canaryd_dead_letters_total" { print $2 }' "$tmp/first.txt")
start0=$(awk '$1 == "canaryd_decisions_total{action=\"start\"}" { print $2 }' "$tmp/first.txt")
[[ -n $applied0 && -n $dead0 && -n $start0 ]] || fail "first scrape lacks the counters"

step "emit $R through its deploy gates, and an event for a rollout nobody requested"
now=$(date +%s%3N)
"$ctl" emit --quiet >/dev/null <<EOF
{"id":"$R-req","rollout":"$R","time":$now,"type":"rollout.requested","service":"web","version":"2.1.0","baseline_version":"2.0.3"}
{"id":"$R-ci","rollout":"$R","time":$now,"type":"ci.completed","ok":true}
{"id":"$R-deploy","rollout":"$R","time":$now,"type":"deploy.completed","ok":true}
{"id":"$R-health","rollout":"$R","time":$now,"type":"health.checked","ok":true}
{"id":"$GHOST-ci","rollout":"$GHOST","time":$now,"type":"ci.completed","ok":true}
EOF

step "the counters move"
wait_for 60 "events applied to grow by 4" moved canaryd_events_applied_total "" $((applied0 + 4))
wait_for 30 "a start decision counted" moved canaryd_decisions_total 'action="start"' $((start0 + 1))
wait_for 30 "the dead letter counted" moved canaryd_dead_letters_total "" $((dead0 + 1))
wait_for 30 "$R running at 0.5%" moved canaryd_rollout_exposure_percent "rollout=\"$R\",service=\"web\"" 0.5
scrape

step "parse the scrape with the Prometheus client's parser"
/usr/bin/python3 - "$tmp/scrape.txt" "$R" <<'EOF' || fail "the scrape does not check out (above)"
import sys
from prometheus_client.parser import text_string_to_metric_families

text = open(sys.argv[1]).read()
rollout = sys.argv[2]
fams = {f.name: f for f in text_string_to_metric_families(text)}
errors = []
def need(cond, msg):
    if not cond:
        errors.append(msg)

# the parser strips _total from counters' family names
want = {
    "canaryd_build_info": "gauge", "canaryd_ready": "gauge", "canaryd_shards_owned": "gauge",
    "canaryd_consumer_lag_messages": "gauge", "canaryd_events_applied": "counter",
    "canaryd_dead_letters": "counter", "canaryd_decisions": "counter",
    "canaryd_rule_evaluations": "counter", "canaryd_batch_events": "histogram",
    "canaryd_commit_seconds": "histogram", "canaryd_apply_seconds": "histogram",
    "canaryd_rollouts": "gauge", "canaryd_relay_backlog_rows": "gauge",
    "canaryd_relay_published": "counter", "canaryd_relay_errors": "counter",
    "canaryd_process_resident_memory_bytes": "gauge", "canaryd_rollout_state": "gauge",
    "canaryd_rollout_exposure_percent": "gauge", "canaryd_rollout_rule_value": "gauge",
    "canaryd_rollout_rule_limit": "gauge",
}
for name, typ in want.items():
    need(name in fams, f"no family {name}")
    if name in fams:
        need(fams[name].type == typ, f"{name} is a {fams[name].type}, not a {typ}")

def samples(name):
    return fams[name].samples if name in fams else []

def value(name, **labels):
    for s in samples(name):
        if all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    return None

need(value("canaryd_ready") == 1, "canaryd_ready is not 1")
need((value("canaryd_shards_owned") or 0) >= 1, "no shard owned")
need((value("canaryd_process_resident_memory_bytes") or 0) > 1 << 20, "RSS under 1 MiB?")
lags = [s for s in samples("canaryd_consumer_lag_messages")]
need(len(lags) == 3 * value("canaryd_shards_owned"), f"lag series: {len(lags)}")
need(all(s.labels["topic"] in ("canary.deploy", "canary.metrics", "canary.commands") and
         s.value >= 0 for s in lags), "lag labels or values")
need({s.labels["action"] for s in samples("canaryd_decisions")} >= {"start", "halt", "hold"},
     "decisions lack an action")
state = [s for s in samples("canaryd_rollout_state") if s.labels.get("rollout") == rollout]
need(len(state) == 1 and state[0].labels["state"] == "running" and
     state[0].labels["service"] == "web" and state[0].labels["version"] == "2.1.0",
     f"rollout state series: {state}")
need(value("canaryd_rollout_stage", rollout=rollout) == 0, "stage")
need(value("canaryd_rollout_exposure_percent", rollout=rollout) == 0.5, "exposure")
need(value("canaryd_rollouts", state="running") >= 1, "rollouts by state")
for h in ("canaryd_batch_events", "canaryd_commit_seconds", "canaryd_apply_seconds"):
    buckets = [s for s in samples(h) if s.name.endswith("_bucket")]
    counts = [s.value for s in buckets]
    need(counts == sorted(counts), f"{h}: buckets not cumulative")
    need(buckets and buckets[-1].labels["le"] == "+Inf", f"{h}: no +Inf bucket")
    count = [s.value for s in samples(h) if s.name == h + "_count"]
    need(count and buckets and count[0] == buckets[-1].value and count[0] > 0,
         f"{h}: count {count} against +Inf bucket")
for e in errors:
    print("FAIL:", e, file=sys.stderr)
sys.exit(1 if errors else 0)
EOF

step "a canary interval at 10% errors: the rule's value against its limit, the halt counted"
halt0=$(metric canaryd_decisions_total 'action="halt"')
t=$((now + 1000))
"$ctl" emit --quiet >/dev/null <<EOF
{"id":"$R-b1","rollout":"$R","time":$t,"type":"metrics","cohort":"internal_test","variant":"baseline","interval_ms":10000,"counters":{"requests":1000,"errors":0}}
{"id":"$R-c1","rollout":"$R","time":$t,"type":"metrics","cohort":"internal_test","variant":"canary","interval_ms":10000,"counters":{"requests":1000,"errors":100}}
EOF
wait_for 60 "the halt decision counted" moved canaryd_decisions_total 'action="halt"' $((halt0 + 1))
wait_for 30 "$R paused" moved canaryd_rollout_state "rollout=\"$R\",service=\"web\",version=\"2.1.0\",state=\"paused\"" 1
rule="rollout=\"$R\",rule=\"error_rate\",kind=\"rule\""
[[ $(metric canaryd_rollout_rule_value "$rule,variant=\"canary\"") == 0.1 ]] ||
  fail "canary value: $(grep "rollout=\"$R\"" "$tmp/scrape.txt")"
[[ $(metric canaryd_rollout_rule_value "$rule,variant=\"baseline\"") == 0 ]] || fail "baseline value"
[[ $(metric canaryd_rollout_rule_limit "$rule") == 0.01 ]] || fail "limit"
[[ $(metric canaryd_rollout_rule_firing "$rule") == 1 ]] || fail "firing"
awk '$1 == "canaryd_rule_evaluations_total" { exit !($2 > 0) }' "$tmp/scrape.txt" ||
  fail "no rule evaluation counted"

step "every metric the dashboard and the alerts use is exported"
"$root/tests/check_dashboards.py" --metrics "$tmp/scrape.txt" || fail "dashboard/alert names"

step "SIGTERM: a clean stop"
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=
((rc == 0)) || fail "canaryd exited $rc on SIGTERM"
[[ $(status_of "$base/healthz" || true) == 000 ]] || fail "/healthz still answers after the stop"
echo "PASS test_http"
