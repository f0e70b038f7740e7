// Tokenizer: the SentencePiece implementation over libr1kit_spm.so (see tokenizer.h and
// data/spm_shim/spm_shim.h), and loading either format.
//
// The shim is dlopened once per process with RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND, so
// SentencePiece binds to its own protobuf-lite and none of its symbols reach the global
// scope where LibTorch's libprotobuf lives. It is never dlclosed. A failed load is not
// cached: setting $R1KIT_SPM_LIB and retrying works.
// Under AddressSanitizer, whose dlopen refuses RTLD_DEEPBIND, the shim goes into a
// link-map namespace of its own instead (dlmopen LM_ID_NEWLM): it and its libraries see
// nothing of the executable's, so the two protobufs stay apart the same way; the
// namespace has its own libc and libstdc++, which the C API never mixes with ours (no
// allocation crosses it). The shim is built without sanitizers (docs/testing.md,
// "Sanitizers").
#include "data/tokenizer.h"

#include <dlfcn.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <set>
#include <thread>
#include <utility>

#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/json.h"
#include "core/logging.h"
#include "data/hf_tokenizer.h"
#include "data/spm_shim/spm_shim.h"

namespace r1kit::data {
namespace {

constexpr const char* kSpmLibName = "libr1kit_spm.so";
constexpr const char* kSpmLibEnv = "R1KIT_SPM_LIB";

// The shim's functions, resolved with dlsym.
struct SpmApi {
  decltype(&r1kit_spm_abi_version) abi_version = nullptr;
  decltype(&r1kit_spm_last_error) last_error = nullptr;
  decltype(&r1kit_spm_create) create = nullptr;
  decltype(&r1kit_spm_destroy) destroy = nullptr;
  decltype(&r1kit_spm_load_file) load_file = nullptr;
  decltype(&r1kit_spm_load_bytes) load_bytes = nullptr;
  decltype(&r1kit_spm_serialize) serialize = nullptr;
  decltype(&r1kit_spm_encode) encode = nullptr;
  decltype(&r1kit_spm_decode) decode = nullptr;
  decltype(&r1kit_spm_vocab_size) vocab_size = nullptr;
  decltype(&r1kit_spm_id_to_piece) id_to_piece = nullptr;
  decltype(&r1kit_spm_piece_to_id) piece_to_id = nullptr;
  decltype(&r1kit_spm_bos_id) bos_id = nullptr;
  decltype(&r1kit_spm_eos_id) eos_id = nullptr;
  decltype(&r1kit_spm_pad_id) pad_id = nullptr;
  decltype(&r1kit_spm_unk_id) unk_id = nullptr;
  decltype(&r1kit_spm_train) train = nullptr;
};

template <typename Fn>
bool resolve(void* lib, const char* name, Fn* fn) {
  *fn = reinterpret_cast<Fn>(dlsym(lib, name));
  return *fn != nullptr;
}

#if defined(__SANITIZE_ADDRESS__)
#define R1KIT_SPM_OWN_NAMESPACE 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define R1KIT_SPM_OWN_NAMESPACE 1
#endif
#endif

StatusOr<SpmApi> open_spm(const std::string& path) {
  dlerror();  // clear
#ifdef R1KIT_SPM_OWN_NAMESPACE
  void* lib = dlmopen(LM_ID_NEWLM, path.c_str(), RTLD_NOW | RTLD_LOCAL);
#else
  void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
#endif
  if (lib == nullptr) {
    const char* err = dlerror();
    return FailedPrecondition("{}: dlopen failed: {}", path, err ? err : "unknown error");
  }
  SpmApi api;
  bool ok = resolve(lib, "r1kit_spm_abi_version", &api.abi_version) &&
            resolve(lib, "r1kit_spm_last_error", &api.last_error) &&
            resolve(lib, "r1kit_spm_create", &api.create) &&
            resolve(lib, "r1kit_spm_destroy", &api.destroy) &&
            resolve(lib, "r1kit_spm_load_file", &api.load_file) &&
            resolve(lib, "r1kit_spm_load_bytes", &api.load_bytes) &&
            resolve(lib, "r1kit_spm_serialize", &api.serialize) &&
            resolve(lib, "r1kit_spm_encode", &api.encode) &&
            resolve(lib, "r1kit_spm_decode", &api.decode) &&
            resolve(lib, "r1kit_spm_vocab_size", &api.vocab_size) &&
            resolve(lib, "r1kit_spm_id_to_piece", &api.id_to_piece) &&
            resolve(lib, "r1kit_spm_piece_to_id", &api.piece_to_id) &&
            resolve(lib, "r1kit_spm_bos_id", &api.bos_id) &&
            resolve(lib, "r1kit_spm_eos_id", &api.eos_id) &&
            resolve(lib, "r1kit_spm_pad_id", &api.pad_id) &&
            resolve(lib, "r1kit_spm_unk_id", &api.unk_id) &&
            resolve(lib, "r1kit_spm_train", &api.train);
  if (!ok) {
    dlclose(lib);
    return FailedPrecondition("{}: not an r1kit SentencePiece shim (missing symbols)", path);
  }
  if (api.abi_version() != R1KIT_SPM_ABI_VERSION) {
    const int version = api.abi_version();
    dlclose(lib);
    return FailedPrecondition("{}: shim ABI version {}, this build expects {}", path, version,
                              R1KIT_SPM_ABI_VERSION);
  }
  return api;
}

// The process-wide shim, loaded on first use.
StatusOr<const SpmApi*> spm_api() {
  static std::mutex mutex;
  static std::unique_ptr<SpmApi> loaded;  // never freed: the library stays mapped
  std::lock_guard<std::mutex> lock(mutex);
  if (loaded) return static_cast<const SpmApi*>(loaded.get());
  const std::vector<std::string> candidates = spm_library_candidates();
  std::string tried;
  for (const std::string& path : candidates) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) {
      tried += fmt::format("\n  {}: no such file", path);
      continue;
    }
    StatusOr<SpmApi> api = open_spm(path);
    if (!api.ok()) return api.status();  // present but broken: say so, do not look further
    loaded = std::make_unique<SpmApi>(*api);
    R1_LOG(debug, "tokenizer: loaded {}", path);
    return static_cast<const SpmApi*>(loaded.get());
  }
  return FailedPrecondition(
      "cannot find {} (the SentencePiece shim; build target r1kit_spm, or set ${} to its "
      "path). Tried:{}",
      kSpmLibName, kSpmLibEnv, tried);
}

