from pathlib import Path

import pytest

from hybridops.errors import HybridopsError, SourceError
from hybridops.ingest.sources import TABLES, resolve_source_dir, source_file
from hybridops.settings import Settings


def test_default_source_dir_is_packaged_data() -> None:
    folder = resolve_source_dir(Settings())
    assert folder.name == "data"
    assert {source_file(folder, t).name for t in TABLES} == {
        "flights.csv.zip",
        "weather.csv",
        "planes.csv",
        "airlines.csv",
        "airports.csv",
    }


def test_custom_source_dir_prefers_plain_csv(tmp_path: Path) -> None:
    (tmp_path / "flights.csv.zip").write_bytes(b"zip")
    assert source_file(tmp_path, "flights").name == "flights.csv.zip"
    (tmp_path / "flights.csv").write_text("x")
    assert resolve_source_dir(Settings(source_dir=tmp_path)) == tmp_path.resolve()
    assert source_file(tmp_path, "flights").name == "flights.csv"


def test_missing_file_message_names_folder_and_names(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as info:
        source_file(tmp_path, "flights")
    message = str(info.value)
    assert str(tmp_path) in message
    assert "flights.csv or flights.csv.zip" in message
    assert isinstance(info.value, HybridopsError)


def test_missing_folder_and_unknown_table(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        resolve_source_dir(Settings(source_dir=tmp_path / "nope"))
    with pytest.raises(SourceError, match="unknown table"):
        source_file(tmp_path, "trains")
