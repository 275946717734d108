// Reading a UTF-8 text file and turning it into a tokenized train/validation corpus.
// (SampleShard, the data sampler, lives in shard_sampler.cc.)
#include "engine/data/corpus.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "engine/base/hash.h"
#include "engine/base/utf8.h"

namespace lanlm::engine {
namespace {

// Far above any corpus this system trains on; keeps a mistaken path (a disk image, /dev/zero)
// from exhausting memory.
constexpr int64_t kMaxTextBytes = int64_t{2} << 30;

}  // namespace

StatusOr<std::string> ReadTextFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) return NotFoundError("text file " + path + " does not exist");
    return UnavailableError("cannot open text file " + path + ": " + std::strerror(err));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return InvalidArgumentError("text file " + path + " is not a regular file");
  }
  if (st.st_size > kMaxTextBytes) {
    ::close(fd);
    return InvalidArgumentError("text file " + path + " is " + std::to_string(st.st_size) +
                                " bytes, more than the limit of " + std::to_string(kMaxTextBytes));
  }
  std::string text(static_cast<size_t>(st.st_size), '\0');
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::read(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return UnavailableError("cannot read text file " + path + ": " + std::strerror(err));
    }
    if (n == 0) break;  // the file shrank while we read it
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  text.resize(done);
  if (text.empty()) return InvalidArgumentError("text file " + path + " is empty");
  size_t bad = 0;
  if (!IsValidUtf8(text, &bad)) {
    int64_t line = 1;
    for (size_t i = 0; i < bad; ++i) line += text[i] == '\n';
    char byte[8];
    std::snprintf(byte, sizeof(byte), "0x%02x", static_cast<unsigned char>(text[bad]));
    return InvalidArgumentError("text file " + path + " is not valid UTF-8: byte " + byte + " at offset " +
                                std::to_string(bad) + " (line " + std::to_string(line) + ")");
  }
  return text;
}

StatusOr<Corpus> LoadCorpus(const std::string& path, const BpeTokenizer& tokenizer, double validation_fraction) {
  // -ffast-math may rewrite a range test so that NaN passes it; test the exponent bits first.
  uint64_t bits;
  std::memcpy(&bits, &validation_fraction, sizeof(bits));
  const bool finite = (bits & 0x7ff0000000000000ull) != 0x7ff0000000000000ull;
  if (!finite || validation_fraction < 0.0 || validation_fraction > 0.5) {
    return InvalidArgumentError("validation_fraction = " + std::to_string(validation_fraction) +
                                " is outside [0, 0.5]");
  }
  LANLM_ASSIGN_OR_RETURN(std::string text, ReadTextFile(path));
  std::vector<int32_t> tokens = tokenizer.Encode(text);
  const auto n = static_cast<int64_t>(tokens.size());
  if (n < 2) {
    return InvalidArgumentError("text file " + path + " encodes to " + std::to_string(n) +
                                " tokens; a corpus needs at least 2");
  }
  const auto n_val = static_cast<int64_t>(static_cast<double>(n) * validation_fraction);
  Corpus corpus;
  corpus.text_bytes = static_cast<int64_t>(text.size());
  corpus.hash = Fnv1a64(tokens.data(), tokens.size() * sizeof(int32_t));
  corpus.validation.assign(tokens.end() - n_val, tokens.end());
  tokens.resize(static_cast<size_t>(n - n_val));
  corpus.train = std::move(tokens);
  return corpus;
}

}  // namespace lanlm::engine
