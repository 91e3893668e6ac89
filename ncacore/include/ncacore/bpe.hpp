// Exact byte-level BPE with GPT-2's (r50k) pre-tokenizer: the ids tiktoken's
// encode_ordinary gives, single-threaded but faster, because each distinct
// piece ("word") is merged once and then served from a cache.
//
// Pre-tokenizer: tiktoken's r50k pattern, leftmost-first alternation,
//   '(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+$|\s+(?!\S)|\s
// coded by hand over code-point classes (letter, number, White_Space, other)
// that the caller supplies for every code point, so the core needs no Unicode
// tables of its own. A code point classed kUnsure makes encode() decline the
// text, so that the caller can hand it to the reference instead.
// Merges: tiktoken's rule, repeatedly join the adjacent pair whose joined
// bytes have the lowest rank (the leftmost of equals), with a heap so that a
// long piece costs O(n log n) instead of O(n^2).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace nca {

enum CharClass : uint8_t { kOther = 0, kLetter = 1, kNumber = 2, kSpace = 3, kUnsure = 4 };
constexpr uint32_t kCodePoints = 0x110000;

// Byte string -> two uint32 values, open addressing; keys live in one arena.
class BytesMap {
 public:
  struct Slot {
    uint64_t hash;
    uint32_t key_off, key_len;  // key_len 0: empty (keys are never empty)
    uint32_t a, b;
  };
  BytesMap();
  const Slot* find(const uint8_t* key, size_t n, uint64_t hash) const;
  void insert(const uint8_t* key, size_t n, uint64_t hash, uint32_t a, uint32_t b);  // key not present
  void clear();
  size_t size() const { return size_; }

 private:
  void grow();
  std::vector<Slot> slots_;
  std::string keys_;
  size_t mask_, size_ = 0;
};

uint64_t hash_bytes(const uint8_t* p, size_t n);

class BytePairEncoder {
 public:
  // tokens[r]: the bytes of rank r (= id r); all 256 single bytes must be among them, no two equal.
  // classes: one CharClass per code point, kCodePoints of them.
  // cache_entries: the piece cache is emptied when it grows past this many pieces.
  BytePairEncoder(const std::vector<std::string>& tokens, const std::vector<uint8_t>& classes,
                  size_t cache_entries);
  // Appends the ids of `utf8` (valid UTF-8) to out and returns true; returns false with out as it
  // was when the text holds a code point classed kUnsure. Not thread-safe (the cache).
  bool encode(std::string_view utf8, std::vector<uint32_t>& out);
  // The ids of one piece by the merge rule alone (no whole-piece lookup, no cache): the reference
  // the cached path is tested against, and what fills the cache.
  void merge(const uint8_t* p, size_t n, std::vector<uint32_t>& out) const;
  size_t vocab_size() const { return n_tokens_; }
  size_t cached_pieces() const { return cache_.size(); }

 private:
  uint32_t rank(const uint8_t* p, size_t n) const;  // UINT32_MAX when not a token
  void encode_piece(const uint8_t* p, size_t n, std::vector<uint32_t>& out);

  BytesMap ranks_;  // token bytes -> (rank, unused)
  BytesMap cache_;  // piece bytes -> (offset, count) in cache_ids_
  std::vector<uint32_t> cache_ids_;
  std::vector<uint8_t> classes_;
  uint32_t byte_rank_[256];
  size_t n_tokens_, max_token_len_ = 0, cache_entries_;
};

}  // namespace nca
