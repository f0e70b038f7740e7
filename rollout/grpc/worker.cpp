// RolloutWorker: the gRPC server side of proto/rollout.proto, on the callback API.
// See worker.h for the design; the comments here cover the reactor life cycles.
#include "rollout/grpc/worker.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/wire_format_lite.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpcpp/ext/health_check_service_server_builder_option.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/impl/codegen/proto_utils.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/support/proto_buffer_reader.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <string_view>
#include <thread>
#include <unordered_set>

#include "core/crc32c.h"
#include "core/logging.h"
#include "rollout.grpc.pb.h"
#include "rollout/grpc/convert.h"

namespace r1kit::rollout {
namespace {

using namespace grpc_internal;

constexpr int64_t kMaxChunkBytes = int64_t{4} << 20;
// The largest message a worker takes, of any method: a weight chunk's 4 MiB of data plus
// its header fields (UpdateWeights' cap). gRPC refuses a longer one (RESOURCE_EXHAUSTED),
// but gRPC 1.51 compares the length only once the whole message has arrived, so the cap
// does not stop a large message being received (docs/protocol.md, "Security"). Generate
// requests have a smaller cap of their own (WorkerLimits::max_generate_request_bytes),
// checked before they are parsed; Info requests are empty. With a token, all of this
// happens only after the token check, which comes before any message is read.
constexpr int kWorkerMaxReceiveBytes = static_cast<int>(kMaxChunkBytes) + (64 << 10);

// An exception's message for a client: LibTorch's errors without their C++ backtrace.
std::string message_of(const std::exception& e) {
  if (const auto* c10 = dynamic_cast<const c10::Error*>(&e)) return c10->what_without_backtrace();
  return e.what();
}

// A FIFO of jobs served by a fixed set of threads. stop() runs what is queued, then
// joins (queued jobs check for shutdown themselves and end at once).
class TaskPool {
 public:
  explicit TaskPool(int threads) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { loop(); });
  }
  ~TaskPool() { stop(); }

  // After stop(), runs `job` on the calling thread (jobs end at once then).
  void post(std::function<void()> job) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!stop_) {
        jobs_.push_back(std::move(job));
        job = nullptr;
      }
    }
    if (job) {
      job();
      return;
    }
    cv_.notify_one();
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_)
      if (t.joinable()) t.join();
  }

 private:
  void loop() {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stop_ || !jobs_.empty(); });
        if (jobs_.empty()) return;
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      job();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

// Constant-time comparison, so the token cannot be guessed byte by byte from timing.
bool same_secret(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) diff |= a[i] ^ b[i % (b.empty() ? 1 : b.size())];
  return diff == 0 && !b.empty();
}

// ---- The token check, before any message is read ----

// The health service's methods, which answer without a token.
constexpr std::string_view kHealthPrefix = "/grpc.health.v1.Health/";

struct TokenCheck {
  std::string expected;                           // "Bearer <token>"
  std::shared_ptr<std::atomic<int64_t>> refused;  // WorkerStats::unauthenticated
};

std::string_view view_of(const grpc_slice& s) {
  return {reinterpret_cast<const char*>(GRPC_SLICE_START_PTR(s)), GRPC_SLICE_LENGTH(s)};
}

// gRPC's auth metadata processor (grpc/grpc_security.h): called by the server's auth
// filter with a call's initial metadata, before the call is matched to a method and
// before its first message is read. A refused call ends there with UNAUTHENTICATED.
// Answers synchronously (allowed: gRPC's own C++ wrapper does so for non-blocking
// processors). `:path` is among the metadata; when it is absent the token is required.
void check_token(void* state, grpc_auth_context* /*peer*/, const grpc_metadata* md, size_t n,
                 grpc_process_auth_metadata_done_cb done, void* user_data) {
  const auto* check = static_cast<const TokenCheck*>(state);
  std::string_view path, auth;
  bool has_auth = false;
  for (size_t i = 0; i < n; ++i) {
    const std::string_view key = view_of(md[i].key);
    if (key == ":path") path = view_of(md[i].value);
    if (key == kAuthKey && !has_auth) {  // the first one, as ServerContext's find() sees it
      auth = view_of(md[i].value);
      has_auth = true;
    }
  }
  const bool health = path.substr(0, kHealthPrefix.size()) == kHealthPrefix;
  if (health || (has_auth && same_secret(auth, check->expected))) {
    done(user_data, nullptr, 0, nullptr, 0, GRPC_STATUS_OK, nullptr);
    return;
  }
  ++*check->refused;
  done(user_data, nullptr, 0, nullptr, 0, GRPC_STATUS_UNAUTHENTICATED,
       "missing or wrong bearer token");
}

// Server credentials (plaintext or TLS) whose auth metadata processor is check_token.
// gRPC 1.51's C++ InsecureServerCredentials() aborts in SetAuthMetadataProcessor (only
// its TLS credentials take one), while the core's insecure credentials accept a
// processor like any other: so both are built here from the C API, which
// grpc::SslServerCredentials and InsecureServerCredentials wrap in the same way.
class TokenCheckedCredentials final : public grpc::ServerCredentials {
 public:
  // Takes ownership of `creds`.
  TokenCheckedCredentials(grpc_server_credentials* creds, std::unique_ptr<TokenCheck> check)
      : creds_(creds) {
    grpc_auth_metadata_processor p;
    p.process = check_token;
    p.destroy = [](void* state) { delete static_cast<TokenCheck*>(state); };
    p.state = check.release();
    grpc_server_credentials_set_auth_metadata_processor(creds_, p);
  }
  ~TokenCheckedCredentials() override { grpc_server_credentials_release(creds_); }
  TokenCheckedCredentials(const TokenCheckedCredentials&) = delete;
  TokenCheckedCredentials& operator=(const TokenCheckedCredentials&) = delete;

