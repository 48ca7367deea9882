// Fused CPU kernels for fitting the dynamics models (float32).
//
// PyTorch's eager CPU path runs a GRU cell, a residual block or the Gaussian NLL as a chain of small
// elementwise ops, each a separate pass over a (batch, width) buffer with its own thread fork. At the
// sizes of this project (256 x 200) those passes cost as much as the matrix products. Each kernel here
// does one pass per cell step, block row or layer; matrix products still go to ATen (MKL / oneDNN).
//
// Built on first use by admpo_cli.kernels (torch.utils.cpp_extension, -O3 -march=native); without a
// compiler the PyTorch path in models/gru.py, models/head.py, models/nll.py and models/ensemble.py runs instead, and
// tests/test_kernels.py checks both against autograd and each other.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

// Helpers called inside vectorised loops must be inlined, or the loop calls them one lane at a time.
#define ALWAYS_INLINE inline __attribute__((always_inline))

namespace {

// exp to ~2 ulp on [-80, 80] and clamped outside, inline so loops over it vectorise (Cephes' expf
// polynomial). The clamp keeps exp and 1 / (1 + exp) clear of denormals, which are ~100x slower on x86;
// sigmoid and tanh are saturated to float precision well inside it.
ALWAYS_INLINE float fast_exp(float x) {
  x = x < -80.0f ? -80.0f : (x > 80.0f ? 80.0f : x);
  const float n = std::floor(x * 1.44269504088896341f + 0.5f);
  float r = std::fma(n, -0.693359375f, x);
  r = std::fma(n, 2.12194440e-4f, r);
  float p = 1.9875691500e-4f;
  p = std::fma(p, r, 1.3981999507e-3f);
  p = std::fma(p, r, 8.3334519073e-3f);
  p = std::fma(p, r, 4.1665795894e-2f);
  p = std::fma(p, r, 1.6666665459e-1f);
  p = std::fma(p, r, 5.0000001201e-1f);
  const float e = std::fma(p, r * r, r) + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return e * scale;
}

// lowbias32, as models.head._mix32: the dropout masks are a hash of (block key, entry index), so the
// backward recomputes them instead of reading a stored mask
ALWAYS_INLINE uint32_t mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7FEB352DU;
  x ^= x >> 15;
  x *= 0x846CA68BU;
  return x ^ (x >> 16);
}

// 0 or 1/(1-p) for entry i of the block with this key; thr = round(p * 2^24)
ALWAYS_INLINE float dropout_scale(uint32_t i, uint32_t key, uint32_t thr, float keep_scale) {
  return (mix32(i ^ key) >> 8) >= thr ? keep_scale : 0.0f;
}

ALWAYS_INLINE float sigmoid(float x) { return 1.0f / (1.0f + fast_exp(-x)); }

// g * d silu(u) / du, from u and sigmoid(u)
ALWAYS_INLINE float silu_grad(float g, float u, float sg) { return g * sg * (1.0f + u * (1.0f - sg)); }

// 1 - 2 / (e^{2x} + 1): saturates to +-1 without overflow
ALWAYS_INLINE float tanh_(float x) { return 1.0f - 2.0f / (fast_exp(2.0f * x) + 1.0f); }

// log(1 + e) for e in [0, 1] to ~1e-7 (Cephes' logf polynomial after halving arguments above sqrt 2)
ALWAYS_INLINE float log1p_unit(float e) {
  float y = 1.0f + e;
  const bool big = y > 1.41421356f;
  y = big ? 0.5f * y : y;
  const float x = y - 1.0f;
  const float z = x * x;
  float p = 7.0376836292e-2f;
  p = std::fma(p, x, -1.1514610310e-1f);
  p = std::fma(p, x, 1.1676998740e-1f);
  p = std::fma(p, x, -1.2420140846e-1f);
  p = std::fma(p, x, 1.4249322787e-1f);
  p = std::fma(p, x, -1.6668057665e-1f);
  p = std::fma(p, x, 2.0000714765e-1f);
  p = std::fma(p, x, -2.4999993993e-1f);
  p = std::fma(p, x, 3.3333331174e-1f);
  return x + (x * z * p - 0.5f * z) + (big ? 0.69314718056f : 0.0f);
}

// log(1 + e^x) without overflow
ALWAYS_INLINE float softplus(float x) { return (x > 0.0f ? x : 0.0f) + log1p_unit(fast_exp(x > 0.0f ? -x : x)); }

