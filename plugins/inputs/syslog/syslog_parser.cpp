#include "plugins/inputs/syslog/syslog_parser.h"

#include <array>
#include <optional>

#include "ferry/json.h"

namespace ferry {
namespace {

using Field = std::optional<std::string_view>;

constexpr std::array<std::string_view, 24> kFacilities = {
    "kern",     "user",   "mail",   "daemon", "auth",   "syslog", "lpr",    "news",
    "uucp",     "cron",   "authpriv", "ftp",  "ntp",    "security", "console", "solaris-cron",
    "local0",   "local1", "local2", "local3", "local4", "local5", "local6", "local7"};
constexpr std::array<std::string_view, 8> kSeverities = {"emerg",   "alert",  "crit", "err",
                                                         "warning", "notice", "info", "debug"};
constexpr std::array<std::string_view, 12> kMonths = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

bool isDigit(char c) { return c >= '0' && c <= '9'; }

bool parsePri(std::string_view& s, int* pri) {
  if (s.size() < 3 || s[0] != '<') return false;
  size_t i = 1;
  int v = 0;
  while (i < s.size() && i <= 3 && isDigit(s[i])) v = v * 10 + (s[i++] - '0');
  if (i == 1 || i >= s.size() || s[i] != '>' || v > 191) return false;
  s.remove_prefix(i + 1);
  *pri = v;
  return true;
}

// The text up to the next space (or the end); removes it and that one space from `s`.
std::string_view takeToken(std::string_view& s) {
  const size_t sp = s.find(' ');
  std::string_view token = s.substr(0, sp);
  s.remove_prefix(sp == std::string_view::npos ? s.size() : sp + 1);
  return token;
}

// An RFC 5424 header field: "-" (or nothing left) is null.
Field takeField(std::string_view& s) {
  if (s.empty()) return std::nullopt;
  std::string_view token = takeToken(s);
  if (token.empty() || token == "-") return std::nullopt;
  return token;
}

bool isSdNameChar(char c) { return c > ' ' && c < 127 && c != '=' && c != ']' && c != '"'; }

// Renders RFC 5424 STRUCTURED-DATA at the start of `s` ("[id k=\"v\" ...][id2 ...]") as a
// JSON object of objects into `json`; *consumed is its length. False when malformed.
bool renderStructuredData(std::string_view s, size_t* consumed, std::string* json) {
  size_t pos = 0;
  std::string value;
  json->push_back('{');
  bool first_element = true;
  while (pos < s.size() && s[pos] == '[') {
    ++pos;
    const size_t name_begin = pos;
    while (pos < s.size() && isSdNameChar(s[pos])) ++pos;
    if (pos == name_begin || pos >= s.size()) return false;
    if (!first_element) json->push_back(',');
    first_element = false;
    appendJsonString(*json, s.substr(name_begin, pos - name_begin));
    json->append(":{");
    bool first_param = true;
    while (true) {
      if (pos >= s.size()) return false;
      if (s[pos] == ']') {
        ++pos;
        break;
      }
      if (s[pos] != ' ') return false;
      ++pos;
      const size_t key_begin = pos;
      while (pos < s.size() && isSdNameChar(s[pos])) ++pos;
      if (pos == key_begin || pos + 1 >= s.size() || s[pos] != '=' || s[pos + 1] != '"') {
        return false;
      }
      const std::string_view key = s.substr(key_begin, pos - key_begin);
      pos += 2;
      value.clear();
      // RFC 5424 6.3.3: '\' escapes '"', '\' and ']'; before any other character it is kept.
      while (pos < s.size() && s[pos] != '"') {
        if (s[pos] == '\\' && pos + 1 < s.size() &&
            (s[pos + 1] == '"' || s[pos + 1] == '\\' || s[pos + 1] == ']')) {
          ++pos;
        }
        value.push_back(s[pos++]);
      }
      if (pos >= s.size()) return false;
      ++pos;  // closing quote
      if (!first_param) json->push_back(',');
      first_param = false;
      appendJsonString(*json, key);
      json->push_back(':');
      appendJsonString(*json, value);
    }
    json->push_back('}');
  }
  if (first_element) return false;
  json->push_back('}');
  *consumed = pos;
  return true;
}

// "Mmm dd hh:mm:ss" (day space-padded or two digits), followed by a space or the end.
bool isBsdTimestamp(std::string_view s) {
  if (s.size() < 15 || (s.size() > 15 && s[15] != ' ')) return false;
  bool month = false;
  for (std::string_view m : kMonths) month = month || s.substr(0, 3) == m;
  return month && s[3] == ' ' && (s[4] == ' ' || isDigit(s[4])) && isDigit(s[5]) &&
         s[6] == ' ' && isDigit(s[7]) && isDigit(s[8]) && s[9] == ':' && isDigit(s[10]) &&
         isDigit(s[11]) && s[12] == ':' && isDigit(s[13]) && isDigit(s[14]);
}

bool isTagChar(char c) {
  return isDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '-' ||
         c == '.' || c == '/';
}

struct Parsed {
  std::string_view format;
  Field timestamp, host, app, procid, msgid, message;
  std::string structured_data;  // rendered JSON; empty: null
};

void parse5424(std::string_view s, Parsed& p) {
  p.format = "rfc5424";
  p.timestamp = takeField(s);
  p.host = takeField(s);
  p.app = takeField(s);
  p.procid = takeField(s);
  p.msgid = takeField(s);
  if (s == "-" || s.starts_with("- ")) {
    s.remove_prefix(s.size() == 1 ? 1 : 2);
  } else if (s.starts_with("[")) {
    size_t consumed = 0;
    if (renderStructuredData(s, &consumed, &p.structured_data)) {
      s.remove_prefix(consumed);
      if (s.starts_with(" ")) s.remove_prefix(1);
    } else {
      p.structured_data.clear();  // unparseable: the rest is kept as the message
    }
  }
  if (s.starts_with("\xEF\xBB\xBF")) s.remove_prefix(3);
  if (!s.empty()) p.message = s;
}

void parse3164(std::string_view s, Parsed& p) {
  p.format = "rfc3164";
  if (isBsdTimestamp(s)) {
    p.timestamp = s.substr(0, 15);
    s.remove_prefix(s.size() > 15 ? 16 : 15);
    // A host follows the timestamp, unless the next word already is the tag ("su:",
    // "cron[12]:") or the last word.
    const size_t sp = s.find(' ');
    const std::string_view word = s.substr(0, sp);
    if (sp != std::string_view::npos && !word.empty() && word.back() != ':' &&
        word.find('[') == std::string_view::npos) {
      p.host = word;
      s.remove_prefix(sp + 1);
    }
  }
  // TAG, TAG[PID] followed by ':' (or TAG[PID] alone).
  size_t i = 0;
  while (i < s.size() && isTagChar(s[i])) ++i;
  if (i > 0 && i < s.size()) {
    size_t j = i;
    Field pid;
    if (s[j] == '[') {
      const size_t close = s.find(']', j);
      if (close != std::string_view::npos) {
        pid = s.substr(j + 1, close - j - 1);
        j = close + 1;
      }
    }
    const bool colon = j < s.size() && s[j] == ':';
    if (colon || (pid && (j == s.size() || s[j] == ' '))) {
      p.app = s.substr(0, i);
      if (pid && !pid->empty()) p.procid = pid;
      s.remove_prefix(colon ? j + 1 : j);
      if (s.starts_with(" ")) s.remove_prefix(1);
    }
  }
  if (!s.empty()) p.message = s;
}

void appendKey(std::string& out, std::string_view key) {
  out.append(",\"");
  out.append(key);
  out.append("\":");
}

void appendField(std::string& out, std::string_view key, const Field& value) {
  appendKey(out, key);
  if (value) {
    appendJsonString(out, *value);
  } else {
    out.append("null");
  }
}

}  // namespace

std::string_view syslogFacilityName(int facility) {
  return facility >= 0 && facility < 24 ? kFacilities[static_cast<size_t>(facility)] : "";
}

std::string_view syslogSeverityName(int severity) {
  return severity >= 0 && severity < 8 ? kSeverities[static_cast<size_t>(severity)] : "";
}

Status appendSyslogRecord(std::string_view message, std::string& out) {
  while (!message.empty() &&
         (message.back() == '\n' || message.back() == '\r' || message.back() == '\0')) {
    message.remove_suffix(1);
  }
  int pri = 0;
  if (!parsePri(message, &pri)) return invalidArgument("no valid <PRI> (0..191) at the start");
  Parsed p;
  if (message.starts_with("1 ")) {
    parse5424(message.substr(2), p);
  } else {
    parse3164(message, p);
  }
  const int facility = pri / 8;
  const int severity = pri % 8;
  out.append("{\"format\":\"");
  out.append(p.format);
  out.push_back('"');
  appendKey(out, "facility");
  out.append(std::to_string(facility));
  appendField(out, "facility_name", syslogFacilityName(facility));
  appendKey(out, "severity");
  out.append(std::to_string(severity));
  appendField(out, "severity_name", syslogSeverityName(severity));
  appendField(out, "timestamp", p.timestamp);
  appendField(out, "host", p.host);
  appendField(out, "app", p.app);
  appendField(out, "procid", p.procid);
  appendField(out, "msgid", p.msgid);
  appendKey(out, "structured_data");
  out.append(p.structured_data.empty() ? std::string_view("null")
                                       : std::string_view(p.structured_data));
  appendField(out, "message", p.message);
  out.push_back('}');
  return Status::ok();
}

}  // namespace ferry
