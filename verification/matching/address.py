"""Chinese addresses and phone numbers: parsed, normalised and keyed for the fallback matcher.

A raw address or phone number exists only in memory, inside the step that keys it (intake for a
partner row whose ID is unusable; ``people_for_matching`` for the roster). What leaves that step
is *keyed parts*: HMAC-SHA256 under the token key of each normalised part, 16 hex characters, so
equal parts give equal keys and nothing can be read back without the key.

Address parsing (``parse_addresses``), each distinct address once — folding column-wise in Arrow,
the parts by one regular expression:

* folded: NFKC (full-width digits and letters), spaces and punctuation dropped, dashes unified,
  ``#``/号楼/幢/座 → 栋, 门 after a number → 单元, Chinese numerals before a building, unit or
  room marker → digits (三号楼二单元五零一室 → 3栋2单元501室);
* province, city and district prefixes stripped (辽宁省沈阳市浑南区, 沈阳市, 浑南区,
  辽宁沈阳浑南区);
* then, in the order Chinese addresses are written, each part optional: 街道/镇/乡, 社区/村
  (居委会, 村委会 folded), road and number (青年大街 123号), compound (…小区, …花园, …苑),
  and building/unit/room in the formats clerks type: 3号楼2单元501室, 3栋2门501, 3-2-501,
  3-501 (building and room); text just before a building written with its marker is the
  compound even without a compound marker (金地名京3号楼, 金地名京3-2-501).

Keyed columns (``ADDRESS_KEY_COLUMNS``), each a space-separated list, because an address names
its place in more than one way (a community, a compound, a road number) and two addresses of the
same flat may share only one of them:

* ``address_places`` — one key per place named: community, compound, road + number;
* ``address_buildings`` — place + building, for each place;
* ``address_rooms`` — place + building + unit + room, for each place.

Two addresses are the same room when their room lists share a key, the same building when their
building lists do, the same community (or compound, or road number) when their place lists do.
An address naming no place has no keys (no evidence either way). The street (街道) is parsed but
not keyed: a street holds tens of thousands of households, weaker evidence than a surname.

Phones (``phone_keys``): digits only, +86/0086 dropped; a mobile (11 digits from 1) is kept whole,
a landline keeps its area code when given. ``phone_key`` keys the whole number, ``phone_tail``
its last 8 digits (a landline written with and without its area code, an old 7-digit number
with its extra digit agree there). Fewer than 7 digits: no phone.

Honest limits: a city written without 市 and without a district (沈阳五三街道) keeps its name in
front of the street, which then differs — only the street, which is not compared; a community
written without its marker (幸福 for 幸福社区) is not recognised; parts written in another order
than above are lost (no keys from them, never wrong keys).
"""

from __future__ import annotations

import hashlib
import hmac
import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from verification.intake.tokens import TokenKey

ADDRESS_KEY_COLUMNS = ("address_places", "address_buildings", "address_rooms")
PHONE_KEY_COLUMNS = ("phone_key", "phone_tail")
CONTACT_KEY_COLUMNS = (*ADDRESS_KEY_COLUMNS, *PHONE_KEY_COLUMNS)
# Stored keys are only comparable when made by the same rules: keep this beside stored keys.
ADDRESS_KEY_VERSION = "addr-v1"

PARTS = ("street", "community", "road", "road_number", "compound", "building", "unit", "room")

_CN_DIGITS = "零〇一二两三四五六七八九十百"
_CN_VALUE = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6,
             "七": 7, "八": 8, "九": 9}
# Chinese numerals directly before a building, unit, room or floor marker (三号楼, 二单元,
# 五零一室), or a room's after a unit (二单元五零一)
_CN_MARKERS = "号楼|号|栋|幢|座|单元|门|室|层|楼|户"
_CN_BEFORE_MARKER = re.compile(
    f"[{_CN_DIGITS}]+(?={_CN_MARKERS})|(?:(?<=单元)|(?<=门))[{_CN_DIGITS}]+")

