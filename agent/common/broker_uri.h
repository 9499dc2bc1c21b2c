// MQTT broker URIs as the mqtt input and output take them: scheme://host[:port] with scheme
// tcp or mqtt (plain, port 1883 by default) or ssl or mqtts (TLS, port 8883); IPv6 hosts in
// brackets (tcp://[::1]:1883); no paths, queries or credentials.
// Thread-safety: stateless functions and constant tables; BrokerAddress is a value type.
#pragma once

#include <string>
#include <string_view>

#include "ferry/options.h"

namespace ferry {

struct BrokerAddress {
  std::string host;  // as written; an IPv6 host keeps its brackets ("[::1]")
  int port = 1883;
  bool tls = false;

  // "tcp://host:port" or "ssl://host:port" (the form Paho takes).
  std::string serverUri() const;
  // The host without IPv6 brackets, for name resolution and certificate checks.
  std::string bareHost() const;
};

// The keys of the `tls` table of the mqtt input and output (one vocabulary for both).
inline constexpr OptionSpec kMqttTlsOptions[] = {
    {.key = "ca_file",
     .type = OptionType::kString,
     .help = "PEM file of the CAs that may sign the broker's certificate; default: the system's"},
    {.key = "cert_file",
     .type = OptionType::kString,
     .help = "PEM client certificate (with key_file) for brokers that authenticate clients"},
    {.key = "key_file", .type = OptionType::kString, .help = "PEM private key of cert_file"},
    {.key = "insecure_skip_verify",
     .type = OptionType::kBool,
     .default_value = "false",
     .help = "do NOT verify the broker's certificate and host name (testing only; logged as "
             "a warning at every start)"},
};

// Parses `uri`. False with `why` set (what is wrong, without the URI) when malformed.
bool parseBrokerUri(std::string_view uri, BrokerAddress* out, std::string* why);

}  // namespace ferry
