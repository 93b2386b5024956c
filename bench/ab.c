/* rpa-ab: two builds of librpa.so (or one build with different rpa_set_tuning
 * switches) timed on the same batch in one process, calls alternated, so that
 * a change is judged against what it replaces under the same machine
 * conditions. Absolute times on shared machines drift by 2x from minute to
 * minute (BENCHMARKS.md); the ratio of two builds timed in turn does not.
 *
 *   rpa-ab LIB_A LIB_B [--decodes N] [--decode-kv L] [--prefills N] [--q-len Q]
 *          [--cached C] [--page-size P] [--cache-dtype bf16|fp8_e4m3|int8]
 *          [--q-heads H] [--kv-heads H] [--head-dim D] [--threads T]
 *          [--rounds R] [--tune-a NAME=0|1]... [--tune-b NAME=0|1]...
 *
 * The batch (bf16 activations, causal, the fused K/V write on): N decodes at
 * kv_len L, then N prefills of Q new tokens after C cached ones; each sequence
 * has its own pages in a shuffled order. Prints each side's min and median
 * time, their ratios B/A, and the largest difference between the two outputs.
 * Plain C over the public ABI only: LIB_A and LIB_B may be any two builds. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "rpa/rpa.h"

typedef void (*default_options_fn)(rpa_options*, int32_t, rpa_dtype, int32_t);
typedef size_t (*cache_bytes_fn)(const rpa_cache_config*);
typedef rpa_status (*attention_fn)(const void*, const void*, const void*, void*,
                                   const rpa_cache_config*, const rpa_batch*, const rpa_options*,
                                   void*, char*, size_t);
typedef int (*set_tuning_fn)(const char*, int32_t);
typedef const char* (*isa_fn)(void);

enum { kMaxTunings = 8 };

typedef struct {
  char name[32];
  int32_t on;
} Tuning;

typedef struct {
  const char* path;
  void* handle;
  default_options_fn default_options;
  cache_bytes_fn cache_bytes;
  attention_fn attention;
  set_tuning_fn set_tuning;
  isa_fn isa;
  Tuning tunings[kMaxTunings];
  int num_tunings;
  uint8_t* cache;
  uint16_t* out;
  double* ms;
} Side;

static void fail(const char* what, const char* detail) {
  fprintf(stderr, "rpa-ab: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
  exit(1);
}

/* dlsym's object pointer into a function pointer without ISO C's complaint. */
static void resolve(Side* side, const char* name, void* fn, size_t fn_size) {
  void* p = dlsym(side->handle, name);
  if (!p) fail(side->path, dlerror());
  memcpy(fn, &p, fn_size);
}

static void load_side(Side* side, const char* path) {
  side->path = path;
  side->handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!side->handle) fail("dlopen", dlerror());
  resolve(side, "rpa_default_options", &side->default_options, sizeof side->default_options);
  resolve(side, "rpa_cache_bytes", &side->cache_bytes, sizeof side->cache_bytes);
  resolve(side, "rpa_ragged_paged_attention", &side->attention, sizeof side->attention);
  resolve(side, "rpa_set_tuning", &side->set_tuning, sizeof side->set_tuning);
  resolve(side, "rpa_isa", &side->isa, sizeof side->isa);
}

static void add_tuning(Side* side, const char* spec) {
  const char* eq = strchr(spec, '=');
  if (!eq || eq == spec || (size_t)(eq - spec) >= sizeof side->tunings[0].name ||
      (strcmp(eq + 1, "0") != 0 && strcmp(eq + 1, "1") != 0))
    fail("a tuning is NAME=0 or NAME=1", spec);
  if (side->num_tunings == kMaxTunings) fail("too many tunings", spec);
  Tuning* t = &side->tunings[side->num_tunings++];
  memcpy(t->name, spec, (size_t)(eq - spec));
  t->name[eq - spec] = '\0';
  t->on = eq[1] == '1';
}

/* Before each of its calls a side sets every switch either side names: its own
 * value, or on (the default) where only the other side names it. So the two
 * sides may be one loaded build, whose switches are process-wide. */
