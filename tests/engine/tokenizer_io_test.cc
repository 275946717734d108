// BpeTokenizer's text format: round trips (memory and file), rejection of malformed data with
// messages that name the line, and fuzzing of Deserialize and Encode with random bytes.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "engine/base/hash.h"
#include "engine/tokenizer/tokenizer.h"

namespace lanlm::engine {
namespace {

const char kCorpus[] =
    "In the beginning God created the heaven and the earth.\n"
    "And the earth was without form, and void; and darkness was upon the face of the deep.\n"
    "  tab\there, back\\slash, cr\r\n, bell\x07, del\x7f, héllo 日本語 🙂 a</w>b\n"
    "And God said, Let there be light: and there was light.  \n";

BpeTokenizer Sample() {
  auto t = BpeTokenizer::Train(kCorpus, 100);
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  return std::move(t).value();
}

TEST(TokenizerIoTest, SerializeDeserializeRoundTrip) {
  const BpeTokenizer t = Sample();
  const std::string data = t.Serialize();
  EXPECT_EQ(data.rfind("lanlm-bpe version=1 tokens=100 merges=", 0), 0u) << data.substr(0, 80);
  auto back = BpeTokenizer::Deserialize(data);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->Serialize(), data);
  EXPECT_EQ(back->Hash(), t.Hash());
  EXPECT_EQ(t.Hash(), Fnv1a64(data.data(), data.size() - kTokenizerChecksumLineBytes));  // without the crc line
  EXPECT_TRUE(back->checksummed());
  EXPECT_EQ(back->vocab_size(), t.vocab_size());
  for (const std::string& text : {std::string(kCorpus), std::string("the light of God\n"), std::string("\x01 xyz")}) {
    EXPECT_EQ(back->Encode(text), t.Encode(text));
  }
  for (int32_t id = 0; id < t.vocab_size(); ++id) EXPECT_EQ(back->TokenText(id), t.TokenText(id));
}

TEST(TokenizerIoTest, FileRoundTrip) {
  const BpeTokenizer t = Sample();
  const std::string path =
      (std::filesystem::temp_directory_path() / ("lanlm_tokenizer_io_test_" + std::to_string(::getpid()) + ".bpe"))
          .string();
  ASSERT_TRUE(t.SaveToFile(path).ok());
  auto back = BpeTokenizer::LoadFromFile(path);
  std::remove(path.c_str());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->Hash(), t.Hash());
  const auto missing = BpeTokenizer::LoadFromFile(path);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find(path), std::string::npos);
}

// The smallest valid file: base tokens for the alphabet {a, b} and one merge a + b = "ab".
const char kSmall[] =
    "lanlm-bpe version=1 tokens=11 merges=1\n"  // line 1
    "s <pad>\ns <unk>\ns <bos>\ns <eos>\n"      // lines 2-5
    "c \\n\n"                                   // line 6
    "c \\s\n"                                   // line 7
    "c a\nc b\ne a\ne b\n"                      // lines 8-11
    "c ab\n"                                    // line 12
    "6 7\n";                                    // line 13

std::string Replace(std::string s, const std::string& from, const std::string& to) {
  const size_t at = s.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return s.replace(at, from.size(), to);
}

void ExpectRejected(const std::string& data, const std::string& expected) {
  const auto t = BpeTokenizer::Deserialize(data);
  ASSERT_FALSE(t.ok()) << "accepted:\n" << data;
  EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(t.status().message().find(expected), std::string::npos)
      << "message: " << t.status().message() << "\nexpected to contain: " << expected;
}

TEST(TokenizerIoTest, SmallFileIsValid) {
  auto t = BpeTokenizer::Deserialize(kSmall);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->Encode("ab\nb "), (std::vector<int32_t>{10, 4, 9}));
  EXPECT_FALSE(t->checksummed());  // written before the checksum line existed
  const std::string again = t->Serialize();
  EXPECT_EQ(again.substr(0, again.size() - kTokenizerChecksumLineBytes), kSmall);
  auto checked = BpeTokenizer::Deserialize(again);
  ASSERT_TRUE(checked.ok()) << checked.status().ToString();
  EXPECT_TRUE(checked->checksummed());
}

