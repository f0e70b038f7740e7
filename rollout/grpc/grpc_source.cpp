// GrpcRolloutSource: the client pool over rollout workers. See grpc_source.h.
//
// generate() runs a small event loop on the caller's thread: one thread per Generate
// call reads its stream (the synchronous client API; each blocking Read is bounded by
// the call's deadline and by TryCancel) and posts every group and the final status as
// events; the loop assigns work, delivers groups (calling on_group on the caller's
// thread), cancels stalled calls, re-queues the groups of failed ones, and probes
// failed workers. Nothing in it blocks without a timeout.
#include "rollout/grpc/grpc_source.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include "core/crc32c.h"
#include "core/logging.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "rollout.grpc.pb.h"
#include "rollout/grpc/channel_credentials.h"
#include "rollout/grpc/convert.h"

namespace r1kit::rollout {
namespace {

using namespace grpc_internal;
namespace health = ::grpc::health::v1;
using Clock = std::chrono::steady_clock;

constexpr int kMaxReceiveBytes = 256 << 20;
// Weight chunks smaller than this are buffered by gRPC with the ones after them.
constexpr uint64_t kCoalesceBelow = 64 << 10;

// "/r1kit.rollout.v1.Rollout/UpdateWeights", as the generated stub names it.
const std::string& update_weights_method() {
  static const std::string name =
      fmt::format("/{}/UpdateWeights", pb::Rollout::service_full_name());
  return name;
}

// One WeightChunk message on the wire, without copying its data: `header` (every field
// but data) serialised by protobuf, then field 6 (data) as its tag, its length and a
// slice over the caller's bytes, which must stay alive and unchanged until the call
// ends. Protobuf parsers take fields in any order, so the worker reads an ordinary
// WeightChunk.
grpc::ByteBuffer chunk_frame(const pb::WeightChunk& header, const char* data, uint64_t len) {
  std::string head = header.SerializeAsString();
  if (len > 0) {
    head.push_back(static_cast<char>((pb::WeightChunk::kDataFieldNumber << 3) | 2));
    for (uint64_t v = len;; v >>= 7) {  // varint
      if (v < 0x80) {
        head.push_back(static_cast<char>(v));
        break;
      }
      head.push_back(static_cast<char>((v & 0x7f) | 0x80));
    }
  }
  const grpc::Slice slices[2] = {grpc::Slice(head),
                                 grpc::Slice(data, len, grpc::Slice::STATIC_SLICE)};
  return grpc::ByteBuffer(slices, len > 0 ? 2 : 1);
}

std::chrono::system_clock::time_point deadline_in(double seconds) {
  return std::chrono::system_clock::now() +
         std::chrono::microseconds(static_cast<int64_t>(seconds * 1e6));
}

// Answers that re-sending elsewhere cannot fix: the request itself is wrong.
bool is_fatal(grpc::StatusCode c) {
  return c == grpc::StatusCode::INVALID_ARGUMENT || c == grpc::StatusCode::UNAUTHENTICATED ||
         c == grpc::StatusCode::PERMISSION_DENIED || c == grpc::StatusCode::UNIMPLEMENTED ||
         c == grpc::StatusCode::OUT_OF_RANGE;
}

// A connection to one worker. Stubs are shared so that a call keeps its stub while a
// probe replaces the connection.
struct Conn {
  std::shared_ptr<grpc::Channel> channel;
  std::shared_ptr<pb::Rollout::Stub> rollout;
  std::shared_ptr<health::Health::Stub> health;
};

struct WorkerState {
  std::string address;
  Conn conn;
  bool alive = true;  // takes new calls
  bool probing = false;
  Clock::time_point retry_at{};
  std::string last_error;
  int64_t max_prompts = 0;            // the worker's limit per request (from Info); 0 = unknown
  int64_t inflight_groups = 0;        // groups sent by this pool and not delivered yet
  Clock::time_point last_progress{};  // a group arrived from it (in this generate())
  int inflight_calls = 0;
};

class GrpcRolloutSource final : public RolloutSource {
 public:
  explicit GrpcRolloutSource(GrpcSourceOptions options) : options_(std::move(options)) {
    for (const std::string& a : options_.workers) {
      auto w = std::make_unique<WorkerState>();
      w->address = a;
      w->conn = connect(a);
      workers_.push_back(std::move(w));
    }
  }

