"""Train a GAN: ``python train.py [hydra overrides]``. See README.md and conf/train.yaml."""

from ganforge.cli.train import main

if __name__ == "__main__":
    main()
