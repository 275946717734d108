// BpeTokenizer: vocabulary tables, encoding and decoding. Training is in tokenizer_train.cc,
// the file format in tokenizer_io.cc.
//
// Pre-tokenisation (engine/tokenizer/pretokenize.h), applied identically in training and encoding:
//   * "\n" is always a token of its own.
//   * A word is a maximal run of bytes other than ' ' and '\n'. Its symbols are its UTF-8 code
//     points. When a ' ' follows the word, that one space is consumed and the word's last
//     symbol is the "</w>" form of its character (decoded as the character plus a space).
//   * Every other run of spaces (a second space, leading spaces, trailing spaces) is a "space
//     word" whose symbols are " "; merges may join them ("  ", "    "), never with letters.
//   * Tabs, carriage returns and every other character belong to words like letters do.
// BPE merges apply inside one word only. Round trip: each piece decodes to exactly its bytes
// (a word's symbols concatenate to the word, "</w>" gives back the consumed space, space words
// and "\n" are literal), so Decode(Encode(t)) == t for every t whose characters are all in the
// vocabulary, including "", " ", "a  b", " a", "a ", "\t\n\n", text ending without a space.
//
// Unknown input: a code point that is not in the vocabulary, and each byte that is not part of
// a valid UTF-8 sequence (strict RFC 3629: engine/base/utf8.h), becomes one <unk>. A word whose last
// character is unknown encodes its consumed space as a " " token, so spaces survive. Encoding
// never fails and its time is O(n log n) in the longest word (heap-ordered merging).
#include "engine/tokenizer/tokenizer.h"

#include <algorithm>
#include <queue>

#include "engine/base/hash.h"
#include "engine/tokenizer/pretokenize.h"
#include "engine/base/utf8.h"

