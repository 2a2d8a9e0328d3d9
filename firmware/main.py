# The bench's entry point. On the ESP32 MicroPython runs this file after boot.py; on the
# host the virtual board calls prepare() and start() with the bench's flash folder and its
# hardware. Boot order: the OTA step (switch in a staged app, or roll back a trial app whose
# first boot failed) runs before the app is imported and before safe mode counts the boot.
import sys

APP_PACKAGES = ("bench", "drivers")


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


def _app_dir(root):
    # <root>/app when an OTA installed an app there, else None.
    import os

    app = root + "/app"
    try:
        return app if os.stat(app)[0] & 0x4000 else None
    except OSError:
        return None


def _rom_pending(root):
    # ota.json says the committed app's ROMFS image waits to be written (bench/ota.py).
    import json

    try:
        with open(root + "/ota.json") as f:
            s = json.load(f)
        return type(s) is dict and bool(s.get("rom")) and not s.get("state")
    except (OSError, ValueError):
        return False


def prepare(root="/", cause=1):
    # The OTA boot step, then the boot counted toward safe mode (bench.health), both before
    # the app is imported, so that an app crashing at import is a boot that failed.
    # cause: machine.reset_cause(). -> (result, app folder or None). result: "switched" (a
    # new app on trial), "trial" (still on trial, healthy at its last boot), "rolled_back",
    # "" (nothing to do) or "error". The app folder is <root>/app when an OTA installed one;
    # else the app provisioned at the root (or in ROMFS) runs.
    root = root.rstrip("/")
    result = ""
    try:
        app = _rom_pending(root) and _app_dir(root)
        if app:
            # The committed app moves into ROMFS. Its own ota module writes the partition,
            # imported from app/ so that nothing was imported from /rom, whose flash it erases.
            sys.path.insert(0, app)
            try:
                from bench import ota

                ota.Ota(root or "/", b"", None).to_rom(APP_PACKAGES)
            finally:
                sys.path.remove(app)
                forget_app()
        from bench import ota

        result = ota.Ota(root or "/", b"", None).boot()
    except Exception as e:  # a damaged OTA state must not keep the bench from booting
        print("ota boot:", repr(e))
        result = "error"
    try:
        from bench import health

        health.boot(root, cause, result)
    except Exception as e:  # a damaged state.json: the app starts afresh from its defaults
        print("health:", repr(e))
    return result, _app_dir(root)


def forget_app():
    # Drop the app's modules imported so far, so the next import reads the chosen app.
    for name in list(sys.modules):
        if name in APP_PACKAGES or name.split(".")[0] in APP_PACKAGES:
            del sys.modules[name]


async def start(root="/", hw=None, started=None, ota=""):
    # Runs the app until it asks for a reboot; returns the reason. started(app): host hook.
    from bench.app import App

    app = App(root, hw or Hardware(), ota)
    if started is not None:
        started(app)
    return await app.main()


def keep_fault(root, exc):
    # The app crashed (at import too): keep its traceback for the next boot's `fault` event.
    try:
        from bench import fault

        fault.keep(root.rstrip("/"), exc)
    except Exception as e:  # the app's own files may be what is broken
        print("fault:", repr(e))


STOPPED = "klupa: app stopped at the console (Ctrl-C); the watchdog resets the bench"


def run(root="/"):
    hw = Hardware()
    console = False
    try:
        result, app_dir = prepare(root, hw.machine.reset_cause())
        forget_app()  # prepare() imported bench.ota from the provisioned app
        if app_dir is not None and app_dir not in sys.path:
            sys.path.insert(0, app_dir)
        from bench import runtime

        runtime.asyncio.run(start(root, hw, ota=result))
    except KeyboardInterrupt:
        # Ctrl-C on the USB console (mpremote sends it): the REPL, for a technician or the
        # HIL tests. The watchdog the app started keeps running, so a bench left at the REPL
        # resets itself (docs/firmware.md, "The console").
        console = True
        print(STOPPED)
    except Exception as e:
        sys.print_exception(e)
        keep_fault(root, e)
    finally:
        if not console:
            hw.machine.reset()


if __name__ == "__main__":
    run()
