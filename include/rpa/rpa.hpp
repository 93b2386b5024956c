// rpa: Ragged Paged Attention for CPUs. A header-only C++20 API over the C ABI.
//
// Everything here forwards to the functions of <rpa/rpa.h>; nothing is computed
// in this header. What it adds:
//  - scoped enums and plain structs instead of the C typedefs,
//  - std::span for the batch's index arrays, with their sizes checked,
//  - failures reported as rpa::Error (status + the library's message),
//  - rpa::Plan, an RAII owner of an rpa_plan.
//
// Activations (queries, keys, values, out) may be F32, BF16 or F16, so the core
// overloads take raw pointers plus the dtype in Options, exactly like the C call.
// When act_dtype is F32, overloads on std::span<float> also check the sizes.
//
//   auto opts = rpa::Options::defaults(32, rpa::DType::BF16, 128);
//   rpa::attention(q, k, v, cache.data(), cfg, batch, opts, out);  // throws rpa::Error
#ifndef RPA_RPA_HPP_
#define RPA_RPA_HPP_

#include <rpa/rpa.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>

namespace rpa {

/// Element types: of the activations (F32, BF16, F16) and of the KV cache (any).
enum class DType : int32_t {
  F32 = RPA_F32,
  BF16 = RPA_BF16,
  F16 = RPA_F16,
  FP8_E4M3 = RPA_FP8_E4M3,  ///< OCP e4m3fn: no inf, max 448
  FP8_E5M2 = RPA_FP8_E5M2,  ///< OCP e5m2, max 57344
  INT8 = RPA_INT8,          ///< symmetric, range [-127, 127]
};

/// Bytes of one element of `t`.
constexpr std::size_t element_size(DType t) noexcept {
  switch (t) {
    case DType::F32: return 4;
    case DType::BF16:
    case DType::F16: return 2;
    default: return 1;
  }
}

/// Result of a library call; every failure is thrown as rpa::Error.
enum class Status : int32_t {
  Ok = RPA_OK,
  InvalidArgument = RPA_ERR_INVALID_ARGUMENT,  ///< the inputs break a rule of the contract
  Unsupported = RPA_ERR_UNSUPPORTED,           ///< valid, but this build/CPU cannot do it
  OutOfMemory = RPA_ERR_OUT_OF_MEMORY,
  Internal = RPA_ERR_INTERNAL,
};

/// The name of a status, e.g. "invalid argument".
constexpr const char* to_string(Status s) noexcept {
  switch (s) {
    case Status::Ok: return "ok";
    case Status::InvalidArgument: return "invalid argument";
    case Status::Unsupported: return "unsupported";
    case Status::OutOfMemory: return "out of memory";
    case Status::Internal: return "internal error";
  }
  return "unknown status";
}

/// A failed call: what() is the library's message (naming the rule, the field
/// and, where one is at fault, the sequence), status() says which kind.
class Error : public std::runtime_error {
 public:
  Error(Status status, const std::string& message) : std::runtime_error(message), status_(status) {}
  Status status() const noexcept { return status_; }

 private:
  Status status_;
};

namespace detail {

/// A buffer for the C functions' `err` argument.
struct ErrBuf {
  std::array<char, 512> text{};
  char* data() noexcept { return text.data(); }
  std::size_t size() const noexcept { return text.size(); }
};

/// Throws rpa::Error for a non-OK status, with the library's message (or the
/// status name when the library left none).
inline void check(rpa_status s, const ErrBuf& err) {
  if (s == RPA_OK) return;
  const Status st = static_cast<Status>(s);
  std::string msg(err.text.data());
  if (msg.empty()) msg = to_string(st);
  throw Error(st, msg);
}

/// A check made by the wrapper itself (sizes the C ABI cannot see).
inline void require(bool ok, const std::string& message) {
  if (!ok) throw Error(Status::InvalidArgument, message);
}

}  // namespace detail

/// The library version, e.g. "0.1.0".
inline std::string version() { return rpa_version(); }

/// The kernel path chosen on this CPU (or forced by env RPA_ISA), e.g. "avx512_bf16".
inline std::string isa() { return rpa_isa(); }

/// Whether this build and CPU can run the named kernel path ("scalar", "avx2",
/// "avx512", "avx512_bf16", "amx"); env RPA_ISA may force any available one.
inline bool isa_available(const std::string& name) { return rpa_isa_available(name.c_str()) != 0; }

/// Shape and element type of a paged KV cache: num_pages pages of page_size
/// tokens, each token holding keys and values for num_kv_heads x head_dim.
struct CacheConfig {
  int32_t num_kv_heads = 0;   ///< Hkv >= 1
  int32_t head_dim = 0;       ///< D, 1..512
  int32_t page_size = 0;      ///< tokens per page, 1..1024
  int32_t num_pages = 0;      ///< pages in the cache, >= 1
  DType dtype = DType::BF16;  ///< element type stored in the cache

