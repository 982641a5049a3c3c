"""The application ``http_rows`` serves with uvicorn: one user read, cached and not."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from sqlalchemy import select

from smarter_domain import UserNotFound, tables
from smarter_domain.integrations.fastapi import DomainDep, SmarterDomain

app = FastAPI()
SmarterDomain(app)  # SMARTER_DATABASE_URL and SMARTER_REDIS_URL from the environment
USERS = tables.user


@app.get("/cached/{username}")
async def cached(username: str, domain: DomainDep) -> dict[str, Any]:
    """Through the library: memory tier, Redis, then the database."""
    user = await domain.users.get_by_username(username)
    if user is None:
        raise UserNotFound(username)
    return {"id": user.id, "username": user.username, "email": user.email}


@app.get("/uncached/{username}")
async def uncached(username: str, domain: DomainDep) -> dict[str, Any]:
    """What the endpoint costs without a cache: the same row, one SELECT on the same
    AsyncEngine (asyncpg)."""
    async with domain.engine.connect() as connection:
        row = (
            await connection.execute(select(USERS).where(USERS.c.username == username))
        ).one_or_none()
    if row is None:
        raise UserNotFound(username)
    return {"id": row.id, "username": row.username, "email": row.email}
