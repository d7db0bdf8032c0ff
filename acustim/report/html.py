"""The report as one self-contained HTML page: the sections of ``docs/records.md`` laid out
from a ``Report``, its style and plots inline, under a Content-Security-Policy that forbids
loading anything.

Lays out only: every value taken from the record (patient code, notes, screening answers,
event messages, program and device names) goes through ``esc``; it computes nothing about the
session, reads no store, never writes a file (``files`` does) and never imports Qt (``pdf``
hands this page to Qt).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Final

from acustim.report.model import UNCALIBRATED, ChannelReport, Plot, Report
from acustim.report.text import clock, esc, local_time, meta_text, screening_view

__all__ = ["CSS", "render_html"]

#: level steps listed in words (the plot shows the rest)
_MAX_PLATEAUS: Final = 12


def _du(value: float) -> str:
    """Delivered output in device units to one decimal, rounded down: the codecs round down
    what they write, so the report never shows more than a device can have delivered."""
    return f"{math.floor(value * 10 + 1e-9) / 10:g}"


def _g(value: float | None, unit: str, digits: int = 3) -> str | None:
    """``value`` to ``digits`` significant digits with its unit, or None."""
    return None if value is None else f"{value:.{digits}g} {unit}"


#: the page's style; the PDF lays out with it too
CSS: Final = """
body { font-family: sans-serif; color: #1f2a33; max-width: 980px; margin: 24px auto;
       padding: 0 16px; font-size: 14px; }
