// rpa-bench: the workloads of BENCH.md against this machine's own limits,
// measured in the same run with the same thread count. See --help.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "limits.hpp"
#include "memory.hpp"
#include "report.hpp"
#include "rpa/rpa.h"
#include "tiny_call.hpp"
#include "token_io.hpp"
#include "workloads.hpp"

namespace rpa_bench {
namespace {

struct DtypeName {
  rpa_dtype dtype;
  const char* name;
};
constexpr DtypeName kDtypes[] = {{RPA_F32, "f32"},           {RPA_BF16, "bf16"},
                                 {RPA_F16, "f16"},           {RPA_FP8_E4M3, "fp8_e4m3"},
                                 {RPA_FP8_E5M2, "fp8_e5m2"}, {RPA_INT8, "int8"}};

const char* dtype_name(rpa_dtype d) {
  for (const DtypeName& n : kDtypes) {
    if (n.dtype == d) return n.name;
  }
  return "?";
}

struct Options {
  std::vector<std::string> workloads = workload_ids();
  std::vector<int32_t> page_sizes = {16, 128};
  std::vector<rpa_dtype> cache_dtypes = {RPA_BF16, RPA_FP8_E4M3};
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::string json_path;
  int reps = 0;  // 0: the mode's default
  bool smoke = false;
  bool ablate = false;
  bool shared_pages = false;
  bool token_io = false;
  bool tiny_call = false;
  bool verbose = false;
};

[[noreturn]] void usage(int code) {
  std::fprintf(
      code == 0 ? stdout : stderr,
      "usage: rpa-bench [options]\n"
      "  --workload D1,D2,...     of D1 D2 D3 D4 P1 P2 P3 M1 (default: all)\n"
      "  --page-size 16,128       tokens per page (default: 16,128)\n"
      "  --cache-dtype bf16,...   of f32 bf16 f16 fp8_e4m3 fp8_e5m2 int8\n"
      "                           (default: bf16,fp8_e4m3; 1-byte types run D* only)\n"
      "  --threads N              kernel and limit threads (default: hardware threads)\n"
      "  --reps N                 timed calls per row, at least (default: 10;\n"
      "                           fast rows get more, up to 0.3 s of calls)\n"
      "  --json FILE              one JSON object per row\n"
      "  --smoke                  tiny shapes and a 64 MiB cache: proves the bench runs\n"
      "  --ablate                 after each row, the same batch with one lever off:\n"
      "                           decode rows (D*, M1): the general kernel for decodes,\n"
      "                           a scatter pass before attention, no prefetch, no split-KV;\n"
      "                           prefill rows (P*, M1): the general kernel for prefills,\n"
      "                           and on avx512_bf16 / amx fp32 FMA tiles for the bf16 pairs;\n"
      "                           P* with a bf16 cache: the cache as token rows, packed at\n"
      "                           read (pack_at_read); every row: no prefetch\n"
      "  --shared-pages           after each decode row (D*, M1), the same batch with\n"
      "                           every second decode reading, through its first page,\n"
      "                           the page the decode before it writes (read after write)\n"
      "  --token-io               instead of the workloads: rpa_cache_write_tokens and\n"
      "                           rpa_cache_read_tokens of 32 decode and 2048 prefill\n"
      "                           tokens per cache dtype and page size, GB/s / B_stream\n"
      "  --tiny-call              instead of the workloads: the C call on a tiny decode\n"
      "                           (1 x kv_len 16), median us of --reps calls (default\n"
      "                           20000): what bench/python/overhead.py compares with\n"
      "  --verbose                under each row, each thread's busy fraction of the\n"
      "                           attention phase (last timed call)\n");
  std::exit(code);
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= s.size()) {
    const size_t comma = std::min(s.find(',', start), s.size());
    if (comma > start) parts.push_back(s.substr(start, comma - start));
    start = comma + 1;
  }
  return parts;
}

int positive_int(const std::string& s, const char* what) {
  char* end = nullptr;
  const long v = std::strtol(s.c_str(), &end, 10);
  if (end == s.c_str() || *end != '\0' || v < 1 || v > 1 << 20) {
    std::fprintf(stderr, "rpa-bench: %s must be a positive integer, got '%s'\n", what, s.c_str());
    usage(2);
  }
  return static_cast<int>(v);
}

Options parse_options(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "rpa-bench: %s needs a value\n", arg.c_str());
        usage(2);
      }
      return argv[++i];
    };
    if (arg == "--help" || arg == "-h") {
      usage(0);
    } else if (arg == "--smoke") {
      o.smoke = true;
    } else if (arg == "--ablate") {
      o.ablate = true;
    } else if (arg == "--shared-pages") {
      o.shared_pages = true;
    } else if (arg == "--token-io") {
      o.token_io = true;
    } else if (arg == "--tiny-call") {
      o.tiny_call = true;
    } else if (arg == "--verbose") {
      o.verbose = true;
    } else if (arg == "--workload") {
      o.workloads = split(value());
      for (const std::string& w : o.workloads) {
        if (!make_workload(w, 1)) {
          std::fprintf(stderr, "rpa-bench: unknown workload '%s'\n", w.c_str());
          usage(2);
        }
      }
    } else if (arg == "--page-size") {
      o.page_sizes.clear();
      for (const std::string& p : split(value()))
        o.page_sizes.push_back(positive_int(p, "--page-size"));
    } else if (arg == "--cache-dtype") {
      o.cache_dtypes.clear();
      for (const std::string& name : split(value())) {
        const DtypeName* found = nullptr;
        for (const DtypeName& n : kDtypes) {
          if (name == n.name) found = &n;
        }
        if (found == nullptr) {
          std::fprintf(stderr, "rpa-bench: unknown cache dtype '%s'\n", name.c_str());
          usage(2);
        }
        o.cache_dtypes.push_back(found->dtype);
      }
    } else if (arg == "--threads") {
      o.threads = positive_int(value(), "--threads");
    } else if (arg == "--reps") {
      o.reps = positive_int(value(), "--reps");
    } else if (arg == "--json") {
      o.json_path = value();
    } else {
      std::fprintf(stderr, "rpa-bench: unknown option '%s'\n", arg.c_str());
      usage(2);
    }
  }
  if (o.workloads.empty() || o.page_sizes.empty() || o.cache_dtypes.empty()) usage(2);
  return o;
}

