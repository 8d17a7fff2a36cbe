#include "cached_file_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "tutorial_log.h"

namespace tutorial {
namespace {

constexpr std::string_view kName = "cached_file";

// --- the file format ---------------------------------------------------------

std::string Escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::optional<std::string> Unescape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\\') {
      out += text[i];
      continue;
    }
    if (++i == text.size()) return std::nullopt;
    switch (text[i]) {
      case '\\':
        out += '\\';
        break;
      case 't':
        out += '\t';
        break;
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      default:
        return std::nullopt;
    }
  }
  return out;
}

template <typename Int>
std::optional<Int> ParseInt(std::string_view text, int base = 10) {
  Int value{};
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value, base);
  if (error != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

/// "16/B374D848", as sluice::CdcLsnToString writes it.
std::optional<sluice::CdcLsn> ParseLsn(std::string_view text) {
  size_t slash = text.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  auto high = ParseInt<uint32_t>(text.substr(0, slash), 16);
  auto low = ParseInt<uint32_t>(text.substr(slash + 1), 16);
  if (!high || !low) return std::nullopt;
  return (static_cast<sluice::CdcLsn>(*high) << 32) | *low;
}

char IdentityLetter(sluice::CdcIdentity identity) {
  switch (identity) {
    case sluice::CdcIdentity::kDefault:
      return 'd';
    case sluice::CdcIdentity::kNothing:
      return 'n';
    case sluice::CdcIdentity::kFull:
      return 'f';
    case sluice::CdcIdentity::kIndex:
      return 'i';
  }
  return 'd';
}

std::optional<sluice::CdcIdentity> ParseIdentity(std::string_view letter) {
  if (letter == "d") return sluice::CdcIdentity::kDefault;
  if (letter == "n") return sluice::CdcIdentity::kNothing;
  if (letter == "f") return sluice::CdcIdentity::kFull;
  if (letter == "i") return sluice::CdcIdentity::kIndex;
  return std::nullopt;
}

/// Joins escaped fields with tabs into one line.
template <typename... Fields>
std::string Record(const Fields&... fields) {
  std::string line;
  ((line += Escape(fields), line += '\t'), ...);
  line.back() = '\n';
  return line;
}

std::string Render(const std::map<uint32_t, sluice::CdcTable>& schemas,
                   const std::map<uint32_t, sluice::TableSyncStatus>& states, sluice::CdcLsn confirmed_lsn) {
  std::string out = "# sluice cached_file store: one record a line, fields separated by tabs\n";
  out += Record(std::string("confirmed_lsn"), sluice::CdcLsnToString(confirmed_lsn));
  for (const auto& [id, table] : schemas) {
    out += Record(std::string("table"), std::to_string(id), table.schema, table.name,
                  std::string(1, IdentityLetter(table.identity)));
    for (const sluice::CdcColumn& column : table.columns) {
      out += Record(std::string("column"), std::to_string(id), column.name, std::to_string(column.type_oid),
                    std::to_string(column.type_modifier), std::string(column.key ? "1" : "0"),
                    column.type_name, column.type_definition);
    }
  }
  for (const auto& [id, state] : states) {
    out += Record(std::string("state"), std::to_string(id), state.table_name,
                  std::string(sluice::TableSyncStateName(state.state)), sluice::CdcLsnToString(state.lsn),
                  std::to_string(state.attempts), std::to_string(state.retry_at_unix_ms), state.error);
  }
  return out;
}

/// Writes `contents` to a new file and renames it over `path`, syncing both
/// the file and its directory: after a crash the file is either the old or
/// the new version, never half of one.
sluice::Status WriteFileAtomically(const std::string& path, const std::string& contents) {
  const std::string temp = path + ".tmp";
  int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return sluice::Status::IoError("cannot create " + temp + ": " + std::strerror(errno));
  size_t done = 0;
  while (done < contents.size()) {
    ssize_t n = ::write(fd, contents.data() + done, contents.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      std::string error = std::strerror(errno);
      ::close(fd);
      return sluice::Status::IoError("cannot write " + temp + ": " + error);
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    std::string error = std::strerror(errno);
    ::close(fd);
    return sluice::Status::IoError("cannot sync " + temp + ": " + error);
  }
  ::close(fd);
  if (std::rename(temp.c_str(), path.c_str()) != 0) {
    return sluice::Status::IoError("cannot rename " + temp + " to " + path + ": " + std::strerror(errno));
  }
  std::string dir = std::filesystem::path(path).parent_path().string();
  int dir_fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    (void)::fsync(dir_fd);
    ::close(dir_fd);
  }
  return sluice::Status::OK();
}

std::string StateText(const sluice::TableSyncStatus& status) {
  std::string text = status.table_name + " " + sluice::TableSyncStateName(status.state);
  if (status.lsn != 0) text += " at " + sluice::CdcLsnToString(status.lsn);
  if (!status.error.empty()) text += " (" + status.error + ")";
  return text;
}

}  // namespace

CachedFileStore::CachedFileStore(std::string path) : path_(std::move(path)) {}

