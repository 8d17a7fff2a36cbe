// The installed package, as a user of sluice meets it: `cmake --install` of
// this build into a temporary prefix (moved afterwards, so nothing may point
// at where it was installed or built), examples/custom_components configured
// with find_package(sluice 0.1) and built against that prefix only, then run
// against a real PostgreSQL. Its own state store ("cached_file") and
// destination ("jsonl_log"), registered by type name, must receive the
// initial copy and streamed changes from a TOML pipeline, and a restart from
// a pipeline built in code must resume from the store's file without copying
// again.
//
// Paths of this build come from tests/CMakeLists.txt: SLUICE_BUILD_DIR,
// SLUICE_SOURCE_DIR, SLUICE_CMAKE_COMMAND, ...
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "e2e/e2e_support.h"
#include "harness/subprocess.h"

namespace sluice::e2e {
namespace {

namespace fs = std::filesystem;
using sluice::testing::RunSubprocess;
using sluice::testing::Subprocess;
using sluice::testing::SubprocessOptions;
using sluice::testing::SubprocessResult;

const std::string kBuildDir = SLUICE_BUILD_DIR;
const std::string kSourceDir = SLUICE_SOURCE_DIR;
const std::string kExampleDir = kSourceDir + "/examples/custom_components";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

std::string Show(const SubprocessResult& r) {
  return sluice::testing::DescribeExit(r) + "\n--- stdout ---\n" + sluice::testing::Tail(r.out, 6000) +
         "\n--- stderr ---\n" + sluice::testing::Tail(r.err, 6000);
}

/// Runs a build tool; the result for assertions.
SubprocessResult RunTool(const std::vector<std::string>& argv, const SubprocessOptions& options = {}) {
  SubprocessOptions o = options;
  if (o.timeout_ms == 120000) o.timeout_ms = 600000;
  return RunSubprocess(argv, o);
}

/// "16/B374D848" -> its integer; 0 for anything else.
uint64_t ParseLsn(const std::string& text) {
  size_t slash = text.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == text.size()) return 0;
  try {
    return (std::stoull(text.substr(0, slash), nullptr, 16) << 32) |
           std::stoull(text.substr(slash + 1), nullptr, 16);
  } catch (...) {
    return 0;
  }
}

/// The RUNPATH (or RPATH) of an ELF file, as readelf prints it.
std::string Runpath(const std::string& file) {
  SubprocessResult r = RunSubprocess({"readelf", "-d", file});
  EXPECT_EQ(r.exit_code, 0) << "readelf -d " << file << "\n" << Show(r);
  for (const std::string marker : {"Library runpath: [", "Library rpath: ["}) {
    size_t at = r.out.find(marker);
    if (at == std::string::npos) continue;
    at += marker.size();
    return r.out.substr(at, r.out.find(']', at) - at);
  }
  return "<none>";
}

/// Every file below dir, recursively (symlinks as themselves).
std::vector<fs::path> FilesBelow(const std::string& dir) {
  std::vector<fs::path> files;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (entry.is_symlink() || entry.is_regular_file()) files.push_back(entry.path());
  }
  return files;
}

/// The lines of the jsonl_log destination's file.
std::vector<nlohmann::json> ReadChanges(const std::string& path) {
  std::vector<nlohmann::json> lines;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    auto parsed = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (parsed.is_discarded()) {
      // The last line may be half written while the program runs; any other is a bug.
      if (!in.eof()) ADD_FAILURE() << "not JSON in " << path << ": " << line;
      continue;
    }
    lines.push_back(std::move(parsed));
  }
  return lines;
}

std::string Dump(const std::vector<nlohmann::json>& lines) {
  std::string out;
  for (const auto& line : lines) out += line.dump() + "\n";
  return sluice::testing::Tail(out, 8000);
}

/// Index of the first line with these fields (and new/old id when given); -1 when none.
int FindLine(const std::vector<nlohmann::json>& lines, const std::string& phase, const std::string& op,
             const std::string& table, const std::string& row_key = "", const std::string& id = "") {
  for (size_t i = 0; i < lines.size(); ++i) {
    const auto& l = lines[i];
    if (l.value("phase", "") != phase || l.value("op", "") != op || l.value("table", "") != table) continue;
    if (!row_key.empty() &&
        !(l.contains(row_key) && l[row_key].is_object() && l[row_key].value("id", "") == id)) {
      continue;
    }
    return static_cast<int>(i);
  }
  return -1;
}

