// Logging: a thin layer over spdlog so the rest of r1kit names one logger.
//
// R1_LOG(info, "step {} loss {:.4f}", step, loss). Levels: trace, debug, info, warn,
// error. The level comes from R1KIT_LOG_LEVEL or set_log_level(). Thread-safe.
#pragma once

#include <spdlog/spdlog.h>

#include <string_view>

namespace r1kit {

// Sets the global level by name ("debug", "info", ...). Unknown names keep "info".
void set_log_level(std::string_view level);
// Called once by main: stderr sink, pattern, level from R1KIT_LOG_LEVEL.
void init_logging();

}  // namespace r1kit

#define R1_LOG(level, ...) ::spdlog::level(__VA_ARGS__)
