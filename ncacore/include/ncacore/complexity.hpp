// The gzip complexity score (nca-spec.md "Complexity filter").
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include <zlib.h>

namespace nca {

// len(gzip.compress(data, 9)) / len(data), with a deflate stream that is
// reset rather than re-created per call (creating one costs ~300 KB of
// allocation). One scorer per thread.
class GzipScorer {
 public:
  GzipScorer();
  ~GzipScorer();
  GzipScorer(const GzipScorer&) = delete;
  GzipScorer& operator=(const GzipScorer&) = delete;

  // Compressed size in bytes, gzip container included.
  size_t compressed_size(const uint8_t* data, size_t n);
  double ratio(const uint8_t* data, size_t n) { return n ? double(compressed_size(data, n)) / double(n) : 0.0; }

 private:
  z_stream zs_{};
  std::vector<uint8_t> out_;
};

}  // namespace nca
