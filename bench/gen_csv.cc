// sluice_gen_csv: deterministic, fast generator of the "sales" CSV workload
// used by bench/load_bench.py.
//
// Output columns (header line first):
//   id,category,status,amount,ts,note
//   id        bigint, 1..N in order
//   category  ~20 distinct short words
//   status    5 distinct words
//   amount    numeric(12,2), negatives included (refunds)
//   ts        timestamp "YYYY-MM-DD HH:MM:SS", spread over 2018..2025
//   note      always quoted: contains a comma and a doubled quote ""
//             so that every reader has to take the slow, correct path.
// Rows average ~60 bytes, so 5,000,000 rows is ~300 MB.
//
// Why hand-rolled formatting: this program is piped into `sluice run` for
// the 10 GB streaming workload; it must generate well above the speed of the
// tool under test (target > 300 MB/s, in practice ~1 GB/s on one core) so the
// measurement is of sluice, not of the generator. Hence: one large output
// buffer, std::to_chars / digit tables, no iostreams, no per-row allocation.
//
// Determinism: the same --seed and --rows produce byte-identical output, so
// runs on different days and machines load the same data.

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

namespace {

constexpr std::size_t kBufferSize = 1 << 20;  // 1 MiB: few write() calls.
constexpr std::size_t kMaxRowBytes = 256;     // upper bound of one row.

constexpr std::string_view kCategories[] = {
    "books",  "toys",    "garden", "music",   "games",  "food",   "shoes",
    "sports", "tools",   "beauty", "health",  "office", "pets",   "auto",
    "baby",   "jewelry", "movies", "kitchen", "travel", "outdoor"};
constexpr std::string_view kStatuses[] = {"new", "paid", "sent", "refund",
                                          "void"};
// Note fragments. Inside a quoted CSV field a literal quote is written as
// "", so a note's raw bytes look like
//   "blue, ""gift"" 7"
// and the value PostgreSQL stores is:  blue, "gift" 7
constexpr std::string_view kAdjectives[] = {"red", "blue", "big", "odd",
                                            "new", "old",  "hot", "raw"};
constexpr std::string_view kNouns[] = {"gift", "promo", "vip", "bulk",
                                       "late", "rush",  "b2b", "web"};

// splitmix64: tiny, fast, good enough statistically, and fully specified so
// the output never depends on the standard library's implementation.
struct SplitMix64 {
  std::uint64_t state;
  std::uint64_t Next() {
    std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n). Plain modulo: the bias is below n / 2^64, i.e.
  // nothing for our n, and it stays portable (no __int128).
  std::uint64_t Below(std::uint64_t n) { return Next() % n; }
};

// "00".."99" so two digits are one 2-byte copy.
struct DigitPairs {
  char pairs[200];
  constexpr DigitPairs() : pairs() {
    for (int i = 0; i < 100; ++i) {
      pairs[2 * i] = static_cast<char>('0' + i / 10);
      pairs[2 * i + 1] = static_cast<char>('0' + i % 10);
    }
  }
};
constexpr DigitPairs kDigitPairs;

inline char* Put2(char* p, unsigned v) {
  std::memcpy(p, &kDigitPairs.pairs[2 * v], 2);
  return p + 2;
}

inline char* Put(char* p, std::string_view s) {
  std::memcpy(p, s.data(), s.size());
  return p + s.size();
}

// Days since 1970-01-01 -> civil date (Howard Hinnant's algorithm); avoids
// gmtime_r, which is slow and locale/timezone sensitive.
inline void CivilFromDays(std::int64_t z, int* y, unsigned* m, unsigned* d) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = static_cast<int>(yoe + era * 400) + (*m <= 2 ? 1 : 0);
}

class Writer {
 public:
  explicit Writer(int fd) : fd_(fd), buf_(new char[kBufferSize]) {}
  ~Writer() { delete[] buf_; }
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  // Room for one more row without overflowing; flushes when needed.
  char* Reserve() {
    if (kBufferSize - used_ < kMaxRowBytes) Flush();
    return buf_ + used_;
  }
  void Commit(char* end) { used_ = static_cast<std::size_t>(end - buf_); }