  // The highest version a reachable worker reports (Info, in parallel).
  void init_version() {
    std::vector<int64_t> versions(workers_.size(), -1);
    std::vector<std::thread> threads;
    for (size_t i = 0; i < workers_.size(); ++i)
      threads.emplace_back([&, i] {
        if (auto info = info_of(workers_[i]->conn); info.ok()) {
          versions[i] = info->policy_version();
          workers_[i]->max_prompts = info->max_prompts();
        }
      });
    for (auto& t : threads) t.join();
    version_ = std::max<int64_t>(0, *std::max_element(versions.begin(), versions.end()));
  }

  StatusOr<std::vector<Group>> generate(const GenerateRequest& request,
                                        const std::function<void(const Group&)>& on_group) override;
  Status update_weights(const NamedTensors& weights, int64_t version) override;
  int64_t policy_version() const override { return version_.load(); }
  StatusOr<ScoreResult> score(const ScoreRequest& request) override;

 private:
  struct Event {
    enum Kind { kGroup, kCallDone, kProbeDone } kind;
    size_t id = 0;  // call id, or worker index for probes
    pb::GroupResult group;
    grpc::Status status;
    std::optional<Conn> conn;  // a probe's fresh connection, when it succeeded
  };
  struct Call {
    size_t worker = 0;
    std::vector<size_t> positions;                 // request positions it carries
    std::unordered_map<int64_t, size_t> by_index;  // prompt index -> position
    std::unique_ptr<grpc::ClientContext> ctx;
    std::thread thread;
    Clock::time_point last_progress;
    bool abandoned = false;  // cancelled by the pool; its late groups are ignored
    bool finished = false;
  };

  Conn connect(const std::string& address) const {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(kMaxReceiveBytes);
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 200);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
    const TlsClientPem tls{options_.tls_root_pem, options_.tls_cert_pem, options_.tls_key_pem};
    Conn c;
    c.channel = grpc::CreateCustomChannel(address, channel_credentials(tls), args);
    c.rollout = pb::Rollout::NewStub(c.channel);
    c.health = health::Health::NewStub(c.channel);
    return c;
  }

  void authorize(grpc::ClientContext* ctx) const {
    if (!options_.token.empty()) ctx->AddMetadata(kAuthKey, std::string(kBearer) + options_.token);
  }

  StatusOr<pb::InfoResponse> info_of(const Conn& c) const {
    grpc::ClientContext ctx;
    authorize(&ctx);
    ctx.set_deadline(deadline_in(options_.control_timeout_s));
    pb::InfoResponse resp;
    grpc::Status s = c.rollout->Info(&ctx, pb::InfoRequest(), &resp);
    if (!s.ok()) return from_grpc(s);
    return resp;
  }

  // Health check, then Info: usable only when SERVING with weights at least as new
  // as the pool's.
  grpc::Status probe(const Conn& c, int64_t need_version) const {
    grpc::ClientContext ctx;
    ctx.set_deadline(deadline_in(options_.control_timeout_s));
    health::HealthCheckRequest req;
    health::HealthCheckResponse resp;
    grpc::Status s = c.health->Check(&ctx, req, &resp);
    if (!s.ok()) return s;
    if (resp.status() != health::HealthCheckResponse::SERVING)
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "not serving");
    StatusOr<pb::InfoResponse> info = info_of(c);
    if (!info.ok()) return to_grpc(info.status());
    if (info->policy_version() < need_version)
      return grpc::Status(
          grpc::StatusCode::FAILED_PRECONDITION,
          fmt::format("stale weights: version {} < {}", info->policy_version(), need_version));
    return grpc::Status::OK;
  }

