#include "plugins/inputs/exec/exec.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ferry/metrics.h"
#include "tests/support/fakes.h"
#include "tests/support/log_capture.h"
#include "tests/support/temp_dir.h"

namespace ferry {
namespace {

using namespace std::chrono_literals;
using test::LogCapture;

Options execOptions(std::vector<std::string> command) {
  Options opts;
  opts.set("command", std::move(command), {});
  return opts;
}

// A /bin/sh -c script as the command.
Options shOptions(std::string script) { return execOptions({"/bin/sh", "-c", std::move(script)}); }

struct Harness {
  test::ManualClock clock;
  MetricsRegistry metrics;
  test::CaptureEmitter em;
  std::unique_ptr<Input> input;

  Status make(const Options& opts) {
    PluginContext ctx;
    ctx.agent_id = "edge-01";
    ctx.name = "probe";
    ctx.clock = &clock;
    ctx.metrics = &metrics;
    Result<std::unique_ptr<Input>> r = execInputDescriptor().make_input(ctx, opts);
    if (!r.isOk()) return r.status();
    input = std::move(r).value();
    return Status::ok();
  }
  Status collect() { return input->collect(em); }
  uint64_t errors(std::string_view reason) const {
    return metrics.counterValue("ferry_input_errors_total",
                                {{"input", "probe"}, {"reason", std::string(reason)}});
  }
  uint64_t dropped(const std::string& reason) { return em.dropped[reason]; }
};

double secondsSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

TEST_SUITE("inputs.exec") {
  TEST_CASE("the descriptor names the plugin and its options") {
    const PluginDescriptor& d = execInputDescriptor();
    CHECK(d.name == "exec");
    CHECK(d.kind == PluginKind::kInput);
    CHECK((d.make_input != nullptr));
    std::vector<std::string_view> keys;
    for (const OptionSpec& s : d.options) keys.push_back(s.key);
    CHECK(keys == std::vector<std::string_view>{"command", "interval", "timeout", "max_output_bytes", "env",
                                                "working_dir", "format", "pattern", "columns", "delimiter",
                                                "invalid_utf8"});
  }

  TEST_CASE("defaults: 10s interval, timeout = interval, json, 4MiB; bare names use PATH") {
    Result<ExecSettings> s = ExecSettings::fromOptions(execOptions({"sh", "-c", "true"}));
    REQUIRE(s.isOk());
    CHECK(s->command[0].starts_with("/"));
    CHECK(s->command[0].ends_with("/sh"));
    CHECK(s->interval == Duration(10s));
    CHECK(s->timeout == Duration(10s));
    CHECK(s->format.format == LineFormat::kJson);
    CHECK(s->max_output_bytes == 4u << 20);

    Options o = execOptions({"/bin/true"});
    o.set("interval", Duration(2s), {});
    Result<ExecSettings> s2 = ExecSettings::fromOptions(o);
    REQUIRE(s2.isOk());
    CHECK(s2->timeout == Duration(2s));
  }

  TEST_CASE("bad options are factory errors naming the key") {
    Harness h;
    Status st = h.make(execOptions({"ferry-no-such-command-xyz"}));
    CHECK(st.code() == StatusCode::kInvalidArgument);
    CHECK(st.message().find("command") != std::string::npos);
    CHECK(st.message().find("not found in PATH") != std::string::npos);

    st = h.make(execOptions({"/nonexistent/bin/tool"}));
    CHECK(st.code() == StatusCode::kInvalidArgument);
    CHECK(st.message().find("command") != std::string::npos);

    st = h.make(execOptions({"bin/relative"}));
    CHECK(st.message().find("absolute path") != std::string::npos);

    st = h.make(execOptions({}));
    CHECK(st.message().find("command") != std::string::npos);

    Options slow = execOptions({"/bin/true"});
    slow.set("interval", Duration(1s), {});
    slow.set("timeout", Duration(2s), {});
    st = h.make(slow);
    CHECK(st.message().find("timeout") != std::string::npos);

    Options zero = execOptions({"/bin/true"});
    zero.set("max_output_bytes", uint64_t{0}, {});
    CHECK(h.make(zero).message().find("max_output_bytes") != std::string::npos);

    Options bad_env = execOptions({"/bin/true"});
    bad_env.set("env", std::vector<std::pair<std::string, std::string>>{{"A=B", "x"}}, {});
    CHECK(h.make(bad_env).message().find("env") != std::string::npos);

    Options bad_dir = execOptions({"/bin/true"});
    bad_dir.set("working_dir", std::string("/nonexistent/dir"), {});
    CHECK(h.make(bad_dir).message().find("working_dir") != std::string::npos);
  }

  TEST_CASE("json: every line of a run is a record, all in one batch") {
    Harness h;
    REQUIRE(h.make(shOptions(R"(printf '{"a":1}\n  {"b":"x"}  \n\n{"c":[1,2]}')")).isOk());
    CHECK(h.input->interval() == Duration(10s));
    REQUIRE(h.collect().isOk());
    // The last line has no '\n': the command exited by itself, so it is complete.
    CHECK(h.em.records == std::vector<std::string>{R"({"a":1})", R"({"b":"x"})", R"({"c":[1,2]})"});
    CHECK(h.em.batches == 1);
    CHECK(h.em.streams == std::vector<std::string>{""});  // the input's own stream

    REQUIRE(h.collect().isOk());  // a polled input runs the command at every collect
    CHECK(h.em.records.size() == 6);
    CHECK(h.em.batches == 2);
  }

  TEST_CASE("a command without output emits nothing") {
    Harness h;
    REQUIRE(h.make(execOptions({"/bin/true"})).isOk());
    REQUIRE(h.collect().isOk());
    CHECK(h.em.batches == 0);
  }

  TEST_CASE("text: each line becomes {\"message\":..}, JSON-escaped") {
    Harness h;
    Options o = shOptions(R"(printf 'plain\nwith "quotes" and \\ and\ttab\r\n\377bad\n')");
    o.set("format", std::string("text"), {});
    o.set("invalid_utf8", std::string("replace"), {});
    REQUIRE(h.make(o).isOk());
    REQUIRE(h.collect().isOk());
    REQUIRE(h.em.records.size() == 3);
    CHECK(h.em.records[0] == R"({"message":"plain"})");
    CHECK(h.em.records[1] == R"({"message":"with \"quotes\" and \\ and\ttab"})");
    CHECK(h.em.records[2] == R"({"message":"\ufffdbad"})");  // invalid UTF-8 replaced
  }

