#include "policy/checkpoint.h"

#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "core/atomic_file.h"
#include "core/logging.h"
#include "core/safetensors.h"
#include "data/tokenizer.h"

namespace r1kit::policy {
namespace fs = std::filesystem;

namespace {

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.rfind(prefix, 0) == 0;
}

}  // namespace

std::string to_hf_name(const std::string& native, const ModelArgs& args) {
  if (native == "lm_head.weight") return native;
  if (starts_with(native, "mtp.")) {
    // mtp.K.rest -> model.layers.{L+K}.rest (with "block." removed)
    const size_t dot = native.find('.', 4);
    const int64_t k = std::stoll(native.substr(4, dot - 4));
    std::string rest = native.substr(dot + 1);
    if (starts_with(rest, "block.")) rest = rest.substr(6);
    return fmt::format("model.layers.{}.{}", args.n_layers + k, rest);
  }
  return "model." + native;
}

StatusOr<std::string> from_hf_name(const std::string& hf, const ModelArgs& args) {
  if (hf == "lm_head.weight") return hf;
  if (hf.find("rotary_emb.inv_freq") != std::string::npos) return std::string();
  if (!starts_with(hf, "model.")) return NotFound("tensor '{}': not a known model tensor", hf);
  std::string rest = hf.substr(6);
  if (starts_with(rest, "layers.")) {
    const size_t dot = rest.find('.', 7);
    if (dot == std::string::npos) return NotFound("tensor '{}': malformed layer name", hf);
    int64_t layer = -1;
    try {
      layer = std::stoll(rest.substr(7, dot - 7));
    } catch (...) {
      return NotFound("tensor '{}': malformed layer index", hf);
    }
    if (layer >= args.n_layers) {
      const int64_t k = layer - args.n_layers;
      if (k >= args.n_mtp_layers)
        return NotFound("tensor '{}': layer {} beyond n_layers + n_mtp_layers", hf, layer);
      std::string tail = rest.substr(dot + 1);
      if (tail == "embed_tokens.weight" || tail == "shared_head.head.weight") return std::string();
      static const char* kOwn[] = {"enorm.", "hnorm.", "eh_proj.", "shared_head."};
      for (const char* own : kOwn)
        if (starts_with(tail, own)) return fmt::format("mtp.{}.{}", k, tail);
      return fmt::format("mtp.{}.block.{}", k, tail);
    }
  }
  return rest;
}

std::vector<std::pair<std::string, torch::Tensor>> export_tensors(TransformerImpl& model,
                                                                  torch::Dtype dtype) {
  const ModelArgs& args = model.args();
  std::vector<std::pair<std::string, torch::Tensor>> out;
  auto add = [&](const std::string& native, const torch::Tensor& t) {
    // Expert-correction biases stay fp32, as in the DeepSeek-V3 release.
    const bool keep_f32 = native.find("e_score_correction_bias") != std::string::npos;
    out.emplace_back(to_hf_name(native, args),
                     t.detach().to(torch::kCPU, keep_f32 ? torch::kFloat : dtype).contiguous());
  };
  for (const auto& p : model.named_parameters()) add(p.key(), p.value());
  for (const auto& b : model.named_buffers()) add(b.key(), b.value());
  for (int64_t k = 0; k < args.n_mtp_layers; ++k) {
    const std::string base = fmt::format("model.layers.{}.", args.n_layers + k);
    out.emplace_back(base + "embed_tokens.weight",
                     model.embed_tokens->weight.detach().to(torch::kCPU, dtype).contiguous());
    out.emplace_back(base + "shared_head.head.weight",
                     model.output_weight().detach().to(torch::kCPU, dtype).contiguous());
  }
  return out;
}

Status save_model(TransformerImpl& model, const std::string& dir, const SaveOptions& opts) {
  if (opts.dtype != torch::kFloat && opts.dtype != torch::kBFloat16)
    return InvalidArgument("save_model {}: dtype must be float32 or bfloat16", dir);
  if (dir.empty()) return InvalidArgument("save_model: empty directory name");
  // "runs/ckpt/" normalises to a path with an empty file name; the temporary must be a
  // sibling of the directory, not a child of it.
  fs::path target = fs::absolute(dir).lexically_normal();
  if (!target.has_filename()) target = target.parent_path();
  if (!target.has_filename() || target.filename() == "..")
    return InvalidArgument("save_model {}: not a directory name that can be replaced", dir);
  const std::string final_dir = target.string();
  std::error_code ec;
  if (fs::exists(target, ec) && !fs::is_directory(target, ec))
    return FailedPrecondition("save_model {}: exists and is not a directory", dir);
  const std::string tmp = temp_sibling(final_dir);
  fs::create_directories(tmp, ec);
  if (ec) return FailedPrecondition("save_model {}: cannot create {}: {}", dir, tmp, ec.message());
  auto cleanup = [&](Status s) {
    fs::remove_all(tmp, ec);
    return s;
  };
  nlohmann::json config = args_to_hf_config(model.args());
  config["torch_dtype"] = opts.dtype == torch::kBFloat16 ? "bfloat16" : "float32";
  Status st = write_file_atomic(tmp + "/config.json", config.dump(2) + "\n");
  if (!st.ok()) return cleanup(st);
  st = write_sharded(tmp, export_tensors(model, opts.dtype), opts.max_shard_bytes,
                     {{"format", "pt"}});
  if (!st.ok()) return cleanup(st);
  if (!opts.tokenizer_path.empty()) {
    auto files = data::tokenizer_files(opts.tokenizer_path);
    if (!files.ok()) return cleanup(files.status());
    for (const auto& [source, name] : *files) {
      auto bytes = read_file(source);
      if (!bytes.ok()) return cleanup(bytes.status());
      st = write_file_atomic(tmp + "/" + name, *bytes);
      if (!st.ok()) return cleanup(st);
    }
  }
  if (opts.prompt_format) {
    const std::string config_path = tmp + "/tokenizer_config.json";
    std::string existing;
    if (fs::exists(config_path, ec)) {
      auto bytes = read_file(config_path);
      if (!bytes.ok()) return cleanup(bytes.status());
      existing = std::move(bytes).value();
    }
    auto merged = data::merge_tokenizer_config(existing, *opts.prompt_format);
    if (!merged.ok()) return cleanup(merged.status().with_context(opts.tokenizer_path));
    st = write_file_atomic(config_path, *merged);
    if (!st.ok()) return cleanup(st);
  }
  st = rename_dir_atomic(tmp, final_dir);
  if (!st.ok()) return cleanup(st);
  return OkStatus();
}

