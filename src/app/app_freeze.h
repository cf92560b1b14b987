/* canaryctl freeze / unfreeze: stop and resume applying events, every worker (docs/operations.md). */
#ifndef CANARY_APP_FREEZE_H
#define CANARY_APP_FREEZE_H

#include "store/store.h"

int app_freeze(int argc, char **argv); /* argv[0] "freeze" or "unfreeze" */

/* For status: a banner on f when the installation is frozen; nothing otherwise. */
void app_freeze_banner(store_t *st, FILE *f);

#endif
