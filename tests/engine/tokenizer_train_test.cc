// BpeTokenizer::Train against a naive reference that recounts every pair before each merge,
// and Encode against a naive "merge the lowest-ranked, leftmost pair, repeat" loop, on random
// texts over a small alphabet (spaces, runs of spaces and line breaks included).
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "engine/tokenizer/tokenizer.h"

namespace lanlm::engine {
namespace {

struct Reference {
  std::vector<std::string> texts;  // without "</w>"
  std::vector<bool> word_end;
  std::map<std::pair<std::string, bool>, int> ids;
  std::vector<std::pair<int, int>> merges;

  int Add(const std::string& text, bool end) {
    ids[{text, end}] = static_cast<int>(texts.size());
    texts.push_back(text);
    word_end.push_back(end);
    return static_cast<int>(texts.size()) - 1;
  }
  int Id(const std::string& text, bool end) const {
    const auto it = ids.find({text, end});
    return it == ids.end() ? kUnkId : it->second;
  }
};

// Pieces as tokenizer.cc documents them: {text, word_end}; space runs and "\n" have word_end false.
std::vector<std::pair<std::string, bool>> Pieces(const std::string& text) {
  std::vector<std::pair<std::string, bool>> out;
  size_t i = 0;
  while (i < text.size()) {
    size_t j = i + 1;
    if (text[i] == '\n') {
    } else if (text[i] == ' ') {
      while (j < text.size() && text[j] == ' ') ++j;
    } else {
      while (j < text.size() && text[j] != ' ' && text[j] != '\n') ++j;
    }
    const bool end = text[i] != ' ' && text[i] != '\n' && j < text.size() && text[j] == ' ';
    out.emplace_back(text.substr(i, j - i), end);
    i = j + (end ? 1 : 0);
  }
  return out;
}

// ASCII only (one byte = one character).
std::vector<int> Symbols(const Reference& r, const std::string& piece, bool end) {
  std::vector<int> s;
  for (size_t k = 0; k < piece.size(); ++k) s.push_back(r.Id(std::string(1, piece[k]), end && k + 1 == piece.size()));
  return s;
}

Reference ReferenceTrain(const std::string& text, int vocab_size) {
  std::map<std::pair<std::string, bool>, long> freq;
  std::map<char, bool> alphabet;
  for (const auto& p : Pieces(text)) {
    if (p.first == "\n") continue;
    ++freq[p];
    for (char c : p.first) {
      if (c != ' ') alphabet[c] = true;
    }
  }
  Reference r;
  for (const char* s : {"<pad>", "<unk>", "<bos>", "<eos>", "\n", " "}) r.Add(s, false);
  for (const bool end : {false, true}) {
    for (const auto& [c, unused] : alphabet) r.Add(std::string(1, c), end);
  }
  std::vector<std::pair<std::vector<int>, long>> words;
  for (const auto& [p, f] : freq) words.emplace_back(Symbols(r, p.first, p.second), f);
  while (static_cast<int>(r.texts.size()) < vocab_size) {
    std::map<std::pair<int, int>, long> counts;  // ordered by (left, right): first max wins ties
    for (const auto& [s, f] : words) {
      for (size_t j = 0; j + 1 < s.size(); ++j) counts[{s[j], s[j + 1]}] += f;
    }
    std::pair<int, int> best{-1, -1};
    long best_count = 1;
    for (const auto& [pair, c] : counts) {
      if (c > best_count) best = pair, best_count = c;
    }
    if (best.first < 0) break;
    const std::string joined = r.texts[best.first] + r.texts[best.second];
    const bool end = r.word_end[best.second];
    const int x = r.ids.count({joined, end}) ? r.Id(joined, end) : r.Add(joined, end);
    bool seen = false;
    for (const auto& m : r.merges) seen = seen || m == best;
    if (!seen) r.merges.push_back(best);
    for (auto& [s, f] : words) {
      std::vector<int> t;
      for (size_t i = 0; i < s.size();) {
        if (i + 1 < s.size() && s[i] == best.first && s[i + 1] == best.second) {
          t.push_back(x);
          i += 2;
        } else {
          t.push_back(s[i++]);
        }
      }
      s = t;
    }
  }
  return r;
}

std::vector<int32_t> ReferenceEncode(const Reference& r, const std::string& text) {
  std::vector<int32_t> out;
  for (const auto& [piece, end] : Pieces(text)) {
    if (piece == "\n") {
      out.push_back(4);
      continue;
    }
    std::vector<int> s = Symbols(r, piece, end);
    for (;;) {
      size_t best_pos = 0, best_rank = r.merges.size();
      for (size_t j = 0; j + 1 < s.size(); ++j) {
        for (size_t k = 0; k < best_rank; ++k) {
          if (r.merges[k] == std::make_pair(s[j], s[j + 1])) {
            best_rank = k;
            best_pos = j;
          }
        }
      }
      if (best_rank == r.merges.size()) break;
      const auto [a, b] = r.merges[best_rank];
      s[best_pos] = r.Id(r.texts[a] + r.texts[b], r.word_end[b]);
      s.erase(s.begin() + static_cast<std::ptrdiff_t>(best_pos) + 1);
    }
    out.insert(out.end(), s.begin(), s.end());
  }
  return out;
}

std::string ReferenceSerialize(const Reference& r) {
  std::string out = "lanlm-bpe version=1 tokens=" + std::to_string(r.texts.size()) +
                    " merges=" + std::to_string(r.merges.size()) + "\n";
  for (size_t i = 0; i < r.texts.size(); ++i) {
    std::string text = r.texts[i] == "\n" ? "\\n" : r.texts[i];
    for (size_t at; (at = text.find(' ')) != std::string::npos;) text.replace(at, 1, "\\s");
    out += std::string(i < 4 ? "s " : r.word_end[i] ? "e " : "c ") + text + "\n";
  }
  for (const auto& [a, b] : r.merges) out += std::to_string(a) + " " + std::to_string(b) + "\n";
  return out;
}

std::string RandomText(std::mt19937& rng, size_t size, const std::string& alphabet) {
  std::string text;
  while (text.size() < size) text += alphabet[rng() % alphabet.size()];
  return text;
}

TEST(TokenizerTrainTest, MatchesNaiveReferenceTrainingAndEncoding) {
  std::mt19937 rng(2024);
  // Skewed alphabets so that some pairs are frequent and merges chain into long tokens.
  const std::vector<std::string> alphabets = {"aaab c\n", "abababcd   \n", "aaaaaaa  b", "xyz xy xy xx\n\n"};
  for (int trial = 0; trial < 12; ++trial) {
    const std::string text = RandomText(rng, 300 + rng() % 900, alphabets[trial % alphabets.size()]);
    const int vocab_size = 20 + static_cast<int>(rng() % 60);
    const Reference r = ReferenceTrain(text, vocab_size);
    auto t = BpeTokenizer::Train(text, vocab_size);
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    const std::string serialized = t->Serialize();  // the reference knows nothing of the checksum line
    ASSERT_EQ(serialized.substr(0, serialized.size() - kTokenizerChecksumLineBytes), ReferenceSerialize(r))
        << "trial " << trial;
    for (int k = 0; k < 5; ++k) {
      const std::string probe = RandomText(rng, rng() % 80, alphabets[trial % alphabets.size()]);
      EXPECT_EQ(t->Encode(probe), ReferenceEncode(r, probe)) << "trial " << trial << " probe '" << probe << "'";
    }
    EXPECT_EQ(t->Encode(text), ReferenceEncode(r, text)) << "trial " << trial;
  }
}

}  // namespace
}  // namespace lanlm::engine