h1 { font-size: 22px; margin-bottom: 2px; }
h2 { font-size: 17px; margin-top: 26px; border-bottom: 1px solid #d5dce1; }
h3 { font-size: 15px; margin-top: 16px; }
table { border-collapse: collapse; width: 100%; margin: 6px 0; }
th, td { border: 1px solid #d5dce1; padding: 3px 6px; text-align: left; vertical-align: top; }
th { background-color: #eef2f4; }
td.src { color: #5b6873; font-size: 12px; }
tr.na td { color: #8a96a0; }
.sub { color: #5b6873; margin-top: 0; }
.caveat { color: #7a5200; }
.uncal { color: #9f1c1c; font-weight: bold; }
.mono { font-family: monospace; }
"""


def _table(head: Sequence[str], rows: Iterable[Sequence[str]], classes: Iterable[str] = ()) -> str:
    """Cells are HTML already (escape values before)."""
    cls = list(classes)
    out = ['<table border="1" cellspacing="0" cellpadding="4" width="100%">']
    out.append("<tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>")
    for i, row in enumerate(rows):
        klass = f' class="{cls[i]}"' if i < len(cls) and cls[i] else ""
        cells = "".join(
            f'<td class="src">{c}</td>'
            if j == len(row) - 1 and head[-1] == "Source"
            else f"<td>{c}</td>"
            for j, c in enumerate(row)
        )
        out.append(f"<tr{klass}>{cells}</tr>")
    out.append("</table>")
    return "\n".join(out)


def _kv(rows: Iterable[tuple[str, str]]) -> str:
    """A two-column table: keys are escaped here, values are HTML already."""
    out = ['<table border="1" cellspacing="0" cellpadding="4" width="100%">']
    for k, v in rows:
        out.append(f'<tr><th width="28%">{esc(k)}</th><td>{v}</td></tr>')
    out.append("</table>")
    return "\n".join(out)


def _channel_rows(report: Report, ch: ChannelReport) -> list[tuple[str, str, str]]:
    cal = report.calibration
    meta = report.session.meta
    frames_src = "recorded frames"
    cal_src = (
        esc(f"recorded frames x calibrated profile ({cal.peak_ma_per_du:g} mA/du)")
        if cal.calibrated
        else '<span class="uncal">uncalibrated profile: device units only</span>'
    )
    electrode = meta_text(meta.get("electrode")) or "not recorded"
    area = f"{ch.electrode_area_cm2:g} cm²" if ch.electrode_area_cm2 else "area not recorded"
    widths = ", ".join(f"{w:g}" for w in ch.pulse_widths_us) or "-"
    if ch.pulse_width_delivered:
        width_text = f"{widths} µs per phase"
    else:
        width_text = (
            f"chosen by the device firmware (the program asked for {widths} µs; not"
            " delivered as such)"
        )
    phases = {
        True: "biphasic, charge-balanced",
        False: "not declared charge-balanced (treated as monophasic)",
        None: "not known",
    }[report.biphasic]
    freq = (
        ", ".join(f"{s.frequency_hz:g} Hz ({100 * s.share:.0f} %)" for s in ch.frequencies)
        or "no output"
    )
    steps = [
        f"{s.level_du} du {clock(s.start_s)}-{clock(s.end_s)}"
        for s in ch.level_history[:_MAX_PLATEAUS]
    ]
    if len(ch.level_history) > _MAX_PLATEAUS:
        steps.append(f"and {len(ch.level_history) - _MAX_PLATEAUS} more (see the plot)")
    history = "; ".join(steps) + " (ramps between; see the plot)" if steps else "-"
    uncal = f'<span class="uncal">{UNCALIBRATED}</span>'

    def current(value: float | None, unit: str, why_none: str) -> str:
        if not cal.calibrated:
            return uncal
        text = _g(value, unit)
        return esc(text) if text is not None else why_none

    no_shape = (
        "not known: the device chooses its pulse width"
        if not ch.pulse_width_delivered
        else "not known: biphasic or not is unknown"
    )
    net = (
        "0 (symmetric biphasic, charge-balanced)"
        if report.biphasic
        else ("equal to the charge per phase (monophasic)" if report.biphasic is False else "-")
    )
    rows = [
        ("Electrode pair (sites)", esc(" - ".join(ch.sites) or "not recorded"), "session record"),
        ("Electrodes", f"{esc(electrode)}; {area}", "session record"),
        ("Waveform and mode", esc(ch.waveform), frames_src),
        ("Frequency (share of output time)", esc(freq), frames_src),
        ("Pulse width", width_text, frames_src if ch.pulse_width_delivered else "device profile"),
        ("Pulse phases", phases, "device profile"),
        (
            "Level history",
            esc(f"max {ch.level_max_du} du; {history}"),
            frames_src,
        ),
        ("Output time", esc(clock(ch.output_s)), frames_src),
        (
            "Peak current (max)",
            current(ch.peak_current_ma, "mA", "-")
            + ("" if cal.calibrated else esc(f" (max output {_du(ch.output_max_du)} du)")),
            cal_src,
        ),
        ("rms current (max)", current(ch.rms_current_ma, "mA", no_shape), cal_src),
        (
            "rms current (mean while on)",
            current(ch.rms_current_mean_ma, "mA", no_shape),
            cal_src,
        ),
        ("Charge per phase (max)", current(ch.charge_per_phase_uc, "µC", no_shape), cal_src),
        ("Net charge per pulse", net if cal.calibrated else uncal, "device profile"),
        (
            "rms current density (max)",
            current(
                ch.current_density_ma_per_cm2,
                "mA/cm²",
                "not known: electrode area not recorded" if not ch.electrode_area_cm2 else no_shape,
            ),
            cal_src,
        ),
        (
            "Load",
            esc(f"{cal.load_ohm:g} ohm (the calibration load; the real load is the patient)")
            if cal.calibrated and cal.load_ohm
            else "not known",
            cal_src,
        ),
    ]
    return rows


def render_html(report: Report, *, plot_html: Callable[[int, Plot], str] | None = None) -> str:
    """The report as one self-contained HTML page (plots inline as SVG, unless ``plot_html``
    says how to show plot number i)."""
    s = report.session
    title = meta_text(s.meta.get("program_title")) or s.program
    out: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\';'
        " style-src 'unsafe-inline'; img-src data:\">",
        '<meta name="referrer" content="no-referrer">',
        f"<title>acustim session {s.id}: {esc(title)}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>Session {s.id}: {esc(title)}</h1>",
        '<p class="sub">'
        + esc(
            f"patient {s.patient or 'not recorded'} · {local_time(s.started_at, '%Y-%m-%d %H:%M')}"
            f" · {report.outcome_text}"
        )
        + "</p>",
    ]
    if report.caveats:
        out.append(
            "<ul>" + "".join(f'<li class="caveat">{esc(c)}</li>' for c in report.caveats) + "</ul>"
        )
    length = s.duration_s
    out.append('<h2 id="session">Session</h2>')
    out.append(
        _kv(
            [
                ("Patient code", esc(s.patient or "not recorded")),
                ("Program", esc(f"{s.program} ({title})")),
                ("Indication", esc(meta_text(s.meta.get("indication")) or "not recorded")),
                ("Program file", esc(meta_text(s.meta.get("program_source")) or "not recorded")),
                ("Device", esc(f"{s.device} ({report.profile_name}), profile {s.profile}")),
                ("Device firmware", esc(s.firmware or "not reported")),
                ("Calibration", esc(report.calibration.source)),
                ("Started", esc(local_time(s.started_at))),
                ("Ended", esc(local_time(s.ended_at) if s.ended_at else "no recorded end")),
                (
                    "Length",
                    esc(
                        "unknown"
                        if report.session_clock_s is None
                        else f"{clock(report.session_clock_s)} (session clock, to the end of"
                        " the last frame)"
                    )
                    + esc(
                        ""
                        if length is None
                        else f"; {clock(length)} from start to end by the wall clock"
                    ),
                ),
                ("Outcome", esc(report.outcome_text)),
                ("Output time", esc(clock(report.output_s))),
                ("Recorded by", esc(f"acustim {s.acustim_version}")),
            ]
        )
    )
    out.append('<h2 id="stricta">STRICTA items</h2>')
    out.append(
        '<p class="sub">STRICTA 2010 (MacPherson et al., PLoS Med 7:e1000261); greyed items'
        " do not apply to this session.</p>"
    )
    out.append(
        _table(
            ("Item", "Description", "Recorded"),
            ((esc(i.code), esc(i.item), esc(i.value)) for i in report.stricta),
            ("" if i.applies else "na" for i in report.stricta),
        )
    )
    out.append('<h2 id="screening">Screening and notes</h2>')
    out.extend(_screening(s.screening))
    out.append(
        f"<p><b>Practitioner notes:</b> {esc(s.notes)}</p>"
        if s.notes
        else "<p>No practitioner notes recorded.</p>"
    )
    out.append('<h2 id="electrical">Electrical characterisation</h2>')
    cal = report.calibration
    out.append(
        f"<p>{esc(cal.source)}.</p>"
        if cal.calibrated
        else f'<p class="uncal">{esc(cal.source)}: no currents, charges or densities can be'
        " given.</p>"
    )
    for ch in report.channels:
        out.append(f"<h3>Channel {esc(ch.name)}</h3>")
        out.append(_table(("Parameter", "Value", "Source"), _channel_rows(report, ch)))
    if report.unused_channels:
        out.append(f"<p>Channels without output: {esc(', '.join(report.unused_channels))}.</p>")
    out.append('<h2 id="plots">Plots</h2>')
    if not report.plots:
        out.append("<p>No frames were recorded.</p>")
    for i, plot in enumerate(report.plots):
        out.append(f"<h3>{esc(plot.title)}</h3>")
        out.append(plot_html(i, plot) if plot_html else f'<div class="plot">{plot.svg}</div>')
    out.append('<h2 id="device">Device reports</h2>')
    if report.device_reports:
        out.append(
            _table(
                ("Time", "Report", "Message"),
                ((esc(clock(e.t_s)), esc(e.kind), esc(e.message)) for e in report.device_reports),
            )
        )
    else:
        out.append("<p>The device reported nothing during the session.</p>")
    out.append('<h2 id="events">Events</h2>')
    out.append(
        _table(
            ("Time", "Event", "Message"),
            ((esc(clock(e.t_s)), esc(e.kind), esc(e.message)) for e in report.events),
        )
        if report.events
        else "<p>No events recorded.</p>"
    )
    out.append('<h2 id="record">Record</h2>')
    first = "-" if report.first_frame_s is None else clock(report.first_frame_s)
    last = "-" if report.last_frame_s is None else clock(report.last_frame_s)
    out.append(
        _kv(
            [
                ("Frames recorded", esc(f"{report.frame_count} ({report.zero_frames} zero)")),
                ("First and last frame", esc(f"{first} and {last}")),
                ("Lateness (max)", esc(f"{report.max_lateness_ms:.1f} ms")),
                ("Events recorded", esc(str(len(report.events)))),
                ("Records store", f'<span class="mono">{esc(report.store_path)}</span>'),
                (
                    "Report made",
                    esc(f"{local_time(report.generated_at)} by acustim {report.acustim_version}"),
                ),
            ]
        )
    )
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _screening(record: dict[str, object]) -> list[str]:
    """The screening section: each question in words with its answer and when it was
    answered (reused or not), then the parts, the acknowledgements and the current note."""
    view = screening_view(record or {})
    if not view.rows:
        return ["<p>No screening answers recorded.</p>"]
    out = [
        _table(
            ("Question", "Answer", "Answered"),
            ((esc(q), esc(a), esc(w)) for q, a, w in view.rows),
        )
    ]
    out.extend(f"<p>{esc(line)}</p>" for line in view.notes)
    return out
