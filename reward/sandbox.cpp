// sandbox: namespaces, a private view, Landlock, rlimits and seccomp for one program run;
// see sandbox.h.
#include "reward/sandbox.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <grp.h>
#include <linux/filter.h>
#include <linux/landlock.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

#include "core/logging.h"

namespace r1kit::reward {
namespace {

namespace fs = std::filesystem;

// As root, each run gets its own unprivileged uid/gid from this range (no passwd entry
// needed), so RLIMIT_NPROC counts only that run's threads and no run can signal another.
constexpr uid_t kFirstSandboxUid = 0x30000;
constexpr uint32_t kSandboxUids = 0x8000;
std::atomic<uint32_t> next_sandbox_uid{0};
// Unprivileged: the program's uid and gid inside its user namespace (not 0, so execve
// leaves it without capabilities there).
constexpr int kInnerId = 1000;

constexpr int kNamespaceFlags =
    CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS;

// Landlock constants up to ABI 6, spelled out so that older kernel headers build.
constexpr uint64_t kLlExecute = 1ULL << 0, kLlWriteFile = 1ULL << 1, kLlReadFile = 1ULL << 2,
                   kLlReadDir = 1ULL << 3;
constexpr uint64_t kLlAllFsV1 = (1ULL << 13) - 1;
constexpr uint64_t kLlRefer = 1ULL << 13, kLlTruncate = 1ULL << 14, kLlIoctlDev = 1ULL << 15;
constexpr uint64_t kLlNetBindTcp = 1ULL << 0, kLlNetConnectTcp = 1ULL << 1;
constexpr uint64_t kLlScopeAbstractUnix = 1ULL << 0, kLlScopeSignal = 1ULL << 1;
struct LandlockRulesetAttr {
  uint64_t handled_access_fs = 0, handled_access_net = 0, scoped = 0;
};

int landlock_abi() {
  long v = syscall(SYS_landlock_create_ruleset, nullptr, 0, LANDLOCK_CREATE_RULESET_VERSION);
  return v < 0 ? 0 : static_cast<int>(v);
}

// Waits for `pid`; whether it exited with status 0.
bool exited_ok(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return false;
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// Whether confinement `c` works here: its namespaces and view are built in throw-away
// children (nothing is run).
bool works(Confinement c) {
  auto run = SandboxRun::prepare(c, "/usr/bin/python3", "", SandboxLimits{});
  return run.ok() && (*run)->dry_run();
}

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Whether whitespace-separated `text` holds the word `w`.
bool has_word(const std::string& text, const std::string& w) {
  std::istringstream in(text);
  for (std::string t; in >> t;)
    if (t == w) return true;
  return false;
}

Status write_text(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
  f.flush();
  if (!f)
    return FailedPrecondition("cannot write '{}' to {}: {}", text, path, std::strerror(errno));
  return OkStatus();
}

// The cgroup v2 directory runs' leaves go in, or why there is none.
struct CgroupProbe {
  std::string leaves_dir;
  std::string why;
};

CgroupProbe probe_cgroup_once() {
  CgroupProbe p;
  const std::string mount = cgroup2_mount(read_text("/proc/self/mountinfo"));
  const std::string path = cgroup2_path(read_text("/proc/self/cgroup"));
  if (mount.empty() || path.empty()) {
    p.why = "no cgroup v2 hierarchy holds this process (a cgroup v1 or hybrid machine)";
    return p;
  }
  StatusOr<std::string> dir = delegate_cgroup(mount + (path == "/" ? "" : path), getpid());
  if (dir.ok())
    p.leaves_dir = *dir;
  else
    p.why = dir.status().message();
  return p;
}

// Probed once, apart from probe(): the dry runs probe() makes prepare runs, which ask
// for this.
const CgroupProbe& probe_cgroup() {
  static CgroupProbe p;
  static std::once_flag once;
  std::call_once(once, [] {
    p = probe_cgroup_once();
    R1_LOG(info, "code_execution sandbox: memory and processes per run: {}",
           p.leaves_dir.empty() ? "RLIMIT_AS + RLIMIT_NPROC (no cgroup v2 leaf: " + p.why + ")"
                                : "cgroup v2 leaf per run under " + p.leaves_dir +
                                      " (memory.max, pids.max) + RLIMIT_AS");
  });
  return p;
}

struct Probe {
  bool root_ns = false, user_ns = false;
  int landlock = 0;
  std::string why;  // what is missing
};

const Probe& probe() {
  static Probe p;
  static std::once_flag once;
  std::call_once(once, [] {
    if (geteuid() == 0) p.root_ns = works(Confinement::kRootNamespaces);
    p.user_ns = !p.root_ns && works(Confinement::kUserNamespaces);
    p.landlock = landlock_abi();
    if (!p.root_ns && !p.user_ns) {
      p.why += "namespaces or their private view (mounts) refused; ";
    }
    if (p.landlock == 0) p.why += "Landlock unavailable; ";
  });
  return p;
}

// The BPF program of the seccomp filter, built once with libseccomp and exported so that
// the child installs it with one prctl (libseccomp allocates; a forked child may not).
struct Filter {
  std::vector<sock_filter> code;
  sock_fprog prog{};
  std::string error;
};

Status add_rules(scmp_filter_ctx ctx) {
  const int eperm = SCMP_ACT_ERRNO(EPERM);
  // Refused outright: the usual list for untrusted code.
  for (const char* name : {"fork",
                           "vfork",
                           "unshare",
                           "setns",
                           "ptrace",
                           "process_vm_readv",
                           "process_vm_writev",
                           "pidfd_getfd",
                           "process_madvise",
                           "kcmp",
                           "mount",
                           "umount2",
                           "pivot_root",
                           "chroot",
                           "move_mount",
                           "open_tree",
                           "fsopen",
                           "fsconfig",
                           "fsmount",
                           "fspick",
                           "mount_setattr",
                           "keyctl",
                           "add_key",
                           "request_key",
                           "bpf",
                           "perf_event_open",
                           "userfaultfd",
                           "io_uring_setup",
                           "io_uring_enter",
                           "io_uring_register",
                           "kexec_load",
                           "kexec_file_load",
                           "init_module",
                           "finit_module",
                           "delete_module",
                           "reboot",
                           "swapon",
                           "swapoff",
                           "acct",
                           "open_by_handle_at",
                           "name_to_handle_at",
                           "iopl",
                           "ioperm",
                           "quotactl",
                           "settimeofday",
                           "clock_settime",
                           "clock_adjtime",
                           "adjtimex",
                           "syslog",
                           "vhangup",
                           "sethostname",
                           "setdomainname",
                           "fanotify_init",
                           "lookup_dcookie",
                           "socket",
                           "socketpair",
                           "uselib",
                           "personality",
                           "migrate_pages",
                           "move_pages"}) {
    int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR) continue;  // not on this architecture
    if (seccomp_rule_add(ctx, eperm, nr, 0) != 0) return Internal("seccomp rule for {}", name);
  }
  // clone: threads only (CLONE_THREAD), and never with a namespace flag.
  int rc = seccomp_rule_add(ctx, eperm, SCMP_SYS(clone), 1,
                            SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, 0));
  for (int flag : {CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWIPC,
                   CLONE_NEWUTS, CLONE_NEWCGROUP}) {
    rc |= seccomp_rule_add(ctx, eperm, SCMP_SYS(clone), 1,
                           SCMP_A0(SCMP_CMP_MASKED_EQ, static_cast<scmp_datum_t>(flag),
                                   static_cast<scmp_datum_t>(flag)));
  }
  // clone3 passes its flags in memory a filter cannot read: ENOSYS makes libc use clone.
  rc |= seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
  if (rc != 0) return Internal("seccomp rules for clone");
  return OkStatus();
}

Status export_filter(Filter* f) {
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);  // other architectures: killed
  if (ctx == nullptr) return Internal("seccomp_init failed");
  Status st = add_rules(ctx);
  int fd = st.ok() ? memfd_create("r1kit-seccomp", MFD_CLOEXEC) : -1;
  if (st.ok() && (fd < 0 || seccomp_export_bpf(ctx, fd) != 0)) {
    st = Internal("seccomp_export_bpf: {}", std::strerror(errno));
  }
  seccomp_release(ctx);
  if (st.ok()) {
    off_t size = lseek(fd, 0, SEEK_END);
    f->code.resize(static_cast<size_t>(size) / sizeof(sock_filter));
    if (size <= 0 || pread(fd, f->code.data(), static_cast<size_t>(size), 0) != size) {
      st = Internal("reading the exported seccomp filter failed");
    }
    f->prog.len = static_cast<unsigned short>(f->code.size());
    f->prog.filter = f->code.data();
  }
  if (fd >= 0) close(fd);
  return st;
}

