"""Word model with a module-level hidden state

An LSTM language model in the style of a word_lm training loop: the hidden
state is carried from one batch to the next in the module-level `hidden`,
detached at the start of each batch.
"""

import torch
from torch import nn

vocab, width, seq, batch = 12, 8, 5, 3
tokens = torch.randint(0, vocab, (seq * 6 + 1, batch))
data = [(tokens[i : i + seq], tokens[i + 1 : i + 1 + seq]) for i in range(0, seq * 6, seq)]

embed = nn.Embedding(vocab, width)
lstm = nn.LSTM(width, width)
decoder = nn.Linear(width, vocab)
hidden = (torch.zeros(1, batch, width), torch.zeros(1, batch, width))


def model(x):
    global hidden
    hidden = tuple(h.detach() for h in hidden)
    out, hidden = lstm(embed(x), hidden)
    return decoder(out)


def loss_fn(pred, target):
    return nn.functional.cross_entropy(pred.reshape(-1, vocab), target.reshape(-1))


optimizer = torch.optim.SGD([*embed.parameters(), *lstm.parameters(), *decoder.parameters()], lr=0.5)
