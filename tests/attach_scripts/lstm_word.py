"""An LSTM word model (after pytorch/examples word_language_model): truncated BPTT, clip_grad_norm_,
a manual SGD update by hand and a manual lr decay when validation does not improve; random tokens."""
import argparse

import torch
import torch.nn as nn

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=20.0)
parser.add_argument("--clip", type=float, default=0.25)
parser.add_argument("--epochs", type=int, default=2)
args = parser.parse_args()
torch.manual_seed(1111)
ntokens, emsize, nhid, bptt, bsz = 50, 16, 16, 5, 4


class RNNModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.drop = nn.Dropout(0.2)
        self.encoder = nn.Embedding(ntokens, emsize)
        self.rnn = nn.LSTM(emsize, nhid, 2, dropout=0.2)
        self.decoder = nn.Linear(nhid, ntokens)

    def forward(self, input, hidden):
        emb = self.drop(self.encoder(input))
        output, hidden = self.rnn(emb, hidden)
        return self.decoder(self.drop(output)).view(-1, ntokens), hidden

    def init_hidden(self, bsz):
        weight = next(self.parameters())
        return (weight.new_zeros(2, bsz, nhid), weight.new_zeros(2, bsz, nhid))


def repackage_hidden(h):
    return tuple(v.detach() for v in h)


train_data = torch.randint(0, ntokens, (21, bsz))
val_data = torch.randint(0, ntokens, (11, bsz))
model = RNNModel()
criterion = nn.NLLLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)


def evaluate(source):
    model.eval()
    total, hidden = 0.0, model.init_hidden(bsz)
    with torch.no_grad():
        for i in range(0, source.size(0) - 1, bptt):
            seq = min(bptt, len(source) - 1 - i)
            output, hidden = model(source[i : i + seq], hidden)
            total += seq * criterion(torch.log_softmax(output, -1), source[i + 1 : i + 1 + seq].reshape(-1)).item()
    return total / (len(source) - 1)


lr, best_val = args.lr, None
for epoch in range(1, args.epochs + 1):
    model.train()
    hidden = model.init_hidden(bsz)
    for i in range(0, train_data.size(0) - 1, bptt):
        seq = min(bptt, len(train_data) - 1 - i)
        data, targets = train_data[i : i + seq], train_data[i + 1 : i + 1 + seq].reshape(-1)
        optimizer.zero_grad()
        hidden = repackage_hidden(hidden)
        output, hidden = model(data, hidden)
        loss = criterion(torch.log_softmax(output, -1), targets)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        optimizer.step()
        print(repr(loss.item()), repr(norm.item()))
    val_loss = evaluate(val_data)
    print(f"val {val_loss!r}")
    if best_val is None or val_loss < best_val:
        best_val = val_loss
    else:
        lr /= 4.0
        for group in optimizer.param_groups:
            group["lr"] = lr
print(repr(sum(p.sum().item() for p in model.parameters())))
