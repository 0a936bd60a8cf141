"""Synthetic 浑南区 (210112): households, members, partner feeds and the ground truth, by seed.

Every household is given a *scenario* first (keep, income over the standard, a car, two homes, …)
and its partner records are then written to make that scenario true. The expected flag is written
beside the data from the scenario alone — never by calling the assessment — so the end-to-end test
compares two independent paths. Margins are wide (eligible households have per-capita income
under 300 yuan and assets under 5,000 yuan; ineligible ones are far over any plausible standard).
Three things are computed from the 低保 standard in force (``dibao.standard`` of 210112 on the
as-of date), as a caseworker would: a recipient's current benefit (standard × members − income,
so KEEP stays KEEP and ADJUST households differ by their income), the income of households placed
just beside the standard (decided on the side they fall: the near-boundary check is off by default),
and the new wage that lifts a family out (GRADUAL_EXIT).

The feeds of the partners registered for issue 14 (tax, provident fund, public payroll,
subsidies, marriages, medical, special care, tuition, disability certificates, 户籍 changes) are
drawn from a second random stream, so the households, members and records of the first seven
feeds — and every scenario drawn — are those of earlier versions for the same seed. Those feeds
add *variants* of drawn scenarios (a kept household whose tax-reported interest, medical costs,
marriage or 户籍 change the truth then names) and background records that must change nothing
(excluded payments, school fees, old registrations, cancelled certificates).

Street and community codes are synthetic (the real 210112 area code with made-up sub-codes).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np

from schemas import contract_for, field_names
from verification import jurisdictions
from verification.assessment.policy import Policy, load_parameters
from verification.intake.identifiers import make_id

AREA_CODE = "210112"
STREETS = {code: (name, list(jurisdictions.communities(code).values()))
           for code, name in jurisdictions.streets().items()}
SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡"
    "余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯"
    "龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
GIVEN = (
    "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉兰萍红娥玲芬芳燕彩春菊兰"
    "凤洁梅琳素云莲真环雪荣爱妹霞香月莺媛艳瑞凡佳嘉琼勤珍贞莉桂娣叶璧璐娅琦晶妍茜秋珊"
    "莎锦黛青倩婷姣婉娴瑾颖露瑶怡婵雁蓓纨仪荷丹蓉眉君琴蕊薇菁梦岚苑婕馨瑗琰韵融园艺咏"
    "卿聪澜纯毓悦昭冰爽琬茗羽希宁欣飘育滢馥筠柔竹霭凝晓欢霄枫芸菲寒伊亚宜可姬舒影荔枝"
    "丽阳妮宝贝初程梵罡恒鸿桦骅剑娇纪宽苛灵玛媚琪晴容睿烁堂唯威韦雯苇萱阅彦宇雨洋忠宗"
    "曼紫逸贤蝶菡绿蓝儿翠烟"
)
SCENARIOS = {
    # name: (status, expected flag, expected reason codes, weight)
    "keep": ("recipient", "KEEP", ["ELIGIBLE_DIBAO"], 30),
    "keep_exempt_vehicle": ("recipient", "KEEP", ["ELIGIBLE_DIBAO"], 4),
    "income_over": ("recipient", "REMOVE", ["INCOME_OVER_STANDARD"], 8),
    "vehicle": ("recipient", "REMOVE", ["VEHICLE_OWNED"], 5),
    # the car's record carries the owner's ID with a mistyped check character (name and birth
    # date right): matched by the fallback, never certain, so REVIEW — never REMOVE
    "vehicle_id_mistyped": ("recipient", "REVIEW", ["MATCH_UNCERTAIN"], 3),
    "assets_over": ("recipient", "REMOVE", ["FINANCIAL_ASSETS_OVER_LIMIT"], 5),
    "two_homes": ("recipient", "REMOVE", ["PROPERTY_COUNT_EXCEEDED"], 4),
    "business": ("recipient", "REMOVE", ["BUSINESS_REGISTERED"], 4),
    # a member died (certain funeral record): the others are re-assessed without them, so the
    # benefit falls by one standard (ADJUST); a household of one is stopped (REMOVE); see
    # _death_truth
    "death": ("recipient", "ADJUST", ["MEMBER_DECEASED", "BENEFIT_CHANGED"], 4),
    "adjust": ("recipient", "ADJUST", ["ELIGIBLE_DIBAO", "BENEFIT_CHANGED"], 6),
    "gradual_exit": ("recipient", "GRADUAL_EXIT",
                     ["INCOME_OVER_STANDARD", "NEW_EMPLOYMENT", "GRADUAL_EXIT_PERIOD"], 5),
    "death_conflict": ("recipient", "REVIEW", ["MEMBER_DECEASED", "SOURCES_CONFLICT"], 2),
    # just beside the standard: decided on which side it falls (the near-boundary check is off
    # by default; see _near_truth)
    "near_boundary": ("applicant", "ADD", ["ELIGIBLE_DIBAO"], 3),
    "applicant_eligible": ("applicant", "ADD", ["ELIGIBLE_DIBAO"], 12),
    "applicant_ineligible": ("applicant", "REJECT", ["INCOME_OVER_STANDARD"], 8),
    "monitored_now_eligible": ("monitored", "ADD", ["ELIGIBLE_DIBAO"], 8),
    "monitored_not_eligible": ("monitored", "KEEP", ["INCOME_OVER_STANDARD"], 8),
}
# scenarios every district of at least ALWAYS_FROM households holds at least once (the last
# households take them if the draw has not given them yet)
ALWAYS = ("vehicle_id_mistyped",)
ALWAYS_FROM = 20
# Variants of a drawn scenario, from the second stream: name → (drawn scenario, share of those
# households given the variant, expected flag, expected reason codes). Each changes a kept or
# refused household through another partner's feed, most without changing its flag kind (a
# marriage or 户籍 change sends a kept household to REVIEW): a KEEP stays
# KEEP only if the assessment counts the tax income and deducts the medical costs the current
# benefit was set on (a difference over dynamic.adjust_threshold would be ADJUST), and excludes
# the payments it must exclude (counted, they lift the family far over the standard).
VARIANTS = {
    "keep_tax_income": ("keep", 0.12, "KEEP", ["ELIGIBLE_DIBAO"]),
    # a recipient's roster the registers say has changed is visited first (flags/signals.py)
    "marriage_changed": ("keep", 0.10, "REVIEW", ["MARRIAGE_CHANGED"]),
    "household_changed": ("keep", 0.10, "REVIEW", ["HOUSEHOLD_CHANGED"]),
    "medical_deduction": ("keep", 0.10, "KEEP", ["ELIGIBLE_DIBAO"]),
    "excluded_income": ("applicant_eligible", 0.3, "ADD", ["ELIGIBLE_DIBAO"]),
    "public_payroll": ("income_over", 0.3, "REMOVE", ["INCOME_OVER_STANDARD", "PUBLIC_PAYROLL"]),
    "applicant_public_payroll": ("applicant_ineligible", 0.2, "REJECT",
                                 ["INCOME_OVER_STANDARD", "PUBLIC_PAYROLL"]),
}
# the personal social-insurance contribution, as a share of the gross wage
SI_SHARE = 0.105
FIRST_FEEDS = ["wages", "pensions", "real_estate", "vehicles", "business", "deposits", "deaths"]
# every feed kind a registered partner delivers (connectors/partners.yaml)
FEED_KINDS = [*FIRST_FEEDS, "tax", "provident_fund", "public_payroll", "subsidies", "marriages",
              "medical", "special_care", "education", "disability", "population"]


@dataclass
class Person:
    id_number: str
    name: str
    birth: dt.date
    relation: str
    exclusion: str = ""
    disability_grade: int = 0
    disability_type: str = ""
    address: str = ""  # the household's address as the roster holds it ("" for outsiders)
    phone: str = ""  # the member's phone as the roster holds it ("" when unknown)


@dataclass
class District:
    seed: int
    as_of: dt.date
    households: list[dict] = field(default_factory=list)  # roster rows (batch contract)
    feeds: dict[str, list[dict]] = field(default_factory=lambda: {k: [] for k in FEED_KINDS})
    truth: list[dict] = field(default_factory=list)


class _Builder:
    def __init__(self, seed: int, as_of: dt.date) -> None:
        self.rng = np.random.default_rng(seed)
        self.extra = np.random.default_rng([seed, 14])  # the feeds added for issue 14
        self.identity_rng = np.random.default_rng([seed, 15])
        # the roster's addresses and phones (issue 15): a stream of their own, so the rest of
        # the district is what it was without them
        self.contact_rng = np.random.default_rng([seed, 23])
        self.as_of = as_of
        self.used_ids: set[str] = set()
        self.district = District(seed=seed, as_of=as_of)
        self.counters = dict.fromkeys(FEED_KINDS, 0)
        # the 12 months before the as-of month: the longest income window a policy may use
        first = (as_of.replace(day=1) - dt.timedelta(days=1)).replace(day=1)
        self.months = [_month_back(first, i) for i in range(12)]

    # ---- people -------------------------------------------------------------------------------
    def new_id(self, birth: dt.date, male: bool) -> str:
        while True:
            seq = int(self.rng.integers(0, 500)) * 2 + (1 if male else 0)
            number = make_id(AREA_CODE, birth, seq)
            if number not in self.used_ids:
                self.used_ids.add(number)
                return number

    def name(self, surname: str | None = None) -> str:
        surname = surname or SURNAMES[int(self.rng.integers(0, len(SURNAMES)))]
        size = 1 if self.rng.random() < 0.35 else 2
        return surname + "".join(GIVEN[int(i)] for i in self.rng.integers(0, len(GIVEN), size))

    def birth(self, age_low: int, age_high: int) -> dt.date:
        age_days = int(self.rng.integers(age_low * 365, age_high * 365))
        return self.as_of - dt.timedelta(days=age_days)

    def person(self, relation: str, age: tuple[int, int], surname: str | None = None) -> Person:
        born = self.birth(*age)
        male = bool(self.rng.random() < 0.5)
        return Person(self.new_id(born, male), self.name(surname), born, relation)

    def age(self, person: Person) -> int:
        return (self.as_of - person.birth).days // 365

    def family(self) -> list[Person]:
        head = self.person("户主", (28, 80))
        surname = head.name[0]
        people = [head]
        age_head = (self.as_of - head.birth).days // 365
        if self.rng.random() < 0.6:
            people.append(self.person("配偶", (max(22, age_head - 6), age_head + 5)))
        for _ in range(int(self.rng.integers(0, 3))):
            if age_head >= 40:
                people.append(self.person("子女", (1, min(25, age_head - 20)), surname))
        if age_head < 50 and self.rng.random() < 0.2:
            people.append(self.person("父母", (age_head + 22, age_head + 30), surname))
        # Every household keeps one working-age member without disability, so the 特困 test
        # (no labour capacity) never applies: the truth below is about 低保 only.
        if not any(18 <= self.age(p) < 60 for p in people):
            people.append(self.person("子女", (30, 45), surname))
        worker = next(p for p in people if 18 <= self.age(p) < 60)
        others = [p for p in people if p is not worker]
        if others and self.rng.random() < 0.15:
            p = others[int(self.rng.integers(0, len(others)))]
            p.disability_grade = int(self.rng.integers(1, 5))
            p.disability_type = str(self.rng.choice(["limb", "visual", "hearing", "intellectual"]))
        return people

    # ---- partner records ----------------------------------------------------------------------
    def record(self, kind: str, person: Person, id_number: str | None = None,
               second: bool = False, **fields: object) -> None:
        """One partner row for ``person``; ``id_number`` as written (default: ``dirty_id``).
        Rows of the issue-14 feeds, and ``second`` rows of the first feeds, draw from the second
        stream and are numbered apart (``…X…``), so the first feeds' rows stay as they were."""
        second = second or kind not in FIRST_FEEDS
        key = f"{kind}+" if second and kind in FIRST_FEEDS else kind
        self.counters[key] = self.counters.get(key, 0) + 1
        prefix = kind[:2].upper() + ("X" if key != kind else "")
        rng = self.extra if second else self.rng
        row = {"record_id": f"{prefix}{self.counters[key]:07d}",
               "id_number": id_number or self.dirty_id(person, rng), "name": person.name,
               **self.identity_fields(kind, person), **fields}
        self.district.feeds[kind].append(row)

    def identity_fields(self, kind: str, person: Person) -> dict[str, str]:
        """The optional identity fields as partners send them: often absent, in their own
        formats (20240517, 2024/05/17; 男, 1, M), addresses with or without province and city,
        buildings written 3号楼/3栋/3-, some households moved. Drawn from their own generator so
        that the rest of the district is the same as without them. Values are never wrong
        (a wrong birth date on a clean record would make its expected flag a REVIEW)."""
        rng, out = self.identity_rng, {}
        if not _has_identity_fields(kind):
            return out
        if rng.random() < 0.7:
            born = person.birth
            out["birth_date"] = str(rng.choice([born.isoformat(), f"{born:%Y%m%d}",
                                                f"{born:%Y/%m/%d}"]))
            male = int(person.id_number[16]) % 2 == 1
            out["gender"] = str(rng.choice(["男", "1", "M"] if male else ["女", "2", "F"]))
        if rng.random() < 0.4:
            out["address"] = self.address(person)
        phone = self.partner_phone(person)
        if phone:
            out["phone"] = phone
        return out

    # ---- addresses and phones -------------------------------------------------------------
    def contacts(self, people: list[Person], street: str, community: str) -> None:
        """The household's address (as the caseload file holds it: district, street,
        community, compound, building, unit and room) and each member's phone (a few
        unknown)."""
        rng = self.contact_rng
        names = jurisdictions.communities(street)
        compound = COMPOUNDS[int(rng.integers(0, len(COMPOUNDS)))]
        building, unit, room = _flat(rng)
        address = (f"沈阳市浑南区{STREETS[street][0]}{names[community]}{compound}"
                   f"{building}号楼{unit}单元{room}室")
        for person in people:
            person.address = address
            if rng.random() < 0.85:
                person.phone = _mobile(rng)

    def address(self, person: Person) -> str:
        """The address a partner holds for ``person``: the household's, written the partner's
        way — with or without province, city, district and street, the building as 3号楼2单元
        501室, 3栋2门501, 3-2-501 or in Chinese numerals, the compound sometimes without its
        community — or, for a household that moved since the partner registered it (10 %), and
        for people not in the caseload, another address altogether."""
        rng = self.identity_rng
        streets = list(STREETS)
        parts = _ADDRESS_PARTS.match(person.address) if person.address else None
        if parts is None or rng.random() < 0.1:  # an outsider, or moved
            street = streets[int(rng.integers(0, len(streets)))]
            community = str(rng.choice(list(jurisdictions.communities(street).values())))
            compound = COMPOUNDS[int(rng.integers(0, len(COMPOUNDS)))]
            building, unit, room = _flat(rng)
            street_name = STREETS[street][0]
        else:
            street_name, community, compound = parts["street"], parts["community"], parts[
                "compound"]
            building, unit, room = (int(parts[k]) for k in ("building", "unit", "room"))
        return written_address(rng, street_name, community, compound, building, unit, room,
                               "辽宁省沈阳市浑南区")

    def partner_phone(self, person: Person) -> str:
        """The phone a partner holds: often none; the roster's number in the partner's format
        (+86, dashes); a number changed since (the roster's is old); or one the roster does not
        know."""
        rng = self.identity_rng
        if rng.random() >= 0.5:
            return ""
        digits = person.phone if person.phone and rng.random() < 0.85 else _mobile(rng)
        return str(rng.choice([digits, f"+86 {digits}",
                               f"{digits[:3]}-{digits[3:7]}-{digits[7:]}"]))

    def dirty_id(self, person: Person, rng: np.random.Generator | None = None) -> str:
        """Real feeds carry full-width digits, lowercase x, spaces and 15-digit legacy numbers."""
        roll = (rng or self.rng).random()
        number = person.id_number
        if roll < 0.05 and number[6:8] == "19":
            return number[:6] + number[8:17]  # legacy 15-digit form
        if roll < 0.10:
            return number.translate(str.maketrans("0123456789X", "０１２３４５６７８９Ｘ"))
        if roll < 0.14:
            return f" {number.lower()} "
        return number

    def wage(self, person: Person, amount: float, months: list[dt.date] | None = None) -> None:
        """``amount`` a month as the income test counts it: the gross wage less the personal
        social-insurance contribution (10.5 % of the gross; 转移性支出, 审核确认办法 第十三条)."""
        gross = round(amount / (1 - SI_SHARE), 2)
        for month in self.months if months is None else months:
            self.record("wages", person, period=month.strftime("%Y-%m"),
                        employer_name="沈阳某某有限公司",
                        employer_credit_code=_credit_code(self.rng),
                        wage_amount=_money(gross, self.rng),
                        si_contribution=f"{gross - amount:.2f}")

    def pension(self, person: Person, kind: str, amount: float, second: bool = False) -> None:
        for month in self.months:
            self.record("pensions", person, second=second, period=month.strftime("%Y-%m"),
                        benefit_type=kind,
                        amount=_money(amount, self.extra if second else self.rng))

    def deposit(self, person: Person, balance: float, account_type: str = "deposit") -> None:
        self.record("deposits", person, institution="盛京银行", account_type=account_type,
                    balance=_money(balance, self.rng), as_of=self.months[0].strftime("%Y-%m-%d"))

    def home(self, person: Person, use: str = "home") -> None:
        number = self.rng.integers(1e6, 9e6)
        self.record("real_estate", person, certificate_no=f"辽(2024)沈阳市不动产权第{number}号",
                    property_use=use, area_m2=f"{self.rng.uniform(40, 110):.1f}",
                    registered_on=self.past_date(3000), share="1")

    def vehicle(self, person: Person, vtype: str, status: str = "active",
                id_number: str | None = None) -> None:
        plate = "辽A" + "".join(self.rng.choice(list("0123456789ABCDEFGHJK"), 5))
        self.record("vehicles", person, id_number=id_number, plate_no=plate, vehicle_type=vtype,
                    registered_on=self.past_date(900), status=status)

    def business(self, person: Person, status: str = "active") -> None:
        self.record("business", person, credit_code=_credit_code(self.rng),
                    business_name=f"沈阳市浑南区{person.name[0]}记便利店",
                    registered_on=self.past_date(700),
                    status=status)

    # ---- the feeds added for issue 14 (second random stream) ------------------------------
    def tax(self, person: Person, category: str, amount: float) -> None:
        for month in self.months:
            self.record("tax", person, period=month.strftime("%Y-%m"), income_category=category,
                        taxable_income=_money(amount, self.extra),
                        tax_paid=f"{amount * 0.02:.2f}")

    def provident_fund(self, person: Person, wage: float,
                       months: list[dt.date] | None = None) -> None:
        for month in self.months if months is None else months:
            self.record("provident_fund", person, period=month.strftime("%Y-%m"),
                        employer_name="沈阳某某有限公司",
                        employer_credit_code=_credit_code(self.extra),
                        contribution=_money(round(wage * 0.12, 2), self.extra))

    def public_payroll(self, person: Person, status: str = "active") -> None:
        self.record("public_payroll", person, unit_name="浑南区某街道办事处",
                    since=self.old_date(), status=status)

    def subsidy(self, person: Person, payment_type: str, amount: float,
                months: list[dt.date] | None = None) -> None:
        payer = {"scholarship": "沈阳市教育局", "bravery_award": "沈阳市见义勇为基金会",
                 "family_planning_award": "浑南区卫生健康局",
                 "assistance_payment": "浑南区民政局"}[payment_type]
        for month in self.months if months is None else months:
            self.record("subsidies", person, period=month.strftime("%Y-%m"),
                        payment_type=payment_type, payer=payer,
                        amount=_money(amount, self.extra))

    def special_care(self, person: Person, amount: float) -> None:
        for month in self.months:
            self.record("special_care", person, period=month.strftime("%Y-%m"),
                        payment_name="定期抚恤金", amount=_money(amount, self.extra))

    def medical(self, person: Person, amount: float) -> None:
        for month in self.months:
            self.record("medical", person, period=month.strftime("%Y-%m"),
                        institution="沈阳市第四人民医院",
                        out_of_pocket=_money(amount, self.extra))

    def tuition(self, person: Person, amount: float) -> None:
        """Fees of a school term, paid in one month (September, or March for the spring)."""
        month = next(m for m in self.months if m.month in (9, 3))
        self.record("education", person, period=month.strftime("%Y-%m"),
                    school_name="沈阳市浑南区某中学", school_type="public",
                    stage="senior" if self.age(person) >= 15 else "junior",
                    tuition=_money(amount, self.extra))

    def marriage(self, person: Person, event: str, on: str) -> None:
        self.record("marriages", person, event=event, registered_on=on)

    def certificate(self, person: Person, grade: int, disability_type: str,
                    status: str = "valid") -> None:
        """A 残联 certificate (残疾人证) of ``person``."""
        self.record("disability", person,
                    certificate_no=f"{person.id_number[:6]}{int(self.extra.integers(1e7, 9e7))}",
                    disability_type=f"disability_{disability_type}",
                    disability_grade=str(grade), issued_on=self.old_date(), status=status)

    def hukou(self, person: Person, event: str, on: str, other: str = "",
              relation: str = "") -> None:
        self.record("population", person, hukou_no=f"{int(self.extra.integers(1e8, 9e8))}",
                    event=event, event_date=on, other_name=other, relation=relation)

    def old_date(self) -> str:
        """A date two to twelve years before the as-of month: well outside any change window."""
        days = int(self.extra.integers(730, 4400))
        return (self.months[0] - dt.timedelta(days=days)).isoformat()

    def recent_date(self) -> str:
        """A date within the ten months before the as-of month (inside the change window)."""
        return (self.months[0] - dt.timedelta(days=int(self.extra.integers(0, 300)))).isoformat()

    def past_date(self, days: int) -> str:
        return (self.months[0] - dt.timedelta(days=int(self.rng.integers(1, days)))).isoformat()