  /// The C struct.
  rpa_cache_config c() const noexcept {
    return {num_kv_heads, head_dim, page_size, num_pages, static_cast<rpa_dtype>(dtype)};
  }
  /// Bytes the cache buffer must have; 0 when the config is invalid.
  std::size_t bytes() const noexcept {
    const rpa_cache_config cc = c();
    return rpa_cache_bytes(&cc);
  }
};

/// How the batch's sequences are ordered: [0, decode_end) are decodes (q_len 1),
/// [decode_end, prefill_end) prefills or chunks, up to num_seqs in all.
struct Distribution {
  int32_t decode_end = 0;
  int32_t prefill_end = 0;
  int32_t num_seqs = 0;
};

/// A non-owning view of one step's batch (the arrays must outlive the call).
/// max_num_seqs is kv_lens.size(); the other spans must be at least as long as
/// the C ABI reads: page_indices max_num_seqs * pages_per_seq, cu_q_lens
/// max_num_seqs + 1.
struct BatchView {
  std::span<const int32_t> kv_lens;       ///< [max_num_seqs] tokens per sequence, new ones included
  std::span<const int32_t> page_indices;  ///< [max_num_seqs * pages_per_seq] row-major page table
  std::span<const int32_t> cu_q_lens;     ///< [max_num_seqs + 1] query row offsets, starts at 0
  Distribution distribution;
  int32_t pages_per_seq = 0;   ///< columns of the page table
  int32_t max_num_tokens = 0;  ///< T: rows of queries/keys/values/out

  int32_t max_num_seqs() const noexcept { return static_cast<int32_t>(kv_lens.size()); }
};

/// Options of an attention call. Build with Options::defaults(), then adjust.
struct Options {
  int32_t num_q_heads = 0;        ///< Hq, a multiple of num_kv_heads
  DType act_dtype = DType::BF16;  ///< queries, keys, values and out: F32, BF16 or F16
  float sm_scale = 0.0f;          ///< score scale, default 1/sqrt(head_dim)
  bool causal = true;
  bool update_kv_cache = true;   ///< write the new keys/values into the cache first
  int32_t sliding_window = 0;    ///< 0 = none
  float soft_cap = 0.0f;         ///< 0 = none
  float q_scale = 0.0f;          ///< 0 = none (quantized caches only)
  float k_scale = 0.0f;          ///< 0 = none (treated as 1)
  float v_scale = 0.0f;          ///< 0 = none (treated as 1)
  std::span<const float> sinks;  ///< empty = none, else [num_q_heads] sink logits
  int32_t num_threads = 0;       ///< 0 = env RPA_NUM_THREADS, else all hardware threads

