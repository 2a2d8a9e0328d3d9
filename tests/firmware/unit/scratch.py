# Scratch folders for the unit tests, under pytest and inside the MicroPython VM (which has
# no tempfile: there the VM's in-memory /tmp is used).
import os

_made = [0]


def fresh(name):
    try:
        import tempfile

        base = tempfile.mkdtemp()
    except ImportError:
        base = "/tmp"
        try:
            os.mkdir(base)
        except OSError:
            pass
    _made[0] += 1
    path = base + "/" + name + "-" + str(_made[0])
    os.mkdir(path)
    return path
