/* libFuzzer target: the JSON parser every JSON input goes through. */
#include <stddef.h>
#include <stdint.h>

#include "codec/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct json_doc doc;
  json_doc_init(&doc);
  const struct json_value *root;
  struct json_error err;
  (void)json_parse(&doc, (const char *)data, size, &root, &err);
  json_doc_free(&doc);
  return 0;
}