  // The processor is the token check, fixed at construction; replacing it would
  // silently drop the check, so this is a programming error, as in gRPC's own insecure
  // credentials.
  void SetAuthMetadataProcessor(const std::shared_ptr<grpc::AuthMetadataProcessor>&) override {
    R1_LOG(critical, "TokenCheckedCredentials: the token check cannot be replaced");
    std::abort();
  }

 private:
  int AddPortToServer(const std::string& addr, grpc_server* server) override {
    return grpc_server_add_http2_port(server, addr.c_str(), creds_);
  }

  grpc_server_credentials* creds_;
};

}  // namespace

namespace {

// ---- Generate ----

class GenerateReactor;

// What a Generate stream and its engine job share. The job may outlive the reactor
// (a cancelled stream finishes at once), so the reactor pointer is cleared in OnDone.
struct StreamState {
  std::mutex mu;
  GenerateReactor* reactor = nullptr;    // null after OnDone
  std::deque<grpc::ByteBuffer> pending;  // serialised GroupResults
  grpc::ByteBuffer current;              // the message being written
  bool writing = false;                  // a StartWrite is in flight
  bool finish_called = false;
  bool cancelled = false;  // the client went away
  bool generated = false;  // the engine job ended; `result` holds its status
  bool running = false;    // the engine job is inside RolloutSource::generate
  grpc::Status result;
};

}  // namespace

// The worker's shared state; reactors and engine jobs point at it.
struct WorkerCore {
  WorkerCore(RolloutSource& s, WorkerOptions o)
      : source(s), options(std::move(o)), engine(std::max(1, options.engine_threads)), control(1) {}

  // The token check again, in the handlers (TokenCheckedCredentials already refused
  // every call without it; this keeps a handler safe on its own).
  bool authorized(grpc::CallbackServerContext* ctx) const {
    if (options.token.empty()) return true;
    const auto& md = ctx->client_metadata();
    auto it = md.find(kAuthKey);
    if (it == md.end()) return false;
    return same_secret(std::string(it->second.data(), it->second.size()),
                       std::string(kBearer) + options.token);
  }

  void refresh_health() {
    if (!server) return;
    if (auto* h = server->GetHealthCheckService())
      h->SetServingStatus(!shutting_down.load() && updating.load() == 0);
  }

  Status check_request(const pb::GenerateRequest& r) const;
  Status check_score(const pb::ScoreRequest& r) const;

  // The running weight update, watched for inactivity (watch_updates).
  void update_began(grpc::CallbackServerContext* ctx) {
    std::lock_guard<std::mutex> lock(update_mu);
    update_ctx = ctx;
    update_seen = std::chrono::steady_clock::now();
  }
  void update_active() {
    std::lock_guard<std::mutex> lock(update_mu);
    update_seen = std::chrono::steady_clock::now();
  }
  void update_ended() {
    std::lock_guard<std::mutex> lock(update_mu);
    update_ctx = nullptr;
  }
  // On its own thread until shutdown: cancels an update stream that sent nothing for
  // options.update_idle_timeout_s, so a stalled or malicious sender cannot keep the
  // worker NOT_SERVING; the stream then ends with nothing applied.
  void watch_updates() {
    const auto timeout = std::chrono::duration<double>(options.update_idle_timeout_s);
    const auto tick = std::min<std::chrono::duration<double>>(timeout / 4, std::chrono::seconds(1));
    std::unique_lock<std::mutex> lock(update_mu);
    while (!watch_cv.wait_for(lock, tick, [&] { return stop_watching; })) {
      if (update_ctx == nullptr || std::chrono::steady_clock::now() - update_seen < timeout)
        continue;
      R1_LOG(warn, "weight update: nothing received for {}s; stream cancelled",
             options.update_idle_timeout_s);
      update_ctx->TryCancel();
      update_ctx = nullptr;
    }
  }

  RolloutSource& source;
  WorkerOptions options;
  std::unique_ptr<grpc::Service> service;
  std::unique_ptr<grpc::Server> server;
  int port = 0;
  TaskPool engine;
  TaskPool control;
  std::atomic<int64_t> active_groups{0};
  std::atomic<int64_t> queued_groups{0};
  // WorkerStats. `unauthenticated` is shared with the token check, which gRPC may
  // destroy after the worker.
  std::shared_ptr<std::atomic<int64_t>> unauthenticated = std::make_shared<std::atomic<int64_t>>(0);
  std::atomic<int64_t> generate_requests{0};
  std::atomic<int64_t> generate_request_bytes{0};
  std::atomic<int64_t> oversized_requests{0};
  std::atomic<int> updating{0};
  std::atomic<bool> update_busy{false};
  std::atomic<bool> shutting_down{false};
  std::mutex update_mu;  // guards the four below
  grpc::CallbackServerContext* update_ctx = nullptr;
  std::chrono::steady_clock::time_point update_seen;
  std::condition_variable watch_cv;
  bool stop_watching = false;
  std::thread watchdog;
  std::mutex stop_mu;
  std::condition_variable stop_cv;
  bool stopped = false;
};

