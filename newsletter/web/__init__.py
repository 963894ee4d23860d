"""The readers' web: sign-up, confirmation, preferences and unsubscribing, as FastAPI pages from
`templates/web/`. Every change is a call to `newsletter.services.readers`; nothing here writes SQL."""