  void Flush() {
    std::size_t off = 0;
    while (off < used_) {
      ssize_t n = ::write(fd_, buf_ + off, used_ - off);
      if (n < 0) {
        if (errno == EINTR) continue;
        // EPIPE: the reader went away (e.g. `| head`). Exit quietly with a
        // distinct code; anything else is a real error.
        if (errno == EPIPE) std::exit(3);
        std::perror("sluice_gen_csv: write");
        std::exit(2);
      }
      off += static_cast<std::size_t>(n);
    }
    total_ += used_;
    used_ = 0;
  }
  std::uint64_t BytesSoFar() const { return total_ + used_; }

 private:
  int fd_;
  char* buf_;
  std::size_t used_ = 0;
  std::uint64_t total_ = 0;
};

// Appends one row and returns the new end of the buffer.
// Adds the row's amount (in cents) to *amount_cents so the driver can check
// sum(amount) in the database against an independent value.
inline char* WriteRow(char* p, std::uint64_t id, SplitMix64& rng,
                      std::int64_t* amount_cents) {
  p = std::to_chars(p, p + 20, id).ptr;
  *p++ = ',';

  const std::uint64_t r = rng.Next();  // one draw split into small fields
  p = Put(p, kCategories[(r & 0xFFFF) % 20]);
  *p++ = ',';
  // Skewed status: mostly "paid"/"sent", a few refunds/voids.
  static constexpr unsigned kStatusByBucket[16] = {0, 1, 1, 1, 1, 1, 2, 2,
                                                   2, 2, 2, 2, 0, 3, 3, 4};
  p = Put(p, kStatuses[kStatusByBucket[(r >> 16) & 15]]);
  *p++ = ',';

  // amount: cents in [-5000.00, 14999.99]; ~1/4 negative. Written as
  // [-]units.cc by hand so "-0.05" comes out right.
  std::int64_t cents =
      static_cast<std::int64_t>(rng.Below(2'000'000)) - 500'000;
  *amount_cents += cents;
  if (cents < 0) {
    *p++ = '-';
    cents = -cents;
  }
  p = std::to_chars(p, p + 20, cents / 100).ptr;
  *p++ = '.';
  p = Put2(p, static_cast<unsigned>(cents % 100));
  *p++ = ',';

  // ts: uniform over 2018-01-01 .. 2025-12-31 (8 years = 2922 days).
  constexpr std::int64_t kStartDay = 17532;  // 2018-01-01
  const std::uint64_t secs = rng.Below(2922ull * 86400);
  int y;
  unsigned mo, d;
  CivilFromDays(kStartDay + static_cast<std::int64_t>(secs / 86400), &y, &mo,
                &d);
  const unsigned sod = static_cast<unsigned>(secs % 86400);
  p = Put2(p, static_cast<unsigned>(y / 100));
  p = Put2(p, static_cast<unsigned>(y % 100));
  *p++ = '-';
  p = Put2(p, mo);
  *p++ = '-';
  p = Put2(p, d);
  *p++ = ' ';
  p = Put2(p, sod / 3600);
  *p++ = ':';
  p = Put2(p, sod / 60 % 60);
  *p++ = ':';
  p = Put2(p, sod % 60);
  *p++ = ',';

  // note: "adj, ""noun"" n" -> value: adj, "noun" n
  *p++ = '"';
  p = Put(p, kAdjectives[(r >> 20) & 7]);
  p = Put(p, ", \"\"");
  p = Put(p, kNouns[(r >> 23) & 7]);
  p = Put(p, "\"\" ");
  p = std::to_chars(p, p + 20, (r >> 26) % 10).ptr;
  *p++ = '"';
  *p++ = '\n';
  return p;
}

