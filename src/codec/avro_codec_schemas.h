/* The Avro schemas compiled into the binary: generated at build time from schemas/ids.txt. */
#ifndef CANARY_AVRO_CODEC_SCHEMAS_H
#define CANARY_AVRO_CODEC_SCHEMAS_H

#include <stddef.h>
#include <stdint.h>

struct avro_codec_schema_src {
  int32_t id;        /* the Confluent schema id */
  const char *topic; /* "canary.deploy", ... */
  const char *file;  /* the .avsc it came from, for messages */
  const char *json;  /* the schema text, NUL-terminated */
  size_t json_len;
};

/* Defined by the generated source (cmake/embed_schemas.cmake), in the order of ids.txt. */
extern const struct avro_codec_schema_src avro_codec_schema_srcs[];
extern const size_t avro_codec_schema_src_count;

#endif
