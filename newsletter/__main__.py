"""`python -m newsletter` is the `newsletter` command."""

from newsletter.cli.app import main

main()
