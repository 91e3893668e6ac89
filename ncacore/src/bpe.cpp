#include "ncacore/bpe.hpp"

#include <algorithm>
#include <cstring>
#include <functional>
#include <limits>
#include <queue>
#include <stdexcept>

namespace nca {

namespace {

constexpr uint32_t kNoRank = UINT32_MAX;
// Longer pieces are merged every time they occur: they rarely repeat, and would crowd the cache.
constexpr size_t kMaxCachedPiece = 256;

inline uint64_t mix(uint64_t h) {
  h ^= h >> 32;
  h *= 0xd6e8feb86659fd93ull;
  h ^= h >> 32;
  return h;
}

// The end of the contraction ('s 'd 'm 't 'll 've 're, lowercase only as in the pattern) at s[i] == '\'', or 0.
inline size_t contraction(const uint8_t* s, size_t i, size_t n) {
  if (i + 1 >= n) return 0;
  const uint8_t a = s[i + 1];
  if (a == 's' || a == 'd' || a == 'm' || a == 't') return i + 2;
  if (i + 2 < n) {
    const uint8_t b = s[i + 2];
    if ((a == 'l' && b == 'l') || (a == 'v' && b == 'e') || (a == 'r' && b == 'e')) return i + 3;
  }
  return 0;
}

}  // namespace

uint64_t hash_bytes(const uint8_t* p, size_t n) {
  uint64_t h = 0x9e3779b97f4a7c15ull ^ n;
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    h = mix(h ^ w) * 0x9e3779b97f4a7c15ull;
    p += 8;
    n -= 8;
  }
  uint64_t w = 0;
  std::memcpy(&w, p, n);
  return mix(h ^ w ^ (uint64_t{n} << 59));
}

BytesMap::BytesMap() : slots_(1024, Slot{0, 0, 0, 0, 0}), mask_(1023) {}

const BytesMap::Slot* BytesMap::find(const uint8_t* key, size_t n, uint64_t hash) const {
  for (size_t i = hash & mask_;; i = (i + 1) & mask_) {
    const Slot& s = slots_[i];
    if (s.key_len == 0) return nullptr;
    if (s.hash == hash && s.key_len == n && std::memcmp(keys_.data() + s.key_off, key, n) == 0) return &s;
  }
}

void BytesMap::insert(const uint8_t* key, size_t n, uint64_t hash, uint32_t a, uint32_t b) {
  if (n == 0 || n > UINT32_MAX || keys_.size() + n > UINT32_MAX) throw std::length_error("BytesMap: key size");
  if (2 * (size_ + 1) > slots_.size()) grow();
  size_t i = hash & mask_;
  while (slots_[i].key_len != 0) i = (i + 1) & mask_;
  slots_[i] = Slot{hash, static_cast<uint32_t>(keys_.size()), static_cast<uint32_t>(n), a, b};
  keys_.append(reinterpret_cast<const char*>(key), n);
  ++size_;
}

void BytesMap::grow() {
  std::vector<Slot> old(2 * slots_.size(), Slot{0, 0, 0, 0, 0});
  old.swap(slots_);
  mask_ = slots_.size() - 1;
  for (const Slot& s : old) {
    if (s.key_len == 0) continue;
    size_t i = s.hash & mask_;
    while (slots_[i].key_len != 0) i = (i + 1) & mask_;
    slots_[i] = s;
  }
}

void BytesMap::clear() {
  std::fill(slots_.begin(), slots_.end(), Slot{0, 0, 0, 0, 0});
  keys_.clear();
  size_ = 0;
}

