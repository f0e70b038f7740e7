// safetensors I/O: a strict mmap reader, an atomic streaming writer, FP8 E4M3 block
// dequantisation, and sharded Hugging Face checkpoints (model.safetensors.index.json).
//
// Follows the safetensors format (huggingface/safetensors, its README and Rust reader:
// u64 little-endian header length N, N bytes of JSON, then the tensor bytes, row-major,
// contiguous from offset 0 with no gaps) and DeepSeek-V3's FP8 weights (§3.3 of the
// paper, README_WEIGHTS.md of its release: an F8_E4M3 tensor `X.weight` with an F32
// sibling `X.weight_scale_inv` of 128x128 block scales; docs/model.md, "Loading rules").
//
// Differences from the reference implementation (huggingface/safetensors), on purpose:
// - The reader also rejects duplicate JSON keys (the Rust reader keeps one silently),
//   BOOL bytes other than 0/1 (on load), and ignores unknown fields inside an entry.
// - load() always returns an owning copy (never a view of the mapping), so a tensor
//   outlives its file. LibTorch 1.13 has no U16/U32/U64/F8 dtypes: load() returns
//   Unimplemented for them; load_raw() returns the bytes as the same-size signed type
//   (F8 -> kUInt8, U16 -> kInt16, ...).
// - The writer orders tensors as the reference writer does (element size descending,
//   then name), so every tensor starts at an offset aligned to its element size; the
//   header lists "__metadata__" first and then the tensors in data order.
//
// Thread-safety: a SafetensorsFile / SafetensorsCheckpoint is immutable after open();
// const methods may be called from many threads. The mapping assumes nobody truncates
// the file while it is open (that would raise SIGBUS, as with any mmap reader).
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"

namespace r1kit {

// The safetensors dtypes, in the reference's order.
enum class SafeDType {
  kBOOL,
  kU8,
  kI8,
  kF8_E4M3,
  kF8_E5M2,
  kI16,
  kU16,
  kF16,
  kBF16,
  kI32,
  kU32,
  kF32,
  kF64,
  kI64,
  kU64,
};

// "BF16" -> kBF16; nullopt for an unknown name (names are case-sensitive, as in files).
std::optional<SafeDType> parse_safe_dtype(std::string_view name);
// kBF16 -> "BF16".
std::string_view safe_dtype_name(SafeDType dtype);
// Bytes per element: 1, 2, 4 or 8.
int64_t safe_dtype_size(SafeDType dtype);
// The torch dtype load() returns, or nullopt when LibTorch 1.13 has none
// (U16, U32, U64, F8_E4M3, F8_E5M2).
std::optional<torch::Dtype> safe_dtype_to_torch(SafeDType dtype);
// The safetensors dtype written for a torch dtype; nullopt for types it cannot hold
// (complex, quantized, ...).
std::optional<SafeDType> torch_to_safe_dtype(torch::Dtype dtype);

// One tensor entry of a header.
struct TensorInfo {
  std::string name;            // the JSON key, e.g. "model.layers.0.mlp.gate.weight"
  SafeDType dtype;             // element type as stored
  std::vector<int64_t> shape;  // row-major dims; empty for a scalar
  uint64_t data_begin = 0;     // byte offset of the first byte, relative to the data buffer
  uint64_t data_end = 0;       // one past the last byte (exclusive), same origin

  int64_t numel() const;                                     // product of shape (1 for [])
  uint64_t nbytes() const { return data_end - data_begin; }  // numel * element size
};

// One safetensors file, validated and memory-mapped read-only for the object's life.
// Non-copyable and non-movable: hold it by the unique_ptr open() returns.
class SafetensorsFile {
 public:
  // Opens and validates `path`. NotFound if it does not exist; DataLoss naming the file
  // and the problem for every layout violation (see the .cpp for the full list).
  static StatusOr<std::unique_ptr<SafetensorsFile>> open(const std::string& path);
  // The same checks on a whole file's bytes already in memory (tests, fuzz/). The object
  // reads `bytes` in place, so they must outlive it; release() does nothing. `name`
  // stands for the path in messages and path().
  static StatusOr<std::unique_ptr<SafetensorsFile>> from_bytes(std::span<const uint8_t> bytes,
                                                               const std::string& name);

  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  // Every tensor, in data order (ascending data_begin).
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  // The entry called `name`, or nullptr.
  const TensorInfo* find(std::string_view name) const;
  // The stored bytes of `info`, which must be an entry of this file (from tensors() or
  // find()); the span lives as long as this object.
  std::span<const uint8_t> bytes(const TensorInfo& info) const;
  // The "__metadata__" map (empty when absent).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::string& path() const { return path_; }