TEST(TokenizerIoTest, RejectsMalformedDataNamingTheLine) {
  const std::string ok = kSmall;
  ExpectRejected("", "line 1: missing header");
  ExpectRejected("hello\n", "line 1: expected the header");
  ExpectRejected(Replace(ok, "version=1", "version=2"), "line 1: field 'version' = 2 is not supported");
  ExpectRejected(Replace(ok, "tokens=11", "tokens=abc"), "line 1: field 'tokens' = 'abc' is not an integer");
  ExpectRejected(Replace(ok, "tokens=11", "tokens=-3"), "line 1: field 'tokens'");
  ExpectRejected(Replace(ok, "tokens=11", "tokens=99999999999999999999"), "line 1: field 'tokens'");
  ExpectRejected(Replace(ok, "tokens=11", "tokens=1000000"), "line 1: tokens = 1000000 and merges = 1 need at least");
  ExpectRejected(Replace(ok, "merges=1", "merges=8000000"), "line 1: tokens = 11 and merges = 8000000 need");
  ExpectRejected(Replace(ok, "merges=1", "merges=2"), "line 14: missing merge 1");
  ExpectRejected(Replace(ok, " merges=1", ""), "line 1: expected the header");
  ExpectRejected(Replace(ok, "s <bos>", "s <xyz>"), "line 4: token 2 must be 's <bos>'");
  ExpectRejected(Replace(ok, "c a\n", "c \\q\n"), "line 8: token 6, field 'text': bad escape '\\\\q'");
  ExpectRejected(Replace(ok, "c a\n", "c \\x4\n"), "line 8: token 6, field 'text': bad escape");
  ExpectRejected(Replace(ok, "c a\n", "c a\\\n"), "line 8: token 6, field 'text': lone backslash");
  ExpectRejected(Replace(ok, "c a\n", "c a\tb\n"), "line 8: token 6, field 'text': raw byte \\x09");
  ExpectRejected(Replace(ok, "c a\n", "c \\xff\n"), "line 8: token 6, field 'text' '\\xff' is not valid UTF-8");
  ExpectRejected(Replace(ok, "c a\n", "x a\n"), "line 8: token 6, field 'kind' = 'x'");
  ExpectRejected(Replace(ok, "c a\n", "s a\n"), "only ids 0-3 are special");
  ExpectRejected(Replace(ok, "c a\n", "ca\n"), "line 8: token 6: expected '<kind> <text>'");
  ExpectRejected(Replace(ok, "c b\n", "c a\n"), "line 9: token 7 duplicates token 6 (line 8)");
  ExpectRejected(Replace(ok, "c a\n", "c a\\sb\n"), "line 8: token 6, field 'text' 'a\\sb': spaces and line breaks");
  ExpectRejected(Replace(ok, "6 7\n", "6 70\n"), "line 13: merge 0, field 'right' = '70' is not a token id in [0, 11)");
  ExpectRejected(Replace(ok, "6 7\n", "6\n"), "line 13: merge 0: expected '<left> <right>'");
  ExpectRejected(Replace(ok, "6 7\n", "7 6\n"), "line 13: merge 0: 'b' + 'a' = 'ba' is not a token");
  ExpectRejected(Replace(ok, "6 7\n", "8 7\n"), "line 13: merge 0, field 'left' = 8 ('a</w>') cannot be the left side");
  ExpectRejected(Replace(ok, "6 7\n", "2 7\n"), "line 13: merge 0, field 'left' = 2");
  ExpectRejected(Replace(ok, "6 7\n", "5 7\n"), "line 13: merge 0 joins spaces with non-spaces");
  ExpectRejected(Replace(Replace(ok, "merges=1", "merges=2"), "6 7\n", "6 7\n6 7\n"),
                 "line 14: merge 1 repeats merge 0");
  ExpectRejected(ok + "junk\n", "line 14: unexpected data after the last merge");
  ExpectRejected(ok.substr(0, ok.size() - 1), "line 13: truncated merge 0 (no line break");
  ExpectRejected(ok.substr(0, ok.size() - 2), "line 13: truncated merge 0");
  ExpectRejected(Replace(ok, "c \\s\n", "c \\t\n"), "no \" \" token");
}

