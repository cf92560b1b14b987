/* Error codes shared by every layer: one X-macro table gives the enum and the messages. */
#ifndef CANARY_ERROR_H
#define CANARY_ERROR_H

#define CANARY_MUSTCHECK __attribute__((warn_unused_result))

#define CANARY_ERRNO_MAP(XX)                                          \
  XX(OK, "ok")                                                        \
  XX(NOMEM, "out of memory")                                          \
  XX(INVALID, "invalid input")                                        \
  XX(DUPLICATE, "duplicate event id")                                 \
  XX(NOTFOUND, "not found")                                           \
  XX(EXISTS, "already exists")                                        \
  XX(FULL, "capacity exceeded")                                       \
  XX(PARSE, "parse error")                                            \
  XX(IO, "I/O error")                                                 \
  XX(UNAVAILABLE, "service unavailable")                              \
  XX(FENCED, "another worker owns this partition")                    \
  XX(TIMEOUT, "timed out")

enum canary_err {
#define XX(name, msg) CANARY_E##name,
  CANARY_ERRNO_MAP(XX)
#undef XX
};
#define CANARY_OK CANARY_EOK

/* Returns a static, human-readable message for err (never NULL). */
const char *canary_strerror(int err);

#endif
