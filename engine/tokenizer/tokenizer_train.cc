// BpeTokenizer::Train: learns BPE merges from text (Sennrich et al. 2016).
//
// 1. Pre-tokenise (engine/tokenizer/pretokenize.h) into a table of distinct words with frequencies.
// 2. Base vocabulary: <pad> <unk> <bos> <eos>, "\n", " ", then every code point seen in a word
//    in code point order, then the same code points as word-end ("</w>") tokens.
// 3. Count adjacent symbol pairs, weighted by word frequency, once. Then repeat: take the most
//    frequent pair (ties: smaller left id, then smaller right id, so runs are deterministic),
//    record the merge, rewrite only the words that contain the pair (an index from pair to
//    words), and update only the counts of pairs that disappeared or appeared there. A max-heap
//    holds candidates lazily: counts of old pairs only fall, so a popped entry whose count is
//    stale is pushed back with its current count; new pairs are pushed when they appear.
// A merge whose joined text already is a token maps to that token, so the vocabulary grows by
// at most one per merge. Stops at vocab_size tokens or when no pair occurs twice. Bytes that are
// not valid UTF-8 act as <unk> symbols: they never join a pair and never become tokens.
#include <algorithm>
#include <queue>
#include <unordered_set>

#include "engine/model/model_config.h"
#include "engine/tokenizer/pretokenize.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/base/utf8.h"

