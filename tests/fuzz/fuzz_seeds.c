/*
 * Seeds for fuzz_avro: reads contract events as JSON Lines on stdin and writes each one, encoded
 * as canaryd consumes it (Confluent framing, Avro), to DIR/seed-N. Lines that do not decode are
 * skipped. Usage: fuzz_seeds DIR < events.jsonl
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/avro_codec.h"
#include "codec/event_json.h"

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: fuzz_seeds DIR < events.jsonl\n");
    return 2;
  }
  avro_codec_t *codec;
  struct event_scratch *scratch = event_scratch_new();
  if (avro_codec_new(&codec) != CANARY_OK || !scratch)
    return 1;
  char *line = NULL, why[512], path[4096];
  size_t cap = 0;
  ssize_t len;
  long n = 0;
  struct avro_buf buf = AVRO_BUF_INIT;
  while ((len = getline(&line, &cap, stdin)) > 0) {
    struct event ev;
    if (line[0] == '#' ||
        event_from_json(line, (size_t)len, &ev, scratch, why, sizeof why) != CANARY_OK ||
        avro_codec_encode_event(codec, &ev, &buf) != CANARY_OK)
      continue;
    snprintf(path, sizeof path, "%s/seed-%ld", argv[1], n++);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf.data, 1, buf.len, f) != buf.len) {
      perror(path);
      return 1;
    }
    fclose(f);
  }
  fprintf(stderr, "fuzz_seeds: %ld Avro seeds in %s\n", n, argv[1]);
  free(line);
  avro_buf_free(&buf);
  event_scratch_destroy(scratch);
  avro_codec_destroy(codec);
  return 0;
}
