"""Load, validate and resolve the dated policy parameter tree.

Layout (OpenFisca-like): ``parameters/<region>/<topic>.yaml``. The national directory ``000000``
*defines* every parameter (description, unit, type, whether it splits urban/rural); regional
directories only add dated values for parameters defined there. A value is looked up in the
district, then its city, its province and finally the national files; the first region holding a
value in force on the date wins. ``null`` ends a rule from its date on.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import os
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from verification import codes

DEFAULT_DIRECTORY = Path(__file__).with_name("parameters")
NATIONAL = "000000"
OVERLAY_ENV = "HEDUI_POLICY_DIR"

_TYPES = {"number", "integer", "boolean", "items", "choice", "source_ages", "grade_map", "tiers",
          "exclusions"}
_UNITS = {
    "yuan", "yuan_per_month", "yuan_per_year", "ratio", "months", "days", "years", "count",
    "items", "grade", "choice", "exclusions", "switch",
}
_DEFINITION_KEYS = {
    "description", "unit", "type", "urban_rural", "choices", "item_class", "values",
}
_REGIONAL_LEAF_KEYS = {"values"}
_ENTRY_KEYS = {"value", "reference"}
_REFERENCE_KEYS = {"title", "en", "number", "date", "article", "url", "example"}
_URBAN_RURAL = ("urban", "rural")


# The Chinese beside each kind of problem (the English text says the detail).
_PROBLEMS_ZH = (
    ("unknown parameter", "未定义的参数"),
    ("unknown key", "未知的键"),
    ("required key missing", "缺少必填项"),
    ("date given twice", "生效日期重复"),
    ("given twice", "重复设定"),
    ("region directory not listed", "地区目录未在 regions.yaml 登记"),
    ("effective date", "生效日期格式错误"),
    ("not valid YAML", "不是有效的 YAML"),
    ("no value in force", "没有生效的参数值"),
    ("missing national directory", "缺少全国参数目录"),
    ("not a directory", "政策目录不存在"),
    ("outside a region directory", "文件不在地区目录内，不会生效"),
    ("not a .yaml parameter file", "不是 .yaml 参数文件，不会生效"),
    ("expected", "取值或格式错误"),
)


def _problem_zh(problem: str) -> str:
    return next((zh for english, zh in _PROBLEMS_ZH if problem.startswith(english)
                 or english in problem), "参数文件错误")


class ParameterError(ValueError):
    """A parameter file is malformed; the message names the file and the key path, and says
    what is wrong in Chinese and English."""

    def __init__(self, file: Path | str, key_path: str, problem: str) -> None:
        self.file, self.key_path, self.problem = str(file), key_path, problem
        super().__init__(f"{file}: {key_path or '<top>'}: {_problem_zh(problem)} / {problem}")

    def __reduce__(self) -> tuple:
        # rebuilt from its own arguments when it crosses a process boundary (a worker pool):
        # the default passes only the message, and the pool then reports a broken process
        return (type(self), (self.file, self.key_path, self.problem))


@dataclass(frozen=True)
class Reference:
    title: str
    en: str = ""
    number: str = ""
    date: str = ""
    article: str = ""
    url: str = ""
    example: bool = False

    def text(self) -> str:
        """One line: 〔示例 EXAMPLE〕 title（number，date）article."""
        detail = "，".join(part for part in (self.number, self.date) if part)
        text = self.title + (f"（{detail}）" if detail else "") + self.article
        if self.en:
            text += f" / {self.en}"
        return ("〔示例 EXAMPLE〕" if self.example else "") + text


@dataclass(frozen=True)
class Definition:
    path: str
    description: dict[str, str]
    unit: str
    type: str
    urban_rural: bool = False
    choices: tuple[str, ...] = ()
    item_class: str = ""  # for items: the class every listed item must have (codes.yaml)


@dataclass(frozen=True)
class Entry:
    start: date
    region: str
    value: Any  # None: the rule ends on ``start``
    reference: Reference | None
    file: str


@dataclass(frozen=True)
class ResolvedValue:
    definition: Definition
    value: Any
    reference: Reference | None
    region: str
    start: date | None


@dataclass(frozen=True)
class Policy:
    """Parameter values in force for one region on one date, with their references."""

    region: str
    on: date
    version: str
    values: dict[str, ResolvedValue]

    def value(self, path: str, urban_rural: str | None = None) -> Any:
        resolved = self._get(path)
        if resolved.value is None:
            return None
        if resolved.definition.urban_rural and urban_rural is not None:
            return resolved.value[urban_rural]
        return resolved.value

    def require(self, path: str, urban_rural: str | None = None) -> Any:
        """Like ``value`` but a missing value is an error an administrator can act on."""
        found = self.value(path, urban_rural)
        if found is None:
            raise ParameterError(
                f"parameters/{self.region}", path,
                f"no value in force on {self.on.isoformat()} in {self.region} or the regions it "
                "falls back to; add one (docs/policy.md)",
            )
        return found

    def reference(self, path: str) -> str:
        resolved = self._get(path)
        return resolved.reference.text() if resolved.reference else ""

    def _get(self, path: str) -> ResolvedValue:
        try:
            return self.values[path]
        except KeyError:
            raise KeyError(f"unknown parameter {path!r}") from None


@dataclass
class ParameterTree:
    """All regions' dated values, validated. ``at(region, on)`` resolves one policy."""

    directory: Path
    digest: str
    regions: dict[str, dict[str, str]]
    definitions: dict[str, Definition]
    entries: dict[tuple[str, str], list[Entry]] = field(default_factory=dict)
    overlay: Path | None = None  # the bureau's folder laid over the shipped files, if any

    def at(self, region: str, on: date) -> Policy:
        chain = region_chain(region)
        values = {path: self._resolve(path, chain, on) for path in self.definitions}
        version = hashlib.sha256(f"{self.digest}|{region}|{on.isoformat()}".encode()).hexdigest()
        return Policy(region=region, on=on, version=f"policy-{version[:16]}", values=values)

    def _resolve(self, path: str, chain: list[str], on: date) -> ResolvedValue:
        definition = self.definitions[path]
        for region in chain:
            in_force = [e for e in self.entries.get((region, path), []) if e.start <= on]
            if in_force:
                entry = in_force[-1]
                return ResolvedValue(definition, entry.value, entry.reference, region, entry.start)
        return ResolvedValue(definition, None, None, "", None)


