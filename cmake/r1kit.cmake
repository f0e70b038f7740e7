# Helper functions shared by every folder.
#
# r1kit_add_library(NAME SOURCES ... DEPS ...): a static library named r1kit_NAME with
#   the repository root on its include path, warnings on, and (when it depends on
#   LibTorch) the shared precompiled header.
# r1kit_add_test(NAME SOURCES ... DEPS ... LABELS ...): sources added to one of the
#   test binaries; see tests/CMakeLists.txt.

set(R1KIT_WARNINGS -Wall -Wextra -Wno-unused-parameter)

# One precompiled header for every target that includes LibTorch: built once, reused.
# The holder is an object library with the same flags as every user of the PCH.
add_library(r1kit_pch OBJECT ${CMAKE_SOURCE_DIR}/cmake/pch_stub.cpp)
target_link_libraries(r1kit_pch PUBLIC ${TORCH_LIBRARIES} fmt::fmt spdlog::spdlog)
target_compile_options(r1kit_pch PRIVATE ${R1KIT_WARNINGS})
if(R1KIT_USE_PCH)
  target_precompile_headers(r1kit_pch PRIVATE
    <torch/torch.h> <vector> <string> <memory> <optional> <functional>
    <unordered_map> <map> <fmt/format.h> <spdlog/spdlog.h> <nlohmann/json.hpp>)
endif()
target_link_libraries(r1kit_pch PUBLIC nlohmann_json::nlohmann_json)

function(r1kit_use_pch target)
  if(R1KIT_USE_PCH)
    target_precompile_headers(${target} REUSE_FROM r1kit_pch)
  endif()
endfunction()

# Unity builds (R1KIT_UNITY_BUILD, on by default): every translation unit that sees
# <torch/torch.h> costs ~25 s of CPU however small it is (template instantiation and code
# generation for what the LibTorch headers need), so a target's sources are compiled
# R1KIT_UNITY_BATCH_SIZE at a time, one TU per batch. Not for generated protobuf code or
# the non-LibTorch targets, where a TU is cheap. Sources share one anonymous namespace per
# batch: give file-local helpers distinct names, or keep a file out of the batches with
#   set_source_files_properties(FILE PROPERTIES SKIP_UNITY_BUILD_INCLUSION ON)
function(r1kit_unity_build target)
  if(R1KIT_UNITY_BUILD)
    set_target_properties(${target} PROPERTIES UNITY_BUILD ON
                          UNITY_BUILD_BATCH_SIZE ${R1KIT_UNITY_BATCH_SIZE})
    # GCC takes each .cpp of a batch for a header and would flag every file-local
    # (anonymous-namespace) type used by a member of a class as an ODR risk.
    target_compile_options(${target} PRIVATE -Wno-subobject-linkage)
  endif()
endfunction()

function(r1kit_add_library name)
  cmake_parse_arguments(ARG "TORCH" "" "SOURCES;DEPS" ${ARGN})
  add_library(r1kit_${name} STATIC ${ARG_SOURCES})
  target_include_directories(r1kit_${name} PUBLIC ${CMAKE_SOURCE_DIR})
  target_compile_options(r1kit_${name} PRIVATE ${R1KIT_WARNINGS})
  target_link_libraries(r1kit_${name} PUBLIC ${ARG_DEPS})
  if(ARG_TORCH)
    target_link_libraries(r1kit_${name} PUBLIC ${TORCH_LIBRARIES} fmt::fmt spdlog::spdlog
                                               nlohmann_json::nlohmann_json)
    r1kit_use_pch(r1kit_${name})
    r1kit_unity_build(r1kit_${name})
  endif()
endfunction()

# A folder's library: every .cpp directly inside it (subfolders are separate targets).
function(r1kit_folder_library name)
  cmake_parse_arguments(ARG "" "" "DEPS" ${ARGN})
  file(GLOB srcs CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.cpp)
  if(NOT srcs)
    set(srcs ${CMAKE_SOURCE_DIR}/cmake/pch_stub.cpp)
  endif()
  r1kit_add_library(${name} TORCH SOURCES ${srcs} DEPS ${ARG_DEPS})
endfunction()

# r1kit_grpc_proto_library(NAME PROTOS a b/c ...): a static library r1kit_NAME with the
# C++ messages and gRPC stubs of proto/a.proto, proto/b/c.proto, ..., generated into
# the current binary folder's gen/ and compiled without our warnings. Debian 12 ships no
# CMake config for gRPC: grpc++ comes from pkg-config, protoc from CMake's FindProtobuf,
# grpc_cpp_plugin from the PATH.
function(r1kit_grpc_proto_library name)
  cmake_parse_arguments(ARG "" "" "PROTOS" ${ARGN})
  find_package(Protobuf REQUIRED)
  find_package(PkgConfig REQUIRED)
  pkg_check_modules(GRPCPP REQUIRED grpc++)
  find_program(R1KIT_GRPC_CPP_PLUGIN grpc_cpp_plugin REQUIRED)
  set(proto_root ${CMAKE_SOURCE_DIR}/proto)
  set(gen_dir ${CMAKE_CURRENT_BINARY_DIR}/gen)
  file(MAKE_DIRECTORY ${gen_dir})
  set(gen_srcs "")
  foreach(proto ${ARG_PROTOS})
    set(outs ${gen_dir}/${proto}.pb.cc ${gen_dir}/${proto}.pb.h ${gen_dir}/${proto}.grpc.pb.cc
             ${gen_dir}/${proto}.grpc.pb.h)
    add_custom_command(
      OUTPUT ${outs}
      COMMAND protobuf::protoc --proto_path=${proto_root} --cpp_out=${gen_dir}
              --grpc_out=${gen_dir} --plugin=protoc-gen-grpc=${R1KIT_GRPC_CPP_PLUGIN}
              ${proto_root}/${proto}.proto
      DEPENDS ${proto_root}/${proto}.proto protobuf::protoc
      COMMENT "protoc ${proto}.proto"
      VERBATIM)
    list(APPEND gen_srcs ${gen_dir}/${proto}.pb.cc ${gen_dir}/${proto}.grpc.pb.cc)
  endforeach()
  add_library(r1kit_${name} STATIC ${gen_srcs})
  target_include_directories(r1kit_${name} PUBLIC ${gen_dir})
  # Include dirs and libraries only: grpc++'s pkg-config cflags add -DNOMINMAX (a
  # Windows switch), which would keep every user of this target off the shared PCH.
  target_include_directories(r1kit_${name} SYSTEM PUBLIC ${GRPCPP_INCLUDE_DIRS})
  target_link_libraries(r1kit_${name} PUBLIC protobuf::libprotobuf ${GRPCPP_LINK_LIBRARIES})
endfunction()
