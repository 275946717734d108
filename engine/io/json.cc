// Strict JSON parser (recursive descent with depth and element bounds) and serialiser.
#include "engine/io/json.h"

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <unordered_set>

namespace lanlm::engine {

JsonValue JsonValue::Bool(bool b) {
  JsonValue v;
  v.type_ = Type::kBool;
  v.bool_ = b;
  return v;
}

JsonValue JsonValue::Number(double x) {
  JsonValue v;
  v.type_ = Type::kNumber;
  v.number_ = x;
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.17g", x);
  v.text_ = buf;
  return v;
}

JsonValue JsonValue::Integer(int64_t x) {
  JsonValue v;
  v.type_ = Type::kNumber;
  v.number_ = static_cast<double>(x);
  v.text_ = std::to_string(x);
  return v;
}

JsonValue JsonValue::String(std::string s) {
  JsonValue v;
  v.type_ = Type::kString;
  v.text_ = std::move(s);
  return v;
}

JsonValue JsonValue::Array() {
  JsonValue v;
  v.type_ = Type::kArray;
  return v;
}

JsonValue JsonValue::Object() {
  JsonValue v;
  v.type_ = Type::kObject;
  return v;
}

StatusOr<int64_t> JsonValue::AsInt64() const {
  if (type_ != Type::kNumber) return InvalidArgumentError("expected an integer, got a non-number");
  if (text_.find_first_of(".eE") != std::string::npos) {
    return InvalidArgumentError("expected an integer, got " + text_);
  }
  int64_t x = 0;
  auto [ptr, ec] = std::from_chars(text_.data(), text_.data() + text_.size(), x);
  if (ec != std::errc() || ptr != text_.data() + text_.size()) {
    return InvalidArgumentError("integer " + text_ + " does not fit in 64 bits");
  }
  return x;
}

void JsonValue::Set(const std::string& key, JsonValue v) {
  for (auto& [k, value] : members_) {
    if (k == key) {
      value = std::move(v);
      return;
    }
  }
  members_.emplace_back(key, std::move(v));
}

const JsonValue* JsonValue::Find(std::string_view key) const {
  for (const auto& [k, value] : members_) {
    if (k == key) return &value;
  }
  return nullptr;
}

void AppendJsonString(std::string_view s, std::string& out) {
  static const char kHex[] = "0123456789abcdef";
  out.push_back('"');
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          out += "\\u00";
          out.push_back(kHex[c >> 4]);
          out.push_back(kHex[c & 15]);
        } else {
          out.push_back(ch);
        }
    }
  }
  out.push_back('"');
}

void JsonValue::SerializeTo(std::string& out) const {
  switch (type_) {
    case Type::kNull:
      out += "null";
      break;
    case Type::kBool:
      out += bool_ ? "true" : "false";
      break;
    case Type::kNumber:
      out += text_;
      break;
    case Type::kString:
      AppendJsonString(text_, out);
      break;
    case Type::kArray:
      out.push_back('[');
      for (size_t i = 0; i < items_.size(); ++i) {
        if (i > 0) out.push_back(',');
        items_[i].SerializeTo(out);
      }
      out.push_back(']');
      break;
    case Type::kObject:
      out.push_back('{');
      for (size_t i = 0; i < members_.size(); ++i) {
        if (i > 0) out.push_back(',');
        AppendJsonString(members_[i].first, out);
        out.push_back(':');
        members_[i].second.SerializeTo(out);
      }
      out.push_back('}');
      break;
  }
}

std::string JsonValue::Serialize() const {
  std::string out;
  SerializeTo(out);
  return out;
}

namespace {

// Length of the valid UTF-8 sequence starting at s[i], or 0 when it is invalid.
size_t Utf8SequenceLength(std::string_view s, size_t i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) return 1;
  size_t n;
  uint32_t cp;
  if (b0 >= 0xc2 && b0 <= 0xdf) {
    n = 2;
    cp = b0 & 0x1f;
  } else if (b0 >= 0xe0 && b0 <= 0xef) {
    n = 3;
    cp = b0 & 0x0f;
  } else if (b0 >= 0xf0 && b0 <= 0xf4) {
    n = 4;
    cp = b0 & 0x07;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3f);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff))) return 0;  // overlong / too big
  if (cp >= 0xd800 && cp <= 0xdfff) return 0;                                           // surrogate
  return n;
}