@cache
def _policy(as_of: dt.date) -> Policy:
    """The district's policy on the as-of date: the truth uses the same standard as the rules."""
    return load_parameters().at(AREA_CODE, as_of)


def _month_back(first: dt.date, n: int) -> dt.date:
    year, month = divmod(first.year * 12 + first.month - 1 - n, 12)
    return dt.date(year, month + 1, 1)


def _money(amount: float, rng: np.random.Generator) -> str:
    """Amounts as partners really write them, now and then with separators or 元."""
    roll = rng.random()
    if roll < 0.08:
        return f"{amount:,.2f}"
    if roll < 0.12:
        return f"{amount:.2f}元"
    return f"{amount:.2f}"


def _credit_code(rng: np.random.Generator) -> str:
    from verification.intake.identifiers import USCC_ALPHABET, make_uscc

    body = "92210112" + "".join(rng.choice(list(USCC_ALPHABET[:10] + "ABCDEFGH"), 9))
    return make_uscc(body)


# ---- scenarios ---------------------------------------------------------------------------------
# scenarios whose families have a small income, well under any standard
_SMALL_INCOME = ("keep", "keep_exempt_vehicle", "vehicle", "vehicle_id_mistyped", "assets_over",
                 "two_homes", "business", "death", "death_conflict", "adjust",
                 "applicant_eligible", "monitored_now_eligible")
