// Fuzz target: a whole safetensors file (fuzz/fuzz_target.h).
#include <fmt/format.h>

#include "core/safetensors.h"
#include "fuzz/fuzz_target.h"

namespace r1kit::fuzz {

Outcome safetensors_header(std::span<const uint8_t> data) {
  constexpr std::string_view kName = "safetensors_header";
  auto opened = SafetensorsFile::from_bytes(data, "fuzz.safetensors");
  if (!opened.ok()) return classify(kName, opened.status());
  const SafetensorsFile& file = **opened;

  // What open() promises (core/safetensors.h): the tensors tile the data buffer from 0 in
  // order, each holds numel * element size bytes, and each lies inside the file.
  uint64_t cursor = 0;
  const uint8_t* file_end = data.data() + data.size();
  for (const TensorInfo& t : file.tensors()) {
    if (t.data_begin != cursor)
      bug(kName, fmt::format("tensor '{}' starts at {}, not {}", t.name, t.data_begin, cursor));
    if (t.nbytes() != static_cast<uint64_t>(t.numel()) * safe_dtype_size(t.dtype))
      bug(kName, fmt::format("tensor '{}' holds {} bytes for {} elements", t.name, t.nbytes(),
                             t.numel()));
    cursor = t.data_end;
    std::span<const uint8_t> bytes = file.bytes(t);
    if (bytes.data() < data.data() || bytes.data() + bytes.size() > file_end)
      bug(kName, fmt::format("tensor '{}' lies outside the file", t.name));
    if (file.find(t.name) != &t) bug(kName, fmt::format("find('{}') misses it", t.name));

    // Every tensor loads raw; load() may refuse a dtype LibTorch lacks or a bad BOOL byte.
    auto raw = file.load_raw(t.name);
    if (!raw.ok()) {
      if (classify(kName, raw.status()) == Outcome::kRejected && t.dtype != SafeDType::kBOOL)
        bug(kName, fmt::format("load_raw('{}') refused: {}", t.name, raw.status().message()));
    } else if (raw->numel() != t.numel() ||
               static_cast<uint64_t>(raw->nbytes()) != t.nbytes()) {
      bug(kName, fmt::format("load_raw('{}') gave {} bytes, the header says {}", t.name,
                             raw->nbytes(), t.nbytes()));
    }
    auto loaded = file.load(t.name);
    if (!loaded.ok()) classify(kName, loaded.status());
  }
  return Outcome::kAccepted;
}

}  // namespace r1kit::fuzz