StatusOr<const sock_fprog*> seccomp_program() {
  static Filter f;
  static std::once_flag once;
  std::call_once(once, [] {
    Status st = export_filter(&f);
    if (!st.ok()) f.error = st.message();
  });
  if (!f.error.empty()) return Internal("seccomp filter: {}", f.error);
  return &f.prog;
}

// The mount flags a read-only bind of `path` keeps from its source (a user namespace may
// not clear locked ones).
unsigned long kept_flags(const std::string& path) {
  struct statvfs sv {};
  unsigned long f = MS_RDONLY | MS_NOSUID | MS_NODEV;
  if (statvfs(path.c_str(), &sv) != 0) return f;
  if (sv.f_flag & ST_NOEXEC) f |= MS_NOEXEC;
  if (sv.f_flag & ST_NOATIME) f |= MS_NOATIME;
  if (sv.f_flag & ST_NODIRATIME) f |= MS_NODIRATIME;
  if (sv.f_flag & ST_RELATIME) f |= MS_RELATIME;
  return f;
}

// Read-only paths every confinement exposes: the interpreter's files.
std::vector<std::string> read_only_roots(const std::string& python) {
  std::vector<std::string> out = {"/usr", "/etc/ld.so.cache"};
  for (const char* p : {"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"}) {
    out.push_back(p);
  }
  std::error_code ec;
  fs::path real = fs::canonical(python, ec);
  if (!ec && real.string().rfind("/usr/", 0) != 0 && real.has_parent_path()) {
    out.push_back(real.parent_path().parent_path().string());  // <prefix>/bin/python
  }
  return out;
}

