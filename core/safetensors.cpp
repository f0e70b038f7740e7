// safetensors reader/writer, FP8 E4M3 dequantisation and sharded checkpoints.
// See safetensors.h for the format (safetensors, DeepSeek-V3 FP8) and the deliberate
// differences.
//
// open() rejects, each with a DataLoss naming the file and the problem:
//   a file shorter than 8 bytes; a header length of 0, above 100 MB or past the end of
//   the file; a header that is not valid UTF-8 JSON, has a duplicate key, or is not an
//   object; an entry that is not an object or lacks a string "dtype", an array "shape"
//   or a 2-element "data_offsets"; an unknown dtype; a shape entry that is negative or
//   not an integer; numel * element size overflowing int64; data_offsets with
//   begin > end, non-integers or negatives, or end - begin != numel * element size;
//   tensors that do not tile the data buffer from 0 without gaps or overlaps; a data
//   buffer longer or shorter than the last end; "__metadata__" that is not a
//   string -> string object.
#include "core/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "core/atomic_file.h"
#include "core/json.h"
#include "core/logging.h"

namespace r1kit {
namespace fs = std::filesystem;
using json = nlohmann::json;

static_assert(std::endian::native == std::endian::little,
              "safetensors files are little-endian; r1kit copies bytes as they are");

namespace {

constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // the reference's MAX_HEADER_SIZE

struct DTypeRow {
  SafeDType dtype;        // the enum value
  std::string_view name;  // as written in headers
  int64_t size;           // bytes per element
};
constexpr std::array<DTypeRow, 15> kDTypes = {{
    {SafeDType::kBOOL, "BOOL", 1},
    {SafeDType::kU8, "U8", 1},
    {SafeDType::kI8, "I8", 1},
    {SafeDType::kF8_E4M3, "F8_E4M3", 1},
    {SafeDType::kF8_E5M2, "F8_E5M2", 1},
    {SafeDType::kI16, "I16", 2},
    {SafeDType::kU16, "U16", 2},
    {SafeDType::kF16, "F16", 2},
    {SafeDType::kBF16, "BF16", 2},
    {SafeDType::kI32, "I32", 4},
    {SafeDType::kU32, "U32", 4},
    {SafeDType::kF32, "F32", 4},
    {SafeDType::kF64, "F64", 8},
    {SafeDType::kI64, "I64", 8},
    {SafeDType::kU64, "U64", 8},
}};

// Parses `text` as JSON without throwing; sets *duplicate to the first key seen twice
// in one object. Returns a discarded value on a syntax error.
json parse_json_checked(const char* begin, const char* end, std::string* duplicate) {
  std::vector<std::set<std::string>> keys;  // one set per open object
  json::parser_callback_t cb = [&](int /*depth*/, json::parse_event_t event, json& parsed) -> bool {
    switch (event) {
      case json::parse_event_t::object_start: keys.emplace_back(); break;
      case json::parse_event_t::object_end:
        if (!keys.empty()) keys.pop_back();
        break;
      case json::parse_event_t::key:
        if (!keys.empty() && parsed.is_string() &&
            !keys.back().insert(parsed.get<std::string>()).second && duplicate->empty())
          *duplicate = parsed.get<std::string>();
        break;
      default: break;
    }
    return true;
  };
  try {
    return json::parse(begin, end, cb, /*allow_exceptions=*/false);
  } catch (const std::exception&) {  // belt and braces: nothing escapes
    return json(json::value_t::discarded);
  }
}

// Reads a non-negative JSON integer; nullopt for floats, negatives, non-numbers.
std::optional<uint64_t> as_u64(const json& v) {
  if (!v.is_number_unsigned()) return std::nullopt;
  return v.get<uint64_t>();
}

std::string describe(const json& v) {
  try {
    std::string s = v.dump();
    if (s.size() > 60) s = s.substr(0, 57) + "...";
    return s;
  } catch (const std::exception&) {
    return "<unprintable>";
  }
}

// Validates one header entry into `info`.
Status parse_entry(const std::string& path, const std::string& name, const json& e,
                   TensorInfo* info) {
  auto bad = [&](std::string_view what) {
    return DataLoss("{}: tensor '{}': {}", path, name, what);
  };
  if (!e.is_object()) return bad("entry is not a JSON object");
  info->name = name;

  auto dt = e.find("dtype");
  if (dt == e.end()) return bad("missing \"dtype\"");
  if (!dt->is_string()) return bad("\"dtype\" is not a string");
  auto parsed = parse_safe_dtype(dt->get_ref<const std::string&>());
  if (!parsed) return bad(fmt::format("unknown dtype {}", describe(*dt)));
  info->dtype = *parsed;

  auto sh = e.find("shape");
  if (sh == e.end()) return bad("missing \"shape\"");
  if (!sh->is_array()) return bad("\"shape\" is not an array");
  uint64_t numel = 1;
  info->shape.clear();
  for (const json& d : *sh) {
    if (d.is_number_integer() && !d.is_number_unsigned())
      return bad(fmt::format("negative shape entry {}", describe(d)));
    auto v = as_u64(d);
    if (!v) return bad(fmt::format("shape entry {} is not an integer", describe(d)));
    if (*v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
        __builtin_mul_overflow(numel, *v, &numel))
      return bad(fmt::format("shape {} overflows", describe(*sh)));
    info->shape.push_back(static_cast<int64_t>(*v));
  }
  uint64_t nbytes = 0;
  if (__builtin_mul_overflow(numel, static_cast<uint64_t>(safe_dtype_size(info->dtype)), &nbytes) ||
      nbytes > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
    return bad(fmt::format("shape {} overflows", describe(*sh)));

  auto off = e.find("data_offsets");
  if (off == e.end()) return bad("missing \"data_offsets\"");
  if (!off->is_array() || off->size() != 2)
    return bad(fmt::format("\"data_offsets\" {} is not [begin, end]", describe(*off)));
  auto begin = as_u64((*off)[0]);
  auto end = as_u64((*off)[1]);
  if (!begin || !end)
    return bad(fmt::format("\"data_offsets\" {} are not non-negative integers", describe(*off)));
  if (*begin > *end) return bad(fmt::format("data_offsets [{}, {}]: begin > end", *begin, *end));
  if (*end - *begin != nbytes)
    return bad(fmt::format("data_offsets [{}, {}] hold {} bytes, but {} {} needs {}", *begin, *end,
                           *end - *begin, safe_dtype_name(info->dtype), describe(*sh), nbytes));
  info->data_begin = *begin;
  info->data_end = *end;
  return OkStatus();
}

}  // namespace

// ---- dtypes ----

std::optional<SafeDType> parse_safe_dtype(std::string_view name) {
  for (const auto& row : kDTypes)
    if (row.name == name) return row.dtype;
  return std::nullopt;
}

std::string_view safe_dtype_name(SafeDType dtype) {
  return kDTypes[static_cast<size_t>(dtype)].name;
}

int64_t safe_dtype_size(SafeDType dtype) {
  return kDTypes[static_cast<size_t>(dtype)].size;
}

std::optional<torch::Dtype> safe_dtype_to_torch(SafeDType dtype) {
  switch (dtype) {
    case SafeDType::kBOOL: return torch::kBool;
    case SafeDType::kU8: return torch::kUInt8;
    case SafeDType::kI8: return torch::kInt8;
    case SafeDType::kI16: return torch::kInt16;
    case SafeDType::kI32: return torch::kInt32;
    case SafeDType::kI64: return torch::kInt64;
    case SafeDType::kF16: return torch::kHalf;
    case SafeDType::kBF16: return torch::kBFloat16;
    case SafeDType::kF32: return torch::kFloat;
    case SafeDType::kF64: return torch::kDouble;
    default: return std::nullopt;
  }
}

std::optional<SafeDType> torch_to_safe_dtype(torch::Dtype dtype) {
  switch (dtype) {
    case torch::kBool: return SafeDType::kBOOL;
    case torch::kUInt8: return SafeDType::kU8;
    case torch::kInt8: return SafeDType::kI8;
    case torch::kInt16: return SafeDType::kI16;
    case torch::kInt32: return SafeDType::kI32;
    case torch::kInt64: return SafeDType::kI64;
    case torch::kHalf: return SafeDType::kF16;
    case torch::kBFloat16: return SafeDType::kBF16;
    case torch::kFloat: return SafeDType::kF32;
    case torch::kDouble: return SafeDType::kF64;
    default: return std::nullopt;
  }
}

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;  // validated not to overflow at open()
  return n;
}

// ---- SafetensorsFile ----

SafetensorsFile::~SafetensorsFile() {
  if (map_ && owns_map_) ::munmap(const_cast<uint8_t*>(map_), map_size_);
}

StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return NotFound("{}: no such file", path);
    return Internal("{}: cannot open: {}", path, std::strerror(errno));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return Internal("{}: stat: {}", path, std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return InvalidArgument("{}: not a regular file", path);
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    return DataLoss("{}: file is {} bytes, shorter than the 8-byte header length", path, size);
  }
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  int map_err = errno;
  ::close(fd);
  if (map == MAP_FAILED) return Internal("{}: mmap: {}", path, std::strerror(map_err));