  TEST_CASE("/bin/echo with an argv that is not split by a shell") {
    Harness h;
    REQUIRE(h.make(execOptions({"/bin/echo", R"({"ok":true, "s":"a b  c"})"})).isOk());
    REQUIRE(h.collect().isOk());
    CHECK(h.em.records == std::vector<std::string>{R"({"ok":true, "s":"a b  c"})"});
  }

  TEST_CASE("env adds and overrides variables; working_dir sets the directory") {
    test::TempDir dir;
    Harness h;
    Options o = shOptions(R"x(printf '%s|%s|%s\n' "$FERRY_X" "$HOME" "$(pwd -P)")x");
    o.set("format", std::string("text"), {});
    o.set("env",
          std::vector<std::pair<std::string, std::string>>{{"FERRY_X", "hello world"},
                                                           {"HOME", "/nowhere"}},
          {});
    o.set("working_dir", dir.path().string(), {});
    REQUIRE(h.make(o).isOk());
    REQUIRE(h.collect().isOk());
    REQUIRE(h.em.records.size() == 1);
    char real[4096];
    REQUIRE(::realpath(dir.path().c_str(), real) != nullptr);  // NOLINT
    CHECK(h.em.records[0] ==
          std::string(R"({"message":"hello world|/nowhere|)") + real + "\"}");
  }

  TEST_CASE("a non-zero exit status is logged and counted; its complete lines still arrive") {
    LogCapture logs;
    Harness h;
    REQUIRE(h.make(shOptions(R"(echo '{"a":1}'; exit 3)")).isOk());
    CHECK(h.collect().isOk());  // not fatal
    CHECK(h.em.records == std::vector<std::string>{R"({"a":1})"});
    CHECK(h.errors("exit_status") == 1);
    CHECK(logs.count("exited with status 3") == 1);
    CHECK(logs.count("probe") >= 1);
  }

