#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "config_dict.hpp"
#include "found_rules.hpp"
#include "numpy_array.hpp"
#include "ncacore/band_search.hpp"
#include "ncacore/complexity.hpp"
#include "ncacore/generate.hpp"
#include "ncacore/isa.hpp"
#include "ncacore/rollout.hpp"
#include "ncacore/tokenize.hpp"

namespace py = pybind11;
using nca::Config;

namespace {

void require(bool ok, const std::string& msg) {
  if (!ok) throw std::invalid_argument(msg);
}

nca::GzipMethod gzip_method(const std::string& method) {
  if (method == "zlib") return nca::GzipMethod::kZlib;
  if (method == "model") return nca::GzipMethod::kModel;
  require(method == "auto", "method must be 'auto', 'zlib' or 'model', got '" + method + "'");
  return nca::GzipMethod::kAuto;
}

// Given weights and a grid (evolve, logits): both must fit the config, every
// colour below C (the tables are indexed by it).
void set_checked_rule(const Config& cfg, const Array<float>& w1, const Array<float>& w2, const Array<float>& w3,
                      const Array<uint8_t>& grid, nca::RuleTables& r) {
  require(w1.size() == cfg.conv1_size() && w2.size() == cfg.conv2_size() && w3.size() == cfg.conv3_size(),
          "weight sizes do not match the config");
  require(grid.size() == cfg.cells(), "grid size does not match the config");
  for (int64_t i = 0; i < grid.size(); ++i) require(grid.data()[i] < cfg.colors, "grid colour out of range");
  r.set(cfg, w1.data(), w2.data(), w3.data());
}

template <typename T>
void generate_into(const Config& cfg, uint64_t seed, const Array<uint64_t>& seq, const py::object& rules,
                   py::array out, int threads) {
  const int64_t n = seq.size();
  require(out.ndim() == 2 && out.shape(0) == n && out.shape(1) == cfg.seq_len + 1,
          "out must have shape (len(seq_ids), seq_len + 1)");
  require(out.flags() & py::array::c_style, "out must be C-contiguous");
  require(out.writeable(), "out must be writeable");
  require(out.flags() & py::detail::npy_api::NPY_ARRAY_ALIGNED_,
          "out must be aligned for its dtype (a view at an odd byte offset is not)");
  const uint64_t* rule_ptr = nullptr;
  Array<uint64_t> rule_arr;
  if (!rules.is_none()) {
    rule_arr = rules.cast<Array<uint64_t>>();
    require(rule_arr.size() == n, "rule_ids must have the same length as seq_ids");
    rule_ptr = rule_arr.data();
  }
  T* dst = static_cast<T*>(out.mutable_data());
  py::gil_scoped_release release;
  nca::generate<T>(cfg, seed, seq.data(), rule_ptr, n, dst, threads);
}

}  // namespace