def region_chain(region: str) -> list[str]:
    """District → city → province → national, e.g. 210112 → 210100 → 210000 → 000000."""
    if len(region) != 6 or not region.isdigit():
        raise ValueError(f"region must be a 6-digit area code, got {region!r}")
    chain = [region, region[:4] + "00", region[:2] + "0000", NATIONAL]
    return list(dict.fromkeys(chain))


def load_parameters(directory: Path | None = None,
                    overlay: Path | str | None = None) -> ParameterTree:
    """Read and validate every parameter file; raise ``ParameterError`` naming file and key.

    ``overlay`` (default: ``$HEDUI_POLICY_DIR`` when set) is a bureau's folder laid over the
    parameters (see the module docstring)."""
    root = Path(directory) if directory is not None else DEFAULT_DIRECTORY
    national = root / NATIONAL
    if not national.is_dir():
        raise ParameterError(root, "", f"missing national directory {NATIONAL}/")
    regions = _load_regions(root)
    tree = ParameterTree(root, _digest(root), regions, definitions={})
    for file in sorted(national.glob("*.yaml")):
        _walk_definitions(tree, file, file.stem, _read(file))
    for region_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        if region_dir.name not in regions:
            raise ParameterError(region_dir, "", "region directory not listed in regions.yaml")
        if region_dir.name == NATIONAL:
            continue
        for file in sorted(region_dir.glob("*.yaml")):
            _walk_regional(tree, file, region_dir.name, file.stem, _read(file))
    overlay = overlay if overlay is not None else os.environ.get(OVERLAY_ENV) or None
    if overlay:
        _apply_overlay(tree, Path(overlay))
    return tree


def use_overlay(folder: Path | str | None) -> ParameterTree:
    """Check ``folder`` as a policy overlay and make it this process's (``$HEDUI_POLICY_DIR``),
    so every later ``load_parameters`` — the run's policy version, the assessment, the reports —
    uses the same policy. None or "" keeps the environment's. Returns the loaded tree."""
    if folder:
        tree = load_parameters(overlay=Path(folder).resolve())
        os.environ[OVERLAY_ENV] = str(Path(folder).resolve())
        return tree
    return load_parameters()


