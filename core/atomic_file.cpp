#include "core/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace r1kit {
namespace fs = std::filesystem;

namespace {

Status fsync_path(const std::string& path, bool directory) {
  int fd = ::open(path.c_str(), (directory ? (O_RDONLY | O_DIRECTORY) : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) return Internal("open {} for fsync: {}", path, std::strerror(errno));
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return Internal("fsync {}: {}", path, std::strerror(errno));
  return OkStatus();
}

std::string parent_of(const std::string& path) {
  fs::path p = fs::absolute(fs::path(path)).parent_path();
  return p.empty() ? "." : p.string();
}

Status make_parent(const std::string& path) {
  std::error_code ec;
  fs::create_directories(parent_of(path), ec);
  if (ec) return Internal("create directory {}: {}", parent_of(path), ec.message());
  return OkStatus();
}

}  // namespace

std::string temp_sibling(const std::string& path) {
  static std::atomic<uint64_t> counter{0};
  return fmt::format("{}.tmp.{}.{}", path, ::getpid(), counter.fetch_add(1));
}

Status write_file_atomic_with(const std::string& path,
                              const std::function<Status(std::FILE*)>& writer) {
  RETURN_IF_ERROR(make_parent(path));
  const std::string tmp = temp_sibling(path);
  std::FILE* f = std::fopen(tmp.c_str(), "wbe");  // e: O_CLOEXEC
  if (!f) return Internal("create {}: {}", tmp, std::strerror(errno));
  Status st = writer(f);
  if (st.ok() && std::fflush(f) != 0) st = Internal("write {}: {}", tmp, std::strerror(errno));
  if (st.ok() && ::fsync(::fileno(f)) != 0)
    st = Internal("fsync {}: {}", tmp, std::strerror(errno));
  if (std::fclose(f) != 0 && st.ok()) st = Internal("close {}: {}", tmp, std::strerror(errno));
  if (st.ok() && std::rename(tmp.c_str(), path.c_str()) != 0)
    st = Internal("rename {} -> {}: {}", tmp, path, std::strerror(errno));
  if (!st.ok()) {
    std::remove(tmp.c_str());
    return st;
  }
  return fsync_path(parent_of(path), /*directory=*/true);
}

Status write_file_atomic(const std::string& path, std::span<const uint8_t> data) {
  return write_file_atomic_with(path, [&](std::FILE* f) -> Status {
    if (!data.empty() && std::fwrite(data.data(), 1, data.size(), f) != data.size())
      return Internal("write {}: {}", path, std::strerror(errno));
    return OkStatus();
  });
}

Status write_file_atomic(const std::string& path, std::string_view data) {
  return write_file_atomic(
      path, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(data.data()), data.size()));
}

Status rename_dir_atomic(const std::string& from, const std::string& to) {
  std::error_code ec;
  std::string aside;
  // Replacing a directory: swap the two names in one step (Linux renameat2
  // RENAME_EXCHANGE), so that `to` names the old or the new directory at every moment;
  // the old one, now at `from`, is removed after. Where the file system cannot swap, the
  // old one is moved aside first (a crash then leaves it under "<to>.tmp.*.old").
  if (fs::exists(to, ec) &&
      ::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_EXCHANGE) == 0) {
    RETURN_IF_ERROR(fsync_path(parent_of(to), /*directory=*/true));
    fs::remove_all(from, ec);
    return OkStatus();
  }
  if (fs::exists(to, ec)) {
    aside = temp_sibling(to) + ".old";
    fs::rename(to, aside, ec);
    if (ec) return Internal("move aside {}: {}", to, ec.message());
  }
  fs::rename(from, to, ec);
  if (ec) {
    if (!aside.empty()) fs::rename(aside, to, ec);  // put the old one back
    return Internal("rename {} -> {}: {}", from, to, ec.message());
  }
  RETURN_IF_ERROR(fsync_path(parent_of(to), /*directory=*/true));
  if (!aside.empty()) fs::remove_all(aside, ec);
  return OkStatus();
}

StatusOr<std::string> read_file(const std::string& path, std::string_view what) {
  const std::string name = what.empty() ? path : fmt::format("{} '{}'", what, path);
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::error_code ec;
    if (!fs::exists(path, ec)) return NotFound("{}: no such file", name);
    return Internal("{}: cannot open for reading", name);
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return DataLoss("{}: read error", name);
  return ss.str();
}

StatusOr<std::string> read_token_file(const std::string& path) {
  ASSIGN_OR_RETURN(const std::string s, read_file(path, "token file"));
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return InvalidArgument("token file '{}' is empty", path);
  const auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

}  // namespace r1kit