NEW_JOB_MONTHS = 4  # gradual_exit: the job began this many months ago (contributions too)


def _apply_scenario(b: _Builder, scenario: str, people: list[Person], standard: float) -> float:
    """Write the scenario's records; return the household's counted monthly income."""
    size = len(people)
    rng = b.rng
    income = 0.0
    if scenario in _SMALL_INCOME:
        if scenario == "adjust" or rng.random() < 0.6:
            income = round(float(rng.uniform(100 if scenario == "adjust" else 50, 250)) * size, 2)
            _earn(b, people[0], income)
        for p in people:  # the residents' basic pension is excluded income by national rule
            if b.age(p) >= 60 and rng.random() < 0.7:
                b.pension(p, "basic_pension_residents", 150.0)
    elif scenario == "near_boundary":  # within the near-boundary margin of the standard
        income = round(standard * size * float(rng.uniform(0.97, 1.03)), 2)
        _earn(b, people[0], income)
    elif scenario != "gradual_exit":
        income = round(2500.0 * size + float(rng.uniform(500, 3000)), 2)
        b.wage(people[0], income)
    if rng.random() < 0.5:
        b.deposit(people[0], float(rng.uniform(0, 4000)) * size)
    if rng.random() < 0.6 and scenario != "two_homes":
        b.home(people[0])
    if rng.random() < 0.1:  # history that must not count: a deregistered car, a cancelled shop
        b.vehicle(people[0], "car", status="deregistered")
    if rng.random() < 0.05:
        b.business(people[0], status="cancelled")
    return income + _apply_change(b, scenario, people, standard)


