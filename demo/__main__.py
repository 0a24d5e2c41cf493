"""`python -m demo train-demo | bench | label`."""
from .cli import main

main()