Status WorkerCore::check_request(const pb::GenerateRequest& r) const {
  const WorkerLimits& lim = options.limits;
  if (r.prompts_size() == 0) return InvalidArgument("prompts: at least one prompt is needed");
  if (lim.max_prompts > 0 && r.prompts_size() > lim.max_prompts)
    return InvalidArgument("prompts: {} prompts, over the limit of {}", r.prompts_size(),
                           lim.max_prompts);
  if (r.group_size() < 1) return InvalidArgument("group_size={}: must be >= 1", r.group_size());
  if (lim.max_group_size > 0 && r.group_size() > lim.max_group_size)
    return InvalidArgument("group_size={}: over the limit of {}", r.group_size(),
                           lim.max_group_size);
  const pb::SamplingParams& s = r.sampling();
  if (s.max_new_tokens() < 1)
    return InvalidArgument("sampling.max_new_tokens={}: must be >= 1", s.max_new_tokens());
  if (lim.max_new_tokens > 0 && s.max_new_tokens() > lim.max_new_tokens)
    return InvalidArgument("sampling.max_new_tokens={}: over the limit of {}", s.max_new_tokens(),
                           lim.max_new_tokens);
  if (!(s.temperature() >= 0) || !std::isfinite(s.temperature()))
    return InvalidArgument("sampling.temperature={}: must be finite and >= 0", s.temperature());
  if (s.top_k() < 0) return InvalidArgument("sampling.top_k={}: must be >= 0", s.top_k());
  if (!(s.top_p() > 0 && s.top_p() <= 1))
    return InvalidArgument("sampling.top_p={}: must be in (0, 1]", s.top_p());
  if (!(s.min_p() >= 0 && s.min_p() <= 1))
    return InvalidArgument("sampling.min_p={}: must be in [0, 1]", s.min_p());
  if (!pb::ExactMode_IsValid(r.exact()))
    return InvalidArgument("exact={}: not an ExactMode this worker knows (0 off, 1 f32, 2 bf16)",
                           static_cast<int>(r.exact()));
  if (lim.max_stop_strings > 0 && s.stop_strings_size() > lim.max_stop_strings)
    return InvalidArgument("sampling.stop_strings: {} strings, over the limit of {}",
                           s.stop_strings_size(), lim.max_stop_strings);
  for (int64_t t : s.stop_token_ids())
    if (t < 0 || (lim.vocab_size > 0 && t >= lim.vocab_size))
      return InvalidArgument("sampling.stop_token_ids: {} is outside the vocabulary [0, {})", t,
                             lim.vocab_size);
  std::unordered_set<int64_t> seen;
  for (int i = 0; i < r.prompts_size(); ++i) {
    const pb::Prompt& p = r.prompts(i);
    if (!seen.insert(p.index()).second)
      return InvalidArgument("prompts[{}]: index {} appears twice", i, p.index());
    if (p.token_ids_size() == 0) return InvalidArgument("prompts[{}]: no token ids", i);
    if (lim.max_prompt_tokens > 0 && p.token_ids_size() > lim.max_prompt_tokens)
      return InvalidArgument("prompts[{}]: {} tokens, over the limit of {}", i, p.token_ids_size(),
                             lim.max_prompt_tokens);
    for (int64_t t : p.token_ids())
      if (t < 0 || (lim.vocab_size > 0 && t >= lim.vocab_size))
        return InvalidArgument("prompts[{}]: token id {} is outside the vocabulary [0, {})", i, t,
                               lim.vocab_size);
  }
  return OkStatus();
}

// The limits of Generate, applied to a Score: sequences as prompts, completion tokens
// as max_new_tokens.
Status WorkerCore::check_score(const pb::ScoreRequest& r) const {
  const WorkerLimits& lim = options.limits;
  if (r.sequences_size() == 0) return InvalidArgument("sequences: at least one is needed");
  if (lim.max_prompts > 0 && r.sequences_size() > lim.max_prompts)
    return InvalidArgument("sequences: {} sequences, over the limit of {}", r.sequences_size(),
                           lim.max_prompts);
  for (int i = 0; i < r.sequences_size(); ++i) {
    const pb::ScoreSequence& q = r.sequences(i);
    if (q.prompt_token_ids_size() == 0)
      return InvalidArgument("sequences[{}]: no prompt token ids", i);
    if (lim.max_prompt_tokens > 0 && q.prompt_token_ids_size() > lim.max_prompt_tokens)
      return InvalidArgument("sequences[{}]: {} prompt tokens, over the limit of {}", i,
                             q.prompt_token_ids_size(), lim.max_prompt_tokens);
    if (lim.max_new_tokens > 0 && q.completion_token_ids_size() > lim.max_new_tokens)
      return InvalidArgument("sequences[{}]: {} completion tokens, over the limit of {}", i,
                             q.completion_token_ids_size(), lim.max_new_tokens);
    for (const auto* ids : {&q.prompt_token_ids(), &q.completion_token_ids()})
      for (int64_t t : *ids)
        if (t < 0 || (lim.vocab_size > 0 && t >= lim.vocab_size))
          return InvalidArgument("sequences[{}]: token id {} is outside the vocabulary [0, {})", i,
                                 t, lim.vocab_size);
  }
  return OkStatus();
}

namespace {

// Streams the groups of one Generate. Writes happen one at a time: the engine job
// queues groups in StreamState, and whoever finds no write in flight starts the next.
// Raw messages (grpc::ByteBuffer) so that the request's size is checked before it is
// parsed; each GroupResult is serialised on the engine thread that made it.
class GenerateReactor final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  GenerateReactor(WorkerCore* w, grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* req)
      : w_(w), st_(std::make_shared<StreamState>()) {
    st_->reactor = this;
    try {
      start(ctx, req);
    } catch (const std::exception& e) {
      finish_now(grpc::Status(grpc::StatusCode::INTERNAL, message_of(e)));
    }
  }

