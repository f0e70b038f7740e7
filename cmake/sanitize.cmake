# R1KIT_SANITIZE and R1KIT_FUZZ (docs/testing.md, "Sanitizers" and "Fuzzing").
#
# R1KIT_SANITIZE=address,undefined compiles and links every target with those
# sanitizers; UBSan findings abort (-fno-sanitize-recover) so a test or fuzzer fails on
# them instead of printing and going on. The SentencePiece shim opts out
# (data/spm_shim/CMakeLists.txt).
# R1KIT_FUZZ=ON (clang only) adds libFuzzer's coverage instrumentation to every target
# (-fsanitize=fuzzer-no-link) and builds fuzz/'s r1kit_fuzz_<target> binaries; it turns
# on R1KIT_SANITIZE=address,undefined unless another value is set.

# clang (14 and 16 alike) with libstdc++ 12 in C++20 mode instantiates std::vector's
# constexpr members where they are first used, and LibTorch 1.13's ATen/core/List.h uses
# std::vector<IValue> in two inline functions while IValue is still incomplete (g++ waits
# until the end of the file). The clang build therefore reads a copy of List.h from the
# build folder in which those two uses sit in templates (a constructor template, a
# helper function template): the same code, instantiated later. Other LibTorch versions, where the
# text differs, are left alone.
if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  find_file(R1KIT_TORCH_LIST_H ATen/core/List.h PATHS ${TORCH_INCLUDE_DIRS} /usr/include
            NO_DEFAULT_PATH)
  if(R1KIT_TORCH_LIST_H)
    file(READ ${R1KIT_TORCH_LIST_H} list_h)
    set(ctor_old "  explicit ListImpl(list_type list_, TypePtr elementType_)")
    set(ctor_new "  template <class L = list_type, std::enable_if_t<std::is_same<L, list_type>::value, int> = 0>\n  explicit ListImpl(L list_, TypePtr elementType_)")
    set(first_old "inline const IValue* ptr_to_first_element(const GenericList& list) {\n  return &list.impl_->list[0];")
    set(first_new "template <class V>\nconst IValue* first_element_of(const V& v) { return &v[0]; }\ninline const IValue* ptr_to_first_element(const GenericList& list) {\n  return first_element_of(list.impl_->list);")
    string(FIND "${list_h}" "${ctor_old}" at_ctor)
    string(FIND "${list_h}" "${first_old}" at_first)
    if(at_ctor GREATER -1 AND at_first GREATER -1)
      string(REPLACE "${ctor_old}" "${ctor_new}" list_h "${list_h}")
      string(REPLACE "${first_old}" "${first_new}" list_h "${list_h}")
      file(WRITE ${CMAKE_BINARY_DIR}/clang-torch/ATen/core/List.h "${list_h}")
      include_directories(BEFORE SYSTEM ${CMAKE_BINARY_DIR}/clang-torch)
    endif()
  endif()
endif()

if(R1KIT_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "R1KIT_FUZZ=ON needs clang (libFuzzer): configure with "
                        "-DCMAKE_CXX_COMPILER=clang++-14 (scripts/fuzz.sh does)")
  endif()
  if(NOT R1KIT_SANITIZE)
    set(R1KIT_SANITIZE "address,undefined" CACHE STRING "" FORCE)
  endif()
  add_compile_options(-fsanitize=fuzzer-no-link)
endif()
if(R1KIT_SANITIZE)
  add_compile_options(-fsanitize=${R1KIT_SANITIZE} -fno-sanitize-recover=all
                      -fno-omit-frame-pointer -g1)
  add_link_options(-fsanitize=${R1KIT_SANITIZE})
endif()

# Takes a target out of the sanitizers (a library loaded where the sanitizer runtime
# cannot follow it).
function(r1kit_no_sanitize target)
  if(R1KIT_SANITIZE OR R1KIT_FUZZ)
    target_compile_options(${target} PRIVATE -fno-sanitize=all)
    target_link_options(${target} PRIVATE -fno-sanitize=all)
  endif()
endfunction()
