"""`python -m loopline`: the same as the `loopline` command."""

import sys

from loopline.cli import main

if __name__ == "__main__":
    sys.exit(main())
