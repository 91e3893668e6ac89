// The size of zlib's level-9 gzip output, computed without producing it.
//
// The complexity score only needs len(gzip.compress(data, 9)). For inputs
// that deflate emits as one block (n <= kMaxInput), that length follows from
// the LZ77 parse and the block's Huffman code lengths alone, so this class
// re-runs zlib 1.2.x's deflate_slow parse (lazy matching, the same chain
// order, limits and tie-breaks, with the candidates found through 3- and
// 4-byte chains rather than zlib's hash chain) and its tree construction (heap order,
// depth tie-break, length-limit repair, bit-length tree, stored/static/dynamic
// choice) and skips the bit packing and CRC. zlib itself stays the reference:
// GzipScorer checks this model against the linked zlib before using it, and
// tests compare the two on random and NCA inputs.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace nca {

class DeflateSize {
 public:
  // One block holds up to 16383 symbols; smaller inputs can never split.
  static constexpr size_t kMaxInput = 16000;
  static constexpr unsigned kBucketBits = 12;  // 4-byte chains

  DeflateSize();
  // Bytes of gzip level-9 output (10-byte header + deflate + 8-byte trailer)
  // for n <= kMaxInput.
  size_t gzip_size(const uint8_t* data, size_t n);

 private:
  void build_chains(size_t n);
  void parse(size_t n);
  bool walk4(unsigned strstart, unsigned nice, unsigned* best_len, unsigned* match_start) const;
  unsigned find_match(unsigned strstart, unsigned prev_length, unsigned lookahead, unsigned* match_start);
  unsigned zlib_chain_length(unsigned strstart);
  unsigned zlib_walk(unsigned strstart, unsigned prev_length, unsigned lookahead, unsigned* match_start) const;
  size_t block_bytes(size_t n);

  std::vector<uint8_t> buf_;             // input plus zero padding for the 258-byte compares
  std::vector<uint16_t> head3_, prev3_;  // earlier positions by first 3 bytes (hashed); 0 ends a chain
  std::vector<uint16_t> head4_, prev4_;  // earlier positions by first 4 bytes (hashed)
  // zlib's chain length at each position (earlier positions with the same
  // 15-bit hash), counted once per input when first needed.
  std::vector<uint16_t> zlib_rank_, zlib_seen_;
  bool zlib_rank_ready_ = false;
  uint32_t lfreq_[286];
  uint32_t dfreq_[30];
};

}  // namespace nca
