"""`python -m worker` is the same as `budget-worker`."""

from worker.cli import main

main()
