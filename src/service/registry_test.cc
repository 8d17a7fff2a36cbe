// The registry and per-component configuration: duplicate and unknown
// types, a user's destination run from TOML, and a table of pipeline files
// (testdata/config_cases.test) with the error each must give. For every
// built-in component, a key of another component of the same kind is
// refused naming the key and the type.
#include "sluice/registry.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "service/config.h"
#include "sluice/pipeline.h"

namespace sluice::service {
namespace {

std::optional<std::string> NoEnv(const std::string&) { return std::nullopt; }

Result<std::unique_ptr<LoadedPipeline>> Load(const std::string& toml, const Registry& registry) {
  return LoadPipelineText(toml, "p.toml", registry, "", nullptr, NoEnv);
}

/// Counts the rows it is given; what a user's destination looks like.
class CountingDestination : public Destination {
 public:
  CountingDestination(std::atomic<int64_t>* rows, std::string label)
      : rows_(rows), label_(std::move(label)) {}
  Status Begin(const Schema&) override { return Status::OK(); }
  Status Write(const Batch& batch) override {
    pending_ += batch.num_rows();
    return Status::OK();
  }
  Status Commit() override {
    *rows_ += pending_;
    return Status::OK();
  }
  void Abort() override { pending_ = 0; }
  std::string Describe() const override { return "counting " + label_; }

