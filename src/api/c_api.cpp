// The C ABI of include/rpa/rpa.h: argument checks, error reporting, and no
// exception ever crossing into C.
#include <cmath>
#include <memory>
#include <new>

#include "cache/token_io.hpp"
#include "common/dtype.hpp"
#include "isa/cpu.hpp"
#include "plan/plan.hpp"
#include "plan/tuning.hpp"
#include "threading/thread_pool.hpp"
#include "rpa/rpa.h"
#include "validate/validate.hpp"

struct rpa_plan {
  rpa::Plan plan;
};

namespace {

rpa_status report(const rpa::Status& s, char* err, size_t err_len) {
  rpa::write_error(err, err_len, s.ok() ? std::string() : s.message);
  return s.code;
}

// Runs f() -> Status, turning allocation failure and anything unexpected
// into a status.
template <class F>
rpa_status guarded(char* err, size_t err_len, F&& f) {
  try {
    return report(f(), err, err_len);
  } catch (const std::bad_alloc&) {
    return report(rpa::Status::make(RPA_ERR_OUT_OF_MEMORY, "out of memory"), err, err_len);
  } catch (...) {
    return report(rpa::Status::make(RPA_ERR_INTERNAL, "internal error"), err, err_len);
  }
}

rpa::Status check_token_args(const void* cache, const rpa_cache_config* c, int32_t page,
                             int32_t slot, const void* k, const void* v, rpa_dtype dtype,
                             float k_scale, float v_scale) {
  if (rpa::Status s = rpa::validate_cache_config(c); !s.ok()) return s;
  if (cache == nullptr) return RPA_INVALID("cache is NULL");
  if (k == nullptr) return RPA_INVALID("k is NULL");
  if (v == nullptr) return RPA_INVALID("v is NULL");
  if (page < 0 || page >= c->num_pages)
    return RPA_INVALID("page %d out of range [0, cache.num_pages %d)", page, c->num_pages);
  if (slot < 0 || slot >= c->page_size)
    return RPA_INVALID("slot %d out of range [0, cache.page_size %d)", slot, c->page_size);
  if (!rpa::is_act_dtype(rpa::raw_dtype(dtype)))
    return RPA_INVALID("dtype %d of k and v must be RPA_F32, RPA_BF16 or RPA_F16",
                       rpa::raw_dtype(dtype));
  if (!std::isfinite(k_scale) || k_scale < 0)
    return RPA_INVALID("k_scale %g must be finite and >= 0", double(k_scale));
  if (!std::isfinite(v_scale) || v_scale < 0)
    return RPA_INVALID("v_scale %g must be finite and >= 0", double(v_scale));
  return {};
}

float scale_or_one(float s) { return s == 0 ? 1.0f : s; }

// The layout tokens are written and read in: the documented one, or token rows
// while the pack-at-read ablation is on (rpa_set_tuning("layout_at_write", 0)).
rpa::CacheLayout token_io_layout(const rpa_cache_config& c, rpa::Status* s) {
  if (rpa::current_tuning().layout_at_write) return rpa::make_layout(c);
  if (!rpa::rows_order_supported(c)) *s = rpa::Status::make(RPA_ERR_UNSUPPORTED, "%s", rpa::kRowsOrderLimits);
  return rpa::make_layout(c, rpa::BlockOrder::kRows);
}

}  // namespace

extern "C" {

int32_t rpa_abi_version(void) { return RPA_ABI_VERSION_MAJOR * 100 + RPA_ABI_VERSION_MINOR; }

const char* rpa_version(void) { return RPA_VERSION_STRING; }

const char* rpa_isa(void) {
  const rpa::IsaChoice& c = rpa::chosen_isa();
  return c.requested != nullptr ? c.requested : rpa::isa_name(c.isa);
}

int rpa_isa_available(const char* isa) {
  rpa::Isa i;
  return isa != nullptr && rpa::isa_from_name(isa, &i) && rpa::isa_available(i) ? 1 : 0;
}

void rpa_default_options(rpa_options* o, int32_t num_q_heads, rpa_dtype act_dtype,
                         int32_t head_dim) {
  if (o == nullptr) return;
  *o = rpa_options{};
  o->num_q_heads = num_q_heads;
  o->act_dtype = act_dtype;
  o->sm_scale = head_dim > 0 ? float(1.0 / std::sqrt(double(head_dim))) : 1.0f;
  o->causal = 1;
  o->update_kv_cache = 1;
}

int rpa_set_tuning(const char* name, int32_t on) {
  return name != nullptr && rpa::set_tuning(name, on != 0) ? 0 : -1;
}

int32_t rpa_last_call_busy(double* busy, int32_t max_threads) {
  const std::vector<double>& last = rpa::last_call_busy();
  for (int32_t i = 0; busy != nullptr && i < max_threads && size_t(i) < last.size(); ++i)
    busy[i] = last[size_t(i)];
  return int32_t(last.size());
}

size_t rpa_cache_bytes(const rpa_cache_config* c) {
  if (!rpa::validate_cache_config(c).ok()) return 0;
  return rpa::cache_bytes(*c);
}

rpa_status rpa_cache_write(void* cache, const rpa_cache_config* c, int32_t page, int32_t slot,
                           const void* k, const void* v, rpa_dtype src_dtype, float k_scale,
                           float v_scale, char* err, size_t err_len) {
  return guarded(err, err_len, [&] {
    rpa::Status s = check_token_args(cache, c, page, slot, k, v, src_dtype, k_scale, v_scale);
    if (!s.ok()) return s;
    const rpa::CacheLayout layout = token_io_layout(*c, &s);
    if (!s.ok()) return s;
    rpa::write_token(static_cast<uint8_t*>(cache), layout, page, slot, k, v,
                     src_dtype, scale_or_one(k_scale), scale_or_one(v_scale));
    return s;
  });
}

rpa_status rpa_cache_read(const void* cache, const rpa_cache_config* c, int32_t page, int32_t slot,
                          void* k, void* v, rpa_dtype dst_dtype, float k_scale, float v_scale,
                          char* err, size_t err_len) {
  return guarded(err, err_len, [&] {
    rpa::Status s = check_token_args(cache, c, page, slot, k, v, dst_dtype, k_scale, v_scale);
    if (!s.ok()) return s;
    const rpa::CacheLayout layout = token_io_layout(*c, &s);
    if (!s.ok()) return s;
    rpa::read_token(static_cast<const uint8_t*>(cache), layout, page, slot, k, v,
                    dst_dtype, scale_or_one(k_scale), scale_or_one(v_scale));
    return s;
  });
}

}  // extern "C"

