/* The JSON parser and writer: valid and invalid documents, numbers, escaping, limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <float.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/json.h"

/* Compact re-serialisation of a parsed value: shows what the parser understood. */
static void canon(const struct json_value *v, struct jbuf *out) {
  switch (v->type) {
  case JSON_NULL:
    jbuf_null(out);
    break;
  case JSON_BOOL:
    jbuf_bool(out, v->b);
    break;
  case JSON_NUMBER:
    if (v->is_int)
      jbuf_int(out, v->i);
    else
      jbuf_number(out, v->num);
    break;
  case JSON_STRING:
    jbuf_string_n(out, v->str, v->len);
    break;
  case JSON_ARRAY:
    jbuf_putc(out, '[');
    for (size_t k = 0; k < v->n_items; k++) {
      if (k)
        jbuf_putc(out, ',');
      canon(&v->items[k], out);
    }
    jbuf_putc(out, ']');
    break;
  case JSON_OBJECT:
    jbuf_putc(out, '{');
    for (size_t k = 0; k < v->n_members; k++) {
      if (k)
        jbuf_putc(out, ',');
      jbuf_string_n(out, v->members[k].key, v->members[k].key_len);
      jbuf_putc(out, ':');
      canon(&v->members[k].value, out);
    }
    jbuf_putc(out, '}');
    break;
  }
}

static const struct json_value *parse_ok(struct json_doc *doc, const char *text, size_t len) {
  const struct json_value *root = NULL;
  struct json_error err;
  int rc = json_parse(doc, text, len, &root, &err);
  if (rc != CANARY_OK)
    fail_msg("parse of '%s' failed at %d:%d: %s", text, err.line, err.column, err.message);
  return root;
}

/* ---- valid documents ------------------------------------------------------------------------ */

static const struct {
  const char *text, *canonical;
} valid_docs[] = {
    {"null", "null"},
    {"true", "true"},
    {" false ", "false"},
    {"0", "0"},
    {"-0", "0"}, /* is_int: the integer 0 */
    {"42", "42"},
    {"-17", "-17"},
    {"3.25", "3.25"},
    {"-0.5", "-0.5"},
    {"1e3", "1000"},
    {"1E+3", "1000"},
    {"2.5e-3", "0.0025"},
    {"0.1", "0.1"},
    {"9223372036854775807", "9223372036854775807"},
    {"-9223372036854775808", "-9223372036854775808"},
    {"9223372036854775808", "9.223372036854776e18"}, /* beyond int64: a double */
    {"\"\"", "\"\""},
    {"\"plain\"", "\"plain\""},
    {"\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t\"", "\"\\\" \\\\ / \\b \\f \\n \\r \\t\""},
    {"\"\\u0041\\u00e9\\u20AC\"", "\"A\xC3\xA9\xE2\x82\xAC\""},
    {"\"\\ud83d\\ude80\"", "\"\xF0\x9F\x9A\x80\""}, /* surrogate pair: U+1F680 */
    {"\"\xF0\x9F\x9A\x80 caf\xC3\xA9\"", "\"\xF0\x9F\x9A\x80 caf\xC3\xA9\""}, /* raw UTF-8 */
    {"\"a\\u0000b\"", "\"a\\u0000b\""},
    {"\"\x7F\"", "\"\x7F\""}, /* DEL is not a control character for JSON */
    {"[]", "[]"},
    {"{}", "{}"},
    {"[ 1 , [ 2 , [ ] ] , { } ]", "[1,[2,[]],{}]"},
    {"{\"a\":1,\"b\":[true,null],\"c\":{\"d\":\"e\"}}",
     "{\"a\":1,\"b\":[true,null],\"c\":{\"d\":\"e\"}}"},
    {"\r\n\t{ \"k\" :\n\"v\" }\r\n", "{\"k\":\"v\"}"},
    {"{\"a\":1,\"A\":2,\"a\\u0000\":3}", "{\"a\":1,\"A\":2,\"a\\u0000\":3}"}, /* distinct keys */
};

