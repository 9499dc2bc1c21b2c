// JSON text helpers shared by inputs, outputs, the logger and the tools.
// Thread-safety: stateless functions.
#pragma once

#include <string>
#include <string_view>

namespace ferry {

// Appends `s` as a JSON string literal (with its quotes). Quotes, backslashes and control
// characters are escaped; bytes that are not valid UTF-8 become U+FFFD, so the output is
// always valid JSON. No allocation beyond growing `out`.
void appendJsonString(std::string& out, std::string_view s);

}  // namespace ferry
