// rpa._core: the C ABI for the Python package (python/rpa). Arrays arrive as
// data pointers (Python ints) that rpa/_arrays.py took from tensors and
// arrays after checking their shapes and dtypes; every library call runs with
// the GIL released, and a status other than RPA_OK raises ValueError with the
// library's message (MemoryError for RPA_ERR_OUT_OF_MEMORY). Nothing here
// knows PyTorch, NumPy or JAX.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <memory>
#include <string>

#include "rpa/rpa.h"

namespace py = pybind11;

namespace {

using Ptr = uintptr_t;

template <class T>
T* as(Ptr p) {
  return reinterpret_cast<T*>(p);
}

// call(err, err_len) -> rpa_status with the GIL released; a status other
// than RPA_OK raised with the library's message.
template <class Call>
void call_released(Call&& call) {
  char err[512] = "";
  rpa_status status;
  {
    py::gil_scoped_release release;
    status = call(err, sizeof err);
  }
  if (status == RPA_OK) return;
  if (status == RPA_ERR_OUT_OF_MEMORY) throw std::bad_alloc();
  throw py::value_error(err);
}

rpa_cache_config cache_config(int32_t num_kv_heads, int32_t head_dim, int32_t page_size,
                              int32_t num_pages, int32_t dtype) {
  return {num_kv_heads, head_dim, page_size, num_pages, static_cast<rpa_dtype>(dtype)};
}

// The batch arrays (int32, contiguous) and their declared sizes.
rpa_batch batch(Ptr kv_lens, Ptr page_indices, Ptr cu_q_lens, Ptr distribution,
                int32_t max_num_seqs, int32_t pages_per_seq, int32_t max_num_tokens) {
  return {as<const int32_t>(kv_lens), as<const int32_t>(page_indices), as<const int32_t>(cu_q_lens),
          as<const int32_t>(distribution), max_num_seqs, pages_per_seq, max_num_tokens};
}

// rpa_options with the Python defaults resolved (0 = none, as in the C ABI).
rpa_options options(int32_t num_q_heads, int32_t act_dtype, float sm_scale, int32_t causal,
                    int32_t update_kv_cache, int32_t sliding_window, float soft_cap, float q_scale,
                    float k_scale, float v_scale, Ptr sinks, int32_t num_threads) {
  return {num_q_heads, static_cast<rpa_dtype>(act_dtype), sm_scale, causal, update_kv_cache,
          sliding_window, soft_cap, q_scale, k_scale, v_scale, as<const float>(sinks), num_threads};
}

// A plan (rpa_plan_create) for one batch, run per layer.
class Plan {
 public:
  Plan(const rpa_cache_config& cfg, const rpa_batch& b, const rpa_options& o) {
    rpa_plan* plan = nullptr;
    call_released([&](char* err, size_t len) {
      rpa_status status = RPA_OK;
      plan = rpa_plan_create(&cfg, &b, &o, &status, err, len);
      return status;
    });
    plan_.reset(plan);
  }
  void run(Ptr queries, Ptr keys, Ptr values, Ptr kv_cache, Ptr out) const {
    call_released([&](char* err, size_t len) {
      return rpa_plan_run(plan_.get(), as<const void>(queries), as<const void>(keys),
                          as<const void>(values), as<void>(kv_cache), as<void>(out), err, len);
    });
  }
  // The rpa_plan, for rpa._torch_fast.plan_run (alive as long as this Plan).
  Ptr handle() const { return reinterpret_cast<Ptr>(plan_.get()); }

 private:
  struct Destroy {
    void operator()(rpa_plan* p) const { rpa_plan_destroy(p); }
  };
  std::unique_ptr<rpa_plan, Destroy> plan_;
};

// rpa_ragged_paged_attention with the batch and options as plain arguments:
// one conversion per argument and no Python objects to build, since the
// Python call's overhead on a tiny decode is what engines pay per layer.
void attention(Ptr queries, Ptr keys, Ptr values, Ptr kv_cache, Ptr out, const rpa_cache_config& cfg,
               Ptr kv_lens, Ptr page_indices, Ptr cu_q_lens, Ptr distribution, int32_t max_num_seqs,
               int32_t pages_per_seq, int32_t max_num_tokens, int32_t num_q_heads,
               int32_t act_dtype, float sm_scale, int32_t causal, int32_t update_kv_cache,
               int32_t sliding_window, float soft_cap, float q_scale, float k_scale, float v_scale,
               Ptr sinks, int32_t num_threads) {
  const rpa_batch b = batch(kv_lens, page_indices, cu_q_lens, distribution, max_num_seqs,
                            pages_per_seq, max_num_tokens);
  const rpa_options o = options(num_q_heads, act_dtype, sm_scale, causal, update_kv_cache,
                                sliding_window, soft_cap, q_scale, k_scale, v_scale, sinks,
                                num_threads);
  call_released([&](char* err, size_t len) {
    return rpa_ragged_paged_attention(as<const void>(queries), as<const void>(keys),
                                      as<const void>(values), as<void>(kv_cache), &cfg, &b, &o,
                                      as<void>(out), err, len);
  });
}

// rpa_cache_write_tokens (write) or rpa_cache_read_tokens.
void token_batch(bool write, Ptr kv_cache, const rpa_cache_config& cfg, int32_t num_tokens,
                 Ptr slot_mapping, int32_t dtype, int64_t k_stride, int64_t v_stride, float k_scale,
                 float v_scale, int32_t num_threads, Ptr k, Ptr v) {
  const rpa_token_batch t{sizeof t,  num_tokens, as<const int64_t>(slot_mapping),
                          static_cast<rpa_dtype>(dtype), k_stride, v_stride, k_scale, v_scale,
                          num_threads};
  call_released([&](char* err, size_t len) {
    return write ? rpa_cache_write_tokens(as<void>(kv_cache), &cfg, &t, as<const void>(k),
                                          as<const void>(v), err, len)
                 : rpa_cache_read_tokens(as<const void>(kv_cache), &cfg, &t, as<void>(k),
                                         as<void>(v), err, len);
  });
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "rpa's C ABI for the Python package; use the rpa module, not this one.";
  m.def("version", [] { return std::string(rpa_version()); });
  m.def("isa", [] { return std::string(rpa_isa()); });
  m.def("abi_version", [] { return rpa_abi_version(); });
  m.def("isa_available", [](const std::string& name) { return rpa_isa_available(name.c_str()) != 0; });

  py::class_<rpa_cache_config>(m, "CacheConfig")
      .def(py::init(&cache_config), py::arg("num_kv_heads"), py::arg("head_dim"),
           py::arg("page_size"), py::arg("num_pages"), py::arg("dtype"))
      .def_readonly("num_kv_heads", &rpa_cache_config::num_kv_heads)
      .def_readonly("head_dim", &rpa_cache_config::head_dim)
      .def_readonly("page_size", &rpa_cache_config::page_size)
      .def_readonly("num_pages", &rpa_cache_config::num_pages)
      .def_property_readonly("dtype", [](const rpa_cache_config& c) { return int(c.dtype); })
      .def("bytes", [](const rpa_cache_config& c) { return rpa_cache_bytes(&c); });

  py::class_<rpa_batch>(m, "Batch").def(py::init(&batch));
  py::class_<rpa_options>(m, "Options").def(py::init(&options));

  py::class_<Plan>(m, "Plan")
      .def(py::init<const rpa_cache_config&, const rpa_batch&, const rpa_options&>())
      .def("run", &Plan::run)
      .def("handle", &Plan::handle);
  m.def("attention", &attention);
  m.def("token_batch", &token_batch);
}
