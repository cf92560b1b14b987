/*
 * Sustained ingest of metric batch events: canaryd against a bare librdkafka consumer that
 * decodes nothing, on the same stream, in the same run.
 *
 *   bench_ingest produce N ROLLOUTS   produce the stream (rollouts started, then N metric events)
 *   bench_ingest bare N               read N messages of canary.metrics, decoding nothing
 *   bench_ingest watch N CONNINFO [CANARYD_PID[,PID...] KAFKA_PID POSTMASTER_PID]
 *                                     wait until canaryd has committed N metric events (offsets
 *                                     in PostgreSQL), from its first committed batch; with the
 *                                     pids, print the CPU each used meanwhile ("CPU" lines)
 *
 * Each prints one line "RESULT <name> <events> <seconds>". bench/ingest runs the three and
 * prints the rates and the ratio. Asserts nothing.
 */
#include <inttypes.h>
#include <dirent.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bus/bus.h"
#include "codec/avro_codec.h"
#include "core/event.h"
#include "stream.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* bench_stream's events, produced to their topics (keyed by rollout). */
struct send {
  avro_codec_t *codec;
  bus_producer_t *p;
  struct avro_buf buf;
};

static int send_one(void *ctx, const struct event *ev, long id) {
  struct send *s = ctx;
  return avro_codec_encode_event(s->codec, ev, &s->buf) ||
         bus_produce(s->p, avro_codec_topic_of(ev->type), -1, ev->rollout, strlen(ev->rollout),
                     s->buf.data, s->buf.len, id);
}

static int produce(long n, int rollouts) {
  struct send s = {.buf = AVRO_BUF_INIT};
  if (avro_codec_new(&s.codec) != CANARY_OK ||
      bus_producer_new(getenv("CANARY_KAFKA"), "bench-ingest", NULL, NULL, &s.p) != CANARY_OK)
    return 1;
  if (bench_stream(n, rollouts, 0, send_one, &s) || bus_producer_flush(s.p, 60000) != CANARY_OK)
    return 1;
  printf("RESULT produced %ld 0\n", n);
  bus_producer_destroy(s.p);
  avro_buf_free(&s.buf);
  avro_codec_destroy(s.codec);
  return 0;
}

/* ---- CPU accounting from /proc: where the cores went during the measured interval ------- */

/* utime + stime (clock ticks) and the parent of /proc/<path>/stat; -1 when it is gone. */
static long stat_ticks(const char *path, int *ppid, char *comm, size_t comm_len) {
  char buf[1024];
  FILE *f = fopen(path, "r");
  if (!f)
    return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char *open = strchr(buf, '('), *close = strrchr(buf, ')');
  if (!open || !close)
    return -1;
  if (comm) {
    size_t l =
        (size_t)(close - open - 1) < comm_len - 1 ? (size_t)(close - open - 1) : comm_len - 1;
    memcpy(comm, open + 1, l);
    comm[l] = 0;
  }
  char state;
  int pp;
  unsigned long ut, st;
  if (sscanf(close + 2, "%c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &state, &pp, &ut,
             &st) != 4)
    return -1;
  if (ppid)
    *ppid = pp;
  return (long)(ut + st);
}

#define CPU_MAX 64
struct cpu_sample {
  long machine, kafka, postgres;
  int n;
  char name[CPU_MAX][32];
  double cpu_s[CPU_MAX]; /* canaryd's threads, by name (librdkafka's are rdk:...) */
};

static long machine_busy(void) {
  unsigned long u, ni, sy, idle, iow, irq, sirq;
  FILE *f = fopen("/proc/stat", "r");
  if (!f ||
      fscanf(f, "cpu %lu %lu %lu %lu %lu %lu %lu", &u, &ni, &sy, &idle, &iow, &irq, &sirq) != 7) {
    if (f)
      fclose(f);
    return 0;
  }
  fclose(f);
  return (long)(u + ni + sy + irq + sirq);
}

/* Adds the threads of process pid to c, summed by thread name (the time on CPU from
 * schedstat, in nanoseconds rather than clock ticks of 10 ms). */
static void cpu_threads(struct cpu_sample *c, int pid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/task", pid);
  DIR *d = opendir(path);
  for (struct dirent *e; d && (e = readdir(d));) {
    char tpath[96], comm[32];
    if (atoi(e->d_name) <= 0)
      continue;
    snprintf(tpath, sizeof tpath, "/proc/%d/task/%s/stat", pid, e->d_name);
    if (stat_ticks(tpath, NULL, comm, sizeof comm) < 0)
      continue;
    snprintf(tpath, sizeof tpath, "/proc/%d/task/%s/schedstat", pid, e->d_name);
    FILE *f = fopen(tpath, "r");
    long long ns = -1;
    if (f) {
      if (fscanf(f, "%lld", &ns) != 1)
        ns = -1;
      fclose(f);
    }
    if (ns < 0)
      continue;
    int k = 0;
    while (k < c->n && strcmp(c->name[k], comm))
      k++;
    if (k == c->n && c->n < CPU_MAX)
      snprintf(c->name[c->n++], sizeof c->name[0], "%s", comm);
    if (k < c->n)
      c->cpu_s[k] += ns / 1e9;
  }
  if (d)
    closedir(d);
}