int CountLines(const std::vector<nlohmann::json>& lines, const std::string& phase) {
  int n = 0;
  for (const auto& l : lines) n += l.value("phase", "") == phase ? 1 : 0;
  return n;
}

/// What the cached_file store's file says.
struct StoreFile {
  uint64_t confirmed_lsn = 0;
  std::map<std::string, std::string> states;  // "public.orders" -> "ready"
  std::vector<std::string> tables;            // "public.orders", from table records
};

StoreFile ReadStore(const std::string& path) {
  StoreFile store;
  std::istringstream in(ReadFile(path));
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> fields;
    std::stringstream split(line);
    for (std::string field; std::getline(split, field, '\t');) fields.push_back(field);
    if (fields.size() == 2 && fields[0] == "confirmed_lsn") store.confirmed_lsn = ParseLsn(fields[1]);
    if (fields.size() >= 4 && fields[0] == "state") store.states[fields[2]] = fields[3];
    if (fields.size() >= 4 && fields[0] == "table") store.tables.push_back(fields[2] + "." + fields[3]);
  }
  return store;
}

bool WaitFor(const std::function<bool()>& done, int timeout_ms, const Subprocess* process) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    if (process != nullptr && !process->Running()) return done();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return done();
}

bool CopiedOrStreaming(const std::string& state) { return state == "sync_done" || state == "ready"; }

