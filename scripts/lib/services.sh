# shellcheck shell=bash
# scripts/lib/services.sh — project-local PostgreSQL 15 and Apache Kafka (KRaft)
# for canaryd development, tests and CI.  Source it from bash:
#
#     source "$(dirname "$0")/lib/services.sh"
#     services_start all              # or: pg | kafka
#     services_stop_on_exit           # stop them again when this script ends
#     services_export_env             # sets CANARY_PG and CANARY_KAFKA here
#
# Public functions
#   services_start  [pg|kafka|all]   start (idempotent; Kafka also gets the default topics)
#   services_stop   [pg|kafka|all]   stop (SIGTERM, then SIGKILL after a timeout)
#   services_status [pg|kafka|all]   print state; returns 0 only if all are running
#   services_env    [pg|kafka|all]   print `export CANARY_PG=...` / `export CANARY_KAFKA=...`
#   services_export_env [pg|kafka|all]  export those variables into the current shell
#   services_pg_conninfo             print the libpq conninfo of the running server
#   services_kafka_bootstrap         print host:port of the running broker
#   services_create_topics SPEC...   SPEC is name:partitions[:compact]; skips existing topics
#   services_list_topics             print the broker's topics
#   services_trap_stop               trap handler: `trap services_trap_stop EXIT`
#   services_stop_on_exit            installs services_trap_stop on EXIT, INT, TERM, HUP
#   services_clean                   stop and delete all data (keeps the Kafka jars)
#
# Environment (all optional)
#   CANARY_VAR            state directory (default: <repo>/var): pg/, kafka/, run/
#   CANARY_KAFKA_VERSION  Kafka version (default: the verified pin below)
#   CANARY_TOPICS         topics created by `services_start kafka` (space separated specs)
#   CANARY_PG_BIN         PostgreSQL binaries (default /usr/lib/postgresql/15/bin)
#   CANARY_KAFKA_HEAP     broker max heap (default 512m)
#   CANARY_SERVICES_TIMEOUT  seconds to wait for readiness (default 90)
#   CANARY_KEEP_SERVICES=1   makes services_trap_stop leave the services running
#   CANARY_QUIET=1        no "==>" progress lines
#
# Everything lives under $CANARY_VAR; ports are probed for (PostgreSQL from 25432,
# Kafka from 29092), so several checkouts can run side by side.  The only shared
# state is Maven's cache (~/.m2) from which the Kafka jars are copied.  Both bases lie
# below Linux's ephemeral range (net.ipv4.ip_local_port_range, 32768-60999 by default):
# a port in that range can be taken by any client's outgoing connection while a
# service is down, and a restarted broker then had to move to another port under its
# clients' feet.  A remembered port inside the range is given up at the next fresh start.

if [[ -n ${_CANARY_SERVICES_SH:-} ]]; then
    return 0
fi
_CANARY_SERVICES_SH=1

# Kafka pin.  Verified with Debian 12's librdkafka 2.0.2 (the library canaryd links):
# a consumer-group member with debug=feature logged "Feature BrokerBalancedConsumer:
# JoinGroup (0..0) supported by broker" and "Enabling feature BrokerBalancedConsumer",
# joined its group (JoinGroup v0, generation 1), and an idempotent produce followed by
# a group consume and offset commit round-tripped.  4.0.0 removed JoinGroup v0/v1
# (KIP-896); 4.0.1 and 4.1.x restored them (KAFKA-19444).  Fallback: 3.9.x.
CANARY_KAFKA_VERSION_PINNED=4.1.2
# Kafka 4.1.x logs through log4j 2 and slf4j 1.7 (slf4j-api 1.7.36 comes with Kafka),
# so the binding is log4j-slf4j-impl (not the slf4j2 one), at Kafka's log4j version.
_SVC_LOG4J_VERSION=2.24.3
_SVC_DEP_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.6.1

SERVICES_REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
: "${CANARY_KAFKA_VERSION:=$CANARY_KAFKA_VERSION_PINNED}"
: "${CANARY_PG_BIN:=/usr/lib/postgresql/15/bin}"
: "${CANARY_KAFKA_HEAP:=512m}"
: "${CANARY_SERVICES_TIMEOUT:=90}"
: "${CANARY_PG_OSUSER:=postgres}"
: "${CANARY_TOPICS:=canary.deploy:3 canary.metrics:3 canary.commands:3 canary.decisions:3 canary.notifications:1 canary.flags:1:compact canary.dlq:1}"
_SVC_PG_PORT_BASE=25432
_SVC_KAFKA_PORT_BASE=29092

# ---------------------------------------------------------------- helpers

_svc_say() {
    [[ ${CANARY_QUIET:-0} == 1 ]] || printf '==> %s\n' "$*" >&2
}

_svc_err() {
    printf 'services: error: %s\n' "$*" >&2
}

