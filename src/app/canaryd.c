/*
 * canaryd: the worker. Consumes canary.deploy, canary.metrics and canary.commands in a consumer
 * group, decides through the core, commits to PostgreSQL, publishes the outbox to Kafka.
 */
#include <getopt.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app/app_cli.h"
#include "app/app_log.h"
#include "app/notify.h"
#include "app/worker.h"
#include "app/worker_http.h"
#include "bus/bus.h"
#include "config/config.h"
#include "store/store.h"

static volatile sig_atomic_t running = 1;
static volatile sig_atomic_t reload = 0;

static void on_signal(int sig) {
  (void)sig;
  running = 0;
}

static void on_hangup(int sig) {
  (void)sig;
  reload = 1;
}

/* What SIGHUP reloads the policy of, and from where. */
struct policy_source {
  struct plan *plan;     /* the plan the worker runs: its policy is replaced in place */
  const char *plan_path; /* NULL: the built-in plan */
};

/*
 * SIGHUP: the policy again, from where cli_load_plan took it at the start (cli_policy_file,
 * else the plan file's policy:), so that a person can be given or denied a right without a restart. Only the
 * policy: the rest of the plan decided the rollouts in flight and needs a restart. A file that
 * does not load leaves the policy in force. The worker calls this between batches, and only its
 * loop reads the policy, so the swap needs no lock.
 */
static void reload_policy(void *ctx) {
  const struct policy_source *src = ctx;
  static struct plan fresh; /* large: not on the stack */
  static struct policy p;
  struct config_error err;
  const char *file = cli_policy_file(), *from;
  int rc;
  if (file) {
    from = file;
    rc = config_load_policy_file(file, &p, &err);
  } else if (src->plan_path) {
    from = src->plan_path;
    rc = config_load_file(src->plan_path, &fresh, &err);
    p = fresh.policy;
  } else {
    log_msg(LOG_LVL_WARNING, NULL, "SIGHUP: no policy file to reload (the built-in plan)");
    return;
  }
  if (rc != CANARY_OK) {
    char msg[sizeof err.file + sizeof err.message + 32];
    config_error_format(&err, msg, sizeof msg);
    log_msg(LOG_LVL_ERR, NULL, "SIGHUP: policy not reloaded, the one in force stays: %s", msg);
    return;
  }
  src->plan->policy = p;
  if (p.enabled)
    log_msg(LOG_LVL_NOTICE, NULL, "policy reloaded from %s: %d actors, %d roles", from, p.n_actors,
            p.n_roles);
  else
    log_msg(LOG_LVL_WARNING, NULL,
            "policy reloaded from %s: none: every command, kill switch and approval is accepted "
            "from anyone, its actor unverified",
            from);
}

