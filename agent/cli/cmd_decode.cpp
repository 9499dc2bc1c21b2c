// `ferry decode [--key FILE]... [--in FILE] [-v]`: opens one envelope (docs/envelope.md) and
// prints its records as NDJSON on stdout; with -v a header summary goes to stderr.
#include <cinttypes>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <vector>

#include "agent/cli/commands.h"
#include "agent/codec/envelope.h"
#include "agent/codec/key_file.h"

namespace ferry::cli {
namespace {

// Envelopes hold one batch; their raw length field is 32 bits. A tool run by hand may use
// more memory than a receiver, but still not without bound.
constexpr size_t kMaxDecoded = size_t{1} << 30;
constexpr size_t kMaxFrame = size_t{1} << 30;

bool readAll(std::istream& in, std::string* out) {
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return false;
  *out = std::move(ss).str();
  return true;
}

}  // namespace

int decode(const DecodeArgs& args) {
  std::vector<KeyMaterial> keys;
  for (const std::string& path : args.key_files) {
    auto key = loadKeyFile(path);
    if (!key.isOk()) {
      std::fprintf(stderr, "ferry decode: %s\n", key.status().toString().c_str());
      return 1;
    }
    keys.push_back(*key);
  }
  std::string frame;
  if (args.in_path.empty() || args.in_path == "-") {
    std::ios::sync_with_stdio(false);
    if (!readAll(std::cin, &frame)) {
      std::fprintf(stderr, "ferry decode: cannot read stdin\n");
      return 1;
    }
  } else {
    std::ifstream in(args.in_path, std::ios::binary);
    if (!in || !readAll(in, &frame)) {
      std::fprintf(stderr, "ferry decode: cannot read %s\n", args.in_path.c_str());
      return 1;
    }
  }
  if (frame.size() > kMaxFrame) {
    std::fprintf(stderr, "ferry decode: input larger than 1 GiB is not one envelope\n");
    return 1;
  }
  if (frame.empty()) {
    std::fprintf(stderr, "ferry decode: no input (pipe an envelope into stdin, or use --in FILE)\n");
    return 1;
  }
  auto opened = openEnvelope(frame, keys, /*require_encryption=*/false, kMaxDecoded);
  if (!opened.isOk()) {
    std::string hint;
    if (opened.status().code() == StatusCode::kNotFound) hint = " (give the key file with --key FILE)";
    std::fprintf(stderr, "ferry decode: cannot open the envelope: %s%s\n",
                 opened.status().toString().c_str(), hint.c_str());
    return 1;
  }
  const EnvelopeInfo& info = opened->info;
  if (args.verbose) {
    char key[32] = "none (not encrypted)";
    if (info.encrypted()) std::snprintf(key, sizeof(key), "0x%08x", info.key_id);
    std::fprintf(stderr,
                 "envelope v%u: agent %s, stream %s, first seq %" PRIu64
                 ", %u records, %zu bytes (%zu NDJSON), key %s\n",
                 static_cast<unsigned>(info.version), info.agent.c_str(), info.stream.c_str(),
                 info.first_seq, info.count, frame.size(), opened->ndjson.size(), key);
  }
  if (std::fwrite(opened->ndjson.data(), 1, opened->ndjson.size(), stdout) != opened->ndjson.size() ||
      std::fflush(stdout) != 0) {
    std::fprintf(stderr, "ferry decode: cannot write stdout\n");
    return 1;
  }
  return 0;
}

}  // namespace ferry::cli
