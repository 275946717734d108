// The escaping of token text in the tokenizer file (tokenizer_io.cc): a token's bytes as one
// field of a line, with no space, tab, CR or line break, and back. "\\" for a backslash, "\n",
// "\t", "\r", "\s" (space), "\xHH" for other bytes below 0x20 and 0x7f; every other byte is
// literal.
#pragma once

#include <string>
#include <string_view>

namespace lanlm::engine {

// Appends the escaped form of text to out.
void AppendEscaped(std::string_view text, std::string& out);

// Reverses AppendEscaped; false with an error message (without line) on a bad escape or a raw
// control byte.
bool Unescape(std::string_view in, std::string& out, std::string& error);

// For error messages: the escaped text in single quotes, cut to 60 bytes, with bytes that are
// not valid UTF-8 shown as \xHH so the message stays printable.
std::string Quote(std::string_view text);

}  // namespace lanlm::engine
