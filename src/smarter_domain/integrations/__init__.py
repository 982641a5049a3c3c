"""The library in web frameworks (optional extras): ``integrations.flask`` (``pip install
smarter-domain[flask]``). What every framework shares (the HTTP status of each error, the
readiness answer, the acting profile of a request) is in ``http``."""
