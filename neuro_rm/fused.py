"""An optional compiled kernel for the crossbar periphery: the tile products, ADC codes, the digital sum
over row tiles, read noise, compensation and bias in one call, chunk by chunk.

Eager torch makes one memory pass per operation (round, clamp, a scaled add per tile, the noise variance,
its square root, the noisy add), which made the realistic readout cost 1.6-1.8x the ideal one on CPU.
The same arithmetic in one C++ loop touches each tile sum once.  It is no approximation: the operations
run in the eager order and rounding (a test checks outputs bit for bit without noise, and to within the
rounding of torch's vectorised square root, which is not correctly rounded, with it).  The read-noise
draws are made inside the loop, row by row, from the counter-based stream that ``crossbar.stream_normals``
gives stand-alone (``normal_fill``, used by the eager periphery too), so every call draws afresh without a
memory pass over its draws.
A binary-input check (spikes) runs in one pass too.

It is compiled with torch's C++ extension loader on first use (about a minute, then cached on disk) and
is never required: without a compiler, or with ``NEURO_RM_FUSED=0``, ``module()`` and ``kernel()`` are None,
``crossbar.Crossbar`` runs the eager periphery and draws its noise with ``torch.randn``; ``enabled = False``
switches only the periphery read to eager torch.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import warnings
from typing import Any

_SOURCE = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <cmath>
#include <cstdint>
#include <algorithm>
#include <cstring>
#include <vector>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

// Fresh standard normals for read noise, as a stream keyed per call.  Row v of a (rows, width) block holds
// ceil(width / 2) pairs; pair p comes from one hash of (key, v * ceil(width / 2) + p) (SplitMix64: a Weyl
// sequence through a 64-bit mixing function, Steele, Lea & Flood, OOPSLA 2014) through Box-Muller: 37 bits
// for the radius (u = (k + 1/2) 2^-37 in (0, 1], exact where it matters, near 0, so the tails reach
// sqrt(2 ln 2^38) = 7.26 sd), 24 for an angle in [-pi/4, pi/4], 3 to turn it into one of the eight
// symmetric copies of that sector (swap cos and sin, flip either sign), which covers the circle uniformly.
// The pair's first draw goes to entry p of the row, its second to entry ceil(width / 2) + p (an odd width
// drops the last second draw).  No state: any row is computed on its own (inside the periphery loop), the
// same key gives the same draws on any thread count, and calls with different keys share nothing.
// So that both loops vectorise at full width, the 64-bit hashes of a block of pairs are made first and the
// float arithmetic follows on 32-bit lanes; log, sin and cos are polynomials without division (ln on
// [1/sqrt2, sqrt2) as t + t^2 P(t), t = m - 1, P a least-squares fit on Chebyshev nodes, within 3e-8 of
// ln; Taylor for sin and cos on [-pi/4, pi/4]), all within float precision.
static inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

static inline float log_unit(float u) {  // ln u for a normal float u in (0, 1]
  int32_t bits;
  std::memcpy(&bits, &u, sizeof bits);
  int32_t exponent = ((bits >> 23) & 0xff) - 127;
  int32_t mantissa_bits = (bits & 0x7fffff) | 0x3f800000;
  float m;
  std::memcpy(&m, &mantissa_bits, sizeof m);  // u = m * 2^exponent, m in [1, 2)
  const bool high = m > 1.41421356f;
  m = high ? 0.5f * m : m;
  exponent += high;
  const float t = m - 1.0f;  // |t| < 0.415
  float p = 0.09004202f;
  p = std::fma(p, t, -0.14257795f);
  p = std::fma(p, t, 0.1480646f);
  p = std::fma(p, t, -0.16575048f);
  p = std::fma(p, t, 0.19973106f);
  p = std::fma(p, t, -0.2500161f);
  p = std::fma(p, t, 0.3333366f);
  p = std::fma(p, t, -0.49999995f);
  return std::fma(static_cast<float>(exponent), 0.693147181f, std::fma(t * t, p, t));
}

static inline float with_sign(float x, uint32_t sign_bit) {  // x with its sign bit xor-ed by sign_bit
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  bits ^= sign_bit;
  std::memcpy(&x, &bits, sizeof x);
  return x;
}

constexpr int64_t kPairBlock = 256;

// Row v's draws (width of them) into dst.
static void row_normals(uint64_t base, int64_t v, int64_t width, float* dst) {
  const int64_t pairs = (width + 1) / 2, seconds = width - pairs;
  const uint64_t first = static_cast<uint64_t>(v) * static_cast<uint64_t>(pairs);
  alignas(64) float radius_steps[kPairBlock];
  alignas(64) int32_t angle_bits[kPairBlock];
  alignas(64) uint32_t turn_bits[kPairBlock];
  alignas(64) float second[kPairBlock];
  for (int64_t start = 0; start < pairs; start += kPairBlock) {
    const int64_t n = std::min(kPairBlock, pairs - start);
    for (int64_t p = 0; p < n; ++p) {
      const uint64_t h = mix64(base + (first + static_cast<uint64_t>(start + p) + 1) * 0x9E3779B97F4A7C15ULL);
#if defined(__AVX512DQ__)
      radius_steps[p] = static_cast<float>(static_cast<int64_t>(h >> 27));  // one vector instruction here
#else
      // h >> 27 < 2^37 is exact as a double (2^52 + k read back, minus 2^52), then rounded once to float as
      // the direct conversion would be: AVX2 has no vector instruction for that one, and the loop stayed scalar
      const uint64_t biased = (h >> 27) | 0x4330000000000000ULL;
      double k;
      std::memcpy(&k, &biased, sizeof k);
      radius_steps[p] = static_cast<float>(k - 4503599627370496.0);
#endif
      angle_bits[p] = static_cast<int32_t>((h >> 3) & 0xffffff);
      turn_bits[p] = static_cast<uint32_t>(h & 7);
    }
    float* __restrict firsts = dst + start;
    for (int64_t p = 0; p < n; ++p) {
      const float u = (radius_steps[p] + 0.5f) * 7.27595761e-12f;  // 2^-37
      const float radius = std::sqrt(-2.0f * log_unit(u));
      const float a = ((static_cast<float>(angle_bits[p]) + 0.5f) * 5.96046448e-8f - 0.5f) * 1.57079633f;
      const float a2 = a * a;
      const float sin_a = a * std::fma(a2, std::fma(a2, std::fma(a2, std::fma(a2, 1.0f / 362880, -1.0f / 5040), 1.0f / 120), -1.0f / 6), 1.0f);
      const float cos_a = std::fma(a2, std::fma(a2, std::fma(a2, std::fma(a2, std::fma(a2, -1.0f / 3628800, 1.0f / 40320), -1.0f / 720), 1.0f / 24), -0.5f), 1.0f);
      const uint32_t turn = turn_bits[p];
      const bool swap = turn & 1;
      firsts[p] = with_sign(radius * (swap ? sin_a : cos_a), (turn & 2) << 30);
      second[p] = with_sign(radius * (swap ? cos_a : sin_a), (turn & 4) << 29);
    }
    const int64_t kept = std::min(n, seconds - start);
    if (kept > 0) std::memcpy(dst + pairs + start, second, kept * sizeof(float));
  }
}

// out (rows, width), contiguous float32 <- the stream of ``key``.
void normal_fill(torch::Tensor& out, int64_t key) {
  float* o = out.data_ptr<float>();
  const int64_t width = out.dim() > 0 ? out.size(-1) : 1, rows = width > 0 ? out.numel() / width : 0;
  const uint64_t base = mix64(static_cast<uint64_t>(key));
  at::parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) {
    for (int64_t v = begin; v < end; ++v) row_normals(base, v, width, o + v * width);
  });
}

// One chunk of rows, in place on y (m, width): the sum over tiles of ADC codes (s: tiles x m x width, in
// LSBs, rounded and clamped to +-top) times l (tiles x width); with no tiles y already holds the product.
// Then read noise (noisy): the draws of rows row0 + v of the stream ``base`` (see normal_fill) times the
// std, variance = alpha * source + row_scale * rows[v], source = row slot[v] of ``squares`` (the squares'
// product, made for the vectors with input only) where it is given, else y itself; a vector whose rows[v]
// (its sum of squares, or its spike count) is 0 applied no voltage, drew no current, and gets no noise and no
// draws (eager torch adds its draws times the 1e-15 std of its variance floor);
// then the compensation gain g and the bias b (each where not null).  The operations and their order
// are the eager ones (torch.mul, then addcmul_ per tile; torch.add(row, y, alpha); addcmul_; mul_; add_).
static void periphery(const float* s, int64_t tiles, int64_t m, int64_t width, const float* l, float top,
                      bool quantise, float* y, bool noisy, uint64_t base, int64_t row0, const float* rows,
                      float row_scale, float alpha, const float* squares, const int64_t* slot,
                      const float* g, const float* b) {
  at::parallel_for(0, m, 16, [&](int64_t begin, int64_t end) {
    std::vector<float> draws(noisy ? width : 0);  // one row's draws, made where they are used (in cache)
    for (int64_t v = begin; v < end; ++v) {
      float* yv = y + v * width;
      for (int64_t t = 0; t < tiles; ++t) {
        const float* st = s + (t * m + v) * width;
        const float* lt = l + t * width;
        for (int64_t o = 0; o < width; ++o) {
          float c = st[o];
          if (quantise) {
            c = std::rint(c);  // as nearbyint (the current, nearest-even mode) but vectorised
            c = c < -top ? -top : (c > top ? top : c);
          }
          yv[o] = t == 0 ? c * lt[o] : std::fma(c, lt[o], yv[o]);
        }
      }
      if (noisy && rows[v] != 0.0f) {  // rows[v] = 0: no input reached the row, so no read noise either
        const float rv = row_scale * rows[v];
        const float* src = squares != nullptr ? squares + slot[v] * width : yv;
        const float* dv = draws.data();
        row_normals(base, row0 + v, width, draws.data());
        for (int64_t o = 0; o < width; ++o) {
          float var = std::fma(alpha, src[o], rv);
          var = var < 1e-30f ? 1e-30f : var;
          yv[o] = std::fma(dv[o], std::sqrt(var), yv[o]);
        }
      }
      if (g != nullptr) {
        for (int64_t o = 0; o < width; ++o) yv[o] = yv[o] * g[o];
      }
      if (b != nullptr) {
        for (int64_t o = 0; o < width; ++o) yv[o] = yv[o] + b[o];
      }
    }
  });
}

static const float* optional(const torch::Tensor& t) { return t.numel() > 0 ? t.data_ptr<float>() : nullptr; }

// out (m, width) = x (m, k, strided) @ w (k, width): k in order, one fma each, as MKL's sgemm sums a narrow
// product (a test checks the two agree bit for bit); zero inputs (most spikes) are skipped, fma(0, w, s) = s.
static void narrow_product(const torch::Tensor& x, const torch::Tensor& w, torch::Tensor& out) {
  const int64_t m = x.size(0), k = x.size(1), width = out.size(1), row = x.stride(0), col = x.stride(1);
  const float* xp = x.data_ptr<float>();
  const float* wp = w.data_ptr<float>();
  float* o = out.data_ptr<float>();
  at::parallel_for(0, m, 16, [&](int64_t begin, int64_t end) {
    for (int64_t v = begin; v < end; ++v) {
      float* ov = o + v * width;
      for (int64_t j = 0; j < width; ++j) ov[j] = 0.0f;
      for (int64_t i = 0; i < k; ++i) {
        const float a = xp[v * row + i * col];
        if (a == 0.0f) continue;
        const float* wi = wp + i * width;
        for (int64_t j = 0; j < width; ++j) ov[j] = std::fma(a, wi[j], ov[j]);
      }
    }
  });
}

// The read of x (n, in) into out (n, width), step rows at a time.  levels >= 0: through the ADCs, with
// whole_w (full tiles, rows, width) and rest_w (rest, width) the LSB-scaled weights (either may be empty)
// and lsb (tiles, width); the tile sums go into scratch.  levels < 0: whole_w is the plain weight (in,
// width).  noisy: read noise from the stream noise_key (normal_fill's draws for out); its variance source
// is, where square_w (in, width) is given, (x * x) @ square_w, an MKL product over the chunk's vectors with
// input only (a vector without input gets no noise; 52 % of the bundled frames' time bins), else the output.
// rows (n) is required when noisy; square_w, gain and bias (width) may be empty.  Float32; x, out, rows,
// square_w, gain, bias, lsb and scratch contiguous.
void periphery_read(const torch::Tensor& x, const torch::Tensor& whole_w, const torch::Tensor& rest_w,
                    const torch::Tensor& lsb, int64_t levels, torch::Tensor& out, bool noisy, int64_t noise_key,
                    const torch::Tensor& rows, double row_scale, double alpha, const torch::Tensor& square_w,
                    const torch::Tensor& gain, const torch::Tensor& bias, int64_t step, torch::Tensor& scratch) {
  const int64_t n = x.size(0), in = x.size(1), width = out.size(1);
  const bool adc = levels >= 0;
  const int64_t full = adc && whole_w.numel() > 0 ? whole_w.size(0) : 0;
  const int64_t tile_rows = full > 0 ? whole_w.size(1) : 0;
  const int64_t tiles = adc ? full + (rest_w.numel() > 0 ? 1 : 0) : 0;
  const uint64_t base = mix64(static_cast<uint64_t>(noise_key));
  TORCH_CHECK(!noisy || rows.numel() == n, "periphery_read: a noisy read needs one row sum per vector");
  const float* r = optional(rows);
  const bool squared = noisy && square_w.numel() > 0;
  torch::Tensor inputs, products;  // a chunk's squared inputs with input, (<= step, in), and their product
  std::vector<int64_t> slot(squared ? step : 0);  // vector v's row in both, or -1 (no input, no noise)
  if (squared) {
    inputs = torch::empty({std::min(step, n), in}, x.options());
    products = torch::empty({std::min(step, n), width}, x.options());
  }
  for (int64_t start = 0; start < n; start += step) {
    const int64_t m = std::min(step, n - start);
    torch::Tensor xc = x.narrow(0, start, m);
    torch::Tensor yc = out.narrow(0, start, m);
    if (squared) {
      int64_t active = 0;
      float* dst = inputs.data_ptr<float>();
      for (int64_t v = 0; v < m; ++v) {
        const float* xv = x.data_ptr<float>() + (start + v) * in;
        const bool heard = r[start + v] != 0.0f;
        slot[v] = heard ? active : -1;
        if (!heard) continue;
        float* dv = dst + active++ * in;
        for (int64_t i = 0; i < in; ++i) dv[i] = xv[i] * xv[i];
      }
      if (active > 0) {
        torch::Tensor part = products.narrow(0, 0, active);
        at::mm_out(part, inputs.narrow(0, 0, active), square_w);
      }
    }
    torch::Tensor sums;
    if (adc) {
      sums = scratch.narrow(0, 0, tiles * m * width).view({tiles, m, width});
      if (full > 0) {
        torch::Tensor part = sums.narrow(0, 0, full);
        at::bmm_out(part, xc.narrow(1, 0, full * tile_rows).reshape({m, full, tile_rows}).transpose(0, 1), whole_w);
      }
      if (rest_w.numel() > 0) {
        torch::Tensor part = sums.select(0, full);
        narrow_product(xc.narrow(1, full * tile_rows, in - full * tile_rows), rest_w, part);
      }
    } else {
      at::mm_out(yc, xc, whole_w);
    }
    periphery(adc ? sums.data_ptr<float>() : nullptr, tiles, m, width, adc ? lsb.data_ptr<float>() : nullptr,
              static_cast<float>(levels), adc, yc.data_ptr<float>(), noisy, base, start,
              r == nullptr ? nullptr : r + start, static_cast<float>(row_scale), static_cast<float>(alpha),
              squared ? products.data_ptr<float>() : nullptr, slot.data(), optional(gain), optional(bias));
  }
}

// out <- x through the input DACs: clamp(rint(x / step), low, high) * step in float32, one pass; the eager
// torch.round(x / step).clamp_(low, high).mul_(step) (IEEE division, round half to even) value for value.
void dac_levels(const torch::Tensor& x, double step, int64_t low, int64_t high, torch::Tensor& out) {
  const float* p = x.data_ptr<float>();
  float* o = out.data_ptr<float>();
  const float s = static_cast<float>(step), lo = static_cast<float>(low), hi = static_cast<float>(high);
  at::parallel_for(0, x.numel(), 1 << 14, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      float c = std::rint(p[i] / s);
      c = c < lo ? lo : (c > hi ? hi : c);
      o[i] = c * s;
    }
  });
}

// Row sums of x (n, width) into rows (n) when every entry is 0 or 1; false (rows undefined) otherwise.
bool binary_rows(const torch::Tensor& x, torch::Tensor& rows) {
  const int64_t n = x.size(0), width = x.size(1);
  const float* p = x.data_ptr<float>();
  float* r = rows.data_ptr<float>();
  bool binary = true;
  for (int64_t v = 0; v < n && binary; ++v) {
    const float* xv = p + v * width;
    int32_t ones = 0, others = 0;  // integer counts vectorise (a float sum is one serial chain)
    for (int64_t i = 0; i < width; ++i) {
      ones += xv[i] == 1.0f;
      others += (xv[i] != 0.0f) & (xv[i] != 1.0f);
    }
    r[v] = static_cast<float>(ones);
    binary = others == 0;
  }
  return binary;
}

// Arithmetic modulo the Mersenne prime p = 2^61 - 1 for the keyed digest below (a < 2^62, b < 2^61).
static constexpr uint64_t kMersenne61 = (1ULL << 61) - 1;
static inline uint64_t mulmod61(uint64_t a, uint64_t b) {
  const unsigned __int128 v = static_cast<unsigned __int128>(a) * b;
  uint64_t r = static_cast<uint64_t>(v & kMersenne61) + static_cast<uint64_t>(v >> 61);
  r = (r & kMersenne61) + (r >> 61);
  return r >= kMersenne61 ? r - kMersenne61 : r;
}

// Polynomial evaluation in eight interleaved lanes: element t of n (n padded to a multiple of 8) ends up
// multiplied by k^(n + 7 - t), which is what one Horner chain would give, with eight independent chains.
struct PolyDigest {
  uint64_t lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  uint64_t key, stride;  // k and k^8
  int64_t count = 0;
  explicit PolyDigest(uint64_t k) : key(k), stride(k) {
    for (int i = 0; i < 3; ++i) stride = mulmod61(stride, stride);
  }
  void absorb(uint64_t element) {
    uint64_t& lane = lanes[count & 7];
    lane = mulmod61(lane + element, stride);
    ++count;
  }
  static uint64_t word(const char* at) {
    uint32_t w;
    std::memcpy(&w, at, 4);
    return w;
  }
  void absorb_bytes(const char* bytes, int64_t size) {
    const int64_t words = size / 4;
    int64_t i = 0;
    for (; i < words && (count & 7) != 0; ++i) absorb(word(bytes + 4 * i));
    for (; i + 8 <= words; i += 8) {
      for (int j = 0; j < 8; ++j) lanes[j] = mulmod61(lanes[j] + word(bytes + 4 * (i + j)), stride);
      count += 8;
    }
    for (; i < words; ++i) absorb(word(bytes + 4 * i));
    if (size % 4 != 0) {
      uint32_t tail = 0;
      std::memcpy(&tail, bytes + 4 * words, size % 4);
      absorb(tail);
    }
  }
  uint64_t finish() {
    while ((count & 7) != 0) absorb(0);
    uint64_t h = 0;
    for (int j = 0; j < 8; ++j) h = mulmod61(h, key) + lanes[j];  // sum of lane j times k^(7 - j)
    return h >= kMersenne61 ? h - kMersenne61 : h;
  }
};

// A keyed digest of the tensors `parts`: the polynomial, in the secret key k (1 <= k < p), whose coefficients
// are, part by part, a header (dtype and byte count) then the part's bytes as 32-bit words.  Distinct contents
// give distinct polynomials (the headers make the sequence decodable), which agree at a k the writer does not
// know with probability at most (n + 8) / (p - 1) for n coefficients, about 1e-13 for a fused layer's branches;
// a change within one 32-bit word is always seen (the difference is d * k^e, never 0 mod p).  -1 when a part is
// not a contiguous CPU tensor whose bytes are its values (a zero tensor holds none, a negated or conjugated view
// reads its bytes with a flip): the caller then keeps a copy instead.  The staleness check a fused ΔW makes at
// every inference call: one pass over the factors, nothing of them kept.
int64_t keyed_digest(const std::vector<torch::Tensor>& parts, int64_t key) {
  TORCH_CHECK(key > 0 && static_cast<uint64_t>(key) < kMersenne61, "keyed_digest: key must lie in [1, 2^61 - 1)");
  PolyDigest digest(static_cast<uint64_t>(key));
  for (const auto& part : parts) {
    if (!part.device().is_cpu() || !part.is_contiguous() || part._is_zerotensor() || part.is_neg() || part.is_conj() ||
        (part.numel() > 0 && part.data_ptr() == nullptr)) return -1;
    const int64_t size = part.numel() * part.element_size();
    TORCH_CHECK(size < (int64_t{1} << 40), "keyed_digest: a part of 2^40 bytes or more");
    digest.absorb((static_cast<uint64_t>(static_cast<int>(part.scalar_type()) + 1) << 40) | static_cast<uint64_t>(size));
    if (size > 0) digest.absorb_bytes(static_cast<const char*>(part.data_ptr()), size);
  }
  return static_cast<int64_t>(digest.finish());
}
"""

