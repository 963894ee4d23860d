"""The operations every entry point calls (the CLI now; the web app and the scheduler next).

Each takes the runtime, does one task through the parts (ingest, subscribers, editions,
sending) and returns plain data for the caller to show; none prints, none parses arguments.
"""
