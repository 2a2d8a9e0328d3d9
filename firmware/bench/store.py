# Small JSON state files in flash, replaced atomically (write a temporary file, then rename).
import json
import os


def load(path, default):
    try:
        with open(path) as f:
            v = json.load(f)
        return v if isinstance(v, dict) else default
    except (OSError, ValueError):
        return default


def save(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f)
    try:
        os.rename(tmp, path)
    except OSError:  # a file system whose rename does not replace
        try:
            os.remove(path)
        except OSError:
            pass
        os.rename(tmp, path)


def exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False