  // A new contiguous CPU tensor holding a copy of `name`, with the matching torch dtype.
  // NotFound for a missing name; Unimplemented for U16/U32/U64/F8 (see load_raw and
  // SafetensorsCheckpoint::load for FP8); DataLoss for a BOOL byte other than 0/1.
  StatusOr<torch::Tensor> load(std::string_view name) const;
  // Like load(), but every dtype works: types LibTorch lacks come back as the signed or
  // unsigned integer of the same size holding the raw bits (F8_* -> kUInt8,
  // U16 -> kInt16, U32 -> kInt32, U64 -> kInt64).
  StatusOr<torch::Tensor> load_raw(std::string_view name) const;
  // Drops the mapping's resident pages that lie wholly inside `info`'s bytes (madvise
  // MADV_DONTNEED): the process's resident memory no longer counts them, and they are read
  // from the file again if touched. Safe while other threads read the file.
  void release(const TensorInfo& info) const;

 private:
  SafetensorsFile() = default;
  // Validates the header at map_ and fills the members below it (open's checks).
  Status parse_layout();

  std::string path_;                                  // as given to open()
  const uint8_t* map_ = nullptr;                      // the whole file, mmap'ed PROT_READ
  size_t map_size_ = 0;                               // file size in bytes
  bool owns_map_ = false;                             // open(): unmapped by the destructor
  uint64_t data_start_ = 0;                           // 8 + N: where the data buffer begins
  std::vector<TensorInfo> tensors_;                   // in data order
  std::map<std::string, size_t, std::less<>> index_;  // name -> position in tensors_
  std::map<std::string, std::string> metadata_;       // "__metadata__"
};

// ---- FP8 E4M3 (E4M3FN: bias 7, no infinities, S.1111.111 is NaN, subnormals) ----

// Exact value of an FP8 E4M3FN code: 0x38 = 1.0, 0x7E = 448, 0x01 = 2^-9, 0x7F = NaN.
float fp8_e4m3_to_float(uint8_t code);
// Nearest FP8 E4M3FN code, ties to even; saturates to +-448 (infinities included); NaN
// becomes 0x7F / 0xFF keeping the sign.
uint8_t float_to_fp8_e4m3(float value);

// Dequantises a row-major [rows, cols] F8_E4M3 matrix `w` with block scales
// `scale_inv` ([ceil(rows/block), ceil(cols/block)], any floating dtype, read as F32):
// out[i, j] = fp8(w[i, j]) * scale_inv[i / block, j / block], in F32 (DeepSeek-V3
// inference/kernel.py's weight_dequant). InvalidArgument when a size or the scale shape is wrong.
StatusOr<torch::Tensor> dequantize_fp8_block(std::span<const uint8_t> w, int64_t rows, int64_t cols,
                                             const torch::Tensor& scale_inv, int64_t block = 128);

// ---- Writing ----

// Writes `tensors` to `path` atomically (temporary file + rename), streaming each
// tensor's bytes. Layout as the reference writer: header padded with spaces to a
// multiple of 8, tensors ordered by element size descending, then by name. Tensors
// must be defined and on the CPU; non-contiguous ones are made contiguous.
// `dtype_override` writes a named tensor under another dtype of the same element size
// (a kUInt8 tensor as F8_E4M3, a kInt32 one as U32, ...). InvalidArgument for a
// duplicate or reserved ("__metadata__") name, an unsupported dtype, a CUDA tensor,
// or an override that names no tensor or changes the element size.
Status write_safetensors(const std::string& path,
                         const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                         const std::map<std::string, std::string>& metadata = {},
                         const std::map<std::string, SafeDType>& dtype_override = {});

// ---- Checkpoint directories (Hugging Face layout) ----

inline constexpr std::string_view kSafetensorsIndexName = "model.safetensors.index.json";
inline constexpr std::string_view kSafetensorsSingleName = "model.safetensors";
inline constexpr std::string_view kScaleInvSuffix = "_scale_inv";

// True for the FP8 block-scale siblings ("X.weight_scale_inv"), which callers that walk
// names() usually skip: load("X.weight") already applies them.
bool is_scale_inv(std::string_view name);

// All tensors of a checkpoint directory, possibly spread over shards. Move-only.
class SafetensorsCheckpoint {
 public:
  // Opens `dir`:
  // 1. model.safetensors.index.json present: its "weight_map" (tensor -> shard file
  //    name, no path separators) decides; every shard must open and hold every tensor
  //    mapped to it. Tensors a shard holds but the map does not list are ignored.
  // 2. else model.safetensors;
  // 3. else every *.safetensors in `dir`, sorted by name; a tensor in two files is
  //    DataLoss.
  // NotFound when `dir` is missing or holds no safetensors file.
  static StatusOr<SafetensorsCheckpoint> open_dir(const std::string& dir);