std::string last_error(const SpmApi& api) {
  const char* e = api.last_error();
  return e != nullptr && *e != '\0' ? e : "unknown error";
}

void append_to_string(void* ctx, const char* data, size_t size) {
  static_cast<std::string*>(ctx)->append(data, size);
}

std::string join(const std::vector<std::string>& items, char sep) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += sep;
    out += items[i];
  }
  return out;
}

Status validate(const TokenizerTrainOptions& o) {
  if (o.input_files.empty() && o.lines.empty()) {
    return InvalidArgument("tokenizer training: no corpus (input_files and lines are empty)");
  }
  for (const std::string& f : o.input_files) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(f, ec)) {
      return NotFound("tokenizer corpus file {}: not found (or not a regular file)", f);
    }
  }
  if (o.model_type != "bpe" && o.model_type != "unigram") {
    return InvalidArgument("tokenizer model_type '{}': use bpe or unigram", o.model_type);
  }
  static const std::set<std::string> kNormalizations = {"identity", "nmt_nfkc", "nfkc",
                                                        "nmt_nfkc_cf", "nfkc_cf"};
  if (!kNormalizations.count(o.normalization)) {
    return InvalidArgument(
        "tokenizer normalization '{}': use identity, nmt_nfkc, nfkc, nmt_nfkc_cf or nfkc_cf",
        o.normalization);
  }
  if (!(o.character_coverage > 0.0 && o.character_coverage <= 1.0)) {
    return InvalidArgument("tokenizer character_coverage={}: must be in (0, 1]",
                           o.character_coverage);
  }
  if (o.vocab_size <= 0) {
    return InvalidArgument("tokenizer vocab_size={}: must be > 0", o.vocab_size);
  }
  if (o.num_threads < 0) {
    return InvalidArgument("tokenizer num_threads={}: must be >= 0 (0 = all cores)", o.num_threads);
  }
  if (o.max_sentence_length <= 0) {
    return InvalidArgument("tokenizer max_sentence_length={}: must be > 0", o.max_sentence_length);
  }
  const std::pair<const char*, int> ids[] = {
      {"unk_id", o.unk_id}, {"bos_id", o.bos_id}, {"eos_id", o.eos_id}, {"pad_id", o.pad_id}};
  if (o.unk_id < 0) return InvalidArgument("tokenizer unk_id={}: must be >= 0", o.unk_id);
  int n_reserved = 0;
  std::set<int> seen_ids;
  for (const auto& [name, id] : ids) {
    if (id < 0) continue;
    if (id >= o.vocab_size) {
      return InvalidArgument("tokenizer {}={}: must be < vocab_size={}", name, id, o.vocab_size);
    }
    if (!seen_ids.insert(id).second) {
      return InvalidArgument("tokenizer {}={}: another reserved id has the same value", name, id);
    }
    ++n_reserved;
  }
  std::set<std::string> seen_symbols;
  for (const std::string& s : o.user_defined_symbols) {
    if (s.empty()) return InvalidArgument("tokenizer user_defined_symbols: empty symbol");
    if (s.find(',') != std::string::npos) {
      return InvalidArgument("tokenizer user symbol '{}': must not contain ','", s);
    }
    if (!seen_symbols.insert(s).second) {
      return InvalidArgument("tokenizer user symbol '{}': listed twice", s);
    }
  }
  const int needed = n_reserved + static_cast<int>(o.user_defined_symbols.size()) +
                     (o.byte_fallback ? 256 : 0) + 1;
  if (o.vocab_size < needed) {
    return InvalidArgument(
        "tokenizer vocab_size={}: too small, needs at least {} ({} reserved + {} user-defined "
        "pieces{} + 1 for the corpus); the corpus's distinct characters need more",
        o.vocab_size, needed, n_reserved, o.user_defined_symbols.size(),
        o.byte_fallback ? " + 256 byte-fallback pieces" : "");
  }
  return OkStatus();
}

}  // namespace

