// Tests of the strict JSON reader/writer (nlohmann-json underneath) against hand-written
// documents (RFC 8259 cases), the bounds and duplicate-key rule it adds, and mutated input.
#include "engine/io/json.h"

#include <gtest/gtest.h>

#include <string>

namespace lanlm::engine {
namespace {

TEST(JsonTest, ParsesEveryValueType) {
  auto v = ParseJson(R"( {"a": [1, -2.5e3, true, false, null], "b": {"c": "d"}, "e": ""} )");
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  ASSERT_TRUE(v->is_object());
  const JsonValue* a = v->Find("a");
  ASSERT_NE(a, nullptr);
  ASSERT_EQ(a->items().size(), 5u);
  EXPECT_EQ(*a->items()[0].AsInt64(), 1);
  EXPECT_EQ(a->items()[1].number(), -2500.0);
  EXPECT_FALSE(a->items()[1].AsInt64().ok());
  EXPECT_TRUE(a->items()[2].bool_value());
  EXPECT_TRUE(a->items()[2].is_bool());
  EXPECT_FALSE(a->items()[3].bool_value());
  EXPECT_TRUE(a->items()[4].is_null());
  EXPECT_EQ(v->Find("b")->Find("c")->string(), "d");
  EXPECT_EQ(v->Find("e")->string(), "");
  EXPECT_EQ(v->Find("zz"), nullptr);
  // Members keep source order.
  EXPECT_EQ(v->members()[0].first, "a");
  EXPECT_EQ(v->members()[2].first, "e");
}

TEST(JsonTest, DecodesEscapesAndSurrogatePairs) {
  auto v = ParseJson(R"("q\" b\\ s\/ \b\f\n\r\t \u00e9 \u20ac \ud83d\ude00")");
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->string(), "q\" b\\ s/ \b\f\n\r\t \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
}

TEST(JsonTest, RoundTripsArbitraryBytesOfValidUtf8) {
  std::string s;
  for (int c = 1; c < 128; ++c) s.push_back(static_cast<char>(c));
  s += "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
  s.push_back('\0');
  JsonValue obj = JsonValue::Object();
  obj.Set("k\n", JsonValue::String(s));
  const std::string text = obj.Serialize();
  for (char c : text) EXPECT_GE(static_cast<unsigned char>(c), 0x20) << "raw control character in output";
  auto back = ParseJson(text);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->Find("k\n")->string(), s);
}

TEST(JsonTest, IntegersKeepExactValue) {
  auto v = ParseJson("[9007199254740993, -9223372036854775808, 9223372036854775808]");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v->items()[0].AsInt64(), 9007199254740993LL);  // not representable as double
  EXPECT_EQ(*v->items()[1].AsInt64(), INT64_MIN);
  EXPECT_FALSE(v->items()[2].AsInt64().ok());
  EXPECT_EQ(JsonValue::Integer(-42).Serialize(), "-42");
}

// Documents every parser must refuse, each with a byte offset in its error.
constexpr const char* kMalformed[] = {
    "",
    "{",
    "{\"a\":1,}",
    "[1,]",
    "{'a':1}",
    "{\"a\" 1}",
    "[01]",
    "[1.]",
    "[.5]",
    "[1e]",
    "[+1]",
    "NaN",
    "[Infinity]",
    "tru",
    "\"abc",
    "\"\\x\"",
    "\"\\u12\"",
    "\"\\ud800\"",
    "\"\\udc00\"",
    "\"a\tb\"",
    "{} x",
    "[1] [2]",
    "{\"a\":1,\"a\":2}",
    "\"\xff\"",
    "\"\xc0\xaf\"",
    "\"\xed\xa0\x80\"",
    "// c\n1",
    "[1e999]",
};

TEST(JsonTest, RejectsMalformedDocumentsWithOffset) {
  for (const char* text : kMalformed) {
    auto v = ParseJson(text);
    EXPECT_FALSE(v.ok()) << "accepted: " << text;
    if (!v.ok()) {
      EXPECT_NE(v.status().message().find("at byte"), std::string::npos) << v.status().message();
    }
  }
  auto dup = ParseJson("{\"a\":1,\"a\":2}");
  EXPECT_NE(dup.status().message().find("duplicate key \"a\""), std::string::npos) << dup.status().message();
}

TEST(JsonTest, BoundsNestingAndElementCount) {
  JsonLimits limits;
  limits.max_depth = 4;
  EXPECT_TRUE(ParseJson("[[[[1]]]]", limits).ok());
  auto deep = ParseJson("[[[[[1]]]]]", limits);
  EXPECT_FALSE(deep.ok());
  EXPECT_NE(deep.status().message().find("nesting deeper than 4"), std::string::npos);
  // Deep input far beyond the stack: rejected early, not a crash.
  EXPECT_FALSE(ParseJson(std::string(1000000, '['), {}).ok());
  limits.max_elements = 3;
  EXPECT_TRUE(ParseJson("[1,2]", limits).ok());
  EXPECT_FALSE(ParseJson("[1,2,3]", limits).ok());
}

TEST(JsonTest, SerializesCompactlyInInsertionOrder) {
  JsonValue obj = JsonValue::Object();
  obj.Set("z", JsonValue::Integer(-9223372036854775807LL - 1));
  obj.Set("a", JsonValue::Array());
  obj.Set("s", JsonValue::String("q\"\\/\b\f\n\r\t\x01\xc3\xa9"));
  obj.Set("t", JsonValue::Bool(true));
  obj.Set("n", JsonValue::Null());
  EXPECT_EQ(obj.Serialize(),
            R"({"z":-9223372036854775808,"a":[],"s":"q\"\\/\b\f\n\r\t\u0001)"
            "\xc3\xa9"
            R"(","t":true,"n":null})");
  // Parsed numbers keep their value: integers exactly, others as the same double.
  auto v = ParseJson("[18446744073709551615,-0.5,1e300]");
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->Serialize(), "[18446744073709551615,-0.5,1e+300]");
}

TEST(JsonTest, ArbitraryBytesGiveAStatusNeverACrash) {
  const std::string doc = R"({"__metadata__":{"k":"v\u00e9","n":"1"},"t":{"shape":[1,2],"data_offsets":[0,8]}})";
  uint64_t state = 12345;
  auto next = [&] {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<uint32_t>(state >> 33);
  };
  int accepted = 0;
  for (int round = 0; round < 20000; ++round) {
    std::string s = doc;
    const int edits = 1 + static_cast<int>(next() % 4);
    for (int e = 0; e < edits; ++e) {
      const size_t at = next() % s.size();
      switch (next() % 3) {
        case 0: s[at] = static_cast<char>(next()); break;
        case 1: s.erase(at, 1 + next() % 8); break;
        default: s.insert(at, 1, "{}[]\",:0-e\xff"[next() % 11]); break;
      }
      if (s.empty()) s = "x";
    }
    auto v = ParseJson(s);  // an exception or crash here fails the test
    if (v.ok()) {
      ++accepted;
      EXPECT_TRUE(ParseJson(v->Serialize()).ok()) << s;  // what it accepts, it writes back readably
    } else {
      EXPECT_NE(v.status().message().find("at byte"), std::string::npos) << v.status().message();
    }
  }
  EXPECT_GT(accepted, 0);
}

}  // namespace
}  // namespace lanlm::engine
