// zlib 1.2.x deflate.c (deflate_slow, longest_match) and trees.c
// (_tr_flush_block and the tree builders) reduced to what decides the output
// length. Names follow zlib's so the two can be read side by side.
#include "ncacore/deflate_size.hpp"

#include <algorithm>
#include <cstring>

namespace nca {

namespace {
constexpr unsigned kMinMatch = 3, kMaxMatch = 258;
constexpr unsigned kHashBits = 15, kHashShift = 5, kHashMask = (1u << kHashBits) - 1;  // memLevel 8
// Level 9's configuration_table row.
constexpr unsigned kGoodLength = 32, kMaxLazy = 258, kNiceLength = 258, kMaxChain = 4096;
constexpr unsigned kTooFar = 4096;
constexpr int kLCodes = 286, kDCodes = 30, kBLCodes = 19, kHeapSize = 2 * kLCodes + 1, kMaxBits = 15;
constexpr int kEndBlock = 256, kLiterals = 256;
constexpr size_t kPad = kMaxMatch + 16;
constexpr size_t kGzipOverhead = 10 + 8;

constexpr int kExtraLBits[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
constexpr int kExtraDBits[30] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};
constexpr int kExtraBLBits[19] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 3, 7};
constexpr uint8_t kBLOrder[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};

// trees.c's _length_code and _dist_code (tr_static_init).
struct CodeTables {
  uint8_t length_code[256];
  uint8_t dist_code[512];
  uint8_t static_llen[288];
  CodeTables() {
    int length = 0, code = 0;
    for (; code < 28; ++code)
      for (int n = 0; n < (1 << kExtraLBits[code]); ++n) length_code[length++] = uint8_t(code);
    length_code[255] = uint8_t(code);  // match length 258 uses code 285
    int dist = 0;
    for (code = 0; code < 16; ++code)
      for (int n = 0; n < (1 << kExtraDBits[code]); ++n) dist_code[dist++] = uint8_t(code);
    dist >>= 7;
    for (; code < kDCodes; ++code)
      for (int n = 0; n < (1 << (kExtraDBits[code] - 7)); ++n) dist_code[256 + dist++] = uint8_t(code);
    for (int n = 0; n < 288; ++n) static_llen[n] = n <= 143 ? 8 : n <= 255 ? 9 : n <= 279 ? 7 : 8;
  }
  int d_code(unsigned dist) const { return dist < 256 ? dist_code[dist] : dist_code[256 + (dist >> 7)]; }
};
const CodeTables kTables;

// One Huffman tree under construction (ct_data with its unions split apart).
struct Tree {
  uint32_t freq[kHeapSize];
  uint16_t dad[kHeapSize];
  uint16_t len[kHeapSize];
  int max_code = -1;
};

// zlib's tree_desc: the static lengths (or none), extra bits, and limits.
struct TreeDesc {
  const uint8_t* static_len;  // nullptr for the bit-length tree; the distance tree's are all 5
  bool static_all5;
  const int* extra;
  int extra_base, elems, max_length;
};

// build_tree + gen_bitlen: code lengths into t.len, costs into opt_len/static_len.
// The heap holds (freq, depth, node) packed in one integer; comparing
// entry >> 16 is zlib's smaller() (lower freq, then depth <= depth), and the
// node bits below never decide, so the heap moves exactly as zlib's.
class TreeBuilder {
 public:
  void build(Tree& t, const TreeDesc& d, uint64_t& opt_len, uint64_t& static_len) {
    heap_len_ = 0;
    heap_max_ = kHeapSize;
    int max_code = -1;
    for (int n = 0; n < d.elems; ++n) {
      if (t.freq[n] != 0) {
        depth_[n] = 0;
        heap_[++heap_len_] = entry(t, max_code = n);
      } else {
        t.len[n] = 0;
      }
    }
    while (heap_len_ < 2) {  // deflate needs at least two codes
      const int node = max_code < 2 ? ++max_code : 0;
      t.freq[node] = 1;
      depth_[node] = 0;
      heap_[++heap_len_] = entry(t, node);
      opt_len--;
      if (d.static_len || d.static_all5) static_len -= static_length(d, node);
    }
    t.max_code = max_code;
    for (int n = heap_len_ / 2; n >= 1; --n) downheap(n);
    int node = d.elems;
    do {
      const int n = int(heap_[1] & 0xFFFF);
      heap_[1] = heap_[heap_len_--];
      downheap(1);
      const int m = int(heap_[1] & 0xFFFF);
      sorted_[--heap_max_] = uint16_t(n);
      sorted_[--heap_max_] = uint16_t(m);
      t.freq[node] = t.freq[n] + t.freq[m];
      depth_[node] = uint8_t((depth_[n] >= depth_[m] ? depth_[n] : depth_[m]) + 1);
      t.dad[n] = t.dad[m] = uint16_t(node);
      heap_[1] = entry(t, node++);
      downheap(1);
    } while (heap_len_ >= 2);
    sorted_[--heap_max_] = uint16_t(heap_[1] & 0xFFFF);
    gen_bitlen(t, d, opt_len, static_len);
  }

