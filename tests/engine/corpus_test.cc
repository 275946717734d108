// Tests of ReadTextFile and LoadCorpus: clear errors for bad files and fractions, and a split
// that is exactly the tokenizer's encoding cut at floor(n * validation_fraction) from the end.
#include "engine/data/corpus.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <limits>

#include "engine/base/hash.h"
#include "tests/support/temp_dir.h"

namespace lanlm::engine {
namespace {

class CorpusTest : public testing::Test {
 protected:
  std::string Write(const std::string& name, const std::string& data) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary) << data;
    return path;
  }
  test_support::ScratchDir scratch_;
  const std::string dir_ = scratch_.path();
};

TEST_F(CorpusTest, ReadTextFileErrors) {
  auto missing = ReadTextFile(dir_ + "/missing.txt");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(missing.status().message(), "text file " + dir_ + "/missing.txt does not exist");
  EXPECT_EQ(ReadTextFile(Write("empty.txt", "")).status().message(), "text file " + dir_ + "/empty.txt is empty");
  EXPECT_NE(ReadTextFile(dir_).status().message().find("is not a regular file"), std::string::npos);
  auto bad = ReadTextFile(Write("latin1.txt", "line one\nna\xefve caf\xe9\n"));
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("is not valid UTF-8: byte 0xef at offset 11 (line 2)"), std::string::npos)
      << bad.status().message();
  auto good = ReadTextFile(Write("utf8.txt", "caf\xc3\xa9\r\n"));
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(*good, "caf\xc3\xa9\r\n");
}

TEST_F(CorpusTest, SplitIsTheEncodingCutFromTheEnd) {
  std::string text;
  for (int i = 0; i < 40; ++i) text += "the quick brown fox " + std::to_string(i % 7) + " jumps over the lazy dog\n";
  auto tok = BpeTokenizer::Train(text, 150);
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  const std::string path = Write("fox.txt", text);
  const std::vector<int32_t> all = tok->Encode(text);
  const auto n = static_cast<int64_t>(all.size());
  for (double f : {0.0, 0.05, 0.1, 0.5}) {
    auto c = LoadCorpus(path, *tok, f);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    const auto n_val = static_cast<int64_t>(static_cast<double>(n) * f);
    EXPECT_EQ(static_cast<int64_t>(c->validation.size()), n_val) << f;
    std::vector<int32_t> joined = c->train;
    joined.insert(joined.end(), c->validation.begin(), c->validation.end());
    EXPECT_EQ(joined, all);
    EXPECT_EQ(c->text_bytes, static_cast<int64_t>(text.size()));
    EXPECT_EQ(c->hash, Fnv1a64(all.data(), all.size() * sizeof(int32_t)));
  }
}

TEST_F(CorpusTest, RejectsFractionsOutsideTheRange) {
  auto tok = BpeTokenizer::Train("abc abc abd\n", 40);
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  const std::string path = Write("a.txt", "abc abc abd\n");
  for (double f : {-0.01, 0.51, 1.0, std::numeric_limits<double>::quiet_NaN()}) {
    auto c = LoadCorpus(path, *tok, f);
    ASSERT_FALSE(c.ok()) << f;
    EXPECT_NE(c.status().message().find("is outside [0, 0.5]"), std::string::npos) << c.status().message();
  }
  EXPECT_EQ(LoadCorpus(dir_ + "/nope.txt", *tok, 0.1).status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace lanlm::engine
