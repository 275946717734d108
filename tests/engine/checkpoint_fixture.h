// The checkpoint suites' shared fixture: a real tokenizer and a checkpoint whose values catch
// any conversion, saved once per test, with helpers to load edited copies of its bytes.
// Used by checkpoint_test.cc (round trips, format) and checkpoint_reject_test.cc (damage).
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>

#include "engine/base/hash.h"
#include "engine/io/checkpoint.h"
#include "engine/io/json.h"
#include "engine/model/parameters.h"
#include "engine/tokenizer/tokenizer.h"
#include "tests/support/temp_dir.h"
#include "tests/support/tiny.h"

namespace lanlm::engine::checkpoint_testing {

// A real tokenizer whose serialised text holds quotes, a backslash, a tab and non-ASCII
// characters, so the JSON escaping of the metadata is exercised.
inline const BpeTokenizer& TinyTokenizer() {
  static const BpeTokenizer tokenizer =
      BpeTokenizer::Train("say \"hi\" \\ to\tthe caf\xc3\xa9 \xe2\x82\xac\nthe the cat cat sat sat\n", 48).value();
  return tokenizer;
}

inline ModelConfig TinyConfig() {
  return test_support::TinyConfig({.vocab = TinyTokenizer().vocab_size(), .context = 8});
}

// Values chosen to catch any conversion: signed zero, denormals, extremes, non-round numbers.
inline float Value(int64_t i, int block) {
  static const float special[] = {-0.0f, 1e-45f, -3.4e38f, 3.4e38f, 1.17549e-38f};
  if (i < 5 && block == 0) return special[i];
  return static_cast<float>((i * 7919 + block * 104729) % 20011) / 997.0f - 10.0f;
}

inline Checkpoint MakeCheckpoint(bool moments) {
  Checkpoint c;
  c.config = TinyConfig();
  c.step = 123;
  c.seed = 18446744073709551615ull;
  c.training = {{"lr", "0.001"}, {"shards", "4"}, {"weird \"key\"", "line1\nline2 \xc3\xa9"}};
  c.tokenizer = TinyTokenizer().Serialize();
  const int64_t n = ParameterCount(c.config);
  for (int64_t i = 0; i < n; ++i) c.params.push_back(Value(i, 0));
  if (moments) {
    c.corpus_hash = 0xfedcba9876543210ull;  // a training checkpoint records its corpus
    for (int64_t i = 0; i < n; ++i) c.adam_m.push_back(Value(i, 1));
    for (int64_t i = 0; i < n; ++i) c.adam_v.push_back(std::abs(Value(i, 2)));
  }
  return c;
}

inline std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void Spit(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
}

// An independent implementation of the metadata checksum (CRC32C over key-sorted,
// length-prefixed keys and values, skipping metadata_crc32c).
inline std::string MetadataCrc(const JsonValue& meta) {
  std::map<std::string, std::string> sorted;
  for (const auto& [k, v] : meta.members()) {
    if (k != "metadata_crc32c") sorted[k] = v.string();
  }
  std::string bytes;
  auto add = [&](const std::string& s) {
    const uint64_t n = s.size();
    bytes.append(reinterpret_cast<const char*>(&n), 8);
    bytes += s;
  };
  for (const auto& [k, v] : sorted) {
    add(k);
    add(v);
  }
  char hex[9];
  std::snprintf(hex, sizeof(hex), "%08x", Crc32c(bytes.data(), bytes.size()));
  return hex;
}

inline bool SameBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

class CheckpointTest : public testing::Test {
 public:
  void SetUp() override {
    dir_ = scratch_.path();
    good_ = dir_ + "/good.safetensors";
    ASSERT_TRUE(SaveCheckpoint(good_, MakeCheckpoint(true)).ok());
    bytes_ = Slurp(good_);
    std::memcpy(&header_len_, bytes_.data(), 8);
    header_ = bytes_.substr(8, header_len_);
  }

  // Writes `data` to a fresh file and returns the load error message ("" if it loaded).
  std::string LoadError(const std::string& data) {
    const std::string path = dir_ + "/bad.safetensors";
    Spit(path, data);
    auto c = LoadCheckpoint(path);
    return c.ok() ? "" : c.status().message();
  }
  // The file with its header replaced by `header` (length field updated, padding kept 8-aligned).
  std::string WithHeader(std::string header) {
    header.append((8 - header.size() % 8) % 8, ' ');
    std::string out(8, '\0');
    const uint64_t n = header.size();
    std::memcpy(out.data(), &n, 8);
    return out + header + bytes_.substr(8 + header_len_);
  }
  std::string Replace(const std::string& from, const std::string& to) {
    std::string h = header_;
    const size_t at = h.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    if (at != std::string::npos) h.replace(at, from.size(), to);
    return WithHeader(h);
  }

  test_support::ScratchDir scratch_;
  std::string dir_, good_, bytes_, header_;
  uint64_t header_len_ = 0;
};

}  // namespace lanlm::engine::checkpoint_testing
