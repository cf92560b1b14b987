/* Services, producing and rollout selection for canaryctl's live subcommands. */
#include "app/app_live.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <getopt.h>
#include <unistd.h>

#include "app/app_cli.h"
#include "app/app_log.h"

/* ---- logs of the libraries ---------------------------------------------------------------- */

/*
 * The store and the bus say what they are doing through a log callback. A command-line user
 * wants one line that says what failed, not every retry: keep the last warning, print it when
 * the operation fails; --verbose prints everything as it happens.
 */
static bool verbose;
static char last_log[512];

static void live_log(void *ctx, int level, const char *msg) {
  if (level <= LOG_LVL_WARNING)
    snprintf(last_log, sizeof last_log, "%s", msg);
  if (verbose)
    log_callback(ctx, level, msg);
}

void live_set_verbose(bool on) {
  verbose = on;
  log_setup(on ? LOG_LVL_DEBUG : LOG_LVL_ERR, false, "canaryctl");
}

/* ---- small things ------------------------------------------------------------------------- */

int64_t live_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void live_new_id(char *buf, size_t len) {
  static unsigned n;
  char host[64] = "host";
  if (gethostname(host, sizeof host - 1) != 0)
    snprintf(host, sizeof host, "host");
  host[sizeof host - 1] = '\0';
  snprintf(buf, len, "%s-%ld-%lld-%u", host, (long)getpid(), (long long)live_now_ms(), ++n);
}

const char *live_env_or(const char *value, const char *name) {
  if (value)
    return value;
  const char *v = getenv(name);
  return v && *v ? v : NULL;
}

/* ---- the store ---------------------------------------------------------------------------- */

int live_store_open(const char *prog, const char *conninfo, store_t **out) {
  *out = NULL;
  if (!conninfo) {
    fprintf(stderr, "%s: --pg or CANARY_PG is required (PostgreSQL connection string)\n", prog);
    return EXIT_USAGE;
  }
  last_log[0] = '\0';
  if (store_open(conninfo, LIVE_CONNECT_TIMEOUT_MS, live_log, NULL, out) != CANARY_OK) {
    fprintf(stderr, "%s: %s\n", prog, last_log[0] ? last_log : "PostgreSQL unavailable");
    return EXIT_UNAVAILABLE;
  }
  return EXIT_OK;
}

int live_list_rollouts(const char *prog, store_t *st, struct store_rollout_row **rows, size_t *n) {
  int rc = store_list_rollouts(st, rows, n);
  if (rc == CANARY_OK)
    return EXIT_OK;
  fprintf(stderr, "%s: cannot read rollouts: %s (%s)%s\n", prog, canary_strerror(rc),
          store_last_error(st), live_schema_hint(st));
  return EXIT_UNAVAILABLE;
}

const char *live_schema_hint(store_t *st) {
  /* SQLSTATE 42P01, undefined_table: the database canaryd has never started against */
  return strstr(store_last_error(st), "42P01") ? "; has canaryd migrated the database?" : "";
}

bool live_is_active(const struct rollout *r) {
  return r->state != ROLLOUT_COMPLETED && r->state != ROLLOUT_ROLLED_BACK;
}

int live_pick_rollout(const char *prog, const struct store_rollout_row *rows, size_t n,
                      const char *given, const struct store_rollout_row **row) {
  *row = NULL;
  if (given) {
    for (size_t i = 0; i < n; i++)
      if (strcmp(rows[i].rollout.id, given) == 0) {
        *row = &rows[i];
        return EXIT_OK;
      }
    fprintf(stderr, "%s: unknown rollout '%s' (canaryctl status lists them)\n", prog, given);
    return EXIT_BAD_INPUT;
  }
  size_t active = 0;
  for (size_t i = 0; i < n; i++)
    if (live_is_active(&rows[i].rollout)) {
      active++;
      *row = &rows[i];
    }
  if (active == 1)
    return EXIT_OK;
  *row = NULL;
  if (!active) {
    fprintf(stderr, "%s: no active rollout; name one\n", prog);
    return EXIT_BAD_INPUT;
  }
  fprintf(stderr, "%s: several active rollouts: ", prog);
  const char *sep = "";
  for (size_t i = 0; i < n; i++)
    if (live_is_active(&rows[i].rollout)) {
      fprintf(stderr, "%s%s", sep, rows[i].rollout.id);
      sep = ", ";
    }
  fputs("; name one\n", stderr);
  return EXIT_BAD_INPUT;
}

