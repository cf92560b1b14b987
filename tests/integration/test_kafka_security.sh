#!/usr/bin/env bash
# canaryd and canaryctl on a TLS + SASL cluster (ctest label integration).
#
#   tests/integration/test_kafka_security.sh CANARYCTL CANARYD
#
# Starts a broker of its own — the project's Kafka jars, a SASL_SSL listener only (PLAIN over
# TLS), a certificate authority and broker certificate made here with openssl — and runs a
# canaryd against it and the services' PostgreSQL (CANARY_PG) with one properties file
# (CANARY_KAFKA_CONFIG) for every client: canaryd's consumer, producer and topic creation, and
# canaryctl. A rollout is requested and paused through it; the decisions must be stored and
# published over TLS. Without the file, canaryctl cannot reach the broker (exit 3).
# FAILS without CANARY_PG or the Kafka jars: an integration test that cannot run is not a pass.
set -euo pipefail

ctl=${1:?usage: test_kafka_security.sh CANARYCTL CANARYD}
daemon=${2:?usage: test_kafka_security.sh CANARYCTL CANARYD}
root=$(cd "$(dirname "$0")/../.." && pwd)
: "${CANARY_PG:?CANARY_PG is not set: start the services (scripts/lib/services.sh) first}"
# shellcheck source=../../scripts/lib/services.sh
source "$root/scripts/lib/services.sh"
kjars=$(_svc_kafka_dir)/jars
[[ -d $kjars ]] || { echo "FAIL: no Kafka jars in $kjars (scripts/services start kafka)" >&2; exit 1; }
java=$(_svc_java)