# Prints the last lines of a log file to stderr, indented.
_svc_tail() {
    local file=$1 n=${2:-40}
    if [[ -r $file ]]; then
        printf 'services: last %s lines of %s:\n' "$n" "$file" >&2
        tail -n "$n" "$file" | sed -e 's/\x1b\[[0-9;]*m//g' -e 's/^/    /' >&2
    fi
}

_svc_now_ms() {
    local t
    t=$(date +%s%N)
    printf '%s\n' $((t / 1000000))
}

_svc_elapsed() {
    local start=$1 now
    now=$(_svc_now_ms)
    local ms=$((now - start))
    printf '%d.%01ds' $((ms / 1000)) $(((ms % 1000) / 100))
}

# Absolute state directory; created on first use.
_svc_var() {
    local v=${CANARY_VAR:-$SERVICES_REPO_ROOT/var}
    if [[ ! -d $v ]]; then
        mkdir -p "$v"
        chmod 755 "$v"
    fi
    (cd "$v" && pwd -P)
}

_svc_run_dir() {
    local r
    r="$(_svc_var)/run"
    mkdir -p "$r"
    printf '%s\n' "$r"
}

_svc_targets() {
    case ${1:-all} in
        all) printf '%s\n' pg kafka ;;
        pg | postgres | postgresql) printf '%s\n' pg ;;
        kafka) printf '%s\n' kafka ;;
        *)
            _svc_err "unknown service '${1}' (expected pg, kafka or all)"
            return 2
            ;;
    esac
}

# True if something listens on 127.0.0.1:PORT or *:PORT. Connections left in TIME_WAIT by a
# server we just stopped do not count: PostgreSQL and Kafka bind with SO_REUSEADDR, and counting
# them would move a restarted service to another port under its clients' feet.
_svc_port_in_use() {
    local port=$1
    if command -v ss >/dev/null 2>&1; then
        if ss -Hltn "sport = :$port" 2>/dev/null | grep -q .; then
            return 0
        fi
    fi
    # Connect test (also covers machines without ss).
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        return 0
    fi
    return 1
}

# True if PORT lies in the kernel's ephemeral range, from which outgoing connections take
# their local ports (so it may be busy at any moment, and again after a restart).
_svc_port_ephemeral() {
    local port=$1 lo=32768 hi=60999
    if [[ -r /proc/sys/net/ipv4/ip_local_port_range ]]; then
        read -r lo hi </proc/sys/net/ipv4/ip_local_port_range
    fi
    ((port >= lo && port <= hi))
}

# _svc_pick_port PREFERRED BASE [EXCLUDE...]: PREFERRED if free, else the first free port
# from BASE upwards that is not in EXCLUDE.  A PREFERRED port in the ephemeral range (what a
# checkout started before the bases moved remembers) is given up only on a fresh start
# (_SVC_FRESH=1, set by services_start when nothing of this checkout runs): a service
# restarted while the other one runs (test_worker restarts Kafka under a running canaryd)
# must come back where its clients look for it.
_svc_pick_port() {
    local preferred=$1 base=$2
    shift 2
    local p x skip
    if [[ -n $preferred && ${_SVC_FRESH:-0} == 1 ]] && _svc_port_ephemeral "$preferred"; then
        preferred=
    fi
    for p in "$preferred" $(seq "$base" $((base + 200))); do
        [[ -n $p ]] || continue
        skip=0
        for x in "$@"; do
            [[ $p == "$x" ]] && skip=1
        done
        ((skip)) && continue
        if ! _svc_port_in_use "$p"; then
            printf '%s\n' "$p"
            return 0
        fi
    done
    _svc_err "no free TCP port in ${base}..$((base + 200))"
    return 1
}

_svc_read_file() {
    if [[ -r $1 ]]; then
        head -n 1 "$1"
    fi
}

# ---------------------------------------------------------------- PostgreSQL

_svc_pg_check_bin() {
    local b
    for b in initdb pg_ctl postgres psql; do
        if [[ ! -x $CANARY_PG_BIN/$b ]]; then
            _svc_err "$CANARY_PG_BIN/$b not found: PostgreSQL 15 server binaries are missing (run scripts/install-deps, or set CANARY_PG_BIN)"
            return 1
        fi
    done
    if ((EUID == 0)) && ! id -u "$CANARY_PG_OSUSER" >/dev/null 2>&1; then
        _svc_err "system user '$CANARY_PG_OSUSER' is missing (it comes with the postgresql-15 package; run scripts/install-deps)"
        return 1
    fi
}

# Runs a command as the PostgreSQL OS user (initdb refuses root), from /.
_svc_as_pg() {
    if ((EUID == 0)); then
        (cd / && runuser -u "$CANARY_PG_OSUSER" -- "$@")
    else
        (cd / && "$@")
    fi
}

