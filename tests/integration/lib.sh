# Helpers of the shell integration suites (sourced): fail, run, has, wait_for, step.
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
