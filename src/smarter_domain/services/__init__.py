"""What an application calls: units of work, brokers, the account utilities, the acting
profile, health checks and the ``cache_invalidate`` signal. Typed against ``ports.Wiring``,
never against the ``Domain`` that wires them."""