int write_all(int fd, const char* data, size_t n) noexcept {
  while (n > 0) {
    ssize_t w = write(fd, data, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    data += w;
    n -= static_cast<size_t>(w);
  }
  return 0;
}

int write_file(const char* path, const char* data, size_t n, mode_t mode) noexcept {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return -1;
  int rc = write_all(fd, data, n);
  close(fd);
  return rc;
}

void set_limit(int resource, rlim_t value) noexcept {
  struct rlimit rl;
  rl.rlim_cur = value;
  rl.rlim_max = value;
  setrlimit(resource, &rl);
}

// Closes every descriptor from `first` on.
void close_from(int first) noexcept {
  if (syscall(SYS_close_range, first, ~0U, 0) == 0) return;
  struct rlimit rl {};
  int top = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max != RLIM_INFINITY
                ? static_cast<int>(std::min<rlim_t>(rl.rlim_max, INT_MAX))
                : 1 << 20;
  for (int fd = first; fd < top; ++fd) close(fd);
}

}  // namespace

std::string memory_limit_name() {
  const CgroupProbe& g = probe_cgroup();
  if (g.leaves_dir.empty()) return "RLIMIT_AS + RLIMIT_NPROC (no cgroup v2 leaf: " + g.why + ")";
  return "cgroup v2 leaf per run under " + g.leaves_dir + " (memory.max, pids.max) + RLIMIT_AS";
}

