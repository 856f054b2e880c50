"""Go's number formatting, as Prometheus templates print numbers.

`{{ $value }}` prints a float64 with Go's `%v` (shortest digits, exponent from 1e+06 up and below
1e-04), and the humanize functions use `%.4g`. Python's `%g` agrees with Go's except for the
spelling of NaN and infinities and for `%v`, which Python has no equivalent of.
"""

from __future__ import annotations

import math
from decimal import Decimal


def _special(value: float) -> str | None:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return None


def format_g(value: float, precision: int) -> str:
    """Go's %.<precision>g."""
    special = _special(value)
    if special is not None:
        return special
    return f"%.{precision}g" % value


def format_v(value: float) -> str:
    """Go's %v for a float64: the shortest digits that round-trip, in %e form when the decimal
    exponent is below -4 or at least 6 (strconv's %g rule for the shortest precision)."""
    special = _special(value)
    if special is not None:
        return special
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    sign, digit_tuple, exponent = Decimal(repr(value)).normalize().as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(str(d) for d in digit_tuple)
    point = len(digits) + exponent  # position of the decimal point after the first digit run
    exp10 = point - 1
    prefix = "-" if sign else ""
    if exp10 < -4 or exp10 >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{prefix}{mantissa}e{'-' if exp10 < 0 else '+'}{abs(exp10):02d}"
    if point <= 0:
        return f"{prefix}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return f"{prefix}{digits}{'0' * (point - len(digits))}"
    return f"{prefix}{digits[:point]}.{digits[point:]}"


def format_printf(template: str, args: list[object]) -> str:
    """A small printf: Go verbs %v %s %d %f %e %g %q %% with flags, width and precision."""
    out: list[str] = []
    i = 0
    arg_index = 0
    while i < len(template):
        ch = template[i]
        if ch != "%":
            out.append(ch)
            i += 1
            continue
        j = i + 1
        while j < len(template) and template[j] in "+-# 0123456789.":
            j += 1
        if j >= len(template):
            out.append(template[i:])
            break
        spec, verb = template[i + 1 : j], template[j]
        i = j + 1
        if verb == "%":
            out.append("%")
            continue
        if arg_index >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        arg = args[arg_index]
        arg_index += 1
        out.append(_format_one(spec, verb, arg))
    return "".join(out)


def _format_one(spec: str, verb: str, arg: object) -> str:
    if verb == "v":
        if isinstance(arg, float):
            return format_v(arg)
        return str(arg)
    if verb == "s":
        return f"%{spec}s" % arg
    if verb == "q":
        return '"' + str(arg).replace("\\", "\\\\").replace('"', '\\"') + '"'
    if verb == "d":
        try:
            return f"%{spec}d" % int(arg)  # type: ignore[call-overload]
        except (TypeError, ValueError):
            return f"%!d({arg})"
    if verb in "feEgG":
        try:
            number = float(arg)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return f"%!{verb}({arg})"
        special = _special(number)
        if special is not None:
            return special
        return f"%{spec}{verb}" % number
    return f"%!{verb}({arg})"
