"""The embedded default: fetching and starting DynamoDB Local, and the `dev` command.

May import `worker.stream`, `worker.engine`, `worker.model` and the foundation; never `proof`.
"""