std::vector<std::string> spm_library_candidates() {
  if (const char* env = std::getenv(kSpmLibEnv); env != nullptr && *env != '\0') {
    return {env};
  }
  std::vector<std::string> out;
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const std::filesystem::path dir = exe.parent_path();
    out.push_back((dir / kSpmLibName).string());
    out.push_back((dir.parent_path() / "lib" / kSpmLibName).string());
  }
  return out;
}

namespace {

// A loaded SentencePiece processor. Immutable after load.
class SpmTokenizer final : public TokenizerImpl {
 public:
  SpmTokenizer(const SpmApi* api, r1kit_spm* spm) : api_(api), spm_(spm) {}
  SpmTokenizer(const SpmTokenizer&) = delete;
  SpmTokenizer& operator=(const SpmTokenizer&) = delete;
  ~SpmTokenizer() override {
    if (spm_ != nullptr) api_->destroy(spm_);
  }
  // Fills the cached lookups once a model is loaded.
  void cache() {
    ids_ = {api_->vocab_size(spm_), api_->bos_id(spm_), api_->eos_id(spm_), api_->pad_id(spm_),
            api_->unk_id(spm_)};
  }
  r1kit_spm* spm() const { return spm_; }

  TokenizerFormat format() const override { return TokenizerFormat::kSentencePiece; }
  std::vector<int32_t> encode(std::string_view text, bool add_special) const override;
  std::string decode(std::span<const int32_t> ids, bool keep_special) const override;
  std::string id_to_piece(int id) const override;
  int piece_to_id(std::string_view piece) const override {
    return api_->piece_to_id(spm_, piece.data(), piece.size());
  }
  std::string model_bytes() const override;