  TEST_CASE("death by a signal is logged and counted") {
    LogCapture logs;
    Harness h;
    REQUIRE(h.make(shOptions(R"(echo '{"a":1}'; printf '{"partial":'; kill -9 $$)")).isOk());
    CHECK(h.collect().isOk());
    // The unterminated last line of a killed command is not complete: not emitted.
    CHECK(h.em.records == std::vector<std::string>{R"({"a":1})"});
    CHECK(h.errors("signal") == 1);
    CHECK(logs.count("killed by signal 9") == 1);
  }

  TEST_CASE("a hanging command is killed at the timeout; lines before it are kept") {
    LogCapture logs;
    Harness h;
    Options o = shOptions(
        R"(echo '{"before":1}'; printf '{"half":'; sleep 30; echo '{"after":1}')");
    o.set("interval", Duration(5s), {});
    o.set("timeout", Duration(300ms), {});
    REQUIRE(h.make(o).isOk());
    const auto t0 = std::chrono::steady_clock::now();
    CHECK(h.collect().isOk());
    const double took = secondsSince(t0);
    CHECK(took >= 0.29);
    CHECK(took < 1.5);
    CHECK(h.em.records == std::vector<std::string>{R"({"before":1})"});
    CHECK(h.errors("timeout") == 1);
    CHECK(h.errors("signal") == 0);
    CHECK(logs.count("did not finish within 300ms") == 1);
  }

  TEST_CASE("a command that ignores SIGTERM gets SIGKILL one second later") {
    LogCapture logs;
    Harness h;
    Options o = shOptions("trap '' TERM; sleep 30");
    o.set("interval", Duration(5s), {});
    o.set("timeout", Duration(200ms), {});
    REQUIRE(h.make(o).isOk());
    const auto t0 = std::chrono::steady_clock::now();
    CHECK(h.collect().isOk());
    const double took = secondsSince(t0);
    CHECK(took >= 1.15);
    CHECK(took < 2.5);
    CHECK(h.errors("timeout") == 1);
    CHECK(logs.count("did not finish within 200ms") == 1);
  }

  TEST_CASE("stopping the agent kills a running command") {
    Harness h;
    REQUIRE(h.make(execOptions({"/bin/sleep", "30"})).isOk());
    h.em.stop = true;
    const auto t0 = std::chrono::steady_clock::now();
    CHECK(h.collect().code() == StatusCode::kCancelled);
    CHECK(secondsSince(t0) < 1.5);
    CHECK(h.em.batches == 0);
  }

