// rpa._jax_ffi: rpa_ragged_paged_attention as an XLA FFI handler for JAX on
// the CPU (python/rpa/jax.py registers it with jax.ffi). Built only where the
// build's Python has jaxlib, whose headers (jax.ffi.include_dir()) declare the
// FFI. Operands: queries, keys, values, kv_cache, kv_lens, page_indices,
// cu_q_lens, distribution, attention_sink (0 elements = none); results: out
// and the new kv_cache, aliased to the kv_cache operand (input_output_aliases).
// When XLA could not alias them (the caller did not donate the cache), the
// old cache is copied into the new one first, then updated there.
#include <pybind11/pybind11.h>

#include <cstring>
#include <string>

#include "rpa/rpa.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;
namespace py = pybind11;

namespace {

// rpa's dtype of an XLA element type, or -1.
int rpa_dtype_of(ffi::DataType t) {
  switch (t) {
    case ffi::DataType::F32: return RPA_F32;
    case ffi::DataType::BF16: return RPA_BF16;
    case ffi::DataType::F16: return RPA_F16;
    case ffi::DataType::F8E4M3FN: return RPA_FP8_E4M3;
    case ffi::DataType::F8E5M2: return RPA_FP8_E5M2;
    case ffi::DataType::S8: return RPA_INT8;
    default: return -1;
  }
}

ffi::Error invalid(const std::string& message) {
  return ffi::Error(ffi::ErrorCode::kInvalidArgument, message);
}

ffi::Error Attention(ffi::AnyBuffer queries, ffi::AnyBuffer keys, ffi::AnyBuffer values,
                     ffi::AnyBuffer kv_cache, ffi::Buffer<ffi::S32> kv_lens,
                     ffi::Buffer<ffi::S32> page_indices, ffi::Buffer<ffi::S32> cu_q_lens,
                     ffi::Buffer<ffi::S32> distribution, ffi::Buffer<ffi::F32> attention_sink,
                     ffi::Result<ffi::AnyBuffer> out, ffi::Result<ffi::AnyBuffer> kv_cache_out,
                     int32_t page_size, float sm_scale, int32_t sliding_window, float soft_cap,
                     float q_scale, float k_scale, float v_scale, int32_t causal,
                     int32_t update_kv_cache, int32_t num_threads) {
  const auto q_dims = queries.dimensions();
  const auto k_dims = keys.dimensions();
  const auto c_dims = kv_cache.dimensions();
  const auto p_dims = page_indices.dimensions();
  if (q_dims.size() != 3 || k_dims.size() != 3 || c_dims.size() != 3 || p_dims.size() != 2 ||
      values.dimensions().size() != 3)
    return invalid("rpa.jax: queries, keys and kv_cache must be 3-D, page_indices 2-D");
  // Every buffer as large as the library will index it (rpa.jax checks the
  // same with a message naming the argument; this keeps a direct call safe).
  const int64_t t = q_dims[0], d = q_dims[2], hkv = c_dims[1];
  const auto v_dims = values.dimensions();
  const bool kv_ok = !update_kv_cache || (k_dims[0] == t && k_dims[1] == hkv && k_dims[2] == d &&
                                          v_dims.size() == 3 && v_dims[0] == t &&
                                          v_dims[1] == hkv && v_dims[2] == d);
  const int64_t seqs = int64_t(kv_lens.element_count());
  const int64_t sinks = int64_t(attention_sink.element_count());
  if (!kv_ok || int64_t(cu_q_lens.element_count()) < seqs + 1 ||
      distribution.element_count() != 3 || p_dims[0] != seqs || (sinks != 0 && sinks != q_dims[1]))
    return invalid("rpa.jax: keys, values or the batch arrays do not match queries and kv_cache");
  const int cache_dtype = rpa_dtype_of(kv_cache.element_type());
  const int act = rpa_dtype_of(queries.element_type());
  if (cache_dtype < 0 || act < 0 || act > RPA_F16)
    return invalid("rpa.jax: dtypes: queries float32, bfloat16 or float16; kv_cache any rpa dtype");
  const rpa_cache_config cfg{int32_t(hkv), int32_t(d), page_size, int32_t(c_dims[0]),
                             static_cast<rpa_dtype>(cache_dtype)};
  if (rpa_cache_bytes(&cfg) != kv_cache.size_bytes())
    return invalid("rpa.jax: kv_cache's shape does not hold the cache of its config");
  if (kv_cache_out->untyped_data() != kv_cache.untyped_data())
    std::memcpy(kv_cache_out->untyped_data(), kv_cache.untyped_data(), kv_cache.size_bytes());
  const rpa_batch batch{kv_lens.typed_data(), page_indices.typed_data(), cu_q_lens.typed_data(),
                        distribution.typed_data(), int32_t(seqs), int32_t(p_dims[1]), int32_t(t)};
  const rpa_options opts{int32_t(q_dims[1]), static_cast<rpa_dtype>(act), sm_scale, causal,
                         update_kv_cache, sliding_window, soft_cap, q_scale, k_scale, v_scale,
                         sinks > 0 ? attention_sink.typed_data() : nullptr,
                         num_threads};
  char err[512] = "";
  const rpa_status st = rpa_ragged_paged_attention(
      queries.untyped_data(), keys.untyped_data(), values.untyped_data(),
      kv_cache_out->untyped_data(), &cfg, &batch, &opts, out->untyped_data(), err, sizeof err);
  if (st != RPA_OK) return invalid(err);
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(RpaRaggedPagedAttention, Attention,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<int32_t>("page_size")
                                  .Attr<float>("sm_scale")
                                  .Attr<int32_t>("sliding_window")
                                  .Attr<float>("soft_cap")
                                  .Attr<float>("q_scale")
                                  .Attr<float>("k_scale")
                                  .Attr<float>("v_scale")
                                  .Attr<int32_t>("causal")
                                  .Attr<int32_t>("update_kv_cache")
                                  .Attr<int32_t>("num_threads"));

PYBIND11_MODULE(_jax_ffi, m) {
  m.doc() = "rpa's XLA FFI handler for JAX; use rpa.jax.";
  m.def("handler", [] {
    return py::capsule(reinterpret_cast<void*>(&RpaRaggedPagedAttention));
  });
}
