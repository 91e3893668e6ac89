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
