"""What goes wrong with an endless stream, as exceptions a run can catch by name.

`EmptyEpoch`: an epoch gave no batch, so iterating forever would spin. `NotResumable`:
the stream's position cannot be restored exactly, raised by `state_dict()` so that a
run learns it at its first checkpoint rather than at resume. `GeneratorFailed`: a
`from_generator` function raised, with where in its sequence.
"""

from __future__ import annotations


class EmptyEpoch(RuntimeError):
    """A loader produced no batch in an epoch, which would make `forever` spin.

    Example:
        >>> import loopline
        >>> from torch.utils.data import DataLoader
        >>> try:
        ...     next(loopline.forever(DataLoader([])))
        ... except loopline.EmptyEpoch as error:
        ...     print(type(error).__name__)
        EmptyEpoch
    """


class NotResumable(TypeError):
    """The loader's position cannot be restored exactly.

    Raised by `state_dict()`, so a run learns it at its first checkpoint, not at resume.

    Example:
        >>> import loopline
        >>> from torch.utils.data import DataLoader
        >>> shuffled = DataLoader(list(range(5)), batch_size=2, shuffle=True)
        >>> try:
        ...     loopline.forever(shuffled).state_dict()
        ... except loopline.NotResumable as error:
        ...     print(str(error)[:55])
        forever: the DataLoader's sampler RandomSampler does no
    """


class GeneratorFailed(RuntimeError):
    """An exception raised inside a `from_generator` function, with where it happened.

    The original exception is its `__cause__`.

    Example:
        >>> import loopline
        >>> def broken():
        ...     yield 1
        ...     raise KeyError("no such file")
        >>> try:
        ...     list(loopline.from_generator(broken))
        ... except loopline.GeneratorFailed as error:
        ...     print(error)  # doctest: +ELLIPSIS
        from_generator: broken raised KeyError: 'no such file' at sample 1 of the full ...
    """
