"""How do I train a word-level LSTM language model with truncated BPTT over an endless stream?

PyTorch's word_language_model example batchifies a corpus into columns, cuts them with
`get_batch`, and calls `repackage_hidden` so the gradient stops at each window. With loopline
the stream serves chunks of the columns and `loopline.unroll_windows` does the cutting:

    dataset = loopline.from_generator(chunks, columns, batched=True)  # [BPTT + 1, B] each
    stream = loopline.forever(DataLoader(dataset, batch_size=None))
    windows = loopline.unroll_windows(model, None, chunk[1:], inputs=chunk[:-1], whole=True,
                                      window=WINDOW, state=state, loss_fn=nn.CrossEntropyLoss())
    for part in windows: ...  # backward() and an optimizer step per window
    state = windows.state  # detached: the next chunk goes on from here

This example trains on a corpus generated in code (a small grammar, nothing is downloaded):

- perplexity on held-out sentences before and after a short training across an epoch
  boundary of the endless stream ("perplexity fell: True");
- `whole=True`: the fused nn.LSTM runs once per window, and in float64 the losses equal
  those of the hand-written loop in `_plain_language_model.py` (batchify, get_batch,
  repackage_hidden), whose line count is printed next to loopline's;
- a checkpoint taken inside a chunk (model, optimizer, `stream.state_dict()`,
  `windows.state_dict()` and the chunk), restored into fresh objects: the losses that follow
  are those of the uninterrupted run, bit for bit ("resume exact: True");
- scheduled sampling on tokens: `teacher=loopline.scheduled_sampling(0.9)` feeds the
  model's own argmax back instead of the true next word for ~10% of the samples per step.

Run it with `python examples/language_model_tbptt.py`.
"""

from __future__ import annotations

import inspect
import io
import math
import random
import time

import torch
from _plain_language_model import get_batch, repackage_hidden, train_plain
from torch import nn
from torch.utils.data import DataLoader

import loopline

WORDS = {
    group: words.split()
    for group, words in {
        "det": "the a every some this",
        "pron": "he she it",
        "adj": "small big red old quiet happy dark bright",
        "noun": "cat dog bird child farmer teacher river house tree car book garden",
        "verb": "sees likes follows finds builds reads carries watches helps paints",
        "prep": "near under behind beside",
        "adv": "quickly slowly often never",
        "conj": "and but",
        "end": ". <eos>",
    }.items()
}
VOCAB = [word for group in WORDS.values() for word in group]  # 50 words
INDEX = {word: i for i, word in enumerate(VOCAB)}
TOKENS, HELD_OUT = 20_000, 2_000
BATCH = 16
BPTT = 35  # rows per chunk of the stream (the chunk holds one more: the last target)
WINDOW = 7  # steps per backward(): 5 windows per chunk
CHUNKS = 40  # 36 chunks per epoch: the training crosses into epoch 1
CHECKPOINT = (35, 14)  # 14 steps into the 35th chunk: the resumed run crosses into epoch 1
CLIP = 0.25
SEED = 0


# ------------------------------------------------------------- data


def noun_phrase(r: random.Random) -> list[str]:
    adjective = [r.choice(WORDS["adj"])] if r.random() < 0.5 else []
    return [r.choice(WORDS["det"]), *adjective, r.choice(WORDS["noun"])]


def clause(r: random.Random) -> list[str]:
    # Each subject prefers three verbs: something to learn beyond the words' frequencies.
    subject = noun_phrase(r) if r.random() < 0.7 else [r.choice(WORDS["pron"])]
    verb = WORDS["verb"][(3 * INDEX[subject[-1]] + r.randrange(3)) % len(WORDS["verb"])]
    words = subject + ([r.choice(WORDS["adv"])] if r.random() < 0.3 else [])
    words += [verb, *noun_phrase(r)]
    return words + ([r.choice(WORDS["prep"]), *noun_phrase(r)] if r.random() < 0.3 else [])


def corpus(tokens: int, seed: int) -> torch.Tensor:
    """Sentences of the grammar as word ids, `[tokens]` int64, the same for the same seed."""
    r, ids = random.Random(seed), []
    while len(ids) < tokens:
        sentence = clause(r) + ([r.choice(WORDS["conj"]), *clause(r)] if r.random() < 0.2 else [])
        ids += [INDEX[word] for word in [*sentence, ".", "<eos>"]]
    return torch.tensor(ids[:tokens])


