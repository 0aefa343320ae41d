"""The pre-flight check of a graph: every node run once on meta tensors, every edge checked.

Meta tensors have a shape and a dtype but no data, so running a model on them allocates
nothing and computes nothing: operators only work out output shapes. Modules run through
`torch.func.functional_call` with meta copies of their parameters and buffers, so the real
module never changes device. A module that fails on meta (an operator without a meta
kernel, a data-dependent shape, `.item()`) is run once more on real tensors of the same
shapes, on its own device, with copies of its buffers so that nothing of it changes: if
that works, meta was the problem and the summary says so; if not, the error is real.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.func import functional_call
from torch.nn.parameter import is_lazy

from loopline.compose._dtypes import DtypeGuard, parameter_dtypes, reads_indices
from loopline.compose._stand_ins import to_meta, to_real
from loopline.compose.node import GraphError, Node
from loopline.compose.spec import Spec, check_value, describe, implied_spec, synthesize


@dataclasses.dataclass
class Report:
    """What the check found: each node's output as described, and how it ran."""

    outputs: dict[str, str]  # node name -> its output, e.g. "(B, 16) float32"
    fallbacks: dict[str, str]  # node name -> why it ran on real tensors
    sizes: str  # the synthetic sizes used, e.g. "B=17, T=41", or ""
    source: str  # "specs", "a batch" or "a batch and specs"


@dataclasses.dataclass
class _Context:
    sizes: dict[str, int]  # every symbol bound so far
    named: set[str]  # symbols whose size the check chose (or `sizes=` gave): shown by name
    avoid: set[int]  # sizes the check must not choose: the graph's literal sizes, and taken
    origins: dict[str, str] = dataclasses.field(default_factory=dict)

    def names(self) -> dict[int, str]:
        """Sizes to show as symbols in shapes: those of one named symbol only."""
        chosen = [(self.sizes[s], s) for s in sorted(self.named)]
        counts = [size for size, _ in chosen]
        return {size: s for size, s in chosen if counts.count(size) == 1}

    def used(self) -> str:
        return ", ".join(f"{s}={size}" for size, s in sorted(self.names().items()))


def run_check(
    order: list[Node],
    inputs: Mapping[str, Spec | None],
    batch: Mapping[str, Any] | None,
    sizes: Mapping[str, int] | None,
) -> Report:
    """Check the graph's inputs, then run its nodes in order on meta tensors."""
    for node in order:
        _refuse_lazy(node)
    given = dict(batch or {})
    context = _Context(dict(sizes or {}), set(sizes or {}), _literal_sizes(order, inputs))
    context.avoid.update(context.sizes.values())
    context.origins.update({s: "the sizes given to check" for s in context.sizes})
    values: dict[str, Any] = {}
    real: dict[str, Any] = {}  # batch values, for the value checks of node specs
    # Real values first, so that their sizes bind the symbols the specs then reuse.
    for key, spec in inputs.items():
        value = given.get(key)
        if value is not None and not isinstance(value, Spec):
            if spec is not None:
                _check_edge(spec, value, context, "the batch", key)
            real[key], values[key] = value, to_meta(value)
    for key, spec in inputs.items():
        if key in values:
            continue
        made_from = given.get(key, spec)
        if made_from is None:
            raise GraphError(
                f"input {key!r} has no Spec and check was given no value for it: declare "
                f"inputs={{{key!r}: Spec(...)}} or pass check a batch",
                key=key,
            )
        bound = set(context.sizes)
        values[key] = synthesize(made_from, context.sizes, context.avoid)
        context.named.update(set(context.sizes) - bound)
        if spec is not None and made_from is not spec:
            _check_edge(spec, values[key], context, "the batch", key)
    sources = dict.fromkeys(values, "the batch")
    devices = {key: _device_of_value(value) for key, value in real.items()}
    outputs, fallbacks = {}, {}
    for node in order:
        devices[node.output] = _check_device(node, devices, sources)
        for key, spec in node.specs.items():
            _check_edge(spec, real.get(key, values[key]), context, sources[key], key, node.name)
        args = [values[key] for key in node.reads]
        try:
            out = _call(node, args, _meta_state)
        except Exception as meta_error:
            device = devices[node.output] or torch.device("cpu")
            out = to_meta(_fall_back(node, args, device, sources, context, meta_error))
            fallbacks[node.name] = f"{type(meta_error).__name__}: {_first_line(meta_error)}"
        values[node.output], sources[node.output] = out, f"node {node.name!r}"
        outputs[node.name] = describe(out, context.names())
    source = "specs" if not real else "a batch" if len(real) == len(inputs) else "a batch and specs"
    return Report(outputs, fallbacks, context.used(), source)


def _literal_sizes(order: list[Node], inputs: Mapping[str, Spec | None]) -> set[int]:
    """Sizes written in the graph (specs, parameter shapes): a symbol given one of them
    would be named wrongly wherever that size shows up in an output."""
    specs = [*inputs.values(), *(spec for node in order for spec in node.specs.values())]
    sizes = {dim for spec in specs if spec is not None for dim in spec.shape}
    for node in order:
        if isinstance(node.fn, nn.Module):
            tensors = [*node.fn.parameters(), *node.fn.buffers()]
            sizes.update(size for tensor in tensors for size in tensor.shape)
    return {size for size in sizes if isinstance(size, int)}


def _check_edge(
    spec: Spec, value: Any, context: _Context, source: str, key: str, node: str | None = None
) -> None:
    where = f"input {key!r}" if node is None else f"node {node!r} input {key!r}"
    names = context.names()
    problem = check_value(spec, value, context.sizes, context.origins, where, names, source)
    if problem is not None:
        raise GraphError(f"{where}: {problem}", node=node, key=key)


