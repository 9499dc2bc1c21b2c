// `ferry receive --listen ADDR --out DIR [--key FILE]... [--durability fsync|os]
// [--min-free SIZE] [--max-body SIZE] [--max-connections N]`: the reference upstream
// endpoint (agent/receive/receiver.h). Prints "listening on IP:PORT" once it listens, logs
// totals once a minute, and on SIGTERM/SIGINT stops, prints the totals and exits 0.
#include <pthread.h>
#include <signal.h>

#include <cerrno>
#include <cstdio>
#include <ctime>

#include "agent/cli/commands.h"
#include "agent/codec/key_file.h"
#include "agent/receive/receiver.h"
#include "ferry/log.h"
#include "ferry/options.h"

namespace ferry::cli {
namespace {

std::string totals(const ReceiverStats& s) {
  return strCat("batches ", s.batches, ", records ", s.records, ", bytes ", s.bytes, ", duplicates ",
                s.duplicates, ", rejected ", s.rejected, ", unavailable ", s.unavailable, ", errors ", s.errors);
}

}  // namespace

int receive(const ReceiveArgs& args) {
  ReceiverOptions opts;
  opts.fsync = args.durability != "os";
  opts.max_connections = args.max_connections;
  if (!parseSize(args.min_free, &opts.min_free)) {
    std::fprintf(stderr, "ferry receive: --min-free %s is not a size (e.g. 64MiB)\n", args.min_free.c_str());
    return 2;
  }
  if (!parseSize(args.max_body, &opts.max_body) || opts.max_body == 0) {
    std::fprintf(stderr, "ferry receive: --max-body %s is not a size (e.g. 64MiB)\n", args.max_body.c_str());
    return 2;
  }
  std::vector<KeyMaterial> keys;
  for (const std::string& path : args.key_files) {
    auto key = loadKeyFile(path);
    if (!key.isOk()) {
      std::fprintf(stderr, "ferry receive: %s\n", key.status().toString().c_str());
      return 2;
    }
    for (const KeyMaterial& k : keys) {
      if (k.id == key->id) {
        std::fprintf(stderr, "ferry receive: key %s is given twice\n", path.c_str());
        return 2;
      }
    }
    keys.push_back(*key);
  }

  // Block the stop signals before libmicrohttpd starts its threads, so they inherit the
  // mask and only this thread takes the signals, with sigtimedwait.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  Receiver receiver;
  Status st = receiver.start(args.listen, args.out_dir, std::move(keys), opts);
  if (!st.isOk()) {
    std::fprintf(stderr, "ferry receive: %s\n", st.toString().c_str());
    return 1;
  }
  std::printf("listening on %s\n", receiver.boundAddress().c_str());
  std::fflush(stdout);
  logAt(LogLevel::kInfo, "receive", "writing batches to ", args.out_dir, " (durability ",
        opts.fsync ? "fsync" : "os", ", ", args.key_files.empty() ? "no keys" : "envelopes must be encrypted",
        ")");

  for (;;) {
    timespec minute{60, 0};
    int sig = sigtimedwait(&stop_signals, nullptr, &minute);
    if (sig == SIGTERM || sig == SIGINT) {
      logAt(LogLevel::kInfo, "receive", "signal ", sig, ": stopping");
      break;
    }
    // Timeout (EAGAIN) or EINTR: a periodic totals line.
    if (sig < 0 && errno == EAGAIN) logAt(LogLevel::kInfo, "receive", "totals: ", totals(receiver.stats()));
  }
  receiver.stop();
  std::printf("totals: %s\n", totals(receiver.stats()).c_str());
  std::fflush(stdout);
  return 0;
}

}  // namespace ferry::cli
