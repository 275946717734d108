// Tests of the strict JSON reader/writer against hand-written documents (RFC 8259 cases).
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

TEST(JsonTest, RejectsMalformedDocumentsWithOffset) {
  const char* bad[] = {
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
  for (const char* text : bad) {
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

TEST(JsonTest, Utf8Validation) {
  size_t bad = 0;
  EXPECT_TRUE(IsValidUtf8("plain \xc3\xa9 \xf4\x8f\xbf\xbf"));
  EXPECT_FALSE(IsValidUtf8("ab\xf4\x90\x80\x80", &bad));  // above U+10FFFF
  EXPECT_EQ(bad, 2u);
  EXPECT_FALSE(IsValidUtf8("\xe0\x80\x80", &bad));  // overlong
  EXPECT_FALSE(IsValidUtf8("x\xe2\x82", &bad));     // truncated
  EXPECT_EQ(bad, 1u);
  EXPECT_FALSE(IsValidUtf8("\x80"));
}

}  // namespace
}  // namespace lanlm::engine
