"""The maintainer's tools that produce the numbers in the README and the model cards.

Each module is a script (`python benchmarks/NAME.py --help`); tests import them as modules
(`benchmarks.tables`). One-off experiments live under `lab/` instead."""
