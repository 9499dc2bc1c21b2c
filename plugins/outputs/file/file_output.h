// The `file` output: records as NDJSON appended to a local file, rotated by size.
//
// Each block is rendered into one reusable buffer and appended with one write loop; with
// `sync: true` the file (and, after it was created or rotated, its directory) is synced
// before send() reports the block delivered, so an acknowledged block survives a power
// cut. A restart keeps appending to the existing file.
//
// Exactly-once across crashes: every delivered block returns the commit state
// "v1 <dev> <inode> <length>" of the file after the write (after fdatasync with
// `sync: true`); the core stores it with the output's cursor in one atomic write and gives
// the last acknowledged one back to open(). The buffer replays every block after the
// cursor, so open() cuts what was written after that ack:
//   - the file at `path` is the committed one (same inode): ftruncate to <length>;
//   - `path.1` is the committed one (rotated after the ack): `path.1` is cut to <length>
//     and the current file, which holds only unacknowledged blocks, to 0; the same for a
//     different file at `path` with max_files 0 (its rotation replaces the file);
//   - no file at `path`: it is created, nothing to cut there;
//   - a committed file shorter than <length> (something else truncated it) is kept, with
//     a warning (only a partial last line is cut, as without a state);
//   - the committed file found neither at `path` nor at `path.1` (moved by hand, or more
//     than one rotation since the ack): appending as without a state, with a warning
//     (records may repeat); a malformed state is ignored the same way.
// This holds from the first acknowledged block on: without a state an existing file is
// appended to as it is (a crash before the first ack may leave the first block twice).
// Files are matched by inode number; a different device number alone (a remount, a
// container restart on overlayfs) is logged and tolerated. The cuts are fsync'ed with
// `sync: true`. With `sync: false` this still holds across a process crash (SIGKILL),
// since the page cache survives it, but not across a power cut.
//
// Torn lines: when a write or sync fails after part of a block reached the file, the file
// is cut back to its size before the block (ftruncate) before send() asks for a retry, so
// the retried block neither follows a torn line nor repeats records. If even the cut
// fails, the next send() cuts first and writes nothing until that succeeded. If the file
// must be opened again mid-run (a rotation could not create the new file), the output
// reopens with the last commit state it produced itself. Without a commit state, a
// partial last line found at open() (a crash in the middle of a write: its block was not
// acknowledged and comes again) is cut the same way, with a warning.
//
// Rotation: before a write would take the file past max_size, path.(N-1) becomes path.N
// ... path becomes path.1 (the newest) and a fresh path is created; N = max_files, and
// rotated files beyond N (e.g. left by a larger max_files) are deleted. A block bigger
// than max_size goes into a fresh file by itself. max_files 0 keeps no rotated files:
// the file is replaced by a fresh empty one (a new inode, so that a commit state taken
// before the rotation can never cut the new file at a wrong offset). The old file stays
// open until the new one exists, so the new file never gets the old one's inode number.
//
// Threading: one sender thread owns an instance (ferry/output.h); no internal locking.
// Blocking: open() and send() block on local disk I/O (fdatasync can take a while on
// flash); the deadline is not consulted, since a local write cannot be abandoned midway.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
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

// The position of a file output: which file (device and inode numbers) and how long it
// was after a block was written. Its text form is the output's commit state.
struct FileCommitState {
  uint64_t dev = 0;
  uint64_t inode = 0;
  uint64_t length = 0;

  // "v1 <dev> <inode> <length>", decimal.
  std::string format() const;
  // The exact form format() writes; nullopt for anything else (including empty).
  static std::optional<FileCommitState> parse(std::string_view text);
};

class FileOutput final : public Output {
 public:
  explicit FileOutput(FileOutputConfig config);
  ~FileOutput() override;  // closes the file if close() was not called
  FileOutput(const FileOutput&) = delete;
  FileOutput& operator=(const FileOutput&) = delete;

  // Creates missing parent directories and opens (or creates) the file for appending,
  // then cuts back what was written after `committed_state` (see the top of this file;
  // empty: only a partial last line is cut). Errors name the path; kResourceExhausted /
  // kUnavailable for transient causes (disk full, out of descriptors), other codes for
  // what needs an operator (no permission, a parent that is not a directory, a path that
  // is not a regular file). A failed open() may have cut part of what it meant to; the
  // cuts are idempotent, so calling it again with the same state is safe.
  Status open(std::string_view committed_state) override;

  // Appends the block; rotates first when needed. delivered once written (and synced),
  // with the commit state of the file after the write (an empty block: the current one);
  // retry with "<path>: <reason>" on any failure, after cutting a partial write back.
  // Never rejects.
  SendResult send(const Block& block, SteadyTime deadline) override;

  void close() override;

  const FileOutputConfig& config() const { return config_; }

 private:
  Status openFile(bool* created);
  Status cutToCommitted(const FileCommitState& committed, bool created);
  Result<bool> cutRotatedToCommitted(const FileCommitState& committed) const;
  Status cutPartialLine();
  Status syncAfterCut(int fd, const std::string& path) const;
  bool isCommittedFile(const FileCommitState& committed, uint64_t dev, uint64_t inode,
                       const std::string& path) const;
  FileCommitState currentState() const { return {dev_, inode_, size_}; }

 public:
  std::string openedState() const override { return last_state_; }

 private:
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
  uint64_t dev_ = 0;        // device and inode numbers of the open file
  uint64_t inode_ = 0;
  bool dir_dirty_ = false;  // a create or rename since the last directory sync
  bool torn_ = false;       // the file may end in a partial block beyond size_
  std::string buf_;         // the rendering of the current block; capacity reused
  // The last commit state this output produced (delivered, or the file as open() left
  // it): send() reopens with it, so a mid-run reopen cuts back to what was delivered.
  std::string last_state_;
};

// The descriptor the generated plugin table points at (plugins/CMakeLists.txt).
const PluginDescriptor& fileOutputDescriptor();

}  // namespace ferry