  void OnWriteDone(bool ok) override {
    std::unique_lock<std::mutex> lock(st_->mu);
    st_->writing = false;
    if (!ok) {
      st_->cancelled = true;
      st_->pending.clear();
    }
    pump(st_, lock);
  }

  void OnCancel() override {
    std::unique_lock<std::mutex> lock(st_->mu);
    st_->cancelled = true;
    st_->pending.clear();
    // The abort hook ends the running generate() early; under st_->mu, so the job
    // cannot have moved on to another stream's request in between.
    if (st_->running && w_->options.abort_generation) w_->options.abort_generation();
    pump(st_, lock);
  }

  void OnDone() override {
    {
      std::lock_guard<std::mutex> lock(st_->mu);
      st_->reactor = nullptr;
    }
    delete this;
  }

  // Starts the next write, or Finish once nothing is left. Called with st->mu held;
  // releases it before calling into gRPC. The reactor is alive while no Finish was
  // called, and only this function calls Finish (once).
  static void pump(const std::shared_ptr<StreamState>& st, std::unique_lock<std::mutex>& lock) {
    GenerateReactor* r = st->reactor;
    if (r == nullptr || st->writing || st->finish_called) return;
    if (st->cancelled) {
      st->finish_called = true;
      lock.unlock();
      r->Finish(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled"));
      return;
    }
    if (!st->pending.empty()) {
      st->current = std::move(st->pending.front());
      st->pending.pop_front();
      st->writing = true;
      lock.unlock();
      r->StartWrite(&st->current);
      return;
    }
    if (st->generated) {
      st->finish_called = true;
      grpc::Status result = st->result;
      lock.unlock();
      r->Finish(result);
    }
  }

 private:
  void start(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* raw) {
    ++w_->generate_requests;
    w_->generate_request_bytes += static_cast<int64_t>(raw->Length());
    if (!w_->authorized(ctx)) {
      finish_now(grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "missing or wrong bearer token"));
      return;
    }
    if (w_->shutting_down.load()) {
      finish_now(grpc::Status(grpc::StatusCode::UNAVAILABLE, "worker is shutting down"));
      return;
    }
    const int64_t cap = w_->options.limits.max_generate_request_bytes;
    if (cap > 0 && static_cast<int64_t>(raw->Length()) > cap) {
      ++w_->oversized_requests;
      finish_now(to_grpc(InvalidArgument(
          "GenerateRequest: {} bytes, over the limit of {} (WorkerLimits::"
          "max_generate_request_bytes, --max-request-kib): send fewer prompts per call "
          "(GrpcSourceOptions::max_groups_per_call)",
          raw->Length(), cap)));
      return;
    }
    pb::GenerateRequest parsed;
    grpc::ByteBuffer copy(*raw);  // shares the slices; Deserialize consumes its buffer
    if (!grpc::SerializationTraits<pb::GenerateRequest>::Deserialize(&copy, &parsed).ok()) {
      finish_now(to_grpc(InvalidArgument("GenerateRequest: malformed message")));
      return;
    }
    const pb::GenerateRequest* req = &parsed;
    if (Status s = w_->check_request(*req); !s.ok()) {
      finish_now(to_grpc(s));
      return;
    }
    const int64_t have = w_->source.policy_version();
    if (req->min_policy_version() > have) {
      finish_now(to_grpc(FailedPrecondition("min_policy_version={}: this worker has version {}",
                                            req->min_policy_version(), have)));
      return;
    }
    auto request = std::make_shared<GenerateRequest>(from_proto(*req));
    const int64_t n = static_cast<int64_t>(request->prompts.size());
    w_->queued_groups += n;
    WorkerCore* w = w_;
    std::shared_ptr<StreamState> st = st_;
    w_->engine.post([w, st, request, n] { run(w, st, *request, n); });
  }

  // On an engine thread.
  static void run(WorkerCore* w, const std::shared_ptr<StreamState>& st,
                  const GenerateRequest& request, int64_t n) {
    w->queued_groups -= n;
    grpc::Status result;
    {
      std::lock_guard<std::mutex> lock(st->mu);
      if (w->shutting_down.load() || st->cancelled)
        result = grpc::Status(grpc::StatusCode::CANCELLED, "cancelled before generation");
      else
        st->running = true;
    }
    if (result.ok()) {
      w->active_groups += n;
      auto on_group = [&st](const Group& g) {
        pb::GroupResult msg;
        to_proto(g, &msg);
        grpc::ByteBuffer bytes;
        bool own = false;
        grpc::Status put = grpc::SerializationTraits<pb::GroupResult>::Serialize(msg, &bytes, &own);
        TORCH_CHECK(put.ok(), "serialising a GroupResult: ", put.error_message());
        std::unique_lock<std::mutex> lock(st->mu);
        if (st->cancelled || st->reactor == nullptr) return;
        st->pending.push_back(std::move(bytes));
        pump(st, lock);
      };
      try {
        StatusOr<std::vector<Group>> out = w->source.generate(request, on_group);
        if (!out.ok()) result = to_grpc(out.status());
      } catch (const std::exception& e) {
        result = grpc::Status(grpc::StatusCode::INTERNAL, "generate: " + message_of(e));
      }
      w->active_groups -= n;
    }
    std::unique_lock<std::mutex> lock(st->mu);
    st->running = false;
    st->generated = true;
    st->result = result;
    pump(st, lock);
  }

