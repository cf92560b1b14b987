/* The input topics, log formatting and librdkafka configuration shared by consumer and producer. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus/bus_internal.h"

#define INPUT_1(name) name,
#define INPUT_0(name)
const char *const bus_input_topics[BUS_INPUT_TOPICS] = {
#define XX(id, name, input, sized, compact, types) INPUT_##input(name)
    TOPIC_MAP(XX)
#undef XX
};

void bus_logf(log_sink_fn log, void *ctx, int level, const char *fmt, ...) {
  if (!log) {
    return;
  }
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  log(ctx, level, line);
}

/* Whether a NULL-terminated name/value list names a reconnect.backoff property. A name without
 * a value ends the list (bus_conf_apply refuses it): never read past its NULL. */
static bool sets_reconnect_backoff(const char *const *conf) {
  for (size_t i = 0; conf && conf[i]; i += 2) {
    if (!strncmp(conf[i], "reconnect.backoff.", 18))
      return true;
    if (!conf[i + 1])
      break;
  }
  return false;
}

rd_kafka_conf_t *bus_conf_new(const char *const *extra) {
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  /* librdkafka doubles the wait between reconnection attempts up to this, 10 s by default: a
   * broker back after an outage was noticed up to ~10 s late, and a worker resumed that late
   * (issue 10). At most one attempt a second per broker costs nothing. Left to librdkafka when
   * the user sets either reconnect.backoff property: theirs wins, and a max below their
   * reconnect.backoff.ms would make rd_kafka_new() refuse the configuration. */
  char err[128];
  if (!sets_reconnect_backoff(bus_client_conf()) && !sets_reconnect_backoff(extra))
    (void)rd_kafka_conf_set(conf, "reconnect.backoff.max.ms", "1000", err, sizeof err);
  return conf;
}

int bus_conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, log_sink_fn log,
                 void *ctx) {
  char err[512];
  if (!name || !value) {
    bus_logf(log, ctx, LOG_LVL_ERR, "kafka config: property %s has no value",
             name ? name : "(null)");
    return CANARY_EINVALID;
  }
  if (rd_kafka_conf_set(conf, name, value, err, sizeof err) != RD_KAFKA_CONF_OK) {
    bus_logf(log, ctx, LOG_LVL_ERR, "kafka config: %s=%s: %s", name, value, err);
    return CANARY_EINVALID;
  }
  return CANARY_OK;
}

int bus_conf_apply(rd_kafka_conf_t *conf, const char *const *extra, const char *const *fixed,
                   log_sink_fn log, void *ctx) {
  if (!extra) {
    return CANARY_OK;
  }
  for (size_t i = 0; extra[i]; i += 2) {
    for (size_t j = 0; fixed[j]; j++) {
      if (strcmp(extra[i], fixed[j]) == 0) {
        bus_logf(log, ctx, LOG_LVL_ERR,
                 "kafka config: %s is fixed by canaryd (exactly-once recipe) and cannot be set",
                 extra[i]);
        return CANARY_EINVALID;
      }
    }
    int rc = bus_conf_set(conf, extra[i], extra[i + 1], log, ctx);
    if (rc != CANARY_OK) {
      return rc;
    }
  }
  return CANARY_OK;
}

/* The contract's topics, and their Kafka names once the installation's prefix is applied. */
static const char *const contract_topics[] = {
#define XX(id, name, input, sized, compact, types) name,
    TOPIC_MAP(XX)
#undef XX
};
#define N_CONTRACT (sizeof contract_topics / sizeof contract_topics[0])
static char prefix[64];
static char prefixed[N_CONTRACT][64 + 32];

void bus_set_topic_prefix(const char *p) {
  snprintf(prefix, sizeof prefix, "%s", p ? p : "");
  for (size_t i = 0; i < N_CONTRACT; i++)
    snprintf(prefixed[i], sizeof prefixed[i], "%s%s", prefix, contract_topics[i]);
}