  // From here the destructor unmaps on every error path.
  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  file->map_ = static_cast<const uint8_t*>(map);
  file->map_size_ = size;
  file->owns_map_ = true;
  RETURN_IF_ERROR(file->parse_layout());
  return file;
}

StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::from_bytes(
    std::span<const uint8_t> bytes, const std::string& name) {
  if (bytes.size() < 8) {
    return DataLoss("{}: file is {} bytes, shorter than the 8-byte header length", name,
                    bytes.size());
  }
  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = name;
  file->map_ = bytes.data();
  file->map_size_ = bytes.size();
  RETURN_IF_ERROR(file->parse_layout());
  return file;
}

Status SafetensorsFile::parse_layout() {
  const std::string& path = path_;
  const uint64_t size = map_size_;
  SafetensorsFile* file = this;
  uint64_t n = 0;
  std::memcpy(&n, file->map_, 8);  // little-endian, as is this machine
  if (n == 0) return DataLoss("{}: header length is 0", path);
  if (n > kMaxHeaderBytes)
    return DataLoss("{}: header length {} exceeds the {} byte limit", path, n, kMaxHeaderBytes);
  if (n > size - 8)
    return DataLoss("{}: header length {} runs past the end of the {}-byte file", path, n, size);
  file->data_start_ = 8 + n;
  const uint64_t data_size = size - 8 - n;

  const char* hbegin = reinterpret_cast<const char*>(file->map_ + 8);
  if (Status deep = check_json_depth(std::string_view(hbegin, n), path + ": header"); !deep.ok())
    return DataLoss("{}", deep.message());
  std::string duplicate;
  json header = parse_json_checked(hbegin, hbegin + n, &duplicate);
  if (header.is_discarded()) return DataLoss("{}: header is not valid JSON", path);
  if (!header.is_object()) return DataLoss("{}: header is not a JSON object", path);
  if (!duplicate.empty()) return DataLoss("{}: header has duplicate key '{}'", path, duplicate);

  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      const json& m = it.value();
      if (!m.is_object()) return DataLoss("{}: \"__metadata__\" is not a JSON object", path);
      for (auto mi = m.begin(); mi != m.end(); ++mi) {
        if (!mi->is_string())
          return DataLoss("{}: \"__metadata__\" key '{}' is not a string", path, mi.key());
        file->metadata_[mi.key()] = mi->get<std::string>();
      }
      continue;
    }
    TensorInfo info;
    RETURN_IF_ERROR(parse_entry(path, it.key(), it.value(), &info));
    file->tensors_.push_back(std::move(info));
  }

  auto& ts = file->tensors_;
  std::sort(ts.begin(), ts.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return std::tie(a.data_begin, a.data_end, a.name) < std::tie(b.data_begin, b.data_end, b.name);
  });
  uint64_t cursor = 0;
  const std::string* prev = nullptr;
  for (const TensorInfo& t : ts) {
    if (t.data_begin > cursor) {
      return DataLoss(
          "{}: gap in the data buffer: bytes [{}, {}) before tensor '{}' belong "
          "to no tensor",
          path, cursor, t.data_begin, t.name);
    }
    if (t.data_begin < cursor) {
      return DataLoss("{}: tensor '{}' [{}, {}) overlaps tensor '{}' (ends at {})", path, t.name,
                      t.data_begin, t.data_end, prev ? *prev : std::string(), cursor);
    }
    cursor = t.data_end;
    prev = &t.name;
  }
  if (cursor != data_size) {
    return DataLoss("{}: the tensors cover {} bytes but the data buffer is {} bytes ({})", path,
                    cursor, data_size, cursor < data_size ? "trailing bytes" : "truncated file");
  }
  for (size_t i = 0; i < ts.size(); ++i) file->index_.emplace(ts[i].name, i);
  return OkStatus();
}

