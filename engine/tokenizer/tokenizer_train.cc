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

}  // namespace

StatusOr<BpeTokenizer> BpeTokenizer::Train(std::string_view text, int vocab_size) {
  if (vocab_size > kMaxVocab) {
    return InvalidArgumentError("vocab_size = " + std::to_string(vocab_size) +
                                " exceeds kMaxVocab = " + std::to_string(kMaxVocab));
  }
  // 1. Distinct words ([1]: followed by a consumed space, so their last symbol is "</w>").
  PieceTable table;
  std::vector<int64_t> freqs;
  ForEachPiece(text, [&](PieceKind kind, std::string_view piece, bool word_end) {
    if (kind == PieceKind::kNewline) return;
    bool inserted = false;
    const uint32_t index = table.Insert(piece, word_end, &inserted);
    if (inserted) freqs.push_back(0);
    ++freqs[index];
  });

  // 2. Alphabet and base vocabulary.
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

  // 3. Pair counts, the pair -> words index, and the candidate heap.
  std::unordered_map<uint64_t, int64_t> pair_count;
  std::unordered_map<uint64_t, std::vector<int32_t>> pair_words;
  for (size_t w = 0; w < words.size(); ++w) {
    const auto& s = words[w];
    for (size_t j = 0; j + 1 < s.size(); ++j) {
      if (s[j] == kUnkId || s[j + 1] == kUnkId) continue;
      const uint64_t key = PairKey(s[j], s[j + 1]);
      pair_count[key] += freqs[w];
      pair_words[key].push_back(static_cast<int32_t>(w));
    }
  }
  std::priority_queue<Candidate> heap;
  for (const auto& [key, count] : pair_count) {
    if (count >= 2) heap.push({count, static_cast<int32_t>(key >> 32), static_cast<int32_t>(key & 0xffffffffu)});
  }

  std::vector<int64_t> visited(words.size(), -1);  // merge number that last rewrote the word
  std::vector<int32_t> rewritten;
  std::vector<uint8_t> covered, fresh;
  std::vector<uint64_t> appeared;
  std::unordered_set<uint64_t> recorded;
  int64_t rounds = 0;
  while (t.tokens_.size() < static_cast<size_t>(vocab_size) && !heap.empty()) {
    const Candidate top = heap.top();
    heap.pop();
    const uint64_t key = PairKey(top.left, top.right);
    const auto count_it = pair_count.find(key);
    const int64_t current = count_it == pair_count.end() ? 0 : count_it->second;
    if (current != top.count) {
      if (current >= 2) heap.push({current, top.left, top.right});
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

    std::vector<int32_t> where = std::move(pair_words[key]);
    pair_words.erase(key);
    appeared.clear();
    for (const int32_t w : where) {
      if (visited[w] == merge_no) continue;
      visited[w] = merge_no;
      const std::vector<int32_t>& s = words[w];
      const size_t n = s.size();
      rewritten.clear();
      fresh.clear();
      covered.assign(n, 0);
      bool any = false;
      for (size_t i = 0; i < n;) {
        if (i + 1 < n && s[i] == top.left && s[i + 1] == top.right) {
          covered[i] = covered[i + 1] = 1;
          rewritten.push_back(x);
          fresh.push_back(1);
          i += 2;
          any = true;
        } else {
          rewritten.push_back(s[i]);
          fresh.push_back(0);
          ++i;
        }
      }
      if (!any) continue;  // the index is lazy: the pair may have left this word already
      const int64_t f = freqs[w];
      for (size_t j = 0; j + 1 < n; ++j) {
        if (!(covered[j] || covered[j + 1]) || s[j] == kUnkId || s[j + 1] == kUnkId) continue;
        const auto it = pair_count.find(PairKey(s[j], s[j + 1]));
        LANLM_CHECK(it != pair_count.end(), "BPE training: a counted pair is missing");
        if ((it->second -= f) == 0) pair_count.erase(it);
      }
      for (size_t k = 0; k + 1 < rewritten.size(); ++k) {
        if (!(fresh[k] || fresh[k + 1]) || rewritten[k] == kUnkId || rewritten[k + 1] == kUnkId) continue;
        const uint64_t new_key = PairKey(rewritten[k], rewritten[k + 1]);
        pair_count[new_key] += f;
        pair_words[new_key].push_back(w);
        appeared.push_back(new_key);
      }
      words[w].assign(rewritten.begin(), rewritten.end());
    }
    std::sort(appeared.begin(), appeared.end());
    appeared.erase(std::unique(appeared.begin(), appeared.end()), appeared.end());
    for (const uint64_t k : appeared) {
      const int64_t c = pair_count[k];
      if (c >= 2) heap.push({c, static_cast<int32_t>(k >> 32), static_cast<int32_t>(k & 0xffffffffu)});
    }
  }
  LANLM_RETURN_IF_ERROR(t.Build());
  return t;
}

}  // namespace lanlm::engine
