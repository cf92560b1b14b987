/* Config errors: the first one recorded with its position, and formatted for people. */
#include "config/config_error.h"

#include <stdio.h>

#include "core/error.h"

void config_error_format(const struct config_error *e, char *buf, size_t len) {
  if (!len)
    return;
  if (e->line > 0)
    snprintf(buf, len, "%s:%d:%d: %s", e->file, e->line, e->column, e->message);
  else if (e->file[0])
    snprintf(buf, len, "%s: %s", e->file, e->message);
  else
    snprintf(buf, len, "%s", e->message);
}

int config_error_vset(struct config_error *e, const char *file, int line, int col, int rc,
                      const char *fmt, va_list ap) {
  if (e->message[0])
    return rc; /* keep the first error: later ones are consequences */
  snprintf(e->file, sizeof e->file, "%s", file);
  e->line = line;
  e->column = col;
  return canary_vwhy(e->message, sizeof e->message, rc, fmt, ap);
}

int config_error_set(struct config_error *e, const char *file, int line, int col, int rc,
                     const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  config_error_vset(e, file, line, col, rc, fmt, ap);
  va_end(ap);
  return rc;
}
