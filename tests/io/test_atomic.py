import pytest

from handssca.io.atomic import atomic_path, atomic_write_bytes


def test_a_complete_write_replaces_the_file(tmp_path):
    target = tmp_path / "sub" / "f.bin"
    atomic_write_bytes(target, b"one")
    atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two" and [p.name for p in target.parent.iterdir()] == ["f.bin"]


@pytest.mark.parametrize("error", [OSError("No space left on device"), KeyboardInterrupt()])
def test_a_failed_write_keeps_the_previous_file_and_no_temporary(tmp_path, error):
    target = tmp_path / "f.bin"
    target.write_bytes(b"previous")
    with pytest.raises(type(error)):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise error
    assert target.read_bytes() == b"previous" and [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_a_new_file_gets_the_mode_of_a_plain_open_and_a_replaced_one_keeps_its_own(tmp_path):
    import os

    plain = tmp_path / "plain"
    plain.write_bytes(b"x")
    new = atomic_write_bytes(tmp_path / "new", b"x")
    assert new.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777  # not mkstemp's 0600
    os.chmod(new, 0o640)
    atomic_write_bytes(new, b"y")
    assert new.stat().st_mode & 0o777 == 0o640