  void mark_failed(WorkerState& w, const std::string& why) {
    if (w.alive) R1_LOG(warn, "rollout worker {} failed: {}", w.address, why);
    w.alive = false;
    w.last_error = why;
    w.retry_at = Clock::now() +
                 std::chrono::microseconds(static_cast<int64_t>(options_.retry_after_s * 1e6));
  }

  void push_event(Event e) {
    {
      std::lock_guard<std::mutex> lock(ev_mu_);
      events_.push_back(std::move(e));
    }
    ev_cv_.notify_one();
  }

  // One Score call of rows [first, first + n) to worker `wi`.
  StatusOr<ScoreResult> score_on(size_t wi, const ScoreRequest& request, size_t first,
                                 size_t n) const;

  GrpcSourceOptions options_;
  size_t next_scorer_ = 0;  // round robin over the workers for score(); under op_mu_
  std::vector<std::unique_ptr<WorkerState>> workers_;  // touched by the caller's thread only
  std::mutex op_mu_;                                   // one generate()/update at a time
  std::atomic<int64_t> version_{0};
  std::mutex ev_mu_;
  std::condition_variable ev_cv_;
  std::deque<Event> events_;
};

StatusOr<std::vector<Group>> GrpcRolloutSource::generate(
    const GenerateRequest& request, const std::function<void(const Group&)>& on_group) {
  std::lock_guard<std::mutex> op_lock(op_mu_);
  const size_t n = request.prompts.size();
  if (n == 0) return InvalidArgument("generate: no prompts");
  if (request.group_size < 1)
    return InvalidArgument("generate: group_size={}: must be >= 1", request.group_size);
  {
    std::unordered_map<int64_t, size_t> seen;
    for (size_t i = 0; i < n; ++i)
      if (!seen.emplace(request.prompts[i].index, i).second)
        return InvalidArgument("generate: prompt index {} appears twice", request.prompts[i].index);
  }
  {
    std::lock_guard<std::mutex> lock(ev_mu_);
    events_.clear();
  }
  const int64_t need_version = version_.load();
  const Clock::time_point deadline =
      Clock::now() +
      std::chrono::microseconds(static_cast<int64_t>(options_.generate_timeout_s * 1e6));
  const auto stall =
      std::chrono::microseconds(static_cast<int64_t>(options_.stall_timeout_s * 1e6));

  std::vector<std::optional<Group>> results(n);
  std::vector<int> attempts(n, 0);
  std::deque<size_t> pending;
  for (size_t i = 0; i < n; ++i) pending.push_back(i);
  size_t delivered = 0;
  std::vector<std::unique_ptr<Call>> calls;
  std::vector<std::thread> probes;
  Clock::time_point idle_since = Clock::now();  // when the pool last had a live worker or call
  Status failure;

  // Puts a call's undelivered groups back in line; false when one is out of attempts.
  auto requeue = [&](Call& c, const std::string& why) -> Status {
    WorkerState& w = *workers_[c.worker];
    for (auto it = c.positions.rbegin(); it != c.positions.rend(); ++it) {
      const size_t pos = *it;
      if (results[pos]) continue;
      --w.inflight_groups;
      if (++attempts[pos] >= options_.max_attempts)
        return Unavailable("generate: prompt {} failed on {} workers; last: {}: {}",
                           request.prompts[pos].index, attempts[pos], w.address, why);
      pending.push_front(pos);
    }
    return OkStatus();
  };

  auto start_call = [&](size_t wi, std::vector<size_t> positions) {
    WorkerState& w = *workers_[wi];
    auto call = std::make_unique<Call>();
    call->worker = wi;
    call->positions = std::move(positions);
    for (size_t pos : call->positions) call->by_index[request.prompts[pos].index] = pos;
    call->ctx = std::make_unique<grpc::ClientContext>();
    authorize(call->ctx.get());
    call->ctx->set_deadline(
        std::chrono::system_clock::now() +
        std::chrono::duration_cast<std::chrono::system_clock::duration>(deadline - Clock::now()));
    call->last_progress = Clock::now();
    auto req = std::make_shared<pb::GenerateRequest>();
    to_proto(request, call->positions, need_version, req.get());
    w.inflight_groups += static_cast<int64_t>(call->positions.size());
    ++w.inflight_calls;
    const size_t id = calls.size();
    grpc::ClientContext* ctx = call->ctx.get();
    std::shared_ptr<pb::Rollout::Stub> stub = w.conn.rollout;
    call->thread = std::thread([this, id, ctx, stub, req] {
      Event done{Event::kCallDone, id, {}, {}, std::nullopt};
      try {
        std::unique_ptr<grpc::ClientReader<pb::GroupResult>> reader = stub->Generate(ctx, *req);
        pb::GroupResult msg;
        while (reader->Read(&msg)) push_event(Event{Event::kGroup, id, std::move(msg), {}, {}});
        done.status = reader->Finish();
      } catch (const std::exception& e) {
        done.status = grpc::Status(grpc::StatusCode::INTERNAL, e.what());
      }
      push_event(std::move(done));
    });
    calls.push_back(std::move(call));
  };

  while (delivered < n && failure.ok()) {
    const Clock::time_point now = Clock::now();
    if (now >= deadline) {
      failure = DeadlineExceeded("generate: {} of {} groups after {} s", delivered, n,
                                 options_.generate_timeout_s);
      break;
    }
    // Probe failed workers whose back-off has passed.
    for (size_t wi = 0; wi < workers_.size(); ++wi) {
      WorkerState& w = *workers_[wi];
      if (w.alive || w.probing || now < w.retry_at) continue;
      w.probing = true;
      probes.emplace_back([this, wi, address = w.address, need_version] {
        Event e{Event::kProbeDone, wi, {}, {}, std::nullopt};
        try {
          Conn c = connect(address);
          e.status = probe(c, need_version);
          if (e.status.ok()) e.conn = std::move(c);
        } catch (const std::exception& ex) {
          e.status = grpc::Status(grpc::StatusCode::INTERNAL, ex.what());
        }
        push_event(std::move(e));
      });
    }
    // Hand out whole groups: the least-loaded live worker gets the next batch.
    while (!pending.empty()) {
      std::vector<size_t> live;
      for (size_t wi = 0; wi < workers_.size(); ++wi)
        if (workers_[wi]->alive) live.push_back(wi);
      size_t best = workers_.size();
      for (size_t j = 0; j < live.size(); ++j) {
        const size_t wi = live[(j + static_cast<size_t>(options_.first_worker)) % live.size()];
        const WorkerState& w = *workers_[wi];
        if (w.inflight_calls >= options_.max_calls_per_worker) continue;
        if (best == workers_.size() || w.inflight_groups < workers_[best]->inflight_groups)
          best = wi;
      }
      if (best == workers_.size()) break;
      size_t batch = (pending.size() + live.size() - 1) / live.size();
      if (options_.max_groups_per_call > 0)
        batch = std::min<size_t>(batch, static_cast<size_t>(options_.max_groups_per_call));
      if (workers_[best]->max_prompts > 0)
        batch = std::min<size_t>(batch, static_cast<size_t>(workers_[best]->max_prompts));
      std::vector<size_t> positions(pending.begin(), pending.begin() + batch);
      pending.erase(pending.begin(), pending.begin() + batch);
      start_call(best, std::move(positions));
    }
    // With no live worker and nothing in flight for stall_timeout_s, give up.
    // With fail_fast, as soon as no probe is in flight either.
    bool any_live = false, any_active = false, any_probing = false;
    for (const auto& w : workers_) any_live |= w->alive;
    for (const auto& w : workers_) any_probing |= w->probing;
    for (const auto& c : calls) any_active |= !c->finished && !c->abandoned;
    if (any_live || any_active) {
      idle_since = now;
    } else if (options_.fail_fast ? !any_probing : now - idle_since > stall) {
      std::string why;
      for (const auto& w : workers_) why += fmt::format(" {}: {};", w->address, w->last_error);
      failure = Unavailable(
          "generate: no rollout worker available{}:{}",
          options_.fail_fast ? std::string() : fmt::format(" for {} s", options_.stall_timeout_s),
          why);
      break;
    }
    // Wait for the next event (bounded, so stalls and back-offs are noticed).
    std::deque<Event> batch_events;
    {
      std::unique_lock<std::mutex> lock(ev_mu_);
      ev_cv_.wait_for(lock, std::chrono::milliseconds(50), [&] { return !events_.empty(); });
      batch_events.swap(events_);
    }
    for (Event& e : batch_events) {
      if (!failure.ok()) break;
      if (e.kind == Event::kProbeDone) {
        WorkerState& w = *workers_[e.id];
        w.probing = false;
        if (e.status.ok()) {
          w.conn = std::move(*e.conn);
          w.alive = true;
          R1_LOG(info, "rollout worker {} is back", w.address);
        } else {
          w.last_error = e.status.error_message();
          w.retry_at = Clock::now() + std::chrono::microseconds(
                                          static_cast<int64_t>(options_.retry_after_s * 1e6));
        }
        continue;
      }
      Call& c = *calls[e.id];
      WorkerState& w = *workers_[c.worker];
      if (e.kind == Event::kGroup) {
        if (c.abandoned) continue;
        c.last_progress = Clock::now();
        auto it = c.by_index.find(e.group.prompt_index());
        if (it == c.by_index.end() ||
            e.group.completions_size() != static_cast<int>(request.group_size))
          continue;  // not asked for, or malformed: it stays undelivered and is re-sent
        const size_t pos = it->second;
        if (results[pos]) continue;
        results[pos] = from_proto(e.group);
        --w.inflight_groups;
        ++delivered;
        w.last_progress = c.last_progress;
        if (on_group) {
          try {
            on_group(*results[pos]);
          } catch (const std::exception& ex) {
            failure = Internal("generate: on_group threw: {}", ex.what());
          }
        }
        continue;
      }
      // kCallDone
      c.finished = true;
      if (c.thread.joinable()) c.thread.join();
      --w.inflight_calls;
      if (c.abandoned) continue;  // its groups were re-queued when it was abandoned
      bool complete = true;
      for (size_t pos : c.positions) complete &= results[pos].has_value();
      if (e.status.ok() && complete) continue;
      if (!e.status.ok() && is_fatal(e.status.error_code())) {
        failure = from_grpc(e.status).with_context(fmt::format("rollout worker {}", w.address));
        break;
      }
      const std::string why = e.status.ok() ? std::string("the stream ended with groups missing")
                                            : fmt::format("{} ({})", e.status.error_message(),
                                                          static_cast<int>(e.status.error_code()));
      mark_failed(w, why);
      failure = requeue(c, why);
    }
    if (!failure.ok()) break;
    // Cancel calls that delivered nothing for stall_timeout_s; re-send their groups.
    const Clock::time_point t = Clock::now();
    for (auto& cp : calls) {
      Call& c = *cp;
      if (c.finished || c.abandoned) continue;
      WorkerState& w = *workers_[c.worker];
      // A call queued behind another on its worker makes no progress of its own: the
      // worker is stalled only when none of its calls delivered anything.
      if (t - std::max(c.last_progress, w.last_progress) <= stall) continue;
      c.abandoned = true;
      c.ctx->TryCancel();
      const std::string why = fmt::format("no group for {} s", options_.stall_timeout_s);
      mark_failed(w, why);
      failure = requeue(c, why);
      if (!failure.ok()) break;
    }
  }

  // Wind down: cancel what still runs (duplicates, abandoned calls), join every thread.
  for (auto& c : calls) {
    if (!c->finished) c->ctx->TryCancel();
    if (c->thread.joinable()) c->thread.join();
  }
  for (auto& w : workers_) {
    w->inflight_groups = 0;
    w->inflight_calls = 0;
  }
  for (auto& p : probes) p.join();
  for (auto& w : workers_) w->probing = false;
  // Probes that finished now still count: a worker found healthy is live again.
  {
    std::lock_guard<std::mutex> lock(ev_mu_);
    for (Event& e : events_)
      if (e.kind == Event::kProbeDone && e.status.ok()) {
        workers_[e.id]->conn = std::move(*e.conn);
        workers_[e.id]->alive = true;
      }
    events_.clear();
  }
  if (!failure.ok()) return failure;

  std::vector<Group> out;
  out.reserve(n);
  for (auto& g : results) out.push_back(std::move(*g));
  return out;
}

