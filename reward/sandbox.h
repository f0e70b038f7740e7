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
// one address space, so forking cannot multiply memory_mb (a cgroup is not needed).
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
  int64_t memory_mb = 512;
  int64_t max_processes = 16;  // RLIMIT_NPROC (threads, since processes are refused)
  int64_t max_file_mb = 16;    // RLIMIT_FSIZE, and the size of each private tmpfs
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
  // In the first child: enters the new namespaces (as init of the PID namespace are
  // the children it forks next). Returns 0, or a letter naming the step that failed.
  char enter_namespaces() const noexcept;
  // In the program's process: builds its view, applies the limits, closes every
  // descriptor but 0-2 (and `err_fd`, moved to 3, close-on-exec) and execs the program.
  // Returns only on failure, with a letter naming the step.
  char exec_program(int stdin_fd, int stdout_fd, int stderr_fd, int err_fd) const noexcept;

  // The work directory as the program sees it.
  const std::string& work_dir() const { return work_dir_; }

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
  std::vector<std::string> env_;
  std::vector<const char*> argv_, envp_;
};

}  // namespace r1kit::reward