const char *bus_topic(const char *name) {
  if (!prefixed[0][0])
    bus_set_topic_prefix(NULL); /* not set yet: the prefix is "" */
  for (size_t i = 0; i < N_CONTRACT; i++)
    if (strcmp(name, contract_topics[i]) == 0)
      return prefixed[i];
  return name;
}

int bus_topic_index(const char *kafka_name) {
  size_t n = strlen(prefix);
  if (strncmp(kafka_name, prefix, n) != 0)
    return -1;
  for (int i = 0; i < BUS_INPUT_TOPICS; i++) {
    if (strcmp(kafka_name + n, bus_input_topics[i]) == 0) {
      return i;
    }
  }
  return -1;
}

int64_t bus_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the properties every client gets ------------------------------------------------------ */

#define CLIENT_CONF_MAX 64
static char *client_conf[2 * CLIENT_CONF_MAX + 1];
static size_t n_client_conf;

const char *const *bus_client_conf(void) { return (const char *const *)client_conf; }

void bus_client_conf_clear(void) {
  for (size_t i = 0; i < n_client_conf; i++) {
    free(client_conf[i]);
    client_conf[i] = NULL;
  }
  n_client_conf = 0;
}

int bus_client_conf_add(const char *name, const char *value, char *why, size_t why_len) {
  if (!name || !*name || !value) {
    snprintf(why, why_len, "a Kafka property needs a name and a value");
    return CANARY_EINVALID;
  }
  /* check it now, against a scratch configuration: a typo is reported before anything starts */
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  char err[512];
  rd_kafka_conf_res_t res = rd_kafka_conf_set(conf, name, value, err, sizeof err);
  rd_kafka_conf_destroy(conf);
  if (res != RD_KAFKA_CONF_OK) {
    snprintf(why, why_len, "%s=%s: %s", name, value, err);
    return CANARY_EINVALID;
  }
  for (size_t i = 0; i < n_client_conf; i += 2) /* a later value replaces an earlier one */
    if (!strcmp(client_conf[i], name)) {
      char *v = strdup(value);
      if (!v)
        return CANARY_ENOMEM;
      free(client_conf[i + 1]);
      client_conf[i + 1] = v;
      return CANARY_OK;
    }
  if (n_client_conf == 2 * CLIENT_CONF_MAX) {
    snprintf(why, why_len, "more than %d Kafka properties", CLIENT_CONF_MAX);
    return CANARY_EINVALID;
  }
  char *n = strdup(name), *v = strdup(value);
  if (!n || !v) {
    free(n);
    free(v);
    return CANARY_ENOMEM;
  }
  client_conf[n_client_conf++] = n;
  client_conf[n_client_conf++] = v;
  client_conf[n_client_conf] = NULL;
  return CANARY_OK;
}

int bus_client_conf_load(const char *path, char *why, size_t why_len) {
  FILE *f = fopen(path, "r");
  if (!f) {
    snprintf(why, why_len, "%s: %s", path, strerror(errno));
    return CANARY_EINVALID;
  }
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  int rc = CANARY_OK, lineno = 0;
  while (rc == CANARY_OK && (len = getline(&line, &cap, f)) > 0) {
    lineno++;
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
      line[--len] = '\0';
    char *p = line;
    while (*p == ' ' || *p == '\t')
      p++;
    if (!*p || *p == '#' || *p == '!')
      continue;
    char *eq = strchr(p, '=');
    if (!eq || eq == p) {
      snprintf(why, why_len, "%s:%d: expected name=value", path, lineno);
      rc = CANARY_EINVALID;
      break;
    }
    char *end = eq;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
      end--;
    *end = '\0';
    char *value = eq + 1;
    while (*value == ' ' || *value == '\t')
      value++;
    char msg[400];
    rc = bus_client_conf_add(p, value, msg, sizeof msg);
    if (rc == CANARY_EINVALID)
      snprintf(why, why_len, "%s:%d: %s", path, lineno, msg);
  }
  free(line);
  fclose(f);
  return rc;
}
