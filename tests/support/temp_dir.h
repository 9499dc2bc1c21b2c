// A directory under $TMPDIR (or /tmp) removed with its contents when the object dies.
// Thread-safety: one owner.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

namespace ferry::test {

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// Whole-file helpers for tests.
std::string readFile(const std::string& path);
void writeFile(const std::string& path, const std::string& contents, int mode = 0644);
// Lines in a file (0 when it does not exist).
size_t lineCount(const std::string& path);

// Damage tests: XORs `mask` into the middle byte of the largest file in `dir` whose name
// ends in `ext` (e.g. ".sst", ".log"). Returns that file's size, 0 when there is none.
uintmax_t flipMiddleByteOfLargest(const std::string& dir, const std::string& ext, unsigned char mask);

}  // namespace ferry::test
