// A strict JSON reader and writer for file headers (checkpoints) and metadata, on top of
// nlohmann-json (json.cc; the library stays out of this header). Parsing follows RFC 8259 with
// no extensions (no comments, no trailing commas, no NaN), rejects duplicate object keys and
// invalid UTF-8, and bounds nesting depth and element counts so hostile input costs at most
// linear time and memory; it never throws. Not a general-purpose DOM library: numbers are
// kept as their source text plus a double.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/base/status.h"

namespace lanlm::engine {

class JsonValue {
 public:
  enum class Type { kNull, kBool, kNumber, kString, kArray, kObject };

  JsonValue() = default;
  static JsonValue Null() { return JsonValue(); }
  static JsonValue Bool(bool b);
  static JsonValue Integer(int64_t x);
  static JsonValue String(std::string s);
  static JsonValue Array();
  static JsonValue Object();

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::kNull; }
  bool is_bool() const { return type_ == Type::kBool; }
  bool is_number() const { return type_ == Type::kNumber; }
  bool is_string() const { return type_ == Type::kString; }
  bool is_array() const { return type_ == Type::kArray; }
  bool is_object() const { return type_ == Type::kObject; }

  bool bool_value() const { return bool_; }
  double number() const { return number_; }
  // The number as written in the source ("12", "-3.5e2"); for integers see AsInt64.
  const std::string& number_text() const { return text_; }
  // INVALID_ARGUMENT unless the number is an integer literal (no fraction or exponent)
  // that fits in int64_t.
  StatusOr<int64_t> AsInt64() const;
  const std::string& string() const { return text_; }

  // Arrays.
  const std::vector<JsonValue>& items() const { return items_; }
  void Append(JsonValue v) { items_.push_back(std::move(v)); }
  // Objects, in insertion (source) order; keys are unique.
  const std::vector<std::pair<std::string, JsonValue>>& members() const { return members_; }
  // Adds or replaces a member.
  void Set(const std::string& key, JsonValue v);
  // nullptr when absent.
  const JsonValue* Find(std::string_view key) const;

  // Compact serialisation; strings escaped so the output is valid JSON and pure ASCII
  // except for the UTF-8 of non-ASCII characters, which is copied as is. Integer literals are
  // written exactly; other numbers as the shortest text that reads back as the same double.
  std::string Serialize() const;

 private:
  Type type_ = Type::kNull;
  bool bool_ = false;
  double number_ = 0.0;
  std::string text_;  // string value, or number source text
  std::vector<JsonValue> items_;
  std::vector<std::pair<std::string, JsonValue>> members_;

  friend class JsonParser;
  friend class JsonWriter;
};

struct JsonLimits {
  int max_depth = 16;
  int64_t max_elements = 1 << 20;  // total values in the document
};

// Parses exactly one JSON value (surrounded by optional whitespace). Errors (INVALID_ARGUMENT)
// say what is wrong and at which byte offset: "JSON: duplicate key "a" at byte 13". The entry
// point of the JSON fuzz target: it must return a Status for any bytes, never throw or crash.
StatusOr<JsonValue> ParseJson(std::string_view text, const JsonLimits& limits = {});

}  // namespace lanlm::engine