  // Only before the request was queued: no engine job can race for Finish then.
  void finish_now(const grpc::Status& s) {
    {
      std::lock_guard<std::mutex> lock(st_->mu);
      st_->finish_called = true;
    }
    Finish(s);
  }

  WorkerCore* w_;
  std::shared_ptr<StreamState> st_;
};

// ---- UpdateWeights ----

// One WeightChunk message as read from its raw bytes: every field but data parsed by
// protobuf, and data located in the message but not copied, so that it is copied once,
// straight into its staging tensor (a parsed message would hold a copy of it).
struct RawChunk {
  pb::WeightChunk header;  // every field but data
  uint64_t data_pos = 0;   // where data starts in the message. Bytes.
  uint64_t data_len = 0;   // Bytes.
};

Status parse_chunk(grpc::ByteBuffer* msg, RawChunk* out) {
  namespace pio = google::protobuf::io;
  using google::protobuf::internal::WireFormatLite;
  constexpr uint32_t kDataTag = WireFormatLite::MakeTag(pb::WeightChunk::kDataFieldNumber,
                                                        WireFormatLite::WIRETYPE_LENGTH_DELIMITED);
  grpc::ProtoBufferReader reader(msg);
  if (!reader.status().ok())
    return InvalidArgument("chunk: unreadable message: {}", reader.status().error_message());
  pio::CodedInputStream in(&reader);
  std::string head;  // the other fields, re-encoded
  bool whole = false;
  {
    pio::StringOutputStream head_stream(&head);
    pio::CodedOutputStream head_out(&head_stream);
    for (uint32_t tag; (tag = in.ReadTag()) != 0;) {
      if (tag == kDataTag) {  // the last occurrence counts, as in protobuf
        uint32_t len = 0;
        if (!in.ReadVarint32(&len)) return InvalidArgument("chunk: malformed WeightChunk (data)");
        out->data_pos = static_cast<uint64_t>(in.CurrentPosition());
        out->data_len = len;
        if (!in.Skip(static_cast<int>(len)))
          return InvalidArgument("chunk: data says {} bytes, the message ends before", len);
        continue;
      }
      if (!WireFormatLite::SkipField(&in, tag, &head_out))
        return InvalidArgument("chunk: malformed WeightChunk (field {})", tag >> 3);
    }
    whole = in.ConsumedEntireMessage();
  }
  if (!whole || !out->header.ParseFromString(head))
    return InvalidArgument("chunk: malformed WeightChunk");
  return OkStatus();
}

// Copies the chunk's data to `dst` and extends `crc` over it, slice by slice (each one
// checksummed while it is still in cache).
void copy_data(grpc::ByteBuffer* msg, const RawChunk& c, char* dst, uint32_t* crc) {
  grpc::ProtoBufferReader reader(msg);
  reader.Skip(static_cast<int>(c.data_pos));
  uint64_t left = c.data_len;
  const void* p = nullptr;
  int n = 0;
  while (left > 0 && reader.Next(&p, &n)) {
    const uint64_t m = std::min<uint64_t>(left, static_cast<uint64_t>(n));
    std::memcpy(dst, p, m);
    *crc = crc32c(dst, m, *crc);
    dst += m;
    left -= m;
  }
  // parse_chunk saw all the bytes, so none is missing.
  TORCH_CHECK(left == 0, "weight chunk: ", left, " bytes of data missing on the second read");
}

struct StagedTensor {
  std::string name;
  int dtype = 0;
  std::vector<int64_t> shape;
  uint64_t total = 0;
  uint64_t received = 0;
  uint32_t checksum = 0;  // CRC-32C, as sent
  uint32_t crc = 0;       // CRC-32C of the bytes received so far
  torch::Tensor data;     // contiguous CPU tensor being filled
};

