// retain_freed_memory: large blocks come from the heap and stay there after free.
#include "core/memory.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace r1kit {
namespace {

#if defined(__SANITIZE_ADDRESS__)
#define R1KIT_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define R1KIT_TEST_ASAN 1
#endif
#endif

#if defined(__GLIBC__)
TEST(RetainFreedMemoryTest, LargeBlocksComeFromTheHeapAndStayMapped) {
#ifdef R1KIT_TEST_ASAN
  GTEST_SKIP() << "AddressSanitizer replaces glibc's malloc, so mallopt changes nothing "
                  "(docs/testing.md, \"Sanitizers\")";
#endif
  ::unsetenv("R1KIT_RELEASE_MEMORY");
  ASSERT_TRUE(retain_freed_memory());
  ASSERT_TRUE(retain_freed_memory());   // idempotent
  constexpr size_t kBytes = 64u << 20;  // far above glibc's default mmap threshold
  const struct mallinfo2 before = mallinfo2();
  char* p = static_cast<char*>(std::malloc(kBytes));
  ASSERT_NE(p, nullptr);
  std::memset(p, 1, kBytes);
  const struct mallinfo2 during = mallinfo2();
  // Not a separate mapping: the block is part of an arena.
  EXPECT_EQ(during.hblkhd, before.hblkhd);
  EXPECT_GE(during.arena, before.arena + kBytes);
  std::free(p);
  const struct mallinfo2 after = mallinfo2();
  // The heap was not trimmed: the freed block is still there for the next allocation.
  EXPECT_EQ(after.arena, during.arena);
  EXPECT_GE(after.fordblks, before.fordblks + kBytes);
}

TEST(RetainFreedMemoryTest, EnvironmentVariableTurnsItOff) {
  ::setenv("R1KIT_RELEASE_MEMORY", "1", 1);
  EXPECT_FALSE(retain_freed_memory());
  ::unsetenv("R1KIT_RELEASE_MEMORY");
}
#endif

}  // namespace
}  // namespace r1kit