# Directory that holds data/, server.log and the socket.  Normally $CANARY_VAR/pg;
# when the PostgreSQL OS user cannot reach $CANARY_VAR (a checkout under /root, say)
# var/pg becomes a symlink to a per-checkout directory in /tmp.
_svc_pg_root() {
    local var root
    var=$(_svc_var)
    root=$var/pg
    if ((EUID != 0)); then
        mkdir -p "$root"
        printf '%s\n' "$root"
        return 0
    fi
    if [[ -L $root ]] || ! _svc_as_pg test -x "$var"; then
        local alt
        alt=/tmp/canaryd-pg-$(printf '%s' "$var" | cksum | cut -d' ' -f1)
        if [[ ! -d $alt ]]; then
            mkdir -m 700 "$alt"
            chown "$CANARY_PG_OSUSER:" "$alt"
        fi
        if [[ $(stat -c %U "$alt") != "$CANARY_PG_OSUSER" ]]; then
            _svc_err "$alt exists but is not owned by $CANARY_PG_OSUSER"
            return 1
        fi
        if [[ ! -L $root ]]; then
            if [[ -e $root ]]; then
                _svc_err "user $CANARY_PG_OSUSER cannot reach $var (check the permissions of its parent directories) and $root already exists"
                return 1
            fi
            ln -s "$alt" "$root"
        elif [[ $(readlink "$root") != "$alt" ]]; then
            ln -sfn "$alt" "$root"
        fi
        printf '%s\n' "$alt"
        return 0
    fi
    if [[ ! -d $root ]]; then
        mkdir -p "$root"
    fi
    if [[ $(stat -c %U "$root") != "$CANARY_PG_OSUSER" ]]; then
        chown "$CANARY_PG_OSUSER:" "$root"
    fi
    chmod 700 "$root"
    printf '%s\n' "$root"
}

# Path of the data directory without creating anything (for status/stop).
_svc_pg_data_peek() {
    local root
    root="$(_svc_var)/pg"
    if [[ -L $root ]]; then
        root=$(readlink -f "$root")
    fi
    printf '%s\n' "$root/data"
}

_svc_pg_running() {
    local data
    data=$(_svc_pg_data_peek)
    [[ -f $data/postmaster.pid ]] || return 1
    [[ -x $CANARY_PG_BIN/pg_ctl ]] || return 1
    _svc_as_pg "$CANARY_PG_BIN/pg_ctl" -D "$data" status >/dev/null 2>&1
}

# Port of the running server (from postmaster.pid, line 4).
_svc_pg_live_port() {
    local data
    data=$(_svc_pg_data_peek)
    sed -n 4p "$data/postmaster.pid" 2>/dev/null
}

_svc_pg_init() {
    local root=$1 data=$1/data
    _svc_say "initialising PostgreSQL cluster in $data"
    rm -rf "$data"
    if ! _svc_as_pg "$CANARY_PG_BIN/initdb" -D "$data" -U postgres -E UTF8 --locale=C \
        --auth-local=trust --auth-host=trust >"$root/initdb.log" 2>&1; then
        _svc_err "initdb failed"
        _svc_tail "$root/initdb.log"
        return 1
    fi
    # Settings that change between starts (port, socket) live in canary.conf.
    printf "\n# canaryd: settings written by scripts/lib/services.sh\ninclude_if_exists = 'canary.conf'\n" \
        >>"$data/postgresql.conf"
    cat >"$data/pg_hba.conf" <<'EOF'
# canaryd development cluster: loopback only, trust (written by scripts/lib/services.sh)
# TYPE  DATABASE  USER  ADDRESS       METHOD
local   all       all                 trust
host    all       all   127.0.0.1/32  trust
host    all       all   ::1/128       trust
EOF
    chown "$(stat -c %u:%g "$data")" "$data/pg_hba.conf" 2>/dev/null || true
}

