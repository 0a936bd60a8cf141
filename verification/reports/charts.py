"""Charts for the HTML summaries, drawn with matplotlib and returned as inline SVG.

SVG keeps the charts sharp on paper and in a PDF. Text stays text (small files, searchable, and
several times faster to write than glyph paths): the viewer draws it with the first font of
``CJK_FONTS`` it has, or its own Chinese default. The layout (text widths) is done here with
Noto Sans CJK from the pinned ``manimgx-fonts-cjk`` package, registered with matplotlib when this
module is imported: no system font is needed and no "Glyph … missing" warning is printed.
"""

from __future__ import annotations

import dataclasses
import io
import logging
from importlib.resources import files

import matplotlib

matplotlib.use("Agg")  # no display: reports are written by workers and the CLI

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib import font_manager  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from verification import codes  # noqa: E402

CJK_FONTS = ["Noto Sans CJK SC", "Source Han Sans SC", "WenQuanYi Zen Hei", "Microsoft YaHei",
             "SimHei", "DejaVu Sans"]
# Colour per flag kind: the ones that need action stand out, KEEP recedes.
KIND_COLOURS = {"REMOVE": "#c0392b", "REVIEW": "#e67e22", "ADD": "#27ae60", "REJECT": "#8e6c8a",
                "GRADUAL_EXIT": "#16a085", "ADJUST": "#2e86c1", "KEEP": "#b3b6b7"}
KIND_ORDER = list(KIND_COLOURS)
HALF, WIDE = 5.4, 11.0  # inches: half and full width of the page, so text keeps its size
AGE_BUCKETS = [(0, 15, "0–15天"), (16, 30, "16–30天"), (31, 60, "31–60天"),
               (61, 90, "61–90天"), (91, 10**6, "90天以上")]
_STYLE = {"font.family": "sans-serif", "font.sans-serif": CJK_FONTS, "font.size": 9,
          "axes.spines.top": False, "axes.spines.right": False, "svg.fonttype": "none",
          "axes.unicode_minus": False}
logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)


def register_cjk_font() -> str:
    """Make Noto Sans CJK (shipped by the pinned ``manimgx-fonts-cjk``) known to matplotlib;
    returns the file. Idempotent.

    It is a variable font whose default instance says weight 100 in its tables; it is entered
    as the regular weight, so matplotlib takes it for normal text instead of falling back. It
    goes first in the list: where the machine has its own Noto Sans CJK (Debian's
    fonts-noto-cjk), matplotlib's tie goes to the first entry, so the layout is the same
    everywhere."""
    path = str(files("manimgx_fonts_cjk") / "NotoSansCJK-VF.otf.ttc")
    manager = font_manager.fontManager
    if not manager.ttflist or manager.ttflist[0].fname != path:
        if not any(entry.fname == path for entry in manager.ttflist):
            manager.addfont(path)
        shipped = [dataclasses.replace(entry, weight=400) for entry in manager.ttflist
                   if entry.fname == path]
        manager.ttflist = shipped + [e for e in manager.ttflist if e.fname != path]
        if hasattr(manager, "_findfont_cached"):  # lookups made before now are stale
            manager._findfont_cached.cache_clear()
    return path


CJK_FONT_FILE = register_cjk_font()


def _label(kind: str) -> str:
    return codes.label("flags", kind)


# Axes positions found by constrained layout, per chart shape (see ``_figure``); bounded, since a
# worker lives on from run to run.
_LAYOUTS: dict[tuple, list] = {}
_LAYOUTS_KEPT = 256


