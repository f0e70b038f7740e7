// Atomic file writes: write to a temporary file beside the target, fsync it, rename it
// over the target, fsync the directory. A reader sees the old file or the new one,
// never a torn one; a crash leaves at most a stray "*.tmp.*" file.
//
// Every checkpoint file goes through here. Directories are made atomic the same way:
// build a temporary directory, then AtomicRenameDir it into place.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>

#include "core/status.h"

namespace r1kit {

// Writes `data` to `path` atomically. Creates missing parent directories.
Status write_file_atomic(const std::string& path, std::span<const uint8_t> data);
Status write_file_atomic(const std::string& path, std::string_view data);

// Streams content through `writer` (called with a FILE* open on the temporary file)
// and commits it atomically if `writer` returns ok; on error the temporary is removed.
Status write_file_atomic_with(const std::string& path,
                              const std::function<Status(std::FILE*)>& writer);

// Renames directory `from` to `to`, replacing an existing `to`: the two are swapped in
// one step (renameat2 RENAME_EXCHANGE) and the old one removed, so `to` exists at every
// moment; where the file system cannot swap, the old one is moved aside, then removed
// after the rename. fsyncs the parent.
Status rename_dir_atomic(const std::string& from, const std::string& to);

// Reads a whole file. NotFound if it does not exist. `what` names the file in errors
// ("--tls-cert '/x.pem': no such file"); empty: the path alone.
StatusOr<std::string> read_file(const std::string& path, std::string_view what = {});

// Reads a secret such as a bearer token: the file's contents without surrounding
// whitespace. NotFound when unreadable, InvalidArgument when empty.
StatusOr<std::string> read_token_file(const std::string& path);

// A unique temporary sibling path for `path`: "<path>.tmp.<pid>.<counter>".
std::string temp_sibling(const std::string& path);

}  // namespace r1kit
