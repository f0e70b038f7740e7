// Paths the tokenizer.json tests need: the npm test data (scripts/test-data.sh) and Node,
// passed in by tests/CMakeLists.txt as R1KIT_TEST_NPM_DIR and R1KIT_NODE.
#pragma once

#include <string>

namespace r1kit::data::test {

// tests/npm/node_modules.
inline std::string npm_dir() {
  return R1KIT_TEST_NPM_DIR;
}
// The node binary found at configure time ("" when none).
inline std::string node_binary() {
  return R1KIT_NODE;
}
// tests/data (the .mjs scripts).
inline std::string tests_data_dir() {
  return std::string(R1KIT_TESTDATA) + "/../data";
}

}  // namespace r1kit::data::test