void check_f32(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.scalar_type() == at::kFloat && t.is_contiguous() && t.device().is_cpu(), name,
              ": expected a contiguous float32 CPU tensor");
}

constexpr int64_t kRowGrain = 16;

// Column sums (bias and LayerNorm gradients, the loss) that do not depend on the thread count: the rows are
// summed in fixed blocks of kSumBlock rows, each block into its own row of partial sums, and the blocks are
// then added in their order (add_blocks). A row of partial sums per thread would group the rows by the thread
// count, so that a run resumed with another number of threads would round differently from then on.
constexpr int64_t kSumBlock = 64;

int64_t sum_blocks(int64_t rows) { return (rows + kSumBlock - 1) / kSumBlock; }

// partial (blocks, ...) -> the sum over its first dimension, block 0 first, then 1, ... (elementwise adds,
// whose result no thread split changes).
at::Tensor add_blocks(const at::Tensor& partial) {
  auto out = partial[0].clone();
  for (int64_t k = 1; k < partial.size(0); ++k) out.add_(partial[k]);
  return out;
}

// One GRU layer over a sequence starting from h = 0 (gate order r, z, n as nn.GRU).
// gi (T, B, 3H): the input projection x W_ih^T without its bias; overwritten with the gate activations.
// The biases are added here rather than by addmm, which would first copy them into every output row.
// Returns the outputs (T, B, H) and ghn = h_prev W_hn^T + b_hn (T, B, H), which the backward needs.
std::tuple<at::Tensor, at::Tensor> gru_layer_forward(at::Tensor gi, const at::Tensor& b_ih, const at::Tensor& w_hh,
                                                     const at::Tensor& b_hh) {
  check_f32(gi, "gi");
  check_f32(b_ih, "b_ih");
  check_f32(b_hh, "b_hh");
  const int64_t T = gi.size(0), B = gi.size(1), H = gi.size(2) / 3;
  auto out = at::empty({T, B, H}, gi.options());
  auto ghn = at::empty({T, B, H}, gi.options());
  auto gh = at::zeros({B, 3 * H}, gi.options());  // h_prev W_hh^T; zero at step 0
  const auto zeros = at::zeros({H}, gi.options());  // h_prev at step 0
  const auto w_t = w_hh.t();
  float* G = gi.data_ptr<float>();
  float* O = out.data_ptr<float>();
  float* N = ghn.data_ptr<float>();
  const float* GH = gh.data_ptr<float>();
  const float* BI = b_ih.data_ptr<float>();
  const float* BH = b_hh.data_ptr<float>();
  const float* Z = zeros.data_ptr<float>();
  for (int64_t t = 0; t < T; ++t) {
    if (t > 0) at::mm_out(gh, out[t - 1], w_t);
    float* g = G + t * B * 3 * H;
    float* o = O + t * B * H;
    float* hn = N + t * B * H;
    const float* hp = t > 0 ? O + (t - 1) * B * H : Z;
    const int64_t hp_stride = t > 0 ? H : 0;
    at::parallel_for(0, B, kRowGrain, [=](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        float* gr = g + b * 3 * H;
        const float* hr = GH + b * 3 * H;
        float* orow = o + b * H;
        float* nrow = hn + b * H;
        const float* prow = hp + b * hp_stride;
#pragma omp simd
        for (int64_t j = 0; j < H; ++j) {
          const float r = sigmoid(gr[j] + BI[j] + hr[j] + BH[j]);
          const float z = sigmoid(gr[H + j] + BI[H + j] + hr[H + j] + BH[H + j]);
          const float c = hr[2 * H + j] + BH[2 * H + j];
          const float n = tanh_(gr[2 * H + j] + BI[2 * H + j] + r * c);
          gr[j] = r;
          gr[H + j] = z;
          gr[2 * H + j] = n;
          nrow[j] = c;
          orow[j] = n + z * (prow[j] - n);
        }
      }
    });
  }
  return {out, ghn};
}

