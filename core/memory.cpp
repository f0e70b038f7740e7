// See memory.h.
#include "core/memory.h"

#include <cstdlib>
#include <cstring>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace r1kit {

bool retain_freed_memory() {
  const char* release = std::getenv("R1KIT_RELEASE_MEMORY");
  if (release && std::strcmp(release, "1") == 0) return false;
#if defined(__GLIBC__)
  // No mmap'd chunks: large blocks come from the heap and go back to it on free.
  if (mallopt(M_MMAP_MAX, 0) != 1) return false;
  // Never shrink the heap's top (the largest value mallopt takes is INT_MAX).
  return mallopt(M_TRIM_THRESHOLD, 0x7fffffff) == 1;
#else
  return false;
#endif
}

}  // namespace r1kit
