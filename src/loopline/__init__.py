"""loopline: PyTorch data that does not flow in a straight line."""

__all__: list[str] = []