sluice::Status CachedFileStore::LoadLocked() {
  if (loaded_) return sluice::Status::OK();
  std::error_code ec;
  if (!std::filesystem::exists(path_, ec)) {
    Log(kName, "start-up: " + path_ + " does not exist yet, starting with an empty store");
    loaded_ = true;
    return sluice::Status::OK();
  }
  std::ifstream in(path_);
  if (!in) return sluice::Status::IoError("cannot read " + path_ + ": " + std::strerror(errno));

  Contents loaded;
  std::string line;
  int line_number = 0;
  auto error = [&](const std::string& what) {
    return sluice::Status::DataError(path_ + ":" + std::to_string(line_number) + ": " + what);
  };
  while (std::getline(in, line)) {
    ++line_number;
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> fields;
    for (size_t start = 0;;) {
      size_t tab = line.find('\t', start);
      auto field =
          Unescape(std::string_view(line).substr(start, tab == std::string::npos ? tab : tab - start));
      if (!field) return error("bad escape sequence (only \\\\, \\t, \\n and \\r are written)");
      fields.push_back(std::move(*field));
      if (tab == std::string::npos) break;
      start = tab + 1;
    }
    const std::string& kind = fields[0];
    if (kind == "confirmed_lsn" && fields.size() == 2) {
      auto lsn = ParseLsn(fields[1]);
      if (!lsn) return error("confirmed_lsn '" + fields[1] + "' is not an LSN like 0/1A2B3C8");
      loaded.confirmed_lsn = *lsn;
    } else if (kind == "table" && fields.size() == 5) {
      auto id = ParseInt<uint32_t>(fields[1]);
      auto identity = ParseIdentity(fields[4]);
      if (!id || !identity) return error("table record needs an oid and a replica identity d, n, f or i");
      sluice::CdcTable& table = loaded.schemas[*id];
      table.id = *id;
      table.schema = fields[2];
      table.name = fields[3];
      table.identity = *identity;
    } else if (kind == "column" && fields.size() == 8) {
      auto id = ParseInt<uint32_t>(fields[1]);
      auto type_oid = ParseInt<uint32_t>(fields[3]);
      auto type_modifier = ParseInt<int32_t>(fields[4]);
      if (!id || !type_oid || !type_modifier || (fields[5] != "0" && fields[5] != "1")) {
        return error("column record needs a table oid, a type oid, a type modifier and key 0 or 1");
      }
      auto table = loaded.schemas.find(*id);
      if (table == loaded.schemas.end())
        return error("column of table " + fields[1] + " before its table record");
      table->second.columns.push_back(
          sluice::CdcColumn{fields[2], *type_oid, *type_modifier, fields[6], fields[7], fields[5] == "1"});
    } else if (kind == "state" && fields.size() == 8) {
      auto id = ParseInt<uint32_t>(fields[1]);
      auto state = sluice::ParseTableSyncState(fields[3]);
      auto lsn = ParseLsn(fields[4]);
      auto attempts = ParseInt<int>(fields[5]);
      auto retry_at = ParseInt<int64_t>(fields[6]);
      if (!state.ok()) return error(state.status().message());
      if (!id || !lsn || !attempts || !retry_at) {
        return error("state record needs a table oid, an LSN, attempts and a retry time");
      }
      loaded.states[*id] =
          sluice::TableSyncStatus{*id, fields[2], *state, *lsn, *attempts, fields[7], *retry_at};
    } else {
      return error("unknown record '" + kind + "' with " + std::to_string(fields.size()) + " fields");
    }
  }
  if (in.bad()) return sluice::Status::IoError("cannot read " + path_ + ": " + std::strerror(errno));

  cache_ = std::move(loaded);
  loaded_ = true;
  Log(kName, "start-up: loaded " + path_ + ": " + std::to_string(cache_.schemas.size()) + " table schemas, " +
                 std::to_string(cache_.states.size()) + " table states, confirmed LSN " +
                 sluice::CdcLsnToString(cache_.confirmed_lsn));
  return sluice::Status::OK();
}

sluice::Status CachedFileStore::WriteThroughLocked(Contents next) {
  SLUICE_RETURN_IF_ERROR(WriteFileAtomically(path_, Render(next.schemas, next.states, next.confirmed_lsn)));
  cache_ = std::move(next);
  return sluice::Status::OK();
}

sluice::Result<std::vector<sluice::CdcTable>> CachedFileStore::LoadSchemas() {
  std::lock_guard lock(mu_);
  SLUICE_RETURN_IF_ERROR(LoadLocked());
  std::vector<sluice::CdcTable> tables;
  std::string names;
  for (const auto& [id, table] : cache_.schemas) {
    tables.push_back(table);
    names += (names.empty() ? ": " : ", ") + table.QualifiedName();
  }
  Log(kName, "LoadSchemas -> " + std::to_string(tables.size()) + " tables" + names + " (from memory)");
  return tables;
}