  TEST_CASE("stderr lines are logged with the input's name, rate-limited") {
    LogCapture logs;
    Harness h;
    REQUIRE(h.make(shOptions(R"(echo 'disk sensor offline' >&2; echo '{"a":1}';
        i=0; while [ $i -lt 50 ]; do echo "noise $i" >&2; i=$((i+1)); done)"))
                .isOk());
    REQUIRE(h.collect().isOk());
    CHECK(h.em.records.size() == 1);
    REQUIRE(logs.count("disk sensor offline") == 1);
    for (const std::string& l : logs.lines) {
      if (l.find("disk sensor offline") != std::string::npos) {
        CHECK(l.find("probe") != std::string::npos);
        CHECK(l.find("stderr") != std::string::npos);
      }
    }
    CHECK(logs.count("noise") == 19);  // 20 stderr lines a minute per input
    h.clock.advance(61s);
    REQUIRE(h.make(shOptions("echo later >&2")).isOk());
    REQUIRE(h.collect().isOk());
    CHECK(logs.count("later") == 1);
  }

  TEST_CASE("output beyond max_output_bytes is not read; the run is reported") {
    LogCapture logs;
    Harness h;
    Options o = shOptions(
        R"(i=0; while [ $i -lt 100000 ]; do echo "{\"i\":$i}"; i=$((i+1)); done)");
    o.set("max_output_bytes", uint64_t{100}, {});
    REQUIRE(h.make(o).isOk());
    const auto t0 = std::chrono::steady_clock::now();
    REQUIRE(h.collect().isOk());
    CHECK(secondsSince(t0) < 5);
    // 10 lines of 8 bytes ({"i":0}\n..) and 2 of 9 fit in 100 bytes; the 13th is cut.
    REQUIRE(h.em.records.size() == 12);
    CHECK(h.em.records.front() == R"({"i":0})");
    CHECK(h.em.records.back() == R"({"i":11})");
    CHECK(h.errors("output_too_large") == 1);
    CHECK(h.errors("signal") == 0);  // its SIGPIPE is the consequence, not another failure
    CHECK(logs.count("max_output_bytes") == 1);
  }

  TEST_CASE("output of exactly max_output_bytes is not cut") {
    Harness h;
    Options o = shOptions(R"(printf '{"a":1}\n')");
    o.set("max_output_bytes", uint64_t{8}, {});
    REQUIRE(h.make(o).isOk());
    REQUIRE(h.collect().isOk());
    CHECK(h.em.records.size() == 1);
    CHECK(h.errors("output_too_large") == 0);
  }

  TEST_CASE("lines that are not JSON objects are dropped and counted; good ones arrive") {
    LogCapture logs;
    Harness h;
    REQUIRE(h.make(shOptions(R"(printf '{"a":1}\nnot json\n[1,2]\n{"b":2}\n{"c":\n')")).isOk());
    REQUIRE(h.collect().isOk());
    CHECK(h.em.records == std::vector<std::string>{R"({"a":1})", R"({"b":2})"});
    CHECK(h.dropped("bad_json") == 2);       // "not json", the cut object
    CHECK(h.dropped("not_an_object") == 1);  // [1,2]
    CHECK(logs.count("dropped line 2 of the command's output") == 1);  // once a minute
    CHECK(logs.count("probe") >= 1);
  }

  TEST_CASE("other line formats: logfmt records, invalid UTF-8 and NUL bytes refused per reason") {
    Harness h;
    Options o = shOptions(R"(printf 'level=info n=1\nbad=\377\nlevel=warn n=2\nnul=a\000b\n')");
    o.set("format", std::string("logfmt"), {});
    REQUIRE(h.make(o).isOk());
    REQUIRE(h.collect().isOk());
    CHECK(h.em.records == std::vector<std::string>{R"({"level":"info","n":1})", R"({"level":"warn","n":2})"});
    CHECK(h.dropped("invalid_utf8") == 1);
    CHECK(h.dropped("nul_byte") == 1);
  }

  TEST_CASE("the command inherits no descriptors but 0, 1, 2") {
    // Deliberately without close-on-exec, and high (the shell's own globbing uses fd 3).
    const int low = ::open("/dev/null", O_RDONLY);
    REQUIRE(low >= 0);
    const int leak = ::fcntl(low, F_DUPFD, 100);
    ::close(low);
    REQUIRE(leak >= 100);
    Harness h;
    Options o = shOptions(R"(for f in /proc/$$/fd/*; do echo "${f##*/}"; done)");
    o.set("format", std::string("text"), {});
    REQUIRE(h.make(o).isOk());
    REQUIRE(h.collect().isOk());
    ::close(leak);
    CHECK(h.em.records.size() >= 3);
    for (const std::string& r : h.em.records) {
      CHECK(r != "{\"message\":\"" + std::to_string(leak) + "\"}");
    }
  }

  TEST_CASE("a command removed after startup is a counted failure, not a fatal one") {
    test::TempDir dir;
    const std::string script = dir.file("probe.sh");
    test::writeFile(script, "#!/bin/sh\necho '{\"a\":1}'\n", 0755);
    LogCapture logs;
    Harness h;
    REQUIRE(h.make(execOptions({script})).isOk());
    REQUIRE(h.collect().isOk());
    CHECK(h.em.records.size() == 1);
    REQUIRE(::unlink(script.c_str()) == 0);
    CHECK(h.collect().isOk());
    CHECK(h.em.records.size() == 1);
    CHECK(h.errors("spawn_failed") == 1);
    CHECK(logs.count("could not be started") == 1);
  }

  TEST_CASE("a refused batch is kept and offered again before the command runs again") {
    Harness h;
    REQUIRE(h.make(shOptions(R"(echo '{"a":1}')")).isOk());
    h.em.next_status = resourceExhausted("buffer full");
    CHECK(h.collect().code() == StatusCode::kResourceExhausted);
    CHECK(h.em.batches == 1);
    CHECK(h.collect().code() == StatusCode::kResourceExhausted);  // offered again, no run
    CHECK(h.em.batches == 2);
    CHECK(h.em.records.size() == 2);
    h.em.next_status = Status::ok();
    REQUIRE(h.collect().isOk());  // the kept batch, then a new run
    CHECK(h.em.batches == 4);
    CHECK(h.em.records.size() == 4);
  }
}

}  // namespace
}  // namespace ferry