def _earn(b: _Builder, person: Person, amount: float) -> None:
    """Counted income: a pension from 60, else a wage (with its contributions)."""
    if b.age(person) >= 60:
        b.pension(person, "enterprise_pension", amount)
    else:
        b.wage(person, amount)


def current_benefit(scenario: str, status: str, standard: float, size: int,
                    income: float) -> float:
    """What the district pays today. A recipient's benefit was set on the income the district
    knew: all of it, except for ``adjust`` households (income found only now) and those whose
    situation changed after it was set (their old, small income is taken as 0)."""
    if status != "recipient":
        return 0.0
    small = scenario in _SMALL_INCOME or VARIANTS.get(scenario, ("",))[0] in _SMALL_INCOME
    known = income if small and scenario != "adjust" else 0.0
    return round(standard * size - known, 2)


def _apply_change(b: _Builder, scenario: str, people: list[Person], standard: float) -> float:
    """The scenario's change; returns the counted monthly income it adds."""
    size = len(people)
    who = people[int(b.rng.integers(0, size))]
    if scenario == "gradual_exit":
        # a working-age member took a job NEW_JOB_MONTHS ago: averaged over the income window
        # the family is now well over the standard, and contributions show the new job
        worker = next(p for p in people if 18 <= b.age(p) < 60)
        window = int(_policy(b.as_of).require("income.look_back_months"))
        lifted = standard * size * float(b.rng.uniform(1.2, 2.5))
        wage = round(lifted * window / NEW_JOB_MONTHS, 2)
        b.wage(worker, wage, b.months[:NEW_JOB_MONTHS])
        return wage * NEW_JOB_MONTHS / window
    if scenario == "death_conflict":
        # the funeral record says the member died four months ago; the employer still pays
        died = b.months[NEW_JOB_MONTHS - 1] + dt.timedelta(days=int(b.rng.integers(0, 25)))
        b.record("deaths", who, date_of_death=died.isoformat())
        b.wage(who, 60.0)
        return 60.0
    if scenario == "keep_exempt_vehicle":
        # grade 3 limb: entitled to a disability vehicle, yet still able to work (特困 lists 1–2)
        who.disability_grade, who.disability_type = 3, "limb"
        b.vehicle(who, "disability_vehicle")
    elif scenario == "vehicle":
        b.vehicle(who, "car")
    elif scenario == "vehicle_id_mistyped":
        b.vehicle(who, "car", id_number=mistyped_check(who.id_number))
    elif scenario == "assets_over":
        b.deposit(who, 150_000.0 * size, account_type=str(b.rng.choice(["deposit", "security"])))
    elif scenario == "two_homes":
        b.home(who)
        b.home(who)
    elif scenario == "business":
        b.business(who)
    elif scenario == "death":
        who = people[-1]  # never the earner (people[0]) where others remain: see _death_truth
        died = b.months[0] + dt.timedelta(days=int(b.rng.integers(0, 25)))
        b.record("deaths", who, date_of_death=died.isoformat())
    return 0.0