[[noreturn]] void Usage(const char* argv0, int code) {
  std::fprintf(code == 0 ? stdout : stderr,
               "usage: %s [--rows N] [--bytes N] [--seed S] [--out FILE] "
               "[--no-header]\n"
               "  --rows N    stop after N data rows (default 5000000)\n"
               "  --bytes N   stop once about N bytes were written (row "
               "boundary);\n"
               "              accepts suffixes K/M/G (powers of 1000) and "
               "1e9 notation.\n"
               "              With --bytes and no --rows, rows are "
               "unlimited.\n"
               "  --seed S    PRNG seed (default 42); same seed, same bytes\n"
               "  --out FILE  write to FILE instead of stdout\n"
               "  --summary   at the end, print to stderr one line\n"
               "              'rows=N bytes=B amount_cents_sum=S'\n",
               argv0);
  std::exit(code);
}

// Parses "5000000", "10G", "1e10", "2.5e9".
std::uint64_t ParseCount(const char* argv0, const char* s) {
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(s, &end);
  if (errno != 0 || end == s || v < 0) Usage(argv0, 1);
  switch (*end) {
    case '\0':
      break;
    case 'k':
    case 'K':
      v *= 1e3;
      ++end;
      break;
    case 'm':
    case 'M':
      v *= 1e6;
      ++end;
      break;
    case 'g':
    case 'G':
      v *= 1e9;
      ++end;
      break;
    case 't':
    case 'T':
      v *= 1e12;
      ++end;
      break;
    default:
      Usage(argv0, 1);
  }
  if (*end != '\0') Usage(argv0, 1);
  return static_cast<std::uint64_t>(v);
}

}  // namespace

int main(int argc, char** argv) {
  std::uint64_t rows = 5'000'000;
  std::uint64_t max_bytes = 0;  // 0 = no byte limit
  bool rows_given = false;
  bool header = true;
  bool summary = false;
  std::uint64_t seed = 42;
  const char* out_path = nullptr;

  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) Usage(argv[0], 1);
      return argv[++i];
    };
    if (a == "--rows") {
      rows = ParseCount(argv[0], value());
      rows_given = true;
    } else if (a == "--bytes") {
      max_bytes = ParseCount(argv[0], value());
    } else if (a == "--seed") {
      seed = ParseCount(argv[0], value());
    } else if (a == "--out") {
      out_path = value();
    } else if (a == "--summary") {
      summary = true;
    } else if (a == "--no-header") {
      header = false;
    } else if (a == "-h" || a == "--help") {
      Usage(argv[0], 0);
    } else {
      Usage(argv[0], 1);
    }
  }
  if (max_bytes > 0 && !rows_given) rows = UINT64_MAX;

  int fd = STDOUT_FILENO;
  if (out_path != nullptr) {
    fd = ::creat(out_path, 0644);
    if (fd < 0) {
      std::perror(out_path);
      return 2;
    }
  }
#ifdef F_SETPIPE_SZ
  // When piped into the tool under test, a 1 MiB pipe (default 64 KiB)
  // means far fewer context switches per GB. Best effort: it fails
  // harmlessly on non-pipes or above /proc/sys/fs/pipe-max-size.
  (void)::fcntl(fd, F_SETPIPE_SZ, 1 << 20);
#endif

  Writer w(fd);
  if (header) {
    char* p = w.Reserve();
    w.Commit(Put(p, "id,category,status,amount,ts,note\n"));
  }
  SplitMix64 rng{seed};
  std::int64_t amount_cents = 0;
  std::uint64_t written = 0;
  for (std::uint64_t id = 1; id <= rows; ++id) {
    char* p = w.Reserve();
    w.Commit(WriteRow(p, id, rng, &amount_cents));
    written = id;
    // Checked every 1024 rows: cheap, and "about N bytes" is the contract.
    if (max_bytes > 0 && (id & 1023) == 0 && w.BytesSoFar() >= max_bytes) {
      break;
    }
  }
  w.Flush();
  if (out_path != nullptr && ::close(fd) != 0) {
    std::perror(out_path);
    return 2;
  }
  if (summary) {
    std::fprintf(stderr, "rows=%llu bytes=%llu amount_cents_sum=%lld\n",
                 static_cast<unsigned long long>(written),
                 static_cast<unsigned long long>(w.BytesSoFar()),
                 static_cast<long long>(amount_cents));
  }
  return 0;
}