# Folding, in order (Arrow's RE2 rewrites, \1 = the first group).
_FOLDS = (
    (r"[\s,，。、;；:：()（）\[\]【】<>《》\"'“”‘’]", ""),
    (r"[—–－~～_―]", "-"),
    (r"([0-9])#楼?", r"\1栋"),
    (r"([0-9])(?:号楼|幢|座|号院楼)", r"\1栋"),
    (r"([0-9])门", r"\1单元"),
    (r"社区居民委员会|社区居委会", "社区"),
    (r"村民委员会|村委会", "村"),
)
# Characters an administrative name never holds (so a prefix cannot swallow a street,
# community, road or compound that follows it).
_NOT_ADMIN = "0-9省市区县旗街路道镇乡村社号楼栋单元室小园苑巷-"
_PROVINCES = ("北京|天津|上海|重庆|河北|山西|辽宁|吉林|黑龙江|江苏|浙江|安徽|福建|江西|山东|河南"
              "|湖北|湖南|广东|海南|四川|贵州|云南|陕西|甘肃|青海|台湾|内蒙古|广西|西藏|宁夏|新疆"
              "|香港|澳门")
_ADDRESS = re.compile(
    "^"
    f"(?:[^{_NOT_ADMIN}]{{2,7}}(?:省|自治区)|(?:{_PROVINCES}))?"
    f"(?:[^{_NOT_ADMIN}]{{0,7}}(?:市|地区|自治州|盟))?"
    f"(?:[^{_NOT_ADMIN}]{{1,7}}(?:区|县|旗))?"
    "(?P<street>[^0-9社村路号楼栋单元室小区街道镇乡-]{1,8}(?:街道|镇|乡))?"
    "(?P<community>[^0-9社村路号楼栋单元室小区街镇乡-]{1,8}(?:社区|村))?"
    "(?:(?P<road>[^0-9社村号楼栋单元室小区-]{1,10}?(?:大街|大道|大路|街|路|道|巷|胡同))"
    "(?:(?P<road_number>[0-9]+(?:-[0-9]+)?)号(?:院)?)?)?"
    "(?P<compound>[^0-9号楼栋单元室-][^号楼栋单元室-]{0,11}(?:小区|花园|家园|公寓|新村|山庄|苑|园|庭|府|城|湾|大厦"
    "|广场|里))?"
    "(?P<rest>.*)$"
)
_UNIT = re.compile(
    "^(?P<pre>[^0-9]*?)(?:"
    "(?P<b1>[0-9]+)栋(?:(?P<u1>[0-9]+)单元)?(?:[0-9]+(?:层|楼))?(?:(?P<r1>[0-9]+)(?:室|号|户)?)?"
    "|(?P<b2>[0-9]+)-(?P<u2>[0-9]+)-(?P<r2>[0-9]+)"
    "|(?P<b3>[0-9]+)-(?P<r3>[0-9]+)"
    ")"
)


def _cn_number(text: str) -> str:
    """三 → 3, 十二 → 12, 二十一 → 21, 一百零五 → 105, 五零一 → 501 (digit by digit)."""
    if "十" not in text and "百" not in text:
        return "".join(str(_CN_VALUE[c]) for c in text)
    total, current = 0, 0
    for char in text:
        if char == "百":
            total += (current or 1) * 100
            current = 0
        elif char == "十":
            total += (current or 1) * 10
            current = 0
        else:
            current = _CN_VALUE[char]
    return str(total + current)


def _fold(values: pd.Series) -> pd.Series:
    """NFKC, punctuation, marker and numeral folding (see the module docstring), column-wise."""
    data = pa.array(values.astype(object).where(values.notna(), None).to_numpy(dtype=object),
                    pa.string(), from_pandas=True)
    data = pc.utf8_normalize(data, "NFKC")
    numerals = pc.fill_null(pc.match_substring_regex(
        data, f"[{_CN_DIGITS}]+(?:{_CN_MARKERS})|(?:单元|门)[{_CN_DIGITS}]"), False).to_numpy(
        zero_copy_only=False)
    if numerals.any():  # few rows: Python on them only
        text = data.to_numpy(zero_copy_only=False).astype(object)
        text[numerals] = [_CN_BEFORE_MARKER.sub(lambda m: _cn_number(m.group()), t)
                          for t in text[numerals]]
        data = pa.array(text, pa.string(), from_pandas=True)
    for pattern, replacement in _FOLDS:
        data = pc.replace_substring_regex(data, pattern, replacement)
    return pd.Series(data.to_numpy(zero_copy_only=False), index=values.index, dtype=object)


