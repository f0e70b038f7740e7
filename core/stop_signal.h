// Ctrl-C for long runs: while a StopSignalScope is alive, SIGINT and SIGTERM only set a
// flag (the handler does nothing else that is not async-signal-safe). The trainers check
// stop_requested() at every step boundary, write their normal atomic checkpoint and return
// as after train.stop_after / grpo.stop_after, so running the same command again resumes
// exactly. A second signal of the same kind ends the process at once (the default action).
//
//   StopSignalScope scope;                      // apps/: around one command
//   for (...) { step(); if (stop_requested()) { save(); return; } }
#pragma once

namespace r1kit {

class StopSignalScope {
 public:
  // Installs the handlers and clears any earlier request.
  StopSignalScope();
  // Restores the handlers that were there before.
  ~StopSignalScope();
  StopSignalScope(const StopSignalScope&) = delete;
  StopSignalScope& operator=(const StopSignalScope&) = delete;
};

// Whether a SIGINT or SIGTERM arrived while a scope was alive (and was not cleared).
bool stop_requested();
// The signal number that asked to stop; 0 when none.
int stop_signal();
// Forgets a request (a test that raised one, or a caller that handled it).
void clear_stop_request();

}  // namespace r1kit
