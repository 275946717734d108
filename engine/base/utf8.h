// Strict UTF-8 decoding (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF.
// Used by the tokenizer (characters are code points) and by anything that must emit only
// valid UTF-8 (streamed text deltas). Not a transcoder: no UTF-16, no normalisation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace lanlm::engine {

// Length (1-4) of the valid UTF-8 sequence at the start of p[0, n), storing its code point in
// *cp; 0 when the bytes there are not a valid sequence (a caller skips one byte then).
inline int Utf8Decode(const unsigned char* p, size_t n, uint32_t* cp) {
  if (n == 0) return 0;
  const unsigned char b0 = p[0];
  if (b0 < 0x80) {
    *cp = b0;
    return 1;
  }
  auto cont = [&](size_t i) { return i < n && (p[i] & 0xc0) == 0x80; };
  if (b0 >= 0xc2 && b0 <= 0xdf) {
    if (!cont(1)) return 0;
    *cp = (uint32_t(b0 & 0x1f) << 6) | (p[1] & 0x3f);
    return 2;
  }
  if (b0 >= 0xe0 && b0 <= 0xef) {
    if (!cont(1) || !cont(2)) return 0;
    const uint32_t c = (uint32_t(b0 & 0x0f) << 12) | (uint32_t(p[1] & 0x3f) << 6) | (p[2] & 0x3f);
    if (c < 0x800 || (c >= 0xd800 && c <= 0xdfff)) return 0;  // overlong or surrogate
    *cp = c;
    return 3;
  }
  if (b0 >= 0xf0 && b0 <= 0xf4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    const uint32_t c =
        (uint32_t(b0 & 0x07) << 18) | (uint32_t(p[1] & 0x3f) << 12) | (uint32_t(p[2] & 0x3f) << 6) | (p[3] & 0x3f);
    if (c < 0x10000 || c > 0x10ffff) return 0;  // overlong or beyond Unicode
    *cp = c;
    return 4;
  }
  return 0;  // continuation byte, C0/C1 (always overlong) or F5..FF
}

// True when `s` is valid UTF-8 (shortest forms, no surrogates, at most U+10FFFF). On failure
// and when bad_offset is not null, stores the byte offset of the first invalid sequence.
inline bool IsValidUtf8(std::string_view s, size_t* bad_offset = nullptr) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t i = 0;
  uint32_t cp = 0;
  while (i < s.size()) {
    const int len = Utf8Decode(p + i, s.size() - i, &cp);
    if (len == 0) {
      if (bad_offset != nullptr) *bad_offset = i;
      return false;
    }
    i += static_cast<size_t>(len);
  }
  return true;
}

// Appends the UTF-8 encoding of a code point (cp <= 0x10ffff, not a surrogate).
inline void AppendUtf8(uint32_t cp, std::string& out) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xc0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xe0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  }
}

}  // namespace lanlm::engine