 private:
  std::atomic<int64_t>* rows_;
  std::string label_;
  int64_t pending_ = 0;
};

TEST(Registry, ATypeRegisteredTwiceIsRefused) {
  Registry registry = Registry::WithBuiltins();
  auto factory = [](const ConfigTable&) -> Result<std::unique_ptr<Destination>> {
    return Status::Internal("unused");
  };
  Status again = registry.AddDestination("postgres", factory);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(again.message().find("destination type 'postgres' is already registered"), std::string::npos)
      << again.message();
  EXPECT_TRUE(registry.AddDestination("mine", factory).ok());
  EXPECT_FALSE(registry.AddDestination("mine", factory).ok());
  // The same name in another kind is another component.
  EXPECT_TRUE(registry
                  .AddCdcStore("mine",
                               [](const ConfigTable&) -> Result<std::unique_ptr<CdcStore>> {
                                 return Status::Internal("unused");
                               })
                  .ok());
  EXPECT_FALSE(registry.AddDestination("", factory).ok());
  EXPECT_FALSE(registry.AddDestination("empty", Registry::DestinationFactory()).ok());
}

TEST(Registry, AnUnknownTypeListsTheRegisteredOnes) {
  Registry registry = Registry::WithBuiltins();
  ASSERT_TRUE(registry
                  .AddDestination("counting",
                                  [](const ConfigTable&) -> Result<std::unique_ptr<Destination>> {
                                    return Status::Internal("unused");
                                  })
                  .ok());
  auto loaded = Load("[source]\npath = \"x.csv\"\n[destination]\ntype = \"countin\"\n", registry);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(loaded.status().message().find("unknown destination type 'countin' (available: counting, duckdb, "
                                           "file, http, null, postgres, stdout)"),
            std::string::npos)
      << loaded.status().message();
}

TEST(Registry, ACustomDestinationRunsFromToml) {
  auto dir = std::filesystem::temp_directory_path() / ("sluice-registry-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  {
    std::ofstream csv(dir / "in.csv");
    csv << "id,name\n";
    for (int i = 0; i < 1000; ++i) csv << i << ",n" << i << "\n";
  }
  std::atomic<int64_t> rows{0};
  std::string label;
  Registry registry = Registry::WithBuiltins();
  ASSERT_TRUE(registry
                  .AddDestination("counting",
                                  [&](const ConfigTable& t) -> Result<std::unique_ptr<Destination>> {
                                    label = t.GetString("label");
                                    return std::make_unique<CountingDestination>(&rows, label);
                                  })
                  .ok());
  const std::string toml = "[source]\npath = \"" + (dir / "in.csv").string() +
                           "\"\n[transform]\nsql = \"SELECT * FROM input WHERE id % 2 = 0\"\n"
                           "[destination]\ntype = \"counting\"\nlabel = \"evens\"\n";
  auto pipeline = Pipeline::FromToml(toml, registry, "evens");
  ASSERT_TRUE(pipeline.ok()) << pipeline.status().ToString();
  EXPECT_EQ((*pipeline)->name(), "evens");
  Status run = (*pipeline)->Run();
  ASSERT_TRUE(run.ok()) << run.ToString();
  EXPECT_EQ(rows.load(), 500);
  EXPECT_EQ(label, "evens");
  EXPECT_NE((*pipeline)->StatusJson().find("\"destination\":\"counting evens\""), std::string::npos)
      << (*pipeline)->StatusJson();

  // A key the factory does not read is an error naming it and the type.
  auto typo = Pipeline::FromToml(toml + "lable = \"x\"\n", registry, "evens");
  ASSERT_FALSE(typo.ok());
  EXPECT_NE(
      typo.status().message().find("[destination] unknown key 'lable' for type 'counting' (accepted: label)"),
      std::string::npos)
      << typo.status().message();

  // Stopped before it runs: Run returns Cancelled and loads nothing.
  auto stopped = Pipeline::FromToml(toml, registry, "evens");
  ASSERT_TRUE(stopped.ok());
  (*stopped)->Stop();
  EXPECT_EQ((*stopped)->Run().code(), StatusCode::kCancelled);
  EXPECT_EQ(rows.load(), 500);
  std::filesystem::remove_all(dir);
}

TEST(Registry, AFactoryErrorIsReportedAfterTheKeyChecks) {
  Registry registry = Registry::WithBuiltins();
  ASSERT_TRUE(registry
                  .AddDestination("picky",
                                  [](const ConfigTable& t) -> Result<std::unique_ptr<Destination>> {
                                    if (t.GetString("url").empty())
                                      return Status::InvalidArgument(t.Name() +
                                                                     " url is required for type picky");
                                    return Status::Internal("unused");
                                  })
                  .ok());
  auto typo =
      Load("[source]\npath = \"x.csv\"\n[destination]\ntype = \"picky\"\nulr = \"http://h\"\n", registry);
  ASSERT_FALSE(typo.ok());
  // The typo, not its consequence, is what the user must fix.
  EXPECT_NE(typo.status().message().find("unknown key 'ulr' for type 'picky'"), std::string::npos)
      << typo.status().message();
  auto missing = Load("[source]\npath = \"x.csv\"\n[destination]\ntype = \"picky\"\n", registry);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("[destination] url is required for type picky"),
            std::string::npos);
}

struct ConfigCase {
  std::string name;
  std::string toml;
  std::string expect;  // "ok" or the error text
};

std::vector<ConfigCase> ReadCases(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in) << path;
  std::vector<ConfigCase> cases;
  std::string line;
  ConfigCase* current = nullptr;
  bool in_toml = false;
  while (std::getline(in, line)) {
    if (!in_toml && (line.empty() || line[0] == '#')) continue;
    if (!in_toml && line.starts_with("case ")) {
      cases.push_back({line.substr(5), "", ""});
      current = &cases.back();
      in_toml = true;
      continue;
    }
    if (in_toml && line == "----") {
      in_toml = false;
      continue;
    }
    if (in_toml) {
      current->toml += line + "\n";
    } else if (current && current->expect.empty()) {
      current->expect = line == "ok" ? "ok" : line.substr(line.find(' ') + 1);
    }
  }
  return cases;
}

TEST(PipelineConfig, TheCasesOfTheTableLoadOrFailAsWritten) {
  Registry registry = Registry::WithBuiltins();
  auto cases = ReadCases(std::string(SLUICE_SOURCE_DIR) + "/src/service/testdata/config_cases.test");
  ASSERT_GE(cases.size(), 30u);
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name + "\n" + c.toml);
    auto loaded = Load(c.toml, registry);
    if (c.expect == "ok") {
      EXPECT_TRUE(loaded.ok()) << loaded.status().ToString();
      continue;
    }
    ASSERT_FALSE(loaded.ok());
    EXPECT_EQ(loaded.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(loaded.status().message().find(c.expect), std::string::npos) << loaded.status().message();
  }
}

