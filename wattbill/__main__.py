"""``python -m wattbill`` and the ``wattbill`` console script: the command line."""

import sys

from wattbill._runtime import apply_process_defaults


def main() -> None:  # pragma: no cover - exercised through the console script
    """Run the command line with the process defaults set before polars is loaded."""
    apply_process_defaults()
    from wattbill.cli import main as cli_main

    sys.exit(cli_main())


if __name__ == "__main__":  # pragma: no cover
    main()