  /// The library's defaults for these shapes (rpa_default_options).
  static Options defaults(int32_t num_q_heads, DType act_dtype, int32_t head_dim) {
    rpa_options o{};
    rpa_default_options(&o, num_q_heads, static_cast<rpa_dtype>(act_dtype), head_dim);
    Options r;
    r.num_q_heads = o.num_q_heads;
    r.act_dtype = static_cast<DType>(o.act_dtype);
    r.sm_scale = o.sm_scale;
    r.causal = o.causal != 0;
    r.update_kv_cache = o.update_kv_cache != 0;
    r.sliding_window = o.sliding_window;
    r.soft_cap = o.soft_cap;
    r.q_scale = o.q_scale;
    r.k_scale = o.k_scale;
    r.v_scale = o.v_scale;
    r.num_threads = o.num_threads;
    // A non-NULL default for sinks would be a pointer we could not size; the
    // contract's default is NULL.
    return r;
  }

  /// The C struct (sinks points into the span given here).
  rpa_options c() const {
    detail::require(sinks.empty() || sinks.size() == static_cast<std::size_t>(num_q_heads),
                    "opts.sinks: span has " + std::to_string(sinks.size()) +
                        " entries, num_q_heads = " + std::to_string(num_q_heads) + " needed");
    rpa_options o{};
    o.num_q_heads = num_q_heads;
    o.act_dtype = static_cast<rpa_dtype>(act_dtype);
    o.sm_scale = sm_scale;
    o.causal = causal ? 1 : 0;
    o.update_kv_cache = update_kv_cache ? 1 : 0;
    o.sliding_window = sliding_window;
    o.soft_cap = soft_cap;
    o.q_scale = q_scale;
    o.k_scale = k_scale;
    o.v_scale = v_scale;
    o.sinks = sinks.empty() ? nullptr : sinks.data();
    o.num_threads = num_threads;
    return o;
  }
};

namespace detail {

/// An rpa_batch pointing into a BatchView, with the distribution stored as the
/// int32_t[3] the C ABI wants. Lives for the duration of one call.
struct CBatch {
  std::array<int32_t, 3> dist;
  rpa_batch b;

