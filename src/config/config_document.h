// ConfigDocument: a parsed pipeline file, the owner of the ConfigTables its
// components read. The loader (service/) parses the file, hands each
// component its section, and at the end asks which sections no component
// read. One thread.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config_values.h"
#include "sluice/config_table.h"

namespace sluice::config {

class ConfigDocument {
 public:
  /// Parses TOML text; a syntax error names the file and line.
  static Result<std::unique_ptr<ConfigDocument>> Parse(std::string_view toml, const std::string& file_name,
                                                       const EnvLookup& env = GetEnv);
  ~ConfigDocument();
  ConfigDocument(const ConfigDocument&) = delete;
  ConfigDocument& operator=(const ConfigDocument&) = delete;

  /// A top-level table ("source"); empty (no keys) when the file has none.
  const ConfigTable& Section(std::string_view name) const;
  /// Whether the file has a top-level table of that name.
  bool HasSection(std::string_view name) const;
  /// A top-level plain value (name = "..."); nullopt when absent.
  std::optional<std::string> TopString(std::string_view key) const;
  /// Top-level keys of the file, in the order written.
  std::vector<std::string> TopKeys() const;
  /// Top-level tables some component asked for (also when not written).
  std::vector<std::string> SectionsAsked() const;
  /// Sections that were written and that no component asked for.
  std::vector<std::string> UnreadSections() const;
  const std::string& file() const;
  /// What ConfigTable::PipelineName() returns for the file's tables.
  void SetPipelineName(std::string name);

 private:
  ConfigDocument() = default;
  std::shared_ptr<ConfigTable::Impl> impl_;
};

}  // namespace sluice::config