const TensorInfo* SafetensorsFile::find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

std::span<const uint8_t> SafetensorsFile::bytes(const TensorInfo& info) const {
  return {map_ + data_start_ + info.data_begin, static_cast<size_t>(info.nbytes())};
}

namespace {

// The same-size torch dtype holding the raw bits of `dtype`.
torch::Dtype raw_torch_dtype(SafeDType dtype) {
  if (auto t = safe_dtype_to_torch(dtype)) return *t;
  switch (safe_dtype_size(dtype)) {
    case 1: return torch::kUInt8;
    case 2: return torch::kInt16;
    case 4: return torch::kInt32;
    default: return torch::kInt64;
  }
}

StatusOr<torch::Tensor> copy_out(const SafetensorsFile& file, const TensorInfo& info,
                                 torch::Dtype dtype) {
  std::span<const uint8_t> src = file.bytes(info);
  if (info.dtype == SafeDType::kBOOL) {
    for (size_t i = 0; i < src.size(); ++i) {
      if (src[i] > 1) {
        return DataLoss("{}: tensor '{}': BOOL byte {} at element {} is not 0 or 1", file.path(),
                        info.name, src[i], i);
      }
    }
  }
  try {
    torch::Tensor t = torch::empty(info.shape, torch::TensorOptions().dtype(dtype));
    if (!src.empty()) std::memcpy(t.data_ptr(), src.data(), src.size());
    return t;
  } catch (const std::exception& e) {
    return Internal("{}: tensor '{}': {}", file.path(), info.name, e.what());
  }
}

}  // namespace