 private:
  static unsigned static_length(const TreeDesc& d, int n) { return d.static_all5 ? 5u : d.static_len[n]; }
  uint64_t entry(const Tree& t, int n) const {
    return (uint64_t(t.freq[n]) << 24) | (uint64_t(depth_[n]) << 16) | uint64_t(n);
  }
  // pqdownheap, with the smaller son chosen without a branch (a sentinel
  // past the end is never smaller).
  void downheap(int k) {
    const uint64_t v = heap_[k];
    heap_[heap_len_ + 1] = ~uint64_t(0);
    int j = k << 1;
    while (j <= heap_len_) {
      uint64_t hj = heap_[j];
      const uint64_t hj1 = heap_[j + 1];
      const bool right = (hj1 >> 16) <= (hj >> 16);
      j += right;
      hj = right ? hj1 : hj;
      if ((v >> 16) <= (hj >> 16)) break;
      heap_[k] = hj;
      k = j;
      j <<= 1;
    }
    heap_[k] = v;
  }
  void gen_bitlen(Tree& t, const TreeDesc& d, uint64_t& opt_len, uint64_t& static_len) {
    uint16_t bl_count[kMaxBits + 1] = {};
    int overflow = 0;
    t.len[sorted_[heap_max_]] = 0;
    int h = heap_max_ + 1;
    for (; h < kHeapSize; ++h) {
      const int n = sorted_[h];
      int bits = t.len[t.dad[n]] + 1;
      if (bits > d.max_length) bits = d.max_length, overflow++;
      t.len[n] = uint16_t(bits);
      if (n > t.max_code) continue;
      bl_count[bits]++;
      const int xbits = n >= d.extra_base ? d.extra[n - d.extra_base] : 0;
      opt_len += uint64_t(t.freq[n]) * unsigned(bits + xbits);
      if (d.static_len || d.static_all5) static_len += uint64_t(t.freq[n]) * (static_length(d, n) + xbits);
    }
    if (overflow == 0) return;
    do {
      int bits = d.max_length - 1;
      while (bl_count[bits] == 0) bits--;
      bl_count[bits]--;
      bl_count[bits + 1] += 2;
      bl_count[d.max_length]--;
      overflow -= 2;
    } while (overflow > 0);
    for (int bits = d.max_length; bits != 0; --bits) {
      int n = bl_count[bits];
      while (n != 0) {
        const int m = sorted_[--h];
        if (m > t.max_code) continue;
        if (t.len[m] != unsigned(bits)) {
          opt_len += (uint64_t(bits) - t.len[m]) * t.freq[m];
          t.len[m] = uint16_t(bits);
        }
        n--;
      }
    }
  }

