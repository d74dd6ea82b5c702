"""``python -m ops``: the same as the ``acctctl`` console script."""

from ops.cli import main

main()
