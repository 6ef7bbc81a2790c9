# iotca_warnings: an interface target every project target links, so that
# warning flags and sanitizer options live in one place.
add_library(iotca_warnings INTERFACE)
target_compile_options(iotca_warnings INTERFACE
  -Wall -Wextra -Wshadow -Wformat=2 -Wconversion -Wno-sign-conversion
  -Wstrict-prototypes -Wmissing-prototypes -Wpointer-arith -Wvla
  -Wundef -fno-common)
# No -Wcast-qual: protobuf-c's *__INIT macros and char * string fields
# cast away const by design, and every message literal would trip it.
if(IOTCA_WERROR)
  target_compile_options(iotca_warnings INTERFACE -Werror)
endif()

# Sanitizers apply to everything we compile, generated code included.
if(IOTCA_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=undefined
                      -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()

# Fuzzing: every object gets coverage instrumentation and the sanitizers,
# so libFuzzer sees (and checks) the library code, not only the target.
if(IOTCA_FUZZ)
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined
                      -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()

# Generated protobuf-c code is not ours to make -Wconversion clean.
add_library(iotca_generated_flags INTERFACE)
target_compile_options(iotca_generated_flags INTERFACE -w)