  uint64_t heap_[kHeapSize + 1];  // active heap, 1-based
  uint16_t sorted_[kHeapSize];    // nodes by increasing frequency, from heap_max_ up
  uint8_t depth_[kHeapSize];
  int heap_len_ = 0, heap_max_ = 0;
};

// scan_tree: the bit-length-code frequencies that describe one tree.
void scan_tree(Tree& t, uint32_t* bl_freq) {
  int prevlen = -1, nextlen = t.len[0], count = 0, max_count = 7, min_count = 4;
  if (nextlen == 0) max_count = 138, min_count = 3;
  t.len[t.max_code + 1] = 0xffff;  // guard
  for (int n = 0; n <= t.max_code; ++n) {
    const int curlen = nextlen;
    nextlen = t.len[n + 1];
    if (++count < max_count && curlen == nextlen) {
      continue;
    } else if (count < min_count) {
      bl_freq[curlen] += count;
    } else if (curlen != 0) {
      if (curlen != prevlen) bl_freq[curlen]++;
      bl_freq[16]++;
    } else if (count <= 10) {
      bl_freq[17]++;
    } else {
      bl_freq[18]++;
    }
    count = 0;
    prevlen = curlen;
    if (nextlen == 0) {
      max_count = 138, min_count = 3;
    } else if (curlen == nextlen) {
      max_count = 6, min_count = 3;
    } else {
      max_count = 7, min_count = 4;
    }
  }
}

// min(common prefix of a and b, 258); reads up to 264 bytes of each.
inline unsigned match_len(const uint8_t* a, const uint8_t* b, unsigned from = 0) {
  for (unsigned len = from; len < kMaxMatch; len += 8) {
    uint64_t x, y;
    std::memcpy(&x, a + len, 8);
    std::memcpy(&y, b + len, 8);
    if (x != y) return std::min(kMaxMatch, len + (unsigned(__builtin_ctzll(x ^ y)) >> 3));
  }
  return kMaxMatch;
}
inline uint64_t load64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
// The bytes a match must share to reach `len` (<= 8) bytes, as a mask of the first word.
inline uint64_t prefix_mask(unsigned len) { return len >= 8 ? ~uint64_t(0) : (uint64_t(1) << (8 * len)) - 1; }
inline uint32_t load32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
// zlib's hash of the 3 bytes at p (memLevel 8: 15 bits, shift 5).
inline unsigned hash3(const uint8_t* p) {
  return ((unsigned(p[0]) << (2 * kHashShift)) ^ (unsigned(p[1]) << kHashShift) ^ p[2]) & kHashMask;
}
}  // namespace

DeflateSize::DeflateSize() : head3_(size_t(1) << kBucketBits, 0), head4_(size_t(1) << kBucketBits, 0) {
  buf_.reserve(kMaxInput + kPad);
  prev3_.reserve(kMaxInput);
  prev4_.reserve(kMaxInput);
}

size_t DeflateSize::gzip_size(const uint8_t* data, size_t n) {
  buf_.assign(data, data + n);
  buf_.resize(n + kPad, 0);
  std::fill(std::begin(lfreq_), std::end(lfreq_), 0u);
  std::fill(std::begin(dfreq_), std::end(dfreq_), 0u);
  lfreq_[kEndBlock] = 1;
  zlib_rank_ready_ = false;
  build_chains(n);
  parse(n);
  return kGzipOverhead + block_bytes(n);
}

// Chains of earlier positions by their first 3 and first 4 bytes (hashed to
// kBucketBits, so a walk checks the bytes). Position 0 is left out: zlib
// never matches it (its chain index doubles as "empty").
void DeflateSize::build_chains(size_t n) {
  const uint8_t* w = buf_.data();
  std::fill(head3_.begin(), head3_.end(), uint16_t(0));
  std::fill(head4_.begin(), head4_.end(), uint16_t(0));
  prev3_.assign(n, 0);
  prev4_.assign(n, 0);
  constexpr unsigned shift = 32 - kBucketBits;
  for (unsigned q = 1; q + kMinMatch <= n; ++q) {
    const uint32_t v = load32(w + q);  // the byte past the end is padding
    const unsigned b3 = ((v & 0xFFFFFFu) * 2654435761u) >> shift, b4 = (v * 2246822519u) >> shift;
    prev3_[q] = head3_[b3];
    head3_[b3] = uint16_t(q);
    if (q + 4 <= n) {
      prev4_[q] = head4_[b4];
      head4_[b4] = uint16_t(q);
    }
  }
}

