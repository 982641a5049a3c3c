"""Project tasks. ``nox -s ci`` is what CI runs: lint, types and the whole test suite."""

from __future__ import annotations

import nox

nox.options.sessions = ["ci"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

SOURCES = ("src", "tests", "migrations", "bench", "examples", "scripts", "noxfile.py")


def _lint(session: nox.Session) -> None:
    session.run("ruff", "check", *SOURCES)
    session.run("ruff", "format", "--check", *SOURCES)


def _typecheck(session: nox.Session) -> None:
    session.run("mypy", "--strict", "src/smarter_domain")


def _tests(session: nox.Session) -> None:
    session.run("bash", "scripts/ensure-servers", external=True)
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    _lint(session)


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".[dev]")
    _typecheck(session)


@nox.session
def tests(session: nox.Session) -> None:
    session.install("-e", ".[test]")
    _tests(session)


@nox.session
def ci(session: nox.Session) -> None:
    """Everything CI checks, in one environment so it installs once (and, after it, the
    sync twins generated from their async sources: ``unasync-check``)."""
    session.notify("unasync-check")
    session.notify("docs")
    session.install("-e", ".[dev]")
    _lint(session)
    _typecheck(session)
    _tests(session)


UNASYNCD = ("unasyncd==0.10.1", "ruff==0.17.6")
"""In their own environment (unasyncd pins rich 13.6, the library needs a newer one), pinned:
the twins they format must pass the ``ruff format --check`` of ``.[dev]`` (the same ruff)."""


@nox.session
def unasync(session: nox.Session) -> None:
    """Write each ``*_async.py``'s sync twin ([tool.unasyncd] in pyproject.toml)."""
    session.install(*UNASYNCD)
    session.run("unasyncd", "--write", "--no-cache", "--force", success_codes=[0, 1])
    session.run("python", "scripts/check_unasync.py")  # exit 1 is also a crash: check


@nox.session(name="unasync-check")
def unasync_check(session: nox.Session) -> None:
    """Fail when a sync twin is not what its async source generates (``nox -s ci`` runs it)."""
    session.install(*UNASYNCD)
    session.run("python", "scripts/check_unasync.py")


@nox.session
def docs(session: nox.Session) -> None:
    """The documentation site (mkdocs.yml, docs/) into site/, failing on any warning: open
    site/index.html, no server needed (``nox -s ci`` runs it)."""
    session.install("-e", ".[docs]")
    session.run("mkdocs", "build", "--strict", env={"NO_MKDOCS_2_WARNING": "1"})


@nox.session
def topologies(session: nox.Session) -> None:
    """Only the Redis Cluster and Sentinel suites (the ci session runs them too)."""
    session.install("-e", ".[test]")
    session.run("bash", "scripts/ensure-servers", external=True)
    session.run("pytest", "-m", "topology", *session.posargs)


@nox.session
def stress(session: nox.Session) -> None:
    """The long coherence runs: ``nox -s stress -- --seconds 180 --workers 4 --fault all``
    (every fault in turn, then a table), or one fault: ``--fault redis-pause --faults 6``;
    ``--consistency available`` measures the other side of the trade."""
    session.install("-e", ".[test]")
    session.run("bash", "scripts/ensure-servers", external=True)
    session.run("python", "-m", "tests.stress.harness", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Ratios to baselines measured in the same run; exits 1 if a target is missed."""
    session.install("-e", ".[test]", "uvicorn>=0.29", "matplotlib")  # matplotlib: bench/plots.py
    session.run("bash", "scripts/ensure-servers", external=True)
    session.run("python", "bench/run.py", *session.posargs)


@nox.session(name="bench-peers")
def bench_peers(session: nox.Session) -> None:
    """advanced-alchemy's cached repository beside ours; exits 1 if a target is missed."""
    session.install("-e", ".[test]", "advanced-alchemy", "matplotlib")
    session.run("bash", "scripts/ensure-servers", external=True)
    session.run("python", "bench/peers.py", *session.posargs)


@nox.session
def profile(session: nox.Session) -> None:
    """pyinstrument call trees of the hot paths (what the bench figures were chased with)."""
    session.install("-e", ".[test]", "pyinstrument")
    session.run("python", "bench/profile.py", *session.posargs)