_svc_pg_write_conf() {
    local root=$1 port=$2 data=$1/data sock=$1/sock sockdir
    mkdir -p "$sock"
    chown "$(stat -c %u:%g "$data")" "$sock"
    chmod 700 "$sock"
    # A unix socket path is limited to 107 bytes; deep checkouts get TCP only.
    sockdir=$sock
    if ((${#sock} + 20 > 107)); then
        sockdir=
    fi
    cat >"$data/canary.conf" <<EOF
# Written by scripts/lib/services.sh at every start; edits are overwritten.
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$sockdir'
fsync = on
synchronous_commit = on
full_page_writes = on
max_connections = 100
log_min_messages = warning
log_timezone = 'UTC'
timezone = 'UTC'
EOF
    chown "$(stat -c %u:%g "$data")" "$data/canary.conf"
}

# Database `canary`, and a superuser role for root so `psql` works without -U.
_svc_pg_bootstrap() {
    local port=$1 out
    if ! out=$("$CANARY_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 \
        "host=127.0.0.1 port=$port dbname=postgres user=postgres" 2>&1 <<'EOF'
SELECT 'CREATE ROLE root SUPERUSER LOGIN' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'root') \gexec
SELECT 'CREATE DATABASE canary' WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'canary') \gexec
EOF
    ); then
        _svc_err "could not create database canary on port $port: $out"
        return 1
    fi
}

_svc_pg_start() {
    local t0 root data log port attempt run
    t0=$(_svc_now_ms)
    _svc_pg_check_bin
    run=$(_svc_run_dir)
    if _svc_pg_running; then
        port=$(_svc_pg_live_port)
        printf '%s\n' "$port" >"$run/pg.port"
        _svc_pg_bootstrap "$port"
        _svc_say "PostgreSQL already running on port $port"
        return 0
    fi
    root=$(_svc_pg_root)
    data=$root/data
    log=$root/server.log
    if [[ ! -s $data/PG_VERSION ]]; then
        _svc_pg_init "$root"
    fi
    for attempt in 1 2 3; do
        port=$(_svc_pick_port "$(_svc_read_file "$run/pg.last-port")" "$_SVC_PG_PORT_BASE" \
            "$(_svc_read_file "$run/kafka.port")" "$(_svc_read_file "$run/kafka.controller.port")")
        _svc_pg_write_conf "$root" "$port"
        _svc_say "starting PostgreSQL on port $port"
        [[ -f $log ]] && mv -f "$log" "$log.1"
        if _svc_as_pg "$CANARY_PG_BIN/pg_ctl" -D "$data" -l "$log" -w -t "$CANARY_SERVICES_TIMEOUT" -s start \
            >"$root/pg_ctl.out" 2>&1; then
            printf '%s\n' "$port" >"$run/pg.port"
            printf '%s\n' "$port" >"$run/pg.last-port"
            _svc_pg_bootstrap "$port"
            _svc_say "PostgreSQL ready on 127.0.0.1:$port ($(_svc_elapsed "$t0"))"
            return 0
        fi
        if grep -qE 'could not (bind|create listen)|already in use' "$log" 2>/dev/null && ((attempt < 3)); then
            _svc_say "port $port was taken meanwhile; retrying"
            rm -f "$run/pg.port" "$run/pg.last-port"
            continue
        fi
        break
    done
    _svc_err "PostgreSQL did not start (data: $data)"
    cat "$root/pg_ctl.out" >&2 2>/dev/null || true
    _svc_tail "$log"
    return 1
}

_svc_pg_stop() {
    local data run
    data=$(_svc_pg_data_peek)
    run=$(_svc_run_dir)
    if ! _svc_pg_running; then
        rm -f "$run/pg.port"
        return 0
    fi
    _svc_say "stopping PostgreSQL (port $(_svc_pg_live_port))"
    if ! _svc_as_pg "$CANARY_PG_BIN/pg_ctl" -D "$data" -m fast -w -t 60 -s stop >/dev/null 2>&1; then
        local pid
        pid=$(head -n 1 "$data/postmaster.pid" 2>/dev/null || true)
        if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
            _svc_say "PostgreSQL did not stop in 60 s; sending SIGQUIT to $pid"
            kill -QUIT "$pid" 2>/dev/null || true
            sleep 2
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$run/pg.port"
}

services_pg_conninfo() {
    local port
    if ! _svc_pg_running; then
        _svc_err "PostgreSQL is not running (scripts/services start pg)"
        return 1
    fi
    port=$(_svc_pg_live_port)
    printf 'host=127.0.0.1 port=%s dbname=canary user=postgres\n' "$port"
}

# ---------------------------------------------------------------- Kafka

_svc_kafka_dir() {
    local d
    d="$(_svc_var)/kafka"
    mkdir -p "$d"
    printf '%s\n' "$d"
}

# Major version of a java binary (8 for 1.8.0_x).
_svc_java_major() {
    local v
    v=$("$1" -version 2>&1 | sed -n 's/.* version "\([^"]*\)".*/\1/p' | head -n 1)
    [[ -n $v ]] || {
        echo 0
        return
    }
    if [[ $v == 1.* ]]; then
        v=${v#1.}
    fi
    echo "${v%%[.+-]*}"
}

# The java binary used for Kafka: Java 17 or newer.
_svc_java() {
    if [[ -n ${_SVC_JAVA:-} ]]; then
        printf '%s\n' "$_SVC_JAVA"
        return 0
    fi
    local c
    for c in ${JAVA_HOME:+"$JAVA_HOME/bin/java"} "$(command -v java 2>/dev/null || true)" /usr/lib/jvm/*/bin/java; do
        [[ -n $c && -x $c ]] || continue
        if (($(_svc_java_major "$c") >= 17)); then
            _SVC_JAVA=$c
            printf '%s\n' "$c"
            return 0
        fi
    done
    _svc_err "Kafka $CANARY_KAFKA_VERSION needs Java 17 or newer and none was found (run scripts/install-deps)"
    return 1
}

# Copies the broker's jars from Maven Central (through ~/.m2) into var/kafka/jars,
# once per version: a marker file makes later starts skip Maven entirely.
_svc_kafka_fetch() {
    local kdir=$1 jars=$1/jars marker=$1/jars/.canary-complete want
    want="kafka_2.13 $CANARY_KAFKA_VERSION log4j $_SVC_LOG4J_VERSION"
    if [[ -f $marker && $(cat "$marker") == "$want" ]]; then
        return 0
    fi
    if ! command -v mvn >/dev/null 2>&1; then
        _svc_err "mvn not found: Maven is needed once to fetch the Kafka jars (run scripts/install-deps)"
        return 1
    fi
    local t0
    t0=$(_svc_now_ms)
    _svc_say "fetching Kafka $CANARY_KAFKA_VERSION jars with Maven into $jars"
    cat >"$kdir/pom.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by scripts/lib/services.sh: the runtime class path of a Kafka broker. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.canaryd</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$CANARY_KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$CANARY_KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>$_SVC_LOG4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>$_SVC_LOG4J_VERSION</version></dependency>
  </dependencies>
</project>
EOF
    rm -rf "$jars.tmp" "$jars"
    if ! mvn -B -q -Dstyle.color=never -f "$kdir/pom.xml" "$_SVC_DEP_PLUGIN:copy-dependencies" \
        -DincludeScope=runtime -DoutputDirectory="$jars.tmp" >"$kdir/mvn.log" 2>&1; then
        _svc_err "Maven could not fetch the Kafka $CANARY_KAFKA_VERSION jars (see $kdir/mvn.log)"
        _svc_tail "$kdir/mvn.log" 30
        rm -rf "$jars.tmp"
        return 1
    fi
    if [[ ! -f $jars.tmp/kafka_2.13-$CANARY_KAFKA_VERSION.jar ]]; then
        _svc_err "Maven finished but kafka_2.13-$CANARY_KAFKA_VERSION.jar is missing from $jars.tmp"
        return 1
    fi
    printf '%s\n' "$want" >"$jars.tmp/.canary-complete"
    mv "$jars.tmp" "$jars"
    _svc_say "Kafka jars ready ($(find "$jars" -name '*.jar' | wc -l) jars, $(_svc_elapsed "$t0"))"
}

_svc_kafka_write_conf() {
    local kdir=$1 port=$2 cport=$3
    cat >"$kdir/server.properties" <<EOF
# Written by scripts/lib/services.sh at every start; edits are overwritten.
# Single node, KRaft, combined broker + controller, loopback only.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$kdir/data
num.partitions=1
default.replication.factor=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=3
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.hours=168
EOF
    cat >"$kdir/log4j2.properties" <<'EOF'
# Broker logging (stdout, which services.sh sends to var/kafka/server.log).
status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = STDOUT
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.clients.name = org.apache.kafka.clients
logger.clients.level = WARN
EOF
    cat >"$kdir/tools-log4j2.properties" <<'EOF'
# Admin tools (TopicCommand): warnings and errors only, on stderr.
status = error
appender.err.type = Console
appender.err.name = STDERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = STDERR
EOF
}

# A random KRaft cluster id: 16 random bytes, base64url without padding.
# Never one that starts with '-' (1 in 64): kafka-storage would read it as an option and fail
# ("argument --cluster-id/-t: expected one argument"), as Kafka's own Uuid.randomUuid avoids.
_svc_kafka_cluster_id() {
    local id
    while :; do
        id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
        [[ $id != -* ]] && break
    done
    printf '%s\n' "$id"
}

# PID of this checkout's broker, if it runs (pid file first, then a /proc scan
# for a broker started with this var/kafka/server.properties).
_svc_kafka_pid() {
    local kdir props pid f
    kdir="$(_svc_var)/kafka"
    props=$kdir/server.properties
    pid=$(_svc_read_file "$(_svc_var)/run/kafka.pid")
    if [[ -n $pid ]] && _svc_kafka_pid_is_ours "$pid" "$props"; then
        printf '%s\n' "$pid"
        return 0
    fi
    # shellcheck disable=SC2013 # /proc/N/cmdline paths have no spaces
    for f in $(grep -lasF -- "$props" /proc/[0-9]*/cmdline 2>/dev/null); do
        pid=${f#/proc/}
        pid=${pid%/cmdline}
        if _svc_kafka_pid_is_ours "$pid" "$props"; then
            printf '%s\n' "$pid"
            return 0
        fi
    done
    return 1
}

_svc_kafka_pid_is_ours() {
    local pid=$1 props=$2 cmd
    [[ -r /proc/$pid/cmdline ]] || return 1
    cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ $cmd == *" kafka.Kafka $props"* ]]
}

