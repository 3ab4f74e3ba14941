"""envrouter.files: the one atomic write (with or without the fsync) and its JSON form."""

from __future__ import annotations

import json
import os

import pytest

from envrouter.errors import InfraError
from envrouter.files import read_file, write_atomic, write_json


@pytest.mark.parametrize("durable", [True, False])
def test_atomic_write_replaces_the_whole_file_and_leaves_no_temp_file(tmp_path, durable) -> None:
    path = tmp_path / "sub" / "state.json"
    write_json(path, {"n": 1}, durable=durable)
    write_json(path, {"n": 2}, durable=durable)
    assert json.loads(read_file(path)) == {"n": 2}
    assert os.listdir(path.parent) == ["state.json"]
    assert path.stat().st_mode & 0o777 == 0o644


def test_a_write_that_cannot_happen_names_the_path(tmp_path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(InfraError, match="cannot write .*file/y"):
        write_atomic(tmp_path / "file" / "y", "z")
