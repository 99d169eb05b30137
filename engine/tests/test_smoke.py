import engine
def test_x():
    assert engine.__doc__
