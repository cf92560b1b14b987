/* Readable timeline lines for decisions and notifications. */
#include "app/app_timeline.h"

#include <string.h>

#include "codec/rfc3339.h"

static const char *or_dash(const char *s) { return s[0] ? s : "-"; }

void timeline_put(FILE *f, const char *s) {
  for (size_t i = 0; s[i]; i++) {
    unsigned char c = (unsigned char)s[i], next = (unsigned char)s[i + 1];
    if (c == '\n')
      fputs("\\n", f);
    else if (c == '\t')
      fputs("\\t", f);
    else if (c < 0x20 || c == 0x7f)
      fprintf(f, "\\x%02x", c);
    else if (c == 0xc2 && next >= 0x80 && next <= 0x9f) /* a C1 control */
      fprintf(f, "\\u%04x", next), i++;
    else
      fputc(c, f);
  }
}

void timeline_decision(FILE *f, const struct decision *d) {
  char at[RFC3339_MAX], stages[2 * PLAN_NAME_MAX + 2];
  if (d->from_stage[0] && strcmp(d->from_stage, d->to_stage))
    snprintf(stages, sizeof stages, "%s->%s", d->from_stage, or_dash(d->to_stage));
  else
    snprintf(stages, sizeof stages, "%s", or_dash(d->to_stage));
  fprintf(f, "%s ", rfc3339_format(d->time_ms, at));
  timeline_put(f, d->rollout);
  fprintf(f, " %s ", decision_action_name(d->action));
  timeline_put(f, stages);
  fprintf(f, " %s [", rollout_state_name(d->state));
  timeline_put(f, or_dash(d->rule));
  fputs("] ", f);
  timeline_put(f, d->reason);
  fputc('\n', f);
}

void timeline_notification(FILE *f, const struct notification *n) {
  char at[RFC3339_MAX];
  fprintf(f, "%s ", rfc3339_format(n->time_ms, at));
  timeline_put(f, n->rollout);
  fputs(" notify ", f);
  timeline_put(f, n->target);
  fprintf(f, " %s: ", notify_severity_name(n->severity));
  timeline_put(f, n->title);
  fputc('\n', f);
}
