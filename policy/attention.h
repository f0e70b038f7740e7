// Attention's softmax and weighted sum on the naive path (training and prefill), shared
// by MLA and GQA (policy/model.h): the masked fp32 softmax, and attention by blocks of
// query positions where the mask hides the later keys (docs/model.md, "MLA").
//
// Thread-safety: pure functions.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace r1kit::policy {

// Query positions per block of masked_attention.
inline constexpr int64_t kAttnRowBlock = 128;

// Softmax over the last dim in fp32 of the scores that `mask` (bool, broadcastable to
// scores; true = may attend; undefined = all) lets through, -inf elsewhere; returned in
// `like`'s dtype. The mask enters as an fp32 bias of 0 or -inf built at the mask's size
// (heads times smaller than the scores), so the scores take one pass, the add that also
// widens them to fp32, where a masked copy and then a cast would take two, forward and
// backward alike.
torch::Tensor masked_softmax_f32(const torch::Tensor& scores, const torch::Tensor& mask,
                                 const torch::Tensor& like);

// For each block of kAttnRowBlock query positions, one past the last key that `mask`
// ([..., T, S], true = may attend) lets any row of the block see (at least 1). Empty
// when no block would stop before S: no mask, a mask without a query axis, fewer than two
// blocks.
std::vector<int64_t> key_extents(const torch::Tensor& mask, int64_t T, int64_t S);

// softmax(q kT, masked) v for q [B, H, T * g, d] (scaled; row t * g + j is query j of
// position t, g > 1 for grouped-query attention's heads per key), kT [B, H, d, S] and
// v [B, H, S, dv]: [B, H, T * g, dv], the softmax in fp32 (masked_softmax_f32) under
// mask [..., T, S] for every row of a position. Where the mask hides the later keys from
// whole blocks of positions (a causal mask: about half of the scores), each block of
// kAttnRowBlock positions takes only the keys up to its extent (key_extents): its scores,
// softmax and weighted sum, with autograd through the same ops. The keys past a block's
// extent have probability exactly 0 for every row of it, so the result is the one over
// all S keys up to the summation order of the products.
torch::Tensor masked_attention(const torch::Tensor& q, const torch::Tensor& kT,
                               const torch::Tensor& v, const torch::Tensor& mask, int64_t g = 1);

}  // namespace r1kit::policy