def _apply_overlay(tree: ParameterTree, folder: Path) -> None:
    """Lay ``folder`` over the tree: its series replace the shipped ones parameter by parameter
    and region by region; the digest then covers both."""
    if not folder.is_dir():
        raise ParameterError(folder, "", f"not a directory (set by {OVERLAY_ENV} or "
                             "--policy-dir)")
    if (folder / "regions.yaml").exists():
        for code, names in _load_regions(folder).items():
            tree.regions.setdefault(code, names)
    _refuse_ignored_files(folder)
    given: dict[tuple[str, str], tuple[str, list[Entry]]] = {}
    for region_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        if region_dir.name not in tree.regions:
            raise ParameterError(region_dir, "", "region directory not listed in regions.yaml "
                                 "(shipped or the overlay's own)")
        for file in sorted(region_dir.glob("*.yaml")):
            scratch = ParameterTree(folder, "", tree.regions, tree.definitions)
            _walk_regional(scratch, file, region_dir.name, file.stem, _read(file))
            for key, entries in scratch.entries.items():
                if key in given:
                    raise ParameterError(file, key[1], f"given twice: also in {given[key][0]}")
                given[key] = (str(file), entries)
    for key, (_, entries) in given.items():
        tree.entries[key] = entries
    tree.overlay = folder
    tree.digest = hashlib.sha256(f"{tree.digest}|{_digest(folder)}".encode()).hexdigest()


def _refuse_ignored_files(folder: Path) -> None:
    """A bureau's file that would be silently ignored is refused: the bureau must not believe a
    standard is in force that the overlay never read. Only ``regions.yaml`` at the top and
    ``*.yaml`` inside region directories are read; hidden files and READMEs are notes."""
    def is_note(path: Path) -> bool:
        return path.name.startswith(".") or path.stem.upper().startswith("README")

    for entry in sorted(folder.iterdir()):
        if entry.is_file() and entry.name != "regions.yaml" and not is_note(entry):
            raise ParameterError(entry, "", "file outside a region directory: move it into a "
                                 "region folder such as 000000/ or 210112/")
        if entry.is_dir():
            for inner in sorted(entry.iterdir()):
                if not is_note(inner) and (inner.is_dir() or inner.suffix != ".yaml"):
                    raise ParameterError(inner, "", "not a .yaml parameter file (only *.yaml "
                                         "directly in a region folder is read)")


def _load_regions(root: Path) -> dict[str, dict[str, str]]:
    file = root / "regions.yaml"
    data = _read(file) if file.exists() else {NATIONAL: {"zh": "全国", "en": "National"}}
    for code, names in data.items():
        if not (isinstance(code, str) and len(code) == 6 and code.isdigit()):
            raise ParameterError(file, str(code), "region code must be a quoted 6-digit string")
        if not isinstance(names, dict) or set(names) != {"zh", "en"}:
            raise ParameterError(file, code, "expected {zh: …, en: …}")
    return data


def _digest(root: Path) -> str:
    hasher = hashlib.sha256()
    for file in sorted(root.rglob("*.yaml")):
        hasher.update(file.relative_to(root).as_posix().encode() + b"\0" + file.read_bytes())
    return hasher.hexdigest()


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml parses ≈ 6× faster
    """Safe YAML that keeps dates as text, so a bad date is reported with its key path."""


def _unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict:
    """A mapping whose keys are all different: a date (or any key) given twice is an error, not
    silently the last one (two values for one parameter on one date)."""
    seen: set = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"given twice: {key}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)
