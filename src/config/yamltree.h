/* A YAML document as a small tree of nodes with their positions, built from libyaml's events. */
#ifndef CANARY_YAMLTREE_H
#define CANARY_YAMLTREE_H

#include <stdbool.h>
#include <stddef.h>

#include "config/config_error.h"

enum ynode_kind {
  YNODE_SCALAR,
  YNODE_SEQ,
  YNODE_MAP,
};

struct ynode {
  enum ynode_kind kind;
  int line, col;       /* 1-based position of the node's first character */
  char *str;           /* scalar: the value, NUL-terminated (never contains NUL itself) */
  bool plain;          /* scalar: unquoted, so it may be a number, a boolean or null */
  struct ynode **kids; /* sequence: the items; mapping: key, value, key, value, ... */
  size_t n;            /* number of kids (a mapping has n / 2 pairs) */
  size_t cap;
  struct ynode *next_alloc; /* every node of a tree, for yamltree_free */
};

/* One parsed document. Aliases point at their anchored node, so nodes may be shared. */
struct yamltree {
  struct ynode *root; /* NULL for an empty stream */
  struct ynode *all;
  struct anchor *anchors;
};

/*
 * Parses the single YAML document in text[0..len) into *t. Returns CANARY_OK, CANARY_EPARSE
 * (syntax error, several documents, tags, nesting too deep; recorded in *err with name as the
 * file) or CANARY_ENOMEM. On any return, yamltree_free(t) releases what was built.
 */
int yamltree_parse(const char *name, struct config_error *err, const char *text, size_t len,
                   struct yamltree *t);
void yamltree_free(struct yamltree *t);

/* The value of key in mapping m, or NULL. */
const struct ynode *yamltree_get(const struct ynode *m, const char *key);

/* "a mapping", "a list", "a string", ...: for messages. */
const char *yamltree_kind_name(const struct ynode *n);

/* A plain scalar that YAML reads as null: "", "~", "null". */
bool yamltree_is_null(const struct ynode *n);

#endif
