// A small libcurl client for tests that talk to Ferry's HTTP listeners (ferry receive, the
// http input): one request, status, body and response headers.
// Thread-safety: an HttpClient is one connection (its CURL handle is reused, so the
// connection is kept alive between requests); one thread at a time. httpRequest() is a
// one-shot client.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ferry::test {

struct HttpResponse {
  long code = 0;            // 0: no answer (the error says why)
  std::string error;        // curl's message when the request failed
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  // The first response header `name` (case-insensitive), trimmed; "" when absent.
  std::string header(std::string_view name) const;
};

class HttpClient {
 public:
  HttpClient();
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // `method` GET sends no body; any other method sends `body`. "Expect:" is always added
  // (no 100-continue round trip). `headers` are "Name: value" lines.
  HttpResponse request(const std::string& method, const std::string& url, const std::string& body = {},
                       const std::vector<std::string>& headers = {}, long timeout_ms = 20000);

 private:
  void* curl_;
};

// One request on a fresh connection.
HttpResponse httpRequest(const std::string& method, const std::string& url, const std::string& body = {},
                         const std::vector<std::string>& headers = {}, long timeout_ms = 20000);

}  // namespace ferry::test
