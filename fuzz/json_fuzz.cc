// libFuzzer target: the JSON reader (engine/io/json.h) on arbitrary bytes. Whatever parses
// must serialise to JSON that parses again to the same serialisation (a fixed point), and
// nothing may crash, hang or trip ASan/UBSan.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "engine/base/check.h"
#include "engine/io/json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = lanlm::engine::ParseJson(text);
  if (!parsed.ok()) return 0;
  const std::string once = parsed->Serialize();
  auto again = lanlm::engine::ParseJson(once);
  LANLM_CHECK(again.ok(), "serialised JSON does not parse again: " + again.status().ToString());
  LANLM_CHECK(again->Serialize() == once, "JSON serialisation is not a fixed point");
  return 0;
}