// One GRU step from a previous hidden state (roll-outs). gi (B, 3H): the input projection without bias;
// gh (B, 3H): h W_hh^T without bias; h (B, H). Returns the new hidden state (B, H). One pass per row
// instead of PyTorch's six elementwise ops over (B, H..2H) tensors, which cost as much as the products.
at::Tensor gru_cell_forward(const at::Tensor& gi, const at::Tensor& gh, const at::Tensor& h, const at::Tensor& b_ih,
                            const at::Tensor& b_hh) {
  check_f32(gi, "gi");
  check_f32(gh, "gh");
  check_f32(h, "h");
  check_f32(b_ih, "b_ih");
  check_f32(b_hh, "b_hh");
  const int64_t B = gi.size(0), H = gi.size(1) / 3;
  TORCH_CHECK(gh.size(0) == B && gh.size(1) == 3 * H && h.size(0) == B && h.size(1) == H, "gru_cell_forward: shapes");
  auto out = at::empty({B, H}, gi.options());
  const float* G = gi.data_ptr<float>();
  const float* GH = gh.data_ptr<float>();
  const float* HP = h.data_ptr<float>();
  const float* BI = b_ih.data_ptr<float>();
  const float* BH = b_hh.data_ptr<float>();
  float* O = out.data_ptr<float>();
  at::parallel_for(0, B, kRowGrain, [=](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const float* gr = G + b * 3 * H;
      const float* hr = GH + b * 3 * H;
      const float* prow = HP + b * H;
      float* orow = O + b * H;
#pragma omp simd
      for (int64_t j = 0; j < H; ++j) {
        const float r = sigmoid(gr[j] + BI[j] + hr[j] + BH[j]);
        const float z = sigmoid(gr[H + j] + BI[H + j] + hr[H + j] + BH[H + j]);
        const float n = tanh_(gr[2 * H + j] + BI[2 * H + j] + r * (hr[2 * H + j] + BH[2 * H + j]));
        orow[j] = n + z * (prow[j] - n);
      }
    }
  });
  return out;
}

// Backward of gru_layer_forward. d_out (T, B, H): the gradient reaching each output from above.
// Returns the gradients of the input projection (T, B, 3H), of the recurrent product h_prev W_hh^T
// (T, B, 3H; step 0's has no product behind it) and of the biases [b_ih; b_hh] (2, 3H).
std::tuple<at::Tensor, at::Tensor, at::Tensor> gru_layer_backward(const at::Tensor& d_out, const at::Tensor& gates,
                                                                  const at::Tensor& ghn, const at::Tensor& out,
                                                                  const at::Tensor& w_hh) {
  check_f32(d_out, "d_out");
  check_f32(gates, "gates");
  check_f32(ghn, "ghn");
  check_f32(out, "out");
  const int64_t T = d_out.size(0), B = d_out.size(1), H = d_out.size(2);
  auto d_gi = at::empty({T, B, 3 * H}, gates.options());
  auto d_gh = at::empty({T, B, 3 * H}, gates.options());
  auto dh = at::zeros({B, H}, gates.options());  // gradient reaching h_t from step t + 1
  const auto zeros = at::zeros({H}, gates.options());
  const int64_t blocks = sum_blocks(B);
  auto partial = at::zeros({blocks, 4, H}, gates.options());  // sums of dr, dz, dn, dn * r per block of rows
  const float* DO = d_out.data_ptr<float>();
  const float* G = gates.data_ptr<float>();
  const float* C = ghn.data_ptr<float>();
  const float* O = out.data_ptr<float>();
  const float* Z = zeros.data_ptr<float>();
  float* DGI = d_gi.data_ptr<float>();
  float* DGH = d_gh.data_ptr<float>();
  float* DH = dh.data_ptr<float>();
  float* P = partial.data_ptr<float>();
  for (int64_t t = T - 1; t >= 0; --t) {
    const float* hp = t > 0 ? O + (t - 1) * B * H : Z;
    const int64_t hp_stride = t > 0 ? H : 0;
    at::parallel_for(0, blocks, 1, [=](int64_t k0, int64_t k1) {
      for (int64_t b = k0 * kSumBlock; b < std::min(B, k1 * kSumBlock); ++b) {
        float* acc = P + (b / kSumBlock) * 4 * H;
        const float* g = G + (t * B + b) * 3 * H;
        const float* c = C + (t * B + b) * H;
        const float* d = DO + (t * B + b) * H;
        const float* p = hp + b * hp_stride;
        float* dgi = DGI + (t * B + b) * 3 * H;
        float* dgh = DGH + (t * B + b) * 3 * H;
        float* dhr = DH + b * H;
#pragma omp simd
        for (int64_t j = 0; j < H; ++j) {
          const float r = g[j], z = g[H + j], n = g[2 * H + j];
          const float dhj = dhr[j] + d[j];
          const float dn = dhj * (1.0f - z) * (1.0f - n * n);
          const float dz = dhj * (p[j] - n) * z * (1.0f - z);
          const float dr = dn * c[j] * r * (1.0f - r);
          dgi[j] = dr;
          dgi[H + j] = dz;
          dgi[2 * H + j] = dn;
          dgh[j] = dr;
          dgh[H + j] = dz;
          dgh[2 * H + j] = dn * r;
          dhr[j] = dhj * z;
          acc[j] += dr;
          acc[H + j] += dz;
          acc[2 * H + j] += dn;
          acc[3 * H + j] += dn * r;
        }
      }
    });
    if (t > 0) dh.addmm_(d_gh[t], w_hh);
  }
  const auto sums = add_blocks(partial);  // (4, H)
  auto d_bias = at::empty({2, 3 * H}, gates.options());
  d_bias[0].copy_(sums.slice(0, 0, 3).reshape({3 * H}));
  d_bias[1].slice(0, 0, 2 * H).copy_(sums.slice(0, 0, 2).reshape({2 * H}));
  d_bias[1].slice(0, 2 * H, 3 * H).copy_(sums[3]);
  return {d_gi, d_gh, d_bias};
}

