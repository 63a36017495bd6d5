"""After the measurements: profile what missed its target, and explain httpx's pool.

Which workload explains which target:

- §1 ``%load_ext llmnb`` — ``-X importtime``: the modules the extension adds (always
  shown at size ``full``; it is cheap and it is the lightness claim's evidence);
- §2 per call — py-spy of llmnb's worker doing sequential calls;
- §3 concurrency — py-spy of llmnb's worker at 64 in flight; and, always, py-spy of raw
  ``httpx.AsyncClient`` at 64 (where httpcore's pool spends the time);
- §4 streaming — py-spy of llmnb reading long streams, when it misses its target;
- §6 tracker — py-spy of the tracker benchmark's child.

The tables go into the section they explain.
"""

from __future__ import annotations

from bench._context import Context
from bench._profile import Profile, import_profile, pyspy_command, pyspy_worker
from bench._report import Section
from bench._server import STREAM_PROMPT

__all__ = ["profile_missed"]

LLMNB_FOCUS = r"\(llmnb/"
POOL_FOCUS = (
    r"_assign_requests_to_connections|has_expired|is_idle|is_socket_readable|"
    r"current_async_library|AsyncConnectionPool\.handle_async_request|AsyncClient\.send|"
    r"_find_and_load"
)


def _missed(section: Section) -> bool:
    return any(t.ok is False for t in section.targets)


def _attach(section: Section, profile: Profile, focus: str, why: str) -> None:
    if profile.error:
        section.notes.append(f"profile ({why}) not available: {profile.error}")
        return
    section.tables.extend(profile.tables(focus))
    section.notes.append(f"profiled ({why}) with py-spy: {profile.total:,} samples.")


def profile_missed(ctx: Context, sections: list[Section]) -> None:
    by_num = {s.title.split(".", 1)[0]: s for s in sections}
    size = ctx.size
    c = size.concurrency

    if "1" in by_num:
        found = import_profile(ctx, "llmnb")
        if found is not None:
            by_num["1"].tables.append(found)

    if "2" in by_num and _missed(by_num["2"]):
        p = pyspy_worker(
            ctx,
            "llmnb",
            [{"op": "calls", "n": 50, "warm": True}, {"op": "calls", "n": size.profile_calls}],
            "llmnb sequential calls",
        )
        _attach(by_num["2"], p, LLMNB_FOCUS, "a per-call target was missed")
        by_num["2"].data["profile"] = p

    if "3" in by_num:
        section = by_num["3"]
        if _missed(section):
            p = pyspy_worker(
                ctx,
                "llmnb",
                [
                    {"op": "conc", "n": 2 * c, "c": c, "warm": True},
                    {"op": "conc", "n": size.profile_conc, "c": c},
                ],
                f"llmnb acomplete at {c} in flight",
            )
            _attach(section, p, LLMNB_FOCUS, "the concurrency target was missed")
            section.data["profile"] = p
        pool = pyspy_worker(
            ctx,
            "httpx",
            [
                {"op": "conc", "n": 2 * c, "c": c, "warm": True},
                {"op": "conc", "n": size.profile_conc, "c": c},
            ],
            f"raw httpx.AsyncClient at {c} in flight",
        )
        _attach(section, pool, POOL_FOCUS, "where raw httpx's time goes")
        section.data["pool_profile"] = pool
        if not pool.error and pool.total:
            section.notes.append(
                f"in raw `httpx.AsyncClient` at {c} in flight, "
                f"{pool.share(r'_assign_requests_to_connections'):.0%} of CPU samples are in "
                "httpcore's `AsyncConnectionPool._assign_requests_to_connections` (it rescans "
                "every connection, polls each idle socket in `has_expired()`, and counts idle "
                "connections in a nested loop — quadratic in the pool size) and "
                f"{pool.share(r'AsyncClient.send'):.0%} inside `AsyncClient.send` overall."
            )

    stream = by_num.get("4")
    if stream is not None and _missed(stream):
        p = pyspy_worker(
            ctx,
            "llmnb",
            [
                {"op": "stream", "prompt": STREAM_PROMPT, "warm": True},
                *({"op": "stream", "prompt": STREAM_PROMPT} for _ in range(3)),
            ],
            "llmnb stream",
        )
        assert stream is not None
        _attach(stream, p, LLMNB_FOCUS, "the streaming target was missed")

    if "6" in by_num and _missed(by_num["6"]):
        folder = ctx.workspace.path / "tracker-profile"
        folder.mkdir(exist_ok=True)
        p = pyspy_command(
            ctx,
            # A third of the rows: the same code paths in a third of the time.
            [
                "-m",
                "bench.bench_tracker",
                str(size.tracker_rows // 3),
                str(size.sqlite_rows // 3),
                str(folder),
            ],
            "tracker benchmark",
            within=r"^(_record_loop|UsageTracker\.to_dataframe|SQLiteStore\.\w+) ",
        )
        _attach(
            by_num["6"],
            p,
            LLMNB_FOCUS + r"|_record_loop|to_dataframe",
            "a tracker target was missed",
        )