static const char usage[] =
    "usage: canaryd [run] [OPTIONS]      run the worker (the default)\n"
    "       canaryd migrate [--pg CONNINFO]\n"
    "       canaryd notify [OPTIONS]     deliver canary.notifications (see below)\n"
    "\n"
    "Options (environment variable in brackets):\n"
    "  --kafka BROKERS     Kafka bootstrap servers [CANARY_KAFKA]\n"
    "  --topic-prefix P    prefix of every topic name, e.g. staging. [CANARY_TOPIC_PREFIX]\n"
    "  --pg CONNINFO       PostgreSQL connection string [CANARY_PG]\n"
    "  --plan FILE         rollout plan (YAML or the seed's flag JSON) [CANARY_PLAN];\n"
    "                      default: the built-in plan (config/rollout.yaml)\n"
    "  --policy FILE       who may do what: roles, actors and their public keys; replaces\n"
    "                      the plan's policy: section [CANARY_POLICY]. With neither, every\n"
    "                      command is accepted from anyone, unverified (a warning at start)\n"
    "  --group NAME        consumer group (canaryd); workers of one group share the shards\n"
    "  --worker-id ID      this worker's name (hostname-pid)\n"
    "  --clock wall|event  wall (default): deadlines also fire from the wall clock while the\n"
    "                      input is idle; event: only event time moves the clock (replays)\n"
    "  --tick-ms N         idle deadline check interval (500)\n"
    "  --hold-ms N         longest wait for a partition with nothing known to come (1000)\n"
    "  --grace-ms N        how long a caught-up partition is waited for after a message\n"
    "                      arrives on another, so simultaneous events keep their order (100)\n"
    "  --kafka-config FILE librdkafka properties for every Kafka client (consumer, producer,\n"
    "                      admin): security.protocol, sasl.*, ssl.*; name=value lines, as\n"
    "                      Kafka's client.properties [CANARY_KAFKA_CONFIG]\n"
    "  --max-skew-ms N     dead-letter an event dated more than N ms ahead of its message's\n"
    "                      Kafka timestamp: a clock or unit error (3600000 = 1 h; 0 = off)\n"
    "  --batch N           messages per poll and commit (5000)\n"
    "  --no-relay          do not publish the outbox (another process does)\n"
    "  --partitions N      create missing topics with N partitions for the inputs and\n"
    "                      decisions (3); existing topics are left as they are\n"
    "  --no-create-topics  do not create missing topics\n"
    "  --kafka-conf K=V    extra librdkafka consumer property (repeatable), e.g.\n"
    "                      session.timeout.ms=6000 for a faster hand-over between workers\n"
    "  --http-listen ADDR:PORT\n"
    "                      serve /metrics (Prometheus), /healthz and /readyz on it, e.g.\n"
    "                      127.0.0.1:9464, [::1]:9464 or :9464 (every IPv4 address); off\n"
    "                      unless given: no port is opened that nobody asked for, and\n"
    "                      workers sharing a host each need their own [CANARY_HTTP_LISTEN]\n"
    "  --log-json          log lines as JSON\n"
    "  -v, --verbose       debug logging\n"
    "  -h, --help          this help\n"
    "\n"
    "\n"
    "canaryd notify: a consumer group of its own (--group, default canaryd-notify) reads\n"
    "canary.notifications and delivers each notification once: #releases to Slack, on-call to\n"
    "PagerDuty (trigger; the all-clear resolves), the status page to Statuspage (create; the\n"
    "all-clear resolves), the executive briefing by e-mail. Every attempt is recorded in\n"
    "PostgreSQL before it is sent; what is refused, keeps failing or was cut short by a crash\n"
    "goes to canary.dlq. Uses --kafka, --pg, --topic-prefix, --kafka-config, --group,\n"
    "--kafka-conf (its consumer: session.timeout.ms=6000 for a faster take-over) and:\n"
    "  --max-attempts N    attempts per delivery before it is dead-lettered (8)\n"
    "  --backoff-ms N      wait after the first failure, doubling (500) ...\n"
    "  --backoff-max-ms N  ... up to (30000); a longer Retry-After is obeyed up to 300000\n"
    "  --timeout-ms N      each request as a whole (10000)\n"
    "  --retention-hours N delivered (and skipped) notifications are forgotten N hours after\n"
    "                      (360: longer than Kafka keeps canary.notifications by default, so a\n"
    "                      redelivery is still recognised); 0 keeps them for ever\n"
    "  --sink LIST         only these sinks (slack,pagerduty,statuspage,smtp; all): a relay\n"
    "                      retries in order, so a sink that is down holds up the ones behind\n"
    "                      it; one relay per sink, each with its own --group, keeps a Slack\n"
    "                      outage from delaying a page\n"
    "Endpoints and secrets, from the environment; NAME_FILE instead of NAME reads the value\n"
    "from a file (secrets mounted as files). A sink left unset dead-letters its notifications.\n"
    "  CANARY_SLACK_WEBHOOK_URL      Slack incoming webhook (#releases)\n"
    "  CANARY_PAGERDUTY_ROUTING_KEY  PagerDuty integration key (on-call)\n"
    "  CANARY_PAGERDUTY_URL          Events API v2 (https://events.pagerduty.com/v2/enqueue)\n"
    "  CANARY_STATUSPAGE_API_KEY     Statuspage API key (status page)\n"
    "  CANARY_STATUSPAGE_PAGE_ID     Statuspage page id\n"
    "  CANARY_STATUSPAGE_URL         Statuspage API (https://api.statuspage.io)\n"
    "  CANARY_SMTP_URL               smtp://host:587 or smtps://host:465 (executive briefing)\n"
    "  CANARY_SMTP_FROM              sender address\n"
    "  CANARY_SMTP_TO                recipients, comma-separated (default: the plan's\n"
    "                                executive_email)\n"
    "  CANARY_SMTP_USER, CANARY_SMTP_PASSWORD  SMTP login (STARTTLS when offered)\n"
    "\n"
    "SIGTERM/SIGINT: finish the batch, commit, publish, leave the group, exit 0.\n"
    "SIGHUP: reload the policy (CANARY_POLICY, or the plan file's policy:) between two\n"
    "batches; one that does not load is logged and the policy in force stays. The rest of\n"
    "the plan needs a restart. (canaryd notify ignores SIGHUP.)\n"
    "Exit status: 0 clean stop, 1 could not start (configuration, schemas, migrations),\n"
    "2 usage error.\n";

