/* RFC 3339 timestamps <-> milliseconds since the epoch (UTC), without the C library's locale. */
#ifndef CANARY_RFC3339_H
#define CANARY_RFC3339_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RFC3339_MAX 32 /* "2026-11-26T05:40:05.123Z" and NUL fit */
/* The instants rfc3339_parse accepts: 0000-01-01T00:00:00.000Z .. 9999-12-31T23:59:59.999Z */
#define RFC3339_EARLIEST_MS (-62167219200000LL)
#define RFC3339_LATEST_MS 253402300799999LL

/* Write ms as "YYYY-MM-DDTHH:MM:SS.mmmZ" into buf (RFC3339_MAX bytes). Returns buf. */
char *rfc3339_format(int64_t ms, char *buf);

/*
 * Parse "YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)" (a space may stand for the T).
 * Returns true and sets *ms on success.
 */
bool rfc3339_parse(const char *s, int64_t *ms);

#endif
