// Replays the committed fuzz corpus (fuzz/corpus/<target>/) through the fuzz targets
// (fuzz/fuzz_target.h) in the regular build: every input must parse or fail cleanly.
// Seeds named valid-* must still be accepted and invalid-* rejected, so each keeps
// testing what it was written for; inputs the fuzzers found (other names) only have to
// come back clean. docs/testing.md, "Fuzzing".
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "fuzz/fuzz_target.h"

namespace r1kit::fuzz {
namespace {

namespace fs = std::filesystem;

std::vector<uint8_t> read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

class CorpusReplay : public ::testing::TestWithParam<Target> {};

TEST_P(CorpusReplay, EveryInputParsesOrFailsCleanly) {
  const Target& target = GetParam();
  const fs::path dir = fs::path(R1KIT_FUZZ_CORPUS) / target.name;
  ASSERT_TRUE(fs::is_directory(dir)) << dir;
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.is_regular_file()) files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  int valid = 0, invalid = 0;
  for (const fs::path& file : files) {
    const std::vector<uint8_t> bytes = read_bytes(file);
    const std::string name = file.filename().string();
    Outcome outcome;
    try {
      outcome = target.run(bytes);
    } catch (const FuzzBug& e) {
      ADD_FAILURE() << file << ": " << e.what();
      continue;
    } catch (const std::exception& e) {
      ADD_FAILURE() << file << ": uncaught exception: " << e.what();
      continue;
    }
    if (name.starts_with("valid-")) {
      ++valid;
      EXPECT_EQ(outcome, Outcome::kAccepted) << file << " is a valid seed, now rejected";
    } else if (name.starts_with("invalid-")) {
      ++invalid;
      EXPECT_EQ(outcome, Outcome::kRejected) << file << " is an invalid seed, now accepted";
    }
  }
  // Each target keeps seeds of both kinds, or the checks above test nothing.
  EXPECT_GT(valid, 0) << dir;
  EXPECT_GT(invalid, 0) << dir;
}

INSTANTIATE_TEST_SUITE_P(Fuzz, CorpusReplay, ::testing::ValuesIn(targets().begin(), targets().end()),
                         [](const ::testing::TestParamInfo<Target>& info) {
                           return std::string(info.param.name);
                         });

TEST(FuzzClassify, InternalOrSilentStatusIsABugOtherErrorsAreRejections) {
  EXPECT_EQ(classify("t", OkStatus()), Outcome::kAccepted);
  EXPECT_EQ(classify("t", InvalidArgument("x: bad")), Outcome::kRejected);
  EXPECT_EQ(classify("t", DataLoss("f: truncated")), Outcome::kRejected);
  EXPECT_THROW(classify("t", Internal("broken invariant")), FuzzBug);
  EXPECT_THROW(classify("t", Status(StatusCode::kInvalidArgument, "")), FuzzBug);
}

TEST(FuzzTargets, EveryTargetHasACorpusFolderAndNoFolderLacksATarget) {
  std::vector<std::string> names, folders;
  for (const Target& t : targets()) names.emplace_back(t.name);
  for (const auto& entry : fs::directory_iterator(R1KIT_FUZZ_CORPUS))
    if (entry.is_directory()) folders.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  std::sort(folders.begin(), folders.end());
  EXPECT_EQ(names, folders);
}

}  // namespace
}  // namespace r1kit::fuzz
