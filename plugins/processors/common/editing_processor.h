// A processor that copies every record with a fixed set of field edits (set, remove, rename,
// keep; see FieldEditor in ferry/record_fields.h). The set, rename, drop, keep and enrich
// plugins are factories that build the edits from their options and return one of these.
//
// Thread-safety: process() is called by one thread at a time (the core serialises it); the
// scratch is the instance's. Ownership: owns its editor and scratch.
#pragma once

#include <memory>
#include <string>
#include <utility>

#include "ferry/processor.h"
#include "ferry/record_fields.h"
#include "plugins/processors/common/processor_options.h"

namespace ferry {

class EditingProcessor final : public Processor {
 public:
  explicit EditingProcessor(FieldEditor editor) : editor_(std::move(editor)) {}

  Status process(std::string_view /*stream*/, const RecordBatch& in, RecordBatch& out,
                 ProcessResult& result) override {
    std::string& data = out.mutableData();
    data.reserve(data.size() + in.bytes() + in.size() * 16);
    for (size_t i = 0; i < in.size(); ++i) {
      const size_t mark = data.size();
      if (editor_.apply(in[i], data, scratch_)) {
        out.commitRecord();
      } else {
        data.resize(mark);
        result.drop(kReasonBadJson);
      }
    }
    return Status::ok();
  }

 private:
  FieldEditor editor_;
  FieldEditor::Scratch scratch_;
};

// Compiles `editor` and wraps it; a conflict is reported at option `key`.
inline Result<std::unique_ptr<Processor>> editingProcessor(const Options& opts, FieldEditor editor,
                                                           std::string_view key = "fields") {
  Status st = editor.compile();
  if (!st.isOk()) return invalidArgument(locateOption(opts, key) + ": " + st.message());
  return std::unique_ptr<Processor>(std::make_unique<EditingProcessor>(std::move(editor)));
}

// The drop and keep factories: `op` (FieldEditor::remove or ::keep) for each path of the
// list option "fields".
inline Result<std::unique_ptr<Processor>> fieldListProcessor(const Options& opts,
                                                             void (FieldEditor::*op)(FieldPath)) {
  const auto& fields = opts.getStringList("fields");
  if (fields.empty())
    return invalidArgument(locateOption(opts, "fields") + ": give at least one field");
  FieldEditor editor;
  for (const std::string& field : fields) {
    auto path = fieldPathOption(opts, "fields", field);
    if (!path.isOk()) return path.status();
    (editor.*op)(std::move(path).value());
  }
  return editingProcessor(opts, std::move(editor));
}

}  // namespace ferry
