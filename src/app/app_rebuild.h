/* `canaryctl rebuild`: the state rebuilt from the event log, compared with the live state. */
#ifndef CANARY_APP_REBUILD_H
#define CANARY_APP_REBUILD_H

/* Exit: 0 identical (or adopted), 1 different, 2 error (usage, a service, the log). */
int app_rebuild(int argc, char **argv);

#endif
