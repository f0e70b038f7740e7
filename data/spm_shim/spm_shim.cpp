// spm_shim.cpp: libr1kit_spm.so, the C API of spm_shim.h over SentencePiece 0.1.97.
//
// Built on its own (no LibTorch precompiled header, -fPIC, hidden visibility), linked
// against libsentencepiece and libsentencepiece_train, and loaded only through dlopen
// by data/tokenizer.cpp; see spm_shim.h for why. Differences from calling SentencePiece
// directly: decode skips out-of-range ids instead of failing, piece_to_id answers -1
// for an absent piece instead of the unknown id, and training can take in-memory
// sentences and hand back the serialized model instead of writing files.
#include "data/spm_shim/spm_shim.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <fstream>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <unordered_map>
#include <vector>

// Exported by libsentencepiece (common.h is not installed).
namespace sentencepiece::logging {
int GetMinLogLevel();
void SetMinLogLevel(int v);
}  // namespace sentencepiece::logging

struct r1kit_spm {
  sentencepiece::SentencePieceProcessor processor;  // the loaded model
  bool loaded = false;                              // whether a load succeeded
};

namespace {

thread_local std::string g_last_error;  // r1kit_spm_last_error() of this thread
std::mutex g_train_mutex;               // SentencePiece's trainer keeps global state

int fail(std::string message) {
  g_last_error = std::move(message);
  return -1;
}

int fail_status(const char* what, const sentencepiece::util::Status& s) {
  return fail(std::string(what) + ": " + s.ToString());
}

bool require_loaded(const r1kit_spm* spm) {
  if (spm == nullptr) {
    fail("null processor handle");
    return false;
  }
  if (!spm->loaded) {
    fail("no model loaded");
    return false;
  }
  return true;
}

// Copies `s` to a caller's buffer under the two-call size protocol.
int64_t copy_out(const std::string& s, char* out, size_t capacity) {
  if (out != nullptr) {
    const size_t n = s.size() < capacity ? s.size() : capacity;
    for (size_t i = 0; i < n; ++i) out[i] = s[i];
  }
  return static_cast<int64_t>(s.size());
}

// Sentences from files (line by line, in order), then from memory.
class ChainIterator final : public sentencepiece::SentenceIterator {
 public:
  ChainIterator(std::vector<std::string> files, std::vector<std::string> lines)
      : files_(std::move(files)), lines_(std::move(lines)) {
    Next();
  }
  bool done() const override { return done_; }
  void Next() override {
    while (!done_) {
      if (stream_.is_open()) {
        if (std::getline(stream_, value_)) {
          if (!value_.empty() && value_.back() == '\r') value_.pop_back();
          return;
        }
        stream_.close();
      }
      if (file_index_ < files_.size()) {
        const std::string& path = files_[file_index_++];
        stream_.open(path, std::ios::binary);
        if (!stream_.is_open()) {
          status_ = sentencepiece::util::Status(sentencepiece::util::StatusCode::kNotFound,
                                                "cannot open corpus file " + path);
          done_ = true;
        }
        continue;
      }
      if (line_index_ < lines_.size()) {
        value_ = lines_[line_index_++];
        return;
      }
      done_ = true;
    }
  }
  const std::string& value() const override { return value_; }
  sentencepiece::util::Status status() const override { return status_; }

 private:
  std::vector<std::string> files_;      // corpus files, read first
  std::vector<std::string> lines_;      // in-memory sentences, read after the files
  size_t file_index_ = 0;               // next file to open
  size_t line_index_ = 0;               // next in-memory sentence
  std::ifstream stream_;                // the file being read
  std::string value_;                   // the current sentence
  bool done_ = false;                   // no more sentences (or an error)
  sentencepiece::util::Status status_;  // error opening a file, else ok
};

// Restores SentencePiece's log level on scope exit.
class LogLevelGuard {
 public:
  LogLevelGuard() : saved_(sentencepiece::logging::GetMinLogLevel()) {}
  ~LogLevelGuard() { sentencepiece::logging::SetMinLogLevel(saved_); }

 private:
  int saved_;  // the level before training
};

}  // namespace

