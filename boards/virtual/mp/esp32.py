# mypy: ignore-errors
# The virtual board's `esp32`: NVS namespaces kept in machine.board.nvs (in memory: a new
# VM, as after a reset of the REPL board, starts with them empty), and touch wake-up.
import machine

_NOT_FOUND = -0x1102  # ESP_ERR_NVS_NOT_FOUND


class NVS:
    def __init__(self, namespace):
        self.data = machine._board().nvs.setdefault(namespace, {})

    def set_i32(self, key, value):
        self.data[key] = int(value)

    def get_i32(self, key):
        if key not in self.data:
            raise OSError(_NOT_FOUND, "ESP_ERR_NVS_NOT_FOUND")
        return int(self.data[key])

    def set_blob(self, key, value):
        self.data[key] = bytes(value)

    def get_blob(self, key, buf):
        if key not in self.data:
            raise OSError(_NOT_FOUND, "ESP_ERR_NVS_NOT_FOUND")
        v = self.data[key]
        for i in range(len(v)):
            buf[i] = v[i]
        return len(v)

    def erase_key(self, key):
        self.data.pop(key, None)

    def commit(self):
        pass


def raw_temperature():
    return 120


def wake_on_touch(on):
    # Touch as a wake-up source from light sleep (each pad's threshold: TouchPad.config).
    machine._board().wake_on_touch = bool(on)
