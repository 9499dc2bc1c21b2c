// `ferry run`: load the config, start the agent, then serve signals on the main thread.
//
// Signals are blocked in every thread (the mask is set before any thread starts) and
// taken synchronously with sigwait here, so no handler runs in an arbitrary thread.
// SIGTERM/SIGINT: stop within 5 s. SIGHUP: reload the file; an invalid file leaves the
// running config in place and says why.
#include <signal.h>

#include <memory>

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "agent/cli/commands.h"
#include "agent/config/loader.h"
#include "agent/core/agent.h"
#include "agent/metrics/metrics_server.h"
#include "ferry/log.h"

namespace ferry::cli {
namespace {

LoadResult load(const RunArgs& args) {
  LoadResult r = args.config_path.empty()
                     ? loadConfigText(embeddedDefaultConfig(), "<embedded default>", PluginRegistry::builtin())
                     : loadConfigFile(args.config_path, PluginRegistry::builtin());
  if (r.config && !args.data_dir.empty()) r.config->agent.data_dir = args.data_dir;
  return r;
}

}  // namespace

int runAgent(const RunArgs& args) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  // A closed stdout or socket must not kill the agent; writers see EPIPE instead.
  signal(SIGPIPE, SIG_IGN);

  LoadResult r = load(args);
  if (!r.config) {
    for (const ConfigProblem& p : r.problems) logError("config", p.toString());
    logError("config", "not starting: ", r.problems.size(), " problem(s) in ",
             args.config_path.empty() ? "<embedded default>" : args.config_path);
    return 2;
  }

  MetricsRegistry metrics;
  Agent agent(metrics, systemClock());
  Status st = agent.start(*r.config);
  if (!st.isOk()) {
    logError("agent", "cannot start: ", st.toString());
    return 1;
  }
  std::unique_ptr<MetricsServer> metrics_server;
  if (!r.config->metrics.listen.empty()) {
    auto server = MetricsServer::start(r.config->metrics.listen, metrics, [&agent] { agent.refreshGauges(); }, nullptr);
    if (server.isOk()) {
      metrics_server = std::move(server).value();
      logInfo("agent", "metrics on http://", metrics_server->address(), "/metrics");
    } else {
      // Observability must not take the data path down: run without it, loudly.
      logError("agent", server.status().message(), "; running without the metrics endpoint");
    }
  }

  for (;;) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) continue;
    if (sig == SIGHUP) {
      if (args.config_path.empty()) {
        logInfo("agent", "SIGHUP: running the embedded default config; nothing to reload");
        continue;
      }
      logInfo("agent", "SIGHUP: reloading ", args.config_path);
      LoadResult next = load(args);
      if (!next.config) {
        for (const ConfigProblem& p : next.problems) logError("config", p.toString());
        logError("agent", "reload rejected (", next.problems.size(), " problem(s)); still running the previous config");
        continue;
      }
      Status rs = agent.reload(*next.config);
      if (!rs.isOk()) logError("agent", "reload failed: ", rs.toString(), "; still running the previous config");
      continue;
    }
    logInfo("agent", sig == SIGTERM ? "SIGTERM" : "SIGINT", ": stopping");
    break;
  }
  metrics_server.reset();
  // Shutdown budget of the contract is 5 s; keep half a second in hand.
  agent.stop(std::chrono::steady_clock::now() + std::chrono::milliseconds(4500));
  if (agent.hasAbandonedSenders()) {
    // A thread is blocked inside an output: destructors would wait for it. What was
    // committed is on disk (the WAL); exit now, as SIGKILL would, but with status 0.
    logWarn("agent", "stopped, leaving a stuck output behind");
    std::_Exit(0);
  }
  logInfo("agent", "stopped");
  return 0;
}

}  // namespace ferry::cli
