// AVX2 forms of philox.hpp / detmath.hpp for the SIMD kernels: eight lanes
// of the very same operations (IEEE add/mul/div/sqrt, integer bit tricks),
// so each lane equals the scalar function bit for bit. Included only inside
// kernels_simd.inc's target region, once per instruction set, hence the
// internal linkage. NCA_SIMD_AVX512 picks the AVX-512 forms of the mask
// helpers at the end.
#pragma once
#include <immintrin.h>

#include <cstdint>

#include "ncacore/detmath.hpp"
#include "ncacore/philox.hpp"

namespace nca {
namespace {
namespace avx2 {

// 32x32 -> 64 products of eight lanes, split into high and low words.
inline void mulhilo(__m256i a, uint32_t m, __m256i& hi, __m256i& lo) {
  const __m256i mv = _mm256_set1_epi32(static_cast<int>(m));
  const __m256i even = _mm256_mul_epu32(a, mv);
  const __m256i odd = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), mv);
  hi = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
  lo = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
}

// Philox4x32-10 on eight counters at once (c[k] holds word k of each).
inline void philox(__m256i c[4], uint32_t k0, uint32_t k1) {
  for (int r = 0; r < 10; ++r) {
    __m256i hi0, lo0, hi1, lo1;
    mulhilo(c[0], 0xD2511F53u, hi0, lo0);
    mulhilo(c[2], 0xCD9E8D57u, hi1, lo1);
    const __m256i n0 = _mm256_xor_si256(_mm256_xor_si256(hi1, c[1]), _mm256_set1_epi32(static_cast<int>(k0)));
    const __m256i n2 = _mm256_xor_si256(_mm256_xor_si256(hi0, c[3]), _mm256_set1_epi32(static_cast<int>(k1)));
    c[0] = n0;
    c[1] = lo1;
    c[2] = n2;
    c[3] = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
}

inline __m256 uniform_open(__m256i bits) {
  const __m256i odd = _mm256_or_si256(_mm256_slli_epi32(_mm256_srli_epi32(bits, 9), 1), _mm256_set1_epi32(1));
  return _mm256_mul_ps(_mm256_cvtepi32_ps(odd), _mm256_set1_ps(5.9604644775390625e-8f));
}

inline __m256 log(__m256 x) {
  const __m256 ln2_hi = _mm256_set1_ps(6.9313812256e-01f), ln2_lo = _mm256_set1_ps(9.0580006145e-06f);
  const __m256 Lg1 = _mm256_set1_ps(0xaaaaaa.0p-24f), Lg2 = _mm256_set1_ps(0xccce13.0p-25f);
  const __m256 Lg3 = _mm256_set1_ps(0x91e9ee.0p-25f), Lg4 = _mm256_set1_ps(0xf89e26.0p-26f);
  const __m256i mant = _mm256_set1_epi32(0x007fffff);
  __m256i ix = _mm256_castps_si256(x);
  __m256i k = _mm256_sub_epi32(_mm256_srli_epi32(ix, 23), _mm256_set1_epi32(0x7f));
  ix = _mm256_add_epi32(_mm256_and_si256(ix, mant), _mm256_set1_epi32(0x3f800000 - 0x3f3504f3));
  k = _mm256_add_epi32(k, _mm256_srli_epi32(ix, 23));
  ix = _mm256_add_epi32(_mm256_and_si256(ix, mant), _mm256_set1_epi32(0x3f3504f3));
  const __m256 f = _mm256_sub_ps(_mm256_castsi256_ps(ix), _mm256_set1_ps(1.0f));
  const __m256 s = _mm256_div_ps(f, _mm256_add_ps(_mm256_set1_ps(2.0f), f));
  const __m256 z = _mm256_mul_ps(s, s);
  const __m256 w = _mm256_mul_ps(z, z);
  const __m256 t1 = _mm256_mul_ps(w, _mm256_add_ps(Lg2, _mm256_mul_ps(w, Lg4)));
  const __m256 t2 = _mm256_mul_ps(z, _mm256_add_ps(Lg1, _mm256_mul_ps(w, Lg3)));
  const __m256 R = _mm256_add_ps(t2, t1);
  const __m256 hfsq = _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), f), f);
  const __m256 dk = _mm256_cvtepi32_ps(k);
  __m256 r = _mm256_add_ps(_mm256_mul_ps(s, _mm256_add_ps(hfsq, R)), _mm256_mul_ps(dk, ln2_lo));
  r = _mm256_sub_ps(r, hfsq);
  r = _mm256_add_ps(r, f);
  return _mm256_add_ps(r, _mm256_mul_ps(dk, ln2_hi));
}

