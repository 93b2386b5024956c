// rpa._torch_fast: rpa.ragged_paged_attention's and rpa.Plan.run's path for
// CPU torch tensors.
// It reads each tensor's pointer, dtype and shape from the at::Tensor inside
// the Python object (a few ns each) instead of through torch's Python
// accessors (~0.75 us a tensor on Zen 3, nine tensors a call), which is
// what lets the Python call cost at most 5 us more than the C call.
//
// It accepts or defers: a call whose arguments are all contiguous CPU
// tensors (exact torch.Tensor, not subclasses such as FakeTensor) of the
// shapes and dtypes the call takes runs here; anything else returns None,
// and the general path (rpa/__init__.py) runs it or raises the ValueError
// that names the argument. The library's own errors raise ValueError with
// its message here, as there, before anything is written.
#include <ATen/ops/empty_like.h>
#include <torch/csrc/autograd/python_variable.h>

#include <cstdint>
#include <map>
#include <tuple>

#include "rpa/rpa.h"

namespace {

constexpr int kInt32 = 100;  // the index arrays' dtype, as rpa/_arrays.py names it

int rpa_code(at::ScalarType type) {
  switch (type) {
    case at::kFloat: return RPA_F32;
    case at::kBFloat16: return RPA_BF16;
    case at::kHalf: return RPA_F16;
    case at::kFloat8_e4m3fn: return RPA_FP8_E4M3;
    case at::kFloat8_e5m2: return RPA_FP8_E5M2;
    case at::kChar: return RPA_INT8;
    case at::kInt: return kInt32;
    default: return -1;
  }
}

// The tensor in obj when it is a contiguous, strided CPU torch.Tensor of
// ndim dimensions (ndim 0: any) and rpa dtype; else nullptr.
// A strided CPU tensor with storage, of a dtype rpa knows and ndim
// dimensions (any, for 0), in any layout; nullptr otherwise.
const at::Tensor* cpu_tensor_of(PyObject* obj, int64_t ndim) {
  if (!THPVariable_CheckExact(obj)) return nullptr;
  const at::Tensor& t = THPVariable_Unpack(obj);
  if (!t.defined() || !t.device().is_cpu() || t.layout() != at::kStrided || !t.has_storage() ||
      rpa_code(t.scalar_type()) < 0 || (ndim && t.dim() != ndim))
    return nullptr;
  return &t;
}

const at::Tensor* tensor_of(PyObject* obj, int64_t ndim = 0) {
  const at::Tensor* t = cpu_tensor_of(obj, ndim);
  return t && t->is_contiguous() ? t : nullptr;
}

// A CPU tensor [T, H, D] whose token rows are each contiguous, `*stride`
// elements apart (at least H * D): a packed tensor, or a view into a fused
// qkv projection such as qkv[:, :Hq * D].view(T, Hq, D). nullptr otherwise.
const at::Tensor* rows_of(PyObject* obj, int64_t* stride) {
  const at::Tensor* p = cpu_tensor_of(obj, 3);
  if (!p) return nullptr;
  const at::Tensor& t = *p;
  const int64_t row = t.size(1) * t.size(2);
  const bool rows_contiguous = (t.size(2) <= 1 || t.stride(2) == 1) &&
                               (t.size(1) <= 1 || t.stride(1) == t.size(2));
  *stride = t.size(0) <= 1 ? row : t.stride(0);
  return rows_contiguous && *stride >= row ? p : nullptr;
}

bool is_act(const at::Tensor& t) {
  const int code = rpa_code(t.scalar_type());
  return code == RPA_F32 || code == RPA_BF16 || code == RPA_F16;
}

// The page size whose K and V blocks take head_bytes for one kv head, when
// exactly one does (the blocks are padded to 64 bytes); 0 otherwise.
int32_t page_size_of(int64_t head_bytes, int32_t head_dim, rpa_dtype dtype) {
  static std::map<std::tuple<int64_t, int32_t, int>, int32_t> found;  // guarded by the GIL
  const auto key = std::make_tuple(head_bytes, head_dim, int(dtype));
  auto it = found.find(key);
  if (it != found.end()) return it->second;
  int32_t only = 0;
  for (int32_t p = 1; p <= 1024; ++p) {
    const rpa_cache_config c{1, head_dim, p, 1, dtype};
    if (static_cast<int64_t>(rpa_cache_bytes(&c)) != head_bytes) continue;
    if (only) {
      only = 0;
      break;
    }
    only = p;
  }
  return found[key] = only;
}

// The cache config of kv_cache [num_pages, num_kv_heads, head_elements]
// (rpa.new_kv_cache), or false when it is not one for heads of head_dim.
bool cache_config(const at::Tensor& cache, int32_t head_dim, int32_t page_size,
                  rpa_cache_config* cfg) {
  const int code = rpa_code(cache.scalar_type());
  if (cache.dim() != 3 || code == kInt32) return false;
  const auto dtype = static_cast<rpa_dtype>(code);
  const int64_t head_bytes = cache.size(2) * cache.element_size();
  if (!page_size) page_size = page_size_of(head_bytes, head_dim, dtype);
  *cfg = {static_cast<int32_t>(cache.size(1)), head_dim, page_size,
          static_cast<int32_t>(cache.size(0)), dtype};
  const rpa_cache_config one_head{1, head_dim, page_size, 1, dtype};
  return page_size && static_cast<int64_t>(rpa_cache_bytes(&one_head)) == head_bytes;
}

// The batch arrays: int32 vectors whose sizes agree (page_indices flat or
// [max_num_seqs, pages_per_seq]), or false.
bool batch_of(PyObject* const* args, int32_t max_num_tokens, rpa_batch* b) {
  const at::Tensor* kv = tensor_of(args[0], 1);
  const at::Tensor* pages = tensor_of(args[1]);
  const at::Tensor* cu = tensor_of(args[2], 1);
  const at::Tensor* dist = tensor_of(args[3], 1);
  if (!kv || !pages || !cu || !dist) return false;
  for (const at::Tensor* t : {kv, pages, cu, dist})
    if (t->scalar_type() != at::kInt) return false;
  const int64_t seqs = kv->size(0);
  if (seqs == 0 || cu->size(0) < seqs + 1 || dist->size(0) != 3 || pages->dim() > 2 ||
      (pages->dim() == 2 && pages->size(0) != seqs) || pages->numel() % seqs)
    return false;
  *b = {kv->const_data_ptr<int32_t>(), pages->const_data_ptr<int32_t>(),
        cu->const_data_ptr<int32_t>(), dist->const_data_ptr<int32_t>(), static_cast<int32_t>(seqs),
        static_cast<int32_t>(pages->numel() / seqs), max_num_tokens};
  return true;
}

// A float or int argument, None as 0; false (and no Python error) otherwise.
bool number(PyObject* obj, double* value) {
  if (obj == Py_None) {
    *value = 0;
    return true;
  }
  *value = PyFloat_AsDouble(obj);
  if (*value == -1.0 && PyErr_Occurred()) {
    PyErr_Clear();
    return false;
  }
  return true;
}

// An int argument, None as 0; false (and no Python error) otherwise.
bool integer(PyObject* obj, int32_t* value) {
  if (obj == Py_None) {
    *value = 0;
    return true;
  }
  if (!PyLong_Check(obj)) return false;
  int overflow = 0;
  const long got = PyLong_AsLongAndOverflow(obj, &overflow);
  *value = static_cast<int32_t>(got);
  return !overflow && got == *value;
}

// Options from the scalar arguments (sm_scale, sliding_window, soft_cap,
// q_scale, k_scale, v_scale, use_causal_mask, update_kv_cache, num_threads),
// or false when one is not a number.
bool options_of(PyObject* const* args, int32_t num_q_heads, int act, const float* sinks,
                rpa_options* o) {
  double v[6];
  int32_t window, threads;
  for (int i : {0, 2, 3, 4, 5})
    if (!number(args[i], &v[i])) return false;
  const int causal = PyObject_IsTrue(args[6]), update = PyObject_IsTrue(args[7]);
  if (causal < 0 || update < 0) {
    PyErr_Clear();
    return false;
  }
  if (!integer(args[1], &window) || !integer(args[8], &threads)) return false;
  *o = {num_q_heads, static_cast<rpa_dtype>(act), float(v[0]), causal, update, window,
        float(v[2]), float(v[3]), float(v[4]), float(v[5]), sinks, threads};
  return true;
}

// keys and values [T, Hkv, D] in the queries' dtype, or absent (both None)
// when the cache is not updated; false otherwise. With row strides (plan_run),
// their token rows may lie k_stride and v_stride elements apart (rows_of);
// without, they are contiguous.
bool keys_values(PyObject* keys, PyObject* values, const at::Tensor& q, bool update,
                 const at::Tensor** k, const at::Tensor** v, int64_t* k_stride = nullptr,
                 int64_t* v_stride = nullptr) {
  *k = *v = nullptr;
  if (keys == Py_None && values == Py_None) return !update;
  *k = k_stride ? rows_of(keys, k_stride) : tensor_of(keys, 3);
  *v = v_stride ? rows_of(values, v_stride) : tensor_of(values, 3);
  return *k && *v && (*k)->scalar_type() == q.scalar_type() &&
         (*v)->scalar_type() == q.scalar_type() && (*k)->sizes() == (*v)->sizes() &&
         (*k)->size(0) == q.size(0) && (*k)->size(2) == q.size(2);
}

// sinks: None, or float32 [num_q_heads].
bool sinks_of(PyObject* obj, int64_t num_q_heads, const float** sinks) {
  *sinks = nullptr;
  if (obj == Py_None) return true;
  const at::Tensor* s = tensor_of(obj, 1);
  if (!s || s->scalar_type() != at::kFloat || s->size(0) != num_q_heads) return false;
  *sinks = s->const_data_ptr<float>();
  return true;
}

// out: None (allocated like queries) or a tensor of the queries' dtype and
// shape; the new reference to return, or nullptr.
PyObject* out_of(PyObject* obj, const at::Tensor& q) {
  if (obj == Py_None) return THPVariable_Wrap(at::empty(q.sizes(), q.options()));
  const at::Tensor* o = tensor_of(obj, 3);
  if (!o || o->scalar_type() != q.scalar_type() || o->sizes() != q.sizes()) return nullptr;
  Py_INCREF(obj);
  return obj;
}

// Runs call(out_data, err, err_len) -> rpa_status with the GIL released,
// into out_arg (see out_of): out on success; None when out_arg does not fit
// (the general path then names it); nullptr with ValueError (MemoryError)
// set from the library's error.
template <class Call>
PyObject* run_into(PyObject* out_arg, const at::Tensor& q, Call&& call) {
  PyObject* out = out_of(out_arg, q);
  if (!out) {
    if (PyErr_Occurred()) return nullptr;
    Py_RETURN_NONE;
  }
  void* out_data = THPVariable_Unpack(out).data_ptr();
  char err[512] = "";
  rpa_status status;
  Py_BEGIN_ALLOW_THREADS
  status = call(out_data, err, sizeof err);
  Py_END_ALLOW_THREADS
  if (status == RPA_OK) return out;
  Py_DECREF(out);
  if (status == RPA_ERR_OUT_OF_MEMORY) return PyErr_NoMemory();
  PyErr_SetString(PyExc_ValueError, err);
  return nullptr;
}

// attention(queries, keys, values, kv_cache, kv_lens, page_indices,
// cu_q_lens, distribution, attention_sink, out, sm_scale, sliding_window,
// soft_cap, q_scale, k_scale, v_scale, use_causal_mask, update_kv_cache,
// num_threads, page_size) -> out, or None to defer to the general path.
PyObject* attention(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 20) {
    PyErr_SetString(PyExc_TypeError, "rpa._torch_fast.attention takes 20 arguments");
    return nullptr;
  }
  const at::Tensor* q = tensor_of(args[0], 3);
  const at::Tensor* cache_t = tensor_of(args[3]);
  int32_t page_size = 0;
  if (!q || !is_act(*q) || !cache_t || !integer(args[19], &page_size)) Py_RETURN_NONE;
  const bool update = PyObject_IsTrue(args[17]) == 1;
  const at::Tensor *k, *v;
  const float* sinks;
  rpa_cache_config cfg;
  rpa_batch b;
  rpa_options o;
  if (!keys_values(args[1], args[2], *q, update, &k, &v) ||
      !cache_config(*cache_t, int32_t(q->size(2)), page_size, &cfg) ||
      (k && k->size(1) != cfg.num_kv_heads) ||
      !batch_of(args + 4, int32_t(q->size(0)), &b) || !sinks_of(args[8], q->size(1), &sinks) ||
      !options_of(args + 10, int32_t(q->size(1)), rpa_code(q->scalar_type()), sinks, &o))
    Py_RETURN_NONE;
  return run_into(args[9], *q, [&](void* out_data, char* err, size_t len) {
    return rpa_ragged_paged_attention(q->data_ptr(), k ? k->data_ptr() : nullptr,
                                      v ? v->data_ptr() : nullptr, cache_t->data_ptr(), &cfg, &b,
                                      &o, out_data, err, len);
  });
}

