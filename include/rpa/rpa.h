/* rpa: Ragged Paged Attention for CPUs. The public C ABI (version 1.1).
 *
 * One call per layer per serving step covers a ragged batch of decode, prefill
 * and chunked-prefill sequences over a paged KV cache, writing the new tokens'
 * keys and values into their pages before attending. The contract is spelled
 * out in API.md; the cache layout is in README.md.
 *
 * Version 1.1 keeps every symbol, struct and status of version 1 as it was;
 * it lets a sequence read a page another sequence writes in the same call
 * (see rpa_ragged_paged_attention) and adds the batched token I/O below.
 * New capability comes as new symbols; a struct that may grow begins with its
 * own size (struct_size), so a library can tell which version filled it in.
 *
 * This header is plain C99 and is compiled as such by a test. */
#ifndef RPA_RPA_H_
#define RPA_RPA_H_

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#define RPA_API
#else
#define RPA_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef enum rpa_dtype {
  RPA_F32 = 0,
  RPA_BF16 = 1,
  RPA_F16 = 2,
  RPA_FP8_E4M3 = 3, /* OCP e4m3fn: no inf, max 448 */
  RPA_FP8_E5M2 = 4, /* OCP e5m2, max 57344 */
  RPA_INT8 = 5      /* symmetric, range [-127, 127] */
} rpa_dtype;

typedef enum rpa_status {
  RPA_OK = 0,
  RPA_ERR_INVALID_ARGUMENT = 1, /* the inputs break a rule */
  RPA_ERR_UNSUPPORTED = 2,      /* valid, but this build cannot do it */
  RPA_ERR_OUT_OF_MEMORY = 3,
  RPA_ERR_INTERNAL = 4
} rpa_status;

typedef struct rpa_cache_config {
  int32_t num_kv_heads; /* Hkv >= 1 */
  int32_t head_dim;     /* D, 1..512 */
  int32_t page_size;    /* tokens per page, 1..1024 */
  int32_t num_pages;    /* pages in the cache, >= 1 */
  rpa_dtype dtype;      /* element type stored in the cache: any rpa_dtype */
} rpa_cache_config;

typedef struct rpa_batch {
  const int32_t* kv_lens;      /* [max_num_seqs] */
  const int32_t* page_indices; /* [max_num_seqs * pages_per_seq] */
  const int32_t* cu_q_lens;    /* [max_num_seqs + 1] */
  const int32_t* distribution; /* [3] = (decode_end, prefill_end, num_seqs) */
  int32_t max_num_seqs;
  int32_t pages_per_seq;
  int32_t max_num_tokens; /* T: rows of queries/keys/values/out */
} rpa_batch;

typedef struct rpa_options {
  int32_t num_q_heads;     /* Hq, a multiple of num_kv_heads */
  rpa_dtype act_dtype;     /* queries, keys, values and out: F32, BF16 or F16 */
  float sm_scale;          /* default 1/sqrt(head_dim) */
  int32_t causal;          /* default 1 */
  int32_t update_kv_cache; /* default 1: write the new keys/values into the cache */
  int32_t sliding_window;  /* default 0 = none */
  float soft_cap;          /* default 0 = none */
  float q_scale;           /* default 0 = none */
  float k_scale;           /* default 0 = none (treated as 1) */
  float v_scale;           /* default 0 = none (treated as 1) */
  const float* sinks;      /* default NULL, else [num_q_heads] sink logits */
  int32_t num_threads;     /* default 0 = library default */
} rpa_options;

/* The ABI this header declares, and (rpa_abi_version) the one the loaded
   library implements, as major * 100 + minor. An addition of version 1.1:
   a library without the symbol implements version 1.0. */
#define RPA_ABI_VERSION_MAJOR 1
#define RPA_ABI_VERSION_MINOR 1
RPA_API int32_t rpa_abi_version(void);

/* The library version, e.g. "0.1.0". */
RPA_API const char* rpa_version(void);
/* The kernel path chosen on this CPU (or forced by RPA_ISA), e.g. "avx512_bf16". */
RPA_API const char* rpa_isa(void);
/* 1 when this build and CPU can run the named kernel path ("scalar", "avx2",
   "avx512", "avx512_bf16", "amx"), else 0. An addition to ABI version 1. */
RPA_API int rpa_isa_available(const char* isa);
RPA_API void rpa_default_options(rpa_options* o, int32_t num_q_heads, rpa_dtype act_dtype,
                                 int32_t head_dim);

/* Bytes of a cache with this config; 0 when c is invalid. */
RPA_API size_t rpa_cache_bytes(const rpa_cache_config* c);

/* One token's keys and values for all kv heads, as [num_kv_heads, head_dim]
   arrays of src/dst dtype (F32, BF16 or F16), at (page, slot). Scales are the
   same k_scale/v_scale as in rpa_options (0 = 1). */
RPA_API rpa_status rpa_cache_write(void* cache, const rpa_cache_config* c, int32_t page,
                                   int32_t slot, const void* k, const void* v,
                                   rpa_dtype src_dtype, float k_scale, float v_scale, char* err,
                                   size_t err_len);
RPA_API rpa_status rpa_cache_read(const void* cache, const rpa_cache_config* c, int32_t page,
                                  int32_t slot, void* k, void* v, rpa_dtype dst_dtype,
                                  float k_scale, float v_scale, char* err, size_t err_len);

/* Batched token I/O (version 1.1): many tokens' keys and values, all kv heads,
   addressed as vLLM's slot_mapping addresses them, for engines that update the
   cache apart from attention (vLLM's KV update, KV connectors, offloading,
   prefix-cache transfer). Token i's rows are k + i * k_stride and
   v + i * v_stride, each [num_kv_heads, head_dim] of `dtype`. */