  explicit CBatch(const BatchView& v)
      : dist{v.distribution.decode_end, v.distribution.prefill_end, v.distribution.num_seqs}, b{} {
    const std::size_t n = v.kv_lens.size();
    require(n <= static_cast<std::size_t>(INT32_MAX),
            "batch.kv_lens: more than INT32_MAX sequences");
    require(v.pages_per_seq >= 0,
            "batch.pages_per_seq " + std::to_string(v.pages_per_seq) + " must be >= 0");
    require(v.cu_q_lens.size() >= n + 1,
            "batch.cu_q_lens: span has " + std::to_string(v.cu_q_lens.size()) +
                " entries, max_num_seqs + 1 = " + std::to_string(n + 1) + " needed");
    require(v.page_indices.size() >= n * static_cast<std::size_t>(v.pages_per_seq),
            "batch.page_indices: span has " + std::to_string(v.page_indices.size()) +
                " entries, max_num_seqs * pages_per_seq = " +
                std::to_string(n * static_cast<std::size_t>(v.pages_per_seq)) + " needed");
    b.kv_lens = v.kv_lens.data();
    b.page_indices = v.page_indices.data();
    b.cu_q_lens = v.cu_q_lens.data();
    b.distribution = dist.data();
    b.max_num_seqs = static_cast<int32_t>(n);
    b.pages_per_seq = v.pages_per_seq;
    b.max_num_tokens = v.max_num_tokens;
  }
  CBatch(const CBatch&) = delete;  // b.distribution points into this object
  CBatch& operator=(const CBatch&) = delete;
};

/// Checks that a span holds `need` elements (the wrapper's size checks).
template <class T>
void require_size(std::span<T> s, std::size_t need, const char* what) {
  require(s.size() >= need, std::string(what) + ": span has " + std::to_string(s.size()) +
                                " elements, " + std::to_string(need) + " needed");
}

inline std::size_t rows(int32_t t, int32_t heads, int32_t dim) {
  return t <= 0 || heads <= 0 || dim <= 0
             ? 0
             : static_cast<std::size_t>(t) * static_cast<std::size_t>(heads) *
                   static_cast<std::size_t>(dim);
}

}  // namespace detail

/// Writes one token's keys and values ([num_kv_heads, head_dim] each, of
/// src_dtype F32/BF16/F16) into the cache at (page, slot), quantizing with
/// k_scale/v_scale (0 = 1). Throws rpa::Error.
inline void cache_write(void* cache, const CacheConfig& cfg, int32_t page, int32_t slot,
                        const void* k, const void* v, DType src_dtype, float k_scale = 0.0f,
                        float v_scale = 0.0f) {
  const rpa_cache_config cc = cfg.c();
  detail::ErrBuf err;
  detail::check(rpa_cache_write(cache, &cc, page, slot, k, v, static_cast<rpa_dtype>(src_dtype),
                                k_scale, v_scale, err.data(), err.size()),
                err);
}

/// cache_write with F32 keys/values; checks that k and v hold Hkv * D floats.
inline void cache_write(std::span<std::byte> cache, const CacheConfig& cfg, int32_t page,
                        int32_t slot, std::span<const float> k, std::span<const float> v,
                        float k_scale = 0.0f, float v_scale = 0.0f) {
  const std::size_t n = detail::rows(1, cfg.num_kv_heads, cfg.head_dim);
  detail::require_size(cache, cfg.bytes(), "kv_cache");
  detail::require_size(k, n, "k");
  detail::require_size(v, n, "v");
  cache_write(cache.data(), cfg, page, slot, k.data(), v.data(), DType::F32, k_scale, v_scale);
}

/// Reads one token's keys and values at (page, slot) back as [num_kv_heads,
/// head_dim] arrays of dst_dtype (F32/BF16/F16), dequantized with k_scale/v_scale.
inline void cache_read(const void* cache, const CacheConfig& cfg, int32_t page, int32_t slot,
                       void* k, void* v, DType dst_dtype, float k_scale = 0.0f,
                       float v_scale = 0.0f) {
  const rpa_cache_config cc = cfg.c();
  detail::ErrBuf err;
  detail::check(rpa_cache_read(cache, &cc, page, slot, k, v, static_cast<rpa_dtype>(dst_dtype),
                               k_scale, v_scale, err.data(), err.size()),
                err);
}

/// cache_read into F32 spans; checks that k and v hold Hkv * D floats.
inline void cache_read(std::span<const std::byte> cache, const CacheConfig& cfg, int32_t page,
                       int32_t slot, std::span<float> k, std::span<float> v, float k_scale = 0.0f,
                       float v_scale = 0.0f) {
  const std::size_t n = detail::rows(1, cfg.num_kv_heads, cfg.head_dim);
  detail::require_size(cache, cfg.bytes(), "kv_cache");
  detail::require_size(k, n, "k");
  detail::require_size(v, n, "v");
  cache_read(cache.data(), cfg, page, slot, k.data(), v.data(), DType::F32, k_scale, v_scale);
}

/// The options of a batched token write or read (rpa_token_batch, ABI 1.1)
/// other than the slots: row dtype, strides in elements between tokens'
/// rows (0 = dense), scales (0 = 1), threads (0 = library default).
struct TokenRows {
  DType dtype = DType::F32;
  int64_t k_stride = 0;
  int64_t v_stride = 0;
  float k_scale = 0.0f;
  float v_scale = 0.0f;
  int32_t num_threads = 0;

