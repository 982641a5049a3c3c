"""The platform's own account and administrator, created by ``Domain.bootstrap()``."""

SMARTER_ACCOUNT_NUMBER = "3141-5926-5359"
SMARTER_ADMIN_USERNAME = "admin"
