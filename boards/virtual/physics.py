"""Physics of a virtual bench: sun, clouds, panel, charge controller, battery, people, link.

Deterministic for a seed: the same seed, bench and times give the same world. The world is
advanced with :meth:`World.step` in simulated seconds; the chip models of the virtual board
read its electrical values (panel and battery voltage and current, port currents), the seat,
the touch pads and the air.

Models, kept simple but physically shaped:

- Sun: declination and equation of time from the day of year, hour angle from longitude,
  elevation from latitude; clear-sky global irradiance by the Haurwitz model.
- Clouds: one cloud cover per day from an AR(1) process (day-to-day persistence 0.7, so grey
  spells last about a week, more cloud in November-February), plus minute-scale flicker.
- Panel: peak watts from the profile with −0.4 %/°C derating at cell temperature; voltage at
  its maximum power point near 18 V, falling to the battery voltage in weak light.
- Charge controller: three stages, as solar controllers do: bulk (all the panel gives, at most
  0.3 C), absorption at a constant voltage (the current tapers as the cell fills) for a set
  time, then float until the sun sets; the loads are served first.
- Battery: :class:`boards.virtual.battery.Cell`, with an OCV curve of its own, hysteresis,
  relaxation, temperature and charge acceptance, read through a shunt with gain and offset
  errors (:data:`boards.virtual.battery.SHUNT`). ``ideal_battery=True`` gives the earlier
  :class:`Battery` (the profile's OCV curve, a resistance) and a controller that stops at full.
- People: seat occupancy and phone charging sessions drawn by hour of day, weekday and
  weather; phones draw 0.5–2.4 A and taper as they fill.
- Link: Wi-Fi RSSI with slow fades and scripted outages.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from boards.virtual.battery import SHUNT, Cell, ShuntErrors, interpolate
from klupa.contract import MUNICIPALITIES

# Open-circuit voltage of a 12 V-class battery against state of charge (fraction), per chemistry.
OCV_CURVES: dict[str, list[tuple[float, float]]] = {
    "lifepo4": [
        (0.0, 10.0),
        (0.05, 12.0),
        (0.1, 12.8),
        (0.2, 12.95),
        (0.4, 13.15),
        (0.6, 13.25),
        (0.8, 13.3),
        (0.9, 13.35),
        (0.99, 13.45),
        (1.0, 13.6),
    ],
    "lead-acid": [
        (0.0, 11.5),
        (0.1, 11.7),
        (0.2, 11.85),
        (0.3, 11.98),
        (0.4, 12.1),
        (0.5, 12.2),
        (0.6, 12.32),
        (0.7, 12.42),
        (0.8, 12.5),
        (0.9, 12.62),
        (1.0, 12.73),
    ],
}


# --------------------------------------------------------------------------- sun


def solar_elevation(lat: float, lon: float, unix_s: float) -> float:
    """Solar elevation in degrees above the horizon at a place and time (UTC)."""
    days = unix_s / 86400.0
    doy = (days % 365.2422) + 1  # close enough for irradiance: the phase drifts < 1 day/century
    g = 2 * math.pi / 365.0 * (doy - 1)
    decl = (
        0.006918
        - 0.399912 * math.cos(g)
        + 0.070257 * math.sin(g)
        - 0.006758 * math.cos(2 * g)
        + 0.000907 * math.sin(2 * g)
    )
    eqt_min = 229.18 * (
        0.000075
        + 0.001868 * math.cos(g)
        - 0.032077 * math.sin(g)
        - 0.014615 * math.cos(2 * g)
        - 0.040849 * math.sin(2 * g)
    )
    utc_min = (unix_s % 86400) / 60.0
    solar_min = utc_min + eqt_min + 4 * lon
    hour_angle = math.radians(solar_min / 4.0 - 180.0)
    phi = math.radians(lat)
    sin_el = math.sin(phi) * math.sin(decl) + math.cos(phi) * math.cos(decl) * math.cos(hour_angle)
    return math.degrees(math.asin(max(-1.0, min(1.0, sin_el))))


def clear_sky_irradiance(elevation_deg: float) -> float:
    """Global horizontal irradiance under a clear sky, W/m² (Haurwitz)."""
    if elevation_deg <= 0:
        return 0.0
    cos_z = math.sin(math.radians(elevation_deg))
    return 1098.0 * cos_z * math.exp(-0.059 / cos_z)


@dataclass
class Clouds:
    """Daily cloud cover (0 clear … 1 overcast) with day-to-day persistence, by seed."""

    seed: int
    persistence: float = 0.7
    _days: dict[int, float] = field(default_factory=dict)

    def _seasonal_mean(self, day: int) -> float:
        doy = day % 365
        # Wetter, greyer winters: mean cover ~0.65 in late November, ~0.3 in July.
        return 0.475 + 0.175 * math.cos(2 * math.pi * (doy - 340) / 365.0)

    def day_cover(self, day: int) -> float:
        if day in self._days:
            return self._days[day]
        # The anomaly is an AR(1) walk over the 40 days before: a pure function of the day,
        # so any day is reachable in any order with the same result (0.7**40 of the past is left).
        x = 0.0
        for d in range(day - 40, day + 1):
            rng = random.Random(f"{self.seed}/cloud/{d}")
            x = self.persistence * x + math.sqrt(1 - self.persistence**2) * rng.gauss(0, 0.3)
        cover = min(1.0, max(0.0, self._seasonal_mean(day) + x))
        self._days[day] = cover
        return cover

    def cover(self, unix_s: float) -> float:
        day = int(unix_s // 86400)
        base = self.day_cover(day)
        minute = int(unix_s // 120)
        flicker = random.Random(f"{self.seed}/flicker/{minute}").uniform(-0.15, 0.15)
        return min(1.0, max(0.0, base + flicker * base * (1 - base) * 4))

    def transmittance(self, unix_s: float) -> float:
        """Share of clear-sky irradiance that reaches the panel (Kasten–Czeplak shape)."""
        return 1.0 - 0.75 * self.cover(unix_s) ** 3.4


# --------------------------------------------------------------------------- battery, panel


@dataclass
class Battery:
    chemistry: str  # "lifepo4" or "lead-acid"
    capacity_ah: float
    soc: float = 0.8  # true state of charge, fraction
    internal_ohm: float = 0.02
    charge_efficiency: float = 0.98
    current_a: float = 0.0  # + charging, − discharging

    def __post_init__(self) -> None:
        if self.chemistry not in OCV_CURVES:
            raise ValueError(f"unknown battery chemistry {self.chemistry!r}")

    @property
    def ocv(self) -> float:
        return interpolate(OCV_CURVES[self.chemistry], self.soc)

    @property
    def voltage(self) -> float:
        return self.ocv + self.current_a * self.internal_ohm

    def flow(self, current_a: float, dt_s: float) -> None:
        """Apply a current for dt seconds (+ charging)."""
        self.current_a = current_a
        ah = current_a * dt_s / 3600.0
        if ah > 0:
            ah *= self.charge_efficiency
        self.soc = min(1.0, max(0.0, self.soc + ah / self.capacity_ah))


@dataclass
class Panel:
    peak_w: float
    vmp: float = 18.0
    voc: float = 21.6

    def power(self, irradiance: float, air_c: float) -> float:
        cell_c = air_c + irradiance / 800.0 * 20.0
        return max(0.0, self.peak_w * irradiance / 1000.0 * (1 - 0.004 * (cell_c - 25.0)))


# --------------------------------------------------------------------------- people


@dataclass
class Phone:
    port: int
    capacity_wh: float
    soc: float
    max_a: float
    leave_at: float

    def current(self) -> float:
        # Constant current to ~80 %, then tapering towards a trickle.
        if self.soc >= 1.0:
            return 0.01
        if self.soc < 0.8:
            return self.max_a
        return max(0.01, self.max_a * (1.0 - self.soc) / 0.2)


def hourly_presence(hour: float, weekday: int, municipality: str) -> float:
    """Expected people per hour passing and sitting, by local hour, weekday and town size."""
    busy = {"mostar": 1.6, "prijedor": 1.3, "trebinje": 1.3}.get(municipality, 0.8)
    if municipality in ("ravno", "berkovici"):
        busy = 0.4
    day_shape = math.exp(-(((hour - 16.0) / 4.0) ** 2)) + 0.5 * math.exp(
        -(((hour - 11.0) / 2.5) ** 2)
    )
    weekend = 1.5 if weekday >= 5 else 1.0
    return busy * weekend * day_shape * 4.0


@dataclass
class World:
    """One bench's surroundings, advanced in simulated seconds."""

    municipality: str
    seed: int
    t: float  # Unix time, s (UTC)
    peak_w: float = 120.0
    chemistry: str = "lifepo4"
    capacity_ah: float = 40.0
    ports: int = 5
    wireless_port: int | None = 5
    soc: float = 0.8
    base_rssi: int = -62
    people_scale: float = 1.0
    ideal_battery: bool = False
    shunt: ShuntErrors = SHUNT  # the battery shunt's errors, for the board's INA226
    clouds: Clouds = field(init=False)
    battery: Battery | Cell = field(init=False)
    charge_stage: str = "bulk"  # the charge controller's: bulk, absorb, float
    absorb_from: float = 0.0
    panel: Panel = field(init=False)
    rng: random.Random = field(init=False)
    phones: dict[int, Phone] = field(default_factory=dict)
    port_on: dict[int, bool] = field(default_factory=dict)
    seat_until: float = 0.0
    outages: list[tuple[float, float]] = field(default_factory=list)
    controller_load_a: float = 0.12  # the ESP32, the access point and the display
    solar_v: float = 0.0
    solar_a: float = 0.0
    air_c: float = 10.0
    rh: float = 70.0
    touches: list[tuple[float, int, float]] = field(default_factory=list)  # (start, pad, hold_s)

    def __post_init__(self) -> None:
        self.clouds = Clouds(self.seed)
        if self.ideal_battery:
            resistance = 0.015 if self.chemistry == "lifepo4" else 0.03
            efficiency = 0.98 if self.chemistry == "lifepo4" else 0.85
            self.battery = Battery(
                self.chemistry, self.capacity_ah, self.soc, resistance, efficiency
            )
        else:
            self.battery = Cell(self.chemistry, self.capacity_ah, self.soc, self.air_c)
        self.panel = Panel(self.peak_w)
        self.rng = random.Random(f"{self.seed}/{self.municipality}/people")
        for n in range(1, self.ports + 1):
            self.port_on.setdefault(n, True)

    @property
    def latlon(self) -> tuple[float, float]:
        """The town centre's latitude and longitude (klupa.contract; Mostar's if unknown)."""
        m = MUNICIPALITIES.get(self.municipality, MUNICIPALITIES["mostar"])
        return m.lat, m.lon

    def irradiance(self) -> float:
        lat, lon = self.latlon
        clear = clear_sky_irradiance(solar_elevation(lat, lon, self.t))
        return clear * self.clouds.transmittance(self.t)

    def local_hour(self) -> tuple[float, int]:
        # Central European time, with summer time from the last Sunday of March to October.
        import datetime
        from zoneinfo import ZoneInfo

        local = datetime.datetime.fromtimestamp(self.t, ZoneInfo("Europe/Sarajevo"))
        return local.hour + local.minute / 60.0, local.weekday()

    def link_up(self) -> bool:
        return not any(start <= self.t < end for start, end in self.outages)

    def rssi(self) -> int:
        fade = 6 * math.sin(self.t / 900.0 + self.seed) + random.Random(int(self.t // 10)).uniform(
            -3, 3
        )
        return max(-100, min(-30, int(self.base_rssi + fade)))

    def port_current(self, n: int) -> float:
        phone = self.phones.get(n)
        if phone is None or not self.port_on.get(n, False):
            return 0.0
        return phone.current()

    def seat_occupied(self) -> bool:
        return self.t < self.seat_until

    def step(self, dt: float) -> None:
        """Advance the world by dt simulated seconds (dt ≤ 60 for faithful sessions)."""
        self.t += dt
        hour, weekday = self.local_hour()
        self.air_c = 8.0 + 6.0 * math.sin((hour - 9.0) / 24.0 * 2 * math.pi)
        self.rh = 75.0 - 15.0 * math.sin((hour - 9.0) / 24.0 * 2 * math.pi)
        sun = self.irradiance()
        rate = hourly_presence(hour, weekday, self.municipality) * self.people_scale
        rate *= 0.5 + 0.5 * min(1.0, sun / 400.0) if 7 <= hour <= 20 else 1.0
        p = rate * dt / 3600.0
        # Someone sits down.
        if not self.seat_occupied() and self.rng.random() < p:
            self.seat_until = self.t + self.rng.uniform(120, 1800)
        # Someone plugs in a phone.
        if self.rng.random() < p * 0.6:
            free = [n for n in range(1, self.ports + 1) if n not in self.phones]
            if free:
                n = self.rng.choice(free)
                self.phones[n] = Phone(
                    port=n,
                    capacity_wh=self.rng.uniform(12, 20),
                    soc=self.rng.uniform(0.05, 0.6),
                    max_a=self.rng.uniform(0.5, 2.4) if n != self.wireless_port else 0.9,
                    leave_at=self.t + self.rng.uniform(300, 3600),
                )
        # Phones charge and leave.
        load_a = self.controller_load_a
        for n, phone in list(self.phones.items()):
            a = self.port_current(n)
            phone.soc = min(1.0, phone.soc + a * 5.0 * dt / 3600.0 / phone.capacity_wh)
            # 5 V port through a buck from the battery: battery current = P / Vbatt / 0.9
            load_a += a * 5.0 / max(10.0, self.battery.voltage) / 0.9
            if self.t >= phone.leave_at:
                del self.phones[n]
        # Panel through the charge controller.
        power = self.panel.power(sun, self.air_c)
        vbatt = self.battery.voltage
        avail = min(power / max(vbatt, 10.0), 0.3 * self.capacity_ah) if power > 0.5 else 0.0
        if isinstance(self.battery, Cell):
            charge_a = self._controller(avail, load_a)
        else:
            charge_a = 0.0
            if avail > 0 and self.battery.soc < 0.999:
                charge_a = avail
                if self.battery.soc > 0.95:  # absorption: taper towards C/50
                    charge_a *= max(0.02, (1.0 - self.battery.soc) / 0.05)
        self.solar_a = charge_a if charge_a > 0 else 0.0
        if self.solar_a > 0:
            self.solar_v = max(vbatt + 0.3, min(self.panel.vmp, vbatt + 0.3 + sun / 200.0))
        else:
            self.solar_v = self.panel.voc * min(1.0, sun / 50.0) if sun > 0 else 0.0
        if isinstance(self.battery, Cell):
            self.battery.flow(charge_a - load_a, dt, self.air_c)
        else:
            self.battery.flow(charge_a - load_a, dt)

    def _controller(self, avail: float, load_a: float) -> float:
        """The charge controller's output current: the loads first, the rest into the cell,
        at most what holds the cell at the stage's voltage."""
        assert isinstance(self.battery, Cell)
        p = self.battery.p
        if avail <= 0:
            self.charge_stage = "bulk"  # a new day starts a new charge
            return 0.0
        if self.charge_stage == "absorb" and self.t - self.absorb_from >= p.absorb_s:
            self.charge_stage = "float"
        volts = p.float_v if self.charge_stage == "float" else p.absorb_v
        want = load_a + self.battery.current_at(volts)
        if self.charge_stage == "bulk" and want <= avail:
            self.charge_stage, self.absorb_from = "absorb", self.t
        return max(0.0, min(avail, want))
