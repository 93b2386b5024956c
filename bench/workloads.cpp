#include "workloads.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <stdexcept>

#include "team.hpp"

namespace rpa_bench {

namespace {

uint16_t to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  bits += 0x7fff + ((bits >> 16) & 1);  // round to nearest even (inputs are finite)
  return static_cast<uint16_t>(bits >> 16);
}

// A counter-based generator (splitmix64): word i of the cache gets the same
// bits whichever thread fills it and in whichever order.
uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace

int32_t WorkloadSpec::num_tokens() const {
  int32_t t = 0;
  for (const Sequence& s : seqs) t += s.q_len;
  return t;
}

const std::vector<std::string>& workload_ids() {
  static const std::vector<std::string> ids = {"D1", "D2", "D3", "D4", "P1", "P2", "P3", "M1"};
  return ids;
}

std::optional<WorkloadSpec> make_workload(std::string_view id, int32_t length_divisor) {
  const auto len = [length_divisor](int32_t n) { return std::max(1, n / length_divisor); };
  WorkloadSpec w;
  w.id = std::string(id);
  const auto decodes = [&](int32_t count, int32_t kv_len) {
    for (int32_t i = 0; i < count; ++i) w.seqs.push_back({1, len(kv_len)});
    w.num_decodes += count;
  };
  if (id == "D1") {
    decodes(32, 2048);
  } else if (id == "D2") {
    decodes(8, 8192);
  } else if (id == "D3") {
    decodes(1, 32768);
  } else if (id == "D4") {
    // The lengths depend on the standard library's uniform_int_distribution;
    // libstdc++ is what the recorded figures used.
    std::mt19937 rng(0);
    std::uniform_int_distribution<int32_t> kv(len(128), len(8192));
    for (int32_t i = 0; i < 64; ++i) w.seqs.push_back({1, kv(rng)});
    w.num_decodes = 64;
  } else if (id == "P1") {
    w.seqs.push_back({len(2048), len(2048)});
  } else if (id == "P2") {
    w.seqs.push_back({len(512), len(4096) + len(512)});
  } else if (id == "P3") {
    for (int i = 0; i < 4; ++i) w.seqs.push_back({len(1024), len(1024)});
  } else if (id == "M1") {
    decodes(32, 2048);
    w.seqs.push_back({len(512), len(1024) + len(512)});
  } else {
    return std::nullopt;
  }
  return w;
}

size_t dtype_bytes(rpa_dtype dtype) {
  switch (dtype) {
    case RPA_F32:
      return 4;
    case RPA_BF16:
    case RPA_F16:
      return 2;
    case RPA_FP8_E4M3:
    case RPA_FP8_E5M2:
    case RPA_INT8:
      return 1;
  }
  return 0;
}

WorkCounts count_work(const WorkloadSpec& w, const ModelShape& shape, rpa_dtype cache_dtype) {
  WorkCounts c;
  const double token_bytes =
      2.0 * shape.num_kv_heads * shape.head_dim * static_cast<double>(dtype_bytes(cache_dtype));
  for (size_t i = 0; i < w.seqs.size(); ++i) {
    const double q = w.seqs[i].q_len, kv = w.seqs[i].kv_len;
    const double visible = q * (kv - q) + q * (q + 1) / 2;  // causal, no window
    const double bytes = kv * token_bytes;
    const double flops = 4.0 * shape.num_q_heads * shape.head_dim * visible;
    const bool decode = static_cast<int32_t>(i) < w.num_decodes;
    c.kv_bytes += bytes;
    c.flops += flops;
    if (decode) {
      c.decode_kv_bytes += bytes;
    } else {
      c.prefill_flops += flops;
    }
  }
  return c;
}

Activations make_activations(const WorkloadSpec& w, const ModelShape& shape) {
  const size_t tokens = static_cast<size_t>(w.num_tokens());
  const size_t q_elems = tokens * static_cast<size_t>(shape.num_q_heads * shape.head_dim);
  const size_t kv_elems = tokens * static_cast<size_t>(shape.num_kv_heads * shape.head_dim);
  Activations a;
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const auto fill = [&](std::vector<uint16_t>& v, size_t n) {
    v.resize(n);
    for (uint16_t& x : v) x = to_bf16(normal(rng));
  };
  fill(a.queries, q_elems);
  fill(a.keys, kv_elems);
  fill(a.values, kv_elems);
  a.out.assign(q_elems, 0);
  return a;
}

int32_t pages_needed(const WorkloadSpec& w, int32_t page_size) {
  int32_t pages = 0;
  for (const Sequence& s : w.seqs) pages += (s.kv_len + page_size - 1) / page_size;
  return pages;
}

rpa_cache_config cache_config_for(const ModelShape& shape, int32_t page_size, rpa_dtype dtype,
                                  int32_t min_pages, size_t min_bytes) {
  rpa_cache_config c{shape.num_kv_heads, shape.head_dim, page_size, 1, dtype};
  const size_t one = rpa_cache_bytes(&c);
  c.num_pages = 2;
  const size_t two = rpa_cache_bytes(&c);
  if (one == 0 || two <= one) throw std::runtime_error("rpa_cache_bytes rejects the cache config");
  // Page size in bytes from the difference, in case the layout has a fixed part.
  const size_t page_bytes = two - one;
  const size_t by_bytes = min_bytes > one ? (min_bytes - one + page_bytes - 1) / page_bytes + 1 : 1;
  c.num_pages = static_cast<int32_t>(std::max<size_t>(static_cast<size_t>(min_pages), by_bytes));
  return c;
}

// Writing 2 GiB token by token through rpa_cache_write would take minutes, so
// the raw bytes are filled directly with a pattern that is valid for the
// dtype's layout whatever the element order: each element gets a random sign,
// random mantissa and an exponent that keeps it roughly within [2^-7, 2)
// (int8: +-[32, 96], used with a 1/32 scale). Decoding never meets NaN, Inf or
// a denormal, so the kernels run at the speed they have on real data. The
// tokens a workload writes (its new K/V) then overwrite their slots with the
// workload's own values on every call.
void fill_cache(void* cache, size_t bytes, rpa_dtype dtype, int threads) {
  uint64_t keep = 0, set = 0;  // word = (random & keep) | set
  switch (dtype) {
    case RPA_F32:   // per 32-bit lane the high half is as bf16, the low half mantissa
    case RPA_BF16:  // s eeeeeeee mmmmmmm: exponent 0b01111xxx = 120..127
      keep = 0x83ff83ff83ff83ffull;
      set = 0x3c003c003c003c00ull;
      break;
    case RPA_F16:  // s eeeee mmmmmmmmmm: exponent 0b01xxx = 8..15
      keep = 0x9fff9fff9fff9fffull;
      set = 0x2000200020002000ull;
      break;
    case RPA_FP8_E4M3:  // s eeee mmm: exponent 0b01xx = 4..7, never the NaN 0x7f
    case RPA_FP8_E5M2:  // s eeeee mm: exponent 0b01xxx = 8..15
    case RPA_INT8:      // 0x20..0x3f and 0xa0..0xbf: 32..63 and -96..-65
      keep = 0x9f9f9f9f9f9f9f9full;
      set = 0x2020202020202020ull;
      break;
  }
  auto* words = static_cast<unsigned char*>(cache);
  const size_t n_words = bytes / 8;
  run_team(threads, [&](int tid) {
    const size_t share =
        (n_words + static_cast<size_t>(threads) - 1) / static_cast<size_t>(threads);
    const size_t begin = std::min(n_words, share * static_cast<size_t>(tid));
    const size_t end = std::min(n_words, begin + share);
    for (size_t i = begin; i < end; ++i) {
      const uint64_t w = (splitmix64(i) & keep) | set;
      std::memcpy(words + 8 * i, &w, 8);
    }
  });
  // A tail shorter than a word (never for real configs): the same pattern.
  for (size_t i = n_words * 8; i < bytes; ++i) {
    words[i] = static_cast<unsigned char>((splitmix64(i) & keep & 0xff) | (set & 0xff));
  }
}

float cache_scale(rpa_dtype dtype) { return dtype == RPA_INT8 ? 1.0f / 32 : 0.0f; }

BatchTables::BatchTables(const WorkloadSpec& w, int32_t page_size, int32_t num_pages,
                         bool shared_pages) {
  const auto num_seqs = static_cast<int32_t>(w.seqs.size());
  int32_t pages_per_seq = 1;
  for (const Sequence& s : w.seqs)
    pages_per_seq = std::max(pages_per_seq, (s.kv_len + page_size - 1) / page_size);
  if (pages_needed(w, page_size) > num_pages)
    throw std::runtime_error("the cache is too small for " + w.id);

  // One shuffle of all pages, dealt out in turn: every sequence reads pages
  // scattered over the whole (>= 2 GiB) cache, none shared, and each set of
  // the rotation has pages of its own.
  std::vector<int32_t> order(static_cast<size_t>(num_pages));
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), std::mt19937(2));
  const int32_t sets = std::max(1, num_pages / pages_needed(w, page_size));

  cu_q_lens_.push_back(0);
  for (const Sequence& s : w.seqs) {
    kv_lens_.push_back(s.kv_len);
    cu_q_lens_.push_back(cu_q_lens_.back() + s.q_len);
  }
  distribution_[0] = w.num_decodes;  // decodes, then prefills, nothing after
  distribution_[1] = num_seqs;
  distribution_[2] = num_seqs;
  size_t next = 0;
  page_indices_.resize(static_cast<size_t>(sets));
  for (std::vector<int32_t>& table : page_indices_) {
    // Entries past a sequence's last page are unused by contract; they hold 0.
    table.assign(static_cast<size_t>(num_seqs) * static_cast<size_t>(pages_per_seq), 0);
    for (int32_t i = 0; i < num_seqs; ++i) {
      const int32_t pages = (kv_lens_[static_cast<size_t>(i)] + page_size - 1) / page_size;
      for (int32_t p = 0; p < pages; ++p)
        table[static_cast<size_t>(i) * static_cast<size_t>(pages_per_seq) + static_cast<size_t>(p)] =
            order[next++];
    }
    for (int32_t i = 1; shared_pages && i < w.num_decodes; i += 2) {
      const int32_t writer_last = (kv_lens_[static_cast<size_t>(i - 1)] - 1) / page_size;
      if (kv_lens_[static_cast<size_t>(i)] - 1 < page_size) continue;  // entry 0 would be written
      table[static_cast<size_t>(i) * static_cast<size_t>(pages_per_seq)] =
          table[static_cast<size_t>(i - 1) * static_cast<size_t>(pages_per_seq) +
                static_cast<size_t>(writer_last)];
    }
    batches_.push_back(rpa_batch{kv_lens_.data(), table.data(), cu_q_lens_.data(), distribution_,
                                 num_seqs, pages_per_seq, cu_q_lens_.back()});
  }
}