// The sizes a mode runs at. --smoke keeps every code path of a real run but
// shrinks the shapes, the cache and the measurement times so that CI (even
// under sanitizers) finishes in seconds.
struct Mode {
  ModelShape shape;
  int32_t length_divisor;
  size_t min_cache_bytes;  // >= 2 GiB for real runs: far beyond the L3
  size_t stream_bytes;     // >= 1 GiB for real runs
  int stream_passes;       // B_stream is the best of these
  double peak_seconds;     // per instruction and run
  int peak_runs;           // P_peak before a row is the best of these
  TimingPolicy timing;
};

Mode make_mode(const Options& o) {
  if (o.smoke) {
    return {{4, 2, 64},
            16,
            size_t{64} << 20,
            size_t{64} << 20,
            1,
            0.002,
            1,
            TimingPolicy{1, o.reps > 0 ? o.reps : 2, o.reps > 0 ? o.reps : 2, 0.0}};
  }
  return {{32, 8, 128},
          1,
          size_t{2} << 30,
          size_t{1} << 30,
          3,
          0.02,
          3,
          TimingPolicy{2, o.reps > 0 ? o.reps : 10, 200, 0.3}};
}

// 1-byte caches are a decode feature (BENCH.md runs fp8 on D* only).
bool runs_with(const WorkloadSpec& w, rpa_dtype dtype) {
  return dtype_bytes(dtype) > 1 || w.decode_only();
}

struct Bench {
  Mode mode;
  CpuFeatures cpu;
  int threads;
  HugeBuffer stream_buffer;
  PeakMeter peak_meter;
  RunInfo info;
};

