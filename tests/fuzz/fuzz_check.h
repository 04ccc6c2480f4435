// Invariant checks for the fuzz targets: a violated invariant prints what failed and traps, so
// libFuzzer records it as a crash and saves the input.
#pragma once

#include <cstdio>

#define FUZZ_CHECK(cond)                                                                 \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      std::fprintf(stderr, "fuzz invariant failed: %s (%s:%d)\n", #cond, __FILE__,      \
                   __LINE__);                                                            \
      __builtin_trap();                                                                  \
    }                                                                                    \
  } while (false)
