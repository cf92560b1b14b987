/* libFuzzer target: the expression parser (plan files, plan power, canaryctl plan check). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/expr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *src = malloc(size + 1);
  if (!src)
    return 0;
  memcpy(src, data, size);
  src[size] = '\0';
  static struct expr e; /* large: not on the stack */
  struct expr_error err;
  if (expr_parse(src, &e, &err) == CANARY_OK) {
    char buf[1024];
    expr_format(&e, -1, buf, sizeof buf);
  }
  free(src);
  return 0;
}
