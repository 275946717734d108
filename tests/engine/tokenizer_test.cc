// BpeTokenizer encoding and decoding: round trips, merges applied by rank on a hand-worked
// example, unknown characters and invalid UTF-8, special tokens, and space runs.
#include "engine/tokenizer/tokenizer.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "engine/base/utf8.h"

namespace lanlm::engine {
namespace {

using Ids = std::vector<int32_t>;

BpeTokenizer TrainOrDie(std::string_view text, int vocab_size) {
  auto t = BpeTokenizer::Train(text, vocab_size);
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  return std::move(t).value();
}

// Covers every character the round-trip strings use.
const char kMixedCorpus[] =
    "héllo wörld 日本語 🙂 and the quick brown fox jumps over the lazy dog.\n"
    "THE QUICK BROWN FOX, 0123456789!\t tabs\tand  double  spaces   \n\n"
    "  leading and trailing  \r\n"
    "the the the then there these hello hello world world\n";

TEST(TokenizerTest, RoundTripsTextOfKnownCharacters) {
  const BpeTokenizer t = TrainOrDie(kMixedCorpus, 200);
  const std::vector<std::string> texts = {
      "",
      " ",
      "  ",
      "\n",
      "\n\n",
      "a",
      "a ",
      " a",
      "a  b",
      "a   b  ",
      "hello world",
      "the end",
      "ends without a space",
      "\ttab\t",
      "héllo wörld 日本語 🙂",
      "🙂🙂 🙂",
      "line one\nline two\n",
      " \n \n",
      "x\r\ny",
      "THE  QUICK\t\n",
  };
  for (const std::string& text : texts) {
    const Ids ids = t.Encode(text);
    EXPECT_EQ(t.Decode(ids), text) << "text '" << text << "'";
    for (const int32_t id : ids) EXPECT_NE(id, kUnkId) << "text '" << text << "'";
  }
  EXPECT_TRUE(t.Encode("").empty());
}

TEST(TokenizerTest, RoundTripsRandomTextOverTheAlphabet) {
  const BpeTokenizer t = TrainOrDie(kMixedCorpus, 150);
  const std::vector<std::string> pieces = {"a",  "b",  "e", "h",  "t",    " ",   " ",
                                           "\n", "\t", "é", "日", "🙂", "the", "  "};
  std::mt19937 rng(7);
  for (int trial = 0; trial < 300; ++trial) {
    std::string text;
    const int len = static_cast<int>(rng() % 40);
    for (int i = 0; i < len; ++i) text += pieces[rng() % pieces.size()];
    EXPECT_EQ(t.Decode(t.Encode(text)), text) << "text '" << text << "'";
  }
}

// Hand-worked: "aaab aaab ab\n" has words [a a a b</w>] x2 and [a b] x1. Ids: 4 "\n", 5 " ",
// 6 a, 7 b, 8 a</w>, 9 b</w>. Pair counts: (a,a) 4, (a,b</w>) 2, (a,b) 1.
//   merge 0: (6,6) -> 10 "aa";        words become [aa a b</w>]: (10,6) 2, (6,9) 2
//   merge 1: (6,9) -> 11 "ab</w>"     (tie at 2: the smaller left id wins)
//   merge 2: (10,11) -> 12 "aaab</w>"; then (a,b) occurs once: training stops.
TEST(TokenizerTest, AppliesMergesByRankOnHandWorkedExample) {
  const BpeTokenizer t = TrainOrDie("aaab aaab ab\n", 100);
  ASSERT_EQ(t.vocab_size(), 13);
  EXPECT_EQ(t.TokenText(6), "a");
  EXPECT_EQ(t.TokenText(9), "b ");
  EXPECT_EQ(t.TokenText(10), "aa");
  EXPECT_EQ(t.TokenText(11), "ab ");
  EXPECT_EQ(t.TokenText(12), "aaab ");
  // "aaab " -> [12]; "ab " -> [11]; "aaab" before "\n" -> [aa a b]; "aaaa" -> [aa aa]
  // (rank 0 applies leftmost first, so the middle pair never merges).
  const std::string text = "aaab ab aaab\naaaa";
  const Ids expected = {12, 11, 10, 6, 7, 4, 10, 10};
  EXPECT_EQ(t.Encode(text), expected);
  EXPECT_EQ(t.Decode(expected), text);
}

TEST(TokenizerTest, UnknownCharactersAndInvalidBytesBecomeUnk) {
  const BpeTokenizer t = TrainOrDie("aaab aaab ab\n", 100);
  EXPECT_EQ(t.Encode("abc"), (Ids{6, 7, kUnkId}));
  // The space after a word that ends in an unknown character survives as a " " token.
  EXPECT_EQ(t.Encode("ac b"), (Ids{6, kUnkId, 5, 7}));
  EXPECT_EQ(t.Decode(t.Encode("ac b")), "a b");
  EXPECT_EQ(t.Encode(std::string("a\xff") + "b"), (Ids{6, kUnkId, 7}));
  // Each byte of a broken sequence is one <unk>: a truncated 3-byte sequence, an overlong
  // '/', a surrogate, and a lone continuation byte.
  EXPECT_EQ(t.Encode("\xe6\x97"), (Ids{kUnkId, kUnkId}));
  EXPECT_EQ(t.Encode("\xc0\xaf"), (Ids{kUnkId, kUnkId}));
  EXPECT_EQ(t.Encode("\xed\xa0\x80"), (Ids{kUnkId, kUnkId, kUnkId}));
  EXPECT_EQ(t.Encode("\x80"), (Ids{kUnkId}));
  EXPECT_EQ(t.Encode("日"), (Ids{kUnkId}));
}

TEST(TokenizerTest, SpecialTokensHaveFixedIdsAndDecodeToNothing) {
  const BpeTokenizer t = TrainOrDie("aaab aaab ab\n", 100);
  EXPECT_EQ(kPadId, 0);
  EXPECT_EQ(kUnkId, 1);
  EXPECT_EQ(kBosId, 2);
  EXPECT_EQ(kEosId, 3);
  for (const int32_t id : {kPadId, kUnkId, kBosId, kEosId}) EXPECT_EQ(t.TokenText(id), "");
  EXPECT_EQ(t.TokenText(4), "\n");
  EXPECT_EQ(t.TokenText(5), " ");
  // Ids outside the vocabulary decode to nothing instead of crashing.
  const Ids ids = {kBosId, 6, -1, 7, 1000000, kEosId, t.vocab_size()};
  EXPECT_EQ(t.Decode(ids), "ab");
  EXPECT_EQ(t.TokenText(-5), "");
}

TEST(TokenizerTest, RunsOfSpacesMerge) {
  // "x" consumes one space as "</w>"; the remaining "   " is a space word, three times.
  const BpeTokenizer t = TrainOrDie("x    x    x    x\n", 100);
  const Ids ids = t.Encode("x    x");
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(t.TokenText(ids[0]), "x ");
  EXPECT_EQ(t.TokenText(ids[1]), "   ");
  EXPECT_EQ(t.TokenText(ids[2]), "x");
  EXPECT_EQ(t.Decode(t.Encode("      x  ")), "      x  ");
}

TEST(TokenizerTest, TextThatSpellsTheEndOfWordMarkerStaysDistinct) {
  const std::string corpus = "a</w> a</w> a</w> a a a\n";
  const BpeTokenizer t = TrainOrDie(corpus, 100);
  EXPECT_EQ(t.Decode(t.Encode(corpus)), corpus);
  EXPECT_EQ(t.Decode(t.Encode("a</w>a a</w>")), "a</w>a a</w>");
}

TEST(TokenizerTest, TrainingIsDeterministic) {
  std::string text;
  std::mt19937 rng(3);
  const std::vector<std::string> words = {"the", "then", "there", "a", "an", "and", "sand", "hand", "日本", "é"};
  for (int i = 0; i < 3000; ++i) text += words[rng() % words.size()] + (rng() % 9 == 0 ? "\n" : " ");
  const std::string first = TrainOrDie(text, 80).Serialize();
  for (int run = 0; run < 3; ++run) EXPECT_EQ(TrainOrDie(text, 80).Serialize(), first);
}

TEST(TokenizerTest, TrainRejectsVocabularySizesOutsideTheLimits) {
  // Alphabet {a, b}: 4 special + "\n" + " " + 2 x 2 characters = 10 base tokens.
  const auto small = BpeTokenizer::Train("ab ab\n", 9);
  ASSERT_FALSE(small.ok());
  EXPECT_EQ(small.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(small.status().message().find("vocab_size = 9 is below the 10 base tokens"), std::string::npos)
      << small.status().message();
  EXPECT_TRUE(BpeTokenizer::Train("ab ab\n", 10).ok());
  const auto big = BpeTokenizer::Train("ab", (1 << 20) + 1);
  ASSERT_FALSE(big.ok());
  EXPECT_NE(big.status().message().find("exceeds kMaxVocab"), std::string::npos);
}

TEST(TokenizerTest, TrainingStopsWhenNoPairRepeats) {
  const BpeTokenizer t = TrainOrDie("abc", 1000);
  EXPECT_EQ(t.vocab_size(), 4 + 2 + 2 * 3);
  const BpeTokenizer empty = TrainOrDie("", 100);
  EXPECT_EQ(empty.vocab_size(), 6);
  EXPECT_EQ(empty.Decode(empty.Encode(" \n  \n")), " \n  \n");
  EXPECT_EQ(empty.Encode("a"), (Ids{kUnkId}));
}

TEST(TokenizerTest, ReachesTheRequestedVocabularySize) {
  std::string text;
  std::mt19937 rng(11);
  for (int i = 0; i < 20000; ++i) {
    const int len = 1 + static_cast<int>(rng() % 7);
    for (int j = 0; j < len; ++j) text += static_cast<char>('a' + rng() % 6);
    text += ' ';
  }
  const BpeTokenizer t = TrainOrDie(text, 300);
  EXPECT_EQ(t.vocab_size(), 300);
  EXPECT_EQ(t.Decode(t.Encode(text)), text);
  EXPECT_LT(t.Encode(text).size(), text.size() / 2);  // merges compress random words: over 2 bytes an id
}

TEST(TokenizerTest, TrainingOnArbitraryBytesNeverCrashes) {
  std::mt19937 rng(5);
  for (int trial = 0; trial < 20; ++trial) {
    std::string text(2000 + rng() % 3000, '\0');
    // Mostly a few ASCII letters and spaces (so pairs repeat), plus random bytes.
    for (char& c : text) c = static_cast<char>(rng() % 4 == 0 ? rng() & 0xff : " abc\n"[rng() % 5]);
    auto t = BpeTokenizer::Train(text, 600);
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    const Ids ids = t->Encode(text);
    for (const int32_t id : ids) ASSERT_TRUE(id >= 0 && id < t->vocab_size());
    // Every valid character was seen in training, so only the invalid bytes (each one <unk>,
    // decoded as nothing) are missing after a round trip; spaces after them survive.
    std::string valid_only;
    for (size_t i = 0; i < text.size();) {
      uint32_t cp = 0;
      const int len = Utf8Decode(reinterpret_cast<const unsigned char*>(text.data() + i), text.size() - i, &cp);
      if (len > 0) valid_only.append(text, i, static_cast<size_t>(len));
      i += len > 0 ? static_cast<size_t>(len) : 1;
    }
    EXPECT_EQ(t->Decode(ids), valid_only);
    auto back = BpeTokenizer::Deserialize(t->Serialize());
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(back->Encode(text), ids);
  }
}

TEST(TokenizerTest, LongWordsEncodeQuickly) {
  // One 200 KB word with no space: heap-ordered merging keeps this near-linear.
  const BpeTokenizer t = TrainOrDie("aaab aaab ab\n", 100);
  const std::string word(200000, 'a');
  const Ids ids = t.Encode(word);
  EXPECT_EQ(ids.size(), 100000u);
  EXPECT_EQ(t.Decode(ids), word);
}

}  // namespace
}  // namespace lanlm::engine