// For every built-in component: a minimal file that loads, then the same
// file with each key of the other types of its kind, refused by name.
TEST(PipelineConfig, EveryBuiltInRefusesTheKeysOfItsSiblings) {
  Registry registry = Registry::WithBuiltins();
  const std::string files = "[source]\ntype = \"files\"\npath = \"x.csv\"\n";
  const std::string cdc =
      "[source]\ntype = \"postgres_cdc\"\nurl = \"postgresql://u@h/db\"\npublication = \"p\"\n";
  // The keys each type needs to load; the rest is added by the test.
  const std::map<std::string, std::string> required = {
      {"postgres", "url = \"postgresql://u@h/db\"\ntable = \"t\"\n"},
      {"duckdb", "path = \"x.db\"\ntable = \"t\"\n"},
      {"file", "path = \"out.jsonl\"\n"},
      {"jsonl", "path = \"out.jsonl\"\n"},
      {"sqlite", "path = \"s.db\"\n"},
      {"files", "path = \"x.csv\"\n"},
      {"postgres_cdc", "url = \"postgresql://u@h/db\"\npublication = \"p\"\n"},
  };
  struct Kind {
    ComponentKind kind;
    std::function<std::string(const std::string& table)> file;
  };
  const Kind kinds[] = {
      {ComponentKind::kSource,
       [](const std::string& t) { return "[source]\n" + t + "[destination]\ntype = \"null\"\n"; }},
      {ComponentKind::kDestination, [&](const std::string& t) { return files + "[destination]\n" + t; }},
      {ComponentKind::kCdcDestination, [&](const std::string& t) { return cdc + "[destination]\n" + t; }},
      {ComponentKind::kStateStore,
       [&](const std::string& t) { return files + "[destination]\ntype = \"null\"\n[state]\n" + t; }},
      {ComponentKind::kCdcStore,
       [&](const std::string& t) { return cdc + "[destination]\ntype = \"null\"\n[state]\n" + t; }},
  };
  int checked = 0;
  for (const auto& kind : kinds) {
    for (const auto& type : registry.Types(kind.kind)) {
      std::string table = "type = \"" + type + "\"\n";
      // The http source needs its urls, the http destinations their url.
      if (type == "http") {
        table += kind.kind == ComponentKind::kSource ? "urls = [\"http://127.0.0.1:8080/e/1\"]\n"
                                                     : "url = \"http://127.0.0.1:8080/ingest\"\n";
      }
      // The CDC postgres destination needs only its url.
      if (required.count(type)) {
        std::string need = required.at(type);
        if (kind.kind == ComponentKind::kCdcDestination && type == "postgres")
          need = "url = \"postgresql://u@h/db\"\n";
        if (kind.kind == ComponentKind::kStateStore || kind.kind == ComponentKind::kCdcStore) {
          if (type == "postgres") need = "url = \"postgresql://u@h/db\"\n";
        }
        table += need;
      }
      auto base = Load(kind.file(table), registry);
      ASSERT_TRUE(base.ok()) << kind.file(table) << "\n" << base.status().ToString();
      const ComponentInfo* info = registry.Info(kind.kind, type);
      ASSERT_NE(info, nullptr);
      for (const auto& other : registry.Types(kind.kind)) {
        for (const auto& key : registry.Info(kind.kind, other)->keys) {
          if (std::find(info->keys.begin(), info->keys.end(), key) != info->keys.end()) continue;
          SCOPED_TRACE(std::string(ComponentKindName(kind.kind)) + " " + type + " with " + key + " of " +
                       other);
          auto loaded = Load(kind.file(table + key + " = \"x\"\n"), registry);
          ASSERT_FALSE(loaded.ok());
          EXPECT_EQ(loaded.status().code(), StatusCode::kInvalidArgument);
          EXPECT_NE(loaded.status().message().find("unknown key '" + key + "' for type '" + type + "'"),
                    std::string::npos)
              << loaded.status().message();
          ++checked;
        }
      }
    }
  }
  EXPECT_GT(checked, 40);
}

