// SLUICE_FUZZ_CHECK: the property checks of the fuzz targets. A violated
// property prints what failed and aborts, which libFuzzer reports as a
// crash and saves the input for.
#pragma once

#include <cstdio>
#include <cstdlib>

#define SLUICE_FUZZ_CHECK(condition)                                                          \
  do {                                                                                        \
    if (!(condition)) {                                                                       \
      std::fprintf(stderr, "%s:%d: property violated: %s\n", __FILE__, __LINE__, #condition); \
      std::abort();                                                                           \
    }                                                                                         \
  } while (false)
