/*
 * `canaryctl pause|resume|promote|rollback` and `canaryctl flag set`: send a command event and
 * wait for the decision it caused, so the person who typed it gets canaryd's answer.
 */
#ifndef CANARY_APP_OVERRIDE_H
#define CANARY_APP_OVERRIDE_H

/* argv[0] is the action (pause, resume, promote, rollback). Returns the exit code. */
int app_override(int argc, char **argv);

/* argv[0] is "flag"; argv[1] must be "set". Returns the exit code. */
int app_flag_set(int argc, char **argv);
/* canaryctl approve ROLE [ROLLOUT]: an approval.granted, signed with --key, and canaryd's answer. */
int app_approve(int argc, char **argv);

#endif