// zlib's longest_match, walking its own hash chain: the positions q in
// [1, strstart) with the same 15-bit hash, most recent first, at most
// `chain` of them (collisions count). Keeps the first of the longest matches,
// only matches longer than prev_length, stops at nice_match, caps at the
// lookahead. zlib's quick rejects only skip candidates that cannot be longer,
// so comparing whole prefixes gives the same answer. O(strstart): only for
// the rare cases find_match cannot shortcut.
unsigned DeflateSize::zlib_walk(unsigned strstart, unsigned prev_length, unsigned lookahead,
                                unsigned* match_start) const {
  unsigned chain = prev_length >= kGoodLength ? kMaxChain >> 2 : kMaxChain;
  unsigned best_len = prev_length;
  const unsigned nice = std::min(kNiceLength, lookahead);
  const uint8_t* scan = buf_.data() + strstart;
  const unsigned h = hash3(scan);
  for (unsigned q = strstart - 1; q >= 1 && chain != 0; --q) {
    if (hash3(buf_.data() + q) != h) continue;
    --chain;
    const unsigned len = match_len(scan, buf_.data() + q);
    if (len > best_len) {
      *match_start = q;
      best_len = len;
      if (len >= nice) break;
    }
  }
  return std::min(best_len, lookahead);
}

// The first-longest match of at least max(4, *best_len + 1) bytes on the
// 4-byte chain of strstart; true if it found one. Most candidates fail within
// their first 8 bytes, so each is first tested on one masked compare of the
// bytes the needed length requires.
bool DeflateSize::walk4(unsigned strstart, unsigned nice, unsigned* best_len, unsigned* match_start) const {
  const uint8_t* w = buf_.data();
  const uint8_t* scan = w + strstart;
  const uint64_t head = load64(scan);
  unsigned need = std::max(4u, *best_len + 1);
  uint64_t mask = prefix_mask(need);
  bool found = false;
  for (unsigned q = prev4_[strstart]; q != 0; q = prev4_[q]) {
    const uint64_t diff = head ^ load64(w + q);
    if (diff & mask) continue;
    const unsigned len = diff ? unsigned(__builtin_ctzll(diff)) >> 3 : match_len(scan, w + q, 8);
    if (len >= need) {
      *match_start = q;
      *best_len = len;
      found = true;
      if (len >= nice) break;
      need = len + 1;
      mask = prefix_mask(need);
    }
  }
  return found;
}

// longest_match's answer from fewer candidates. Every candidate that matches
// 4 or more bytes shares the first 4, so the 4-byte chain (same order, most
// recent first) holds the same first-longest match; a 3-byte match counts
// only when nothing longer exists and is then the most recent position with
// the same 3 bytes (also the answer for the last 3 bytes, where no match can
// be longer). Exact when zlib's walk would visit its whole chain, i.e. the
// chain fits the budget; otherwise walk as zlib does.
unsigned DeflateSize::find_match(unsigned strstart, unsigned prev_length, unsigned lookahead,
                                 unsigned* match_start) {
  const uint8_t* w = buf_.data();
  const uint8_t* scan = w + strstart;
  const unsigned budget = prev_length >= kGoodLength ? kMaxChain >> 2 : kMaxChain;
  // Only a chain longer than the budget can bind, and only long inputs have one.
  if (strstart - 1 > budget && zlib_chain_length(strstart) > budget)
    return zlib_walk(strstart, prev_length, lookahead, match_start);
  const unsigned nice = std::min(kNiceLength, lookahead);
  unsigned best_len = prev_length;
  bool found = false;
  if (lookahead >= 4) {
    found = walk4(strstart, nice, &best_len, match_start);
  } else if (prev_length >= kMinMatch) {
    return std::min(prev_length, lookahead);  // the last 3 bytes: no match can beat it
  }
  if (!found && prev_length < kMinMatch) {
    for (unsigned q = prev3_[strstart]; q != 0; q = prev3_[q])
      if (scan[0] == w[q] && scan[1] == w[q + 1] && scan[2] == w[q + 2]) {
        *match_start = q;
        best_len = kMinMatch;
        break;
      }
  }
  return std::min(best_len, lookahead);
}

