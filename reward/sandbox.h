// sandbox: the confinement of one run of an untrusted program (code_execution's python),
// prepared in the parent and applied in the forked children (docs/rewards.md,
// "code_execution").
//
// Confinements, strongest first (kAuto takes the first this process can create):
// - kRootNamespaces (running as root): new mount, network, PID, IPC and UTS namespaces;
//   the program runs under a fresh unprivileged uid per run.
// - kUserNamespaces (unprivileged): the same namespaces inside a new user namespace; the
//   program's uid there is 1000, mapped to the caller's, so it holds no capability.
//   Both namespace confinements give the program a view of its own: a read-only tmpfs
//   root with read-only binds of /usr, /lib*, /bin, /sbin (as symlinks where the host
//   has symlinks), /etc/ld.so.cache and the interpreter's prefix when outside /usr; a
//   fresh /proc for its PID namespace; /dev with null, zero, random, urandom and fd
//   links only; private size-limited tmpfs mounts on /tmp (also the work directory,
//   HOME and TMPDIR, holding solution.py) and /dev/shm, gone with the namespace.
// - kLandlock (unprivileged, no user namespaces): a host work directory under /tmp and a
//   Landlock domain that allows reading and executing the same read-only paths, writing
//   only the work directory and /dev/null, no TCP bind/connect (Landlock ABI 4) and no
//   abstract unix sockets or signals outside the domain (ABI 6).
// - kNone: rlimits and seccomp only; code_execution refuses it unless its options say
//   allow_unsandboxed.
//
// Every confinement then applies, in the program's process just before execve: rlimits
// (CPU, address space, processes, file size, no core), descriptors 0-2 only (close_range,
// or a close() loop on kernels without it), no_new_privs, and a seccomp filter
// (libseccomp) that refuses process creation (fork, vfork, clone without CLONE_THREAD;
// clone3 answers ENOSYS so libc falls back to clone), namespace creation and entry,
// socket creation, ptrace and process_vm_*, mount and friends, keyctl, bpf,
// perf_event_open, io_uring, module and kexec calls, and the rest of the usual list.
// No new processes means the address-space limit bounds the whole run: threads share
// one address space, so forking cannot multiply memory_mb.
//
// Memory and process limits per run: a cgroup v2 leaf when the process's own cgroup can
// delegate one (delegate_cgroup below), with memory.max = memory_mb (which also counts
// the run's tmpfs files and kernel memory, and kills the run when exceeded),
// memory.swap.max = 0, pids.max = max_processes + 1 (the run's init) and
// memory.oom.group = 1; the first child moves itself in before anything else, and the
// leaf is removed after the run. RLIMIT_AS and RLIMIT_NPROC apply as well (an
// allocation over memory_mb then fails with ENOMEM before the cgroup kills). Without a
// delegable cgroup v2 (cgroup v1 machines, a cgroup shared with other processes), the
// rlimits alone, as before; memory_limit_name() says which and why.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "core/enum_names.h"
#include "core/status.h"

struct sock_fprog;  // <linux/filter.h>

namespace r1kit::reward {

// What the options ask for.
enum class SandboxKind { kAuto, kNamespaces, kLandlock };
inline constexpr EnumName<SandboxKind> kSandboxKindNames[] = {
    {SandboxKind::kAuto, "auto"},
    {SandboxKind::kNamespaces, "namespaces"},
    {SandboxKind::kLandlock, "landlock"}};

// What a run gets.
enum class Confinement { kRootNamespaces, kUserNamespaces, kLandlock, kNone };

// A short description: "root namespaces (mount, net, pid, ipc, uts), per-run uid", ...
std::string confinement_name(Confinement c);

// The confinement runs get for `want` in this process (probed once). kAuto falls back
// to kNone when nothing works, with the reasons in `why`; a forced kind that is not
// available is an error.
StatusOr<Confinement> sandbox_confinement(SandboxKind want, std::string* why = nullptr);

struct SandboxLimits {
  int64_t cpu_s = 5;
  int64_t memory_mb = 512;     // RLIMIT_AS, and the cgroup's memory.max when there is one
  int64_t max_processes = 16;  // RLIMIT_NPROC (threads, since processes are refused); pids.max
  int64_t max_file_mb = 16;    // RLIMIT_FSIZE, and the size of each private tmpfs
};

// ---- cgroup v2 ----

// The mount point of the cgroup v2 hierarchy in /proc/self/mountinfo's text ("" if none:
// a cgroup v1 machine, or v2 not mounted).
std::string cgroup2_mount(const std::string& mountinfo);
// The process's cgroup v2 path ("/a/b" from the "0::/a/b" line of /proc/self/cgroup's
// text; "" if none).
std::string cgroup2_path(const std::string& proc_cgroup);

// Makes `dir` (the process's own cgroup v2 directory, holding process `self`) able to
// hold one leaf cgroup per run, with the memory and pids controllers. cgroup v2 lets a
// non-root cgroup hand controllers to its children only when it holds no process itself,
// so when `dir` does not already enable both in cgroup.subtree_control and `self` is the
// only process in it, `self` moves to `dir`/r1kit-main and both are enabled. Refused
// (FailedPrecondition, naming the file and the reason) when the controllers are not
// available to `dir`, it is not writable, or it holds other processes. Returns the
// directory the leaves go in.
StatusOr<std::string> delegate_cgroup(const std::string& dir, pid_t self);

// How runs' memory and processes are limited in this process (probed once): "cgroup v2
// leaf per run under DIR (memory.max, pids.max) + RLIMIT_AS" or "RLIMIT_AS + RLIMIT_NPROC
// (no cgroup v2 leaf: WHY)".
std::string memory_limit_name();
// Where runs' leaves go in this process; "" when the rlimits alone apply.
const std::string& cgroup_leaves_dir();

// One run's leaf cgroup under `parent` (a delegate_cgroup directory): created with its
// limits written, entered by the run's first child (enter()), removed (after killing
// whatever is left in it) by the destructor.
class CgroupLeaf {
 public:
  static StatusOr<std::unique_ptr<CgroupLeaf>> create(const std::string& parent,
                                                      const SandboxLimits& limits);
  ~CgroupLeaf();
  CgroupLeaf(const CgroupLeaf&) = delete;
  CgroupLeaf& operator=(const CgroupLeaf&) = delete;