// Measures one row: B_stream and the peaks right before the call (the host's
// bandwidth and load drift minute to minute), then the timed calls, then the
// ratios. This is the hook for ablations: they run the same workload with
// their own `call` and `variant` name and get rows comparable with the
// default ones.
Row measure_row(const Bench& b, const WorkloadSpec& w, Activations& act, void* cache,
                const rpa_cache_config& cfg, const AttentionCall& call,
                const std::string& variant, bool shared_pages = false) {
  const BatchTables tables(w, cfg.page_size, cfg.num_pages, shared_pages);
  rpa_options opts;
  rpa_default_options(&opts, b.mode.shape.num_q_heads, RPA_BF16, b.mode.shape.head_dim);
  opts.update_kv_cache = 1;  // the fused K/V write is part of a serving step's call
  opts.num_threads = b.threads;
  opts.k_scale = opts.v_scale = cache_scale(cfg.dtype);
  const CallArgs args{act.queries.data(), act.keys.data(), act.values.data(), cache, &cfg,
                      nullptr,            &opts,           act.out.data()};

  // The limits are measured right before and right after the row, and each
  // is the better of the two: on these shared VMs a vCPU is sometimes taken
  // away for a fraction of a second, and a limit measured in such a dip (seen:
  // P_peak at half its value, MFU 1.1) would make the row's ratio meaningless.
  // A dip spanning both measurements and the timed calls is rarer.
  const double b_stream_before =
      measure_stream(b.stream_buffer, b.threads, b.mode.stream_passes, b.cpu);
  const PeakThroughput peaks_before = b.peak_meter.measure(b.mode.peak_runs);
  const Timing t = time_calls(call, args, tables.rotation(), b.mode.timing);
  std::vector<double> busy(size_t(std::max(b.threads, 1)));
  busy.resize(size_t(std::clamp(rpa_last_call_busy(busy.data(), int32_t(busy.size())), 0,
                                int32_t(busy.size()))));
  const double b_stream = std::max(
      b_stream_before, measure_stream(b.stream_buffer, b.threads, b.mode.stream_passes, b.cpu));
  const PeakThroughput peaks_after = b.peak_meter.measure(b.mode.peak_runs);
  PeakThroughput peaks = peaks_before;
  peaks.amx_gflops = std::max(peaks_before.amx_gflops, peaks_after.amx_gflops);
  peaks.dpbf16_gflops = std::max(peaks_before.dpbf16_gflops, peaks_after.dpbf16_gflops);
  peaks.fma_gflops = std::max(peaks_before.fma_gflops, peaks_after.fma_gflops);
  const double p_peak = peaks.best();
  const double p_path = path_peak(peaks, b.info.isa).gflops;
  const WorkCounts work = count_work(w, b.mode.shape, cfg.dtype);

  // An unknown limit (a CPU without the instruction) gives NaN, not infinity.
  const auto per_limit = [](double rate, double limit) { return limit > 0 ? rate / limit : NAN; };
  Row r;
  r.workload = w.id;
  r.variant = variant;
  r.page_size = cfg.page_size;
  r.cache_dtype = dtype_name(cfg.dtype);
  r.num_seqs = static_cast<int>(w.seqs.size());
  r.num_tokens = w.num_tokens();
  r.cache_bytes = static_cast<double>(rpa_cache_bytes(&cfg));
  r.reps = t.reps;
  r.seconds = t.median_s;
  r.seconds_min = t.min_s;
  r.bytes = work.kv_bytes;
  r.flops = work.flops;
  r.gbps = work.kv_bytes / t.median_s / 1e9;
  r.gflops = work.flops / t.median_s / 1e9;
  r.b_stream_gbps = b_stream;
  r.p_amx_gflops = peaks.amx_gflops;
  r.p_dpbf16_gflops = peaks.dpbf16_gflops;
  r.p_fma_gflops = peaks.fma_gflops;
  r.p_peak_gflops = p_peak;
  r.p_path_gflops = p_path;
  r.thread_busy = busy;
  r.mbu = per_limit(r.gbps, b_stream);
  r.mfu = per_limit(r.gflops, p_peak);
  r.mfu_path = per_limit(r.gflops, p_path);
  // Time the decodes need at B_stream plus time the rest needs at P_peak, over
  // the time taken: MBU for a decode batch, MFU for a prefill batch.
  const double decode_s = work.decode_kv_bytes / (b_stream * 1e9);
  const double prefill_s =
      work.prefill_flops > 0 ? per_limit(work.prefill_flops, p_peak * 1e9) : 0.0;
  r.roofline_fraction = (decode_s + prefill_s) / t.median_s;
  return r;
}