Status GrpcRolloutSource::update_weights(const NamedTensors& weights, int64_t version) {
  std::lock_guard<std::mutex> op_lock(op_mu_);
  if (weights.empty()) return InvalidArgument("update_weights: no tensors");
  if (!options_.push_weights) {  // another process pushes them; later calls require them
    version_ = version;
    return OkStatus();
  }
  if (options_.chunk_bytes < 1 || options_.chunk_bytes > (int64_t{4} << 20))
    return InvalidArgument("chunk_bytes={}: must be in [1, 4 MiB]", options_.chunk_bytes);

  // Serialise once: contiguous CPU copies, dtypes and checksums.
  struct Wire {
    std::string name;
    torch::Tensor data;
    pb::DType dtype;
    uint64_t bytes;
    uint32_t checksum;  // CRC-32C of the bytes
  };
  std::vector<Wire> wire;
  wire.reserve(weights.size());
  for (const auto& [name, t] : weights) {
    if (!t.defined()) return InvalidArgument("update_weights: tensor '{}' is undefined", name);
    Wire w;
    w.name = name;
    w.data = t.detach().to(torch::kCPU).contiguous();
    ASSIGN_OR_RETURN(w.dtype, to_proto_dtype(w.data.scalar_type()));
    w.bytes = static_cast<uint64_t>(w.data.nbytes());
    wire.push_back(std::move(w));
  }
  // Checksums on their own thread, in tensor order, while the first tensors are sent:
  // a tensor's checksum is in the header of its first chunk, so a sender waits only
  // until its next tensor is summed.
  size_t summed = 0;  // wire[0, summed) have their checksum; under sum_mu
  std::mutex sum_mu;
  std::condition_variable sum_cv;
  std::thread summer([&] {
    for (size_t i = 0; i < wire.size(); ++i) {
      wire[i].checksum = crc32c(wire[i].data.data_ptr(), wire[i].bytes);
      {
        std::lock_guard<std::mutex> lock(sum_mu);
        summed = i + 1;
      }
      sum_cv.notify_all();
    }
  });
  auto wait_summed = [&](size_t i) {
    std::unique_lock<std::mutex> lock(sum_mu);
    sum_cv.wait(lock, [&] { return summed > i; });
  };

  std::vector<grpc::Status> status(workers_.size());
  std::vector<std::thread> threads;
  for (size_t wi = 0; wi < workers_.size(); ++wi) {
    std::shared_ptr<grpc::Channel> channel = workers_[wi]->conn.channel;
    threads.emplace_back([&, wi, channel] {
      try {
        grpc::ClientContext ctx;
        authorize(&ctx);
        ctx.set_deadline(deadline_in(options_.update_timeout_s));
        pb::UpdateWeightsResponse resp;
        // Raw frames (chunk_frame), through the writer factory the generated stub uses:
        // the stub's typed writer would copy every chunk twice.
        const grpc::internal::RpcMethod method(update_weights_method().c_str(),
                                               grpc::internal::RpcMethod::CLIENT_STREAMING);
        std::unique_ptr<grpc::ClientWriter<grpc::ByteBuffer>> writer(
            grpc::internal::ClientWriterFactory<grpc::ByteBuffer>::Create(channel.get(), method,
                                                                          &ctx, &resp));
        bool ok = true;
        pb::WeightChunk header;
        for (size_t i = 0; i < wire.size(); ++i) {
          const Wire& w = wire[i];
          wait_summed(i);
          header.Clear();
          header.set_name(w.name);
          header.set_dtype(w.dtype);
          for (int64_t d : w.data.sizes()) header.add_shape(d);
          header.set_total_bytes(w.bytes);
          header.set_checksum(w.checksum);
          header.set_version(version);
          header.set_tensor_count(static_cast<int64_t>(wire.size()));
          const char* base = static_cast<const char*>(w.data.data_ptr());
          uint64_t off = 0;
          do {
            const uint64_t len =
                std::min<uint64_t>(w.bytes - off, static_cast<uint64_t>(options_.chunk_bytes));
            header.set_offset(off);
            // Small chunks may wait in gRPC's buffer for the next ones (one write to the
            // socket for many small tensors); WritesDone flushes the last.
            grpc::WriteOptions wo;
            if (len < kCoalesceBelow) wo.set_buffer_hint();
            ok = writer->Write(chunk_frame(header, base + off, len), wo);
            off += len;
          } while (ok && off < w.bytes);
          if (!ok) break;
        }
        if (ok) writer->WritesDone();
        status[wi] = writer->Finish();
      } catch (const std::exception& e) {
        status[wi] = grpc::Status(grpc::StatusCode::INTERNAL, e.what());
      }
    });
  }
  for (auto& t : threads) t.join();
  summer.join();

  size_t ok_count = 0;
  std::string errors;
  Status first_error;
  for (size_t wi = 0; wi < workers_.size(); ++wi) {
    WorkerState& w = *workers_[wi];
    if (status[wi].ok()) {
      ++ok_count;
      continue;
    }
    const Status s = from_grpc(status[wi]);
    if (first_error.ok()) first_error = s;
    errors += fmt::format(" {}: {};", w.address, s.to_string());
    // A refusal (bad tensors) leaves the worker healthy with its old weights; anything
    // else takes it out until a health check (and, once stale, a later update).
    if (!is_fatal(status[wi].error_code()))
      mark_failed(w, "weight update failed: " + s.to_string());
  }
  if (ok_count == 0)
    return Status(
        first_error.code(),
        fmt::format("update_weights to version {}: no worker took it:{}", version, errors));
  if (ok_count < workers_.size())
    R1_LOG(warn,
           "update_weights to version {}: {} of {} workers took it; stale until the next "
           "update:{}",
           version, ok_count, workers_.size(), errors);
  version_ = version;
  return OkStatus();
}

