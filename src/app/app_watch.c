/*
 * `canaryctl watch`: read the output topics (decisions, notifications, traffic splits, dead
 * letters) and print them as a readable timeline or as JSON Lines.
 */
#include "app/app_watch.h"

#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app/app_cli.h"
#include "app/app_log.h"
#include "app/app_timeline.h"
#include "bus/bus.h"
#include "codec/avro_codec.h"
#include "codec/event_json.h"
#include "codec/json.h"
#include "codec/rfc3339.h"

static const char usage[] =
    "usage: canaryctl watch [--topic T[,T...]] [--from-beginning] [--until-idle MS]\n"
    "                       [--rollout ID] [--json] [--kafka BROKERS]\n"
    "\n"
    "Print what canaryd publishes, as it is published.\n"
    "\n"
    "  --topic T          decisions, notifications, flags, dlq, or all\n"
    "                     (default: decisions,notifications)\n"
    "  --from-beginning   everything the topics hold, not only what comes from now on\n"
    "  --until-idle MS    stop once every partition is caught up and nothing came for MS\n"
    "  --rollout ID       only this rollout\n"
    "  --json             one JSON object per line, {\"topic\":...,\"value\":{...}}\n"
    "  --kafka BROKERS    [CANARY_KAFKA]\n"
    "\n"
    "With --until-idle, a summary line on stderr counts the messages and the ids seen more than\n"
    "once (an outbox relay that crashed between publishing and marking publishes again, with\n"
    "the same id; consumers de-duplicate by id).\n"
    "Exit status: 0 ok, 2 usage error, 3 Kafka unavailable.\n";

static volatile sig_atomic_t stop;
static void on_signal(int sig) {
  (void)sig;
  stop = 1;
}

enum { T_DECISIONS, T_NOTIFICATIONS, T_FLAGS, T_DLQ, T_COUNT };
static const enum topic watched[T_COUNT] = {TOPIC_DECISIONS, TOPIC_NOTIFICATIONS, TOPIC_FLAGS,
                                            TOPIC_DLQ};
static const char *const short_names[T_COUNT] = {"decisions", "notifications", "flags", "dlq"};

/* Ids seen, to count re-published messages. */
struct seen {
  char **ids;
  size_t n, cap;
  int64_t repeats;
};

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static void seen_add(struct seen *s, const char *id) {
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 256;
    char **ids = realloc(s->ids, cap * sizeof *ids);
    if (!ids)
      return;
    s->ids = ids;
    s->cap = cap;
  }
  s->ids[s->n++] = strdup(id);
}

static int64_t count_repeats(struct seen *s) {
  if (s->n < 2) /* no repeat; and with nothing read ids is NULL, which qsort must not get */
    return 0;
  qsort(s->ids, s->n, sizeof *s->ids, cmp_str);
  int64_t r = 0;
  for (size_t i = 1; i < s->n; i++)
    r += strcmp(s->ids[i], s->ids[i - 1]) == 0;
  return r;
}

/*
 * Lines are held back briefly and printed in time order: each topic has its own reader, so a
 * notification may be read before the decision it reports.
 */
#define WATCH_REORDER_MS 300
struct held {
  int64_t time_ms, arrived_ms, seq;
  int topic;
  char *text;
};

struct watch {
  struct held *held;
  size_t n_held, cap_held;
  int64_t seq;
  avro_codec_t *codec;
  const char *rollout;
  bool json;
  struct jbuf out;
  struct seen seen;
  int64_t messages;
  char slack[8192];
};

static int64_t mono_ms(void);

