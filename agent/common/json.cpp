#include "ferry/json.h"

namespace ferry {

size_t validUtf8SequenceLength(std::string_view s, size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) return 1;
  // Length of the sequence and the allowed range of its second byte (RFC 3629 table),
  // which rules out overlong forms, surrogates and code points above U+10FFFF.
  size_t len = 0;
  unsigned char lo = 0x80, hi = 0xbf;
  if (c >= 0xc2 && c <= 0xdf) {
    len = 2;
  } else if (c >= 0xe0 && c <= 0xef) {
    len = 3;
    if (c == 0xe0) lo = 0xa0;
    if (c == 0xed) hi = 0x9f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    len = 4;
    if (c == 0xf0) lo = 0x90;
    if (c == 0xf4) hi = 0x8f;
  }
  if (len == 0 || i + len > s.size()) return 0;
  for (size_t k = 1; k < len; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xbf)) return 0;
  }
  return len;
}

void appendUtf8Replacing(std::string& out, std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    size_t j = i;
    size_t len = 0;
    while (j < s.size() && (len = validUtf8SequenceLength(s, j)) != 0) j += len;
    out.append(s.data() + i, j - i);
    if (j == s.size()) break;
    out += "\xEF\xBF\xBD";  // U+FFFD
    i = j + 1;
  }
}

void appendJsonString(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      // Runs of plain ASCII are copied in one piece.
      if (c >= 0x20 && c != '"' && c != '\\') {
        size_t j = i + 1;
        while (j < s.size()) {
          const auto d = static_cast<unsigned char>(s[j]);
          if (d < 0x20 || d >= 0x80 || d == '"' || d == '\\') break;
          ++j;
        }
        out.append(s.data() + i, j - i);
        i = j;
        continue;
      }
      switch (c) {
        case '"':
          out += "\\\"";
          break;
        case '\\':
          out += "\\\\";
          break;
        case '\n':
          out += "\\n";
          break;
        case '\r':
          out += "\\r";
          break;
        case '\t':
          out += "\\t";
          break;
        case '\b':
          out += "\\b";
          break;
        case '\f':
          out += "\\f";
          break;
        default:
          out += "\\u00";
          out.push_back(kHex[c >> 4]);
          out.push_back(kHex[c & 0xf]);
      }
      ++i;
      continue;
    }
    const size_t len = validUtf8SequenceLength(s, i);
    if (len != 0) {
      out.append(s.data() + i, len);
      i += len;
    } else {
      out += "\\ufffd";
      ++i;
    }
  }
  out.push_back('"');
}

}  // namespace ferry
