// Probes of the code_execution sandbox (reward/sandbox.h), each an attack a scored
// program tried: reading world-readable files outside, listing the host's processes,
// connecting to a unix socket, using an inherited descriptor, leaving a file for the next
// run, creating namespaces (and the other refused calls), and multiplying the memory
// limit by forking or threads. Run as root, SandboxProbe.AsUnprivilegedUser runs every
// probe again as nobody (setpriv), where the sandbox is a user namespace. A probe that
// cannot run here is skipped with the reason (ctest shows it as skipped, not passed).
#include "reward/sandbox.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <span>
#include <sstream>
#include <string>
#include <tuple>

#include "reward/code_execution.h"

namespace r1kit::reward {
namespace {

namespace fs = std::filesystem;

CodeExecutionOptions probe_opts() {
  CodeExecutionOptions o;
  o.timeout_s = 10.0;
  o.cpu_s = 5;
  return o;
}

// The program's stdout, or a description of why it did not finish normally.
std::string probe(const std::string& code, const CodeExecutionOptions& o = probe_opts()) {
  RunResult r = run_python_sandboxed(code, "", o);
  if (!r.error.empty()) return "ERROR " + r.error;
  if (r.timed_out) return "TIMEOUT";
  if (r.signal != 0) return fmt::format("SIGNAL {} after: {}", r.signal, r.stdout_text);
  if (r.exit_code != 0) return fmt::format("EXIT {} after: {}", r.exit_code, r.stdout_text);
  return r.stdout_text;
}

// A per-process directory under /tmp, world-readable, removed at the end of the test.
struct ProbeDir {
  std::string path;
  ProbeDir() {
    char t[] = "/tmp/r1kit_probe_XXXXXX";
    path = mkdtemp(t) ? t : "";
    chmod(path.c_str(), 0755);
  }
  ~ProbeDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// Every probe runs under the strongest sandbox here (auto) and under Landlock.
class SandboxProbe : public ::testing::TestWithParam<SandboxKind> {
 protected:
  void SetUp() override {
    StatusOr<Confinement> c = sandbox_confinement(GetParam());
    if (!c.ok()) GTEST_SKIP() << "not available here: " << c.status().message();
    if (*c == Confinement::kNone) {
      GTEST_SKIP() << "no sandbox can be made on this machine: " << sandbox_mode();
    }
    mode_ = *c;
    opts_.sandbox = GetParam();
  }
  bool namespaces() const { return mode_ != Confinement::kLandlock; }
  std::string probe(const std::string& code) const { return reward::probe(code, opts_); }
  Confinement mode_ = Confinement::kNone;
  CodeExecutionOptions opts_ = probe_opts();
};

INSTANTIATE_TEST_SUITE_P(Confinements, SandboxProbe,
                         ::testing::Values(SandboxKind::kAuto, SandboxKind::kLandlock),
                         [](const ::testing::TestParamInfo<SandboxKind>& i) {
                           return std::string(enum_name(
                               i.param, std::span<const EnumName<SandboxKind>>(kSandboxKindNames)));
                         });

TEST_P(SandboxProbe, WorldReadableFilesOutsideAreNotReadable) {
  ProbeDir dir;
  const std::string secret = dir.path + "/secret.txt";
  std::ofstream(secret) << "expected output";
  chmod(secret.c_str(), 0644);
  const std::string repo_file = std::string(R1KIT_TESTDATA) + "/../CMakeLists.txt";
  ASSERT_TRUE(fs::exists(repo_file));
  for (const std::string& path : {secret, repo_file, std::string("/etc/passwd")}) {
    EXPECT_EQ(probe(fmt::format("try:\n"
                                "    print(open({:?}).read()[:20])\n"
                                "except OSError:\n"
                                "    print('denied')\n",
                                path)),
              "denied\n")
        << path;
  }
}

TEST_P(SandboxProbe, HostProcessesAreNotListed) {
  const std::string out = probe(
      "import os\n"
      "try:\n"
      "    print(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))\n"
      "except OSError:\n"
      "    print('denied')\n");
  // Its own PID namespace holds only the program (pid 1); Landlock refuses /proc.
  EXPECT_EQ(out, namespaces() ? "[1]\n" : "denied\n");
}

TEST_P(SandboxProbe, UnixSocketsCannotBeReached) {
  ProbeDir dir;
  const std::string path = dir.path + "/listen.sock";
  int srv = socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(srv, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
  ASSERT_EQ(bind(srv, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  chmod(path.c_str(), 0777);
  ASSERT_EQ(listen(srv, 4), 0);
  const std::string out =
      probe(fmt::format("import socket\n"
                        "for target in ({:?}, '\\0r1kit-probe-abstract'):\n"
                        "    try:\n"
                        "        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
                        "        s.connect(target)\n"
                        "        print('connected')\n"
                        "    except OSError:\n"
                        "        print('blocked')\n",
                        path));
  close(srv);
  EXPECT_EQ(out, "blocked\nblocked\n");
}

TEST_P(SandboxProbe, InheritedDescriptorsAreClosed) {
  ProbeDir dir;
  // Descriptors opened without O_CLOEXEC, as a careless caller (or a library) leaves them.
  const std::string expected = dir.path + "/expected.txt", log = dir.path + "/metrics.jsonl";
  std::ofstream(expected) << "the expected output";
  int rd = open(expected.c_str(), O_RDONLY);
  int wr = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  ASSERT_GE(rd, 3);
  ASSERT_GE(wr, 3);
  const std::string out =
      probe(fmt::format("import os\n"
                        "open_fds = []\n"
                        "for fd in range(3, 1024):\n"
                        "    try:\n"
                        "        os.fstat(fd)\n"
                        "        open_fds.append(fd)\n"
                        "    except OSError:\n"
                        "        pass\n"
                        "print('open', open_fds)\n"
                        "try:\n"
                        "    print('read', os.read({}, 100))\n"
                        "except OSError:\n"
                        "    print('read failed')\n"
                        "try:\n"
                        "    os.write({}, b'forged line\\n')\n"
                        "    print('wrote')\n"
                        "except OSError:\n"
                        "    print('write failed')\n",
                        rd, wr));
  close(rd);
  close(wr);
  EXPECT_EQ(out, "open []\nread failed\nwrite failed\n");
  EXPECT_EQ(fs::file_size(log), 0u);
}

TEST_P(SandboxProbe, NothingIsLeftForTheNextRun) {
  const std::string leave =
      "import os\n"
      "for p in ('/tmp/r1kit_left', '/dev/shm/r1kit_left', 'r1kit_left'):\n"
      "    try:\n"
      "        open(p, 'w').write('x')\n"
      "        print('wrote', p)\n"
      "    except OSError:\n"
      "        print('refused', p)\n";
  const std::string out = probe(leave);
  EXPECT_NE(out.find("wrote r1kit_left"), std::string::npos) << out;  // its work dir
  const std::string look =
      "import os\n"
      "print([p for p in ('/tmp/r1kit_left', '/dev/shm/r1kit_left', 'r1kit_left')\n"
      "       if os.path.exists(p)])\n";
  EXPECT_EQ(probe(look), "[]\n");
  EXPECT_FALSE(fs::exists("/tmp/r1kit_left"));
  EXPECT_FALSE(fs::exists("/dev/shm/r1kit_left"));
}

TEST_P(SandboxProbe, NamespacesAndDangerousCallsAreRefused) {
  // Through ctypes, straight to libc: unshare(CLONE_NEWUSER), unshare(CLONE_NEWNS),
  // setns, ptrace(PTRACE_TRACEME), mount, keyctl, bpf, process_vm_readv (x86_64 numbers).
  const std::string out = probe(
      "import ctypes, os\n"
      "libc = ctypes.CDLL(None, use_errno=True)\n"
      "calls = {\n"
      "  'unshare(user)': lambda: libc.unshare(0x10000000),\n"
      "  'unshare(mount)': lambda: libc.unshare(0x00020000),\n"
      "  'setns': lambda: libc.setns(0, 0),\n"
      "  'ptrace': lambda: libc.ptrace(0, 0, 0, 0),\n"
      "  'mount': lambda: libc.mount(b'none', b'/tmp', b'tmpfs', 0, None),\n"
      "  'keyctl': lambda: libc.syscall(250, 0, 0, 0, 0, 0),\n"
      "  'bpf': lambda: libc.syscall(321, 0, 0, 0),\n"
      "  'process_vm_readv': lambda: libc.syscall(310, 1, 0, 0, 0, 0, 0),\n"
      "}\n"
      "for name, call in calls.items():\n"
      "    rc = call()\n"
      "    print(name, 'refused' if rc == -1 else 'allowed')\n"
      "try:\n"
      "    os.fork()\n"
      "    print('fork allowed')\n"
      "except OSError:\n"
      "    print('fork refused')\n");
  EXPECT_EQ(out,
            "unshare(user) refused\nunshare(mount) refused\nsetns refused\nptrace refused\n"
            "mount refused\nkeyctl refused\nbpf refused\nprocess_vm_readv refused\n"
            "fork refused\n");
}

TEST_P(SandboxProbe, MemoryLimitCannotBeMultiplied) {
  CodeExecutionOptions o = opts_;
  o.memory_mb = 512;
  // 4 x 300 MB by forking, then by threads: at most one 300 MB block fits in 512 MB.
  const std::string out = reward::probe(
      "import os, threading\n"
      "MB = 1024 * 1024\n"
      "got = 0\n"
      "for i in range(4):\n"
      "    try:\n"
      "        pid = os.fork()\n"
      "    except OSError:\n"
      "        break\n"
      "    if pid == 0:\n"
      "        try:\n"
      "            b = bytearray(300 * MB)\n"
      "            os._exit(0)\n"
      "        except MemoryError:\n"
      "            os._exit(1)\n"
      "    got += os.waitpid(pid, 0)[1] == 0\n"
      "print('forked blocks', got)\n"
      "blocks, lock = [], threading.Lock()\n"
      "def grab():\n"
      "    try:\n"
      "        b = bytearray(300 * MB)\n"
      "        with lock: blocks.append(b)\n"
      "    except MemoryError:\n"
      "        pass\n"
      "ts = [threading.Thread(target=grab) for _ in range(4)]\n"
      "for t in ts: t.start()\n"
      "for t in ts: t.join()\n"
      "print('thread blocks', len(blocks))\n",
      o);
  EXPECT_EQ(out, "forked blocks 0\nthread blocks 1\n");
}

TEST(SandboxOptions, LandlockWhenForced) {
  CodeExecutionOptions o = probe_opts();
  o.sandbox = SandboxKind::kLandlock;
  if (!sandbox_confinement(SandboxKind::kLandlock).ok()) {
    GTEST_SKIP() << "Landlock is not available on this kernel";
  }
  ProbeDir dir;
  const std::string secret = dir.path + "/secret.txt";
  std::ofstream(secret) << "x";
  chmod(secret.c_str(), 0644);
  const std::string out = probe(fmt::format("import os\n"
                                            "try:\n"
                                            "    open({:?}).read()\n"
                                            "    print('read')\n"
                                            "except OSError:\n"
                                            "    print('denied')\n"
                                            "open('here', 'w').write('ok')\n"
                                            "print(open('here').read(), os.getcwd()[:16])\n",
                                            secret),
                                o);
  EXPECT_EQ(out, "denied\nok /tmp/r1kit_code_\n");
}

// ---------------------------------------------------------------- memory: cgroup v2

std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

TEST(SandboxCgroup, FindsTheV2MountAndThePath) {
  // A hybrid machine (v1 controllers, v2 without them at .../unified) and a pure v2 one.
  const std::string hybrid =
      "25 30 0:22 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755\n"
      "26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid shared:9 - cgroup2 cgroup2 rw\n"
      "27 25 0:24 / /sys/fs/cgroup/memory rw,nosuid shared:10 - cgroup cgroup rw,memory\n";
  EXPECT_EQ(cgroup2_mount(hybrid), "/sys/fs/cgroup/unified");
  EXPECT_EQ(cgroup2_mount("27 25 0:24 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"), "");
  EXPECT_EQ(cgroup2_mount("35 24 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 "
                          "- cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n"),
            "/sys/fs/cgroup");
  EXPECT_EQ(cgroup2_path("4:memory:/a\n0::/user.slice/r1kit.service\n"),
            "/user.slice/r1kit.service");
  EXPECT_EQ(cgroup2_path("4:memory:/a\n1:cpu:/\n"), "");
}

// The delegation and the leaf on a fake hierarchy (plain files in a temporary directory):
// what delegate_cgroup and CgroupLeaf write, and what they refuse. Runs everywhere; the
// kernel's side is SandboxCgroupV2.RunsEachProgramInALeaf.
TEST(SandboxCgroup, DelegatesAndFillsALeafOnAFakeHierarchy) {
  ProbeDir d;
  const std::string self = std::to_string(getpid());
  std::ofstream(d.path + "/cgroup.controllers") << "cpuset cpu io memory pids\n";
  std::ofstream(d.path + "/cgroup.subtree_control") << "\n";
  std::ofstream(d.path + "/cgroup.procs") << self << "\n4242\n";
  StatusOr<std::string> refused = delegate_cgroup(d.path, getpid());
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("holds other processes (pid 4242)"), std::string::npos)
      << refused.status().message();
  std::ofstream(d.path + "/cgroup.procs") << self << "\n";
  StatusOr<std::string> dir = delegate_cgroup(d.path, getpid());
  ASSERT_TRUE(dir.ok()) << dir.status().message();
  EXPECT_EQ(*dir, d.path);
  EXPECT_EQ(read_all(d.path + "/r1kit-main/cgroup.procs"), self);  // moved aside
  EXPECT_EQ(read_all(d.path + "/cgroup.subtree_control"), "+memory +pids");
  // Already delegated: nothing moves.
  std::ofstream(d.path + "/cgroup.subtree_control") << "memory pids\n";
  std::ofstream(d.path + "/r1kit-main/cgroup.procs") << "";
  ASSERT_TRUE(delegate_cgroup(d.path, getpid()).ok());
  EXPECT_EQ(read_all(d.path + "/r1kit-main/cgroup.procs"), "");

  SandboxLimits limits;
  limits.memory_mb = 64;
  limits.max_processes = 8;
  {
    StatusOr<std::unique_ptr<CgroupLeaf>> leaf = CgroupLeaf::create(d.path, limits);
    ASSERT_TRUE(leaf.ok()) << leaf.status().message();
    const std::string leaf_dir = (*leaf)->dir();
    EXPECT_EQ(leaf_dir.rfind(d.path + "/r1kit-run-" + self + "-", 0), 0u) << leaf_dir;
    EXPECT_EQ(read_all(leaf_dir + "/memory.max"), std::to_string(64 << 20));
    EXPECT_EQ(read_all(leaf_dir + "/pids.max"), "9");  // the threads, plus the run's init
    EXPECT_TRUE((*leaf)->enter());
    EXPECT_EQ(read_all(leaf_dir + "/cgroup.procs"), "0");  // "0": the writing process
  }

  std::ofstream(d.path + "/cgroup.controllers") << "cpu io\n";
  refused = delegate_cgroup(d.path, getpid());
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("memory and pids controllers are not available"),
            std::string::npos)
      << refused.status().message();
}

CodeExecutionOptions memory_opts() {
  CodeExecutionOptions o = probe_opts();
  o.allow_unsandboxed = true;  // the memory limit applies with or without a sandbox
  o.memory_mb = 256;
  return o;
}

// The program's /proc/self/cgroup; "" under Landlock, which does not let it read /proc.
std::string cgroup_of_program() {
  StatusOr<Confinement> c = sandbox_confinement(SandboxKind::kAuto);
  if (c.ok() && *c == Confinement::kLandlock) return "";
  return probe("print(open('/proc/self/cgroup').read().strip())\n", memory_opts());
}

// Where this process can delegate a cgroup v2 leaf: each program runs in a leaf of its
// own under cgroup_leaves_dir(), which is removed afterwards. Skipped, with the reason,
// where it cannot (cgroup v1 or hybrid machines, a cgroup shared with other processes).
TEST(SandboxCgroupV2, RunsEachProgramInALeaf) {
  const std::string& leaves = cgroup_leaves_dir();
  if (leaves.empty()) {
    GTEST_SKIP() << "cgroup v2 path not tested on this machine: " << memory_limit_name();
  }
  EXPECT_NE(sandbox_mode().find("; memory: cgroup v2 leaf per run under"), std::string::npos)
      << sandbox_mode();
  if (const std::string out = cgroup_of_program(); !out.empty()) {
    EXPECT_NE(out.find("0::"), std::string::npos) << out;
    EXPECT_NE(out.find("/r1kit-run-" + std::to_string(getpid()) + "-"), std::string::npos) << out;
  }
  for (const auto& e : fs::directory_iterator(leaves))
    EXPECT_EQ(e.path().filename().string().rfind("r1kit-run-", 0), std::string::npos)
        << "left behind: " << e.path();
  // Memory over memory_mb is refused (RLIMIT_AS first; the leaf's memory.max bounds it too).
  EXPECT_EQ(probe("try:\n"
                  "    b = bytearray(400 * 1024 * 1024)\n"
                  "    print('allocated')\n"
                  "except MemoryError:\n"
                  "    print('refused')\n",
                  memory_opts()),
            "refused\n");
}

// Without a cgroup v2 leaf (this machine when it mounts cgroup v1): the rlimits alone,
// said as such with the reason, and the program stays in the trainer's cgroup.
TEST(SandboxCgroupV2, FallbackIsRlimitsAndSaysWhy) {
  if (!cgroup_leaves_dir().empty()) {
    GTEST_SKIP() << "a cgroup v2 leaf is in use here (" << memory_limit_name()
                 << "); RunsEachProgramInALeaf covers it";
  }
  const std::string name = memory_limit_name();
  EXPECT_EQ(name.rfind("RLIMIT_AS + RLIMIT_NPROC (no cgroup v2 leaf: ", 0), 0u) << name;
  EXPECT_GT(name.size(), std::string("RLIMIT_AS + RLIMIT_NPROC (no cgroup v2 leaf: )").size());
  EXPECT_NE(sandbox_mode().find("; memory: RLIMIT_AS + RLIMIT_NPROC"), std::string::npos)
      << sandbox_mode();
  std::string mine = read_all("/proc/self/cgroup");
  while (!mine.empty() && mine.back() == '\n') mine.pop_back();
  if (const std::string out = cgroup_of_program(); !out.empty()) {
    EXPECT_EQ(out, mine + "\n");
  }
  EXPECT_EQ(probe("try:\n"
                  "    b = bytearray(400 * 1024 * 1024)\n"
                  "    print('allocated')\n"
                  "except MemoryError:\n"
                  "    print('refused')\n",
                  memory_opts()),
            "refused\n");
}

// ---------------------------------------------------------------- fallbacks

// This test binary, re-run with `filter` in a child whose seccomp filter refuses
// unshare() (no namespaces) and, with `deny_landlock`, landlock_create_ruleset() (no
// Landlock): the machine the fallbacks are for. Returns its exit status and output.
std::pair<int, std::string> run_self_without(bool deny_landlock, const std::string& filter) {
  int out[2];
  if (pipe(out) != 0) return {-1, "pipe failed"};
  const std::string self = fs::read_symlink("/proc/self/exe").string();
  const std::string filter_arg = "--gtest_filter=" + filter;
  pid_t pid = fork();
  if (pid == 0) {
    dup2(out[1], 1);
    dup2(out[1], 2);
    const uint32_t landlock_nr = deny_landlock ? SYS_landlock_create_ruleset : ~0u;
    sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_unshare, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, landlock_nr, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
    };
    sock_fprog prog{static_cast<unsigned short>(std::size(code)), code};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
      _exit(120);
    }
    execl(self.c_str(), self.c_str(), filter_arg.c_str(), "--gtest_also_run_disabled_tests",
          static_cast<char*>(nullptr));
    _exit(121);
  }
  close(out[1]);
  std::string text;
  std::array<char, 4096> buf;
  while (true) {
    ssize_t n = read(out[0], buf.data(), buf.size());
    if (n <= 0) break;
    text.append(buf.data(), static_cast<size_t>(n));
  }
  close(out[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, text};
}

// Run only by SandboxFallback.Drivers, in a child without namespaces.
TEST(SandboxFallback, DISABLED_WithoutNamespacesLandlock) {
  StatusOr<Confinement> c = sandbox_confinement(SandboxKind::kAuto);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(*c, Confinement::kLandlock) << sandbox_mode();
  EXPECT_FALSE(sandbox_confinement(SandboxKind::kNamespaces).ok());
  EXPECT_EQ(probe("import os\n"
                  "try:\n"
                  "    open('/etc/passwd').read()\n"
                  "    print('read')\n"
                  "except OSError:\n"
                  "    print('denied')\n"),
            "denied\n");
}

// Run only by SandboxFallback.Drivers, in a child without namespaces or Landlock.
TEST(SandboxFallback, DISABLED_WithNothingRefusedUnlessAllowed) {
  StatusOr<Confinement> c = sandbox_confinement(SandboxKind::kAuto);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(*c, Confinement::kNone) << sandbox_mode();
  CodeExecutionOptions o = probe_opts();
  Status refused = o.validate();
  EXPECT_EQ(refused.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.message().find("allow_unsandboxed"), std::string::npos) << refused.message();
  RunResult r = run_python_sandboxed("print(1)\n", "", o);
  EXPECT_FALSE(r.started);
  EXPECT_NE(r.error.find("allow_unsandboxed"), std::string::npos) << r.error;
  CodeExecutionReward reward(o);
  Sample s;
  s.completion = "```python\nprint(1)\n```\n";
  s.metadata = {{"tests", {{{"input", ""}, {"output", "1"}}}}};
  EXPECT_TRUE(std::isnan(reward.score_one(s)));  // cannot judge, never run
  o.allow_unsandboxed = true;
  EXPECT_TRUE(o.validate().ok());
  EXPECT_EQ(probe("print(1)\n", o), "1\n");  // rlimits + seccomp still apply:
  EXPECT_EQ(probe("import os\n"
                  "try:\n"
                  "    os.fork()\n"
                  "    print('forked')\n"
                  "except OSError:\n"
                  "    print('refused')\n",
                  o),
            "refused\n");
}

TEST(SandboxFallback, Drivers) {
  auto [rc, out] =
      run_self_without(true, "SandboxFallback.DISABLED_WithNothingRefusedUnlessAllowed");
  if (rc == 120) GTEST_SKIP() << "the test's own seccomp filter cannot be installed here";
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("[  PASSED  ] 1 test."), std::string::npos) << out;
  if (!sandbox_confinement(SandboxKind::kLandlock).ok()) {
    GTEST_SKIP() << "no Landlock on this kernel: the namespace-to-Landlock fallback is untested";
  }
  std::tie(rc, out) = run_self_without(false, "SandboxFallback.DISABLED_WithoutNamespacesLandlock");
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("[  PASSED  ] 1 test."), std::string::npos) << out;
}

// Every probe again as an unprivileged user (nobody), where the sandbox is a user
// namespace (or Landlock where the kernel refuses those).
TEST(SandboxProbeUnprivileged, AsNobody) {
  if (geteuid() != 0) {
    GTEST_SKIP() << "not root: the probes above already ran unprivileged";
  }
  if (access("/usr/bin/setpriv", X_OK) != 0) {
    GTEST_SKIP() << "no /usr/bin/setpriv to drop to nobody";
  }
  const std::string self = fs::read_symlink("/proc/self/exe").string();
  const std::string cmd = fmt::format(
      "cd / && /usr/bin/setpriv --reuid=65534 --regid=65534 --clear-groups '{}' "
      "--gtest_filter='*SandboxProbe.*:SandboxOptions.*' 2>&1",
      self);
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  std::array<char, 4096> buf;
  while (size_t n = fread(buf.data(), 1, buf.size(), p)) out.append(buf.data(), n);
  int status = pclose(p);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << out;
  EXPECT_NE(out.find("[  PASSED  ] 15 tests"), std::string::npos) << out;
  EXPECT_EQ(out.find("SKIPPED"), std::string::npos) << out;
}

}  // namespace
}  // namespace r1kit::reward