// Residual block after its matrix product: y = LayerNorm(x + mask * silu(u + bias)), row-wise over
// (R, W); u = x W^T without the bias, which is added here (and again in the backward: writing u + bias
// back would cost a pass over memory that re-adding a row of W floats does not).
// The mask is models.head.dropout_mask(key, (R, W), p) computed on the fly; p = 0: no dropout.
// Returns y and the mean and rstd of each row.
std::tuple<at::Tensor, at::Tensor, at::Tensor> residual_block_forward(
    const at::Tensor& x, const at::Tensor& u, const at::Tensor& bias, const at::Tensor& gamma,
    const at::Tensor& beta, int64_t key, int64_t thr, double p, double eps) {
  check_f32(x, "x");
  check_f32(u, "u");
  const int64_t R = x.size(0), W = x.size(1);
  auto y = at::empty_like(x);
  auto mu = at::empty({R}, x.options());
  auto rstd = at::empty({R}, x.options());
  // p = 0: threshold 0 keeps every entry with scale 1 (no branch in the vectorised loop)
  const uint32_t k = static_cast<uint32_t>(key), th = p > 0.0 ? static_cast<uint32_t>(thr) : 0U;
  const float keep = static_cast<float>(1.0 / (1.0 - p));
  const float *X = x.data_ptr<float>(), *U = u.data_ptr<float>();
  const float *GA = gamma.data_ptr<float>(), *BE = beta.data_ptr<float>(), *BI = bias.data_ptr<float>();
  float *Y = y.data_ptr<float>(), *MU = mu.data_ptr<float>(), *RS = rstd.data_ptr<float>();
  const float inv_w = 1.0f / static_cast<float>(W);
  at::parallel_for(0, R, kRowGrain, [=](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = X + r * W;
      const float* ur = U + r * W;
      float* yr = Y + r * W;  // holds the residual sum until it is normalised
      const uint32_t base = static_cast<uint32_t>(r * W);
      float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
      for (int64_t j = 0; j < W; ++j) {
        const float uj = ur[j] + BI[j];
        const float a = uj * sigmoid(uj) * dropout_scale(base + static_cast<uint32_t>(j), k, th, keep);
        const float v = xr[j] + a;
        yr[j] = v;
        sum += v;
      }
      const float mean = sum * inv_w;
      float var = 0.0f;
#pragma omp simd reduction(+ : var)
      for (int64_t j = 0; j < W; ++j) {
        const float dv = yr[j] - mean;
        var += dv * dv;
      }
      const float rs = 1.0f / std::sqrt(var * inv_w + static_cast<float>(eps));
#pragma omp simd
      for (int64_t j = 0; j < W; ++j) yr[j] = (yr[j] - mean) * rs * GA[j] + BE[j];
      MU[r] = mean;
      RS[r] = rs;
    }
  });
  return {y, mu, rstd};
}