static void test_valid_docs(void **state) {
  struct json_doc doc;
  struct jbuf out = {0};
  json_doc_init(&doc);
  for (size_t k = 0; k < sizeof valid_docs / sizeof valid_docs[0]; k++) {
    json_doc_reset(&doc);
    jbuf_reset(&out);
    const struct json_value *v = parse_ok(&doc, valid_docs[k].text, strlen(valid_docs[k].text));
    canon(v, &out);
    if (strcmp(out.data, valid_docs[k].canonical) != 0)
      fail_msg("%s: got %s, want %s", valid_docs[k].text, out.data, valid_docs[k].canonical);
  }
  jbuf_free(&out);
  json_doc_free(&doc);
}

static void test_value_details(void **state) {
  struct json_doc doc;
  json_doc_init(&doc);
  const char *text =
      "{\n  \"n\": 12,\n  \"f\": -0,\n  \"s\": \"a\\u0000b\",\n  \"x\": [1.5, 1e2]\n}";
  const struct json_value *v = parse_ok(&doc, text, strlen(text));
  assert_int_equal(v->type, JSON_OBJECT);
  assert_int_equal(v->line, 1);
  assert_int_equal(v->column, 1);
  assert_int_equal(v->n_members, 4);
  assert_string_equal(v->members[0].key, "n");
  assert_string_equal(v->members[3].key, "x");

  const struct json_value *n = json_get(v, "n");
  assert_non_null(n);
  assert_true(n->is_int);
  assert_int_equal(n->i, 12);
  assert_true(n->num == 12.0);
  assert_int_equal(n->line, 2);
  assert_int_equal(n->column, 8);

  const struct json_value *f = json_get(v, "f");
  assert_true(f->is_int);
  assert_int_equal(f->i, 0);
  assert_true(signbit(f->num)); /* -0 keeps its sign as a double */

  const struct json_value *s = json_get(v, "s");
  assert_int_equal(s->type, JSON_STRING);
  assert_int_equal(s->len, 3);
  assert_memory_equal(s->str, "a\0b", 4);

  const struct json_value *x = json_get(v, "x");
  assert_int_equal(x->n_items, 2);
  assert_false(x->items[0].is_int);
  assert_true(x->items[0].num == 1.5);
  assert_false(x->items[1].is_int); /* an exponent makes it a double even when integral */
  assert_true(x->items[1].num == 100.0);
  assert_int_equal(x->items[1].line, 5);
  assert_int_equal(x->items[1].column, 14);

  assert_null(json_get(v, "missing"));
  assert_null(json_get(x, "n")); /* not an object */
  assert_null(json_get(NULL, "n"));
  assert_string_equal(json_type_name(JSON_OBJECT), "object");
  json_doc_free(&doc);
}

/* The text need not be NUL-terminated: the parser stops at len. */
static void test_length_bounded(void **state) {
  struct json_doc doc;
  json_doc_init(&doc);
  const char buf[] = "[123456789]xyz";
  const struct json_value *v = parse_ok(&doc, buf, 11);
  assert_int_equal(v->items[0].i, 123456789);
  char num[] = {'1', '.', '5'}; /* no terminator at all */
  v = parse_ok(&doc, num, sizeof num);
  assert_true(v->num == 1.5);
  json_doc_free(&doc);
}

/* ---- invalid documents ---------------------------------------------------------------------- */

