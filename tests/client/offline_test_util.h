// Shared helpers of the offline command tests: run a command entry point in-process with
// stdout/stderr captured, pull key=value fields out of its output (scratch folders and the
// Genesis text: tests/support).
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "client/commands.h"
#include "tests/support/temp_dir.h"
#include "tests/support/tiny.h"

namespace lanlm::client::testing_util {

struct CommandResult {
  int code = -1;
  std::string out;
  std::string err;
};

inline CommandResult RunCommand(const std::function<int(const Args&)>& command, const Args& args) {
  CommandResult r;
  testing::internal::CaptureStdout();
  testing::internal::CaptureStderr();
  r.code = command(args);
  std::fflush(stdout);
  std::fflush(stderr);
  r.out = testing::internal::GetCapturedStdout();
  r.err = testing::internal::GetCapturedStderr();
  return r;
}

// The value of `key=` in the last line that has it ("" if none).
inline std::string Field(const std::string& text, const std::string& key) {
  std::regex re("(^|\\s)" + key + "=(\\S+)");
  std::string found;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    std::smatch m;
    if (std::regex_search(line, m, re)) found = m[2];
  }
  return found;
}


using test_support::GenesisPath;
using test_support::Slurp;
using test_support::ScratchDir;

}  // namespace lanlm::client::testing_util
