"""Figure 2 of benchmarks/compose.py: Graph.check on models of about 100M real parameters,
its time and its memory, against one real forward at the sizes the check used."""

from __future__ import annotations

import gc
import statistics
import time
import tracemalloc
from pathlib import Path

import torch
from torch import nn

from loopline import Concat, Graph, Node, Spec

CHECK_HEADERS = [
    "model (real parameters, CPU)",
    "parameters",
    "check ms (median)",
    "peak RSS growth during check",
    "Python allocations, peak",
    "one real forward at the check's sizes, ms",
]


def linear_stack() -> tuple[Graph, dict]:
    """Six Linear(4096, 4096) with relu between: 100.7M parameters in 6 big operators."""
    nodes, key = [], "x"
    for i in range(6):
        nodes += [
            Node(f"linear{i}", nn.Linear(4096, 4096), inputs=key),
            Node(f"relu{i}", torch.relu, inputs=f"linear{i}"),
        ]
        key = f"relu{i}"
    graph = Graph(nodes, inputs={"x": Spec(("B", 4096))}, outputs=[key])
    return graph, {"x": torch.randn(17, 4096)}  # B=17: the size the check gives B


def text_image_transformer() -> tuple[Graph, dict]:
    """A 10-layer transformer text encoder (d=768) with padding mask, a conv image encoder
    on 224x224 images, concatenated, a 1000-way head: 98.7M parameters, ~450 operators."""
    dim = 768
    layer = nn.TransformerEncoderLayer(dim, 12, 4 * dim, batch_first=True)
    graph = Graph(
        [
            Node("embed", nn.Embedding(32000, dim), inputs="tokens"),
            Node(
                "text_encoder",
                nn.TransformerEncoder(layer, 10, enable_nested_tensor=False),
                inputs={"src": "embed", "src_key_padding_mask": "padding"},
            ),
            Node("pool", lambda x: x.mean(dim=1), inputs="text_encoder"),
            Node(
                "image_encoder",
                nn.Sequential(
                    nn.Conv2d(3, 64, 7, stride=2, padding=3),
                    nn.ReLU(),
                    nn.Conv2d(64, 256, 3, stride=2, padding=1),
                    nn.ReLU(),
                    nn.Conv2d(256, 512, 3, stride=2, padding=1),
                    nn.ReLU(),
                    nn.AdaptiveAvgPool2d(1),
                    nn.Flatten(),
                    nn.Linear(512, dim),
                ),
                inputs="image",
            ),
            Concat(["pool", "image_encoder"], "features"),
            Node("head", nn.Linear(2 * dim, 1000), inputs="features", output="logits"),
        ],
        inputs={
            "tokens": Spec(("B", "T"), torch.int64),
            "padding": Spec(("B", "T"), torch.bool),
            "image": Spec(("B", 3, 224, 224)),
        },
        outputs=["logits"],
    )
    batch = {  # the sizes the check uses: B=17, T=41
        "tokens": torch.randint(0, 32000, (17, 41)),
        "padding": torch.zeros(17, 41, dtype=torch.bool),
        "image": torch.randn(17, 3, 224, 224),
    }
    return graph, batch


def peak_rss_kib() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        return True
    except OSError:
        return False


def check_rows(quick: bool) -> list[list[str]]:
    rows = []
    for name, build in [
        ("6 x Linear(4096, 4096) + relu", linear_stack),
        ("text transformer + conv image encoder + head", text_image_transformer),
    ]:
        torch.manual_seed(0)
        graph, batch = build()
        params = sum(p.numel() for p in graph.parameters())
        graph.check()  # warm-up: first use of functional_call and of each meta kernel
        times = []
        for _ in range(3 if quick else 7):
            start = time.perf_counter()
            graph.check()
            times.append((time.perf_counter() - start) * 1e3)
        gc.collect()
        growth = "n/a"
        if reset_peak_rss() and (before := peak_rss_kib()) is not None:
            graph.check()
            after = peak_rss_kib()
            growth = f"{(after or before) - before:,} KiB"
        tracemalloc.start()
        graph.check()
        python_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        with torch.inference_mode():
            start = time.perf_counter()
            graph(batch)
            real_ms = (time.perf_counter() - start) * 1e3
        rows.append(
            [
                name,
                f"{params / 1e6:.1f}M",
                f"{statistics.median(times):.1f}",
                growth,
                f"{python_peak / 1024:,.0f} KiB",
                f"{real_ms:,.0f}",
            ]
        )
        print(" | ".join(rows[-1]), flush=True)
        del graph, batch
        gc.collect()
    return rows
