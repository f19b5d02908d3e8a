import torch

from distner.config import ModelConfig
from distner.model.tagger import Tagger


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


def test_char_encoder_over_distinct_words_equals_per_position():
    from distner.model.tagger import CharCNN

    torch.manual_seed(0)
    cnn = CharCNN(num_chars=30, dim=8, channels=6, kernel=3)
    word_chars = torch.tensor([[0, 0, 0, 0], [5, 6, 7, 0], [9, 0, 0, 0], [3, 4, 5, 6]])
    index = torch.tensor([[1, 3, 1, 2], [2, 2, 0, 0]])  # repeated words and padding
    once = cnn(word_chars)[index]
    per_position = cnn(word_chars[index].view(-1, 4)).view(2, 4, -1)
    torch.testing.assert_close(once, per_position)
    assert (once[1, 2:] == 0).all()  # padding positions have no features


def test_bilstm_gives_the_same_scores_whatever_the_row_order():
    torch.manual_seed(0)
    m = Tagger(ModelConfig(16, 8, bidirectional=True), vocab_size=20, num_tags=5).eval()
    tokens = torch.tensor([[3, 4, 5, 6], [7, 8, 0, 0], [9, 0, 0, 0]])
    lengths = torch.tensor([4, 2, 1])  # longest first: packed without re-sorting
    order = torch.tensor([2, 0, 1])  # the same rows in another order: packing sorts them itself
    torch.testing.assert_close(m(tokens, lengths)[order], m(tokens[order], lengths[order]))
