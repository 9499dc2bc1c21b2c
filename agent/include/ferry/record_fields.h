// Reading and editing fields of a record (one JSON object on one line) without building a
// tree: processors find a field's bytes, compare its value, or copy the record with members
// set, removed, renamed or kept. Untouched members keep their exact bytes (numbers are not
// reformatted; neighbouring untouched members are copied in one piece, whitespace included),
// and nothing is allocated per record once the caller's scratch strings and output arena have
// grown to their working size.
//
// Field paths: members separated by dots, `a.b.c` = member c of object b of object a.
// A segment holding a dot, a space or any other character outside [A-Za-z0-9_-] is written
// in backticks: `site.id`.x or `odd key`. Array elements are not addressed. Keys are
// compared after JSON unescaping ("a\u0062" is the key ab).
//
// Records come from inputs that checked them; the scanner still never reads past the text
// it is given, and reports a malformed record (the caller refuses it, reason "bad_json")
// instead of guessing.
//
// Thread-safety: functions are stateless; a FieldEditor is immutable after compile() and
// may be shared by threads (each thread passes its own EditScratch).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/status.h"

namespace ferry {

using FieldPath = std::vector<std::string>;

// Parses `a.b`, `a.`b c``. Errors say what is wrong at which column (1-based).
// With `consumed`, parsing stops at the first character that cannot continue the path (a
// space, an operator) and stores how many bytes were read; the path must not be empty.
Result<FieldPath> parseFieldPath(std::string_view text, size_t* consumed = nullptr);
// The path in the syntax parseFieldPath() reads (backticks where needed).
std::string formatFieldPath(const FieldPath& path);

enum class JsonKind : uint8_t { kInvalid, kNull, kBool, kNumber, kString, kObject, kArray };

// The kind of one JSON value (its first byte; the value is not validated further).
JsonKind jsonKindOf(std::string_view value);

// The members of one JSON object, in order. `object` is the object's text (leading and
// trailing whitespace allowed).
class JsonObjectReader {
 public:
  explicit JsonObjectReader(std::string_view object);
  // The next member: its key as written between the quotes (still escaped) and its value's
  // text. False at the end of the object or when the text is malformed (then failed()).
  bool next(std::string_view* key, std::string_view* value);
  bool failed() const { return failed_; }
  // Of the member next() returned last: whether its key holds an escape (compare it with
  // jsonKeyEquals then), and where its text (key quote to value end) starts in `object`.
  bool keyEscaped() const { return key_escaped_; }
  size_t memberBegin() const { return member_begin_; }

 private:
  std::string_view text_;
  size_t pos_ = 0;
  size_t member_begin_ = 0;
  bool key_escaped_ = false;
  bool started_ = false;
  bool done_ = false;
  bool failed_ = false;
};

// The end (exclusive) of the JSON value starting at text[pos] (after whitespace), or
// std::string_view::npos when it is malformed or cut. Strings, objects and arrays are
// matched by their delimiters; scalars run to the next delimiter.
size_t skipJsonValue(std::string_view text, size_t pos);

// Unescapes the inside of a JSON string (without its quotes) into `out` (replacing it).
// False for a bad escape. \u escapes become UTF-8 (a lone surrogate becomes U+FFFD).
bool unescapeJsonString(std::string_view raw, std::string& out);

// True when the escaped key `raw` (as JsonObjectReader gives it) names `name`. `scratch` is
// used only when `raw` holds an escape.
bool jsonKeyEquals(std::string_view raw, std::string_view name, std::string& scratch);

enum class FindResult : uint8_t { kFound, kMissing, kMalformed };
// Finds the value at `path` in the object `record`.
FindResult findField(std::string_view record, std::span<const std::string> path,
                     std::string_view* value, std::string& scratch);

// A compiled set of edits applied to records in one pass. Build it with the add*() calls,
// then compile(); apply() copies a record to `out` with every edit made.
//  - set(path, json):   the member gets `json` (compact JSON text, checked by the caller);
//                       missing parent objects are created; a parent that is not an object
//                       is replaced by an object.
//  - remove(path):      the member is left out (nothing happens when it is missing).
//  - rename(from, to):  the value of `from` moves to `to` (replacing what `to` held); nothing
//                       happens when `from` is missing.
//  - keep(path):        only kept paths (and the objects leading to them) remain; used alone.
//                       An object on the way that holds none of them is left out.
// Edits are applied in this order: renames (values read from the original record), removes,
// sets, keeps. Setting a path twice keeps the last value.
class FieldEditor {
 public:
  FieldEditor();
  ~FieldEditor();
  FieldEditor(FieldEditor&&) noexcept;
  FieldEditor& operator=(FieldEditor&&) noexcept;

  void set(FieldPath path, std::string json);
  void remove(FieldPath path);
  void rename(FieldPath from, FieldPath to);
  void keep(FieldPath path);
  // The member gets a value that changes per record: before apply(), put its compact JSON in
  // scratch.renamed[slot] (the returned slot; size the vector with slots() first); an empty
  // view leaves the member as it is.
  size_t setPerRecord(FieldPath path);
  size_t slots() const { return slots_; }
  // Checks the edits (a path both kept and set, a rename into its own subtree, …).
  Status compile();

  struct Scratch {
    std::vector<std::string_view>
        renamed;  // per slot: a rename source's value, or a per-record value
    std::string key;
  };
  // Appends the edited copy of `record` to `out`. False (nothing meaningful appended; the
  // caller truncates `out` back) when the record is malformed.
  bool apply(std::string_view record, std::string& out, Scratch& scratch) const;

 private:
  struct Node;
  Node& nodeFor(const FieldPath& path);
  bool writeObject(std::string_view object, const Node& node, std::string& out,
                   Scratch& scratch) const;
  void writeNew(const Node& node, std::string& out, const Scratch& scratch) const;
  bool hasWrite(const Node& node, const Scratch& scratch) const;

  struct Rename {
    FieldPath from;
    FieldPath to;
    size_t slot;  // in Scratch::renamed
  };
  std::vector<Rename> renames_;
  size_t slots_ = 0;         // renames and per-record values
  std::vector<Node> nodes_;  // nodes_[0] is the root; children refer by index
  std::string conflict_;     // found while adding edits, reported by compile()
  bool keep_mode_ = false;
  bool compiled_ = false;
};

}  // namespace ferry
