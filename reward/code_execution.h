// code_execution: runs the completion's last ```python block against stdin/stdout tests
// in a sandboxed child process, and scores the fraction of tests passed.
//
// Follows open-r1's code_reward (last ```python block, one run per test, passed/total);
// the sandbox gives every test a wall-clock limit in a killable child, rlimits on memory
// and processes, and no network (docs/rewards.md, "code_execution").
// Different on purpose:
// - Output must match on every line with equal line counts (open-r1's zip() let
//   missing or extra lines pass); lines are compared after stripping surrounding
//   whitespace, and trailing empty lines are ignored.
// - No Python harness, no E2B: each test is one /usr/bin/python3 process, started with
//   fork/exec and confined by reward/sandbox.h: with namespaces (as root directly, else
//   through a user namespace) its own mount, network, PID, IPC and UTS namespaces and a
//   minimal read-only view of the filesystem (the interpreter's files, a fresh /proc, a
//   minimal /dev, private tmpfs mounts on /tmp, the work directory, and /dev/shm);
//   without them, Landlock; and always a seccomp filter (no new processes, namespaces,
//   sockets, ptrace, mounts, ...), rlimits on CPU time, address space (which forking
//   cannot multiply: processes are refused), threads and file size, only descriptors
//   0-2 (the test's input arrives on stdin only), and under a fresh unprivileged uid per
//   run when run as root; where the trainer's cgroup can delegate one, a cgroup v2 leaf
//   per run with memory.max and pids.max (reward/sandbox.h, memory_limit_name()). A
//   wall-clock deadline kills the whole PID namespace. With none
//   of namespaces or Landlock, code rewards are refused unless `allow_unsandboxed: true`
//   (then logged as a warning once, and sandbox_mode() says so).
// - A timeout, a crash or a non-zero exit fails that test only (open-r1 failed the
//   whole sample on one TimeoutExpired).
// Not contained: CPU and memory the program uses within its limits (memory_mb of
// address space plus, without a cgroup leaf, up to 2 x max_file_mb in its tmpfs
// mounts); timing side channels;
// what the kernel shows any process (uname, /proc/cpuinfo and /proc/meminfo in its own
// /proc). Under Landlock (no namespaces) it runs as the trainer's uid in the host's
// network and PID namespaces: sockets are refused by seccomp, files outside the
// read-only paths and its work directory by Landlock, and signals to processes outside
// its domain only from Landlock ABI 6 on.
//
// Thread-safety: score() may be called from several threads; every run has its own
// directory, pipes and child processes.
#pragma once

#include <string>
#include <vector>

#include "core/config.h"
#include "reward/reward.h"
#include "reward/sandbox.h"

namespace r1kit::reward {

struct CodeExecutionOptions {
  std::string python = "/usr/bin/python3";   // interpreter (Debian's, by absolute path)
  double timeout_s = 5.0;                    // wall-clock limit per test
  int64_t cpu_s = 5;                         // RLIMIT_CPU per test, seconds
  int64_t memory_mb = 512;                   // RLIMIT_AS per test; memory.max with a cgroup
  int64_t max_processes = 16;                // RLIMIT_NPROC (per run when started as root)
  int64_t max_file_mb = 16;                  // RLIMIT_FSIZE
  int64_t max_output_kb = 1024;              // stdout beyond this fails the test
  int64_t max_tests = 32;                    // tests beyond this are ignored
  bool require_network_isolation = false;    // fail (NaN) instead of running without netns
  SandboxKind sandbox = SandboxKind::kAuto;  // reward/sandbox.h
  bool allow_unsandboxed = false;            // run with rlimits + seccomp only if need be
  void visit(ConfigVisitor& v) {
    v.field("python", python, "python interpreter");
    v.field("timeout_s", timeout_s, "wall-clock seconds per test", Range::positive());
    v.field("cpu_s", cpu_s, "CPU seconds per test", Range::at_least(1));
    v.field("memory_mb", memory_mb, "address space per test (MiB)", Range::at_least(32));
    v.field("max_processes", max_processes, "process limit", Range::at_least(1));
    v.field("max_file_mb", max_file_mb, "largest file the code may write (MiB)",
            Range::at_least(1));
    v.field("max_output_kb", max_output_kb, "stdout limit per test (KiB)", Range::at_least(1));
    v.field("max_tests", max_tests, "tests run per sample", Range::at_least(1));
    v.field("require_network_isolation", require_network_isolation,
            "give NaN rather than run without a network namespace");
    v.field("sandbox", sandbox, "auto (strongest available), namespaces or landlock",
            kSandboxKindNames);
    v.field("allow_unsandboxed", allow_unsandboxed,
            "run untrusted code with rlimits and seccomp only when neither namespaces nor "
            "Landlock are available (logged as a warning)");
  }
  // The sandbox asked for exists here (or allow_unsandboxed says to go without).
  Status validate() const;
};

// One finished run of a program.
struct RunResult {
  bool started = false;       // the child was created and exec'd
  bool timed_out = false;     // killed at the wall-clock deadline
  bool output_limit = false;  // killed for writing too much
  int exit_code = -1;         // exit status, or -1 when killed by a signal
  int signal = 0;             // the signal that killed it
  bool isolated = false;      // ran confined (namespaces or Landlock)
  std::string stdout_text;
  std::string error;  // why it did not start
};

// Runs `code` (Python source) once with `stdin_text`, sandboxed as described above.
RunResult run_python_sandboxed(const std::string& code, const std::string& stdin_text,
                               const CodeExecutionOptions& opts);

// The last ```python (or ```py / ```python3) fenced block of `completion`; empty if none.
std::string last_python_block(std::string_view completion);

// Whether `actual` matches `expected` line by line (surrounding whitespace stripped per
// line, trailing empty lines ignored, equal line counts).
bool outputs_match(std::string_view actual, std::string_view expected);

// How runs with `sandbox: auto` are confined in this process (probed once), e.g.
// "namespaces (mount, net, pid, ipc, uts) + seccomp, per-run uid", or
// "rlimits + seccomp only (...)", then "; memory: " and memory_limit_name() (a cgroup
// v2 leaf per run, or the rlimits alone and why).
std::string sandbox_mode();

// metadata {"tests": [{"input": "...", "output": "..."}, ...]} or
// {"inputs": [...], "outputs": [...]}; NaN when there are no tests, 0 without a code
// block, else passed / total.
class CodeExecutionReward final : public Reward {
 public:
  explicit CodeExecutionReward(const CodeExecutionOptions& o) : o_(o) {}
  Scores score(std::span<const Sample> group) const override;
  double score_one(const Sample& s) const;

 private:
  CodeExecutionOptions o_;
};

}  // namespace r1kit::reward