static void apply_tunings(const Side* self, const Side* other) {
  const Side* sides[2] = {self, other};
  for (int s = 0; s < 2; ++s)
    for (int i = 0; i < sides[s]->num_tunings; ++i) {
      const char* name = sides[s]->tunings[i].name;
      int32_t on = 1;
      for (int j = 0; j < self->num_tunings; ++j)
        if (strcmp(self->tunings[j].name, name) == 0) on = self->tunings[j].on;
      if (self->set_tuning(name, on) != 0) fail("unknown tuning", name);
    }
}

/* xorshift64*: the same inputs on every run and every machine. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t next_u32(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return (uint32_t)((rng_state * 0x2545f4914f6cdd1dull) >> 32);
}
static float uniform(float lo, float hi) {
  return lo + (hi - lo) * (float)(next_u32() >> 8) / 16777216.0f;
}

static uint16_t bf16_of(float x) {
  uint32_t u;
  memcpy(&u, &x, sizeof u);
  return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
static float float_of_bf16(uint16_t h) {
  const uint32_t u = (uint32_t)h << 16;
  float x;
  memcpy(&x, &u, sizeof x);
  return x;
}

/* The cache on huge pages where the kernel grants them, as rpa-bench and
 * README.md advise engines: random page reads then cost no TLB walk each. */
static size_t mapped_bytes(size_t bytes) {
  const size_t huge = (size_t)2 << 20;
  return (bytes + huge - 1) / huge * huge;
}
static uint8_t* alloc_cache(size_t bytes) {
  void* p = mmap(NULL, mapped_bytes(bytes), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                 -1, 0);
  if (p == MAP_FAILED) fail("mmap", "out of memory");
  madvise(p, mapped_bytes(bytes), MADV_HUGEPAGE);
  return p;
}

