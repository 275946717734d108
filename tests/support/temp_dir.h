// Temporary folders for tests: ScratchDir (a fresh folder per test, removed at the end) and
// TestTempDir (a fresh folder named after the running test that stays for inspection); Slurp
// and Spit read and write the files in them.
#pragma once

#include <string>

namespace lanlm::test_support {

// A fresh folder named after the running test (or `name` outside a test, e.g. in
// SetUpTestSuite), removed when the object goes.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& name = "");
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// <gtest temp dir>/lanlm_tests/<suite>.<test>.<name>, emptied first; kept after the test.
std::string TestTempDir(const std::string& name);

// The bytes of the file at path ("" when it cannot be read).
std::string Slurp(const std::string& path);
// Replaces the file at path with data.
void Spit(const std::string& path, const std::string& data);

}  // namespace lanlm::test_support
