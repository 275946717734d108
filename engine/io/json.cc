// JSON for file headers on top of nlohmann-json (Debian's nlohmann-json3-dev, header-only):
// its SAX parser does the RFC 8259 grammar, UTF-8 and surrogate checks without exceptions,
// and its serializer the escaping. What it does not do is ours, here: duplicate keys, nesting
// depth and element-count bounds, byte offsets in messages, and building JsonValue directly
// (no second DOM). nlohmann stays inside this file; json.h exposes only JsonValue.
#include "engine/io/json.h"

#include <charconv>
#include <cmath>
#include <cstddef>
#include <exception>
#include <iterator>
#include <nlohmann/json.hpp>
#include <unordered_set>

namespace lanlm::engine {

JsonValue JsonValue::Bool(bool b) {
  JsonValue v;
  v.type_ = Type::kBool;
  v.bool_ = b;
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

namespace {

using Json = nlohmann::ordered_json;  // keeps members in insertion order, as JsonValue does

// A number's JSON: integer literals as 64-bit integers (exact), the rest as their double.
Json NumberJson(const std::string& text, double number) {
  if (text.find_first_of(".eE") == std::string::npos) {
    const char* end = text.data() + text.size();
    int64_t i = 0;
    if (auto [p, ec] = std::from_chars(text.data(), end, i); ec == std::errc() && p == end) return Json(i);
    uint64_t u = 0;
    if (auto [p, ec] = std::from_chars(text.data(), end, u); ec == std::errc() && p == end) return Json(u);
  }
  return Json(number);
}

}  // namespace

// A JsonValue as nlohmann's value, for its serializer.
class JsonWriter {
 public:
  static Json Convert(const JsonValue& v) {
    switch (v.type_) {
      case JsonValue::Type::kNull:
        return Json(nullptr);
      case JsonValue::Type::kBool:
        return Json(v.bool_);
      case JsonValue::Type::kNumber:
        return NumberJson(v.text_, v.number_);
      case JsonValue::Type::kString:
        return Json(v.text_);
      case JsonValue::Type::kArray: {
        Json out = Json::array();
        for (const JsonValue& item : v.items_) out.push_back(Convert(item));
        return out;
      }
      case JsonValue::Type::kObject: {
        Json out = Json::object();
        for (const auto& [k, item] : v.members_) out[k] = Convert(item);
        return out;
      }
    }
    return Json(nullptr);
  }
};

std::string JsonValue::Serialize() const {
  // Compact, non-ASCII UTF-8 copied as is; invalid UTF-8 (which ParseJson would refuse) becomes
  // U+FFFD instead of an exception.
  return JsonWriter::Convert(*this).dump(-1, ' ', false, Json::error_handler_t::replace);
}

namespace {

// A char iterator that records how far the parser has read, so errors found by JsonParser
// (which nlohmann's SAX events do not locate) can name a byte offset.
class TrackedIterator {
 public:
  using iterator_category = std::input_iterator_tag;
  using value_type = char;
  using difference_type = std::ptrdiff_t;
  using pointer = const char*;
  using reference = const char&;

  TrackedIterator(const char* p, const char** read_to) : p_(p), read_to_(read_to) {}
  reference operator*() const { return *p_; }
  TrackedIterator& operator++() {
    *read_to_ = ++p_;
    return *this;
  }
  TrackedIterator operator++(int) {
    TrackedIterator before = *this;
    ++*this;
    return before;
  }
  bool operator==(const TrackedIterator& o) const { return p_ == o.p_; }
  bool operator!=(const TrackedIterator& o) const { return p_ != o.p_; }

 private:
  const char* p_;
  const char** read_to_;
};

// nlohmann's message without its "[json.exception...] parse error at line 1, column 5: "
// prefix and "; last read: '...'" suffix (which would echo raw, possibly invalid, input).
std::string LibraryMessage(const std::exception& e) {
  std::string m = e.what();
  if (size_t at = m.find("] "); at != std::string::npos) m.erase(0, at + 2);
  if (m.rfind("parse error", 0) == 0) {
    if (size_t at = m.find(": "); at != std::string::npos) m.erase(0, at + 2);
  }
  if (size_t at = m.find("; last read"); at != std::string::npos) m.erase(at);
  return m;
}

}  // namespace

// nlohmann SAX handler building a JsonValue under JsonLimits; every event returns false to
// stop the parse at the first error, which error() then holds.
class JsonParser {
 public:
  JsonParser(std::string_view text, const JsonLimits& limits)
      : begin_(text.data()), read_to_(text.data()), limits_(limits) {}

  StatusOr<JsonValue> Parse(std::string_view text) {
    TrackedIterator first(text.data(), &read_to_), last(text.data() + text.size(), &read_to_);
    bool ok = false;
    try {
      ok = Json::sax_parse(first, last, this);
    } catch (const std::exception& e) {  // bad_alloc; the SAX parser itself does not throw
      return InternalError(std::string("JSON: ") + e.what());
    }
    if (!ok) return error_.ok() ? Error("parse failed") : error_;
    return std::move(root_);
  }

  // SAX events (nlohmann's json_sax interface).
  bool null() { return Place(JsonValue()) != nullptr; }
  bool boolean(bool b) { return Place(JsonValue::Bool(b)) != nullptr; }
  bool number_integer(int64_t x) { return Place(JsonValue::Integer(x)) != nullptr; }
  bool number_unsigned(uint64_t x) { return Number(std::to_string(x), static_cast<double>(x)); }
  bool number_float(double x, const std::string& text) {
    if (!std::isfinite(x)) return Fail("number " + text.substr(0, 64) + " out of range");
    return Number(text, x);
  }
  bool string(std::string& s) { return Place(JsonValue::String(std::move(s))) != nullptr; }
  bool binary(Json::binary_t& /*unused*/) { return Fail("binary value"); }  // not produced by JSON text
  bool start_object(std::size_t /*unknown*/) { return Open(JsonValue::Object()); }
  bool start_array(std::size_t /*unknown*/) { return Open(JsonValue::Array()); }
  bool end_object() { return Close(); }
  bool end_array() { return Close(); }
  bool key(std::string& k) {
    if (!keys_.back().insert(k).second) return Fail("duplicate key \"" + k + "\"");
    key_ = std::move(k);
    return true;
  }
  bool parse_error(std::size_t position, const std::string& /*token*/, const nlohmann::detail::exception& e) {
    error_ = InvalidArgumentError("JSON: " + LibraryMessage(e) + " at byte " + std::to_string(position));
    return false;
  }

 private:
  Status Error(const std::string& what) const {
    return InvalidArgumentError("JSON: " + what + " at byte " + std::to_string(read_to_ - begin_));
  }
  bool Fail(const std::string& what) {
    error_ = Error(what);
    return false;
  }

  bool Number(const std::string& text, double x) {
    if (text.size() > 64) return Fail("number longer than 64 characters");
    JsonValue v;
    v.type_ = JsonValue::Type::kNumber;
    v.number_ = x;
    v.text_ = text;
    return Place(std::move(v)) != nullptr;
  }

  // Adds v under the open container (or as the document) after the depth and count checks.
  JsonValue* Place(JsonValue v) {
    const int depth = static_cast<int>(open_.size());
    if (depth > limits_.max_depth) {
      Fail("nesting deeper than " + std::to_string(limits_.max_depth));
      return nullptr;
    }
    if (++elements_ > limits_.max_elements) {
      Fail("more than " + std::to_string(limits_.max_elements) + " values");
      return nullptr;
    }
    if (open_.empty()) {
      root_ = std::move(v);
      return &root_;
    }
    JsonValue& parent = *open_.back();
    if (parent.type_ == JsonValue::Type::kArray) {
      parent.items_.push_back(std::move(v));
      return &parent.items_.back();
    }
    parent.members_.emplace_back(std::move(key_), std::move(v));
    return &parent.members_.back().second;
  }

  // Only the innermost open container grows, so pointers to the open ones stay valid.
  bool Open(JsonValue container) {
    JsonValue* placed = Place(std::move(container));
    if (placed == nullptr) return false;
    open_.push_back(placed);
    keys_.emplace_back();  // stays empty for an array
    return true;
  }

  bool Close() {
    open_.pop_back();
    keys_.pop_back();
    return true;
  }

  const char* begin_;
  const char* read_to_;  // one past the last byte nlohmann has read
  JsonLimits limits_;
  int64_t elements_ = 0;
  JsonValue root_;
  std::vector<JsonValue*> open_;                       // open containers, outermost first
  std::vector<std::unordered_set<std::string>> keys_;  // keys seen in each (linear-time duplicate check)
  std::string key_;                                    // the key of the next object member
  Status error_;
};

StatusOr<JsonValue> ParseJson(std::string_view text, const JsonLimits& limits) {
  JsonParser parser(text, limits);
  return parser.Parse(text);
}

}  // namespace lanlm::engine