def _svg(fig: Figure) -> str:
    """The figure as an inline ``<svg>`` element (no XML prolog), then closed."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg")  # layout is constrained: no second "tight" pass
    shape = getattr(fig, "hedui_shape", None)
    if shape is not None and shape not in _LAYOUTS:
        if len(_LAYOUTS) >= _LAYOUTS_KEPT:
            _LAYOUTS.clear()
        _LAYOUTS[shape] = [ax.get_position() for ax in fig.axes]
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def _figure(width: float, height: float, shape: tuple | None = None) -> tuple[Figure, plt.Axes]:
    """A figure with one axes. ``shape``: everything the layout depends on (the text around
    the plot: categories, legend entries, digits of the largest value). The first figure of a
    shape is laid out by constrained layout (about half of a chart's cost); later ones of the
    same shape take its axes position and skip that pass."""
    known = _LAYOUTS.get((width, height, shape)) if shape is not None else None
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(width, height), dpi=100,
                               layout=None if known else "constrained")
    if known:
        ax.set_position(known[0])
    elif shape is not None:
        fig.hedui_shape = (width, height, shape)
    return fig, ax


def _digits(value: float) -> int:
    """How wide the largest tick label is: part of a chart's shape."""
    return len(str(int(value)))


def flags_by_kind(kinds: pd.Series) -> str:
    """Horizontal bars: how many flags of each kind (kinds in the fixed order)."""
    counts = kinds.value_counts().reindex(KIND_ORDER, fill_value=0)
    with plt.rc_context(_STYLE):
        fig, ax = _figure(HALF, 2.8, ("kind", _digits(counts.max())))
        bars = ax.barh([_label(k) for k in counts.index][::-1], counts.to_numpy()[::-1],
                       color=[KIND_COLOURS[k] for k in counts.index][::-1])
        ax.bar_label(bars, padding=3, fontsize=8)
        ax.set_title("核对结论分布 / flags by kind", loc="left", fontsize=10)
        ax.set_xlabel("户数 / households")
        ax.margins(x=0.12)
        return _svg(fig)


def flags_by_area(table: pd.DataFrame, area: str, title: str) -> str:
    """Stacked bars: flags of each kind per street (or community) named in column ``area``."""
    pivot = pd.crosstab(table[area], table["kind"]).reindex(columns=KIND_ORDER, fill_value=0)
    pivot = pivot.iloc[::-1]
    with plt.rc_context(_STYLE):
        shape = ("area", tuple(pivot.index), tuple(pivot.columns[pivot.any()]),
                 _digits(pivot.sum(axis=1).max() if len(pivot) else 0))
        fig, ax = _figure(WIDE, 0.32 * len(pivot) + 1.2, shape)
        left = pd.Series(0, index=pivot.index)
        for kind in KIND_ORDER:
            if pivot[kind].any():
                ax.barh(pivot.index, pivot[kind], left=left, color=KIND_COLOURS[kind],
                        label=_label(kind))
                left = left + pivot[kind]
        ax.set_title(title, loc="left", fontsize=10)
        ax.set_xlabel("户数 / households")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        return _svg(fig)


def trend(history: pd.DataFrame) -> str:
    """Lines per flag kind that needs action, one point per run (``run_label``, ``kind``, ``n``)."""
    pivot = history.pivot_table(index="run_label", columns="kind", values="n", aggfunc="sum",
                                fill_value=0, sort=False)
    drawn = [k for k in KIND_ORDER if k in pivot.columns and k != "KEEP"]
    top = pivot[drawn].to_numpy().max() if drawn and len(pivot) else 0
    with plt.rc_context(_STYLE):
        fig, ax = _figure(WIDE, 2.6, ("trend", tuple(pivot.index), tuple(drawn), _digits(top)))
        for kind in drawn:
            ax.plot(pivot.index, pivot[kind], marker="o", color=KIND_COLOURS[kind],
                    label=_label(kind))
        ax.set_title("各次核对趋势 / trend across runs", loc="left", fontsize=10)
        ax.set_ylabel("户数 / households")
        ax.set_ylim(bottom=0)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.margins(x=0.04)
        if drawn:
            ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        ax.tick_params(axis="x", labelsize=8)
        return _svg(fig)


def ageing(days_open: pd.Series, overdue: pd.Series) -> str:
    """Unresolved flags by how long they have been open, split into overdue and not yet due."""
    labels = [label for _, _, label in AGE_BUCKETS]
    bucket = pd.cut(days_open, bins=[-1] + [high for _, high, _ in AGE_BUCKETS], labels=labels)
    late = bucket[overdue.to_numpy()].value_counts().reindex(labels, fill_value=0)
    on_time = bucket[~overdue.to_numpy()].value_counts().reindex(labels, fill_value=0)
    with plt.rc_context(_STYLE):
        fig, ax = _figure(HALF, 2.8, ("ageing", _digits((on_time + late).max() * 1.2)))
        ax.bar(labels, on_time, color="#5d6d7e", label="未逾期 / not yet due")
        bars = ax.bar(labels, late, bottom=on_time, color="#c0392b", label="已逾期 / overdue")
        ax.bar_label(bars, labels=[str(int(n)) if n else "" for n in on_time + late],
                     padding=2, fontsize=8)
        ax.set_title("待办结论账龄 / ageing of open flags", loc="left", fontsize=10)
        ax.set_ylabel("户数 / households")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        # below the plot: above it, the legend ran into the title and the bar labels
        ax.legend(fontsize=8, frameon=False, ncols=2, loc="upper center",
                  bbox_to_anchor=(0.5, -0.16))
        ax.margins(y=0.2)
        return _svg(fig)


def income_against_standards(incomes: dict[str, pd.Series],
                             lines: dict[str, dict[str, float | None]], title: str) -> str:
    """Per-capita monthly income of households, one histogram per area (``incomes``: label →
    incomes), with the old standard dashed and the new one solid (``lines``: label → {"base",
    "new"}). Incomes above 2.5 × the new standard are counted in the last bar."""
    with plt.rc_context(_STYLE):
        fig, axes = plt.subplots(1, max(len(incomes), 1), figsize=(WIDE, 2.8), dpi=100,
                                 layout="constrained", squeeze=False)
        for ax, (label, values) in zip(axes[0], incomes.items(), strict=False):
            line = lines.get(label, {})
            top = 2.5 * max(v for v in (line.get("new"), line.get("base"), 1.0) if v)
            ax.hist(values.clip(upper=top).dropna(), bins=40, range=(0, top), color="#5d6d7e")
            if line.get("base"):
                ax.axvline(line["base"], color="#7f8c8d", linestyle="--",
                           label=f"原标准 / old {line['base']:g}")
            if line.get("new"):
                ax.axvline(line["new"], color="#c0392b", label=f"新标准 / new {line['new']:g}")
            ax.set_title(label, loc="left", fontsize=9)
            ax.set_xlabel("人均月收入（元）/ per-capita income (yuan/month)")
            ax.set_ylabel("户数 / households")
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
            ax.legend(fontsize=8, frameon=False)
        fig.suptitle(title, x=0.01, ha="left", fontsize=10)
        return _svg(fig)


def group_rates(table: pd.DataFrame, title: str) -> str:
    """Horizontal bars: a flag kind's rate per group (``group``, ``rate``, ``highlighted``), the
    highlighted groups in red."""
    table = table.iloc[::-1]
    with plt.rc_context(_STYLE):
        fig, ax = _figure(HALF, 0.28 * len(table) + 1.0)
        colours = ["#c0392b" if h else "#5d6d7e" for h in table["highlighted"]]
        bars = ax.barh(table["group"], table["rate"] * 100, color=colours)
        ax.bar_label(bars, labels=[f"{r:.1%}" for r in table["rate"]], padding=3, fontsize=8)
        ax.set_title(title, loc="left", fontsize=10)
        ax.set_xlabel("比例（%）/ rate (%)")
        ax.margins(x=0.15)
        return _svg(fig)
