// Read after write (API.md 1.1): a sequence may read a page that another
// sequence writes new tokens into in the same call, and sees the new keys and
// values, as if every new token of the batch were written before any
// attention. An engine's prefix cache hands out such pages (vLLM caches a
// block as soon as the step that fills it is scheduled).
//
// Each scenario points entry 0 of its readers (read only: the readers' first
// new token lies past it) at the page the writer's last new token goes to, and
// runs every cache dtype through one call and a 2-layer plan on 1 and 2
// threads against the float64 reference, which reads the cache the call left.
// On one thread the costlier reader runs first, so a decode writer's fused
// write would come too late without the plan writing it first.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "helpers.hpp"

namespace {

using rt::SeqSpec;

struct Scenario {
  const char* name;
  std::vector<SeqSpec> seqs;
  int decode_end;
  int prefill_end;
  int writer;
  std::vector<int> readers;
  bool reader_lists_twice;  // the first reader also maps entry 1 to the page
};

std::vector<Scenario> scenarios() {
  return {
      {"decode writer after its readers", {{1, 90}, {1, 37}, {8, 48}}, 2, 3, 1, {0, 2}, false},
      {"decode writer before its reader", {{1, 37}, {1, 90}}, 2, 2, 0, {1}, false},
      {"prefill writer, decode and mixed readers", {{1, 90}, {12, 44}, {5, 70}}, 1, 2, 1, {0, 2},
       true},
      {"mixed writer, prefill reader", {{9, 50}, {3, 41}}, 0, 1, 1, {0}, false},
      {"long decodes, split over threads", {{1, 1500}, {1, 2100}, {1, 700}}, 3, 3, 0, {1, 2},
       false},
  };
}

std::vector<rt::Combo> every_cache_dtype() {
  return {{RPA_F32, RPA_F32},      {RPA_BF16, RPA_BF16}, {RPA_F16, RPA_F16},
          {RPA_FP8_E4M3, RPA_BF16}, {RPA_FP8_E5M2, RPA_BF16}, {RPA_INT8, RPA_BF16},
          {RPA_INT8, RPA_F16}};
}

TEST(ReadAfterWrite, ReadersSeeTheNewTokens) {
  for (const Scenario& sc : scenarios()) {
    for (int page_size : {1, 16}) {
      for (int threads : {1, 2}) {
        rt::Shape s = rt::shape(2, 4, 64, page_size, sc.seqs, sc.decode_end, sc.prefill_end);
        const std::string what = std::string(sc.name) + ", page " + std::to_string(page_size) +
                                 ", " + std::to_string(threads) + " thread(s)";
        rt::run_shape(s, what, [&](rt::Case& c) {
          c.opts.num_threads = threads;
          const int w = sc.writer;
          const int32_t page = c.page_of(w, c.kv_lens[w] - 1);
          for (int r : sc.readers) {
            ASSERT_GE(c.kv_lens[r] - c.q_len(r), page_size * 2) << what << ": entry 0 is read only";
            c.page_indices[size_t(r) * c.pages_per_seq] = page;
          }
          if (sc.reader_lists_twice) c.page_indices[size_t(sc.readers[0]) * c.pages_per_seq + 1] = page;
        }, every_cache_dtype());
      }
    }
  }
}

// Sharing stays refused where it is not well defined: a second writer of the
// page, or a writer listing its page twice; the message names the field and
// both entries or sequences, and nothing is written.
TEST(ReadAfterWrite, SecondWriterAndDoubleListingAreRefused) {
  rt::Rng rng(20);
  for (int variant = 0; variant < 2; ++variant) {
    rt::Shape s = rt::shape(2, 2, 16, 4, {{1, 37}, {3, 19}, {2, 30}}, 1, 3);
    s.cache = RPA_BF16;
    s.act = RPA_BF16;
    rt::Case c = rt::build_case(s, rng);
    const int32_t page = c.page_of(0, c.kv_lens[0] - 1);
    if (variant == 0) {
      c.page_indices[size_t(1) * c.pages_per_seq + 4] = page;  // seq 1 writes positions 16..18
    } else {
      c.page_indices[0] = page;  // seq 0 reads through entry 0 the page it writes through entry 9
    }
    std::string msg;
    EXPECT_TRUE(rt::refused_untouched(c, rng, RPA_ERR_INVALID_ARGUMENT, &msg)) << variant;
    const std::string want = variant == 0 ? "also written by sequence" : "listed twice";
    EXPECT_NE(msg.find(want), std::string::npos) << msg;
    EXPECT_NE(msg.find("page_indices"), std::string::npos) << msg;
  }
}

}  // namespace