typedef struct rpa_token_batch {
  size_t struct_size;          /* sizeof(rpa_token_batch) */
  int32_t num_tokens;          /* N >= 0 */
  const int64_t* slot_mapping; /* [N]: page * page_size + slot in page, or -1 = skip */
  rpa_dtype dtype;             /* of k and v: F32, BF16 or F16 */
  int64_t k_stride;            /* elements between tokens' k rows, 0 = num_kv_heads * head_dim */
  int64_t v_stride;            /* likewise for v */
  float k_scale;               /* as in rpa_options: 0 = none (treated as 1) */
  float v_scale;
  int32_t num_threads;         /* 0 = library default, as in rpa_options */
} rpa_token_batch;

/* Writes every token whose slot is not -1, quantized exactly as an attention
   call's update (round to nearest even, saturation, k/v scales). The whole
   batch is checked first: a slot outside [-1, num_pages * page_size), two
   tokens for one slot, a NULL pointer or a stride shorter than a row returns
   RPA_ERR_INVALID_ARGUMENT naming the field (and the token index), with
   nothing written. A struct_size other than sizeof(rpa_token_batch) of this
   version returns RPA_ERR_UNSUPPORTED. */
RPA_API rpa_status rpa_cache_write_tokens(void* cache, const rpa_cache_config* c,
                                          const rpa_token_batch* tokens, const void* k,
                                          const void* v, char* err, size_t err_len);
/* Reads the tokens at their slots into k and v (rows of skipped tokens are
   left as they are); a slot may be read more than once. The same checks,
   but for duplicates. */
RPA_API rpa_status rpa_cache_read_tokens(const void* cache, const rpa_cache_config* c,
                                         const rpa_token_batch* tokens, void* k, void* v,
                                         char* err, size_t err_len);

/* Developer switches for ablation studies (rpa-bench --ablate) and tests, not
   for production: "decode_kernel", "fused_update", "prefetch", "split_kv",
   "prefill_kernel", "pair_tiles", "layout_at_write", each on (1, the default)
   or off (0). Process-wide; a plan reads them when it is made. With
   "layout_at_write" off, rpa_cache_write, rpa_cache_read and attention calls
   use token rows instead of the documented cache layout (README.md), for bf16
   prefill batches only. Returns 0, or -1 for an unknown name. An addition to
   ABI version 1. */
RPA_API int rpa_set_tuning(const char* name, int32_t on);

/* Developer statistics (rpa-bench --verbose): how busy each thread was during
   the attention phase of the last successful call made from the calling host
   thread, as fractions of that phase's wall time. Writes up to max_threads
   values to busy (thread 0 is the calling thread) and returns how many threads
   the call used (0 before any call). An addition to ABI version 1. */
RPA_API int32_t rpa_last_call_busy(double* busy, int32_t max_threads);

/* One call: validate, then write the new K/V into the cache and attend.
   A batch that keeps every rule but has a kv_len, or cu_q_lens[num_seqs],
   above 2^30 returns RPA_ERR_UNSUPPORTED, also before anything is written.
   Version 1.1: a page that receives new tokens has one writer, which lists it
   once, but other sequences may read it (an engine's prefix cache hands out
   such pages); the call behaves as if every new token were written before
   any attention, so they see the new keys and values. */
RPA_API rpa_status rpa_ragged_paged_attention(
    const void* queries, /* [T, Hq, D] act_dtype */
    const void* keys,    /* [T, Hkv, D] act_dtype; may be NULL when update_kv_cache == 0 */
    const void* values,  /* [T, Hkv, D] act_dtype; likewise */
    void* kv_cache, const rpa_cache_config* cache, const rpa_batch* batch,
    const rpa_options* opts, void* out, /* [T, Hq, D] act_dtype */
    char* err, size_t err_len);

/* The same split in two, for engines that run one batch through many layers:
   validation and work planning happen once in rpa_plan_create; rpa_plan_run
   may then be called once per layer (each layer with its own cache buffer of
   the same config). The plan copies what it needs from batch and opts. */
typedef struct rpa_plan rpa_plan;
RPA_API rpa_plan* rpa_plan_create(const rpa_cache_config* cache, const rpa_batch* batch,
                                  const rpa_options* opts, rpa_status* status, char* err,
                                  size_t err_len);
RPA_API rpa_status rpa_plan_run(const rpa_plan* plan, const void* queries, const void* keys,
                                const void* values, void* kv_cache, void* out, char* err,
                                size_t err_len);
RPA_API void rpa_plan_destroy(rpa_plan* plan);

/* rpa_plan_run on token rows that are not packed: token i's query row is
   queries + i * q_stride, its key and value rows keys + i * k_stride and
   values + i * v_stride, in elements of act_dtype (each row [Hq, D] or
   [Hkv, D] contiguous). A stride of 0 means packed; any other must be at
   least a row and at most 2^40, or the call returns RPA_ERR_INVALID_ARGUMENT
   naming it and writes nothing. So q, k and v may be views into a fused qkv
   projection, [T, (Hq + 2 Hkv) * D], with no copy. out stays packed. An
   extension of this library beyond contract 1.1 (rpa_abi_version() is
   unchanged). */
RPA_API rpa_status rpa_plan_run_strided(const rpa_plan* plan, const void* queries,
                                        int64_t q_stride, const void* keys, int64_t k_stride,
                                        const void* values, int64_t v_stride, void* kv_cache,
                                        void* out, char* err, size_t err_len);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* RPA_RPA_H_ */
