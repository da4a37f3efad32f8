/* Compiles every header; the _Static_asserts inside pin the layout.
 * Built by scripts/check-headers as C11 and (renamed) as C++17. */
#include <prism/prism.h>

int prism_abi_checks_dummy(void);
int prism_abi_checks_dummy(void) { return PRISM_ABI_MAJOR; }
