// Pre-tokenisation shared by BpeTokenizer training and encoding: splits text into the pieces
// that BPE merges never cross. The scheme and its round-trip argument are in tokenizer.cc.
// Internal to the tokenizer; byte-level only (spaces and line breaks are ASCII).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

namespace lanlm::engine {

enum class PieceKind { kNewline, kSpaces, kWord };

// Calls f(kind, piece, word_end) for each piece of text in order:
//   kNewline: "\n" (word_end false);
//   kSpaces:  a maximal run of ' ' not consumed as an end-of-word marker (word_end false);
//   kWord:    a maximal run of bytes other than ' ' and '\n'; word_end is true when a ' '
//             follows it, and that one space is consumed (it is the word's "</w>").
template <typename F>
void ForEachPiece(std::string_view text, F&& f) {
  const size_t n = text.size();
  const char* s = text.data();
  size_t i = 0;
  while (i < n) {
    const char c = s[i];
    if (c == '\n') {
      f(PieceKind::kNewline, text.substr(i, 1), false);
      ++i;
    } else if (c == ' ') {
      size_t j = i + 1;
      while (j < n && s[j] == ' ') ++j;
      f(PieceKind::kSpaces, text.substr(i, j - i), false);
      i = j;
    } else {
      size_t j = i + 1;
      while (j < n && s[j] != ' ' && s[j] != '\n') ++j;
      const bool word_end = j < n && s[j] == ' ';
      f(PieceKind::kWord, text.substr(i, j - i), word_end);
      i = j + (word_end ? 1 : 0);
    }
  }
}

// Distinct (piece, word_end) keys numbered 0, 1, 2, ... in order of first insertion: the word
// table of training and the per-call cache of encoding. Open addressing with linear probing
// over 64-bit hashes; keys are views into the caller's text, which must outlive the table.
class PieceTable {
 public:
  // Index of the key; a new key gets index size() and *inserted = true.
  uint32_t Insert(std::string_view piece, bool word_end, bool* inserted) {
    if ((keys_.size() + 1) * 2 > slots_.size()) Grow();
    const uint64_t h = Hash(piece, word_end);
    const size_t mask = slots_.size() - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
      Slot& s = slots_[i];
      if (s.index == 0) {
        keys_.push_back({piece, word_end});
        s = {h, static_cast<uint32_t>(keys_.size())};
        *inserted = true;
        return s.index - 1;
      }
      if (s.hash == h) {
        const Key& k = keys_[s.index - 1];
        if (k.word_end == word_end && k.piece.size() == piece.size() &&
            std::memcmp(k.piece.data(), piece.data(), piece.size()) == 0) {
          *inserted = false;
          return s.index - 1;
        }
      }
    }
  }
  size_t size() const { return keys_.size(); }
  std::string_view piece(uint32_t index) const { return keys_[index].piece; }
  bool word_end(uint32_t index) const { return keys_[index].word_end; }

 private:
  struct Slot {
    uint64_t hash = 0;
    uint32_t index = 0;  // key index + 1; 0 = empty
  };
  struct Key {
    std::string_view piece;
    bool word_end;
  };
  static uint64_t Hash(std::string_view piece, bool word_end) {
    const char* p = piece.data();
    size_t n = piece.size();
    uint64_t h = 0x9e3779b97f4a7c15ull ^ (static_cast<uint64_t>(n) * 0xff51afd7ed558ccdull) ^ (word_end ? 1 : 0);
    for (; n >= 8; p += 8, n -= 8) {
      uint64_t w;
      std::memcpy(&w, p, 8);
      h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
      h ^= h >> 29;
    }
    uint64_t w = 0;
    std::memcpy(&w, p, n);
    h = (h ^ w) * 0x94d049bb133111ebull;
    h ^= h >> 31;
    h *= 0xd6e8feb86659fd93ull;
    return h ^ (h >> 32);
  }
  void Grow() {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(old.empty() ? 64 : old.size() * 2, Slot{});
    const size_t mask = slots_.size() - 1;
    for (const Slot& s : old) {
      if (s.index == 0) continue;
      size_t i = s.hash & mask;
      while (slots_[i].index != 0) i = (i + 1) & mask;
      slots_[i] = s;
    }
  }

  std::vector<Slot> slots_;
  std::vector<Key> keys_;
};

}  // namespace lanlm::engine
