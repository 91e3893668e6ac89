import sys

from ncalm.cli import main

sys.exit(main())