extern "C" {

int r1kit_spm_abi_version(void) {
  return R1KIT_SPM_ABI_VERSION;
}

const char* r1kit_spm_last_error(void) {
  return g_last_error.c_str();
}

r1kit_spm* r1kit_spm_create(void) {
  // SentencePiece logs to std::cerr. Loaded with RTLD_DEEPBIND into a binary that has
  // copy relocations of std::cerr, this library's std::cerr is libstdc++'s own, never
  // constructed copy: any log line would crash. So logging stays off (errors come back
  // as statuses); training may turn it on only when the caller asks (see tokenizer.cpp).
  sentencepiece::logging::SetMinLogLevel(4);
  try {
    return new r1kit_spm();
  } catch (...) {
    fail("out of memory creating a processor");
    return nullptr;
  }
}

void r1kit_spm_destroy(r1kit_spm* spm) {
  delete spm;
}

int r1kit_spm_load_file(r1kit_spm* spm, const char* path) {
  if (spm == nullptr || path == nullptr) return fail("null argument to r1kit_spm_load_file");
  try {
    spm->loaded = false;
    const auto s = spm->processor.Load(path);
    if (!s.ok()) return fail_status(path, s);
    spm->loaded = true;
    return 0;
  } catch (const std::exception& e) {
    return fail(std::string(path) + ": " + e.what());
  } catch (...) {
    return fail(std::string(path) + ": unknown error while loading");
  }
}

int r1kit_spm_load_bytes(r1kit_spm* spm, const char* data, size_t size) {
  if (spm == nullptr || (data == nullptr && size > 0)) {
    return fail("null argument to r1kit_spm_load_bytes");
  }
  try {
    spm->loaded = false;
    const auto s = spm->processor.LoadFromSerializedProto(
        absl::string_view(data == nullptr ? "" : data, size));
    if (!s.ok()) return fail_status("serialized model", s);
    spm->loaded = true;
    return 0;
  } catch (const std::exception& e) {
    return fail(std::string("serialized model: ") + e.what());
  } catch (...) {
    return fail("serialized model: unknown error while loading");
  }
}

int r1kit_spm_serialize(const r1kit_spm* spm, r1kit_spm_sink sink, void* ctx) {
  if (!require_loaded(spm)) return -1;
  if (sink == nullptr) return fail("null sink");
  try {
    const std::string bytes = spm->processor.serialized_model_proto();
    sink(ctx, bytes.data(), bytes.size());
    return 0;
  } catch (const std::exception& e) {
    return fail(std::string("serialize: ") + e.what());
  }
}

int64_t r1kit_spm_encode(const r1kit_spm* spm, const char* text, size_t len, int32_t* ids,
                         size_t capacity) {
  if (!require_loaded(spm)) return -1;
  if (text == nullptr && len > 0) return fail("null text");
  try {
    std::vector<int> out;
    const auto s = spm->processor.Encode(absl::string_view(text == nullptr ? "" : text, len), &out);
    if (!s.ok()) return fail_status("encode", s);
    if (ids != nullptr) {
      const size_t n = out.size() < capacity ? out.size() : capacity;
      for (size_t i = 0; i < n; ++i) ids[i] = static_cast<int32_t>(out[i]);
    }
    return static_cast<int64_t>(out.size());
  } catch (const std::exception& e) {
    return fail(std::string("encode: ") + e.what());
  }
}

int64_t r1kit_spm_decode(const r1kit_spm* spm, const int32_t* ids, size_t n, char* out,
                         size_t capacity) {
  if (!require_loaded(spm)) return -1;
  if (ids == nullptr && n > 0) return fail("null ids");
  try {
    const int vocab = spm->processor.GetPieceSize();
    std::vector<int> valid;
    valid.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      if (ids[i] >= 0 && ids[i] < vocab) valid.push_back(ids[i]);
    }
    std::string text;
    const auto s = spm->processor.Decode(valid, &text);
    if (!s.ok()) return fail_status("decode", s);
    return copy_out(text, out, capacity);
  } catch (const std::exception& e) {
    return fail(std::string("decode: ") + e.what());
  }
}

int r1kit_spm_vocab_size(const r1kit_spm* spm) {
  if (spm == nullptr || !spm->loaded) return 0;
  return spm->processor.GetPieceSize();
}

int64_t r1kit_spm_id_to_piece(const r1kit_spm* spm, int id, char* out, size_t capacity) {
  if (!require_loaded(spm)) return -1;
  if (id < 0 || id >= spm->processor.GetPieceSize()) {
    return fail("id " + std::to_string(id) + " out of range [0, " +
                std::to_string(spm->processor.GetPieceSize()) + ")");
  }
  try {
    return copy_out(spm->processor.IdToPiece(id), out, capacity);
  } catch (const std::exception& e) {
    return fail(std::string("id_to_piece: ") + e.what());
  }
}