int live_rollout_arg(const char *prog, int argc, char **argv, const char *usage,
                     const char **rollout) {
  if (optind < argc)
    *rollout = argv[optind++];
  if (optind < argc) {
    fprintf(stderr, "%s: unexpected argument '%s'\n\n%s", prog, argv[optind], usage);
    return EXIT_USAGE;
  }
  return -1;
}

int live_find_rollout(const char *prog, store_t *st, const char *given,
                      struct store_rollout_row *out) {
  struct store_rollout_row *rows = NULL;
  const struct store_rollout_row *row = NULL;
  size_t n = 0;
  int code = live_list_rollouts(prog, st, &rows, &n);
  if (code == EXIT_OK)
    code = live_pick_rollout(prog, rows, n, given, &row);
  if (code == EXIT_OK)
    *out = *row;
  free(rows);
  return code;
}

/* The newest rollout of rows[i]'s service is rows[i] (rows are in creation order). */
static bool newest_of_service(const struct store_rollout_row *rows, size_t n, size_t i) {
  for (size_t j = i + 1; j < n; j++)
    if (!strcmp(rows[j].rollout.service, rows[i].rollout.service))
      return false;
  return true;
}

static void print_choices(const struct store_rollout_row *rows, size_t n, const bool *pick) {
  const char *sep = "";
  for (size_t i = 0; i < n; i++)
    if (pick[i]) {
      fprintf(stderr, "%s%s (%s, %s)", sep, rows[i].rollout.id, rows[i].rollout.service,
              rollout_state_name(rows[i].rollout.state));
      sep = ", ";
    }
}

int live_pick_rollback(const char *prog, const struct store_rollout_row *rows, size_t n,
                       const char *service, const struct store_rollout_row **row) {
  *row = NULL;
  bool *pick = calloc(n ? n : 1, sizeof *pick);
  if (!pick)
    return EXIT_BAD_INPUT;
  size_t k = 0;
  if (service) {
    /* the service's active rollouts; with none, its newest if that one completed */
    for (size_t i = 0; i < n; i++)
      if (!strcmp(rows[i].rollout.service, service) && live_is_active(&rows[i].rollout))
        pick[i] = true, k++, *row = &rows[i];
    for (size_t i = n; k == 0 && i-- > 0;)
      if (!strcmp(rows[i].rollout.service, service)) {
        if (rows[i].rollout.state == ROLLOUT_COMPLETED)
          pick[i] = true, k++, *row = &rows[i];
        break;
      }
  } else {
    for (size_t i = 0; i < n; i++)
      if (live_is_active(&rows[i].rollout))
        pick[i] = true, k++, *row = &rows[i];
    if (k == 0)
      for (size_t i = 0; i < n; i++)
        if (rows[i].rollout.state == ROLLOUT_COMPLETED && newest_of_service(rows, n, i))
          pick[i] = true, k++, *row = &rows[i];
  }
  if (k == 1) {
    free(pick);
    return EXIT_OK;
  }
  *row = NULL;
  if (k == 0)
    fprintf(stderr, "%s: nothing to roll back: no active or completed rollout%s%s%s\n", prog,
            service ? " of service '" : "", service ? service : "", service ? "'" : "");
  else {
    fprintf(stderr, "%s: several rollouts could be meant: ", prog);
    print_choices(rows, n, pick);
    fputs("; name one or give --service\n", stderr);
  }
  free(pick);
  return EXIT_BAD_INPUT;
}

/* ---- producing ---------------------------------------------------------------------------- */

static void on_delivery(void *ctx, int64_t opaque, bool ok, const char *error) {
  struct live_sender *s = ctx;
  (void)opaque;
  if (ok) {
    s->delivered++;
    return;
  }
  if (!s->failed++)
    snprintf(s->error, sizeof s->error, "%s", error ? error : "delivery failed");
}

int live_sender_open(struct live_sender *s, const char *prog, const char *brokers) {
  memset(s, 0, sizeof *s);
  s->prog = prog;
  s->brokers = brokers;
  if (!brokers) {
    fprintf(stderr, "%s: --kafka or CANARY_KAFKA is required (Kafka bootstrap servers)\n", prog);
    return EXIT_USAGE;
  }
  if (avro_codec_new(&s->codec) != CANARY_OK) {
    fprintf(stderr, "%s: cannot load the Avro schemas\n", prog);
    return EXIT_BAD_INPUT;
  }
  char client[96];
  snprintf(client, sizeof client, "canaryctl-%ld", (long)getpid());
  last_log[0] = '\0';
  if (bus_producer_new(brokers, client, live_log, NULL, &s->producer) != CANARY_OK) {
    fprintf(stderr, "%s: cannot create a Kafka producer for %s: %s\n", prog, brokers,
            last_log[0] ? last_log : "bad configuration");
    avro_codec_destroy(s->codec);
    s->codec = NULL;
    return EXIT_USAGE;
  }
  bus_producer_on_delivery(s->producer, on_delivery, s);
  return EXIT_OK;
}

