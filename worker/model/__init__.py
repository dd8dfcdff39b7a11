"""The pure domain: events and validation, the fold, snapshot figures, item layout, step builder.

May import only the standard library, `ulid` and `worker.errors`: no I/O, no AWS SDK.
"""
