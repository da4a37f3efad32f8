/* libFuzzer's driver, called from each target's own main (SwiftPM renames
 * an executable's entry point, so libFuzzer's main cannot be used). */
#ifndef FUZZ_DRIVER_H
#define FUZZ_DRIVER_H
#include <stddef.h>
#include <stdint.h>
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
#endif
