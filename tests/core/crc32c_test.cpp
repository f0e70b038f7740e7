// CRC-32C (core/crc32c.h): published check values, running checksums, the hardware path
// against the table path at every alignment and tail length, and TensorFlow's mask.
#include "core/crc32c.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace r1kit {
namespace {

TEST(Crc32c, PublishedCheckValues) {
  struct Case {
    std::string bytes;
    uint32_t crc;
  };
  // "123456789": the CRC catalogue's check value; 32 bytes of 0x00, of 0xFF and
  // 0..31 ascending: RFC 3720 (iSCSI), appendix B.4.
  std::string ascending(32, '\0');
  for (int i = 0; i < 32; ++i) ascending[i] = static_cast<char>(i);
  const std::vector<Case> cases = {
      {"", 0x00000000u},
      {"123456789", 0xE3069283u},
      {std::string(32, '\0'), 0x8A9136AAu},
      {std::string(32, '\xff'), 0x62A8AB43u},
      {ascending, 0x46DD794Eu},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(crc32c(c.bytes.data(), c.bytes.size()), c.crc) << c.bytes.size() << " bytes";
    EXPECT_EQ(crc32c_portable(c.bytes.data(), c.bytes.size()), c.crc) << c.bytes.size() << " bytes";
    EXPECT_EQ(crc32c(std::string_view(c.bytes)), c.crc) << c.bytes.size() << " bytes";
  }
}

TEST(Crc32c, TensorFlowMask) {
  // The mask of TensorFlow's record format: rotate right by 15 bits, add 0xa282ead8.
  const uint32_t c = crc32c("abc");
  EXPECT_EQ(masked_crc32c("abc"), ((c >> 15) | (c << 17)) + 0xa282ead8u);
  // "123456789": 0xE3069283 rotated right by 15 is 0x2507C60D; plus 0xa282ead8.
  EXPECT_EQ(masked_crc32c("123456789"), 0xC78AB0E5u);
  EXPECT_EQ(masked_crc32c(""), 0xa282ead8u);
}

TEST(Crc32c, RunningChecksumEqualsTheWhole) {
  std::vector<unsigned char> buf(10007);
  std::mt19937 rng(5);
  for (auto& b : buf) b = static_cast<unsigned char>(rng());
  const uint32_t whole = crc32c(buf.data(), buf.size());
  for (size_t cut : {size_t{0}, size_t{1}, size_t{7}, size_t{8}, size_t{4096}, buf.size()}) {
    const uint32_t first = crc32c(buf.data(), cut);
    EXPECT_EQ(crc32c(buf.data() + cut, buf.size() - cut, first), whole) << "cut at " << cut;
  }
}

TEST(Crc32c, HardwareAndTablesAgreeAtEveryAlignment) {
  std::vector<unsigned char> buf(300);
  std::mt19937 rng(11);
  for (auto& b : buf) b = static_cast<unsigned char>(rng());
  for (size_t start = 0; start < 16; ++start)
    for (size_t n = 0; start + n <= buf.size(); n += 1 + n / 8)
      ASSERT_EQ(crc32c(buf.data() + start, n, 0x12345678u),
                crc32c_portable(buf.data() + start, n, 0x12345678u))
          << "start " << start << ", " << n << " bytes";
}

// Lengths around the three-stream blocks of the SSE4.2 path (3 x 256 B, 3 x 8 KiB).
TEST(Crc32c, HardwareAndTablesAgreeOnLongBuffers) {
  std::vector<unsigned char> buf(3 * 3 * 8192 + 3 * 256 + 64);
  std::mt19937 rng(13);
  for (auto& b : buf) b = static_cast<unsigned char>(rng());
  for (size_t start : {size_t{0}, size_t{3}, size_t{8}})
    for (size_t n :
         {size_t{767}, size_t{768}, size_t{769}, size_t{1536}, size_t{24575}, size_t{24576},
          size_t{24577}, size_t{24576 + 768 + 13}, size_t{49152}, buf.size() - start})
      ASSERT_EQ(crc32c(buf.data() + start, n), crc32c_portable(buf.data() + start, n))
          << "start " << start << ", " << n << " bytes";
  // A 4 MiB chunk, whole and as two running pieces.
  std::vector<unsigned char> chunk(4 << 20);
  for (auto& b : chunk) b = static_cast<unsigned char>(rng());
  const uint32_t whole = crc32c_portable(chunk.data(), chunk.size());
  EXPECT_EQ(crc32c(chunk.data(), chunk.size()), whole);
  EXPECT_EQ(crc32c(chunk.data() + 100001, chunk.size() - 100001, crc32c(chunk.data(), 100001)),
            whole);
}

TEST(Crc32c, EverySingleBitFlipChangesIt) {
  std::vector<unsigned char> buf(64, 0x5a);
  const uint32_t good = crc32c(buf.data(), buf.size());
  for (size_t i = 0; i < buf.size() * 8; ++i) {
    buf[i / 8] ^= static_cast<unsigned char>(1u << (i % 8));
    EXPECT_NE(crc32c(buf.data(), buf.size()), good) << "bit " << i;
    buf[i / 8] ^= static_cast<unsigned char>(1u << (i % 8));
  }
}

}  // namespace
}  // namespace r1kit