static const struct {
  const char *text;
  size_t len; /* 0: strlen */
  int line, column;
  const char *message;
} invalid_docs[] = {
    {"", 0, 1, 1, "empty document"},
    {"  \n ", 0, 2, 2, "empty document"},
    {"[1,]", 0, 1, 3, "trailing comma in array"},
    {"{\"a\":1,}", 0, 1, 7, "trailing comma in object"},
    {"[1,\n  2,\n  ]", 0, 2, 4, "trailing comma in array"},
    {"01", 0, 1, 1, "leading zeros are not allowed"},
    {"[-012]", 0, 1, 2, "leading zeros are not allowed"},
    {"[1] x", 0, 1, 5, "trailing characters after the JSON value"},
    {"{\"a\":1}}", 0, 1, 8, "trailing characters"},
    {"[1]\0", 4, 1, 4, "trailing characters"},
    {"\"\\ud800\"", 0, 1, 2, "lone surrogate \\uD800"},
    {"\"\\udc00\"", 0, 1, 2, "lone surrogate \\uDC00"},
    {"\"x\\ud800\\u0041\"", 0, 1, 3, "lone surrogate"},
    {"\"\\ud800\\ud800\"", 0, 1, 2, "lone surrogate"},
    {"\"a\tb\"", 0, 1, 3, "control character U+0009"},
    {"[\n\"a\n\"]", 0, 2, 3, "control character U+000A"},
    {"\"\xC3\"", 0, 1, 2, "invalid UTF-8"},
    {"\"ab\xC0\xAF\"", 0, 1, 4, "invalid UTF-8"},       /* overlong '/' */
    {"\"\xED\xA0\x80\"", 0, 1, 2, "invalid UTF-8"},     /* a surrogate, UTF-8 encoded */
    {"\"\xF4\x90\x80\x80\"", 0, 1, 2, "invalid UTF-8"}, /* above U+10FFFF */
    {"\"\xE2\x82\"", 0, 1, 2, "invalid UTF-8"},         /* truncated */
    {"\"\xFF\"", 0, 1, 2, "invalid UTF-8"},
    {"{\"a\":1,\"b\":2,\"a\":3}", 0, 1, 14, "duplicate key 'a'"},
    {"{\"x\":{\"k\":1,\n \"k\":2}}", 0, 2, 2, "duplicate key 'k'"},
    {"[tru]", 0, 1, 2, "invalid literal: expected true"},
    {"nul", 0, 1, 1, "invalid literal: expected null"},
    {"falsy", 0, 1, 1, "invalid literal: expected false"},
    {"[1 2]", 0, 1, 4, "unexpected character '2': expected ',' or ']'"},
    {"{\"a\" 1}", 0, 1, 6, "expected ':' after the key"},
    {"{1:2}", 0, 1, 2, "expected a string key"},
    {"{\"a\":1 \"b\":2}", 0, 1, 8, "expected ',' or '}'"},
    {"\"abc", 0, 1, 1, "unterminated string"},
    {"\"abc\\", 0, 1, 1, "unterminated string"},
    {"[\"a\\x\"]", 0, 1, 4, "invalid escape '\\x'"},
    {"\"\\u12g4\"", 0, 1, 2, "invalid \\u escape"},
    {"\"\\u12\"", 0, 1, 2, "invalid \\u escape"},
    {"1.", 0, 1, 3, "expected digit after '.'"},
    {"1.e5", 0, 1, 3, "expected digit after '.'"},
    {"1e+", 0, 1, 4, "expected digit in exponent"},
    {"-", 0, 1, 2, "unexpected end of input: expected digit"},
    {"-a", 0, 1, 2, "unexpected character 'a': expected digit"},
    {".5", 0, 1, 1, "unexpected character '.'"},
    {"+1", 0, 1, 1, "unexpected character '+'"},
    {"[1e400]", 0, 1, 2, "number out of range"},
    {"-1e400", 0, 1, 1, "number out of range"},
    {"[1,2", 0, 1, 5, "unexpected end of input"},
    {"{\"a\":", 0, 1, 6, "unexpected end of input: expected a value"},
    {"\xEF\xBB\xBF{}", 0, 1, 1, "unexpected byte 0xEF"}, /* no byte order mark */
    {"NaN", 0, 1, 1, "unexpected character 'N'"},
    {"[Infinity]", 0, 1, 2, "unexpected character 'I'"},
    {"'a'", 0, 1, 1, "unexpected character '''"},
    {"{\"a\":1}\n{\"b\":2}", 0, 2, 1, "trailing characters"}, /* one document per parse */
};

