// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3"),
// the counter-based generator behind every random draw in ncalm: any draw is a
// pure function of (seed, counter), so rule k or simulation k of a stream is
// computed without touching the ones before it.
#pragma once
#include <cstdint>

#include "ncacore/hd.hpp"

namespace nca {

struct U32x4 {
  uint32_t v[4];
};

NCA_HD void mulhilo32(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  uint64_t p = static_cast<uint64_t>(a) * static_cast<uint64_t>(b);
  hi = static_cast<uint32_t>(p >> 32);
  lo = static_cast<uint32_t>(p);
}

NCA_HD U32x4 philox4x32_10(U32x4 ctr, uint32_t k0, uint32_t k1) {
  const uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u;
  const uint32_t W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
  for (int r = 0; r < 10; ++r) {
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo32(M0, ctr.v[0], hi0, lo0);
    mulhilo32(M1, ctr.v[2], hi1, lo1);
    U32x4 n;
    n.v[0] = hi1 ^ ctr.v[1] ^ k0;
    n.v[1] = lo1;
    n.v[2] = hi0 ^ ctr.v[3] ^ k1;
    n.v[3] = lo0;
    ctr = n;
    k0 += W0;
    k1 += W1;
  }
  return ctr;
}

// Stream domains: the high byte of counter word 1. Different purposes never
// share a counter, so e.g. a rule's weights are independent of the
// simulation that scores it (unlike the reference implementation).
enum Domain : uint32_t {
  kRuleWeights = 1,
  kTrainInitMix = 2,
  kTrainInitCells = 3,
  kTrainStepNoise = 4,
  kScoreInitMix = 5,
  kScoreInitCells = 6,
  kScoreStepNoise = 7,
};

// Stream indices (rule or simulation ids) are 56-bit.
constexpr uint64_t kMaxStreamIndex = (uint64_t(1) << 56) - 1;

// Four uint32 draws for (domain, index, a, b). `a` is a layer or step number,
// `b` a block number (element / 4, or cell * blocks + block).
NCA_HD U32x4 draw4(uint64_t seed, uint32_t domain, uint64_t index, uint32_t a, uint32_t b) {
  U32x4 c;
  c.v[0] = static_cast<uint32_t>(index);
  c.v[1] = (domain << 24) | static_cast<uint32_t>((index >> 32) & 0xFFFFFFu);
  c.v[2] = a;
  c.v[3] = b;
  return philox4x32_10(c, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
}

// Uniform in the open interval (0, 1): odd multiples of 2^-24, all exactly
// representable, symmetric around 1/2.
NCA_HD float uniform_open(uint32_t bits) {
  return static_cast<float>(((bits >> 9) << 1) | 1u) * 5.9604644775390625e-8f;  // 2^-24
}

}  // namespace nca
