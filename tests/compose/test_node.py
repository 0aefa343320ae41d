"""Node: what a node refuses when it is made, before any graph sees it."""

from __future__ import annotations

import pytest
import torch

from loopline import GraphError, Node, Spec


def test_node_refuses_detach_or_specs_for_keys_it_does_not_read():
    with pytest.raises(GraphError, match=r"node 'b' names 'z' in detach or specs, but reads"):
        Node("b", torch.relu, inputs="x", detach=["z"])
    with pytest.raises(GraphError, match=r"names 'y' in detach or specs"):
        Node("b", torch.relu, inputs="x", specs={"y": Spec(("B",))})


def test_node_refuses_bad_names_and_keyword_names():
    with pytest.raises(GraphError, match=r"without '\.'"):
        Node("enc.oder", torch.relu, inputs="x")
    with pytest.raises(GraphError, match="'lambda' is not a keyword name"):
        Node("f", torch.add, inputs={"lambda": "x"})
