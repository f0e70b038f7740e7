#include "core/stop_signal.h"

#include <signal.h>
#include <unistd.h>

#include <csignal>

namespace r1kit {
namespace {

volatile std::sig_atomic_t g_stop_signal = 0;
struct sigaction g_old_int, g_old_term;

void on_stop_signal(int sig) {
  g_stop_signal = sig;
  static const char kMsg[] =
      "\nr1kit: stopping after this step with a checkpoint (again to quit at once)\n";
  // write(2) is async-signal-safe; its result does not matter here.
  [[maybe_unused]] ssize_t n = ::write(STDERR_FILENO, kMsg, sizeof(kMsg) - 1);
}

}  // namespace

StopSignalScope::StopSignalScope() {
  g_stop_signal = 0;
  struct sigaction sa = {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESETHAND;  // a second signal takes the default action
  sigaction(SIGINT, &sa, &g_old_int);
  sigaction(SIGTERM, &sa, &g_old_term);
}

StopSignalScope::~StopSignalScope() {
  sigaction(SIGINT, &g_old_int, nullptr);
  sigaction(SIGTERM, &g_old_term, nullptr);
}

bool stop_requested() {
  return g_stop_signal != 0;
}

int stop_signal() {
  return static_cast<int>(g_stop_signal);
}

void clear_stop_request() {
  g_stop_signal = 0;
}

}  // namespace r1kit
