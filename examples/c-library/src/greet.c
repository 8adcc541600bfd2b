#include "greet.h"

int greet_add(int a, int b) { return a + b; }

/* The linkage is part of the string so a consumer can tell which build it actually loaded. */
const char *greet_version(void) {
#ifdef GREET_SHARED_BUILD
  return GREET_VERSION " (shared)";
#else
  return GREET_VERSION " (static)";
#endif
}