StatusOr<ScoreResult> GrpcRolloutSource::score_on(size_t wi, const ScoreRequest& request,
                                                  size_t first, size_t n) const {
  ScoreRequest part;
  part.prompts.assign(request.prompts.begin() + first, request.prompts.begin() + first + n);
  part.completions.assign(request.completions.begin() + first,
                          request.completions.begin() + first + n);
  pb::ScoreRequest req;
  to_proto(part, version_.load(), &req);
  grpc::ClientContext ctx;
  authorize(&ctx);
  ctx.set_deadline(deadline_in(options_.stall_timeout_s));
  pb::ScoreResponse resp;
  grpc::Status s = workers_[wi]->conn.rollout->Score(&ctx, req, &resp);
  if (!s.ok()) return from_grpc(s);
  ScoreResult got = from_proto(resp);
  const std::string problem = score_result_problem(part, got);
  if (!problem.empty())
    return Internal("rollout worker {} answered Score badly: {}", workers_[wi]->address, problem);
  return got;
}

// Batches of at most the workers' max_prompts sequences, each to the next worker in turn;
// a batch that fails for a reason another worker may not have (unreachable, stale
// weights, a deadline) is tried on the next, each worker once.
StatusOr<ScoreResult> GrpcRolloutSource::score(const ScoreRequest& request) {
  std::lock_guard<std::mutex> op_lock(op_mu_);
  const std::string problem = score_request_problem(request, /*vocab_size=*/0, /*max_seq_len=*/0);
  if (!problem.empty()) return InvalidArgument("score: {}", problem);
  size_t batch = request.prompts.size();
  for (const auto& w : workers_)
    if (w->max_prompts > 0) batch = std::min(batch, static_cast<size_t>(w->max_prompts));
  ScoreResult out;
  out.policy_version = version_.load();
  for (size_t first = 0; first < request.prompts.size(); first += batch) {
    const size_t n = std::min(batch, request.prompts.size() - first);
    std::string errors;
    Status last = OkStatus();
    bool done = false;
    for (size_t attempt = 0; attempt < workers_.size() && !done; ++attempt) {
      const size_t wi = next_scorer_++ % workers_.size();
      StatusOr<ScoreResult> got = score_on(wi, request, first, n);
      if (got.ok()) {
        for (auto& row : got->logprobs) out.logprobs.push_back(std::move(row));
        out.policy_version = got->policy_version;
        done = true;
      } else if (is_fatal(to_grpc(got.status()).error_code())) {
        return got.status();
      } else {
        last = got.status();
        errors += fmt::format("\n  {}: {}", workers_[wi]->address, last.to_string());
      }
    }
    if (!done)
      return Status(last.code(), fmt::format("score: no worker scored sequences {}..{}:{}", first,
                                             first + n - 1, errors));
  }
  return out;
}

}  // namespace