def _other_partners(b: _Builder, scenario: str, people: list[Person],
                    income: float) -> tuple[str, str, list[str], float]:
    """The records of the issue-14 feeds for a household (second stream): maybe a variant of
    its scenario, then background records; returns the scenario (or variant), its expected
    flag and reasons, and the counted monthly income net of deductions."""
    rng = b.extra
    _, flag, reasons, _ = SCENARIOS[scenario]
    roll, drawn = rng.random(), scenario
    for name, (base, share, variant_flag, variant_reasons) in VARIANTS.items():
        if base == drawn and scenario == drawn:
            if roll < share and (name != "medical_deduction" or income >= 150):
                scenario, flag, reasons = name, variant_flag, variant_reasons
            roll -= share
    income += _variant(b, scenario, people, income)
    if drawn in _SMALL_INCOME:
        income += _background(b, people)
    if drawn in ("income_over", "applicant_ineligible", "monitored_not_eligible") and (
            rng.random() < 0.5):
        b.provident_fund(people[0], 2500.0 * len(people))  # a job with a housing fund
    if drawn == "gradual_exit":  # the new job pays into the housing fund from its first month
        worker = next(p for p in people if 18 <= b.age(p) < 60)
        b.provident_fund(worker, 3000.0, b.months[:NEW_JOB_MONTHS])
    if drawn == "death" and rng.random() < 0.5:  # the 户籍 deregistration says the same
        death = next(r for r in b.district.feeds["deaths"][::-1])
        who = next(p for p in people if p.name == death["name"])
        b.hukou(who, "death", death["date_of_death"])
    for p in people:  # the 残联 register agrees with the roster
        if p.disability_grade:
            b.certificate(p, p.disability_grade, p.disability_type)
        elif rng.random() < 0.01:  # a certificate cancelled long ago: it says nothing
            b.certificate(p, 4, "limb", status="cancelled")
    return scenario, flag, reasons, income