  SafetensorsCheckpoint(SafetensorsCheckpoint&&) = default;
  SafetensorsCheckpoint& operator=(SafetensorsCheckpoint&&) = default;

  // Every tensor name, sorted, "_scale_inv" siblings included.
  std::vector<std::string> names() const;
  bool contains(std::string_view name) const { return entries_.count(name) > 0; }
  // The entry for `name`, or nullptr.
  const TensorInfo* info(std::string_view name) const;
  // The shard holding `name`, or nullptr.
  const SafetensorsFile* file_of(std::string_view name) const;
  // The opened shard files, in the order opened.
  const std::vector<std::unique_ptr<SafetensorsFile>>& files() const { return files_; }

  // Loads `name` like SafetensorsFile::load, except that an F8_E4M3 2-D tensor with a
  // sibling "<name>_scale_inv" comes back dequantised to F32 [rows, cols].
  StatusOr<torch::Tensor> load(std::string_view name) const;
  // Copies `name` into `dst` (a CPU tensor of the same shape, any dtype), converting the
  // element type on the way straight from the mapping: no tensor in the stored dtype is made,
  // except for FP8 (dequantised as load() does) and BOOL (validated). Then releases the
  // tensor's pages (SafetensorsFile::release), so that copying a whole checkpoint keeps
  // about one tensor of the file resident. InvalidArgument for a shape mismatch.
  Status copy_into(std::string_view name, const torch::Tensor& dst) const;

 private:
  SafetensorsCheckpoint() = default;
  struct Entry {
    const SafetensorsFile* file;  // the shard holding the tensor (owned by files_)
    const TensorInfo* info;       // its entry inside that shard
  };
  std::string dir_;                                      // as given to open_dir()
  std::vector<std::unique_ptr<SafetensorsFile>> files_;  // every opened shard
  std::map<std::string, Entry, std::less<>> entries_;    // tensor name -> where it lives
};

// Writes a checkpoint's weights into `dir` (created if missing). When the tensors'
// bytes exceed `max_shard_bytes`, they are split greedily in the given order into
// model-0000i-of-0000N.safetensors plus model.safetensors.index.json
// ({"metadata":{"total_size":bytes},"weight_map":{...}}); otherwise one
// model.safetensors. Each file is written atomically, shards before the index; a stale
// index (or stale model.safetensors) from an earlier save is removed so open_dir() reads
// what was written. `metadata` goes into every file's "__metadata__".
Status write_sharded(const std::string& dir,
                     const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                     int64_t max_shard_bytes,
                     const std::map<std::string, std::string>& metadata = {},
                     const std::map<std::string, SafeDType>& dtype_override = {});

}  // namespace r1kit
