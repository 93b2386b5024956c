#include "report.hpp"

#include <unistd.h>

#include <cmath>
#include <stdexcept>
#include <utility>

namespace rpa_bench {

namespace {

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

// A table cell: fixed decimals, "-" for an unknown ratio.
std::string cell(double v, int decimals) {
  if (!std::isfinite(v)) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

constexpr const char* kRowFormat = "%-18s %5s %-9s %10s %7s %8s %5s %6s %8s %8s %6s %7s %6s %4s\n";

}  // namespace

Progress::Progress() : tty_(isatty(STDERR_FILENO) == 1) {}

void Progress::update(const std::string& status) {
  if (tty_) {
    std::fprintf(stderr, "\r\033[K%s", status.c_str());
    shown_ = true;
  } else {
    std::fprintf(stderr, "%s\n", status.c_str());
  }
  std::fflush(stderr);
}

void Progress::clear() {
  if (shown_) {
    std::fprintf(stderr, "\r\033[K");
    std::fflush(stderr);
    shown_ = false;
  }
}

Report::Report(const RunInfo& info, const std::string& json_path, Progress& progress,
               bool verbose)
    : info_(info), progress_(progress), verbose_(verbose) {
  if (!json_path.empty()) {
    json_ = std::fopen(json_path.c_str(), "w");
    if (json_ == nullptr) throw std::runtime_error("cannot open " + json_path + " for writing");
  }
}

Report::~Report() {
  if (json_ != nullptr) std::fclose(json_);
}

void Report::print_header() const {
  progress_.clear();
  std::printf("cpu: %s\n", info_.cpu.c_str());
  std::printf("rpa %s, kernel path (rpa_isa): %s (available: %s), threads: %d\n",
              info_.version.c_str(), info_.isa.c_str(), info_.paths.c_str(), info_.threads);
  std::printf(
      "at start: P_peak %.0f GFLOP/s (AMX tdpbf16ps %.0f, vdpbf16ps zmm %.0f, fp32 FMA %s %.0f)\n",
      info_.p_peak_gflops, info_.p_amx_gflops, info_.p_dpbf16_gflops,
      info_.fma_vector.empty() ? "-" : info_.fma_vector.c_str(), info_.p_fma_gflops);
  std::printf("at start: P_path %.0f GFLOP/s (%s)\n", info_.p_path_gflops,
              info_.p_path_instruction.c_str());
  std::printf(
      "B_stream (GB/s, %s loads), P_peak and P_path (GFLOP/s) are measured again right\n"
      "before and after each row (the better of the two); the cache and the stream buffer\n"
      "are on %s\n",
      info_.stream_vector.c_str(),
      info_.huge_pages ? "huge pages (MADV_HUGEPAGE)" : "4 KiB pages: MADV_HUGEPAGE refused");
  if (!info_.notes.empty()) std::printf("note: %s\n", info_.notes.c_str());
  std::printf("\n");
  std::printf(kRowFormat, "workload", "page", "dtype", "time ms", "GB/s", "GFLOP/s", "MBU", "MFU",
              "MFU_path", "roofline", "B_str", "P_peak", "P_path", "reps");
  std::fflush(stdout);
}

void Report::add(const Row& r) {
  progress_.clear();
  const std::string label = r.variant == "default" ? r.workload : r.workload + "/" + r.variant;
  std::printf(kRowFormat, label.c_str(), std::to_string(r.page_size).c_str(), r.cache_dtype.c_str(),
              cell(r.seconds * 1e3, 3).c_str(), cell(r.gbps, 1).c_str(), cell(r.gflops, 0).c_str(),
              cell(r.mbu, 2).c_str(), cell(r.mfu, 3).c_str(), cell(r.mfu_path, 3).c_str(),
              cell(r.roofline_fraction, 2).c_str(), cell(r.b_stream_gbps, 1).c_str(),
              cell(r.p_peak_gflops, 0).c_str(), cell(r.p_path_gflops, 0).c_str(),
              std::to_string(r.reps).c_str());
  std::string busy, busy_json;
  for (double b : r.thread_busy) {
    if (!busy.empty()) busy += ' ';
    busy += cell(b, 2);
    if (!busy_json.empty()) busy_json += ", ";
    busy_json += json_number(b);
  }
  if (verbose_) std::printf("  thread busy: %s\n", busy.c_str());
  std::fflush(stdout);
  if (json_ == nullptr) return;

  const std::pair<const char*, std::string> fields[] = {
      {"workload", json_string(r.workload)},
      {"variant", json_string(r.variant)},
      {"page_size", std::to_string(r.page_size)},
      {"cache_dtype", json_string(r.cache_dtype)},
      {"threads", std::to_string(info_.threads)},
      {"seconds", json_number(r.seconds)},
      {"seconds_min", json_number(r.seconds_min)},
      {"reps", std::to_string(r.reps)},
      {"mbu", json_number(r.mbu)},
      {"mfu", json_number(r.mfu)},
      {"mfu_path", json_number(r.mfu_path)},
      {"roofline_fraction", json_number(r.roofline_fraction)},
      {"bytes", json_number(r.bytes)},
      {"flops", json_number(r.flops)},
      {"gbps", json_number(r.gbps)},
      {"gflops", json_number(r.gflops)},
      {"b_stream_gbps", json_number(r.b_stream_gbps)},
      {"p_peak_gflops", json_number(r.p_peak_gflops)},
      {"p_path_gflops", json_number(r.p_path_gflops)},
      {"p_path_instruction", json_string(info_.p_path_instruction)},
      {"p_amx_gflops", json_number(r.p_amx_gflops)},
      {"p_vdpbf16ps_gflops", json_number(r.p_dpbf16_gflops)},
      {"p_fma_gflops", json_number(r.p_fma_gflops)},
      {"fma_vector", json_string(info_.fma_vector)},
      {"num_seqs", std::to_string(r.num_seqs)},
      {"num_tokens", std::to_string(r.num_tokens)},
      {"cache_bytes", json_number(r.cache_bytes)},
      {"huge_pages", info_.huge_pages ? "true" : "false"},
      {"isa", json_string(info_.isa)},
      {"isa_available", json_string(info_.paths)},
      {"rpa_version", json_string(info_.version)},
      {"cpu", json_string(info_.cpu)},
      {"thread_busy", "[" + busy_json + "]"},
  };
  std::string line = "{";
  for (const auto& [key, value] : fields) {
    if (line.size() > 1) line += ", ";
    line += json_string(key) + ": " + value;
  }
  line += "}\n";
  std::fputs(line.c_str(), json_);
  std::fflush(json_);
}

}  // namespace rpa_bench