// The levers --ablate turns off one at a time (rpa_set_tuning switches), each
// as a row on the same batch right after the default row.
bool carries_decodes(const WorkloadSpec& w, const rpa_cache_config&) {
  return w.id[0] == 'D' || w.id == "M1";
}
bool carries_prefills(const WorkloadSpec& w, const rpa_cache_config&) {
  return w.id[0] == 'P' || w.id == "M1";
}
bool carries_any(const WorkloadSpec&, const rpa_cache_config&) { return true; }
// Prefill rows on a path with bf16 pair tiles (vdpbf16ps, AMX); the workloads are bf16.
bool carries_pair_tile_prefills(const WorkloadSpec& w, const rpa_cache_config& cfg) {
  const std::string_view isa = rpa_isa();
  return carries_prefills(w, cfg) && (isa == "avx512_bf16" || isa == "amx");
}
// Batches of prefills only (the ablation has no decode kernel) on the caches
// it takes: bf16, an even page_size and head_dim.
bool carries_row_order_prefills(const WorkloadSpec& w, const rpa_cache_config& cfg) {
  return w.id[0] == 'P' && cfg.dtype == RPA_BF16 && cfg.page_size % 2 == 0 &&
         cfg.head_dim % 2 == 0;
}

struct Ablation {
  const char* variant;
  const char* off_switch;
  bool (*applies)(const WorkloadSpec&, const rpa_cache_config&);
};
constexpr Ablation kAblations[] = {
    // decodes through the general kernel
    {"general_kernel", "decode_kernel", carries_decodes},
    // new K/V written by a pass before attention
    {"scatter_first", "fused_update", carries_decodes},
    // no software prefetch of the next page (decode) or K/V block (prefill)
    {"no_prefetch", "prefetch", carries_any},
    // long decodes not split over threads
    {"no_split_kv", "split_kv", carries_decodes},
    // prefill and mixed sequences through the general kernel
    {"general_prefill", "prefill_kernel", carries_prefills},
    // prefill tiles on fp32 FMA instead of the path's bf16 pairs (vdpbf16ps, AMX)
    {"fma_tiles", "pair_tiles", carries_pair_tile_prefills},
    // the cache as token rows, packed by the prefill kernel at read time,
    // against the documented layout, written ready for the tiles
    {"pack_at_read", "layout_at_write", carries_row_order_prefills},
};

// library_call with one switch off for the call's duration.
AttentionCall call_without(const char* off_switch) {
  return [off_switch](const CallArgs& a, char* err, size_t err_len) {
    rpa_set_tuning(off_switch, 0);
    const rpa_status s = library_call(a, err, err_len);
    rpa_set_tuning(off_switch, 1);
    return s;
  };
}

// The cache configs of a run, one per (dtype, page size), each sized for the
// largest workload it runs and at least mode.min_cache_bytes; one buffer big
// enough for all of them is refilled for each.
struct CacheRun {
  rpa_cache_config cfg;
  std::vector<const WorkloadSpec*> workloads;
};

std::vector<CacheRun> plan_cache_runs(const Options& o, const Mode& mode,
                                      const std::vector<WorkloadSpec>& specs) {
  std::vector<CacheRun> runs;
  for (rpa_dtype dtype : o.cache_dtypes) {
    for (int32_t page_size : o.page_sizes) {
      CacheRun c{};
      int32_t pages = 1;
      for (const WorkloadSpec& w : specs) {
        if (!runs_with(w, dtype)) continue;
        c.workloads.push_back(&w);
        pages = std::max(pages, pages_needed(w, page_size));
      }
      if (c.workloads.empty()) continue;
      c.cfg = cache_config_for(mode.shape, page_size, dtype, pages, mode.min_cache_bytes);
      runs.push_back(std::move(c));
    }
  }
  return runs;
}

// The run's header facts, with the peaks measured now (the rows re-measure).
RunInfo describe_run(const Options& o, const Bench& b, const HugeBuffer& cache) {
  RunInfo info;
  info.cpu = cpu_model_name();
  info.isa = rpa_isa();
  for (const char* path : {"scalar", "avx2", "avx512", "avx512_bf16", "amx"}) {
    if (rpa_isa_available(path) != 1) continue;
    if (!info.paths.empty()) info.paths += ' ';
    info.paths += path;
  }
  info.version = rpa_version();
  info.threads = o.threads;
  info.huge_pages = b.stream_buffer.huge_pages() && cache.huge_pages();
  info.stream_vector = stream_load_width(b.cpu);

  const PeakThroughput peaks = b.peak_meter.measure(b.mode.peak_runs);
  const PathPeak path = path_peak(peaks, info.isa);
  info.p_amx_gflops = peaks.amx_gflops;
  info.p_dpbf16_gflops = peaks.dpbf16_gflops;
  info.p_fma_gflops = peaks.fma_gflops;
  info.fma_vector = peaks.fma_vector;
  info.p_peak_gflops = peaks.best();
  info.p_path_gflops = path.gflops;
  info.p_path_instruction = path.instruction;
  const std::string& amx_note = b.peak_meter.amx_note();
  info.notes = amx_note + (amx_note.empty() || path.note.empty() ? "" : "; ") + path.note;
  return info;
}