void bind_generator(py::module_& m) {
  bind_config(m);
  m.def(
      "generate",
      [](const Config& cfg, uint64_t seed, const Array<uint64_t>& seq, const py::object& rules, py::array out,
         int threads) {
        // equal(), not is(): equivalent dtype objects (np.longlong, an array
        // that went through pickle) are distinct objects.
        const py::dtype dt = out.dtype();
        if (dt.equal(py::dtype::of<int32_t>()))
          generate_into<int32_t>(cfg, seed, seq, rules, out, threads);
        else if (dt.equal(py::dtype::of<int64_t>()))
          generate_into<int64_t>(cfg, seed, seq, rules, out, threads);
        else if (dt.equal(py::dtype::of<uint16_t>()))
          generate_into<uint16_t>(cfg, seed, seq, rules, out, threads);
        else
          throw std::invalid_argument("out dtype must be native int32, int64 or uint16, got " +
                                      py::str(dt).cast<std::string>());
      },
      py::arg("cfg"), py::arg("seed"), py::arg("seq_ids"), py::arg("rule_ids"), py::arg("out"),
      py::arg("threads") = 0, "Write token sequences (seq_len + 1 each) into out.");

  m.def(
      "find_rules",
      [](const Config& cfg, uint64_t seed, const Array<uint64_t>& seq, int threads) {
        return found_rules(seq.size(), [&](uint64_t* ids, double* ratios) {
          nca::find_rules(cfg, seed, seq.data(), seq.size(), ids, ratios, threads);
        });
      },
      py::arg("cfg"), py::arg("seed"), py::arg("seq_ids"), py::arg("threads") = 0);

  m.def(
      "find_rules_batched",
      [](const Config& cfg, uint64_t seed, const Array<uint64_t>& seq, int64_t batch, int threads) {
        auto score = [&](const uint64_t* ids, int64_t m, double* ratios) {
          nca::score_rules(cfg, seed, ids, m, ratios, threads);
        };
        return found_rules(seq.size(), [&](uint64_t* ids, double* ratios) {
          nca::find_rules_batched(cfg, seq.data(), seq.size(), batch, score, ids, ratios);
        });
      },
      py::arg("cfg"), py::arg("seed"), py::arg("seq_ids"), py::arg("batch"), py::arg("threads") = 0,
      "find_rules in the GPU filter's batched search order, scored on the CPU (so CPU tests check that order).");

  m.def(
      "score_rules",
      [](const Config& cfg, uint64_t seed, const Array<uint64_t>& rules, int threads) {
        const int64_t n = rules.size();
        Array<double> ratios(n);
        double* rp = ratios.mutable_data();
        {
          py::gil_scoped_release release;
          nca::score_rules(cfg, seed, rules.data(), n, rp, threads);
        }
        return ratios;
      },
      py::arg("cfg"), py::arg("seed"), py::arg("rule_ids"), py::arg("threads") = 0);

  m.def(
      "rollout",
      [](const Config& cfg, uint64_t seed, const Array<uint64_t>& rules, const Array<uint64_t>& sims, int frames,
         int threads) {
        require(rules.size() == sims.size(), "rule_ids and sim_ids must have the same length");
        require(frames >= 1, "frames must be >= 1");
        const int64_t n = rules.size();
        Array<uint8_t> out({n, int64_t(frames), int64_t(cfg.height), int64_t(cfg.width)});
        uint8_t* op = out.mutable_data();
        {
          py::gil_scoped_release release;
          nca::rollout(cfg, seed, rules.data(), sims.data(), n, frames, op, threads);
        }
        return out;
      },
      py::arg("cfg"), py::arg("seed"), py::arg("rule_ids"), py::arg("sim_ids"), py::arg("frames"),
      py::arg("threads") = 0);

  m.def(
      "sample_rule",
      [](const Config& cfg, uint64_t seed, uint64_t rule_id) {
        nca::RuleTables r;
        r.sample(cfg, seed, rule_id);
        Array<float> w1({3, 3, cfg.conv1_in(), nca::kHidden1});
        Array<float> w2({nca::kHidden1, nca::kHidden2});
        Array<float> w3({nca::kHidden2, cfg.colors});
        std::copy(r.w1.begin(), r.w1.end(), w1.mutable_data());
        std::copy(r.w2.begin(), r.w2.end(), w2.mutable_data());
        std::copy(r.w3.begin(), r.w3.end(), w3.mutable_data());
        return py::make_tuple(w1, w2, w3);
      },
      py::arg("cfg"), py::arg("seed"), py::arg("rule_id"));

  // Given weights and grid (e.g. the reference vectors'): the trajectory
  // after steps 1..steps, noise drawn as training simulation sim_id.
  m.def(
      "evolve",
      [](const Config& cfg, const Array<float>& w1, const Array<float>& w2, const Array<float>& w3,
         const Array<uint8_t>& grid, int steps, uint64_t seed, uint64_t sim_id) {
        nca::RuleTables r;
        set_checked_rule(cfg, w1, w2, w3, grid, r);
        nca::Simulator sim(cfg);
        sim.set_grid(grid.data(), seed, sim_id, nca::SimKind::kTrain);
        Array<uint8_t> out({int64_t(steps), int64_t(cfg.height), int64_t(cfg.width)});
        for (int s = 0; s < steps; ++s) {
          sim.step(r);
          std::copy(sim.grid(), sim.grid() + cfg.cells(), out.mutable_data() + size_t(s) * cfg.cells());
        }
        return out;
      },
      py::arg("cfg"), py::arg("w1"), py::arg("w2"), py::arg("w3"), py::arg("grid"), py::arg("steps"),
      py::arg("seed") = 0, py::arg("sim_id") = 0);

  m.def(
      "logits",
      [](const Config& cfg, const Array<float>& w1, const Array<float>& w2, const Array<float>& w3,
         const Array<uint8_t>& grid) {
        nca::RuleTables r;
        set_checked_rule(cfg, w1, w2, w3, grid, r);
        nca::Simulator sim(cfg);
        sim.set_grid(grid.data(), 0, 0, nca::SimKind::kTrain);
        Array<float> out({int64_t(cfg.height), int64_t(cfg.width), int64_t(cfg.colors)});
        sim.logits(r, out.mutable_data());
        return out;
      },
      py::arg("cfg"), py::arg("w1"), py::arg("w2"), py::arg("w3"), py::arg("grid"));

  m.def(
      "init_grid",
      [](const Config& cfg, uint64_t seed, uint64_t sim_id, bool scoring) {
        nca::Simulator sim(cfg);
        sim.init(seed, sim_id, scoring ? nca::SimKind::kScore : nca::SimKind::kTrain);
        Array<uint8_t> out({int64_t(cfg.height), int64_t(cfg.width)});
        std::copy(sim.grid(), sim.grid() + cfg.cells(), out.mutable_data());
        return out;
      },
      py::arg("cfg"), py::arg("seed"), py::arg("sim_id"), py::arg("scoring") = false);

  m.def(
      "encode",
      [](const Config& cfg, const Array<uint8_t>& grids) {
        require(grids.size() % cfg.cells() == 0, "grids must hold whole H x W grids");
        const int64_t n = grids.size() / cfg.cells();
        Array<int64_t> out({n, int64_t(cfg.patches())});
        for (int64_t i = 0; i < grids.size(); ++i) require(grids.data()[i] < cfg.colors, "grid colour out of range");
        for (int64_t i = 0; i < n; ++i)
          nca::write_patches(cfg, grids.data() + i * cfg.cells(), out.mutable_data() + i * cfg.patches());
        return out;
      },
      py::arg("cfg"), py::arg("grids"));

  m.def(
      "decode",
      [](const Config& cfg, const Array<int64_t>& tokens) {
        require(tokens.size() % cfg.patches() == 0, "tokens must hold whole frames of patch tokens");
        const int64_t n = tokens.size() / cfg.patches();
        Array<uint8_t> out({n, int64_t(cfg.height), int64_t(cfg.width)});
        for (int64_t i = 0; i < n; ++i)
          require(nca::decode_patches(cfg, tokens.data() + i * cfg.patches(), out.mutable_data() + i * cfg.cells()),
                  "patch token out of range [0, colors**(patch*patch))");
        return out;
      },
      py::arg("cfg"), py::arg("tokens"));

  m.def(
      "gzip_size",
      [](py::buffer data, const std::string& method) {
        py::buffer_info info = data.request();
        // A strided view's bytes are not info.size * itemsize bytes from ptr.
        ssize_t stride = info.itemsize;
        for (ssize_t d = info.ndim - 1; d >= 0; --d) {
          require(info.shape[d] <= 1 || info.strides[d] == stride, "data must be a C-contiguous buffer");
          stride *= info.shape[d];
        }
        const nca::GzipMethod m = gzip_method(method);
        const auto* ptr = static_cast<const uint8_t*>(info.ptr);
        const size_t n = size_t(info.size * info.itemsize);
        py::gil_scoped_release release;
        nca::GzipScorer scorer(m);
        return scorer.compressed_size(ptr, n);
      },
      py::arg("data"), py::arg("method") = "auto",
      "len(gzip.compress(data, 9)): 'zlib' compresses with the linked zlib, 'model' computes the length "
      "without compressing (inputs up to 16000 bytes), 'auto' uses the model where it agrees with zlib.");
  m.def(
      "gzip_sizes",
      [](const Array<uint8_t>& rows, const std::string& method) {
        require(rows.ndim() == 2, "rows must be a 2-d uint8 array, one input per row");
        const nca::GzipMethod m = gzip_method(method);
        const int64_t n = rows.shape(0), len = rows.shape(1);
        Array<int64_t> out(n);
        int64_t* op = out.mutable_data();
        {
          py::gil_scoped_release release;
          nca::GzipScorer scorer(m);
          for (int64_t i = 0; i < n; ++i) op[i] = int64_t(scorer.compressed_size(rows.data() + i * len, size_t(len)));
        }
        return out;
      },
      py::arg("rows"), py::arg("method") = "auto", "gzip_size of each row, with one scorer (for batches and timing).");
  m.def("default_threads", [] { return nca::resolve_threads(0); },
        "The thread count that threads=0 means: the CPUs this process may run on.");
  m.def("compiled_isas", &nca::compiled_isas, "The CPU core's instruction-set paths in this build, slowest first.");
  m.def("supported_isas", &nca::supported_isas, "The compiled paths this CPU can run, slowest first.");
  m.def("isa", &nca::active_isa, "The path in use: NCALM_ISA's if set, else the fastest supported.");
  m.def("set_isa", &nca::set_isa, py::arg("name"),
        "Run path `name` from now on ('auto': the fastest supported); all paths give identical results.");
  m.def("gzip_model_matches_zlib", &nca::GzipScorer::model_matches_zlib,
        "Whether the deflate-length model reproduces the linked zlib (else 'auto' uses zlib).");
}
