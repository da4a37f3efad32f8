#ifndef PRISM_EMBED_QUIET_H
#define PRISM_EMBED_QUIET_H

/* Nothing to call: embed_quiet.c is a library constructor that runs when
 * libPrismEmbed.so is loaded (see there). */

#endif
