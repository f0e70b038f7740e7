#include "core/logging.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <cstdlib>
#include <string>

namespace r1kit {

void set_log_level(std::string_view level) {
  auto lvl = spdlog::level::from_str(std::string(level));
  if (lvl == spdlog::level::off && level != "off") lvl = spdlog::level::info;
  spdlog::set_level(lvl);
}

void init_logging() {
  // Logs go to stderr so that stdout stays clean for JSON output (model logits, scores).
  auto logger = spdlog::stderr_color_mt("r1kit");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("[%H:%M:%S.%e] [%^%l%$] %v");
  const char* env = std::getenv("R1KIT_LOG_LEVEL");
  set_log_level(env ? env : "info");
}

}  // namespace r1kit
