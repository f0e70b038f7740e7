// read_file (errors name the file and, when given, what it is for) and read_token_file
// (a secret without its surrounding whitespace; missing and empty files are errors).
#include "core/atomic_file.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "tests/temp_dir.h"

namespace r1kit {
namespace {

namespace fs = std::filesystem;

TEST(ReadFileTest, ReadsWhatWasWrittenByteForByte) {
  const testing::ScopedTempDir dir("r1kit_atomic_file_test");
  const std::string path = dir.join("bytes");
  const std::string bytes("a\0b\r\n\xff", 6);
  ASSERT_TRUE(write_file_atomic(path, bytes).ok());
  StatusOr<std::string> got = read_file(path);
  ASSERT_TRUE(got.ok()) << got.status().to_string();
  EXPECT_EQ(*got, bytes);
}

TEST(ReadFileTest, MissingFileIsNotFoundNamingPathAndPurpose) {
  const testing::ScopedTempDir dir("r1kit_atomic_file_test");
  const std::string path = dir.join("never_written.pem");
  StatusOr<std::string> plain = read_file(path);
  ASSERT_FALSE(plain.ok());
  EXPECT_EQ(plain.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(plain.status().message(), path + ": no such file");
  StatusOr<std::string> named = read_file(path, "--tls-cert");
  ASSERT_FALSE(named.ok());
  EXPECT_EQ(named.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(named.status().message(), "--tls-cert '" + path + "': no such file");
}

TEST(ReadTokenFileTest, TrimsSurroundingWhitespaceOnly) {
  const testing::ScopedTempDir dir("r1kit_atomic_file_test");
  const std::string path = dir.join("token");
  ASSERT_TRUE(write_file_atomic(path, std::string(" \t s3 cr\te\n\r\n")).ok());
  StatusOr<std::string> token = read_token_file(path);
  ASSERT_TRUE(token.ok()) << token.status().to_string();
  EXPECT_EQ(*token, "s3 cr\te");
}

TEST(ReadTokenFileTest, EmptyAndMissingFilesAreErrors) {
  const testing::ScopedTempDir dir("r1kit_atomic_file_test");
  const std::string path = dir.join("blank_token");
  ASSERT_TRUE(write_file_atomic(path, std::string(" \n\t\n")).ok());
  StatusOr<std::string> blank = read_token_file(path);
  ASSERT_FALSE(blank.ok());
  EXPECT_EQ(blank.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(blank.status().message().find("is empty"), std::string::npos);
  fs::remove(path);
  StatusOr<std::string> missing = read_token_file(path);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("token file '" + path + "'"), std::string::npos);
}

// Replacing a directory swaps the two in one step: the target names the old directory or
// the new one at every moment (a resume always finds it), and nothing is left beside it.
TEST(RenameDirAtomicTest, ReplacesWithoutAMomentWithoutTheTarget) {
  const testing::ScopedTempDir dir("r1kit_atomic_file_test");
  const std::string root = dir.join("swap");
  fs::create_directories(root + "/new");
  fs::create_directories(root + "/step");
  ASSERT_TRUE(write_file_atomic(root + "/new/x", "new").ok());
  ASSERT_TRUE(write_file_atomic(root + "/step/x", "old").ok());
  ASSERT_TRUE(rename_dir_atomic(root + "/new", root + "/step").ok());
  EXPECT_EQ(*read_file(root + "/step/x"), "new");
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(root)) left.push_back(e.path().filename().string());
  EXPECT_EQ(left, std::vector<std::string>{"step"});
}

}  // namespace
}  // namespace r1kit