rpa_status library_call(const CallArgs& a, char* err, size_t err_len) {
  return rpa_ragged_paged_attention(a.queries, a.keys, a.values, a.kv_cache, a.cache, a.batch,
                                    a.opts, a.out, err, err_len);
}

Timing time_calls(const AttentionCall& call, CallArgs args, const std::vector<rpa_batch>& rotation,
                  const TimingPolicy& policy) {
  using Clock = std::chrono::steady_clock;
  char err[512] = "";
  size_t calls = 0;
  const auto timed_call = [&] {
    args.batch = &rotation[calls++ % rotation.size()];
    const Clock::time_point t0 = Clock::now();
    const rpa_status st = call(args, err, sizeof err);
    const double t = std::chrono::duration<double>(Clock::now() - t0).count();
    if (st != RPA_OK) {
      throw std::runtime_error(std::string("status ") + std::to_string(static_cast<int>(st)) +
                               ": " + err);
    }
    return t;
  };
  double last = 0;
  for (int i = 0; i < policy.warmup; ++i) last = timed_call();
  int reps = policy.min_reps;
  if (last > 0 && policy.min_timed_seconds > 0) {
    const double wanted = std::ceil(policy.min_timed_seconds / last);
    reps = static_cast<int>(
        std::clamp(wanted, static_cast<double>(policy.min_reps),
                   static_cast<double>(std::max(policy.min_reps, policy.max_reps))));
  }
  std::vector<double> times(static_cast<size_t>(reps));
  for (double& t : times) t = timed_call();
  std::sort(times.begin(), times.end());
  Timing r;
  r.reps = reps;
  r.min_s = times.front();
  const size_t mid = times.size() / 2;
  r.median_s = times.size() % 2 == 1 ? times[mid] : 0.5 * (times[mid - 1] + times[mid]);
  return r;
}

}  // namespace rpa_bench
