#include "ncacore/complexity.hpp"

#include <stdexcept>

namespace nca {

GzipScorer::GzipScorer() {
  // windowBits 31 = 15 + gzip container: the same 10-byte header and 8-byte
  // trailer sizes as Python's gzip.compress, which deflates with memLevel 8.
  if (deflateInit2(&zs_, 9, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    throw std::runtime_error("zlib deflateInit2 failed");
}

GzipScorer::~GzipScorer() { deflateEnd(&zs_); }

size_t GzipScorer::compressed_size(const uint8_t* data, size_t n) {
  deflateReset(&zs_);
  const size_t bound = deflateBound(&zs_, uLong(n)) + 64;
  if (out_.size() < bound) out_.resize(bound);
  zs_.next_in = const_cast<Bytef*>(data);
  zs_.avail_in = uInt(n);
  zs_.next_out = out_.data();
  zs_.avail_out = uInt(out_.size());
  if (deflate(&zs_, Z_FINISH) != Z_STREAM_END) throw std::runtime_error("zlib deflate did not finish");
  return zs_.total_out;
}

}  // namespace nca
