// A directory under $TMPDIR (or /tmp) removed with its contents when the object dies.
// Thread-safety: one owner.
#pragma once

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

}  // namespace ferry::test
