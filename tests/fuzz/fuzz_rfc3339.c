/* libFuzzer target: RFC 3339 timestamps (event times, --until, canaryctl options). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec/rfc3339.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *s = malloc(size + 1);
  if (!s)
    return 0;
  memcpy(s, data, size);
  s[size] = '\0';
  int64_t ms;
  if (rfc3339_parse(s, &ms)) { /* what parses formats and parses back to the same instant */
    char out[RFC3339_MAX];
    int64_t back;
    if (!rfc3339_parse(rfc3339_format(ms, out), &back) || back != ms)
      __builtin_trap();
  }
  free(s);
  return 0;
}
