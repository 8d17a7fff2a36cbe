// sluice_duckdb_floor: DuckDB alone, through its C API, with nothing of
// sluice around it. bench/s3_bench.py uses it twice:
//
//   - to generate the workload (COPY (SELECT ... FROM range(...)) TO
//     'dir/part-NN.parquet' (FORMAT parquet)), and
//   - as the floor of the S3 batch benchmark: the same read and aggregate
//     sluice runs, over the same files, but from local disk and with no
//     listing, download, state store or COPY into PostgreSQL. A pipeline that
//     reads Parquet with DuckDB cannot be faster than DuckDB reading it.
//
// Usage:
//   sluice_duckdb_floor [--threads N] [--memory-limit X] [--print]
//                       (--sql STATEMENTS | --file PATH)...
//
// Statements run in order on one connection of an in-memory database; each
// --sql or file may hold several statements separated by ';'. The last
// statement's result is materialised completely (every chunk fetched), and
// the program prints, as its last line on stdout,
//
//   rows=<rows of the last result> seconds=<its elapsed time> total_seconds=<all statements>
//
// With --print the last result's rows come first, one per line, columns
// separated by tabs (VARCHAR, BOOLEAN, integer and DOUBLE columns; cast
// anything else to VARCHAR in the query). Progress goes to stderr.
//
// --threads and --memory-limit become SET threads / SET memory_limit before
// the first statement; without them DuckDB's defaults apply (one thread per
// core, 80% of RAM), which is also what sluice uses unless its [engine]
// section says otherwise.
//
// Exit status: 0 on success, 1 when a statement fails (with DuckDB's error
// on stderr), 2 on a usage error.

#include <duckdb.h>

#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

[[noreturn]] void Usage(const char* message) {
  if (message != nullptr) std::fprintf(stderr, "sluice_duckdb_floor: %s\n", message);
  std::fprintf(stderr,
               "usage: sluice_duckdb_floor [--threads N] [--memory-limit X] [--print] [--quiet]\n"
               "                           (--sql STATEMENTS | --file PATH)...\n"
               "       sluice_duckdb_floor --version\n");
  std::exit(2);
}

struct Options {
  int threads = 0;            // 0: DuckDB's default (one per core)
  std::string memory_limit;   // empty: DuckDB's default
  std::vector<std::string> scripts;  // each may hold several statements
  bool print = false;
  bool quiet = false;
};

Options ParseArgs(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) Usage(("missing value for " + std::string(arg)).c_str());
      return argv[++i];
    };
    if (arg == "--threads") {
      std::string v = value();
      char* end = nullptr;
      long n = std::strtol(v.c_str(), &end, 10);
      if (end == v.c_str() || *end != '\0' || n < 0 || n > 4096) Usage("--threads needs a number >= 0");
      o.threads = static_cast<int>(n);
    } else if (arg == "--memory-limit") {
      o.memory_limit = value();
    } else if (arg == "--sql") {
      o.scripts.push_back(value());
    } else if (arg == "--file") {
      std::string path = value();
      std::ifstream in(path, std::ios::binary);
      if (!in) Usage(("cannot read " + path).c_str());
      std::ostringstream text;
      text << in.rdbuf();
      o.scripts.push_back(text.str());
    } else if (arg == "--print") {
      o.print = true;
    } else if (arg == "--quiet") {
      o.quiet = true;
    } else if (arg == "--version") {
      std::printf("DuckDB %s\n", duckdb_library_version());
      std::exit(0);
    } else if (arg == "-h" || arg == "--help") {
      Usage(nullptr);
    } else {
      Usage(("unknown argument " + std::string(arg)).c_str());
    }
  }
  if (o.scripts.empty()) Usage("nothing to run: give --sql or --file");
  return o;
}

// Single quotes for a SET value.
std::string SqlString(std::string_view s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += '\'';
    out += c;
  }
  out += '\'';
  return out;
}

// One line of text for a cell, or false when the type is not supported.
bool FormatCell(duckdb_type type, duckdb_vector vector, idx_t row, std::string* out) {
  uint64_t* validity = duckdb_vector_get_validity(vector);
  if (validity != nullptr && !duckdb_validity_row_is_valid(validity, row)) {
    *out = "NULL";
    return true;
  }
  void* data = duckdb_vector_get_data(vector);
  char buf[64];
  switch (type) {
    case DUCKDB_TYPE_VARCHAR: {
      auto* s = static_cast<duckdb_string_t*>(data) + row;
      out->assign(duckdb_string_t_data(s), duckdb_string_t_length(*s));
      return true;
    }
    case DUCKDB_TYPE_BOOLEAN:
      *out = static_cast<bool*>(data)[row] ? "true" : "false";
      return true;
    case DUCKDB_TYPE_TINYINT:
      std::snprintf(buf, sizeof buf, "%d", static_cast<int>(static_cast<int8_t*>(data)[row]));
      break;
    case DUCKDB_TYPE_SMALLINT:
      std::snprintf(buf, sizeof buf, "%d", static_cast<int>(static_cast<int16_t*>(data)[row]));
      break;
    case DUCKDB_TYPE_INTEGER:
      std::snprintf(buf, sizeof buf, "%" PRId32, static_cast<int32_t*>(data)[row]);
      break;
    case DUCKDB_TYPE_BIGINT:
      std::snprintf(buf, sizeof buf, "%" PRId64, static_cast<int64_t*>(data)[row]);
      break;
    case DUCKDB_TYPE_UBIGINT:
      std::snprintf(buf, sizeof buf, "%" PRIu64, static_cast<uint64_t*>(data)[row]);
      break;
    case DUCKDB_TYPE_DOUBLE:
      std::snprintf(buf, sizeof buf, "%.17g", static_cast<double*>(data)[row]);
      break;
    default:
      return false;
  }
  *out = buf;
  return true;
}