// How many q in [1, strstart) share strstart's zlib hash: the length of the
// chain zlib would walk. All positions are ranked in one pass on first use
// (a per-call count would make long inputs quadratic).
unsigned DeflateSize::zlib_chain_length(unsigned strstart) {
  if (!zlib_rank_ready_) {
    const size_t n = buf_.size() - kPad;
    zlib_seen_.assign(size_t(1) << kHashBits, 0);
    zlib_rank_.resize(n);
    for (size_t q = 1; q + kMinMatch <= n; ++q) zlib_rank_[q] = zlib_seen_[hash3(buf_.data() + q)]++;
    zlib_rank_ready_ = true;
  }
  return zlib_rank_[strstart];
}

// deflate_slow over the whole input, tallying symbol frequencies. zlib also
// inserts each position into its hash chains here; the chains above already
// hold every earlier position, which is all a search at strstart looks at.
void DeflateSize::parse(size_t n) {
  const uint8_t* w = buf_.data();
  unsigned strstart = 0, lookahead = unsigned(n);
  unsigned match_length = kMinMatch - 1, prev_length, match_start = 0, prev_match = 0;
  bool match_available = false;
  while (lookahead != 0) {
    prev_length = match_length;
    prev_match = match_start;
    match_length = kMinMatch - 1;
    // zlib's hash_head != NIL: some q in [1, strstart) shares the hash.
    if (lookahead >= kMinMatch && strstart >= 2 && prev_length < kMaxLazy) {
      match_length = find_match(strstart, prev_length, lookahead, &match_start);
      if (match_length == kMinMatch && strstart - match_start > kTooFar) match_length = kMinMatch - 1;
    }
    if (prev_length >= kMinMatch && match_length <= prev_length) {
      lfreq_[kTables.length_code[prev_length - kMinMatch] + kLiterals + 1]++;
      dfreq_[kTables.d_code(strstart - 1 - prev_match - 1)]++;
      lookahead -= prev_length - 1;
      strstart += prev_length - 1;
      match_available = false;
      match_length = kMinMatch - 1;
    } else if (match_available) {
      lfreq_[w[strstart - 1]]++;
      strstart++;
      lookahead--;
    } else {
      match_available = true;
      strstart++;
      lookahead--;
    }
  }
  if (match_available) lfreq_[w[strstart - 1]]++;
}

// _tr_flush_block for the single, last block: its size in bytes.
size_t DeflateSize::block_bytes(size_t n) {
  static const TreeDesc kLDesc{kTables.static_llen, false, kExtraLBits, kLiterals + 1, kLCodes, kMaxBits};
  static const TreeDesc kDDesc{nullptr, true, kExtraDBits, 0, kDCodes, kMaxBits};
  static const TreeDesc kBLDesc{nullptr, false, kExtraBLBits, 0, kBLCodes, 7};
  Tree lt, dt, bt;
  std::copy(std::begin(lfreq_), std::end(lfreq_), lt.freq);
  std::copy(std::begin(dfreq_), std::end(dfreq_), dt.freq);
  std::fill_n(bt.freq, kBLCodes, 0u);
  uint64_t opt_len = 0, static_len = 0;
  TreeBuilder builder;
  builder.build(lt, kLDesc, opt_len, static_len);
  builder.build(dt, kDDesc, opt_len, static_len);
  // build_bl_tree
  scan_tree(lt, bt.freq);
  scan_tree(dt, bt.freq);
  builder.build(bt, kBLDesc, opt_len, static_len);
  int max_blindex = kBLCodes - 1;
  for (; max_blindex >= 3; --max_blindex)
    if (bt.len[kBLOrder[max_blindex]] != 0) break;
  opt_len += 3 * (uint64_t(max_blindex) + 1) + 5 + 5 + 4;

  uint64_t opt_lenb = (opt_len + 3 + 7) >> 3;
  const uint64_t static_lenb = (static_len + 3 + 7) >> 3;
  if (static_lenb <= opt_lenb) opt_lenb = static_lenb;
  if (n + 4 <= opt_lenb) return n + 5;  // stored: 3 bits padded to a byte, LEN, NLEN, data
  // Static or dynamic: 3 header bits plus the block, padded to a byte.
  return opt_lenb;
}

}  // namespace nca
