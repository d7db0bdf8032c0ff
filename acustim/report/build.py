"""Building a ``Report``: reads one session, its frames and events, and this patient's other
sessions from the records store, loads the device profile, and puts together what
``analysis``, ``stricta`` and ``svg`` make of them, with the caveats a reader must see first.

The one module of the report that reads the store, and it only reads: it never writes to the
store, never talks to a device, lays nothing out and never imports Qt.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from acustim.records import RecordStore, acustim_version
from acustim.report import analysis
from acustim.report.model import DEVICE_REPORT_KINDS, Report
from acustim.report.stricta import stricta_items
from acustim.report.svg import session_plots
from device_profiles.profile import DeviceProfile, ProfileError, load_profile

__all__ = ["build_report"]


def build_report(
    store: RecordStore,
    session_id: int,
    *,
    profile_loader: Callable[[str], DeviceProfile] = load_profile,
) -> Report:
    """The report of one session, from what the store holds (RecordsError if it cannot)."""
    info = store.session(session_id)
    frames = store.frames(session_id)
    events = store.events(session_id)
    history = store.sessions(patient=info.patient) if info.patient else [info]
    caveats: list[str] = []
    profile: DeviceProfile | None
    try:
        profile = profile_loader(info.profile)
    except ProfileError as exc:
        profile = None
        caveats.append(f"the device profile {info.profile!r} could not be loaded ({exc})")
    calibration = analysis.calibration(info, profile)
    biphasic = (
        profile.limits.biphasic if profile is not None else analysis.meta_bool(info, "biphasic")
    )
    pw_delivered = profile.pulse_width_controlled if profile is not None else True
    frame_s = (
        profile.limits.frame_period_s if profile is not None else analysis.frame_period(frames)
    )
    meta_channels = analysis.meta_channels(info)
    names = analysis.channel_names(frames, meta_channels)
    used = [n for n in names if n in meta_channels or analysis.has_output(frames, n)]
    channels = tuple(
        analysis.channel_report(
            name,
            frames,
            frame_s,
            calibration,
            biphasic,
            pw_delivered,
            meta_channels.get(name, {}),
            analysis.electrode_area(info, meta_channels.get(name, {})),
        )
        for name in used
    )
    if not pw_delivered:
        caveats.append(
            f"{profile.name if profile else info.profile} chooses its own pulse width: the pulse"
            " widths shown are what the program asked for, not what was delivered, so rms"
            " current and charge per phase are not known"
        )
    if calibration.calibrated and biphasic is None:
        caveats.append("whether the output is biphasic is not known: rms current not computed")
    if info.outcome is None:
        caveats.append("the session has no recorded end (see 'Outcome')")
    on_s = analysis.output_time(frames, frame_s)
    clock_s = frames[-1].t_s + frame_s if frames else None
    return Report(
        session=info,
        store_path=store.path,
        generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        acustim_version=acustim_version(),
        profile_name=profile.name if profile is not None else info.profile,
        biphasic=biphasic,
        calibration=calibration,
        frame_count=len(frames),
        zero_frames=sum(1 for f in frames if f.zero),
        first_frame_s=frames[0].t_s if frames else None,
        last_frame_s=frames[-1].t_s if frames else None,
        session_clock_s=clock_s,
        max_lateness_ms=max((f.lateness_ms for f in frames), default=0.0),
        output_s=on_s,
        channels=channels,
        unused_channels=tuple(n for n in names if n not in used),
        stricta=stricta_items(
            info,
            history,
            channels,
            on_s,
            clock_s,
            entered=store.session_stricta(session_id),
            course=None if info.course_id is None else store.course(info.course_id),
            defaults=store.stricta_defaults(at=info.started_at),
        ),
        events=tuple(events),
        device_reports=tuple(e for e in events if e.kind in DEVICE_REPORT_KINDS),
        plots=session_plots(frames, frame_s, used, calibration, events),
        caveats=tuple(caveats),
    )