sluice::Status CachedFileStore::SaveSchema(const sluice::CdcTable& table) {
  std::lock_guard lock(mu_);
  SLUICE_RETURN_IF_ERROR(LoadLocked());
  auto known = cache_.schemas.find(table.id);
  if (known != cache_.schemas.end() && known->second == table) {
    Log(kName, "SaveSchema " + table.QualifiedName() + ": unchanged");
    return sluice::Status::OK();
  }
  Contents next = cache_;
  next.schemas[table.id] = table;
  SLUICE_RETURN_IF_ERROR(WriteThroughLocked(std::move(next)));
  Log(kName, "SaveSchema " + table.QualifiedName() + " (" + std::to_string(table.columns.size()) +
                 " columns): written to " + path_);
  return sluice::Status::OK();
}

sluice::Result<std::vector<sluice::TableSyncStatus>> CachedFileStore::LoadTableStates() {
  std::lock_guard lock(mu_);
  SLUICE_RETURN_IF_ERROR(LoadLocked());
  std::vector<sluice::TableSyncStatus> states;
  std::string text;
  for (const auto& [id, status] : cache_.states) {
    states.push_back(status);
    text += (text.empty() ? ": " : ", ") + StateText(status);
  }
  Log(kName, "LoadTableStates -> " + std::to_string(states.size()) + " tables" + text + " (from memory)");
  return states;
}

sluice::Status CachedFileStore::SaveTableState(const sluice::TableSyncStatus& status) {
  std::lock_guard lock(mu_);
  SLUICE_RETURN_IF_ERROR(LoadLocked());
  Contents next = cache_;
  next.states[status.table_id] = status;
  SLUICE_RETURN_IF_ERROR(WriteThroughLocked(std::move(next)));
  Log(kName, "SaveTableState " + StateText(status) + ": written to " + path_);
  return sluice::Status::OK();
}

sluice::Result<sluice::CdcLsn> CachedFileStore::LoadConfirmedLsn() {
  std::lock_guard lock(mu_);
  SLUICE_RETURN_IF_ERROR(LoadLocked());
  Log(kName, "LoadConfirmedLsn -> " + sluice::CdcLsnToString(cache_.confirmed_lsn) + " (from memory)");
  return cache_.confirmed_lsn;
}

sluice::Status CachedFileStore::SaveConfirmedLsn(sluice::CdcLsn lsn) {
  std::lock_guard lock(mu_);
  SLUICE_RETURN_IF_ERROR(LoadLocked());
  if (lsn <= cache_.confirmed_lsn) {
    // The contract: the confirmed LSN never moves backwards.
    Log(kName, "SaveConfirmedLsn " + sluice::CdcLsnToString(lsn) + ": ignored, " +
                   sluice::CdcLsnToString(cache_.confirmed_lsn) + " is already confirmed");
    return sluice::Status::OK();
  }
  Contents next = cache_;
  next.confirmed_lsn = lsn;
  SLUICE_RETURN_IF_ERROR(WriteThroughLocked(std::move(next)));
  Log(kName, "SaveConfirmedLsn " + sluice::CdcLsnToString(lsn) + ": written to " + path_);
  return sluice::Status::OK();
}

sluice::Status CachedFileStore::DropTable(uint32_t table_id) {
  std::lock_guard lock(mu_);
  SLUICE_RETURN_IF_ERROR(LoadLocked());
  std::string name = std::to_string(table_id);
  if (auto state = cache_.states.find(table_id); state != cache_.states.end())
    name = state->second.table_name;
  Contents next = cache_;
  next.schemas.erase(table_id);
  next.states.erase(table_id);
  SLUICE_RETURN_IF_ERROR(WriteThroughLocked(std::move(next)));
  Log(kName, "DropTable " + name + ": its schema and state are removed from " + path_);
  return sluice::Status::OK();
}

sluice::Status CachedFileStore::DropPipeline() {
  std::lock_guard lock(mu_);
  std::error_code ec;
  std::filesystem::remove(path_, ec);
  if (ec) return sluice::Status::IoError("cannot remove " + path_ + ": " + ec.message());
  cache_ = Contents{};
  loaded_ = true;
  Log(kName, "DropPipeline: removed " + path_ + " and emptied the cache");
  return sluice::Status::OK();
}

std::string CachedFileStore::Describe() const { return "cached_file store " + path_; }

sluice::Status RegisterCachedFileStore(sluice::Registry& registry) {
  return registry.AddCdcStore(
      "cached_file",
      [](const sluice::ConfigTable& table) -> sluice::Result<std::unique_ptr<sluice::CdcStore>> {
        std::string path = table.GetString("path");
        if (path.empty()) {
          return sluice::Status::InvalidArgument(table.Describe() +
                                                 ": key 'path' is required: the file the cached_file store "
                                                 "keeps its state in");
        }
        return std::unique_ptr<sluice::CdcStore>(std::make_unique<CachedFileStore>(std::move(path)));
      },
      sluice::ComponentInfo{"CDC state in memory, written through to a text file (the tutorial's store)",
                            {"path"}});
}

}  // namespace tutorial