/* Small finite values of the cache's type; the 1-byte types avoid NaN codes. */
static void fill_cache(uint8_t* cache, size_t bytes, rpa_dtype dtype) {
  if (dtype == RPA_BF16) {
    for (size_t i = 0; i + 1 < bytes; i += 2) {
      const uint16_t h = bf16_of(uniform(-1.0f, 1.0f));
      memcpy(cache + i, &h, sizeof h);
    }
    return;
  }
  for (size_t i = 0; i < bytes; ++i) {
    uint8_t b = (uint8_t)next_u32();
    if (dtype == RPA_INT8) b = (uint8_t)(int8_t)((int)(next_u32() % 193) - 96);
    if (dtype == RPA_FP8_E4M3 && (b & 0x7f) == 0x7f) b ^= 1;
    cache[i] = b;
  }
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}
static int compare_doubles(const void* a, const void* b) {
  const double x = *(const double*)a, y = *(const double*)b;
  return (x > y) - (x < y);
}
static double median(double* x, int n) {
  qsort(x, (size_t)n, sizeof *x, compare_doubles);
  return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

static int int_arg(const char* flag, const char* value, int min) {
  char* end;
  const long v = strtol(value, &end, 10);
  if (*value == '\0' || *end != '\0' || v < min || v > (1 << 30))
    fail(flag, "not an integer in range");
  return (int)v;
}

int main(int argc, char** argv) {
  if (argc < 3 || argv[1][0] == '-' || argv[2][0] == '-') {
    fprintf(stderr, "usage: %s LIB_A LIB_B [options]: see the top of bench/ab.c\n", argv[0]);
    return 2;
  }
  Side sides[2];
  memset(sides, 0, sizeof sides);
  load_side(&sides[0], argv[1]);
  load_side(&sides[1], argv[2]);

  int num_decodes = 0, decode_kv = 2048, num_prefills = 0, q_len = 512, cached = 0;
  int page_size = 16, num_q_heads = 32, num_kv_heads = 8, head_dim = 128, threads = 2, rounds = 20;
  rpa_dtype cache_dtype = RPA_BF16;
  const char* dtype_name = "bf16";
  /* The integer options: flag, where it goes, its least value. */
  const struct {
    const char* flag;
    int* value;
    int min;
  } int_options[] = {
      {"--decodes", &num_decodes, 0},     {"--decode-kv", &decode_kv, 1},
      {"--prefills", &num_prefills, 0},   {"--q-len", &q_len, 1},
      {"--cached", &cached, 0},           {"--page-size", &page_size, 1},
      {"--q-heads", &num_q_heads, 1},     {"--kv-heads", &num_kv_heads, 1},
      {"--head-dim", &head_dim, 1},       {"--threads", &threads, 0},
      {"--rounds", &rounds, 1},
  };
  const size_t num_int_options = sizeof int_options / sizeof int_options[0];
  for (int i = 3; i < argc; i += 2) {
    const char* flag = argv[i];
    if (i + 1 >= argc) fail(flag, "needs a value");
    const char* value = argv[i + 1];
    size_t k = 0;
    while (k < num_int_options && strcmp(flag, int_options[k].flag) != 0) ++k;
    if (k < num_int_options) {
      *int_options[k].value = int_arg(flag, value, int_options[k].min);
    } else if (!strcmp(flag, "--tune-a")) {
      add_tuning(&sides[0], value);
    } else if (!strcmp(flag, "--tune-b")) {
      add_tuning(&sides[1], value);
    } else if (!strcmp(flag, "--cache-dtype")) {
      dtype_name = value;
      if (!strcmp(value, "bf16")) {
        cache_dtype = RPA_BF16;
      } else if (!strcmp(value, "fp8_e4m3")) {
        cache_dtype = RPA_FP8_E4M3;
      } else if (!strcmp(value, "int8")) {
        cache_dtype = RPA_INT8;
      } else {
        fail(flag, "bf16, fp8_e4m3 or int8");
      }
    } else {
      fail("unknown option", flag);
    }
  }
  const int num_seqs = num_decodes + num_prefills;
  if (num_seqs == 0) fail("empty batch", "give --decodes or --prefills");

  /* Sequences, each with its own pages; table entries past a sequence's last
   * page name page 0, which the rules ignore. */
  int32_t* kv_lens = malloc(sizeof(int32_t) * (size_t)num_seqs);
  int32_t* cu_q_lens = malloc(sizeof(int32_t) * (size_t)(num_seqs + 1));
  if (!kv_lens || !cu_q_lens) fail("malloc", "out of memory");
  int pages_per_seq = 1, num_pages = 0;
  cu_q_lens[0] = 0;
  for (int i = 0; i < num_seqs; ++i) {
    const int decode = i < num_decodes;
    kv_lens[i] = decode ? decode_kv : cached + q_len;
    cu_q_lens[i + 1] = cu_q_lens[i] + (decode ? 1 : q_len);
    const int pages = (kv_lens[i] + page_size - 1) / page_size;
    if (pages > pages_per_seq) pages_per_seq = pages;
    num_pages += pages;
  }
  int32_t* order = malloc(sizeof(int32_t) * (size_t)num_pages);
  int32_t* page_indices = calloc((size_t)num_seqs * (size_t)pages_per_seq, sizeof(int32_t));
  if (!order || !page_indices) fail("malloc", "out of memory");
  for (int i = 0; i < num_pages; ++i) order[i] = i;
  for (int i = num_pages - 1; i > 0; --i) {
    const int j = (int)(next_u32() % (uint32_t)(i + 1));
    const int32_t t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  for (int i = 0, next = 0; i < num_seqs; ++i)
    for (int p = 0; p * page_size < kv_lens[i]; ++p)
      page_indices[(size_t)i * (size_t)pages_per_seq + (size_t)p] = order[next++];
  const int32_t distribution[3] = {num_decodes, num_seqs, num_seqs};
  const int num_tokens = cu_q_lens[num_seqs];
  const rpa_cache_config config = {num_kv_heads, head_dim, page_size, num_pages, cache_dtype};
  const rpa_batch batch = {kv_lens,  page_indices,  cu_q_lens, distribution,
                           num_seqs, pages_per_seq, num_tokens};

  const size_t q_elems = (size_t)num_tokens * (size_t)num_q_heads * (size_t)head_dim;
  const size_t kv_elems = (size_t)num_tokens * (size_t)num_kv_heads * (size_t)head_dim;
  uint16_t* queries = malloc(q_elems * 2);
  uint16_t* keys = malloc(kv_elems * 2);
  uint16_t* values = malloc(kv_elems * 2);
  if (!queries || !keys || !values) fail("malloc", "out of memory");
  for (size_t i = 0; i < q_elems; ++i) queries[i] = bf16_of(uniform(-2.0f, 2.0f));
  for (size_t i = 0; i < kv_elems; ++i) keys[i] = bf16_of(uniform(-2.0f, 2.0f));
  for (size_t i = 0; i < kv_elems; ++i) values[i] = bf16_of(uniform(-2.0f, 2.0f));

  const size_t cache_bytes = sides[0].cache_bytes(&config);
  if (cache_bytes == 0 || sides[1].cache_bytes(&config) != cache_bytes)
    fail("rpa_cache_bytes", "0, or not the same in both builds");
  rpa_options opts[2];
  for (int s = 0; s < 2; ++s) {
    Side* side = &sides[s];
    side->default_options(&opts[s], num_q_heads, RPA_BF16, head_dim);
    opts[s].num_threads = threads;
    /* int8 fill values are at most 96 in magnitude: 1/32 keeps K and V near 1. */
    if (cache_dtype == RPA_INT8) opts[s].k_scale = opts[s].v_scale = 1.0f / 32;
    side->cache = alloc_cache(cache_bytes);
    side->out = calloc(q_elems, 2);
    side->ms = malloc(sizeof(double) * (size_t)rounds);
    if (!side->out || !side->ms) fail("malloc", "out of memory");
  }
  fill_cache(sides[0].cache, cache_bytes, cache_dtype);
  memcpy(sides[1].cache, sides[0].cache, cache_bytes);

  printf("A %s (%s) | B %s (%s)\n", sides[0].path, sides[0].isa(), sides[1].path, sides[1].isa());
  printf(
      "%d decodes at kv %d + %d prefills of %d after %d | Hq %d Hkv %d D %d page %d %s | "
      "%.1f MiB cache | %d threads, %d rounds\n",
      num_decodes, decode_kv, num_prefills, q_len, cached, num_q_heads, num_kv_heads, head_dim,
      page_size, dtype_name, (double)cache_bytes / (1 << 20), threads, rounds);

  char err[512];
  for (int call = 0; call < 2 + 2 * rounds; ++call) {
    /* Two warm-up calls, then rounds of A then B, or B then A, in turn. */
    const int round = call / 2 - 1;
    const int s = round >= 0 && round % 2 ? 1 - call % 2 : call % 2;
    Side* side = &sides[s];
    apply_tunings(side, &sides[1 - s]);
    const double t0 = now_ms();
    const rpa_status status = side->attention(queries, keys, values, side->cache, &config, &batch,
                                              &opts[s], side->out, err, sizeof err);
    const double ms = now_ms() - t0;
    if (status != RPA_OK) fail(side->path, err);
    if (round >= 0) side->ms[round] = ms;
  }

  double min_ms[2], median_ms[2];
  for (int s = 0; s < 2; ++s) {
    median_ms[s] = median(sides[s].ms, rounds);
    min_ms[s] = sides[s].ms[0]; /* median() sorted them */
  }
  printf(
      "A min %.3f med %.3f ms | B min %.3f med %.3f ms | B/A min %.3f med %.3f\n",
      min_ms[0], median_ms[0], min_ms[1], median_ms[1], min_ms[1] / min_ms[0],
      median_ms[1] / median_ms[0]);
  double max_diff = 0;
  for (size_t i = 0; i < q_elems; ++i) {
    const double d =
        fabs((double)float_of_bf16(sides[0].out[i]) - (double)float_of_bf16(sides[1].out[i]));
    if (isnan(d)) {
      max_diff = d;
      break;
    }
    if (d > max_diff) max_diff = d;
  }
  printf("max |A - B| over out = %g\n", max_diff);

  for (int s = 0; s < 2; ++s) {
    munmap(sides[s].cache, mapped_bytes(cache_bytes));
    free(sides[s].out);
    free(sides[s].ms);
  }
  free(queries);
  free(keys);
  free(values);
  free(order);
  free(page_indices);
  free(kv_lens);
  free(cu_q_lens);
  return 0;
}
