/* Readable timeline lines for decisions and notifications. */
#include "app/app_timeline.h"

#include <string.h>

#include "codec/rfc3339.h"

static const char *or_dash(const char *s) { return s[0] ? s : "-"; }

void timeline_decision(FILE *f, const struct decision *d) {
  char at[RFC3339_MAX], stages[2 * PLAN_NAME_MAX + 2];
  if (d->from_stage[0] && strcmp(d->from_stage, d->to_stage))
    snprintf(stages, sizeof stages, "%s->%s", d->from_stage, or_dash(d->to_stage));
  else
    snprintf(stages, sizeof stages, "%s", or_dash(d->to_stage));
  fprintf(f, "%s %s %s %s %s [%s] %s\n", rfc3339_format(d->time_ms, at), d->rollout,
          decision_action_name(d->action), stages, rollout_state_name(d->state), or_dash(d->rule),
          d->reason);
}

void timeline_notification(FILE *f, const struct notification *n) {
  char at[RFC3339_MAX];
  fprintf(f, "%s %s notify %s %s: %s\n", rfc3339_format(n->time_ms, at), n->rollout, n->target,
          notify_severity_name(n->severity), n->title);
}
