// JSON text helpers shared by inputs, outputs, the logger and the tools.
// Thread-safety: stateless functions.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace ferry {

// Appends `s` as a JSON string literal (with its quotes). Quotes, backslashes and control
// characters are escaped; bytes that are not valid UTF-8 become U+FFFD, so the output is
// always valid JSON. No allocation beyond growing `out`.
void appendJsonString(std::string& out, std::string_view s);

// Length of the well-formed UTF-8 sequence starting at s[i] (1 for ASCII), or 0 when the
// bytes there are not one (RFC 3629: no overlong forms, surrogates or code points above
// U+10FFFF; a sequence cut by the end of `s` is not one). Requires i < s.size().
size_t validUtf8SequenceLength(std::string_view s, size_t i);

// Appends `s` with every byte that does not start a well-formed UTF-8 sequence replaced by
// U+FFFD (EF BF BD).
void appendUtf8Replacing(std::string& out, std::string_view s);

}  // namespace ferry
