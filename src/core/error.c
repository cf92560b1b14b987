/* Messages for the error table in error.h, and the why formatter. */
#include "core/error.h"

#include <stdio.h>

const char *canary_strerror(int err) {
  switch (err) {
#define XX(name, msg)                                                                              \
  case CANARY_E##name:                                                                             \
    return msg;
    CANARY_ERRNO_MAP(XX)
#undef XX
  default:
    return "unknown error";
  }
}

int canary_vwhy(char *why, size_t len, int rc, const char *fmt, va_list ap) {
  if (why && len)
    vsnprintf(why, len, fmt, ap);
  return rc;
}

int canary_why(char *why, size_t len, int rc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  canary_vwhy(why, len, rc, fmt, ap);
  va_end(ap);
  return rc;
}
