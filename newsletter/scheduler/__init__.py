"""The scheduled job (`newsletter run`): APScheduler wakes it at each slot and refresh; the
services decide, from the database, what is due."""