def batchify(data: torch.Tensor, bsz: int) -> torch.Tensor:
    """`[L * bsz]` -> `[L, bsz]`: each column a contiguous stretch of the corpus."""
    return data[: len(data) // bsz * bsz].view(bsz, -1).t().contiguous()


def chunks(columns: torch.Tensor):
    """`[BPTT + 1, B]` rows of the columns; consecutive chunks share a row (target, input)."""
    for i in range(0, len(columns) - 1, BPTT):
        yield columns[i : i + BPTT + 1]


def make_stream(columns: torch.Tensor) -> loopline.Forever:
    # No workers: the carried state needs the chunks in corpus order, and they are views.
    dataset = loopline.from_generator(chunks, columns, batched=True)
    return loopline.forever(DataLoader(dataset, batch_size=None))


# ------------------------------------------------------------- model


class WordLSTM(nn.Module):
    """`forward(tokens [T, B] or [B], state) -> (logits [T, B, V] or [B, V], state)`."""

    def __init__(self, vocab: int, emb: int = 32, hidden: int = 64, layers: int = 2) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, emb)
        self.lstm = nn.LSTM(emb, hidden, layers)
        self.head = nn.Linear(hidden, vocab)

    def init_state(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (self.lstm.num_layers, batch, self.lstm.hidden_size)
        return self.head.weight.new_zeros(shape), self.head.weight.new_zeros(shape)

    def forward(self, tokens: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]):
        # whole=True passes a window [T, B]; step by step (a teacher) unroll passes [B].
        step = tokens.dim() == 1
        out, state = self.lstm(self.embed(tokens[None] if step else tokens), state)
        logits = self.head(out)
        return (logits[0] if step else logits), state


def make_model(dtype: torch.dtype = torch.float32):
    torch.manual_seed(SEED)
    model = WordLSTM(len(VOCAB)).to(dtype)
    return model, torch.optim.Adam(model.parameters(), lr=0.01)


# ------------------------------------------------------------- the loopline training loop


def windows_of(model, chunk, state, whole: bool = True, teacher=None) -> loopline.Windows:
    # Step t reads chunk[t] and predicts chunk[t + 1]; loss_fn sees logits [B, V], ids [B].
    # feedback turns logits into the token fed back, used only where a teacher picks it.
    return loopline.unroll_windows(
        model, None, chunk[1:], inputs=chunk[:-1], whole=whole, window=WINDOW, state=state,
        loss_fn=nn.CrossEntropyLoss(), feedback=lambda logits: logits.argmax(-1),
        teacher=teacher,
    )  # fmt: skip


def fit_window(model, optimizer, part: loopline.Unrolled) -> float:
    optimizer.zero_grad()
    part.loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), CLIP)
    optimizer.step()
    return part.loss.item()


def train(model, optimizer, stream, state, chunks: int):
    """Yield (loss, chunk, windows) after each window, so the caller can checkpoint there."""
    for _ in range(chunks):
        chunk = next(stream)
        windows = windows_of(model, chunk, state)
        for part in windows:
            yield fit_window(model, optimizer, part), chunk, windows
        # Detached already: no repackage_hidden. Unlike PyTorch's example, which resets the
        # state each epoch, the endless stream carries it on across the epoch's seam.
        state = windows.state


# ------------------------------------------------------------- checks


def perplexity(model: WordLSTM, columns: torch.Tensor) -> float:
    with torch.no_grad():
        out = loopline.unroll(
            model, None, columns[1:], inputs=columns[:-1], whole=True,
            state=model.init_state(columns.shape[1]), loss_fn=nn.CrossEntropyLoss(),
        )  # fmt: skip
    return math.exp(out.loss.item())


def save(model, optimizer, stream, windows, chunk) -> bytes:
    buffer = io.BytesIO()
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict()}
    state["stream"] = stream.state_dict()  # which chunk comes next
    state["windows"] = windows.state_dict()  # where in this chunk, and the (h, c) there
    state["chunk"] = chunk  # the chunk being trained on: the stream has moved past it
    torch.save(state, buffer)
    return buffer.getvalue()