def _variant(b: _Builder, scenario: str, people: list[Person], income: float) -> float:
    """The variant's records; returns the change to counted monthly income (net)."""
    rng = b.extra
    who = people[int(rng.integers(0, len(people)))]
    if scenario == "keep_tax_income":  # counted: the current benefit was set with it
        amount = round(float(rng.uniform(60, 150)), 2)
        b.tax(people[0], str(rng.choice(["interest", "rent", "dividend",
                                         "labour_remuneration"])), amount)
        return amount
    if scenario == "medical_deduction":  # deducted: the current benefit was set net of it
        cost = round(income * float(rng.uniform(0.4, 0.6)), 2)
        b.medical(who, cost)
        return -cost
    if scenario == "marriage_changed":
        b.marriage(who, str(rng.choice(["marriage", "divorce"])), b.recent_date())
    elif scenario == "household_changed":
        event = str(rng.choice(["birth", "move_in", "move_out"]))
        if event == "move_out":
            b.hukou(who, event, b.recent_date())
        else:
            other, relation = {"birth": ("新生儿", "子女"), "move_in": ("迁入人员", "其他")}[event]
            b.hukou(people[0], event, b.recent_date(), other, relation)
    elif scenario == "excluded_income":  # far over the standard if it were counted
        b.special_care(who, 1500.0 * len(people))
        b.subsidy(who, str(rng.choice(["bravery_award", "assistance_payment"])),
                  800.0 * len(people))
    elif scenario in ("public_payroll", "applicant_public_payroll"):
        b.public_payroll(people[0])
    return 0.0


def _background(b: _Builder, people: list[Person]) -> float:
    """Records of a small-income family that change nothing the truth says: the personal part
    of the residents' pension and some unemployment benefit (counted, and known to the district),
    excluded payments, school fees (rigid spending, not deducted), old registrations, a former
    public post. Returns the counted monthly income they add."""
    rng, added = b.extra, 0.0
    for p in people:
        age = b.age(p)
        if age >= 60 and rng.random() < 0.3:  # the basic part (excluded) is in the first feeds
            b.pension(p, "residents_pension_personal", 60.0, second=True)
            added += 60.0
        if 6 <= age < 22 and rng.random() < 0.5:
            b.tuition(p, float(rng.choice([800.0, 1200.0, 2400.0])))
            if rng.random() < 0.3:
                b.subsidy(p, "scholarship", 500.0, b.months[:1])
        if age >= 60 and rng.random() < 0.15:
            b.subsidy(p, "family_planning_award", 80.0)
    workers = [p for p in people if 18 <= b.age(p) < 60]
    if workers and rng.random() < 0.1:
        b.pension(workers[-1], "unemployment_benefit", 90.0, second=True)
        added += 90.0
    if rng.random() < 0.2:  # the benefit itself, as paid through the one-card system
        b.subsidy(people[0], "assistance_payment", float(rng.uniform(300, 900)))
    if rng.random() < 0.1:
        b.special_care(people[0], 600.0)
    if len(people) > 1 and people[1].relation == "配偶" and rng.random() < 0.3:
        b.marriage(people[0], "marriage", b.old_date())  # long before the change window
    if rng.random() < 0.05:
        b.public_payroll(people[0], status="left")
    if rng.random() < 0.1:  # an old change of the household registration: no signal
        b.hukou(people[0], "move_in", b.old_date())
    return added


