"""The table `Graph.summary()` prints: nodes in execution order, what flows between them.

Output shapes are known only after `Graph.check()`; before it, the column says so. Nodes
that ran on real tensors during the check (their module could not run on meta) are
marked, with the reason, so a slow or memory-hungry check is explained.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import nn

from loopline.compose._check import Report
from loopline.compose.node import Node
from loopline.compose.spec import Spec


def summarize(
    inputs: Mapping[str, Spec | None],
    order: Sequence[Node],
    modules: nn.ModuleDict,
    outputs: Sequence[str],
    report: Report | None,
) -> str:
    """The summary table of a graph: its `inputs`, its nodes in execution `order` with the
    `modules` that run them, its `outputs`, and shapes from `report` once checked."""
    described = ", ".join(key if spec is None else f"{key} {spec}" for key, spec in inputs.items())
    rows = [["node", "reads", "writes", "output", "params", "trainable"]]
    for node in order:
        module = modules[node.name]
        params = list(module.parameters())
        trained = sum(p.requires_grad for p in params)
        trainable = "-" if not params else "yes" if trained == len(params) else "no"
        trainable = "partly" if 0 < trained < len(params) else trainable
        output = "?" if report is None else report.outputs[node.name]
        if report is not None and node.name in report.fallbacks:
            output += " *"
        reads = ", ".join(("detached " if key in node.detach else "") + key for key in node.reads)
        count = f"{sum(p.numel() for p in params):,}"
        rows.append([node.name, reads or "-", node.output, output, count, trainable])
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    lines = [f"Graph({described} -> {', '.join(outputs)})"]
    for row in rows:
        cells = [
            cell.rjust(w) if c == 4 else cell.ljust(w)
            for c, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  " + "  ".join(cells).rstrip())
    total = sum(p.numel() for p in modules.parameters())
    trainable_total = sum(p.numel() for p in modules.parameters() if p.requires_grad)
    lines.append(f"  {total:,} parameters ({trainable_total:,} trainable)")
    lines.extend(_footer(report))
    return "\n".join(lines)


def _footer(report: Report | None) -> list[str]:
    if report is None:
        return ["  not checked: graph.check() runs it once on meta tensors"]
    sizes = f" ({report.sizes})" if report.sizes else ""
    lines = [f"  checked on meta tensors from {report.source}{sizes}"]
    for name, why in report.fallbacks.items():
        why = why if len(why) <= 80 else why[:77] + "..."
        lines.append(
            f"  * {name!r} ran on real tensors of these shapes, as on meta it raised {why}"
        )
    return lines