inline __m256 horner(__m256 w, const float* c, int n) {
  __m256 p = _mm256_set1_ps(c[0]);
  for (int i = 1; i < n; ++i) p = _mm256_add_ps(_mm256_set1_ps(c[i]), _mm256_mul_ps(p, w));
  return p;
}

inline __m256 erfinv(__m256 x) {
  static const float central[9] = {2.81022636e-08f,  3.43273939e-07f, -3.5233877e-06f,
                                   -4.39150654e-06f, 0.00021858087f,  -0.00125372503f,
                                   -0.00417768164f,  0.246640727f,    1.50140941f};
  static const float tail[9] = {-0.000200214257f, 0.000100950558f, 0.00134934322f,
                                -0.00367342844f,  0.00573950773f,  -0.0076224613f,
                                0.00943887047f,   1.00167406f,     2.83297682f};
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 w = _mm256_xor_ps(_mm256_set1_ps(-0.0f),  // exact negation
                                 log(_mm256_mul_ps(_mm256_sub_ps(one, x), _mm256_add_ps(one, x))));
  const __m256 pc = horner(_mm256_sub_ps(w, _mm256_set1_ps(2.5f)), central, 9);
  const __m256 use_central = _mm256_cmp_ps(w, _mm256_set1_ps(5.0f), _CMP_LT_OQ);
  // Truncated-normal weights (|x| <= erf(sqrt 2)) never reach the tail branch.
  if (_mm256_movemask_ps(use_central) == 0xFF) return _mm256_mul_ps(pc, x);
  const __m256 pt = horner(_mm256_sub_ps(_mm256_sqrt_ps(w), _mm256_set1_ps(3.0f)), tail, 9);
  return _mm256_mul_ps(_mm256_blendv_ps(pt, pc, use_central), x);
}

// Eight truncated-normal rule weights from eight uniforms (rule.hpp).
inline __m256 truncated_normal(__m256 u) {
  const __m256 t = _mm256_sub_ps(_mm256_mul_ps(_mm256_set1_ps(2.0f), u), _mm256_set1_ps(1.0f));
  const __m256 x = _mm256_mul_ps(_mm256_set1_ps(0.954499736103642f), t);
  const __m256 z = _mm256_mul_ps(_mm256_set1_ps(kSqrt2), erfinv(x));
  return _mm256_max_ps(_mm256_min_ps(z, _mm256_set1_ps(2.0f)), _mm256_set1_ps(-2.0f));
}

// Lane masks and 16-entry table lookups, the two things AVX-512 (VL) does
// in fewer instructions: compares write mask registers and a masked move is
// one uop where vblendvps takes two or three, and vpermt2ps looks up a
// 16-entry table where AVX2 needs two permutes and a blend. The results are
// the same bits either way. (Compiled for AVX-512, GCC leaves vblendvps as
// it is inside a target region, so the AVX-512 path asks for masks itself.)
#if NCA_SIMD_AVX512
using Mask = __mmask8;
template <int kPredicate>
inline Mask compare(__m256 a, __m256 b) { return _mm256_cmp_ps_mask(a, b, kPredicate); }
inline Mask both(Mask a, Mask b) { return a & b; }
inline unsigned lanes(Mask m) { return m; }
inline __m256 select(Mask m, __m256 yes, __m256 no) { return _mm256_mask_blend_ps(m, no, yes); }
inline __m256 lookup16(const float* table, __m256i i) {
  return _mm256_permutex2var_ps(_mm256_loadu_ps(table), i, _mm256_loadu_ps(table + 8));
}
#else
using Mask = __m256;  // all-ones lanes where true
template <int kPredicate>
inline Mask compare(__m256 a, __m256 b) { return _mm256_cmp_ps(a, b, kPredicate); }
inline Mask both(Mask a, Mask b) { return _mm256_and_ps(a, b); }
inline unsigned lanes(Mask m) { return unsigned(_mm256_movemask_ps(m)); }
inline __m256 select(Mask m, __m256 yes, __m256 no) { return _mm256_blendv_ps(no, yes, m); }
inline __m256 lookup16(const float* table, __m256i i) {
  const __m256 high = _mm256_castsi256_ps(_mm256_cmpgt_epi32(i, _mm256_set1_epi32(7)));
  return _mm256_blendv_ps(_mm256_permutevar8x32_ps(_mm256_loadu_ps(table), i),
                          _mm256_permutevar8x32_ps(_mm256_loadu_ps(table + 8), i), high);
}
#endif

}  // namespace avx2
}  // namespace
}  // namespace nca
