// Placeholder until the subcommand lands.
#include "apps/commands.h"

namespace r1kit::apps {
void add_model_command(CLI::App& root, int* exit_code) {}
}  // namespace r1kit::apps
