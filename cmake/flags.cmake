# Compiler flags: the seed brief's release flags, a portable variant, warnings and sanitizers.
# Note: -ffast-math implies -ffinite-math-only, so code that must see NaN/Inf tests bit patterns
# (engine/base/float_bits.h) instead of std::isnan.
if(LANLM_PORTABLE)
  set(LANLM_ARCH_FLAG "-march=${LANLM_PORTABLE_ARCH}")
else()
  set(LANLM_ARCH_FLAG "-march=native")
endif()

add_compile_options(-Wall -Wextra -Wno-unused-parameter -pthread ${LANLM_ARCH_FLAG})
if(LANLM_WERROR)
  add_compile_options(-Werror)
endif()

if(LANLM_SANITIZE AND LANLM_TSAN)
  message(FATAL_ERROR "LANLM_SANITIZE and LANLM_TSAN cannot be combined (ASan and TSan exclude each other)")
endif()
if(LANLM_FUZZ)
  # libFuzzer targets (fuzz/, deploy/fuzz.sh): every library gets coverage instrumentation
  # (fuzzer-no-link) plus ASan and UBSan; only the fuzz executables link libFuzzer's main.
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "LANLM_FUZZ needs clang (CXX=clang++): libFuzzer is part of clang")
  endif()
  # -Wno-unknown-attributes: clang ignores GCC's [[gnu::noipa]] (a GCC determinism guard).
  add_compile_options(-O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined
                      -fno-sanitize-recover=undefined -Wno-unknown-attributes)
  add_link_options(-fsanitize=address,undefined)
elseif(LANLM_TSAN)
  # ThreadSanitizer (deploy/check.sh's race pass): -O1 keeps it fast enough, no LTO, no
  # -ffast-math so the instrumented code is the plain one. gRPC/protobuf stay uninstrumented;
  # deploy/tsan.supp silences what lies only inside them.
  # -Wno-tsan: Boost.Asio's fenced blocks use atomic_thread_fence, which TSan does not model
  # (GCC warns); -Wno-format-truncation: -O1's weaker range analysis flags snprintf calls
  # that -O3 proves fit.
  add_compile_options(-O1 -g -fno-omit-frame-pointer -fsanitize=thread -Wno-tsan -Wno-format-truncation)
  add_link_options(-fsanitize=thread)
elseif(LANLM_SANITIZE)
  add_compile_options(-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
elseif(CMAKE_BUILD_TYPE MATCHES "^(Release|Dev)$" AND NOT CMAKE_CXX_COMPILER_ID STREQUAL "GNU"
       AND NOT LANLM_ALLOW_NON_GCC)
  # The determinism contract (the same bits at any thread count, a decoded position equal to
  # the training forward's row) is verified continuously with GCC only. Clang ignores
  # [[gnu::noipa]], the engine's guard against per-call-site fusion, and its -ffast-math
  # vector loops divide and take square roots by estimate (vrcp14ps, vrsqrt14ps) where the
  # scalar remainder is exact: before -mrecip=none below, clang 14's Release engine failed
  # OptimizerTest.OneThreadEqualsManyThreadsBitForBit and
  # TrainerTest.LocalTrainerIsBitIdenticalForAnyThreadCount, and GradientTree (clang folded
  # x * (1 / S) into x / S; simd::Opaque keeps the product). Now its engine tests pass,
  # but no CI pass keeps them so. Refuse rather than risk silently thread-count-dependent
  # parameters.
  message(FATAL_ERROR "lanlm's ${CMAKE_BUILD_TYPE} build needs GCC (CXX=g++; Debian 12's g++ 12 is verified): "
                      "with ${CMAKE_CXX_COMPILER_ID} ${CMAKE_CXX_COMPILER_VERSION} parameters may differ between "
                      "thread counts. -DLANLM_ALLOW_NON_GCC=ON builds anyway (its engine tests show whether it keeps them).")
elseif(CMAKE_BUILD_TYPE STREQUAL "Release")
  set(CMAKE_CXX_FLAGS_RELEASE "-O3 -DNDEBUG")
  add_compile_options(-ffast-math -funroll-loops -flto=auto)
  add_link_options(-flto=auto -O3 -pthread)
elseif(CMAKE_BUILD_TYPE STREQUAL "Dev")
  # Fast iteration: optimised, same math flags, no LTO.
  set(CMAKE_CXX_FLAGS_DEV "-O2 -g")
  add_compile_options(-ffast-math -funroll-loops)
endif()
# Clang's optimised builds: exact vector division and square root (-mrecip=none; see the
# refusal above), and no warning for the GCC-only [[gnu::noipa]].
if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang" AND CMAKE_BUILD_TYPE MATCHES "^(Release|Dev)$")
  add_compile_options(-mrecip=none -Wno-unknown-attributes)
endif()