// The planned shapes plan_run checks a layer's tensors against.
struct Planned {
  rpa_plan* plan;
  int64_t act, num_tokens, num_q_heads, head_dim, cache_dtype, num_pages, num_kv_heads,
      head_elements, update;
};

bool planned_of(PyObject* spec, Planned* p) {
  int64_t v[10];
  if (!PyTuple_Check(spec) || PyTuple_GET_SIZE(spec) != 10) return false;
  for (Py_ssize_t i = 0; i < 10; ++i) {
    v[i] = PyLong_AsLongLong(PyTuple_GET_ITEM(spec, i));
    if (v[i] == -1 && PyErr_Occurred()) return false;
  }
  *p = {reinterpret_cast<rpa_plan*>(static_cast<uintptr_t>(v[0])), v[1], v[2], v[3], v[4], v[5],
        v[6], v[7], v[8], v[9]};
  return true;
}

// plan_run(spec, queries, keys, values, kv_cache, out) -> out, or None to
// defer: rpa.Plan.run on CPU torch tensors; spec is the Plan's tuple
// (rpa_plan pointer, act dtype, T, Hq, D, cache dtype, num_pages, Hkv,
// head_elements, update_kv_cache). queries, keys and values may be views
// whose token rows lie apart (rows_of), passed without a copy
// (rpa_plan_run_strided).
PyObject* plan_run(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  Planned p;
  if (nargs != 6 || !planned_of(args[0], &p)) {
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "rpa._torch_fast.plan_run: bad spec");
    return nullptr;
  }
  int64_t q_stride = 0, k_stride = 0, v_stride = 0;
  const at::Tensor* q = rows_of(args[1], &q_stride);
  const at::Tensor* cache = tensor_of(args[4], 3);
  const at::Tensor *k, *v;
  if (!q || rpa_code(q->scalar_type()) != p.act ||
      q->sizes() != at::IntArrayRef({p.num_tokens, p.num_q_heads, p.head_dim}) || !cache ||
      rpa_code(cache->scalar_type()) != p.cache_dtype ||
      cache->sizes() != at::IntArrayRef({p.num_pages, p.num_kv_heads, p.head_elements}) ||
      !keys_values(args[2], args[3], *q, p.update, &k, &v, &k_stride, &v_stride) ||
      (k && k->size(1) != p.num_kv_heads))
    Py_RETURN_NONE;
  return run_into(args[5], *q, [&](void* out_data, char* err, size_t len) {
    return rpa_plan_run_strided(p.plan, q->data_ptr(), q_stride, k ? k->data_ptr() : nullptr,
                                k_stride, v ? v->data_ptr() : nullptr, v_stride,
                                cache->data_ptr(), out_data, err, len);
  });
}

PyMethodDef methods[] = {
    {"attention", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&attention)),
     METH_FASTCALL, "rpa.ragged_paged_attention on CPU torch tensors, or None to defer."},
    {"plan_run", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&plan_run)),
     METH_FASTCALL, "rpa.Plan.run on CPU torch tensors, or None to defer."},
    {nullptr, nullptr, 0, nullptr}};

PyModuleDef module = {PyModuleDef_HEAD_INIT, "_torch_fast",
                      "rpa.ragged_paged_attention's path for CPU torch tensors; use rpa.",
                      -1, methods, nullptr, nullptr, nullptr, nullptr};

}  // namespace

PyMODINIT_FUNC PyInit__torch_fast() { return PyModule_Create(&module); }
