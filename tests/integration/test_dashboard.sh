#!/usr/bin/env bash
# The dashboard's history and `canaryctl dashboard` against a live canaryd on the real
# PostgreSQL and Kafka (ctest label integration).
#
#   tests/integration/test_dashboard.sh CANARYCTL CANARYD
#
# Needs CANARY_PG and CANARY_KAFKA (scripts/lib/services.sh: services_start all; services_env)
# and FAILS without them. Starts its own canaryd with the built-in plan (config/rollout.yaml:
# dashboard.step 1m, counters conversions and engagement), drives a rollout whose id holds
# HTML and JSON metacharacters through the deploy gates, then feeds 16 minutes of event time
# of metrics (every 10 s, canary and baseline; the canary's errors go from 0 to 10% at minute
# 6, so the error-rate rule halts it). Checks:
#   - rollout_history: one point per series per whole minute, the counters' points sum to what
#     was sent in those minutes, rules' readings with their threshold, the exposure; a row older
#     than the kept span is pruned by the next batch that records history;
#   - the dashboard's JSON endpoints (parsed: the rollout found by its exact id, the halt among
#     its decisions, its series, gates and the plan's limits), its pages and compiled-in uPlot;
#   - bad paths (404), methods (405 with Allow), arguments (400), an unknown rollout (404 with
#     the id as a JSON string), a client that sends half a request and waits does not hold up
#     the others, a busy port is refused with a clear message (exit 1), --help;
#   - with Chromium installed: the rollout page rendered headless shows the halt on the timeline
#     and its charts, with nothing on the console (a screenshot is left in $CANARY_ARTIFACTS
#     when that is set).
set -euo pipefail

ctl=${1:?usage: test_dashboard.sh CANARYCTL CANARYD}
daemon=${2:?usage: test_dashboard.sh CANARYCTL CANARYD}
root=$(cd "$(dirname "$0")/../.." && pwd)
plan=$root/config/rollout.yaml

: "${CANARY_PG:?CANARY_PG is not set: start the services (scripts/lib/services.sh) first}"
: "${CANARY_KAFKA:?CANARY_KAFKA is not set: start the services (scripts/lib/services.sh) first}"
export CANARY_PG CANARY_KAFKA CANARY_PLAN=$plan

tmp=$(mktemp -d)
suffix=$$-$(date +%s)
R="web<b>\"dash\"&'x-$suffix" # an id that breaks HTML and JSON if anything is not escaped
pid='' dash_pid='' holder_pid=''

