/* libFuzzer target: the JSON Lines event decoder (canaryctl simulate, emit --file, tests). */
#include <stddef.h>
#include <stdint.h>

#include "codec/event_json.h"

#include <stdlib.h>

static struct event_scratch *scratch;

/* The scratch lives for the whole run: freed at exit, before the leak check looks. */
static void done(void) { event_scratch_destroy(scratch); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!scratch) {
    if (!(scratch = event_scratch_new()))
      return 0;
    atexit(done);
  }
  struct event ev;
  char why[512];
  if (event_from_json((const char *)data, size, &ev, scratch, why, sizeof why) == CANARY_OK) {
    /* what decodes must encode and decode again to the same event's line, and the same
     * content digest: a re-serialised redelivery is no conflict (the decode below reuses the
     * scratch ev borrows from: its digest first) */
    uint64_t digest = event_digest(&ev);
    struct jbuf out;
    jbuf_init(&out);
    event_to_json(&ev, &out);
    struct event back;
    if (!out.oom &&
        (event_from_json(out.data, out.len, &back, scratch, why, sizeof why) != CANARY_OK ||
         event_digest(&back) != digest))
      __builtin_trap();
    jbuf_free(&out);
  }
  return 0;
}