StatusOr<std::unique_ptr<RolloutSource>> make_grpc_rollout_source(
    const GrpcSourceOptions& options) {
  if (options.workers.empty()) return InvalidArgument("grpc rollout source: no worker addresses");
  for (const auto& a : options.workers)
    if (a.empty()) return InvalidArgument("grpc rollout source: an empty worker address");
  if (!(options.generate_timeout_s > 0) || !(options.stall_timeout_s > 0) ||
      !(options.control_timeout_s > 0) || !(options.update_timeout_s > 0) ||
      !(options.retry_after_s >= 0))
    return InvalidArgument("grpc rollout source: timeouts must be > 0");
  if (options.max_attempts < 1)
    return InvalidArgument("grpc rollout source: max_attempts={}: must be >= 1",
                           options.max_attempts);
  if (options.max_calls_per_worker < 1)
    return InvalidArgument("grpc rollout source: max_calls_per_worker={}: must be >= 1",
                           options.max_calls_per_worker);
  if (options.chunk_bytes < 1 || options.chunk_bytes > (int64_t{4} << 20))
    return InvalidArgument("grpc rollout source: chunk_bytes={}: must be in [1, 4 MiB]",
                           options.chunk_bytes);
  if (options.tls_cert_pem.empty() != options.tls_key_pem.empty())
    return InvalidArgument("grpc rollout source: a TLS client certificate needs its key");
  if (!options.tls_cert_pem.empty() && options.tls_root_pem.empty())
    return InvalidArgument("grpc rollout source: a TLS client certificate needs tls_root_pem");
  auto source = std::make_unique<GrpcRolloutSource>(options);
  source->init_version();
  return std::unique_ptr<RolloutSource>(std::move(source));
}

}  // namespace r1kit::rollout