StatusOr<torch::Tensor> SafetensorsFile::load(std::string_view name) const {
  const TensorInfo* info = find(name);
  if (!info) return NotFound("{}: no tensor '{}'", path_, name);
  auto dtype = safe_dtype_to_torch(info->dtype);
  if (!dtype) {
    return Unimplemented(
        "{}: tensor '{}' has dtype {}, which LibTorch 1.13 cannot hold (use load_raw, or "
        "SafetensorsCheckpoint::load for F8_E4M3 with a _scale_inv sibling)",
        path_, name, safe_dtype_name(info->dtype));
  }
  return copy_out(*this, *info, *dtype);
}

StatusOr<torch::Tensor> SafetensorsFile::load_raw(std::string_view name) const {
  const TensorInfo* info = find(name);
  if (!info) return NotFound("{}: no tensor '{}'", path_, name);
  return copy_out(*this, *info, raw_torch_dtype(info->dtype));
}

void SafetensorsFile::release(const TensorInfo& info) const {
  if (!owns_map_) return;  // from_bytes: the caller's memory, not ours to drop
  static const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t data = reinterpret_cast<uintptr_t>(map_) + data_start_;
  const uintptr_t begin = (data + info.data_begin + page - 1) / page * page;
  const uintptr_t end = (data + info.data_end) / page * page;
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

// ---- FP8 ----

float fp8_e4m3_to_float(uint8_t code) {
  const bool negative = code & 0x80;
  const int exp = (code >> 3) & 0xF;
  const int mant = code & 0x7;
  float v;
  if (exp == 0xF && mant == 0x7) {
    v = std::numeric_limits<float>::quiet_NaN();
  } else if (exp == 0) {
    v = std::ldexp(static_cast<float>(mant), -9);  // subnormal: m/8 * 2^-6
  } else {
    v = std::ldexp(1.0f + static_cast<float>(mant) / 8.0f, exp - 7);
  }
  return negative ? -v : v;
}

uint8_t float_to_fp8_e4m3(float value) {
  const uint8_t sign = std::signbit(value) ? 0x80 : 0x00;
  if (std::isnan(value)) return sign | 0x7F;
  const float a = std::fabs(value);
  if (a >= 448.0f) return sign | 0x7E;  // saturate (inf included)
  int code;
  if (a < 0.015625f) {  // below 2^-6: subnormal steps of 2^-9; code 8 is 2^-6 itself
    code = static_cast<int>(std::nearbyint(a * 512.0f));  // exact scaling, ties to even
  } else {
    int k = 0;
    const float f = std::frexp(a, &k);                            // a = f * 2^k, f in [0.5, 1)
    const int e = k - 1;                                          // a = (2f) * 2^e, e in [-6, 8]
    const float q = (2.0f * f - 1.0f) * 8.0f;                     // mantissa in eighths, exact
    code = ((e + 7) << 3) + static_cast<int>(std::nearbyint(q));  // carry bumps exponent
    if (code > 0x7E) code = 0x7E;
  }
  return sign | static_cast<uint8_t>(code);
}

StatusOr<torch::Tensor> dequantize_fp8_block(std::span<const uint8_t> w, int64_t rows, int64_t cols,
                                             const torch::Tensor& scale_inv, int64_t block) {
  if (rows < 0 || cols < 0 || block <= 0)
    return InvalidArgument("dequantize_fp8_block: rows={} cols={} block={}", rows, cols, block);
  int64_t n = 0;
  if (__builtin_mul_overflow(rows, cols, &n) || static_cast<uint64_t>(n) != w.size())
    return InvalidArgument("dequantize_fp8_block: {} bytes for a [{}, {}] matrix", w.size(), rows,
                           cols);
  const int64_t sr = (rows + block - 1) / block;
  const int64_t sc = (cols + block - 1) / block;
  if (!scale_inv.defined() || scale_inv.dim() != 2 || scale_inv.size(0) != sr ||
      scale_inv.size(1) != sc || !scale_inv.is_floating_point()) {
    return InvalidArgument(
        "dequantize_fp8_block: scale_inv must be floating [{}, {}] for a [{}, {}] weight with "
        "block {}, got {} {}",
        sr, sc, rows, cols, block,
        scale_inv.defined() ? std::string(c10::toString(scale_inv.scalar_type())) : "undefined",
        scale_inv.defined() ? fmt::format("{}", fmt::join(scale_inv.sizes(), ",")) : "");
  }
  static const std::array<float, 256> kTable = [] {
    std::array<float, 256> t{};
    for (int i = 0; i < 256; ++i) t[i] = fp8_e4m3_to_float(static_cast<uint8_t>(i));
    return t;
  }();
  torch::Tensor s = scale_inv.to(torch::kFloat).contiguous();
  torch::Tensor out = torch::empty({rows, cols}, torch::kFloat);
  const float* sp = s.data_ptr<float>();
  float* op = out.data_ptr<float>();
  for (int64_t i = 0; i < rows; ++i) {
    const float* srow = sp + (i / block) * sc;
    const uint8_t* wrow = w.data() + i * cols;
    float* orow = op + i * cols;
    for (int64_t j = 0; j < cols; ++j) orow[j] = kTable[wrow[j]] * srow[j / block];
  }
  return out;
}

// ---- Writer ----

namespace {

struct WriteItem {
  std::string name;      // tensor name
  torch::Tensor tensor;  // CPU, strided, detached (maybe non-contiguous)
  SafeDType dtype;       // dtype written in the header
  uint64_t nbytes;       // numel * element size
};

}  // namespace

Status write_safetensors(const std::string& path,
                         const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                         const std::map<std::string, std::string>& metadata,
                         const std::map<std::string, SafeDType>& dtype_override) {
  std::vector<WriteItem> items;
  items.reserve(tensors.size());
  std::set<std::string_view> seen;
  for (const auto& [name, t] : tensors) {
    if (name == "__metadata__")
      return InvalidArgument("{}: tensor name '__metadata__' is reserved", path);
    if (!seen.insert(name).second)
      return InvalidArgument("{}: duplicate tensor name '{}'", path, name);
    if (!t.defined()) return InvalidArgument("{}: tensor '{}' is undefined", path, name);
    if (!t.device().is_cpu())
      return InvalidArgument("{}: tensor '{}' is on {}, not the CPU", path, name, t.device().str());
    if (t.layout() != torch::kStrided)
      return InvalidArgument("{}: tensor '{}' is not a dense (strided) tensor", path, name);
    auto dtype = torch_to_safe_dtype(t.scalar_type());
    if (!dtype)
      return InvalidArgument("{}: tensor '{}' has dtype {}, which safetensors cannot hold", path,
                             name, c10::toString(t.scalar_type()));
    if (auto o = dtype_override.find(name); o != dtype_override.end()) {
      if (safe_dtype_size(o->second) != safe_dtype_size(*dtype))
        return InvalidArgument(
            "{}: tensor '{}': override to {} changes the element size ({} -> {})", path, name,
            safe_dtype_name(o->second), safe_dtype_size(*dtype), safe_dtype_size(o->second));
      dtype = o->second;
    }
    items.push_back({name, t.detach(), *dtype,
                     static_cast<uint64_t>(t.numel()) * static_cast<uint64_t>(t.element_size())});
  }
  for (const auto& [name, d] : dtype_override)
    if (!seen.count(name))
      return InvalidArgument("{}: dtype override for '{}', which is not a tensor here", path, name);

  // The reference writer's order: larger alignment first, then by name.
  std::stable_sort(items.begin(), items.end(), [](const WriteItem& a, const WriteItem& b) {
    const int64_t sa = safe_dtype_size(a.dtype), sb = safe_dtype_size(b.dtype);
    if (sa != sb) return sa > sb;
    return a.name < b.name;
  });

  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json m = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
    header["__metadata__"] = std::move(m);
  }
  uint64_t offset = 0;
  for (const WriteItem& it : items) {
    nlohmann::ordered_json e = nlohmann::ordered_json::object();
    e["dtype"] = std::string(safe_dtype_name(it.dtype));
    e["shape"] = it.tensor.sizes().vec();
    e["data_offsets"] = {offset, offset + it.nbytes};
    header[it.name] = std::move(e);
    offset += it.nbytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const std::exception& e) {  // invalid UTF-8 in a name or metadata value
    return InvalidArgument("{}: cannot encode the header: {}", path, e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');
  if (text.size() > kMaxHeaderBytes)
    return InvalidArgument("{}: header of {} bytes exceeds the {} byte limit", path, text.size(),
                           kMaxHeaderBytes);

  return write_file_atomic_with(path, [&](std::FILE* f) -> Status {
    const uint64_t n = text.size();
    if (std::fwrite(&n, 1, 8, f) != 8 || std::fwrite(text.data(), 1, text.size(), f) != text.size())
      return Internal("{}: write: {}", path, std::strerror(errno));
    for (const WriteItem& it : items) {
      if (it.nbytes == 0) continue;
      torch::Tensor c = it.tensor.contiguous();  // one tensor at a time: no giant buffer
      if (std::fwrite(c.data_ptr(), 1, it.nbytes, f) != it.nbytes)
        return Internal("{}: write tensor '{}': {}", path, it.name, std::strerror(errno));
    }
    return OkStatus();
  });
}

// ---- Checkpoints ----

bool is_scale_inv(std::string_view name) {
  return name.size() > kScaleInvSuffix.size() && name.ends_with(kScaleInvSuffix);
}

StatusOr<SafetensorsCheckpoint> SafetensorsCheckpoint::open_dir(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return NotFound("{}: no such directory", dir);
  SafetensorsCheckpoint ckpt;
  ckpt.dir_ = dir;
  const fs::path root(dir);
  const std::string index_path = (root / kSafetensorsIndexName).string();
  const std::string single_path = (root / kSafetensorsSingleName).string();

  if (fs::exists(index_path, ec)) {
    ASSIGN_OR_RETURN(std::string text, read_file(index_path));
    if (Status deep = check_json_depth(text, index_path); !deep.ok())
      return DataLoss("{}", deep.message());
    std::string duplicate;
    json index = parse_json_checked(text.data(), text.data() + text.size(), &duplicate);
    if (index.is_discarded()) return DataLoss("{}: not valid JSON", index_path);
    if (!index.is_object()) return DataLoss("{}: not a JSON object", index_path);
    if (!duplicate.empty()) return DataLoss("{}: duplicate key '{}'", index_path, duplicate);
    auto wm = index.find("weight_map");
    if (wm == index.end() || !wm->is_object())
      return DataLoss("{}: missing or non-object \"weight_map\"", index_path);
    std::map<std::string, const SafetensorsFile*> shards;  // shard file name -> opened
    for (auto it = wm->begin(); it != wm->end(); ++it) {
      if (!it->is_string())
        return DataLoss("{}: weight_map['{}'] is not a string", index_path, it.key());
      const std::string& shard = it->get_ref<const std::string&>();
      if (shard.empty() || shard.find('/') != std::string::npos || shard == "." || shard == "..")
        return DataLoss("{}: weight_map['{}'] = '{}' is not a file name in the directory",
                        index_path, it.key(), shard);
      shards.emplace(shard, nullptr);
    }
    for (auto& [shard, ptr] : shards) {
      const std::string shard_path = (root / shard).string();
      auto file = SafetensorsFile::open(shard_path);
      if (!file.ok()) {
        if (file.status().code() == StatusCode::kNotFound)
          return DataLoss("{}: shard '{}' does not exist", index_path, shard);
        return file.status();
      }
      ptr = file->get();
      ckpt.files_.push_back(std::move(file).value());
    }
    for (auto it = wm->begin(); it != wm->end(); ++it) {
      const SafetensorsFile* file = shards.at(it->get<std::string>());
      const TensorInfo* info = file->find(it.key());
      if (!info)
        return DataLoss("{}: tensor '{}' is mapped to {}, which does not hold it", index_path,
                        it.key(), file->path());
      ckpt.entries_.emplace(it.key(), Entry{file, info});
    }
    return ckpt;
  }

  std::vector<std::string> paths;
  if (fs::exists(single_path, ec)) {
    paths.push_back(single_path);
  } else {
    for (const auto& de : fs::directory_iterator(root, ec)) {
      if (de.is_regular_file(ec) && de.path().extension() == ".safetensors")
        paths.push_back(de.path().string());
    }
    if (ec) return Internal("{}: cannot list: {}", dir, ec.message());
    std::sort(paths.begin(), paths.end());
  }
  if (paths.empty()) return NotFound("{}: no *.safetensors file", dir);
  for (const std::string& p : paths) {
    ASSIGN_OR_RETURN(auto file, SafetensorsFile::open(p));
    for (const TensorInfo& t : file->tensors()) {
      auto [it, inserted] = ckpt.entries_.emplace(t.name, Entry{file.get(), &t});
      if (!inserted)
        return DataLoss("{}: tensor '{}' is in both {} and {}", dir, t.name,
                        it->second.file->path(), p);
    }
    ckpt.files_.push_back(std::move(file));
  }
  return ckpt;
}

std::vector<std::string> SafetensorsCheckpoint::names() const {
  std::vector<std::string> out;
  out.reserve(entries_.size());
  for (const auto& [name, e] : entries_) out.push_back(name);  // std::map: already sorted
  return out;
}

const TensorInfo* SafetensorsCheckpoint::info(std::string_view name) const {
  auto it = entries_.find(name);
  return it == entries_.end() ? nullptr : it->second.info;
}

const SafetensorsFile* SafetensorsCheckpoint::file_of(std::string_view name) const {
  auto it = entries_.find(name);
  return it == entries_.end() ? nullptr : it->second.file;
}

StatusOr<torch::Tensor> SafetensorsCheckpoint::load(std::string_view name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) return NotFound("{}: no tensor '{}'", dir_, name);
  const Entry& e = it->second;
  if (e.info->dtype == SafeDType::kF8_E4M3) {
    const std::string scale_name = std::string(name) + std::string(kScaleInvSuffix);
    auto sit = entries_.find(scale_name);
    if (sit != entries_.end()) {
      if (e.info->shape.size() != 2)
        return DataLoss("{}: FP8 tensor '{}' has {} dims; block scales need 2", e.file->path(),
                        name, e.info->shape.size());
      ASSIGN_OR_RETURN(torch::Tensor scale, sit->second.file->load(scale_name));
      auto out =
          dequantize_fp8_block(e.file->bytes(*e.info), e.info->shape[0], e.info->shape[1], scale);
      if (!out.ok())
        return DataLoss("{}: tensor '{}': {}", e.file->path(), name, out.status().message());
      return out;
    }
  }
  return e.file->load(name);
}

Status SafetensorsCheckpoint::copy_into(std::string_view name, const torch::Tensor& dst) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) return NotFound("{}: no tensor '{}'", dir_, name);
  const Entry& e = it->second;
  if (!dst.defined() || !dst.sizes().equals(e.info->shape))
    return InvalidArgument("{}: tensor '{}' has shape [{}], the destination [{}]", e.file->path(),
                           name, fmt::join(e.info->shape, ", "),
                           dst.defined() ? fmt::format("{}", fmt::join(dst.sizes(), ", ")) : "");
  torch::NoGradGuard no_grad;  // dst may be a parameter
  auto dtype = safe_dtype_to_torch(e.info->dtype);
  try {
    if (!dtype || *dtype == torch::kBool) {
      ASSIGN_OR_RETURN(torch::Tensor t, load(name));
      dst.copy_(t);
    } else {
      // A view of the read-only mapping; copy_ only reads it.
      std::span<const uint8_t> src = e.file->bytes(*e.info);
      dst.copy_(torch::from_blob(const_cast<uint8_t*>(src.data()), e.info->shape,
                                 torch::TensorOptions().dtype(*dtype)));
    }
  } catch (const std::exception& ex) {
    return Internal("{}: tensor '{}': {}", e.file->path(), name, ex.what());
  }
  e.file->release(*e.info);
  return OkStatus();
}