def parse_addresses(values: pd.Series) -> pd.DataFrame:
    """The parts of each address (``PARTS``; None where absent), one row per value. Each
    distinct address is parsed once."""
    codes, distinct = pd.factorize(values, use_na_sentinel=True)
    folded = _fold(pd.Series(np.asarray(distinct, dtype=object)))
    parts = _parse_folded(folded)
    at = np.where(codes < 0, len(distinct), codes)
    blank = pd.DataFrame({p: [None] for p in PARTS})
    return pd.concat([parts, blank], ignore_index=True).iloc[at].set_axis(values.index)


def _extract(texts: np.ndarray, pattern: re.Pattern[str]) -> dict[str, np.ndarray]:
    """Named groups of ``pattern`` per text (None where a group is empty or the text does not
    match). Python's ``re``, not Arrow's RE2: with this many optional groups RE2's submatch
    extraction is several times slower (measured: 0.87 against 0.11 CPU-s for 50,000)."""
    empty = (None,) * pattern.groups
    found = np.array([m.groups() if (m := pattern.match(t)) else empty for t in texts],
                     dtype=object).reshape(len(texts), pattern.groups)
    found[found == ""] = None
    return {name: found[:, index - 1] for name, index in pattern.groupindex.items()}


def _parse_folded(folded: pd.Series) -> pd.DataFrame:
    head = _extract(folded.fillna("").to_numpy(dtype=object), _ADDRESS)
    tail = _extract(np.where(head["rest"] == None, "", head["rest"]), _UNIT)  # noqa: E711
    out = pd.DataFrame(index=folded.index)
    for part in ("street", "community", "road", "road_number", "compound"):
        out[part] = head[part]
    # a compound named without a marker (金地名京): the text just before the building
    building = (tail["b1"] != None) | (tail["b2"] != None) | (tail["b3"] != None)  # noqa: E711
    bare = (head["compound"] == None) & (tail["pre"] != None) & building  # noqa: E711
    out.loc[bare, "compound"] = tail["pre"][bare]
    for part, short in (("building", "b"), ("unit", "u"), ("room", "r")):
        found = pd.Series(tail[f"{short}1"], index=folded.index, dtype=object)
        for alt in ("2", "3"):
            if f"{short}{alt}" in tail:
                found = found.fillna(pd.Series(tail[f"{short}{alt}"], index=folded.index))
        # leading zeros are typing, not meaning (03栋 = 3栋)
        stripped = found.str.lstrip("0")
        out[part] = stripped.where(stripped != "", found)
    out = out.astype(object).where(out.notna(), None)
    out.loc[folded.fillna("").eq("").to_numpy(), :] = None
    return out


def _hexkeys(secret: bytes, kind: str, texts: np.ndarray) -> np.ndarray:
    """16-hex-character HMAC-SHA256 keys of ``version:kind:text`` (one keyed state copied per
    value: faster than ``hmac.digest``, which derives the key pads again each time)."""
    keyed = hmac.new(secret, f"{ADDRESS_KEY_VERSION}:{kind}:".encode(), hashlib.sha256)
    out = np.empty(len(texts), dtype=object)
    for i, text in enumerate(texts):
        mac = keyed.copy()
        mac.update(text.encode("utf-8"))
        out[i] = mac.hexdigest()[:16]
    return out


def _secret(key: TokenKey | bytes) -> bytes:
    return key.secret if isinstance(key, TokenKey) else key


