/* libyaml's event stream folded into a tree, so the loader can look keys up and report positions. */
#include "config/yamltree.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "core/error.h"

#define YAMLTREE_MAX_DEPTH 64 /* deeper than any plan; stops a hostile file exhausting the stack */

struct anchor {
  char *name;
  struct ynode *node;
  struct anchor *next;
};

struct builder {
  const char *name;         /* for messages */
  struct config_error *err; /* never NULL */
  yaml_parser_t parser;
  struct yamltree *t;
  const char *text;
  size_t len;
};

static int line_of(size_t line0) { return line0 >= INT32_MAX ? INT32_MAX : (int)line0 + 1; }

/* A reader error (bad UTF-8, ...) carries a byte offset, not a mark: count lines ourselves. */
static void offset_position(const struct builder *b, size_t off, int *line, int *col) {
  *line = 1;
  *col = 1;
  for (size_t i = 0; i < off && i < b->len; i++) {
    if (b->text[i] == '\n') {
      ++*line;
      *col = 1;
    } else {
      ++*col;
    }
  }
}

static int syntax_error(struct builder *b) {
  const yaml_parser_t *p = &b->parser;
  if (p->error == YAML_MEMORY_ERROR)
    return config_error_set(b->err, b->name, 1, 1, CANARY_ENOMEM, "out of memory while parsing");
  const char *problem = p->problem ? p->problem : "malformed YAML";
  if (p->error == YAML_READER_ERROR) {
    int line, col;
    offset_position(b, p->problem_offset, &line, &col);
    return config_error_set(b->err, b->name, line, col, CANARY_EPARSE, "%s", problem);
  }
  int line = line_of(p->problem_mark.line), col = line_of(p->problem_mark.column);
  if (p->context)
    return config_error_set(b->err, b->name, line, col, CANARY_EPARSE, "%s (%s at %d:%d)", problem,
                            p->context, line_of(p->context_mark.line),
                            line_of(p->context_mark.column));
  return config_error_set(b->err, b->name, line, col, CANARY_EPARSE, "%s", problem);
}

static int next_event(struct builder *b, yaml_event_t *ev) {
  return yaml_parser_parse(&b->parser, ev) ? CANARY_OK : syntax_error(b);
}

static struct ynode *node_new(struct builder *b, enum ynode_kind kind, const yaml_mark_t *m) {
  struct ynode *n = calloc(1, sizeof *n);
  if (!n)
    return NULL;
  n->kind = kind;
  n->line = line_of(m->line);
  n->col = line_of(m->column);
  n->next_alloc = b->t->all;
  b->t->all = n;
  return n;
}

static int node_append(struct ynode *parent, struct ynode *kid) {
  if (parent->n == parent->cap) {
    size_t cap = parent->cap ? parent->cap * 2 : 8;
    struct ynode **k = realloc(parent->kids, cap * sizeof *k);
    if (!k)
      return CANARY_ENOMEM;
    parent->kids = k;
    parent->cap = cap;
  }
  parent->kids[parent->n++] = kid;
  return CANARY_OK;
}

static int remember_anchor(struct builder *b, const yaml_char_t *name, struct ynode *node) {
  if (!name)
    return CANARY_OK;
  struct anchor *a = calloc(1, sizeof *a);
  if (!a || !(a->name = strdup((const char *)name))) {
    free(a);
    return CANARY_ENOMEM;
  }
  a->node = node;
  a->next = b->t->anchors; /* newest first: a redefined anchor wins from then on */
  b->t->anchors = a;
  return CANARY_OK;
}

static int resolve_alias(struct builder *b, const yaml_event_t *ev, struct ynode **out) {
  for (const struct anchor *a = b->t->anchors; a; a = a->next)
    if (strcmp(a->name, (const char *)ev->data.alias.anchor) == 0) {
      *out = a->node;
      return CANARY_OK;
    }
  return config_error_set(b->err, b->name, line_of(ev->start_mark.line),
                          line_of(ev->start_mark.column), CANARY_EPARSE, "unknown alias '*%s'",
                          ev->data.alias.anchor);
}

