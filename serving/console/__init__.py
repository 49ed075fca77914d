"""The adjuster's console: server-rendered pages over the same store, models and rules as the
API, signed in with an API key exchanged for a session cookie."""
