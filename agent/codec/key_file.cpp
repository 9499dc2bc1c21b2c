#include "agent/codec/key_file.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>

#include "agent/codec/aes_gcm.h"

namespace ferry {
namespace {

constexpr std::string_view kPrefix = "ferry-aes256:";
constexpr size_t kHexLen = 64;
// Longest valid file: prefix, hex and a newline. Reading one byte more tells a valid file
// from one with trailing content without reading an arbitrarily large file.
constexpr size_t kMaxFileLen = kPrefix.size() + kHexLen + 1;

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

Status badFormat(const std::string& path) {
  // Never echo the contents: a near-miss key file still holds most of a key.
  return invalidArgument("key file " + path +
                         ": expected one line \"ferry-aes256:<64 hex digits>\"" +
                         " (generate one with `ferry keygen --type aes256`)");
}

// Closes `fd` on every path out of the scope.
struct FdCloser {
  int fd;
  ~FdCloser() {
    if (fd >= 0) ::close(fd);
  }
};

Status writeAll(int fd, const char* p, size_t n, const std::string& path) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return errnoStatus("write " + path, errno);
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return Status::ok();
}

// Makes the new directory entry durable: without it a power cut right after keygen can
// leave no key file while data keys wrapped with the key are already on disk.
Status syncParentDir(const std::string& path) {
  std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (parent.empty()) parent = ".";
  int dfd = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return errnoStatus("open directory " + parent.string(), errno);
  FdCloser closer{dfd};
  if (::fsync(dfd) != 0 && errno != EINVAL) {  // EINVAL: the file system cannot sync dirs
    return errnoStatus("fsync directory " + parent.string(), errno);
  }
  return Status::ok();
}

}  // namespace

uint32_t keyIdOf(const std::array<uint8_t, 32>& bytes) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), md, &md_len, EVP_sha256(), nullptr) != 1 ||
      md_len < 4) {
    // SHA-256 is always available in OpenSSL's default provider; without it nothing in
    // the agent's crypto works and sealing fails loudly elsewhere.
    return 0;
  }
  return (uint32_t{md[0]} << 24) | (uint32_t{md[1]} << 16) | (uint32_t{md[2]} << 8) |
         uint32_t{md[3]};
}

Result<KeyMaterial> loadKeyFile(const std::string& path) {
  // O_NONBLOCK: opening a FIFO planted at the path must not hang the agent; it is then
  // refused as not a regular file. fstat on the open fd checks the file actually read.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) return errnoStatus("key file " + path, errno);
  FdCloser closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) return errnoStatus("stat key file " + path, errno);
  if (!S_ISREG(st.st_mode)) return invalidArgument("key file " + path + ": not a regular file");
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return permissionDenied("key file " + path + " has mode " + mode +
                            " and is accessible by group or others: chmod 600 " + path);
  }

  char buf[kMaxFileLen + 1];
  size_t len = 0;
  while (len < sizeof(buf)) {
    ssize_t r = ::read(fd, buf + len, sizeof(buf) - len);
    if (r < 0) {
      if (errno == EINTR) continue;
      OPENSSL_cleanse(buf, sizeof(buf));
      return errnoStatus("read key file " + path, errno);
    }
    if (r == 0) break;
    len += static_cast<size_t>(r);
  }
  std::string_view text(buf, len);
  if (!text.empty() && text.back() == '\n') text.remove_suffix(1);

  KeyMaterial key;
  bool ok = text.size() == kPrefix.size() + kHexLen && text.substr(0, kPrefix.size()) == kPrefix;
  for (size_t i = 0; ok && i < key.bytes.size(); ++i) {
    int hi = hexValue(text[kPrefix.size() + 2 * i]);
    int lo = hexValue(text[kPrefix.size() + 2 * i + 1]);
    if (hi < 0 || lo < 0) {
      ok = false;
    } else {
      key.bytes[i] = static_cast<uint8_t>((hi << 4) | lo);
    }
  }
  OPENSSL_cleanse(buf, sizeof(buf));
  if (!ok) {
    OPENSSL_cleanse(key.bytes.data(), key.bytes.size());
    return badFormat(path);
  }
  key.id = keyIdOf(key.bytes);
  return key;
}

Result<KeyMaterial> writeNewKeyFile(const std::string& path) {
  KeyMaterial key;
  if (RAND_bytes(key.bytes.data(), static_cast<int>(key.bytes.size())) != 1) {
    return opensslError("RAND_bytes");
  }
  key.id = keyIdOf(key.bytes);

  static constexpr char kHex[] = "0123456789abcdef";
  char line[kPrefix.size() + kHexLen + 1];
  kPrefix.copy(line, kPrefix.size());
  for (size_t i = 0; i < key.bytes.size(); ++i) {
    line[kPrefix.size() + 2 * i] = kHex[key.bytes[i] >> 4];
    line[kPrefix.size() + 2 * i + 1] = kHex[key.bytes[i] & 0xF];
  }
  line[sizeof(line) - 1] = '\n';

  // O_EXCL: an existing key may already wrap data keys; replacing it would make every
  // block sealed under it unreadable. O_EXCL also refuses to follow a planted symlink.
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0600);
  if (fd < 0) {
    int err = errno;
    OPENSSL_cleanse(line, sizeof(line));
    if (err == EEXIST) {
      return Status(StatusCode::kAlreadyExists,
                    "key file " + path + " already exists; refusing to overwrite it");
    }
    return errnoStatus("create key file " + path, err);
  }
  Status st = Status::ok();
  // The umask may have narrowed the mode (harmless) but fchmod pins it to exactly 0600.
  if (::fchmod(fd, 0600) != 0) st = errnoStatus("chmod key file " + path, errno);
  if (st.isOk()) st = writeAll(fd, line, sizeof(line), path);
  OPENSSL_cleanse(line, sizeof(line));
  if (st.isOk() && ::fsync(fd) != 0) st = errnoStatus("fsync key file " + path, errno);
  if (::close(fd) != 0 && st.isOk()) st = errnoStatus("close key file " + path, errno);
  if (st.isOk()) st = syncParentDir(path);
  if (!st.isOk()) {
    // A half-written key file would be refused at load and block the next keygen.
    ::unlink(path.c_str());
    OPENSSL_cleanse(key.bytes.data(), key.bytes.size());
    return st;
  }
  return key;
}

}  // namespace ferry
