// TensorBoard event files: scalars written so that `tensorboard --logdir RUN_DIR` plots
// them, without TensorFlow or protobuf.
//
// Follows TensorFlow's record format (tensorflow/core/lib/io/record_writer.cc): each
// record is [uint64 length][uint32 masked crc32c of length][data][uint32 masked crc32c of
// data] (core/crc32c.h), little-endian; the data is a serialized tensorflow.Event. The first event
// carries file_version "brain.Event:2"; every scalar is an Event{wall_time, step,
// summary{value{tag, simple_value}}}. The few protobuf fields needed are encoded by
// hand (tags and varints), which is all the wire format asks for.
//
// Not thread-safe: one writer per training thread.
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "core/status.h"

namespace r1kit {

class TensorBoardWriter {
 public:
  // Creates `log_dir` and a new file events.out.tfevents.<unix seconds>.<host>.<pid> in it.
  static StatusOr<std::unique_ptr<TensorBoardWriter>> open(const std::string& log_dir);
  ~TensorBoardWriter();

  // One event with a scalar per entry (non-finite values are skipped), flushed.
  Status write_scalars(int64_t step, const std::map<std::string, double>& values);
  const std::string& path() const { return path_; }

 private:
  Status write_record(const std::string& data);
  std::FILE* file_ = nullptr;  // owned
  std::string path_;
};

// Serialized tensorflow.Event protos (exposed for tests).
std::string encode_file_version_event(double wall_time);
std::string encode_scalar_event(double wall_time, int64_t step,
                                const std::map<std::string, double>& values);

}  // namespace r1kit
