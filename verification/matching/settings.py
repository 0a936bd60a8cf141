"""Matching settings: blocking, comparisons and grade thresholds, as plain data.

Everything the probabilistic matcher does is declared here, so a run can log exactly what it
used (``MatchSettings.to_json``) and a later run can repeat it (``MatchSettings.from_json``).
Comparisons declare their levels as data, strongest first; the first level a pair satisfies is
its level, and a pair satisfying none falls into an implicit last level, ``else``. A pair where
either side lacks the comparison's column is ``null`` and contributes no evidence either way.

Blocking rules say which pairs are compared at all: each rule is a list of columns that must be
equal (AND), and a pair is a candidate when any rule holds (OR). ``block_on("a") | block_on("b")``
and ``block_on("a") & block_on("b")`` compose them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from verification.matching._grades import GRADES

LEVEL_KINDS = (
    "exact",  # values equal
    "prefix",  # first ``threshold`` characters equal (region codes: 12 → 9 → 6 digits)
    "osa",  # optimal string alignment distance ≤ threshold (typos and adjacent swaps)
    "jaro_winkler",  # Jaro–Winkler similarity ≥ threshold
    "month_day_swapped",  # YYYYMMDD with month and day exchanged
    "abs_diff",  # numeric values within ``threshold`` of each other
    "listed",  # the right side's LISTED_AGAINST column is among the left's listed values
    "overlap",  # both sides list values (space-separated) and the lists share one
)
# List columns of the records (space-separated values) and the members' column they list values
# of: ``id_near`` holds the person tokens of the valid numbers one typing slip away from a
# record's unusable ID (verification/intake/identifiers.py ``near_miss_ids``). A blocking rule
# or comparison on such a column pairs a record with the members whose value it lists; a record
# without the list is null (no evidence either way), whatever the member has.
LISTED_AGAINST = {"id_near": "person_token"}
# List columns on both sides (space-separated keyed address parts, verification/matching/
# address.py): a comparison level of kind ``overlap`` or a blocking rule on one of them holds
# when the two lists share a value.
LIST_COLUMNS = ("address_places", "address_buildings", "address_rooms")
# Columns blocking rules may name that are cut from a keyed column in memory (nothing staged):
# column → (source column, first, last code unit). ``birth_year`` lets a name block be split by
# year; ``name_last_sound`` (the given name's last syllable code) finds a record whose surname
# is mistyped but whose birth date is right, without pairing it with everyone born that day.
DERIVED_COLUMNS: dict[str, tuple[str, int, int | None]] = {
    "birth_year": ("birth_ymd", 0, 4),
    "name_last_sound": ("name_sounds", -1, None),
}


@dataclass(frozen=True)
class ComparisonLevel:
    label: str
    kind: str
    threshold: float | None = None
    column: str | None = None  # defaults to the comparison's column

    def __post_init__(self) -> None:
        if self.kind not in LEVEL_KINDS:
            raise ValueError(f"level {self.label!r}: unknown kind {self.kind!r} ({LEVEL_KINDS})")
        if self.kind in ("prefix", "osa", "jaro_winkler", "abs_diff") and self.threshold is None:
            raise ValueError(f"level {self.label!r}: kind {self.kind!r} needs a threshold")


@dataclass(frozen=True)
class Comparison:
    name: str
    column: str
    levels: tuple[ComparisonLevel, ...]

    @property
    def level_labels(self) -> tuple[str, ...]:
        return (*(level.label for level in self.levels), "else")

    @property
    def columns(self) -> tuple[str, ...]:
        used = [self.column, *(level.column or self.column for level in self.levels)]
        return tuple(dict.fromkeys(used))


class BlockingRules(tuple):
    """OR of AND-rules: ``BlockingRules((("a",), ("b", "c")))`` = a equal, or b and c equal."""

    def __or__(self, other: BlockingRules) -> BlockingRules:  # type: ignore[override]
        return BlockingRules((*self, *other))

    def __and__(self, other: BlockingRules) -> BlockingRules:
        # (a | b) & (c | d) = ac | ad | bc | bd
        return BlockingRules(tuple(dict.fromkeys((*x, *y))) for x in self for y in other)


def block_on(*columns: str) -> BlockingRules:
    return BlockingRules((tuple(columns),))


@dataclass(frozen=True)
class MatchSettings:
    """What the fallback matcher compares and how it grades. Defaults suit the household roster.

    Grades come from the posterior match probability of the best candidate: ``probable`` from
    ``probable_threshold``, ``possible`` from ``possible_threshold`` (0.5 is the Bayes decision:
    more likely a match than not), else ``none``. ``certain`` is never given here: it is reserved
    for the exact token match.
    """

    comparisons: tuple[Comparison, ...]
    blocking_rules: tuple[tuple[str, ...], ...]
    probable_threshold: float = 0.99
    possible_threshold: float = 0.5
    max_candidates: int = 3  # candidates kept per record for the officer
    # A blocking rule proposes no pairs from a block of more members than this (王伟 born in
    # some month, in a province): the pairs per record stay bounded as the roster grows, and the
    # other rules still find the person. None: no bound.
    max_block_members: int | None = 2000
    # Tighter bounds for named rules (rule name as ``rule_name`` writes it, e.g. "name_sounds"):
    # a name alone that more members share than this cannot place a record by itself.
    rule_max_block_members: tuple[tuple[str, int], ...] = ()
    # A record carrying a valid ID that differs from the candidate's is at most this grade: two
    # people can share name and birth date, and a valid number is rarely a typo (MOD 11-2 catches
    # every single-digit error).
    valid_id_mismatch_grade: str = "possible"
    # When the runner-up is within this many log2 units of the best, the best is at most
    # ``possible``: the officer must choose.
    ambiguity_margin: float = 3.0
    # An exact token match whose other fields (name, birth date, …) give evidence below this
    # log2 Bayes factor is capped at possible: a valid ID typed into someone else's record must
    # not remove anyone. None switches the check off.
    exact_contradiction_weight: float | None = 0.0
    # What a token match needs besides the token to be ``certain``: per comparison, the levels
    # that count as agreement and whether the comparison must be present. A valid number typed
    # into a relative's, a neighbour's or a namesake's record is a token match to the wrong
    # person; only the record's own name, birth date and gender can tell. A token match failing
    # this is demoted (at most probable, so REVIEW) and the fallback looks for the person the
    # other fields describe. Comparisons not in the settings are ignored (FEBRL has no "name").
    certain_agreement: tuple[tuple[str, tuple[str, ...], bool], ...] = ()
    # The prior that a token match is wrong (another person's valid ID; about 1 % in partner
    # data) when the run cannot estimate it from its token matches (too few records with their
    # own birth date). A token match that is not certain is graded by its posterior.
    token_error_rate: float = 0.01
    # m is learnt from exactly matched records (their token says which candidate is the person)
    # with this many pseudo-pairs of prior; with fewer labelled records than the minimum the
    # weights rest mostly on the prior and fallback matches are at most possible.
    min_labelled_records: int = 200
    m_prior_strength: float = 20.0
    em_max_iterations: int = 200
    em_tolerance: float = 1e-7
    training_records: int = 50_000  # records sampled (with all their candidates) to fit weights
    score_chunk_records: int = 50_000  # records without a valid ID scored per chunk
    random_pairs_for_u: int = 200_000  # random record × member pairs that estimate u
    # u of two different residents of a district, per comparison (its levels' u, ``else``
    # last), counted as ``population_u_pairs`` pairs beside the run's own estimate, and as a
    # term-frequency comparison's share of a value, counted as ``population_share_members``
    # members beside the roster's. A batch is matched against its own few members: its random
    # pairs are mostly the record and its own person (u ≈ m, no weight left) and a name's share
    # of three members says nothing of how common it is. A review's roster of hundreds of
    # thousands of pairs and members outweighs it.
    population_u: tuple[tuple[str, tuple[float, ...]], ...] = ()
    population_u_pairs: float = 10_000.0
    population_share_members: float = 1_000.0
    seed: int = 2026
    # Grade gating (docs/matching.md, "Grade gating"): a probable or possible link may put a
    # household on REVIEW only when its grade's precision is at least ``review_min_precision``;
    # a link of a weaker grade goes to the run's candidates file only (no evidence on the
    # household). The precision is measured in each run on up to ``calibration_records``
    # records whose token match is certain, placed again by the fallback as if their ID were
    # unusable; a run with fewer than ``min_labelled_records`` of them uses
    # ``measured_grade_precision`` — each grade's lowest precision over the labelled sets of
    # ``make eval-matching`` (bench/eval_matching.py, 2026-12-02).
    review_min_precision: float = 0.9
    calibration_records: int = 5000
    measured_grade_precision: tuple[tuple[str, float], ...] = (
        ("probable", 0.989), ("possible", 0.970))
    # A source with at most one record per person and period (one month's wages, one pension
    # roll): records of one ``source`` value are assigned one-to-one — each member to at most
    # one record, greedily by weight, certain links first — before grading. Off by default:
    # a run's identities span feeds and periods.
    one_record_per_person: bool = False
    # (comparison, level) pairs whose weight follows how common the member's value is (see
    # ``_engine.term_frequency_adjustment``): agreeing on a common name is weaker evidence.
    term_frequency: tuple[tuple[str, str], ...] = ()
    # Comparisons made only for records the fallback places — address and phone, which intake
    # keys only for rows whose ID is unusable. They are never evidence on a token match, so they
    # can neither make nor unmake a certain link. No token-labelled pair carries them, so m is
    # estimated from the fallback's own candidate pairs, weighted by how likely each is a match
    # on the other comparisons (``_engine._fallback_only_m``), and u exactly from how often
    # records and members share a value (``_engine._frequency_u``).
    fallback_only: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0 < self.possible_threshold <= self.probable_threshold < 1:
            raise ValueError("need 0 < possible_threshold <= probable_threshold < 1")
        if not 0 < self.token_error_rate < 1:
            raise ValueError("need 0 < token_error_rate < 1")
        if self.valid_id_mismatch_grade not in GRADES[1:]:
            raise ValueError("valid_id_mismatch_grade must be probable, possible or none")
        if not self.blocking_rules or not all(self.blocking_rules):
            raise ValueError("at least one non-empty blocking rule is needed")
        object.__setattr__(self, "blocking_rules", tuple(tuple(r) for r in self.blocking_rules))
        object.__setattr__(self, "certain_agreement", tuple(
            (str(name), tuple(levels), bool(required))
            for name, levels, required in self.certain_agreement))
        known_levels = {c.name: c.level_labels for c in self.comparisons}
        if not 0 < self.review_min_precision <= 1:
            raise ValueError("need 0 < review_min_precision <= 1")
        object.__setattr__(self, "term_frequency", tuple(
            (str(name), str(level)) for name, level in self.term_frequency))
        for name, level in self.term_frequency:
            if level not in known_levels.get(name, ()):
                raise ValueError(f"term_frequency: no level {level!r} in comparison {name!r}")
        object.__setattr__(self, "measured_grade_precision", tuple(
            (str(grade), float(p)) for grade, p in self.measured_grade_precision))
        if not {g for g, _ in self.measured_grade_precision} <= set(GRADES[1:3]):
            raise ValueError("measured_grade_precision: grades must be probable or possible")
        object.__setattr__(self, "fallback_only", tuple(str(n) for n in self.fallback_only))
        object.__setattr__(self, "population_u", tuple(
            (str(name), tuple(float(x) for x in u)) for name, u in self.population_u))
        for name, u in self.population_u:
            if len(u) != len(known_levels.get(name, ())) or not all(0 < x < 1 for x in u):
                raise ValueError(f"population_u {name!r}: one u in (0, 1) per level and else")
        certain_names = {name for name, _, _ in self.certain_agreement}
        for name in self.fallback_only:
            if name not in known_levels:
                raise ValueError(f"fallback_only: no comparison {name!r}")
            if name in certain_names:
                raise ValueError(f"fallback_only: {name!r} may not decide a certain link")
        known = {c.name: c.level_labels for c in self.comparisons}
        for name, levels, _ in self.certain_agreement:
            unknown = set(levels) - set(known.get(name, levels))
            if unknown:
                raise ValueError(f"certain_agreement {name!r}: unknown levels {sorted(unknown)}")

    @property
    def block_limits(self) -> dict[str, int | None]:
        """The block-size bound of every blocking rule, by rule name."""
        named = dict(self.rule_max_block_members)
        return {" & ".join(rule): named.get(" & ".join(rule), self.max_block_members)
                for rule in self.blocking_rules}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MatchSettings:
        data = dict(data)
        data["comparisons"] = tuple(
            Comparison(
                name=c["name"],
                column=c["column"],
                levels=tuple(ComparisonLevel(**level) for level in c["levels"]),
            )
            for c in data["comparisons"]
        )
        data["blocking_rules"] = tuple(tuple(rule) for rule in data["blocking_rules"])
        data["rule_max_block_members"] = tuple(
            (str(n), int(b)) for n, b in data.get("rule_max_block_members", ()))
        data["certain_agreement"] = tuple(
            (n, tuple(levels), r) for n, levels, r in data.get("certain_agreement", ()))
        data["population_u"] = tuple(
            (n, tuple(u)) for n, u in data.get("population_u", ()))
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> MatchSettings:
        return cls.from_dict(json.loads(text))


def _household_comparisons() -> tuple[Comparison, ...]:
    name = Comparison(
        "name",
        "name_chars",
        (
            ComparisonLevel("exact", "exact"),
            ComparisonLevel("homophone", "exact", column="name_sounds"),
            ComparisonLevel("fuzzy_homophone", "exact", column="name_fuzzy"),
            ComparisonLevel("one_edit_or_swap", "osa", 1, column="name_sounds"),
            ComparisonLevel("one_char_edit", "osa", 1),
        ),
    )
    birth = Comparison(
        "birth_date",
        "birth_ymd",
        (
            ComparisonLevel("exact", "exact"),
            ComparisonLevel("one_digit_or_swap", "osa", 1),
            ComparisonLevel("month_day_swapped", "month_day_swapped"),
            ComparisonLevel("same_year_month", "prefix", 6),
            ComparisonLevel("same_year", "prefix", 4),
        ),
    )
    gender = Comparison("gender", "gender", (ComparisonLevel("exact", "exact"),))
    # an unusable ID one digit, one adjacent swap or the check character away from the member's
    # valid one; ``else``: the record's number is near nobody or someone else (null: no such
    # number). No token-labelled pair has an unusable number, so m is the weak prior's
    # (0.9 near — Verhoeff 1969: ~90 % of the slips in typed numbers are one wrong digit or an
    # adjacent swap) and u the roster's own rate (``_engine._listed_u``).
    near_id = Comparison("id_near_miss", "id_near", (ComparisonLevel("near_miss", "listed"),))
    region = Comparison(
        "region",
        "community_code",
        (
            ComparisonLevel("same_community", "exact"),
            ComparisonLevel("same_street", "prefix", 9),
            ComparisonLevel("same_area", "prefix", 6),
        ),
    )
    # Keyed address parts (verification/matching/address.py), each a list: the same flat (a
    # room key of a place both name: community, compound or road number), the same building, the
    # same place; ``else``: both give an address and share no place (a household that moved,
    # or another family).
    address = Comparison(
        "address",
        "address_places",
        (
            ComparisonLevel("same_room", "overlap", column="address_rooms"),
            ComparisonLevel("same_building", "overlap", column="address_buildings"),
            ComparisonLevel("same_community", "overlap"),
        ),
    )
    # keyed phone: the whole number, or its last 8 digits (area code given on one side only)
    phone = Comparison("phone", "phone_key", (ComparisonLevel("exact", "exact"),
                                              ComparisonLevel("last_8", "exact",
                                                              column="phone_tail")))
    return (name, birth, gender, region, near_id, address, phone)


def default_settings() -> MatchSettings:
    """Household roster defaults: name keys, birth date, gender, region, ID near misses, and
    for the records the fallback places, address and phone (see docs/matching.md).

    Blocking, each rule bounded so the pairs per record stay flat as the roster grows: same
    name sound and birth year; same name sound alone when at most ``NAME_ALONE_MAX_BLOCK``
    members share it (a record without birth date); same surname sound and birth date, or same
    last syllable and birth date (a mistyped given name or surname); the member's ID one typing
    slip away from the record's unusable one; the same flat; the same phone number.
    """
    rules = (block_on("name_sounds", "birth_year") | block_on("name_sounds")
             | block_on("surname_sound", "birth_ymd") | block_on("name_last_sound", "birth_ymd")
             | block_on("id_near") | block_on("address_rooms") | block_on("phone_key"))
    return MatchSettings(comparisons=_household_comparisons(), blocking_rules=tuple(rules),
                         rule_max_block_members=(("name_sounds", NAME_ALONE_MAX_BLOCK),),
                         certain_agreement=CERTAIN_AGREEMENT,
                         term_frequency=(("name", "exact"), ("name", "homophone")),
                         fallback_only=FALLBACK_ONLY, population_u=POPULATION_U)


# u of two different residents (``MatchSettings.population_u``): the run's own u of the bench
# review of 100,000 households and 254,832 members (`bench/run.py --households 100000 --until
# matching`, matching.json, 2026-12-07; 200,000 random pairs), rounded. Names: 7.5 in 100,000
# random pairs share a name; a birth date about 1 in 23,000. Region, address and phone are
# left to each run: their u depends on how many communities and flats the records come from,
# and on a tiny roster it comes out too high — they then weigh too little, never too much.
POPULATION_U = (
    ("name", (7.5e-5, 1.5e-5, 2e-5, 7.3e-3, 1e-6, 0.99263)),
    ("birth_date", (4.4e-5, 9.1e-4, 1.5e-5, 6.6e-4, 1.06e-2, 0.98774)),
    ("gender", (0.5, 0.5)),
    ("id_near_miss", (4e-6, 0.999996)),
)


# A name sound alone pairs a record with at most this many members: a record that has nothing
# but a name shared by more people (王伟 in a city) cannot be placed by the name; its birth
# date (name & birth year), ID slip, flat or phone still find the person.
NAME_ALONE_MAX_BLOCK = 100


# Address and phone are keyed at intake only for rows whose ID is unusable (the rows the
# fallback places): they help to place such a row, never to confirm a token match.
FALLBACK_ONLY = ("address", "phone")


# A certain link needs the name to agree — exactly, as a homophone (which also covers every
# traditional/simplified pair) or as a near-homophone of pinyin input — and the birth date and
# gender to agree exactly whenever the record carries them. One wrong character is not enough:
# siblings' names differ in one character (张伟明/张伟华), so such a pair goes to REVIEW.
CERTAIN_AGREEMENT = (
    ("name", ("exact", "homophone", "fuzzy_homophone"), True),
    ("birth_date", ("exact",), False),
    ("gender", ("exact",), False),
)

