"""``python -m ganforge.sample ckpt_path=... n=... out=... seed=...``: see :mod:`ganforge.cli.sample`."""

from ganforge.cli.sample import main

if __name__ == "__main__":
    main()