// Receives the chunks of one update into staging tensors (on the gRPC thread, one copy
// of at most 4 MiB per chunk, from the raw message), then hands verification and the
// swap to the control thread. Any inconsistency finishes the stream at once with
// nothing applied. Raw messages (grpc::ByteBuffer) so that the data is copied once.
class UpdateReactor final : public grpc::ServerReadReactor<grpc::ByteBuffer> {
 public:
  UpdateReactor(WorkerCore* w, grpc::CallbackServerContext* ctx, grpc::ByteBuffer* resp)
      : w_(w), ctx_(ctx), resp_(resp) {
    if (!w_->authorized(ctx)) {
      finish(grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "missing or wrong bearer token"));
      return;
    }
    if (w_->shutting_down.load()) {
      finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "worker is shutting down"));
      return;
    }
    if (w_->update_busy.exchange(true)) {
      finish(grpc::Status(grpc::StatusCode::ABORTED, "another weight update is running"));
      return;
    }
    holds_slot_ = true;
    ++w_->updating;
    w_->refresh_health();
    w_->update_began(ctx);
    StartRead(&msg_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      // End of the stream (or a broken one): verify and apply off the gRPC thread.
      w_->control.post([this] { apply(); });
      return;
    }
    w_->update_active();
    Status s;
    try {
      RawChunk c;
      s = parse_chunk(&msg_, &c);
      if (s.ok()) s = take(c);
    } catch (const std::exception& e) {
      s = Internal("staging chunk: {}", message_of(e));
    }
    msg_.Clear();
    if (!s.ok()) {
      finish(to_grpc(s));
      return;
    }
    StartRead(&msg_);
  }

  void OnCancel() override {}

  void OnDone() override { delete this; }

 private:
  Status take(const RawChunk& raw) {
    const pb::WeightChunk& c = raw.header;
    const uint64_t len = raw.data_len;
    if (chunks_ == 0) {
      version_ = c.version();
      tensor_count_ = c.tensor_count();
      if (tensor_count_ < 1) return InvalidArgument("tensor_count={}: must be >= 1", tensor_count_);
    }
    ++chunks_;
    if (c.version() != version_ || c.tensor_count() != tensor_count_)
      return InvalidArgument(
          "chunk {} ({}): version/tensor_count {}/{} differ from the first "
          "chunk's {}/{}",
          chunks_, c.name(), c.version(), c.tensor_count(), version_, tensor_count_);
    if (len > static_cast<uint64_t>(kMaxChunkBytes))
      return InvalidArgument("chunk of '{}': {} bytes, over the 4 MiB limit", c.name(), len);
    StagedTensor* t = tensors_.empty() ? nullptr : &tensors_.back();
    const bool continues = t != nullptr && t->name == c.name() && t->received < t->total;
    if (continues) {
      if (c.dtype() != t->dtype || c.total_bytes() != t->total || c.checksum() != t->checksum ||
          !std::equal(c.shape().begin(), c.shape().end(), t->shape.begin(), t->shape.end()))
        return InvalidArgument("tensor '{}': header changed between chunks", c.name());
    } else {
      if (t != nullptr && t->received != t->total)
        return InvalidArgument("tensor '{}' is incomplete: {} of {} bytes before '{}' began",
                               t->name, t->received, t->total, c.name());
      if (!names_.insert(c.name()).second)
        return InvalidArgument("tensor '{}' sent twice", c.name());
      if (c.checksum() >> 32 != 0)
        return InvalidArgument(
            "tensor '{}': checksum {:016x} is not a CRC-32C (its high 32 bits are set); the "
            "sender may use the older FNV-1a 64 checksum: update it",
            c.name(), c.checksum());
      if (static_cast<int64_t>(tensors_.size()) >= tensor_count_)
        return InvalidArgument("tensor '{}': more tensors than tensor_count={}", c.name(),
                               tensor_count_);
      ASSIGN_OR_RETURN(torch::ScalarType dtype, from_proto_dtype(c.dtype()));
      std::vector<int64_t> shape(c.shape().begin(), c.shape().end());
      uint64_t numel = 1;
      for (int64_t d : shape) {
        if (d < 0 || d > (int64_t{1} << 40))
          return InvalidArgument("tensor '{}': bad dimension {}", c.name(), d);
        numel *= static_cast<uint64_t>(d);
      }
      const uint64_t bytes = numel * c10::elementSize(dtype);
      if (bytes != c.total_bytes())
        return InvalidArgument("tensor '{}': total_bytes={} but shape and dtype give {}", c.name(),
                               c.total_bytes(), bytes);
      bytes_ += bytes;
      const int64_t cap = w_->options.limits.max_update_bytes;
      if (cap > 0 && bytes_ > static_cast<uint64_t>(cap))
        return InvalidArgument("update is over the limit of {} bytes", cap);
      StagedTensor s;
      s.name = c.name();
      s.dtype = c.dtype();
      s.shape = shape;
      s.total = bytes;
      s.checksum = static_cast<uint32_t>(c.checksum());
      s.data = torch::empty(shape, torch::TensorOptions().dtype(dtype));
      tensors_.push_back(std::move(s));
      t = &tensors_.back();
    }
    if (c.offset() != t->received)
      return InvalidArgument("tensor '{}': chunk at offset {}, expected {}", c.name(), c.offset(),
                             t->received);
    if (c.offset() + len > t->total)
      return InvalidArgument("tensor '{}': chunk ends at {}, past total_bytes={}", c.name(),
                             c.offset() + len, t->total);
    // Checked as it arrives, so the checksum overlaps the transfer.
    if (len > 0)
      copy_data(&msg_, raw, static_cast<char*>(t->data.data_ptr()) + c.offset(), &t->crc);
    t->received += len;
    return OkStatus();
  }

  // On the control thread: coverage, checksums, then the swap.
  void apply() {
    grpc::Status result;
    try {
      result = to_grpc(verify_and_apply());
    } catch (const std::exception& e) {
      result = grpc::Status(grpc::StatusCode::INTERNAL, "update: " + message_of(e));
    }
    finish(result);
  }

  Status verify_and_apply() {
    if (chunks_ == 0) return InvalidArgument("the update stream had no chunks");
    if (ctx_->IsCancelled()) return Cancelled("the update stream was cancelled");
    if (static_cast<int64_t>(tensors_.size()) != tensor_count_)
      return InvalidArgument("{} tensors arrived, tensor_count={}", tensors_.size(), tensor_count_);
    // A trainer never goes back to older weights, and never trains on NaN: either means a
    // confused or broken sender, and generating from it would poison the rollouts.
    const int64_t have = w_->source.policy_version();
    if (version_ < have)
      return FailedPrecondition("version {} is older than this worker's {}; refused", version_,
                                have);
    NamedTensors named;
    named.reserve(tensors_.size());
    for (const StagedTensor& t : tensors_) {
      if (t.received != t.total)
        return InvalidArgument("tensor '{}' is incomplete: {} of {} bytes", t.name, t.received,
                               t.total);
      if (t.crc != t.checksum)
        return DataLoss("tensor '{}': CRC-32C of the bytes received is {:08x}, the sender's {:08x}",
                        t.name, t.crc, t.checksum);
      if (t.data.is_floating_point() && !torch::isfinite(t.data).all().item<bool>())
        return InvalidArgument("tensor '{}' holds a NaN or an infinity; update refused", t.name);
      named.emplace_back(t.name, t.data);
    }
    RETURN_IF_ERROR(w_->source.update_weights(named, version_));
    pb::UpdateWeightsResponse resp;
    resp.set_version(version_);
    resp.set_tensors(static_cast<int64_t>(tensors_.size()));
    resp.set_bytes(bytes_);
    const grpc::Slice out(resp.SerializeAsString());
    *resp_ = grpc::ByteBuffer(&out, 1);
    R1_LOG(info, "weights updated to version {} ({} tensors, {} bytes)", version_, tensors_.size(),
           bytes_);
    return OkStatus();
  }

  // Frees the staging memory and the update slot before the client hears the answer,
  // so that its next update is not refused as concurrent.
  void finish(const grpc::Status& s) {
    tensors_.clear();
    if (holds_slot_) {
      w_->update_ended();
      holds_slot_ = false;
      --w_->updating;
      w_->update_busy.store(false);
      w_->refresh_health();
    }
    Finish(s);
  }

  WorkerCore* w_;
  grpc::CallbackServerContext* ctx_;
  grpc::ByteBuffer* resp_;  // a serialised UpdateWeightsResponse
  grpc::ByteBuffer msg_;    // the chunk being read
  bool holds_slot_ = false;
  int64_t version_ = 0;
  int64_t tensor_count_ = 0;
  int64_t chunks_ = 0;
  uint64_t bytes_ = 0;
  std::vector<StagedTensor> tensors_;
  std::unordered_set<std::string> names_;
};