static int no_tag(struct builder *b, const yaml_event_t *ev, const yaml_char_t *tag) {
  if (!tag)
    return CANARY_OK;
  return config_error_set(b->err, b->name, line_of(ev->start_mark.line),
                          line_of(ev->start_mark.column), CANARY_EPARSE,
                          "YAML tags are not supported ('%s')", tag);
}

static int scalar_node(struct builder *b, const yaml_event_t *ev, struct ynode **out) {
  int rc = no_tag(b, ev, ev->data.scalar.tag);
  if (rc)
    return rc;
  const char *v = (const char *)ev->data.scalar.value;
  size_t len = ev->data.scalar.length;
  if (strlen(v) != len)
    return config_error_set(b->err, b->name, line_of(ev->start_mark.line),
                            line_of(ev->start_mark.column), CANARY_EPARSE,
                            "a string may not contain a NUL character");
  struct ynode *n = node_new(b, YNODE_SCALAR, &ev->start_mark);
  if (!n || !(n->str = strdup(v)))
    return CANARY_ENOMEM;
  n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
  *out = n;
  return remember_anchor(b, ev->data.scalar.anchor, n);
}

static int parse_node(struct builder *b, yaml_event_t *ev, int depth, struct ynode **out);

/* Reads kids until the matching end event; a mapping's keys must be scalars. */
static int collection_kids(struct builder *b, struct ynode *n, yaml_event_type_t end, int depth) {
  for (;;) {
    yaml_event_t ev;
    int rc = next_event(b, &ev);
    if (rc)
      return rc;
    if (ev.type == end) {
      yaml_event_delete(&ev);
      return CANARY_OK;
    }
    struct ynode *kid = NULL;
    rc = parse_node(b, &ev, depth + 1, &kid);
    yaml_event_delete(&ev);
    if (!rc && n->kind == YNODE_MAP && n->n % 2 == 0 && kid->kind != YNODE_SCALAR)
      rc =
          config_error_set(b->err, b->name, kid->line, kid->col, CANARY_EPARSE,
                           "a mapping key must be a plain string, not %s", yamltree_kind_name(kid));
    if (!rc)
      rc = node_append(n, kid);
    if (rc)
      return rc;
  }
}

static int collection_node(struct builder *b, const yaml_event_t *ev, int depth,
                           struct ynode **out) {
  bool seq = ev->type == YAML_SEQUENCE_START_EVENT;
  const yaml_char_t *tag = seq ? ev->data.sequence_start.tag : ev->data.mapping_start.tag;
  const yaml_char_t *anchor = seq ? ev->data.sequence_start.anchor : ev->data.mapping_start.anchor;
  int rc = no_tag(b, ev, tag);
  if (rc)
    return rc;
  if (depth > YAMLTREE_MAX_DEPTH)
    return config_error_set(b->err, b->name, line_of(ev->start_mark.line),
                            line_of(ev->start_mark.column), CANARY_EPARSE,
                            "nesting deeper than %d levels", YAMLTREE_MAX_DEPTH);
  struct ynode *n = node_new(b, seq ? YNODE_SEQ : YNODE_MAP, &ev->start_mark);
  if (!n)
    return CANARY_ENOMEM;
  rc = collection_kids(b, n, seq ? YAML_SEQUENCE_END_EVENT : YAML_MAPPING_END_EVENT, depth);
  if (rc)
    return rc;
  *out = n;
  /* Registered once complete, so an alias inside its own anchor is unknown: no cycles. */
  return remember_anchor(b, anchor, n);
}

