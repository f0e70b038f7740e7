// code_execution: sandboxed Python runs scored against stdin/stdout tests; see
// code_execution.h.
#include "reward/code_execution.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>
#include <thread>

#include "core/logging.h"
#include "reward/sandbox.h"

namespace r1kit::reward {
namespace {

double now_s() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

// Kills the child's process group and reaps the child. With a PID namespace the kernel
// kills every process in it once its init (the python process) dies.
int kill_and_reap(pid_t pid) {
  kill(-pid, SIGKILL);
  kill(pid, SIGKILL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

std::string strip(std::string_view s) {
  size_t a = 0, b = s.size();
  while (a < b && std::isspace(static_cast<unsigned char>(s[a]))) ++a;
  while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1]))) --b;
  return std::string(s.substr(a, b - a));
}

std::vector<std::string> lines_of(std::string_view s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t nl = s.find('\n', start);
    if (nl == std::string_view::npos) nl = s.size();
    out.push_back(strip(s.substr(start, nl - start)));
    start = nl + 1;
  }
  while (!out.empty() && out.back().empty()) out.pop_back();
  return out;
}

}  // namespace

Status CodeExecutionOptions::validate() const {
  ASSIGN_OR_RETURN(Confinement c, sandbox_confinement(sandbox));
  if (c == Confinement::kNone && !allow_unsandboxed) {
    return FailedPrecondition(
        "code_execution: no sandbox can be made here ({}); refusing to run untrusted code. "
        "Set allow_unsandboxed: true to run it anyway",
        confinement_name(c));
  }
  return OkStatus();
}

std::string sandbox_mode() {
  StatusOr<Confinement> c = sandbox_confinement(SandboxKind::kAuto);
  return (c.ok() ? confinement_name(*c) : c.status().message()) +
         "; memory: " + memory_limit_name();
}

bool outputs_match(std::string_view actual, std::string_view expected) {
  return lines_of(actual) == lines_of(expected);
}

std::string last_python_block(std::string_view c) {
  std::string best;
  size_t pos = 0;
  bool found = false;
  while (true) {
    size_t open = c.find("```", pos);
    if (open == std::string_view::npos) break;
    size_t line_end = c.find('\n', open);
    if (line_end == std::string_view::npos) break;
    std::string lang = strip(c.substr(open + 3, line_end - open - 3));
    size_t close = c.find("```", line_end + 1);
    if (close == std::string_view::npos) break;
    if (lang == "python" || lang == "py" || lang == "python3") {
      best = std::string(c.substr(line_end + 1, close - line_end - 1));
      found = true;
    }
    pos = close + 3;
  }
  return found ? best : std::string();
}

namespace {

// Forks the run: a first child enters the namespaces and forks the program (init of
// its PID namespace), whose exit status it passes on. Setup failures come back as one
// byte on `err_fd` (the exit status is the program's to choose). Returns the first
// child's pid, or -1.
pid_t fork_run(const SandboxRun& run, int stdin_fd, int stdout_fd, int stderr_fd, int err_fd) {
  pid_t pid = fork();
  if (pid != 0) return pid;
  auto fail = [&](char why) {
    if (err_fd >= 0) {
      ssize_t ignored = write(err_fd, &why, 1);
      (void)ignored;
    }
    _exit(127);
  };
  setpgid(0, 0);
  if (char c = run.enter_cgroup(); c != 0) fail(c);
  if (char c = run.enter_namespaces(); c != 0) fail(c);
  pid_t py = fork();
  if (py == 0) fail(run.exec_program(stdin_fd, stdout_fd, stderr_fd, err_fd));
  if (py < 0) fail('f');
  close(stdin_fd);
  close(stdout_fd);
  if (err_fd >= 0) close(err_fd);
  int st = 0;
  while (waitpid(py, &st, 0) < 0 && errno == EINTR) {
  }
  if (WIFSIGNALED(st)) _exit(128 + WTERMSIG(st));
  _exit(WEXITSTATUS(st));
}

}  // namespace