def address_keys(values: pd.Series, key: TokenKey | bytes) -> pd.DataFrame:
    """Keyed address parts (``ADDRESS_KEY_COLUMNS``) of a column of raw addresses; <NA> where
    an address names no place. Each distinct address is parsed and keyed once."""
    codes, distinct = pd.factorize(values, use_na_sentinel=True)
    parts = parse_addresses(pd.Series(np.asarray(distinct, dtype=object))).astype("string")
    secret = _secret(key)
    building = parts["building"]
    room = parts["building"] + "|" + parts["unit"].fillna("") + "|" + parts["room"]
    keyed: dict[str, list[pd.Series]] = {c: [] for c in ADDRESS_KEY_COLUMNS}
    for place in ("c:" + parts["community"], "p:" + parts["compound"],
                  "r:" + parts["road"] + parts["road_number"]):
        for column, text in (("address_places", place),
                             ("address_buildings", place + "|" + building),
                             ("address_rooms", place + "|" + room)):
            kind = column.removeprefix("address_")
            out = pd.Series(pd.NA, index=parts.index, dtype="string")
            given = text.notna().to_numpy()
            out[given] = _hexkeys(secret, kind, text[given].to_numpy(dtype=object))
            keyed[column].append(out)
    at = np.where(codes < 0, len(parts), codes)
    result = {}
    for column, lists in keyed.items():
        joined = lists[0].fillna("")
        for more in lists[1:]:
            joined = joined + " " + more.fillna("")
        joined = joined.str.strip().str.replace(r" +", " ", regex=True)
        joined = joined.where(joined != "", pd.NA)
        values_at = np.array([*joined.astype(object).where(joined.notna(), None), None],
                             dtype=object)[at]
        result[column] = pd.Series(values_at, index=values.index, dtype="string")
    return pd.DataFrame(result, index=values.index)


def normalise_phones(values: pd.Series) -> pd.Series:
    """Digits of each phone number (+86 / 0086 dropped, a mobile's leading 0 dropped); <NA>
    when fewer than 7 digits remain."""
    text = values.astype("string").str.normalize("NFKC")
    digits = text.str.replace(r"[^0-9+]", "", regex=True).str.replace(
        r"^(?:\+86|0086|\+)", "", regex=True).str.replace(r"\+", "", regex=True)
    mobile_86 = digits.str.fullmatch(r"861[3-9][0-9]{9}", na=False)
    digits = digits.where(~mobile_86, digits.str.slice(2))
    mobile_0 = digits.str.fullmatch(r"01[3-9][0-9]{9}", na=False)
    digits = digits.where(~mobile_0, digits.str.slice(1))
    return digits.where(digits.str.len() >= 7)


def phone_keys(values: pd.Series, key: TokenKey | bytes) -> pd.DataFrame:
    """``phone_key`` (the whole number) and ``phone_tail`` (its last 8 digits), keyed; <NA>
    where there is no usable number. Each distinct number is keyed once."""
    digits = normalise_phones(values)
    codes, distinct = pd.factorize(digits, use_na_sentinel=True)
    distinct = np.asarray(distinct, dtype=object)
    secret = _secret(key)
    whole = np.array([*_hexkeys(secret, "phone", distinct), None], dtype=object)
    tail = np.array([*_hexkeys(secret, "phone8", np.array([d[-8:] for d in distinct],
                                                            dtype=object)), None], dtype=object)
    at = np.where(codes < 0, len(distinct), codes)
    return pd.DataFrame({"phone_key": pd.Series(whole[at], index=values.index, dtype="string"),
                         "phone_tail": pd.Series(tail[at], index=values.index, dtype="string")})


def contact_keys(address: pd.Series | None, phone: pd.Series | None,
                 key: TokenKey | bytes, index: pd.Index) -> pd.DataFrame:
    """Address and phone keys of the rows of ``index`` (either source may be absent: all
    <NA>)."""
    frames = []
    for values, keyer, columns in ((address, address_keys, ADDRESS_KEY_COLUMNS),
                                   (phone, phone_keys, PHONE_KEY_COLUMNS)):
        if values is None:
            frames.append(pd.DataFrame({c: pd.Series(pd.NA, index=index, dtype="string")
                                        for c in columns}))
        else:
            frames.append(keyer(values, key))
    return pd.concat(frames, axis=1)