  // In a forked child: moves the calling process into the leaf (async-signal-safe).
  bool enter() const noexcept;
  const std::string& dir() const { return dir_; }

 private:
  CgroupLeaf() = default;
  std::string dir_;
  int procs_fd_ = -1;  // dir_/cgroup.procs, opened for writing
};

// One run, prepared before fork: every path, string and descriptor the children need,
// so that they only make system calls (the parent may be multi-threaded).
class SandboxRun {
 public:
  // Prepares a run of `python` on `code` (written to solution.py in the work directory).
  static StatusOr<std::unique_ptr<SandboxRun>> prepare(Confinement c, const std::string& python,
                                                       const std::string& code,
                                                       const SandboxLimits& limits);
  ~SandboxRun();
  SandboxRun(const SandboxRun&) = delete;
  SandboxRun& operator=(const SandboxRun&) = delete;

  // Whether the namespaces and the view can be made here: builds them in throw-away
  // children and runs nothing.
  bool dry_run() const;
  // In the first child, first: moves it into the run's cgroup leaf, when there is one
  // (its children inherit it). Returns 0, or 'C' when the move failed.
  char enter_cgroup() const noexcept;
  // In the first child: enters the new namespaces (as init of the PID namespace are
  // the children it forks next). Returns 0, or a letter naming the step that failed.
  char enter_namespaces() const noexcept;
  // In the program's process: builds its view, applies the limits, closes every
  // descriptor but 0-2 (and `err_fd`, moved to 3, close-on-exec) and execs the program.
  // Returns only on failure, with a letter naming the step.
  char exec_program(int stdin_fd, int stdout_fd, int stderr_fd, int err_fd) const noexcept;

  // The work directory as the program sees it.
  const std::string& work_dir() const { return work_dir_; }
  // The run's cgroup leaf directory; "" when the rlimits alone apply.
  std::string cgroup_dir() const { return cgroup_ ? cgroup_->dir() : std::string(); }

 private:
  SandboxRun() = default;
  struct Bind {
    std::string src, dst;
    bool dir = true;
    unsigned long flags = 0;  // mount flags of the read-only remount
  };
  Status plan_view(const std::string& python, const std::string& code);
  Status plan_host_dir(const std::string& code);
  Status plan_landlock(const std::string& python);
  char build_view() const noexcept;
  char apply_limits(int err_fd) const noexcept;

  Confinement mode_ = Confinement::kNone;
  SandboxLimits limits_;
  uid_t run_uid_ = 0;  // kRootNamespaces: the program's uid
  std::string uid_map_, gid_map_;
  // The view (namespace confinements): `stage_` is where it is built before pivot_root.
  std::string stage_;
  std::vector<std::string> dirs_, files_;  // created in the stage, in this order
  std::vector<Bind> binds_;
  std::vector<std::pair<std::string, std::string>> links_;  // target, link path
  std::string proc_, tmp_, shm_, tmpfs_opts_, root_opts_, staged_script_;
  std::string code_;      // written to solution.py by the child (namespace confinements)
  std::string host_dir_;  // kLandlock/kNone: removed by the destructor
  int landlock_fd_ = -1;
  std::string work_dir_, script_, python_;
  const struct sock_fprog* filter_ = nullptr;  // the seccomp program
  std::unique_ptr<CgroupLeaf> cgroup_;         // null: rlimits only
  std::vector<std::string> env_;
  std::vector<const char*> argv_, envp_;
};

}  // namespace r1kit::reward