 private:
  const SpmApi* api_ = nullptr;  // the shim
  r1kit_spm* spm_ = nullptr;     // the processor, owned
};

std::vector<int32_t> SpmTokenizer::encode(std::string_view text, bool /*add_special*/) const {
  std::vector<int32_t> ids(text.size() + 16);
  for (int attempt = 0; attempt < 2; ++attempt) {
    const int64_t n = api_->encode(spm_, text.data(), text.size(), ids.data(), ids.size());
    if (n < 0) {
      R1_LOG(error, "tokenizer encode failed: {}", last_error(*api_));
      return {};
    }
    const bool fits = static_cast<size_t>(n) <= ids.size();
    ids.resize(static_cast<size_t>(n));
    if (fits) return ids;
  }
  return ids;  // not reached: the second call had room for every id
}

std::string SpmTokenizer::decode(std::span<const int32_t> ids, bool /*keep_special*/) const {
  std::string text(ids.size() * 8 + 16, '\0');
  for (int attempt = 0; attempt < 2; ++attempt) {
    const int64_t n = api_->decode(spm_, ids.data(), ids.size(), text.data(), text.size());
    if (n < 0) {
      R1_LOG(error, "tokenizer decode failed: {}", last_error(*api_));
      return {};
    }
    const bool fits = static_cast<size_t>(n) <= text.size();
    text.resize(static_cast<size_t>(n));
    if (fits) return text;
  }
  return text;
}

std::string SpmTokenizer::id_to_piece(int id) const {
  if (id < 0 || id >= ids_.vocab_size) return {};
  std::string piece(32, '\0');
  for (int attempt = 0; attempt < 2; ++attempt) {
    const int64_t n = api_->id_to_piece(spm_, id, piece.data(), piece.size());
    if (n < 0) return {};
    const bool fits = static_cast<size_t>(n) <= piece.size();
    piece.resize(static_cast<size_t>(n));
    if (fits) return piece;
  }
  return piece;
}

std::string SpmTokenizer::model_bytes() const {
  std::string bytes;
  if (api_->serialize(spm_, &append_to_string, &bytes) != 0) {
    R1_LOG(error, "tokenizer serialize failed: {}", last_error(*api_));
    return {};
  }
  return bytes;
}

StatusOr<std::shared_ptr<SpmTokenizer>> new_spm() {
  ASSIGN_OR_RETURN(const SpmApi* api, spm_api());
  r1kit_spm* spm = api->create();
  if (spm == nullptr) return ResourceExhausted("tokenizer: {}", last_error(*api));
  return std::make_shared<SpmTokenizer>(api, spm);
}

StatusOr<std::shared_ptr<const TokenizerImpl>> load_spm(const std::string& model_path) {
  ASSIGN_OR_RETURN(auto tok, new_spm());
  const SpmApi& api = *spm_api().value();
  if (api.load_file(tok->spm(), model_path.c_str()) != 0) {
    return DataLoss("tokenizer model {}: not a valid SentencePiece model ({})", model_path,
                    last_error(api));
  }
  tok->cache();
  return std::shared_ptr<const TokenizerImpl>(std::move(tok));
}

bool is_json_path(const std::string& path) {
  return path.size() >= 5 && path.compare(path.size() - 5, 5, ".json") == 0;
}

std::string config_beside(const std::string& json_path) {
  const auto config = std::filesystem::path(json_path).parent_path() / "tokenizer_config.json";
  std::error_code ec;
  return std::filesystem::is_regular_file(config, ec) ? config.string() : std::string();
}

StatusOr<std::shared_ptr<const TokenizerImpl>> load_hf(const std::string& json_path) {
  ASSIGN_OR_RETURN(std::string text, read_file(json_path));
  std::string config_text;
  if (const std::string config = config_beside(json_path); !config.empty()) {
    ASSIGN_OR_RETURN(config_text, read_file(config));
  }
  ASSIGN_OR_RETURN(auto tok, hf::HfTokenizer::parse(std::move(text), config_text, json_path));
  return std::shared_ptr<const TokenizerImpl>(std::move(tok));
}

// The `eos_token_id` of DIR/generation_config.json, else of DIR/config.json (an id, a
// list of ids, or null); {} when neither file names one. An id may lie past the
// tokenizer's vocabulary (a model's vocabulary is often padded beyond it); the engine
// checks it against the model's.
StatusOr<std::vector<int64_t>> checkpoint_eos_ids(const std::filesystem::path& dir) {
  for (const char* name : {"generation_config.json", "config.json"}) {
    const std::filesystem::path file = dir / name;
    std::error_code ec;
    if (!std::filesystem::is_regular_file(file, ec)) continue;
    ASSIGN_OR_RETURN(std::string text, read_file(file.string()));
    const nlohmann::json j = parse_json_or_discarded(text);
    if (j.is_discarded() || !j.is_object())
      return InvalidArgument("{}: not a JSON object", file.string());
    const auto it = j.find("eos_token_id");
    if (it == j.end() || it->is_null()) continue;
    const nlohmann::json list = it->is_array() ? *it : nlohmann::json::array({*it});
    std::vector<int64_t> ids;
    for (const auto& v : list) {
      if (!v.is_number_integer() || v.get<int64_t>() < 0)
        return InvalidArgument("{}: 'eos_token_id' must be an id >= 0 or a list of them, got {}",
                               file.string(), it->dump());
      ids.push_back(v.get<int64_t>());
    }
    return ids;
  }
  return std::vector<int64_t>{};
}

}  // namespace