static void test_invalid_docs(void **state) {
  struct json_doc doc;
  json_doc_init(&doc);
  for (size_t k = 0; k < sizeof invalid_docs / sizeof invalid_docs[0]; k++) {
    const char *text = invalid_docs[k].text;
    size_t len = invalid_docs[k].len ? invalid_docs[k].len : strlen(text);
    const struct json_value *root = NULL;
    struct json_error err;
    json_doc_reset(&doc);
    int rc = json_parse(&doc, text, len, &root, &err);
    if (rc != CANARY_EPARSE)
      fail_msg("case %zu '%s': rc %d, want a parse error", k, text, rc);
    if (err.line != invalid_docs[k].line || err.column != invalid_docs[k].column ||
        !strstr(err.message, invalid_docs[k].message))
      fail_msg("case %zu '%s': got %d:%d: %s; want %d:%d: ...%s...", k, text, err.line, err.column,
               err.message, invalid_docs[k].line, invalid_docs[k].column, invalid_docs[k].message);
  }
  /* err may be NULL */
  const struct json_value *root;
  assert_int_equal(json_parse(&doc, "[", 1, &root, NULL), CANARY_EPARSE);
  json_doc_free(&doc);
}

/* Objects of more than 8 members use a hash table for the check: same answers. */
static void test_duplicate_keys_large(void **state) {
  struct json_doc doc;
  struct jbuf b = {0};
  json_doc_init(&doc);
  jbuf_putc(&b, '{');
  for (int k = 0; k < 40; k++)
    jbuf_printf(&b, "%s\"key%d\":%d", k ? "," : "", k, k);
  jbuf_putc(&b, '}');
  const struct json_value *v = parse_ok(&doc, b.data, b.len);
  assert_int_equal(v->n_members, 40);
  assert_int_equal(json_get(v, "key39")->i, 39);

  /* Repeat key7 as the 31st member: the error points at that key. */
  jbuf_reset(&b);
  jbuf_putc(&b, '{');
  for (int k = 0; k < 40; k++)
    jbuf_printf(&b, "%s\"key%d\":%d", k ? "," : "", k == 30 ? 7 : k, k);
  jbuf_putc(&b, '}');
  const char *dup = strstr(strstr(b.data, "\"key7\"") + 1, "\"key7\"");
  struct json_error err;
  json_doc_reset(&doc);
  assert_int_equal(json_parse(&doc, b.data, b.len, &v, &err), CANARY_EPARSE);
  assert_string_equal(err.message, "duplicate key 'key7'");
  assert_int_equal(err.column, (int)(dup - b.data) + 1);

  /* The same key in sibling objects is fine. */
  json_doc_reset(&doc);
  v = parse_ok(&doc, "[{\"a\":1},{\"a\":2}]", 17);
  assert_int_equal(v->n_items, 2);
  jbuf_free(&b);
  json_doc_free(&doc);
}

static void nested(struct jbuf *b, int depth, char open, char close) {
  jbuf_reset(b);
  for (int k = 0; k < depth; k++) {
    if (open == '{')
      jbuf_puts(b, "{\"k\":");
    else
      jbuf_putc(b, open);
  }
  jbuf_putc(b, '1');
  for (int k = 0; k < depth; k++)
    jbuf_putc(b, close);
}

static void test_depth_limit(void **state) {
  struct json_doc doc;
  struct jbuf b = {0};
  const struct json_value *v;
  struct json_error err;
  json_doc_init(&doc);

  nested(&b, JSON_MAX_DEPTH, '[', ']');
  v = parse_ok(&doc, b.data, b.len);
  for (int k = 1; k < JSON_MAX_DEPTH; k++)
    v = &v->items[0];
  assert_true(v->items[0].is_int);

  nested(&b, JSON_MAX_DEPTH + 1, '[', ']');
  assert_int_equal(json_parse(&doc, b.data, b.len, &v, &err), CANARY_EPARSE);
  assert_string_equal(err.message, "nesting deeper than 64");
  assert_int_equal(err.column, JSON_MAX_DEPTH + 1);

  nested(&b, JSON_MAX_DEPTH, '{', '}');
  v = parse_ok(&doc, b.data, b.len);
  nested(&b, JSON_MAX_DEPTH + 1, '{', '}');
  assert_int_equal(json_parse(&doc, b.data, b.len, &v, &err), CANARY_EPARSE);
  assert_string_equal(err.message, "nesting deeper than 64");

  /* A deep attack is refused without recursing further. */
  jbuf_reset(&b);
  for (int k = 0; k < 100000; k++)
    jbuf_putc(&b, '[');
  assert_int_equal(json_parse(&doc, b.data, b.len, &v, &err), CANARY_EPARSE);
  jbuf_free(&b);
  json_doc_free(&doc);
}