// Issue 12: one flipped bit in a merge line, or two merges swapped, still parse as a valid
// tokenizer with other token ids; the checksum line refuses both. Files written before the line
// existed load, and say so.
TEST(TokenizerIoTest, ChecksumRefusesFlippedBitsAndReorderedMerges) {
  const BpeTokenizer t = Sample();
  const std::string data = t.Serialize();
  const size_t body = data.size() - kTokenizerChecksumLineBytes;
  ASSERT_EQ(data.compare(body, 7, "crc32c "), 0);
  int accepted = 0;
  for (size_t i = data.find('\n') + 1; i < body; ++i) {
    for (int bit = 0; bit < 8; bit += 3) {
      std::string bad = data;
      bad[i] = static_cast<char>(bad[i] ^ (1 << bit));
      accepted += BpeTokenizer::Deserialize(bad).ok() ? 1 : 0;
    }
  }
  EXPECT_EQ(accepted, 0);
  // Swap the last two merge lines.
  const size_t last = data.rfind('\n', body - 2) + 1;
  const size_t before = data.rfind('\n', last - 2) + 1;
  std::string swapped = data.substr(0, before) + data.substr(last, body - last) + data.substr(before, last - before) +
                        data.substr(body);
  ASSERT_EQ(swapped.size(), data.size());
  const auto refused = BpeTokenizer::Deserialize(swapped);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("checksum mismatch"), std::string::npos) << refused.status().ToString();

  const auto legacy = BpeTokenizer::Deserialize(data.substr(0, body));
  ASSERT_TRUE(legacy.ok()) << legacy.status().ToString();
  EXPECT_FALSE(legacy->checksummed());
  EXPECT_EQ(legacy->Hash(), t.Hash());
  EXPECT_EQ(legacy->Serialize(), data);  // written again, it carries the line
}

TEST(TokenizerIoTest, EveryTruncationIsRejected) {
  const std::string data = Sample().Serialize();
  const size_t body = data.size() - kTokenizerChecksumLineBytes;
  for (size_t cut = 0; cut < data.size(); cut += 1 + cut / 64) {
    if (cut == body) continue;  // a whole file without its checksum line: the older format
    const auto t = BpeTokenizer::Deserialize(data.substr(0, cut));
    EXPECT_FALSE(t.ok()) << "accepted a file cut at byte " << cut;
    if (!t.ok()) {
      EXPECT_EQ(t.status().message().rfind("tokenizer line ", 0), 0u) << t.status().message();
    }
  }
}

// Random bytes, and random corruptions of a valid file, never crash Deserialize; whatever is
// accepted encodes random bytes without crashing and decodes what it encodes. (No wall-clock
// bound: a hang is ctest's timeout, and every token covers at least one byte, so the ids are
// bounded by the text.)
TEST(TokenizerIoTest, FuzzDeserializeAndEncode) {
  const BpeTokenizer base = Sample();
  const std::string valid = base.Serialize();
  std::mt19937_64 rng(12345);
  auto random_bytes = [&](size_t n) {
    std::string s(n, '\0');
    for (char& c : s) c = static_cast<char>(rng() & 0xff);
    return s;
  };
  int accepted = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    std::string data;
    switch (trial % 3) {
      case 0:
        data = random_bytes(rng() % 200);
        break;
      case 1:
        data = valid;
        for (int k = 0; k < 1 + static_cast<int>(rng() % 4); ++k) data[rng() % data.size()] = static_cast<char>(rng());
        break;
      default:
        data = kSmall;
        data[rng() % data.size()] = "0123456789 \n\\abcsex"[rng() % 20];
        break;
    }
    const auto t = BpeTokenizer::Deserialize(data);
    if (!t.ok()) continue;
    ++accepted;
    const std::string text = random_bytes(rng() % 100);
    const auto ids = t->Encode(text);
    ASSERT_LE(ids.size(), text.size());
    for (const int32_t id : ids) ASSERT_TRUE(id >= 0 && id < t->vocab_size());
    (void)t->Decode(ids);
  }
  for (int trial = 0; trial < 2000; ++trial) {
    const std::string text = random_bytes(rng() % 300);
    const auto ids = base.Encode(text);
    ASSERT_LE(ids.size(), text.size());
    for (const int32_t id : ids) ASSERT_TRUE(id >= 0 && id < base.vocab_size());
  }
  EXPECT_GT(accepted, 0);  // some corruptions only change a token's text: still valid
}

}  // namespace
}  // namespace lanlm::engine
