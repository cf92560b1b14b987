/* The policy section (policy: in a plan, or a policy file of its own): who may do what. */
#ifndef CANARY_POLICYFILE_H
#define CANARY_POLICYFILE_H

#include "config/schema.h"
#include "core/policy.h"

/*
 * Fills *p from the mapping v (permissions: right -> [roles], actors: name -> {roles, keys})
 * and enables it. Every role an actor holds must be given some right, every right's role held
 * by someone listed or not (a role may be vacant), every key 44 characters of base64 (a 32-byte
 * Ed25519 public key: canaryctl keygen prints one). Returns CANARY_OK or CANARY_EINVALID with
 * the error in ld, at the node that is wrong.
 */
int policyfile_load(struct loader *ld, const struct ynode *v, struct policy *p);

#endif