namespace lanlm::engine {
namespace {

struct Candidate {
  int64_t count;
  int32_t left, right;
  // priority_queue pops the largest: higher count first, then smaller (left, right).
  bool operator<(const Candidate& o) const {
    if (count != o.count) return count < o.count;
    if (left != o.left) return left > o.left;
    return right > o.right;
  }
};

// BpeTokenizer::PairKey, which is private: (left, right) as one 64-bit key.
uint64_t PairOf(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

// Pre-tokenises text into table (distinct words, newlines left out); returns each word's count.
std::vector<int64_t> CollectWords(std::string_view text, PieceTable& table) {
  std::vector<int64_t> freqs;
  ForEachPiece(text, [&](PieceKind kind, std::string_view piece, bool word_end) {
    if (kind == PieceKind::kNewline) return;
    bool inserted = false;
    const uint32_t index = table.Insert(piece, word_end, &inserted);
    if (inserted) freqs.push_back(0);
    ++freqs[index];
  });
  return freqs;
}

// Every code point (but ' ') in the table's words, sorted.
std::vector<uint32_t> Alphabet(const PieceTable& table) {
  std::unordered_set<uint32_t> seen;
  for (uint32_t w = 0; w < table.size(); ++w) {
    const std::string_view word = table.piece(w);
    const auto* p = reinterpret_cast<const unsigned char*>(word.data());
    for (size_t i = 0; i < word.size();) {
      uint32_t cp = 0;
      const int len = Utf8Decode(p + i, word.size() - i, &cp);
      if (len > 0 && cp != ' ') seen.insert(cp);
      i += len > 0 ? static_cast<size_t>(len) : 1;
    }
  }
  std::vector<uint32_t> alphabet(seen.begin(), seen.end());
  std::sort(alphabet.begin(), alphabet.end());
  return alphabet;
}

// Word w of the table as symbols: char_id for its code points, space_id for ' ', kUnkId for
// invalid bytes; the last symbol of a word-end word moves to its "</w>" form (+ alphabet_size).
std::vector<std::vector<int32_t>> WordSymbols(const PieceTable& table,
                                              const std::unordered_map<uint32_t, int32_t>& char_id,
                                              int32_t space_id, int32_t alphabet_size) {
  std::vector<std::vector<int32_t>> words(table.size());
  for (uint32_t w = 0; w < table.size(); ++w) {
    const std::string_view word = table.piece(w);
    std::vector<int32_t>& symbols = words[w];
    const auto* p = reinterpret_cast<const unsigned char*>(word.data());
    for (size_t i = 0; i < word.size();) {
      uint32_t cp = 0;
      const int len = Utf8Decode(p + i, word.size() - i, &cp);
      if (len == 0) {
        symbols.push_back(kUnkId);
        ++i;
        continue;
      }
      symbols.push_back(cp == ' ' ? space_id : char_id.at(cp));
      i += static_cast<size_t>(len);
    }
    if (table.word_end(w) && symbols.back() != kUnkId) symbols.back() += alphabet_size;
  }
  return words;
}

// Pair counts weighted by word frequency, the pair -> words index (lazy: a word may no longer
// hold the pair), and the candidate heap (lazy: stale counts are pushed back when popped).
struct PairIndex {
  std::unordered_map<uint64_t, int64_t> count;
  std::unordered_map<uint64_t, std::vector<int32_t>> words;
  std::priority_queue<Candidate> heap;

  void Push(uint64_t key, int64_t c) {
    if (c >= 2) heap.push({c, static_cast<int32_t>(key >> 32), static_cast<int32_t>(key & 0xffffffffu)});
  }

  void Build(const std::vector<std::vector<int32_t>>& all, const std::vector<int64_t>& freqs) {
    for (size_t w = 0; w < all.size(); ++w) {
      const auto& s = all[w];
      for (size_t j = 0; j + 1 < s.size(); ++j) {
        if (s[j] == kUnkId || s[j + 1] == kUnkId) continue;
        const uint64_t key = PairOf(s[j], s[j + 1]);
        count[key] += freqs[w];
        words[key].push_back(static_cast<int32_t>(w));
      }
    }
    for (const auto& [key, c] : count) Push(key, c);
  }
};

// Rewrites word w (frequency f) with every (left, right) replaced by x, moving the counts of
// the pairs that disappeared and appeared; appeared collects the new keys. False when the
// word no longer holds the pair.
class WordRewriter {
 public:
  bool Rewrite(std::vector<int32_t>& word, int32_t w, int64_t f, const Candidate& pair, int32_t x, PairIndex& index,
               std::vector<uint64_t>& appeared) {
    const std::vector<int32_t>& s = word;
    const size_t n = s.size();
    rewritten_.clear();
    fresh_.clear();
    covered_.assign(n, 0);
    bool any = false;
    for (size_t i = 0; i < n;) {
      const bool match = i + 1 < n && s[i] == pair.left && s[i + 1] == pair.right;
      if (match) covered_[i] = covered_[i + 1] = 1;
      rewritten_.push_back(match ? x : s[i]);
      fresh_.push_back(match ? 1 : 0);
      i += match ? 2 : 1;
      any = any || match;
    }
    if (!any) return false;
    for (size_t j = 0; j + 1 < n; ++j) {
      if (!(covered_[j] || covered_[j + 1]) || s[j] == kUnkId || s[j + 1] == kUnkId) continue;
      const auto it = index.count.find(PairOf(s[j], s[j + 1]));
      LANLM_CHECK(it != index.count.end(), "BPE training: a counted pair is missing");
      if ((it->second -= f) == 0) index.count.erase(it);
    }
    for (size_t k = 0; k + 1 < rewritten_.size(); ++k) {
      if (!(fresh_[k] || fresh_[k + 1]) || rewritten_[k] == kUnkId || rewritten_[k + 1] == kUnkId) continue;
      const uint64_t new_key = PairOf(rewritten_[k], rewritten_[k + 1]);
      index.count[new_key] += f;
      index.words[new_key].push_back(w);
      appeared.push_back(new_key);
    }
    word.assign(rewritten_.begin(), rewritten_.end());
    return true;
  }

 private:
  std::vector<int32_t> rewritten_;
  std::vector<uint8_t> covered_, fresh_;
};

}  // namespace

StatusOr<BpeTokenizer> BpeTokenizer::Train(std::string_view text, int vocab_size) {
  if (vocab_size > kMaxVocab) {
    return InvalidArgumentError("vocab_size = " + std::to_string(vocab_size) +
                                " exceeds kMaxVocab = " + std::to_string(kMaxVocab));
  }
  // 1. Distinct words ([1]: followed by a consumed space, so their last symbol is "</w>").
  PieceTable table;
  const std::vector<int64_t> freqs = CollectWords(text, table);

  // 2. Alphabet and base vocabulary.
  const std::vector<uint32_t> alphabet = Alphabet(table);
  const int64_t base = 6 + 2 * static_cast<int64_t>(alphabet.size());
  if (vocab_size < base) {
    return InvalidArgumentError("vocab_size = " + std::to_string(vocab_size) + " is below the " + std::to_string(base) +
                                " base tokens (4 special, \\n, space, " + std::to_string(alphabet.size()) +
                                " characters with and without </w>)");
  }
  BpeTokenizer t;
  for (const char* name : {"<pad>", "<unk>", "<bos>", "<eos>"}) {
    t.tokens_.emplace_back(name);
    t.texts_.emplace_back(name);
    t.kinds_.push_back(kSpecial);
  }
  t.AddToken("\n", false);
  const int32_t space_id = t.AddToken(" ", false);
  std::unordered_map<uint32_t, int32_t> char_id;  // code point -> piece id; word-end id = piece id + A
  const auto alphabet_size = static_cast<int32_t>(alphabet.size());
  for (const bool word_end : {false, true}) {
    for (const uint32_t cp : alphabet) {
      std::string s;
      AppendUtf8(cp, s);
      const int32_t id = t.AddToken(std::move(s), word_end);
      if (!word_end) char_id[cp] = id;
    }
  }
  // Words as symbol sequences; kUnkId (invalid bytes) never pairs.
  std::vector<std::vector<int32_t>> words = WordSymbols(table, char_id, space_id, alphabet_size);

  // 3. Pair counts, the pair -> words index, and the candidate heap; then the merges.
  PairIndex index;
  index.Build(words, freqs);
  std::vector<int64_t> visited(words.size(), -1);  // merge number that last rewrote the word
  WordRewriter rewriter;
  std::vector<uint64_t> appeared;
  std::unordered_set<uint64_t> recorded;
  int64_t rounds = 0;
  while (t.tokens_.size() < static_cast<size_t>(vocab_size) && !index.heap.empty()) {
    const Candidate top = index.heap.top();
    index.heap.pop();
    const uint64_t key = PairKey(top.left, top.right);
    const auto count_it = index.count.find(key);
    const int64_t current = count_it == index.count.end() ? 0 : count_it->second;
    if (current != top.count) {
      index.Push(key, current);
      continue;
    }
    const bool word_end = t.kinds_[top.right] == kWordEnd;
    std::string joined = t.texts_[top.left] + t.texts_[top.right];
    const auto existing = t.token_ids_.find(TokenKey(joined, word_end));
    const int32_t x = existing != t.token_ids_.end() ? existing->second : t.AddToken(std::move(joined), word_end);
    // A pair can form again after its merge when a later merge yields its left or right token
    // (joined texts that already existed); it is rewritten again but recorded only once.
    const int64_t merge_no = rounds++;
    if (recorded.insert(key).second) t.merges_.emplace_back(top.left, top.right);

    std::vector<int32_t> where = std::move(index.words[key]);
    index.words.erase(key);
    appeared.clear();
    for (const int32_t w : where) {
      if (visited[w] == merge_no) continue;
      visited[w] = merge_no;
      rewriter.Rewrite(words[w], w, freqs[w], top, x, index, appeared);  // false: the pair left this word
    }
    std::sort(appeared.begin(), appeared.end());
    appeared.erase(std::unique(appeared.begin(), appeared.end()), appeared.end());
    for (const uint64_t k : appeared) index.Push(k, index.count[k]);
  }
  LANLM_RETURN_IF_ERROR(t.Build());
  return t;
}

}  // namespace lanlm::engine
