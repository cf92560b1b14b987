/* One-line logs, text or JSON, with a timestamp, a level and context. */
#include "app/app_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include "codec/json.h"
#include "codec/rfc3339.h"

static int max_level = LOG_LVL_INFO;
static bool as_json;
static const char *component = "canaryd";

void log_setup(int level, bool json, const char *name) {
  max_level = level;
  as_json = json;
  component = name;
}

bool log_enabled(int level) { return level <= max_level; }

static void emit(int level, const char *ctx, const char *msg) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  char at[RFC3339_MAX];
  rfc3339_format((int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000, at);
  if (!as_json) {
    fprintf(stderr, "%s %s %s: %s%s%s\n", at, component, log_level_name(level), msg,
            ctx && ctx[0] ? " " : "", ctx && ctx[0] ? ctx : "");
    return;
  }
  struct jbuf b;
  jbuf_init(&b);
  jbuf_puts(&b, "{\"time\":");
  jbuf_string(&b, at);
  jbuf_puts(&b, ",\"level\":");
  jbuf_string(&b, log_level_name(level));
  jbuf_puts(&b, ",\"component\":");
  jbuf_string(&b, component);
  jbuf_puts(&b, ",\"msg\":");
  jbuf_string(&b, msg);
  if (ctx && ctx[0]) {
    jbuf_puts(&b, ",\"context\":");
    jbuf_string(&b, ctx);
  }
  jbuf_puts(&b, "}\n");
  fwrite(b.data, 1, b.len, stderr);
  jbuf_free(&b);
}

void log_msg(int level, const char *ctx, const char *fmt, ...) {
  if (!log_enabled(level))
    return;
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  emit(level, ctx, msg);
}

void log_callback(void *ctx, int level, const char *msg) {
  (void)ctx; /* the bus passes its hooks' context here: never read it as text */
  if (log_enabled(level))
    emit(level, NULL, msg);
}
