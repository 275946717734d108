// libFuzzer target: the tokenizer file reader (BpeTokenizer::Deserialize, what LoadFromFile
// calls after reading the file) on arbitrary bytes. A tokenizer that loads must encode and
// decode text (including unknown characters and invalid UTF-8) without crashing, give ids
// inside its vocabulary, and serialise to a file that loads to the same hash.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "engine/base/check.h"
#include "engine/tokenizer/tokenizer.h"

using lanlm::engine::BpeTokenizer;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto tokenizer = BpeTokenizer::Deserialize(bytes);
  if (!tokenizer.ok()) return 0;
  const std::string text = "the cat sat on the mat.\n  caf\xC3\xA9 \xF0\x9F\x98\x80 \xFF\xFE x";
  const std::vector<int32_t> ids = tokenizer->Encode(text);
  for (int32_t id : ids) LANLM_CHECK(id >= 0 && id < tokenizer->vocab_size(), "Encode gave an id outside the vocabulary");
  (void)tokenizer->Decode(ids);
  const std::vector<int32_t> odd = {-1, 0, 1, 2, 3, tokenizer->vocab_size(), tokenizer->vocab_size() - 1, 1 << 30};
  (void)tokenizer->Decode(odd);
  auto again = BpeTokenizer::Deserialize(tokenizer->Serialize());
  LANLM_CHECK(again.ok(), "a loaded tokenizer's Serialize() does not load: " + again.status().ToString());
  LANLM_CHECK(again->Hash() == tokenizer->Hash(), "tokenizer hash changed over Serialize/Deserialize");
  return 0;
}
