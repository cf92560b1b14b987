/*
 * Error codes shared by every layer: one X-macro table gives the enum and the messages; and the
 * one function that formats a message into a caller's `why` buffer.
 */
#ifndef CANARY_ERROR_H
#define CANARY_ERROR_H

#include <stdarg.h>
#include <stddef.h>

#define CANARY_MUSTCHECK __attribute__((warn_unused_result))

#define CANARY_ERRNO_MAP(XX)                                                                       \
  XX(OK, "ok")                                                                                     \
  XX(NOMEM, "out of memory")                                                                       \
  XX(INVALID, "invalid input")                                                                     \
  XX(DUPLICATE, "duplicate event id")                                                              \
  XX(NOTFOUND, "not found")                                                                        \
  XX(EXISTS, "already exists")                                                                     \
  XX(FULL, "capacity exceeded")                                                                    \
  XX(PARSE, "parse error")                                                                         \
  XX(IO, "I/O error")                                                                              \
  XX(UNAVAILABLE, "service unavailable")                                                           \
  XX(FENCED, "another worker owns this partition")                                                 \
  XX(TIMEOUT, "timed out")

enum canary_err {
#define XX(name, msg) CANARY_E##name,
  CANARY_ERRNO_MAP(XX)
#undef XX
};
#define CANARY_OK CANARY_EOK

/* Returns a static, human-readable message for err (never NULL). */
const char *canary_strerror(int err);

/*
 * Formats a message into why[0..len), cut to fit and always terminated; why may be NULL or len 0
 * (the caller wants no message: nothing is written). Returns rc, so that a failing function can
 * `return canary_why(why, len, CANARY_EINVALID, "stage %s: ...", name);`. Every layer's
 * "what was wrong" buffer is filled here.
 */
int canary_why(char *why, size_t len, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int canary_vwhy(char *why, size_t len, int rc, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

#endif