int run(const Options& o) {
  if (o.tiny_call) return run_tiny_call(o.reps ? o.reps : 20000, o.threads);
  Progress progress;
  const Mode mode = make_mode(o);
  const CpuFeatures cpu = detect_cpu_features();
  progress.update("allocating the B_stream buffer, calibrating the peak loops");
  Bench b{mode,
          cpu,
          o.threads,
          HugeBuffer(mode.stream_bytes, o.threads),
          PeakMeter(cpu, o.threads, mode.peak_seconds),
          RunInfo{}};

  if (o.token_io) {
    progress.clear();
    return run_token_io({o.page_sizes, o.cache_dtypes, dtype_name, o.threads, o.smoke},
                        b.stream_buffer, cpu);
  }
  std::vector<WorkloadSpec> specs;
  for (const std::string& id : o.workloads)
    specs.push_back(*make_workload(id, mode.length_divisor));
  const std::vector<CacheRun> runs = plan_cache_runs(o, mode, specs);
  size_t cache_bytes = 0, total_rows = 0;
  for (const CacheRun& c : runs) {
    cache_bytes = std::max(cache_bytes, rpa_cache_bytes(&c.cfg));
    total_rows += c.workloads.size();
  }

  progress.update("allocating the KV cache");
  HugeBuffer cache(cache_bytes, o.threads);
  progress.update("measuring P_peak (AMX, vdpbf16ps, fp32 FMA)");
  b.info = describe_run(o, b, cache);

  Report report(b.info, o.json_path, progress, o.verbose);
  report.print_header();

  std::map<std::string, Activations> activations;
  for (const WorkloadSpec& w : specs) {
    progress.update("generating inputs of " + w.id);
    activations.emplace(w.id, make_activations(w, mode.shape));
  }

  int failures = 0;
  size_t row_index = 0;
  for (const CacheRun& c : runs) {
    const std::string where =
        std::string(" page ") + std::to_string(c.cfg.page_size) + " " + dtype_name(c.cfg.dtype);
    progress.update("filling the" + where + " cache (" +
                    std::to_string(rpa_cache_bytes(&c.cfg) >> 20) + " MiB)");
    fill_cache(cache.data(), rpa_cache_bytes(&c.cfg), c.cfg.dtype, o.threads);
    for (const WorkloadSpec* w : c.workloads) {
      ++row_index;
      progress.update(std::string("[") + std::to_string(row_index) + "/" +
                      std::to_string(total_rows) + "] " + w->id + where);
      try {
        report.add(measure_row(b, *w, activations.at(w->id), cache.data(), c.cfg, library_call,
                               "default"));
        if (o.shared_pages && carries_decodes(*w, c.cfg)) {
          report.add(measure_row(b, *w, activations.at(w->id), cache.data(), c.cfg, library_call,
                                 "shared_pages", true));
        }
        for (const Ablation& a : kAblations) {
          if (!o.ablate || !a.applies(*w, c.cfg)) continue;
          report.add(measure_row(b, *w, activations.at(w->id), cache.data(), c.cfg,
                                 call_without(a.off_switch), a.variant));
        }
      } catch (const std::exception& e) {
        progress.clear();
        std::fprintf(stderr, "rpa-bench: %s%s failed: %s\n", w->id.c_str(), where.c_str(),
                     e.what());
        ++failures;
      }
    }
  }
  progress.clear();
  return failures == 0 ? 0 : 1;
}

}  // namespace
}  // namespace rpa_bench

int main(int argc, char** argv) {
  try {
    return rpa_bench::run(rpa_bench::parse_options(argc, argv));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rpa-bench: %s\n", e.what());
    return 1;
  }
}
