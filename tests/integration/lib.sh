# Helpers of the shell integration suites (sourced): fail, run, has, wait_for, step, and the
# preamble of a suite that runs its own canaryd (suite_start, suite_own_database) with what such
# suites ask of it (status_has, free_port).
# run keeps the command's output in $out and $err, using $tmp (the suite's scratch directory).

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# run EXPECTED_EXIT CMD...: run, keep stdout/stderr in $out/$err, check the exit status.
run() {
  local want=$1 got=0
  shift
  "$@" >"$tmp/out" 2>"$tmp/err" || got=$?
  out=$(cat "$tmp/out")
  err=$(cat "$tmp/err")
  if [[ $got != "$want" ]]; then
    fail "exit $got (want $want): $*
stdout: $out
stderr: $err"
  fi
}

# has TEXT WHAT: $TEXT contains the fixed string WHAT.
has() {
  grep -qF -- "$2" <<<"$1" || fail "expected '$2' in:
$1"
}

# wait_for SECONDS DESCRIPTION CMD...: retry CMD every 0.2 s until it succeeds.
wait_for() {
  local limit=$1 what=$2
  shift 2
  local end=$(($(date +%s) + limit))
  until "$@" >/dev/null 2>&1; do
    if (($(date +%s) >= end)); then
      echo "timed out after ${limit}s waiting for $what" >&2
      return 1
    fi
    sleep 0.2
  done
}

step() { printf '== %s\n' "$*"; }

# ---- a suite that runs its own canaryd ----------------------------------------------------------

# suite_start NAME PLAN CANARYCTL CANARYD: the programs as $ctl and $daemon (a usage error
# without them); CANARY_PG and CANARY_KAFKA required — an integration test that cannot run fails,
# it does not pass — and exported with CANARY_PLAN=PLAN; $tmp, the scratch directory, and
# $suffix, unique to this run. On exit (suite_cleanup): the processes whose ids are in the
# variables suite_pid_vars names (pid; a suite adds its own) stopped, the last 40 lines of
# $tmp/canaryd.log shown when the suite failed, $tmp removed, suite_own_database's dropped.
suite_start() {
  local name=$1 plan=$2 v
  [[ -n ${3:-} && -n ${4:-} ]] || { echo "usage: $name CANARYCTL CANARYD" >&2; exit 1; }
  ctl=$3 daemon=$4
  for v in CANARY_PG CANARY_KAFKA; do
    [[ -n ${!v:-} ]] ||
      { echo "$name: $v is not set: start the services (scripts/lib/services.sh) first" >&2; exit 1; }
  done
  export CANARY_PG CANARY_KAFKA CANARY_PLAN=$plan
  tmp=$(mktemp -d)
  suffix=$$-$(date +%s)
  suite_pid_vars=(pid)
  suite_db='' suite_pg_admin=''
  pid=''
  trap suite_cleanup EXIT
}

suite_cleanup() {
  local rc=$? v p
  for v in "${suite_pid_vars[@]}"; do
    p=${!v:-}
    if [[ -n $p ]] && kill -0 "$p" 2>/dev/null; then
      kill -TERM "$p"
      wait "$p" 2>/dev/null || true
    fi
  done
  if ((rc != 0)); then
    echo "--- canaryd log (last 40 lines) ---" >&2
    tail -n 40 "$tmp/canaryd.log" >&2 || true
  fi
  rm -rf "$tmp"
  if [[ -n $suite_db ]]; then
    psql "$suite_pg_admin" -qc "DROP DATABASE IF EXISTS $suite_db" >/dev/null 2>&1 || true
  fi
  exit "$rc"
}

# suite_own_database NAME: hermetic, a database (canary_NAME_<suffix>) and a topic prefix
# (NAME-<suffix>.) of this run's own, so that offsets another suite stored, or a freeze it left
# behind, cannot reach it; CANARY_PG and CANARY_TOPIC_PREFIX name them from now on. The database
# is dropped on exit, the topics stay.
suite_own_database() {
  suite_db=canary_$1_${suffix//-/_}
  suite_pg_admin=$CANARY_PG
  psql "$suite_pg_admin" -qc "CREATE DATABASE $suite_db" ||
    { echo "FAIL: cannot create database $suite_db" >&2; exit 1; }
  export CANARY_PG="$CANARY_PG dbname=$suite_db" CANARY_TOPIC_PREFIX="$1-$suffix."
}

# suite_daemon NAME: start canaryd on $CANARY_PLAN as $pid (group and worker id NAME-$suffix;
# /metrics, /healthz and /readyz on a free $port; its log $tmp/canaryd.log) and wait until it is
# ready: its topics created and its shards loaded. A client's first emit could find no topic
# before then (canaryd creates a suite's own topics as it starts).
suite_daemon() {
  port=$(free_port)
  step "starting canaryd (group $1-$suffix; /metrics on $port)"
  "$daemon" --plan "$CANARY_PLAN" --group "$1-$suffix" --worker-id "$1-$suffix" \
    --http-listen "127.0.0.1:$port" >"$tmp/canaryd.log" 2>&1 &
  pid=$!
  wait_for 90 "canaryd to be ready" suite_ready || fail "canaryd not ready"
}
suite_ready() {
  [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$port/readyz") == 200 ]]
}

# A port nobody listens on: the kernel picks one, we let it go and use it.
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# status_has ROLLOUT TEXT: `canaryctl status ROLLOUT` says TEXT.
status_has() { "$ctl" status "$1" | grep -qF -- "$2"; }
