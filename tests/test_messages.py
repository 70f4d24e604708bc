from handssca.messages import described, first_line


def test_first_line_of_a_text_or_an_error():
    assert first_line("\n  one  \ntwo") == "one"
    assert first_line("", "none") == "none"
    assert first_line("") == ""
    assert first_line(ValueError("\nbad value\nmore")) == "bad value"
    assert first_line(KeyError()) == "KeyError"
    assert first_line(MemoryError()) == "out of memory (MemoryError)"


def test_described_names_the_type():
    assert described(OSError("disk\nfull")) == "OSError: disk"
    assert described(RuntimeError()) == "RuntimeError"
