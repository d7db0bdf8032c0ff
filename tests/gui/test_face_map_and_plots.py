"""The placement map and the live plots, drawn offscreen and checked by what they show."""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QColor, QImage
from pytestqt.qtbot import QtBot

from acustim.live import FIELDS, LiveBuffer
from gui import theme
from gui.face_map import FaceMap, body_path, place_sites, tooltip
from gui.plots import WINDOW_S, LivePlots, nice_ceiling
from waveforms.builtin import load_builtin

COLOURS = [theme.channel_colour(0), theme.channel_colour(1)]


def colour_pixels(image: QImage, colour: str, *, left: bool, rows: range) -> int:
    """Pixels close to ``colour`` in the left or right half of ``image``, within ``rows``."""
    target = QColor(colour)
    count = 0
    half = image.width() // 2
    xs = range(0, half) if left else range(half, image.width())
    for y in rows[::2]:
        for x in xs[::2]:
            c = image.pixelColor(x, y)
            if (
                abs(c.red() - target.red()) < 30
                and abs(c.green() - target.green()) < 30
                and abs(c.blue() - target.blue()) < 30
            ):
                count += 1
    return count


def test_left_side_sites_sit_on_the_viewers_right_and_right_side_on_the_left() -> None:
    diagram, sites = place_sites(load_builtin("tmj-jaw-pain-left"), COLOURS)
    assert diagram == "face"
    assert [s.text for s in sites] == ["ST7-L", "ST6-L"]
    assert all(s.xy is not None and s.xy[0] > 0.5 for s in sites)
    _, right = place_sites(load_builtin("tmj-jaw-pain-right"), COLOURS)
    assert all(s.xy is not None and s.xy[0] < 0.5 for s in right)


def test_leg_points_go_on_the_body_diagram() -> None:
    diagram, sites = place_sites(load_builtin("han-2-100-analgesia"), COLOURS)
    assert diagram == "body"
    assert all(s.xy is not None for s in sites)
    a = [s for s in sites if s.channel == "A"]
    assert all(s.xy is not None and s.xy[0] > 0.5 for s in a)  # channel A: the LEFT leg
    assert "Sanyinjiao" in tooltip(a[1]) and "pregnancy" in tooltip(a[1])


def test_every_catalogued_body_position_lies_on_the_body_figure() -> None:
    from PySide6.QtCore import QPointF, QRectF

    from waveforms.acupoints import load_catalogue

    body = body_path(QRectF(0, 0, 1, 1))
    for point in load_catalogue().values():
        for side in ("L", "R"):
            xy = point.position("body", side)
            if xy is not None:
                assert body.contains(QPointF(*xy)), f"{point.code}-{side} at {xy} is off the body"


def test_the_map_draws_each_channel_in_its_colour_on_its_side(qtbot: QtBot) -> None:
    face = FaceMap()
    qtbot.addWidget(face)
    face.resize(360, 440)
    face.set_program(load_builtin("tmj-jaw-pain-left"), COLOURS)
    image = face.grab().toImage()
    blue = theme.channel_colour(0)
    square = face._square()  # the diagram, without the legend under it
    rows = range(int(square.top()), int(square.bottom()))
    assert colour_pixels(image, blue, left=False, rows=rows) > 20  # on the viewer's right
    assert colour_pixels(image, blue, left=True, rows=rows) == 0
    site = face.site_at(face._dots[0][0])
    assert site is not None and site.point is not None and site.point.code == "ST7"


def test_an_uncatalogued_site_is_listed_not_guessed(qtbot: QtBot) -> None:
    from dataclasses import replace

    program = load_builtin("tmj-jaw-pain-left")
    channel = replace(program.channels[0], sites=("ST7-L", "KI27-L"))
    face = FaceMap()
    qtbot.addWidget(face)
    face.set_program(replace(program, channels=(channel,)), COLOURS)
    assert [s.text for s in face.unplaced] == ["KI27-L"]


def filled_buffer(channels: int, period_s: float, seconds: float) -> LiveBuffer:
    names = [chr(ord("A") + k) for k in range(channels)]
    buf = LiveBuffer.for_window(names, sample_period_s=period_s, window_s=WINDOW_S)
    n = int(seconds / period_s)
    block = np.zeros((len(FIELDS), channels, n))
    t = np.arange(n) * period_s
    for k in range(channels):
        block[0, k] = 10 * (k + 1) * (1 + np.sin(t))  # output_du
        block[1, k] = np.where((t // 3) % 2 == 0, 2.0, 100.0)  # 2/100 Hz
        block[2, k] = 250.0
        block[3, k] = 20 * (k + 1)
    block[0, 0, n // 2] = 99.0  # one spike the decimation must keep
    buf.push(0.0, block)
    return buf


def test_plots_draw_decimated_windows_that_keep_the_peaks(qtbot: QtBot) -> None:
    plots = LivePlots()
    qtbot.addWidget(plots)
    plots.resize(900, 600)
    plots.show()
    qtbot.waitExposed(plots)
    plots.configure(["A", "B", "C", "D"], theme.CHANNEL_COLOURS, 0.001)
    buf = filled_buffer(4, 0.001, 30.0)  # 30 000 samples per channel
    assert plots.refresh(buf)
    x, y = plots.output_curves[0].getData()
    assert len(x) == len(y) <= 2 * 2000
    assert y.max() == 99.0  # the spike survived decimation
    assert x[-1] == 0.0 and x[0] <= -29.9
    _, fy = plots.frequency_curves[2].getData()
    assert set(np.unique(fy)) == {2.0, 100.0}
    px, py = plots.pulse_curves[0].getData()
    assert px[0] >= -1.0 and py.max() > 0
    assert not plots.refresh(buf), "nothing new: nothing redrawn"


def test_plots_show_nothing_before_the_first_sample(qtbot: QtBot) -> None:
    plots = LivePlots()
    qtbot.addWidget(plots)
    plots.configure(["A"], theme.CHANNEL_COLOURS, 0.025)
    buf = filled_buffer(1, 0.025, 2.0)  # 2 s of a 30 s window
    plots.refresh(buf)
    x, _ = plots.output_curves[0].getData()
    assert x[0] >= -2.1, "no fake zero history before the session started"


def test_nice_ceiling_rounds_up_to_round_numbers() -> None:
    assert [nice_ceiling(v) for v in (3, 11, 21, 33, 120, 260)] == [10, 20, 25, 50, 200, 500]
    assert nice_ceiling(0.3, 0.1) == 0.5