tmp=$(mktemp -d)
broker_pid=
daemon_pid=
cleanup() {
  local rc=$?
  set +e # (wait returns the signal's status)
  [[ -n $daemon_pid ]] && kill -TERM "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
  [[ -n $broker_pid ]] && kill -TERM "$broker_pid" 2>/dev/null && wait "$broker_pid" 2>/dev/null
  [[ -n ${db:-} ]] && "$psql" "$maintenance" -XAtqc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1
  if ((rc != 0)); then
    echo "--- broker log (tail)" >&2; tail -20 "$tmp/broker.log" >&2 || true
    echo "--- canaryd log (tail)" >&2; tail -20 "$tmp/canaryd.log" >&2 || true
    cp "$tmp/canaryd.log" "${TMPDIR:-/tmp}/test_kafka_security-canaryd.log" 2>/dev/null || true
  fi
  rm -rf "$tmp"
  exit $rc
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
say() { echo "    $*"; }

# Below Linux's ephemeral range (32768-60999): a port picked there can be taken as the local
# port of some client's outgoing connection in the seconds before the broker binds it (CI saw
# "the SASL_SSL broker exited" on a bind failure while other suites' clients were busy).
port=$(_svc_pick_port "" 29300)
cport=$(_svc_pick_port "" 29400 "$port")

# A certificate authority and the broker's certificate for 127.0.0.1, as PKCS12 for Java.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=canary-test-ca" \
    -keyout "$tmp/ca.key" -out "$tmp/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$tmp/broker.key" \
    -out "$tmp/broker.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$tmp/san.ext"
openssl x509 -req -in "$tmp/broker.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" -CAcreateserial \
    -days 2 -extfile "$tmp/san.ext" -out "$tmp/broker.pem" 2>/dev/null
openssl pkcs12 -export -in "$tmp/broker.pem" -inkey "$tmp/broker.key" -name broker \
    -passout pass:changeit -out "$tmp/broker.p12"
# the broker also talks to itself over the listener: it trusts the same CA
"$(dirname "$(readlink -f "$java")")/keytool" -importcert -noprompt -alias ca -file "$tmp/ca.pem" \
    -keystore "$tmp/trust.p12" -storetype PKCS12 -storepass changeit >/dev/null 2>&1

cat >"$tmp/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=SASL_SSL://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=SASL_SSL://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=SASL_SSL
listener.security.protocol.map=CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL
sasl.enabled.mechanisms=PLAIN
sasl.mechanism.inter.broker.protocol=PLAIN
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="admin-secret" user_admin="admin-secret" user_canary="canary-secret";
ssl.keystore.type=PKCS12
ssl.keystore.location=$tmp/broker.p12
ssl.keystore.password=changeit
ssl.key.password=changeit
ssl.truststore.type=PKCS12
ssl.truststore.location=$tmp/trust.p12
ssl.truststore.password=changeit
ssl.endpoint.identification.algorithm=
log.dirs=$tmp/data
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
EOF
"$java" -Xmx256m -cp "$kjars/*" kafka.tools.StorageTool format --ignore-formatted \
    -t "$(_svc_kafka_cluster_id)" -c "$tmp/server.properties" >"$tmp/format.log" 2>&1 ||
  { cat "$tmp/format.log" >&2; fail "formatting the broker's storage"; }
"$java" -Xms128m -Xmx384m -Dlog4j2.configurationFile="$(_svc_kafka_dir)/log4j2.properties" \
    -cp "$kjars/*" kafka.Kafka "$tmp/server.properties" >"$tmp/broker.log" 2>&1 &
broker_pid=$!
for ((i = 0; i < 600; i++)); do
  grep -q "Kafka Server started" "$tmp/broker.log" 2>/dev/null && break
  kill -0 "$broker_pid" 2>/dev/null || fail "the SASL_SSL broker exited"
  sleep 0.1
done
grep -q "Kafka Server started" "$tmp/broker.log" || fail "the SASL_SSL broker did not start in 60 s"
say "broker with a SASL_SSL listener only on 127.0.0.1:$port"

cat >"$tmp/client.properties" <<EOF
# every Kafka client of canaryd and canaryctl: TLS with our CA, SASL PLAIN
security.protocol=SASL_SSL
sasl.mechanisms=PLAIN
sasl.username=canary
sasl.password=canary-secret
ssl.ca.location=$tmp/ca.pem
EOF
export CANARY_KAFKA=127.0.0.1:$port CANARY_PLAN=$root/tests/scenarios/plans/deploy-gates.yaml
suffix=$$-$(date +%s)
# a database of its own: the stored offsets must belong to this broker's topics
psql=$(command -v psql || echo "${CANARY_PG_BIN:-/usr/lib/postgresql/15/bin}/psql")
db=canary_sec_${suffix//-/_}
"$psql" "$CANARY_PG" -XAtqc "CREATE DATABASE $db" >/dev/null || fail "cannot create database $db"
maintenance=$CANARY_PG
export CANARY_PG="$CANARY_PG dbname=$db"
"$daemon" migrate >"$tmp/migrate.log" 2>&1 || { cat "$tmp/migrate.log" >&2; fail "canaryd migrate"; }
export CANARY_TOPIC_PREFIX=sec$suffix.
R=sec-$suffix

# Without the properties, nothing reaches the broker.
set +e
"$ctl" emit --type rollout.requested --rollout "$R-x" --service "s-$suffix" --version 2 \
    --baseline_version 1 --timeout 5 >/dev/null 2>&1
rc=$?
set -e
((rc != 0)) || fail "canaryctl emit reached a SASL_SSL listener without credentials"
say "without the client properties: canaryctl emit exits $rc"

export CANARY_KAFKA_CONFIG=$tmp/client.properties
"$daemon" --group "g-$suffix" --partitions 1 >"$tmp/canaryd.log" 2>&1 &
daemon_pid=$!
# canaryd creates the topics over SASL_SSL as it starts: emit once they are there
for ((i = 0; ; i++)); do
  "$ctl" emit --type rollout.requested --rollout "$R" --service "s-$suffix" --version 2 \
      --baseline_version 1 --timeout 5 >/dev/null 2>"$tmp/emit.err" && break
  ((i < 30)) || { cat "$tmp/emit.err" >&2; fail "canaryctl emit over SASL_SSL"; }
  kill -0 "$daemon_pid" 2>/dev/null || fail "canaryd exited"
  sleep 1
done
for ((i = 0; i < 60; i++)); do # canaryd consumed it over SASL_SSL and stored the rollout
  "$ctl" status "$R" >/dev/null 2>&1 && break
  sleep 0.5
done
"$ctl" status "$R" >/dev/null || fail "canaryd did not store $R (consumed over SASL_SSL)"
out=$("$ctl" pause "$R" --reason "over TLS" --timeout 60) || fail "canaryctl pause over SASL_SSL: $out"
[[ $out == *"pause internal_test paused [manual]"* ]] || fail "unexpected answer: $out"
say "canaryctl pause answered by canaryd over SASL_SSL: ${out:0:80}"
# and the decisions were published there: read them back from canary.decisions
n=$("$ctl" watch --topic decisions --from-beginning --until-idle 3000 --rollout "$R" --json \
      2>/dev/null | grep -c "\"rollout\":\"$R\"" || true)
((n >= 2)) || fail "expected the hold and the pause on canary.decisions over SASL_SSL, read $n"
say "$n decisions of $R read back from canary.decisions over SASL_SSL"
grep -q "SSL handshake failed\|Authentication failed" "$tmp/canaryd.log" &&
  fail "canaryd logged a TLS or SASL failure"
echo "PASS test_kafka_security"
