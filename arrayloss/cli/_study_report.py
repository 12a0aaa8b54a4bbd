"""What `arrayloss study` reports, computed from its runs as ``runs.csv`` holds them.

- `read_runs`, `write_runs`: the runs as CSV text (`CSV_FIELDS`) and back;
- `paired`, `verdict`: each loss against cross-entropy, paired by seed: the mean
  difference with its 95 % t interval, wins, ties and losses, and the verdict that
  the rule `verdict` derives from them (never typed by hand);
- `plateau_rule`, `cut_runs`, `plateau_check`: the rule that ends a run, the
  runs cut at the epoch cap before it held, and the sentence that says so;
- `summary`: the Markdown tables of ``summary.md``; `glance` and `claims`: the
  generated parts of ``docs/study/README.md`` (``scripts/study_glance.py``); in
  all of them user text (data set and loss names) is escaped by `md` and the
  command set by `code`, so that Markdown shows it as written;
- `plot_accuracy`, `plot_differences`, `plot_curves`: the three figures.

The study itself renders its tables from the CSV text it writes, so a committed
``runs.csv`` regenerates the committed tables exactly.
"""

from __future__ import annotations

import csv
import functools
import io
import math
import re
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BASELINE",
    "CSV_FIELDS",
    "CURVE_FIELDS",
    "Paired",
    "claims",
    "cut_runs",
    "describe",
    "figures",
    "glance",
    "paired",
    "plateau_check",
    "plateau_rule",
    "plot_accuracy",
    "plot_curves",
    "plot_differences",
    "read_curves",
    "read_runs",
    "stamp",
    "summary",
    "summary_page",
    "verdict",
    "write_curves",
    "write_runs",
]

BASELINE = "cross_entropy"

CSV_FIELDS = (
    "data",
    "loss",
    "loss_params",
    "noise",
    "noise_kind",
    "phase",
    "seed",
    "lr",
    "epochs",
    "test_accuracy_final",
    "test_accuracy_es",
    "top_k_accuracy_final",
    "top_k_accuracy_es",
    "test_nll_final",
    "test_ece_final",
    "train_accuracy_final",
    "val_accuracy_final",
    "val_accuracy_best",
    "best_epoch",
    "final_loss",
    "seconds",
    "error",
)
_TEXT = {"data", "loss", "loss_params", "noise_kind", "phase", "error"}
_INT = {"seed", "epochs", "best_epoch"}

CURVE_FIELDS = (
    "data",
    "loss",
    "noise",
    "epoch",
    "runs",
    "val_accuracy",
    "test_accuracy",
)

# The two ways a run's model is kept: after the last epoch, or at the epoch of the
# best accuracy on the noisy validation part (early stopping).
SELECTIONS = {"final": "final epoch", "es": "early-stopped"}

# Verdict words, and the one-character form of the glance table.
BETTER, WORSE, UNCLEAR, SAME, FEW = (
    "better",
    "worse",
    "no clear difference",
    "identical",
    "too few seeds",
)
SYMBOL = {BETTER: "+", WORSE: "−", UNCLEAR: "·", SAME: "=", FEW: "?"}


# What Markdown (and MyST's dollar math) would read as markup in user text: a
# backslash before punctuation, code, emphasis, links, HTML, entities,
# strikethrough, math, an underscore not inside a word, and a line's first
# character that starts a list or a heading.
_MARKUP = re.compile(
    r"\\(?=[!-/:-@\[-`{-~])|[`*\[\]<>&~$]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])|^[-+#]"
)


def md(text: object) -> str:
    """User text (a data set's or a loss's name) as Markdown that shows it as
    written: a file named ``a*b*.npz`` was set in italics, a backtick opened
    code.  A ``|`` is left to `_row`, in a table cell alone it splits."""
    return _MARKUP.sub(lambda m: "\\" + m.group(0), str(text))


