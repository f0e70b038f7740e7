// Peak resident memory of loading a checkpoint: `load_bench DIR [bf16|f32] [legacy]`.
//
// Loads DIR with policy::load_model in the given dtype and prints the process's peak
// resident set (VmHWM from /proc/self/status), its resident set after loading, the bytes
// of the model's parameters, and the time taken. `legacy` instead runs the steps load_model
// took before it built the model in the load dtype: an fp32 model initialised with
// init_weights, every tensor read with SafetensorsCheckpoint::load (an owning copy, the
// file's pages left resident) and copied in, then cast_model to the dtype. One load per
// process, so that VmHWM is this load's peak. With LOAD_BENCH_STEPS=1 in the environment it
// prints the memory after building the model and after loading the weights into it.
// bench/load_memory.sh runs it; the figures are in bench/RESULTS.md ("Loading memory").
#include <cstdio>
#include <fstream>
#include <string>

#include "bench/bench_util.h"
#include "core/safetensors.h"
#include "policy/checkpoint.h"
#include "policy/model_config.h"

namespace {

// A "VmHWM:   123 kB" line of /proc/self/status, in MiB.
double status_mib(const std::string& key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(key + ":", 0) == 0) return std::stod(line.substr(key.size() + 1)) / 1024.0;
  return -1;
}

r1kit::StatusOr<r1kit::policy::Transformer> legacy_load(const std::string& dir,
                                                        torch::Dtype dtype) {
  using namespace r1kit;
  ASSIGN_OR_RETURN(policy::ModelArgs args, policy::load_hf_config(dir + "/config.json"));
  policy::Transformer model(args);
  ASSIGN_OR_RETURN(SafetensorsCheckpoint ckpt, SafetensorsCheckpoint::open_dir(dir));
  auto params = model->named_parameters();
  torch::NoGradGuard no_grad;
  for (const std::string& hf : ckpt.names()) {
    ASSIGN_OR_RETURN(std::string native, policy::from_hf_name(hf, args));
    if (native.empty() || !params.contains(native)) continue;
    ASSIGN_OR_RETURN(torch::Tensor t, ckpt.load(hf));
    params[native].copy_(t);
  }
  policy::cast_model(*model, dtype);
  return model;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: load_bench DIR [bf16|f32] [legacy]\n");
    return 2;
  }
  r1kit::bench::bench_init();
  const std::string dir = argv[1];
  const std::string dtype_name = argc > 2 ? argv[2] : "bf16";
  const bool legacy = argc > 3 && std::string(argv[3]) == "legacy";
  const torch::Dtype dtype = dtype_name == "bf16" ? torch::kBFloat16 : torch::kFloat;
  std::printf("before: VmHWM %.0f MiB\n", status_mib("VmHWM"));
  const auto t0 = r1kit::bench::Clock::now();
  r1kit::policy::LoadOptions lo;
  lo.dtype = dtype;
  if (std::getenv("LOAD_BENCH_STEPS")) {
    auto args = r1kit::policy::load_hf_config(dir + "/config.json");
    if (!args.ok()) {
      std::fprintf(stderr, "%s\n", args.status().to_string().c_str());
      return 1;
    }
    r1kit::policy::Transformer m(*args, dtype, /*init=*/false);
    std::printf("built: VmHWM %.0f MiB, anon %.0f\n", status_mib("VmHWM"), status_mib("RssAnon"));
    auto st = r1kit::policy::load_weights(*m, dir, lo);
    std::printf("loaded (%s): VmHWM %.0f MiB, anon %.0f\n", st.to_string().c_str(),
                status_mib("VmHWM"), status_mib("RssAnon"));
    return st.ok() ? 0 : 1;
  }
  auto model = legacy ? legacy_load(dir, dtype) : r1kit::policy::load_model(dir, lo);
  if (!model.ok()) {
    std::fprintf(stderr, "%s\n", model.status().to_string().c_str());
    return 1;
  }
  const double secs = std::chrono::duration<double>(r1kit::bench::Clock::now() - t0).count();
  int64_t bytes = 0, numel = 0;
  for (const auto& p : (*model)->parameters()) {
    bytes += p.numel() * p.element_size();
    numel += p.numel();
  }
  std::printf(
      "%s %s: %.1fM parameters, %.0f MiB of them; peak RSS (VmHWM) %.0f MiB, RSS after %.0f "
      "MiB (anonymous %.0f, file %.0f); %.1f s\n",
      legacy ? "legacy load" : "load_model", dtype_name.c_str(), numel / 1e6, bytes / 1048576.0,
      status_mib("VmHWM"), status_mib("VmRSS"), status_mib("RssAnon"), status_mib("RssFile"), secs);
  return 0;
}