/* ---- numbers -------------------------------------------------------------------------------- */

static const struct {
  double v;
  const char *text;
} numbers[] = {
    {0.0, "0"},
    {-0.0, "-0"},
    {1.0, "1"},
    {-1.5, "-1.5"},
    {100.0, "100"},
    {0.1, "0.1"},
    {0.2 + 0.1, "0.30000000000000004"},
    {1.0 / 3.0, "0.3333333333333333"},
    {2.0 / 3.0, "0.6666666666666666"},
    {1e-7, "1e-7"},
    {1.5e-10, "1.5e-10"},
    {123.456, "123.456"},
    {1e21, "1e21"},
    {1e22, "1e22"},
    {1e15, "1000000000000000"},
    {9007199254740991.0, "9007199254740991"}, /* 2^53 - 1 */
    {9007199254740992.0, "9007199254740992"}, /* 2^53: exact, shortest %g round trip */
    {-9007199254740992.0, "-9007199254740992"},
    {9007199254740994.0, "9007199254740994"},
    {18014398509481984.0, "18014398509481984"}, /* 2^54 */
    {1.2345678901234568e17, "1.2345678901234568e17"},
    {DBL_MAX, "1.7976931348623157e308"},
    {-DBL_MAX, "-1.7976931348623157e308"},
    {DBL_MIN, "2.2250738585072014e-308"},
    {5e-324, "4.94065645841247e-324"}, /* the smallest subnormal: %.15g round-trips */
    {0.5, "0.5"},
    {99.95, "99.95"},
    {1e300, "1e300"},
};

static void test_number_format(void **state) {
  struct json_doc doc;
  struct jbuf b = {0};
  json_doc_init(&doc);
  for (size_t k = 0; k < sizeof numbers / sizeof numbers[0]; k++) {
    jbuf_reset(&b);
    jbuf_number(&b, numbers[k].v);
    if (strcmp(b.data, numbers[k].text) != 0)
      fail_msg("jbuf_number(%.17g) = %s, want %s", numbers[k].v, b.data, numbers[k].text);
    json_doc_reset(&doc);
    const struct json_value *v = parse_ok(&doc, b.data, b.len);
    assert_int_equal(v->type, JSON_NUMBER);
    if (memcmp(&v->num, &numbers[k].v, sizeof(double)) != 0) /* bit for bit, incl. -0 */
      fail_msg("%s parsed back as %.17g, want %.17g", b.data, v->num, numbers[k].v);
  }
  jbuf_reset(&b);
  jbuf_number(&b, NAN);
  jbuf_putc(&b, ' ');
  jbuf_number(&b, INFINITY);
  jbuf_putc(&b, ' ');
  jbuf_number(&b, -INFINITY);
  assert_string_equal(b.data, "null null null");
  jbuf_free(&b);
  json_doc_free(&doc);
}

/* Any finite double survives jbuf_number -> json_parse bit for bit. */
static void test_number_round_trip_random(void **state) {
  struct json_doc doc;
  struct jbuf b = {0};
  json_doc_init(&doc);
  uint64_t x = 0x9E3779B97F4A7C15u;
  int checked = 0;
  for (int k = 0; k < 20000; k++) {
    x ^= x << 13; /* xorshift64: deterministic */
    x ^= x >> 7;
    x ^= x << 17;
    double d;
    if (k % 2) {
      memcpy(&d, &x, sizeof d); /* any bit pattern */
      if (!isfinite(d))
        continue;
    } else {
      d = (double)(int64_t)(x >> 20) / 1000.0; /* "ordinary" decimal-ish values */
    }
    jbuf_reset(&b);
    jbuf_number(&b, d);
    json_doc_reset(&doc);
    const struct json_value *v = parse_ok(&doc, b.data, b.len);
    if (memcmp(&v->num, &d, sizeof d) != 0)
      fail_msg("%.17g written as %s parsed back as %.17g", d, b.data, v->num);
    assert_true(b.len <= 24);
    checked++;
  }
  assert_true(checked > 15000);
  jbuf_free(&b);
  json_doc_free(&doc);
}

