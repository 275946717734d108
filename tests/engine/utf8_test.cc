// Strict UTF-8 decoding against the code points of known sequences, and rejection of every
// kind of malformed sequence (RFC 3629 table 3-7); AppendUtf8 inverts Utf8Decode.
#include "engine/base/utf8.h"

#include <gtest/gtest.h>

#include <string>

namespace lanlm::engine {
namespace {

int Decode(const std::string& s, uint32_t* cp) {
  return Utf8Decode(reinterpret_cast<const unsigned char*>(s.data()), s.size(), cp);
}

TEST(Utf8Test, DecodesValidSequences) {
  const struct {
    const char* bytes;
    uint32_t cp;
    int len;
  } cases[] = {{"A", 0x41, 1},
               {"\x7f", 0x7f, 1},
               {"\xc2\x80", 0x80, 2},
               {"é", 0xe9, 2},
               {"\xdf\xbf", 0x7ff, 2},
               {"\xe0\xa0\x80", 0x800, 3},
               {"日", 0x65e5, 3},
               {"\xef\xbf\xbf", 0xffff, 3},
               {"\xf0\x90\x80\x80", 0x10000, 4},
               {"🙂", 0x1f642, 4},
               {"\xf4\x8f\xbf\xbf", 0x10ffff, 4}};
  for (const auto& c : cases) {
    uint32_t cp = 0;
    EXPECT_EQ(Decode(c.bytes, &cp), c.len) << c.bytes;
    EXPECT_EQ(cp, c.cp) << c.bytes;
    std::string back;
    AppendUtf8(c.cp, back);
    EXPECT_EQ(back, c.bytes);
  }
  uint32_t cp = 0;
  EXPECT_EQ(Decode(std::string("\0", 1), &cp), 1);
  EXPECT_EQ(cp, 0u);
}

TEST(Utf8Test, RejectsMalformedSequences) {
  for (const char* bad :
       {"\x80", "\xbf", "\xc0\xaf", "\xc1\xbf", "\xc2", "\xc2\x41", "\xe0\x80\xaf", "\xe0\x9f\xbf", "\xed\xa0\x80",
        "\xed\xbf\xbf", "\xe6\x97", "\xf0\x8f\xbf\xbf", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xff", "\xfe"}) {
    uint32_t cp = 0;
    EXPECT_EQ(Decode(bad, &cp), 0) << "accepted " << ::testing::PrintToString(std::string(bad));
    EXPECT_FALSE(IsValidUtf8(bad));
  }
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("héllo wörld 日本語 🙂"));
  EXPECT_FALSE(IsValidUtf8("ok \xff ok"));
}

TEST(Utf8Test, IsValidUtf8NamesTheFirstBadByte) {
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