TEST(PipelineConfig, TheShippedExamplesLoad) {
  Registry registry = Registry::WithBuiltins();
  auto env = [](const std::string& name) -> std::optional<std::string> {
    if (name == "PGPASSWORD") return std::string("pw");
    return std::nullopt;
  };
  for (const char* example : {"examples/s3_daily/daily.toml", "examples/postgres_cdc/cdc.toml",
                              "examples/quickstart/pipeline.toml", "examples/quickstart/show.toml"}) {
    SCOPED_TRACE(example);
    auto loaded = LoadPipelineFile(std::string(SLUICE_SOURCE_DIR) + "/" + example, registry, nullptr, env);
    ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  }
  auto daily = LoadPipelineFile(std::string(SLUICE_SOURCE_DIR) + "/examples/s3_daily/daily.toml", registry,
                                nullptr, env);
  ASSERT_TRUE(daily.ok());
  EXPECT_EQ((*daily)->config.name, "daily_orders");
  ASSERT_TRUE((*daily)->config.schedule.has_value());
  EXPECT_EQ((*daily)->config.schedule->cron, "0 3 * * *");
  EXPECT_EQ((*daily)->config.schedule->timezone, "Europe/Berlin");
  EXPECT_FALSE((*daily)->config.schedule->run_on_start);
  EXPECT_TRUE((*daily)->config.server.configured);
}

TEST(PipelineConfig, TheCdcSlotDefaultsToThePipelineName) {
  Registry registry = Registry::WithBuiltins();
  auto loaded = LoadPipelineText(
      "[source]\ntype = \"postgres_cdc\"\nurl = \"postgresql://h/db\"\npublication = \"p\"\n"
      "[destination]\ntype = \"stdout\"\n",
      "dir/My-Orders.toml", registry, "", nullptr, NoEnv);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ((*loaded)->config.name, "My-Orders");
  EXPECT_NE((*loaded)->job->Describe().find("slot sluice_my_orders"), std::string::npos)
      << (*loaded)->job->Describe();
  EXPECT_TRUE((*loaded)->job->continuous());
}

// libpq would split "p@ss..." at its first '@' and print the rest as a host:
// each URL key refuses it at load time, by name, without echoing it.
TEST(PipelineConfig, UrlsLibpqWouldMisreadAreRefusedNamingTheKeyNotTheValue) {
  Registry registry = Registry::WithBuiltins();
  const std::string bad = "postgresql://loader:p@ss:w/rd#S3cr3t?&%x@127.0.0.1:5432/shop";
  const std::string good = "postgresql://loader:p%40ss@127.0.0.1:5432/shop";
  auto file = [](const std::string& source, const std::string& state, const std::string& destination) {
    return "[source]\ntype = \"postgres_cdc\"\npublication = \"p\"\nurl = '" + source +
           "'\n[state]\nurl = '" + state + "'\n[destination]\ntype = \"postgres\"\nurl = '" + destination +
           "'\n";
  };
  for (const auto& [toml, key] :
       {std::pair{file(bad, good, good), "[source] url"}, std::pair{file(good, bad, good), "[state] url"},
        std::pair{file(good, good, bad), "[destination] url"}}) {
    SCOPED_TRACE(key);
    // The state store's url is checked when it opens (it connects then).
    auto loaded = Load(toml, registry);
    Status status = loaded.ok() ? (*loaded)->job->Run(nullptr, ProgressMode::kNever).status : loaded.status();
    ASSERT_FALSE(status.ok());
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
    const std::string& message = status.message();
    EXPECT_NE(message.find(std::string(key) + ": the password contains a raw '@'; write it as %40"),
              std::string::npos)
        << message;
    for (const char* piece : {"ss:w", "rd#S3", "S3cr3t", "127.0.0.1"}) {
      EXPECT_EQ(message.find(piece), std::string::npos) << piece << " in " << message;
    }
  }
  // A "${" inside a password is not echoed either.
  auto dollar = Load(file(good, good, "postgresql://u:ab${cd!efgh}@h/db"), registry);
  ASSERT_FALSE(dollar.ok());
  EXPECT_EQ(dollar.status().message().find("efgh"), std::string::npos) << dollar.status().message();
}

}  // namespace
}  // namespace sluice::service