cleanup() {
  local rc=$?
  for p in "$holder_pid" "$dash_pid" "$pid"; do
    if [[ -n $p ]] && kill -0 "$p" 2>/dev/null; then
      kill -TERM "$p"
      wait "$p" 2>/dev/null || true
    fi
  done
  if ((rc != 0)); then
    echo "--- canaryd log (last 30 lines) ---" >&2
    tail -n 30 "$tmp/canaryd.log" >&2 || true
    echo "--- dashboard log ---" >&2
    cat "$tmp/dash.log" >&2 || true
  fi
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT

# shellcheck source=tests/integration/lib.sh
source "$root/tests/integration/lib.sh" # fail, run, has, wait_for, step

sql() { psql "$CANARY_PG" -XAtq -v ON_ERROR_STOP=1 "$@"; }
# the id as a SQL literal (quotes doubled)
lit="'${R//\'/\'\'}'"

# ---- canaryd, and a rollout with 16 minutes of metrics -------------------------------------------
step "starting canaryd (group dash-test-$suffix)"
"$daemon" --plan "$plan" --group "dash-test-$suffix" --worker-id "dash-test-$suffix" \
  >"$tmp/canaryd.log" 2>&1 &
pid=$!

# Event time: 20 minutes ago, on a minute boundary, so that the minutes are known.
t0=$(( ($(date +%s%3N) - 20 * 60000) / 60000 * 60000 ))
jid=$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$R") # the id in JSON
step "emit the rollout and its deploy gates"
"$ctl" emit --quiet >/dev/null <<EOF
{"id":"dash-$suffix-req","rollout":$jid,"time":$t0,"type":"rollout.requested","service":"web-dash-$suffix","version":"2.1.0","baseline_version":"2.0.3"}
{"id":"dash-$suffix-ci","rollout":$jid,"time":$t0,"type":"ci.completed","ok":true}
{"id":"dash-$suffix-deploy","rollout":$jid,"time":$t0,"type":"deploy.completed","ok":true}
{"id":"dash-$suffix-health","rollout":$jid,"time":$t0,"type":"health.checked","ok":true}
EOF

step "emit 16 minutes of metrics (every 10 s; canary errors 10% from minute 6)"
python3 - "$R" "$t0" "$suffix" >"$tmp/metrics.jsonl" <<'PY'
import json, sys
r, t0, suffix = sys.argv[1], int(sys.argv[2]), sys.argv[3]
for i in range(1, 16 * 6 + 1):
    t = t0 + i * 10000
    bad = t - t0 >= 6 * 60000
    base = {"rollout": r, "time": t, "type": "metrics", "cohort": "internal_test",
            "interval_ms": 10000}
    print(json.dumps(dict(base, id=f"dash-{suffix}-{i}-b", variant="baseline",
        counters={"requests": 20000, "errors": 10, "conversions": 500},
        distributions={"latency_ms": [80, 90, 100, 120, 200]})))
    print(json.dumps(dict(base, id=f"dash-{suffix}-{i}-c", variant="canary",
        counters={"requests": 100, "errors": 10 if bad else 0, "conversions": 3},
        gauges={"cpu_ratio": 0.4, "memory_ratio": 0.6},
        distributions={"latency_ms": [85, 95, 105, 125, 210],
                       "webvitals_lcp_ms": [1500, 1800, 2100], "webvitals_cls": [0.01, 0.02]})))
PY
"$ctl" emit --quiet <"$tmp/metrics.jsonl" >/dev/null

# the last report (t0 + 16 min) ends minute 15: minutes 0..15 are recorded
history_through() {
  [[ $(sql -c "SELECT count(*) FROM rollout_history WHERE rollout = $lit AND kind = 'metric'
               AND name = 'requests' AND variant = 'canary' AND step_ms = $((t0 + 15 * 60000))") == 1 ]]
}
wait_for 90 "the history of minute 15" history_through

# ---- the history rows --------------------------------------------------------------------------
step "rollout_history: a point a minute, sums that add up, rules and split"
got=$(sql -c "SELECT count(*), count(DISTINCT step_ms), min(step_ms), sum(value)
              FROM rollout_history WHERE rollout = $lit AND kind = 'metric'
              AND name = 'requests' AND stat = 'sum' AND variant = 'canary'")
# minute 0 holds the reports at 10..50 s (5), minutes 1..15 six each: 95 reports of 100
[[ $got == "16|16|$t0|9500" ]] || fail "canary requests by minute: '$got' (want 16|16|$t0|9500)"
got=$(sql -c "SELECT sum(value) FROM rollout_history WHERE rollout = $lit AND kind = 'business'
              AND name = 'conversions' AND variant = 'baseline'")
[[ $got == 47500 ]] || fail "baseline conversions: '$got' (want 47500, kind business)"
got=$(sql -c "SELECT round(value::numeric, 6) FROM rollout_history WHERE rollout = $lit
              AND kind = 'rule' AND name = 'error_rate' AND stat = 'threshold' LIMIT 1")
[[ $got == 0.010000 ]] || fail "error_rate's threshold in the history: '$got'"
got=$(sql -c "SELECT count(*) FROM rollout_history WHERE rollout = $lit AND kind = 'metric'
              AND name = 'latency_ms' AND stat IN ('p50', 'p75', 'p95', 'p99') AND variant = 'canary'")
[[ $got == 64 ]] || fail "canary latency quantiles: $got rows (want 4 x 16)"
got=$(sql -c "SELECT value FROM rollout_history WHERE rollout = $lit AND kind = 'split'
              AND stat = 'exposure' ORDER BY step_ms DESC LIMIT 1")
[[ $got == 0 || $got == 0.5 ]] || fail "exposure in the history: '$got'"
# no series has two points in one minute (the key says so; the count proves the worker's steps)
got=$(sql -c "SELECT count(*) FROM (SELECT 1 FROM rollout_history WHERE rollout = $lit
              GROUP BY kind, name, stat, cohort, variant, step_ms HAVING count(*) > 1) d")
[[ $got == 0 ]] || fail "$got series with two points in one step"

step "rollout_history is bounded: a row older than the span goes with the next batch"
old=$((t0 - 9 * 24 * 3600 * 1000))
sql -c "INSERT INTO rollout_history VALUES ($lit, 'metric', 'requests', 'sum', 0, 'canary', $old, 1)"
"$ctl" emit --quiet >/dev/null <<EOF
{"id":"dash-$suffix-late","rollout":$jid,"time":$((t0 + 17 * 60000 + 5000)),"type":"metrics","cohort":"internal_test","variant":"canary","interval_ms":10000,"counters":{"requests":100,"errors":0}}
EOF
pruned() { [[ $(sql -c "SELECT count(*) FROM rollout_history WHERE rollout = $lit AND step_ms = $old") == 0 ]]; }
wait_for 60 "the old row to be pruned" pruned

# ---- the dashboard -----------------------------------------------------------------------------
step "canaryctl dashboard --help, and its server"
"$ctl" dashboard --help | grep -q -- "--listen HOST:PORT" || fail "dashboard --help"
"$ctl" dashboard --listen 127.0.0.1:0 >"$tmp/dash.out" 2>"$tmp/dash.log" &
dash_pid=$!
listening() { grep -q '^dashboard: http://127.0.0.1:[0-9]*/$' "$tmp/dash.out"; }
wait_for 30 "the dashboard to listen" listening
url=$(sed -n 's|^dashboard: \(http://.*\)/$|\1|p' "$tmp/dash.out")
port=${url##*:}

# fetch PATH [CURL ARGS...]: status in $code, body in $tmp/body, headers in $tmp/headers
fetch() {
  local path=$1
  shift
  code=$(curl -sS -o "$tmp/body" -D "$tmp/headers" -w '%{http_code}' --max-time 10 "$@" "$url$path")
}

step "the JSON endpoints"
fetch /api/rollouts
[[ $code == 200 ]] || fail "/api/rollouts: $code"
grep -qi '^content-type: application/json' "$tmp/headers" || fail "/api/rollouts content type"
python3 - "$tmp/body" "$R" <<'PY' || fail "/api/rollouts content"
import json, sys
doc = json.load(open(sys.argv[1]))
row = [r for r in doc["rollouts"] if r["id"] == sys.argv[2]]
assert len(row) == 1, "rollout not listed by its exact id"
r = row[0]
assert r["service"].startswith("web-dash-") and r["version"] == "2.1.0" and r["stage"] == "internal_test", r
assert r["state"] in ("paused", "running"), r
assert r["last_decision"]["rollout"] == sys.argv[2], r["last_decision"]
PY
halted() { curl -sfG --data-urlencode "id=$R" "$url/api/rollout" | grep -q '"action":"halt"'; }
wait_for 60 "the halt" halted
curl_id=(-G --data-urlencode "id=$R")
fetch /api/rollout "${curl_id[@]}"
[[ $code == 200 ]] || fail "/api/rollout: $code"
python3 - "$tmp/body" "$R" "$t0" <<'PY' || fail "/api/rollout content"
import json, sys
doc = json.load(open(sys.argv[1]))
rid, t0 = sys.argv[2], int(sys.argv[3])
assert doc["rollout"]["id"] == rid
assert doc["rollout"]["state"] == "paused", doc["rollout"]["state"]
halts = [d for d in doc["decisions"] if d["action"] == "halt"]
assert halts and halts[0]["rule"] in ("error_rate", "error_excess", "canary_error_spike"), halts
assert "canary" in json.dumps(halts[0]["evidence"]) or halts[0]["evidence"], halts[0]
series = {(s["kind"], s["name"], s["stat"], s["variant"]): s for s in doc["series"]}
req = series[("metric", "requests", "sum", "canary")]
assert len(req["t"]) == len(req["v"]) >= 16 and req["t"][0] == t0 and sum(req["v"][:16]) == 9500
assert req["t"] == sorted(req["t"])
assert ("business", "conversions", "sum", "baseline") in series
assert ("metric", "webvitals_lcp_ms", "p75", "canary") in series
assert ("metric", "cpu_ratio", "avg", "canary") in series
rule = series[("rule", "error_rate", "threshold", "")]
assert set(rule["v"]) == {0.01}, rule
assert ("split", "rollout", "exposure", "") in series
gates = doc["rollout"]["gates"]
assert gates and gates[0]["stage"] == "internal_test", gates
assert doc["plan"]["limits"]["lcp_p75_ms"] == 2500
assert doc["plan"]["dashboard_counters"] == ["conversions", "engagement"]
assert doc["plan"]["step_ms"] == 60000
PY
newest=$(python3 -c 'import json,sys; print(max(max(s["t"]) for s in json.load(open(sys.argv[1]))["series"]))' "$tmp/body")
fetch /api/rollout "${curl_id[@]}" --data-urlencode "since=$newest"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert all(min(s["t"]) >= int(sys.argv[2]) for s in d["series"]) and d["series"]' \
  "$tmp/body" "$newest" || fail "?since= did not limit the series"

step "pages and the compiled-in uPlot"
fetch /
[[ $code == 200 ]] && grep -qi '^content-type: text/html' "$tmp/headers" || fail "/: $code"
grep -q '<script src="/uplot.js"></script>' "$tmp/body" || fail "/ does not load uPlot"
fetch /rollout "${curl_id[@]}"
[[ $code == 200 ]] || fail "/rollout: $code"
grep -qF "$R" "$tmp/body" && fail "/rollout put the id into the HTML (the page reads it from the URL)"
fetch /uplot.js
[[ $code == 200 ]] && grep -q 'uPlot' "$tmp/body" || fail "/uplot.js: $code"
(($(stat -c %s "$tmp/body") > 20000)) || fail "/uplot.js is too small to be uPlot"
fetch /uplot.css
[[ $code == 200 ]] || fail "/uplot.css: $code"
fetch /dashboard.js
[[ $code == 200 ]] && ! grep -q 'innerHTML' "$tmp/body" || fail "/dashboard.js: $code, or it writes HTML"
grep -qi "^content-security-policy: default-src 'self'" "$tmp/headers" || fail "no CSP header"

step "errors: paths, methods, arguments, unknown rollouts"
fetch /nope
[[ $code == 404 ]] || fail "/nope: $code"
fetch /../etc/passwd --path-as-is
[[ $code == 404 || $code == 400 ]] || fail "/../etc/passwd: $code"
fetch / -X POST -d x=1
[[ $code == 405 ]] && grep -qi '^allow: GET, HEAD' "$tmp/headers" || fail "POST /: $code"
fetch /api/rollouts -X DELETE
[[ $code == 405 ]] || fail "DELETE /api/rollouts: $code"
fetch /api/rollout
[[ $code == 400 ]] || fail "/api/rollout without id: $code"
fetch /api/rollout "${curl_id[@]}" --data-urlencode "since=soon"
[[ $code == 400 ]] || fail "since=soon: $code"
fetch /api/rollout -G --data-urlencode 'id=no"such</script>'
[[ $code == 404 ]] || fail "unknown rollout: $code"
python3 -c 'import json,sys; e=json.load(open(sys.argv[1]))["error"]; assert e == "unknown rollout '"'"'no\"such</script>'"'"'", e' \
  "$tmp/body" || fail "unknown rollout's error: $(cat "$tmp/body")"
code=$(curl -sS -o /dev/null -w '%{http_code}' -I --max-time 10 "$url/api/rollouts")
[[ $code == 200 ]] || fail "HEAD /api/rollouts: $code"

step "a client that sends half a request and waits does not hold up the others"
python3 - "$port" >/dev/null 2>&1 <<'PY' &
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET /api/rollouts HTTP/1.1\r\nHost: x\r\n")
time.sleep(30)
PY
holder_pid=$!
sleep 0.5 # the holder is connected (it is the one that waits; nothing is asserted on time)
fetch /api/rollouts
[[ $code == 200 ]] || fail "/api/rollouts beside a slow client: $code"
kill "$holder_pid" 2>/dev/null || true
wait "$holder_pid" 2>/dev/null || true
holder_pid=''

step "a busy port is refused clearly"
rc=0
"$ctl" dashboard --listen "127.0.0.1:$port" >"$tmp/busy.out" 2>"$tmp/busy.err" || rc=$?
[[ $rc == 1 ]] || fail "dashboard on a busy port: exit $rc"
grep -q "cannot listen on 127.0.0.1:$port: Address already in use" "$tmp/busy.err" ||
  fail "busy port message: $(cat "$tmp/busy.err")"
rc=0
"$ctl" dashboard --listen nonsense >/dev/null 2>"$tmp/bad.err" || rc=$?
[[ $rc == 2 ]] && grep -q "want HOST:PORT" "$tmp/bad.err" || fail "--listen nonsense: exit $rc"

# ---- the page in a browser ---------------------------------------------------------------------
chromium=$(command -v chromium || command -v chromium-browser || true)
[[ -n $chromium ]] || fail "chromium not installed (scripts/install-deps installs it)"
# The pages as Chromium renders them (--dump-dom after the page's scripts ran), and its log.
render() { # URL OUT
  timeout 120 "$chromium" --headless --no-sandbox --disable-gpu --no-first-run \
    --user-data-dir="$tmp/chromium" --enable-logging=stderr --log-level=0 \
    --virtual-time-budget=8000 --dump-dom "$1" \
    >"$2" 2>"$tmp/chromium.log" || fail "chromium: $(tail -n 5 "$tmp/chromium.log")"
  if grep -q ':CONSOLE' "$tmp/chromium.log"; then
    fail "$1 wrote to the console: $(grep ':CONSOLE' "$tmp/chromium.log" | head -n 5)"
  fi
}
step "the rollout list in headless Chromium"
render "$url/" "$tmp/list.html"
python3 - "$tmp/list.html" "$R" <<'PY' || fail "the rendered rollout list"
import html, re, sys
dom = open(sys.argv[1]).read()
assert 'id="rollouts"' in dom, "no rollout table"
row = re.search(r'<tr><td><a href="/rollout\?id=[^"]*">' + re.escape(html.escape(sys.argv[2], quote=False)) + r'</a></td>(.*?)</tr>', dom, re.S)
assert row, "the rollout is not listed (as text, with its link)"
assert "paused" in row.group(1) and "halt" in row.group(1), "its state and last decision (the halt) are not shown"
PY
if [[ -n $chromium ]]; then
  step "the rollout page in headless Chromium"
  page="$url/rollout?id=$(python3 -c 'import urllib.parse,sys; print(urllib.parse.quote(sys.argv[1], safe=""))' "$R")"
  # --enable-logging: the page's console (errors, uncaught exceptions) goes to the log as
  # INFO:CONSOLE lines; the page writes none of its own, so any is a failure.
  render "$page" "$tmp/dom.html"
  python3 - "$tmp/dom.html" "$R" <<'PY' || fail "the rendered rollout page"
import html, re, sys
dom = open(sys.argv[1]).read()
assert 'id="timeline"' in dom, "no timeline"
assert re.search(r'<tr class="halt">.*?<td>halt</td>', dom, re.S), "no halt on the timeline"
assert html.escape(sys.argv[2], quote=False) in dom, "the id is not shown as text"
assert dom.count("uplot") >= 5, "charts not drawn"
assert "cannot read the dashboard" not in dom
PY
  # the screenshot, a test artifact (CANARY_ARTIFACTS, default ./artifacts: build/ under ctest)
  artifacts=${CANARY_ARTIFACTS:-$PWD/artifacts}
  mkdir -p "$artifacts"
  rm -f "$artifacts/dashboard-rollout.png"
  timeout 120 "$chromium" --headless --no-sandbox --disable-gpu --no-first-run --hide-scrollbars \
    --user-data-dir="$tmp/chromium" --virtual-time-budget=8000 --window-size=1400,1800 \
    --screenshot="$artifacts/dashboard-rollout.png" "$page" >/dev/null 2>&1 ||
    fail "chromium --screenshot failed"
  [[ -s $artifacts/dashboard-rollout.png ]] || fail "no screenshot in $artifacts"
  step "screenshot: $artifacts/dashboard-rollout.png"
fi

kill -TERM "$dash_pid"
rc=0
wait "$dash_pid" || rc=$?
dash_pid=''
[[ $rc == 0 ]] || fail "the dashboard exited $rc on SIGTERM"
echo "PASS: test_dashboard"