def resume(checkpoint: bytes, columns: torch.Tensor, chunks: int) -> list[float]:
    """Fresh model, optimizer and stream; finish the saved chunk, then go on with the stream."""
    saved = torch.load(io.BytesIO(checkpoint))
    model, optimizer = make_model()
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    with make_stream(columns) as stream:
        stream.load_state_dict(saved["stream"])
        windows = windows_of(model, saved["chunk"], None)
        windows.load_state_dict(saved["windows"])  # start, carry and (h, c)
        losses = [fit_window(model, optimizer, part) for part in windows]
        left = chunks - stream.step
        losses += [loss for loss, _, _ in train(model, optimizer, stream, windows.state, left)]
    return losses


def code_lines(*functions) -> int:
    """Non-blank lines of the functions, less comments and docstrings."""
    total = 0
    for fn in functions:
        source = [line.strip() for line in inspect.getsource(fn).splitlines()]
        doc = [line for line in (fn.__doc__ or "").splitlines() if line.strip()]
        total += sum(1 for line in source if line and not line.startswith("#")) - len(doc)
    return total


def compare_with_plain(columns: torch.Tensor) -> bool:
    """The same windows in float64: loopline's loop and the hand-written one."""
    model, optimizer = make_model(torch.float64)
    with make_stream(columns) as stream:
        state = model.init_state(BATCH)
        ours = [loss for loss, _, _ in train(model, optimizer, stream, state, 3)]
    model, optimizer = make_model(torch.float64)
    theirs = train_plain(model, optimizer, columns, WINDOW, CLIP, len(ours))
    gap = max(abs(a - b) for a, b in zip(ours, theirs, strict=True))
    print(f"  {len(ours)} windows in float64, largest difference {gap:.1e}")
    return gap < 1e-10


def scheduled_sampling_runs(columns: torch.Tensor) -> bool:
    # whole=True refuses a teacher (no prediction is fed back), so this runs step by step.
    model, optimizer = make_model()
    teacher = loopline.scheduled_sampling(0.9, seed=SEED)
    chunk = columns[: BPTT + 1]
    windows = windows_of(model, chunk, model.init_state(BATCH), whole=False, teacher=teacher)
    losses = [fit_window(model, optimizer, part) for part in windows]
    print(f"  {len(losses)} windows step by step, p(truth) = 0.9, last loss {losses[-1]:.3f}")
    return len(losses) == BPTT // WINDOW and all(math.isfinite(loss) for loss in losses)


def main() -> None:
    started = time.perf_counter()
    # A model this small gains nothing from intra-op threads, and on a busy machine their
    # spin-waiting made each window ~100x slower; one thread keeps it to milliseconds.
    torch.set_num_threads(1)
    columns = batchify(corpus(TOKENS, SEED), BATCH)  # [1250, 16]
    held_out = batchify(corpus(HELD_OUT, SEED + 1), BATCH)
    print(f"corpus: {TOKENS} tokens, {len(VOCAB)} words, columns {tuple(columns.shape)}")

    model, optimizer = make_model()
    before = perplexity(model, held_out)
    print(f"held-out perplexity before training: {before:.1f}")
    checkpoint, after, window = b"", [], 0
    with make_stream(columns) as stream:
        state = model.init_state(BATCH)
        for loss, chunk, windows in train(model, optimizer, stream, state, CHUNKS):
            window += 1
            if checkpoint:
                after.append(loss)
            if window % 45 == 0:
                print(f"  window {window:3d}  epoch {stream.epoch}  chunk {stream.step:2d}  "
                      f"loss {loss:.3f}")  # fmt: skip
            if (stream.step, windows.state_dict()["start"]) == CHECKPOINT:
                checkpoint = save(model, optimizer, stream, windows, chunk)
                print(f"  -- checkpoint {CHECKPOINT[1]} steps into chunk {stream.step}")
    now = perplexity(model, held_out)
    print(f"held-out perplexity after {window} windows: {now:.1f}")
    fell = now < before / 2

    resumed = resume(checkpoint, columns, CHUNKS)
    exact = resumed == after
    print(f"  resumed into fresh objects: {len(resumed)} windows replayed")
    print(f"resume exact: {exact}")

    same = compare_with_plain(columns)
    print(f"loss equals the hand-written loop: {same}")
    ours = code_lines(chunks, windows_of, fit_window, train)
    plain = code_lines(get_batch, repackage_hidden, train_plain)
    print(f"lines: loopline {ours}, plain {plain}")

    sampled = scheduled_sampling_runs(columns)
    print(f"scheduled sampling on tokens runs: {sampled}")
    print(f"perplexity fell: {fell}")
    print(f"done in {time.perf_counter() - started:.1f} s")
    if not (fell and exact and same and sampled):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