def _death_truth(size: int) -> tuple[str, list[str]]:
    """A member (never the earner, where others remain) died: the household of one is stopped;
    otherwise one member fewer means one standard less (well over the adjust threshold)."""
    if size == 1:
        return "REMOVE", ["MEMBER_DECEASED"]
    return "ADJUST", ["MEMBER_DECEASED", "BENEFIT_CHANGED"]


def _near_truth(income: float, size: int, standard: float) -> tuple[str, list[str]]:
    """An applicant (naming no category) just beside the standard: under it (at the cent) is
    低保; just over it is still under 1.5 × the standard, so 低保边缘."""
    if round(income / size, 2) < standard:
        return "ADD", ["ELIGIBLE_DIBAO"]
    return "ADD", ["ELIGIBLE_EDGE"]


def mistyped_check(number: str) -> str:
    """The number with a wrong check character (every other character right): ID_CHECK."""
    return number[:17] + ("0" if number[17] != "0" else "1")


COMPOUNDS = ("富民小区", "幸福家园", "和平花园", "阳光苑", "河畔新村", "金地名京", "碧桂园",
             "万科城", "长青小区", "机场新村", "白塔小区", "浑南新城")
_ADDRESS_PARTS = re.compile(r"^沈阳市浑南区(?P<street>.+?街道)(?P<community>.+?社区)"
                            r"(?P<compound>.+?)(?P<building>\d+)号楼(?P<unit>\d+)单元"
                            r"(?P<room>\d+)室$")
_CHINESE = "零一二三四五六七八九"


def written_address(rng: np.random.Generator, street: str, community: str, compound: str,
                    building: int, unit: int, room: int, district: str) -> str:
    """An address as a partner's clerk writes it: the building as 3号楼2单元501室, 3栋2门501,
    3-2-501, 3#2单元501 or in Chinese numerals; with or without province, city and district
    (``district``: their full form, e.g. 辽宁省沈阳市浑南区), the street (街道) often and the
    community sometimes left out, a space here and there."""
    flat = str(rng.choice([f"{building}号楼{unit}单元{room}室", f"{building}栋{unit}门{room}",
                           f"{building}-{unit}-{room}", f"{building}#{unit}单元{room}",
                           f"{_chinese(building)}号楼{_chinese(unit)}单元"
                           f"{''.join(_chinese(int(d)) for d in str(room))}室"],
                          p=[0.35, 0.2, 0.25, 0.1, 0.1]))
    province = district[:district.index("省") + 1] if "省" in district else ""
    city = district[len(province):district.index("市") + 1] if "市" in district else ""
    without_province = district[len(province):]
    prefix = str(rng.choice([district, without_province, without_province[len(city):], ""]))
    street = street if rng.random() < 0.6 else ""
    community = community if rng.random() < 0.8 else ""
    gap = " " if rng.random() < 0.2 else ""
    return f"{prefix}{street}{community}{gap}{compound}{gap}{flat}"


def _chinese(number: int) -> str:
    """1–99 in Chinese numerals (12 → 十二, 20 → 二十)."""
    tens, ones = divmod(number, 10)
    if not tens:
        return _CHINESE[ones]
    return f"{'' if tens == 1 else _CHINESE[tens]}十{_CHINESE[ones] if ones else ''}"


def _flat(rng: np.random.Generator) -> tuple[int, int, int]:
    floor = int(rng.integers(1, 19))
    return int(rng.integers(1, 30)), int(rng.integers(1, 7)), floor * 100 + int(rng.integers(1, 5))


def _mobile(rng: np.random.Generator) -> str:
    return f"1{int(rng.integers(3, 10))}{int(rng.integers(0, 10**9)):09d}"


def _outsiders(b: _Builder, count: int) -> None:
    """Residents who are not in the caseload: their records must match no household."""
    for _ in range(count):
        p = b.person("户主", (20, 70))
        roll = b.rng.random()
        if roll < 0.5:
            b.wage(p, float(b.rng.uniform(2000, 9000)))
        elif roll < 0.7:
            b.vehicle(p, "car")
        elif roll < 0.85:
            b.home(p)
        else:
            b.deposit(p, float(b.rng.uniform(1000, 90000)))
        roll = b.extra.random()
        if roll < 0.15:
            b.tax(p, "interest", 300.0)
        elif roll < 0.3:
            b.medical(p, 200.0)


def _junk(b: _Builder, count: int) -> None:
    """Rows a partner gets wrong (bad check character, negative amount, missing field): they never
    reach a household. A row whose only fault is the ID number (the wage rows) is accepted as
    identity unresolved; its name and birth date are an outsider's, so it matches nobody. The
    others are quarantined with a reason."""
    for i in range(count):
        p = b.person("户主", (20, 70))
        bad_id = mistyped_check(p.id_number)
        kind = FEED_KINDS[i % 3]
        if kind == "wages":
            b.record("wages", Person(bad_id, p.name, p.birth, "户主"), period="2026-01",
                     employer_name="某公司", employer_credit_code="", wage_amount="3000",
                     si_contribution="")
        elif kind == "pensions":
            b.record("pensions", p, period=b.months[0].strftime("%Y-%m"),
                     benefit_type="enterprise_pension", amount="-120")
        else:
            b.record("real_estate", p, certificate_no="", property_use="home", area_m2="60",
                     registered_on="2019-13-45", share="1")
        _junk_of_other_partners(b, p, i)