// Backward of residual_block_forward up to the matrix product (the residual sum and the mask are
// recomputed from x and u). Returns ds (the gradient of the residual sum, which is also the skip path's
// gradient), du (of u + bias), and the column sums [dgamma; dbeta; dbias] (3, W).
std::tuple<at::Tensor, at::Tensor, at::Tensor> residual_block_backward(
    const at::Tensor& dy, const at::Tensor& x, const at::Tensor& u, const at::Tensor& bias, const at::Tensor& mu,
    const at::Tensor& rstd, const at::Tensor& gamma, int64_t key, int64_t thr, double p) {
  check_f32(dy, "dy");
  check_f32(x, "x");
  check_f32(u, "u");
  const int64_t R = dy.size(0), W = dy.size(1);
  auto ds = at::empty_like(dy);
  auto du = at::empty_like(dy);
  const int64_t blocks = sum_blocks(R);
  auto partial = at::zeros({blocks, 3, W}, dy.options());
  // p = 0: threshold 0 keeps every entry with scale 1 (no branch in the vectorised loop)
  const uint32_t k = static_cast<uint32_t>(key), th = p > 0.0 ? static_cast<uint32_t>(thr) : 0U;
  const float keep = static_cast<float>(1.0 / (1.0 - p));
  const float *DY = dy.data_ptr<float>(), *X = x.data_ptr<float>(), *U = u.data_ptr<float>();
  const float *MU = mu.data_ptr<float>(), *RS = rstd.data_ptr<float>(), *GA = gamma.data_ptr<float>();
  const float* BI = bias.data_ptr<float>();
  float *DS = ds.data_ptr<float>(), *DU = du.data_ptr<float>(), *P = partial.data_ptr<float>();
  const float inv_w = 1.0f / static_cast<float>(W);
  at::parallel_for(0, blocks, 1, [=](int64_t k0, int64_t k1) {
    for (int64_t r = k0 * kSumBlock; r < std::min(R, k1 * kSumBlock); ++r) {
      float* acc = P + (r / kSumBlock) * 3 * W;
      const float* dyr = DY + r * W;
      const float* xr = X + r * W;
      const float* ur = U + r * W;
      float* dsr = DS + r * W;  // holds x_hat until the second pass
      float* dur = DU + r * W;  // holds d(mask * silu(u))/du until the second pass
      const uint32_t base = static_cast<uint32_t>(r * W);
      const float mean = MU[r], rs = RS[r];
      float g_sum = 0.0f, gx_sum = 0.0f;
#pragma omp simd reduction(+ : g_sum, gx_sum)
      for (int64_t j = 0; j < W; ++j) {
        const float uj = ur[j] + BI[j];
        const float sg = sigmoid(uj);
        const float m = dropout_scale(base + static_cast<uint32_t>(j), k, th, keep);
        const float xh = (xr[j] + m * uj * sg - mean) * rs;
        const float g = dyr[j] * GA[j];
        g_sum += g;
        gx_sum += g * xh;
        acc[j] += dyr[j] * xh;
        acc[W + j] += dyr[j];
        dsr[j] = xh;
        dur[j] = silu_grad(m, uj, sg);
      }
      g_sum *= inv_w;
      gx_sum *= inv_w;
#pragma omp simd
      for (int64_t j = 0; j < W; ++j) {
        const float d = rs * (dyr[j] * GA[j] - g_sum - dsr[j] * gx_sum);
        dsr[j] = d;
        const float dv = d * dur[j];
        dur[j] = dv;
        acc[2 * W + j] += dv;
      }
    }
  });
  return {ds, du, add_blocks(partial)};
}

// Rows [r0, r1) of bias_silu_forward; row r belongs to member r / B.
void bias_silu_rows(const float* __restrict U, float* __restrict A, const float* __restrict BI, int64_t r0, int64_t r1,
                    int64_t B, int64_t W) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* __restrict ur = U + r * W;
    float* __restrict ar = A + r * W;
    const float* __restrict br = BI + (r / B) * W;
#pragma omp simd
    for (int64_t j = 0; j < W; ++j) {
      const float v = ur[j] + br[j];
      ar[j] = v * sigmoid(v);
    }
  }
}

// Hidden layer of the batched ensemble after its product: u (E, B, W) = x W without the bias (E, 1, W).
// Returns silu(u + bias); the backward adds the bias again rather than this writing u + bias back.
at::Tensor bias_silu_forward(const at::Tensor& u, const at::Tensor& bias) {
  check_f32(u, "u");
  check_f32(bias, "bias");
  const int64_t E = u.size(0), B = u.size(1), W = u.size(2);
  auto a = at::empty_like(u);
  const float* U = u.data_ptr<float>();
  float* A = a.data_ptr<float>();
  const float* BI = bias.data_ptr<float>();
  at::parallel_for(0, E * B, kRowGrain, [=](int64_t r0, int64_t r1) { bias_silu_rows(U, A, BI, r0, r1, B, W); });
  return a;
}

