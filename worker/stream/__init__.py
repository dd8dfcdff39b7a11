"""The stream consumer: records, the KCL record processor, MultiLang, local driver, leases, run.

May import `worker.engine`, `worker.model` and the foundation; never `local`, `proof` or the CLI.
"""
