"""budget-worker: projects a budget app's DynamoDB events into transactions, safely."""

__version__ = "0.1.0"