namespace {

// A batched token write or read: the config and batch checked, then
// io(layout, rows, threads) with the strides resolved and scales made > 0.
template <class Io>
rpa::Status token_batch_call(const void* cache, const rpa_cache_config* c, const rpa_token_batch* t,
                             const void* k, const void* v, bool write, Io&& io) {
  rpa::Status s = rpa::validate_cache_config(c);
  if (!s.ok()) return s;
  if (cache == nullptr) return RPA_INVALID("cache is NULL");
  if (s = rpa::validate_token_batch(t, *c, k, v, write); !s.ok()) return s;
  const rpa::CacheLayout layout = token_io_layout(*c, &s);
  if (!s.ok()) return s;
  const int64_t row = int64_t(c->num_kv_heads) * c->head_dim;
  const rpa::TokenRows rows{t->num_tokens,
                            t->slot_mapping,
                            t->dtype,
                            t->k_stride ? t->k_stride : row,
                            t->v_stride ? t->v_stride : row,
                            scale_or_one(t->k_scale),
                            scale_or_one(t->v_scale)};
  io(layout, rows, t->num_threads > 0 ? t->num_threads : rpa::default_num_threads());
  return s;
}

}  // namespace

extern "C" {

rpa_status rpa_cache_write_tokens(void* cache, const rpa_cache_config* c,
                                  const rpa_token_batch* tokens, const void* k, const void* v,
                                  char* err, size_t err_len) {
  return guarded(err, err_len, [&] {
    return token_batch_call(cache, c, tokens, k, v, true, [&](const rpa::CacheLayout& l,
                                                              const rpa::TokenRows& rows, int threads) {
      rpa::write_tokens(static_cast<uint8_t*>(cache), l, rows, k, v, threads);
    });
  });
}

rpa_status rpa_cache_read_tokens(const void* cache, const rpa_cache_config* c,
                                 const rpa_token_batch* tokens, void* k, void* v, char* err,
                                 size_t err_len) {
  return guarded(err, err_len, [&] {
    return token_batch_call(cache, c, tokens, k, v, false, [&](const rpa::CacheLayout& l,
                                                               const rpa::TokenRows& rows, int threads) {
      rpa::read_tokens(static_cast<const uint8_t*>(cache), l, rows, k, v, threads);
    });
  });
}

rpa_status rpa_ragged_paged_attention(const void* queries, const void* keys, const void* values,
                                      void* kv_cache, const rpa_cache_config* cache,
                                      const rpa_batch* batch, const rpa_options* opts, void* out,
                                      char* err, size_t err_len) {
  return guarded(err, err_len, [&] {
    rpa::Plan plan;
    if (rpa::Status s = rpa::Plan::create(cache, batch, opts, &plan); !s.ok()) return s;
    return plan.run(queries, keys, values, kv_cache, out);
  });
}

rpa_plan* rpa_plan_create(const rpa_cache_config* cache, const rpa_batch* batch,
                          const rpa_options* opts, rpa_status* status, char* err, size_t err_len) {
  rpa_plan* plan = nullptr;
  const rpa_status st = guarded(err, err_len, [&] {
    auto p = std::make_unique<rpa_plan>();
    rpa::Status s = rpa::Plan::create(cache, batch, opts, &p->plan);
    if (s.ok()) plan = p.release();
    return s;
  });
  if (status != nullptr) *status = st;
  return plan;
}

rpa_status rpa_plan_run(const rpa_plan* plan, const void* queries, const void* keys,
                        const void* values, void* kv_cache, void* out, char* err, size_t err_len) {
  return guarded(err, err_len, [&] {
    if (plan == nullptr) return RPA_INVALID("plan is NULL");
    return plan->plan.run(queries, keys, values, kv_cache, out);
  });
}

rpa_status rpa_plan_run_strided(const rpa_plan* plan, const void* queries, int64_t q_stride,
                                const void* keys, int64_t k_stride, const void* values,
                                int64_t v_stride, void* kv_cache, void* out, char* err,
                                size_t err_len) {
  return guarded(err, err_len, [&] {
    if (plan == nullptr) return RPA_INVALID("plan is NULL");
    return plan->plan.run(queries, keys, values, kv_cache, out,
                          rpa::RowStrides{q_stride, k_stride, v_stride});
  });
}

void rpa_plan_destroy(rpa_plan* plan) { delete plan; }

}  // extern "C"
