"""The demo's data: Lorenz-63 streams and CSV series, loaded and windowed per shard."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

import loopline
from loopline.demo import lorenz, series
from loopline.streams.shard import Shard, activate, deactivate


def lorenz_batches(shard: Shard) -> torch.Tensor:
    """All of one shard's Lorenz batches for its epoch: `[batches, B, W+1, 3]`."""
    token = activate(shard)
    try:
        return torch.stack(list(lorenz.windows(4, 30, 5, 8)))
    finally:
        deactivate(token)


def test_rk4_matches_a_finer_integration() -> None:
    start = torch.tensor([[1.0, 2.0, 20.0]], dtype=torch.float64)
    coarse = lorenz.integrate(start, 50)[-1]  # 0.5 time units in steps of 0.01
    fine = start
    for _ in range(250):
        fine = lorenz.rk4(fine, dt=0.002)
    torch.testing.assert_close(coarse, fine, rtol=0, atol=1e-3)


def test_the_stream_is_roughly_normalized() -> None:
    # MEAN and STD are the attractor's; trajectories a few time units after a random
    # start spread a little less in z (their phases have not mixed yet).
    token = activate(Shard())
    try:
        windows = torch.cat(list(lorenz.windows(64, 500, 5, 512))).flatten(0, 1)  # [N, 3]
    finally:
        deactivate(token)
    assert windows.mean(0).abs().max() < 0.3
    assert ((windows.std(0) - 1).abs() < 0.35).all()  # z: about 0.75


def test_lorenz_windows_differ_by_shard_and_epoch_and_repeat_by_seed() -> None:
    base = lorenz_batches(Shard(index=0, count=2, seed=3))
    assert base.shape == (13, 8, 6, 3)  # 4 trajectories x 26 windows, in whole batches of 8
    assert torch.equal(base, lorenz_batches(Shard(index=0, count=2, seed=3)))
    for other in (
        Shard(index=1, count=2, seed=3),
        Shard(index=0, count=2, seed=3, epoch=1),
        Shard(index=0, count=2, seed=4),
    ):
        assert not torch.allclose(base, lorenz_batches(other))


def test_lorenz_windows_are_consecutive_rk4_steps() -> None:
    batch = lorenz_batches(Shard())[0]  # [B, W+1, 3], normalized
    mean, std = torch.tensor(lorenz.MEAN), torch.tensor(lorenz.STD)
    states = (batch * std + mean).double()
    torch.testing.assert_close(lorenz.rk4(states[:, :-1]), states[:, 1:], atol=1e-4, rtol=1e-5)


def test_held_out_trajectories_start_where_no_shard_does() -> None:
    test = lorenz.held_out(4, 30, seed=0)  # [31, 4, 3]
    train = lorenz_batches(Shard(seed=0))
    starts = train[:, :, 0].reshape(-1, 3)  # every training window's first state
    assert torch.cdist(test[0], starts).min() > 1e-3


def csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_load_csv_reads_columns_in_the_order_asked(tmp_path: Path) -> None:
    path = csv(tmp_path, "\ufeffa, b ,c\n1,2,x\n\n3,4,y\n")  # a BOM, spaces, a blank line
    data = series.load_csv(path, ["b", "a"])
    assert data.values.tolist() == [[2.0, 1.0], [4.0, 3.0]]
    assert (data.dt, data.unit, data.columns) == (1.0, "steps", ["b", "a"])


def test_a_blank_line_does_not_shift_the_line_named_in_an_error(tmp_path: Path) -> None:
    path = csv(tmp_path, "a\n1\n\n2\nthree\n")
    with pytest.raises(series.SeriesError, match=r"line 5, column 'a': 'three' is not a number"):
        series.load_csv(path, ["a"])


def test_a_short_row_is_a_missing_value(tmp_path: Path) -> None:
    path = csv(tmp_path, "a,b\n1,2\n3\n")
    with pytest.raises(series.SeriesError, match=r"line 3, column 'b': missing value"):
        series.load_csv(path, ["a", "b"])


def test_iso_dates_give_the_step_in_days(tmp_path: Path) -> None:
    path = csv(tmp_path, "day,v\n2024-01-01,1\n2024-01-01T12:00,2\n2024-01-02,3\n")
    data = series.load_csv(path, ["v"], time_column="day")
    assert (data.dt, data.unit) == (0.5, "days")


def test_times_must_increase(tmp_path: Path) -> None:
    path = csv(tmp_path, "t,v\n0,1\n1,2\n1,3\n")
    with pytest.raises(series.SeriesError, match=r"line 4, column 't': times must increase"):
        series.load_csv(path, ["v"], time_column="t")


def test_a_time_that_is_neither_number_nor_date_is_named(tmp_path: Path) -> None:
    path = csv(tmp_path, "t,v\n0,1\nsoon,2\n")
    with pytest.raises(series.SeriesError, match=r"line 3, column 't': 'soon' is neither"):
        series.load_csv(path, ["v"], time_column="t")


def test_an_empty_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(series.SeriesError, match="is empty: its first line must name"):
        series.load_csv(csv(tmp_path, ""), ["v"])


def test_two_workers_stream_each_window_once_per_epoch_in_a_new_order() -> None:
    values = torch.arange(40.0)[:, None]  # [N, 1]: a window is known by its first value
    dataset = loopline.from_generator(series.windows, values, 3, 4, batched=True)
    loader = DataLoader(dataset, batch_size=None, num_workers=2)
    with loopline.forever(loader, epochs=2) as stream:
        firsts: dict[int, list[float]] = {0: [], 1: []}
        for batch in stream:
            firsts[stream.epoch] += batch[:, 0, 0].tolist()
    assert sorted(firsts[0]) == sorted(firsts[1]) == [float(i) for i in range(37)]
    assert firsts[0] != firsts[1]