static int parse_node(struct builder *b, yaml_event_t *ev, int depth, struct ynode **out) {
  switch (ev->type) {
  case YAML_SCALAR_EVENT:
    return scalar_node(b, ev, out);
  case YAML_ALIAS_EVENT:
    return resolve_alias(b, ev, out);
  case YAML_SEQUENCE_START_EVENT:
  case YAML_MAPPING_START_EVENT:
    return collection_node(b, ev, depth, out);
  default:
    return config_error_set(b->err, b->name, line_of(ev->start_mark.line),
                            line_of(ev->start_mark.column), CANARY_EPARSE,
                            "unexpected YAML event %d", (int)ev->type);
  }
}

/* Reads the next event and fails with message what unless it is of type want. */
static int expect_event(struct builder *b, yaml_event_type_t want, const char *what) {
  yaml_event_t ev;
  int rc = next_event(b, &ev);
  if (rc)
    return rc;
  if (ev.type != want)
    rc = config_error_set(b->err, b->name, line_of(ev.start_mark.line),
                          line_of(ev.start_mark.column), CANARY_EPARSE, "%s", what);
  yaml_event_delete(&ev);
  return rc;
}

/* stream-start, then nothing or one document, then stream-end. */
static int parse_stream(struct builder *b) {
  int rc = expect_event(b, YAML_STREAM_START_EVENT, "expected the start of a YAML stream");
  yaml_event_t ev;
  if (rc || (rc = next_event(b, &ev)))
    return rc;
  if (ev.type == YAML_STREAM_END_EVENT) {
    yaml_event_delete(&ev);
    return CANARY_OK;
  }
  yaml_event_delete(&ev); /* document start */
  if ((rc = next_event(b, &ev)))
    return rc;
  rc = parse_node(b, &ev, 0, &b->t->root);
  yaml_event_delete(&ev);
  if (rc || (rc = expect_event(b, YAML_DOCUMENT_END_EVENT, "expected the end of the document")))
    return rc;
  return expect_event(b, YAML_STREAM_END_EVENT,
                      "expected a single YAML document, found a second one");
}

int yamltree_parse(const char *name, struct config_error *err, const char *text, size_t len,
                   struct yamltree *t) {
  memset(t, 0, sizeof *t);
  struct builder b = {.name = name, .err = err, .t = t, .text = text, .len = len};
  if (!yaml_parser_initialize(&b.parser))
    return CANARY_ENOMEM;
  yaml_parser_set_input_string(&b.parser, (const unsigned char *)text, len);
  int rc = parse_stream(&b);
  yaml_parser_delete(&b.parser);
  return rc;
}

void yamltree_free(struct yamltree *t) {
  for (struct ynode *n = t->all, *next; n; n = next) {
    next = n->next_alloc;
    free(n->str);
    free(n->kids);
    free(n);
  }
  for (struct anchor *a = t->anchors, *next; a; a = next) {
    next = a->next;
    free(a->name);
    free(a);
  }
  memset(t, 0, sizeof *t);
}

const struct ynode *yamltree_get(const struct ynode *m, const char *key) {
  if (!m || m->kind != YNODE_MAP)
    return NULL;
  for (size_t i = 0; i + 1 < m->n; i += 2)
    if (strcmp(m->kids[i]->str, key) == 0)
      return m->kids[i + 1];
  return NULL;
}

const char *yamltree_kind_name(const struct ynode *n) {
  switch (n->kind) {
  case YNODE_SEQ:
    return "a list";
  case YNODE_MAP:
    return "a mapping";
  case YNODE_SCALAR:
    break;
  }
  if (yamltree_is_null(n))
    return "null";
  return n->plain ? "a plain scalar" : "a quoted string";
}

bool yamltree_is_null(const struct ynode *n) {
  if (n->kind != YNODE_SCALAR || !n->plain)
    return false;
  static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
  for (size_t i = 0; i < sizeof nulls / sizeof *nulls; i++)
    if (strcmp(n->str, nulls[i]) == 0)
      return true;
  return false;
}
