#include "core/tensorboard.h"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "core/crc32c.h"

namespace r1kit {
namespace {

// Protobuf wire format: a field key is (field_number << 3) | wire_type.
void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
template <typename T>
void put_fixed(std::string& out, T v) {
  char buf[sizeof(T)];
  std::memcpy(buf, &v, sizeof(T));  // x86-64 and aarch64 are little-endian, as the format
  out.append(buf, sizeof(T));
}
void put_key(std::string& out, int field, int wire_type) {
  put_varint(out, (field << 3) | wire_type);
}
void put_bytes(std::string& out, int field, std::string_view bytes) {
  put_key(out, field, 2);
  put_varint(out, bytes.size());
  out.append(bytes);
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

// Event: wall_time = 1 (double), step = 2 (int64), file_version = 3 (string),
// summary = 5 (Summary). Summary: value = 1 (repeated Value). Value: tag = 1 (string),
// simple_value = 2 (float).
std::string encode_file_version_event(double wall_time) {
  std::string ev;
  put_key(ev, 1, 1);
  put_fixed(ev, wall_time);
  put_bytes(ev, 3, "brain.Event:2");
  return ev;
}

std::string encode_scalar_event(double wall_time, int64_t step,
                                const std::map<std::string, double>& values) {
  std::string summary;
  for (const auto& [tag, v] : values) {
    if (!std::isfinite(v)) continue;
    std::string value;
    put_bytes(value, 1, tag);
    put_key(value, 2, 5);
    put_fixed(value, static_cast<float>(v));
    put_bytes(summary, 1, value);
  }
  std::string ev;
  put_key(ev, 1, 1);
  put_fixed(ev, wall_time);
  put_key(ev, 2, 0);
  put_varint(ev, static_cast<uint64_t>(step));
  put_bytes(ev, 5, summary);
  return ev;
}

StatusOr<std::unique_ptr<TensorBoardWriter>> TensorBoardWriter::open(const std::string& log_dir) {
  std::error_code ec;
  std::filesystem::create_directories(log_dir, ec);
  if (ec) return Internal("create {}: {}", log_dir, ec.message());
  char host[256] = "localhost";
  gethostname(host, sizeof(host) - 1);
  auto w = std::unique_ptr<TensorBoardWriter>(new TensorBoardWriter());
  const double now = now_seconds();
  w->path_ = fmt::format("{}/events.out.tfevents.{}.{}.{}", log_dir, static_cast<int64_t>(now),
                         host, static_cast<int>(getpid()));
  w->file_ = std::fopen(w->path_.c_str(), "abe");  // e: O_CLOEXEC, never inherited
  if (!w->file_) return Internal("open {}: {}", w->path_, std::strerror(errno));
  RETURN_IF_ERROR(w->write_record(encode_file_version_event(now)));
  return w;
}

TensorBoardWriter::~TensorBoardWriter() {
  if (file_) std::fclose(file_);
}

Status TensorBoardWriter::write_record(const std::string& data) {
  std::string rec;
  std::string len;
  put_fixed(len, static_cast<uint64_t>(data.size()));
  rec += len;
  put_fixed(rec, masked_crc32c(len));
  rec += data;
  put_fixed(rec, masked_crc32c(data));
  if (std::fwrite(rec.data(), 1, rec.size(), file_) != rec.size() || std::fflush(file_) != 0)
    return Internal("write {}: {}", path_, std::strerror(errno));
  return OkStatus();
}

Status TensorBoardWriter::write_scalars(int64_t step, const std::map<std::string, double>& values) {
  return write_record(encode_scalar_event(now_seconds(), step, values));
}

}  // namespace r1kit
