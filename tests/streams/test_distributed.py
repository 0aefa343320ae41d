"""even and forever under real torch.distributed: two rank processes (tests/_dist_ranks.py)
take the same number of steps, and a stream resumes exactly on every rank."""

from __future__ import annotations

from pathlib import Path

import pytest

from _dist_ranks import Ranks, flatten

# ---------------------------------------------------------------- even


EVEN_CASES = [
    pytest.param("generator", 0, id="generator-main-process"),
    pytest.param("generator", 2, id="generator-two-workers"),
    pytest.param("map", 0, id="map-main-process"),
    pytest.param("map", 2, id="map-two-workers"),
]


@pytest.mark.parametrize(("style", "num_workers"), EVEN_CASES)
def test_even_gives_every_rank_the_same_number_of_steps(
    ranks: Ranks, tmp_path: Path, style: str, num_workers: int
) -> None:
    epochs = 3
    results = ranks.run(
        "even",
        tmp_path,
        style=style,
        num_workers=num_workers,
        batches_per_rank=[5, 3],
        batch_size=2,
        epochs=epochs,
    )
    # Reaching here means no rank hung in an all-reduce the other never joined.
    assert [len(result["alone"]) for result in results] == [5, 3]  # really uneven
    for rank, result in enumerate(results):
        shortest = result["alone"][:3]
        assert result["even"] == shortest, f"rank {rank}"
        assert result["even_syncs"] == [2.0] * 3, f"rank {rank}"
        assert [epoch for epoch, _ in result["forever"]] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
        endless = [batch for _, batch in result["forever"]]
        if style == "map":
            assert endless == shortest * epochs, f"rank {rank}"
        else:  # each epoch rotated, so that even() leaves other batches out (_rotation)
            epoch_sets = [endless[3 * e : 3 * e + 3] for e in range(epochs)]
            assert all(batch in result["alone"] for batch in endless), f"rank {rank}"
            assert epoch_sets[0] == shortest and epoch_sets[1] != shortest, f"rank {rank}"
        assert result["forever_syncs"] == [2.0] * 9, f"rank {rank}"


def test_without_even_the_rank_with_more_batches_blocks_in_an_all_reduce_no_one_joins(
    ranks: Ranks, tmp_path: Path
) -> None:
    # What even() prevents: rank 1 finishes its 3 batches and leaves; rank 0's 4th
    # all-reduce has no partner. It fails at once here because rank 1 then destroys its
    # process group (a live DDP rank 1 would leave rank 0 hanging); the short group
    # timeout bounds it otherwise.
    results = ranks.run(
        "without_even",
        tmp_path,
        timeout_s=10,
        breaks_group=True,
        style="generator",
        num_workers=0,
        batches_per_rank=[5, 3],
        batch_size=2,
    )
    assert results[1] == {"synced": 3, "error": None}
    assert results[0]["synced"] == 3
    assert results[0]["error"] is not None


# ---------------------------------------------------------------- forever resume


RESUME_CASES = [
    pytest.param("map", 0, False, id="map-main-process"),
    pytest.param("map", 2, False, id="map-two-workers"),
    pytest.param("generator", 0, False, id="generator-main-process"),
    pytest.param("generator", 2, False, id="generator-two-workers"),
    pytest.param("generator", 2, True, id="even-generator-two-workers"),
    pytest.param("map", 2, True, id="even-map-two-workers"),
]


@pytest.mark.parametrize(("style", "num_workers", "even"), RESUME_CASES)
def test_forever_resumes_exactly_under_distributed(
    ranks: Ranks, tmp_path: Path, style: str, num_workers: int, even: bool
) -> None:
    n, batch_size = 23, 3  # 12 and 11 samples: 4 batches per rank and epoch
    per_epoch = 3 if even else 4  # even: rank 0 has 5 batches, rank 1 has 3
    total = 2 * per_epoch + 2
    cuts = [1, per_epoch, per_epoch + 2]  # inside the first epoch, at its end, inside the next
    results = ranks.run(
        "resume",
        tmp_path,
        style=style,
        num_workers=num_workers,
        even=even,
        n=n,
        batch_size=batch_size,
        seed=7,
        total=total,
        cuts=cuts,
    )
    for rank, result in enumerate(results):
        reference = result["reference"]
        epochs = [epoch for epoch, _ in reference]
        assert epochs == [0] * per_epoch + [1] * per_epoch + [2, 2], f"rank {rank}"
        for cut in cuts:
            resumed = result["resumed"][str(cut)]
            assert resumed["head"] + resumed["tail"] == reference, f"rank {rank}, cut {cut}"
            assert resumed["step"] == total
    if not even:
        # Within an epoch the ranks' samples are disjoint and together are all of them.
        for epoch in (0, 1):
            seen = [
                flatten([batch for e, batch in result["reference"] if e == epoch])
                for result in results
            ]
            assert sorted(seen[0] + seen[1]) == list(range(n)), f"epoch {epoch}"