static const char *env_or(const char *v, const char *name) { return v ? v : getenv(name); }

static int migrate(const char *conninfo) {
  store_t *st;
  int applied = 0;
  if (!conninfo) {
    fprintf(stderr, "canaryd migrate: --pg or CANARY_PG is required\n");
    return EXIT_USAGE;
  }
  if (store_open(conninfo, 30000, log_callback, NULL, &st) != CANARY_OK)
    return EXIT_UNAVAILABLE;
  int rc = store_migrate(st, &applied);
  if (rc != CANARY_OK)
    fprintf(stderr, "canaryd migrate: %s\n", store_last_error(st));
  else
    printf("migrations: %d applied\n", applied);
  store_close(st);
  return rc == CANARY_OK ? EXIT_OK : EXIT_BAD_INPUT;
}

static void on_signals(void) {
  struct sigaction sa = {.sa_handler = on_signal};
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  signal(SIGHUP, SIG_IGN); /* nothing to reload: not a reason to die */
}

/* canaryd notify: the relay to people (src/app/notify.c). */
static int notify(struct notify_config *ncfg, const char *kafka, const char *pg, const char *group,
                  const char *worker_id, const char *const *kafka_conf) {
  if (ncfg->max_attempts <= 0 || ncfg->backoff_ms <= 0 || ncfg->backoff_max_ms < ncfg->backoff_ms ||
      ncfg->ep.timeout_ms <= 0) {
    fprintf(stderr, "canaryd notify: --max-attempts, --backoff-ms and --timeout-ms must be "
                    "positive, --backoff-max-ms at least --backoff-ms\n");
    return EXIT_USAGE;
  }
  char why[600];
  if (!notify_endpoints_from_env(&ncfg->ep, why, sizeof why)) {
    fprintf(stderr, "canaryd notify: %s\n", why);
    return EXIT_USAGE;
  }
  ncfg->brokers = kafka;
  ncfg->conninfo = pg;
  if (group && strcmp(group, "canaryd")) /* the worker's default is not the relay's */
    ncfg->group = group;
  ncfg->client_id = worker_id;
  ncfg->kafka_conf = kafka_conf;
  on_signals();
  log_msg(LOG_LVL_NOTICE, NULL, "canaryd %s notify starting", CANARY_VERSION);
  int rc = notify_run(ncfg, &running);
  notify_endpoints_free(&ncfg->ep);
  return rc == 0 ? EXIT_OK : EXIT_BAD_INPUT;
}

/*
 * glibc gives freed memory back to the kernel once 128 KiB sit free at the top of a heap, and
 * serves blocks over a (moving) threshold with mmap. librdkafka frees each fetch response once
 * its last message is destroyed and the worker's batches come and go, so with the defaults the
 * same pages were returned and faulted in again and again: zeroing fresh pages was 19% of
 * canaryd's CPU under a full-rate ingest (bench/ingest, perf). Keeping up to 256 MiB free, and
 * mmap only for blocks over 32 MiB, holds on to no more than the working set already used.
 */
static void malloc_keep_pages(void) {
#ifdef __GLIBC__
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
#endif
}

