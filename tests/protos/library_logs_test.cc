// Library log lines become one line each (issue 12: no multi-line libprotobuf dumps on the
// coordinator's stderr for a client's malformed message).
#include "protos/library_logs.h"

#include <gtest/gtest.h>

namespace lanlm::protos {
namespace {

TEST(LibraryLogsTest, OneLineCollapsesLineBreaksAndSpaces) {
  EXPECT_EQ(OneLine("String field 'lanlm.v1.StartRequest.prompt' contains invalid UTF-8 data when parsing a "
                    "protocol buffer.\n  Use the 'bytes' type if you intend to send raw bytes. \n"),
            "String field 'lanlm.v1.StartRequest.prompt' contains invalid UTF-8 data when parsing a protocol "
            "buffer. Use the 'bytes' type if you intend to send raw bytes.");
  EXPECT_EQ(OneLine("\r\n\t"), "");
  EXPECT_EQ(OneLine("a"), "a");
}

}  // namespace
}  // namespace lanlm::protos
