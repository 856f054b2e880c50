"""Array parameters written as one literal (`billing_core.sql.array_literal`) reach PostgreSQL as
the values that were meant, whatever characters the text holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from billing_core.sql import array_literal

AWKWARD_TEXT = ["plain", "", " padded ", 'a "quoted" id', "back\\slash", "a,b", "{braces}",
                "NULL", "null", "tab\there", "é-ünïcode", "line\nbreak"]


def test_text_with_quotes_commas_braces_and_the_word_null_comes_back_as_sent(pg_database):
    with pg_database.engine.connect() as conn:
        back = conn.execute(text("SELECT CAST(:v AS text[])"),
                            {"v": array_literal([*AWKWARD_TEXT, None])}).scalar_one()
    assert back == [*AWKWARD_TEXT, None]


def test_integers_and_instants_come_back_exactly(pg_database):
    masks = [0, 1, (1 << 60) - 1, -5]
    instants = [datetime(2026, 11, 18, 12, 0, 59, 999_999, tzinfo=UTC),
                datetime(2026, 11, 18, 14, 30, 0, 1, tzinfo=timezone(timedelta(hours=2))),
                None]
    with pg_database.engine.connect() as conn:
        row = conn.execute(text("SELECT CAST(:m AS bigint[]), CAST(:t AS timestamptz[])"),
                           {"m": array_literal(masks), "t": array_literal(instants)}).one()
    assert row[0] == masks
    assert row[1] == instants


def test_an_empty_list_is_an_empty_array_and_a_naive_instant_is_refused():
    assert array_literal([]) == "{}"
    with pytest.raises(ValueError, match="naive"):
        array_literal([datetime(2026, 11, 18, 12, 0)])
    with pytest.raises(TypeError):
        array_literal([1.5])  # type: ignore[list-item]


def test_plain_ids_joined_in_one_pass_come_back_as_sent(pg_database):
    # No quote or backslash anywhere: the literal is one join, whatever else the text holds.
    plain = ["i-0abc", "", " padded ", "a,b", "{braces}", "NULL", "null", "tab\there", "é"]
    with pg_database.engine.connect() as conn:
        for values in (plain, plain[:1], [""], ["x", 'y"'], ['"', "z"], ["back\\", "q"]):
            back = conn.execute(text("SELECT CAST(:v AS text[])"),
                                {"v": array_literal(values)}).scalar_one()
            assert back == values
