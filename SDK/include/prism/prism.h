/*
 * prism/prism.h — umbrella header of the Prism plugin ABI, version 1.
 *
 * Include this one header to write a plugin. See Documentation/ABI.md for
 * the rules (versioning, ownership, threading) and a walk-through.
 */
#ifndef PRISM_PRISM_H
#define PRISM_PRISM_H

#include "base.h"
#include "reward.h"
#include "feedback.h"
#include "sampler.h"
#include "backend.h"
#include "strategy.h"

#endif /* PRISM_PRISM_H */
