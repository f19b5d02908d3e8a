import torch

from distner.config import ModelConfig
from distner.model import Tagger


def test_default_is_seed_network():
    m = Tagger(ModelConfig(), vocab_size=100, num_tags=67)
    assert m.embedding.embedding_dim == 520
    assert m.lstm.hidden_size == 520 and m.lstm.num_layers == 1 and not m.lstm.bidirectional
    assert m.proj.out_features == 67


def test_padding_never_changes_real_positions():
    torch.manual_seed(0)
    for bi in (False, True):
        m = Tagger(ModelConfig(16, 8, num_layers=2, bidirectional=bi), vocab_size=20, num_tags=5).eval()
        x = torch.tensor([[3, 4, 5]])
        padded = torch.tensor([[3, 4, 5, 0, 0, 0]])
        a = m(x, torch.tensor([3]))
        b = m(padded, torch.tensor([3]))
        assert b.shape == (1, 6, 5)
        torch.testing.assert_close(a, b[:, :3])