static void test_int_writer(void **state) {
  struct jbuf b = {0};
  jbuf_int(&b, INT64_MIN);
  jbuf_putc(&b, ',');
  jbuf_int(&b, INT64_MAX);
  jbuf_putc(&b, ',');
  jbuf_int(&b, 0);
  jbuf_putc(&b, ',');
  jbuf_bool(&b, true);
  jbuf_putc(&b, ',');
  jbuf_null(&b);
  assert_string_equal(b.data, "-9223372036854775808,9223372036854775807,0,true,null");
  jbuf_free(&b);
}

/* A process may switch LC_NUMERIC to a comma locale: JSON numbers must not follow it. */
static void test_numbers_ignore_locale(void **state) {
  const char *names[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "fr_FR.utf8", "nl_NL.UTF-8"};
  bool comma = false;
  for (size_t k = 0; k < sizeof names / sizeof names[0] && !comma; k++)
    comma = setlocale(LC_NUMERIC, names[k]) && localeconv()->decimal_point[0] == ',';
  if (!comma) {
    setlocale(LC_NUMERIC, "C");
    /* scripts/install-deps generates de_DE.UTF-8; a test that skipped here would prove nothing */
    fail_msg("no decimal-comma locale installed (run scripts/install-deps)");
  }
  struct jbuf b = {0};
  struct json_doc doc;
  json_doc_init(&doc);
  jbuf_number(&b, 0.25);
  assert_string_equal(b.data, "0.25");
  const struct json_value *v = parse_ok(&doc, "[2.5]", 5);
  assert_true(v->items[0].num == 2.5);
  setlocale(LC_NUMERIC, "C");
  jbuf_free(&b);
  json_doc_free(&doc);
}

/* ---- strings -------------------------------------------------------------------------------- */

static void test_string_escaping(void **state) {
  static const struct {
    const char *in;
    size_t len;
    const char *out;
  } cases[] = {
      {"plain", 5, "\"plain\""},
      {"say \"hi\"", 8, "\"say \\\"hi\\\"\""},
      {"back\\slash", 10, "\"back\\\\slash\""},
      {"a/b", 3, "\"a/b\""},
      {"\b\f\n\r\t", 5, "\"\\b\\f\\n\\r\\t\""},
      {"\x01\x1f\x7f", 3, "\"\\u0001\\u001f\x7f\""},
      {"nul\0in", 6, "\"nul\\u0000in\""},
      {"caf\xC3\xA9 \xF0\x9F\x9A\x80", 10, "\"caf\xC3\xA9 \xF0\x9F\x9A\x80\""},
      {"bad\xFFutf8", 8, "\"bad\\ufffdutf8\""},
      {"cut\xE2\x82", 5, "\"cut\\ufffd\\ufffd\""},
      {"\xED\xA0\x80", 3, "\"\\ufffd\\ufffd\\ufffd\""},
      {"", 0, "\"\""},
  };
  struct jbuf b = {0};
  struct json_doc doc;
  json_doc_init(&doc);
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    jbuf_reset(&b);
    jbuf_string_n(&b, cases[k].in, cases[k].len);
    if (strcmp(b.data, cases[k].out) != 0)
      fail_msg("case %zu: got %s, want %s", k, b.data, cases[k].out);
    /* Whatever the writer writes, the parser reads. */
    json_doc_reset(&doc);
    const struct json_value *v = parse_ok(&doc, b.data, b.len);
    assert_int_equal(v->type, JSON_STRING);
  }
  /* Valid input comes back byte for byte, control characters included. */
  char all[128];
  for (int c = 0; c < 128; c++)
    all[c] = (char)c;
  jbuf_reset(&b);
  jbuf_string_n(&b, all, sizeof all);
  json_doc_reset(&doc);
  const struct json_value *v = parse_ok(&doc, b.data, b.len);
  assert_int_equal(v->len, sizeof all);
  assert_memory_equal(v->str, all, sizeof all);

  jbuf_reset(&b);
  jbuf_string(&b, NULL);
  assert_string_equal(b.data, "null");
  jbuf_free(&b);
  json_doc_free(&doc);
}

