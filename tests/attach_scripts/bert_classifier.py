"""A BERT-style fine-tune: dict batches (input_ids, attention_mask, labels), a model whose forward
takes **batch and returns an output object with .loss, AdamW, a linear lr schedule, and a
validation pass under model.eval() between epochs; random tokens."""
from dataclasses import dataclass

import torch
import torch.nn as nn

torch.manual_seed(42)
vocab, width, classes = 100, 16, 3


@dataclass
class SequenceClassifierOutput:
    loss: torch.Tensor
    logits: torch.Tensor


class TinyBert(nn.Module):
    def __init__(self):
        super().__init__()
        self.embeddings = nn.Embedding(vocab, width)
        layer = nn.TransformerEncoderLayer(width, 2, 32, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.classifier = nn.Linear(width, classes)

    def forward(self, input_ids, attention_mask, labels=None):
        h = self.encoder(self.embeddings(input_ids), src_key_padding_mask=attention_mask == 0)
        logits = self.classifier(h[:, 0])
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)


def batches(n):
    for _ in range(n):
        yield {"input_ids": torch.randint(0, vocab, (4, 10)), "attention_mask": torch.ones(4, 10, dtype=torch.long),
               "labels": torch.randint(0, classes, (4,))}


model = TinyBert()
optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4)
scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0 - s / 8)
val = list(batches(2))
for epoch in range(2):
    model.train()
    for batch in batches(3):
        outputs = model(**batch)
        outputs.loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        print(repr(outputs.loss.item()))
    model.eval()
    with torch.no_grad():
        print("val", repr(sum(model(**b).loss.item() for b in val)))
print(repr(sum(p.sum().item() for p in model.parameters())))
