#!/usr/bin/env bash
# Idempotent set-up for `make test` and `make demo` on a fresh Debian machine:
# Debian packages (when apt-get is usable), the Python venv with klupa installed
# editable, and the npm MicroPython WebAssembly port.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
DEB_PKGS="mosquitto mosquitto-clients influxdb victoria-metrics chromium"

have_all_debs() {
    command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || return 1
    command -v mosquitto_pub >/dev/null 2>&1 || return 1
    command -v influxd >/dev/null 2>&1 || return 1
    command -v victoria-metrics >/dev/null 2>&1 || return 1
    command -v chromium >/dev/null 2>&1 || return 1
}

if ! have_all_debs; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; fi
    fi
    if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" -eq 0 ] || [ -n "$SUDO" ]; }; then
        echo "setup: installing Debian packages: $DEB_PKGS"
        $SUDO apt-get update -qq || echo "setup: apt-get update failed; trying the install anyway"
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $DEB_PKGS \
            || echo "setup: could not install some Debian packages; their tests will skip (or fail with KLUPA_REQUIRE_SERVICES=1)"
    else
        echo "setup: apt-get not usable (need root or sudo); services missing here will skip their tests"
    fi
fi
# The Debian packages start their services system-wide; tests start their own on free ports.
for svc in mosquitto influxdb victoria-metrics; do
    if command -v systemctl >/dev/null 2>&1; then systemctl disable --now "$svc" >/dev/null 2>&1 || true; fi
done

if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv"
    "$PY" -m venv .venv
fi
STAMP=.venv/.klupa-installed
if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ] || [ setup.py -nt "$STAMP" ]; then
    echo "setup: installing klupa (editable) and its dev dependencies into .venv"
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e '.[dev]'
    touch "$STAMP"
fi

# testkit/ (the test harness) is not part of the wheel; benchmarks and scripts import it from
# the checkout, through a path file in the venv.
PURELIB=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
if [ "$(cat "$PURELIB/klupa-checkout.pth" 2>/dev/null)" != "$PWD" ]; then
    echo "$PWD" > "$PURELIB/klupa-checkout.pth"
fi

if command -v npm >/dev/null 2>&1 && [ -f package-lock.json ]; then
    if [ ! -d node_modules/@micropython/micropython-webassembly-pyscript ] || [ ! -d node_modules/axe-core ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
        echo "setup: installing the MicroPython WebAssembly port and axe-core (npm ci)"
        npm ci --no-audit --no-fund --loglevel=error
    fi
elif ! command -v npm >/dev/null 2>&1; then
    echo "setup: npm not found; the MicroPython VM tests will skip (or fail with KLUPA_REQUIRE_SERVICES=1)"
fi
echo "setup: ready"