// Rows [r0, r1) of silu_backward_bias, summing the bias gradient into acc (E, W).
void silu_backward_rows(float* __restrict D, const float* __restrict U, const float* __restrict BI,
                        float* __restrict acc, int64_t r0, int64_t r1, int64_t B, int64_t W) {
  for (int64_t r = r0; r < r1; ++r) {
    float* __restrict dr = D + r * W;
    const float* __restrict ur = U + r * W;
    const float* __restrict br = BI + (r / B) * W;
    float* __restrict ar = acc + (r / B) * W;
#pragma omp simd
    for (int64_t j = 0; j < W; ++j) {
      const float uj = ur[j] + br[j];
      const float sg = sigmoid(uj);
      const float v = silu_grad(dr[j], uj, sg);
      dr[j] = v;
      ar[j] += v;
    }
  }
}

// Backward of bias_silu_forward: d (E, B, W), the gradient of silu(u + bias), becomes the gradient of
// u + bias in place; returns the bias gradient (E, 1, W) from the same pass.
at::Tensor silu_backward_bias(at::Tensor d, const at::Tensor& u, const at::Tensor& bias) {
  check_f32(d, "d");
  check_f32(u, "u");
  const int64_t E = d.size(0), B = d.size(1), W = d.size(2);
  const int64_t blocks = sum_blocks(E * B);
  auto partial = at::zeros({blocks, E, 1, W}, d.options());
  float* D = d.data_ptr<float>();
  const float* U = u.data_ptr<float>();
  const float* BI = bias.data_ptr<float>();
  float* P = partial.data_ptr<float>();
  at::parallel_for(0, blocks, 1, [=](int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; ++k)
      silu_backward_rows(D, U, BI, P + k * E * W, k * kSumBlock, std::min(E * B, (k + 1) * kSumBlock), B, W);
  });
  return add_blocks(partial);
}

// Rows [r0, r1) of clamped_nll; acc: this thread's [loss, d lo (D), d hi (D)]. D is small (12 for
// Hopper), so the loop runs across a tile of rows for each column: 16 lanes busy instead of 12 of them in
// one vector and the rest in a scalar tail. Rows past the end of the tile count with weight 0.
constexpr int64_t kNllTile = 16;

void clamped_nll_rows(const float* __restrict O, const float* __restrict LO, const float* __restrict HI,
                      const float* __restrict Y, const float* __restrict WT, float c, float* __restrict G,
                      float* __restrict acc, int64_t r0, int64_t r1, int64_t D) {
  float mu[kNllTile], raw[kNllTile], y[kNllTile], w[kNllTile], gm[kNllTile], gr[kNllTile];
  float loss = 0.0f;
  for (int64_t rt = r0; rt < r1; rt += kNllTile) {
    const int64_t n = std::min<int64_t>(kNllTile, r1 - rt);
    for (int64_t t = 0; t < kNllTile; ++t) w[t] = t < n ? (WT ? WT[rt + t] : 1.0f) : 0.0f;
    for (int64_t j = 0; j < D; ++j) {
      for (int64_t t = 0; t < kNllTile; ++t) {
        const bool in = t < n;
        mu[t] = in ? O[(rt + t) * 2 * D + j] : 0.0f;
        raw[t] = in ? O[(rt + t) * 2 * D + D + j] : 0.0f;
        y[t] = in ? Y[(rt + t) * D + j] : 0.0f;
      }
      const float lo = LO[j], hi = HI[j];
      float d_lo = 0.0f, d_hi = 0.0f;
#pragma omp simd reduction(+ : loss, d_lo, d_hi)
      for (int64_t t = 0; t < kNllTile; ++t) {
        const float a = hi - raw[t];
        const float b = hi - softplus(a) - lo;
        const float lv = lo + softplus(b);
        const float iv = fast_exp(-lv);
        const float err = mu[t] - y[t];
        const float e = err * err * iv;
        loss += w[t] * (e + lv);
        const float cw = c * w[t];
        const float d_lv = cw * (1.0f - e);
        const float d_l1 = d_lv * sigmoid(b);
        const float sa = sigmoid(a);
        gm[t] = 2.0f * cw * err * iv;
        gr[t] = d_l1 * sa;
        d_lo += d_lv - d_l1;
        d_hi += d_l1 * (1.0f - sa);
      }
      for (int64_t t = 0; t < n; ++t) {
        G[(rt + t) * 2 * D + j] = gm[t];
        G[(rt + t) * 2 * D + D + j] = gr[t];
      }
      acc[1 + j] += d_lo;
      acc[1 + D + j] += d_hi;
    }
  }
  acc[0] += loss;
}

