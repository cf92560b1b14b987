/* JSON written: a growing buffer (jbuf_*) that always emits valid UTF-8, numbers locale-free. */
#include "codec/json.h"
#include "codec/json_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the writer ----------------------------------------------------------------------------- */

void jbuf_init(struct jbuf *b) { memset(b, 0, sizeof *b); }

void jbuf_reset(struct jbuf *b) {
  b->len = 0;
  b->oom = false;
  if (b->data)
    b->data[0] = '\0';
}

void jbuf_free(struct jbuf *b) {
  free(b->data);
  memset(b, 0, sizeof *b);
}

/* Room for extra more bytes and the NUL; false (and oom) when memory is exhausted. */
static bool reserve(struct jbuf *b, size_t extra) {
  if (b->oom)
    return false;
  if (b->len + extra + 1 <= b->cap)
    return true;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->len + extra + 1)
    cap *= 2;
  char *d = realloc(b->data, cap);
  if (!d) {
    b->oom = true;
    return false;
  }
  b->data = d;
  b->cap = cap;
  return true;
}

void jbuf_write(struct jbuf *b, const void *data, size_t n) {
  if (!reserve(b, n))
    return;
  memcpy(b->data + b->len, data, n);
  b->len += n;
  b->data[b->len] = '\0';
}

void jbuf_putc(struct jbuf *b, char c) { jbuf_write(b, &c, 1); }

void jbuf_puts(struct jbuf *b, const char *s) { jbuf_write(b, s, strlen(s)); }

void jbuf_vprintf(struct jbuf *b, const char *fmt, va_list ap) {
  va_list again;
  va_copy(again, ap);
  if (!reserve(b, 64)) {
    va_end(again);
    return;
  }
  int n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
  if (n >= 0 && (size_t)n >= b->cap - b->len) {
    if (reserve(b, (size_t)n))
      vsnprintf(b->data + b->len, b->cap - b->len, fmt, again);
    else
      n = -1;
  }
  va_end(again);
  if (n > 0 && !b->oom)
    b->len += (size_t)n;
  if (b->data)
    b->data[b->len] = '\0';
}

void jbuf_printf(struct jbuf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  jbuf_vprintf(b, fmt, ap);
  va_end(ap);
}

void jbuf_string_n(struct jbuf *b, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  const unsigned char *u = (const unsigned char *)s;
  jbuf_putc(b, '"');
  size_t run = 0; /* start of the bytes that need no escaping */
  for (size_t k = 0; k < n;) {
    unsigned char c = u[k];
    size_t step = 1;
    const char *esc = NULL;
    char ubuf[7];
    if (c == '"')
      esc = "\\\"";
    else if (c == '\\')
      esc = "\\\\";
    else if (c < 0x20) {
      switch (c) {
      case '\b':
        esc = "\\b";
        break;
      case '\f':
        esc = "\\f";
        break;
      case '\n':
        esc = "\\n";
        break;
      case '\r':
        esc = "\\r";
        break;
      case '\t':
        esc = "\\t";
        break;
      default:
        memcpy(ubuf, "\\u00", 4);
        ubuf[4] = hex[c >> 4];
        ubuf[5] = hex[c & 15];
        ubuf[6] = '\0';
        esc = ubuf;
      }
    } else if (c >= 0x80) {
      step = json_utf8_seq_len(u + k, n - k);
      if (!step) {
        esc = "\\ufffd";
        step = 1;
      }
    }
    if (esc) {
      jbuf_write(b, s + run, k - run);
      jbuf_puts(b, esc);
      run = k + step;
    }
    k += step;
  }
  jbuf_write(b, s + run, n - run);
  jbuf_putc(b, '"');
}

void jbuf_string(struct jbuf *b, const char *s) {
  if (!s)
    jbuf_null(b);
  else
    jbuf_string_n(b, s, strlen(s));
}

/* "1e+21" -> "1e21", "1e-07" -> "1e-7": the same number, fewer bytes. */
static void trim_exponent(char *s) {
  char *e = strchr(s, 'e');
  if (!e)
    return;
  char *r = e + 1, *w = e + 1;
  if (*r == '+')
    r++;
  else if (*r == '-')
    *w++ = *r++;
  while (*r == '0' && r[1])
    r++;
  memmove(w, r, strlen(r) + 1);
}

void jbuf_number(struct jbuf *b, double v) {
  if (!isfinite(v)) {
    jbuf_null(b);
    return;
  }
  if (fabs(v) < 9007199254740992.0 && v == (double)(int64_t)v) {
    if (v == 0 && signbit(v))
      jbuf_puts(b, "-0");
    else
      jbuf_int(b, (int64_t)v);
    return;
  }
  char buf[40];
  locale_t old = json_c_locale_enter();
  for (int prec = 15; prec <= 17; prec++) {
    snprintf(buf, sizeof buf, "%.*g", prec, v);
    if (prec == 17 || strtod(buf, NULL) == v)
      break;
  }
  json_c_locale_leave(old);
  trim_exponent(buf);
  jbuf_puts(b, buf);
}

void jbuf_int(struct jbuf *b, int64_t v) {
  char buf[24];
  int n = snprintf(buf, sizeof buf, "%lld", (long long)v);
  jbuf_write(b, buf, (size_t)n);
}

void jbuf_bool(struct jbuf *b, bool v) { jbuf_puts(b, v ? "true" : "false"); }

void jbuf_null(struct jbuf *b) { jbuf_puts(b, "null"); }
