// Token text escaping for the tokenizer file; see token_escape.h.
#include "engine/tokenizer/token_escape.h"

#include <cstdint>
#include <cstdio>

#include "engine/base/utf8.h"

namespace lanlm::engine {

void AppendEscaped(std::string_view text, std::string& out) {
  static const char kHex[] = "0123456789abcdef";
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      case ' ':
        out += "\\s";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          out += "\\x";
          out += kHex[c >> 4];
          out += kHex[c & 15];
        } else {
          out += ch;
        }
    }
  }
}

std::string Quote(std::string_view text) {
  std::string out = "'";
  AppendEscaped(text.substr(0, 60), out);
  if (text.size() > 60) out += "...";
  // Bytes that are not valid UTF-8 are shown as \xHH so messages stay printable.
  std::string clean;
  for (size_t i = 0; i < out.size();) {
    uint32_t cp = 0;
    const int len = Utf8Decode(reinterpret_cast<const unsigned char*>(out.data() + i), out.size() - i, &cp);
    if (len == 0) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", static_cast<unsigned char>(out[i]));
      clean += buf;
      ++i;
    } else {
      clean.append(out, i, static_cast<size_t>(len));
      i += static_cast<size_t>(len);
    }
  }
  return clean + "'";
}

namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

bool Unescape(std::string_view in, std::string& out, std::string& error) {
  out.clear();
  for (size_t i = 0; i < in.size(); ++i) {
    const auto c = static_cast<unsigned char>(in[i]);
    if (c < 0x20 || c == 0x7f || c == ' ') {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      error = std::string("raw byte ") + buf + " at byte " + std::to_string(i) + " (must be escaped)";
      return false;
    }
    if (c != '\\') {
      out += static_cast<char>(c);
      continue;
    }
    if (i + 1 >= in.size()) {
      error = "lone backslash at the end";
      return false;
    }
    const char e = in[++i];
    switch (e) {
      case '\\':
        out += '\\';
        break;
      case 'n':
        out += '\n';
        break;
      case 't':
        out += '\t';
        break;
      case 'r':
        out += '\r';
        break;
      case 's':
        out += ' ';
        break;
      case 'x': {
        const int hi = i + 1 < in.size() ? HexValue(in[i + 1]) : -1;
        const int lo = i + 2 < in.size() ? HexValue(in[i + 2]) : -1;
        if (hi < 0 || lo < 0) {
          error = "bad escape " + Quote(in.substr(i - 1, 4)) + " (\\x needs two hex digits)";
          return false;
        }
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
        break;
      }
      default:
        error = "bad escape " + Quote(in.substr(i - 1, 2));
        return false;
    }
  }
  return true;
}

}  // namespace lanlm::engine
