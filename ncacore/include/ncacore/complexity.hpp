// The gzip complexity score (docs/nca-semantics.md "Complexity filter").
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include <zlib.h>

#include "ncacore/deflate_size.hpp"

namespace nca {

// How GzipScorer gets the length: kZlib compresses with the linked zlib
// (the reference); kModel uses DeflateSize (inputs up to its kMaxInput);
// kAuto takes the model where it applies and agrees with the linked zlib.
enum class GzipMethod { kAuto, kZlib, kModel };

// len(gzip.compress(data, 9)) / len(data). The zlib stream is created on
// first use and then reset rather than re-created per call (creating one
// costs ~300 KB of allocation). One scorer per thread.
class GzipScorer {
 public:
  explicit GzipScorer(GzipMethod method = GzipMethod::kAuto);
  ~GzipScorer();
  GzipScorer(const GzipScorer&) = delete;
  GzipScorer& operator=(const GzipScorer&) = delete;

  // Compressed size in bytes, gzip container included.
  size_t compressed_size(const uint8_t* data, size_t n);
  double ratio(const uint8_t* data, size_t n) { return n ? double(compressed_size(data, n)) / double(n) : 0.0; }

  // Whether DeflateSize reproduces the linked zlib (checked once per process
  // on a few inputs; false e.g. under zlib-ng, whose level 9 parses differently).
  static bool model_matches_zlib();

 private:
  size_t zlib_size(const uint8_t* data, size_t n);

  GzipMethod method_;
  z_stream zs_{};
  bool zlib_ready_ = false;
  std::vector<uint8_t> out_;
  DeflateSize model_;
};

}  // namespace nca
