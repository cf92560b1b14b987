/* RFC 3339 timestamps: formatting, parsing, offsets, calendars and what is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "codec/rfc3339.h"

static const struct {
  int64_t ms;
  const char *text;
} formats[] = {
    {0, "1970-01-01T00:00:00.000Z"},
    {1, "1970-01-01T00:00:00.001Z"},
    {-1, "1969-12-31T23:59:59.999Z"},
    {86399999, "1970-01-01T23:59:59.999Z"},
    {951782400000, "2000-02-29T00:00:00.000Z"}, /* 2000 is a leap year (divisible by 400) */
    {1709164800000, "2024-02-29T00:00:00.000Z"},
    {1764135605123, "2025-11-26T05:40:05.123Z"},
    {1767225599999, "2025-12-31T23:59:59.999Z"},
    {1767225600000, "2026-01-01T00:00:00.000Z"},
    {4102444800000, "2100-01-01T00:00:00.000Z"},
    {253402300799999, "9999-12-31T23:59:59.999Z"},
};

static void test_format(void **state) {
  char buf[RFC3339_MAX];
  for (size_t k = 0; k < sizeof formats / sizeof formats[0]; k++) {
    assert_ptr_equal(rfc3339_format(formats[k].ms, buf), buf);
    assert_string_equal(buf, formats[k].text);
    int64_t back = -42;
    assert_true(rfc3339_parse(formats[k].text, &back));
    assert_int_equal(back, formats[k].ms);
  }
}

static const struct {
  const char *text;
  int64_t ms;
} parses[] = {
    {"1970-01-01T00:00:00Z", 0},
    {"1970-01-01t00:00:00z", 0}, /* RFC 3339 5.6: case-insensitive */
    {"1970-01-01 00:00:00Z", 0}, /* a space may stand for the T */
    {"1970-01-01T01:00:00+01:00", 0},
    {"1969-12-31T19:00:00-05:00", 0},
    {"1970-01-01T05:30:00+05:30", 0},
    {"1970-01-01T00:00:00-00:00", 0}, /* "unknown local offset" */
    {"2026-11-26T05:40:05Z", 1795671605000},
    {"2026-11-26T06:40:05.5+01:00", 1795671605500},
    {"2026-11-26T05:40:05.1Z", 1795671605100},
    {"2026-11-26T05:40:05.12Z", 1795671605120},
    {"2026-11-26T05:40:05.123Z", 1795671605123},
    {"2026-11-26T05:40:05.123999Z", 1795671605123}, /* beyond ms: truncated, never rounded up */
    {"2026-11-26T05:40:05.000000001Z", 1795671605000},
    {"2024-02-29T12:00:00Z", 1709208000000}, /* leap year */
    {"2000-02-29T00:00:00Z", 951782400000},
    {"2026-03-01T00:00:00+14:00", 1772272800000}, /* offsets move across the month end */
    {"2026-02-28T23:59:59-11:59", 1772366339000},
    {"2016-12-31T23:59:60Z", 1483228800000},         /* a leap second reads as the next second */
    {"9999-12-31T23:59:59.999Z", RFC3339_LATEST_MS}, /* the last instant it can write back */
    {"0000-01-01T00:00:00Z", RFC3339_EARLIEST_MS},
};

static void test_parse(void **state) {
  for (size_t k = 0; k < sizeof parses / sizeof parses[0]; k++) {
    int64_t ms = -42;
    if (!rfc3339_parse(parses[k].text, &ms))
      fail_msg("'%s' refused", parses[k].text);
    if (ms != parses[k].ms)
      fail_msg("'%s' = %lld, want %lld", parses[k].text, (long long)ms, (long long)parses[k].ms);
  }
}

static const char *const refused[] = {
    "",
    "2026-02-29T00:00:00Z", /* 2026 is not a leap year */
    "1900-02-29T00:00:00Z", /* divisible by 100 but not by 400 */
    "2026-04-31T00:00:00Z", /* April has 30 days */
    "2026-02-30T00:00:00Z",
    "2026-13-01T00:00:00Z",
    "2026-00-10T00:00:00Z",
    "2026-01-00T00:00:00Z",
    "2026-01-32T00:00:00Z",
    "2026-01-01T24:00:00Z",
    "2026-01-01T23:60:00Z",
    "2026-01-01T23:59:61Z",
    "2026-01-01T00:00:00", /* the offset is required */
    "2026-01-01",
    "2026-01-01T00:00Z",
    "2026-1-01T00:00:00Z",
    "26-01-01T00:00:00Z",
    "2026/01/01T00:00:00Z",
    "2026-01-01X00:00:00Z",
    "2026-01-01T00:00:00.Z", /* a fraction needs a digit */
    "2026-01-01T00:00:00,5Z",
    "2026-01-01T00:00:00+1:00",
    "2026-01-01T00:00:00+0100",
    "2026-01-01T00:00:00+24:00",
    "2026-01-01T00:00:00+01:60",
    "2026-01-01T00:00:00ZZ",
    "2026-01-01T00:00:00Z ",
    " 2026-01-01T00:00:00Z",
    "1764135605123",
    "9999-12-31T23:59:59.999-10:00", /* the year 10000 in UTC (fuzzing) */
    "0000-01-01T00:00:00+01:00",     /* before the year 0000 in UTC */
};

static void test_refused(void **state) {
  for (size_t k = 0; k < sizeof refused / sizeof refused[0]; k++) {
    int64_t ms = -42;
    if (rfc3339_parse(refused[k], &ms))
      fail_msg("'%s' accepted as %lld", refused[k], (long long)ms);
    assert_int_equal(ms, -42); /* untouched on failure */
  }
}

/* Every day of every month over four centuries, and times of day across each. */
static void test_round_trip(void **state) {
  char buf[RFC3339_MAX];
  int64_t day = 86400000;
  int64_t start = -2208988800000; /* 1900-01-01 */
  int n = 0;
  for (int64_t t = start; t < 7258118400000; t += day + 3723001) { /* to 2200, drifting times */
    int64_t back;
    rfc3339_format(t, buf);
    if (!rfc3339_parse(buf, &back) || back != t)
      fail_msg("%lld -> %s -> %lld", (long long)t, buf, (long long)back);
    n++;
  }
  assert_true(n > 100000);
  /* Months' lengths as the calendar has them: the day after the last is the 1st. */
  static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  for (int year = 1999; year <= 2401; year++) {
    for (int m = 1; m <= 12; m++) {
      bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
      int last = mdays[m - 1] + (m == 2 && leap);
      char s[40];
      int64_t a, b;
      snprintf(s, sizeof s, "%04d-%02d-%02dT00:00:00Z", year, m, last);
      assert_true(rfc3339_parse(s, &a));
      snprintf(s, sizeof s, "%04d-%02d-%02dT00:00:00Z", year, m, last + 1);
      assert_false(rfc3339_parse(s, &b));
      snprintf(s, sizeof s, "%04d-%02d-01T00:00:00Z", m == 12 ? year + 1 : year, m % 12 + 1);
      assert_true(rfc3339_parse(s, &b));
      assert_int_equal(b - a, day);
    }
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_format),
      cmocka_unit_test(test_parse),
      cmocka_unit_test(test_refused),
      cmocka_unit_test(test_round_trip),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
