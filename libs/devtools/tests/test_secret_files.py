import os
import stat

from eh_devtools.secret_files import write_secret_file


def test_a_secret_file_is_replaced_whole_with_exactly_its_mode(tmp_path):
    path = tmp_path / "deeper" / "token"
    old_umask = os.umask(0o077)  # would narrow 0644 to 0600 if the mode were left to it
    try:
        write_secret_file(path, "first\n")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        before = path.stat().st_ino
        write_secret_file(path, "second\n", mode=0o644)
    finally:
        os.umask(old_umask)
    assert path.read_text() == "second\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert path.stat().st_ino != before  # a new file renamed over it: a reader never sees half
    assert sorted(p.name for p in path.parent.iterdir()) == ["token"]  # no temporary file left
