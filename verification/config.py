"""Where hedui keeps its state, and the settings every stage reads.

One ``Settings`` object owns paths and secrets so the CLI, the DAGs and the tests agree. Values
come from environment variables (``HEDUI_*``) with safe local defaults: everything lives under
``var/`` in the checkout, which is gitignored.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Clearly marked *test* key for the embedded default. A deployment sets HEDUI_TOKEN_KEY (hex) from
# its secret store; `hedui status` warns while the test key is in use.
TEST_TOKEN_KEY_HEX = "746573742d6f6e6c792d68656475692d746f6b656e2d6b65792d6e6f742d736563726574"


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    token_key: bytes
    token_key_id: str
    partner_registry: Path = field(default=PROJECT_ROOT / "connectors" / "partners.yaml")

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

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

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
    return Settings(
        home=base,
        database_url=url,
        token_key=bytes.fromhex(key_hex),
        token_key_id=os.environ.get("HEDUI_TOKEN_KEY_ID", "test-1"),
    )
