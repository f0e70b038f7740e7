// CRC-32C: see crc32c.h. The table version is slicing-by-8 (Intel's); the SSE4.2
// version runs three independent streams over three adjacent blocks (the crc32
// instruction has a latency of 3 cycles and a throughput of 1) and joins them with
// "append n zero bytes" operators, as in Mark Adler's crc32c.c.
#include "core/crc32c.h"

#include <array>
#include <bit>
#include <cstring>

#if defined(__x86_64__)
#include <nmmintrin.h>
#elif defined(__aarch64__) && defined(__ARM_FEATURE_CRC32)
#include <arm_acle.h>
#endif

namespace r1kit {
namespace {

constexpr uint32_t kPoly = 0x82F63B78u;  // reflected Castagnoli polynomial

// kTables[k][b]: the CRC of byte b followed by k zero bytes.
using Tables = std::array<std::array<uint32_t, 256>, 8>;

constexpr Tables make_tables() {
  Tables t{};
  for (uint32_t b = 0; b < 256; ++b) {
    uint32_t c = b;
    for (int bit = 0; bit < 8; ++bit) c = (c >> 1) ^ (kPoly & (0u - (c & 1u)));
    t[0][b] = c;
  }
  for (uint32_t b = 0; b < 256; ++b)
    for (size_t k = 1; k < 8; ++k) t[k][b] = (t[k - 1][b] >> 8) ^ t[0][t[k - 1][b] & 0xff];
  return t;
}

constexpr Tables kTables = make_tables();

// ---- Appending zero bytes to a raw CRC register: a linear map over GF(2) ----

// A 32x32 GF(2) matrix, as 32 columns.
using Gf2Matrix = std::array<uint32_t, 32>;

constexpr uint32_t gf2_times(const Gf2Matrix& m, uint32_t v) {
  uint32_t sum = 0;
  for (size_t i = 0; v != 0; ++i, v >>= 1)
    if (v & 1) sum ^= m[i];
  return sum;
}

constexpr Gf2Matrix gf2_square(const Gf2Matrix& m) {
  Gf2Matrix out{};
  for (size_t i = 0; i < 32; ++i) out[i] = gf2_times(m, m[i]);
  return out;
}

// zeros[k][b]: byte k of the register (value b) after `len` zero bytes, `len` a power
// of two. The register after the zeros is the XOR over its four bytes.
using ZerosTable = std::array<std::array<uint32_t, 256>, 4>;

constexpr ZerosTable make_zeros(size_t len) {
  Gf2Matrix op{};  // one zero bit
  op[0] = kPoly;
  for (size_t i = 1; i < 32; ++i) op[i] = 1u << (i - 1);
  for (int i = 0; i < 3; ++i) op = gf2_square(op);  // 8 zero bits: one zero byte
  for (; len > 1; len >>= 1) op = gf2_square(op);
  ZerosTable z{};
  for (uint32_t b = 0; b < 256; ++b)
    for (size_t k = 0; k < 4; ++k) z[k][b] = gf2_times(op, b << (8 * k));
  return z;
}

constexpr size_t kLongBlock = 8192;  // bytes per stream of the long blocks (3 x 8 KiB)
constexpr size_t kShortBlock = 256;  // and of the short ones (3 x 256 B)
constexpr ZerosTable kZerosLongBlock = make_zeros(kLongBlock);
constexpr ZerosTable kZerosShortBlock = make_zeros(kShortBlock);

constexpr uint32_t zeros_shift(const ZerosTable& z, uint32_t c) {
  return z[0][c & 0xff] ^ z[1][(c >> 8) & 0xff] ^ z[2][(c >> 16) & 0xff] ^ z[3][c >> 24];
}

// `c` is the raw register (before the final XOR).
uint32_t bytes_sw(uint32_t c, const unsigned char* p, size_t n) {
  for (size_t i = 0; i < n; ++i) c = kTables[0][(c ^ p[i]) & 0xff] ^ (c >> 8);
  return c;
}

uint32_t crc_sw(uint32_t c, const unsigned char* p, size_t n) {
  if constexpr (std::endian::native != std::endian::little) return bytes_sw(c, p, n);
  while (n > 0 && reinterpret_cast<uintptr_t>(p) % 8 != 0) {
    c = kTables[0][(c ^ *p++) & 0xff] ^ (c >> 8);
    --n;
  }
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    w ^= c;
    c = kTables[7][w & 0xff] ^ kTables[6][(w >> 8) & 0xff] ^ kTables[5][(w >> 16) & 0xff] ^
        kTables[4][(w >> 24) & 0xff] ^ kTables[3][(w >> 32) & 0xff] ^ kTables[2][(w >> 40) & 0xff] ^
        kTables[1][(w >> 48) & 0xff] ^ kTables[0][w >> 56];
  }
  return bytes_sw(c, p, n);
}

#if defined(__x86_64__)

// Three streams over blocks of `len` bytes each (a multiple of 8), joined.
__attribute__((target("sse4.2"))) inline uint32_t crc_hw_3way(uint32_t c, const unsigned char*& p,
                                                              size_t& n, size_t len,
                                                              const ZerosTable& zeros) {
  for (; n >= 3 * len; p += 3 * len, n -= 3 * len) {
    uint64_t c0 = c, c1 = 0, c2 = 0;
    for (size_t i = 0; i < len; i += 8) {
      uint64_t w0, w1, w2;
      std::memcpy(&w0, p + i, 8);
      std::memcpy(&w1, p + len + i, 8);
      std::memcpy(&w2, p + 2 * len + i, 8);
      c0 = _mm_crc32_u64(c0, w0);
      c1 = _mm_crc32_u64(c1, w1);
      c2 = _mm_crc32_u64(c2, w2);
    }
    c = zeros_shift(zeros, static_cast<uint32_t>(c0)) ^ static_cast<uint32_t>(c1);
    c = zeros_shift(zeros, c) ^ static_cast<uint32_t>(c2);
  }
  return c;
}

__attribute__((target("sse4.2"))) uint32_t crc_hw(uint32_t c, const unsigned char* p, size_t n) {
  while (n > 0 && reinterpret_cast<uintptr_t>(p) % 8 != 0) {
    c = _mm_crc32_u8(c, *p++);
    --n;
  }
  c = crc_hw_3way(c, p, n, kLongBlock, kZerosLongBlock);
  c = crc_hw_3way(c, p, n, kShortBlock, kZerosShortBlock);
  uint64_t c64 = c;
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    c64 = _mm_crc32_u64(c64, w);
  }
  c = static_cast<uint32_t>(c64);
  for (; n > 0; --n) c = _mm_crc32_u8(c, *p++);
  return c;
}

bool have_hw() {
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("sse4.2") != 0;
  }();
  return has;
}

#elif defined(__aarch64__) && defined(__ARM_FEATURE_CRC32)

uint32_t crc_hw(uint32_t c, const unsigned char* p, size_t n) {
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    c = __crc32cd(c, w);
  }
  for (; n > 0; --n) c = __crc32cb(c, *p++);
  return c;
}

bool have_hw() {
  return true;
}

#else

uint32_t crc_hw(uint32_t c, const unsigned char* p, size_t n) {
  return crc_sw(c, p, n);
}

bool have_hw() {
  return false;
}

#endif

}  // namespace

uint32_t crc32c(const void* data, size_t n, uint32_t crc) {
  const auto* p = static_cast<const unsigned char*>(data);
  return ~(have_hw() ? crc_hw(~crc, p, n) : crc_sw(~crc, p, n));
}

uint32_t crc32c_portable(const void* data, size_t n, uint32_t crc) {
  return ~crc_sw(~crc, static_cast<const unsigned char*>(data), n);
}

}  // namespace r1kit
