/* canaryctl keygen (a signing key pair) and canaryctl audit (who did what). */
#ifndef CANARY_APP_AUDIT_H
#define CANARY_APP_AUDIT_H

int app_keygen(int argc, char **argv);
int app_audit(int argc, char **argv);

#endif
