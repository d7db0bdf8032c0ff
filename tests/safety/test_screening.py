"""Screening before a session: contraindications block, precautions need an acknowledgement,
the day-of part is asked every session and the full part is reused only while valid, answers
become a JSON record; and the Bell's palsy onset rule takes the safe reading."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from safety.errors import SafetyError
from safety.screening import (
    BELLS_ACUTE_MAX_LEVEL_FRACTION,
    DAY_OF_QUESTIONS,
    FULL_QUESTIONS,
    FULL_SCREENING_VALID_DAYS,
    SCREENING_QUESTIONS,
    SESSION_REMINDERS,
    RecordedScreening,
    ScreeningError,
    bells_palsy_limit,
    evaluate,
    gather,
    onset_limit,
    question,
    require_clear,
    screening_valid_days,
)
from waveforms.builtin import load_builtin

KEYS = [q.key for q in SCREENING_QUESTIONS]
NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
#: every scope narrower than "any" outside the program: only the "any" questions count
OUTSIDE = {
    "head_or_neck": False,
    "face": False,
    "legs": False,
    "bells_palsy": False,
    "chronic_bells_palsy": False,
}


def keys_of(kind: str, *, scoped: bool = True) -> set[str]:
    return {
        q.key
        for q in SCREENING_QUESTIONS
        if q.kind == kind and not q.forces_full and (scoped or q.scope == "any")
    }


CONTRAINDICATIONS = keys_of("contraindication")
PRECAUTIONS = keys_of("precaution")
FORCES_FULL = {q.key for q in SCREENING_QUESTIONS if q.forces_full}
DAY_KEYS = {q.key for q in DAY_OF_QUESTIONS}
FULL_KEYS = {q.key for q in FULL_QUESTIONS}


def all_no(**yes: bool) -> dict[str, bool]:
    answers = dict.fromkeys(KEYS, False)
    answers.update(yes)
    return answers


def day_no(**yes: bool) -> dict[str, bool]:
    answers = dict.fromkeys(DAY_KEYS, False)
    answers.update(yes)
    return answers


def on_record(answered_days_ago: float, **yes: bool) -> RecordedScreening:
    """A clear full screening answered so many days before NOW, read from session 7."""
    return RecordedScreening(
        answers={**all_no(), **yes},
        acknowledged=tuple(k for k, v in yes.items() if v),
        answered_at=NOW - timedelta(days=answered_days_ago),
        session_id=7,
        session_started_at="2026-11-30T10:00:00.000+00:00",
        answered_in_session=4,
    )


# --------------------------------------------------------------------------- the questions


def test_the_questions_cover_the_reference_and_the_review() -> None:
    assert keys_of("contraindication") == {
        "pacemaker",
        "defibrillator",
        "head_implant_active",
        "undiagnosed_pain",
        "skin_broken",
        "skin_inflamed",
        "cancer_near_sites",
        "hf_or_diathermy",
        "recent_facial_procedure",
        "dvt",
        "bells_red_flags",
    }
    assert keys_of("precaution") == {
        "head_metal_passive",
        "other_implant",
        "pregnancy",
        "heart_disease",
        "epilepsy",
        "bleeding_tendency",
        "anticoagulants",
        "recent_surgery",
        "reduced_sensation",
        "electrode_allergy",
        "monitoring_equipment",
        "fainting",
        "immunosuppressed",
        "eye_not_closing",
        "synkinesis",
    }
    assert {"new_implant", "history_changed"} == FORCES_FULL
    assert len(set(KEYS)) == len(KEYS)
    for q in SCREENING_QUESTIONS:
        assert q.text.endswith("?") and q.on_yes and q.sources
        assert question(q.key) is q
    assert question("head_implant") is None  # an older record's key
    assert any("driving" in r for r in SESSION_REMINDERS)


def test_the_day_of_part_holds_what_changes_from_one_session_to_the_next() -> None:
    assert {
        "skin_broken",
        "skin_inflamed",
        "hf_or_diathermy",
        "monitoring_equipment",
        "pregnancy",
        "recent_facial_procedure",
        "new_implant",
        "history_changed",
    } == DAY_KEYS
    assert set(KEYS) == DAY_KEYS | FULL_KEYS and not DAY_KEYS & FULL_KEYS
    # the tuple lists the day-of part first, as the template and the dialog ask it
    assert [q.part for q in SCREENING_QUESTIONS] == ["day"] * len(DAY_KEYS) + ["full"] * len(
        FULL_KEYS
    )


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


@pytest.mark.parametrize(
    ("key", "inside"),
    [
        ("recent_facial_procedure", "face"),
        ("dvt", "legs"),
        ("bells_red_flags", "bells_palsy"),
        ("eye_not_closing", "bells_palsy"),
        ("synkinesis", "chronic_bells_palsy"),
        ("head_metal_passive", "head_or_neck"),
    ],
)
def test_a_scoped_question_counts_only_for_the_programs_it_is_about(key: str, inside: str) -> None:
    outside = evaluate(all_no(**{key: True}), **OUTSIDE)  # type: ignore[arg-type]
    assert outside.ok and outside.blocked == outside.needs_ack == ()
    assert dict(outside.answers)[key] is True  # recorded all the same

    within = evaluate(all_no(**{key: True}), **{**OUTSIDE, inside: True})  # type: ignore[arg-type]
    assert not within.ok
    assert key in {f.key for f in (*within.blocked, *within.needs_ack)}


def test_recent_botox_or_fillers_refuse_every_facial_program() -> None:
    result = evaluate(
        all_no(recent_facial_procedure=True), acknowledged=["recent_facial_procedure"]
    )

    assert [f.key for f in result.blocked] == ["recent_facial_procedure"]
    assert "no facial program until 4 weeks have passed (our policy)" in result.blocked[0].reason


def test_synkinesis_matters_for_the_chronic_program_that_aims_for_a_twitch() -> None:
    subacute = evaluate(all_no(synkinesis=True), chronic_bells_palsy=False)
    chronic = evaluate(all_no(synkinesis=True), chronic_bells_palsy=True)

    assert subacute.ok
    assert [f.key for f in chronic.pending] == ["synkinesis"]
    assert "aims for a visible twitch" in chronic.pending[0].reason


def test_an_active_implant_in_the_head_is_a_precaution_when_no_site_is_on_the_head() -> None:
    on_legs = evaluate(all_no(head_implant_active=True), head_or_neck=False)

    assert on_legs.blocked == ()
    assert [(f.key, f.kind) for f in on_legs.needs_ack] == [("head_implant_active", "precaution")]
    assert [f.key for f in evaluate(all_no(head_implant_active=True)).blocked] == [
        "head_implant_active"
    ]


def test_dental_implants_and_plates_are_a_precaution_not_a_block_on_the_face() -> None:
    result = evaluate(all_no(head_metal_passive=True), {"head_metal_passive"})

    assert result.ok and result.blocked == ()
    assert [f.kind for f in result.needs_ack] == ["precaution"]
    assert "dental implants" in question("head_metal_passive").text  # type: ignore[union-attr]
    assert "dental" not in question("head_implant_active").text  # type: ignore[union-attr]


def test_epilepsy_with_head_sites_needs_a_specialists_clearance() -> None:
    head = evaluate(all_no(epilepsy=True))
    legs = evaluate(all_no(epilepsy=True), head_or_neck=False)

    assert "specialist has cleared stimulation there" in head.pending[0].reason
    assert "specialist" not in legs.pending[0].reason


def test_pregnancy_blocks_a_program_with_points_avoided_in_pregnancy() -> None:
    result = evaluate(all_no(pregnancy=True), {"pregnancy"}, pregnancy_avoid_sites=["SP6-L"])

    assert [f.key for f in result.blocked] == ["pregnancy"]
    assert "the program uses SP6-L, traditionally avoided in pregnancy" in result.blocked[0].reason
    assert evaluate(all_no(pregnancy=True), {"pregnancy"}).ok


def test_acknowledging_what_was_answered_no_records_nothing() -> None:
    result = evaluate(all_no(), acknowledged=["epilepsy"])

    assert result.ok and result.acknowledged == ()


def test_unanswered_questions_keep_the_session_from_starting() -> None:
    answers = all_no()
    del answers["epilepsy"], answers["pacemaker"]

    result = evaluate(answers)

    assert not result.ok
    assert result.unanswered == ("pacemaker", "epilepsy")
    assert (
        result.message() == "screening does not clear this session: unanswered: pacemaker, epilepsy"
    )


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


def test_the_result_is_a_json_record_with_every_answer_in_words_and_its_parts() -> None:
    answers = all_no(pacemaker=True, epilepsy=True)
    gathered = gather(answers, ["epilepsy"], None, now=NOW)
    result = evaluate(answers, acknowledged=["epilepsy"], parts=gathered.parts)

    record = json.loads(json.dumps(result.as_record()))

    assert record["version"] == 2
    assert record["answers"] == answers
    assert record["questions"]["pacemaker"] == "Does the patient have a cardiac pacemaker?"
    assert set(record["questions"]) == set(answers)
    assert record["parts"] == {
        "day": {
            "answered_at": "2026-12-03T09:00:00.000+00:00",
            "answered_in_session": None,
            "reused": False,
            "reused_from_session": None,
            "reused_from_started_at": None,
        },
        "full": {
            "answered_at": "2026-12-03T09:00:00.000+00:00",
            "answered_in_session": None,
            "reused": False,
            "reused_from_session": None,
            "reused_from_started_at": None,
        },
    }
    assert record["blocked"] == [
        {"key": "pacemaker", "kind": "contraindication", "reason": result.blocked[0].reason}
    ]
    assert [f["key"] for f in record["needs_ack"]] == ["epilepsy"]
    assert record["acknowledged"] == ["epilepsy"]
    assert record["unanswered"] == []
    assert record["refresh"] is None
    assert record["ok"] is False
    assert result.message().startswith(
        "screening does not clear this session: blocked by pacemaker"
    )


# --------------------------------------------------------------------------- which answers


def test_a_valid_full_screening_is_reused_and_says_from_when() -> None:
    gathered = gather(day_no(), (), on_record(100, epilepsy=True), now=NOW)

    assert gathered.refresh is None
    assert gathered.answers == all_no(epilepsy=True)
    assert gathered.acknowledged == ("epilepsy",)  # the full part's acknowledgement goes with it
    day, full = gathered.parts
    assert (day.part, day.answered_at, day.reused) == (
        "day",
        "2026-12-03T09:00:00.000+00:00",
        False,
    )
    assert (full.part, full.reused, full.reused_from_session) == ("full", True, 7)
    assert full.answered_at == (NOW - timedelta(days=100)).isoformat(timespec="milliseconds")
    assert full.answered_in_session == 4
    assert full.reused_from_started_at == "2026-11-30T10:00:00.000+00:00"
    result = evaluate(
        gathered.answers, gathered.acknowledged, parts=gathered.parts, refresh=gathered.refresh
    )
    assert result.ok and result.reused == (full,)


def test_the_day_of_part_is_never_reused() -> None:
    recorded = on_record(10, pregnancy=True)  # a day-of yes and its acknowledgement on record

    gathered = gather({}, (), recorded, now=NOW)
    result = evaluate(gathered.answers, gathered.acknowledged)

    assert not result.ok
    assert set(result.unanswered) == DAY_KEYS
    assert "pregnancy" not in gathered.answers and "pregnancy" not in gathered.acknowledged


@pytest.mark.parametrize("days", [FULL_SCREENING_VALID_DAYS + 1, 400])
def test_a_full_screening_older_than_the_policy_is_asked_again(days: int) -> None:
    gathered = gather(day_no(), (), on_record(days), now=NOW)
    result = evaluate(
        gathered.answers, gathered.acknowledged, parts=gathered.parts, refresh=gathered.refresh
    )

    assert not result.ok and result.reused == ()
    assert set(result.unanswered) == FULL_KEYS
    message = result.message()
    assert f"is older than {FULL_SCREENING_VALID_DAYS} days (our policy)" in message
    assert "answer the full screening again" in message
    assert "pacemaker" not in message  # the full part is named once, not question by question


def test_exactly_twelve_months_is_still_valid_and_a_lower_setting_expires_sooner() -> None:
    assert gather(day_no(), (), on_record(365), now=NOW).refresh is None
    assert gather(day_no(), (), on_record(31), now=NOW, valid_days=30).refresh is not None
    assert gather(day_no(), (), on_record(29), now=NOW, valid_days=30).refresh is None


def test_a_full_screening_dated_in_the_future_is_not_reused() -> None:
    assert gather(day_no(), (), on_record(-2), now=NOW).refresh is not None


@pytest.mark.parametrize("key", sorted(FORCES_FULL))
def test_a_changed_history_forces_a_new_full_screening(key: str) -> None:
    gathered = gather(day_no(**{key: True}), (), on_record(10), now=NOW)
    result = evaluate(
        gathered.answers, gathered.acknowledged, parts=gathered.parts, refresh=gathered.refresh
    )

    assert not result.ok
    assert f"{key} answered yes: the full screening of 2026-11-23 no longer holds" in (
        result.message()
    )
    # answered again in the same session: the new full part is used, nothing is reused
    fresh = gather(all_no(**{key: True}), (), on_record(10), now=NOW)
    assert fresh.refresh is None and [p.reused for p in fresh.parts] == [False, False]
    assert evaluate(fresh.answers, fresh.acknowledged, parts=fresh.parts).ok


def test_a_full_screening_given_again_replaces_the_record_even_when_valid() -> None:
    gathered = gather(all_no(), (), on_record(10, epilepsy=True), now=NOW)

    assert gathered.answers == all_no()
    assert gathered.acknowledged == ()
    assert not any(p.reused for p in gathered.parts)


def test_without_a_record_the_full_part_is_unanswered() -> None:
    gathered = gather(day_no(), (), None, now=NOW)

    assert [p.part for p in gathered.parts] == ["day"]
    assert set(evaluate(gathered.answers).unanswered) == FULL_KEYS


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (366, "= 366 days; allowed 1..365"),
        (0, "= 0 days; allowed 1..365"),
        (-5, "= -5 days; allowed 1..365"),
        (True, "= True is not a whole number of days; allowed 1..365"),
        ("30", "= '30' is not a whole number of days; allowed 1..365"),
        (30.5, "= 30.5 is not a whole number of days"),
    ],
)
def test_the_validity_can_only_be_lowered(value: object, fragment: str) -> None:
    with pytest.raises(ScreeningError) as info:
        screening_valid_days(value, "setting X")
    assert str(info.value).startswith(f"setting X {fragment}")
    assert "only lower the 12-month policy" in str(info.value)
    assert screening_valid_days() == FULL_SCREENING_VALID_DAYS == 365
    assert screening_valid_days(30) == 30
    with pytest.raises(ScreeningError, match=r"allowed 1\.\.365"):
        gather(day_no(), (), None, now=NOW, valid_days=500)


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