  rpa_token_batch c(std::span<const int64_t> slot_mapping) const {
    detail::require(slot_mapping.size() <= std::size_t(INT32_MAX), "slot_mapping: more than 2^31 - 1 tokens");
    rpa_token_batch t{};
    t.struct_size = sizeof t;
    t.num_tokens = static_cast<int32_t>(slot_mapping.size());
    t.slot_mapping = slot_mapping.data();
    t.dtype = static_cast<rpa_dtype>(dtype);
    t.k_stride = k_stride;
    t.v_stride = v_stride;
    t.k_scale = k_scale;
    t.v_scale = v_scale;
    t.num_threads = num_threads;
    return t;
  }
};

/// Writes token i's keys and values (rows k + i * stride, [num_kv_heads,
/// head_dim] of rows.dtype) at slot slot_mapping[i] = page * page_size +
/// slot in page, skipping -1 (rpa_cache_write_tokens: the whole batch is
/// checked first). Throws rpa::Error.
inline void cache_write_tokens(void* cache, const CacheConfig& cfg,
                               std::span<const int64_t> slot_mapping, const void* k, const void* v,
                               const TokenRows& rows = {}) {
  const rpa_cache_config cc = cfg.c();
  const rpa_token_batch t = rows.c(slot_mapping);
  detail::ErrBuf err;
  detail::check(rpa_cache_write_tokens(cache, &cc, &t, k, v, err.data(), err.size()), err);
}

/// Reads the tokens at slot_mapping's slots into k and v (rpa_cache_read_tokens).
inline void cache_read_tokens(const void* cache, const CacheConfig& cfg,
                              std::span<const int64_t> slot_mapping, void* k, void* v,
                              const TokenRows& rows = {}) {
  const rpa_cache_config cc = cfg.c();
  const rpa_token_batch t = rows.c(slot_mapping);
  detail::ErrBuf err;
  detail::check(rpa_cache_read_tokens(cache, &cc, &t, k, v, err.data(), err.size()), err);
}

/// One ragged paged attention step (rpa_ragged_paged_attention): validates,
/// writes the new keys/values into the cache (when opts.update_kv_cache) and
/// attends. queries/out are [T, Hq, D], keys/values [T, Hkv, D], all of
/// opts.act_dtype; keys/values may be null when update_kv_cache is false.
/// Throws rpa::Error; on error out and the cache are unchanged.
inline void attention(const void* queries, const void* keys, const void* values, void* kv_cache,
                      const CacheConfig& cfg, const BatchView& batch, const Options& opts,
                      void* out) {
  const rpa_cache_config cc = cfg.c();
  const detail::CBatch cb(batch);
  const rpa_options co = opts.c();
  detail::ErrBuf err;
  detail::check(rpa_ragged_paged_attention(queries, keys, values, kv_cache, &cc, &cb.b, &co, out,
                                           err.data(), err.size()),
                err);
}

/// attention() for F32 activations, with every buffer's size checked.
inline void attention(std::span<const float> queries, std::span<const float> keys,
                      std::span<const float> values, std::span<std::byte> kv_cache,
                      const CacheConfig& cfg, const BatchView& batch, const Options& opts,
                      std::span<float> out) {
  detail::require(opts.act_dtype == DType::F32, "opts.act_dtype: float spans need DType::F32");
  const std::size_t nq = detail::rows(batch.max_num_tokens, opts.num_q_heads, cfg.head_dim);
  const std::size_t nkv = detail::rows(batch.max_num_tokens, cfg.num_kv_heads, cfg.head_dim);
  detail::require_size(queries, nq, "queries");
  if (opts.update_kv_cache) {
    detail::require_size(keys, nkv, "keys");
    detail::require_size(values, nkv, "values");
  }
  detail::require_size(kv_cache, cfg.bytes(), "kv_cache");
  detail::require_size(out, nq, "out");
  attention(queries.data(), keys.empty() ? nullptr : keys.data(),
            values.empty() ? nullptr : values.data(), kv_cache.data(), cfg, batch, opts,
            out.data());
}

/// A validated, planned batch (rpa_plan_create) that can be run many times,
/// e.g. once per layer with each layer's own cache buffer of the same config.
/// Move-only; a moved-from or default-constructed Plan is empty.
class Plan {
 public:
  Plan() = default;