RunResult run_python_sandboxed(const std::string& code, const std::string& stdin_text,
                               const CodeExecutionOptions& o) {
  RunResult res;
  StatusOr<Confinement> mode = sandbox_confinement(o.sandbox);
  if (!mode.ok()) {
    res.error = mode.status().message();
    return res;
  }
  res.isolated = *mode != Confinement::kNone;
  if (!res.isolated) {
    if (Status st = o.validate(); !st.ok()) {
      res.error = st.message();
      return res;
    }
    static std::once_flag warned;
    std::call_once(warned, [&] {
      R1_LOG(warn,
             "code_execution: RUNNING UNTRUSTED CODE WITHOUT A SANDBOX ({}), because "
             "allow_unsandboxed is true",
             confinement_name(*mode));
    });
  }
  SandboxLimits limits{o.cpu_s, o.memory_mb, o.max_processes, o.max_file_mb};
  StatusOr<std::unique_ptr<SandboxRun>> run = SandboxRun::prepare(*mode, o.python, code, limits);
  if (!run.ok()) {
    res.error = run.status().message();
    return res;
  }

  // stdin: a socket (send() with MSG_NOSIGNAL never raises SIGPIPE in the trainer);
  // stdout: a pipe; stderr: /dev/null. The test's input reaches the program only here.
  int in_sock[2], out_pipe[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in_sock) != 0) {
    res.error = std::string("socketpair: ") + std::strerror(errno);
    return res;
  }
  if (pipe2(out_pipe, O_CLOEXEC) != 0) {
    close(in_sock[0]);
    close(in_sock[1]);
    res.error = std::string("pipe2: ") + std::strerror(errno);
    return res;
  }
  int dev_null = open("/dev/null", O_RDWR | O_CLOEXEC);
  int err_pipe[2];
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    err_pipe[0] = err_pipe[1] = -1;
  }
  pid_t pid = fork_run(**run, in_sock[1], out_pipe[1], dev_null, err_pipe[1]);
  close(in_sock[1]);
  close(out_pipe[1]);
  if (dev_null >= 0) close(dev_null);
  if (err_pipe[1] >= 0) close(err_pipe[1]);
  if (pid < 0) {
    if (err_pipe[0] >= 0) close(err_pipe[0]);
    close(in_sock[0]);
    close(out_pipe[0]);
    res.error = std::string("fork: ") + std::strerror(errno);
    return res;
  }
  setpgid(pid, pid);  // also from here, so kill(-pid) works whoever runs first
  res.started = true;

  fcntl(in_sock[0], F_SETFL, O_NONBLOCK);
  fcntl(out_pipe[0], F_SETFL, O_NONBLOCK);
  const double deadline = now_s() + o.timeout_s;
  const size_t max_out = static_cast<size_t>(o.max_output_kb) << 10;
  size_t written = 0;
  int in_fd = in_sock[0];
  if (stdin_text.empty()) {
    shutdown(in_fd, SHUT_WR);
  }
  bool out_open = true, killed = false;
  char buf[65536];
  while (out_open) {
    double left = deadline - now_s();
    if (left <= 0) {
      res.timed_out = true;
      break;
    }
    struct pollfd fds[2];
    int n = 0;
    fds[n++] = {out_pipe[0], POLLIN, 0};
    bool want_write = written < stdin_text.size();
    if (want_write) fds[n++] = {in_fd, POLLOUT, 0};
    int r = poll(fds, static_cast<nfds_t>(n), std::max(1, static_cast<int>(left * 1000)));
    if (r < 0 && errno != EINTR) break;
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t got = read(out_pipe[0], buf, sizeof buf);
      if (got > 0) {
        res.stdout_text.append(buf, static_cast<size_t>(got));
        if (res.stdout_text.size() > max_out) {
          res.output_limit = true;
          break;
        }
      } else if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
        out_open = false;
      }
    }
    if (want_write && n > 1 && (fds[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t put =
          send(in_fd, stdin_text.data() + written, stdin_text.size() - written, MSG_NOSIGNAL);
      if (put > 0) {
        written += static_cast<size_t>(put);
        if (written == stdin_text.size()) shutdown(in_fd, SHUT_WR);
      } else if (put < 0 && errno != EAGAIN && errno != EINTR) {
        written = stdin_text.size();  // the program stopped reading: fine
      }
    }
  }
  int status = 0;
  if (out_open) {
    status = kill_and_reap(pid);
    killed = true;
  } else {
    // stdout closed: the program is done or about to be; wait until the deadline.
    while (true) {
      pid_t w = waitpid(pid, &status, WNOHANG);
      if (w == pid) break;
      if (w < 0 && errno != EINTR) break;
      if (now_s() > deadline) {
        res.timed_out = true;
        status = kill_and_reap(pid);
        killed = true;
        break;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    kill(-pid, SIGKILL);  // stragglers in the group (only possible without a PID ns)
  }
  close(in_sock[0]);
  close(out_pipe[0]);
  if (err_pipe[0] >= 0) {
    char why = 0;
    fcntl(err_pipe[0], F_SETFL, O_NONBLOCK);
    if (read(err_pipe[0], &why, 1) == 1) {
      res.error = fmt::format("sandbox setup failed at step {}", why);
    }
    close(err_pipe[0]);
  }
  if (!killed && WIFEXITED(status)) {
    int code_ = WEXITSTATUS(status);
    if (code_ >= 128 && code_ < 160) {
      res.signal = code_ - 128;
    } else {
      res.exit_code = code_;
    }
  } else if (WIFSIGNALED(status)) {
    res.signal = WTERMSIG(status);
  }
  return res;
}

double CodeExecutionReward::score_one(const Sample& s) const {
  const nlohmann::json& m = s.metadata;
  std::vector<std::pair<std::string, std::string>> tests;
  if (m.is_object() && m.contains("tests") && m["tests"].is_array()) {
    for (const auto& t : m["tests"]) {
      if (!t.is_object() || !t.contains("input") || !t.contains("output") ||
          !t["input"].is_string() || !t["output"].is_string()) {
        return kNoScore;
      }
      tests.emplace_back(t["input"].get<std::string>(), t["output"].get<std::string>());
    }
  } else if (m.is_object() && m.contains("inputs") && m.contains("outputs") &&
             m["inputs"].is_array() && m["outputs"].is_array() &&
             m["inputs"].size() == m["outputs"].size()) {
    for (size_t i = 0; i < m["inputs"].size(); ++i) {
      if (!m["inputs"][i].is_string() || !m["outputs"][i].is_string()) return kNoScore;
      tests.emplace_back(m["inputs"][i].get<std::string>(), m["outputs"][i].get<std::string>());
    }
  }
  if (tests.empty()) return kNoScore;
  if (tests.size() > static_cast<size_t>(o_.max_tests)) tests.resize(o_.max_tests);
  if (o_.require_network_isolation) {
    StatusOr<Confinement> c = sandbox_confinement(o_.sandbox);
    if (!c.ok() || *c == Confinement::kNone) return kNoScore;
  }
  std::string code = last_python_block(s.completion);
  if (strip(code).empty()) return 0.0;
  size_t passed = 0;
  for (const auto& [input, expected] : tests) {
    RunResult r = run_python_sandboxed(code, input, o_);
    if (!r.started || !r.error.empty()) return kNoScore;  // our failure, not the model's
    if (!r.timed_out && !r.output_limit && r.exit_code == 0 &&
        outputs_match(r.stdout_text, expected)) {
      ++passed;
    }
  }
  return static_cast<double>(passed) / static_cast<double>(tests.size());
}

Scores CodeExecutionReward::score(std::span<const Sample> group) const {
  std::vector<double> out;
  out.reserve(group.size());
  for (const Sample& s : group) out.push_back(score_one(s));
  return out;
}

}  // namespace r1kit::reward