Status write_sharded(const std::string& dir,
                     const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                     int64_t max_shard_bytes, const std::map<std::string, std::string>& metadata,
                     const std::map<std::string, SafeDType>& dtype_override) {
  if (max_shard_bytes <= 0)
    return InvalidArgument("{}: max_shard_bytes={}: must be > 0", dir, max_shard_bytes);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Internal("{}: cannot create: {}", dir, ec.message());
  const fs::path root(dir);

  std::set<std::string_view> seen;
  for (const auto& [name, t] : tensors) {
    if (!seen.insert(name).second)
      return InvalidArgument("{}: duplicate tensor name '{}'", dir, name);
    if (!t.defined()) return InvalidArgument("{}: tensor '{}' is undefined", dir, name);
  }
  for (const auto& [name, d] : dtype_override)
    if (!seen.count(name))
      return InvalidArgument("{}: dtype override for '{}', which is not a tensor here", dir, name);

  // Greedy split in the given order.
  std::vector<std::vector<size_t>> shards(1);
  uint64_t cur = 0, total = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const torch::Tensor& t = tensors[i].second;
    const uint64_t nb = static_cast<uint64_t>(t.numel()) * static_cast<uint64_t>(t.element_size());
    if (!shards.back().empty() && cur + nb > static_cast<uint64_t>(max_shard_bytes)) {
      shards.emplace_back();
      cur = 0;
    }
    shards.back().push_back(i);
    cur += nb;
    total += nb;
  }

  const std::string index_path = (root / kSafetensorsIndexName).string();
  const std::string single_path = (root / kSafetensorsSingleName).string();
  if (shards.size() == 1) {
    RETURN_IF_ERROR(write_safetensors(single_path, tensors, metadata, dtype_override));
    fs::remove(index_path, ec);  // a stale index would shadow the new file
    return OkStatus();
  }

  nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
  std::map<std::string, std::string> by_name;  // sorted weight_map, as HF writes it
  const size_t count = shards.size();
  for (size_t s = 0; s < count; ++s) {
    const std::string file = fmt::format("model-{:05d}-of-{:05d}.safetensors", s + 1, count);
    std::vector<std::pair<std::string, torch::Tensor>> part;
    std::map<std::string, SafeDType> part_override;
    for (size_t i : shards[s]) {
      part.push_back(tensors[i]);
      by_name[tensors[i].first] = file;
      if (auto o = dtype_override.find(tensors[i].first); o != dtype_override.end())
        part_override.insert(*o);
    }
    RETURN_IF_ERROR(write_safetensors((root / file).string(), part, metadata, part_override));
  }
  for (const auto& [name, file] : by_name) weight_map[name] = file;
  nlohmann::ordered_json index = nlohmann::ordered_json::object();
  index["metadata"] = {{"total_size", total}};
  index["weight_map"] = std::move(weight_map);
  std::string text;
  try {
    text = index.dump(2) + "\n";
  } catch (const std::exception& e) {
    return InvalidArgument("{}: cannot encode the index: {}", dir, e.what());
  }
  RETURN_IF_ERROR(write_file_atomic(index_path, text));
  fs::remove(single_path, ec);  // a stale single file is harmless but confusing
  R1_LOG(debug, "wrote {} shards ({} bytes) to {}", count, total, dir);
  return OkStatus();
}

}  // namespace r1kit
