// ConfigTable: one TOML table of a pipeline file ([source], [destination],
// [state], ...) as the component that owns it sees it.
//
// A component reads its own keys through the getters, which mark each key as
// read. After the component's factory returns, sluice checks the table: a
// value of the wrong type (a string where a number belongs) is reported with
// its key and line, and then any key that was never read is an error naming
// the key, the section, the type and the keys the type accepts. So a
// component never has to list its keys twice, and a user's typo never passes
// silently.
//
// String values have ${VAR} and ${VAR:-default} already expanded from the
// environment. A missing key returns the fallback.
//
// Thread-safety: a ConfigTable is read by the one thread that builds the
// pipeline; it must not be used from several threads at once. Factories may
// keep copies of the values, not references to the table.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sluice/status.h"

namespace sluice {

class ConfigTable {
 public:
  /// An empty table (no keys), described as `describe`.
  explicit ConfigTable(std::string describe = "[]");
  ~ConfigTable();
  ConfigTable(const ConfigTable&) = delete;
  ConfigTable& operator=(const ConfigTable&) = delete;

  std::string GetString(std::string_view key, std::string_view fallback = "") const;
  int64_t GetInt(std::string_view key, int64_t fallback) const;
  /// true/false, or the strings "true"/"false" (from an environment variable).
  bool GetBool(std::string_view key, bool fallback) const;
  /// A list of strings; a single string is a list of one.
  std::vector<std::string> GetStringList(std::string_view key) const;
  /// A size: "8MB", "512KiB", "1GB", or a whole number of bytes.
  int64_t GetBytes(std::string_view key, int64_t fallback) const;
  /// A duration in milliseconds: "250ms", "30s", "5m", "24h", "1d"; a bare
  /// number is seconds.
  int64_t GetMillis(std::string_view key, int64_t fallback) const;
  /// An inline table of string values ({ id = "BIGINT", name = "TEXT" }), in
  /// the order written.
  std::vector<std::pair<std::string, std::string>> GetStringMap(std::string_view key) const;
  /// A sub-table ([destination.retry]) or, from a top-level table, another
  /// section of the file ([s3], [engine]); an empty table when absent.
  const ConfigTable& Section(std::string_view name) const;
  /// Whether the key is written (does not mark it as read).
  bool Has(std::string_view key) const;
  /// "[destination] in p.toml".
  std::string Describe() const;
  /// The name of the pipeline this table belongs to ("" outside a
  /// pipeline): a state store keeps each pipeline's state apart by it.
  std::string PipelineName() const;
  /// The section's name as written in messages: "[destination]".
  std::string Name() const;
  /// Keys written in this table, in the order written.
  std::vector<std::string> Keys() const;

  /// Records an error about a key (a value out of range): reported with the
  /// key and its line when the factory returns, like a type error.
  void Fail(std::string_view key, std::string message) const;

  /// The first recorded error (type errors and Fail()), naming the key, its
  /// section and the line; OK when none. sluice calls this and
  /// CheckAllRead() after a factory returns.
  Status Check() const;
  /// Every key written was read; otherwise "[destination] unknown key 'foo'
  /// for type 'counting' (accepted: path, ...)". `type` names the component
  /// in the message; `accepted` adds documented keys to those read.
  Status CheckAllRead(std::string_view type, const std::vector<std::string>& accepted = {}) const;
  /// Keys that were read (asked for) so far, sorted.
  std::vector<std::string> KeysRead() const;

  struct Impl;
  /// For sluice's own loader: a table over parsed TOML. The document owns
  /// its tables and outlives them.
  ConfigTable(Impl* doc, const void* table, std::string path, const ConfigTable* parent);

 private:
  Impl* doc_ = nullptr;
  const void* table_ = nullptr;  // the TOML table; nullptr: empty
  std::string path_;             // "destination", "destination.retry"
  const ConfigTable* parent_ = nullptr;
  mutable std::vector<std::string> read_;    // keys asked for
  mutable std::vector<std::string> errors_;  // type errors and Fail(), in the order found
  mutable std::vector<std::pair<std::string, std::unique_ptr<ConfigTable>>> children_;
};

}  // namespace sluice
