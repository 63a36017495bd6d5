"""§1 Import / load: what a fresh process pays before the first call.

Every sample is a new process (``python -c "import X"``, or IPython started and
``%load_ext X`` run by ``bench._ipython_probe``), timed from spawn to exit by the
runner, with the peak RSS the child reads from /proc. Variants alternate sample by sample
after one unmeasured warm-up pass (which compiles bytecode and creates the IPython
profile folder).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from bench._context import Context
from bench._report import Section, Target
from bench._stats import Schedule, median, ratio

__all__ = ["run"]

# What every ``-c`` variant prints last: modules loaded and peak RSS. The peak is read
# from /proc inside the child: a parent's wait4() would report at least the parent's
# own size, which fork() copies into the child before exec.
_COUNT = (
    "import json, sys; "
    "hwm = [ln for ln in open('/proc/self/status') if ln.startswith('VmHWM')]; "
    "print(json.dumps({'modules': len(sys.modules), "
    "'hwm_kib': int(hwm[0].split()[1]) if hwm else None}))"
)


@dataclass(frozen=True)
class Variant:
    key: str
    label: str
    args: tuple[str, ...]
    needs: str | None  # a module that must be importable, else "not installed"
    baseline: str | None  # the variant this one is compared with (Δ column)
    peer: bool = False  # slow to import: fewer samples


VARIANTS = (
    Variant("python", "bare Python (`python -c pass`)", ("-c", _COUNT), None, None),
    Variant("llmnb", "`import llmnb`", ("-c", "import llmnb; " + _COUNT), "llmnb", "python"),
    Variant(
        "openai", "`import openai`", ("-c", "import openai; " + _COUNT), "openai", "python", True
    ),
    Variant(
        "litellm",
        "`import litellm`",
        ("-c", "import litellm; " + _COUNT),
        "litellm",
        "python",
        True,
    ),
    Variant("ipython", "bare IPython start", ("-m", "bench._ipython_probe"), "IPython", None),
    Variant(
        "ext-llmnb",
        "IPython + `%load_ext llmnb`",
        ("-m", "bench._ipython_probe", "llmnb"),
        "llmnb",
        "ipython",
    ),
    Variant(
        "ipython-raw",
        "IPython + first raw httpx2 call",
        ("-m", "bench._ipython_probe", "--raw", "{url}"),
        "httpx2",
        "ipython",
    ),
    Variant(
        "cell-bench",
        "first `%%llm` answer, loopback profile",
        ("-m", "bench._ipython_probe", "llmnb", "--cell", "bench"),
        "llmnb",
        "ipython-raw",
    ),
    Variant(
        "cell-demo",
        "first `%%llm` answer, demo profile (mock)",
        ("-m", "bench._ipython_probe", "llmnb", "--cell", "demo"),
        "llmnb",
        "ipython-raw",
    ),
    Variant(
        "ext-jai",
        "IPython + `%load_ext jupyter_ai_magics`",
        ("-m", "bench._ipython_probe", "jupyter_ai_magics"),
        "jupyter_ai_magics",
        "ipython",
        True,
    ),
)


def _installed(module: str | None) -> bool:
    if module is None:
        return True
    import importlib.util

    return importlib.util.find_spec(module) is not None


def sample(
    args: tuple[str, ...], env: dict[str, str], cwd: str, timeout: float = 120.0
) -> dict[str, Any]:
    """Run ``python *args`` once: wall seconds, and what the child printed as its last
    line (JSON: modules loaded, peak RSS, and for IPython the probe's timings)."""
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
            cwd=cwd,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"no exit within {timeout:.0f} s"}
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        return {"ok": False, "error": f"exit status {proc.returncode}"}
    lines = proc.stdout.strip().splitlines()
    try:
        parsed = json.loads(lines[-1]) if lines else None
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        return {"ok": False, "error": f"unexpected output {lines[-1:]!r}"[:100]}
    loaded = bool(parsed.get("loaded", True))
    return {**parsed, "wall": wall, "ok": loaded}


def _median_or_none(values: list[Any], scale: float = 1.0) -> float | None:
    known = [v * scale for v in values if isinstance(v, (int, float))]
    return median(known) if known else None


