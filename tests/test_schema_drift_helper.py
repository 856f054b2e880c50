"""tests/support/schema_drift.py reports what a database lacks or has beyond the code."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine

from tests.support.schema_drift import schema_drift


def declared() -> MetaData:
    metadata = MetaData()
    Table("things", metadata, Column("id", Integer, primary_key=True),
          Column("name", String(40), nullable=False))
    return metadata


def test_a_database_built_from_the_same_tables_has_no_drift(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'same.db'}"
    engine = create_engine(url)
    declared().create_all(engine)
    engine.dispose()
    assert schema_drift(declared(), url, include_table=lambda name: name == "things") == []


def test_a_missing_column_a_changed_type_and_only_included_tables_are_reported(
        tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'drifted.db'}"
    built = MetaData()
    Table("things", built, Column("id", Integer, primary_key=True),
          Column("name", Integer, nullable=False), Column("extra", String(10)))
    Table("someone_elses", built, Column("id", Integer, primary_key=True))
    engine = create_engine(url)
    built.create_all(engine)
    engine.dispose()
    diff = schema_drift(declared(), url, include_table=lambda name: name == "things")
    flat = [entry[0] if isinstance(entry, tuple) else entry[0][0] for entry in diff]
    assert sorted(flat) == ["modify_type", "remove_column"]
    assert all("someone_elses" not in repr(entry) for entry in diff)
