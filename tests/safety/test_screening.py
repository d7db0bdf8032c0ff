"""Screening before a session: contraindications block, precautions need an acknowledgement,
answers become a JSON record; and the Bell's palsy onset rule takes the safe reading."""

from __future__ import annotations

import json

import pytest

from safety.errors import SafetyError
from safety.screening import (
    BELLS_ACUTE_MAX_LEVEL_FRACTION,
    SCREENING_QUESTIONS,
    SESSION_REMINDERS,
    ScreeningError,
    bells_palsy_limit,
    evaluate,
    onset_limit,
    require_clear,
)
from waveforms.builtin import load_builtin

KEYS = [q.key for q in SCREENING_QUESTIONS]


def keys_of(kind: str) -> set[str]:
    return {q.key for q in SCREENING_QUESTIONS if q.kind == kind}


CONTRAINDICATIONS = keys_of("contraindication")
PRECAUTIONS = keys_of("precaution")


def all_no(**yes: bool) -> dict[str, bool]:
    answers = dict.fromkeys(KEYS, False)
    answers.update(yes)
    return answers


# --------------------------------------------------------------------------- the questions


def test_the_questions_cover_the_reference_contraindications() -> None:
    assert keys_of("contraindication") == {
        "pacemaker",
        "defibrillator",
        "head_implant",
        "undiagnosed_pain",
        "skin_broken",
        "skin_inflamed",
        "cancer_near_sites",
        "hf_or_diathermy",
    }
    assert keys_of("precaution") == {
        "other_implant",
        "pregnancy",
        "heart_disease",
        "epilepsy",
        "bleeding_tendency",
        "recent_surgery",
        "reduced_sensation",
        "monitoring_equipment",
    }
    assert len(set(KEYS)) == len(KEYS)
    for q in SCREENING_QUESTIONS:
        assert q.text.endswith("?") and q.on_yes and q.sources
    assert any("driving" in r for r in SESSION_REMINDERS)


# --------------------------------------------------------------------------- evaluate


def test_all_no_clears_the_session() -> None:
    result = evaluate(all_no())

    assert result.ok
    assert result.blocked == result.needs_ack == result.pending == ()
    assert result.message() == "screening clear"
    assert require_clear(result) is result


@pytest.mark.parametrize("key", sorted(CONTRAINDICATIONS))
def test_a_contraindication_blocks_even_when_acknowledged(key: str) -> None:
    result = evaluate(all_no(**{key: True}), acknowledged=[key])

    assert not result.ok
    assert [f.key for f in result.blocked] == [key]
    assert result.blocked[0].kind == "contraindication"
    assert result.acknowledged == ()
    with pytest.raises(ScreeningError, match=f"blocked by {key} "):
        require_clear(result)


@pytest.mark.parametrize("key", sorted(PRECAUTIONS))
def test_a_precaution_needs_an_explicit_acknowledgement(key: str) -> None:
    waiting = evaluate(all_no(**{key: True}))

    assert not waiting.ok
    assert [f.key for f in waiting.pending] == [key]
    assert f"needs acknowledgement of {key}" in waiting.message()

    acknowledged = evaluate(all_no(**{key: True}), acknowledged={key})

    assert acknowledged.ok
    assert acknowledged.acknowledged == (key,)
    assert [f.key for f in acknowledged.needs_ack] == [key]


def test_unanswered_questions_keep_the_session_from_starting() -> None:
    answers = all_no()
    del answers["epilepsy"], answers["pacemaker"]

    result = evaluate(answers)

    assert not result.ok
    assert result.unanswered == ("pacemaker", "epilepsy")
    assert (
        result.message() == "screening does not clear this session: unanswered: pacemaker, epilepsy"
    )


def test_an_implant_in_the_head_is_a_precaution_when_no_site_is_on_the_head() -> None:
    on_legs = evaluate(all_no(head_implant=True), head_or_neck=False)

    assert on_legs.blocked == ()
    assert [(f.key, f.kind) for f in on_legs.needs_ack] == [("head_implant", "precaution")]
    assert not evaluate(all_no(head_implant=True)).needs_ack


def test_pregnancy_blocks_a_program_with_points_avoided_in_pregnancy() -> None:
    result = evaluate(all_no(pregnancy=True), {"pregnancy"}, pregnancy_avoid_sites=["SP6-L"])

    assert [f.key for f in result.blocked] == ["pregnancy"]
    assert "the program uses SP6-L, traditionally avoided in pregnancy" in result.blocked[0].reason
    assert evaluate(all_no(pregnancy=True), {"pregnancy"}).ok


def test_acknowledging_what_was_answered_no_records_nothing() -> None:
    result = evaluate(all_no(), acknowledged=["epilepsy"])

    assert result.ok and result.acknowledged == ()


