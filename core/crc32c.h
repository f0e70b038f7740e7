// CRC-32C (Castagnoli): the checksum of a tensor in a weight update
// (proto/rollout.proto, WeightChunk.checksum), computed by the client before it sends a
// tensor and by the worker as the chunks arrive, and, masked, of every record of a
// TensorBoard event file (core/tensorboard.h).
//
// Chosen for speed: SSE4.2 (every x86-64 CPU since 2008) and ARMv8 have an instruction
// for it; run over three streams at once it checks several GB/s, so checking a model
// costs a few percent of sending it (the byte-at-a-time FNV-1a 64 used before took more
// than half of an update's time; bench/RESULTS.md). It guards against
// corruption and protocol bugs, not against an attacker (the bearer token and TLS do
// that).
//
// Thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace r1kit {

// CRC-32C of `n` bytes: reflected polynomial 0x82F63B78, initial value and final XOR
// 0xFFFFFFFF (the CRC of iSCSI, ext4 and the SSE4.2 crc32 instruction;
// crc32c("123456789") = 0xE3069283). `crc` continues a running checksum:
// crc32c(b, m, crc32c(a, n)) is the CRC of a followed by b. Uses the CPU's instruction
// when it has one (checked once, at run time, on x86-64), else tables.
uint32_t crc32c(const void* data, size_t n, uint32_t crc = 0);

// The same with tables only (slicing-by-8, ~1-2 GB/s), whatever the CPU; for tests.
uint32_t crc32c_portable(const void* data, size_t n, uint32_t crc = 0);

// The same over the bytes of `data`.
inline uint32_t crc32c(std::string_view data, uint32_t crc = 0) {
  return crc32c(data.data(), data.size(), crc);
}

// The masked CRC of TensorFlow's record format (core/tensorboard.h): the CRC-32C
// rotated right by 15 bits plus 0xa282ead8.
inline uint32_t masked_crc32c(std::string_view data) {
  const uint32_t c = crc32c(data);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

}  // namespace r1kit
