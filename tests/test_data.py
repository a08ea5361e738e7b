import math

import pytest
import torch

from ganforge.data import DigitsDataModule, Gaussian1DDataModule, Grid25DataModule, Ring8DataModule, TensorBatches


def test_tensor_batches_cover_each_sample_once_per_epoch_and_reshuffle():
    x = torch.arange(100)
    tb = TensorBatches((x,), batch_size=10, seed=3)
    e0 = torch.cat([b[0] for b in tb])
    e1 = torch.cat([b[0] for b in tb])
    assert sorted(e0.tolist()) == list(range(100)) and sorted(e1.tolist()) == list(range(100))
    assert not torch.equal(e0, e1)
    again = torch.cat([b[0] for b in TensorBatches((x,), batch_size=10, seed=3)])
    assert torch.equal(e0, again)


def test_small_training_data_is_cut_into_batches_on_the_accelerator():
    """On an accelerator the training tensors are copied there once (here the meta device stands in for a GPU),
    so no batch crosses from the host; above resident_max_bytes, or on a CPU, they stay where they are."""
    from types import SimpleNamespace

    dm = Ring8DataModule(n_train=512, n_val=64, batch_size=32)
    trainer = SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device("meta")), global_rank=0, world_size=1)
    dm.trainer = trainer
    batches = dm.train_dataloader()
    assert all(t.device.type == "meta" for t in batches.tensors)
    x, y = next(iter(batches))
    assert x.device.type == "meta" and x.shape == (32, 2) and y.shape == (32,)
    assert dm.train_dataloader().tensors[0] is batches.tensors[0]  # copied once, not per call
    dm.resident_max_bytes = 512 * 2 * 4 - 1
    assert dm.train_dataloader().tensors[0].device.type == "cpu"
    trainer.strategy.root_device = torch.device("cpu")
    dm.resident_max_bytes = 1 << 30
    assert dm.train_dataloader().tensors[0] is dm.train_data[0]


def test_tensor_batches_resume_mid_epoch_from_state_dict():
    x = torch.arange(50)
    full = TensorBatches((x,), batch_size=5, seed=1)
    ref = [b[0] for b in full] + [b[0] for b in full]
    part = TensorBatches((x,), batch_size=5, seed=1)
    it = iter(part)
    seen = [next(it)[0] for _ in range(3)]
    state = part.state_dict()
    resumed = TensorBatches((x,), batch_size=5, seed=1)
    resumed.load_state_dict(state)
    rest = [b[0] for b in resumed] + [b[0] for b in resumed]
    assert [t.tolist() for t in seen + rest] == [t.tolist() for t in ref]


def test_tensor_batches_resume_at_the_same_sample_with_another_global_batch():
    """A run resumed with another iters_per_batch (or d_steps) draws batches of another size: it goes on at
    the same place in the epoch's permutation; 2 ranks of 5 resume the state of 1 process of 10 exactly."""
    x = torch.arange(60)
    small = TensorBatches((x,), batch_size=5, seed=1)
    it = iter(small)
    seen = torch.cat([next(it)[0] for _ in range(4)])
    big = TensorBatches((x,), batch_size=10, seed=1)
    big.load_state_dict(small.state_dict())
    rest = torch.cat([b[0] for b in big])
    assert big.epoch == 1 and sorted(torch.cat([seen, rest]).tolist()) == list(range(60))
    ranks = [TensorBatches((x,), batch_size=5, seed=1, rank=r, world_size=2) for r in range(2)]
    one = TensorBatches((x,), batch_size=10, seed=1)
    next(iter(one))
    for r in ranks:
        r.load_state_dict(one.state_dict())
    assert sorted(torch.cat([next(iter(r))[0] for r in ranks]).tolist()) == sorted(next(iter(one))[0].tolist())


def test_tensor_batches_shard_disjointly_across_ranks():
    x = torch.arange(40)
    shards = [torch.cat([b[0] for b in TensorBatches((x,), batch_size=4, seed=0, rank=r, world_size=2)]) for r in range(2)]
    assert set(shards[0].tolist()).isdisjoint(shards[1].tolist())
    assert len(shards[0]) == len(shards[1]) == 20


def test_tensor_batches_too_small_dataset_says_how_to_fix():
    with pytest.raises(ValueError, match="lower the batch size"):
        TensorBatches((torch.arange(10),), batch_size=64)


def test_digits_are_32x32_uint8_scaled_to_minus1_1_with_held_out_split():
    dm = DigitsDataModule(resolution=32, batch_size=16)
    dm.setup()
    (xt, yt), (xv, yv) = dm.train_data, dm.val_data
    assert xt.shape[1:] == (1, 32, 32) and xt.dtype == torch.uint8
    assert len(xt) + len(xv) == 1797 and len(xv) == 180
    assert set(yt.unique().tolist()) == set(range(10))
    x, y = dm.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)
    assert x.dtype == torch.float32 and x.min() >= -1 and x.max() <= 1 and x.min() == -1
    assert y.shape == (16,)


@pytest.mark.parametrize("cls,k", [(Ring8DataModule, 8), (Grid25DataModule, 25)])
def test_2d_mixtures_put_samples_near_their_modes(cls, k):
    dm = cls(n_train=5000, n_val=1000)
    dm.setup()
    x, comp = dm.train_data
    assert dm.modes.shape == (k, 2) and x.shape == (5000, 2)
    dist = (x - dm.modes[comp]).norm(dim=1)
    assert (dist < 4 * dm.stds[0]).float().mean() > 0.99
    assert comp.bincount(minlength=k).min() > 5000 / k * 0.7


def test_ring_and_grid_geometry():
    ring = Ring8DataModule()
    assert torch.allclose(ring.modes.norm(dim=1), torch.full((8,), 2.0))
    grid = Grid25DataModule()
    assert sorted(set(grid.modes[:, 0].tolist())) == [-4.0, -2.0, 0.0, 2.0, 4.0]


def test_gaussian1d_log_prob_is_a_normalized_density():
    dm = Gaussian1DDataModule(means=[-2.0, 1.0], stds=[0.5, 1.0], weights=[0.3, 0.7])
    grid = torch.linspace(-12, 12, 200001).reshape(-1, 1)
    integral = torch.trapezoid(dm.log_prob(grid).exp(), grid[:, 0]).item()
    assert integral == pytest.approx(1.0, abs=1e-6)
    # matches a single Gaussian's closed form at a point
    single = Gaussian1DDataModule(means=[0.0], stds=[2.0])
    v = single.log_prob(torch.tensor([[1.0]])).item()
    assert v == pytest.approx(-0.5 * (1 / 4) - math.log(2 * math.sqrt(2 * math.pi)), rel=1e-6)


def test_a_pass_stopped_at_len_without_exhausting_the_generator_does_not_leave_the_next_pass_empty():
    """Lightning's validation loop takes len() batches and never resumes the generator: the next
    validation must still see every batch (it once saw none, every other time)."""
    import itertools

    import torch

    from ganforge.data.base import TensorBatches

    tb = TensorBatches((torch.arange(10).float(),), batch_size=4, shuffle=False, drop_last=False)
    for _ in range(3):
        got = list(itertools.islice(iter(tb), len(tb)))
        assert [b[0].tolist() for b in got] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