@pytest.mark.parametrize(
    ("answers", "acknowledged", "fragment"),
    [
        ({"pacemakr": True}, (), "screening answer 'pacemakr' is not a question"),
        ({"pacemaker": "no"}, (), "screening answer pacemaker = 'no' is not a yes/no answer"),
        ({"pacemaker": 0}, (), "screening answer pacemaker = 0 is not a yes/no answer"),
        ({}, ("nothing",), "acknowledged 'nothing' is not a question"),
    ],
)
def test_answers_that_cannot_be_screened_raise_one_line(
    answers: dict[str, object], acknowledged: tuple[str, ...], fragment: str
) -> None:
    with pytest.raises(ScreeningError) as info:
        evaluate(answers, acknowledged)  # type: ignore[arg-type]

    assert str(info.value).startswith(fragment)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, SafetyError)


def test_the_result_is_a_json_record_with_every_answer() -> None:
    answers = all_no(pacemaker=True, epilepsy=True)
    result = evaluate(answers, acknowledged=["epilepsy"])

    record = json.loads(json.dumps(result.as_record()))

    assert record["version"] == 1
    assert record["answers"] == answers
    assert record["blocked"] == [
        {"key": "pacemaker", "kind": "contraindication", "reason": result.blocked[0].reason}
    ]
    assert [f["key"] for f in record["needs_ack"]] == ["epilepsy"]
    assert record["acknowledged"] == ["epilepsy"]
    assert record["unanswered"] == []
    assert record["ok"] is False
    assert result.message().startswith(
        "screening does not clear this session: blocked by pacemaker"
    )


# --------------------------------------------------------------------------- Bell's palsy onset


@pytest.mark.parametrize("days", [0, 3, 7])
def test_no_ea_in_the_first_week_after_onset(days: int) -> None:
    limit = bells_palsy_limit(days)

    assert not limit.allowed and limit.phase == "first-week"
    assert "sources say 3 days or a week; the longer is used" in limit.reason
    with pytest.raises(ScreeningError, match=f"day {days} after onset"):
        limit.require()


@pytest.mark.parametrize("days", [8, 12, 15])
def test_the_rest_of_the_acute_phase_is_mild_only(days: int) -> None:
    limit = bells_palsy_limit(days, "subacute")

    assert limit.allowed and limit.phase == "acute"
    assert limit.max_level_fraction == BELLS_ACUTE_MAX_LEVEL_FRACTION == 0.2
    assert limit.require() is limit
    assert limit.lower(0.3) == 0.2 and limit.lower(0.1) == 0.1
    assert "mild stimulation only" in limit.reason


def test_after_the_acute_phase_the_programs_own_ceilings_apply() -> None:
    recovery = bells_palsy_limit(16, "subacute")
    chronic = bells_palsy_limit(400, "chronic")

    assert (recovery.allowed, recovery.phase, recovery.max_level_fraction) == (
        True,
        "recovery",
        None,
    )
    assert (chronic.allowed, chronic.phase) == (True, "chronic")
    assert chronic.lower(0.3) == 0.3


@pytest.mark.parametrize(("days", "phase"), [(10, "acute"), (200, "recovery"), (364, "recovery")])
def test_the_chronic_program_is_refused_before_twelve_months(days: int, phase: str) -> None:
    limit = bells_palsy_limit(days, "chronic")

    assert not limit.allowed and limit.phase == phase
    assert "use the subacute program" in limit.reason


@pytest.mark.parametrize("days", [None, -1, 2.5, True])
def test_a_missing_or_impossible_day_count_is_refused(days: object) -> None:
    limit = bells_palsy_limit(days)  # type: ignore[arg-type]

    assert not limit.allowed and limit.days_since_onset is None
    assert "needs the days since onset" in limit.reason


def test_an_unknown_stage_is_a_programming_error() -> None:
    with pytest.raises(ScreeningError, match="stage = 'acute' is unknown"):
        bells_palsy_limit(20, "acute")


def test_onset_limit_applies_the_programs_own_rule() -> None:
    subacute = load_builtin("bells-palsy-subacute-left")
    chronic = load_builtin("bells-palsy-chronic-right")
    tmj = load_builtin("tmj-jaw-pain-left")

    assert onset_limit(subacute, 10).max_level_fraction == 0.2
    assert not onset_limit(subacute, None).allowed
    assert not onset_limit(chronic, 100).allowed
    assert onset_limit(chronic, 500).allowed
    free = onset_limit(tmj, None)
    assert (free.rule, free.allowed, free.max_level_fraction) == ("", True, None)
    record = json.loads(json.dumps(onset_limit(subacute, 10).as_record()))
    assert record == {
        "rule": "bells-palsy",
        "days_since_onset": 10,
        "phase": "acute",
        "allowed": True,
        "max_level_fraction": 0.2,
        "reason": onset_limit(subacute, 10).reason,
    }
