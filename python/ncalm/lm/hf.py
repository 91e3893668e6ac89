"""Hugging Face Llama folders from ncalm models, and ncalm states from them.

:class:`~ncalm.lm.model.LlamaLM` computes what ``transformers.LlamaForCausalLM``
does with plain multi-head attention: RMSNorm in float32, rotary embeddings on
(first half, second half) pairs, a SwiGLU MLP, no biases and an untied head.
Conversion is therefore a renaming of tensors, no permutation. Other Llama
shapes (grouped-query attention, biases, scaled rotary positions, another
activation or head size) are refused by name.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch

from ncalm.atomic_json import write_json
from ncalm.lm.config import ModelConfig
from ncalm.lm.tokenizer import EOS_TEXT, TOKENIZER_FILE, load_tokenizer

WEIGHTS, INDEX, CONFIG = "model.safetensors", "model.safetensors.index.json", "config.json"
_GLOBAL = {"embed.weight": "model.embed_tokens.weight", "norm.weight": "model.norm.weight",
           "head.weight": "lm_head.weight"}
_LAYER = {"attn_norm.weight": "input_layernorm.weight", "mlp_norm.weight": "post_attention_layernorm.weight",
          "attn.wq.weight": "self_attn.q_proj.weight", "attn.wk.weight": "self_attn.k_proj.weight",
          "attn.wv.weight": "self_attn.v_proj.weight", "attn.wo.weight": "self_attn.o_proj.weight",
          "mlp.w1.weight": "mlp.gate_proj.weight", "mlp.w3.weight": "mlp.up_proj.weight",
          "mlp.w2.weight": "mlp.down_proj.weight"}
_GLOBAL_FROM_HF, _LAYER_FROM_HF = ({v: k for k, v in d.items()} for d in (_GLOBAL, _LAYER))


# Shared with ncalm.lm.checkpoint, which reads HF folders for --init and so imports this module.
class CheckpointError(ValueError):
    """A checkpoint that is missing, truncated, corrupt or incompatible."""


def save_safetensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    """``safetensors.torch.save_file``, leaving the file's permissions to the umask as ``open`` does
    (the library makes it readable by its owner only)."""
    from safetensors.torch import save_file

    path.touch()
    mode = path.stat().st_mode
    save_file(tensors, path, metadata=metadata)
    os.chmod(path, mode)


def hf_name(name: str) -> str:
    """The HF tensor name of an ncalm one
    (``layers.3.attn.wq.weight`` -> ``model.layers.3.self_attn.q_proj.weight``)."""
    m = re.fullmatch(r"layers\.(\d+)\.(.+)", name)
    return f"model.layers.{m[1]}.{_LAYER[m[2]]}" if m else _GLOBAL[name]


def ncalm_name(name: str) -> str | None:
    """Inverse of :func:`hf_name`; None for a name with no ncalm counterpart."""
    m = re.fullmatch(r"model\.layers\.(\d+)\.(.+)", name)
    if m:
        return f"layers.{m[1]}.{_LAYER_FROM_HF[m[2]]}" if m[2] in _LAYER_FROM_HF else None
    return _GLOBAL_FROM_HF.get(name)


def hf_config(cfg: ModelConfig, eos_id: int | None) -> dict:
    """``config.json`` of a LlamaForCausalLM with the shape of ``cfg``."""
    from ncalm import __version__

    return {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "torch_dtype": "float32",
        "vocab_size": cfg.vocab_size, "hidden_size": cfg.d_model, "intermediate_size": cfg.mlp_hidden,
        "num_hidden_layers": cfg.n_layer, "num_attention_heads": cfg.n_head, "num_key_value_heads": cfg.n_head,
        "head_dim": cfg.head_dim, "hidden_act": "silu", "max_position_embeddings": cfg.max_seq_len,
        "rms_norm_eps": cfg.norm_eps, "rope_theta": cfg.rope_theta, "rope_scaling": None,
        "attention_bias": False, "attention_dropout": cfg.attn_dropout, "mlp_bias": False, "tie_word_embeddings": False,
        "initializer_range": cfg.init_std, "bos_token_id": eos_id, "eos_token_id": eos_id, "use_cache": True,
        "ncalm_version": __version__,
    }


def export_hf(model, tokenizer, out: str | os.PathLike) -> Path:
    """Write ``model`` (a LlamaLM) and its tokenizer (or None) as a folder that
    ``LlamaForCausalLM.from_pretrained`` and ``AutoTokenizer.from_pretrained`` load."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    eos = tokenizer.eos_id if tokenizer is not None else None
    tensors = {hf_name(k): v.detach().float().cpu().contiguous() for k, v in model.state_dict().items()}
    save_safetensors(tensors, out / WEIGHTS, {"format": "pt"})
    write_json(out / CONFIG, hf_config(model.cfg, eos))
    # Greedy and no BOS: ncalm's prompts start with their first token.
    write_json(out / "generation_config.json", {"bos_token_id": eos, "eos_token_id": eos, "pad_token_id": eos,
                                                "do_sample": False})
    if tokenizer is not None:
        tokenizer.save(out)
        # No clean-up of spaces: decode must give back the text byte for byte, as ncalm's does.
        write_json(out / "tokenizer_config.json", {
            "tokenizer_class": "PreTrainedTokenizerFast", "eos_token": EOS_TEXT,
            "bos_token": EOS_TEXT, "model_max_length": model.cfg.max_seq_len,
            "clean_up_tokenization_spaces": False})
    return out


