# The bench's entry point. On the ESP32 MicroPython runs this file after boot.py; on the
# host the virtual board calls start() with the bench's flash folder and its hardware.
from bench import runtime


class Hardware:
    # machine, network, esp32 and ntptime as modules (the ESP32) or per-bench objects (host).
    def __init__(self, machine=None, network=None, esp32=None, ntptime=None):
        if machine is None:
            import esp32
            import machine
            import network
            import ntptime
        self.machine = machine
        self.network = network
        self.esp32 = esp32
        self.ntptime = ntptime


async def start(root="/", hw=None, started=None):
    # Runs the app until it asks for a reboot; returns the reason. started(app): host hook.
    from bench.app import App

    app = App(root, hw or Hardware())
    if started is not None:
        started(app)
    return await app.main()


def run(root="/"):
    hw = Hardware()
    try:
        runtime.asyncio.run(start(root, hw))
    finally:
        hw.machine.reset()


if __name__ == "__main__":
    run()
