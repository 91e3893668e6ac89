"""Types of ncalm's compiled NCA generator (ncacore), the pybind11 module ``ncalm._core``.

Written from ``pybind11-stubgen ncalm._core`` output with readable types; tests/test_packaging.py
checks every name, parameter and default against the compiled module. ``cfg`` is a
:class:`Config` (``NCAConfig(...).core``), checked once by the core when built; a dict of
``NCAConfig.core_dict()`` form converts to one. The names after ``built_with_cuda`` exist only in CUDA builds.
"""
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

built_with_cuda: bool
built_native: bool

class Config:
    """An NCA config, checked once by the core when built."""
    def __init__(self, settings: dict[str, Any]) -> None: ...
    @property
    def vocab(self) -> int: ...
    @property
    def frame_len(self) -> int: ...

class BytePairEncoder:
    """GPT-2's byte-level BPE (tiktoken's r50k pre-tokenizer and merges) with a piece cache.

    tokens[r]: the bytes of rank (id) r, every single byte among them; classes: one byte per code point
    (0..U+10FFFF): 0 other, 1 letter, 2 number, 3 White_Space, 4 unsure; the cache is emptied past
    cache_size pieces."""
    def __init__(self, tokens: list[bytes], classes: bytes, cache_size: int = 262144) -> None: ...
    def encode(self, text: str) -> NDArray[np.uint32] | None:
        """The ids of text (the GIL released), or None when it holds a code point classed unsure."""
    @property
    def vocab_size(self) -> int: ...
    @property
    def cached_pieces(self) -> int: ...

def compiled_isas() -> list[str]:
    """The CPU core's instruction-set paths in this build, slowest first."""
def supported_isas() -> list[str]:
    """The compiled paths this CPU can run, slowest first."""
def isa() -> str:
    """The path in use: NCALM_ISA's if set, else the fastest supported."""
def set_isa(name: str) -> None:
    """Run path `name` from now on ('auto': the fastest supported); all paths give identical results."""

def decode(cfg: Config | dict[str, Any], tokens: ArrayLike) -> NDArray[np.uint8]: ...
def default_threads() -> int:
    """The thread count that threads=0 means: the CPUs this process may run on."""
def encode(cfg: Config | dict[str, Any], grids: ArrayLike) -> NDArray[np.int64]: ...
def evolve(cfg: Config | dict[str, Any], w1: ArrayLike, w2: ArrayLike, w3: ArrayLike, grid: ArrayLike, steps: int,
           seed: int = 0, sim_id: int = 0) -> NDArray[np.uint8]: ...
def find_rules(cfg: Config | dict[str, Any], seed: int, seq_ids: ArrayLike,
               threads: int = 0) -> tuple[NDArray[np.uint64], NDArray[np.float64]]:
    """(rule ids, gzip ratios): the first in-band candidate rule of each id's stream."""
def find_rules_batched(cfg: Config | dict[str, Any], seed: int, seq_ids: ArrayLike, batch: int,
                       threads: int = 0) -> tuple[NDArray[np.uint64], NDArray[np.float64]]:
    """find_rules in the GPU filter's batched search order, scored on the CPU (so CPU tests check that order)."""
def generate(cfg: Config | dict[str, Any], seed: int, seq_ids: ArrayLike, rule_ids: ArrayLike | None, out: np.ndarray,
             threads: int = 0) -> None:
    """Write token sequences (seq_len + 1 each) into out."""
def gzip_model_matches_zlib() -> bool:
    """Whether the deflate-length model reproduces the linked zlib (else 'auto' uses zlib)."""
def gzip_size(data: bytes | bytearray | memoryview, method: str = "auto") -> int:
    """len(gzip.compress(data, 9)): 'zlib' compresses with the linked zlib, 'model' computes the length
    without compressing (inputs up to 16000 bytes), 'auto' uses the model where it agrees with zlib."""
def gzip_sizes(rows: ArrayLike, method: str = "auto") -> NDArray[np.int64]:
    """gzip_size of each row, with one scorer (for batches and timing)."""
def init_grid(cfg: Config | dict[str, Any], seed: int, sim_id: int, scoring: bool = False) -> NDArray[np.uint8]: ...
def logits(cfg: Config | dict[str, Any], w1: ArrayLike, w2: ArrayLike, w3: ArrayLike, grid: ArrayLike) -> NDArray[np.float32]: ...
def rollout(cfg: Config | dict[str, Any], seed: int, rule_ids: ArrayLike, sim_ids: ArrayLike, frames: int,
            threads: int = 0) -> NDArray[np.uint8]: ...
def sample_rule(cfg: Config | dict[str, Any], seed: int,
                rule_id: int) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]]: ...
def score_rules(cfg: Config | dict[str, Any], seed: int, rule_ids: ArrayLike, threads: int = 0) -> NDArray[np.float64]: ...

# CUDA builds only (built_with_cuda is True). Pointers and streams are integers.
def cuda_device_count() -> tuple[int, str]:
    """(number of usable CUDA devices, why none when 0)."""
def cuda_unsupported(cfg: Config | dict[str, Any]) -> str:
    """'' when the config runs on the CUDA kernels, else why not."""
def cuda_pointer_device(ptr: int) -> int:
    """Device ordinal owning a pointer, -1 for host/unknown memory."""
def cuda_generate(cfg: Config | dict[str, Any], seed: int, out: int, dtype: str, n: int, row_stride: int, first_seq: int,
                  seq_ids: int, rule_ids: int, device: int, stream: int) -> None:
    """Enqueue n sequences into the device buffer `out` on `stream` (pointers as integers, 0 = none)."""

class CudaFilter:
    """Band filtering: rollouts on the GPU, gzip on CPU threads."""
    def __init__(self, cfg: Config | dict[str, Any], seed: int, device: int, threads: int = 0, chunk: int = 16384) -> None: ...
    def score(self, rule_ids: ArrayLike) -> NDArray[np.float64]: ...
    def find(self, seq_ids: ArrayLike) -> tuple[NDArray[np.uint64], NDArray[np.float64]]: ...