const std::string& cgroup_leaves_dir() {
  return probe_cgroup().leaves_dir;
}

std::string cgroup2_mount(const std::string& mountinfo) {
  // mountinfo: "id parent major:minor root mount-point options [optional...] - fstype ..."
  std::istringstream lines(mountinfo);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream in(line);
    std::vector<std::string> f;
    for (std::string t; in >> t;) f.push_back(t);
    auto dash = std::find(f.begin(), f.end(), "-");
    if (f.size() < 5 || dash == f.end() || dash + 1 == f.end()) continue;
    if (*(dash + 1) == "cgroup2") return f[4];
  }
  return "";
}

std::string cgroup2_path(const std::string& proc_cgroup) {
  std::istringstream lines(proc_cgroup);
  for (std::string line; std::getline(lines, line);)
    if (line.rfind("0::", 0) == 0) return line.substr(3);
  return "";
}

StatusOr<std::string> delegate_cgroup(const std::string& dir, pid_t self) {
  const std::string controllers = read_text(dir + "/cgroup.controllers");
  if (!has_word(controllers, "memory") || !has_word(controllers, "pids"))
    return FailedPrecondition(
        "cgroup v2 {}: the memory and pids controllers are not available to it "
        "(cgroup.controllers: '{}')",
        dir, controllers.substr(0, controllers.find('\n')));
  if (access((dir + "/cgroup.subtree_control").c_str(), W_OK) != 0 ||
      access(dir.c_str(), W_OK) != 0)
    return FailedPrecondition("cgroup v2 {}: not writable by this process (not delegated to it)",
                              dir);
  const std::string enabled = read_text(dir + "/cgroup.subtree_control");
  if (has_word(enabled, "memory") && has_word(enabled, "pids")) return dir;
  // cgroup v2's no-internal-process rule: controllers go to children only from a cgroup
  // without processes of its own. Move this process aside, if it is alone.
  std::istringstream procs(read_text(dir + "/cgroup.procs"));
  for (std::string pid; procs >> pid;)
    if (pid != std::to_string(self))
      return FailedPrecondition(
          "cgroup v2 {}: holds other processes (pid {}), so it cannot hand the memory "
          "controller to a leaf; run r1kit in a cgroup of its own (e.g. a container, or a "
          "systemd unit with Delegate=yes)",
          dir, pid);
  const std::string main_dir = dir + "/r1kit-main";
  if (mkdir(main_dir.c_str(), 0755) != 0 && errno != EEXIST)
    return FailedPrecondition("cgroup v2: cannot create {}: {}", main_dir, std::strerror(errno));
  RETURN_IF_ERROR(write_text(main_dir + "/cgroup.procs", std::to_string(self)));
  if (Status st = write_text(dir + "/cgroup.subtree_control", "+memory +pids"); !st.ok()) {
    (void)write_text(dir + "/cgroup.procs", std::to_string(self));  // back where it was
    rmdir(main_dir.c_str());
    return st;
  }
  return dir;
}

