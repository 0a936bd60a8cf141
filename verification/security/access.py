"""Roles and jurisdictions: who may read or act on what (access.yaml).

Officers are scoped to streets or communities; staff and administrators see the whole district.
Every check that denies raises ``AccessDenied`` with a message saying what was refused and why;
callers never filter silently where a user asked for something by id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml

ACCESS_FILE = Path(__file__).with_name("access.yaml")


class AccessDenied(PermissionError):
    pass


@dataclass(frozen=True)
class Principal:
    username: str
    role: str
    permissions: frozenset[str]
    streets: frozenset[str] = field(default_factory=frozenset)
    communities: frozenset[str] = field(default_factory=frozenset)
    partner: str = ""

    @property
    def district_wide(self) -> bool:
        return self.role in ("administrator", "staff")

    def can(self, permission: str) -> bool:
        return permission in self.permissions

    def require(self, permission: str) -> None:
        if not self.can(permission):
            raise AccessDenied(f"{self.username}（{self.role}）无权执行 {permission}，"
                               f"请联系管理员 / {self.username} ({self.role}) may not "
                               f"{permission}")

    def require_district_wide(self, what: str) -> None:
        """Refuse what covers every street (``what``: "中文 / English") to an officer."""
        if not self.district_wide:
            raise AccessDenied(f"{self.username}（{self.role}）只能查看本辖区，{what}"
                               f"需要核对中心工作人员或管理员 / {self.username} ({self.role}) "
                               "sees only their own jurisdiction; this covers every street: "
                               "staff or administrator only")

    def covers(self, street_code: str, community_code: str) -> bool:
        """Whether a household in this street/community is within the user's jurisdiction."""
        return (self.district_wide or street_code in self.streets
                or community_code in self.communities)

    def covers_street(self, street_code: str) -> bool:
        """Whether any of the street's households can be within the user's jurisdiction (the
        street is served, or a community in it: community codes start with their street's)."""
        return (self.district_wide or street_code in self.streets
                or any(c.startswith(street_code) for c in self.communities))

    def require_covers(self, street_code: str, community_code: str) -> None:
        if not self.covers(street_code, community_code):
            raise AccessDenied(f"{self.username} serves "
                               f"{', '.join(sorted(self.streets | self.communities)) or 'nothing'}"
                               f"; community {community_code} is outside that jurisdiction")


@cache
def _load(path: Path = ACCESS_FILE) -> dict:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    for name, spec in doc["users"].items():
        if spec["role"] not in doc["roles"]:
            raise ValueError(f"{path.name}: user {name} has unknown role {spec['role']!r}")
    return doc


def principal(username: str, path: Path = ACCESS_FILE) -> Principal:
    doc = _load(path)
    spec = doc["users"].get(username)
    if spec is None:
        raise AccessDenied(f"user {username!r} has no role in hedui; ask an administrator")
    return Principal(username=username, role=spec["role"],
                     permissions=frozenset(doc["roles"][spec["role"]]),
                     streets=frozenset(spec.get("streets", [])),
                     communities=frozenset(spec.get("communities", [])),
                     partner=spec.get("partner", ""))
