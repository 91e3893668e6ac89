"""Named experiment presets (plain dicts, merged under a TOML file and --set overrides).

Every preset gives all arms the same language stage; only the first stage
differs between arms, at one matched token budget.
"""
from __future__ import annotations

PRESETS: dict[str, dict] = {
    # This 2-core CPU in under 10 minutes, 3 seeds. The NCA alphabet is 4 colours on the paper's
    # 12 x 12 grid: with 6 colours (1,298 tokens) the tiny model's NCA stage stayed near the unigram
    # entropy of its data and below copying the last frame in context, so it could say nothing
    # about transfer; 4 colours (258 tokens) learn both. Chosen on the first stage alone, before any
    # transfer result (docs/reproducing.md, "Why 4 colours"). The band's lower edge 0.22 keeps the
    # paper band's share of accepted rules (~45%, `score_rules` on 2,000 candidates) for 4 colours.
    "tiny": {
        "name": "tiny", "seeds": [0, 1, 2], "model": "tiny", "threads": 1, "bands": [[0.22, 1.0]], "bpb_bytes": 100_000,
        "prepretrain": {"data": {"seq_len": 256, "nca": {"colors": 4}},
                        "optim": {"batch_size": 8, "lr": 1e-3, "warmup_steps": 10},
                        "run": {"tokens": 300_000}},
        "language": {"data": {"seq_len": 256, "text": {"source": "stdlib", "max_bytes": 3_000_000,
                                                        "max_val_bytes": 200_000}},
                     "optim": {"batch_size": 8, "lr": 1e-3, "warmup_steps": 10},
                     "run": {"tokens": 600_000, "eval_every": 15}},
    },
    # One H100 for a few minutes: a 6 x 384 model, the paper's NCA data, 3 seeds.
    "gpu-small": {
        "name": "gpu-small", "seeds": [0, 1, 2], "model": "small", "bands": [[0.5, 1.0]], "bpb_bytes": 1_000_000,
        "prepretrain": {"data": {"seq_len": 1024}, "optim": {"batch_size": 32, "lr": 1e-3, "warmup_steps": 30},
                        "run": {"tokens": 10_000_000}},
        "language": {"data": {"seq_len": 1024, "text": {"source": "stdlib", "max_val_bytes": 1_000_000}},
                     "optim": {"batch_size": 32, "lr": 1e-3, "warmup_steps": 30},
                     "run": {"tokens": 20_000_000, "eval_every": 25}},
    },
    # The reference's setup (danihyunlee/nca-pre-pretraining: scripts/prepretraining/nca_prepretraining.sh,
    # scripts/pretraining/owt_ft.sh, utils/models.py); docs/reproducing.md maps every flag. 24 x 2048,
    # 32 heads, MLP 4 d = 8,192 (1.61B parameters in the layers, the paper's 1.6B), attention dropout 0.1,
    # AdamW (0.9, 0.999), cosine to 0 after 10% warmup (125 of 1,252 and 380 of 3,815 steps at these
    # budgets). NCA: lr 1e-4, no clipping, 16 x 8 sequences per step; language: lr 5e-4, weight decay
    # 1e-4, clipping at 1.0, 16 x 32 (the launch scripts). Dyck: 64 bracket types, depth <= 16. The
    # language corpus is yours to set (--set language.data=bin:DIR from `ncalm tokenize --tokenizer gpt2`, or raw
    # text, read in the paper's GPT-2 tokens; token files bring their own tokenizer): it
    # is unset here, so a run refuses to start without it (the standard library, ~30 MB of code, is no stand-in
    # for OpenWebText at 2B tokens, and a GPU would spend hours on it) and a dry run says so.
    "paper": {
        "name": "paper", "seeds": [0], "bands": [[0.5, 1.0]], "bpb_bytes": 1_000_000, "text_budget": 10.0,
        "model": {"size": "paper", "overrides": {"mlp_hidden": 8192, "attn_dropout": 0.1},
                  "transfer": {"token_init": "torch"}},
        "prepretrain": {"data": {"seq_len": 1024, "pool_size": 16_000, "epoch_sequences": 16_000,
                                 "dyck": {"k": 64, "depth": 16}},
                        "optim": {"batch_size": 16, "grad_accum": 8, "lr": 1e-4, "weight_decay": 0.0,
                                  "warmup_steps": 125, "min_lr_ratio": 0.0, "beta2": 0.999, "grad_clip": 0.0},
                        "run": {"tokens": 164_000_000, "eval_every": 250, "ckpt_every": 250}},
        "language": {"data": {"seq_len": 1024, "text": {"source": None, "tokenizer": "gpt2"}},
                     "optim": {"batch_size": 16, "grad_accum": 32, "lr": 5e-4, "weight_decay": 1e-4,
                               "warmup_steps": 380, "min_lr_ratio": 0.0, "beta2": 0.999, "grad_clip": 1.0},
                     "run": {"tokens": 2_000_000_000, "eval_every": 250, "ckpt_every": 250}},
    },
}


def preset(name: str) -> dict:
    if name not in PRESETS:
        raise ValueError(f"unknown --preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]