def _junk_of_other_partners(b: _Builder, p: Person, i: int) -> None:
    """One quarantined row of another partner per junk row: a grade the register does not have,
    a payment type the contract does not list, a negative fee, a month that does not exist."""
    kind = ("disability", "subsidies", "education", "tax")[i % 4]
    if kind == "disability":
        b.record("disability", p, certificate_no="21011219000000",
                 disability_type="disability_limb", disability_grade="5",
                 issued_on="2020-05-01", status="valid")
    elif kind == "subsidies":
        b.record("subsidies", p, period=b.months[0].strftime("%Y-%m"), payment_type="lottery",
                 payer="某单位", amount="100")
    elif kind == "education":
        b.record("education", p, period=b.months[0].strftime("%Y-%m"), school_name="某学校",
                 school_type="public", stage="primary", tuition="-300")
    else:
        b.record("tax", p, period="2026-13", income_category="rent", taxable_income="900",
                 tax_paid="")


def _ensure_always(drawn: str, n: int, households: int, truth: list[dict]) -> str:
    """``drawn``, unless the households left are needed for an ALWAYS scenario not yet given."""
    if households < ALWAYS_FROM:
        return drawn
    missing = [s for s in ALWAYS if s not in {t["scenario"] for t in truth}]
    return missing[0] if missing and households - n <= len(missing) else drawn


def generate(households: int = 300, seed: int = 2026, as_of: dt.date | None = None) -> District:
    """Build a district of ``households`` households; same seed, same district, byte for byte."""
    as_of = as_of or dt.date(2026, 11, 1)
    b = _Builder(seed, as_of)
    names, weights = zip(*((k, v[3]) for k, v in SCENARIOS.items()), strict=True)
    probs = np.array(weights, dtype=float) / sum(weights)
    streets = list(STREETS)
    for n in range(households):
        scenario = str(b.rng.choice(names, p=probs))
        scenario = _ensure_always(scenario, n, households, b.district.truth)
        status = SCENARIOS[scenario][0]
        street = streets[n % len(streets)]
        community = f"{street}{1 + int(b.rng.integers(0, len(STREETS[street][1]))):03d}"
        code = f"HN{as_of:%Y}{n + 1:06d}"
        people = b.family()
        b.contacts(people, street, community)
        head_only = b.contact_rng.random() < 0.5  # the address on the head's row only
        urban_rural = "rural" if street in ("210112005", "210112006") else "urban"
        standard = float(_policy(as_of).require("dibao.standard", urban_rural))
        income = _apply_scenario(b, scenario, people, standard)
        scenario, flag, reasons, income = _other_partners(b, scenario, people, income)
        benefit = current_benefit(scenario, status, standard, len(people), income)
        if scenario == "death":
            flag, reasons = _death_truth(len(people))
        elif scenario == "near_boundary":
            flag, reasons = _near_truth(income, len(people), standard)
        for i, p in enumerate(people):
            b.district.households.append({
                "household_code": code, "area_code": AREA_CODE, "street_code": street,
                "community_code": community, "status": status,
                "category": "dibao" if status == "recipient" else "none",
                "urban_rural": urban_rural, "current_benefit": f"{benefit:.2f}",
                "id_number": p.id_number, "name": p.name, "relation": p.relation,
                "exclusion": p.exclusion, "disability_grade": str(p.disability_grade),
                "disability_type": p.disability_type,
                "authorisation_ref": f"SQ-{AREA_CODE}-{as_of:%Y}-{n + 1:06d}-{i + 1}",
                "authorisation_signed_on": (as_of - dt.timedelta(days=200)).isoformat(),
                "address": p.address if i == 0 or not head_only else "", "phone": p.phone,
            })
        b.district.truth.append({"household_code": code, "scenario": scenario, "status": status,
                                 "street_code": street, "expected_flag": flag,
                                 "expected_reasons": ";".join(reasons)})
    _outsiders(b, max(10, households // 3))
    _junk(b, max(6, households // 50))
    for kind in FEED_KINDS:  # partners do not deliver in our order
        rows = b.district.feeds[kind]
        rng = b.rng if kind in FIRST_FEEDS else b.extra
        b.district.feeds[kind] = [rows[i] for i in rng.permutation(len(rows))]
    return b.district


def write_district(district: District, out: Path) -> dict:
    """Write roster.csv, feeds/<kind>.csv, truth.csv and district.json under ``out``."""
    (out / "feeds").mkdir(parents=True, exist_ok=True)
    _write_csv(out / "roster.csv", field_names("batch"), district.households)
    for kind, rows in district.feeds.items():
        _write_csv(out / "feeds" / f"{kind}.csv", field_names(kind), rows)
    _write_csv(out / "truth.csv", list(district.truth[0]), district.truth)
    period = _month_back(district.as_of.replace(day=1), 1)
    meta = {
        "seed": district.seed, "as_of": district.as_of.isoformat(),
        "period": period.strftime("%Y-%m"), "area_code": AREA_CODE,
        "households": len(district.truth), "members": len(district.households),
        "feed_rows": {k: len(v) for k, v in district.feeds.items()},
        "streets": {code: {"name": name, "communities": comms}
                    for code, (name, comms) in STREETS.items()},
    }
    (out / "district.json").write_text(json.dumps(meta, ensure_ascii=False, indent=2), "utf-8")
    return meta


@cache
def _has_identity_fields(kind: str) -> bool:
    """Whether the contract of ``kind`` has the optional identity fields (gender, birth_date,
    address, phone)."""
    return any("x-identity" in f for f in contract_for(kind).fields)


def _write_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="raise")
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c, "") for c in columns})
