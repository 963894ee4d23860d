"""The `newsletter` command: parses arguments, calls the services, prints what comes back."""