static int cmp_held(const void *x, const void *y) {
  const struct held *a = x, *b = y;
  if (a->time_ms != b->time_ms)
    return a->time_ms < b->time_ms ? -1 : 1;
  if (a->topic != b->topic) /* a decision before the notifications about it */
    return a->topic < b->topic ? -1 : 1;
  return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* Print what has been held long enough (everything when all is set), in time order. */
static void flush_held(struct watch *w, bool all) {
  if (!w->n_held)
    return;
  qsort(w->held, w->n_held, sizeof *w->held, cmp_held);
  int64_t now = mono_ms();
  size_t kept = 0;
  for (size_t i = 0; i < w->n_held; i++) {
    struct held *h = &w->held[i];
    if (all || now - h->arrived_ms >= WATCH_REORDER_MS) {
      fputs(h->text, stdout);
      free(h->text);
    } else {
      w->held[kept++] = *h;
    }
  }
  w->n_held = kept;
  fflush(stdout);
}

static void hold(struct watch *w, int topic, int64_t time_ms, char *text) {
  if (w->n_held == w->cap_held) {
    size_t cap = w->cap_held ? w->cap_held * 2 : 64;
    struct held *h = realloc(w->held, cap * sizeof *h);
    if (!h) {
      fputs(text, stdout);
      free(text);
      return;
    }
    w->held = h;
    w->cap_held = cap;
  }
  w->held[w->n_held++] = (struct held){
      .time_ms = time_ms, .arrived_ms = mono_ms(), .seq = w->seq++, .topic = topic, .text = text};
}

static void print_json(struct watch *w, FILE *out, int topic,
                       void (*write)(const void *, struct jbuf *), const void *value) {
  jbuf_reset(&w->out);
  jbuf_puts(&w->out, "{\"topic\":");
  jbuf_string(&w->out, topic_name(watched[topic]));
  jbuf_puts(&w->out, ",\"value\":");
  write(value, &w->out);
  jbuf_puts(&w->out, "}\n");
  fwrite(w->out.data, 1, w->out.len, out);
}

static void w_decision(const void *v, struct jbuf *b) { decision_to_json(v, b); }
static void w_notification(const void *v, struct jbuf *b) { notification_to_json(v, b); }
static void w_traffic(const void *v, struct jbuf *b) { traffic_to_json(v, b); }

static void show(struct watch *w, int topic, const struct bus_msg *m) {
  char why[256], at[RFC3339_MAX];
  int rc = CANARY_OK;
  int64_t time_ms = 0;
  char *text = NULL;
  size_t text_len = 0;
  FILE *out = open_memstream(&text, &text_len);
  if (!out)
    return;
  w->messages++;
  switch (topic) {
  case T_DECISIONS: {
    struct decision d;
    if ((rc = avro_codec_decode_decision(w->codec, m->value, m->len, &d, why, sizeof why)))
      break;
    seen_add(&w->seen, d.id);
    time_ms = d.time_ms;
    if (w->rollout && strcmp(w->rollout, d.rollout))
      break;
    if (w->json)
      print_json(w, out, topic, w_decision, &d);
    else
      timeline_decision(out, &d);
    break;
  }
  case T_NOTIFICATIONS: {
    struct notification n;
    if ((rc = avro_codec_decode_notification(w->codec, m->value, m->len, &n, w->slack,
                                             sizeof w->slack, why, sizeof why)) &&
        rc != CANARY_EFULL)
      break;
    rc = CANARY_OK;
    seen_add(&w->seen, n.id);
    time_ms = n.time_ms;
    if (w->rollout && strcmp(w->rollout, n.rollout))
      break;
    if (w->json)
      print_json(w, out, topic, w_notification, &n);
    else
      timeline_notification(out, &n);
    break;
  }
  case T_FLAGS: {
    struct traffic_split t;
    if ((rc = avro_codec_decode_traffic(w->codec, m->value, m->len, &t, why, sizeof why)))
      break;
    seen_add(&w->seen, t.id);
    time_ms = t.time_ms;
    if (w->rollout && strcmp(w->rollout, t.rollout))
      break;
    if (w->json)
      print_json(w, out, topic, w_traffic, &t);
    else
      fprintf(out, "%s %s traffic %s %s: exposure %g%%%s%s\n", rfc3339_format(t.time_ms, at),
              t.rollout, t.service, t.version, t.exposure_percent,
              t.canary_enabled ? "" : " (kill switch off)",
              t.breaker_open ? " (breaker open)" : "");
    break;
  }
  case T_DLQ: {
    struct avro_dlq d;
    if ((rc = avro_codec_decode_dlq(w->codec, m->value, m->len, &d, why, sizeof why)))
      break;
    time_ms = d.time_ms;
    if (w->json) {
      jbuf_reset(&w->out);
      jbuf_puts(&w->out, "{\"topic\":\"canary.dlq\",\"value\":{\"topic\":");
      jbuf_string(&w->out, d.topic);
      jbuf_printf(&w->out, ",\"partition\":%d,\"offset\":%" PRId64 ",\"reason\":", d.partition,
                  d.offset);
      jbuf_string(&w->out, d.reason);
      jbuf_puts(&w->out, "}}\n");
      fwrite(w->out.data, 1, w->out.len, out);
    } else {
      fprintf(out, "%s dead letter from %s [%d] offset %" PRId64 ": %s\n",
              rfc3339_format(d.time_ms, at), d.topic, d.partition, d.offset, d.reason);
    }
    break;
  }
  }
  if (rc != CANARY_OK)
    fprintf(stderr, "canaryctl watch: %s [%d] offset %" PRId64 ": cannot decode: %s\n",
            topic_name(watched[topic]), m->partition, m->offset, why);
  fclose(out);
  if (text_len)
    hold(w, topic, time_ms, text);
  else
    free(text);
}

static bool parse_topics(const char *arg, bool want[T_COUNT]) {
  char buf[256];
  snprintf(buf, sizeof buf, "%s", arg);
  memset(want, 0, T_COUNT * sizeof *want);
  for (char *save, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    bool found = false;
    for (int i = 0; i < T_COUNT; i++)
      if (!strcmp(t, short_names[i]) || !strcmp(t, topic_name(watched[i])) || !strcmp(t, "all"))
        want[i] = found = true;
    if (!found)
      return false;
  }
  return true;
}

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int app_watch(int argc, char **argv) {
  static const struct option opts[] = {{"topic", required_argument, NULL, 't'},
                                       {"from-beginning", no_argument, NULL, 'b'},
                                       {"until-idle", required_argument, NULL, 'i'},
                                       {"rollout", required_argument, NULL, 'r'},
                                       {"json", no_argument, NULL, 'j'},
                                       {"kafka", required_argument, NULL, 'k'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  bool want[T_COUNT] = {true, true, false, false}, from_beginning = false;
  const char *kafka = getenv("CANARY_KAFKA");
  int64_t idle_ms = -1;
  struct watch w = {.rollout = NULL};
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
    case 't':
      if (!parse_topics(optarg, want)) {
        fprintf(stderr, "canaryctl watch: --topic: unknown topic in '%s'\n", optarg);
        return EXIT_USAGE;
      }
      break;
    case 'b':
      from_beginning = true;
      break;
    case 'i':
      idle_ms = atoll(optarg);
      break;
    case 'r':
      w.rollout = optarg;
      break;
    case 'j':
      w.json = true;
      break;
    case 'k':
      kafka = optarg;
      break;
    case 'h':
      fputs(usage, stdout);
      return EXIT_OK;
    default:
      fputs(usage, stderr);
      return EXIT_USAGE;
    }
  }
  if (!kafka || optind < argc) {
    fprintf(stderr, "canaryctl watch: %s\n",
            !kafka ? "--kafka or CANARY_KAFKA is required" : "unexpected argument");
    return EXIT_USAGE;
  }
  log_setup(LOG_LVL_WARNING, false, "canaryctl");
  if (avro_codec_new(&w.codec) != CANARY_OK)
    return EXIT_BAD_INPUT;
  bus_reader_t *readers[T_COUNT] = {NULL};
  int code = EXIT_OK;
  for (int i = 0; i < T_COUNT && code == EXIT_OK; i++)
    if (want[i] && bus_reader_new(kafka, topic_name(watched[i]), from_beginning, log_callback, NULL,
                                  &readers[i]) != CANARY_OK)
      code = EXIT_UNAVAILABLE;
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  jbuf_init(&w.out);
  int64_t last_msg = mono_ms();
  while (code == EXIT_OK && !stop) {
    bool all_caught_up = true, got = false;
    for (int i = 0; i < T_COUNT; i++) {
      if (!readers[i])
        continue;
      struct bus_msg m;
      bool caught_up;
      while (bus_reader_read(readers[i], got ? 0 : 50, &m, &caught_up) == CANARY_OK) {
        show(&w, i, &m);
        got = true;
      }
      all_caught_up = all_caught_up && caught_up;
    }
    flush_held(&w, false);
    if (got)
      last_msg = mono_ms();
    else if (idle_ms >= 0 && all_caught_up && mono_ms() - last_msg >= idle_ms)
      break;
  }
  flush_held(&w, true);
  free(w.held);
  for (int i = 0; i < T_COUNT; i++)
    bus_reader_close(readers[i]);
  if (idle_ms >= 0)
    fprintf(stderr,
            "watched %" PRId64 " messages, %zu ids, %" PRId64
            " re-published (same id seen again)\n",
            w.messages, w.seen.n, count_repeats(&w.seen));
  for (size_t i = 0; i < w.seen.n; i++)
    free(w.seen.ids[i]);
  free(w.seen.ids);
  jbuf_free(&w.out);
  avro_codec_destroy(w.codec);
  return code;
}