std::string tokenizer_file_in(const std::string& dir) {
  std::error_code ec;
  const std::string json = dir + "/tokenizer.json";
  return std::filesystem::is_regular_file(json, ec) ? json : dir + "/tokenizer.model";
}

StatusOr<std::vector<std::pair<std::string, std::string>>> tokenizer_files(
    const std::string& path) {
  std::error_code ec;
  std::string file = path;
  if (std::filesystem::is_directory(path, ec)) {
    file = tokenizer_file_in(path);
    if (!std::filesystem::is_regular_file(file, ec))
      return NotFound("{}: holds neither tokenizer.json nor tokenizer.model", path);
  } else if (!std::filesystem::exists(path, ec)) {
    return NotFound("tokenizer {}: no such file", path);
  }
  if (!is_json_path(file))
    return std::vector<std::pair<std::string, std::string>>{{file, "tokenizer.model"}};
  std::vector<std::pair<std::string, std::string>> out = {{file, "tokenizer.json"}};
  if (const std::string config = config_beside(file); !config.empty())
    out.emplace_back(config, "tokenizer_config.json");
  return out;
}

StatusOr<Tokenizer> Tokenizer::load(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    return NotFound("tokenizer {}: no such file", path);
  }
  std::string file = path;
  if (std::filesystem::is_directory(path, ec)) {
    file = tokenizer_file_in(path);
    if (!std::filesystem::is_regular_file(file, ec))
      return InvalidArgument("tokenizer {}: a directory without tokenizer.json or tokenizer.model",
                             path);
  }
  std::shared_ptr<const TokenizerImpl> impl;
  if (is_json_path(file)) {
    ASSIGN_OR_RETURN(impl, load_hf(file));
  } else {
    ASSIGN_OR_RETURN(impl, load_spm(file));
  }
  Tokenizer tok(std::move(impl));
  ASSIGN_OR_RETURN(tok.config_stop_ids_,
                   checkpoint_eos_ids(std::filesystem::path(file).parent_path()));
  return tok;
}

StatusOr<Tokenizer> Tokenizer::from_bytes(std::string_view model_bytes) {
  const size_t first = model_bytes.find_first_not_of(" \t\r\n");
  if (first != std::string_view::npos && model_bytes[first] == '{') {
    ASSIGN_OR_RETURN(auto tok,
                     hf::HfTokenizer::parse(std::string(model_bytes), "", "tokenizer.json bytes"));
    return Tokenizer(std::shared_ptr<const TokenizerImpl>(std::move(tok)));
  }
  ASSIGN_OR_RETURN(auto tok, new_spm());
  const SpmApi& api = *spm_api().value();
  if (api.load_bytes(tok->spm(), model_bytes.data(), model_bytes.size()) != 0) {
    return DataLoss("tokenizer model bytes ({} bytes): not a valid SentencePiece model ({})",
                    model_bytes.size(), last_error(api));
  }
  tok->cache();
  return Tokenizer(std::shared_ptr<const TokenizerImpl>(std::move(tok)));
}