int main(int argc, char **argv) {
  malloc_keep_pages();
  static const struct option opts[] = {{"kafka", required_argument, NULL, 'k'},
                                       {"pg", required_argument, NULL, 'p'},
                                       {"plan", required_argument, NULL, 'P'},
                                       {"group", required_argument, NULL, 'g'},
                                       {"worker-id", required_argument, NULL, 'w'},
                                       {"clock", required_argument, NULL, 'c'},
                                       {"tick-ms", required_argument, NULL, 't'},
                                       {"hold-ms", required_argument, NULL, 'H'},
                                       {"no-relay", no_argument, NULL, 'R'},
                                       {"log-json", no_argument, NULL, 'j'},
                                       {"verbose", no_argument, NULL, 'v'},
                                       {"help", no_argument, NULL, 'h'},
                                       {"version", no_argument, NULL, 'V'},
                                       {"kafka-conf", required_argument, NULL, 'K'},
                                       {"batch", required_argument, NULL, 'B'},
                                       {"topic-prefix", required_argument, NULL, 'T'},
                                       {"grace-ms", required_argument, NULL, 'G'},
                                       {"max-skew-ms", required_argument, NULL, 'S'},
                                       {"kafka-config", required_argument, NULL, 'F'},
                                       {"partitions", required_argument, NULL, 'N'},
                                       {"no-create-topics", no_argument, NULL, 'C'},
                                       {"max-attempts", required_argument, NULL, 'M'},
                                       {"backoff-ms", required_argument, NULL, 'b'},
                                       {"backoff-max-ms", required_argument, NULL, 'X'},
                                       {"timeout-ms", required_argument, NULL, 'O'},
                                       {"retention-hours", required_argument, NULL, 'r'},
                                       {"sink", required_argument, NULL, 's'},
                                       {"http-listen", required_argument, NULL, 'L'},
                                       {"policy", required_argument, NULL, 'Y'},
                                       {NULL, 0, NULL, 0}};
  struct notify_config ncfg;
  notify_config_defaults(&ncfg);
  static const char *kconf[2 * 32 + 1];
  int n_kconf = 0;
  struct worker_config cfg;
  worker_config_defaults(&cfg);
  const char *kafka = NULL, *pg = NULL, *plan_path = NULL, *topic_prefix = NULL,
             *kafka_config = NULL;
  bool json = false;
  int level = LOG_LVL_INFO, c;
  char worker_id[128];
  char host[64] = "canaryd";
  gethostname(host, sizeof host - 1);
  snprintf(worker_id, sizeof worker_id, "%s-%d", host, (int)getpid());
  cfg.worker_id = worker_id;

  bool do_migrate = false, do_notify = false;
  if (argc > 1 && argv[1][0] != '-') {
    if (!strcmp(argv[1], "migrate"))
      do_migrate = true;
    else if (!strcmp(argv[1], "notify"))
      do_notify = true;
    else if (strcmp(argv[1], "run")) {
      fprintf(stderr, "canaryd: unknown command '%s'\n\n%s", argv[1], usage);
      return EXIT_USAGE;
    }
    argv++;
    argc--;
  }
  while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
    switch (c) {
    case 'k':
      kafka = optarg;
      break;
    case 'p':
      pg = optarg;
      break;
    case 'P':
      plan_path = optarg;
      break;
    case 'Y':
      setenv("CANARY_POLICY", optarg, 1);
      break; /* read by cli_load_plan */
    case 'g':
      cfg.group = optarg;
      break;
    case 'w':
      cfg.worker_id = optarg;
      break;
    case 'c':
      if (strcmp(optarg, "wall") && strcmp(optarg, "event")) {
        fprintf(stderr, "canaryd: --clock must be wall or event\n");
        return EXIT_USAGE;
      }
      cfg.wall_clock = !strcmp(optarg, "wall");
      break;
    case 't':
      cfg.tick_ms = atoi(optarg);
      break;
    case 'H':
      cfg.hold_ms = atoi(optarg);
      break;
    case 'B':
      cfg.batch_max = atoi(optarg);
      break;
    case 'T':
      topic_prefix = optarg;
      break;
    case 'G':
      cfg.grace_ms = atoi(optarg);
      break;
    case 'S':
      cfg.max_skew_ms = atoll(optarg);
      break;
    case 'F':
      kafka_config = optarg;
      break;
    case 'N':
      cfg.create_topics = atoi(optarg);
      break;
    case 'C':
      cfg.create_topics = 0;
      break;
    case 'R':
      cfg.relay = false;
      break;
    case 'L':
      cfg.http_listen = optarg;
      break;
    case 'M':
      ncfg.max_attempts = atoi(optarg);
      break;
    case 'b':
      ncfg.backoff_ms = atoi(optarg);
      break;
    case 'X':
      ncfg.backoff_max_ms = atoi(optarg);
      break;
    case 'O':
      ncfg.ep.timeout_ms = atol(optarg);
      break;
    case 'r': {
      char *end;
      long long h = strtoll(optarg, &end, 10);
      if (*end || h < 0) {
        fprintf(stderr, "canaryd notify: --retention-hours: a number of hours, not '%s'\n", optarg);
        return EXIT_USAGE;
      }
      ncfg.retention_s = (int64_t)h * 3600;
      break;
    }
    case 's': {
      char why[160];
      if (!notify_parse_sinks(optarg, &ncfg.sinks, why, sizeof why)) {
        fprintf(stderr, "canaryd notify: %s\n", why);
        return EXIT_USAGE;
      }
      break;
    }
    case 'K': {
      char *eq = strchr(optarg, '=');
      if (!eq || eq == optarg || n_kconf == 2 * 32) {
        fprintf(stderr, "canaryd: --kafka-conf wants NAME=VALUE (at most 32)\n");
        return EXIT_USAGE;
      }
      *eq = '\0';
      kconf[n_kconf++] = optarg;
      kconf[n_kconf++] = eq + 1;
      cfg.kafka_conf = kconf;
      break;
    }
    case 'j':
      json = true;
      break;
    case 'v':
      level = LOG_LVL_DEBUG;
      break;
    case 'V':
      puts("canaryd " CANARY_VERSION);
      return EXIT_OK;
    case 'h':
      fputs(usage, stdout);
      return EXIT_OK;
    default:
      fputs(usage, stderr);
      return EXIT_USAGE;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "canaryd: unexpected argument '%s'\n", argv[optind]);
    return EXIT_USAGE;
  }
  log_setup(level, json, "canaryd");
  pg = env_or(pg, "CANARY_PG");
  if (do_migrate)
    return migrate(pg);
  kafka = env_or(kafka, "CANARY_KAFKA");
  plan_path = env_or(plan_path, "CANARY_PLAN");
  bus_set_topic_prefix(env_or(topic_prefix, "CANARY_TOPIC_PREFIX"));
  kafka_config = env_or(kafka_config, "CANARY_KAFKA_CONFIG");
  if (kafka_config && *kafka_config) {
    char why[600];
    if (bus_client_conf_load(kafka_config, why, sizeof why) != CANARY_OK) {
      fprintf(stderr, "canaryd: --kafka-config: %s\n", why);
      return EXIT_USAGE;
    }
  }
  if (!kafka || !pg) {
    fprintf(stderr, "canaryd: %s is required (option or environment)\n",
            !kafka ? "--kafka/CANARY_KAFKA" : "--pg/CANARY_PG");
    return EXIT_USAGE;
  }
  if (do_notify)
    return notify(&ncfg, kafka, pg, cfg.group, cfg.worker_id, cfg.kafka_conf);
  if (cfg.tick_ms <= 0 || cfg.hold_ms < 0 || cfg.grace_ms < 0 || cfg.batch_max <= 0 ||
      cfg.max_skew_ms < 0) {
    fprintf(stderr, "canaryd: --tick-ms and --batch must be positive, --hold-ms, --grace-ms and "
                    "--max-skew-ms not negative\n");
    return EXIT_USAGE;
  }
  cfg.http_listen = env_or(cfg.http_listen, "CANARY_HTTP_LISTEN");
  if (cfg.http_listen && !*cfg.http_listen)
    cfg.http_listen = NULL;
  if (cfg.http_listen) {
    struct sockaddr_storage addr;
    socklen_t addr_len;
    char why[200];
    if (!worker_http_parse_listen(cfg.http_listen, &addr, &addr_len, why, sizeof why)) {
      fprintf(stderr, "canaryd: --http-listen: %s\n", why);
      return EXIT_USAGE;
    }
  }
  static struct plan plan;
  if (!cli_load_plan("canaryd", plan_path, &plan))
    return EXIT_BAD_INPUT;
  cfg.plan = &plan;
  cfg.brokers = kafka;
  cfg.conninfo = pg;

  struct sigaction sa = {.sa_handler = on_signal};
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  struct sigaction hup = {.sa_handler = on_hangup, .sa_flags = SA_RESTART};
  sigemptyset(&hup.sa_mask);
  sigaction(SIGHUP, &hup, NULL);
  static struct policy_source src;
  src = (struct policy_source){.plan = &plan, .plan_path = plan_path};
  cfg.reload = &reload;
  cfg.on_reload = reload_policy;
  cfg.reload_ctx = &src;
  log_msg(LOG_LVL_NOTICE, NULL, "canaryd %s starting: plan %s, %d stages", CANARY_VERSION,
          plan_path ? plan_path : "(built-in)", plan.n_stages);
  if (plan.policy.enabled)
    log_msg(LOG_LVL_NOTICE, NULL,
            "policy: %d actors, %d roles; commands, kill switches and "
            "approvals must be signed by an actor with the right",
            plan.policy.n_actors, plan.policy.n_roles);
  else
    log_msg(LOG_LVL_WARNING, NULL,
            "no policy (--policy, CANARY_POLICY or the plan's policy:): "
            "every command, kill switch and approval is accepted from anyone, its actor "
            "unverified; the audit (canaryctl audit) records them as unchecked");
  return worker_run(&cfg, &running) == 0 ? EXIT_OK : EXIT_BAD_INPUT;
}