def model_config_from_hf(config: dict, source: str) -> ModelConfig:
    """The ModelConfig of an HF Llama ``config.json``; ValueError naming what ncalm's model lacks."""
    def refuse(what: str) -> ValueError:
        return ValueError(f"{source}: {what} is not supported: ncalm's model is Llama with plain multi-head "
                          f"attention, no biases and unscaled rotary positions")

    if config.get("model_type") != "llama":
        raise ValueError(f"{source}: model_type {config.get('model_type')!r} is not 'llama'")
    heads = config["num_attention_heads"]
    if config.get("num_key_value_heads", heads) != heads:
        raise refuse(f"grouped-query attention (num_key_value_heads={config['num_key_value_heads']}, "
                     f"num_attention_heads={heads})")
    for key in ("attention_bias", "mlp_bias"):
        if config.get(key):
            raise refuse(f"{key}=true")
    rope = config.get("rope_parameters") or {}
    scaling = config.get("rope_scaling") or (rope if rope.get("rope_type", "default") != "default" else None)
    if scaling:
        raise refuse(f"rope scaling {scaling}")
    if config.get("hidden_act", "silu") != "silu":
        raise refuse(f"hidden_act={config['hidden_act']!r}")
    d_model = config["hidden_size"]
    if config.get("head_dim") not in (None, d_model // heads):
        raise refuse(f"head_dim={config['head_dim']} (hidden_size / num_attention_heads = {d_model // heads})")
    return ModelConfig(
        vocab_size=config["vocab_size"], n_layer=config["num_hidden_layers"], n_head=heads, d_model=d_model,
        mlp_hidden=config["intermediate_size"], max_seq_len=config.get("max_position_embeddings", 2048),
        rope_theta=float(rope.get("rope_theta", config.get("rope_theta", 10000.0))),
        norm_eps=config.get("rms_norm_eps", 1e-6), init_std=config.get("initializer_range", 0.02),
        attn_dropout=config.get("attention_dropout", 0.0))


def _weight_files(folder: Path) -> list[str]:
    """The safetensors files of an HF Llama folder: the index's shards, or the one file."""
    if (folder / INDEX).is_file():
        return sorted(set(json.loads((folder / INDEX).read_text())["weight_map"].values()))
    if (folder / WEIGHTS).is_file():
        return [WEIGHTS]
    raise CheckpointError(f"{folder} has no {WEIGHTS} (only safetensors weights are read)")


def hf_files(folder: str | os.PathLike) -> list[Path]:
    """The files :func:`read_hf` reads from ``folder``: config, index, weights and tokenizer, where present."""
    folder = Path(folder)
    names = dict.fromkeys([CONFIG, INDEX, *_weight_files(folder), TOKENIZER_FILE])
    return [folder / name for name in names if (folder / name).is_file()]


def read_hf(folder: str | os.PathLike) -> dict:
    """A checkpoint-like state (``model`` in ncalm's names, ``model_config``, ``tokenizer`` or None)
    from an HF Llama folder with safetensors weights (one file or an index of shards)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    if not (folder / CONFIG).is_file():
        raise CheckpointError(f"{folder} is a folder without {CONFIG}: not a Hugging Face model")
    config = json.loads((folder / CONFIG).read_text())
    if "model_type" not in config and (runs := sorted(folder.glob("*.pt"))):  # a training run's settings
        raise CheckpointError(f"{folder} is a training run's folder, not a Hugging Face model: pass one of "
                              f"its checkpoint files ({', '.join(p.name for p in runs)})")
    cfg = model_config_from_hf(config, str(folder))
    model: dict[str, torch.Tensor] = {}
    for file in _weight_files(folder):
        try:
            tensors = load_file(folder / file)
        except Exception as exc:  # safetensors' own error type is no ValueError: one line all the same
            raise CheckpointError(f"cannot read {folder / file}: {exc}") from None
        for name, t in tensors.items():
            if name.endswith("rotary_emb.inv_freq"):  # stored by old exports; recomputed from rope_theta
                continue
            ours = ncalm_name(name)
            if ours is None:
                raise CheckpointError(f"{folder}: tensor {name!r} has no counterpart in ncalm's model")
            model[ours] = t
    if "head.weight" not in model and config.get("tie_word_embeddings") and "embed.weight" in model:
        model["head.weight"] = model["embed.weight"].clone()  # an untied copy computes the same logits
    try:
        tokenizer = load_tokenizer(folder).to_dict()
    except (OSError, ValueError, ImportError):  # none, or none that ncalm can use: the weights still serve --init
        tokenizer = None
    return {"model": model, "model_config": cfg.to_dict(), "tokenizer": tokenizer, "hf_config": config}
