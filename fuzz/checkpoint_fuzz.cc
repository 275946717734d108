// libFuzzer target: the checkpoint loader (LoadCheckpoint) on arbitrary file contents. The
// bytes go to a file in a private temporary folder (the loader's only entry point is a
// path). A checkpoint that loads must hold consistent sizes.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "engine/base/check.h"
#include "engine/io/checkpoint.h"
#include "engine/model/parameters.h"

namespace {

// A private folder, on /dev/shm when there is one (no disk writes per input).
const std::string& FilePath() {
  static const std::string path = [] {
    std::string tmpl = access("/dev/shm", W_OK) == 0 ? "/dev/shm/lanlm-fuzz-XXXXXX" : "/tmp/lanlm-fuzz-XXXXXX";
    LANLM_CHECK(mkdtemp(tmpl.data()) != nullptr, "mkdtemp failed");
    const std::string dir = tmpl;
    std::atexit([] { std::remove(FilePath().c_str()); rmdir(FilePath().substr(0, FilePath().rfind('/')).c_str()); });
    return dir + "/input.safetensors";
  }();
  return path;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = FilePath();
  std::FILE* f = std::fopen(path.c_str(), "wb");
  LANLM_CHECK(f != nullptr, "cannot write " + path);
  LANLM_CHECK(std::fwrite(data, 1, size, f) == size, "short write to " + path);
  std::fclose(f);
  auto checkpoint = lanlm::engine::LoadCheckpoint(path);
  if (!checkpoint.ok()) return 0;
  const auto n = static_cast<size_t>(lanlm::engine::ParameterCount(checkpoint->config));
  LANLM_CHECK(checkpoint->params.size() == n, "loaded parameters do not match the config");
  LANLM_CHECK(checkpoint->adam_m.size() == checkpoint->adam_v.size(), "loaded moments differ in size");
  LANLM_CHECK(checkpoint->adam_m.empty() || checkpoint->adam_m.size() == n, "loaded moments do not match the config");
  return 0;
}
