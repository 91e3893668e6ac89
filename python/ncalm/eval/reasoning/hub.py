"""Optional Hugging Face `datasets` access, for runs without local files."""
from __future__ import annotations


def load_hf(name: str, config: str | None, split: str):
    """`datasets.load_dataset(name, config, split=split)` with one-line errors."""
    try:
        import datasets
    except ImportError:
        raise ValueError(
            f"no local data given and the Hugging Face `datasets` package is not installed: "
            f"pass --data PATH, or pip install datasets to fetch {name}") from None
    try:
        return datasets.load_dataset(name, config, split=split)
    except Exception as exc:  # offline, unknown name ... all mean "use --data"
        raise ValueError(f"cannot load {name} ({config or 'default'}, {split}) from the "
                         f"Hugging Face hub: {exc}; pass --data PATH instead") from None