BytePairEncoder::BytePairEncoder(const std::vector<std::string>& tokens, const std::vector<uint8_t>& classes,
                                 size_t cache_entries)
    : classes_(classes), n_tokens_(tokens.size()), cache_entries_(cache_entries) {
  if (classes_.size() != kCodePoints) throw std::invalid_argument("classes must have one entry per code point");
  for (uint8_t c : classes_)
    if (c > kUnsure) throw std::invalid_argument("classes holds a value that is not a character class");
  if (tokens.size() >= kNoRank) throw std::invalid_argument("too many tokens");
  std::fill(byte_rank_, byte_rank_ + 256, kNoRank);
  for (size_t r = 0; r < tokens.size(); ++r) {
    const auto* p = reinterpret_cast<const uint8_t*>(tokens[r].data());
    const size_t n = tokens[r].size();
    if (n == 0) throw std::invalid_argument("token " + std::to_string(r) + " is empty");
    const uint64_t h = hash_bytes(p, n);
    if (ranks_.find(p, n, h)) throw std::invalid_argument("token " + std::to_string(r) + " repeats an earlier one");
    ranks_.insert(p, n, h, static_cast<uint32_t>(r), 0);
    if (n == 1) byte_rank_[p[0]] = static_cast<uint32_t>(r);
    max_token_len_ = std::max(max_token_len_, n);
  }
  for (int b = 0; b < 256; ++b)
    if (byte_rank_[b] == kNoRank) throw std::invalid_argument("byte " + std::to_string(b) + " is not a token");
}

uint32_t BytePairEncoder::rank(const uint8_t* p, size_t n) const {
  if (n == 1) return byte_rank_[p[0]];
  if (n > max_token_len_) return kNoRank;
  const BytesMap::Slot* s = ranks_.find(p, n, hash_bytes(p, n));
  return s ? s->a : kNoRank;
}

void BytePairEncoder::merge(const uint8_t* p, size_t n, std::vector<uint32_t>& out) const {
  if (n == 1) {
    out.push_back(byte_rank_[p[0]]);
    return;
  }
  // Part boundaries 0..n, the live ones linked by next/prev. pair[i]: the rank of the live part
  // starting at i joined with the one after it (kNoRank: none, or i is no longer a boundary).
  // The heap orders by (rank, position), so equal ranks merge leftmost first, as tiktoken's scan.
  // An entry is current iff pair[i] still holds its rank: a boundary's pair only ever grows, and
  // different bytes have different ranks.
  // Positions are 32-bit (the heap packs rank and position in 64 bits): one piece, a run of
  // letters or of spaces without a break, must stay under 4 GiB.
  if (n >= std::numeric_limits<uint32_t>::max()) throw std::length_error("bpe: a piece of 4 GiB or more");
  const uint32_t m = static_cast<uint32_t>(n);
  std::vector<uint32_t> next(n + 1), prev(n + 1), pair(n + 1, kNoRank);
  std::vector<uint64_t> heap_store;
  heap_store.reserve(n);
  std::priority_queue<uint64_t, std::vector<uint64_t>, std::greater<uint64_t>> heap(std::greater<uint64_t>(),
                                                                                    std::move(heap_store));
  for (uint32_t i = 0; i <= m; ++i) {
    next[i] = i + 1;
    prev[i] = i - 1;
  }
  for (uint32_t i = 0; i + 1 < m; ++i) {
    pair[i] = rank(p + i, 2);
    if (pair[i] != kNoRank) heap.push(uint64_t{pair[i]} << 32 | i);
  }
  while (!heap.empty()) {
    const uint64_t top = heap.top();
    heap.pop();
    const uint32_t i = static_cast<uint32_t>(top), r = static_cast<uint32_t>(top >> 32);
    if (pair[i] != r) continue;
    const uint32_t j = next[i], k = next[j];  // the part [j, k) joins [i, j)
    next[i] = k;
    if (k < m) prev[k] = i;
    pair[j] = kNoRank;
    pair[i] = k < m ? rank(p + i, next[k] - i) : kNoRank;
    if (pair[i] != kNoRank) heap.push(uint64_t{pair[i]} << 32 | i);
    if (i > 0) {
      const uint32_t h = prev[i];
      pair[h] = rank(p + h, k - h);
      if (pair[h] != kNoRank) heap.push(uint64_t{pair[h]} << 32 | h);
    }
  }
  for (uint32_t i = 0; i < m; i = next[i]) out.push_back(rank(p + i, next[i] - i));
}

