/* Entry points of the config layer: files and buffers in, a validated plan or a positioned error out. */
#include "config/config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/flagfile.h"
#include "config/planfile.h"
#include "config/policyfile.h"
#include "config/schema.h"
#include "config/yamltree.h"

/* Generated from config/rollout.yaml by cmake/embed.cmake. */
extern const char canary_default_plan_yaml[];
extern const size_t canary_default_plan_yaml_len;

#define CONFIG_FILE_MAX (4u << 20) /* a plan is a few KiB; refuse anything absurd */
#define CONFIG_DEFAULT_NAME "<built-in config/rollout.yaml>"

static int load_root(struct loader *ld, const struct ynode *root, struct plan *p,
                     bool allow_overlay) {
  if (!root || yamltree_is_null(root))
    return schema_fail_at(ld, 1, 1, CANARY_EINVALID,
                          "the document is empty: expected a plan (see docs/configuration.md)");
  if (root->kind != YNODE_MAP)
    return schema_fail(ld, root, CANARY_EINVALID, "expected a mapping at the top level, got %s",
                       yamltree_kind_name(root));
  if (allow_overlay && flagfile_is_overlay(root)) {
    int rc = config_load_default(p, ld->err);
    return rc ? rc : flagfile_apply(ld, root, p);
  }
  planfile_defaults(p);
  return planfile_load(ld, root, p);
}

/* Parses into a scratch plan, so *out changes only on success. */
static int load(const char *name, const char *text, size_t len, struct plan *out,
                struct config_error *err, bool allow_overlay) {
  struct config_error scratch;
  if (!err)
    err = &scratch;
  memset(err, 0, sizeof *err);
  struct loader ld = {.name = name, .err = err};
  struct plan *p = malloc(sizeof *p);
  struct yamltree t;
  int rc = p ? yamltree_parse(name, err, text, len, &t) : CANARY_ENOMEM;
  if (p) {
    if (!rc)
      rc = load_root(&ld, t.root, p, allow_overlay);
    yamltree_free(&t);
  }
  if (!rc)
    memcpy(out, p, sizeof *out);
  else if (!err->message[0])
    schema_fail_at(&ld, 0, 0, rc, "%s", canary_strerror(rc));
  free(p);
  return rc;
}

int config_load_buffer(const char *name, const char *text, size_t len, struct plan *out,
                       struct config_error *err) {
  return load(name, text, len, out, err, true);
}

int config_load_default(struct plan *out, struct config_error *err) {
  return load(CONFIG_DEFAULT_NAME, canary_default_plan_yaml, canary_default_plan_yaml_len, out, err,
              false);
}

static int io_error(const char *path, struct config_error *err, const char *what, int errnum) {
  if (err) {
    memset(err, 0, sizeof *err);
    snprintf(err->file, sizeof err->file, "%s", path);
    snprintf(err->message, sizeof err->message, "cannot %s config file '%s': %s", what, path,
             strerror(errnum));
  }
  return CANARY_EIO;
}

/* Reads the whole of f into a malloc'd buffer; the caller frees *text. */
static int read_all(FILE *f, char **text, size_t *len) {
  size_t cap = 0, n = 0;
  char *buf = NULL;
  for (;;) {
    if (n == cap) {
      if (cap >= CONFIG_FILE_MAX) {
        free(buf);
        return EFBIG;
      }
      cap = cap ? cap * 2 : 16384;
      char *b = realloc(buf, cap);
      if (!b) {
        free(buf);
        return ENOMEM;
      }
      buf = b;
    }
    size_t got = fread(buf + n, 1, cap - n, f);
    n += got;
    if (got == 0) {
      if (ferror(f)) {
        int e = errno ? errno : EIO;
        free(buf);
        return e;
      }
      break;
    }
  }
  *text = buf;
  *len = n;
  return 0;
}

/* The whole file at path into *text (the caller frees it): CANARY_OK or CANARY_EIO with err. */
static int read_file(const char *path, char **text, size_t *len, struct config_error *err) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return io_error(path, err, "open", errno);
  errno = 0;
  int e = read_all(f, text, len);
  fclose(f);
  return e ? io_error(path, err, "read", e) : CANARY_OK;
}

int config_load_file(const char *path, struct plan *out, struct config_error *err) {
  char *text = NULL;
  size_t len = 0;
  int rc = read_file(path, &text, &len, err);
  if (rc == CANARY_OK)
    rc = config_load_buffer(path, text, len, out, err);
  free(text);
  return rc;
}

bool config_parse_duration(const char *s, int64_t *ms) { return schema_parse_duration(s, ms); }

int config_load_policy_file(const char *path, struct policy *out, struct config_error *err) {
  struct config_error scratch;
  if (!err)
    err = &scratch;
  char *text = NULL;
  size_t len = 0;
  int rc = read_file(path, &text, &len, err);
  if (rc != CANARY_OK)
    return rc;
  memset(err, 0, sizeof *err);
  struct loader ld = {.name = path, .err = err};
  struct policy *p = malloc(sizeof *p);
  struct yamltree t;
  rc = p ? yamltree_parse(path, err, text, len, &t) : CANARY_ENOMEM;
  if (p) {
    if (!rc && (!t.root || yamltree_is_null(t.root)))
      rc = schema_fail_at(&ld, 1, 1, CANARY_EINVALID,
                          "the document is empty: expected a policy (permissions, actors)");
    if (!rc)
      rc = policyfile_load(&ld, t.root, p);
    yamltree_free(&t);
  }
  if (!rc)
    memcpy(out, p, sizeof *out);
  else if (!err->message[0])
    schema_fail_at(&ld, 0, 0, rc, "%s", canary_strerror(rc));
  free(p);
  free(text);
  return rc;
}
