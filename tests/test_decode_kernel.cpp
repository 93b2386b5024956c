// The decode kernel's blocks against the float64 reference: a block is whole
// pages of at least kDecodeBlockTokens (64) positions, so at small page sizes
// one softmax step and one pass of the P.V accumulators span many pages. The
// edges: kv_len on and around block and page boundaries, page sizes that do
// not divide the block, pages of whole 4- or 2-token runs smaller than a
// score step (2, 4, 6, 12, 20: its steps gather runs across pages), sliding
// windows and split-KV items starting inside a block (and inside a page),
// GQA 1..8, soft cap and sinks.
#include <gtest/gtest.h>

#include <string>

#include "helpers.hpp"

namespace {

using rt::Case;
using rt::run_shape;
using rt::shape;

TEST(DecodeKernel, KvLensAroundBlockEdges) {
  for (int ps : {1, 2, 3, 4, 5, 6, 12, 16, 20, 48}) {
    run_shape(shape(2, 4, 40, ps, {{1, 1}, {1, 63}, {1, 64}, {1, 65}, {1, 128}, {1, 129}, {1, 200}}, 7, 7),
              "decode blocks, page " + std::to_string(ps), nullptr,
              {{RPA_F32, RPA_F32}, {RPA_BF16, RPA_BF16}, {RPA_FP8_E4M3, RPA_BF16}, {RPA_INT8, RPA_F16}});
  }
}

TEST(DecodeKernel, SlidingWindowsStartingInsideABlock) {
  for (int ps : {3, 6, 12, 16}) {
    for (int window : {1, 5, 37, 64, 100}) {
      run_shape(shape(2, 2, 24, ps, {{1, 300}, {1, 70}}, 2, 2),
                "window " + std::to_string(window) + ", page " + std::to_string(ps),
                [&](Case& c) { c.opts.sliding_window = window; });
    }
  }
}

TEST(DecodeKernel, SplitKvItemsStartingInsideABlock) {
  // One long sequence over 3 threads: its split-KV items start wherever the
  // planner cuts, in general neither on a block nor on a page edge.
  for (int ps : {1, 5, 12, 16, 128}) {
    run_shape(shape(1, 4, 32, ps, {{1, 3001}}, 1, 1), "split-KV, page " + std::to_string(ps),
              [](Case& c) { c.opts.num_threads = 3; });
  }
}

TEST(DecodeKernel, GqaGroupsOneToEight) {
  for (int g = 1; g <= 8; ++g) {
    run_shape(shape(2, g, 32, 4, {{1, 90}, {1, 33}}, 2, 2), "gqa " + std::to_string(g), nullptr,
              {{RPA_BF16, RPA_BF16}, {RPA_FP8_E5M2, RPA_F32}});
  }
}

TEST(DecodeKernel, SoftCapAndSinks) {
  run_shape(shape(2, 4, 64, 8, {{1, 150}, {1, 20}}, 2, 2), "soft cap and sinks", [](Case& c) {
    c.opts.soft_cap = 5.0f;
    c.sinks.assign(size_t(c.hq()), 0.5f);
    c.sinks[1] = -2.0f;
  });
}

}  // namespace
