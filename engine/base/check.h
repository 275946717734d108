// LANLM_CHECK: aborts with file and line when an invariant is broken. Never for input
// from outside the process (files, flags, RPCs): those get a Status.
#pragma once

#include <string_view>

namespace lanlm {
[[noreturn]] void CheckFailed(const char* file, int line, const char* condition, std::string_view message);
}  // namespace lanlm

#define LANLM_CHECK(cond, ...)                                                  \
  do {                                                                          \
    if (__builtin_expect(!(cond), 0))                                           \
      ::lanlm::CheckFailed(__FILE__, __LINE__, #cond, ::std::string_view{__VA_ARGS__}); \
  } while (0)
