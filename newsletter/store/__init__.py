"""Parts of the store: the schema, its statuses, the delivery ledger, sessions and migrations."""
