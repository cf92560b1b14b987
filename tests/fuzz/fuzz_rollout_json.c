/* libFuzzer target: the rollout documents canaryd reads back from PostgreSQL. */
#include <stddef.h>
#include <stdint.h>

#include "codec/rollout_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static struct rollout r; /* large: not on the stack */
  char why[512];
  (void)rollout_json_read((const char *)data, size, &r, why, sizeof why);
  return 0;
}