int r1kit_spm_piece_to_id(const r1kit_spm* spm, const char* piece, size_t len) {
  if (!require_loaded(spm)) return -1;
  if (piece == nullptr && len > 0) return fail("null piece");
  try {
    const absl::string_view p(piece == nullptr ? "" : piece, len);
    const int id = spm->processor.PieceToId(p);
    // SentencePiece answers the unknown id for an absent piece.
    if (id < 0 || id >= spm->processor.GetPieceSize()) return -1;
    if (id == spm->processor.unk_id() && spm->processor.IdToPiece(id) != p) return -1;
    return id;
  } catch (const std::exception& e) {
    return fail(std::string("piece_to_id: ") + e.what());
  }
}

int r1kit_spm_bos_id(const r1kit_spm* spm) {
  return spm != nullptr && spm->loaded ? spm->processor.bos_id() : -1;
}
int r1kit_spm_eos_id(const r1kit_spm* spm) {
  return spm != nullptr && spm->loaded ? spm->processor.eos_id() : -1;
}
int r1kit_spm_pad_id(const r1kit_spm* spm) {
  return spm != nullptr && spm->loaded ? spm->processor.pad_id() : -1;
}
int r1kit_spm_unk_id(const r1kit_spm* spm) {
  return spm != nullptr && spm->loaded ? spm->processor.unk_id() : -1;
}

int r1kit_spm_train_args(const char* args) {
  if (args == nullptr) return fail("null args");
  try {
    std::lock_guard<std::mutex> lock(g_train_mutex);
    const auto s = sentencepiece::SentencePieceTrainer::Train(absl::string_view(args));
    if (!s.ok()) return fail_status("train", s);
    return 0;
  } catch (const std::exception& e) {
    return fail(std::string("train: ") + e.what());
  }
}

int r1kit_spm_train(const char* const* keys, const char* const* values, size_t n_kv,
                    const char* const* input_files, size_t n_files, const char* const* sentences,
                    const size_t* sentence_lens, size_t n_sentences, r1kit_spm_sink sink,
                    void* ctx) {
  if ((n_kv > 0 && (keys == nullptr || values == nullptr)) ||
      (n_files > 0 && input_files == nullptr) ||
      (n_sentences > 0 && (sentences == nullptr || sentence_lens == nullptr)) || sink == nullptr) {
    return fail("null argument to r1kit_spm_train");
  }
  if (n_files == 0 && n_sentences == 0) return fail("train: no corpus (no files, no sentences)");
  try {
    std::lock_guard<std::mutex> lock(g_train_mutex);
    LogLevelGuard log_guard;
    std::unordered_map<std::string, std::string> kwargs;
    for (size_t i = 0; i < n_kv; ++i) {
      if (keys[i] == nullptr || values[i] == nullptr) return fail("train: null key or value");
      const std::string key = keys[i];
      const std::string value = values[i];
      if (key == "input" || key == "model_prefix") continue;
      if (key == "random_seed") {
        sentencepiece::SetRandomGeneratorSeed(static_cast<unsigned>(std::stoul(value)));
      } else if (key == "minloglevel") {
        sentencepiece::logging::SetMinLogLevel(std::stoi(value));
      } else {
        kwargs[key] = value;
      }
    }
    std::vector<std::string> files;
    for (size_t i = 0; i < n_files; ++i) {
      if (input_files[i] == nullptr) return fail("train: null file path");
      files.emplace_back(input_files[i]);
    }
    std::vector<std::string> lines;
    lines.reserve(n_sentences);
    for (size_t i = 0; i < n_sentences; ++i) {
      lines.emplace_back(sentences[i] == nullptr ? "" : sentences[i], sentence_lens[i]);
    }
    ChainIterator it(std::move(files), std::move(lines));
    std::string serialized;
    const auto s = sentencepiece::SentencePieceTrainer::Train(kwargs, &it, &serialized);
    if (!it.status().ok()) return fail_status("train", it.status());
    if (!s.ok()) return fail_status("train", s);
    sink(ctx, serialized.data(), serialized.size());
    return 0;
  } catch (const std::exception& e) {
    return fail(std::string("train: ") + e.what());
  } catch (...) {
    return fail("train: unknown error");
  }
}

}  // extern "C"
