import sys

from imgcomp.cli import main

sys.exit(main())
