// Test helpers for tasks: a task section from YAML text, as a recipe's `task:` binds it.
#pragma once

#include <gtest/gtest.h>

#include <string_view>

#include "core/config.h"
#include "data/task_source.h"

namespace r1kit::data {

// The section `yaml` describes ("{name: countdown, max_numbers: 5}"); a failed test and
// the default section when it does not bind.
inline TaskSection task_section(std::string_view yaml) {
  StatusOr<TaskSection> s = load_config_string<TaskSection>(yaml, {}, "task");
  EXPECT_TRUE(s.ok()) << s.status().to_string();
  return s.ok() ? *s : TaskSection{};
}

}  // namespace r1kit::data