Status load_weights(TransformerImpl& model, const std::string& dir, const LoadOptions& opts) {
  ASSIGN_OR_RETURN(SafetensorsCheckpoint ckpt, SafetensorsCheckpoint::open_dir(dir));
  const ModelArgs& args = model.args();
  std::map<std::string, torch::Tensor> targets;
  for (const auto& p : model.named_parameters()) targets[p.key()] = p.value();
  for (const auto& b : model.named_buffers()) targets[b.key()] = b.value();
  std::set<std::string> loaded;
  torch::NoGradGuard no_grad;
  for (const std::string& hf : ckpt.names()) {
    if (is_scale_inv(hf)) continue;
    auto native = from_hf_name(hf, args);
    if (!native.ok() || native->empty()) {
      if (native.ok()) continue;  // deliberately ignored
      if (opts.strict)
        return InvalidArgument("{}: unexpected tensor '{}' (not part of this {} model)", dir, hf,
                               args.model_type);
      R1_LOG(warn, "{}: skipping unexpected tensor '{}'", dir, hf);
      continue;
    }
    if (args.tie_embeddings && *native == "lm_head.weight") continue;  // tied: same as embed
    auto it = targets.find(*native);
    if (it == targets.end()) {
      if (opts.strict)
        return InvalidArgument("{}: unexpected tensor '{}' (not part of this {} model)", dir, hf,
                               args.model_type);
      R1_LOG(warn, "{}: skipping unexpected tensor '{}'", dir, hf);
      continue;
    }
    const TensorInfo* info = ckpt.info(hf);
    if (!it->second.sizes().equals(info->shape))
      return InvalidArgument("{}: tensor '{}' has shape {}, the model expects {}", dir, hf,
                             fmt::join(info->shape, "x"), fmt::join(it->second.sizes(), "x"));
    auto stored = safe_dtype_to_torch(info->dtype);
    if (stored && !torch::isFloatingType(*stored))
      return InvalidArgument("{}: tensor '{}' has non-float dtype {}", dir, hf,
                             c10::toString(*stored));
    // Converted straight into the model's dtype, one tensor resident at a time.
    RETURN_IF_ERROR(ckpt.copy_into(hf, it->second));
    loaded.insert(*native);
  }
  for (const auto& [name, t] : targets) {
    if (!loaded.count(name))
      return NotFound("{}: tensor '{}' is missing from the checkpoint", dir,
                      to_hf_name(name, args));
  }
  return OkStatus();
}

StatusOr<Transformer> load_model(const std::string& dir, const LoadOptions& opts) {
  if (!torch::isFloatingType(opts.dtype))
    return InvalidArgument("load_model {}: dtype {} is not a floating type", dir,
                           c10::toString(opts.dtype));
  ASSIGN_OR_RETURN(ModelArgs args, load_hf_config(dir + "/config.json"));
  RETURN_IF_ERROR(check_model_memory(args, c10::elementSize(opts.dtype), dir + "/config.json"));
  // Built in the load dtype (router correction biases stay fp32) and filled tensor by tensor:
  // a bf16 model never has an fp32 copy (docs/model.md, "Loading rules").
  Transformer model(args, opts.dtype, /*init=*/false);
  RETURN_IF_ERROR(load_weights(*model, dir, opts));
  return model;
}

Status save_state(TransformerImpl& model, const std::string& path) {
  std::vector<std::pair<std::string, torch::Tensor>> t;
  for (const auto& p : model.named_parameters()) t.emplace_back(p.key(), p.value());
  for (const auto& b : model.named_buffers()) t.emplace_back(b.key(), b.value());
  return write_safetensors(path, t);
}

Status load_state(TransformerImpl& model, const std::string& path) {
  ASSIGN_OR_RETURN(auto file, SafetensorsFile::open(path));
  torch::NoGradGuard ng;
  auto load_into = [&](const std::string& name, torch::Tensor dst) -> Status {
    const TensorInfo* info = file->find(name);
    if (info == nullptr) return NotFound("{}: no tensor '{}'", path, name);
    if (!dst.sizes().equals(info->shape))  // from the header, before anything is read
      return DataLoss("{}: tensor {} has shape [{}], the model's is {}", path, name,
                      fmt::join(info->shape, ", "), c10::str(dst.sizes()));
    ASSIGN_OR_RETURN(auto t, file->load(name));
    dst.copy_(t);
    return OkStatus();
  };
  for (auto& p : model.named_parameters()) RETURN_IF_ERROR(load_into(p.key(), p.value()));
  for (auto& b : model.named_buffers()) RETURN_IF_ERROR(load_into(b.key(), b.value()));
  return OkStatus();
}

}  // namespace r1kit::policy
