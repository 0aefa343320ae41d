"""A second network trained on a first network's output: where the gradients go.

The pattern of examples/output_as_training_input.py (a): the second network takes
`first_out.detach()`, so each loss trains only its own network. The pitfall it replaces,
`first_out.detach().requires_grad_(True)`, is pinned down here too: the copy is a new leaf
that collects a gradient nobody reads, and the first network is never reached.
"""

import torch
from torch import nn

MSE = nn.MSELoss()


def networks():
    torch.manual_seed(0)
    first = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 4))
    second = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
    x, features, labels = torch.randn(16, 6), torch.randn(16, 4), torch.randn(16, 2)
    return first, second, x, features, labels


def grads(model):
    return [None if p.grad is None else p.grad.clone() for p in model.parameters()]


def test_second_loss_leaves_first_network_gradients_exactly_unchanged():
    first, second, x, features, labels = networks()
    MSE(first(x), features).backward()  # the first network's own loss, alone
    alone = grads(first)

    first.zero_grad(set_to_none=True)
    first_out = first(x)
    loss_second = MSE(second(first_out.detach()), labels)
    (MSE(first_out, features) + loss_second).backward()  # both, in the same step

    assert all(torch.equal(a, b) for a, b in zip(alone, grads(first), strict=True))


def test_second_loss_backpropagated_on_its_own_leaves_first_network_without_gradients():
    first, second, x, _, labels = networks()
    MSE(second(first(x).detach()), labels).backward()
    assert all(p.grad is None for p in first.parameters())


def test_second_network_receives_gradients_from_its_loss():
    first, second, x, features, labels = networks()
    first_out = first(x)
    (MSE(first_out, features) + MSE(second(first_out.detach()), labels)).backward()
    for p in second.parameters():
        assert p.grad is not None and bool(p.grad.any())


def test_second_network_gradients_match_a_fixed_input_reference():
    """Through detach, the second network sees the first one's output as plain data."""
    first, second, x, _, labels = networks()
    MSE(second(first(x).detach()), labels).backward()
    got = grads(second)

    with torch.no_grad():
        fixed = first(x)  # the same values, computed with no graph at all
    second.zero_grad(set_to_none=True)
    MSE(second(fixed), labels).backward()
    assert all(torch.equal(a, b) for a, b in zip(got, grads(second), strict=True))


def test_requires_grad_on_detached_output_fills_its_grad_but_never_reaches_first_network():
    """The pitfall: `detach().requires_grad_(True)` makes a new leaf, not a link back."""
    first, second, x, _, labels = networks()
    copy = first(x).detach().requires_grad_(True)
    assert copy.is_leaf and copy.grad_fn is None

    MSE(second(copy), labels).backward()
    assert copy.grad is not None and bool(copy.grad.any())  # a gradient, read by no one
    assert all(p.grad is None for p in first.parameters())


def test_without_detach_the_second_loss_does_train_the_first_network():
    """The contrast: end to end, the second loss changes the first network's gradients."""
    first, second, x, features, labels = networks()
    MSE(first(x), features).backward()
    alone = grads(first)

    first.zero_grad(set_to_none=True)
    first_out = first(x)
    (MSE(first_out, features) + MSE(second(first_out), labels)).backward()
    assert not all(torch.equal(a, b) for a, b in zip(alone, grads(first), strict=True))
