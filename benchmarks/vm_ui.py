"""Vote press to confirmation frame, and the front's heap, in the MicroPython VM (issue 4).

Runs ``benchmarks/vm/ui_presses.py`` inside the npm MicroPython WebAssembly port through
``testkit.vm.run_script`` (no runner or unittest loaded), with the firmware compiled to ``.mpy`` as the bench runs
it (see ``benchmarks/vm_core.py``, whose helpers this reuses).

The app is built as in ``vm_core.py`` (core modules, board and config, spool, link to a
loopback sink), then ``bench.front.Front(app)`` exactly as ``App.start()`` builds it: the real
``drivers.ssd1306.SSD1306`` on an I2C stand-in that only records ``writeto``, ``TouchPads``
reading ``TouchPad`` stand-ins, ``Voting`` with its poll file, ``Screens``/``Ui`` and the font.
A four-option poll (Latin with diacritics, and Cyrillic) is delivered through
``Front.on_poll``. Each of 1,000 presses holds a pad's reading down for 0.5 s of simulated
time in 50-ms ``TouchPads.sample()`` calls; the press is recognised on the release sample.
Timed: from the moment ``TouchPads`` emits "press" to the moment the confirmation frame's
GDDRAM data reaches ``I2C.writeto`` (the path: Front.on_touch, Ui.on_touch, Voting.press,
App.record_vote spooling the vote, Screens.confirmation drawing, SSD1306.show). Between
presses the vote is published to the loopback sink and receipted, and the heap is collected.

Not included: the I2C transfer itself (1,025 bytes at 400 kHz take about 23 ms on the bench),
garbage collections inside the timed stretch (this port collects only when control returns to
JavaScript, so none happens within a press; on an ESP32 the firmware collects at idle moments
only, ``Front.idle()`` and after a window, so none does there either:
``tests/firmware/test_press_gc.py``), Wi-Fi/TLS. This port's
``time.ticks_us`` counts whole milliseconds, so the same spans are also timed with
``js.performance.now()`` (microseconds; VM only).

Baseline, same run: the captured confirmation frame put up with plain ``framebuf`` (fill, blit)
and ``SSD1306.show()`` on the same stand-in; heap baseline: the core modules alone. The heap
is attributed as in ``vm_core.py`` (no unittest in the VM, harness cost subtracted).

Then, in a second VM run (``benchmarks/vm/ota_presses.py``, ``otapress.py``), presses while
an OTA download runs (issue 19): ``bench.ota``'s own download (``Ota.run`` over
``http_get``'s streams, the real bundle signed with an RSA-3072 key made here, hashed and
written in 512-byte chunks, verified, staged, again and again) as one task, and a press task
doing what ``Front.run()`` does (sleep 50 ms, sample the pads). Each timed span runs from the
moment the release sample was due to the confirmation frame at I2C, so the time the download
holds the event loop is in it. Baseline, same run: the same presses with no download. Not
included: flash erase and write times of the ESP32 (the VM's file system is in memory; an
ESP32's littlefs erases a 4-KiB sector in tens of milliseconds, a wait the download shares with
the spool's own writes), Wi-Fi. Also timed there: the manifest's signature check
(``bench.trust.verify_manifest``) against hashing its canonical bytes alone, and what the check
allocates.

    .venv/bin/python benchmarks/vm_ui.py [--download-only]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from vm_core import FRONT, kib, run_on_bundle, size_of  # noqa: E402

TARGET_WORST_US = 50_000
TARGET_HIGH = 48 * 1024


def ms(us: object) -> str:
    return f"{int(str(us)) / 1000:.2f} ms"


def download_section() -> int:
    from provisioning import signing

    key = signing.generate()
    _, r = run_on_bundle(
        "ota_presses.py",
        "@@vm-ota ",
        "klupa-vm-ota-",
        key,
        lambda bundle: (bundle / "ota_anchor.txt").write_text(signing.anchor(key)),
    )
    clock = "performance.now()" if r["fine"] else "ticks_us, 1-ms steps"
    base, worst = int(str(r["base_median_us"])), int(str(r["dl_worst_us"]))
    dl = int(str(r["dl_median_us"]))
    print()
    print(
        f"during an OTA download ({r['files']} files, {r['bundle_bytes']} B, "
        f"{r['downloads']} downloads of {r['download_ms']} ms each while {r['presses']} "
        f"presses ran, in {r['span_ms']} ms; {clock}):"
    )
    print(
        f"  release due -> confirmation frame at I2C: median {ms(dl)}, "
        f"95th percentile {ms(r['dl_p95_us'])}, worst {ms(worst)} "
        f"(target worst <= 50 ms: {'met' if worst <= TARGET_WORST_US else 'NOT met'})"
    )
    print(
        f"  baseline, same presses without a download: median {ms(base)}, 95th percentile "
        f"{ms(r['base_p95_us'])}, worst {ms(r['base_worst_us'])}; "
        f"during / baseline (medians): {dl / max(base, 1):.2f}x"
    )
    print(
        f"  the download's holds of the event loop (resume to next await, {r['holds']} of "
        f"them): median {ms(r['hold_median_us'])}, 99th percentile {ms(r['hold_p99_us'])}, "
        f"longest {ms(r['hold_max_us'])}"
    )
    verify = int(str(r["verify_avg_us"]))
    hashed = int(str(r["hash_us"]))
    print(
        f"manifest signature check (RSA-{r['key_bits']}, e=65537, {r['manifest_bytes']} B "
        f"manifest, {r['files']} files): {ms(verify)} (first {ms(r['verify_us'])}; of which "
        f"the RSA power and padding check {ms(r['rsa_us'])}), allocating "
        f"{r['verify_alloc']} B; baseline, SHA-256 of its canonical bytes alone: "
        f"{ms(hashed)}; ratio {verify / max(hashed, 1):.1f}x"
    )
    return 0


def main() -> int:
    if "--download-only" in sys.argv[1:]:
        return download_section()
    sizes, r = run_on_bundle("ui_presses.py", "@@vm-ui ", "klupa-vm-ui-")
    front_bytes = size_of(sizes, FRONT)
    start = int(str(r["start"]))
    core = int(str(r["core"])) - start
    code = int(str(r["code"])) - int(str(r["core"]))
    front_objects = int(str(r["ready"])) - int(str(r["built"]))
    high = int(str(r["high"])) - start - int(str(r["harness"]))  # harness loaded: subtracted
    worst = int(str(r["worst_us"]))
    print("MicroPython VM (npm WebAssembly port 1.27, 56 KiB initial GC heap), firmware as .mpy")
    print(
        f"{r['presses']} presses through TouchPads.sample(): {r['frames']} frames over I2C in all (poll redraws and baseline included), "
        f"{r['votes']} records spooled (votes, boot, clock)"
    )
    print(
        f"press recognised -> confirmation frame at I2C (ticks_us, 1-ms steps on this port): "
        f"median {ms(r['median_us'])}, worst {ms(worst)} "
        f"(target worst <= 50 ms: {'met' if worst <= TARGET_WORST_US else 'NOT met'})"
    )
    if r.get("fine"):
        fm = int(str(r["fine_median_us"]))
        fbm = int(str(r["fine_base_median_us"]))
        print(f"  same spans by performance.now(): median {ms(fm)}, worst {ms(r['fine_worst_us'])}")
        print(
            f"baseline, plain framebuf fill+blit+show of the same frame: median {ms(fbm)}, "
            f"worst {ms(r['fine_base_worst_us'])} (performance.now()); "
            f"press path / baseline (medians): {fm / max(fbm, 1):.1f}x"
        )
    else:
        print(
            f"baseline, plain framebuf fill+blit+show of the same frame: median "
            f"{ms(r['base_median_us'])}, worst {ms(r['base_worst_us'])}"
        )
    print(f"heap of the core modules alone (baseline): {kib(core)} ({core} B)")
    print(
        f"display, font, touch, voting, screens, front code (.mpy {front_bytes} B on flash), "
        f"live: {kib(code)} ({code} B), {code / core:.2f}x the core modules"
    )
    print(
        f"Front built with a poll (frame buffer, pads, poll, Ui), live: {kib(front_objects)} "
        f"({front_objects} B)"
    )
    print(
        f"whole app's live high-water over the presses (after collections): {kib(high)} "
        f"({high} B, target <= 48 KiB: {'met' if high <= TARGET_HIGH else 'NOT met'}); "
        f"most allocated within one press between collections: {kib(int(str(r['burst'])))}"
    )
    return download_section()


if __name__ == "__main__":
    sys.exit(main())
