// PromtoolCheck: runs `promtool check metrics` (Debian's prometheus package) on a metrics
// text and returns its verdict; tests skip with a message when promtool is absent.
#pragma once

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace lanlm::testing {

struct PromtoolResult {
  bool available = false;
  int exit_code = -1;
  std::string output;  // promtool's complaints (stdout and stderr)
};

inline bool HavePromtool() { return std::system("command -v promtool >/dev/null 2>&1") == 0; }

inline PromtoolResult PromtoolCheck(const std::string& metrics_text) {
  PromtoolResult result;
  if (!HavePromtool()) return result;
  result.available = true;
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("lanlm-promtool-" + std::to_string(getpid()) + ".txt")).string();
  std::ofstream(path, std::ios::binary) << metrics_text;
  FILE* pipe = popen(("promtool check metrics < " + path + " 2>&1").c_str(), "r");
  char buf[512];
  while (pipe != nullptr && std::fgets(buf, sizeof(buf), pipe) != nullptr) result.output += buf;
  const int status = pipe == nullptr ? -1 : pclose(pipe);
  result.exit_code = status < 0 ? -1 : WEXITSTATUS(status);
  std::filesystem::remove(path);
  return result;
}

}  // namespace lanlm::testing
