#include "tests/support/temp_dir.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace ferry::test {

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string templ = std::string(base && *base ? base : "/tmp") + "/ferry-test-XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = templ;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void writeFile(const std::string& path, const std::string& contents, int mode) {
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << contents;
  }
  ::chmod(path.c_str(), static_cast<mode_t>(mode));
}

size_t lineCount(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  size_t n = 0;
  std::string line;
  while (std::getline(in, line)) ++n;
  return n;
}

uintmax_t flipMiddleByteOfLargest(const std::string& dir, const std::string& ext, unsigned char mask) {
  std::filesystem::path largest;
  uintmax_t size = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() == ext && e.file_size() > size) {
      size = e.file_size();
      largest = e.path();
    }
  }
  if (size == 0) return 0;
  std::fstream f(largest, std::ios::in | std::ios::out | std::ios::binary);
  const auto middle = static_cast<std::streamoff>(size / 2);
  char c = 0;
  f.seekg(middle);
  f.read(&c, 1);
  c = static_cast<char>(c ^ static_cast<char>(mask));
  f.seekp(middle);
  f.write(&c, 1);
  return size;
}

}  // namespace ferry::test
