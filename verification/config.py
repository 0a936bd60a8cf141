"""Where hedui keeps its state, and the settings every stage reads.

One ``Settings`` object owns paths and secrets so the CLI, the DAGs and the tests agree. Values
come from environment variables (``HEDUI_*``) with safe local defaults: everything lives under
``var/`` in the checkout, which is gitignored.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Clearly marked *test* key for the embedded default. A deployment sets HEDUI_TOKEN_KEY (hex) from
# its secret store; `hedui status` warns while the test key is in use.
TEST_TOKEN_KEY_HEX = "746573742d6f6e6c792d68656475692d746f6b656e2d6b65792d6e6f742d736563726574"


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} 须为数字 / must be a number") from None
    if value < 0:
        raise ValueError(f"{name}={raw!r} 不能为负数 / must not be negative")
    return value


@dataclass(frozen=True)
class IntakeLimits:
    """What intake tolerates before it refuses (docs/partners.md, "Limits"); each is set by the
    environment variable named in ``from_environment``."""

    clock_skew: dt.timedelta = dt.timedelta(minutes=10)  # created_at this far ahead of receipt
    max_age: dt.timedelta = dt.timedelta(days=45)  # created_at this far before receipt
    max_wait: dt.timedelta = dt.timedelta(hours=1)  # received, not yet taken in: alert after
    max_sequence_gap: int = 10_000  # a listing this far past the last accepted sequence
    max_months_ahead: int = 1  # a listed period this many months after the current one
    quarantine_limit: float = 0.2  # share of a feed's rows quarantined before it is rejected
    quarantine_min_rows: int = 10  # ... once at least this many rows are (a tiny feed's one typo)
    # a feed whose accepted rows fall below this share of the last accepted feed of its kind
    # (which had at least drop_min_previous rows) is rejected: a partner that sends a header
    # alone has not told us that nobody earns anything (0 turns the check off)
    min_row_share: float = 0.1
    drop_min_previous: int = 100

    @classmethod
    def from_environment(cls) -> IntakeLimits:
        base = cls()
        return cls(
            clock_skew=dt.timedelta(seconds=_env_number(
                "HEDUI_INTAKE_CLOCK_SKEW_SECONDS", base.clock_skew.total_seconds())),
            max_age=dt.timedelta(days=_env_number("HEDUI_INTAKE_MAX_AGE_DAYS",
                                                  base.max_age.days)),
            max_wait=dt.timedelta(minutes=_env_number(
                "HEDUI_INTAKE_MAX_WAIT_MINUTES", base.max_wait.total_seconds() / 60)),
            max_sequence_gap=int(_env_number("HEDUI_INTAKE_MAX_SEQUENCE_GAP",
                                             base.max_sequence_gap)),
            max_months_ahead=int(_env_number("HEDUI_INTAKE_MAX_MONTHS_AHEAD",
                                             base.max_months_ahead)),
            quarantine_limit=min(1.0, _env_number("HEDUI_INTAKE_QUARANTINE_LIMIT",
                                                  base.quarantine_limit)),
            quarantine_min_rows=int(_env_number("HEDUI_INTAKE_QUARANTINE_MIN_ROWS",
                                                base.quarantine_min_rows)),
            min_row_share=min(1.0, _env_number("HEDUI_INTAKE_MIN_ROW_SHARE",
                                               base.min_row_share)),
            drop_min_previous=int(_env_number("HEDUI_INTAKE_DROP_MIN_PREVIOUS",
                                              base.drop_min_previous)))


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    token_key: bytes
    token_key_id: str
    partner_registry: Path = field(default=PROJECT_ROOT / "connectors" / "partners.yaml")
    intake: IntakeLimits = field(default_factory=IntakeLimits.from_environment)
    # Households per shard of a review at most (verification/shards.py): a larger street is
    # assessed in parts, so one task's memory stays about 2 GiB (docs/performance.md).
    shard_households: int = field(default_factory=lambda: max(1, int(_env_number(
        "HEDUI_SHARD_HOUSEHOLDS", 50_000))))

    @property
    def staging_dir(self) -> Path:
        return self.home / "staging"

    @property
    def feeds_dir(self) -> Path:
        """Feeds exactly as received (still encrypted), kept so nothing is ever lost."""
        return self.home / "feeds"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    def home_relative(self, path: Path) -> str:
        """``path`` as the database keeps it: relative to the home when under it, so a restored
        or moved copy of the home finds its own files (an absolute path pointed at the old
        home); a path elsewhere stays absolute."""
        try:
            return str(Path(path).resolve().relative_to(self.home.resolve()))
        except ValueError:
            return str(path)

    def at_home(self, stored: str) -> Path:
        """A path the database keeps (``home_relative``), on this home; one stored absolute
        (rows written before paths were kept relative) stays as it is."""
        return self.home / stored

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    def private_tmp_dir(self) -> Path:
        """``$HEDUI_HOME/tmp``, created readable by this user only: where decrypted feeds and
        opened batch files live while they are read."""
        path = self.home / "tmp"
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o700)
        return path

    @property
    def audit_anchor_file(self) -> Path:
        """The audit chain's head as each run ended, kept beside the database (audit.py)."""
        return self.home / "audit" / "anchors.jsonl"

    @property
    def keys_dir(self) -> Path:
        return self.home / "keys"

    @property
    def district_dir(self) -> Path:
        """Synthetic district written by `hedui generate` (the partner server serves from here)."""
        return self.home / "district"

    @property
    def using_test_token_key(self) -> bool:
        return self.token_key == bytes.fromhex(TEST_TOKEN_KEY_HEX)


def load_settings(home: str | os.PathLike[str] | None = None) -> Settings:
    base = Path(home or os.environ.get("HEDUI_HOME") or PROJECT_ROOT / "var").resolve()
    url = os.environ.get("HEDUI_DATABASE_URL") or f"sqlite:///{base / 'hedui.db'}"
    key_hex = os.environ.get("HEDUI_TOKEN_KEY", TEST_TOKEN_KEY_HEX)
    try:
        token_key = bytes.fromhex(key_hex)
    except ValueError:
        raise ValueError("HEDUI_TOKEN_KEY 须为十六进制密钥 / HEDUI_TOKEN_KEY must be a key in "
                         "hexadecimal") from None
    return Settings(
        home=base,
        database_url=url,
        token_key=token_key,
        token_key_id=os.environ.get("HEDUI_TOKEN_KEY_ID", "test-1"),
    )
