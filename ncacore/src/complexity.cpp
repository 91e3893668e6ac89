#include "ncacore/complexity.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace nca {

GzipScorer::GzipScorer(GzipMethod method) : method_(method) {
  if (method_ == GzipMethod::kAuto && !model_matches_zlib()) method_ = GzipMethod::kZlib;
}

GzipScorer::~GzipScorer() {
  if (zlib_ready_) deflateEnd(&zs_);
}

size_t GzipScorer::compressed_size(const uint8_t* data, size_t n) {
  if (method_ == GzipMethod::kZlib || (method_ == GzipMethod::kAuto && n > DeflateSize::kMaxInput))
    return zlib_size(data, n);
  if (n > DeflateSize::kMaxInput)
    throw std::invalid_argument("the deflate model takes at most " + std::to_string(DeflateSize::kMaxInput) +
                                " bytes, got " + std::to_string(n));
  return model_.gzip_size(data, n);
}

size_t GzipScorer::zlib_size(const uint8_t* data, size_t n) {
  if (!zlib_ready_) {  // created on first use: the model serves most scorers alone
    // windowBits 31 = 15 + gzip container: the same 10-byte header and 8-byte
    // trailer sizes as Python's gzip.compress, which deflates with memLevel 8.
    if (deflateInit2(&zs_, 9, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) != Z_OK)
      throw std::runtime_error("zlib deflateInit2 failed");
    zlib_ready_ = true;
  }
  deflateReset(&zs_);
  // Only the length is wanted: deflate streams through a fixed output buffer,
  // and the input goes in pieces because zlib counts bytes in 32 bits (a
  // single avail_in would silently drop everything past 4 GiB). Splitting
  // the input does not change the output: deflate waits for more input
  // before every match decision it cannot make yet.
  constexpr size_t kOut = size_t(1) << 16, kIn = size_t(1) << 20;
  if (out_.size() < kOut) out_.resize(kOut);
  zs_.next_in = const_cast<Bytef*>(data);
  size_t left = n;
  int status = Z_OK;
  while (status != Z_STREAM_END) {
    if (zs_.avail_in == 0 && left > 0) {
      zs_.avail_in = uInt(std::min(left, kIn));
      left -= zs_.avail_in;
    }
    zs_.next_out = out_.data();
    zs_.avail_out = uInt(kOut);
    status = deflate(&zs_, left == 0 ? Z_FINISH : Z_NO_FLUSH);
    if (status != Z_OK && status != Z_STREAM_END && status != Z_BUF_ERROR)
      throw std::runtime_error("zlib deflate failed");
  }
  return size_t(zs_.total_out);
}

namespace {
// Inputs that exercise literals, short and long matches, the lazy rule, a
// stored block and NCA-like int32 tokens; any other deflate would differ on
// some of them.
std::vector<std::vector<uint8_t>> self_check_inputs() {
  std::vector<std::vector<uint8_t>> inputs;
  uint32_t x = 12345;
  auto next = [&x] { return x = x * 1664525u + 1013904223u; };
  std::vector<uint8_t> tokens;
  for (int i = 0; i < 360; ++i) {
    const uint32_t r = next() >> 8;
    const uint32_t t = (r & 3) ? (r >> 4) % 10000 : (r >> 4) % 16;  // skewed, with repeats
    for (int b = 0; b < 4; ++b) tokens.push_back(uint8_t(t >> (8 * b)));
  }
  inputs.push_back(tokens);
  std::vector<uint8_t> text;
  const char* words[] = {"cellular ", "automata ", "neural ", "token ", "stream ", "gzip ", "band "};
  for (int i = 0; i < 600; ++i)
    for (const char* c = words[(next() >> 13) % 7]; *c; ++c) text.push_back(uint8_t(*c));
  inputs.push_back(text);
  std::vector<uint8_t> noise(3000);
  for (auto& b : noise) b = uint8_t(next() >> 24);
  inputs.push_back(noise);
  inputs.push_back(std::vector<uint8_t>(5000, 7));
  return inputs;
}
}  // namespace

bool GzipScorer::model_matches_zlib() {
  static const bool ok = [] {
    GzipScorer zlib(GzipMethod::kZlib), model(GzipMethod::kModel);
    for (const auto& in : self_check_inputs())
      if (zlib.compressed_size(in.data(), in.size()) != model.compressed_size(in.data(), in.size())) return false;
    return true;
  }();
  return ok;
}

}  // namespace nca