StatusOr<std::unique_ptr<CgroupLeaf>> CgroupLeaf::create(const std::string& parent,
                                                         const SandboxLimits& limits) {
  static std::atomic<uint64_t> next{0};
  std::unique_ptr<CgroupLeaf> leaf(new CgroupLeaf());
  const std::string dir = fmt::format("{}/r1kit-run-{}-{}", parent, getpid(), next.fetch_add(1));
  if (mkdir(dir.c_str(), 0755) != 0)
    return FailedPrecondition("cgroup v2: cannot create {}: {}", dir, std::strerror(errno));
  leaf->dir_ = dir;  // removed by the destructor from here on
  RETURN_IF_ERROR(write_text(dir + "/memory.max", std::to_string(limits.memory_mb << 20)));
  RETURN_IF_ERROR(write_text(dir + "/pids.max", std::to_string(limits.max_processes + 1)));
  for (const auto& [file, value] :
       {std::pair<const char*, const char*>{"memory.swap.max", "0"}, {"memory.oom.group", "1"}}) {
    const std::string path = dir + "/" + file;
    if (access(path.c_str(), F_OK) == 0) RETURN_IF_ERROR(write_text(path, value));
  }
  const std::string procs = dir + "/cgroup.procs";
  leaf->procs_fd_ = open(procs.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (leaf->procs_fd_ < 0)
    return FailedPrecondition("cgroup v2: cannot open {}: {}", procs, std::strerror(errno));
  return leaf;
}

bool CgroupLeaf::enter() const noexcept {
  return procs_fd_ >= 0 && write(procs_fd_, "0", 1) == 1;  // 0: the writing process
}

CgroupLeaf::~CgroupLeaf() {
  if (procs_fd_ >= 0) close(procs_fd_);
  if (dir_.empty()) return;
  // The run's processes are normally reaped by now; kill stragglers (cgroup.kill, Linux
  // 5.14) and wait for the leaf to empty before removing it.
  const std::string kill_file = dir_ + "/cgroup.kill";
  if (access(kill_file.c_str(), F_OK) == 0) (void)write_text(kill_file, "1");
  for (int i = 0; i < 100 && rmdir(dir_.c_str()) != 0 && errno == EBUSY; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
}

std::string confinement_name(Confinement c) {
  switch (c) {
    case Confinement::kRootNamespaces:
      return "namespaces (mount, net, pid, ipc, uts) + seccomp, per-run uid";
    case Confinement::kUserNamespaces:
      return "user namespace (mount, net, pid, ipc, uts) + seccomp";
    case Confinement::kLandlock:
      return fmt::format("landlock (ABI {}) + seccomp", probe().landlock);
    case Confinement::kNone:
      return "rlimits + seccomp only (" + probe().why + "no filesystem or network isolation)";
  }
  return "";
}

StatusOr<Confinement> sandbox_confinement(SandboxKind want, std::string* why) {
  const Probe& p = probe();
  if (why) *why = p.why;
  const bool ns = p.root_ns || p.user_ns;
  const Confinement ns_kind =
      p.root_ns ? Confinement::kRootNamespaces : Confinement::kUserNamespaces;
  switch (want) {
    case SandboxKind::kNamespaces:
      if (!ns) return FailedPrecondition("sandbox: namespaces: {}", p.why);
      return ns_kind;
    case SandboxKind::kLandlock:
      if (p.landlock == 0) return FailedPrecondition("sandbox: landlock: {}", p.why);
      return Confinement::kLandlock;
    case SandboxKind::kAuto:
      if (ns) return ns_kind;
      return p.landlock > 0 ? Confinement::kLandlock : Confinement::kNone;
  }
  return Confinement::kNone;
}

StatusOr<std::unique_ptr<SandboxRun>> SandboxRun::prepare(Confinement c, const std::string& python,
                                                          const std::string& code,
                                                          const SandboxLimits& limits) {
  std::unique_ptr<SandboxRun> r(new SandboxRun());
  r->mode_ = c;
  r->limits_ = limits;
  ASSIGN_OR_RETURN(r->filter_, seccomp_program());
  if (const std::string& leaves = cgroup_leaves_dir(); !leaves.empty()) {
    ASSIGN_OR_RETURN(r->cgroup_, CgroupLeaf::create(leaves, limits));
  }
  if (c == Confinement::kRootNamespaces) {
    r->run_uid_ = kFirstSandboxUid + next_sandbox_uid.fetch_add(1) % kSandboxUids;
  }
  if (c == Confinement::kUserNamespaces) {
    r->uid_map_ = fmt::format("{} {} 1\n", kInnerId, geteuid());
    r->gid_map_ = fmt::format("{} {} 1\n", kInnerId, getegid());
  }
  if (c == Confinement::kRootNamespaces || c == Confinement::kUserNamespaces) {
    RETURN_IF_ERROR(r->plan_view(python, code));
  } else {
    RETURN_IF_ERROR(r->plan_host_dir(code));
    if (c == Confinement::kLandlock) RETURN_IF_ERROR(r->plan_landlock(python));
  }
  r->python_ = python;
  r->env_ = {"PATH=/usr/bin:/bin", "HOME=" + r->work_dir_,      "TMPDIR=" + r->work_dir_,
             "LANG=C.UTF-8",       "PYTHONDONTWRITEBYTECODE=1", "PYTHONHASHSEED=0"};
  for (const auto& e : r->env_) r->envp_.push_back(e.c_str());
  r->envp_.push_back(nullptr);
  r->argv_ = {r->python_.c_str(), "-I", "-S", "-B", r->script_.c_str(), nullptr};
  return r;
}

SandboxRun::~SandboxRun() {
  if (landlock_fd_ >= 0) close(landlock_fd_);
  if (!host_dir_.empty()) {
    std::error_code ec;
    fs::remove_all(host_dir_, ec);
  }
}

Status SandboxRun::plan_view(const std::string& python, const std::string& code) {
  stage_ = "/tmp";  // mounted over in the run's own mount namespace only
  code_ = code;
  for (const std::string& src : read_only_roots(python)) {
    std::error_code ec;
    auto st = fs::symlink_status(src, ec);
    if (ec || !fs::exists(st)) continue;
    const std::string dst = stage_ + src;
    if (fs::is_symlink(st)) {
      links_.emplace_back(fs::read_symlink(src, ec).string(), dst);
      continue;
    }
    // Parent directories of the mount point, outermost first.
    std::vector<std::string> parents;
    for (fs::path p = fs::path(src).parent_path(); p != "/" && !p.empty(); p = p.parent_path()) {
      parents.insert(parents.begin(), stage_ + p.string());
    }
    for (auto& d : parents)
      if (std::find(dirs_.begin(), dirs_.end(), d) == dirs_.end()) dirs_.push_back(d);
    const bool dir = fs::is_directory(st);
    (dir ? dirs_ : files_).push_back(dst);
    binds_.push_back({src, dst, dir, kept_flags(src)});
  }
  proc_ = stage_ + "/proc";
  tmp_ = stage_ + "/tmp";
  shm_ = stage_ + "/dev/shm";
  for (const auto& d : {proc_, stage_ + "/dev", tmp_, shm_}) dirs_.push_back(d);
  for (const char* dev : {"null", "zero", "random", "urandom"}) {
    const std::string dst = stage_ + "/dev/" + dev;
    files_.push_back(dst);
    binds_.push_back({std::string("/dev/") + dev, dst, false, 0});  // stays writable
  }
  links_.emplace_back("/proc/self/fd", stage_ + "/dev/fd");
  links_.emplace_back("/proc/self/fd/0", stage_ + "/dev/stdin");
  links_.emplace_back("/proc/self/fd/1", stage_ + "/dev/stdout");
  links_.emplace_back("/proc/self/fd/2", stage_ + "/dev/stderr");
  root_opts_ = fmt::format("size={}k,nr_inodes=1024,mode=755", 1024);
  tmpfs_opts_ = fmt::format("size={}m,nr_inodes=4096,mode=1777", limits_.max_file_mb);
  work_dir_ = "/tmp";
  script_ = "/tmp/solution.py";
  staged_script_ = tmp_ + "/solution.py";
  return OkStatus();
}

Status SandboxRun::plan_host_dir(const std::string& code) {
  char dir_template[] = "/tmp/r1kit_code_XXXXXX";
  if (mkdtemp(dir_template) == nullptr) return Internal("mkdtemp: {}", std::strerror(errno));
  host_dir_ = work_dir_ = dir_template;
  script_ = host_dir_ + "/solution.py";
  std::ofstream f(script_, std::ios::binary);
  f << code;
  if (!f) return Internal("cannot write {}", script_);
  return OkStatus();
}

Status SandboxRun::plan_landlock(const std::string& python) {
  const int abi = probe().landlock;
  LandlockRulesetAttr attr;
  attr.handled_access_fs = kLlAllFsV1 | (abi >= 2 ? kLlRefer : 0) | (abi >= 3 ? kLlTruncate : 0) |
                           (abi >= 5 ? kLlIoctlDev : 0);
  if (abi >= 4) attr.handled_access_net = kLlNetBindTcp | kLlNetConnectTcp;
  if (abi >= 6) attr.scoped = kLlScopeAbstractUnix | kLlScopeSignal;
  const size_t size = abi >= 6 ? 24 : abi >= 4 ? 16 : 8;
  landlock_fd_ = static_cast<int>(syscall(SYS_landlock_create_ruleset, &attr, size, 0));
  if (landlock_fd_ < 0) return Internal("landlock_create_ruleset: {}", std::strerror(errno));
  auto allow = [&](const std::string& path, uint64_t access) -> Status {
    int fd = open(path.c_str(), O_PATH | O_CLOEXEC);
    if (fd < 0) return OkStatus();  // absent on this machine: nothing to allow
    struct stat st {};
    fstat(fd, &st);
    if (!S_ISDIR(st.st_mode)) access &= kLlExecute | kLlReadFile | kLlWriteFile | kLlTruncate;
    struct landlock_path_beneath_attr rule {};
    rule.allowed_access = access & attr.handled_access_fs;
    rule.parent_fd = fd;
    long rc = syscall(SYS_landlock_add_rule, landlock_fd_, LANDLOCK_RULE_PATH_BENEATH, &rule, 0);
    close(fd);
    if (rc != 0) return Internal("landlock_add_rule {}: {}", path, std::strerror(errno));
    return OkStatus();
  };
  for (const std::string& p : read_only_roots(python)) {
    RETURN_IF_ERROR(allow(p, kLlExecute | kLlReadFile | kLlReadDir));
  }
  for (const char* dev : {"/dev/zero", "/dev/random", "/dev/urandom"}) {
    RETURN_IF_ERROR(allow(dev, kLlReadFile));
  }
  RETURN_IF_ERROR(allow("/dev/null", kLlReadFile | kLlWriteFile | kLlTruncate));
  return allow(host_dir_, attr.handled_access_fs);
}

bool SandboxRun::dry_run() const {
  pid_t pid = fork();
  if (pid == 0) {
    if (enter_namespaces() != 0) _exit(1);
    pid_t inner = fork();
    if (inner == 0) _exit(build_view() == 0 ? 0 : 1);
    _exit(inner > 0 && exited_ok(inner) ? 0 : 1);
  }
  return pid > 0 && exited_ok(pid);
}

char SandboxRun::enter_cgroup() const noexcept {
  if (!cgroup_) return 0;
  return cgroup_->enter() ? 0 : 'C';
}

char SandboxRun::enter_namespaces() const noexcept {
  if (mode_ == Confinement::kRootNamespaces) return unshare(kNamespaceFlags) == 0 ? 0 : 'u';
  if (mode_ != Confinement::kUserNamespaces) return 0;
  if (unshare(CLONE_NEWUSER | kNamespaceFlags) != 0) return 'u';
  if (write_file("/proc/self/setgroups", "deny", 4, 0) != 0) return 'g';
  if (write_file("/proc/self/uid_map", uid_map_.data(), uid_map_.size(), 0) != 0) return 'm';
  if (write_file("/proc/self/gid_map", gid_map_.data(), gid_map_.size(), 0) != 0) return 'm';
  return 0;
}

// The program's view (namespace confinements), built in its mount namespace at `stage_`
// and made its root with pivot_root.
char SandboxRun::build_view() const noexcept {
  const char* stage = stage_.c_str();
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return 'p';
  if (mount("tmpfs", stage, "tmpfs", MS_NOSUID | MS_NODEV, root_opts_.c_str()) != 0) return 'r';
  for (const auto& d : dirs_)
    if (mkdir(d.c_str(), 0755) != 0 && errno != EEXIST) return 'k';
  for (const auto& f : files_) {
    if (write_file(f.c_str(), "", 0, 0444) != 0) return 'k';
  }
  for (const auto& [target, link] : links_)
    if (symlink(target.c_str(), link.c_str()) != 0) return 'l';
  for (const Bind& b : binds_) {
    if (mount(b.src.c_str(), b.dst.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0) return 'b';
    if (b.flags != 0 &&
        mount(nullptr, b.dst.c_str(), nullptr, MS_REMOUNT | MS_BIND | b.flags, nullptr) != 0) {
      return 'B';
    }
  }
  if (mount("proc", proc_.c_str(), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) {
    return 'P';
  }
  for (const auto& t : {tmp_, shm_}) {
    if (mount("tmpfs", t.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, tmpfs_opts_.c_str()) != 0) {
      return 't';
    }
  }
  if (write_file(staged_script_.c_str(), code_.data(), code_.size(), 0444) != 0) return 's';
  if (mount(nullptr, stage, nullptr, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV,
            root_opts_.c_str()) != 0) {
    return 'R';
  }
  if (chdir(stage) != 0 || syscall(SYS_pivot_root, ".", ".") != 0) return 'v';
  if (umount2(".", MNT_DETACH) != 0 || chdir("/") != 0) return 'v';
  return 0;
}

char SandboxRun::apply_limits(int err_fd) const noexcept {
  set_limit(RLIMIT_CPU, static_cast<rlim_t>(limits_.cpu_s));
  set_limit(RLIMIT_AS, static_cast<rlim_t>(limits_.memory_mb) << 20);
  set_limit(RLIMIT_FSIZE, static_cast<rlim_t>(limits_.max_file_mb) << 20);
  set_limit(RLIMIT_NPROC, static_cast<rlim_t>(limits_.max_processes));
  set_limit(RLIMIT_CORE, 0);
  if (mode_ == Confinement::kRootNamespaces) {
    if (setgroups(0, nullptr) != 0 || setgid(run_uid_) != 0 || setuid(run_uid_) != 0) {
      return 'i';
    }
  }
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return 'n';
  prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  if (landlock_fd_ >= 0 && syscall(SYS_landlock_restrict_self, landlock_fd_, 0) != 0) {
    return 'L';
  }
  // Only 0-2 and the setup-error pipe (fd 3, closed by execve) stay open.
  if (err_fd >= 0) {
    if (err_fd != 3 && dup2(err_fd, 3) < 0) return 'd';
    fcntl(3, F_SETFD, FD_CLOEXEC);
  }
  close_from(err_fd >= 0 ? 4 : 3);
  return 0;
}

char SandboxRun::exec_program(int stdin_fd, int stdout_fd, int stderr_fd,
                              int err_fd) const noexcept {
  if (dup2(stdin_fd, 0) < 0 || dup2(stdout_fd, 1) < 0 || dup2(stderr_fd, 2) < 0) return 'o';
  if (mode_ == Confinement::kRootNamespaces || mode_ == Confinement::kUserNamespaces) {
    if (char c = build_view(); c != 0) return c;
  }
  if (chdir(work_dir_.c_str()) != 0) return 'c';
  if (char c = apply_limits(err_fd); c != 0) return c;
  if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, filter_) != 0) return 'S';
  execve(argv_[0], const_cast<char* const*>(argv_.data()), const_cast<char* const*>(envp_.data()));
  return 'e';
}

}  // namespace r1kit::reward