static void test_jbuf_growth(void **state) {
  struct jbuf b;
  jbuf_init(&b);
  for (int k = 0; k < 1000; k++)
    jbuf_printf(&b, "%04d,", k);
  assert_int_equal(b.len, 5000);
  assert_int_equal(strlen(b.data), 5000);
  assert_memory_equal(b.data + 4995, "0999,", 5);
  char big[3000];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  jbuf_reset(&b);
  jbuf_printf(&b, "<%s>", big); /* larger than the space left: formatted twice */
  assert_int_equal(b.len, sizeof big + 1);
  assert_int_equal(b.data[0], '<');
  assert_int_equal(b.data[b.len - 1], '>');
  jbuf_reset(&b);
  assert_int_equal(b.len, 0);
  assert_string_equal(b.data, "");
  assert_false(b.oom);
  jbuf_free(&b);
  assert_null(b.data);
}

static void test_excerpt(void **state) {
  char out[16];
  json_excerpt("short", 5, out, sizeof out);
  assert_string_equal(out, "short");
  json_excerpt("a\nb\0c", 5, out, sizeof out);
  assert_string_equal(out, "a?b?c");
  json_excerpt("0123456789abcdefghij", 20, out, sizeof out);
  assert_string_equal(out, "0123456789ab...");
  json_excerpt("\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9", 16, out,
               sizeof out);
  assert_string_equal(out, "\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9..."); /* whole chars */
}

/* ---- memory reuse --------------------------------------------------------------------------- */

static void test_doc_reuse(void **state) {
  struct json_doc doc;
  struct jbuf b = {0};
  json_doc_init(&doc);
  /* One big line makes the arena grow; after a reset it is a single chunk that fits it. */
  jbuf_putc(&b, '[');
  for (int k = 0; k < 5000; k++)
    jbuf_printf(&b, "%s{\"name\":\"metric_%d\",\"v\":%d.5}", k ? "," : "", k, k);
  jbuf_putc(&b, ']');
  const struct json_value *v = parse_ok(&doc, b.data, b.len);
  assert_int_equal(v->n_items, 5000);
  assert_string_equal(json_get(&v->items[4999], "name")->str, "metric_4999");
  size_t held = json_doc_memory(&doc);
  assert_true(held > b.len);
  json_doc_reset(&doc);
  const struct json_arena_chunk *kept = doc.chunks;
  for (int round = 0; round < 3; round++) {
    v = parse_ok(&doc, b.data, b.len);
    assert_int_equal(v->n_items, 5000);
    assert_ptr_equal(doc.chunks, kept); /* one chunk, no new memory for a line as long */
    assert_true(json_doc_memory(&doc) <= held);
    json_doc_reset(&doc);
  }
  /* Values of two parses without a reset in between both stay valid. */
  const struct json_value *a = parse_ok(&doc, "{\"x\":\"first\"}", 13);
  const struct json_value *c = parse_ok(&doc, "{\"x\":\"second\"}", 14);
  assert_string_equal(json_get(a, "x")->str, "first");
  assert_string_equal(json_get(c, "x")->str, "second");
  jbuf_free(&b);
  json_doc_free(&doc);
  json_doc_free(&doc); /* idempotent */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_valid_docs),
      cmocka_unit_test(test_value_details),
      cmocka_unit_test(test_length_bounded),
      cmocka_unit_test(test_invalid_docs),
      cmocka_unit_test(test_duplicate_keys_large),
      cmocka_unit_test(test_depth_limit),
      cmocka_unit_test(test_number_format),
      cmocka_unit_test(test_number_round_trip_random),
      cmocka_unit_test(test_int_writer),
      cmocka_unit_test(test_numbers_ignore_locale),
      cmocka_unit_test(test_string_escaping),
      cmocka_unit_test(test_jbuf_growth),
      cmocka_unit_test(test_excerpt),
      cmocka_unit_test(test_doc_reuse),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
