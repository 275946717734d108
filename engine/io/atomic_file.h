// WriteFileAtomically: replaces a file so that a reader (or a restart after a crash) sees
// either the complete old file or the complete new one, never a mix: write a temporary file
// "<path>.tmp" in the same folder, fsync it, rename it over <path>, fsync the folder.
// A stale temporary file left by a crash is simply overwritten by the next write.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/base/status.h"

namespace lanlm::engine {

// The temporary file name used for `path`.
std::string TempPathFor(const std::string& path);

// Writes the concatenation of `pieces` to `path` atomically. `before_rename`, when set, is
// called with the temporary path after it is written and synced, before the rename (tests
// use it to simulate a crash at the worst moment). On error the temporary file is removed
// and `path` is untouched. Errors name the path and the failing system call.
Status WriteFileAtomically(const std::string& path, const std::vector<std::string_view>& pieces,
                           const std::function<void(const std::string&)>& before_rename = nullptr);

// Creates folder `dir` (and its parents) when missing, then proves files can be written in it
// by creating, syncing and removing a probe file: a run checks its checkpoint folder before
// training rather than losing hours of work at the first checkpoint. FAILED_PRECONDITION
// names `flag` and the folder (not a folder, read-only, full disk, ...).
Status PrepareWritableDir(const std::string& dir, const std::string& flag);

}  // namespace lanlm::engine