/* canaryds: their pids, separated by commas. */
static void cpu_sample(struct cpu_sample *c, const char *canaryds, int kafka, int postmaster) {
  char path[64];
  memset(c, 0, sizeof *c);
  c->machine = machine_busy();
  snprintf(path, sizeof path, "/proc/%d/stat", kafka);
  c->kafka = kafka > 0 ? stat_ticks(path, NULL, NULL, 0) : 0;
  DIR *d = opendir("/proc");
  for (struct dirent *e; d && (e = readdir(d));) { /* the server and its children */
    int pid = atoi(e->d_name), ppid = 0;
    if (pid <= 0 || postmaster <= 0)
      continue;
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    long t = stat_ticks(path, &ppid, NULL, 0);
    if (t > 0 && (pid == postmaster || ppid == postmaster))
      c->postgres += t;
  }
  if (d)
    closedir(d);
  for (const char *p = canaryds; p && *p;) {
    cpu_threads(c, atoi(p));
    p = strchr(p, ',');
    p = p ? p + 1 : NULL;
  }
}

/* "CPU <what> <seconds>" lines for the interval between two samples. */
static void cpu_print(const struct cpu_sample *a, const struct cpu_sample *b) {
  double hz = (double)sysconf(_SC_CLK_TCK);
  double total = 0;
  for (int k = 0; k < b->n; k++) {
    double before = 0;
    for (int j = 0; j < a->n; j++)
      if (!strcmp(a->name[j], b->name[k]))
        before = a->cpu_s[j];
    total += b->cpu_s[k] - before;
    if (b->cpu_s[k] - before >= 0.005)
      printf("CPU thread:%s %.2f\n", b->name[k], b->cpu_s[k] - before);
  }
  printf("CPU canaryd %.3f\nCPU kafka %.2f\nCPU postgres %.2f\nCPU machine %.2f\n", total,
         (b->kafka - a->kafka) / hz, (b->postgres - a->postgres) / hz,
         (b->machine - a->machine) / hz);
}

/* This process's CPU time, every thread. */
static double cpu_self_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
         (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* A consumer that only counts: the ceiling any consumer of this stream can reach here. */
static int bare(long n) {
  bus_reader_t *r;
  if (bus_reader_new(getenv("CANARY_KAFKA"), "canary.metrics", true, NULL, NULL, &r) != CANARY_OK)
    return 1;
  long seen = 0, m0 = 0;
  double t0 = 0, cpu0 = 0;
  while (seen < n) {
    struct bus_msg m;
    bool caught_up;
    if (bus_reader_read(r, 1000, &m, &caught_up) != CANARY_OK)
      continue;
    if (!seen) {
      t0 = now_s();
      cpu0 = cpu_self_s();
      m0 = machine_busy();
    }
    seen++;
  }
  /* its own CPU (librdkafka's threads included) and the machine's, broker included */
  printf("RESULT bare %ld %.3f %.3f %.2f\n", n, now_s() - t0, cpu_self_s() - cpu0,
         (machine_busy() - m0) / (double)sysconf(_SC_CLK_TCK));
  bus_reader_close(r);
  return 0;
}

static long query(PGconn *c, const char *sql) {
  PGresult *res = PQexec(c, sql);
  long v =
      PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) ? atol(PQgetvalue(res, 0, 0)) : -1;
  PQclear(res);
  return v;
}

/*
 * From the first committed batch to the last metric event committed, by the stored offsets,
 * with the CPU that canaryd (thread by thread), the broker and PostgreSQL used meanwhile.
 */
static int watch(long n, const char *conninfo, const char *canaryd, int kafka, int postmaster) {
  struct cpu_sample c0, c1;
  PGconn *c = PQconnectdb(conninfo);
  if (PQstatus(c) != CONNECTION_OK)
    return 1;
  const char *sql = "SELECT coalesce(sum(next_offset), 0) FROM offsets "
                    "WHERE topic = 'canary.metrics' AND next_offset > 0";
  double t0 = 0;
  long done = 0, done0 = 0;
  for (double until = now_s() + 600; now_s() < until;) {
    done = query(c, sql);
    if (done > 0 && t0 == 0) {
      t0 = now_s();
      done0 = done; /* what the first commit held took no measured time: not counted */
      cpu_sample(&c0, canaryd, kafka, postmaster);
    }
    if (done >= n)
      break;
    usleep(2000);
  }
  double t1 = now_s();
  cpu_sample(&c1, canaryd, kafka, postmaster);
  printf("RESULT canaryd %ld %.3f\n", done - done0, t1 - t0);
  if (t0 > 0)
    cpu_print(&c0, &c1);
  PQfinish(c);
  return done >= n ? 0 : 1;
}

int main(int argc, char **argv) {
  bus_set_topic_prefix(getenv("CANARY_TOPIC_PREFIX"));
  if (argc >= 4 && !strcmp(argv[1], "produce"))
    return produce(atol(argv[2]), atoi(argv[3]));
  if (argc >= 3 && !strcmp(argv[1], "bare"))
    return bare(atol(argv[2]));
  if (argc >= 4 && !strcmp(argv[1], "watch"))
    return watch(atol(argv[2]), argv[3], argc > 4 ? argv[4] : NULL, argc > 5 ? atoi(argv[5]) : 0,
                 argc > 6 ? atoi(argv[6]) : 0);
  fprintf(stderr, "usage: bench_ingest produce N ROLLOUTS | bare N | "
                  "watch N CONNINFO [CANARYD_PID[,PID...] KAFKA_PID POSTMASTER_PID]\n");
  return 2;
}