// Runs every statement of `script`; the result of the last one is kept in
// *last (destroyed and replaced statement by statement).
bool RunScript(duckdb_connection con, const std::string& script, duckdb_result* last, bool* have_last,
               Clock::time_point* last_start, const Options& o) {
  duckdb_extracted_statements stmts = nullptr;
  idx_t n = duckdb_extract_statements(con, script.c_str(), &stmts);
  if (n == 0) {
    const char* err = duckdb_extract_statements_error(stmts);
    bool empty = err == nullptr || *err == '\0';
    if (!empty) std::fprintf(stderr, "sluice_duckdb_floor: %s\n", err);
    duckdb_destroy_extracted(&stmts);
    return empty;  // a script of only comments is fine
  }
  bool ok = true;
  for (idx_t i = 0; i < n && ok; ++i) {
    Clock::time_point start = Clock::now();
    duckdb_prepared_statement prepared = nullptr;
    if (duckdb_prepare_extracted_statement(con, stmts, i, &prepared) == DuckDBError) {
      std::fprintf(stderr, "sluice_duckdb_floor: %s\n", duckdb_prepare_error(prepared));
      duckdb_destroy_prepare(&prepared);
      ok = false;
      break;
    }
    if (*have_last) {
      duckdb_destroy_result(last);
      *have_last = false;
    }
    // Not the streaming variant: the whole result is materialised before
    // this returns, as a caller that loads it somewhere would need it.
    if (duckdb_execute_prepared(prepared, last) == DuckDBError) {
      std::fprintf(stderr, "sluice_duckdb_floor: %s\n", duckdb_result_error(last));
      duckdb_destroy_result(last);
      ok = false;
    } else {
      *have_last = true;
      *last_start = start;
      if (!o.quiet) std::fprintf(stderr, "sluice_duckdb_floor: statement done in %.3f s\n", SecondsSince(start));
    }
    duckdb_destroy_prepare(&prepared);
  }
  duckdb_destroy_extracted(&stmts);
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  Options o = ParseArgs(argc, argv);
  Clock::time_point total_start = Clock::now();

  duckdb_database db = nullptr;
  duckdb_connection con = nullptr;
  char* open_error = nullptr;
  if (duckdb_open_ext(nullptr, &db, nullptr, &open_error) == DuckDBError) {
    std::fprintf(stderr, "sluice_duckdb_floor: cannot open DuckDB: %s\n", open_error ? open_error : "?");
    duckdb_free(open_error);
    return 1;
  }
  if (duckdb_connect(db, &con) == DuckDBError) {
    std::fprintf(stderr, "sluice_duckdb_floor: cannot connect to DuckDB\n");
    duckdb_close(&db);
    return 1;
  }

  std::vector<std::string> scripts;
  if (o.threads > 0) scripts.push_back("SET threads = " + std::to_string(o.threads));
  if (!o.memory_limit.empty()) scripts.push_back("SET memory_limit = " + SqlString(o.memory_limit));
  const size_t settings = scripts.size();
  scripts.insert(scripts.end(), o.scripts.begin(), o.scripts.end());

  duckdb_result last;
  std::memset(&last, 0, sizeof last);
  bool have_last = false;
  Clock::time_point last_start = Clock::now();
  bool ok = true;
  for (size_t i = 0; i < scripts.size() && ok; ++i) {
    ok = RunScript(con, scripts[i], &last, &have_last, &last_start, o);
    // A SET is not "the last statement" of anything the caller asked for.
    if (ok && i < settings && have_last) {
      duckdb_destroy_result(&last);
      have_last = false;
    }
  }

  int status = 0;
  if (!ok) {
    status = 1;
  } else if (!have_last) {
    std::fprintf(stderr, "sluice_duckdb_floor: no statement ran\n");
    status = 2;
  } else {
    // Fetch every chunk: the time of the last statement includes handing
    // over its whole result, not only computing it.
    idx_t rows = 0;
    idx_t columns = duckdb_column_count(&last);
    std::vector<duckdb_type> types(columns);
    for (idx_t c = 0; c < columns; ++c) types[c] = duckdb_column_type(&last, c);
    std::string text, cell;
    for (;;) {
      duckdb_data_chunk chunk = duckdb_fetch_chunk(last);
      if (chunk == nullptr) break;
      idx_t size = duckdb_data_chunk_get_size(chunk);
      if (o.print) {
        for (idx_t r = 0; r < size && status == 0; ++r) {
          for (idx_t c = 0; c < columns; ++c) {
            if (!FormatCell(types[c], duckdb_data_chunk_get_vector(chunk, c), r, &cell)) {
              std::fprintf(stderr,
                           "sluice_duckdb_floor: --print: column %s has a type this program does not "
                           "format; cast it to VARCHAR\n",
                           duckdb_column_name(&last, c));
              status = 2;
              break;
            }
            if (c > 0) text += '\t';
            text += cell;
          }
          text += '\n';
        }
      }
      rows += size;
      duckdb_destroy_data_chunk(&chunk);
      if (size == 0) break;
    }
    double seconds = SecondsSince(last_start);
    if (status == 0) {
      std::fwrite(text.data(), 1, text.size(), stdout);
      std::printf("rows=%" PRIu64 " seconds=%.6f total_seconds=%.6f\n", static_cast<uint64_t>(rows), seconds,
                  SecondsSince(total_start));
    }
    duckdb_destroy_result(&last);
  }
  duckdb_disconnect(&con);
  duckdb_close(&db);
  return status;
}
