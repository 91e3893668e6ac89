import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    # The test machines have two shared cores: torch's thread pool only
    # contends with other processes (and with the generator's own threads).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True, scope="session")
def text_cache(tmp_path_factory):
    """Text corpora are tokenized into a cache folder (ncalm.data.cache): the session's own, never the
    user's ~/.cache/ncalm; subprocesses (CLI tests) inherit it."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NCALM_CACHE", str(tmp_path_factory.mktemp("ncalm-cache")))
        yield


@pytest.fixture(scope="session")
def tiny_gsm8k(tmp_path_factory):
    """(checkpoint, data directory) for a fast `ncalm eval-reasoning --task gsm8k`: an untrained tiny
    byte-level model and three test problems."""
    import json

    from ncalm.lm.checkpoint import save_checkpoint
    from ncalm.lm.model import LlamaLM, model_config
    from ncalm.lm.tokenizer import ByteTokenizer

    root = tmp_path_factory.mktemp("tiny_gsm8k")
    torch.manual_seed(0)
    tok = ByteTokenizer()
    model = LlamaLM(model_config("tiny", vocab_size=tok.vocab_size, max_seq_len=128))
    save_checkpoint(root / "tiny.pt", {"model": model.state_dict(), "model_config": model.cfg.to_dict(),
                                       "tokenizer": tok.to_dict()})
    (root / "test.jsonl").write_text("".join(json.dumps({"question": f"What is {i} + {i}?", "answer": f"#### {2 * i}"})
                                             + "\n" for i in range(3)))
    return root / "tiny.pt", root
