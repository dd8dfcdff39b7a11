"""The proof: fault injection, the seeded simulation and its runner, bad inputs, the oracle.

May import every layer below it (`local`, `stream`, `engine`, `model`), never the CLI or the API.
"""
