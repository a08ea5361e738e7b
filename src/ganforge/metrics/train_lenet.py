"""Train the LeNet-5 behind ``fid_lenet`` / ``kid_lenet``, deterministically, on CPU.

``python -m ganforge.metrics.train_lenet [--mnist-raw ../shared/data/MNIST/raw] [--out PATH]``

Data: scikit-learn's digits (the train split of ``dataset=digits``, upsampled to 32x32 like the dataset) plus,
when ``--mnist-raw`` holds MNIST's raw IDX files, the first 8,000 images of MNIST's 10k test split (resized
to 32x32); the rest (digits' validation split, MNIST's last 2,000) measure accuracy. The shipped
``weights/lenet.pt`` was made with the command above; its metadata records the data and the accuracies.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F

from ganforge.data.idx import read_mnist_split
from ganforge.data.images import DigitsDataModule
from ganforge.metrics.fid import WEIGHTS_DIR, LeNet


def load_training_data(mnist_raw: str | None) -> tuple[tuple, tuple, list[str]]:
    dm = DigitsDataModule(resolution=32)
    (xd, yd), (xdv, ydv) = dm.build()
    xs, ys, xv, yv, used = [xd], [yd], [xdv], [ydv], ["sklearn digits (train split of dataset=digits)"]
    if mnist_raw:
        xm, ym = read_mnist_split(mnist_raw, "test")
        xm = F.interpolate(xm[:, None].float(), size=(32, 32), mode="bilinear", align_corners=False, antialias=True)
        xm = xm.round().clamp(0, 255).to(torch.uint8)
        xs.append(xm[:8000]), ys.append(ym[:8000]), xv.append(xm[8000:]), yv.append(ym[8000:])
        used.append("MNIST t10k images 0..7999")
    return (torch.cat(xs), torch.cat(ys)), (torch.cat(xv), torch.cat(yv)), used


def train(mnist_raw: str | None, epochs: int = 12, seed: int = 0) -> tuple[LeNet, dict]:
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    (x, y), (xv, yv), used = load_training_data(mnist_raw)
    net = LeNet()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=epochs * ((len(x) + 127) // 128))
    g = torch.Generator().manual_seed(seed)
    to_float = lambda t: t.float().div(127.5).sub(1.0)  # noqa: E731
    for _ in range(epochs):
        net.train()
        for idx in torch.randperm(len(x), generator=g).split(128):
            xb = to_float(x[idx])
            # small random shifts (up to 2 px) so features do not hinge on exact registration
            dx, dy = (int(v) for v in torch.randint(-2, 3, (2,), generator=g))
            xb = torch.roll(xb, shifts=(dy, dx), dims=(2, 3))
            loss = F.cross_entropy(net(xb), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    net.eval()
    with torch.no_grad():
        acc = (net(to_float(xv)).argmax(1) == yv).float().mean().item()
    return net, {"trained_on": used, "heldout_accuracy": acc, "n_train": len(x), "n_heldout": len(xv), "epochs": epochs, "seed": seed}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m ganforge.metrics.train_lenet", description=__doc__.split("\n")[0])
    ap.add_argument("--mnist-raw", default=None, help="MNIST raw/ directory (t10k-*-ubyte.gz); digits only when absent")
    ap.add_argument("--out", default=str(WEIGHTS_DIR / "lenet.pt"))
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    net, meta = train(args.mnist_raw, args.epochs, args.seed)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    torch.save({"state_dict": net.state_dict(), "meta": meta}, tmp)
    tmp.replace(out)
    print(f"wrote {out}: held-out accuracy {meta['heldout_accuracy']:.4f} on {meta['n_heldout']} images; trained on {meta['trained_on']}")


if __name__ == "__main__":
    main()