# NEURO_RM_FUSED=0: never build; ``enabled = False``: the eager periphery (the noise stream stays compiled)
_buildable = os.environ.get("NEURO_RM_FUSED", "1") != "0"
enabled = _buildable
_kernel: Any = None
_tried = False


# -fno-trapping-math lets the compiler evaluate both sides of a select (no value changes: no reassociation,
# contraction stays off); without it GCC 12 keeps the draws' float loop scalar on AVX2 (with the integer
# conversion: 9.1 -> 1.6 ns a draw on an AMD EPYC, the same bits)
# No -fopenmp: with torch's OpenMP backend (its Linux wheels' own) at::parallel_for splits a range over
# torch's threads only in code compiled with OpenMP, so here each loop runs whole on the calling thread (a
# torch built with its native backend would split them).  Built with it (torch's own runtime, the same bits
# on any thread count) the draws ran faster on 2 threads but the whole realistic forward pass slower
# (session 28, a scratch A/B on a 2-core machine): the loops are too short to pay for the forks.
_CFLAGS = ["-O3", "-march=native", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math"]


def _source_tag() -> str:
    """A short digest of the kernel's source and flags: a build cache shared by two checkouts must not hand
    one version's binary to the other (torch decides whether to rebuild by the name's own cache folder)."""
    return hashlib.sha256((_SOURCE + " ".join(_CFLAGS)).encode()).hexdigest()[:12]


def _cpu_tag() -> str:
    """A short digest of this CPU's model and instruction-set flags: the kernel is built with
    ``-march=native``, so a build cache shared between machines (an NFS home) must not hand one CPU's
    binary to another."""
    described = platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            described += "".join(line for line in info if line.startswith(("model name", "flags")))
    except OSError:
        described += platform.processor()
    return hashlib.sha256(described.encode()).hexdigest()[:12]


def kernel() -> Any:
    """The compiled module for the periphery read (``periphery_read``, ``binary_rows``, ``dac_levels``), or None where it
    cannot be built or is not ``enabled``."""
    return module() if enabled else None


def module() -> Any:
    """The compiled module (``periphery_read``, ``binary_rows``, ``dac_levels``, ``normal_fill``, ``keyed_digest``), built on
    first use whether or not the compiled periphery is ``enabled`` (the read-noise stream and the fused ΔW's
    check use it either way), or None where it cannot be built or ``NEURO_RM_FUSED=0``."""
    global _kernel, _tried
    if not _buildable:
        return None
    if not _tried:
        _tried = True
        try:
            quiet = logging.getLogger("torch.utils.cpp_extension")
            level = quiet.level
            quiet.setLevel(logging.ERROR)  # its import logs a CUDA notice a CPU build does not need
            try:
                from torch.utils.cpp_extension import load_inline
            finally:
                quiet.setLevel(level)

            _kernel = load_inline(
                name=f"neuro_rm_periphery_{_cpu_tag()}_{_source_tag()}",
                cpp_sources=_SOURCE,
                functions=["periphery_read", "binary_rows", "dac_levels", "normal_fill", "keyed_digest"],
                extra_cflags=_CFLAGS,
            )
        except Exception as error:  # noqa: BLE001 - any build failure means: use the eager periphery
            warnings.warn(f"neuro_rm: fused periphery kernel unavailable ({type(error).__name__}); using eager torch",
                          stacklevel=2)
    return _kernel