_svc_kafka_running() {
    _svc_kafka_pid >/dev/null
}

# _svc_kafka_wait PID PORT LOG: waits until the broker logs "Kafka Server started"
# and its port answers.  Returns 1 on timeout or death, 2 if it could not bind.
_svc_kafka_wait() {
    local pid=$1 port=$2 log=$3 deadline
    deadline=$((SECONDS + CANARY_SERVICES_TIMEOUT))
    while ((SECONDS < deadline)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            if grep -qE 'BindException|Address already in use' "$log" 2>/dev/null; then
                return 2
            fi
            _svc_err "the Kafka broker exited during start-up"
            return 1
        fi
        if grep -q 'Kafka Server started' "$log" 2>/dev/null &&
            (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.2
    done
    _svc_err "the Kafka broker was not ready after ${CANARY_SERVICES_TIMEOUT}s"
    return 1
}

_svc_kafka_kill() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 300; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    _svc_say "Kafka did not stop within 30 s; sending SIGKILL to $pid"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
}

_svc_kafka_start() {
    local t0 kdir run java port cport pid attempt rc log
    t0=$(_svc_now_ms)
    run=$(_svc_run_dir)
    if pid=$(_svc_kafka_pid); then
        port=$(_svc_kafka_port)
        printf '%s\n' "$pid" >"$run/kafka.pid"
        printf '%s\n' "$port" >"$run/kafka.port"
        _svc_say "Kafka already running on port $port (pid $pid)"
        _svc_kafka_default_topics
        return 0
    fi
    java=$(_svc_java)
    kdir=$(_svc_kafka_dir)
    log=$kdir/server.log
    _svc_kafka_fetch "$kdir"
    mkdir -p "$kdir/data"
    for attempt in 1 2 3; do
        port=$(_svc_pick_port "$(_svc_read_file "$run/kafka.last-port")" "$_SVC_KAFKA_PORT_BASE" \
            "$(_svc_read_file "$run/pg.port")")
        cport=$(_svc_pick_port "$(_svc_read_file "$run/kafka.controller.port")" $((port + 1)) \
            "$port" "$(_svc_read_file "$run/pg.port")")
        _svc_kafka_write_conf "$kdir" "$port" "$cport"
        if [[ ! -f $kdir/data/meta.properties ]]; then
            _svc_say "formatting Kafka storage in $kdir/data"
            if ! "$java" -Xmx256m -Dlog4j2.configurationFile="$kdir/tools-log4j2.properties" \
                -cp "$kdir/jars/*" kafka.tools.StorageTool format --ignore-formatted \
                -t "$(_svc_kafka_cluster_id)" -c "$kdir/server.properties" >"$kdir/format.log" 2>&1; then
                _svc_err "formatting Kafka storage failed"
                _svc_tail "$kdir/format.log"
                return 1
            fi
        fi
        _svc_say "starting Kafka $CANARY_KAFKA_VERSION on port $port (controller $cport)"
        [[ -f $log ]] && mv -f "$log" "$log.1"
        # setsid: the broker must not get the terminal's SIGINT meant for the caller.
        setsid "$java" -Xms256m -Xmx"$CANARY_KAFKA_HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
            -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
            -Dlog4j2.configurationFile="$kdir/log4j2.properties" -Dkafka.logs.dir="$kdir" \
            -cp "$kdir/jars/*" kafka.Kafka "$kdir/server.properties" \
            </dev/null >"$log" 2>&1 &
        pid=$!
        printf '%s\n' "$pid" >"$run/kafka.pid"
        printf '%s\n' "$port" >"$run/kafka.port"
        printf '%s\n' "$port" >"$run/kafka.last-port"
        printf '%s\n' "$cport" >"$run/kafka.controller.port"
        rc=0
        _svc_kafka_wait "$pid" "$port" "$log" || rc=$?
        if ((rc == 0)); then
            _svc_say "Kafka ready on 127.0.0.1:$port ($(_svc_elapsed "$t0"))"
            _svc_kafka_default_topics
            return 0
        fi
        _svc_kafka_kill "$pid"
        rm -f "$run/kafka.pid" "$run/kafka.port" "$run/kafka.last-port" "$run/kafka.controller.port"
        if ((rc == 2 && attempt < 3)); then
            _svc_say "port $port or $cport was taken meanwhile; retrying"
            continue
        fi
        break
    done
    _svc_tail "$log"
    return 1
}

_svc_kafka_stop() {
    local run pid
    run=$(_svc_run_dir)
    if pid=$(_svc_kafka_pid); then
        _svc_say "stopping Kafka (port $(_svc_kafka_port), pid $pid)"
        _svc_kafka_kill "$pid"
    fi
    rm -f "$run/kafka.pid" "$run/kafka.port"
}

# Port of this checkout's broker: var/run/kafka.port, else its server.properties.
_svc_kafka_port() {
    local port
    port=$(_svc_read_file "$(_svc_var)/run/kafka.port")
    if [[ -z $port ]]; then
        port=$(sed -n 's|^advertised.listeners=PLAINTEXT://[^:]*:\([0-9]*\).*|\1|p' \
            "$(_svc_var)/kafka/server.properties" 2>/dev/null || true)
    fi
    printf '%s\n' "$port"
}

services_kafka_bootstrap() {
    if ! _svc_kafka_running; then
        _svc_err "Kafka is not running (scripts/services start kafka)"
        return 1
    fi
    printf '127.0.0.1:%s\n' "$(_svc_kafka_port)"
}

_svc_kafka_default_topics() {
    # shellcheck disable=SC2086 # CANARY_TOPICS is a space-separated list
    services_create_topics $CANARY_TOPICS
}

# One JVM creates all topics through the Admin API (about 1 s instead of about a
# second per topic).  Compiled once into var/kafka/tools when a JDK's javac is at
# hand; otherwise services_create_topics falls back to TopicCommand per topic.
_svc_kafka_topics_tool() {
    local kdir=$1 java=$2 javac tools src
    tools=$kdir/tools
    src=$tools/CanaryTopics.java
    javac=$(dirname "$(readlink -f "$java")")/javac
    [[ -x $javac ]] || return 1
    mkdir -p "$tools"
    cat >"$src.new" <<'EOF'
// Generated by scripts/lib/services.sh.  Usage: CanaryTopics BOOTSTRAP name:partitions[:policy]...
import java.util.*;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.common.KafkaFuture;
import org.apache.kafka.common.errors.TopicExistsException;

public final class CanaryTopics {
    public static void main(String[] args) throws Exception {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "60000");
        List<NewTopic> topics = new ArrayList<>();
        for (int i = 1; i < args.length; i++) {
            String[] f = args[i].split(":");
            NewTopic t = new NewTopic(f[0], Integer.parseInt(f[1]), (short) 1);
            if (f.length > 2 && !f[2].isEmpty()) t.configs(Map.of("cleanup.policy", f[2]));
            topics.add(t);
        }
        int failed = 0;
        try (Admin admin = Admin.create(p)) {
            for (Map.Entry<String, KafkaFuture<Void>> e : admin.createTopics(topics).values().entrySet()) {
                try {
                    e.getValue().get();
                } catch (ExecutionException ex) {
                    if (!(ex.getCause() instanceof TopicExistsException)) {
                        System.err.println("topic " + e.getKey() + ": " + ex.getCause());
                        failed++;
                    }
                }
            }
        }
        System.exit(failed == 0 ? 0 : 1);
    }
}
EOF
    if [[ -f $tools/CanaryTopics.class ]] && cmp -s "$src" "$src.new"; then
        rm -f "$src.new"
        return 0
    fi
    mv -f "$src.new" "$src"
    rm -f "$tools/CanaryTopics.class"
    if ! "$javac" -nowarn -cp "$kdir/jars/*" -d "$tools" "$src" >"$tools/javac.log" 2>&1; then
        _svc_say "could not compile $src (see $tools/javac.log); using TopicCommand"
        return 1
    fi
}

