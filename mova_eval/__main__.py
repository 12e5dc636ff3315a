import sys

from mova_eval.cli import main

sys.exit(main())
