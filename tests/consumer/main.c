/* Calls the installed library through the installed header: the ABI version
   and one decode, checked against its one visible key's value. */
#include <rpa/rpa.h>
#include <stdio.h>
#include <stdlib.h>

int main(void) {
  if (rpa_abi_version() != 101) return 1;
  rpa_cache_config cfg = {1, 4, 4, 1, RPA_F32};
  void* cache = calloc(1, rpa_cache_bytes(&cfg));
  const float q[4] = {1, 0, 0, 0}, k[4] = {1, 2, 3, 4}, v[4] = {5, 6, 7, 8};
  float out[4] = {0};
  const int32_t kv_lens[1] = {1}, pages[1] = {0}, cu[2] = {0, 1}, dist[3] = {1, 1, 1};
  rpa_batch batch = {kv_lens, pages, cu, dist, 1, 1, 1};
  rpa_options opts;
  rpa_default_options(&opts, 1, RPA_F32, 4);
  char err[256];
  if (rpa_ragged_paged_attention(q, k, v, cache, &cfg, &batch, &opts, out, err, sizeof err) != RPA_OK) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  free(cache);
  printf("rpa %s: out = %g %g %g %g\n", rpa_version(), out[0], out[1], out[2], out[3]);
  return out[0] == 5 && out[3] == 8 ? 0 : 1;
}