# services_create_topics name:partitions[:compact] ...
# Creates the topics that do not exist yet on this checkout's broker.
services_create_topics() {
    local kdir bootstrap java spec name parts policy tmp i=0 failed=0 t0
    local -a pids=() names=() missing=()
    (($# > 0)) || return 0
    bootstrap=$(services_kafka_bootstrap)
    kdir="$(_svc_var)/kafka"
    for spec in "$@"; do
        IFS=: read -r name parts policy <<<"$spec"
        if [[ -z $name || ! $parts =~ ^[0-9]+$ || ! ${policy:-delete} =~ ^(compact|delete)$ ]]; then
            _svc_err "bad topic spec '$spec' (expected name:partitions[:compact])"
            return 2
        fi
        # Single local broker: partition 0's log directory exists iff the topic does.
        [[ -d $kdir/data/$name-0 ]] || missing+=("$spec")
    done
    ((${#missing[@]} > 0)) || return 0
    t0=$(_svc_now_ms)
    java=$(_svc_java)
    tmp=$(mktemp -d)
    _svc_say "creating Kafka topics: ${missing[*]}"
    if _svc_kafka_topics_tool "$kdir" "$java"; then
        if ! "$java" -Xmx128m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC \
            -Dlog4j2.configurationFile="$kdir/tools-log4j2.properties" \
            -cp "$kdir/tools:$kdir/jars/*" CanaryTopics "$bootstrap" "${missing[@]}" >"$tmp/all.log" 2>&1; then
            _svc_err "could not create the topics:"
            sed 's/^/    /' "$tmp/all.log" >&2
            failed=1
        fi
    else
        # No javac: one TopicCommand JVM per topic, in parallel.
        for spec in "${missing[@]}"; do
            IFS=: read -r name parts policy <<<"$spec"
            local -a extra=()
            [[ -n ${policy:-} ]] && extra=(--config "cleanup.policy=$policy")
            "$java" -Xmx128m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC \
                -Dlog4j2.configurationFile="$kdir/tools-log4j2.properties" \
                -cp "$kdir/jars/*" org.apache.kafka.tools.TopicCommand \
                --bootstrap-server "$bootstrap" --create --if-not-exists \
                --topic "$name" --partitions "$parts" --replication-factor 1 "${extra[@]}" \
                >"$tmp/$i.log" 2>&1 &
            pids+=("$!")
            names+=("$name")
            i=$((i + 1))
        done
        for i in "${!pids[@]}"; do
            if ! wait "${pids[$i]}"; then
                _svc_err "could not create topic ${names[$i]}:"
                sed 's/^/    /' "$tmp/$i.log" >&2
                failed=1
            fi
        done
    fi
    rm -rf "$tmp"
    ((failed == 0)) || return 1
    _svc_say "topics created ($(_svc_elapsed "$t0"))"
}

# Prints the broker's topic names, one a line (one TopicCommand JVM, about 1 s).
services_list_topics() {
    local bootstrap kdir java
    bootstrap=$(services_kafka_bootstrap) || return 1
    kdir="$(_svc_var)/kafka"
    java=$(_svc_java)
    "$java" -Xmx128m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC \
        -Dlog4j2.configurationFile="$kdir/tools-log4j2.properties" \
        -cp "$kdir/jars/*" org.apache.kafka.tools.TopicCommand \
        --bootstrap-server "$bootstrap" --list
}

# ---------------------------------------------------------------- public API

services_start() {
    local targets t
    targets=$(_svc_targets "${1:-all}") || return 2
    _SVC_FRESH=1
    if _svc_pg_running || _svc_kafka_running; then
        _SVC_FRESH=0
    fi
    for t in $targets; do
        case $t in
            pg) _svc_pg_start ;;
            kafka) _svc_kafka_start ;;
        esac
    done
}

services_stop() {
    local targets t
    targets=$(_svc_targets "${1:-all}") || return 2
    # Kafka first: it is the slower one and holds no PostgreSQL connections.
    for t in kafka pg; do
        [[ $targets == *$t* ]] || continue
        case $t in
            pg) _svc_pg_stop ;;
            kafka) _svc_kafka_stop ;;
        esac
    done
}

services_status() {
    local targets t rc=0 run pid
    targets=$(_svc_targets "${1:-all}") || return 2
    run=$(_svc_run_dir)
    for t in $targets; do
        case $t in
            pg)
                if _svc_pg_running; then
                    printf 'pg:    running  127.0.0.1:%s  data %s\n' "$(_svc_pg_live_port)" "$(_svc_pg_data_peek)"
                else
                    printf 'pg:    stopped\n'
                    rc=3
                fi
                ;;
            kafka)
                if pid=$(_svc_kafka_pid); then
                    printf 'kafka: running  127.0.0.1:%s  pid %s  version %s\n' \
                        "$(_svc_kafka_port)" "$pid" "$CANARY_KAFKA_VERSION"
                else
                    printf 'kafka: stopped\n'
                    rc=3
                fi
                ;;
        esac
    done
    return "$rc"
}

