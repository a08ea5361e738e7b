import pytest
import torch

from ganforge.callbacks import AtomicCheckpointIO


def test_a_crash_mid_save_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"w": torch.ones(3)}, path)

    def crashing_save(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", crashing_save)
    with pytest.raises(OSError, match="No space"):
        io.save_checkpoint({"w": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temporary file left behind


def test_save_replaces_the_checkpoint(tmp_path):
    io = AtomicCheckpointIO()
    path = tmp_path / "sub" / "last.ckpt"
    io.save_checkpoint({"w": torch.ones(2)}, path)
    io.save_checkpoint({"w": torch.full((2,), 5.0)}, path)
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.full((2,), 5.0))