TEST(InstalledPackage, CustomComponentsExampleBuildsAgainstTheInstallAndReplicates) {
  TempDir work("sluice-install");
  ASSERT_FALSE(work.path().empty());

  // --- install, then move the prefix: the package must be relocatable ---
  const std::string stage = work.Path("stage");
  const std::string prefix = work.Path("prefix");
  SubprocessResult installed = RunTool({SLUICE_CMAKE_COMMAND, "--install", kBuildDir, "--prefix", stage});
  ASSERT_EQ(installed.exit_code, 0) << Show(installed);
  fs::rename(stage, prefix);

  const std::string include_dir = prefix + "/" + SLUICE_INSTALL_INCLUDEDIR + "/sluice";
  const std::string lib_dir = prefix + "/" + SLUICE_INSTALL_LIBDIR;
  const std::string bin_dir = prefix + "/" + SLUICE_INSTALL_BINDIR;
  const std::string package_dir = lib_dir + "/cmake/sluice";

  // The public headers, exactly; each includes only the standard library and other public headers.
  int headers = 0;
  for (const auto& entry : fs::directory_iterator(kSourceDir + "/include/sluice")) {
    if (entry.path().extension() != ".h") continue;
    ++headers;
    const std::string installed_header = include_dir + "/" + entry.path().filename().string();
    ASSERT_TRUE(fs::exists(installed_header)) << installed_header;
    EXPECT_EQ(ReadFile(installed_header), ReadFile(entry.path().string())) << installed_header;
    std::istringstream lines(ReadFile(installed_header));
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind("#include", 0) != 0) continue;
      size_t open = line.find_first_of("\"<");
      ASSERT_NE(open, std::string::npos) << installed_header << ": " << line;
      std::string name = line.substr(open + 1, line.find_first_of("\">", open + 1) - open - 1);
      if (name.rfind("sluice/", 0) == 0) {
        EXPECT_TRUE(fs::exists(prefix + "/" + SLUICE_INSTALL_INCLUDEDIR + "/" + name))
            << installed_header << " includes " << name << ", which is not installed";
      } else {
        EXPECT_TRUE(line[open] == '<' && name.find_first_of("./") == std::string::npos)
            << installed_header << " includes " << name << ": not a public header or the standard library";
      }
    }
  }
  EXPECT_GE(headers, 8);

  // One library: libsluice.so with its version links, libduckdb.so beside it; no layer archives.
  const std::string library = lib_dir + "/libsluice.so." SLUICE_VERSION;
  for (const std::string& file :
       {library, lib_dir + "/libsluice.so.0", lib_dir + "/libsluice.so", lib_dir + "/libduckdb.so",
        bin_dir + "/sluice", package_dir + "/sluiceConfig.cmake", package_dir + "/sluiceConfigVersion.cmake",
        package_dir + "/sluiceTargets.cmake"}) {
    EXPECT_TRUE(fs::exists(file)) << file << " is not installed";
  }
  EXPECT_EQ(fs::read_symlink(lib_dir + "/libsluice.so.0").string(), "libsluice.so." SLUICE_VERSION);
  EXPECT_EQ(fs::read_symlink(lib_dir + "/libsluice.so").string(), "libsluice.so.0");

  // Nothing installed points back at the build: text files name no build,
  // source or staging path, and the binaries find their libraries relative
  // to themselves.
  for (const fs::path& file : FilesBelow(prefix)) {
    EXPECT_EQ(file.filename().string().rfind("libsluice_", 0), std::string::npos)
        << "layer installed: " << file;
    std::string ext = file.extension().string();
    if (ext != ".cmake" && ext != ".h") continue;
    std::string text = ReadFile(file.string());
    for (const std::string& path : {kBuildDir, kSourceDir, std::string(SLUICE_DUCKDB_ROOT), stage}) {
      EXPECT_EQ(text.find(path), std::string::npos) << file << " names " << path;
    }
  }
  EXPECT_EQ(Runpath(library), "$ORIGIN");
  EXPECT_EQ(Runpath(bin_dir + "/sluice"), "$ORIGIN/" SLUICE_BIN_TO_LIB);
  SubprocessResult version = RunTool({bin_dir + "/sluice", "version"});
  EXPECT_EQ(version.exit_code, 0) << Show(version);
  EXPECT_NE(version.out.find("DuckDB"), std::string::npos) << Show(version);

  // --- the example, as an out-of-tree project against the prefix ---
  const std::string example_build = work.Path("example-build");
  SubprocessResult configured =
      RunTool({SLUICE_CMAKE_COMMAND, "-S", kExampleDir, "-B", example_build, "-G", SLUICE_CMAKE_GENERATOR,
               "-DCMAKE_MAKE_PROGRAM=" SLUICE_CMAKE_MAKE_PROGRAM, "-DCMAKE_CXX_COMPILER=" SLUICE_CXX_COMPILER,
               "-DCMAKE_PREFIX_PATH=" + prefix, "-DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF",
               "-DCMAKE_EXPORT_COMPILE_COMMANDS=ON"});
  ASSERT_EQ(configured.exit_code, 0) << Show(configured);
  EXPECT_NE(ReadFile(example_build + "/CMakeCache.txt").find("sluice_DIR:PATH=" + package_dir + "\n"),
            std::string::npos)
      << "find_package(sluice) did not take the package from " << package_dir;
  SubprocessResult built = RunTool({SLUICE_CMAKE_COMMAND, "--build", example_build, "-j2"});
  ASSERT_EQ(built.exit_code, 0) << Show(built);
  std::string commands = ReadFile(example_build + "/compile_commands.json");
  EXPECT_NE(commands.find(prefix + "/" + SLUICE_INSTALL_INCLUDEDIR), std::string::npos) << commands;
  for (const std::string& tree : {kSourceDir + "/src", kSourceDir + "/include", kBuildDir}) {
    EXPECT_EQ(commands.find(tree), std::string::npos) << "the example compiles with " << tree << ":\n"
                                                      << commands;
  }
  const std::string program = example_build + "/custom_components";
  ASSERT_TRUE(fs::exists(program));

  // --- a source database: two tables with rows to copy ---
  PgServer* pg = SharedPg();
  ASSERT_NE(pg, nullptr);
  const std::string db = DbNameForCurrentTest();
  (void)pg->Exec("postgres", "DROP DATABASE IF EXISTS " + db + " WITH (FORCE)");
  ASSERT_TRUE(pg->CreateDatabase(db).ok());
  Status created =
      pg->Exec(db,
               "CREATE TABLE public.customers (id int PRIMARY KEY, name text NOT NULL, email text);"
               "CREATE TABLE public.orders (id int PRIMARY KEY, customer_id int NOT NULL,"
               "  amount numeric(10,2), note text);"
               "INSERT INTO public.customers VALUES (1, 'Ada', 'ada@example.com'), (2, 'Grace', NULL);"
               "INSERT INTO public.orders VALUES (1, 1, 12.50, 'first'), (2, 1, 7.00, NULL),"
               "  (3, 2, 99.99, E'a tab\\there, \"quotes\" and a\\nnewline');");
  ASSERT_TRUE(created.ok()) << created.ToString();

  const std::string run_dir = work.Path("run");
  fs::create_directories(run_dir);
  const std::string changes_file = run_dir + "/tutorial_changes.jsonl";
  const std::string store_file = run_dir + "/tutorial_state.txt";
  SubprocessOptions options;
  options.cwd = run_dir;
  options.timeout_ms = 600000;
  options.env["SOURCE_URL"] = pg->Url(db);

  // --- run 1: the pipeline of example.toml, its ${VAR}s from the environment ---
  {
    SubprocessOptions first = options;
    first.env["CHANGES_FILE"] = changes_file;
    first.env["STATE_FILE"] = store_file;
    auto started = Subprocess::Start({program, kExampleDir + "/example.toml"}, first);
    ASSERT_TRUE(started.ok()) << started.status().ToString();
    Subprocess& app = **started;

    // The initial copy: every row, after its table's truncate.
    bool copied = WaitFor(
        [&] {
          auto lines = ReadChanges(changes_file);
          StoreFile store = ReadStore(store_file);
          return FindLine(lines, "copy", "insert", "public.orders", "new", "3") >= 0 &&
                 FindLine(lines, "copy", "insert", "public.customers", "new", "2") >= 0 &&
                 CopiedOrStreaming(store.states["public.orders"]) &&
                 CopiedOrStreaming(store.states["public.customers"]);
        },
        120000, &app);
    ASSERT_TRUE(copied) << "--- changes ---\n"
                        << Dump(ReadChanges(changes_file)) << "--- store ---\n"
                        << ReadFile(store_file) << "--- stderr ---\n"
                        << sluice::testing::Tail(app.StderrSoFar(), 8000);
    auto lines = ReadChanges(changes_file);
    for (const char* table : {"public.orders", "public.customers"}) {
      int truncate = FindLine(lines, "copy", "truncate", table);
      ASSERT_GE(truncate, 0) << table << "\n" << Dump(lines);
      EXPECT_LT(truncate, FindLine(lines, "copy", "insert", table)) << Dump(lines);
    }
    for (const char* id : {"1", "2", "3"}) {
      ASSERT_GE(FindLine(lines, "copy", "insert", "public.orders", "new", id), 0) << id << "\n"
                                                                                  << Dump(lines);
    }
    const auto& third = lines[FindLine(lines, "copy", "insert", "public.orders", "new", "3")]["new"];
    EXPECT_EQ(third.value("note", ""), "a tab\there, \"quotes\" and a\nnewline") << third.dump();
    EXPECT_EQ(third.value("amount", ""), "99.99") << third.dump();
    EXPECT_TRUE(
        lines[FindLine(lines, "copy", "insert", "public.orders", "new", "2")]["new"]["note"].is_null());

    // Streamed changes, each its own transaction.
    for (const char* sql :
         {"INSERT INTO public.orders VALUES (4, 2, 5.25, 'streamed')",
          "UPDATE public.orders SET amount = 13.00 WHERE id = 1", "DELETE FROM public.orders WHERE id = 2",
          "UPDATE public.customers SET email = 'grace@example.com' WHERE id = 2"}) {
      Status s = pg->Exec(db, sql);
      ASSERT_TRUE(s.ok()) << sql << ": " << s.ToString();
    }
    uint64_t last_end = 0;
    bool streamed = WaitFor(
        [&] {
          lines = ReadChanges(changes_file);
          int update = FindLine(lines, "stream", "update", "public.customers", "new", "2");
          if (update < 0) return false;
          last_end = ParseLsn(lines[update].value("end_lsn", ""));
          return last_end != 0 && ReadStore(store_file).confirmed_lsn >= last_end;
        },
        60000, &app);
    ASSERT_TRUE(streamed) << "--- changes ---\n"
                          << Dump(ReadChanges(changes_file)) << "--- store ---\n"
                          << ReadFile(store_file) << "--- stderr ---\n"
                          << sluice::testing::Tail(app.StderrSoFar(), 8000);
    int insert = FindLine(lines, "stream", "insert", "public.orders", "new", "4");
    int update = FindLine(lines, "stream", "update", "public.orders", "new", "1");
    int remove = FindLine(lines, "stream", "delete", "public.orders", "old", "2");
    ASSERT_GE(insert, 0) << Dump(lines);
    ASSERT_GE(update, 0) << Dump(lines);
    ASSERT_GE(remove, 0) << Dump(lines);
    EXPECT_LT(insert, update) << "commit order";
    EXPECT_LT(update, remove) << "commit order";
    EXPECT_EQ(lines[insert]["new"].value("note", ""), "streamed");
    EXPECT_EQ(lines[update]["new"].value("amount", ""), "13.00");
    for (int i : {insert, update, remove}) {
      EXPECT_NE(ParseLsn(lines[i].value("lsn", "")), 0u) << lines[i].dump();
      EXPECT_NE(ParseLsn(lines[i].value("end_lsn", "")), 0u) << lines[i].dump();
      EXPECT_TRUE(lines[i].contains("xid")) << lines[i].dump();
    }
    EXPECT_LT(ParseLsn(lines[insert].value("end_lsn", "")), ParseLsn(lines[remove].value("end_lsn", "")));

    StoreFile store = ReadStore(store_file);
    EXPECT_GE(store.confirmed_lsn, last_end);
    EXPECT_EQ(store.tables.size(), 2u) << ReadFile(store_file);

    app.Kill(SIGINT);
    SubprocessResult r = app.Wait();
    EXPECT_EQ(r.exit_code, 0) << Show(r);
    // The registry lists the program's components next to the built-in ones.
    size_t stores = r.err.find("[custom_components] CDC state stores:");
    ASSERT_NE(stores, std::string::npos) << Show(r);
    EXPECT_NE(r.err.substr(stores, r.err.find('\n', stores) - stores).find("cached_file"), std::string::npos)
        << Show(r);
    size_t destinations = r.err.find("[custom_components] CDC destinations:");
    ASSERT_NE(destinations, std::string::npos) << Show(r);
    EXPECT_NE(r.err.substr(destinations, r.err.find('\n', destinations) - destinations).find("jsonl_log"),
              std::string::npos)
        << Show(r);
    EXPECT_NE(r.err.find("[cached_file] start-up:"), std::string::npos) << Show(r);
    EXPECT_NE(r.err.find("[cached_file] SaveTableState public.orders"), std::string::npos) << Show(r);
    EXPECT_NE(r.err.find("[cached_file] SaveConfirmedLsn"), std::string::npos) << Show(r);
    EXPECT_NE(r.err.find("[jsonl_log] WriteTableRows public.orders"), std::string::npos) << Show(r);
    EXPECT_NE(r.err.find("[jsonl_log] WriteEvents"), std::string::npos) << Show(r);
    EXPECT_NE(r.err.find("SIGINT: stopping the pipeline"), std::string::npos) << Show(r);
    EXPECT_NE(r.err.find("stopped cleanly"), std::string::npos) << Show(r);
  }

  // A change while nothing runs: the slot keeps it for the restart.
  ASSERT_TRUE(pg->Exec(db, "INSERT INTO public.orders VALUES (5, 1, 1.00, 'while stopped')").ok());
  const int copy_lines = CountLines(ReadChanges(changes_file), "copy");
  const uint64_t confirmed_before = ReadStore(store_file).confirmed_lsn;

  // --- run 2: the same pipeline built in code, resuming from the store's file ---
  {
    auto started = Subprocess::Start({program, "--from-code"}, options);
    ASSERT_TRUE(started.ok()) << started.status().ToString();
    Subprocess& app = **started;
    bool resumed = WaitFor(
        [&] {
          auto lines = ReadChanges(changes_file);
          int insert = FindLine(lines, "stream", "insert", "public.orders", "new", "5");
          return insert >= 0 &&
                 ReadStore(store_file).confirmed_lsn >= ParseLsn(lines[insert].value("end_lsn", "")) &&
                 ReadStore(store_file).confirmed_lsn > confirmed_before;
        },
        90000, &app);
    ASSERT_TRUE(resumed) << "--- changes ---\n"
                         << Dump(ReadChanges(changes_file)) << "--- store ---\n"
                         << ReadFile(store_file) << "--- stderr ---\n"
                         << sluice::testing::Tail(app.StderrSoFar(), 8000);
    // The tables were not copied again: their states came from the file.
    EXPECT_EQ(CountLines(ReadChanges(changes_file), "copy"), copy_lines) << Dump(ReadChanges(changes_file));

    app.Kill(SIGINT);
    SubprocessResult r = app.Wait();
    EXPECT_EQ(r.exit_code, 0) << Show(r);
    size_t loaded = r.err.find("[cached_file] start-up: loaded tutorial_state.txt:");
    ASSERT_NE(loaded, std::string::npos) << Show(r);
    EXPECT_NE(r.err.substr(loaded, r.err.find('\n', loaded) - loaded).find(", 2 table states,"),
              std::string::npos)
        << Show(r);
    EXPECT_NE(r.err.find("[cached_file] LoadTableStates -> 2 tables"), std::string::npos) << Show(r);
    EXPECT_NE(r.err.find("pipeline 'tutorial'"), std::string::npos) << Show(r);
    EXPECT_NE(r.err.find("stopped cleanly"), std::string::npos) << Show(r);
  }

  (void)pg->Exec(db, "SELECT pg_drop_replication_slot('tutorial_slot')");
}

}  // namespace
}  // namespace sluice::e2e
