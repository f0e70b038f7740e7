// libFuzzer entry point for one fuzz target (fuzz/fuzz_target.h). fuzz/CMakeLists.txt
// compiles this file once per target with R1KIT_FUZZ_TARGET set to the target's function.
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <typeinfo>

#include "fuzz/fuzz_target.h"

#ifndef R1KIT_FUZZ_TARGET
#error "R1KIT_FUZZ_TARGET names the target function (fuzz/CMakeLists.txt sets it)"
#endif

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    (void)r1kit::fuzz::R1KIT_FUZZ_TARGET(std::span<const uint8_t>(data, size));
  } catch (const r1kit::fuzz::FuzzBug& e) {
    std::fprintf(stderr, "==r1kit== FINDING: %s\n", e.what());
    std::abort();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "==r1kit== FINDING: uncaught %s: %s\n", typeid(e).name(), e.what());
    std::abort();
  }
  return 0;  // unknown exception types (not std::exception) reach libFuzzer: a crash too
}