services_env() {
    local targets t v
    targets=$(_svc_targets "${1:-all}") || return 2
    for t in $targets; do
        case $t in
            pg)
                v=$(services_pg_conninfo) || return 1
                printf "export CANARY_PG='%s'\n" "$v"
                ;;
            kafka)
                v=$(services_kafka_bootstrap) || return 1
                printf "export CANARY_KAFKA='%s'\n" "$v"
                ;;
        esac
    done
}

services_export_env() {
    local lines
    lines=$(services_env "${1:-all}") || return 1
    eval "$lines"
}

services_clean() {
    local var
    services_stop all
    var=$(_svc_var)
    _svc_say "deleting service data in $var (the Kafka jars are kept)"
    if [[ -L $var/pg ]]; then
        rm -rf "$(readlink -f "$var/pg")"
    fi
    rm -rf "$var/pg" "$var/kafka/data" "$var/run"
}

# Trap handler: `trap services_trap_stop EXIT`.  Stops both services (unless
# CANARY_KEEP_SERVICES=1) and keeps the script's exit status.  Runs once.
services_trap_stop() {
    local rc=$?
    if [[ -z ${_SVC_TRAP_DONE:-} ]]; then
        _SVC_TRAP_DONE=1
        if [[ ${CANARY_KEEP_SERVICES:-0} != 1 ]]; then
            services_stop all || true
        fi
    fi
    return "$rc"
}

# Installs services_trap_stop for EXIT, and makes INT/TERM/HUP exit (which then
# runs the EXIT trap) with the conventional status.
services_stop_on_exit() {
    trap services_trap_stop EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
}