def run(ctx: Context) -> Section:
    size = ctx.size
    section = Section(
        "1. Import / load",
        f"A fresh process per sample, up to {size.import_samples} interleaved rounds; each "
        "round samples every light variant once and one of the slow peers in turn; "
        "wall time from spawn to exit (interpreter start included). IPython is a bare "
        "`InteractiveShell` (what a kernel builds on), with `IPYTHONDIR` in a scratch folder.",
    )
    env = ctx.workspace.env(ctx.base_url)
    cwd = str(ctx.workspace.path)
    variants = [
        Variant(v.key, v.label, tuple(a.replace("{url}", ctx.base_url) for a in v.args), *rest)
        for v in VARIANTS
        if _installed(v.needs)
        for rest in [(v.needs, v.baseline, v.peer)]
    ]
    missing = {v.key for v in VARIANTS} - {v.key for v in variants}
    failed: dict[str, str] = {}
    for v in variants:  # warm-up, unmeasured
        s = sample(v.args, env, cwd)
        if not s["ok"]:
            failed[v.key] = str(s.get("error") or "failed")
    live = [v for v in variants if v.key not in failed]
    runs: dict[str, list[dict[str, Any]]] = {v.key: [] for v in live}
    # Every round samples each light variant once and one slow peer (in turn), in an
    # order rotated per round: the peers cost seconds per sample, the light ones matter
    # most for the target, and a time budget cuts whole rounds only.
    light = [v for v in live if not v.peer]
    peers = [v for v in live if v.peer]
    schedule = Schedule([None], size.import_samples, size.budget("import"))
    for r, _ in schedule:
        chosen = light + ([peers[r % len(peers)]] if peers else [])
        for i in range(len(chosen)):
            v = chosen[(i + r) % len(chosen)]
            s = sample(v.args, env, cwd)
            if s["ok"]:
                runs[v.key].append(s)
            else:
                failed[v.key] = str(s.get("error") or "failed")
    if schedule.note:
        section.notes.append(schedule.note)
    wall = {k: median([s["wall"] * 1e3 for s in r]) for k, r in runs.items() if r}
    section.data["wall_ms"] = wall
    table = section.table(
        "Fresh process, spawn to exit (ms; lower is better)",
        [
            "variant",
            "median ms",
            "min ms",
            "Δ vs baseline ms",
            "× llmnb's",
            "peak RSS MiB",
            "modules loaded",
            "`%load_ext` alone ms",
            "first answer alone ms",
            "samples",
        ],
    )
    for v in VARIANTS:
        if v.key in missing:
            table.add(v.label, "not installed", None, None, None, None, None, None, None, 0)
            continue
        if v.key in failed or v.key not in wall:
            why = f"failed: {failed[v.key]}" if v.key in failed else "no sample (time budget)"
            table.add(v.label, why, None, None, None, None, None, None, None, 0)
            continue
        r = runs[v.key]
        ours = {"python": "llmnb", "ipython": "ext-llmnb"}.get(v.baseline or "", v.key)
        table.add(
            v.label,
            wall[v.key],
            min(s["wall"] for s in r) * 1e3,
            wall[v.key] - wall[v.baseline] if v.baseline in wall else None,
            ratio(
                wall[v.key] - wall.get(v.baseline or "", float("nan")),
                wall.get(ours, float("nan")) - wall.get(v.baseline or "", float("nan")),
            )
            if v.baseline
            else None,
            _median_or_none([s.get("hwm_kib") for s in r], 1 / 1024),
            int(median([s.get("modules", 0) for s in r])),
            median([s["load_s"] * 1e3 for s in r]) if "load_s" in r[0] and v.baseline else None,
            median([s["first_s"] * 1e3 for s in r]) if r[0].get("first_s", 0) > 1e-4 else None,
            len(r),
        )
    delta = wall.get("ext-llmnb", float("nan")) - wall.get("ipython", float("nan"))
    section.targets.append(
        Target(
            "`%load_ext llmnb` over bare IPython start",
            delta,
            20,
            "ms",
            "<=",
            "" if "ext-llmnb" not in failed else f"load failed: {failed['ext-llmnb']}",
        )
    )
    for key, what in (("cell-bench", "loopback"), ("cell-demo", "demo")):
        first = wall.get(key, float("nan")) - wall.get("ipython-raw", float("nan"))
        section.targets.append(
            Target(
                f"first `%%llm` answer in a fresh IPython ({what} profile) over IPython + "
                "first raw httpx2 call",
                first,
                60,
                "ms",
                "<=",
                f"failed: {failed[key]}" if key in failed else "",
            )
        )
    section.notes.append(
        "“Δ vs baseline” is the variant's median minus bare Python's (imports) or bare "
        "IPython's (`%load_ext`); “× llmnb's” divides that Δ by llmnb's own Δ."
    )
    return section
