"""Reading llmq's GET /metrics in the e2e suite: a small parser of the Prometheus text format
and promtool's verdict on it."""

from __future__ import annotations

import re
import subprocess

import httpx

PROMTOOL = "/usr/bin/promtool"
EXPOSITION_TYPE = "text/plain; version=0.0.4"

# Nothing promtool says is allowed (the one lint it had, on the gauge llmq_slots_total, went with
# its rename to llmq_slots).
ALLOWED_LINT: set[str] = set()

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


class Metrics:
    """One scrape: samples by (name, frozenset of label pairs), and TYPE by family name."""

    def __init__(self, text: str):
        self.text = text
        self.types: dict[str, str] = {}
        self.samples: dict[tuple[str, frozenset], float] = {}
        for line in text.splitlines():
            if line.startswith("# TYPE "):
                _, _, name, kind = line.split(" ", 3)
                self.types[name] = kind
                continue
            if not line or line.startswith("#"):
                continue
            m = _SAMPLE.match(line)
            assert m, f"unparsable sample line {line!r}"
            labels = frozenset(_LABEL.findall(m.group(3) or ""))
            self.samples[(m.group(1), labels)] = float(m.group(4))

    def get(self, name: str, **labels) -> float:
        """The sample's value; 0 for a series not exposed yet (a counter that never moved)."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def has(self, name: str, **labels) -> bool:
        return (name, frozenset(labels.items())) in self.samples

    def total(self, name: str) -> float:
        """The sum over every series of `name`, whatever their labels."""
        return sum(v for (n, _), v in self.samples.items() if n == name)


def scrape(base_url: str) -> Metrics:
    r = httpx.get(base_url + "/metrics", timeout=10.0)
    assert r.status_code == 200, f"/metrics answered {r.status_code}: {r.text[:300]!r}"
    ctype = r.headers.get("content-type", "")
    assert ctype.startswith(EXPOSITION_TYPE), f"content-type {ctype!r}"
    return Metrics(r.text)


def promtool_problems(text: str) -> list[str]:
    """What `promtool check metrics` reports for the text, minus ALLOWED_LINT."""
    p = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(), capture_output=True,
                       timeout=30)
    lines = (p.stdout + p.stderr).decode(errors="replace").splitlines()
    problems = [l.strip() for l in lines if l.strip() and l.strip() not in ALLOWED_LINT]
    if p.returncode != 0 and not problems and not any(l.strip() in ALLOWED_LINT for l in lines):
        problems.append(f"promtool exited with {p.returncode} and said nothing")
    return problems
