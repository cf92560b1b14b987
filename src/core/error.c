/* Messages for the error table in error.h. */
#include "core/error.h"

const char *canary_strerror(int err) {
  switch (err) {
#define XX(name, msg) \
  case CANARY_E##name: return msg;
    CANARY_ERRNO_MAP(XX)
#undef XX
  default: return "unknown error";
  }
}
