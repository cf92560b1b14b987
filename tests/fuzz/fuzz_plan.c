/* libFuzzer target: the plan loader (YAML plans and the seed's flag JSON, through libyaml). */
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static struct plan plan; /* large: not on the stack */
  struct config_error err;
  (void)config_load_buffer("fuzz.yaml", (const char *)data, size, &plan, &err);
  return 0;
}
