#include "ferry/record_fields.h"

#include <algorithm>
#include <array>
#include <cstring>

#include "ferry/json.h"

namespace ferry {

namespace {

// Byte classes for the scanner: JSON whitespace, and the bytes that end a scalar.
constexpr uint8_t kSpace = 1;
constexpr uint8_t kScalarEnd = 2;
constexpr auto kClass = [] {
  std::array<uint8_t, 256> t{};
  for (unsigned char c : {' ', '\t', '\n', '\r'}) t[c] = kSpace | kScalarEnd;
  for (unsigned char c : {',', '}', ']', ':', '"'}) t[c] = kScalarEnd;
  return t;
}();

bool isSpace(char c) { return (kClass[static_cast<unsigned char>(c)] & kSpace) != 0; }

size_t skipSpace(std::string_view t, size_t pos) {
  while (pos < t.size() && isSpace(t[pos])) ++pos;
  return pos;
}

bool isBareFieldChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

// The end (exclusive) of the string whose opening quote is at t[pos], or npos. Sets
// *escaped when the string holds a backslash.
size_t skipString(std::string_view t, size_t pos, bool* escaped = nullptr) {
  size_t i = pos + 1;
  for (;;) {
    // The next quote; it closes the string unless an odd run of backslashes precedes it.
    const void* q = i < t.size() ? std::memchr(t.data() + i, '"', t.size() - i) : nullptr;
    if (q == nullptr) return std::string_view::npos;
    const size_t quote = static_cast<size_t>(static_cast<const char*>(q) - t.data());
    size_t slashes = 0;
    while (quote - slashes > pos + 1 && t[quote - slashes - 1] == '\\') ++slashes;
    if (escaped != nullptr && !*escaped) {
      *escaped = std::memchr(t.data() + i, '\\', quote - i) != nullptr;
    }
    if (slashes % 2 == 0) return quote + 1;
    i = quote + 1;
  }
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool readHex4(std::string_view raw, size_t pos, uint32_t* out) {
  if (pos + 4 > raw.size()) return false;
  uint32_t v = 0;
  for (size_t k = 0; k < 4; ++k) {
    int h = hexValue(raw[pos + k]);
    if (h < 0) return false;
    v = (v << 4) | static_cast<uint32_t>(h);
  }
  *out = v;
  return true;
}

void appendUtf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xc0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xe0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else {
    out.push_back(static_cast<char>(0xf0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  }
}

}  // namespace

Result<FieldPath> parseFieldPath(std::string_view text, size_t* consumed) {
  FieldPath path;
  size_t i = 0;
  auto at = [](size_t pos) { return "column " + std::to_string(pos + 1) + ": "; };
  for (;;) {
    std::string segment;
    if (i < text.size() && text[i] == '`') {
      size_t close = text.find('`', i + 1);
      if (close == std::string_view::npos)
        return invalidArgument(at(i) + "unterminated ` in field name");
      if (close == i + 1) return invalidArgument(at(i) + "empty field name ``");
      segment.assign(text.substr(i + 1, close - i - 1));
      i = close + 1;
    } else {
      size_t start = i;
      while (i < text.size() && isBareFieldChar(text[i])) ++i;
      if (i == start) {
        if (i >= text.size()) return invalidArgument(at(i) + "expected a field name");
        return invalidArgument(at(i) + "expected a field name, got '" + std::string(1, text[i]) +
                               "' (write names with other characters in backticks: `odd name`)");
      }
      segment.assign(text.substr(start, i - start));
    }
    path.push_back(std::move(segment));
    if (i < text.size() && text[i] == '.') {
      ++i;
      continue;
    }
    if (i < text.size() && consumed == nullptr) {
      return invalidArgument(
          at(i) + "unexpected '" + std::string(1, text[i]) +
          "' in field path (write names with other characters in backticks: `odd name`)");
    }
    break;
  }
  if (consumed != nullptr) *consumed = i;
  return path;
}

std::string formatFieldPath(const FieldPath& path) {
  std::string out;
  for (const std::string& seg : path) {
    if (!out.empty()) out.push_back('.');
    bool bare = !seg.empty() && std::all_of(seg.begin(), seg.end(), isBareFieldChar);
    if (bare) {
      out += seg;
    } else {
      out += '`';
      out += seg;
      out += '`';
    }
  }
  return out;
}

JsonKind jsonKindOf(std::string_view value) {
  if (value.empty()) return JsonKind::kInvalid;
  switch (value[0]) {
    case '"':
      return JsonKind::kString;
    case '{':
      return JsonKind::kObject;
    case '[':
      return JsonKind::kArray;
    case 't':
    case 'f':
      return JsonKind::kBool;
    case 'n':
      return JsonKind::kNull;
    default:
      break;
  }
  if (value[0] == '-' || (value[0] >= '0' && value[0] <= '9')) return JsonKind::kNumber;
  return JsonKind::kInvalid;
}

size_t skipJsonValue(std::string_view t, size_t pos) {
  pos = skipSpace(t, pos);
  if (pos >= t.size()) return std::string_view::npos;
  const char c = t[pos];
  if (c == '"') return skipString(t, pos);
  if (c == '{' || c == '[') {
    int depth = 0;
    for (size_t i = pos; i < t.size(); ++i) {
      const char d = t[i];
      if (d == '"') {
        i = skipString(t, i);
        if (i == std::string_view::npos) return i;
        --i;  // the loop's ++i steps past the closing quote
      } else if (d == '{' || d == '[') {
        ++depth;
      } else if (d == '}' || d == ']') {
        if (--depth == 0) return i + 1;
      }
    }
    return std::string_view::npos;
  }
  size_t i = pos;
  while (i < t.size() && (kClass[static_cast<unsigned char>(t[i])] & kScalarEnd) == 0) ++i;
  return i == pos || c == '}' || c == ']' ? std::string_view::npos : i;
}

JsonObjectReader::JsonObjectReader(std::string_view object) : text_(object) {}

bool JsonObjectReader::next(std::string_view* key, std::string_view* value) {
  if (done_ || failed_) return false;
  size_t pos = skipSpace(text_, pos_);
  if (!started_) {
    started_ = true;
    if (pos >= text_.size() || text_[pos] != '{') {
      failed_ = true;
      return false;
    }
    pos = skipSpace(text_, pos + 1);
    if (pos < text_.size() && text_[pos] == '}') {
      done_ = true;
      return false;
    }
  } else {
    if (pos < text_.size() && text_[pos] == '}') {
      done_ = true;
      return false;
    }
    if (pos >= text_.size() || text_[pos] != ',') {
      failed_ = true;
      return false;
    }
    pos = skipSpace(text_, pos + 1);
  }
  if (pos >= text_.size() || text_[pos] != '"') {
    failed_ = true;
    return false;
  }
  member_begin_ = pos;
  key_escaped_ = false;
  const size_t key_end = skipString(text_, pos, &key_escaped_);
  if (key_end == std::string_view::npos) {
    failed_ = true;
    return false;
  }
  *key = text_.substr(pos + 1, key_end - pos - 2);
  pos = skipSpace(text_, key_end);
  if (pos >= text_.size() || text_[pos] != ':') {
    failed_ = true;
    return false;
  }
  pos = skipSpace(text_, pos + 1);
  const size_t end = skipJsonValue(text_, pos);
  if (end == std::string_view::npos) {
    failed_ = true;
    return false;
  }
  *value = text_.substr(pos, end - pos);
  pos_ = end;
  return true;
}

bool unescapeJsonString(std::string_view raw, std::string& out) {
  out.clear();
  for (size_t i = 0; i < raw.size(); ++i) {
    const char c = raw[i];
    if (c != '\\') {
      out.push_back(c);
      continue;
    }
    if (++i >= raw.size()) return false;
    switch (raw[i]) {
      case '"':
        out.push_back('"');
        break;
      case '\\':
        out.push_back('\\');
        break;
      case '/':
        out.push_back('/');
        break;
      case 'b':
        out.push_back('\b');
        break;
      case 'f':
        out.push_back('\f');
        break;
      case 'n':
        out.push_back('\n');
        break;
      case 'r':
        out.push_back('\r');
        break;
      case 't':
        out.push_back('\t');
        break;
      case 'u': {
        uint32_t cp = 0;
        if (!readHex4(raw, i + 1, &cp)) return false;
        i += 4;
        if (cp >= 0xd800 && cp <= 0xdbff) {
          uint32_t lo = 0;
          if (i + 2 < raw.size() && raw[i + 1] == '\\' && raw[i + 2] == 'u' &&
              readHex4(raw, i + 3, &lo) && lo >= 0xdc00 && lo <= 0xdfff) {
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            i += 6;
          } else {
            cp = 0xfffd;
          }
        } else if (cp >= 0xdc00 && cp <= 0xdfff) {
          cp = 0xfffd;
        }
        appendUtf8(out, cp);
        break;
      }
      default:
        return false;
    }
  }
  return true;
}

bool jsonKeyEquals(std::string_view raw, std::string_view name, std::string& scratch) {
  if (raw.find('\\') == std::string_view::npos) return raw == name;
  return unescapeJsonString(raw, scratch) && scratch == name;
}

FindResult findField(std::string_view record, std::span<const std::string> path,
                     std::string_view* value, std::string& scratch) {
  std::string_view object = record;
  for (size_t depth = 0; depth < path.size(); ++depth) {
    JsonObjectReader reader(object);
    std::string_view k, v;
    bool found = false;
    while (reader.next(&k, &v)) {
      if (reader.keyEscaped() ? jsonKeyEquals(k, path[depth], scratch) : k == path[depth]) {
        found = true;
        break;
      }
    }
    if (reader.failed()) return FindResult::kMalformed;
    if (!found) return FindResult::kMissing;
    if (depth + 1 == path.size()) {
      *value = v;
      return FindResult::kFound;
    }
    if (jsonKindOf(v) != JsonKind::kObject) return FindResult::kMissing;
    object = v;
  }
  *value = record;  // the empty path: the record itself
  return FindResult::kFound;
}

// ---- FieldEditor ----

struct FieldEditor::Node {
  enum class Op : uint8_t { kNone, kRemove, kSet, kSetRenamed, kKeep };
  std::string name;
  std::vector<uint32_t> children;
  Op op = Op::kNone;
  std::string value;  // kSet
  size_t rename = 0;  // kSetRenamed: index into Scratch::renamed
  std::string path;   // for compile() errors
};

FieldEditor::FieldEditor() = default;
FieldEditor::~FieldEditor() = default;
FieldEditor::FieldEditor(FieldEditor&&) noexcept = default;
FieldEditor& FieldEditor::operator=(FieldEditor&&) noexcept = default;

FieldEditor::Node& FieldEditor::nodeFor(const FieldPath& path) {
  if (nodes_.empty()) nodes_.emplace_back();
  uint32_t cur = 0;
  std::string shown;
  for (const std::string& seg : path) {
    shown += (shown.empty() ? "" : ".") + formatFieldPath({seg});
    uint32_t found = 0;
    for (uint32_t c : nodes_[cur].children) {
      if (nodes_[c].name == seg) found = c;
    }
    if (found == 0) {
      found = static_cast<uint32_t>(nodes_.size());
      Node n;
      n.name = seg;
      n.path = shown;
      nodes_.push_back(std::move(n));
      nodes_[cur].children.push_back(found);
    }
    cur = found;
  }
  return nodes_[cur];
}

void FieldEditor::set(FieldPath path, std::string json) {
  Node& n = nodeFor(path);
  n.op = Node::Op::kSet;
  n.value = std::move(json);
}

void FieldEditor::remove(FieldPath path) { nodeFor(path).op = Node::Op::kRemove; }

void FieldEditor::rename(FieldPath from, FieldPath to) {
  Node& src = nodeFor(from);
  if (src.op != Node::Op::kNone && conflict_.empty()) {
    conflict_ = "field " + src.path + " is renamed and also edited otherwise";
  }
  src.op = Node::Op::kRemove;
  Node& n = nodeFor(to);
  if (n.op != Node::Op::kNone && conflict_.empty()) {
    conflict_ = "field " + n.path + " is the target of a rename and also edited otherwise";
  }
  n.op = Node::Op::kSetRenamed;
  n.rename = slots_++;
  renames_.push_back({std::move(from), std::move(to), n.rename});
}

size_t FieldEditor::setPerRecord(FieldPath path) {
  Node& n = nodeFor(path);
  if (n.op != Node::Op::kNone && conflict_.empty()) {
    conflict_ = "field " + n.path + " is set per record and also edited otherwise";
  }
  n.op = Node::Op::kSetRenamed;
  n.rename = slots_++;
  return n.rename;
}

void FieldEditor::keep(FieldPath path) {
  keep_mode_ = true;
  nodeFor(path).op = Node::Op::kKeep;
}

Status FieldEditor::compile() {
  if (nodes_.empty()) nodes_.emplace_back();
  if (!conflict_.empty()) return invalidArgument(conflict_);
  for (const Node& n : nodes_) {
    if (n.children.size() > 64)
      return invalidArgument("at most 64 edited fields per object (at " + n.path + ")");
    if (keep_mode_ && n.op != Node::Op::kNone && n.op != Node::Op::kKeep) {
      return invalidArgument("keep cannot be combined with other edits (" + n.path + ")");
    }
    if (n.op != Node::Op::kNone && !n.children.empty()) {
      return invalidArgument("field " + n.path + " is edited and so is a field inside it (" +
                             nodes_[n.children.front()].path + ")");
    }
  }
  for (const Rename& r : renames_) {
    const FieldPath& from = r.from;
    const FieldPath& to = r.to;
    const size_t common = std::min(from.size(), to.size());
    if (std::equal(from.begin(), from.begin() + static_cast<std::ptrdiff_t>(common), to.begin())) {
      return invalidArgument("cannot rename " + formatFieldPath(from) + " to " +
                             formatFieldPath(to) + " (one is inside the other)");
    }
  }
  compiled_ = true;
  return Status::ok();
}

bool FieldEditor::hasWrite(const Node& node, const Scratch& scratch) const {
  switch (node.op) {
    case Node::Op::kSet:
      return true;
    case Node::Op::kSetRenamed:
      return !scratch.renamed[node.rename].empty();
    case Node::Op::kNone:
      for (uint32_t c : node.children) {
        if (hasWrite(nodes_[c], scratch)) return true;
      }
      return false;
    default:
      return false;
  }
}

void FieldEditor::writeNew(const Node& node, std::string& out, const Scratch& scratch) const {
  out.push_back('{');
  bool first = true;
  for (uint32_t c : node.children) {
    const Node& child = nodes_[c];
    if (!hasWrite(child, scratch)) continue;
    if (!first) out.push_back(',');
    first = false;
    appendJsonString(out, child.name);
    out.push_back(':');
    if (child.op == Node::Op::kSet) {
      out += child.value;
    } else if (child.op == Node::Op::kSetRenamed) {
      out += scratch.renamed[child.rename];
    } else {
      writeNew(child, out, scratch);
    }
  }
  out.push_back('}');
}

bool FieldEditor::writeObject(std::string_view object, const Node& node, std::string& out,
                              Scratch& scratch) const {
  uint64_t seen = 0;
  out.push_back('{');
  bool first = true;
  // Members that stay as they are are copied in runs: one append per run of neighbours.
  size_t run_begin = std::string_view::npos;
  size_t run_end = 0;
  auto flush = [&] {
    if (run_begin == std::string_view::npos) return;
    if (!first) out.push_back(',');
    first = false;
    out.append(object.data() + run_begin, run_end - run_begin);
    run_begin = std::string_view::npos;
  };
  auto member = [&](std::string_view raw_key) {
    flush();
    if (!first) out.push_back(',');
    first = false;
    out.push_back('"');
    out += raw_key;
    out += "\":";
  };
  JsonObjectReader reader(object);
  std::string_view k, v;
  while (reader.next(&k, &v)) {
    const Node* match = nullptr;
    for (size_t i = 0; i < node.children.size(); ++i) {
      const Node& child = nodes_[node.children[i]];
      if (reader.keyEscaped() ? jsonKeyEquals(k, child.name, scratch.key) : k == child.name) {
        match = &child;
        seen |= uint64_t{1} << i;
        break;
      }
    }
    if ((match == nullptr && !keep_mode_) || (match != nullptr && match->op == Node::Op::kKeep)) {
      if (run_begin == std::string_view::npos) run_begin = reader.memberBegin();
      run_end = static_cast<size_t>(v.data() + v.size() - object.data());
      continue;
    }
    flush();
    if (match == nullptr) continue;  // keep mode: not kept
    switch (match->op) {
      case Node::Op::kRemove:
      case Node::Op::kKeep:
        break;
      case Node::Op::kSet:
        member(k);
        out += match->value;
        break;
      case Node::Op::kSetRenamed:
        member(k);
        out += scratch.renamed[match->rename].empty() ? v : scratch.renamed[match->rename];
        break;
      case Node::Op::kNone:
        if (jsonKindOf(v) == JsonKind::kObject) {
          const size_t mark = out.size();
          const bool was_first = first;
          member(k);
          const size_t inner = out.size();
          if (!writeObject(v, *match, out, scratch)) return false;
          if (keep_mode_ && out.size() == inner + 2) {  // "{}": nothing kept inside, leave it out
            out.resize(mark);
            first = was_first;
          }
        } else if (!keep_mode_) {
          member(k);
          if (hasWrite(*match, scratch)) {
            writeNew(*match, out, scratch);  // a set below a non-object replaces it
          } else {
            out += v;
          }
        }
        break;
    }
  }
  if (reader.failed()) return false;
  flush();
  for (size_t i = 0; i < node.children.size(); ++i) {
    if ((seen >> i) & 1) continue;
    const Node& child = nodes_[node.children[i]];
    if (!hasWrite(child, scratch)) continue;
    if (!first) out.push_back(',');
    first = false;
    appendJsonString(out, child.name);
    out.push_back(':');
    if (child.op == Node::Op::kSet) {
      out += child.value;
    } else if (child.op == Node::Op::kSetRenamed) {
      out += scratch.renamed[child.rename];
    } else {
      writeNew(child, out, scratch);
    }
  }
  out.push_back('}');
  return true;
}

bool FieldEditor::apply(std::string_view record, std::string& out, Scratch& scratch) const {
  if (nodes_.empty()) return false;  // not compiled
  scratch.renamed.resize(slots_);    // per-record values the caller set stay
  for (const Rename& r : renames_) {
    std::string_view v;
    FindResult found = findField(record, r.from, &v, scratch.key);
    if (found == FindResult::kMalformed) return false;
    scratch.renamed[r.slot] = found == FindResult::kFound ? v : std::string_view();
  }
  return writeObject(record, nodes_[0], out, scratch);
}

}  // namespace ferry