def code(text: str) -> str:
    """``text`` as a Markdown code span: a fence of one backtick more than its
    longest run of them (a command with a backtick closed a one-backtick span)."""
    runs = [len(r) for r in re.findall("`+", text)]
    fence = "`" * (max(runs, default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _row(cells: Iterable[str]) -> str:
    """One row of a Markdown table; a ``|`` in a cell (a data file named
    ``a|b.npz``, a loss's string parameter) escaped, which split the row."""
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def _fmt(v: Any) -> Any:
    return f"{v:.6g}" if isinstance(v, float) else v


def write_runs(rows: Iterable[Mapping[str, Any]]) -> str:
    """The runs as CSV text, floats to 6 significant digits."""
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({key: _fmt(r.get(key, "")) for key in CSV_FIELDS})
    return buf.getvalue()


def read_runs(text: str) -> list[dict[str, Any]]:
    """Rows of a ``runs.csv``: numbers as floats (ints for seeds and epochs), an empty
    number (a diverged run) as NaN."""
    rows = []
    for raw in csv.DictReader(io.StringIO(text, newline="")):
        row: dict[str, Any] = {}
        for key in CSV_FIELDS:
            value = raw.get(key, "")
            if key in _TEXT:
                row[key] = value
            elif value in ("", "nan"):
                row[key] = math.nan if key not in _INT else -1
            else:
                row[key] = int(value) if key in _INT else float(value)
        rows.append(row)
    return rows


def write_curves(rows: Iterable[Mapping[str, Any]]) -> str:
    """Mean accuracy per epoch as CSV text (`CURVE_FIELDS`)."""
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=CURVE_FIELDS, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({key: _fmt(r[key]) for key in CURVE_FIELDS})
    return buf.getvalue()


def read_curves(text: str) -> list[dict[str, Any]]:
    """Rows of a ``curves.csv``."""
    out = []
    for raw in csv.DictReader(io.StringIO(text, newline="")):
        out.append(
            {
                "data": raw["data"],
                "loss": raw["loss"],
                "noise": float(raw["noise"]),
                "epoch": int(raw["epoch"]),
                "runs": int(raw["runs"]),
                "val_accuracy": float(raw["val_accuracy"]),
                "test_accuracy": float(raw["test_accuracy"]),
            }
        )
    return out


# -- statistics -----------------------------------------------------------------------


@dataclass(frozen=True)
class Paired:
    """A loss minus cross-entropy over the seeds where both runs finished.

    ``mean`` is the mean difference, ``low`` and ``high`` its 95 % t interval
    (``mean ± t(0.975, n - 1) · sd / √n``), ``wins``, ``ties`` and ``losses`` the
    seeds where the loss is above, equal to and below cross-entropy.
    """

    n: int
    mean: float
    low: float
    high: float
    wins: int
    ties: int
    losses: int

    @property
    def verdict(self) -> str:
        """`verdict` of these numbers."""
        return verdict(self)


def verdict(p: Paired) -> str:
    """The verdict rule of docs/study/README.md, applied to ``p``.

    - ``"identical"``: every seed gives the same number as cross-entropy;
    - ``"too few seeds"``: fewer than 2 pairs (no interval);
    - ``"better"``: the 95 % interval lies above 0 (its lower end > 0);
    - ``"worse"``: it lies below 0 (its upper end < 0);
    - ``"no clear difference"``: otherwise (the interval contains 0).
    """
    if p.n and p.ties == p.n:
        return SAME
    if p.n < 2:
        return FEW
    if p.low > 0:
        return BETTER
    if p.high < 0:
        return WORSE
    return UNCLEAR


@functools.cache
def _t975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom."""
    from scipy.special import stdtrit  # far lighter to import than scipy.stats

    return float(stdtrit(df, 0.975))


def paired(values: Mapping[int, float], baseline: Mapping[int, float]) -> Paired:
    """`Paired` statistics of ``values`` against ``baseline``, both by seed (NaN: a
    diverged run, left out with its pair)."""
    seeds = sorted(
        s
        for s in values.keys() & baseline.keys()
        if not (math.isnan(values[s]) or math.isnan(baseline[s]))
    )
    d = [values[s] - baseline[s] for s in seeds]
    n = len(d)
    if n == 0:
        return Paired(0, math.nan, math.nan, math.nan, 0, 0, 0)
    mean = statistics.fmean(d)
    if n == 1:
        low = high = math.nan
    else:
        half = _t975(n - 1) * statistics.stdev(d) / math.sqrt(n)
        low, high = mean - half, mean + half
    wins = sum(x > 0 for x in d)
    ties = sum(x == 0 for x in d)
    return Paired(n, mean, low, high, wins, ties, n - wins - ties)


def _interval(values: Sequence[float]) -> tuple[float, float, float]:
    """Mean and its 95 % t interval (the interval is the mean for one value)."""
    if not values:
        return math.nan, math.nan, math.nan
    m = statistics.fmean(values)
    if len(values) == 1:
        return m, m, m
    half = _t975(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return m, m - half, m + half


class Runs:
    """The reported runs (phase ``report``) of one study, indexed for the tables."""

    def __init__(self, rows: Sequence[Mapping[str, Any]]) -> None:
        self.rows = [r for r in rows if r["phase"] == "report"]
        self.tune = [r for r in rows if r["phase"] == "tune"]
        self.data = list(dict.fromkeys(r["data"] for r in self.rows))
        self.losses = list(dict.fromkeys(r["loss"] for r in self.rows))
        self.noises = sorted({float(r["noise"]) for r in self.rows})
        self.seeds = sorted({int(r["seed"]) for r in self.rows})
        self._by: dict[tuple[str, str, float], list[Mapping[str, Any]]] = defaultdict(
            list
        )
        for r in self.rows:
            self._by[(r["data"], r["loss"], float(r["noise"]))].append(r)

    def cell(self, data: str, loss: str, noise: float) -> list[Mapping[str, Any]]:
        return self._by.get((data, loss, noise), [])

    def by_seed(self, data: str, loss: str, noise: float, key: str) -> dict[int, float]:
        return {
            int(r["seed"]): math.nan if r["error"] else float(r[key])
            for r in self.cell(data, loss, noise)
        }

    def paired(self, data: str, loss: str, noise: float, key: str) -> Paired:
        return paired(
            self.by_seed(data, loss, noise, key),
            self.by_seed(data, BASELINE, noise, key),
        )

    @property
    def has_baseline(self) -> bool:
        return BASELINE in self.losses

    @property
    def no_comparison(self) -> str | None:
        """Why no loss can be paired with cross-entropy (``None`` when one can)."""
        if not self.has_baseline:
            return "No cross_entropy among the losses"
        if self.losses == [BASELINE]:  # its paired tables had a header and no row
            return "Only cross_entropy among the losses, nothing to compare it with"
        return None


# -- the plateau rule -----------------------------------------------------------------


def plateau_rule(meta: Mapping[str, Any]) -> str:
    """The rule that ends every run of a study, in words (``study.json``'s
    ``epochs``, ``patience`` and ``max_epochs``)."""
    p, low = int(meta["patience"]), int(meta["epochs"])
    return (
        f"every run trains at least {low} epoch{'s' * (low != 1)} and stops after "
        f"the first epoch e at which its noisy-validation accuracy has not improved "
        f"for {p} epoch{'s' * (p != 1)}, i.e. e − b ≥ {p} with b the first epoch of "
        "its highest "
        f"noisy-validation accuracy so far (a plateau); it is cut at "
        f"{meta['max_epochs']} epochs if that never happens"
    )


def cut_runs(
    rows: Iterable[Mapping[str, Any]], meta: Mapping[str, Any]
) -> list[Mapping[str, Any]]:
    """The finished runs (tuning ones too) that ended before the plateau rule held:
    fewer than ``patience`` epochs past their best epoch, or fewer than the minimum
    ``epochs``. Empty for a study whose every run reached its plateau."""
    p, low = int(meta["patience"]), int(meta["epochs"])
    return [
        r
        for r in rows
        if not r["error"]
        and (int(r["epochs"]) - int(r["best_epoch"]) < p or int(r["epochs"]) < low)
    ]


def plateau_check(rows: Sequence[Mapping[str, Any]], meta: Mapping[str, Any]) -> str:
    """One sentence: whether every finished run reached the plateau rule, and the
    spread of the epochs of the best noisy-validation accuracy and of the runs."""
    done = [r for r in rows if not r["error"]]
    if not done:
        return "No run finished."
    best = [int(r["best_epoch"]) for r in done]
    ran = [int(r["epochs"]) for r in done]
    spread = (
        f"best noisy-validation epochs {min(best)}–{max(best)} (median "
        f"{statistics.median(best):g}), runs of {min(ran)}–{max(ran)} epochs "
        f"(median {statistics.median(ran):g})"
    )
    cut = cut_runs(done, meta)
    if not cut:
        return (
            f"All {len(done)} finished runs (tuning included) reached the plateau "
            f"rule: {spread}."
        )
    where = "; ".join(
        f"{md(r['data'])} {md(r['loss'])} noise {float(r['noise']):g} {r['phase']} seed "
        f"{r['seed']} lr {float(r['lr']):g} (best epoch {r['best_epoch']} of "
        f"{r['epochs']})"
        for r in cut[:10]
    )
    more = f" and {len(cut) - 10} more" if len(cut) > 10 else ""
    return (
        f"**{len(cut)} of {len(done)} finished runs were cut at "
        f"{meta['max_epochs']} epochs before the plateau rule held** (their "
        f"numbers may still be rising): {where}{more}. Otherwise: {spread}."
    )


# -- Markdown -------------------------------------------------------------------------


def _rates(values: Iterable[float]) -> str:
    return ", ".join(f"{v:g}" for v in values)


def describe(meta: Mapping[str, Any]) -> str:
    """The setup of a study in one paragraph, from its ``study.json``."""
    sets = "; ".join(
        f"{md(name)} ({d['samples']} samples, {d['classes']} classes, {d['features']} "
        f"features; {d['train']}/{d['val']}/{d['test']} train/validation/test)"
        for name, d in meta["data_sets"].items()
    )
    hidden = "-".join(str(h) for h in meta["hidden"]) or "no hidden layer"
    grid = meta["lr_grid"]
    lr = (
        f"learning rate {grid[0]:g}"
        if len(grid) == 1
        else f"learning rate chosen from {_rates(grid)} per data set, loss and noise "
        f"rate on the noisy validation part of one run with seed {meta['tune_seed']}"
    )
    wd = f", weight decay {meta['weight_decay']:g}" if meta["weight_decay"] else ""
    return (
        f"Data: {sets}. Model: MLP with hidden layers {hidden} (ReLU), "
        f"{meta['optimizer']}, {lr}, batch {meta['batch_size']}{wd}, float32; "
        f"{plateau_rule(meta)}. Noise: {meta['noise_kind']}, at rates "
        f"{_rates(meta['noises'])} on the training and validation labels; test labels "
        f"clean. {meta['seeds']} seeds per (data set, loss, noise rate) at the chosen "
        f"rate. {meta['runs']} runs (tuning included) in {meta['wall_seconds']:g} s "
        f"wall and {meta['cpu_seconds']:g} s CPU time with {meta['jobs']} "
        f"job{'s' * (meta['jobs'] > 1)}."
    )


def stamp(meta: Mapping[str, Any]) -> str:
    """Which code made the runs."""
    return f"Generated by arrayloss {meta['arrayloss']} at commit `{meta['commit']}`."


def _mean_sd(values: Sequence[float]) -> str:
    if not values:
        return "diverged"
    m = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{m:.3f} ± {sd:.3f}"


def _signed(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:+.3f}".replace("-", "−")


def _pair_cell(p: Paired) -> str:
    if p.n == 0:
        return "n/a"
    ci = "" if math.isnan(p.low) else f" [{_signed(p.low)}, {_signed(p.high)}]"
    return f"{_signed(p.mean)}{ci}"


def _value_table(runs: Runs, data: str, key: str, noises: Sequence[float]) -> list[str]:
    lines = [
        _row(["loss", *(f"noise {n:g}" for n in noises)]),
        "|---|" + "---|" * len(noises),
    ]
    for loss in runs.losses:
        cells = []
        for n in noises:
            sel = runs.cell(data, loss, n)
            ok = [float(r[key]) for r in sel if not r["error"]]
            text = _mean_sd(ok)
            if ok and len(ok) < len(sel):
                text += f" ({len(ok)}/{len(sel)})"
            cells.append(text)
        lines.append(_row([md(loss), *cells]))
    return lines


def _paired_table(runs: Runs, data: str, metric: str) -> list[str]:
    head = ["loss", "noise"]
    for sel in SELECTIONS.values():
        head += [f"{sel}: difference [95 % CI]", "wins/ties/losses", "verdict"]
    lines = [_row(head), "|---" * len(head) + "|"]
    for loss in runs.losses:
        if loss == BASELINE:
            continue
        for n in runs.noises:
            cells = [md(loss), f"{n:g}"]
            for sel in SELECTIONS:
                p = runs.paired(data, loss, n, f"{metric}_{sel}")
                cells += [
                    _pair_cell(p),
                    f"{p.wins}/{p.ties}/{p.losses}",
                    f"**{p.verdict}**" if p.verdict in (BETTER, WORSE) else p.verdict,
                ]
            lines.append(_row(cells))
    return lines


def _span(values: Sequence[int]) -> str:
    low, high = min(values), max(values)
    return f"{low}" if low == high else f"{low}–{high}"


def _lr_table(runs: Runs, data: str, meta: Mapping[str, Any]) -> list[str]:
    lines = [
        _row(["loss", *(f"noise {n:g}" for n in runs.noises)]),
        "|---|" + "---|" * len(runs.noises),
    ]
    for loss in runs.losses:
        cells = []
        for n in runs.noises:
            sel = [r for r in runs.cell(data, loss, n) if not r["error"]]
            if not sel:
                cells.append("diverged")
                continue
            best = [int(r["best_epoch"]) for r in sel]
            ran = [int(r["epochs"]) for r in sel]
            cut = len(cut_runs(sel, meta))
            mark = f" **{cut} cut**" if cut else ""
            cells.append(
                f"{float(sel[0]['lr']):g}; {statistics.median(best):g} "
                f"({_span(best)}); {_span(ran)}{mark}"
            )
        lines.append(_row([md(loss), *cells]))
    return lines


def summary(rows: Sequence[Mapping[str, Any]], meta: Mapping[str, Any]) -> str:
    """The tables of ``summary.md`` (without its heading)."""
    runs = Runs(rows)
    top_k = meta.get("top_k", 5)
    out: list[str] = []
    for data in runs.data:
        info = meta.get("data_sets", {}).get(data, {})
        about = info.get("about", "")
        classes = info.get("classes")
        # the k measured: top_k_accuracy takes at most the class count
        k = min(top_k, classes) if isinstance(classes, int) else top_k
        out += [f"## {md(data)}", ""]
        if about:
            out += [about, ""]
        for key, title in (
            ("test_accuracy_final", "Test accuracy at the final epoch"),
            (
                "test_accuracy_es",
                "Test accuracy early-stopped (at the epoch of the best noisy-"
                "validation accuracy)",
            ),
            ("top_k_accuracy_final", f"Test top-{k} accuracy at the final epoch"),
            ("top_k_accuracy_es", f"Test top-{k} accuracy early-stopped"),
        ):
            out += [
                f"**{title}** (mean ± sd over {len(runs.seeds)} seeds)",
                "",
                *_value_table(runs, data, key, runs.noises),
                "",
            ]
        if runs.no_comparison is None:
            for metric, what in (
                ("test_accuracy", "test accuracy"),
                ("top_k_accuracy", f"test top-{k} accuracy"),
            ):
                out += [
                    f"**Paired difference to cross-entropy, {what}** (loss minus "
                    "cross-entropy, same seed; 95 % t interval; verdict by the rule "
                    "of README.md)",
                    "",
                    *_paired_table(runs, data, metric),
                    "",
                ]
        out += [
            "**Learning rate chosen on the noisy validation part; epoch of the best "
            "noisy-validation accuracy, median (range) over the seeds; epochs "
            f"trained** (the plateau rule: {plateau_rule(meta)}; 'cut': runs that "
            "ended at the cap before it held)",
            "",
            *_lr_table(runs, data, meta),
            "",
        ]
    if runs.no_comparison is not None:
        out += [f"({runs.no_comparison}: no paired comparison.)", ""]
    return "\n".join(out)


def summary_page(
    rows: Sequence[Mapping[str, Any]], meta: Mapping[str, Any], *, plots: bool = True
) -> str:
    """The whole ``summary.md``: heading, setup, stamp, command, figures, tables."""
    lines = ["# Loss study", "", describe(meta), "", plateau_check(rows, meta), "",
             stamp(meta), ""]  # fmt: skip
    if meta.get("command"):
        lines += [f"Command: {code(meta['command'])}", ""]
    if plots:
        lines += [
            "![Test accuracy against label noise](accuracy_vs_noise.png)",
            "",
            "![Paired differences to cross-entropy](paired_differences.png)",
            "",
            "![Test accuracy by epoch](curves.png)",
            "",
        ]
    return "\n".join(lines) + "\n" + summary(rows, meta)


def glance(rows: Sequence[Mapping[str, Any]], metric: str = "test_accuracy") -> str:
    """Verdicts against cross-entropy for every data set and noise rate, as one
    table: ``final / early-stopped`` in symbols (`SYMBOL`)."""
    runs = Runs(rows)
    if runs.no_comparison is not None:
        return f"({runs.no_comparison}: no paired comparison.)"
    cols = [(d, n) for d in runs.data for n in runs.noises]
    lines = [
        _row(["loss", *(f"{md(d)} {n:g}" for d, n in cols)]),
        "|---" * (len(cols) + 1) + "|",
    ]
    for loss in runs.losses:
        if loss == BASELINE:
            continue
        cells = []
        for d, n in cols:
            marks = [
                SYMBOL[runs.paired(d, loss, n, f"{metric}_{sel}").verdict]
                for sel in SELECTIONS
            ]
            cells.append(" / ".join(marks))
        lines.append(_row([md(loss), *cells]))
    return "\n".join(lines)


def accuracy_table(rows: Sequence[Mapping[str, Any]], sel: str = "es") -> str:
    """Mean test accuracy per loss, data set and noise rate, the best of a column
    in bold."""
    runs = Runs(rows)
    cols = [(d, n) for d in runs.data for n in runs.noises]
    means: dict[tuple[str, str, float], float] = {}
    for loss in runs.losses:
        for d, n in cols:
            ok = [
                float(r[f"test_accuracy_{sel}"])
                for r in runs.cell(d, loss, n)
                if not r["error"]
            ]
            means[(loss, d, n)] = statistics.fmean(ok) if ok else math.nan
    best = {
        c: max((m for loss in runs.losses if not math.isnan(m := means[(loss, *c)])),
               default=math.nan)
        for c in cols
    }  # fmt: skip
    lines = [
        _row(["loss", *(f"{md(d)} {n:g}" for d, n in cols)]),
        "|---" * (len(cols) + 1) + "|",
    ]
    for loss in runs.losses:
        cells = []
        for c in cols:
            m = means[(loss, *c)]
            text = "diverged" if math.isnan(m) else f"{m:.3f}"
            cells.append(f"**{text}**" if f"{m:.3f}" == f"{best[c]:.3f}" else text)
        lines.append(_row([md(loss), *cells]))
    return "\n".join(lines)


@dataclass(frozen=True)
class Claim:
    """A paper's claim as a test on the verdicts.

    ``losses`` are compared with cross-entropy on ``metric`` at the noise rates
    ``noise`` picks (``"noisy"``: every rate above 0; ``"clean"``: 0; ``"all"``). ``want`` is
    ``"better"`` (supported where every such verdict is better) or ``"not worse"``
    (not contradicted where none is worse).
    """

    source: str
    text: str
    losses: tuple[str, ...]
    noise: str
    want: str
    metric: str = "test_accuracy"


def _status(verdicts: Sequence[str], want: str) -> str:
    """The rule of README.md for a claim over its verdicts."""
    if not verdicts:
        return "not tested"
    if want == "better":
        good = sum(v == BETTER for v in verdicts)
        bad = sum(v == WORSE for v in verdicts)
        if good == len(verdicts):
            return "supported"
        if bad:
            return "contradicted" if not good else "mixed"
        return "partly supported" if good else "not supported"
    bad = sum(v == WORSE for v in verdicts)
    if not bad:  # "no clear difference" shows no harm; it does not prove parity
        return "not contradicted"
    return "contradicted" if bad == len(verdicts) else "partly contradicted"


def claims(
    rows: Sequence[Mapping[str, Any]], claim_list: Sequence[Claim], k: int = 5
) -> str:
    """One paragraph per claim: its status per data set and selection, by rule, and
    the verdicts it rests on."""
    runs = Runs(rows)
    if runs.no_comparison is not None:
        return f"({runs.no_comparison}: no claim can be checked.)"
    out: list[str] = []
    for c in claim_list:
        losses = [loss for loss in c.losses if loss in runs.losses]
        noises = [
            n
            for n in runs.noises
            if {"noisy": n > 0, "clean": n == 0, "all": True}[c.noise]
        ]
        what = (
            "top-" + str(k) + " accuracy"
            if c.metric == "top_k_accuracy"
            else "accuracy"
        )
        out += [f"**{c.source}: {c.text}** (test {what}, {c.want} than cross-entropy "
                f"at noise {', '.join(f'{n:g}' for n in noises) or 'none'})", ""]  # fmt: skip
        if not losses or not noises:
            out += ["- not tested: the study has no such run.", ""]
            continue
        for data in runs.data:
            parts = []
            for sel, sel_name in SELECTIONS.items():
                verdicts = []
                detail = []
                for loss in losses:
                    for n in noises:
                        p = runs.paired(data, loss, n, f"{c.metric}_{sel}")
                        verdicts.append(p.verdict)
                        detail.append(f"{md(loss)} {n:g}: {_pair_cell(p)}, {p.verdict}")
                parts.append(
                    f"{sel_name} **{_status(verdicts, c.want)}** ("
                    + "; ".join(detail)
                    + ")"
                )
            out.append(f"- {md(data)}: " + "; ".join(parts) + ".")
        out.append("")
    return "\n".join(out).rstrip("\n")


# -- figures ----------------------------------------------------------------------------

_MARKERS = "osD^vP*Xh<>dp8H"
_LINES = ("-", "--", "-.", ":")


def _style(i: int, loss: str) -> dict[str, Any]:
    """One look per loss, the same in every figure: colour, line style and marker.
    Cross-entropy is thick and black; the others cycle through 10 colours, 4 line
    styles and 15 markers, so no two of up to 60 losses look alike."""
    if loss == BASELINE:
        return {"color": "black", "linestyle": "-", "marker": "o", "linewidth": 2.4}
    return {
        "color": f"C{i % 10}",
        "linestyle": _LINES[(i // 10 + i) % 4],
        "marker": _MARKERS[i % len(_MARKERS)],
        "linewidth": 1.3,
        "markerfacecolor": "none" if i % 2 else f"C{i % 10}",
    }


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def plot_accuracy(rows: Sequence[Mapping[str, Any]], title: str) -> bytes:
    """Test accuracy against noise rate, final epoch and early-stopped, one row of
    panels per data set; 95 % t intervals over the seeds, clipped to [0, 1]; the
    points of the losses spread a little sideways so that equal ones stay visible."""
    from matplotlib.figure import Figure

    runs = Runs(rows)
    fig = Figure(figsize=(12, 3.2 * len(runs.data) + 0.6), layout="constrained")
    axes = fig.subplots(len(runs.data), 2, squeeze=False, sharex=True)
    span = (max(runs.noises) - min(runs.noises)) or 1.0
    width = 0.04 * span
    for row, data in enumerate(runs.data):
        for col, sel in enumerate(SELECTIONS):
            ax = axes[row][col]
            for i, loss in enumerate(runs.losses):
                shift = width * (i / max(len(runs.losses) - 1, 1) - 0.5)
                xs, ms, lo, hi = [], [], [], []
                for n in runs.noises:
                    ok = [
                        float(r[f"test_accuracy_{sel}"])
                        for r in runs.cell(data, loss, n)
                        if not r["error"]
                    ]
                    if not ok:
                        continue
                    m, a, b = _interval(ok)
                    a, b = max(a, 0.0), min(b, 1.0)
                    xs.append(n + shift)
                    ms.append(m)
                    lo.append(m - a)
                    hi.append(b - m)
                ax.errorbar(
                    xs, ms, yerr=[lo, hi], label=loss, capsize=2, markersize=5,
                    elinewidth=0.8, zorder=3 if loss == BASELINE else 4,
                    **_style(i, loss),
                )  # fmt: skip
            ax.set_title(f"{data}: {SELECTIONS[sel]}")
            ax.set_ylabel("test accuracy")
            ax.grid(alpha=0.3)
            ax.set_xticks(runs.noises)
        axes[-1][0].set_xlabel("label noise rate (training and validation)")
        axes[-1][1].set_xlabel("label noise rate (training and validation)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", fontsize="small")
    fig.suptitle(
        f"{title}\nmean over {len(runs.seeds)} seeds; bars: 95 % t interval of the "
        "mean, clipped to [0, 1]"
    )
    return _png(fig)


def plot_differences(rows: Sequence[Mapping[str, Any]], title: str) -> bytes:
    """Paired differences to cross-entropy with their 95 % t intervals: one panel
    per data set and noise rate, one line per loss, final epoch (circle) and
    early-stopped (square)."""
    from matplotlib.figure import Figure

    runs = Runs(rows)
    others = [loss for loss in runs.losses if loss != BASELINE]
    fig = Figure(
        figsize=(
            max(3.2 * len(runs.noises) + 2.0, 9.0),
            0.28 * len(others) * len(runs.data) + 2.0,
        ),
        layout="constrained",
    )
    axes = fig.subplots(
        len(runs.data), len(runs.noises), squeeze=False, sharey=True, sharex="row"
    )
    ys = list(range(len(others)))
    for row, data in enumerate(runs.data):
        for col, n in enumerate(runs.noises):
            ax = axes[row][col]
            ax.axvline(0, color="black", linewidth=0.8)
            for sel, marker, dy, face in (
                ("final", "o", -0.18, "white"),
                ("es", "s", 0.18, "C0"),
            ):
                for y, loss in zip(ys, others, strict=True):
                    p = runs.paired(data, loss, n, f"test_accuracy_{sel}")
                    if p.n == 0:
                        continue
                    err = (
                        [[0.0], [0.0]]
                        if math.isnan(p.low)
                        else [[p.mean - p.low], [p.high - p.mean]]
                    )
                    colour = {BETTER: "C2", WORSE: "C3"}.get(p.verdict, "0.35")
                    ax.errorbar(
                        [p.mean], [y + dy], xerr=err, fmt=marker, color=colour,
                        markerfacecolor=face if face == "white" else colour,
                        capsize=2, markersize=4, elinewidth=1,
                    )  # fmt: skip
            ax.set_title(f"{data}, noise {n:g}", fontsize="medium")
            ax.grid(alpha=0.3, axis="x")
            ax.set_yticks(ys, others)  # shared: the labels show on the left only
            ax.tick_params(axis="y", labelleft=col == 0)
            if row == col == 0:
                ax.invert_yaxis()  # the first loss on top (sharey: every panel)
        axes[row][0].tick_params(axis="y", labelsize="small")
    for ax in axes[-1]:
        ax.set_xlabel("test accuracy − cross-entropy's")
    fig.suptitle(
        f"{title}: each loss minus cross-entropy, paired by seed\nbars: 95 % t "
        "interval; ○ final epoch, ■ early-stopped; green: better, red: worse "
        "(the README's rule)"
    )
    return _png(fig)


def plot_curves(
    curves: Sequence[Mapping[str, Any]], losses: Sequence[str], title: str
) -> bytes:
    """Test accuracy against epoch, mean over the seeds, one panel per data set."""
    from matplotlib.figure import Figure

    data_sets = list(dict.fromkeys(c["data"] for c in curves))
    fig = Figure(
        figsize=(5.0 * max(len(data_sets), 1) + 2.5, 4.2), layout="constrained"
    )
    axes = fig.subplots(1, max(len(data_sets), 1), squeeze=False)[0]
    for ax, data in zip(axes, data_sets, strict=False):
        for i, loss in enumerate(losses):
            pts = [c for c in curves if c["data"] == data and c["loss"] == loss]
            if not pts:
                continue
            epochs = [c["epoch"] for c in pts]
            style = _style(i, loss)
            ax.plot(
                epochs,
                [c["test_accuracy"] for c in pts],
                label=loss,
                markevery=max(len(epochs) // 6, 1),
                markersize=5,
                **style,
            )
        noise = next(c["noise"] for c in curves if c["data"] == data)
        ax.set(
            title=f"{data}, noise {noise:g}",
            xlabel="epoch",
            ylabel="test accuracy (mean over seeds)",
        )
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", fontsize="small")
    fig.suptitle(title)
    return _png(fig)


def figures(
    rows: Sequence[Mapping[str, Any]],
    curves: Sequence[Mapping[str, Any]],
    meta: Mapping[str, Any],
) -> list[tuple[str, bytes]]:
    """The three figures of a study as ``(file name, PNG)``."""
    from ._plot import text_as_given

    title = f"{meta['noise_kind']} label noise"
    with text_as_given():  # data sets named in any script, with any characters
        return [
            ("accuracy_vs_noise.png", plot_accuracy(rows, title)),
            ("paired_differences.png", plot_differences(rows, title)),
            (
                "curves.png",
                plot_curves(
                    curves,
                    meta["losses"],
                    f"test accuracy by epoch at {title} {meta['curve_noise']:g} "
                    "(a run that has stopped counts with the model it ended with)",
                ),
            ),
        ]
