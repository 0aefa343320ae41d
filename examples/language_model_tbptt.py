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

On a corpus made in code (a small grammar), the fused nn.LSTM trains across the epoch seam
with (h, c) carried over, and a checkpoint 14 steps into a chunk resumes bit for bit into
fresh objects. `_plain_language_model.py` does the same job by hand (an endless loop over
epochs, the row and hidden state in the checkpoint) with the same losses in float64, resume
included. Counted alike (code lines of the job's functions, not the model's or the data's),
loopline saves no lines: an indexable corpus resumes from a row number. It buys a loop over a
stream: chunks that a generator makes or reads, of a corpus that cannot be indexed, train and
resume the same way. Scheduled sampling on tokens is one `teacher=` argument (run below,
uncounted; by hand it needs a loop per step).

`python examples/language_model_tbptt.py` prints (abridged, measured on this machine):

    held-out perplexity before training: 50.3
    held-out perplexity after 199 windows: 7.1
    resume exact: True
      float64, 199 windows: largest difference 8.9e-16
      after each side's resume: 4.4e-16; plain resumes bit for bit: True
    plain PyTorch gives the same losses: True
    lines: loopline 43, plain PyTorch 36 (saves none: 7 more)
"""

from __future__ import annotations

import io
import math
import random
import time
from itertools import islice

import torch
from _lines import describe_counts
from _plain_language_model import get_batch, repackage_hidden, resume_plain, save_plain, train_plain
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
WINDOWS = 199  # 179 per epoch (36 chunks): the training crosses into epoch 1
CHECKPOINT = (35, 14)  # 14 steps into the 35th chunk: the resumed run crosses into epoch 1
CLIP = 0.25
SEED = 0


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


# ------------------------------------------------------------- loopline's side of the job


def chunks(columns: torch.Tensor):
    """`[BPTT + 1, B]` rows of the columns; consecutive chunks share a row (target, input)."""
    for i in range(0, len(columns) - 1, BPTT):
        yield columns[i : i + BPTT + 1]


def make_stream(columns: torch.Tensor) -> loopline.Forever:
    # No workers: the carried state needs the chunks in corpus order, and they are views.
    dataset = loopline.from_generator(chunks, columns, batched=True)
    return loopline.forever(DataLoader(dataset, batch_size=None))


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


def train(model, optimizer, stream, state):
    """Endless: yield (loss, chunk, windows) after each window, to checkpoint there."""
    while True:
        chunk = next(stream)
        windows = windows_of(model, chunk, state)
        for part in windows:
            yield fit_window(model, optimizer, part), chunk, windows
        # Detached already: no repackage_hidden. Unlike PyTorch's example, which resets the
        # state each epoch, the endless stream carries it on across the epoch's seam.
        state = windows.state


def save(model, optimizer, stream, windows, chunk) -> bytes:
    buffer = io.BytesIO()
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict()}
    state["stream"] = stream.state_dict()  # which chunk comes next
    state["windows"] = windows.state_dict()  # where in this chunk, and the (h, c) there
    state["chunk"] = chunk  # the chunk being trained on: the stream has moved past it
    torch.save(state, buffer)
    return buffer.getvalue()


def resume(checkpoint: bytes, model, optimizer, stream):
    """Into fresh objects: finish the saved chunk, then go on with the stream."""
    saved = torch.load(io.BytesIO(checkpoint))
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    stream.load_state_dict(saved["stream"])
    windows = windows_of(model, saved["chunk"], None)
    windows.load_state_dict(saved["windows"])  # start, carry and (h, c)
    for part in windows:
        yield fit_window(model, optimizer, part), saved["chunk"], windows
    yield from train(model, optimizer, stream, windows.state)


# ------------------------------------------------------------- runs and checks


def run_loopline(columns: torch.Tensor, dtype: torch.dtype, show: bool = False):
    """WINDOWS windows checkpointed at CHECKPOINT, then the rest again after a resume."""
    model, optimizer = make_model(dtype)
    losses, checkpoint, at = [], b"", 0
    with make_stream(columns) as stream:
        run = train(model, optimizer, stream, model.init_state(BATCH))
        for loss, chunk, windows in islice(run, WINDOWS):
            losses.append(loss)
            if show and len(losses) % 45 == 0:
                print(f"  window {len(losses):3d}  epoch {stream.epoch}  loss {loss:.3f}")
            if (stream.step, windows.state_dict()["start"]) == CHECKPOINT:
                checkpoint, at = save(model, optimizer, stream, windows, chunk), len(losses)
    with make_stream(columns) as stream:  # and fresh objects, as after a kill
        resumed = islice(resume(checkpoint, *make_model(dtype), stream), WINDOWS - at)
        return model, losses, [loss for loss, _, _ in resumed]


def run_plain(columns: torch.Tensor, dtype: torch.dtype):
    """The same with the plain loop, checkpointed at the same row."""
    model, optimizer = make_model(dtype)
    losses, checkpoint, at = [], b"", 0
    run = islice(train_plain(model, optimizer, columns, WINDOW, CLIP), WINDOWS)
    for loss, position, hidden in run:
        losses.append(loss)
        if position == (0, (CHECKPOINT[0] - 1) * BPTT + CHECKPOINT[1]):
            checkpoint, at = save_plain(model, optimizer, position, hidden), len(losses)
    resumed = resume_plain(checkpoint, *make_model(dtype), columns, WINDOW, CLIP)
    return losses, [loss for loss, _, _ in islice(resumed, WINDOWS - at)]


def perplexity(model: WordLSTM, columns: torch.Tensor) -> float:
    with torch.no_grad():
        out = loopline.unroll(
            model, None, columns[1:], inputs=columns[:-1], whole=True,
            state=model.init_state(columns.shape[1]), loss_fn=nn.CrossEntropyLoss(),
        )  # fmt: skip
    return math.exp(out.loss.item())


def compare_with_plain(columns: torch.Tensor) -> tuple[bool, bool]:
    """The whole job in float64, resume included: loopline's and the plain one."""
    _, ours, ours_resumed = run_loopline(columns, torch.float64)
    theirs, theirs_resumed = run_plain(columns, torch.float64)
    gap = max(abs(a - b) for a, b in zip(ours, theirs, strict=True))
    later = max(abs(a - b) for a, b in zip(ours_resumed, theirs_resumed, strict=True))
    exact = theirs_resumed == theirs[-len(theirs_resumed) :]
    print(f"  float64, {len(ours)} windows: largest difference {gap:.1e}")
    print(f"  after each side's resume: {later:.1e}; plain resumes bit for bit: {exact}")
    return gap < 1e-10, gap < 1e-10 and later < 1e-10 and exact


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

    before = perplexity(make_model()[0], held_out)
    print(f"held-out perplexity before training: {before:.1f}")
    model, losses, resumed = run_loopline(columns, torch.float32, show=True)
    now = perplexity(model, held_out)
    print(f"held-out perplexity after {len(losses)} windows: {now:.1f}")
    print(f"  resumed from the checkpoint into fresh objects: {len(resumed)} windows")
    exact = resumed == losses[-len(resumed) :]
    print(f"resume exact: {exact}")

    same_run, same = compare_with_plain(columns)
    print(f"loss equals the hand-written loop: {same_run}")
    print(f"plain PyTorch gives the same losses: {same}")
    ours = (chunks, make_stream, windows_of, fit_window, train, save, resume)
    plain = (get_batch, repackage_hidden, train_plain, save_plain, resume_plain)
    print(describe_counts(ours, plain))

    sampled = scheduled_sampling_runs(columns)
    print(f"scheduled sampling on tokens runs: {sampled}")
    fell = now < before / 2
    print(f"perplexity fell: {fell}")
    print(f"done in {time.perf_counter() - started:.1f} s")
    if not (fell and exact and same and sampled):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