void AppendUtf8(uint32_t cp, std::string& out) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xc0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xe0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else {
    out.push_back(static_cast<char>(0xf0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  }
}

}  // namespace

bool IsValidUtf8(std::string_view s, size_t* bad_offset) {
  size_t i = 0;
  while (i < s.size()) {
    const size_t n = Utf8SequenceLength(s, i);
    if (n == 0) {
      if (bad_offset != nullptr) *bad_offset = i;
      return false;
    }
    i += n;
  }
  return true;
}

class JsonParser {
 public:
  JsonParser(std::string_view text, const JsonLimits& limits) : s_(text), limits_(limits) {}

  StatusOr<JsonValue> ParseDocument() {
    JsonValue v;
    LANLM_RETURN_IF_ERROR(ParseValue(0, v));
    SkipSpace();
    if (pos_ != s_.size()) return Error("unexpected data after the JSON value");
    return v;
  }

 private:
  Status Error(const std::string& what) const {
    return InvalidArgumentError("JSON: " + what + " at byte " + std::to_string(pos_));
  }

  void SkipSpace() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) ++pos_;
  }

  bool Consume(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  Status ParseValue(int depth, JsonValue& out) {
    if (depth > limits_.max_depth) return Error("nesting deeper than " + std::to_string(limits_.max_depth));
    if (++elements_ > limits_.max_elements) {
      return Error("more than " + std::to_string(limits_.max_elements) + " values");
    }
    SkipSpace();
    if (pos_ >= s_.size()) return Error("unexpected end of input");
    const char c = s_[pos_];
    if (c == '{') return ParseObject(depth, out);
    if (c == '[') return ParseArray(depth, out);
    if (c == '"') {
      out.type_ = JsonValue::Type::kString;
      return ParseString(out.text_);
    }
    if (c == '-' || (c >= '0' && c <= '9')) return ParseNumber(out);
    if (Consume("true")) {
      out = JsonValue::Bool(true);
      return OkStatus();
    }
    if (Consume("false")) {
      out = JsonValue::Bool(false);
      return OkStatus();
    }
    if (Consume("null")) {
      out = JsonValue::Null();
      return OkStatus();
    }
    return Error("unexpected character '" + std::string(1, c) + "'");
  }

  Status ParseObject(int depth, JsonValue& out) {
    out.type_ = JsonValue::Type::kObject;
    ++pos_;  // '{'
    SkipSpace();
    if (pos_ < s_.size() && s_[pos_] == '}') {
      ++pos_;
      return OkStatus();
    }
    std::unordered_set<std::string> keys;  // duplicate check in linear time
    while (true) {
      SkipSpace();
      if (pos_ >= s_.size() || s_[pos_] != '"') return Error("expected a string key");
      std::string key;
      LANLM_RETURN_IF_ERROR(ParseString(key));
      if (!keys.insert(key).second) return Error("duplicate key \"" + key + "\"");
      SkipSpace();
      if (pos_ >= s_.size() || s_[pos_] != ':') return Error("expected ':'");
      ++pos_;
      JsonValue value;
      LANLM_RETURN_IF_ERROR(ParseValue(depth + 1, value));
      out.members_.emplace_back(std::move(key), std::move(value));
      SkipSpace();
      if (pos_ < s_.size() && s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < s_.size() && s_[pos_] == '}') {
        ++pos_;
        return OkStatus();
      }
      return Error("expected ',' or '}'");
    }
  }

  Status ParseArray(int depth, JsonValue& out) {
    out.type_ = JsonValue::Type::kArray;
    ++pos_;  // '['
    SkipSpace();
    if (pos_ < s_.size() && s_[pos_] == ']') {
      ++pos_;
      return OkStatus();
    }
    while (true) {
      JsonValue value;
      LANLM_RETURN_IF_ERROR(ParseValue(depth + 1, value));
      out.items_.push_back(std::move(value));
      SkipSpace();
      if (pos_ < s_.size() && s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < s_.size() && s_[pos_] == ']') {
        ++pos_;
        return OkStatus();
      }
      return Error("expected ',' or ']'");
    }
  }

  Status ParseHex4(uint32_t& out) {
    if (pos_ + 4 > s_.size()) return Error("truncated \\u escape");
    out = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = s_[pos_++];
      out <<= 4;
      if (c >= '0' && c <= '9') {
        out |= static_cast<uint32_t>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        out |= static_cast<uint32_t>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        out |= static_cast<uint32_t>(c - 'A' + 10);
      } else {
        return Error("bad hex digit in \\u escape");
      }
    }
    return OkStatus();
  }

  Status ParseString(std::string& out) {
    ++pos_;  // opening quote
    out.clear();
    while (true) {
      if (pos_ >= s_.size()) return Error("unterminated string");
      const auto c = static_cast<unsigned char>(s_[pos_]);
      if (c == '"') {
        ++pos_;
        return OkStatus();
      }
      if (c < 0x20) return Error("control character in string");
      if (c != '\\') {
        const size_t n = Utf8SequenceLength(s_, pos_);
        if (n == 0) return Error("invalid UTF-8 in string");
        out.append(s_.substr(pos_, n));
        pos_ += n;
        continue;
      }
      if (++pos_ >= s_.size()) return Error("unterminated escape");
      const char e = s_[pos_++];
      switch (e) {
        case '"':
          out.push_back('"');
          break;
        case '\\':
          out.push_back('\\');
          break;
        case '/':
          out.push_back('/');
          break;
        case 'b':
          out.push_back('\b');
          break;
        case 'f':
          out.push_back('\f');
          break;
        case 'n':
          out.push_back('\n');
          break;
        case 'r':
          out.push_back('\r');
          break;
        case 't':
          out.push_back('\t');
          break;
        case 'u': {
          uint32_t cp = 0;
          LANLM_RETURN_IF_ERROR(ParseHex4(cp));
          if (cp >= 0xdc00 && cp <= 0xdfff) return Error("unpaired low surrogate");
          if (cp >= 0xd800 && cp <= 0xdbff) {
            if (!Consume("\\u")) return Error("unpaired high surrogate");
            uint32_t lo = 0;
            LANLM_RETURN_IF_ERROR(ParseHex4(lo));
            if (lo < 0xdc00 || lo > 0xdfff) return Error("bad low surrogate");
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
          }
          AppendUtf8(cp, out);
          break;
        }
        default:
          return Error("bad escape '\\" + std::string(1, e) + "'");
      }
    }
  }

  Status ParseNumber(JsonValue& out) {
    const size_t start = pos_;
    auto digits = [&] {
      const size_t d = pos_;
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
      return pos_ - d;
    };
    if (s_[pos_] == '-') ++pos_;
    if (pos_ < s_.size() && s_[pos_] == '0') {
      ++pos_;
    } else if (digits() == 0) {
      return Error("bad number");
    }
    if (pos_ < s_.size() && s_[pos_] == '.') {
      ++pos_;
      if (digits() == 0) return Error("bad number: no digits after '.'");
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
      if (digits() == 0) return Error("bad number: no exponent digits");
    }
    if (pos_ - start > 64) return Error("number longer than 64 characters");
    out.type_ = JsonValue::Type::kNumber;
    out.text_ = std::string(s_.substr(start, pos_ - start));
    errno = 0;
    out.number_ = std::strtod(out.text_.c_str(), nullptr);
    if (errno == ERANGE && (out.number_ > 1.0 || out.number_ < -1.0)) return Error("number out of range");
    return OkStatus();
  }

  std::string_view s_;
  JsonLimits limits_;
  size_t pos_ = 0;
  int64_t elements_ = 0;
};

StatusOr<JsonValue> ParseJson(std::string_view text, const JsonLimits& limits) {
  JsonParser parser(text, limits);
  return parser.ParseDocument();
}

}  // namespace lanlm::engine