// scale * mean((mu - y)^2 exp(-lv) + lv) over the rows with weight 1 (weight: (R,) of 0/1, or none), where
// out (R, 2D) = [mu | raw] and lv = soft_clamp(raw, lo, hi) (models.nll.soft_clamp). Returns the loss
// (a 0-dim tensor), its gradient for out (R, 2D) and for [lo; hi] (2, D): models.nll._ClampedGaussianNLL.
std::tuple<at::Tensor, at::Tensor, at::Tensor> clamped_nll(const at::Tensor& out, const at::Tensor& lo,
                                                           const at::Tensor& hi, const at::Tensor& target,
                                                           const c10::optional<at::Tensor>& weight, double scale) {
  check_f32(out, "out");
  check_f32(target, "target");
  const int64_t R = target.size(0), D = target.size(1);
  const bool has_w = weight.has_value() && weight->defined();
  if (has_w) check_f32(*weight, "weight");
  const double rows = has_w ? weight->sum().item<double>() : static_cast<double>(R);
  const float c = static_cast<float>(scale / (std::max(rows, 1.0) * static_cast<double>(D)));
  auto g = at::empty({R, 2 * D}, out.options());
  const int64_t blocks = sum_blocks(R);
  auto partial = at::zeros({blocks, 1 + 2 * D}, out.options());
  const float *O = out.data_ptr<float>(), *LO = lo.data_ptr<float>(), *HI = hi.data_ptr<float>();
  const float *Y = target.data_ptr<float>(), *WT = has_w ? weight->data_ptr<float>() : nullptr;
  float *G = g.data_ptr<float>(), *P = partial.data_ptr<float>();
  at::parallel_for(0, blocks, 1, [=](int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; ++k)
      clamped_nll_rows(O, LO, HI, Y, WT, c, G, P + k * (1 + 2 * D), k * kSumBlock, std::min(R, (k + 1) * kSumBlock), D);
  });
  const auto sums = add_blocks(partial);
  return {sums[0] * c, g, sums.slice(0, 1).view({2, D})};
}

}  // namespace

TORCH_LIBRARY(admpo_cpu, m) {
  m.def("gru_layer_forward(Tensor(a!) gi, Tensor b_ih, Tensor w_hh, Tensor b_hh) -> (Tensor, Tensor)");
  m.def("gru_cell_forward(Tensor gi, Tensor gh, Tensor h, Tensor b_ih, Tensor b_hh) -> Tensor");
  m.def("gru_layer_backward(Tensor d_out, Tensor gates, Tensor ghn, Tensor out, Tensor w_hh)"
        " -> (Tensor, Tensor, Tensor)");
  m.def("residual_block_forward(Tensor x, Tensor u, Tensor bias, Tensor gamma, Tensor beta, int key,"
        " int thr, float p, float eps) -> (Tensor, Tensor, Tensor)");
  m.def("residual_block_backward(Tensor dy, Tensor x, Tensor u, Tensor bias, Tensor mu, Tensor rstd, Tensor gamma, int key,"
        " int thr, float p) -> (Tensor, Tensor, Tensor)");
  m.def("bias_silu_forward(Tensor u, Tensor bias) -> Tensor");
  m.def("silu_backward_bias(Tensor(a!) d, Tensor u, Tensor bias) -> Tensor");
  m.def("clamped_nll(Tensor out, Tensor lo, Tensor hi, Tensor target, Tensor? weight, float scale)"
        " -> (Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(admpo_cpu, CPU, m) {
  m.impl("gru_layer_forward", &gru_layer_forward);
  m.impl("gru_layer_backward", &gru_layer_backward);
  m.impl("gru_cell_forward", &gru_cell_forward);
  m.impl("residual_block_forward", &residual_block_forward);
  m.impl("residual_block_backward", &residual_block_backward);
  m.impl("bias_silu_forward", &bias_silu_forward);
  m.impl("silu_backward_bias", &silu_backward_bias);
  m.impl("clamped_nll", &clamped_nll);
}
