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
elseif(CMAKE_BUILD_TYPE MATCHES "^(Release|Dev)$" AND NOT CMAKE_CXX_COMPILER_ID MATCHES "^(GNU|Clang)$"
       AND NOT LANLM_ALLOW_NON_GCC)
  # The determinism contract (the same bits at any thread count, a decoded position equal to
  # the training forward's row) is verified on every change with GCC (the full suite) and
  # clang (deploy/check.sh's clang pass: the engine's unit tests in a Release build). Clang
  # needed two fixes first: its -ffast-math vector loops divided and took square roots by
  # estimate (vrcp14ps, vrsqrt14ps) where the scalar remainder was exact, so AdamW's bits
  # depended on the thread count (-mrecip=none below), and it folded x * (1 / S) into x / S in
  # GradientTree (simd::Opaque keeps the product). Clang also ignores [[gnu::noipa]], the
  # engine's guard against per-call-site fusion; the decode-equals-forward tests pass anyway.
  # Any other compiler is unverified: refuse rather than risk silently thread-count-dependent
  # parameters.
  message(FATAL_ERROR "lanlm's ${CMAKE_BUILD_TYPE} build is verified with GCC and clang only (CXX=g++ or "
                      "clang++; Debian 12's g++ 12 and clang 14): with ${CMAKE_CXX_COMPILER_ID} "
                      "${CMAKE_CXX_COMPILER_VERSION} parameters may differ between thread counts. "
                      "-DLANLM_ALLOW_NON_GCC=ON builds anyway (its engine tests show whether it keeps them).")
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
# refusal above), no warning for the GCC-only [[gnu::noipa]], and none for the files that turn
# -ffast-math off again (-fno-fast-math after it: "overriding '-ffp-contract=fast'").
if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang" AND CMAKE_BUILD_TYPE MATCHES "^(Release|Dev)$")
  add_compile_options(-mrecip=none -Wno-unknown-attributes -Wno-overriding-t-option)
endif()
