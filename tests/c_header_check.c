/* include/rpa/rpa.h must be plain C99: this file is compiled with -std=c99
   -pedantic -Werror and linked against librpa. */
#include "rpa/rpa.h"

#include <stdio.h>
#include <string.h>

int main(void) {
  rpa_cache_config c;
  rpa_options o;
  rpa_batch b;
  const char* v = rpa_version();
  memset(&b, 0, sizeof b);
  c.num_kv_heads = 2;
  c.head_dim = 64;
  c.page_size = 16;
  c.num_pages = 4;
  c.dtype = RPA_BF16;
  rpa_default_options(&o, 8, RPA_BF16, 64);
  if (v == NULL || strlen(v) == 0) return 1;
  if (rpa_cache_bytes(&c) == 0) return 2;
  if (o.num_q_heads != 8 || o.causal != 1) return 3;
  printf("rpa %s from C99, isa %s, %lu cache bytes\n", v, rpa_isa(), (unsigned long)rpa_cache_bytes(&c));
  return b.max_num_seqs;
}