// Generate and UpdateWeights raw (GenerateReactor, UpdateReactor), the others as
// generated.
class WorkerService final
    : public pb::Rollout::WithRawCallbackMethod_Generate<
          pb::Rollout::WithRawCallbackMethod_UpdateWeights<pb::Rollout::WithCallbackMethod_Info<
              pb::Rollout::WithCallbackMethod_Score<pb::Rollout::Service>>>> {
 public:
  explicit WorkerService(WorkerCore* w) : w_(w) {}

  grpc::ServerWriteReactor<grpc::ByteBuffer>* Generate(grpc::CallbackServerContext* ctx,
                                                       const grpc::ByteBuffer* req) override {
    return new GenerateReactor(w_, ctx, req);
  }

  grpc::ServerReadReactor<grpc::ByteBuffer>* UpdateWeights(grpc::CallbackServerContext* ctx,
                                                           grpc::ByteBuffer* resp) override {
    return new UpdateReactor(w_, ctx, resp);
  }

  grpc::ServerUnaryReactor* Info(grpc::CallbackServerContext* ctx, const pb::InfoRequest*,
                                 pb::InfoResponse* resp) override {
    grpc::ServerUnaryReactor* r = ctx->DefaultReactor();
    if (!w_->authorized(ctx)) {
      r->Finish(grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "missing or wrong bearer token"));
      return r;
    }
    try {
      const WorkerLimits& lim = w_->options.limits;
      resp->set_model_config_json(w_->options.model_config_json);
      resp->set_prompt_format_json(w_->options.prompt_format_json);
      resp->set_policy_version(w_->source.policy_version());
      resp->set_active_groups(w_->active_groups.load());
      resp->set_queued_groups(w_->queued_groups.load());
      resp->set_vocab_size(lim.vocab_size);
      resp->set_max_prompt_tokens(lim.max_prompt_tokens);
      resp->set_max_new_tokens(lim.max_new_tokens);
      resp->set_max_group_size(lim.max_group_size);
      resp->set_max_prompts(lim.max_prompts);
      resp->set_updating_weights(w_->updating.load() > 0);
      r->Finish(grpc::Status::OK);
    } catch (const std::exception& e) {
      r->Finish(grpc::Status(grpc::StatusCode::INTERNAL, message_of(e)));
    }
    return r;
  }

  // Checked here (token, limits, version), scored on an engine thread: a forward pass
  // must not block the gRPC thread. The reactor finishes from that thread.
  grpc::ServerUnaryReactor* Score(grpc::CallbackServerContext* ctx, const pb::ScoreRequest* req,
                                  pb::ScoreResponse* resp) override {
    grpc::ServerUnaryReactor* r = ctx->DefaultReactor();
    if (!w_->authorized(ctx)) {
      r->Finish(grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "missing or wrong bearer token"));
      return r;
    }
    if (w_->shutting_down.load()) {
      r->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the worker is shutting down"));
      return r;
    }
    if (Status bad = w_->check_score(*req); !bad.ok()) {
      r->Finish(to_grpc(bad));
      return r;
    }
    if (req->min_policy_version() > w_->source.policy_version()) {
      r->Finish(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                             fmt::format("policy_version {} < min_policy_version {}",
                                         w_->source.policy_version(), req->min_policy_version())));
      return r;
    }
    w_->engine.post([w = w_, r, resp, request = from_proto(*req)] {
      if (w->shutting_down.load()) {
        r->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the worker is shutting down"));
        return;
      }
      try {
        StatusOr<ScoreResult> got = w->source.score(request);
        if (!got.ok()) {
          r->Finish(to_grpc(got.status()));
          return;
        }
        to_proto(*got, resp);
        r->Finish(grpc::Status::OK);
      } catch (const std::exception& e) {
        r->Finish(grpc::Status(grpc::StatusCode::INTERNAL, message_of(e)));
      }
    });
    return r;
  }

 private:
  WorkerCore* w_;
};

}  // namespace

