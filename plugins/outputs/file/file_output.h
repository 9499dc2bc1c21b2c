// The `file` output: records as NDJSON appended to a local file, rotated by size.
//
// Each block is rendered into one reusable buffer and appended with one write loop; with
// `sync: true` the file (and, after it was created or rotated, its directory) is synced
// before send() reports the block delivered, so an acknowledged block survives a power
// cut. A restart keeps appending to the existing file.
//
// Torn lines: when a write or sync fails after part of a block reached the file, the file
// is cut back to its size before the block (ftruncate) before send() asks for a retry, so
// the retried block neither follows a torn line nor repeats records. If even the cut
// fails, the next send() cuts first and writes nothing until that succeeded. A partial
// last line found at open() (a crash in the middle of a write: its block was not
// acknowledged and comes again) is cut the same way, with a warning.
//
// Rotation: before a write would take the file past max_size, path.(N-1) becomes path.N
// ... path becomes path.1 (the newest) and a fresh path is created; N = max_files, and
// rotated files beyond N (e.g. left by a larger max_files) are deleted. A block bigger
// than max_size goes into a fresh file by itself. max_files 0 keeps no rotated files:
// the file is truncated instead.
//
// Threading: one sender thread owns an instance (ferry/output.h); no internal locking.
// Blocking: open() and send() block on local disk I/O (fdatasync can take a while on
// flash); the deadline is not consulted, since a local write cannot be abandoned midway.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "ferry/output.h"
#include "ferry/plugin.h"
#include "ferry/status.h"

namespace ferry {

// The validated settings of one file output.
struct FileOutputConfig {
  static constexpr uint64_t kDefaultMaxSize = uint64_t{100} << 20;  // "100MiB"
  static constexpr int64_t kMaxMaxFiles = 1000;  // rotation renames every kept file
  static constexpr mode_t kDefaultMode = 0640;

  std::string path;
  uint64_t max_size = kDefaultMaxSize;
  int64_t max_files = 5;
  bool sync = true;
  mode_t mode = kDefaultMode;  // of files this output creates; applied exactly (no umask)
};

// Reads and checks the options of a `file` output (the descriptor's table). Unset values
// take the documented defaults. Errors are kInvalidArgument naming the key's location.
Result<FileOutputConfig> fileOutputConfigFromOptions(const Options& opts);

// Parses octal permissions ("0640", "640"). False for anything else, or above 07777.
bool parseFileMode(std::string_view text, mode_t* out);

class FileOutput final : public Output {
 public:
  explicit FileOutput(FileOutputConfig config);
  ~FileOutput() override;  // closes the file if close() was not called
  FileOutput(const FileOutput&) = delete;
  FileOutput& operator=(const FileOutput&) = delete;

  // Creates missing parent directories and opens (or creates) the file for appending.
  // Errors name the path; kResourceExhausted / kUnavailable for transient causes (disk
  // full, out of descriptors), other codes for what needs an operator (no permission,
  // a parent that is not a directory, a path that is not a regular file).
  Status open(std::string_view committed_state) override;

  // Appends the block; rotates first when needed. delivered once written (and synced);
  // retry with "<path>: <reason>" on any failure, after cutting a partial write back.
  // Never rejects.
  SendResult send(const Block& block, SteadyTime deadline) override;

  void close() override;

  const FileOutputConfig& config() const { return config_; }

 private:
  Status openFile();
  Status rotate();
  void pruneRotated() const;
  Status syncDirectory() const;
  SendResult failAfterWrite(uint64_t size_before, const Status& why);
  std::string rotatedPath(int64_t index) const;

  FileOutputConfig config_;
  std::string dir_;   // parent directory of config_.path ("." for a bare name)
  std::string base_;  // file name part of config_.path
  int fd_ = -1;
  uint64_t size_ = 0;       // file size as written by us
  bool dir_dirty_ = false;  // a create or rename since the last directory sync
  bool torn_ = false;       // the file may end in a partial block beyond size_
  std::string buf_;         // the rendering of the current block; capacity reused
};

// The descriptor the generated plugin table points at (plugins/CMakeLists.txt).
const PluginDescriptor& fileOutputDescriptor();

}  // namespace ferry
