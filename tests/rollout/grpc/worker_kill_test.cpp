// A real worker process killed with SIGKILL in the middle of a rollout: the pool
// (GrpcRolloutSource) re-sends its groups to the surviving worker and the rollout
// completes, every prompt once with every sample. The in-process pool tests shut a
// worker down cleanly; this one gives the client only a dead TCP peer, as a crashed or
// OOM-killed machine would.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <future>
#include <set>
#include <string>
#include <vector>

#include "rollout/grpc/grpc_source.h"
#include "tests/cli_util.h"
#include "tests/temp_dir.h"

namespace r1kit::rollout {
namespace {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// `r1kit rollout-worker` as a child process on a free port.
class WorkerProcess {
 public:
  static std::unique_ptr<WorkerProcess> start(const std::string& model) {
    int out[2];
    if (::pipe(out) != 0) return nullptr;
    std::vector<std::string> argv = {r1kit::testing::r1kit_binary(),
                                     "rollout-worker",
                                     "--model",
                                     model,
                                     "--port",
                                     "0",
                                     "--threads",
                                     "1"};
    std::vector<char*> cargv;
    for (auto& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::dup2(out[1], STDOUT_FILENO);
      ::close(out[0]);
      ::close(out[1]);
      ::execv(cargv[0], cargv.data());
      ::_exit(127);
    }
    ::close(out[1]);
    auto w = std::unique_ptr<WorkerProcess>(new WorkerProcess(pid, out[0]));
    // The first line names the address: "rollout worker: MODEL on 127.0.0.1:PORT (...".
    std::string line;
    const auto t0 = Clock::now();
    while (Clock::now() - t0 < std::chrono::seconds(60) && line.find('\n') == std::string::npos) {
      pollfd p{out[0], POLLIN, 0};
      if (::poll(&p, 1, 500) <= 0) continue;
      char buf[512];
      const ssize_t n = ::read(out[0], buf, sizeof(buf));
      if (n <= 0) break;
      line.append(buf, static_cast<size_t>(n));
    }
    const auto at = line.find(" on ");
    if (at == std::string::npos) return nullptr;
    w->address_ = line.substr(at + 4, line.find(' ', at + 4) - at - 4);
    return w;
  }
  ~WorkerProcess() {
    if (pid_ > 0) kill_now();
    ::close(fd_);
  }
  // SIGKILL and reap; returns the signal that ended the process.
  int kill_now() {
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  }
  const std::string& address() const { return address_; }

 private:
  WorkerProcess(pid_t pid, int fd) : pid_(pid), fd_(fd) {}
  pid_t pid_;
  int fd_;
  std::string address_;
};

TEST(WorkerProcessKill, SigkilledWorkerMidRolloutIsReplacedByTheOther) {
  const r1kit::testing::ScopedTempDir dir("r1kit_worker_kill");
  const std::string model = dir.join("nano");
  const auto [rc, out] = r1kit::testing::run_command(
      r1kit::testing::r1kit_binary() + " model init --preset nano --out " + model, true);
  ASSERT_EQ(rc, 0) << out;
  auto a = WorkerProcess::start(model), b = WorkerProcess::start(model);
  ASSERT_TRUE(a && b);

  GrpcSourceOptions o;
  o.workers = {a->address(), b->address()};
  o.max_groups_per_call = 2;  // a's calls are still in flight when it dies
  o.retry_after_s = 0.2;
  o.stall_timeout_s = 30;
  auto pool = make_grpc_rollout_source(o);
  ASSERT_TRUE(pool.ok()) << pool.status().to_string();

  GenerateRequest req;
  const int kPrompts = 16;
  for (int i = 0; i < kPrompts; ++i) req.prompts.push_back({{1 + i, 2 + i, 3}, 100 + i});
  req.group_size = 3;
  req.sampling.max_new_tokens = 24;
  req.sampling.seed = 5;
  std::future<int> killed;
  int delivered = 0;
  auto got = (*pool)->generate(req, [&](const Group&) {
    if (++delivered == 1) killed = std::async(std::launch::async, [&] { return a->kill_now(); });
  });
  ASSERT_TRUE(killed.valid());
  EXPECT_EQ(killed.get(), SIGKILL);
  ASSERT_TRUE(got.ok()) << got.status().to_string();
  EXPECT_EQ(delivered, kPrompts);
  std::set<int64_t> seen;
  for (const Group& g : *got) {
    seen.insert(g.prompt_index);
    ASSERT_EQ(g.completions.size(), 3u) << g.prompt_index;
    for (const Completion& c : g.completions) {
      EXPECT_FALSE(c.token_ids.empty());
      EXPECT_EQ(c.token_ids.size(), c.logprobs.size());
    }
  }
  EXPECT_EQ(seen.size(), static_cast<size_t>(kPrompts));
  // The pool still serves after the death, from the survivor alone.
  req.sampling.seed = 6;
  auto again = (*pool)->generate(req);
  ASSERT_TRUE(again.ok()) << again.status().to_string();
  EXPECT_EQ(again->size(), static_cast<size_t>(kPrompts));
}

}  // namespace
}  // namespace r1kit::rollout
