"""DynamoDB I/O: clients, tables, reads, persist, projector, validated reads, snapshots, import.

May import `worker.model` and the top-level foundation (`config`, `errors`, `logs`), never above.
"""
