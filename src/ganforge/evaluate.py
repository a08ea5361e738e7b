"""``python -m ganforge.evaluate ckpt_path=... metrics=[fid,kid,jsd,modes] n=...``: see :mod:`ganforge.cli.evaluate`."""

from ganforge.cli.evaluate import main

if __name__ == "__main__":
    main()
