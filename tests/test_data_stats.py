import math

import pytest
import torch

from ncalm.data.stats import unigram_entropy


def test_unigram_entropy_of_known_streams_ignores_unscored_targets():
    y1 = torch.tensor([[0, 0, 1, 1, -100, -100]])
    assert unigram_entropy([(None, y1)]) == pytest.approx(math.log(2))
    y2 = torch.tensor([[3, 3, 3, 3]])
    assert unigram_entropy([(None, y1), (None, y2)]) == pytest.approx(-(0.25 * math.log(0.25) * 2 + 0.5 * math.log(0.5)))
    assert unigram_entropy([(None, y2)]) == 0.0
    with pytest.raises(ValueError, match="no scored targets"):
        unigram_entropy([(None, torch.full((1, 3), -100))])
