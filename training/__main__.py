"""`python -m training` (and `torchrun -m training`): see training.cli for the flags."""

import sys

from training.cli import main

if __name__ == "__main__":
    sys.exit(main())