int live_partitions(struct live_sender *s, const char *topic) {
  for (int i = 0; i < s->n_topics; i++)
    if (strcmp(s->topics[i], topic) == 0)
      return s->partitions[i];
  last_log[0] = '\0';
  int n = bus_partition_count(s->producer, topic, LIVE_CONNECT_TIMEOUT_MS);
  if (n <= 0) {
    fprintf(stderr,
            "%s: Kafka at %s did not describe topic %s within %d s: %s"
            " (canaryd creates its topics when it starts; is it running, with the same"
            " CANARY_TOPIC_PREFIX?)\n",
            s->prog, s->brokers, topic, LIVE_CONNECT_TIMEOUT_MS / 1000,
            last_log[0] ? last_log : "no answer");
    return -1;
  }
  if (s->n_topics < (int)(sizeof s->partitions / sizeof s->partitions[0])) {
    snprintf(s->topics[s->n_topics], sizeof s->topics[0], "%s", topic);
    s->partitions[s->n_topics++] = n;
  }
  return n;
}

int live_send(struct live_sender *s, const struct event *ev, char *why, size_t why_len) {
  /* Refuse what canaryd would dead-letter on sight: an invalid event, or one dated further
   * ahead of this machine's clock than canaryd's default --max-skew-ms. */
  if (!event_validate(ev, why, why_len))
    return EXIT_BAD_INPUT;
  int64_t now = live_now_ms();
  if (ev->time_ms > now + EVENT_MAX_SKEW_MS) {
    snprintf(why, why_len,
             "time: %" PRId64 " is %" PRId64 " s ahead of this machine's clock (canaryd "
             "dead-letters more than %" PRId64 " s): milliseconds since 1970 expected",
             ev->time_ms, (ev->time_ms - now) / 1000, (int64_t)(EVENT_MAX_SKEW_MS / 1000));
    return EXIT_BAD_INPUT;
  }
  int rc = avro_codec_encode_event(s->codec, ev, &s->buf);
  if (rc != CANARY_OK) {
    snprintf(why, why_len, "cannot encode: %s", canary_strerror(rc));
    return EXIT_BAD_INPUT;
  }
  const char *topic = avro_codec_topic_of(ev->type);
  int parts = topic ? live_partitions(s, topic) : -1;
  if (parts < 0) {
    snprintf(why, why_len, "Kafka unavailable");
    return EXIT_UNAVAILABLE;
  }
  bool everywhere = ev->type == EVENT_FLAG_SET && !ev->rollout[0];
  for (int p = everywhere ? 0 : -1; p < (everywhere ? parts : 0); p++) {
    const char *key = ev->rollout[0] ? ev->rollout : NULL;
    rc = bus_produce(s->producer, topic, p, key, key ? strlen(key) : 0, s->buf.data, s->buf.len,
                     s->queued);
    if (rc != CANARY_OK) {
      snprintf(why, why_len, "cannot queue for %s: %s", topic, canary_strerror(rc));
      return rc == CANARY_EINVALID ? EXIT_BAD_INPUT : EXIT_UNAVAILABLE;
    }
    s->queued++;
  }
  return EXIT_OK;
}

int live_sender_flush(struct live_sender *s, int timeout_ms) {
  if (!s->producer)
    return EXIT_OK;
  int rc = bus_producer_flush(s->producer, timeout_ms);
  int64_t missing = s->queued - s->delivered;
  if (rc == CANARY_OK && !missing)
    return EXIT_OK;
  fprintf(stderr, "%s: %lld of %lld messages not delivered to Kafka at %s: %s\n", s->prog,
          (long long)missing, (long long)s->queued, s->brokers, s->failed ? s->error : "timed out");
  return EXIT_UNAVAILABLE;
}

void live_sender_close(struct live_sender *s) {
  bus_producer_destroy(s->producer);
  avro_codec_destroy(s->codec);
  avro_buf_free(&s->buf);
  memset(s, 0, sizeof *s);
}