namespace lanlm::engine {
namespace {

constexpr const char* kEndOfWord = "</w>";
const char* const kSpecialNames[4] = {"<pad>", "<unk>", "<bos>", "<eos>"};

}  // namespace

std::string BpeTokenizer::TokenKey(std::string_view text, bool word_end) {
  std::string key(text);
  if (word_end) key.push_back('\xff');
  return key;
}

int32_t BpeTokenizer::AddToken(std::string text, bool word_end) {
  const auto id = static_cast<int32_t>(tokens_.size());
  token_ids_.emplace(TokenKey(text, word_end), id);
  tokens_.push_back(word_end ? text + kEndOfWord : text);
  texts_.push_back(std::move(text));
  kinds_.push_back(word_end ? kWordEnd : kPiece);
  return id;
}

Status BpeTokenizer::Build() {
  const size_t n = tokens_.size();
  if (n < 4 || texts_.size() != n || kinds_.size() != n) return InternalError("tokenizer tables are inconsistent");
  for (int i = 0; i < 4; ++i) {
    if (kinds_[i] != kSpecial || texts_[i] != kSpecialNames[i]) {
      return InvalidArgumentError("token " + std::to_string(i) + " must be the special token " + kSpecialNames[i]);
    }
  }
  decoded_.assign(n, std::string());
  token_ids_.clear();
  char_ids_.clear();
  newline_id_ = space_id_ = -1;
  for (size_t i = 4; i < n; ++i) {
    const auto id = static_cast<int32_t>(i);
    const bool word_end = kinds_[i] == kWordEnd;
    if (kinds_[i] == kSpecial)
      return InvalidArgumentError("token " + std::to_string(i) + " is special; only ids 0-3 may be");
    decoded_[i] = word_end ? texts_[i] + " " : texts_[i];
    if (!token_ids_.emplace(TokenKey(texts_[i], word_end), id).second) {
      return InvalidArgumentError("token " + std::to_string(i) + " duplicates an earlier token");
    }
    const std::string& t = texts_[i];
    if (t == "\n" && !word_end) newline_id_ = id;
    if (t == " " && !word_end) space_id_ = id;
    uint32_t cp = 0;
    const int len = Utf8Decode(reinterpret_cast<const unsigned char*>(t.data()), t.size(), &cp);
    if (len > 0 && static_cast<size_t>(len) == t.size() && cp != ' ' && cp != '\n') {
      auto& entry = char_ids_.try_emplace(cp, -1, -1).first->second;
      (word_end ? entry.second : entry.first) = id;
    }
  }
  if (newline_id_ < 0) return InvalidArgumentError("the vocabulary has no \"\\n\" token");
  if (space_id_ < 0) return InvalidArgumentError("the vocabulary has no \" \" token");
  merge_info_.clear();
  merge_info_.reserve(merges_.size());
  for (size_t r = 0; r < merges_.size(); ++r) {
    const auto [left, right] = merges_[r];
    const std::string where = "merge " + std::to_string(r);
    if (left < 4 || right < 4 || static_cast<size_t>(left) >= n || static_cast<size_t>(right) >= n) {
      return InvalidArgumentError(where + " refers to a token outside [4, " + std::to_string(n) + ")");
    }
    if (kinds_[left] != kPiece || left == newline_id_ || right == newline_id_) {
      return InvalidArgumentError(where + " joins a token that never has a right neighbour");
    }
    const bool left_spaces = texts_[left].find_first_not_of(' ') == std::string::npos;
    const bool right_spaces = texts_[right].find_first_not_of(' ') == std::string::npos;
    if (left_spaces != right_spaces) return InvalidArgumentError(where + " joins spaces with non-spaces");
    const auto it = token_ids_.find(TokenKey(texts_[left] + texts_[right], kinds_[right] == kWordEnd));
    if (it == token_ids_.end()) return InvalidArgumentError(where + ": the joined text is not a token");
    if (!merge_info_.emplace(PairKey(left, right), MergeInfo{static_cast<int32_t>(r), it->second}).second) {
      return InvalidArgumentError(where + " repeats an earlier merge");
    }
  }
  return OkStatus();
}

void BpeTokenizer::ApplyMerges(std::vector<int32_t>& symbols) const {
  const auto n = static_cast<int32_t>(symbols.size());
  if (n < 2 || merge_info_.empty()) return;
  // A doubly linked list over positions; a min-heap of candidate merges ordered by (rank,
  // position). An entry is stale when either side changed since it was pushed: symbols only
  // ever become longer tokens, so checking both ids is enough.
  struct Candidate {
    int32_t rank, pos, left, right;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::vector<int32_t> next(n), prev(n);
  for (int32_t i = 0; i < n; ++i) {
    next[i] = i + 1 < n ? i + 1 : -1;
    prev[i] = i - 1;
  }
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> heap;
  auto consider = [&](int32_t pos) {
    const int32_t j = next[pos];
    if (j < 0) return;
    const auto it = merge_info_.find(PairKey(symbols[pos], symbols[j]));
    if (it != merge_info_.end()) heap.push({it->second.rank, pos, symbols[pos], symbols[j]});
  };
  for (int32_t i = 0; i + 1 < n; ++i) consider(i);
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    const int32_t j = next[c.pos];
    if (symbols[c.pos] != c.left || j < 0 || symbols[j] != c.right) continue;
    symbols[c.pos] = merge_info_.at(PairKey(c.left, c.right)).result;
    symbols[j] = -1;
    next[c.pos] = next[j];
    if (next[j] >= 0) prev[next[j]] = c.pos;
    if (prev[c.pos] >= 0) consider(prev[c.pos]);
    consider(c.pos);
  }
  symbols.erase(std::remove(symbols.begin(), symbols.end(), -1), symbols.end());
}

void BpeTokenizer::EncodeWord(std::string_view word, bool word_end, std::vector<int32_t>& out) const {
  std::vector<int32_t> symbols;
  symbols.reserve(word.size());
  const auto* p = reinterpret_cast<const unsigned char*>(word.data());
  const std::pair<int32_t, int32_t>* last = nullptr;  // char_ids_ entry of the last character
  for (size_t i = 0; i < word.size();) {
    uint32_t cp = 0;
    const int len = Utf8Decode(p + i, word.size() - i, &cp);
    last = nullptr;
    if (len == 0) {
      symbols.push_back(kUnkId);
      ++i;
      continue;
    }
    i += static_cast<size_t>(len);
    const auto it = char_ids_.find(cp);
    if (it != char_ids_.end()) last = &it->second;
    symbols.push_back(last != nullptr && last->first >= 0 ? last->first : kUnkId);
  }
  bool trailing_space = false;
  if (word_end) {
    if (last != nullptr && last->second >= 0) {
      symbols.back() = last->second;
    } else {
      trailing_space = true;
    }
  }
  ApplyMerges(symbols);
  out.insert(out.end(), symbols.begin(), symbols.end());
  if (trailing_space) out.push_back(space_id_);
}

std::vector<int32_t> BpeTokenizer::Encode(std::string_view text) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 4 + 8);
  // Each distinct piece is encoded once per call (natural text repeats words a lot); the
  // cache lives in the call, so concurrent Encode calls share nothing mutable.
  struct Span {
    size_t begin, size;
  };
  PieceTable cache;
  std::vector<Span> spans;
  std::vector<int32_t> store;
  ForEachPiece(text, [&](PieceKind kind, std::string_view piece, bool word_end) {
    if (kind == PieceKind::kNewline) {
      out.push_back(newline_id_);
      return;
    }
    bool inserted = false;
    const uint32_t index = cache.Insert(piece, word_end, &inserted);
    if (inserted) {
      const size_t begin = store.size();
      if (kind == PieceKind::kSpaces) {
        std::vector<int32_t> symbols(piece.size(), space_id_);
        ApplyMerges(symbols);
        store.insert(store.end(), symbols.begin(), symbols.end());
      } else {
        EncodeWord(piece, word_end, store);
      }
      spans.push_back({begin, store.size() - begin});
    }
    const auto first = store.begin() + static_cast<std::ptrdiff_t>(spans[index].begin);
    out.insert(out.end(), first, first + static_cast<std::ptrdiff_t>(spans[index].size));
  });
  return out;
}

std::string BpeTokenizer::Decode(const int32_t* ids, int64_t n) const {
  std::string out;
  for (int64_t i = 0; i < n; ++i) out += TokenText(ids[i]);
  return out;
}

const std::string& BpeTokenizer::TokenText(int32_t id) const {
  static const std::string kEmpty;
  if (id < 0 || static_cast<size_t>(id) >= decoded_.size()) return kEmpty;
  return decoded_[id];
}

uint64_t BpeTokenizer::Hash() const {
  const std::string s = Serialize();
  return Fnv1a64(s.data(), s.size() - kTokenizerChecksumLineBytes);  // without "crc32c XXXXXXXX\n"
}

}  // namespace lanlm::engine