def _check_device(
    node: Node, devices: dict[str, torch.device | None], sources: dict[str, str]
) -> torch.device | None:
    """The device of the node's output, after checking that its inputs from a real batch
    are where its parameters are. Specs have no device, and a module on meta is a dry
    run, so only real tensors and real parameters are compared."""
    home = _device_of(node.fn)
    for key in node.reads:
        device = devices.get(key)
        if home is None or device is None or "meta" in (home.type, device.type):
            continue
        if device != home:
            raise GraphError(
                f"node {node.name!r} input {key!r}: on {device}, but the node's parameters "
                f"are on {home} (from {sources[key]})",
                node=node.name,
                key=key,
            )
    return home or next((d for k in node.reads if (d := devices.get(k)) is not None), None)


def _device_of_value(value: Any) -> torch.device | None:
    if isinstance(value, torch.Tensor):
        return value.device
    if isinstance(value, (tuple, list)):  # a Padded too
        return next((d for v in value if (d := _device_of_value(v)) is not None), None)
    return None


def _call(node: Node, args: list[Any], state: Any) -> Any:
    """Run the node as the graph's forward does, modules with `state(module)` swapped in."""
    positional, keywords = args[: len(node.args)], args[len(node.args) :]
    kwargs = dict(zip(node.kwargs, keywords, strict=True))
    # On meta, the guard refuses the dtype mixes that meta kernels let through.
    guard = DtypeGuard() if state is _meta_state else contextlib.nullcontext()
    with torch.no_grad(), guard:
        if isinstance(node.fn, nn.Module):
            return functional_call(node.fn, state(node.fn), tuple(positional), kwargs)
        return node.fn(*positional, **kwargs)


def _refuse_lazy(node: Node) -> None:
    """A lazy module would size its parameters from the check's fake inputs: refuse."""
    if isinstance(node.fn, nn.Module):
        for name, tensor in [*node.fn.named_parameters(), *node.fn.named_buffers()]:
            if is_lazy(tensor):
                raise GraphError(
                    f"node {node.name!r} has an uninitialised (lazy) parameter {name!r}: run "
                    "the graph once on a real batch before the check",
                    node=node.name,
                )


def _meta_state(module: nn.Module) -> dict[str, torch.Tensor]:
    named = [*module.named_parameters(), *module.named_buffers()]
    return {name: torch.empty_like(tensor, device="meta") for name, tensor in named}


def _buffer_copies(module: nn.Module) -> dict[str, torch.Tensor]:
    return {name: buffer.clone() for name, buffer in module.named_buffers()}


def _fall_back(
    node: Node,
    args: list[Any],
    device: torch.device,
    sources: dict[str, str],
    context: _Context,
    meta_error: Exception,
) -> Any:
    """Run the node on real tensors shaped like `args`, on `device` (its parameters' or
    its inputs'); a failure there is the node's."""
    if device.type == "meta":  # nothing real to run: the meta error is all there is
        raise _failure(node, args, sources, context, meta_error) from meta_error
    forked = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=forked):  # dropout must not move the user's RNG
            return _call(node, [to_real(a, device) for a in args], _buffer_copies)
    except Exception as error:
        raise _failure(node, args, sources, context, error) from error


def _failure(
    node: Node, args: list[Any], sources: dict[str, str], context: _Context, error: Exception
) -> GraphError:
    names, first = context.names(), node.reads[0] if node.reads else None
    implied = implied_spec(node.fn)
    if implied is not None and first is not None:
        spec, origin = implied
        source = sources[first]
        problem = check_value(spec, args[0], dict(context.sizes), None, "", names, source)
        if problem is not None:
            return GraphError(
                f"node {node.name!r} input {first!r}: {problem}; {origin}",
                node=node.name,
                key=first,
            )
    if first is not None and (clash := _dtype_clash(node, args[0], sources[first], names)):
        return GraphError(
            f"node {node.name!r} input {first!r}: {clash}: {type(error).__name__}: "
            f"{_first_line(error)}",
            node=node.name,
            key=first,
        )
    inputs = ", ".join(
        f"{key!r} {describe(value, names)} (from {sources[key]})"
        for key, value in zip(node.reads, args, strict=True)
    )
    inputs = f"input{'s' if len(args) > 1 else ''} {inputs}" if args else "no inputs"
    used = f" (with {context.used()})" if context.used() else ""
    return GraphError(
        f"node {node.name!r} failed on {inputs}: {type(error).__name__}: "
        f"{_first_line(error)}{used}",
        node=node.name,
    )


def _dtype_clash(node: Node, value: Any, source: str, names: dict[int, str]) -> str | None:
    """`"(B, 8) float64 (from the batch) meets parameters of dtype float32"` when the
    node's first input has another dtype than all of the module's parameters."""
    dtypes = parameter_dtypes(node.fn)
    if not isinstance(value, torch.Tensor) or len(dtypes) != 1 or value.dtype in dtypes:
        return None
    if reads_indices(node.fn):  # an embedding's input is indices, not values to match
        return None
    (dtype,) = dtypes
    where = f"{describe(value, names)} (from {source})"
    return f"{where} meets parameters of dtype {str(dtype).removeprefix('torch.')}"


def _device_of(fn: Any) -> torch.device | None:
    """Where a module's parameters (or buffers) are; None if it has none."""
    if isinstance(fn, nn.Module):
        for tensor in [*fn.parameters(), *fn.buffers()]:
            return tensor.device
    return None


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else ""
