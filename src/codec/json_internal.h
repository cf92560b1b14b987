/* What the JSON reader (json.c, which defines these) and writer (json_write.c) share; private. */
#ifndef CANARY_CODEC_JSON_INTERNAL_H
#define CANARY_CODEC_JSON_INTERNAL_H

#include <locale.h>
#include <stddef.h>

/* Switch the calling thread to the "C" locale for a number's conversion (see json.c); pass what
 * it returns to json_c_locale_leave. */
locale_t json_c_locale_enter(void);
void json_c_locale_leave(locale_t old);

/* Length of the well-formed UTF-8 sequence at s (n bytes available), 0 if ill-formed. */
size_t json_utf8_seq_len(const unsigned char *s, size_t n);

#endif
