"""PacGAN's Table 1 (mode collapse on the 2D ring and grid) in one command; see ganforge.toy_benchmark.

    python benchmarks/mode_collapse.py                      # 5 methods x 2 datasets x 10 seeds, 2 at a time
    python benchmarks/mode_collapse.py --seeds 1 --methods gan,ganforge max_iters=200   # a smoke run
"""

import sys

from ganforge.toy_benchmark import main

if __name__ == "__main__":
    sys.exit(main())
