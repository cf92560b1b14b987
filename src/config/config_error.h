/*
 * Where and why a config load failed, and how a message gets there: the bottom of the config
 * layer, shared by the YAML reader (yamltree), the table walker (schema) and the entry points
 * (config), so that none of them calls up into another.
 */
#ifndef CANARY_CONFIG_ERROR_H
#define CANARY_CONFIG_ERROR_H

#include <stdarg.h>
#include <stddef.h>

/*
 * Where and why a load failed. line and column are 1-based and point at the offending node
 * (the key for an unknown key, the value for a bad value, the enclosing mapping for a missing
 * key). Both are 0 when there is no position (a file that cannot be read).
 */
struct config_error {
  char file[256];
  int line;
  int column;
  char message[256];
};

/* Writes "file:line:column: message" (or "file: message" without a position) into buf. */
void config_error_format(const struct config_error *e, char *buf, size_t len);

/*
 * Records file, position and the formatted message in *e, unless *e already holds a message:
 * the first error is kept, later ones are its consequences. Returns rc.
 */
int config_error_set(struct config_error *e, const char *file, int line, int col, int rc,
                     const char *fmt, ...) __attribute__((format(printf, 6, 7)));
int config_error_vset(struct config_error *e, const char *file, int line, int col, int rc,
                      const char *fmt, va_list ap) __attribute__((format(printf, 6, 0)));

#endif
