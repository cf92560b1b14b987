/* libFuzzer target: every Avro decoder (the inputs canaryd consumes, the outputs canaryctl reads). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "codec/avro_codec.h"
#include "core/effect.h"

static avro_codec_t *codec;

/* The codec lives for the whole run: freed at exit, before the leak check looks. */
static void done(void) { avro_codec_destroy(codec); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!codec) {
    if (avro_codec_new(&codec) != CANARY_OK)
      return 0;
    atexit(done);
  }
  char why[512];
  struct event ev;
  int64_t t;
  const char *id;
  size_t id_len;
  (void)avro_codec_event_head(codec, data, size, &t, &id, &id_len);
  if (avro_codec_decode_event(codec, data, size, &ev, why, sizeof why) == CANARY_OK) {
    /* what decodes must encode again, and decode to the same content digest (the decode
     * reuses the codec's arrays ev borrows: its digest first) */
    uint64_t digest = event_digest(&ev);
    struct avro_buf buf = AVRO_BUF_INIT;
    struct event back;
    if (avro_codec_encode_event(codec, &ev, &buf) != CANARY_OK ||
        avro_codec_decode_event(codec, buf.data, buf.len, &back, why, sizeof why) != CANARY_OK ||
        event_digest(&back) != digest)
      __builtin_trap();
    avro_buf_free(&buf);
  }
  static struct decision d;
  (void)avro_codec_decode_decision(codec, data, size, &d, why, sizeof why);
  struct avro_dlq dl;
  (void)avro_codec_decode_dlq(codec, data, size, &dl, why, sizeof why);
  return 0;
}
