// Option tables of the core sections (agent, log, buffer) and of the document root.
// The loader validates against them; `ferry plugins --core` prints them.
#pragma once

#include <span>
#include <string_view>

#include "ferry/options.h"

namespace ferry {

std::span<const OptionSpec> agentSectionOptions();
std::span<const OptionSpec> logSectionOptions();
std::span<const OptionSpec> bufferSectionOptions();
std::span<const OptionSpec> metricsSectionOptions();

// Sections of the contract (DESIGN.md) that this version does not implement yet; the
// loader names them instead of calling them unknown.
std::span<const std::string_view> reservedSections();

}  // namespace ferry