Status Tokenizer::train(const TokenizerTrainOptions& o, const std::string& out_model_path) {
  RETURN_IF_ERROR(validate(o));
  if (out_model_path.empty()) return InvalidArgument("tokenizer train: empty output path");
  ASSIGN_OR_RETURN(const SpmApi* api, spm_api());

  const int threads = o.num_threads > 0
                          ? o.num_threads
                          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::vector<std::pair<std::string, std::string>> kv = {
      {"model_type", o.model_type},
      {"vocab_size", std::to_string(o.vocab_size)},
      {"split_digits", o.split_digits ? "true" : "false"},
      {"byte_fallback", o.byte_fallback ? "true" : "false"},
      {"character_coverage", fmt::format("{}", o.character_coverage)},
      {"hard_vocab_limit", o.hard_vocab_limit ? "true" : "false"},
      {"unk_id", std::to_string(o.unk_id)},
      {"bos_id", std::to_string(o.bos_id)},
      {"eos_id", std::to_string(o.eos_id)},
      {"pad_id", std::to_string(o.pad_id)},
      {"normalization_rule_name", o.normalization},
      {"add_dummy_prefix", o.add_dummy_prefix ? "true" : "false"},
      {"remove_extra_whitespaces", "false"},
      {"allow_whitespace_only_pieces", "true"},
      {"num_threads", std::to_string(threads)},
      {"max_sentence_length", std::to_string(o.max_sentence_length)},
      {"random_seed", std::to_string(o.seed)},
      // Always silent: loaded with RTLD_DEEPBIND, SentencePiece's std::cerr is libstdc++'s
      // never-initialised one and its first log line crashes the process (docs/design.md).
      {"minloglevel", "4"},
  };
  if (!o.user_defined_symbols.empty()) {
    kv.emplace_back("user_defined_symbols", join(o.user_defined_symbols, ','));
  }
  std::vector<const char*> keys, values;
  for (const auto& [k, v] : kv) {
    keys.push_back(k.c_str());
    values.push_back(v.c_str());
  }
  std::vector<const char*> files;
  for (const std::string& f : o.input_files) files.push_back(f.c_str());
  std::vector<const char*> sentences;
  std::vector<size_t> lens;
  for (const std::string& s : o.lines) {
    sentences.push_back(s.data());
    lens.push_back(s.size());
  }
  std::string model;
  if (api->train(keys.data(), values.data(), keys.size(), files.data(), files.size(),
                 sentences.data(), lens.data(), sentences.size(), &append_to_string, &model) != 0) {
    return InvalidArgument("tokenizer training for {} failed: {}", out_model_path,
                           last_error(*api));
  }
  RETURN_IF_ERROR(write_file_atomic(out_model_path, model)
                      .with_context(fmt::format("tokenizer model {}", out_model_path)));
  R1_LOG(info, "tokenizer: trained {} ({} model, vocab_size<={}, {} bytes)", out_model_path,
         o.model_type, o.vocab_size, model.size());
  return OkStatus();
}

TokenizerFormat Tokenizer::format() const {
  return impl_->format();
}
std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
  return impl_->encode(text, false);
}
std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special) const {
  return impl_->encode(text, add_special);
}
std::string Tokenizer::decode(std::span<const int32_t> ids) const {
  return impl_->decode(ids, false);
}
std::string Tokenizer::decode(std::span<const int32_t> ids, bool keep_special) const {
  return impl_->decode(ids, keep_special);
}
int Tokenizer::vocab_size() const {
  return impl_->ids().vocab_size;
}
int Tokenizer::bos_id() const {
  return impl_->ids().bos;
}
int Tokenizer::eos_id() const {
  return impl_->ids().eos;
}
std::vector<int64_t> Tokenizer::stop_ids() const {
  std::vector<int64_t> ids;
  if (eos_id() >= 0) ids.push_back(eos_id());
  for (int64_t id : config_stop_ids_)
    if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
  return ids;
}
int Tokenizer::pad_id() const {
  return impl_->ids().pad;
}
int Tokenizer::unk_id() const {
  return impl_->ids().unk;
}
std::string Tokenizer::id_to_piece(int id) const {
  return impl_->id_to_piece(id);
}
int Tokenizer::piece_to_id(std::string_view piece) const {
  return impl_->piece_to_id(piece);
}
std::string Tokenizer::model_bytes() const {
  return impl_->model_bytes();
}

Status Tokenizer::save(const std::string& path) const {
  const std::string bytes = model_bytes();
  if (bytes.empty()) return Internal("tokenizer model {}: could not serialize the model", path);
  return write_file_atomic(path, bytes).with_context(fmt::format("tokenizer model {}", path));
}

}  // namespace r1kit::data