struct RolloutWorker::Impl : WorkerCore {
  using WorkerCore::WorkerCore;
};

RolloutWorker::RolloutWorker(RolloutSource& source, WorkerOptions options)
    : impl_(std::make_unique<Impl>(source, std::move(options))) {}

RolloutWorker::~RolloutWorker() {
  shutdown();
}

Status RolloutWorker::start() {
  Impl& w = *impl_;
  if (w.server) return FailedPrecondition("rollout worker already started");
  if (w.options.tls_cert_pem.empty() != w.options.tls_key_pem.empty())
    return InvalidArgument("TLS needs both a certificate and a key");
  if (!w.options.tls_client_ca_pem.empty() && w.options.tls_cert_pem.empty())
    return InvalidArgument("a TLS client CA needs the server's own certificate and key");
  std::shared_ptr<grpc::ServerCredentials> creds;
  const bool tls = !w.options.tls_cert_pem.empty();
  const grpc_ssl_client_certificate_request_type client_cert =
      w.options.tls_client_ca_pem.empty()
          ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
          : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  if (!w.options.token.empty()) {
    // The same credentials as below, from the C API, with the token check as their auth
    // metadata processor (TokenCheckedCredentials).
    grpc_server_credentials* core = nullptr;
    if (tls) {
      grpc_ssl_pem_key_cert_pair pair{w.options.tls_key_pem.c_str(),
                                      w.options.tls_cert_pem.c_str()};
      core = grpc_ssl_server_credentials_create_ex(
          w.options.tls_client_ca_pem.empty() ? nullptr : w.options.tls_client_ca_pem.c_str(),
          &pair, 1, client_cert, nullptr);
    } else {
      core = grpc_insecure_server_credentials_create();
    }
    if (core == nullptr) return InvalidArgument("rollout worker: bad TLS certificate or key");
    auto check = std::make_unique<TokenCheck>();
    check->expected = std::string(kBearer) + w.options.token;
    check->refused = w.unauthenticated;
    creds = std::make_shared<TokenCheckedCredentials>(core, std::move(check));
  } else if (tls) {
    grpc::SslServerCredentialsOptions ssl(client_cert);
    ssl.pem_root_certs = w.options.tls_client_ca_pem;
    ssl.pem_key_cert_pairs.push_back({w.options.tls_key_pem, w.options.tls_cert_pem});
    creds = grpc::SslServerCredentials(ssl);
  } else {
    creds = grpc::InsecureServerCredentials();
  }
  const std::string host =
      w.options.bind.find(':') != std::string::npos ? "[" + w.options.bind + "]" : w.options.bind;
  const std::string addr = fmt::format("{}:{}", host, w.options.port);

  grpc::EnableDefaultHealthCheckService(true);
  w.service = std::make_unique<WorkerService>(&w);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(addr, creds, &w.port);
  builder.RegisterService(w.service.get());
  builder.SetMaxReceiveMessageSize(kWorkerMaxReceiveBytes);
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);  // two workers on one port: an error
  w.server = builder.BuildAndStart();
  if (!w.server || w.port == 0) {
    w.server.reset();
    return Unavailable("rollout worker: cannot listen on {}", addr);
  }
  w.refresh_health();
  if (w.options.update_idle_timeout_s > 0) w.watchdog = std::thread([&w] { w.watch_updates(); });
  R1_LOG(info, "rollout worker listening on {}:{} ({}{})", w.options.bind, w.port,
         w.options.tls_cert_pem.empty()        ? "plaintext"
         : w.options.tls_client_ca_pem.empty() ? "TLS"
                                               : "mutual TLS",
         w.options.token.empty() ? ", no token" : ", token required");
  return OkStatus();
}

int RolloutWorker::port() const {
  return impl_->port;
}

std::string RolloutWorker::address() const {
  return fmt::format("{}:{}", impl_->options.bind, impl_->port);
}

WorkerStats RolloutWorker::stats() const {
  const Impl& w = *impl_;
  WorkerStats s;
  s.unauthenticated = w.unauthenticated->load();
  s.generate_requests = w.generate_requests.load();
  s.generate_request_bytes = w.generate_request_bytes.load();
  s.oversized_requests = w.oversized_requests.load();
  return s;
}

void RolloutWorker::shutdown() {
  Impl& w = *impl_;
  if (w.shutting_down.exchange(true)) return;
  if (w.server) {
    w.refresh_health();
    if (w.options.abort_generation) w.options.abort_generation();
    // Cancels every call still running; reactors finish without waiting for the engine.
    w.server->Shutdown(std::chrono::system_clock::now());
  }
  w.engine.stop();
  w.control.stop();
  if (w.server) w.server->Wait();
  {
    std::lock_guard<std::mutex> lock(w.update_mu);
    w.stop_watching = true;
  }
  w.watch_cv.notify_all();
  if (w.watchdog.joinable()) w.watchdog.join();
  {
    std::lock_guard<std::mutex> lock(w.stop_mu);
    w.stopped = true;
  }
  w.stop_cv.notify_all();
}

void RolloutWorker::wait() {
  std::unique_lock<std::mutex> lock(impl_->stop_mu);
  impl_->stop_cv.wait(lock, [&] { return impl_->stopped; });
}

}  // namespace r1kit::rollout
