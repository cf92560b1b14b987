/* Names of the log levels, from the table in log_level.h. */
#include "core/log_level.h"

const char *log_level_name(int level) {
  switch (level) {
#define XX(name, value, text)                                                                      \
  case LOG_LVL_##name:                                                                             \
    return text;
    LOG_LEVEL_MAP(XX)
#undef XX
  default:
    return "debug";
  }
}