void BytePairEncoder::encode_piece(const uint8_t* p, size_t n, std::vector<uint32_t>& out) {
  if (n == 1) {
    out.push_back(byte_rank_[p[0]]);
    return;
  }
  if (n > kMaxCachedPiece) {  // not cached: a token itself, or merged
    const uint32_t r = rank(p, n);
    if (r != kNoRank) {
      out.push_back(r);
    } else {
      merge(p, n, out);
    }
    return;
  }
  const uint64_t h = hash_bytes(p, n);
  if (n <= max_token_len_) {
    if (const BytesMap::Slot* s = ranks_.find(p, n, h)) {  // a whole piece that is a token: tiktoken's shortcut
      out.push_back(s->a);
      return;
    }
  }
  if (const BytesMap::Slot* s = cache_.find(p, n, h)) {
    out.insert(out.end(), cache_ids_.begin() + s->a, cache_ids_.begin() + s->a + s->b);
    return;
  }
  const size_t before = out.size();
  merge(p, n, out);
  if (cache_entries_ == 0) return;
  if (cache_.size() >= cache_entries_ || cache_ids_.size() > UINT32_MAX / 2) {
    cache_.clear();
    cache_ids_.clear();
  }
  cache_.insert(p, n, h, static_cast<uint32_t>(cache_ids_.size()), static_cast<uint32_t>(out.size() - before));
  cache_ids_.insert(cache_ids_.end(), out.begin() + before, out.end());
}

bool BytePairEncoder::encode(std::string_view utf8, std::vector<uint32_t>& out) {
  const auto* s = reinterpret_cast<const uint8_t*>(utf8.data());
  const size_t n = utf8.size(), base = out.size();
  // The class of the code point at s[i] and its length in bytes. A sequence cut short by the end
  // of the text reads as kUnsure (the precondition is valid UTF-8; this keeps reads inside it).
  auto cls = [&](size_t i, size_t& len) -> uint8_t {
    const uint8_t b = s[i];
    if (b < 0x80) {
      len = 1;
      return classes_[b];
    }
    uint32_t cp;
    if (b < 0xE0) {
      len = 2;
      cp = b & 0x1Fu;
    } else if (b < 0xF0) {
      len = 3;
      cp = b & 0x0Fu;
    } else {
      len = 4;
      cp = b & 0x07u;
    }
    if (i + len > n) return kUnsure;
    for (size_t k = 1; k < len; ++k) cp = cp << 6 | (s[i + k] & 0x3Fu);
    return cp < kCodePoints ? classes_[cp] : static_cast<uint8_t>(kUnsure);
  };
  size_t i = 0, len, len2;
  while (i < n) {
    const uint8_t c = cls(i, len);
    if (c == kUnsure) {
      out.resize(base);
      return false;
    }
    size_t end = s[i] == '\'' ? contraction(s, i, n) : 0;
    if (end == 0) {
      uint8_t run = c;
      size_t k = i + len;
      if (s[i] == ' ' && k < n) {  // " ?X+": a space joins the letters, numbers or others after it
        const uint8_t c2 = cls(k, len2);
        if (c2 != kSpace && c2 != kUnsure) {  // an unsure one is declined on the loop's next turn
          run = c2;
          k += len2;
        }
      }
      if (run != kSpace) {
        while (k < n && cls(k, len2) == run) k += len2;
        end = k;
      } else {
        // White space: to the end of the text all of it ("\s+$"); before other text all but its
        // last code point ("\s+(?!\S)"), which goes with what follows (a space) or alone ("\s").
        size_t last = i;
        while (k < n && cls(k, len2) == kSpace) {
          last = k;
          k += len2;
        }
        end = (k == n || last == i) ? k : last;
      }
    }
    encode_piece(s + i, end - i, out);
    i = end;
  }
  return true;
}

}  // namespace nca
