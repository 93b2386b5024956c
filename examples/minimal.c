/* The smallest complete use of rpa from C: one serving step over a batch of two
 * sequences, a decode and a prefill, in f32 with 4-token pages.
 *
 *   sequence 0: decode.  4 tokens already cached (page 2), 1 new token -> kv_len 5
 *   sequence 1: prefill. 3 new tokens, nothing cached                   -> kv_len 3
 *
 * The new tokens' keys and values are written into the cache by the call itself;
 * only sequence 0's 4 earlier tokens are put there beforehand with rpa_cache_write. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <rpa/rpa.h>

enum { HQ = 2, HKV = 1, D = 4, PAGE = 4, PAGES = 4, T = 4 };

/* Deterministic "random" values in [-0.5, 0.5). */
static float val(int i) { return (float)((i * 37 + 11) % 23) / 23.0f - 0.5f; }

int main(void) {
  char err[256];
  rpa_cache_config cfg = {HKV, D, PAGE, PAGES, RPA_F32};
  void* cache = malloc(rpa_cache_bytes(&cfg)); /* the layout is the library's business */
  if (cache == NULL) return 1;

  /* Sequence 0's page table is {2, 0}; its first 4 tokens fill page 2. */
  for (int t = 0; t < 4; ++t) {
    float k[HKV * D], v[HKV * D];
    for (int i = 0; i < HKV * D; ++i) {
      k[i] = val(100 + t * 8 + i);
      v[i] = val(200 + t * 8 + i);
    }
    if (rpa_cache_write(cache, &cfg, 2, t, k, v, RPA_F32, 0.0f, 0.0f, err, sizeof err) != RPA_OK) {
      fprintf(stderr, "rpa_cache_write: %s\n", err);
      return 1;
    }
  }

  /* The batch: decodes first, then prefills (distribution = decode_end,
     prefill_end, num_seqs). Row 0 is the decode's token, rows 1..3 the prefill's. */
  const int32_t kv_lens[2] = {5, 3};
  const int32_t page_indices[2 * 2] = {2, 0, /* sequence 1: */ 1, 3};
  const int32_t cu_q_lens[3] = {0, 1, 4};
  const int32_t distribution[3] = {1, 2, 2};
  rpa_batch batch = {kv_lens, page_indices, cu_q_lens, distribution, 2, 2, T};

  float q[T * HQ * D], k[T * HKV * D], v[T * HKV * D], out[T * HQ * D];
  for (int i = 0; i < T * HQ * D; ++i) q[i] = val(i);
  for (int i = 0; i < T * HKV * D; ++i) {
    k[i] = val(300 + i);
    v[i] = val(400 + i);
  }

  rpa_options opts;
  rpa_default_options(&opts, HQ, RPA_F32, D); /* causal, sm_scale 1/sqrt(D), update cache */
  if (rpa_ragged_paged_attention(q, k, v, cache, &cfg, &batch, &opts, out, err, sizeof err) !=
      RPA_OK) {
    fprintf(stderr, "rpa_ragged_paged_attention: %s\n", err);
    return 1;
  }

  printf("rpa %s (%s)\n", rpa_version(), rpa_isa());
  for (int r = 0; r < T; ++r) {
    for (int h = 0; h < HQ; ++h) {
      printf("out[row %d, head %d] =", r, h);
      for (int d = 0; d < D; ++d) printf(" %+.5f", out[(r * HQ + h) * D + d]);
      printf("\n");
    }
  }

  /* Row 1 is the prefill's first token: causally it sees only itself, so its
     output is its own value vector, for every head. */
  for (int h = 0; h < HQ; ++h)
    for (int d = 0; d < D; ++d)
      if (fabsf(out[(1 * HQ + h) * D + d] - v[1 * HKV * D + d]) > 1e-6f) {
        fprintf(stderr, "unexpected output at row 1, head %d, dim %d\n", h, d);
        return 1;
      }
  free(cache);
  return 0;
}
