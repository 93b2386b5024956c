// What a run prints: a header with the machine's limits, a table row per
// measurement on stdout, one JSON object per row in the --json file, and a
// progress line on stderr.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

namespace rpa_bench {

// Facts shared by all rows of a run.
struct RunInfo {
  std::string cpu;
  std::string isa;      // rpa_isa()
  std::string paths;    // the kernel paths rpa_isa_available() accepts, space-separated
  std::string version;  // rpa_version()
  int threads = 0;
  bool huge_pages = false;    // madvise(MADV_HUGEPAGE) accepted
  std::string stream_vector;  // load width of the B_stream reader
  // The peaks at the start of the run (each row has its own, measured before it).
  double p_amx_gflops = 0, p_dpbf16_gflops = 0, p_fma_gflops = 0;
  std::string fma_vector;
  double p_peak_gflops = 0;
  double p_path_gflops = 0;
  std::string p_path_instruction;  // what P_path measures, for rpa_isa()
  std::string notes;               // caveats to print once (AMX refused, scalar path, ...)
};

// One measurement. Ratios are NaN when their limit is unknown (e.g. no FMA).
struct Row {
  std::string workload;
  std::string variant = "default";  // ablation rows name what they change
  int page_size = 0;
  std::string cache_dtype;
  int num_seqs = 0;
  int num_tokens = 0;
  double cache_bytes = 0;
  int reps = 0;
  double seconds = 0;  // median
  double seconds_min = 0;
  double bytes = 0;  // K/V bytes of all sequences
  double flops = 0;
  double gbps = 0;
  double gflops = 0;
  double mbu = 0;
  double mfu = 0;
  double mfu_path = 0;
  double roofline_fraction = 0;
  // The limits measured right before this row.
  double b_stream_gbps = 0;
  double p_amx_gflops = 0, p_dpbf16_gflops = 0, p_fma_gflops = 0;
  double p_peak_gflops = 0;
  double p_path_gflops = 0;
  // Each thread's busy fraction of the attention phase in the last timed call.
  std::vector<double> thread_busy;
};

// The stderr status line: rewritten in place on a terminal, one line per
// update otherwise (CI logs).
class Progress {
 public:
  Progress();
  void update(const std::string& status);
  void clear();

 private:
  bool tty_;
  bool shown_ = false;
};

class Report {
 public:
  // json_path empty: no JSON file. Throws std::runtime_error if it cannot be opened.
  // verbose: a line of per-thread busy fractions under each row.
  Report(const RunInfo& info, const std::string& json_path, Progress& progress, bool verbose);
  ~Report();
  Report(const Report&) = delete;
  Report& operator=(const Report&) = delete;

  void print_header() const;
  // Prints the row and appends it to the JSON file (flushed: a run that dies
  // later keeps its rows).
  void add(const Row& row);

 private:
  const RunInfo& info_;
  std::FILE* json_ = nullptr;
  Progress& progress_;
  bool verbose_ = false;
};

}  // namespace rpa_bench