_Loader.yaml_implicit_resolvers = {
    first: [resolver for resolver in resolvers if resolver[0] != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


@functools.lru_cache(maxsize=512)
def _parsed(text: str) -> Any:  # noqa: ANN401 (whatever the YAML holds; _read checks it)
    """A parameter file's text parsed, once per distinct text in this process: every shard of
    a review loads the same policy, and YAML parsing in Python was most of that."""
    return yaml.load(text, Loader=_Loader)


def _read(file: Path) -> dict[str, Any]:
    try:
        # a copy: the walkers below may keep or change what they are given
        data = copy.deepcopy(_parsed(file.read_text(encoding="utf-8")))
    except yaml.constructor.ConstructorError as exc:
        if "given twice" in str(exc):
            line = exc.problem_mark.line + 1 if exc.problem_mark else "?"
            raise ParameterError(file, f"line {line}", f"date given twice (overlapping dates); "
                                 f"{exc.problem}") from None
        raise ParameterError(file, "", f"not valid YAML: {exc}") from None
    except yaml.YAMLError as exc:
        raise ParameterError(file, "", f"not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ParameterError(file, "", "expected a mapping of parameter names")
    return data


def _walk_definitions(tree: ParameterTree, file: Path, path: str, node: Any) -> None:
    if not isinstance(node, dict):
        raise ParameterError(file, path, "expected a mapping (a group or a parameter)")
    if "values" in node:
        definition = _definition(file, path, node)
        tree.definitions[path] = definition
        tree.entries[(NATIONAL, path)] = _entries(file, path, NATIONAL, definition, node["values"])
        return
    for key, child in node.items():
        if key in _DEFINITION_KEYS:
            raise ParameterError(file, f"{path}.{key}", "parameter has no 'values' key")
        _walk_definitions(tree, file, f"{path}.{key}", child)


def _definition(file: Path, path: str, node: dict[str, Any]) -> Definition:
    _no_unknown_keys(file, path, node, _DEFINITION_KEYS)
    for key in ("description", "unit", "type"):
        if key not in node:
            raise ParameterError(file, f"{path}.{key}", "required key missing")
    description = node["description"]
    if not isinstance(description, dict) or set(description) != {"zh", "en"}:
        raise ParameterError(file, f"{path}.description", "expected {zh: …, en: …}")
    if node["unit"] not in _UNITS:
        raise ParameterError(file, f"{path}.unit", f"unknown unit; one of {sorted(_UNITS)}")
    if node["type"] not in _TYPES:
        raise ParameterError(file, f"{path}.type", f"unknown type; one of {sorted(_TYPES)}")
    choices = tuple(node.get("choices", ()))
    if (node["type"] == "choice") != bool(choices):
        raise ParameterError(file, f"{path}.choices", "only a choice parameter has choices")
    urban_rural = node.get("urban_rural", False)
    if not isinstance(urban_rural, bool):
        raise ParameterError(file, f"{path}.urban_rural", "expected true or false")
    item_class = node.get("item_class", "")
    classes = {meta["class"] for meta in codes.vocabulary()["items"].values()}
    if item_class and (node["type"] != "items" or item_class not in classes):
        raise ParameterError(file, f"{path}.item_class",
                             f"only for items parameters; one of {sorted(classes)}")
    return Definition(path, description, node["unit"], node["type"], urban_rural, choices,
                      item_class)


def _walk_regional(tree: ParameterTree, file: Path, region: str, path: str, node: Any) -> None:
    if path in tree.definitions:
        if not isinstance(node, dict):
            raise ParameterError(file, path, "expected a mapping with 'values'")
        _no_unknown_keys(file, path, node, _REGIONAL_LEAF_KEYS, hint="regional files hold only "
                         "'values'; description, unit and type live in the national files")
        if "values" not in node:
            raise ParameterError(file, f"{path}.values", "required key missing")
        definition = tree.definitions[path]
        tree.entries[(region, path)] = _entries(file, path, region, definition, node["values"])
        return
    if not any(known.startswith(path + ".") for known in tree.definitions):
        raise ParameterError(file, path, f"unknown parameter (not defined in {NATIONAL}/)")
    if not isinstance(node, dict):
        raise ParameterError(file, path, "expected a mapping (a group of parameters)")
    for key, child in node.items():
        _walk_regional(tree, file, region, f"{path}.{key}", child)


def _no_unknown_keys(
    file: Path, path: str, node: dict[str, Any], allowed: set[str], hint: str = ""
) -> None:
    for key in node:
        if key not in allowed:
            message = f"unknown key; allowed: {', '.join(sorted(allowed))}"
            raise ParameterError(file, f"{path}.{key}", message + (f" ({hint})" if hint else ""))


def _entries(
    file: Path, path: str, region: str, definition: Definition, values: Any
) -> list[Entry]:
    where = f"{path}.values"
    if not isinstance(values, dict):
        raise ParameterError(file, where, "expected a mapping of effective dates")
    entries = []
    for key, raw in values.items():
        start = _date(file, f"{where}.{key}", key)
        entries.append(_entry(file, f"{where}.{key}", region, definition, start, raw))
    return sorted(entries, key=lambda entry: entry.start)


def _entry(
    file: Path, where: str, region: str, definition: Definition, start: date, raw: Any
) -> Entry:
    if raw is None:
        return Entry(start, region, None, None, str(file))
    if not isinstance(raw, dict):
        raise ParameterError(file, where, "expected {value: …, reference: {…}} or null")
    _no_unknown_keys(file, where, raw, _ENTRY_KEYS)
    if "value" not in raw:
        raise ParameterError(file, f"{where}.value", "required key missing")
    if "reference" not in raw:
        raise ParameterError(file, f"{where}.reference", "required key missing: every value "
                             "needs its document (title, number, date) or example: true")
    value = raw["value"]
    if value is not None:
        value = _checked_value(file, f"{where}.value", definition, value)
    reference = _reference(file, f"{where}.reference", raw["reference"])
    return Entry(start, region, value, reference, str(file))


def _date(file: Path, where: str, key: Any) -> date:
    if isinstance(key, date):
        return key
    try:
        return date.fromisoformat(str(key))
    except ValueError:
        raise ParameterError(file, where, "effective date must be YYYY-MM-DD") from None


def _reference(file: Path, where: str, raw: Any) -> Reference:
    if not isinstance(raw, dict):
        raise ParameterError(file, where, "expected {title: …, number: …, date: …}")
    _no_unknown_keys(file, where, raw, _REFERENCE_KEYS)
    if not raw.get("title"):
        raise ParameterError(file, f"{where}.title", "required key missing")
    fields = {key: str(raw[key]) for key in raw if key != "example"}
    example = raw.get("example", False)
    if not isinstance(example, bool):
        raise ParameterError(file, f"{where}.example", "expected true or false")
    return Reference(**fields, example=example)


def _checked_value(file: Path, where: str, definition: Definition, value: Any) -> Any:
    if definition.urban_rural:
        if not isinstance(value, dict) or set(value) != set(_URBAN_RURAL):
            raise ParameterError(file, where, "expected {urban: …, rural: …}")
        return {key: _scalar(file, f"{where}.{key}", definition, value[key]) for key in value}
    return _scalar(file, where, definition, value)


def _scalar(file: Path, where: str, definition: Definition, value: Any) -> Any:
    checker = _CHECKERS[definition.type]
    problem = checker(value, definition)
    if problem:
        raise ParameterError(file, where, problem)
    return (tuple(value) if isinstance(value, list) and definition.type in ("items", "exclusions")
            else value)


def _check_number(value: Any, _: Definition) -> str:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
    return "" if ok else "expected a non-negative number"


def _check_integer(value: Any, _: Definition) -> str:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    return "" if ok else "expected a non-negative whole number"


def _check_boolean(value: Any, _: Definition) -> str:
    return "" if isinstance(value, bool) else "expected true or false"


def _check_items(value: Any, definition: Definition) -> str:
    known = set(codes.items(definition.item_class or None))
    if not isinstance(value, list):
        return "expected a list of evidence item codes"
    unknown = [item for item in value if item not in known]
    kind = f"{definition.item_class} items" if definition.item_class else "evidence items"
    return f"not {kind}: {unknown}; see verification/codes.yaml" if unknown else ""


def _check_choice(value: Any, definition: Definition) -> str:
    return "" if value in definition.choices else f"expected one of {list(definition.choices)}"


def _check_source_ages(value: Any, _: Definition) -> str:
    kinds = set(codes.feed_kinds())
    if not isinstance(value, dict) or not value:
        return "expected {feed_kind: max_age_days, …}"
    unknown = [kind for kind in value if kind not in kinds]
    if unknown:
        return f"unknown feed kinds {unknown}; one of {sorted(kinds)}"
    bad = [kind for kind, days in value.items() if _check_integer(days, _) != ""]
    return f"max age must be whole days for {bad}" if bad else ""


def _check_exclusions(value: Any, _: Definition) -> str:
    known = set(codes.vocabulary()["exclusion"])
    if not isinstance(value, list):
        return "expected a list of member exclusion codes"
    unknown = [code for code in value if code not in known]
    return (f"unknown exclusions {unknown}; one of {sorted(known)} (verification/codes.yaml)"
            if unknown else "")


_DISABILITY_TYPES = {"limb", "visual", "hearing", "speech", "intellectual", "mental", "multiple"}


def _check_grade_map(value: Any, _: Definition) -> str:
    if not isinstance(value, dict):
        return "expected {disability_type: max_grade, …}"
    unknown = [kind for kind in value if kind not in _DISABILITY_TYPES]
    if unknown:
        return f"unknown disability types {unknown}; one of {sorted(_DISABILITY_TYPES)}"
    bad = [kind for kind, grade in value.items() if grade not in (1, 2, 3, 4)]
    return f"grades must be 1-4 for {bad}" if bad else ""


def _check_tiers(value: Any, _: Definition) -> str:
    shape = "expected a list of {income_below: share, benefit: share} in rising income_below"
    if not isinstance(value, list) or not value:
        return shape
    bounds = []
    for tier in value:
        if not isinstance(tier, dict) or set(tier) != {"income_below", "benefit"}:
            return shape
        if _check_number(tier["income_below"], _) or _check_number(tier["benefit"], _):
            return shape
        bounds.append(tier["income_below"])
    return "" if bounds == sorted(bounds) else shape


_CHECKERS = {
    "number": _check_number,
    "integer": _check_integer,
    "boolean": _check_boolean,
    "items": _check_items,
    "choice": _check_choice,
    "source_ages": _check_source_ages,
    "grade_map": _check_grade_map,
    "tiers": _check_tiers,
    "exclusions": _check_exclusions,
}