  /// Validates and plans; throws rpa::Error. The plan copies what it needs, so
  /// batch's arrays and opts.sinks need not outlive this constructor.
  Plan(const CacheConfig& cfg, const BatchView& batch, const Options& opts)
      : cfg_(cfg),
        num_q_heads_(opts.num_q_heads),
        max_num_tokens_(batch.max_num_tokens),
        act_dtype_(opts.act_dtype),
        update_kv_cache_(opts.update_kv_cache) {
    const rpa_cache_config cc = cfg.c();
    const detail::CBatch cb(batch);
    const rpa_options co = opts.c();
    detail::ErrBuf err;
    rpa_status st = RPA_ERR_INTERNAL;
    plan_ = rpa_plan_create(&cc, &cb.b, &co, &st, err.data(), err.size());
    if (plan_ == nullptr) {
      detail::check(st == RPA_OK ? RPA_ERR_INTERNAL : st, err);
    }
  }

  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;
  Plan(Plan&& o) noexcept { *this = std::move(o); }
  Plan& operator=(Plan&& o) noexcept {
    if (this != &o) {
      reset();
      plan_ = std::exchange(o.plan_, nullptr);
      cfg_ = o.cfg_;
      num_q_heads_ = o.num_q_heads_;
      max_num_tokens_ = o.max_num_tokens_;
      act_dtype_ = o.act_dtype_;
      update_kv_cache_ = o.update_kv_cache_;
    }
    return *this;
  }
  ~Plan() { reset(); }

  /// Whether this Plan holds a plan.
  explicit operator bool() const noexcept { return plan_ != nullptr; }
  /// The C handle (still owned by this Plan).
  const rpa_plan* get() const noexcept { return plan_; }
  /// Destroys the plan; the Plan becomes empty.
  void reset() noexcept {
    if (plan_ != nullptr) rpa_plan_destroy(plan_);
    plan_ = nullptr;
  }

  /// Runs the planned batch (rpa_plan_run) on these buffers, laid out as for
  /// attention(). Throws rpa::Error, also when the Plan is empty.
  void run(const void* queries, const void* keys, const void* values, void* kv_cache,
           void* out) const {
    detail::require(plan_ != nullptr, "plan: empty (moved-from or default-constructed)");
    detail::ErrBuf err;
    detail::check(rpa_plan_run(plan_, queries, keys, values, kv_cache, out, err.data(), err.size()),
                  err);
  }

  /// run() on token rows q_stride, k_stride and v_stride elements apart (0:
  /// packed), e.g. views into a fused qkv tensor (rpa_plan_run_strided).
  void run_strided(const void* queries, std::int64_t q_stride, const void* keys,
                   std::int64_t k_stride, const void* values, std::int64_t v_stride,
                   void* kv_cache, void* out) const {
    detail::require(plan_ != nullptr, "plan: empty (moved-from or default-constructed)");
    detail::ErrBuf err;
    detail::check(rpa_plan_run_strided(plan_, queries, q_stride, keys, k_stride, values, v_stride,
                                       kv_cache, out, err.data(), err.size()),
                  err);
  }

  /// run() for F32 activations, with every buffer's size checked.
  void run(std::span<const float> queries, std::span<const float> keys,
           std::span<const float> values, std::span<std::byte> kv_cache,
           std::span<float> out) const {
    detail::require(plan_ != nullptr, "plan: empty (moved-from or default-constructed)");
    detail::require(act_dtype_ == DType::F32, "opts.act_dtype: float spans need DType::F32");
    const std::size_t nq = detail::rows(max_num_tokens_, num_q_heads_, cfg_.head_dim);
    const std::size_t nkv = detail::rows(max_num_tokens_, cfg_.num_kv_heads, cfg_.head_dim);
    detail::require_size(queries, nq, "queries");
    if (update_kv_cache_) {
      detail::require_size(keys, nkv, "keys");
      detail::require_size(values, nkv, "values");
    }
    detail::require_size(kv_cache, cfg_.bytes(), "kv_cache");
    detail::require_size(out, nq, "out");
    run(queries.data(), keys.empty() ? nullptr : keys.data(),
        values.empty() ? nullptr : values.data(), kv_cache.data(), out.data());
  }

 private:
  rpa_plan* plan_ = nullptr;
  CacheConfig cfg_{};
  int32_t num_q_heads_ = 0;
  int32_t max_num_tokens_ = 0;
  DType act_dtype_ = DType::F32;
  bool update_kv_cache_ = true;
};

}  // namespace rpa

#endif  // RPA_RPA_HPP_
