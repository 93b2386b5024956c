#include "helpers.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <numeric>
#include <sstream>
#include <stdexcept>

namespace rt {

int uniform_int(Rng& rng, int lo, int hi) {
  return std::uniform_int_distribution<int>(lo, hi)(rng);
}
double uniform(Rng& rng, double lo, double hi) {
  return std::uniform_real_distribution<double>(lo, hi)(rng);
}
double normal(Rng& rng) { return std::normal_distribution<double>(0.0, 1.0)(rng); }
bool coin(Rng& rng, double p) { return uniform(rng, 0.0, 1.0) < p; }

uint64_t base_seed() {
  const char* s = std::getenv("RPA_TEST_SEED");
  return s && *s ? std::strtoull(s, nullptr, 0) : 0x5eed2025ULL;
}

int iterations(int dflt) {
  const char* s = std::getenv("RPA_TEST_ITERS");
  return s && *s ? std::atoi(s) : dflt;
}

std::string lower(std::string s) {
  for (char& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

// ---- ActBuf ------------------------------------------------------------------

ActBuf::ActBuf(rpa_dtype dtype, size_t n, uint8_t fill) : dt(dtype), count(n) {
  // Never empty, so data() is a valid non-NULL pointer even for zero rows.
  bytes.assign(std::max<size_t>(n, 1) * ref::dtype_size(dt), fill);
}

double ActBuf::get(size_t i) const {
  switch (dt) {
    case RPA_F32: {
      float f;
      std::memcpy(&f, &bytes[i * 4], 4);
      return f;
    }
    case RPA_BF16: {
      uint16_t b;
      std::memcpy(&b, &bytes[i * 2], 2);
      return ref::decode_bf16(b);
    }
    case RPA_F16: {
      uint16_t b;
      std::memcpy(&b, &bytes[i * 2], 2);
      return ref::decode_f16(b);
    }
    default: throw std::logic_error("ActBuf: not an activation dtype");
  }
}

void ActBuf::set(size_t i, double x) {
  switch (dt) {
    case RPA_F32: {
      const float f = static_cast<float>(x);
      std::memcpy(&bytes[i * 4], &f, 4);
      return;
    }
    case RPA_BF16: {
      const uint16_t b = ref::encode_bf16(ref::round_to(x, RPA_BF16));
      std::memcpy(&bytes[i * 2], &b, 2);
      return;
    }
    case RPA_F16: {
      const uint16_t b = ref::encode_f16(ref::round_to(x, RPA_F16));
      std::memcpy(&bytes[i * 2], &b, 2);
      return;
    }
    default: throw std::logic_error("ActBuf: not an activation dtype");
  }
}

// ---- Case --------------------------------------------------------------------

rpa_batch Case::batch() const {
  rpa_batch b{};
  b.kv_lens = kv_lens.data();
  b.page_indices = page_indices.data();
  b.cu_q_lens = cu_q_lens.data();
  b.distribution = dist;
  b.max_num_seqs = max_num_seqs;
  b.pages_per_seq = pages_per_seq;
  b.max_num_tokens = max_num_tokens;
  return b;
}

rpa_options Case::options() const {
  rpa_options o = opts;
  o.sinks = sinks.empty() ? nullptr : sinks.data();
  return o;
}

std::string Case::describe() const {
  std::ostringstream os;
  os << "seed=0x" << std::hex << seed << std::dec << " cache=" << ref::dtype_name(cfg.dtype)
     << " act=" << ref::dtype_name(opts.act_dtype) << " Hq=" << opts.num_q_heads
     << " Hkv=" << cfg.num_kv_heads << " D=" << cfg.head_dim << " page_size=" << cfg.page_size
     << " num_pages=" << cfg.num_pages << " dist=(" << dist[0] << "," << dist[1] << ","
     << dist[2] << ") max_num_seqs=" << max_num_seqs << " pages_per_seq=" << pages_per_seq
     << " T=" << max_num_tokens << "\n  seqs(q_len,kv_len)=[";
  for (int i = 0; i < num_seqs(); ++i) os << (i ? " " : "") << "(" << q_len(i) << "," << kv_lens[i] << ")";
  os << "]\n  causal=" << opts.causal << " update=" << opts.update_kv_cache
     << " window=" << opts.sliding_window << " soft_cap=" << opts.soft_cap
     << " sm_scale=" << opts.sm_scale << " q_scale=" << opts.q_scale
     << " k_scale=" << opts.k_scale << " v_scale=" << opts.v_scale
     << " sinks=" << (sinks.empty() ? "no" : "yes") << " threads=" << opts.num_threads
     << " null_kv=" << null_kv;
  if (num_seqs() > 0 && page_indices.size() <= 96) {
    os << "\n  pages:";
    for (int i = 0; i < num_seqs(); ++i) {
      os << " [";
      for (int j = 0; j < pages_used(i); ++j) os << (j ? "," : "") << page_indices[i * pages_per_seq + j];
      os << "]";
    }
  }
  return os.str();
}

namespace {

int32_t garbage(Rng& rng, int32_t num_pages) {
  switch (uniform_int(rng, 0, 5)) {
    case 0: return -1;
    case 1: return std::numeric_limits<int32_t>::min();
    case 2: return std::numeric_limits<int32_t>::max();
    case 3: return num_pages;
    case 4: return num_pages + 100;
    default: return -1000;
  }
}

}  // namespace

Case build_case(const Shape& s, Rng& rng) {
  Case c;
  const int n = static_cast<int>(s.seqs.size());
  const int ps = s.page_size;
  c.dist[0] = s.decode_end;
  c.dist[1] = s.prefill_end;
  c.dist[2] = n;
  c.max_num_seqs = n + s.pad_seqs;

  std::vector<int> used(n);
  int max_used = 0, total_used = 0;
  for (int i = 0; i < n; ++i) {
    used[i] = (s.seqs[i].kv_len + ps - 1) / ps;
    max_used = std::max(max_used, used[i]);
    total_used += used[i];
  }
  c.pages_per_seq = std::max(1, max_used + s.extra_pages_per_seq);
  const int num_pages = std::max(1, total_used + s.spare_pages);
  c.cfg = {s.num_kv_heads, s.head_dim, ps, num_pages, s.cache};

  std::vector<int32_t> perm(num_pages);
  std::iota(perm.begin(), perm.end(), 0);
  if (s.shuffle_pages) std::shuffle(perm.begin(), perm.end(), rng);

  c.page_indices.assign(std::max<size_t>(1, static_cast<size_t>(c.max_num_seqs) * c.pages_per_seq), 0);
  for (auto& p : c.page_indices) p = garbage(rng, num_pages);
  int next = 0;
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < used[i]; ++j) c.page_indices[static_cast<size_t>(i) * c.pages_per_seq + j] = perm[next++];
  // Unused entries of real sequences sometimes repeat a page in use: ignored.
  for (int i = 0; i < n && total_used > 0; ++i)
    for (int j = used[i]; j < c.pages_per_seq; ++j)
      if (coin(rng, 0.3)) c.page_indices[static_cast<size_t>(i) * c.pages_per_seq + j] = perm[uniform_int(rng, 0, total_used - 1)];

  c.kv_lens.assign(std::max(1, c.max_num_seqs), 0);
  c.cu_q_lens.assign(c.max_num_seqs + 1, 0);
  for (int i = 0; i < n; ++i) {
    c.kv_lens[i] = s.seqs[i].kv_len;
    c.cu_q_lens[i + 1] = c.cu_q_lens[i] + s.seqs[i].q_len;
  }
  for (int i = n; i < c.max_num_seqs; ++i) {
    const int32_t junk[] = {0, -3, std::numeric_limits<int32_t>::max(), 1000000, 7};
    c.kv_lens[i] = junk[uniform_int(rng, 0, 4)];
    const int32_t junkq[] = {-1, 0, std::numeric_limits<int32_t>::max(), 5, c.cu_q_lens[n] + 1000};
    c.cu_q_lens[i + 1] = junkq[uniform_int(rng, 0, 4)];
  }
  c.max_num_tokens = c.cu_q_lens[n] + s.pad_tokens;

  // Share pages between sequences where the rules allow it: a page nobody
  // writes may appear any number of times (prefix sharing), and a page one
  // sequence writes may be read by others (read after write, API.md 1.1), but
  // a writer lists its written pages once.
  if (s.share_pages) {
    auto first_written = [&](int i) {
      return s.update ? (s.seqs[i].kv_len - s.seqs[i].q_len) / ps : used[i];
    };
    auto entry = [&](int i, int j) -> int32_t& {
      return c.page_indices[static_cast<size_t>(i) * c.pages_per_seq + j];
    };
    for (int b = 0; b < n; ++b) {
      for (int jb = 0; jb < first_written(b); ++jb) {
        if (!coin(rng, 0.5)) continue;
        const int a = uniform_int(rng, 0, n - 1);
        if (used[a] == 0) continue;
        const int32_t page = entry(a, uniform_int(rng, 0, used[a] - 1));
        bool written_by_b = false;
        for (int j = first_written(b); j < used[b]; ++j) written_by_b = written_by_b || entry(b, j) == page;
        if (!written_by_b) entry(b, jb) = page;
      }
    }
  }

  rpa_default_options(&c.opts, s.num_kv_heads * s.group, s.act, s.head_dim);
  c.opts.update_kv_cache = s.update ? 1 : 0;
  return c;
}

Case random_case(uint64_t seed, rpa_dtype cache, rpa_dtype act) {
  Rng rng(seed);
  Shape s;
  s.cache = cache;
  s.act = act;
  for (int attempt = 0;; ++attempt) {
    static const int dims[] = {1, 3, 7, 8, 17, 64, 80, 128, 130, 256};
    s.head_dim = coin(rng, 0.01) ? 512 : dims[uniform_int(rng, 0, 9)];
    s.num_kv_heads = coin(rng, 0.6) ? 1 : uniform_int(rng, 2, 3);
    s.group = uniform_int(rng, 1, 8);
    const double r = uniform(rng, 0, 1);
    s.page_size = r < 0.2 ? 1 : r < 0.45 ? 3 : r < 0.75 ? 16 : r < 0.98 ? 128 : 1024;
    const int n = coin(rng, 0.03) ? 0 : coin(rng, 0.1) ? uniform_int(rng, 6, 12) : uniform_int(rng, 1, 5);
    // Small heads leave room for a long decode, long enough to be split over threads.
    const bool long_ok = s.head_dim * s.num_kv_heads * s.group <= 256;
    s.decode_end = uniform_int(rng, 0, n);
    s.prefill_end = uniform_int(rng, s.decode_end, n);
    s.seqs.clear();
    for (int i = 0; i < n; ++i) {
      SeqSpec q{};
      if (i < s.decode_end) {
        q.kv_len = long_ok && coin(rng, 0.2) ? uniform_int(rng, 500, 2500)
                   : coin(rng, 0.15)             ? uniform_int(rng, 1, 400)
                                                 : uniform_int(rng, 1, 60);
        q.q_len = 1;
      } else if (i < s.prefill_end) {
        if (coin(rng, 0.5)) {
          q.kv_len = uniform_int(rng, 1, 40);
          q.q_len = q.kv_len;
        } else {
          q.kv_len = uniform_int(rng, 2, 60);
          q.q_len = uniform_int(rng, 1, std::min(q.kv_len - 1, 24));
        }
      } else {
        q.kv_len = uniform_int(rng, 1, 60);
        q.q_len = coin(rng, 0.25) ? 1 : uniform_int(rng, 1, std::min(q.kv_len, 24));
      }
      s.seqs.push_back(q);
    }
    double cost = 0;
    for (const auto& q : s.seqs)
      cost += static_cast<double>(q.q_len) * q.kv_len * s.num_kv_heads * s.group * s.head_dim;
    if (cost <= 8e5 || attempt > 50) break;
  }
  s.pad_seqs = uniform_int(rng, 0, 2);
  s.pad_tokens = uniform_int(rng, 0, 3);
  s.extra_pages_per_seq = uniform_int(rng, 0, 2);
  s.spare_pages = uniform_int(rng, 0, 3);
  s.shuffle_pages = coin(rng, 0.85);
  s.share_pages = coin(rng, 0.3);
  s.update = coin(rng, 0.75);

  Case c = build_case(s, rng);
  c.seed = seed;
  rpa_options& o = c.opts;
  const int D = s.head_dim;
  int max_kv = 1;
  for (const auto& q : s.seqs) max_kv = std::max(max_kv, q.kv_len);
  o.causal = coin(rng, 0.8) ? 1 : 0;
  if (coin(rng, 0.25)) o.sliding_window = uniform_int(rng, 1, max_kv + 2);
  if (coin(rng, 0.25)) o.soft_cap = static_cast<float>(uniform(rng, 1.0, 30.0));
  if (coin(rng, 0.25)) {
    c.sinks.resize(o.num_q_heads);
    for (auto& x : c.sinks) x = static_cast<float>(1.5 * normal(rng));
  }
  if (coin(rng, 0.5)) o.sm_scale = static_cast<float>(uniform(rng, 0.5, 1.25) / std::sqrt(D));
  auto pick = [&](double lo, double hi, double p_zero) {
    return coin(rng, p_zero) ? 0.0f : static_cast<float>(uniform(rng, lo, hi));
  };
  switch (cache) {
    case RPA_FP8_E4M3:
      o.k_scale = pick(0.004, 0.05, 0.4);
      o.v_scale = pick(0.004, 0.05, 0.4);
      o.q_scale = pick(0.003, 0.03, 0.5);
      break;
    case RPA_FP8_E5M2:
      o.k_scale = pick(1e-4, 1.0, 0.4);
      o.v_scale = pick(1e-4, 1.0, 0.4);
      o.q_scale = pick(1e-4, 0.5, 0.5);
      break;
    case RPA_INT8:
      o.k_scale = pick(0.01, 0.05, 0.2);
      o.v_scale = pick(0.01, 0.05, 0.2);
      o.q_scale = pick(0.01, 0.05, 0.5);
      break;
    default:  // float caches: scales per API; q_scale must be ignored
      o.k_scale = pick(0.25, 4.0, 0.7);
      o.v_scale = pick(0.25, 4.0, 0.7);
      o.q_scale = pick(0.01, 1.0, 0.8);
      break;
  }
  c.null_kv = !s.update && coin(rng, 0.5);
  o.num_threads = coin(rng, 0.5) ? 0 : uniform_int(rng, 1, 4);
  return c;
}

// ---- Layers --------------------------------------------------------------------

uint8_t cache_canary(rpa_dtype dt) { return dt == RPA_INT8 ? 0x80 : 0xFF; }

Layer make_layer(const Case& c, Rng& rng) {
  Layer l;
  const size_t bytes = rpa_cache_bytes(&c.cfg);
  if (bytes == 0) throw std::runtime_error("rpa_cache_bytes returned 0 for a valid config: " + c.describe());
  l.cache.assign(bytes, cache_canary(c.cfg.dtype));
  const int Hkv = c.cfg.num_kv_heads, D = c.cfg.head_dim, ps = c.cfg.page_size;
  std::vector<float> k(static_cast<size_t>(Hkv) * D), v(k.size());
  char err[256];
  for (int i = 0; i < c.num_seqs(); ++i) {
    const int old = c.kv_lens[i] - (c.opts.update_kv_cache ? c.q_len(i) : 0);
    for (int t = 0; t < old; ++t) {
      for (auto& x : k) x = static_cast<float>(normal(rng));
      for (auto& x : v) x = static_cast<float>(normal(rng));
      const rpa_status st = rpa_cache_write(l.cache.data(), &c.cfg, c.page_of(i, t), t % ps, k.data(),
                                            v.data(), RPA_F32, c.opts.k_scale, c.opts.v_scale, err, sizeof err);
      if (st != RPA_OK) throw std::runtime_error(std::string("rpa_cache_write failed: ") + err);
    }
  }
  const size_t T = static_cast<size_t>(c.max_num_tokens), used = static_cast<size_t>(c.tokens());
  const size_t qrow = static_cast<size_t>(c.hq()) * D, kvrow = static_cast<size_t>(Hkv) * D;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  l.q = ActBuf(c.opts.act_dtype, T * qrow);
  l.k = ActBuf(c.opts.act_dtype, T * kvrow);
  l.v = ActBuf(c.opts.act_dtype, T * kvrow);
  for (size_t i = 0; i < T * qrow; ++i) l.q.set(i, i < used * qrow ? normal(rng) : nan);
  for (size_t i = 0; i < T * kvrow; ++i) {
    l.k.set(i, i < used * kvrow ? normal(rng) : nan);
    l.v.set(i, i < used * kvrow ? normal(rng) : nan);
  }
  return l;
}

std::vector<uint8_t> expected_cache(const Case& c, const Layer& l) {
  std::vector<uint8_t> exp = l.cache;
  if (!c.opts.update_kv_cache) return exp;
  const size_t row = static_cast<size_t>(c.cfg.num_kv_heads) * c.cfg.head_dim * ref::dtype_size(c.opts.act_dtype);
  char err[256];
  for (int i = 0; i < c.num_seqs(); ++i) {
    for (int j = 0; j < c.q_len(i); ++j) {
      const int r = c.cu_q_lens[i] + j;
      const int pos = c.kv_lens[i] - c.q_len(i) + j;
      const rpa_status st =
          rpa_cache_write(exp.data(), &c.cfg, c.page_of(i, pos), pos % c.cfg.page_size, &l.k.bytes[r * row],
                          &l.v.bytes[r * row], c.opts.act_dtype, c.opts.k_scale, c.opts.v_scale, err, sizeof err);
      if (st != RPA_OK) throw std::runtime_error(std::string("rpa_cache_write failed: ") + err);
    }
  }
  return exp;
}

rpa_status run_one_call(const Case& c, const Layer& l, std::vector<uint8_t>& cache, ActBuf& out,
                        std::string* err) {
  cache = l.cache;
  out = ActBuf(c.opts.act_dtype, static_cast<size_t>(c.max_num_tokens) * c.hq() * c.cfg.head_dim, kOutCanary);
  const rpa_batch b = c.batch();
  const rpa_options o = c.options();
  char msg[512] = "";
  const rpa_status st = rpa_ragged_paged_attention(l.q.data(), c.null_kv ? nullptr : l.k.data(),
                                                   c.null_kv ? nullptr : l.v.data(), cache.data(), &c.cfg,
                                                   &b, &o, out.data(), msg, sizeof msg);
  if (err) *err = msg;
  return st;
}

std::vector<double> reference_output(const Case& c, const Layer& l, const std::vector<uint8_t>& cache_after) {
  ref::Problem p;
  const int Hkv = c.cfg.num_kv_heads, D = c.cfg.head_dim, n = c.num_seqs();
  p.num_q_heads = c.hq();
  p.num_kv_heads = Hkv;
  p.head_dim = D;
  p.kv_lens.assign(c.kv_lens.begin(), c.kv_lens.begin() + n);
  p.cu_q_lens.assign(c.cu_q_lens.begin(), c.cu_q_lens.begin() + n + 1);
  const size_t row = static_cast<size_t>(Hkv) * D;
  std::vector<float> kf(row), vf(row);
  char err[256];
  p.k.resize(n);
  p.v.resize(n);
  for (int i = 0; i < n; ++i) {
    p.k[i].resize(row * c.kv_lens[i]);
    p.v[i].resize(row * c.kv_lens[i]);
    for (int t = 0; t < c.kv_lens[i]; ++t) {
      const rpa_status st = rpa_cache_read(cache_after.data(), &c.cfg, c.page_of(i, t), t % c.cfg.page_size,
                                           kf.data(), vf.data(), RPA_F32, c.opts.k_scale, c.opts.v_scale, err,
                                           sizeof err);
      if (st != RPA_OK) throw std::runtime_error(std::string("rpa_cache_read failed: ") + err);
      std::copy(kf.begin(), kf.end(), p.k[i].begin() + t * row);
      std::copy(vf.begin(), vf.end(), p.v[i].begin() + t * row);
    }
  }
  const size_t nq = static_cast<size_t>(c.tokens()) * c.hq() * D;
  p.q.resize(nq);
  for (size_t i = 0; i < nq; ++i) p.q[i] = l.q.get(i);
  p.sm_scale = c.opts.sm_scale;
  p.causal = c.opts.causal != 0;
  p.sliding_window = c.opts.sliding_window;
  p.soft_cap = c.opts.soft_cap;
  p.sinks.assign(c.sinks.begin(), c.sinks.end());
  p.cache_dtype = c.cfg.dtype;
  p.q_scale = c.opts.q_scale;
  std::vector<double> out(nq, 0.0);
  ref::attention(p, out);
  return out;
}


::testing::AssertionResult check_cache(const Case& c, const Layer& l, const std::vector<uint8_t>& cache_after) {
  const std::vector<uint8_t> want_cache = expected_cache(c, l);
  if (cache_after.size() != want_cache.size()) return ::testing::AssertionFailure() << "cache size changed";
  size_t diff = 0, first = 0;
  for (size_t i = 0; i < want_cache.size(); ++i)
    if (cache_after[i] != want_cache[i] && diff++ == 0) first = i;
  if (diff)
    return ::testing::AssertionFailure()
           << "cache differs from (old cache + rpa_cache_write of each new token) in " << diff
           << " bytes, first at byte " << first << " (got 0x" << std::hex << int(cache_after[first]) << ", want 0x"
           << int(want_cache[first]) << std::dec << ")\n  " << c.describe();
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult check_padding_rows(const Case& c, const ActBuf& out) {
  const size_t row = static_cast<size_t>(c.hq()) * c.cfg.head_dim;
  const size_t esz = ref::dtype_size(out.dt);
  for (size_t b = static_cast<size_t>(c.tokens()) * row * esz; b < out.bytes.size(); ++b)
    if (out.bytes[b] != kOutCanary)
      return ::testing::AssertionFailure() << "out row " << b / esz / row << " >= cu_q_lens[num_seqs] = "
                                           << c.tokens() << " was written (byte " << b << ")\n  " << c.describe();
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult refused_untouched(const Case& c, Rng& rng, rpa_status want, std::string* msg) {
  const Layer l = make_layer(c, rng);
  std::vector<uint8_t> cache;
  ActBuf out;
  std::string message;
  const rpa_status st = run_one_call(c, l, cache, out, &message);
  if (msg) *msg = message;
  if (st != want) return ::testing::AssertionFailure() << "status " << st << ", want " << want << ": " << message;
  if (cache != l.cache) return ::testing::AssertionFailure() << "the cache was written by a refused call";
  for (uint8_t b : out.bytes)
    if (b != kOutCanary) return ::testing::AssertionFailure() << "out was written by a refused call";
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult check_call(const Case& c, const Layer& l, const std::vector<uint8_t>& cache_after,
                                      const ActBuf& out, CheckStats* stats) {
  // 1. The cache: exactly the old contents plus what rpa_cache_write stores.
  if (::testing::AssertionResult r = check_cache(c, l, cache_after); !r) return r;
  // 2. Rows past cu_q_lens[num_seqs] keep the canary.
  if (::testing::AssertionResult r = check_padding_rows(c, out); !r) return r;

  // 3. The rows in use against the float64 reference.
  const size_t D = c.cfg.head_dim, row = static_cast<size_t>(c.hq()) * D;
  const std::vector<double> want = reference_output(c, l, cache_after);
  const Tolerance tol = tolerance(c.opts.act_dtype, c.cfg.dtype, c.cfg.head_dim);
  int bad = 0;
  double worst = 0;
  std::ostringstream os;
  for (size_t i = 0; i < want.size(); ++i) {
    const double got = out.get(i), w = want[i];
    const double allowed = tol.abs + tol.rel * std::fabs(w);
    const double ratio = std::fabs(got - w) / allowed;
    const bool ok = std::isfinite(got) && ratio <= 1.0;
    if (std::isfinite(got)) worst = std::max(worst, ratio);
    if (!ok && bad++ < 6) {
      const size_t r = i / row, h = (i % row) / D, d = i % D;
      int seq = 0;
      while (seq + 1 <= c.num_seqs() && c.cu_q_lens[seq + 1] <= static_cast<int>(r)) ++seq;
      os << "\n    row " << r << " (sequence " << seq << ") head " << h << " d " << d << ": got " << got
         << ", want " << w << ", allowed +-" << allowed;
    }
  }
  if (stats) stats->worst_ratio = std::max(stats->worst_ratio, worst);
  if (bad)
    return ::testing::AssertionFailure() << bad << " of " << want.size() << " out elements off the reference"
                                         << os.str() << "\n  " << c.describe();
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult run_and_check(const Case& c, Rng& rng, int layers, CheckStats* stats) {
  if (layers == 0) {
    const Layer l = make_layer(c, rng);
    std::vector<uint8_t> cache;
    ActBuf out;
    std::string err;
    const rpa_status st = run_one_call(c, l, cache, out, &err);
    if (st != RPA_OK)
      return ::testing::AssertionFailure() << "rpa_ragged_paged_attention returned " << st << ": " << err << "\n  "
                                           << c.describe();
    return check_call(c, l, cache, out, stats);
  }

  // Plan path: everything given to rpa_plan_create is overwritten afterwards.
  Case scratch = c;
  rpa_cache_config cfg = c.cfg;
  rpa_batch b = scratch.batch();
  rpa_options o = scratch.options();
  rpa_status st = RPA_ERR_INTERNAL;
  char err[512] = "";
  rpa_plan* plan = rpa_plan_create(&cfg, &b, &o, &st, err, sizeof err);
  if (!plan || st != RPA_OK)
    return ::testing::AssertionFailure() << "rpa_plan_create returned " << st << ": " << err << "\n  " << c.describe();
  std::fill(scratch.kv_lens.begin(), scratch.kv_lens.end(), -7);
  std::fill(scratch.page_indices.begin(), scratch.page_indices.end(), -7);
  std::fill(scratch.cu_q_lens.begin(), scratch.cu_q_lens.end(), -7);
  std::fill(std::begin(scratch.dist), std::end(scratch.dist), -7);
  std::fill(scratch.sinks.begin(), scratch.sinks.end(), std::numeric_limits<float>::quiet_NaN());
  std::memset(&cfg, 0xEE, sizeof cfg);
  std::memset(&b, 0xEE, sizeof b);
  std::memset(&o, 0xEE, sizeof o);

  ::testing::AssertionResult res = ::testing::AssertionSuccess();
  for (int layer = 0; layer < layers && res; ++layer) {
    const Layer l = make_layer(c, rng);
    std::vector<uint8_t> cache = l.cache;
    ActBuf out(c.opts.act_dtype, static_cast<size_t>(c.max_num_tokens) * c.hq() * c.cfg.head_dim, kOutCanary);
    st = rpa_plan_run(plan, l.q.data(), c.null_kv ? nullptr : l.k.data(), c.null_kv ? nullptr : l.v.data(),
                      cache.data(), out.data(), err, sizeof err);
    if (st != RPA_OK) {
      res = ::testing::AssertionFailure() << "rpa_plan_run (layer " << layer << ") returned " << st << ": " << err
                                          << "\n  " << c.describe();
    } else {
      res = check_call(c, l, cache, out, stats);
      if (!res) res << "\n  (plan path, layer " << layer << " of " << layers << ")";
    }
  }
  rpa_plan_destroy(plan);
  return res;
}

Shape shape(int num_kv_heads, int group, int head_dim, int page_size, std::vector<SeqSpec> seqs,
            int decode_end, int prefill_end) {
  Shape s;
  s.num_kv_heads = num_kv_heads;
  s.group = group;
  s.head_dim = head_dim;
  s.page_size = page_size;
  s.seqs = std::move(seqs);
  s.decode_end = decode_end;
  s.prefill_end = prefill_end;
  return s;
}

std::vector<Combo> default_combos() {
  return {{RPA_F32, RPA_F32}, {RPA_BF16, RPA_BF16}, {RPA_FP8_E4M3, RPA_BF16}, {RPA_INT8, RPA_F16}};
}

void run_shape(Shape s, const std::string& what, const std::function<void(Case&)>& tweak,
               std::vector<Combo> combos) {
  if (combos.empty()) combos = default_combos();
  uint64_t k = 0;
  for (const Combo& cb : combos) {
    s.cache = cb.cache;
    s.act = cb.act;
    const uint64_t seed = base_seed() + std::hash<std::string>()(what) + k++;
    Rng rng(seed);
    Case c = build_case(s, rng);
    c.seed = seed;
    if (cb.cache == RPA_FP8_E4M3) c.opts.k_scale = c.opts.v_scale = 0.02f;
    if (cb.cache == RPA_INT8) c.opts.k_scale = c.opts.v_scale = 0.03f;
    if (tweak) tweak(c);
    EXPECT_TRUE(run_and_check(c, rng, 0)) << what;
    EXPECT_TRUE(run_and_check(c, rng, 2)) << what << " (plan)";
  }
}


}  // namespace rt
