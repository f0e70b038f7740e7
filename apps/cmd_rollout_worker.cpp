// `r1kit rollout-worker`: serve a checkpoint's in-process rollout engine
// (rollout/local_source.h) over gRPC (proto/rollout.proto, rollout/grpc/worker.h), so a
// trainer's GrpcRolloutSource can pull groups from it and push new weights to it.
//
// Binds 127.0.0.1 unless --bind says otherwise; --token-file makes every Rollout RPC
// need `authorization: Bearer <token>`; --tls-cert/--tls-key turn on TLS, and
// --tls-client-ca requires client certificates (mutual TLS). The model's
// recorded prompt format (data/prompt_format.h) is printed at start and returned by Info,
// so clients render prompts the way the model was trained. Runs until
// SIGINT or SIGTERM, then aborts the running generation and exits. See docs/protocol.md.
#include <torch/torch.h>

#include <csignal>
#include <cstdio>

#include "apps/commands.h"
#include "apps/engine_flags.h"
#include "core/atomic_file.h"
#include "data/prompt_format.h"
#include "policy/checkpoint.h"
#include "rollout/grpc/worker.h"
#include "rollout/local_source.h"

namespace r1kit::apps {
namespace {

struct WorkerFlags {
  std::string model;
  int port = 0;
  std::string bind = "127.0.0.1";
  std::string token_file;
  std::string tls_cert;
  std::string tls_key;
  std::string tls_client_ca;
  EngineFlags engine;
  int64_t max_group_size = 256;
  int64_t max_prompts = 4096;
  int64_t max_request_kib = 2048;  // WorkerLimits::max_generate_request_bytes / 1024
};

Status run_worker(const WorkerFlags& f) {
  if (f.port < 0 || f.port > 65535) return InvalidArgument("--port {}: not a port", f.port);
  if (f.tls_cert.empty() != f.tls_key.empty())
    return InvalidArgument("--tls-cert and --tls-key go together");
  rollout::WorkerOptions opts;
  opts.bind = f.bind;
  opts.port = f.port;
  if (!f.token_file.empty()) {
    ASSIGN_OR_RETURN(opts.token, read_token_file(f.token_file));
  } else if (f.bind != "127.0.0.1" && f.bind != "localhost" && f.bind != "::1") {
    std::fprintf(stderr,
                 "warning: --bind %s without --token-file: anyone who can reach this port can "
                 "generate and replace the weights\n",
                 f.bind.c_str());
  }
  if (!f.tls_cert.empty()) {
    ASSIGN_OR_RETURN(opts.tls_cert_pem, read_file(f.tls_cert, "--tls-cert"));
    ASSIGN_OR_RETURN(opts.tls_key_pem, read_file(f.tls_key, "--tls-key"));
  }
  if (!f.tls_client_ca.empty()) {
    if (f.tls_cert.empty()) return InvalidArgument("--tls-client-ca needs --tls-cert/--tls-key");
    ASSIGN_OR_RETURN(opts.tls_client_ca_pem, read_file(f.tls_client_ca, "--tls-client-ca"));
  }
  f.engine.apply_threads();

  ASSIGN_OR_RETURN(const policy::LoadOptions load, f.engine.load_options());
  ASSIGN_OR_RETURN(auto source, rollout::LocalRolloutSource::from_checkpoint(
                                    f.model, f.engine.engine.engine_options(), load));
  rollout::LocalRolloutSource* local = source.get();
  ASSIGN_OR_RETURN(opts.model_config_json, read_file(f.model + "/config.json", "config.json"));
  // Prompts arrive as ids: clients render them, so the worker tells them how (Info).
  ASSIGN_OR_RETURN(const std::optional<data::PromptFormat> format,
                   data::read_prompt_format(f.model));
  if (format) opts.prompt_format_json = format->to_json().dump();
  opts.limits.vocab_size = local->model_args().vocab_size;
  opts.limits.max_prompt_tokens = local->max_seq_len() - 1;
  opts.limits.max_new_tokens = local->max_seq_len() - 1;  // the engine checks the sum
  opts.limits.max_group_size = f.max_group_size;
  opts.limits.max_prompts = f.max_prompts;
  if (f.max_request_kib < 1 || f.max_request_kib > 4096)
    return InvalidArgument(
        "--max-request-kib {}: must be in [1, 4096] (gRPC's cap on every "
        "message is 4 MiB plus 64 KiB)",
        f.max_request_kib);
  opts.limits.max_generate_request_bytes = f.max_request_kib << 10;
  opts.engine_threads = 1;  // the engine runs one request at a time
  opts.abort_generation = [local] { local->abort(); };

  // SIGINT/SIGTERM are taken by sigwait below; block them before gRPC starts threads.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  rollout::RolloutWorker worker(*source, opts);
  RETURN_IF_ERROR(worker.start());
  std::printf(
      "rollout worker: %s on %s (vocab %lld, %lld tokens per sequence, prompt format %s)%s%s\n",
      f.model.c_str(), worker.address().c_str(), static_cast<long long>(opts.limits.vocab_size),
      static_cast<long long>(local->max_seq_len()),
      format ? fmt::format("{}{}", format->chat_template,
                           format->prefill_think ? " with prefill_think" : "")
                   .c_str()
             : "not recorded",
      opts.token.empty() ? "" : ", token required", opts.tls_cert_pem.empty() ? "" : ", TLS");
  std::fflush(stdout);
  int sig = 0;
  sigwait(&sigs, &sig);
  std::printf("rollout worker: signal %d, shutting down\n", sig);
  worker.shutdown();
  return OkStatus();
}

}  // namespace

void add_rollout_worker_command(CLI::App& root, int* exit_code) {
  auto flags = std::make_shared<WorkerFlags>();
  CLI::App* cmd = root.add_subcommand(
      "rollout-worker",
      "Serve a checkpoint's generation engine over gRPC (proto/rollout.proto) to trainers' "
      "rollout pools; loopback only unless --bind (docs/protocol.md)");
  cmd->add_option("--model", flags->model, "Checkpoint directory (config.json + safetensors)")
      ->required();
  cmd->add_option("--port", flags->port, "TCP port (0 = any free port, printed at start)")
      ->required();
  cmd->add_option("--bind", flags->bind, "Address to listen on (0.0.0.0: every interface)")
      ->capture_default_str();
  cmd->add_option("--token-file", flags->token_file,
                  "File holding the bearer token every RPC must carry");
  cmd->add_option("--tls-cert", flags->tls_cert, "PEM certificate chain (TLS; with --tls-key)");
  cmd->add_option("--tls-key", flags->tls_key, "PEM private key (TLS; with --tls-cert)");
  cmd->add_option("--tls-client-ca", flags->tls_client_ca,
                  "PEM CA bundle: require clients to present a certificate it signed (mutual "
                  "TLS; with --tls-cert)");
  add_engine_flags(cmd, flags->engine);
  cmd->add_option("--max-group-size", flags->max_group_size, "Largest n accepted")
      ->capture_default_str();
  cmd->add_option("--max-prompts", flags->max_prompts, "Most prompts per request")
      ->capture_default_str();
  cmd->add_option("--max-request-kib", flags->max_request_kib,
                  "Largest Generate request, serialised (KiB); refused before it is parsed")
      ->capture_default_str();
  cmd->callback([flags, exit_code] { *exit_code = report(run_worker(*flags)); });
}

}  // namespace r1kit::apps
