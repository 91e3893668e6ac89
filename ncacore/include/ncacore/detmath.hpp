// Deterministic float math shared by host and device. libm and CUDA's logf
// differ in the last bit, so everything that feeds sampling uses these
// (only +, -, *, / and sqrt, which IEEE 754 rounds identically everywhere,
// compiled without FMA contraction).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "ncacore/hd.hpp"

namespace nca {

NCA_HD uint32_t float_bits(float x) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(x);
#else
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
#endif
}

NCA_HD float bits_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
#endif
}

NCA_HD float det_sqrt(float x) {
#if defined(__CUDA_ARCH__)
  return __fsqrt_rn(x);
#else
  return std::sqrt(x);
#endif
}

// a*b + c with one rounding (IEEE fma): the same on every backend, and half
// the instructions of a separate multiply and add.
NCA_HD float det_fma(float a, float b, float c) {
#if defined(__CUDA_ARCH__)
  return __fmaf_rn(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}

NCA_HD float det_floor(float x) {
#if defined(__CUDA_ARCH__)
  return floorf(x);
#else
  return std::floor(x);
#endif
}

// e**x for x <= 0 (Cephes expf; 0 below -87).
NCA_HD float det_exp_nonpos(float x) {
  if (x < -87.0f) return 0.0f;
  const float kf = det_floor(x * 1.44269504088896341f + 0.5f);
  float r = x - kf * 0.693359375f;
  r = r - kf * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * (r * r) + r + 1.0f;
  return y * bits_float(static_cast<uint32_t>(static_cast<int>(kf) + 127) << 23);
}

// Natural log for positive normal floats (musl's logf: error < 1 ulp).
NCA_HD float det_log(float x) {
  const float ln2_hi = 6.9313812256e-01f, ln2_lo = 9.0580006145e-06f;
  const float Lg1 = 0xaaaaaa.0p-24f, Lg2 = 0xccce13.0p-25f;
  const float Lg3 = 0x91e9ee.0p-25f, Lg4 = 0xf89e26.0p-26f;
  uint32_t ix = float_bits(x);
  int k = static_cast<int>(ix >> 23) - 0x7f;
  // Reduce x into [sqrt(2)/2, sqrt(2)) so that f = x - 1 is small.
  ix = (ix & 0x007fffffu) + (0x3f800000u - 0x3f3504f3u);
  k += static_cast<int>(ix >> 23);
  ix = (ix & 0x007fffffu) + 0x3f3504f3u;
  float f = bits_float(ix) - 1.0f;
  float s = f / (2.0f + f);
  float z = s * s;
  float w = z * z;
  float t1 = w * (Lg2 + w * Lg4);
  float t2 = z * (Lg1 + w * Lg3);
  float R = t2 + t1;
  float hfsq = 0.5f * f * f;
  float dk = static_cast<float>(k);
  return s * (hfsq + R) + dk * ln2_lo - hfsq + f + dk * ln2_hi;
}

// Inverse error function on (-1, 1) (Giles, "Approximating the erfinv
// function", single-precision branch).
NCA_HD float det_erfinv(float x) {
  float w = -det_log((1.0f - x) * (1.0f + x));
  float p;
  if (w < 5.0f) {
    w = w - 2.5f;
    p = 2.81022636e-08f;
    p = 3.43273939e-07f + p * w;
    p = -3.5233877e-06f + p * w;
    p = -4.39150654e-06f + p * w;
    p = 0.00021858087f + p * w;
    p = -0.00125372503f + p * w;
    p = -0.00417768164f + p * w;
    p = 0.246640727f + p * w;
    p = 1.50140941f + p * w;
  } else {
    w = det_sqrt(w) - 3.0f;
    p = -0.000200214257f;
    p = 0.000100950558f + p * w;
    p = 0.00134934322f + p * w;
    p = -0.00367342844f + p * w;
    p = 0.00573950773f + p * w;
    p = -0.0076224613f + p * w;
    p = 0.00943887047f + p * w;
    p = 1.00167406f + p * w;
    p = 2.83297682f + p * w;
  }
  return p * x;
}

constexpr float kSqrt2 = 1.41421356237309515f;

// Standard normal by inversion of a uniform in (0, 1).
NCA_HD float normal_from_uniform(float u) { return kSqrt2 * det_erfinv(2.0f * u - 1.0f); }

// Standard normal truncated to [-2, 2] by inversion, as JAX's
// truncated_normal: a uniform in (erf(-sqrt2), erf(sqrt2)) through erfinv.
NCA_HD float truncated_normal_from_uniform(float u) {
  const float a = 0.954499736103642f;  // erf(2 / sqrt(2))
  float z = kSqrt2 * det_erfinv(a * (2.0f * u - 1.0f));
  return z < -2.0f ? -2.0f : (z > 2.0f ? 2.0f : z);
}

// Gumbel(0, 1) noise, -log(-log(u)).
NCA_HD float gumbel_from_uniform(float u) { return -det_log(-det_log(u)); }

}  // namespace nca
